/**
 * Channel establishment and the basic HTLC dance between two in-process
 * endpoints with real signatures: both roles, both channel types.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pair, type Side } from './channel-harness.js';
import type { ChannelType } from '../../htlc/channel/types.js';

for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const satisfies readonly ChannelType[]) {
  for (const opener of ['a', 'b'] as const satisfies readonly Side[]) {
    describe(`channel ${channelType}, opened by ${opener}`, () => {
      it('opens, adds, fulfills and fails HTLCs both ways with balances moving exactly', async () => {
        const p = await Pair.opened({ channelType, opener, fundingSat: 1_000_000n, pushMsat: 100_000_000n });
        const other: Side = opener === 'a' ? 'b' : 'a';
        assert.equal(p.balances(opener).theirs, 100_000_000n);
        assert.equal(p.balances(other).ours, 100_000_000n);
        p.checkConsistent();

        // opener pays 5 000 sat to the other side
        const r = await p.add(opener, 5_000_000n);
        assert.equal(r.failure, undefined);
        await p.settle();
        p.checkConsistent();
        assert.ok(p.settleable(other).some((h) => h.id === 0n));
        await p.fulfill(other, 0n);
        await p.settle();
        p.checkConsistent();
        assert.equal(p.balances(other).ours, 105_000_000n);
        assert.ok(p.ep[opener].events.some((e) => e.type === 'htlc_fulfilled' && e.id === 0n));

        // the other side sends an HTLC that fails
        await p.add(other, 20_000_000n);
        await p.settle();
        const before = p.balances(other).ours;
        await p.fail(opener, 0n);
        await p.settle();
        p.checkConsistent();
        assert.equal(p.balances(other).ours, before + 20_000_000n);
        assert.ok(p.ep[other].events.some((e) => e.type === 'htlc_failed' && e.id === 0n));
        assert.equal(p.ep.a.failures.length + p.ep.b.failures.length, 0);
      });
    });
  }
}
