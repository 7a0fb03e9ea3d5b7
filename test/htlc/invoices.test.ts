/**
 * The invoice registry alone (memory store, a hand-driven clock and timers):
 * the AMP intake's bookkeeping, its bounds, the hold timer, and what it
 * writes (once per set, never per shard).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openMemoryStore, type BatchOp, type KvStore } from '../../db/store.js';
import { AmpShards, randomChildIndex, type AmpChild } from '../../onion/index.js';
import { InvoiceRegistry, type RegistryConfig } from '../../htlc/invoices/index.js';
import type { FinalHtlc, FinalResolution } from '../../htlc/switch/index.js';
import { randomBytes } from '../../wire/crypto.js';

class Clock {
  now = 1_700_000_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.next++;
    this.timers.push({ at: this.now + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.timers = this.timers.filter((t) => t.id !== h);
  };
  advance(ms: number): void {
    this.now += ms;
    const due = this.timers.filter((t) => t.at <= this.now);
    this.timers = this.timers.filter((t) => t.at > this.now);
    for (const t of due) t.fn();
  }
}

/** Counts the batches written (the registry writes once per settled set). */
function counting(s: KvStore): { store: KvStore; writes: BatchOp[][] } {
  const writes: BatchOp[][] = [];
  const wrap = (inner: KvStore): KvStore => ({
    get: (k) => inner.get(k),
    put: (k, v) => (writes.push([{ type: 'put', key: k, value: v }]), inner.put(k, v)),
    del: (k) => (writes.push([{ type: 'del', key: k }]), inner.del(k)),
    batch: (ops) => (writes.push([...ops]), inner.batch(ops)),
    entries: (p) => inner.entries(p),
    sublevel: (p) => wrap(inner.sublevel(p)),
    close: () => inner.close(),
  });
  return { store: wrap(s), writes };
}

async function setup(config: Partial<RegistryConfig> = {}): Promise<{ reg: InvoiceRegistry; clock: Clock; writes: BatchOp[][]; store: KvStore }> {
  const clock = new Clock();
  const { store, writes } = counting(await openMemoryStore());
  const reg = new InvoiceRegistry({ store, timers: clock, config, now: () => clock.now });
  await reg.start();
  return { reg, clock, writes, store };
}

let nextId = 0n;
function shardHtlc(o: { addr: Uint8Array; setId: Uint8Array; child: AmpChild; amountMsat: bigint; totalMsat: bigint; arrivedAt: number }): FinalHtlc {
  return {
    key: { channelId: 'c0', htlcId: nextId++ },
    amountMsat: o.amountMsat,
    cltvExpiry: 1000,
    paymentHash: o.child.hash,
    payload: {
      amountToForwardMsat: o.amountMsat,
      outgoingCltvValue: 1000,
      mpp: { paymentAddr: o.addr, totalMsat: o.totalMsat },
      amp: { share: o.child.share, setId: o.setId, childIndex: o.child.childIndex },
      customRecords: [],
      unknownRecords: [],
    },
    currentHeight: 900,
    arrivedAt: o.arrivedAt,
  };
}

function shardsOf(n: number): { shards: AmpShards; children: AmpChild[] } {
  const shards = AmpShards.random();
  const children = Array.from({ length: n }, (_, i) => shards.next(randomChildIndex(), { last: i === n - 1 }));
  return { shards, children };
}

