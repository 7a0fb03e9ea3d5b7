/**
 * Unilateral close on the embedded regtest chain: each side force-closes a
 * channel it opened (one static_remotekey, one anchors). The other side
 * sweeps its to_remote as soon as the commitment confirms; the closer sweeps
 * its to_local once the commitment has to_self_delay confirmations, and not
 * a block earlier. Both wallets end with their off-chain balances less the
 * commitment fee (the opener's), the anchors (the opener's) and the sweep fees;
 * one closer restarts from its data directory while its to_local waits.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bcoin } from '../../node/chain/bcoin.js';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import type { ChannelInfo, SweptOutput } from '../../node/channels/manager.js';
import { signedLocalCommitment } from '../../htlc/channel/commitments.js';
import { deriveChannelSecrets } from '../../htlc/channel/keys.js';
import { ELSEWHERE } from './chain-fixture.js';
import { TestNode, newTestChain, until, fundNodes } from './channels-fixture.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';

const T = { timeout: 120_000 };

type BTx = ReturnType<typeof bcoin.TX.fromRaw>;

interface Sweep {
  txid: string;
  output: SweptOutput;
  valueSat: bigint;
  channelId: string;
}

describe('channel manager: force close and sweeps', () => {
  let chain: BcoinChainBackend;
  let alice: TestNode;
  let bob: TestNode;
  const sweeps: Record<'alice' | 'bob', Sweep[]> = { alice: [], bob: [] };

  const listenSweeps = (who: 'alice' | 'bob', n: TestNode): void => {
    n.manager.on('sweep_broadcast', (info, txid, output, valueSat) =>
      sweeps[who].push({ txid, output, valueSat, channelId: info.channelId }),
    );
  };

  const mine = async (n: number): Promise<void> => {
    await chain.generateToAddress(n, ELSEWHERE);
    await chain.synced();
  };

  before(async () => {
    chain = await newTestChain();
    alice = new TestNode({ name: 'alice', policy: { minimumDepth: 1 } }, chain);
    bob = new TestNode({ name: 'bob', disk: true, policy: { minimumDepth: 1 } }, chain);
    await alice.start();
    await bob.start();
    for (const [who, n] of [
      ['alice', alice],
      ['bob', bob],
    ] as const)
      listenSweeps(who, n);
    await fundNodes(chain, [alice, bob]);
    await alice.connect(bob);
  });

  after(async () => {
    await alice?.stop().catch(() => undefined);
    await bob?.stop().catch(() => undefined);
    await chain?.close();
    bob?.cleanup();
  });

  it('each opener force-closes; the peer sweeps to_remote at once, the closer its to_local after to_self_delay', T, async () => {
    const [ab, ba] = await Promise.all([
      alice.manager.openChannel(bob.id, 1_000_000n, { channelType: 'static_remotekey', pushMsat: 200_000_000n }),
      bob.manager.openChannel(alice.id, 800_000n, { channelType: 'anchors_zero_fee_htlc', pushMsat: 300_000_000n }),
    ]);
    await mine(1);
    await until(
      () =>
        [ab, ba].every(
          (c) => alice.manager.channel(c.channelId)?.state === 'normal' && bob.manager.channel(c.channelId)?.state === 'normal',
        ),
      'both channels ready',
    );
    // move some money over each channel so both balances are not the opening ones
    for (const [payer, payee, id] of [
      [alice, bob, ab.channelId],
      [bob, alice, ba.channelId],
    ] as const) {
      const preimage = randomBytes(32);
      const incoming = new Promise<bigint>((resolve) => payee.manager.once('htlc_incoming', (_c, h) => resolve(h.id)));
      await payer.manager.addHtlc(id, { amountMsat: 50_000_000n, paymentHash: sha256(preimage), cltvExpiry: chain.tip().height + 100 });
      const hid = await incoming;
      const settled = new Promise<void>((resolve) => payer.manager.once('htlc_fulfilled', () => resolve()));
      await payee.manager.fulfillHtlc(id, hid, preimage);
      await settled;
      await until(() => payer.manager.channel(id)!.pendingHtlcs === 0 && payee.manager.channel(id)!.pendingHtlcs === 0, 'HTLC cleared');
    }
    const snapshot = (c: ChannelInfo) => ({
      alice: alice.manager.channel(c.channelId)!.localBalanceMsat / 1000n,
      bob: bob.manager.channel(c.channelId)!.localBalanceMsat / 1000n,
    });
    const balances = { ab: snapshot(ab), ba: snapshot(ba) };
    const walletsBefore = { alice: alice.walletTotalSat(), bob: bob.walletTotalSat() };

    const abTxid = await alice.manager.forceCloseChannel(ab.channelId);
    const baTxid = await bob.manager.forceCloseChannel(ba.channelId);
    assert.equal(alice.manager.channel(ab.channelId)!.failure, 'force closed by us');
    const commitments = new Map<string, BTx>();
    for (const txid of [abTxid, baTxid]) {
      const tx = (chain.node.mempool as unknown as { getTX(h: string): BTx | null }).getTX(
        Buffer.from(txid, 'hex').reverse().toString('hex'),
      );
      assert.ok(tx !== null, `commitment ${txid} in the mempool`);
      commitments.set(txid, tx);
    }
    await mine(1);
    const confirmedAt = chain.tip().height;
    // the non-closers sweep their to_remote right away: Bob from Alice's commitment, Alice from Bob's
    await until(
      () => sweeps.bob.some((s) => s.output === 'to_remote') && sweeps.alice.some((s) => s.output === 'to_remote'),
      'to_remote sweeps',
    );
    assert.equal(sweeps.alice.filter((s) => s.output === 'to_local').length + sweeps.bob.filter((s) => s.output === 'to_local').length, 0);

    // Bob restarts from his data directory while his to_local waits: the sweep is planned again from the store
    await bob.stop();
    await bob.start();
    listenSweeps('bob', bob);
    assert.equal(bob.manager.channel(ba.channelId)!.failure, 'force closed by us');

    // to_self_delay (144, set by the other side) confirmations before to_local may be spent: nothing one block earlier
    const delay = alice.manager.channel(ab.channelId)!.toSelfDelay;
    assert.equal(delay, 144, 'our acceptor asks 144 blocks');
    assert.equal(bob.manager.channel(ba.channelId)!.toSelfDelay, delay);
    await mine(delay - 2);
    assert.equal(chain.tip().height - confirmedAt + 1, delay - 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sweeps.alice.filter((s) => s.output === 'to_local').length, 0, 'no to_local sweep before the delay');
    await mine(1);
    await until(
      () => sweeps.alice.some((s) => s.output === 'to_local') && sweeps.bob.some((s) => s.output === 'to_local'),
      'to_local sweeps after the delay',
    );
    await mine(1);

    // amounts: each output of the commitment is the off-chain balance (the opener's less the fee and anchors);
    // each sweep takes a fee of its own; the wallets got exactly the swept values
    const expectedGain = { alice: 0n, bob: 0n };
    for (const [id, txid, opener, b] of [
      [ab.channelId, abTxid, 'alice', balances.ab],
      [ba.channelId, baTxid, 'bob', balances.ba],
    ] as const) {
      const tx = commitments.get(txid)!;
      const outSum = tx.outputs.reduce((x: bigint, o: { value: number }) => x + BigInt(o.value), 0n);
      const anchors = id === ba.channelId ? 660n : 0n;
      const commitFee = 1_000_000n * (id === ab.channelId ? 1n : 0n) + 800_000n * (id === ba.channelId ? 1n : 0n) - outSum;
      assert.ok(commitFee > 0n && commitFee < 20_000n, `commitment fee ${commitFee}`);
      for (const who of ['alice', 'bob'] as const) {
        const want = who === opener ? b[who] - commitFee - anchors : b[who];
        assert.ok(
          tx.outputs.some((o: { value: number }) => BigInt(o.value) === want),
          `${who}'s output of ${want} sat in ${txid}`,
        );
        const sw = sweeps[who].filter((s) => s.channelId === id);
        assert.equal(sw.length, 1, `${who} swept once from ${id}`);
        assert.equal(sw[0]!.output, who === opener ? 'to_local' : 'to_remote');
        const sweepFee = want - sw[0]!.valueSat;
        assert.ok(sweepFee > 0n && sweepFee < 2_000n, `sweep fee ${sweepFee}`);
        expectedGain[who] += sw[0]!.valueSat;
      }
    }
    await until(
      () =>
        alice.walletTotalSat() - walletsBefore.alice === expectedGain.alice &&
        bob.walletTotalSat() - walletsBefore.bob === expectedGain.bob,
      'wallets credited with the sweeps',
    );
    assert.equal(alice.wallet.balance().unconfirmedSat, 0n);
    assert.equal(bob.wallet.balance().unconfirmedSat, 0n);
  });

  it(
    'a breach: Bob broadcasts a commitment he had revoked; Alice takes his to_local with the revocation key and her to_remote',
    T,
    async () => {
      // both force-closed channels are failed on both sides: each answers the other's channel_reestablish with the
      // error again (BOLT 2), and neither takes a step on them
      const failedIds = alice.manager
        .listChannels()
        .filter((c) => c.state === 'failed')
        .map((c) => c.channelId);
      assert.equal(failedIds.length, 2);
      const heightsBefore = failedIds.map((id) => [alice, bob].map((n) => n.manager.channelState(id).localCommit.height));
      const errorsAt = { alice: new Set<string>(), bob: new Set<string>() };
      const onError = (who: 'alice' | 'bob') => (_peer: string, cid: string, level: string, text: string) => {
        if (level === 'error' && text.startsWith('channel failed:')) errorsAt[who].add(cid);
      };
      const listeners = { alice: onError('alice'), bob: onError('bob') };
      alice.manager.on('peer_error', listeners.alice);
      bob.manager.on('peer_error', listeners.bob);
      await alice.connect(bob); // Bob restarted in the test before
      await until(
        () => failedIds.every((id) => errorsAt.alice.has(id) && errorsAt.bob.has(id)),
        'the error retransmitted for each failed channel, both ways',
      );
      alice.manager.off('peer_error', listeners.alice);
      bob.manager.off('peer_error', listeners.bob);
      assert.deepEqual(
        failedIds.map((id) => [alice, bob].map((n) => n.manager.channelState(id).localCommit.height)),
        heightsBefore,
      );
      assert.ok(failedIds.every((id) => alice.manager.channel(id)!.state === 'failed' && bob.manager.channel(id)!.state === 'failed'));
      const ch = await alice.manager.openChannel(bob.id, 600_000n, { channelType: 'static_remotekey', pushMsat: 400_000_000n });
      await mine(1);
      await until(
        () => alice.manager.channel(ch.channelId)?.state === 'normal' && bob.manager.channel(ch.channelId)?.state === 'normal',
        'channel ready',
      );
      // Bob keeps a copy of his state while his balance is 400 000 sat...
      const old = structuredClone(bob.manager.channelState(ch.channelId));
      assert.equal(old.localCommit.ourBalanceMsat, 400_000_000n);
      // ...then pays Alice 300 000 sat, which revokes that commitment
      const preimage = randomBytes(32);
      const incoming = new Promise<bigint>((resolve) => alice.manager.once('htlc_incoming', (_c, h) => resolve(h.id)));
      await bob.manager.addHtlc(ch.channelId, {
        amountMsat: 300_000_000n,
        paymentHash: sha256(preimage),
        cltvExpiry: chain.tip().height + 100,
      });
      const hid = await incoming;
      const settled = new Promise<void>((resolve) => bob.manager.once('htlc_fulfilled', () => resolve()));
      await alice.manager.fulfillHtlc(ch.channelId, hid, preimage);
      await settled;
      await until(
        () =>
          bob.manager.channelState(ch.channelId).remoteCommit.htlcs.length === 0 && alice.manager.channel(ch.channelId)!.pendingHtlcs === 0,
        'payment settled',
      );
      assert.ok(alice.manager.channelState(ch.channelId).remoteCommit.height > old.localCommit.height, 'the old commitment is revoked');
      const aliceBefore = alice.walletTotalSat();
      const from = sweeps.alice.length;
      // the cheat: Bob's old commitment, signed by both sides back then, goes to the chain
      const revoked = signedLocalCommitment(old, deriveChannelSecrets(bob.channelSeed, old.keyIndex));
      await chain.broadcast(Buffer.from(revoked));
      await mine(1);
      await until(
        () =>
          sweeps.alice.slice(from).some((s) => s.output === 'justice') && sweeps.alice.slice(from).some((s) => s.output === 'to_remote'),
        'justice and to_remote sweeps',
      );
      assert.match(alice.manager.channel(ch.channelId)!.failure ?? '', /^breach: the peer broadcast its revoked commitment \d+$/);
      const mineNow = sweeps.alice.slice(from).filter((s) => s.channelId === ch.channelId);
      assert.equal(mineNow.length, 2);
      await mine(1);
      const gained = mineNow.reduce((a, s) => a + s.valueSat, 0n);
      await until(
        () => alice.walletTotalSat() - aliceBefore === gained && alice.wallet.balance().unconfirmedSat === 0n,
        "alice's sweeps confirmed",
      );
      // everything but the fees: the old commitment paid Bob 400 000 and Alice 200 000 less the commitment fee (her, as opener)
      const tx = bcoin.TX.fromRaw(Buffer.from(revoked));
      const outSum = tx.outputs.reduce((x: bigint, o: { value: number }) => x + BigInt(o.value), 0n);
      const commitFee = 600_000n - outSum;
      const sweepFees = outSum - gained;
      assert.ok(commitFee > 0n && commitFee < 10_000n, `commitment fee ${commitFee}`);
      assert.ok(sweepFees > 0n && sweepFees < 4_000n, `sweep fees ${sweepFees}`);
      assert.ok(gained > 600_000n - 14_000n, `alice recovered ${gained} sat of the 600 000 sat channel`);
    },
  );
});
