/**
 * Going to chain for a forwarded HTLC: D holds the HTLC B forwarded to it and
 * never answers. `outgoingBroadcastDelta` (10) blocks before the outgoing
 * expiry, not a block earlier, B force-closes B–D; the HTLC-timeout takes the
 * HTLC back once it is valid, and B fails A's HTLC back, long before A's own
 * HTLC expires. A–B stays open and A gets its money back. Then C's own
 * payment to D, held the same way: C goes to chain, takes it back, and the
 * attempt fails as C's own doing (source index 0), not D's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bytesToHex } from '../../wire/bytes.js';
import { mineElsewhere, teardown, until } from './channels-fixture.js';
import { buildDiamond, localMsat, routeVia, scidOf, type Diamond } from './switch-fixture.js';
import type { AttemptResult, Route } from '../../htlc/switch/index.js';

const T = { timeout: 240_000 };

describe('switch: going to chain for a forwarded HTLC', () => {
  let g: Diamond;
  before(async () => {
    g = await buildDiamond();
  });
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  it("B force-closes B–D at its deadline, takes the HTLC back on chain and fails A's HTLC back before it expires", T, async () => {
    const amount = 8_000_000n;
    const inv = g.handler.invoice(amount, { hold: true });
    const route = routeVia(g, 'b', amount, 40);
    const outgoingExpiry = route.hops[1]!.outgoingCltvValue;
    const incomingExpiry = route.totalTimeLock;
    const aBefore = localMsat(g.a, g.ab.channelId);
    let result: AttemptResult | undefined;
    void g.a.manager.sendToRoute(route, inv.paymentHash).then((r) => (result = r));
    await until(() => g.handler.held.has(bytesToHex(inv.paymentHash)), 'D holds the HTLC');
    const deadline = outgoingExpiry - g.b.manager.htlcSwitch!.config.outgoingBroadcastDelta;
    await mineElsewhere(g.chain, deadline - 1 - g.chain.tip().height);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(g.b.manager.channel(g.bd.channelId)?.forceCloseTxid, undefined, 'not a block early');
    await mineElsewhere(g.chain, 1);
    await until(() => g.b.manager.channel(g.bd.channelId)?.forceCloseTxid !== undefined, 'B force-closes B–D at the deadline');
    // mine one block at a time until A hears back, but never up to A's own expiry
    while (result === undefined && g.chain.tip().height < incomingExpiry - 20) {
      await mineElsewhere(g.chain, 1);
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(() => result !== undefined, "A's attempt resolved", 10_000);
    assert.ok(
      result!.status === 'failed' && result!.failureSourceIndex === 1,
      JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
    );
    assert.ok(g.chain.tip().height < incomingExpiry - 20, `failed back at ${g.chain.tip().height}, A's HTLC expires at ${incomingExpiry}`);
    assert.ok(g.chain.tip().height >= outgoingExpiry, 'the HTLC-timeout is valid only from the outgoing expiry');
    await until(
      () =>
        g.a.manager.channelState(g.ab.channelId).localCommit.htlcs.length === 0 &&
        g.b.manager.channelState(g.ab.channelId).remoteCommit.htlcs.length === 0,
      'A–B clear',
    );
    assert.equal(localMsat(g.a, g.ab.channelId), aBefore, 'A has its money back');
    assert.equal(g.a.manager.channel(g.ab.channelId)?.active, true, 'A–B stays open');
  });

  it("C's own HTLC to D taken back on chain fails as a local failure (source 0), not as D's", T, async () => {
    const amount = 5_000_000n;
    const inv = g.handler.invoice(amount, { hold: true });
    const expiry = g.chain.tip().height + 40;
    const route: Route = {
      totalAmountMsat: amount,
      totalTimeLock: expiry,
      hops: [
        { pubkey: g.d.node.nodeId, shortChannelId: scidOf(g.c, g.cd.channelId), amountToForwardMsat: amount, outgoingCltvValue: expiry },
      ],
    };
    const cBefore = localMsat(g.c, g.cd.channelId);
    let result: AttemptResult | undefined;
    void g.c.manager.sendToRoute(route, inv.paymentHash).then((r) => (result = r));
    await until(() => g.handler.held.has(bytesToHex(inv.paymentHash)), 'D holds the HTLC');
    assert.ok(localMsat(g.c, g.cd.channelId) < cBefore, 'the HTLC is on C–D');
    // one block at a time: C goes to chain before the expiry and its HTLC-timeout confirms after it
    while (result === undefined && g.chain.tip().height < expiry + 40) {
      await mineElsewhere(g.chain, 1);
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(() => result !== undefined, "C's attempt resolved", 10_000);
    assert.ok(g.c.manager.channel(g.cd.channelId)?.forceCloseTxid !== undefined, 'C went to chain');
    assert.ok(g.chain.tip().height >= expiry, 'taken back only once the HTLC expired');
    assert.ok(
      result!.status === 'failed' && result!.failureSourceIndex === 0,
      JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
    );
  });
});