describe('invoice registry (unit)', () => {
  it('an 8-shard set: held until complete, then each settled with its own child preimage, in one write', async () => {
    const { reg, clock, writes } = await setup();
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(8);
    const answers = new Map<number, FinalResolution>();
    const before = writes.length;
    const results: FinalResolution[] = [];
    for (let i = 0; i < 8; i++) {
      const h = shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: children[i]!, amountMsat: 1000n, totalMsat: 8000n, arrivedAt: clock.now });
      results.push(await reg.handle(h, (r) => answers.set(i, r)));
      if (i < 7) assert.equal(writes.length, before, `no write for shard ${i}`);
    }
    assert.deepEqual(results.slice(0, 7).map((r) => r.action), Array(7).fill('hold'));
    assert.equal(results[7]!.action, 'settle');
    assert.equal(writes.length, before + 1, 'one write for the whole set');
    for (let i = 0; i < 7; i++) {
      const a = answers.get(i)!;
      assert.ok(a.action === 'settle' && Buffer.from(a.preimage).equals(Buffer.from(children[i]!.preimage)));
    }
    assert.equal(reg.pendingCount(), 0);
  });

  it('a shard that times out takes the whole set with it (mpp_timeout); its set_id takes no more HTLCs', async () => {
    const { reg, clock } = await setup({ mppTimeoutMs: 1000 });
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(3);
    const got: FinalResolution[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await reg.handle(shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: children[i]!, amountMsat: 1000n, totalMsat: 3000n, arrivedAt: clock.now }), (x) => got.push(x));
      assert.equal(r.action, 'hold');
      clock.advance(300);
    }
    clock.advance(500); // the first shard's 1000 ms are up
    assert.equal(got.length, 2);
    for (const r of got) assert.ok(r.action === 'fail' && r.failure.name === 'mpp_timeout');
    const late = await reg.handle(shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: children[2]!, amountMsat: 1000n, totalMsat: 3000n, arrivedAt: clock.now }), () => undefined);
    assert.ok(late.action === 'fail' && late.failure.name === 'incorrect_or_unknown_payment_details', 'a failed set takes no more HTLCs');
    assert.equal(reg.pendingCount(), 0);
  });

  it('an HTLC asked again after a restart keeps its arrival time: past its hold time it fails at once', async () => {
    const { reg, clock } = await setup({ mppTimeoutMs: 1000 });
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(2);
    const r = await reg.handle(shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: children[0]!, amountMsat: 1000n, totalMsat: 2000n, arrivedAt: clock.now - 1500 }), () => undefined);
    assert.ok(r.action === 'fail' && r.failure.name === 'mpp_timeout');
  });

  it('bounds: pending HTLCs overall and pending sets per invoice; past them temporary_node_failure at once', async () => {
    const { reg, clock } = await setup({ maxPendingHtlcs: 3, maxPendingSetsPerInvoice: 2 });
    const inv = await reg.addInvoice({ amp: true });
    const hold = async (setId: Uint8Array, child: AmpChild): Promise<FinalResolution> =>
      reg.handle(shardHtlc({ addr: inv.paymentAddr, setId, child, amountMsat: 1000n, totalMsat: 10_000n, arrivedAt: clock.now }), () => undefined);
    const s1 = shardsOf(4);
    const s2 = shardsOf(4);
    const s3 = shardsOf(4);
    assert.equal((await hold(s1.shards.setId, s1.children[0]!)).action, 'hold');
    assert.equal((await hold(s2.shards.setId, s2.children[0]!)).action, 'hold');
    const third = await hold(s3.shards.setId, s3.children[0]!);
    assert.ok(third.action === 'fail' && third.failure.name === 'temporary_node_failure', 'a third set on the invoice');
    assert.equal((await hold(s1.shards.setId, s1.children[1]!)).action, 'hold');
    const over = await hold(s1.shards.setId, s1.children[2]!);
    assert.ok(over.action === 'fail' && over.failure.name === 'temporary_node_failure', 'a fourth pending HTLC');
    assert.equal(reg.pendingCount(), 3);
  });

  it('settled sets live in the store: a restarted registry keeps no set in memory yet finds each by set_id', async () => {
    const { reg, clock, store } = await setup();
    const inv = await reg.addInvoice({ amp: true });
    const ids: Uint8Array[] = [];
    for (let k = 0; k < 5; k++) {
      const { shards, children } = shardsOf(2);
      for (const c of children) await reg.handle(shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: c, amountMsat: 500n, totalMsat: 1000n, arrivedAt: clock.now }), () => undefined);
      ids.push(shards.setId);
    }
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    assert.equal((await again.lookupByAddr(inv.paymentAddr))!.settledSets, 5);
    for (const id of ids) assert.equal((await again.lookupSet(id))!.htlcs.length, 2);
    assert.equal((await again.lookupSet(randomBytes(32))), undefined);
    const listed = await again.listInvoices({ limit: 10 });
    assert.equal(listed.length, 1);
  });

  it('invoice arguments are checked', async () => {
    const { reg } = await setup();
    await assert.rejects(reg.addInvoice({ amp: true, preimage: randomBytes(32) }), /no preimage of its own/);
    await assert.rejects(reg.addInvoice({ preimage: randomBytes(31) }), /32 bytes/);
    const inv = await reg.addInvoice({});
    await assert.rejects(reg.addInvoice({ paymentAddr: inv.paymentAddr }), /exists/);
    await assert.rejects(reg.addInvoice({ preimage: inv.preimage! }), /exists/);
  });
});
