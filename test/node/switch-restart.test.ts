/**
 * The switch across restarts, each killed at the awkward moment, on four
 * nodes (A, B, C, D) with stores on disk:
 *   - B restarted (cleanly) with a forward in flight: D's later settle still
 *     reaches A;
 *   - B killed between writing the circuit (`forwarding`) and offering the
 *     outgoing add, and after the channel took the add but before the
 *     keystone was written: after the restart the incoming HTLC is failed
 *     back (the add was never signed, the channel forgot it), D never sees it;
 *   - D killed after its channel persisted an incoming HTLC and before the
 *     switch recorded it: the channel's outbox hands it over again after the
 *     restart and it settles, once;
 *   - A restarted with an attempt in flight: its result is still delivered.
 * Each ends with every HTLC settled or failed, nothing twice, both ends of
 * every channel agreeing on the balances.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KvStore } from '../../db/store.js';
import { bytesToHex, equalBytes } from '../../wire/bytes.js';
import { teardown, until } from './channels-fixture.js';
import {
  balancesAgree,
  buildDiamond,
  CrashingStore,
  isSwitchRecordWrite,
  localMsat,
  reconnectAll,
  routeVia,
  settledEverywhere,
  type Diamond,
} from './switch-fixture.js';

const T = { timeout: 180_000 };

function snapshot(g: Diamond): Record<string, bigint> {
  return {
    aAB: localMsat(g.a, g.ab.channelId),
    bAB: localMsat(g.b, g.ab.channelId),
    bBD: localMsat(g.b, g.bd.channelId),
    dBD: localMsat(g.d, g.bd.channelId),
  };
}

describe('switch: restarts at the awkward moments', () => {
  let g: Diamond | undefined;
  afterEach(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  it('B restarted with a forward in flight: the settle from D still reaches A', T, async () => {
    g = await buildDiamond({ disk: ['b'] });
    const amount = 4_000_000n;
    const inv = g.handler.invoice(amount, { hold: true });
    const route = routeVia(g, 'b', amount);
    const before = snapshot(g);
    const paid = g.a.manager.sendToRoute(route, inv.paymentHash);
    await until(() => g!.handler.held.has(bytesToHex(inv.paymentHash)), 'D holds the HTLC');
    await g.b.stop();
    await g.b.start();
    await reconnectAll(g);
    g.handler.held.get(bytesToHex(inv.paymentHash))!({ action: 'settle', preimage: inv.preimage });
    const r = await paid;
    assert.ok(r.status === 'settled' && equalBytes(r.preimage, inv.preimage));
    await settledEverywhere(g);
    const fee = route.totalAmountMsat - amount;
    assert.equal(localMsat(g.a, g.ab.channelId), before['aAB']! - amount - fee);
    assert.equal(localMsat(g.b, g.ab.channelId), before['bAB']! + amount + fee);
    assert.equal(localMsat(g.b, g.bd.channelId), before['bBD']! - amount);
    assert.equal(localMsat(g.d, g.bd.channelId), before['dBD']! + amount);
    balancesAgree(g);
  });

  for (const [what, state, includeTrigger] of [
    ['between writing the circuit and offering the add', 'forwarding', true],
    ['after the channel took the add, before the keystone was written', 'forwarded', false],
  ] as const)
    it(`B killed ${what}: A's HTLC is failed back, D never sees it`, T, async () => {
      let crash: CrashingStore | undefined;
      g = await buildDiamond({ disk: ['b'] });
      // B starts again with its store wrapped
      const b = g.b;
      (b.spec as { wrapStore?: (s: KvStore) => KvStore }).wrapStore = (s) =>
        (crash = CrashingStore.wrap(s, (path, ops) => isSwitchRecordWrite(path, ops, state), includeTrigger));
      await b.stop();
      await b.start();
      await reconnectAll(g);
      const amount = 5_000_000n;
      const inv = g.handler.invoice(amount);
      const before = snapshot(g);
      crash!.arm();
      const paid = g.a.manager.sendToRoute(routeVia(g, 'b', amount), inv.paymentHash);
      await until(() => crash!.crashed, 'B wrote its circuit');
      await b.kill();
      await b.start(); // a fresh, unarmed wrapper
      await reconnectAll(g);
      const r = await paid;
      assert.equal(r.status, 'failed');
      assert.ok(
        r.status === 'failed' && r.failureSourceIndex === 1 && r.failure?.name === 'temporary_channel_failure',
        JSON.stringify(r.status === 'failed' ? r.reason : r),
      );
      await settledEverywhere(g);
      assert.equal(g.handler.seen.filter((h) => equalBytes(h.paymentHash, inv.paymentHash)).length, 0, 'D never saw it');
      assert.deepEqual(snapshot(g), before, 'nothing moved');
      balancesAgree(g);
    });

  it(
    'D killed after its channel persisted an incoming HTLC, before the switch recorded it: handled after the restart, once',
    T,
    async () => {
      let crash: CrashingStore | undefined;
      g = await buildDiamond({ disk: ['d'] });
      const d = g.d;
      (d.spec as { wrapStore?: (s: KvStore) => KvStore }).wrapStore = (s) =>
        (crash = CrashingStore.wrap(s, (path, ops) => isSwitchRecordWrite(path, ops, 'received'), false));
      await d.stop();
      await d.start();
      await reconnectAll(g);
      const amount = 6_000_000n;
      const inv = g.handler.invoice(amount);
      const route = routeVia(g, 'b', amount);
      const before = snapshot(g);
      crash!.arm();
      const paid = g.a.manager.sendToRoute(route, inv.paymentHash);
      await until(() => crash!.crashed, 'D about to record the HTLC');
      assert.equal(g.handler.seen.filter((h) => equalBytes(h.paymentHash, inv.paymentHash)).length, 0);
      await d.kill();
      await d.start();
      await reconnectAll(g);
      const r = await paid;
      assert.ok(r.status === 'settled' && equalBytes(r.preimage, inv.preimage));
      await settledEverywhere(g);
      assert.equal(g.handler.seen.filter((h) => equalBytes(h.paymentHash, inv.paymentHash)).length, 1, 'settled once');
      const fee = route.totalAmountMsat - amount;
      assert.equal(localMsat(g.a, g.ab.channelId), before['aAB']! - amount - fee);
      assert.equal(localMsat(g.d, g.bd.channelId), before['dBD']! + amount);
      balancesAgree(g);
    },
  );

  it('A restarted with an attempt in flight: its result is still delivered, and readable by id', T, async () => {
    g = await buildDiamond({ disk: ['a'] });
    const amount = 7_000_000n;
    const inv = g.handler.invoice(amount, { hold: true });
    const route = routeVia(g, 'c', amount);
    const { attemptId } = await g.a.manager.htlcSwitch!.startAttempt(route, inv.paymentHash);
    await until(() => g!.handler.held.has(bytesToHex(inv.paymentHash)), 'D holds the HTLC');
    await g.a.kill();
    await g.a.start();
    await reconnectAll(g);
    const waiting = g.a.manager.htlcSwitch!.waitForAttempt(attemptId);
    g.handler.held.get(bytesToHex(inv.paymentHash))!({ action: 'settle', preimage: inv.preimage });
    const r = await waiting;
    assert.ok(r.status === 'settled' && equalBytes(r.preimage, inv.preimage));
    const stored = await g.a.manager.htlcSwitch!.attemptResult(attemptId);
    assert.ok(stored?.status === 'settled');
    await settledEverywhere(g);
    balancesAgree(g);
  });
});
