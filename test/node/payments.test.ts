/**
 * Sending payments on four nodes in one process (A, B, C, D; channels A–B, A–C, B–D, C–D, each funded by its
 * first node), only through the payment service: BOLT 11 invoices (single path, MPP over both paths when one is not
 * enough), AMP invoices (reusable, account, subscription) detected from the invoice alone, spontaneous AMP and
 * keysend with a custom record, and the refusals (a settled invoice paid again, an expired invoice, no liquidity).
 * D runs the invoice registry with accept-amp and accept-keysend; D's invoices carry route hints over B and C.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SettleEvent } from '../../htlc/invoices/index.js';
import { PaymentError } from '../../htlc/router/payments.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { decodeInvoice, isAmpInvoice } from '../../wire/bolt11.js';
import { teardown, until } from './channels-fixture.js';
import { buildDiamond, hintsReady, type Diamond } from './switch-fixture.js';

const SAT = 1000n;

describe('payments on four nodes', () => {
  let g: Diamond;
  const settled: SettleEvent[] = [];
  before(async () => {
    g = await buildDiamond({ spec: { payments: {} }, registry: { d: { acceptAmp: true, acceptKeysend: true } } });
    await g.d.registry!.subscribeSettled(0n, (e) => settled.push(e));
    // D's route hints need B's and C's channel_updates for their channels to D
    await hintsReady(g);
  });
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  const routeOf = (rec: { attempts: { status: string; route: { hops: { pubkey: Uint8Array }[] } }[] }) =>
    rec.attempts.filter((x) => x.status === 'settled').map((x) => bytesToHex(x.route.hops[0]!.pubkey));

  it("A pays D's reusable AMP invoice three times, each in four shards or more over both paths: three set_ids settled", async () => {
    const inv = await g.d.registry!.addInvoice({ amp: true, memo: 'reusable' });
    const payReq = g.d.payReq(inv);
    assert.ok(isAmpInvoice(decodeInvoice(payReq)), 'the invoice says AMP');
    assert.equal(decodeInvoice(payReq).routeHints.length, 2);
    const setIds = new Set<string>();
    for (const amountSat of [160_000n, 200_000n, 240_000n]) {
      const rec = await g.a.payments!.payInvoice(payReq, { amountMsat: amountSat * SAT, maxShardMsat: 40_000n * SAT });
      assert.equal(
        rec.status,
        'succeeded',
        `${rec.failureDetail}: ${JSON.stringify(rec.attempts.map((x) => [x.status, String(x.amountMsat), x.failure, x.route.totalTimeLock, x.route.hops.map((h) => h.outgoingCltvValue)]))}`,
      );
      assert.equal(rec.kind, 'amp', 'AMP chosen from the invoice features alone');
      const shards = rec.attempts.filter((x) => x.status === 'settled');
      assert.ok(shards.length >= 4, `${shards.length} shards`);
      assert.deepEqual(new Set(routeOf(rec)), new Set([g.b.id, g.c.id]), 'split across both paths');
      assert.equal(
        shards.reduce((s, x) => s + x.amountMsat, 0n),
        amountSat * SAT,
      );
      setIds.add(bytesToHex(rec.setId!));
      const set = await g.d.registry!.lookupSet(rec.setId!);
      assert.equal(set?.amountPaidMsat, amountSat * SAT);
      assert.equal(set?.htlcs.length, shards.length);
    }
    assert.equal(setIds.size, 3);
    const withSets = await g.d.registry!.lookupByAddr(inv.paymentAddr, { withSets: true });
    assert.equal(withSets?.sets?.length, 3);
    assert.equal(withSets?.amountPaidMsat, 600_000n * SAT);
    const events = g.a.paymentEvents.filter((e) => e.type === 'payment_succeeded' && e.payment.kind === 'amp');
    assert.equal(events.length, 3, 'one payment_succeeded event per AMP payment');
  });

  it('an account invoice takes two deposits of different sizes; a subscription invoice underpaid is refused at A', async () => {
    const account = await g.d.registry!.addInvoice({ amp: true });
    const payReq = g.d.payReq(account);
    for (const amountSat of [30_000n, 75_000n]) {
      const rec = await g.a.payments!.payInvoice(payReq, { amountMsat: amountSat * SAT });
      assert.equal(
        rec.status,
        'succeeded',
        `${rec.failureDetail}: ${JSON.stringify(rec.attempts.map((x) => [x.status, String(x.amountMsat), x.failure, x.route.totalTimeLock, x.route.hops.map((h) => h.outgoingCltvValue)]))}`,
      );
    }
    assert.equal((await g.d.registry!.lookupByAddr(account.paymentAddr))?.amountPaidMsat, 105_000n * SAT);
    const subscription = await g.d.registry!.addInvoice({ amp: true, amountMsat: 50_000n * SAT });
    const sent = g.a.paymentEvents.length;
    await assert.rejects(
      g.a.payments!.payInvoice(g.d.payReq(subscription), { amountMsat: 40_000n * SAT }),
      (e) => e instanceof PaymentError && e.code === 'ERR_PAYMENT_ARGUMENT',
    );
    assert.equal(g.a.paymentEvents.length, sent, 'nothing was sent');
    const paid = await g.a.payments!.payInvoice(g.d.payReq(subscription));
    assert.equal(paid.status, 'succeeded', paid.failureDetail);
  });

  it("B sends spontaneous AMP and keysend to D, each with a custom record that D's settle event carries", async () => {
    for (const kind of ['amp', 'keysend'] as const) {
      const value = new TextEncoder().encode(`hello by ${kind}`);
      const before = settled.length;
      const rec = await g.b.payments!.sendSpontaneous({
        dest: hexToBytes(g.d.id),
        amountMsat: 25_000n * SAT,
        kind,
        customRecords: [{ type: 696969n, value }],
      });
      assert.equal(
        rec.status,
        'succeeded',
        `${rec.failureDetail}: ${JSON.stringify(rec.attempts.map((x) => [x.status, String(x.amountMsat), x.failure, x.route.totalTimeLock, x.route.hops.map((h) => h.outgoingCltvValue)]))}`,
      );
      await until(() => settled.length > before, 'D settled it');
      const e = settled.at(-1)!;
      assert.equal(e.amountMsat, 25_000n * SAT);
      assert.ok(
        e.customRecords.some((r) => r.type === 696969n && bytesToHex(r.value) === bytesToHex(value)),
        `records: ${JSON.stringify(e.customRecords.map((r) => String(r.type)))}`,
      );
      if (kind === 'keysend') assert.equal(rec.attempts.filter((x) => x.status === 'settled').length, 1, 'keysend is never split');
    }
  });

  it('A pays a BOLT 11 invoice of D larger than either path: MPP over both paths; paying it again is refused', async () => {
    const outbound = g.a.manager.routingChannels().map((c) => c.localBalanceMsat);
    const amountMsat = (outbound[0]! > outbound[1]! ? outbound[0]! : outbound[1]!) + 200_000n * SAT;
    const inv = await g.d.registry!.addInvoice({ amountMsat, memo: 'big' });
    const payReq = g.d.payReq(inv);
    const rec = await g.a.payments!.payInvoice(payReq);
    assert.equal(
      rec.status,
      'succeeded',
      `${rec.failureDetail}: ${JSON.stringify(rec.attempts.map((x) => [x.status, String(x.amountMsat), x.failure, x.route.totalTimeLock, x.route.hops.map((h) => h.outgoingCltvValue)]))}`,
    );
    assert.equal(rec.kind, 'bolt11');
    assert.equal(bytesToHex(rec.preimage!), bytesToHex(inv.preimage!));
    assert.deepEqual(new Set(routeOf(rec)), new Set([g.b.id, g.c.id]), 'both paths carried shards');
    assert.equal((await g.d.registry!.lookupByHash(inv.paymentHash))?.state, 'settled');
    await assert.rejects(g.a.payments!.payInvoice(payReq), (e) => e instanceof PaymentError && e.code === 'ERR_ALREADY_PAID');
  });

  it('too little liquidity at both intermediate hops for the whole amount: A learns from the failures and splits; the payment succeeds', async () => {
    // B and C each keep 200 000 sat towards D: 300 000 sat fit through neither alone, through both together
    for (const [hop, ch] of [
      [g.b, g.bd],
      [g.c, g.cd],
    ] as const) {
      const spendable = hop.manager.routingChannels().find((c) => c.channelId === ch.channelId)!.localBalanceMsat;
      const drain = spendable - 200_000n * SAT;
      const r = await hop.payments!.sendSpontaneous({ dest: hexToBytes(g.d.id), amountMsat: drain, kind: 'keysend' });
      assert.equal(r.status, 'succeeded', r.failureDetail);
    }
    const inv = await g.d.registry!.addInvoice({ amountMsat: 300_000n * SAT });
    const rec = await g.a.payments!.payInvoice(g.d.payReq(inv));
    assert.equal(
      rec.status,
      'succeeded',
      `${rec.failureDetail} ${JSON.stringify(rec.attempts.map((x) => [x.status, String(x.amountMsat), x.failure?.code]))}`,
    );
    const failed = rec.attempts.filter((x) => x.status === 'failed');
    assert.ok(failed.length >= 1, 'a first attempt for the whole amount failed at an intermediate hop');
    assert.ok(
      failed.every((x) => x.failure?.code === 'temporary_channel_failure' && x.failure.sourceIndex === 1),
      JSON.stringify(failed.map((x) => x.failure)),
    );
    const settledParts = rec.attempts.filter((x) => x.status === 'settled');
    assert.ok(settledParts.length >= 2 && settledParts.every((x) => x.amountMsat < 300_000n * SAT), 'the amount went in smaller parts');
    assert.deepEqual(new Set(routeOf(rec)), new Set([g.b.id, g.c.id]));
    assert.equal((await g.d.registry!.lookupByHash(inv.paymentHash))?.state, 'settled');
  });

  it('an expired invoice is refused before anything is sent; with no liquidity anywhere the payment fails with its reason', async () => {
    const short = await g.d.registry!.addInvoice({ amountMsat: 1_000n * SAT, expirySeconds: 1 });
    await new Promise((r) => setTimeout(r, 2_100));
    const attemptsBefore = (await g.a.payments!.list({ limit: 1000 })).length;
    await assert.rejects(g.a.payments!.payInvoice(g.d.payReq(short)), (e) => e instanceof PaymentError && e.code === 'ERR_INVOICE_EXPIRED');
    assert.equal((await g.a.payments!.list({ limit: 1000 })).length, attemptsBefore);
    const huge = await g.d.registry!.addInvoice({ amountMsat: 10_000_000n * SAT });
    const rec = await g.a.payments!.payInvoice(g.d.payReq(huge));
    assert.equal(rec.status, 'failed');
    assert.equal(rec.failureReason, 'insufficient_balance');
    assert.equal(rec.attempts.length, 0);
    const failed = g.a.paymentEvents.at(-1)!;
    assert.equal(failed.type, 'payment_failed');
    assert.equal((await g.a.payments!.lookup(rec.id))?.status, 'failed');
  });
});
