/**
 * HTLC outputs after a unilateral close (BOLT 5), on the embedded regtest
 * chain with two nodes over TCP:
 *   - Bob force-closes while one HTLC of Alice's is pending, one of hers he
 *     fulfilled and one of his that Alice fulfilled while they were
 *     disconnected (neither fulfill reached the other side): Alice claims
 *     his HTLC with the preimage as soon as his commitment confirms, learns
 *     the preimage of hers from his HTLC-success transaction, and takes the
 *     other back once its cltv_expiry is reached, not a block earlier (then
 *     reports it failed) — for both channel types.
 *   - Alice force-closes with the same two kinds of HTLC on her own
 *     commitment: the HTLC-success transaction goes out at once, the
 *     HTLC-timeout at its cltv_expiry (on anchor channels both carry a fee
 *     input and change from her wallet), and each one's delayed output is
 *     swept into her wallet after to_self_delay confirmations.
 */
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import type { ChannelInfo, SweptOutput } from '../../node/channels/manager.js';
import { htlcSuccessFeeSat, htlcTimeoutFeeSat } from '../../htlc/bolt3/fees.js';
import { buildHtlcTxs } from '../../htlc/bolt3/index.js';
import { buildLocal, signedHtlcTxs, signedLocalCommitment } from '../../htlc/channel/commitments.js';
import { revokedHeights } from '../../htlc/channel/codec.js';
import type { ChannelState, ChannelType } from '../../htlc/channel/types.js';
import type { KvStore } from '../../db/store.js';
import { deriveChannelSecrets, ourPoint } from '../../htlc/channel/keys.js';
import { secp, sha256Parts, signatureToDER } from '../../wire/crypto.js';
import { bcoin } from '../../node/chain/bcoin.js';
import { bytesToHex } from '../../wire/bytes.js';
import { TestNode, fundNodes, mineElsewhere, newTestChain, offerHtlc, teardown, until } from './channels-fixture.js';

const T = { timeout: 120_000 };
/** bcoin without the project's narrow typings: the cheater below builds a transaction by hand. */
const B: any = createRequire(import.meta.url)('bcoin');

interface Sweep {
  output: SweptOutput;
  valueSat: bigint;
  channelId: string;
  height: number;
}

