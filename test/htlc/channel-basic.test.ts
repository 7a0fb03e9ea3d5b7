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

        // every signature or revocation left only after the state that made it was written
        for (const side of ['a', 'b'] as const) {
          const ops = p.ep[side].ops;
          let checked = 0;
          for (let i = 0; i < ops.length; i++) {
            if (ops[i] === 'send:132' || ops[i] === 'send:133' || ops[i] === 'send:35') {
              assert.equal(ops[i - 1], 'write', `${side}: ${ops[i]} sent before its state was written`);
              checked++;
            }
          }
          assert.ok(checked >= 4);
        }
      });

      it('reloads from the store alone and carries on', async () => {
        const p = await Pair.opened({ channelType, opener, pushMsat: 200_000_000n });
        await p.add('a', 3_000_000n);
        await p.add('b', 4_000_000n);
        await p.settle();
        await p.cut();
        await p.reload('a');
        await p.reload('b');
        await p.reconnect();
        for (const side of ['a', 'b'] as const) for (const h of p.settleable(side)) await p.fulfill(side, h.id);
        await p.settle();
        p.checkConsistent();
        const a0 = opener === 'a' ? 800_000_000n : 200_000_000n;
        assert.equal(p.balances('a').ours, a0 - 3_000_000n + 4_000_000n);
        assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
      });
    });
  }
}
