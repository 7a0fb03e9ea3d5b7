/**
 * The invoice registry across restarts of D (store on disk), A paying AMP
 * sets over both paths:
 *   - D restarted with a set half received: the rest arrives, the set
 *     settles once, with every HTLC;
 *   - D down while a set's hold timer runs out: after the restart its HTLCs
 *     fail with mpp_timeout at once;
 *   - D killed between writing a set's settlement and sending the fulfills:
 *     after the restart the same HTLCs settle with the recorded preimages,
 *     nothing settles twice;
 *   - a hold invoice held across a restart of D, then settled by the app.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BatchOp, KvStore } from '../../db/store.js';
import { AmpShards } from '../../onion/index.js';
import type { AttemptResult } from '../../htlc/switch/index.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { teardown, until } from './channels-fixture.js';
import {
  balancesAgree,
  buildDiamond,
  CrashingStore,
  reconnectAll,
  routeVia,
  sendAmpShard,
  settledEverywhere,
  type Diamond,
} from './switch-fixture.js';

const T = { timeout: 180_000 };

function settledAll(rs: AttemptResult[]): void {
  for (const r of rs) assert.equal(r.status, 'settled', r.status === 'failed' ? r.reason : '');
}

describe('invoice registry: restarts of D', () => {
  let g: Diamond | undefined;
  afterEach(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  it('D restarted with a set half received: the rest arrives, the set settles once', T, async () => {
    g = await buildDiamond({ disk: ['d'], registry: { d: {} } });
    const inv = await g.d.registry!.addInvoice({ amp: true });
    const shards = AmpShards.random();
    const total = 8_000_000n;
    const send = (path: 'b' | 'c', last: boolean) =>
      sendAmpShard(g!, { paymentAddr: inv.paymentAddr, totalMsat: total, shards, path, amountMsat: 2_000_000n, last });
    const first = [send('b', false), send('c', false)];
    await until(() => g!.d.registry!.pendingCount() === 2, 'two shards held at D');
    await g.d.stop();
    await g.d.start();
    await reconnectAll(g);
    await until(() => g!.d.registry!.pendingCount() === 2, 'held again after the restart');
    const rest = [send('b', false), send('c', true)];
    settledAll(await Promise.all([...first, ...rest]));
    const set = (await g.d.registry!.lookupSet(shards.setId))!;
    assert.equal(set.htlcs.length, 4);
    assert.equal(set.amountPaidMsat, total);
    assert.equal((await g.d.registry!.lookupByAddr(inv.paymentAddr))!.settledSets, 1);
    await settledEverywhere(g);
    balancesAgree(g);
  });

  it("D down while a set's hold timer runs out: its HTLCs fail with mpp_timeout after the restart", T, async () => {
    const holdMs = 2000;
    g = await buildDiamond({ disk: ['d'], registry: { d: { mppTimeoutMs: holdMs } } });
    const inv = await g.d.registry!.addInvoice({ amp: true });
    const shards = AmpShards.random();
    const sent = [
      sendAmpShard(g, { paymentAddr: inv.paymentAddr, totalMsat: 6_000_000n, shards, path: 'b', amountMsat: 2_000_000n, last: false }),
      sendAmpShard(g, { paymentAddr: inv.paymentAddr, totalMsat: 6_000_000n, shards, path: 'c', amountMsat: 2_000_000n, last: false }),
    ];
    await until(() => g!.d.registry!.pendingCount() === 2, 'held at D');
    await g.d.stop();
    await new Promise((r) => setTimeout(r, holdMs + 500));
    const restarted = Date.now();
    await g.d.start();
    await reconnectAll(g);
    const rs = await Promise.all(sent);
    for (const r of rs)
      assert.ok(
        r.status === 'failed' && r.failure?.name === 'mpp_timeout' && r.failureSourceIndex === 2,
        r.status === 'failed' ? r.reason : 'settled',
      );
    assert.ok(Date.now() - restarted < holdMs, 'failed at once, not after a new hold time');
    assert.equal(await g.d.registry!.lookupSet(shards.setId), undefined);
    await settledEverywhere(g);
    balancesAgree(g);
  });

  it('D killed between recording a settlement and sending the fulfills: settled after the restart, once', T, async () => {
    let crash: CrashingStore | undefined;
    g = await buildDiamond({ disk: ['d'], registry: { d: {} } });
    const isSetWrite = (path: string, ops: readonly BatchOp[]): boolean =>
      path === 'invoices/' && ops.some((op) => op.type === 'put' && new TextDecoder().decode(op.key).startsWith('s/'));
    (g.d.spec as { wrapStore?: (s: KvStore) => KvStore }).wrapStore = (s) => (crash = CrashingStore.wrap(s, isSetWrite, true));
    await g.d.stop();
    await g.d.start();
    await reconnectAll(g);
    const inv = await g.d.registry!.addInvoice({ amp: true });
    const shards = AmpShards.random();
    crash!.arm();
    const sent = (['b', 'c', 'b', 'c'] as const).map((path, i) =>
      sendAmpShard(g!, { paymentAddr: inv.paymentAddr, totalMsat: 8_000_000n, shards, path, amountMsat: 2_000_000n, last: i === 3 }),
    );
    await until(() => crash!.crashed, 'D wrote the settlement');
    await g.d.kill();
    await g.d.start();
    await reconnectAll(g);
    const rs = await Promise.all(sent);
    settledAll(rs);
    const set = (await g.d.registry!.lookupSet(shards.setId))!;
    assert.equal(set.htlcs.length, 4);
    for (const r of rs)
      assert.ok(
        r.status === 'settled' && set.htlcs.some((h) => Buffer.from(h.preimage).equals(Buffer.from(r.preimage))),
        'settled with the recorded preimage',
      );
    const head = (await g.d.registry!.lookupByAddr(inv.paymentAddr))!;
    assert.equal(head.settledSets, 1, 'settled once');
    assert.equal(head.amountPaidMsat, 8_000_000n);
    await settledEverywhere(g);
    balancesAgree(g);
  });

  it('a hold invoice held across a restart of D, then settled', T, async () => {
    g = await buildDiamond({ disk: ['d'], registry: { d: {} } });
    const preimage = randomBytes(32);
    const inv = await g.d.registry!.addInvoice({ amountMsat: 5_000_000n, paymentHash: sha256(preimage) });
    const paying = g.a.manager.sendToRoute(routeVia(g, 'b', 5_000_000n), inv.paymentHash, {
      mpp: { paymentAddr: inv.paymentAddr, totalMsat: 5_000_000n },
    });
    await until(async () => (await g!.d.registry!.lookupByHash(inv.paymentHash))?.state === 'accepted', 'accepted');
    await g.d.stop();
    await g.d.start();
    await reconnectAll(g);
    await until(async () => (await g!.d.registry!.lookupByHash(inv.paymentHash))?.state === 'accepted', 'accepted again after the restart');
    await g.d.registry!.settleHold(preimage);
    const r = await paying;
    assert.ok(r.status === 'settled' && Buffer.from(r.preimage).equals(Buffer.from(preimage)));
    assert.equal((await g.d.registry!.lookupByHash(inv.paymentHash))!.state, 'settled');
    await settledEverywhere(g);
    balancesAgree(g);
  });
});
