/**
 * 500 HTLCs added, fulfilled and failed from both sides in random
 * interleavings (a seeded generator, so a failure names its seed):
 * messages are delivered one at a time in random order per direction,
 * both sides often sign at once, and funds conservation is checked after
 * every step; the opener also changes the feerate now and then. At the end everything is resolved and each side's balance
 * must equal what a simple payment model predicts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pair, other, type Side } from './channel-harness.js';
import type { ChannelType } from '../../htlc/channel/types.js';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

async function run(channelType: ChannelType, seed: number, totalHtlcs: number, cuts = false): Promise<void> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const p = await Pair.opened({ channelType, opener: seed % 2 === 0 ? 'a' : 'b', fundingSat: 10_000_000n, pushMsat: 5_000_000_000n });
  const start = { a: p.balances('a').ours, b: p.balances('b').ours };
  /** amounts of HTLCs by sender and id, and how they ended */
  const sent: Record<Side, Map<bigint, bigint>> = { a: new Map(), b: new Map() };
  const fulfilled: Record<Side, bigint> = { a: 0n, b: 0n };
  let added = 0;
  let simultaneous = 0;
  let feeUpdates = 0;
  let reconnects = 0;

  const collect = () => {
    for (const side of ['a', 'b'] as const) {
      const evs = p.ep[side].events.splice(0);
      for (const e of evs) {
        if (e.type === 'htlc_fulfilled') fulfilled[side] += sent[side].get(e.id)!;
        if (!cuts) assert.notEqual(e.type, 'htlc_unsent');
      }
    }
    assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], [], 'a peer error was raised');
    p.checkConserved();
  };

  const inFlight = () => p.state('a').localCommit.htlcs.length + p.state('a').ourLog.entries.length + p.state('b').ourLog.entries.length;

  while (added < totalHtlcs) {
    const side: Side = rand() < 0.5 ? 'a' : 'b';
    const r = rand();
    if (r < 0.22 && inFlight() < 40) {
      // mostly normal amounts, some dust (trimmed) ones
      const amount = rand() < 0.2 ? BigInt(1 + Math.floor(rand() * 400_000)) : BigInt(500_000 + Math.floor(rand() * 50_000_000));
      const res = await p.add(side, amount);
      if (res.failure === undefined) {
        const id = p.state(side).ourLog.nextHtlcId - 1n;
        sent[side].set(id, amount);
        added++;
      } else assert.equal(res.failure.level, 'local');
    } else if (r < 0.38) {
      const ready = p.settleable(side);
      if (ready.length > 0) {
        const h = pick(ready);
        const res = rand() < 0.6 ? await p.fulfill(side, h.id) : await p.fail(side, h.id);
        assert.equal(res.failure, undefined);
      }
    } else if (r < 0.5) {
      const res = await p.apply(side, { type: 'sign' });
      if (res.failure !== undefined) assert.equal(res.failure.level, 'local');
    } else if (r < 0.53) {
      // the opener changes the commitment feerate now and then
      if (rand() < 0.3) {
        const res = await p.apply(p.opener, { type: 'update_fee', feeratePerKw: 253 + Math.floor(rand() * 6000) });
        if (res.failure === undefined) feeUpdates++;
        else assert.equal(res.failure.level, 'local');
      }
    } else if (r < 0.58) {
      // both sides sign before either sees the other's commitment_signed
      const ra = await p.apply('a', { type: 'sign' });
      const rb = await p.apply('b', { type: 'sign' });
      if (ra.failure === undefined && rb.failure === undefined) simultaneous++;
    } else if (cuts && r < 0.6) {
      // the connection drops (sometimes one side restarts from its store), then both reestablish
      await p.cut();
      if (rand() < 0.5) await p.reload(side);
      await p.reconnect();
      reconnects++;
    } else if (p.queue[side].length > 0) {
      await p.deliver(side);
    } else if (p.queue[other(side)].length > 0) {
      await p.deliver(other(side));
    }
    collect();
  }
  // resolve everything that is left
  for (let round = 0; round < 50; round++) {
    await p.settle();
    collect();
    let any = false;
    for (const side of ['a', 'b'] as const) {
      for (const h of p.settleable(side)) {
        any = true;
        const res = rand() < 0.5 ? await p.fulfill(side, h.id) : await p.fail(side, h.id);
        assert.equal(res.failure, undefined);
      }
    }
    if (!any && p.state('a').localCommit.htlcs.length === 0 && p.state('b').localCommit.htlcs.length === 0) break;
  }
  await p.settle();
  collect();
  p.checkConsistent();
  assert.equal(p.state('a').localCommit.htlcs.length, 0);
  assert.equal(p.balances('a').ours, start.a - fulfilled.a + fulfilled.b);
  assert.equal(p.balances('b').ours, start.b - fulfilled.b + fulfilled.a);
  assert.ok(simultaneous > 0, 'no simultaneous commitment_signed happened');
  assert.ok(feeUpdates > 0, 'no update_fee happened');
  if (cuts) assert.ok(reconnects > 10, `only ${reconnects} reconnections`);
  assert.ok(fulfilled.a > 0n && fulfilled.b > 0n);
  // logs are compacted once everything is in both chains
  assert.equal(p.state('a').ourLog.entries.length + p.state('a').theirLog.entries.length, 0);
}

describe('channel: random interleavings', () => {
  it('500 HTLCs, static_remotekey', async () => {
    await run('static_remotekey', 1001, 500);
  });
  it('250 HTLCs, anchors zero-fee, opened by the other side', async () => {
    await run('anchors_zero_fee_htlc', 2003, 250);
  });
  it('200 HTLCs with disconnects and restarts at random points', async () => {
    await run('static_remotekey', 3005, 200, true);
  });
  it('150 HTLCs with disconnects and restarts, anchors, other opener', async () => {
    await run('anchors_zero_fee_htlc', 4007, 150, true);
  });
});
