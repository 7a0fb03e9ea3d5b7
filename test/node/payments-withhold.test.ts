/**
 * The payment lifecycle's test-only hook (`withholdAttempt`): A pays D's AMP invoice in several shards over the
 * diamond and the hook drops every shard that would complete the set before its HTLC is added. D holds the shards it
 * got for its hold time (short here) and fails them with mpp_timeout; A's payment ends failed with that reason,
 * every withheld attempt recorded failed without an HTLC, and A's channels hold what they held before.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { teardown } from './channels-fixture.js';
import { buildDiamond, hintsReady, type Diamond } from './switch-fixture.js';

const SAT = 1000n;

describe('a withheld last shard leaves the AMP set short at the payee', () => {
  let g: Diamond;
  let withheld = 0;
  before(async () => {
    g = await buildDiamond({
      spec: {
        payments: {
          timeoutMs: 20_000,
          maxAttempts: 12,
          withholdAttempt: (_p, _a, last) => {
            if (last) withheld++;
            return last;
          },
        },
      },
      registry: { d: { mppTimeoutMs: 1_500 } },
    });
    await hintsReady(g);
  });
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  it('the shards D got fail with mpp_timeout after its hold time; the payment fails with it; balances unchanged', async () => {
    const balances = (): bigint[] => g.a.manager.routingChannels().map((c) => c.localBalanceMsat);
    const before = balances();
    const inv = await g.d.registry!.addInvoice({ amp: true, memo: 'short' });
    const rec = await g.a.payments!.payInvoice(g.d.payReq(inv), { amountMsat: 120_000n * SAT, maxShardMsat: 40_000n * SAT });
    assert.equal(rec.status, 'failed');
    assert.ok(withheld >= 1, 'the hook was asked for the last shard');
    const dropped = rec.attempts.filter((a) => a.failure?.reason.includes('withheld') === true);
    const sent = rec.attempts.filter((a) => !dropped.includes(a));
    assert.equal(dropped.length, withheld);
    assert.ok(sent.length >= 2, `${sent.length} shards reached D`);
    assert.ok(
      sent.every((a) => a.status === 'failed' && a.failure?.code === 'mpp_timeout' && a.failure.sourceIndex === a.route.hops.length),
      JSON.stringify(sent.map((a) => a.failure)),
    );
    assert.match(rec.failureDetail ?? '', /mpp_timeout/);
    assert.equal((await g.d.registry!.lookupByAddr(inv.paymentAddr))?.amountPaidMsat, 0n);
    assert.deepEqual(balances(), before, "A's channels hold what they held before");
  });
});
