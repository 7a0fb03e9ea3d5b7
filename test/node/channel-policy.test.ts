/**
 * Changing our forwarding policy (updateChannelPolicy, lnd's updatechanpolicy) on the four-node diamond: B raises its
 * fee on B–D (a private channel): D gets B's new channel_update at once and puts the new fee in its invoices' hints; a
 * payment priced from an older hint is refused by B with fee_insufficient and B's new update, which the payer applies
 * and pays again at the new fee; B's restart keeps the policy; a policy the channel cannot take changes nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelManagerError } from '../../node/channels/manager.js';
import { decodeInvoice } from '../../wire/bolt11.js';
import { teardown, until } from './channels-fixture.js';
import { buildDiamond, hintsReady, localMsat, reconnectAll, scidOf, type Diamond } from './switch-fixture.js';

const SAT = 1000n;

describe('forwarding policy changes', () => {
  let g: Diamond;
  before(async () => {
    g = await buildDiamond({ disk: ['b'], spec: { payments: {} }, registry: { d: {} } });
    await hintsReady(g);
  });
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  /** The fee B's hint in a fresh invoice of D says for B–D. */
  const hintedBaseFee = async (): Promise<number | undefined> => {
    const inv = await g.d.registry!.addInvoice({ amountMsat: 10_000n * SAT });
    const scid = scidOf(g.b, g.bd.channelId);
    return decodeInvoice(g.d.payReq(inv))
      .routeHints.flat()
      .find((h) => h.shortChannelId === scid)?.feeBaseMsat;
  };

  it('a raised fee reaches the peer and its new hints; a payment priced from an older hint is retried at the new fee', async () => {
    // an invoice with B's old policy in its hint, and C's path closed to this amount, so A goes through B
    const oldInvoice = await g.d.registry!.addInvoice({ amountMsat: 300_000n * SAT });
    const oldPayReq = g.d.payReq(oldInvoice);
    g.c.manager.setForwardingPolicy(g.cd.channelId, { htlcMaximumMsat: 1_000n * SAT });
    const oldBase = g.b.manager.forwardingPolicyOf(g.bd.channelId).baseFeeMsat;
    const changed = await g.b.manager.updateChannelPolicy(g.bd.channelId, { baseFeeMsat: 50_000n, feeRatePpm: 200n, cltvExpiryDelta: 60 });
    assert.equal(changed.length, 1);
    assert.equal(changed[0]!.policy?.baseFeeMsat, 50_000n);
    assert.deepEqual(
      { ...g.b.manager.forwardingPolicyOf(g.bd.channelId), htlcMaximumMsat: undefined },
      { baseFeeMsat: 50_000n, feeRatePpm: 200n, cltvExpiryDelta: 60, htlcMinimumMsat: oldPolicyMin(), htlcMaximumMsat: undefined },
    );
    await until(async () => (await hintedBaseFee()) === 50_000, "D's new invoices carry B's new fee");
    assert.notEqual(oldBase, 50_000n);

    const bBefore = localMsat(g.b, g.ab.channelId) - localMsat(g.b, g.bd.channelId);
    const rec = await g.a.payments!.payInvoice(oldPayReq);
    assert.equal(rec.status, 'succeeded', rec.failureDetail);
    const failed = rec.attempts.filter((a) => a.status === 'failed');
    assert.ok(
      failed.some((a) => a.failure?.code === 'fee_insufficient'),
      `the first attempt at the old fee is refused: ${JSON.stringify(failed.map((a) => a.failure))}`,
    );
    const settled = rec.attempts.filter((a) => a.status === 'settled');
    assert.equal(settled.length, 1);
    const fee = settled[0]!.route.totalAmountMsat - 300_000n * SAT;
    assert.equal(fee, 50_000n + (300_000n * SAT * 200n) / 1_000_000n, 'paid at the new fee');
    await until(
      () => localMsat(g.b, g.ab.channelId) - localMsat(g.b, g.bd.channelId) === bBefore + 2n * (300_000n * SAT) + fee,
      'B earned it',
    );
    g.c.manager.setForwardingPolicy(g.cd.channelId, { htlcMaximumMsat: undefined });
  });

  const oldPolicyMin = (): bigint => g.b.manager.forwardingPolicyOf(g.ab.channelId).htlcMinimumMsat;

  it('the policy survives a restart', async () => {
    await g.b.stop();
    await g.b.start();
    await reconnectAll(g);
    const p = g.b.manager.forwardingPolicyOf(g.bd.channelId);
    assert.equal(p.baseFeeMsat, 50_000n);
    assert.equal(p.feeRatePpm, 200n);
    assert.equal(p.cltvExpiryDelta, 60);
    // the other channel kept the defaults
    assert.notEqual(g.b.manager.forwardingPolicyOf(g.ab.channelId).baseFeeMsat, 50_000n);
  });

  it('every open channel at once; a policy one channel cannot take changes none of them', async () => {
    const all = await g.b.manager.updateChannelPolicy(undefined, { feeRatePpm: 7n });
    assert.deepEqual(new Set(all.map((c) => c.channelId)), new Set([g.ab.channelId, g.bd.channelId]));
    for (const id of [g.ab.channelId, g.bd.channelId]) assert.equal(g.b.manager.forwardingPolicyOf(id).feeRatePpm, 7n);
    const refuse = async (change: Parameters<typeof g.b.manager.updateChannelPolicy>[1], why: RegExp): Promise<void> => {
      await assert.rejects(
        g.b.manager.updateChannelPolicy(undefined, change),
        (e: unknown) => e instanceof ChannelManagerError && e.code === 'ERR_INVALID_POLICY' && why.test(e.message),
      );
      for (const id of [g.ab.channelId, g.bd.channelId]) assert.equal(g.b.manager.forwardingPolicyOf(id).feeRatePpm, 7n, 'unchanged');
    };
    await refuse({ feeRatePpm: 9n, cltvExpiryDelta: 17 }, /cltv_expiry_delta 17/);
    await refuse({ feeRatePpm: 9n, htlcMaximumMsat: 2_000_001n * SAT }, /above the capacity/);
    await refuse({ feeRatePpm: 9n, htlcMinimumMsat: 0n }, /below the peer's minimum/);
    await refuse({ feeRatePpm: 1n << 32n }, /fee rate/);
    await assert.rejects(
      g.b.manager.updateChannelPolicy('00'.repeat(32), { feeRatePpm: 1n }),
      (e: unknown) => e instanceof ChannelManagerError && e.code === 'ERR_UNKNOWN_CHANNEL',
    );
  });
});
