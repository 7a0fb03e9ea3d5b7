/**
 * Bad input from a peer, at the node level over real TCP: Bob (a node whose
 * bytes we forge on the way out) sends a message for a channel that does not
 * exist, an update_add_htlc far over the limits, and a commitment_signed with
 * a corrupted signature, each on its own channel with Alice. Alice answers
 * each with a BOLT 1 `error` for that channel id (the unknown one fails
 * nothing), keeps the failed channels' signed state exactly as it was (her
 * commitment still confirms on chain and Bob sweeps his side of it), keeps
 * the connection, and goes on serving her other channel with Bob and her
 * channel with Carol.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import type { ChannelInfo } from '../../node/channels/manager.js';
import type { Peer } from '../../node/peer.js';
import { ANCHOR_OUTPUT_SAT, commitmentFeeSat } from '../../htlc/bolt3/fees.js';
import { bytesToHex, concatBytes, u16be } from '../../wire/bytes.js';
import { encodeChannelMessage, type ChannelMessage } from '../../wire/channel-messages.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { LogCapture } from './peer-helpers.js';
import { TestNode, fundNodes, mineElsewhere, newTestChain, offerHtlc, teardown, until } from './channels-fixture.js';

const T = { timeout: 90_000 };

describe('channel manager: bad input from a peer over TCP', () => {
  let chain: BcoinChainBackend;
  let alice: TestNode;
  const aliceLog = new LogCapture();
  let bob: TestNode;
  let carol: TestNode;
  /** Alice → Bob (with a push): gets the forged over-limit add. */
  let overLimit: ChannelInfo;
  /** Bob → Alice: gets the corrupted commitment_signed. */
  let badSig: ChannelInfo;
  /** Alice → Bob (with a push): must keep working. */
  let healthy: ChannelInfo;
  /** Carol → Alice: must keep working. */
  let carols: ChannelInfo;
  /** Errors each node received: channel id → texts. */
  const errors = { alice: new Map<string, string[]>(), bob: new Map<string, string[]>(), carol: new Map<string, string[]>() };
  /** When set, Bob's next commitment_signed for this channel leaves with its signature corrupted. */
  let corruptNextCommitFor: string | undefined;

  const mine = (n: number): Promise<void> => mineElsewhere(chain, n);

  const inMempool = (displayTxid: string): boolean => {
    const mempool = chain.node.mempool as unknown as { getTX(h: string): unknown };
    return mempool.getTX(Buffer.from(displayTxid, 'hex').reverse().toString('hex')) !== null;
  };

  /** Bob sends a channel message his channel state machine never produced. */
  const forge = (m: ChannelMessage): void => {
    const p = bob.node.peer(alice.id) as Peer | undefined;
    assert.ok(p !== undefined, 'bob is connected to alice');
    p.sendRaw(concatBytes(u16be(m.type), encodeChannelMessage(m)));
  };

  async function payment(from: TestNode, to: TestNode, channelId: string, amountMsat: bigint): Promise<void> {
    const { id, preimage } = await offerHtlc(chain, from, to, channelId, amountMsat);
    const fulfilled = new Promise<void>((resolve) => {
      const on = (cid: string, _id: bigint, p: Uint8Array): void => {
        if (cid === channelId && bytesToHex(p) === bytesToHex(preimage)) {
          from.manager.off('htlc_fulfilled', on);
          resolve();
        }
      };
      from.manager.on('htlc_fulfilled', on);
    });
    await to.manager.fulfillHtlc(channelId, id, preimage);
    await fulfilled;
  }

  const snapshot = (n: TestNode, id: string) => {
    const s = n.manager.channelState(id);
    return {
      height: s.localCommit.height,
      ours: s.localCommit.ourBalanceMsat,
      theirs: s.localCommit.theirBalanceMsat,
      sig: bytesToHex(s.localCommit.remoteSig),
      remoteHeight: s.remoteCommit.height,
    };
  };

  before(async () => {
    chain = await newTestChain();
    alice = new TestNode({ name: 'alice', policy: { minimumDepth: 1 }, logDestination: aliceLog }, chain);
    bob = new TestNode({ name: 'bob', policy: { minimumDepth: 1 } }, chain);
    carol = new TestNode({ name: 'carol', policy: { minimumDepth: 1 } }, chain);
    for (const n of [alice, bob, carol]) await n.start();
    for (const [who, n] of [
      ['alice', alice],
      ['bob', bob],
      ['carol', carol],
    ] as const)
      n.manager.on('peer_error', (_peer, cid, level, text) => {
        if (level === 'error') errors[who].set(cid, [...(errors[who].get(cid) ?? []), text]);
      });
    await fundNodes(chain, [alice, bob, carol]);
    await alice.connect(bob);
    await carol.connect(alice);
    // Bob's outgoing bytes pass through here: a commitment_signed can be corrupted on the wire
    const p = bob.node.peer(alice.id) as Peer;
    const send = p.sendRaw.bind(p);
    p.sendRaw = (bytes: Uint8Array): boolean => {
      const type = (bytes[0]! << 8) | bytes[1]!;
      if (type === 132 && corruptNextCommitFor !== undefined && bytesToHex(bytes.subarray(2, 34)) === corruptNextCommitFor) {
        corruptNextCommitFor = undefined;
        const forged = bytes.slice();
        forged[34 + 20] = forged[34 + 20]! ^ 0x01; // inside the commitment signature's r
        return send(forged);
      }
      return send(bytes);
    };
  });

  after(() => teardown(chain, [alice, bob, carol]));

  it('opens three channels between Alice and Bob and one from Carol to Alice', T, async () => {
    [overLimit, badSig, healthy, carols] = await Promise.all([
      alice.manager.openChannel(bob.id, 500_000n, { channelType: 'static_remotekey', pushMsat: 200_000_000n }),
      bob.manager.openChannel(alice.id, 400_000n, { channelType: 'anchors_zero_fee_htlc' }),
      alice.manager.openChannel(bob.id, 600_000n, { channelType: 'anchors_zero_fee_htlc', pushMsat: 100_000_000n }),
      carol.manager.openChannel(alice.id, 300_000n, { channelType: 'static_remotekey' }),
    ]);
    await mine(1);
    const all = [overLimit, badSig, healthy, carols].map((c) => c.channelId);
    await until(() => all.every((id) => alice.manager.channel(id)?.active === true), 'all four channels active at alice');
    await until(
      () =>
        [overLimit, badSig, healthy].every((c) => bob.manager.channel(c.channelId)?.active === true) &&
        carol.manager.channel(carols.channelId)?.active === true,
      'and at bob and carol',
    );
    await payment(bob, alice, badSig.channelId, 20_000_000n); // something of Alice's on the channel that will fail
  });

  it('a message for an unknown channel id gets an error for that id and fails nothing', T, async () => {
    const unknown = bytesToHex(randomBytes(32));
    forge({ type: 134, channelId: Buffer.from(unknown, 'hex'), feeratePerKw: 5_000 });
    await until(() => errors.bob.has(unknown), 'bob receives an error for the unknown channel');
    assert.match(errors.bob.get(unknown)![0]!, /ERR_UNKNOWN_CHANNEL/);
    // a peer's mistake is not our fault: Alice logs it at warn (40), never at error (50)
    const lines = aliceLog.lines.filter((l) => JSON.stringify(l).includes(unknown));
    assert.ok(lines.length > 0, 'alice logged the message for the unknown channel');
    for (const l of lines) assert.equal(l['level'], 40, JSON.stringify(l));
    assert.ok(alice.manager.listChannels().every((c) => c.active && c.state === 'normal'));
    assert.ok(bob.manager.listChannels().every((c) => c.active && c.state === 'normal'));
  });

  it('an update_add_htlc over the limits: error for that channel, its signed state untouched', T, async () => {
    const before = snapshot(alice, overLimit.channelId);
    const s = alice.manager.channelState(overLimit.channelId);
    forge({
      type: 128,
      channelId: s.channelId,
      id: s.theirLog.nextHtlcId,
      amountMsat: 450_000_000n, // more than Bob's whole balance (200 000 sat)
      paymentHash: sha256(randomBytes(32)),
      cltvExpiry: chain.tip().height + 100,
      onionRoutingPacket: new Uint8Array(1366),
    });
    await until(() => errors.bob.has(overLimit.channelId), 'bob receives the error');
    assert.match(errors.bob.get(overLimit.channelId)![0]!, /ERR_CANNOT_AFFORD|ERR_HTLC_LIMIT/);
    await until(
      () => alice.manager.channel(overLimit.channelId)!.state === 'failed' && bob.manager.channel(overLimit.channelId)!.state === 'failed',
      'the channel failed at both',
    );
    assert.deepEqual(snapshot(alice, overLimit.channelId), before);
    assert.equal(alice.manager.channelState(overLimit.channelId).theirLog.entries.length, 0, 'the refused add is not in the log');
    assert.ok(alice.node.peer(bob.id) !== undefined, 'the connection stays up');
  });

  it('a commitment_signed with a corrupted signature: error for that channel, its signed state untouched', T, async () => {
    const before = snapshot(alice, badSig.channelId);
    corruptNextCommitFor = badSig.channelId;
    await bob.manager.addHtlc(badSig.channelId, {
      amountMsat: 5_000_000n,
      paymentHash: sha256(randomBytes(32)),
      cltvExpiry: chain.tip().height + 100,
    });
    await until(() => errors.bob.has(badSig.channelId), 'bob receives the error');
    assert.equal(corruptNextCommitFor, undefined, 'the corrupted commitment_signed went out');
    assert.match(errors.bob.get(badSig.channelId)![0]!, /ERR_BAD_SIGNATURE/);
    await until(
      () => alice.manager.channel(badSig.channelId)!.state === 'failed' && bob.manager.channel(badSig.channelId)!.state === 'failed',
      'the channel failed at both',
    );
    assert.deepEqual(snapshot(alice, badSig.channelId), before);
    assert.ok(alice.node.peer(bob.id) !== undefined, 'the connection stays up');
  });

  it('Alice keeps serving her other channel with Bob and her channel with Carol', T, async () => {
    await payment(alice, bob, healthy.channelId, 30_000_000n);
    await payment(bob, alice, healthy.channelId, 12_000_000n);
    await payment(carol, alice, carols.channelId, 25_000_000n);
    assert.equal(alice.manager.channel(healthy.channelId)!.localBalanceMsat, 500_000_000n - 30_000_000n + 12_000_000n);
    assert.equal(alice.manager.channel(carols.channelId)!.localBalanceMsat, 25_000_000n);
    assert.ok(alice.manager.channel(healthy.channelId)!.active && alice.manager.channel(carols.channelId)!.active);
    assert.equal(errors.alice.size, 0, 'alice never received an error');
    assert.equal(errors.carol.size, 0, 'carol never received an error');
  });

  it("nothing lost: Alice's commitments of both failed channels confirm and Bob sweeps his side of each", T, async () => {
    const swept = new Map<string, bigint>();
    bob.manager.on('sweep_broadcast', (info, _txid, output, valueSat) => {
      if (output === 'to_remote') swept.set(info.channelId, valueSat);
    });
    // Bob's output on Alice's commitment: his balance, less the commitment fee and both anchors where he opened
    const expected = new Map<string, bigint>();
    for (const c of [overLimit, badSig]) {
      const info = alice.manager.channel(c.channelId)!;
      assert.equal(info.pendingHtlcs, 0);
      const openerCost =
        info.opener === 'remote'
          ? commitmentFeeSat(info.channelType, info.feeratePerKw, 0) +
            (info.channelType === 'anchors_zero_fee_htlc' ? 2n * ANCHOR_OUTPUT_SAT : 0n)
          : 0n;
      expected.set(c.channelId, info.remoteBalanceMsat / 1000n - openerCost);
      const txid = await alice.manager.forceCloseChannel(c.channelId);
      assert.ok(inMempool(txid), `alice's commitment ${txid} accepted into the mempool`);
    }
    await mine(1);
    await until(() => swept.size === 2, 'bob sweeps his to_remote from both commitments');
    for (const [id, bal] of expected) {
      const fee = bal - swept.get(id)!;
      assert.ok(fee > 0n && fee < 2_000n, `bob's sweep of ${id} takes only its fee (${fee} sat)`);
    }
  });
});