describe('channel manager: HTLC outputs on chain', () => {
  let chain: BcoinChainBackend;
  let alice: TestNode;
  let bob: TestNode;
  const sweeps: Record<'alice' | 'bob', Sweep[]> = { alice: [], bob: [] };

  const mine = (n: number): Promise<void> => mineElsewhere(chain, n);

  before(async () => {
    chain = await newTestChain();
    alice = new TestNode({ name: 'alice', policy: { minimumDepth: 1 } }, chain);
    bob = new TestNode({ name: 'bob', policy: { minimumDepth: 1 } }, chain);
    await alice.start();
    await bob.start();
    for (const [who, n] of [
      ['alice', alice],
      ['bob', bob],
    ] as const)
      n.manager.on('sweep_broadcast', (info, _txid, output, valueSat) =>
        sweeps[who].push({ output, valueSat, channelId: info.channelId, height: chain.tip().height }),
      );
    await fundNodes(chain, [alice, bob]);
    await alice.connect(bob);
  });

  after(() => teardown(chain, [alice, bob]));

  /** Offers an HTLC and waits until it is irrevocably committed on both sides. */
  async function offer(
    from: TestNode,
    to: TestNode,
    channelId: string,
    amountMsat: bigint,
    cltvExpiry: number,
  ): Promise<{ id: bigint; preimage: Uint8Array }> {
    const h = await offerHtlc(chain, from, to, channelId, amountMsat, cltvExpiry);
    await until(
      () =>
        [from, to].every((n) => {
          const s = n.manager.channelState(channelId);
          return (
            s.remoteNextCommit === undefined &&
            s.localCommit.htlcs.some((x) => x.id === h.id) &&
            s.remoteCommit.htlcs.some((x) => x.id === h.id)
          );
        }),
      'HTLC committed on both sides',
    );
    return h;
  }

  /** The commitment numbers in `n`'s revocation log of a channel (the manager's private store of it). */
  async function revocationLog(n: TestNode, channelId: string): Promise<bigint[]> {
    const chans = (n.manager as unknown as { chans: Map<number, { store: KvStore; driver: { state: ChannelState } }> }).chans;
    const c = [...chans.values()].find((x) => bytesToHex(x.driver.state.channelId) === channelId)!;
    return revokedHeights(c.store, c.driver.state.channelId);
  }

  async function disconnect(): Promise<void> {
    alice.node.disconnect(bob.id);
    await until(() => alice.node.listPeers().length === 0 && bob.node.listPeers().length === 0, 'disconnected');
  }

  /** Alice and Bob connected, `opener` opens a channel to the other, mined and active on both sides. */
  async function openActive(
    opener: TestNode,
    fundingSat: bigint,
    opts: { channelType: ChannelType; pushMsat?: bigint },
  ): Promise<ChannelInfo> {
    if (alice.node.peer(bob.id) === undefined) await alice.connect(bob);
    const c = await opener.manager.openChannel((opener === alice ? bob : alice).id, fundingSat, opts);
    await mine(1);
    await until(
      () => alice.manager.channel(c.channelId)?.active === true && bob.manager.channel(c.channelId)?.active === true,
      'channel active',
    );
    return c;
  }

  for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
    it(
      `${channelType}: Bob force-closes; Alice claims his HTLC with the preimage at once and hers back at its cltv_expiry`,
      T,
      async () => {
        const ch = await openActive(bob, 600_000n, { channelType, pushMsat: 200_000_000n });
        const tip = chain.tip().height;
        const mine1 = await offer(alice, bob, ch.channelId, 20_000_000n, tip + 30);
        const paid = await offer(alice, bob, ch.channelId, 12_000_000n, tip + 90);
        const his = await offer(bob, alice, ch.channelId, 15_000_000n, tip + 80);
        const outcomes = new Map<bigint, string>();
        alice.manager.on(
          'htlc_fulfilled',
          (cid, id, preimage) => cid === ch.channelId && outcomes.set(id, `fulfilled ${bytesToHex(preimage)}`),
        );
        alice.manager.on('htlc_failed', (cid, id) => cid === ch.channelId && outcomes.set(id, 'failed'));
        await disconnect();
        // taken while they are apart: each fulfill waits for a reconnection, its preimage is in the channel state
        await alice.manager.fulfillHtlc(ch.channelId, his.id, his.preimage);
        await bob.manager.fulfillHtlc(ch.channelId, paid.id, paid.preimage);
        const before = sweeps.alice.length;
        assert.ok((await revocationLog(alice, ch.channelId)).length > 0, 'commitments with HTLCs were revoked');
        await bob.manager.forceCloseChannel(ch.channelId);
        await mine(1);
        await until(
          () =>
            sweeps.alice.slice(before).some((s) => s.output === 'htlc_success') &&
            sweeps.alice.slice(before).some((s) => s.output === 'to_remote'),
          'to_remote and the preimage claim',
        );
        const success = sweeps.alice.slice(before).find((s) => s.output === 'htlc_success')!;
        assert.ok(success.valueSat < 15_000n && success.valueSat > 13_000n, `claimed ${success.valueSat} of 15 000 sat`);
        // his current commitment: no revoked one can come any more, the revocation log is gone
        await until(async () => (await revocationLog(alice, ch.channelId)).length === 0, 'revocation log pruned');
        // Bob claims the HTLC Alice paid him with his second stage: Alice reads the preimage off the chain
        await until(() => sweeps.bob.some((s) => s.channelId === ch.channelId && s.output === 'htlc_success'), "bob's HTLC-success");
        await mine(1);
        await until(() => outcomes.has(paid.id), 'alice learns the preimage on chain');
        assert.equal(outcomes.get(paid.id), `fulfilled ${bytesToHex(paid.preimage)}`);
        // not a block before the expiry
        await mine(tip + 30 - chain.tip().height - 1);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(
          sweeps.alice.slice(before).filter((s) => s.output === 'htlc_timeout').length,
          0,
          'no timeout claim before cltv_expiry',
        );
        await mine(1);
        await until(() => sweeps.alice.slice(before).some((s) => s.output === 'htlc_timeout'), 'the timeout claim');
        const back = sweeps.alice.slice(before).find((s) => s.output === 'htlc_timeout')!;
        assert.equal(back.height, tip + 30);
        assert.ok(back.valueSat < 20_000n && back.valueSat > 18_000n, `took back ${back.valueSat} of 20 000 sat`);
        // both claims confirm: the wallet ends with them, and the HTLC taken back is reported failed
        const walletBefore = alice.walletTotalSat();
        await mine(1);
        await until(() => outcomes.get(mine1.id) === 'failed', 'alice reports her HTLC failed once taken back');
        await until(() => alice.wallet.balance().unconfirmedSat === 0n, 'claims confirmed');
        assert.ok(alice.walletTotalSat() >= walletBefore);
      },
    );
  }

  for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const)
    it(
      `${channelType}: Alice force-closes with HTLCs on her commitment; second-stage transactions${channelType === 'anchors_zero_fee_htlc' ? ' (fee from her wallet)' : ''}, then their delayed outputs`,
      T,
      async () => {
        const ch = await openActive(alice, 700_000n, { channelType, pushMsat: 200_000_000n });
        const tip = chain.tip().height;
        await offer(alice, bob, ch.channelId, 25_000_000n, tip + 20);
        const his = await offer(bob, alice, ch.channelId, 30_000_000n, tip + 400);
        await disconnect();
        await alice.manager.fulfillHtlc(ch.channelId, his.id, his.preimage);
        const feeratePerKw = alice.manager.channel(ch.channelId)!.feeratePerKw;
        const before = sweeps.alice.length;
        await alice.manager.forceCloseChannel(ch.channelId);
        await mine(1);
        const mineFor = (output: SweptOutput, n: number) =>
          until(() => sweeps.alice.slice(before).filter((s) => s.output === output).length >= n, `${n} × ${output}`);
        await mineFor('htlc_success', 1);
        const success = sweeps.alice.slice(before).find((s) => s.output === 'htlc_success')!;
        assert.equal(success.valueSat, 30_000n - htlcSuccessFeeSat(channelType, feeratePerKw));
        const successHeight = success.height;
        await mine(1); // the HTLC-success transaction confirms
        await mine(tip + 20 - chain.tip().height);
        await mineFor('htlc_timeout', 1);
        const timeout = sweeps.alice.slice(before).find((s) => s.output === 'htlc_timeout')!;
        assert.equal(timeout.height, tip + 20);
        assert.equal(timeout.valueSat, 25_000n - htlcTimeoutFeeSat(channelType, feeratePerKw));
        const delay = alice.manager.channel(ch.channelId)!.toSelfDelay;
        // each second-stage output waits to_self_delay confirmations of its transaction
        await mine(successHeight + 1 + delay - 1 - chain.tip().height - 1);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(
          sweeps.alice.slice(before).filter((s) => s.output === 'htlc_delayed').length,
          0,
          'no delayed sweep before to_self_delay',
        );
        await mine(1);
        await mineFor('htlc_delayed', 1);
        await mine(tip + 20 + 1 + delay - chain.tip().height);
        await mineFor('htlc_delayed', 2);
        const delayed = sweeps.alice
          .slice(before)
          .filter((s) => s.output === 'htlc_delayed')
          .map((s) => s.valueSat)
          .sort((a, b) => Number(a - b));
        const expected = [timeout.valueSat, success.valueSat].sort((a, b) => Number(a - b));
        for (let i = 0; i < 2; i++)
          assert.ok(delayed[i]! < expected[i]! && delayed[i]! > expected[i]! - 2_000n, `delayed sweep ${delayed[i]} of ${expected[i]}`);
        assert.ok(
          sweeps.alice.slice(before).some((s) => s.output === 'to_local'),
          'and to_local',
        );
      },
    );

  for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const)
    it(
      `${channelType}: a breach with HTLCs in flight; Alice takes every HTLC output of the revoked commitment${channelType === 'static_remotekey' ? ', and the output of the HTLC-timeout Bob spent one with' : ''}`,
      T,
      async () => {
        const ch = await openActive(alice, 800_000n, { channelType, pushMsat: 300_000_000n });
        const tip = chain.tip().height;
        const toBob = await offer(alice, bob, ch.channelId, 30_000_000n, tip + 200);
        const toAlice = await offer(bob, alice, ch.channelId, 40_000_000n, tip + 3);
        // Bob keeps a copy of his state with both HTLCs in flight...
        const old = structuredClone(bob.manager.channelState(ch.channelId));
        assert.equal(old.localCommit.htlcs.length, 2);
        // ...then both settle, which revokes it
        await bob.manager.fulfillHtlc(ch.channelId, toBob.id, toBob.preimage);
        await alice.manager.failHtlc(ch.channelId, toAlice.id);
        await until(
          () =>
            [alice, bob].every(
              (n) =>
                n.manager.channel(ch.channelId)!.pendingHtlcs === 0 && n.manager.channelState(ch.channelId).remoteNextCommit === undefined,
            ),
          'both HTLCs settled',
        );
        assert.ok(alice.manager.channelState(ch.channelId).remoteCommit.height > old.localCommit.height);
        await mine(Math.max(0, tip + 3 - chain.tip().height));
        // the cheat: the old commitment, and (static_remotekey) his HTLC-timeout of the HTLC he had offered, in one block
        const bobSecrets = deriveChannelSecrets(bob.channelSeed, old.keyIndex);
        const revoked = signedLocalCommitment(old, bobSecrets);
        await chain.broadcast(Buffer.from(revoked));
        const secondStage = channelType === 'static_remotekey';
        if (secondStage) {
          const timeout = signedHtlcTxs(old, bobSecrets).find((h) => h.kind === 'htlc_timeout')!;
          await chain.broadcast(Buffer.from(timeout.tx!));
        }
        const from = sweeps.alice.length;
        await mine(1);
        const justice = () => sweeps.alice.slice(from).filter((x) => x.channelId === ch.channelId && x.output === 'justice');
        await until(
          () => justice().length === 3 && sweeps.alice.slice(from).some((x) => x.channelId === ch.channelId && x.output === 'to_remote'),
          'justice on to_local and both HTLCs, and to_remote',
        );
        assert.match(alice.manager.channel(ch.channelId)!.failure ?? '', /^breach/);
        assert.ok((await revocationLog(alice, ch.channelId)).length > 0, 'kept after a breach (a restart answers it again)');
        // amounts: everything Bob's old commitment held, less the fees (the second stage's too)
        const t = bcoin.TX.fromRaw(Buffer.from(revoked));
        const outSum = t.outputs.reduce((x: bigint, o: { value: number }) => x + BigInt(o.value), 0n);
        const anchorsSat = channelType === 'anchors_zero_fee_htlc' ? 660n : 0n;
        const taken = sweeps.alice
          .slice(from)
          .filter((x) => x.channelId === ch.channelId)
          .reduce((a, x) => a + x.valueSat, 0n);
        assert.ok(taken < outSum - anchorsSat && taken > outSum - anchorsSat - 8_000n, `alice took ${taken} of ${outSum - anchorsSat} sat`);
        await mine(1);
        await until(() => alice.wallet.balance().unconfirmedSat === 0n, 'justice confirmed');
      },
    );

  it('a breach with a revoked commitment that has no to_local: still a breach, its HTLC output is taken', T, async () => {
    const ch = await openActive(alice, 800_000n, { channelType: 'static_remotekey' });
    const h = await offer(alice, bob, ch.channelId, 200_000_000n, chain.tip().height + 200);
    const old = structuredClone(bob.manager.channelState(ch.channelId));
    assert.equal(old.localCommit.ourBalanceMsat, 0n, 'nothing of his own on that commitment');
    const failed = new Promise<void>((resolve) => alice.manager.once('htlc_failed', () => resolve()));
    await bob.manager.failHtlc(ch.channelId, h.id);
    await failed;
    await until(
      () =>
        [alice, bob].every(
          (n) => n.manager.channel(ch.channelId)!.pendingHtlcs === 0 && n.manager.channelState(ch.channelId).remoteNextCommit === undefined,
        ),
      'HTLC failed back',
    );
    const from = sweeps.alice.length;
    await chain.broadcast(Buffer.from(signedLocalCommitment(old, deriveChannelSecrets(bob.channelSeed, old.keyIndex))));
    await mine(1);
    await until(
      () => sweeps.alice.slice(from).some((x) => x.channelId === ch.channelId && x.output === 'justice'),
      'justice on the HTLC output',
    );
    assert.match(alice.manager.channel(ch.channelId)!.failure ?? '', /^breach/);
    const taken = sweeps.alice.slice(from).find((x) => x.channelId === ch.channelId && x.output === 'justice')!.valueSat;
    assert.ok(taken < 200_000n && taken > 198_000n, `took ${taken} of the 200 000 sat HTLC`);
  });

  it('anchors: a cheater who moves his HTLC input (and its output) away from index 0 of his second stage still loses it', T, async () => {
    // the victim keeps her store on disk: she is away (stopped) while he cheats
    const carol = new TestNode({ name: 'carol', disk: true, policy: { minimumDepth: 1 } }, chain);
    await carol.start();
    try {
      await fundNodes(chain, [carol]);
      await carol.connect(bob);
      const ch = await carol.manager.openChannel(bob.id, 800_000n, { channelType: 'anchors_zero_fee_htlc', pushMsat: 300_000_000n });
      await mine(1);
      await until(
        () => carol.manager.channel(ch.channelId)?.active === true && bob.manager.channel(ch.channelId)?.active === true,
        'channel active',
      );
      const toBob = await offer(carol, bob, ch.channelId, 50_000_000n, chain.tip().height + 200);
      const old = structuredClone(bob.manager.channelState(ch.channelId));
      await bob.manager.fulfillHtlc(ch.channelId, toBob.id, toBob.preimage);
      await until(
        () =>
          [carol, bob].every(
            (n) =>
              n.manager.channel(ch.channelId)!.pendingHtlcs === 0 && n.manager.channelState(ch.channelId).remoteNextCommit === undefined,
          ),
        'settled',
      );
      // a coin of Bob's outside his wallet for the fee, and Carol away while he cheats
      const ring = B.KeyRing.generate(true);
      ring.witness = true;
      const paid = await bob.wallet.sendToAddress(ring.getAddress().toString('regtest'), 100_000n);
      await mine(1);
      const feeTx = B.TX.fromRaw(Buffer.from(paid.tx));
      const feeIndex = feeTx.outputs.findIndex(
        (o: { getAddress(): { toString(n: string): string } | null }) =>
          o.getAddress()?.toString('regtest') === ring.getAddress().toString('regtest'),
      );
      await carol.stop();
      const bs = deriveChannelSecrets(bob.channelSeed, old.keyIndex);
      await chain.broadcast(Buffer.from(signedLocalCommitment(old, bs)));
      await mine(1);
      // his HTLC-success: the fee coin at input 0 with his change at output 0, the HTLC at input and output 1
      const c = buildLocal(old, bs, old.localCommit);
      const htlcTxs = buildHtlcTxs(c);
      const k = htlcTxs.findIndex((x) => x.kind === 'htlc_success');
      const h = htlcTxs[k]!;
      const mtx = new B.MTX();
      mtx.version = 2;
      mtx.addCoin(B.Coin.fromTX(feeTx, feeIndex, chain.tip().height - 1));
      const hin = h.tx.inputs[0]!;
      mtx.addOutpoint(new B.Outpoint(hin.prevout.hash, hin.prevout.index));
      mtx.inputs[1]!.sequence = hin.sequence;
      mtx.addOutput(ring.getAddress(), 100_000 - 2_000);
      mtx.addOutput(h.tx.outputs[0]!.script, h.tx.outputs[0]!.value);
      const htlcPriv = secp.privateKeyTweakAdd(
        bs.htlcBaseSecret,
        sha256Parts(ourPoint(bs, old.localCommit.height), old.local.pubkeys.htlcBasepoint),
      );
      const digest = mtx.signatureHash(1, B.Script.fromRaw(Buffer.from(h.inputWitnessScript)), Number(h.inputValueSat), 1, 1);
      const ours = Buffer.from([...signatureToDER(secp.sign(new Uint8Array(digest), htlcPriv)), 1]);
      const theirs = Buffer.from([...signatureToDER(old.localCommit.remoteHtlcSigs[k]!), 0x83]);
      mtx.inputs[1]!.witness = B.Witness.fromItems([
        Buffer.alloc(0),
        theirs,
        ours,
        Buffer.from(toBob.preimage),
        Buffer.from(h.inputWitnessScript),
      ]);
      mtx.sign(ring);
      const second = mtx.toTX();
      await chain.broadcast(second.toRaw());
      await mine(1);
      // Carol comes back well within to_self_delay and takes the second-level output too: a transaction of hers
      // spends it (output 1 of his second stage)
      await carol.start();
      const mempool = chain.node.mempool as unknown as { isSpent(hash: string, index: number): boolean };
      await until(() => mempool.isSpent(second.hash('hex'), 1), 'the moved second-level output taken');
      assert.equal(mempool.isSpent(second.hash('hex'), 0), false, 'his change is left alone');
    } finally {
      await teardown(undefined, [carol]);
    }
  });

  for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const)
    it(`${channelType}: a preimage that comes after our commitment confirmed still gets its HTLC-success out`, T, async () => {
      const ch = await openActive(alice, 700_000n, { channelType, pushMsat: 200_000_000n });
      const his = await offer(bob, alice, ch.channelId, 30_000_000n, chain.tip().height + 100);
      const from = sweeps.alice.length;
      await alice.manager.forceCloseChannel(ch.channelId);
      await mine(1);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(
        sweeps.alice.slice(from).filter((x) => x.channelId === ch.channelId && x.output === 'htlc_success').length,
        0,
        'no preimage yet',
      );
      await alice.manager.fulfillHtlc(ch.channelId, his.id, his.preimage);
      await until(
        () => sweeps.alice.slice(from).some((x) => x.channelId === ch.channelId && x.output === 'htlc_success'),
        'the HTLC-success transaction',
      );
      const v = sweeps.alice.slice(from).find((x) => x.channelId === ch.channelId && x.output === 'htlc_success')!.valueSat;
      assert.equal(v, 30_000n - htlcSuccessFeeSat(channelType, alice.manager.channel(ch.channelId)!.feeratePerKw));
    });
});
