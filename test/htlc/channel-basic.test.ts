/**
 * Channel establishment and the basic HTLC dance between two in-process
 * endpoints with real signatures: both roles, both channel types.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeChain, Pair, type Side } from './channel-harness.js';
import { shortChannelId } from '../../htlc/channel/driver.js';
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

describe('channel funding through the chain interface', () => {
  it('sends channel_ready once the funding has minimum_depth confirmations, with its short_channel_id; also after a restart', async () => {
    const p = await Pair.create();
    const chain = new FakeChain();
    p.ep.a.chain = chain;
    p.ep.b.chain = chain;
    await p.open({ channelType: 'anchors_zero_fee_htlc', opener: 'a', minimumDepth: 3 });
    const s = p.state('a');
    assert.equal(chain.watching(), 2);
    const tx = p.ep.a.wallet.broadcasts[0]!;
    await chain.confirm(s.fundingTxid!, 1, 800_001, 7, tx);
    assert.equal(p.queue.a.length + p.queue.b.length, 0, 'channel_ready before minimum_depth');
    // b restarts while waiting: the watch comes back from its stored state
    p.ep.b.driver!.stop();
    await p.reload('b');
    assert.equal(chain.watching(), 2);
    await chain.confirm(s.fundingTxid!, 3, 800_001, 7, tx);
    assert.deepEqual(
      p.queue.a.map((m) => m.type),
      [36],
    );
    // b restarted, so the connection is gone: its channel_ready waits for the reestablish
    assert.deepEqual(
      p.queue.b.map((m) => m.type),
      [],
    );
    await p.cut();
    await p.reconnect();
    assert.ok(p.trace.filter((t) => t.type === 36).length >= 2);
    assert.equal(p.state('a').phase, 'normal');
    assert.equal(p.state('b').phase, 'normal');
    assert.equal(p.state('a').shortChannelId, shortChannelId(800_001, 7, s.fundingOutputIndex!));
    assert.equal(chain.watching(), 0);
    assert.equal((await p.add('a', 1_000_000n)).failure, undefined);
    await p.settle();
    p.checkConsistent();
  });
});

describe('channel records', () => {
  it('decode to exactly the state that was written, pending updates, signatures and revocations included', async () => {
    const { encodeState, decodeState } = await import('../../htlc/channel/codec.js');
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 300_000_000n });
    await p.add('a', 9_000_000n);
    await p.add('b', 8_000_000n);
    await p.settle();
    await p.add('a', 7_000_000n);
    await p.apply('a', { type: 'sign' }); // a now has a commitment awaiting revocation
    for (const side of ['a', 'b'] as const) {
      const s = p.state(side);
      assert.deepEqual(decodeState(encodeState(s)), s);
    }
    assert.ok(p.state('a').remoteNextCommit !== undefined && p.state('a').sentCommitSig !== undefined);
  });
});
