/**
 * The payment lifecycle across a restart of the payer (A, on disk) in the four-node diamond: A is killed with four
 * MPP shards held at D (a hold invoice), started again from its store, and once D settles, the resumed payment
 * collects every shard's result from the switch and ends succeeded exactly once, with the preimage; a second restart
 * finds it ended and reports nothing again.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { bytesToHex } from '../../wire/bytes.js';
import { teardown, until } from './channels-fixture.js';
import { buildDiamond, reconnectAll, type Diamond } from './switch-fixture.js';

const SAT = 1000n;
const T = { timeout: 240_000 };

describe('payments across a restart of the payer', () => {
  let g: Diamond | undefined;
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  it('four shards in flight when A is killed: after the restart the payment succeeds once, with the preimage', T, async () => {
    g = await buildDiamond({ disk: ['a'], spec: { payments: {} }, registry: { d: {} } });
    await until(() => g!.d.manager.routingChannels().filter((c) => c.peerPolicy !== undefined).length === 2, "D holds B's and C's policies");
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
    assert.equal(g.a.paymentEvents.filter((e) => bytesToHex(e.payment.id) === bytesToHex(started.id)).length, 1, 'one event, from the resumed payment');
    // a second restart finds it ended and reports nothing again
    await g.a.kill();
    await g.a.start();
    assert.equal((await g.a.payments!.lookup(started.id))?.status, 'succeeded');
    assert.equal(g.a.paymentEvents.length, 1);
  });
});
