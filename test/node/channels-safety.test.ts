/**
 * What must never happen to a channel's funds, at the node level over TCP on
 * the embedded regtest chain:
 *   - a force close racing the peer's commitment dance broadcasts a
 *     commitment we have revoked (the peer would take everything);
 *   - a node restored from an old copy of its data directory broadcasts its
 *     stale commitment after the peer proved the loss (data_loss);
 *   - a force-close commitment the mempool forgot over a restart is never
 *     broadcast again;
 *   - local updates go on on a failed channel (adds, fee, close, fail), while
 *     a fulfill is still recorded and claims the HTLC on chain;
 *   - a second closeChannel leaves the first waiting forever.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import type { ChannelInfo, SweptOutput } from '../../node/channels/manager.js';
import type { KvStore } from '../../db/store.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { TestNode, fundNodes, mineElsewhere, newTestChain, offerHtlc, teardown, until } from './channels-fixture.js';

const T = { timeout: 90_000 };

describe('channel manager: funds safety', () => {
  let chain: BcoinChainBackend;
  let alice: TestNode;
  let bob: TestNode;
  const sweeps: { who: 'alice' | 'bob'; channelId: string; output: SweptOutput; valueSat: bigint }[] = [];
  const backups: string[] = [];

  const mine = (n: number): Promise<void> => mineElsewhere(chain, n);
  const mempool = () =>
    chain.node.mempool as unknown as { has(h: string): boolean; getEntry(h: string): unknown; removeEntry(e: unknown): void };
  const internalHex = (displayTxid: string): string => Buffer.from(displayTxid, 'hex').reverse().toString('hex');

  const listen = (who: 'alice' | 'bob', n: TestNode): void => {
    n.manager.on('sweep_broadcast', (info, _txid, output, valueSat) => sweeps.push({ who, channelId: info.channelId, output, valueSat }));
  };

  /** A restart builds a new manager: its events are listened to again. */
  async function startAlice(): Promise<void> {
    await alice.start();
    listen('alice', alice);
  }

  async function open(from: TestNode, to: TestNode, pushMsat = 300_000_000n): Promise<ChannelInfo> {
    if (alice.node.peer(bob.id) === undefined) await alice.connect(bob);
    const ch = await from.manager.openChannel(to.id, 1_000_000n, { channelType: 'static_remotekey', pushMsat });
    await mine(1);
    await until(
      () => alice.manager.channel(ch.channelId)?.active === true && bob.manager.channel(ch.channelId)?.active === true,
      'channel active',
    );
    return ch;
  }

  async function pay(from: TestNode, to: TestNode, channelId: string, amountMsat: bigint): Promise<void> {
    const done = new Promise<void>((resolve) => from.manager.once('htlc_fulfilled', () => resolve()));
    const { id, preimage } = await offerHtlc(chain, from, to, channelId, amountMsat);
    await to.manager.fulfillHtlc(channelId, id, preimage);
    await done;
    await until(
      () => from.manager.channel(channelId)!.pendingHtlcs === 0 && to.manager.channel(channelId)!.pendingHtlcs === 0,
      'HTLC cleared',
    );
  }

  before(async () => {
    chain = await newTestChain();
    alice = new TestNode({ name: 'alice', disk: true, policy: { minimumDepth: 1, timeoutMs: 3_000 } }, chain);
    bob = new TestNode({ name: 'bob', policy: { minimumDepth: 1 } }, chain);
    await startAlice();
    await bob.start();
    listen('bob', bob);
    await fundNodes(chain, [alice, bob]);
    await alice.connect(bob);
  });

  after(async () => {
    await teardown(chain, [alice, bob]);
    for (const b of backups) rmSync(b, { recursive: true, force: true });
  });

  it('a force close racing the peer’s commitment_signed never broadcasts a commitment we revoked', T, async () => {
    const ch = await open(alice, bob);
    // a slow disk: the force close's record takes 200 ms, while Bob's update_add_htlc + commitment_signed arrive
    const root = (alice.manager as unknown as { root: KvStore }).root;
    const put = root.put.bind(root);
    root.put = async (k, v) => {
      await new Promise((r) => setTimeout(r, 200));
      return put(k, v);
    };
    try {
      const closing = alice.manager.forceCloseChannel(ch.channelId);
      await bob.manager
        .addHtlc(ch.channelId, { amountMsat: 5_000_000n, paymentHash: sha256(randomBytes(32)), cltvExpiry: chain.tip().height + 100 })
        .catch(() => undefined);
      const txid = await closing;
      assert.ok(mempool().has(internalHex(txid)), 'the commitment is in the mempool');
    } finally {
      root.put = put;
    }
    await mine(1);
    await until(() => sweeps.some((s) => s.who === 'bob' && s.channelId === ch.channelId), 'bob sweeps his side');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      sweeps.filter((s) => s.channelId === ch.channelId && s.who === 'bob').map((s) => s.output),
      ['to_remote'],
      'no justice: the commitment was not revoked',
    );
    assert.ok(!(bob.manager.channel(ch.channelId)!.failure ?? '').startsWith('breach'));
  });

  it('after a restart, a force-close commitment the mempool lost is broadcast again until it confirms', T, async () => {
    const ch = await open(alice, bob);
    const txid = await alice.manager.forceCloseChannel(ch.channelId);
    const hash = internalHex(txid);
    assert.ok(mempool().has(hash));
    await alice.stop();
    mempool().removeEntry(mempool().getEntry(hash)); // what a restart does to a mempool that is not persisted
    assert.equal(mempool().has(hash), false);
    await startAlice();
    await until(() => mempool().has(hash), 'the commitment broadcast again by the restarted node');
    await mine(1);
    await until(
      () => sweeps.some((s) => s.who === 'bob' && s.channelId === ch.channelId && s.output === 'to_remote'),
      'the commitment confirmed and bob swept',
    );
  });

  it(
    'a node restored from an old copy refuses to force-close once the peer proved the loss; the peer closes and both get their funds',
    T,
    async () => {
      if (alice.node.peer(bob.id) === undefined) await alice.connect(bob);
      const ch = await open(alice, bob);
      await alice.stop();
      const backup = mkdtempSync(join(tmpdir(), 'ampnode-backup-'));
      backups.push(backup);
      cpSync(join(alice.dir!, 'db'), join(backup, 'db'), { recursive: true });
      await startAlice();
      await alice.connect(bob);
      await until(() => alice.manager.channel(ch.channelId)?.active === true, 'active again');
      await pay(alice, bob, ch.channelId, 10_000_000n);
      await pay(alice, bob, ch.channelId, 20_000_000n);
      const bobBalanceSat = bob.manager.channel(ch.channelId)!.localBalanceMsat / 1000n;
      // back to the old copy
      await alice.stop();
      rmSync(join(alice.dir!, 'db'), { recursive: true });
      cpSync(join(backup, 'db'), join(alice.dir!, 'db'), { recursive: true });
      await startAlice();
      const staleBalance = alice.manager.channel(ch.channelId)!.localBalanceMsat;
      await alice.connect(bob);
      await until(() => alice.manager.channel(ch.channelId)!.state === 'failed', 'alice failed the channel');
      assert.match(alice.manager.channel(ch.channelId)!.failure!, /ERR_DATA_LOSS/);
      await assert.rejects(
        alice.manager.forceCloseChannel(ch.channelId),
        (e: Error & { code?: string }) => e.code === 'ERR_CHANNEL_REFUSED' && /revoked/.test(e.message),
      );
      // a restart does not forget it
      await alice.stop();
      await startAlice();
      await assert.rejects(
        alice.manager.forceCloseChannel(ch.channelId),
        (e: Error & { code?: string }) => e.code === 'ERR_CHANNEL_REFUSED',
      );
      await alice.connect(bob);
      // bob closes with his (current) commitment: alice's to_remote is hers at once, from the real balances
      await bob.manager.forceCloseChannel(ch.channelId);
      await mine(1);
      await until(
        () => sweeps.some((s) => s.who === 'alice' && s.channelId === ch.channelId && s.output === 'to_remote'),
        'alice sweeps her to_remote',
      );
      const got = sweeps.find((s) => s.who === 'alice' && s.channelId === ch.channelId)!.valueSat;
      const real = 1_000_000n - bobBalanceSat; // before the commitment fee, which alice pays as opener
      assert.ok(got < real && got > real - 10_000n, `alice recovered ${got} sat of ${real}`);
      assert.ok(got < staleBalance / 1000n);
    },
  );

  it('a failed channel refuses local updates but records a fulfill, whose preimage then claims the HTLC on chain', T, async () => {
    if (alice.node.peer(bob.id) === undefined) await alice.connect(bob);
    const ch = await open(bob, alice);
    const preimage = randomBytes(32);
    const incoming = new Promise<bigint>((resolve) => alice.manager.once('htlc_incoming', (_c, h) => resolve(h.id)));
    await bob.manager.addHtlc(ch.channelId, {
      amountMsat: 40_000_000n,
      paymentHash: sha256(preimage),
      cltvExpiry: chain.tip().height + 200,
    });
    const id = await incoming;
    await until(
      () =>
        [alice, bob].every(
          (n) => n.manager.channelState(ch.channelId).remoteNextCommit === undefined && n.manager.channel(ch.channelId)!.pendingHtlcs === 1,
        ),
      'HTLC committed',
    );
    await bob.manager.forceCloseChannel(ch.channelId);
    // bob's commitment confirms: alice's channel fails; no preimage yet, nothing claimed for the HTLC
    await mine(1);
    await until(() => alice.manager.channel(ch.channelId)!.state === 'failed', 'alice sees the channel failed');
    const refused = (e: Error & { code?: string }) => e.code === 'ERR_CHANNEL_REFUSED';
    await assert.rejects(
      alice.manager.addHtlc(ch.channelId, {
        amountMsat: 1_000_000n,
        paymentHash: sha256(randomBytes(32)),
        cltvExpiry: chain.tip().height + 50,
      }),
      refused,
    );
    await assert.rejects(alice.manager.closeChannel(ch.channelId), refused);
    await assert.rejects(alice.manager.updateChannelFee(ch.channelId, 5_000), refused);
    await assert.rejects(alice.manager.failHtlc(ch.channelId, id), refused);
    await until(
      () => sweeps.some((s) => s.who === 'alice' && s.channelId === ch.channelId && s.output === 'to_remote'),
      'alice handled his commitment',
    );
    await assert.rejects(
      alice.manager.forceCloseChannel(ch.channelId),
      (e: Error & { code?: string }) => refused(e) && /spent by a commitment/.test(e.message),
    );
    await until(
      () => sweeps.some((s) => s.who === 'alice' && s.channelId === ch.channelId && s.output === 'to_remote'),
      'alice sweeps to_remote',
    );
    assert.equal(sweeps.filter((s) => s.who === 'alice' && s.channelId === ch.channelId && s.output === 'htlc_success').length, 0);
    // the preimage arrives later: taken, and it claims the output
    await alice.manager.fulfillHtlc(ch.channelId, id, preimage);
    await until(
      () => sweeps.some((s) => s.who === 'alice' && s.channelId === ch.channelId && s.output === 'htlc_success'),
      'alice claims the HTLC with the preimage',
    );
    const v = sweeps.find((s) => s.who === 'alice' && s.channelId === ch.channelId && s.output === 'htlc_success')!.valueSat;
    assert.ok(v < 40_000n && v > 38_000n, `claimed ${v} sat`);
  });

  it('a second closeChannel is refused while the first goes on', T, async () => {
    if (alice.node.peer(bob.id) === undefined) await alice.connect(bob);
    const ch = await open(alice, bob);
    const first = alice.manager.closeChannel(ch.channelId);
    await assert.rejects(
      alice.manager.closeChannel(ch.channelId),
      (e: Error & { code?: string }) => e.code === 'ERR_CHANNEL_REFUSED' && /already in progress/.test(e.message),
    );
    const closed = await first;
    assert.equal(closed.state, 'closed');
    assert.ok(closed.closingTxid !== undefined);
  });
});
