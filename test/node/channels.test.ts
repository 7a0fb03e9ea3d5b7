/**
 * The channel manager in a running node: two ampnode Nodes in one process,
 * over real loopback TCP, sharing one embedded regtest chain, each with a
 * wallet funded by mining. One channel each way (static_remotekey opened by
 * Alice, anchors opened by Bob), HTLCs added / fulfilled / failed through the
 * manager, a disconnect and a reconnect, a restart of Bob from his data
 * directory, a cooperative close started by each side, and the on-chain
 * wallet balances checked against the off-chain balances and fees.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bcoin } from '../../node/chain/bcoin.js';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import type { ChannelInfo } from '../../node/channels/manager.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { ELSEWHERE } from './chain-fixture.js';
import { TestNode, newTestChain, until, fundNodes } from './channels-fixture.js';

const T = { timeout: 60_000 };

describe('channel manager: two nodes over TCP on one regtest chain', () => {
  let chain: BcoinChainBackend;
  let alice: TestNode;
  let bob: TestNode;
  /** Alice → Bob, static_remotekey, Alice pays. */
  let ab: ChannelInfo;
  /** Bob → Alice, anchors, with a push to Alice. */
  let ba: ChannelInfo;
  /** Alice → Bob, opened while Bob restarts. */
  let extra: ChannelInfo;

  const mine = async (n: number): Promise<void> => {
    await chain.generateToAddress(n, ELSEWHERE);
    await chain.synced();
  };

  before(async () => {
    chain = await newTestChain();
    alice = new TestNode({ name: 'alice', policy: { minimumDepth: 3 } }, chain);
    bob = new TestNode({ name: 'bob', disk: true, policy: { minimumDepth: 2, maxPendingChannels: 1 } }, chain);
    await alice.start();
    await bob.start();
    await fundNodes(chain, [alice, bob]);
    assert.ok(alice.wallet.balance().confirmedSat > 0n && bob.wallet.balance().confirmedSat > 0n);
    await alice.connect(bob);
  });

  after(async () => {
    await alice?.stop().catch(() => undefined);
    await bob?.stop().catch(() => undefined);
    await chain?.close();
    bob?.cleanup();
  });

  it('opens a channel each way (static_remotekey and anchors); both sides see it ready at minimum_depth', T, async () => {
    const aliceBefore = alice.walletTotalSat();
    const bobBefore = bob.walletTotalSat();
    const pending = Promise.all([
      alice.manager.openChannel(bob.id, 1_000_000n, { channelType: 'static_remotekey' }),
      bob.manager.openChannel(alice.id, 600_000n, { channelType: 'anchors_zero_fee_htlc', pushMsat: 100_000_000n }),
    ]);
    [ab, ba] = await pending;
    assert.equal(ab.state, 'awaiting_ready');
    assert.equal(ab.opener, 'local');
    assert.equal(ba.channelType, 'anchors_zero_fee_htlc');
    // the acceptor knows the channel under the same final id
    await until(
      () =>
        bob.manager.channel(ab.channelId)?.state === 'awaiting_ready' && alice.manager.channel(ba.channelId)?.state === 'awaiting_ready',
      'acceptors pending',
    );
    // funding left the openers' wallets (amount + fee), nothing from the acceptors'
    await chain.synced();
    assert.ok(alice.walletTotalSat() < aliceBefore - 1_000_000n);
    assert.equal(bob.walletTotalSat() < bobBefore - 600_000n, true);

    // the ACCEPTOR sets minimum_depth: A→B is accepted by Bob (2), B→A by Alice (3)
    await mine(1);
    assert.equal(alice.manager.channel(ab.channelId)!.state, 'awaiting_ready');
    await mine(1);
    await until(
      () => alice.manager.channel(ab.channelId)!.state === 'normal' && bob.manager.channel(ab.channelId)!.state === 'normal',
      'A→B ready at depth 2',
    );
    assert.equal(alice.manager.channel(ba.channelId)!.state, 'awaiting_ready', 'B→A needs depth 3');
    await mine(1);
    await until(
      () => alice.manager.channel(ba.channelId)!.state === 'normal' && bob.manager.channel(ba.channelId)!.state === 'normal',
      'B→A ready at depth 3',
    );

    for (const n of [alice, bob]) {
      const list = n.manager.listChannels();
      assert.equal(list.length, 2);
      for (const c of list) {
        assert.equal(c.active, true);
        assert.match(c.shortChannelId ?? '', /^\d+x\d+x\d+$/);
      }
    }
    const abA = alice.manager.channel(ab.channelId)!;
    const abB = bob.manager.channel(ab.channelId)!;
    assert.equal(abA.capacitySat, 1_000_000n);
    assert.equal(abA.remoteBalanceMsat, 0n);
    assert.equal(abB.localBalanceMsat, 0n);
    assert.equal(abB.remoteBalanceMsat, abA.localBalanceMsat);
    assert.equal(abA.shortChannelId, abB.shortChannelId);
    const baA = alice.manager.channel(ba.channelId)!;
    assert.equal(baA.localBalanceMsat, 100_000_000n, 'push_msat arrived');
    assert.equal(baA.channelType, 'anchors_zero_fee_htlc');
    assert.equal(alice.manager.channel(ab.channelId)!.channelType, 'static_remotekey');
  });

  it('a refused opening rejects openChannel and unlocks the funding inputs; a pending channel survives a restart', T, async () => {
    // refused locally: below lnd's 20 000 sat floor
    await assert.rejects(alice.manager.openChannel(bob.id, 10_000n, { channelType: 'static_remotekey' }), /fundingSat/);
    // refused by Bob: everything pushed, nothing left for Alice to pay the commitment fee. Alice's call fails
    // with Bob's error, and nothing stays locked or listed on either side.
    await assert.rejects(
      alice.manager.openChannel(bob.id, 100_000n, { channelType: 'static_remotekey', pushMsat: 100_000_000n }),
      /ERR_OPEN_FAILED.*commitment fee/,
    );
    assert.equal(alice.wallet.balance().lockedSat, 0n);
    assert.equal(alice.manager.listChannels().length, 2);
    assert.equal(bob.manager.listChannels().length, 2);
    // a wallet that cannot fund: the opening fails at once and Bob forgets it
    const carol = new TestNode({ name: 'carol' }, chain);
    await carol.start();
    try {
      await carol.connect(bob);
      await assert.rejects(carol.manager.openChannel(bob.id, 100_000n), /ERR_OPEN_FAILED.*(fund|Insufficient|coins)/i);
      await until(() => bob.manager.listChannels().length === 2, 'bob forgot the unfunded opening');
      assert.deepEqual(carol.manager.listChannels(), []);
    } finally {
      await carol.stop();
    }
    // a peer that is not connected
    await assert.rejects(alice.manager.openChannel('02' + '11'.repeat(32), 50_000n), /ERR_NOT_CONNECTED/);

    // Bob restarts while a new channel waits for confirmations; it becomes ready after the restart
    const pending = await alice.manager.openChannel(bob.id, 200_000n, { channelType: 'anchors_zero_fee_htlc' });
    await until(() => bob.manager.channel(pending.channelId)?.state === 'awaiting_ready', 'bob holds the pending channel');
    // Bob takes one pending channel from a peer at a time
    await assert.rejects(alice.manager.openChannel(bob.id, 100_000n), /too many pending channels/);
    await bob.stop();
    await until(() => alice.node.listPeers().length === 0, 'alice sees bob gone');
    await bob.start();
    assert.equal(bob.manager.channel(pending.channelId)?.state, 'awaiting_ready');
    await alice.connect(bob);
    await mine(2);
    await until(
      () => alice.manager.channel(pending.channelId)?.state === 'normal' && bob.manager.channel(pending.channelId)?.state === 'normal',
      'channel ready after the restart',
    );
    await until(() => [alice, bob].every((n) => n.manager.listChannels().every((c) => c.active)), 'every channel active');
    extra = pending;
  });

  /** Adds an HTLC from `from` on `channelId`, waits until the other side holds it irrevocably; returns id and preimage. */
  async function offer(from: TestNode, to: TestNode, channelId: string, amountMsat: bigint): Promise<{ id: bigint; preimage: Uint8Array }> {
    const preimage = randomBytes(32);
    const paymentHash = sha256(preimage);
    const incoming = new Promise<bigint>((resolve) => {
      const on = (cid: string, h: { id: bigint; paymentHash: Uint8Array }): void => {
        if (cid === channelId && Buffer.from(h.paymentHash).equals(Buffer.from(paymentHash))) {
          to.manager.off('htlc_incoming', on);
          resolve(h.id);
        }
      };
      to.manager.on('htlc_incoming', on);
    });
    const id = await from.manager.addHtlc(channelId, { amountMsat, paymentHash, cltvExpiry: chain.tip().height + 100 });
    assert.equal(await incoming, id);
    return { id, preimage };
  }

  function eventOnce<T>(n: TestNode, name: 'htlc_fulfilled' | 'htlc_failed', channelId: string, id: bigint): Promise<T> {
    return new Promise<T>((resolve) => {
      const on = (cid: string, hid: bigint, x: unknown): void => {
        if (cid === channelId && hid === id) {
          n.manager.off(name, on);
          resolve(x as T);
        }
      };
      n.manager.on(name, on);
    });
  }

  async function settled(): Promise<void> {
    await until(() => {
      for (const n of [alice, bob])
        for (const c of n.manager.listChannels()) {
          const s = n.manager.channelState(c.channelId);
          if (s.remoteNextCommit !== undefined || s.localCommit.htlcs.length !== s.remoteCommit.htlcs.length) return false;
        }
      return true;
    }, 'commitment dance settled');
  }

  function checkMirrored(channelId: string): void {
    const a = alice.manager.channelState(channelId);
    const b = bob.manager.channelState(channelId);
    assert.equal(a.localCommit.ourBalanceMsat, b.localCommit.theirBalanceMsat);
    assert.equal(a.localCommit.theirBalanceMsat, b.localCommit.ourBalanceMsat);
    assert.equal(a.localCommit.height, b.remoteCommit.height);
    assert.equal(b.localCommit.height, a.remoteCommit.height);
  }

  it('HTLCs across the link: added, fulfilled and failed in both directions', T, async () => {
    const before = alice.manager.channel(ab.channelId)!.localBalanceMsat;
    const h1 = await offer(alice, bob, ab.channelId, 50_000_000n);
    const fulfilled = eventOnce<Uint8Array>(alice, 'htlc_fulfilled', ab.channelId, h1.id);
    await bob.manager.fulfillHtlc(ab.channelId, h1.id, h1.preimage);
    assert.deepEqual(await fulfilled, h1.preimage);

    const h2 = await offer(alice, bob, ab.channelId, 7_000_000n);
    const failed = eventOnce(alice, 'htlc_failed', ab.channelId, h2.id);
    await bob.manager.failHtlc(ab.channelId, h2.id, new Uint8Array([9, 9]));
    await failed;

    const h3 = await offer(bob, alice, ba.channelId, 30_000_000n);
    const f3 = eventOnce(bob, 'htlc_fulfilled', ba.channelId, h3.id);
    await alice.manager.fulfillHtlc(ba.channelId, h3.id, h3.preimage);
    await f3;

    // a wrong preimage is refused locally, nothing is sent
    const h4 = await offer(alice, bob, ab.channelId, 1_000_000n);
    await assert.rejects(bob.manager.fulfillHtlc(ab.channelId, h4.id, randomBytes(32)), /preimage/);
    const f4 = eventOnce(alice, 'htlc_failed', ab.channelId, h4.id);
    await bob.manager.failHtlc(ab.channelId, h4.id);
    await f4;

    await settled();
    checkMirrored(ab.channelId);
    checkMirrored(ba.channelId);
    assert.equal(alice.manager.channel(ab.channelId)!.localBalanceMsat, before - 50_000_000n);
    assert.equal(bob.manager.channel(ab.channelId)!.localBalanceMsat, 50_000_000n);
    assert.equal(alice.manager.channel(ba.channelId)!.localBalanceMsat, 130_000_000n);
    assert.equal(alice.manager.channel(ab.channelId)!.pendingHtlcs, 0);
  });

  it('update_fee: the opener changes the commitment feerate on request and from the chain estimate; the acceptor may not', T, async () => {
    const start = alice.manager.channel(ab.channelId)!.feeratePerKw;
    const target = start * 2;
    assert.equal(await alice.manager.updateChannelFee(ab.channelId, target), target);
    await until(
      () => bob.manager.channel(ab.channelId)!.feeratePerKw === target && alice.manager.channel(ab.channelId)!.feeratePerKw === target,
      'both commitments at the new feerate',
    );
    await assert.rejects(
      bob.manager.updateChannelFee(ab.channelId, target * 2),
      (e: Error & { code?: string }) => e.code === 'ERR_CHANNEL_REFUSED',
    );
    // from the estimate (the chain both nodes share is told what to estimate): under 10 % no change, then a fall is followed
    const estimate = chain.estimateFeeratePerKw.bind(chain);
    try {
      chain.estimateFeeratePerKw = async () => target + Math.floor(target / 20);
      assert.equal(await alice.manager.updateChannelFee(ab.channelId), null);
      chain.estimateFeeratePerKw = async () => start;
      assert.equal(await alice.manager.updateChannelFee(ab.channelId), start);
    } finally {
      chain.estimateFeeratePerKw = estimate;
    }
    await until(
      () => bob.manager.channel(ab.channelId)!.feeratePerKw === start && alice.manager.channel(ab.channelId)!.feeratePerKw === start,
      'back at the first feerate',
    );
    // HTLCs still flow at the changed feerates
    const h = await offer(alice, bob, ab.channelId, 2_000_000n);
    const failed = eventOnce(alice, 'htlc_failed', ab.channelId, h.id);
    await bob.manager.failHtlc(ab.channelId, h.id);
    await failed;
    await settled();
    checkMirrored(ab.channelId);
  });

  it('a disconnect and a reconnect end in a clean channel_reestablish (HTLC in flight resolved after)', T, async () => {
    const h = await offer(alice, bob, ab.channelId, 5_000_000n);
    const heights = [alice, bob].map((n) => n.manager.channelState(ab.channelId).localCommit.height);
    assert.ok(alice.node.disconnect(bob.id));
    await until(() => alice.node.listPeers().length === 0 && bob.node.listPeers().length === 0, 'both sides disconnected');
    await until(
      () => alice.manager.listChannels().every((c) => !c.active) && bob.manager.listChannels().every((c) => !c.active),
      'channels inactive',
    );
    await assert.rejects(
      alice.manager.addHtlc(ab.channelId, { amountMsat: 1000n, paymentHash: randomBytes(32), cltvExpiry: 1000 }),
      /ERR_NOT_READY/,
    );

    let reest = 0;
    const count = (): void => void reest++;
    alice.manager.on('channel_reestablished', count);
    bob.manager.on('channel_reestablished', count);
    await alice.connect(bob);
    const n = alice.manager.listChannels().length;
    await until(() => reest === 2 * n, `${2 * n} channel_reestablished events (${n} channels × 2 sides)`);
    alice.manager.off('channel_reestablished', count);
    bob.manager.off('channel_reestablished', count);
    for (const n of [alice, bob])
      for (const c of n.manager.listChannels()) assert.equal(c.active, true, `${n.spec.name} ${c.channelId} active`);
    assert.deepEqual(
      [alice, bob].map((n) => n.manager.channelState(ab.channelId).localCommit.height),
      heights,
      'no commitment was lost or invented',
    );
    assert.equal(alice.manager.channel(ab.channelId)!.state, 'normal');

    const done = eventOnce(alice, 'htlc_fulfilled', ab.channelId, h.id);
    await bob.manager.fulfillHtlc(ab.channelId, h.id, h.preimage);
    await done;
    await settled();
    checkMirrored(ab.channelId);

    // Cut in the middle of the dance: update_add_htlc and commitment_signed are out, Bob's revoke_and_ack and
    // commitment_signed race the close. channel_reestablish retransmits whatever the other side missed, and
    // the HTLC ends irrevocably committed at Bob exactly once.
    const preimage = randomBytes(32);
    const paymentHash = sha256(preimage);
    const seen: bigint[] = [];
    const onIncoming = (cid: string, x: { id: bigint; paymentHash: Uint8Array }): void => {
      if (cid === ab.channelId && Buffer.from(x.paymentHash).equals(Buffer.from(paymentHash))) seen.push(x.id);
    };
    bob.manager.on('htlc_incoming', onIncoming);
    const id = await alice.manager.addHtlc(ab.channelId, { amountMsat: 3_000_000n, paymentHash, cltvExpiry: chain.tip().height + 100 });
    alice.node.disconnect(bob.id);
    await until(() => alice.node.listPeers().length === 0 && bob.node.listPeers().length === 0, 'both sides disconnected mid-dance');
    await alice.connect(bob);
    await until(() => seen.length > 0, 'the HTLC committed at Bob after the reconnect');
    await settled();
    bob.manager.off('htlc_incoming', onIncoming);
    assert.deepEqual(seen, [id]);
    const paid = eventOnce(alice, 'htlc_fulfilled', ab.channelId, id);
    await bob.manager.fulfillHtlc(ab.channelId, id, preimage);
    await paid;
    await settled();
    checkMirrored(ab.channelId);
  });

  it('a restart of one node from its data directory resumes both channels', T, async () => {
    const states = bob.manager
      .listChannels()
      .map((c) => ({ id: c.channelId, local: c.localBalanceMsat, height: bob.manager.channelState(c.channelId).localCommit.height }));
    await bob.stop();
    await until(() => alice.node.listPeers().length === 0, 'alice sees bob gone');
    await bob.start(); // same data directory, node key and seeds; a new port
    const reloaded = bob.manager.listChannels();
    assert.deepEqual(
      reloaded.map((c) => ({
        id: c.channelId,
        local: c.localBalanceMsat,
        height: bob.manager.channelState(c.channelId).localCommit.height,
      })),
      states,
    );
    assert.ok(reloaded.every((c) => c.state === 'normal' && !c.active));
    await alice.connect(bob);
    await until(() => [alice, bob].every((n) => n.manager.listChannels().every((c) => c.active)), 'channels active again after restart');
    // the link works after the restart, both ways
    const h = await offer(bob, alice, ab.channelId, 2_000_000n);
    const f = eventOnce(bob, 'htlc_fulfilled', ab.channelId, h.id);
    await alice.manager.fulfillHtlc(ab.channelId, h.id, h.preimage);
    await f;
    await settled();
    checkMirrored(ab.channelId);
    checkMirrored(ba.channelId);
  });

  it(
    'cooperative close initiated by each side (opener and acceptor); wallets receive the off-chain balances minus the closing fee',
    T,
    async () => {
      const before = { alice: alice.walletTotalSat(), bob: bob.walletTotalSat() };
      const expected = { alice: 0n, bob: 0n };
      const spent: string[] = [];
      const onSpent = (_i: ChannelInfo, txid: string, coop: boolean): void => {
        if (coop) spent.push(txid);
      };
      alice.manager.on('funding_spent', onSpent);

      // Alice closes the channel she opened; Bob closes the one he opened, and one Alice opened.
      for (const [closer, id] of [
        [alice, ab.channelId],
        [bob, ba.channelId],
        [bob, extra.channelId],
      ] as const) {
        const balances = { alice: alice.manager.channel(id)!.localBalanceMsat, bob: bob.manager.channel(id)!.localBalanceMsat };
        const info = await closer.manager.closeChannel(id);
        assert.equal(info.state, 'closed');
        const other = closer === alice ? bob : alice;
        await until(() => other.manager.channel(id)!.state === 'closed', 'the other side agreed');
        assert.equal(other.manager.channel(id)!.closingTxid, info.closingTxid);
        const tx = bcoin.TX.fromRaw(Buffer.from(closer.manager.channelState(id).shutdown!.closingTx!));
        const outSum = tx.outputs.reduce((a, o) => a + BigInt(o.value), 0n);
        const feeSat = info.capacitySat - outSum;
        assert.ok(feeSat > 0n && feeSat < 5_000n, `closing fee ${feeSat}`);
        const opener = alice.manager.channel(id)!.opener === 'local' ? alice : bob;
        for (const who of ['alice', 'bob'] as const) {
          const mine = who === 'alice' ? alice : bob;
          let sat = balances[who] / 1000n;
          if (mine === opener) sat -= feeSat;
          expected[who] += sat;
          if (sat === 0n)
            assert.ok(
              tx.outputs.every((o) => !mine.wallet.isMine(new Uint8Array(o.script.toRaw()))),
              `${who} has nothing in ${id}: no output`,
            );
          else
            assert.ok(
              tx.outputs.some((o) => BigInt(o.value) === sat && mine.wallet.isMine(new Uint8Array(o.script.toRaw()))),
              `${who} output of ${sat} sat`,
            );
        }
      }
      // Bob restarts before the closing txs confirm: he watches the funding outputs again and re-broadcasts
      await bob.stop();
      await bob.start();
      const bobSpent: string[] = [];
      bob.manager.on('funding_spent', (_i, txid, coop) => {
        if (coop) bobSpent.push(txid);
      });
      await mine(1);
      await until(() => spent.length === 3 && bobSpent.length === 3, 'the three funding outputs spent cooperatively, seen by both');
      assert.deepEqual([...bobSpent].sort(), [...spent].sort());
      alice.manager.off('funding_spent', onSpent);
      assert.equal(alice.walletTotalSat() - before.alice, expected.alice);
      assert.equal(bob.walletTotalSat() - before.bob, expected.bob);
      assert.equal(alice.wallet.balance().unconfirmedSat, 0n);
      for (const n of [alice, bob]) for (const c of n.manager.listChannels()) assert.equal(c.state, 'closed');
    },
  );
});
