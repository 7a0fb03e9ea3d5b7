/**
 * The payment lifecycle across a restart of the payer (A, on disk) in the four-node diamond: A is killed with four
 * MPP shards held at D (a hold invoice), started again from its store, and once D settles, the resumed payment
 * collects every shard's result from the switch and ends succeeded exactly once, with the preimage; a second restart
 * finds it ended and reports nothing again. And an AMP payment with two of its four shards held at D when A is killed:
 * the restarted A makes the other two from the persisted root, and the four shares XOR to it.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { reconstructRoot } from '../../onion/amp.js';
import { bytesToHex } from '../../wire/bytes.js';
import { teardown, until } from './channels-fixture.js';
import { buildDiamond, hintsReady, reconnectAll, type Diamond } from './switch-fixture.js';

const SAT = 1000n;
const T = { timeout: 240_000 };

describe('payments across a restart of the payer', () => {
  let g: Diamond | undefined;
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  it('four shards in flight when A is killed: after the restart the payment succeeds once, with the preimage', T, async () => {
    g = await buildDiamond({ disk: ['a'], spec: { payments: {} }, registry: { d: {} } });
    await hintsReady(g);
    const preimage = randomBytes(32);
    const held = await g.d.registry!.addInvoice({ paymentHash: sha256(preimage), amountMsat: 200_000n * SAT });
    const payReq = g.d.payReq(held);
    const started = await g.a.payments!.startInvoice(payReq, { maxShardMsat: 50_000n * SAT });
    await until(async () => (await g!.d.registry!.lookupByHash(held.paymentHash))?.state === 'accepted', 'D holds all four shards');
    const before = await g.a.payments!.lookup(started.id);
    assert.equal(before?.attempts.filter((x) => x.status === 'in_flight').length, 4);
    await g.a.kill();
    await g.a.start();
    await reconnectAll(g);
    await g.d.registry!.settleHold(preimage);
    const done = await g.a.payments!.wait(started.id);
    assert.equal(done.status, 'succeeded', done.failureDetail);
    assert.equal(bytesToHex(done.preimage!), bytesToHex(preimage));
    assert.equal(done.attempts.filter((x) => x.status === 'settled').length, 4);
    // the request and each attempt's route (encoded once, embedded in every rewrite of the record) came back whole
    assert.deepEqual(
      done.attempts.map((x) => x.route),
      before!.attempts.map((x) => x.route),
    );
    assert.deepEqual(done.request, before!.request);
    assert.equal(
      g.a.paymentEvents.filter((e) => bytesToHex(e.payment.id) === bytesToHex(started.id)).length,
      1,
      'one event, from the resumed payment',
    );
    // a second restart finds it ended and reports nothing again
    await g.a.kill();
    await g.a.start();
    assert.equal((await g.a.payments!.lookup(started.id))?.status, 'succeeded');
    assert.equal(g.a.paymentEvents.length, 1);
  });

  it('an AMP payment with two shards in flight at the kill makes the rest after the restart from the persisted root', T, async () => {
    await teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]);
    // two shards in flight at most: D holds them (the set is short) and A can send no more before the kill
    g = await buildDiamond({ disk: ['a'], spec: { payments: { maxShards: 2 } }, registry: { d: {} } });
    await hintsReady(g);
    const inv = await g.d.registry!.addInvoice({ amp: true });
    const started = await g.a.payments!.startInvoice(g.d.payReq(inv), { amountMsat: 200_000n * SAT, maxShardMsat: 50_000n * SAT });
    await until(() => g!.d.registry!.pendingCount() === 2, 'D holds two shards of the set');
    const before = await g.a.payments!.lookup(started.id);
    assert.equal(before?.attempts.filter((x) => x.status === 'in_flight').length, 2);
    await g.a.kill();
    g.a.spec.payments = {}; // after the restart: lnd's 16 shards
    await g.a.start();
    await reconnectAll(g);
    const done = await g.a.payments!.wait(started.id);
    assert.equal(done.status, 'succeeded', done.failureDetail);
    const shards = done.attempts.filter((x) => x.status === 'settled');
    assert.equal(shards.length, 4);
    assert.equal(
      bytesToHex(reconstructRoot(shards.map((x) => x.share!))),
      bytesToHex(done.ampRoot!),
      'the shares XOR to the persisted root',
    );
    assert.equal(bytesToHex(done.ampRoot!), bytesToHex(before!.ampRoot!));
    const set = await g.d.registry!.lookupSet(done.setId!);
    assert.equal(set?.amountPaidMsat, 200_000n * SAT);
    assert.equal(set?.htlcs.length, 4);
  });
});
