/**
 * The invoice registry alone (memory store, a hand-driven clock and timers):
 * the AMP intake's bookkeeping, its bounds, the hold timer, and what it
 * writes (at most once per set, never per shard; sets that complete together share
 * one batch), and what a failed write leaves.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openMemoryStore, type BatchOp, type KvStore } from '../../db/store.js';
import { AmpShards, deriveChild, randomChildIndex, type AmpChild } from '../../onion/index.js';
import { InvoiceRegistry, type AmpSet, type Invoice, type RegistryConfig, type SettleEvent } from '../../htlc/invoices/index.js';
import {
  decodeSet,
  encodeSet,
  encodeSetColumns,
  hashKey,
  invoiceKey,
  invoiceSetKey,
  putSettleChunk,
  setKey,
  settleKey,
  SET_RECORD_V1,
  SET_RECORD_V2,
} from '../../htlc/invoices/store.js';
import { SettledSetFilter } from '../../htlc/invoices/settled-filter.js';
import { encodeJson } from '../../htlc/switch/circuit-map.js';
import type { FinalHtlc, FinalResolution } from '../../htlc/switch/index.js';
import { bytesToHex, equalBytes } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';

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

async function setup(
  config: Partial<RegistryConfig> = {},
): Promise<{ reg: InvoiceRegistry; clock: Clock; writes: BatchOp[][]; store: KvStore }> {
  const clock = new Clock();
  const { store, writes } = counting(await openMemoryStore());
  const reg = new InvoiceRegistry({ store, timers: clock, config, now: () => clock.now });
  await reg.start();
  return { reg, clock, writes, store };
}

let nextId = 0n;
function shardHtlc(o: {
  addr: Uint8Array;
  setId: Uint8Array;
  child: AmpChild;
  amountMsat: bigint;
  totalMsat: bigint;
  arrivedAt: number;
}): FinalHtlc {
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

/** A set of two 1000 msat shards settled at index 1, as an earlier version stored it (custom records on the first). */
function settledTwoShardSet(
  addr: Uint8Array,
  channelId: string,
  custom?: { type: bigint; value: Uint8Array }[],
): { set: AmpSet; children: AmpChild[] } {
  const { shards, children } = shardsOf(2);
  const set: AmpSet = {
    setId: shards.setId,
    paymentAddr: addr,
    state: 'settled',
    settleIndex: 1n,
    settledAt: 1_700_000_000,
    amountPaidMsat: 2000n,
    htlcs: children.map((c, i) => ({
      circuit: `${channelId}/${i.toString(16).padStart(16, '0')}`,
      amountMsat: 1000n,
      paymentHash: c.hash,
      preimage: c.preimage,
      share: c.share,
      childIndex: c.childIndex,
      ...(i === 0 && custom !== undefined ? { customRecords: custom } : {}),
    })),
  };
  return { set, children };
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
      const h = shardHtlc({
        addr: inv.paymentAddr,
        setId: shards.setId,
        child: children[i]!,
        amountMsat: 1000n,
        totalMsat: 8000n,
        arrivedAt: clock.now,
      });
      results.push(await reg.handle(h, (r) => answers.set(i, r)));
      if (i < 7) assert.equal(writes.length, before, `no write for shard ${i}`);
    }
    assert.deepEqual(
      results.slice(0, 7).map((r) => r.action),
      Array(7).fill('hold'),
    );
    assert.equal(results[7]!.action, 'settle');
    assert.equal(writes.length, before + 1, 'one write for the whole set');
    for (let i = 0; i < 7; i++) {
      const a = answers.get(i)!;
      assert.ok(a.action === 'settle' && Buffer.from(a.preimage).equals(Buffer.from(children[i]!.preimage)));
    }
    assert.equal(reg.pendingCount(), 0);
  });

  it('spontaneous AMP: three shards of a new payment handed over at once all join the invoice the first one makes', async () => {
    // the store answers the reads of the later shards 30 ms late: the first shard has made the invoice and begun
    // its set by the time they look
    const inner = await openMemoryStore();
    let reads = 0;
    const slow: KvStore = Object.assign(Object.create(inner) as KvStore, {
      get: async (k: Uint8Array) => {
        const late = reads++ >= 2;
        const v = await inner.get(k);
        if (late) await new Promise((r) => setTimeout(r, 30));
        return v;
      },
    });
    const clock = new Clock();
    const reg = new InvoiceRegistry({ store: slow, timers: clock, config: { acceptAmp: true }, now: () => clock.now });
    await reg.start();
    reads = 0;
    const addr = randomBytes(32);
    const { shards, children } = shardsOf(3);
    const answers: FinalResolution[] = [];
    // none awaited before the next: the reads of the first shards are still pending when the others arrive
    const pending = children.map((child) =>
      reg.handle(shardHtlc({ addr, setId: shards.setId, child, amountMsat: 1000n, totalMsat: 3000n, arrivedAt: clock.now }), (r) =>
        answers.push(r),
      ),
    );
    const results = await Promise.all(pending);
    assert.ok(
      results.every((r) => r.action === 'hold' || r.action === 'settle'),
      `no shard refused: ${JSON.stringify(results.map((r) => r.action))}`,
    );
    assert.equal(results.filter((r) => r.action === 'settle').length, 1, 'the last to join completes the set');
    assert.equal(answers.length, 2, 'the two held shards are answered');
    assert.ok(answers.every((r) => r.action === 'settle'));
    const inv = await reg.lookupByAddr(addr, { withSets: true });
    assert.equal(inv?.spontaneous, true);
    assert.equal(inv?.sets?.length, 1);
    assert.equal(inv?.sets?.[0]?.htlcs.length, 3);
  });

  it('the arenas of sets gone (timed out, settled) serve new sets: every later set settles with its own children', async () => {
    const { reg, clock } = await setup({ mppTimeoutMs: 1000 });
    const inv = await reg.addInvoice({ amp: true });
    const hand = (x: ReturnType<typeof shardsOf>, i: number, n: number): FinalHtlc =>
      shardHtlc({
        addr: inv.paymentAddr,
        setId: x.shards.setId,
        child: x.children[i]!,
        amountMsat: 100n,
        totalMsat: 100n * BigInt(n),
        arrivedAt: clock.now,
      });
    for (let round = 0; round < 3; round++) {
      // eight sets left one shard short: they time out and give their arenas back
      const short = Array.from({ length: 8 }, () => shardsOf(8));
      const failed: FinalResolution[] = [];
      for (const x of short)
        for (let i = 0; i < 7; i++) assert.equal((await reg.handle(hand(x, i, 8), (r) => failed.push(r))).action, 'hold');
      clock.advance(1001);
      assert.equal(failed.length, 56);
      assert.ok(failed.every((r) => r.action === 'fail' && r.failure.name === 'mpp_timeout'));
      // sets begun now take those arenas, some interleaved: each settles with its own preimages, and reads back so
      const full = Array.from({ length: 8 }, () => shardsOf(8));
      const answers: Promise<FinalResolution>[][] = full.map(() => []);
      for (let i = 0; i < 8; i++)
        full.forEach((x, k) => {
          answers[k]!.push(
            new Promise((resolve) => {
              const r = reg.handle(hand(x, i, 8), resolve);
              if (!(r instanceof Promise) && r.action !== 'hold') resolve(r);
              else if (r instanceof Promise) void r.then((v) => v.action !== 'hold' && resolve(v));
            }),
          );
        });
      for (const [k, x] of full.entries()) {
        const got = await Promise.all(answers[k]!);
        got.forEach((r, i) => assert.ok(r.action === 'settle' && equalBytes(r.preimage, x.children[i]!.preimage), `set ${k} shard ${i}`));
        const stored = (await reg.lookupSet(x.shards.setId))!;
        stored.htlcs.forEach((h, i) => {
          assert.ok(equalBytes(h.share!, x.children[i]!.share) && equalBytes(h.paymentHash, x.children[i]!.hash));
          assert.ok(equalBytes(h.preimage, x.children[i]!.preimage));
        });
      }
    }
  });

  it('a shard that times out takes the whole set with it (mpp_timeout); its set_id takes no more HTLCs', async () => {
    const { reg, clock } = await setup({ mppTimeoutMs: 1000 });
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(3);
    const got: FinalResolution[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await reg.handle(
        shardHtlc({
          addr: inv.paymentAddr,
          setId: shards.setId,
          child: children[i]!,
          amountMsat: 1000n,
          totalMsat: 3000n,
          arrivedAt: clock.now,
        }),
        (x) => got.push(x),
      );
      assert.equal(r.action, 'hold');
      clock.advance(300);
    }
    clock.advance(500); // the first shard's 1000 ms are up
    assert.equal(got.length, 2);
    for (const r of got) assert.ok(r.action === 'fail' && r.failure.name === 'mpp_timeout');
    const late = await reg.handle(
      shardHtlc({
        addr: inv.paymentAddr,
        setId: shards.setId,
        child: children[2]!,
        amountMsat: 1000n,
        totalMsat: 3000n,
        arrivedAt: clock.now,
      }),
      () => undefined,
    );
    assert.ok(late.action === 'fail' && late.failure.name === 'incorrect_or_unknown_payment_details', 'a failed set takes no more HTLCs');
    assert.equal(reg.pendingCount(), 0);
  });

  it('an HTLC asked again after a restart keeps its arrival time: past its hold time it fails at once', async () => {
    const { reg, clock } = await setup({ mppTimeoutMs: 1000 });
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(2);
    const r = await reg.handle(
      shardHtlc({
        addr: inv.paymentAddr,
        setId: shards.setId,
        child: children[0]!,
        amountMsat: 1000n,
        totalMsat: 2000n,
        arrivedAt: clock.now - 1500,
      }),
      () => undefined,
    );
    assert.ok(r.action === 'fail' && r.failure.name === 'mpp_timeout');
  });

  it('bounds: pending HTLCs overall and pending sets per invoice; past them temporary_node_failure at once', async () => {
    const { reg, clock } = await setup({ maxPendingHtlcs: 3, maxPendingSetsPerInvoice: 2 });
    const inv = await reg.addInvoice({ amp: true });
    const hold = async (setId: Uint8Array, child: AmpChild): Promise<FinalResolution> =>
      reg.handle(
        shardHtlc({ addr: inv.paymentAddr, setId, child, amountMsat: 1000n, totalMsat: 10_000n, arrivedAt: clock.now }),
        () => undefined,
      );
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
      for (const c of children)
        await reg.handle(
          shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: c, amountMsat: 500n, totalMsat: 1000n, arrivedAt: clock.now }),
          () => undefined,
        );
      ids.push(shards.setId);
    }
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    assert.equal((await again.lookupByAddr(inv.paymentAddr))!.settledSets, 5);
    for (const id of ids) assert.equal((await again.lookupSet(id))!.htlcs.length, 2);
    assert.equal(await again.lookupSet(randomBytes(32)), undefined);
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

  /** Pays `count` sets of `shardsPerSet` shards (500 msat each) on `addr`; returns their set_ids in order. */
  async function paySets(reg: InvoiceRegistry, clock: Clock, addr: Uint8Array, count: number, shardsPerSet = 2): Promise<Uint8Array[]> {
    const ids: Uint8Array[] = [];
    for (let k = 0; k < count; k++) {
      const { shards, children } = shardsOf(shardsPerSet);
      let last: FinalResolution | undefined;
      for (const c of children)
        last = await reg.handle(
          shardHtlc({
            addr,
            setId: shards.setId,
            child: c,
            amountMsat: 500n,
            totalMsat: 500n * BigInt(shardsPerSet),
            arrivedAt: clock.now,
          }),
          () => undefined,
        );
      assert.equal(last!.action, 'settle');
      ids.push(shards.setId);
    }
    return ids;
  }

  for (const count of [5, 64, 70, 130]) {
    const what = `${count} settled sets, then a restart without a clean stop`;
    it(`${what}: the invoice counts every set, lists them in order, replays their events; indexes go on`, async () => {
      const { reg, clock, store, writes } = await setup();
      const inv = await reg.addInvoice({ amp: true });
      const before = writes.length;
      const ids = await paySets(reg, clock, inv.paymentAddr, count);
      assert.equal(writes.length - before, count, 'one write per set');
      // between checkpoints a set's write is its record and its settlement reference alone
      assert.ok(writes.slice(before).filter((w) => w.length === 2).length >= count - Math.ceil(count / 64));
      const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
      await again.start();
      const got = (await again.lookupByAddr(inv.paymentAddr, { withSets: true }))!;
      assert.equal(got.settledSets, count);
      assert.equal(got.amountPaidMsat, 1000n * BigInt(count));
      assert.equal(got.settleIndex, BigInt(count));
      assert.deepEqual(
        got.sets!.map((x) => bytesToHex(x.setId)),
        ids.map(bytesToHex),
      );
      assert.deepEqual(
        got.sets!.map((x) => x.settleIndex),
        ids.map((_, i) => BigInt(i + 1)),
      );
      const events: SettleEvent[] = [];
      await again.subscribeSettled(0n, (e) => events.push(e));
      assert.deepEqual(
        events.map((e) => bytesToHex(e.setId!)),
        ids.map(bytesToHex),
      );
      // the counters go on from there: the next set is settle index count + 1, the next invoice add index 2
      const next = await paySets(again, clock, inv.paymentAddr, 1);
      assert.equal((await again.lookupSet(next[0]!))!.settleIndex, BigInt(count + 1));
      assert.equal((await again.addInvoice({})).addIndex, 2n);
      // and a third start still agrees
      const third = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
      await third.start();
      const after3 = (await third.lookupByAddr(inv.paymentAddr, { withSets: true }))!;
      assert.equal(after3.settledSets, count + 1);
      assert.equal(after3.sets!.length, count + 1);
      assert.equal(after3.amountPaidMsat, 1000n * BigInt(count + 1));
    });
  }

  /** `count` sets of 4 shards (250 msat each), alternately on `addrs`, every shard handed over at once (as the switch does a batch). */
  function handAll(
    reg: InvoiceRegistry,
    clock: Clock,
    addrs: Uint8Array[],
    count: number,
  ): { sets: { addr: Uint8Array; setId: Uint8Array; children: AmpChild[] }[]; answers: Promise<FinalResolution>[][] } {
    const sets = Array.from({ length: count }, (_, k) => ({ addr: addrs[k % addrs.length]!, ...shardsOf(4) })).map((x) => ({
      addr: x.addr,
      setId: x.shards.setId,
      children: x.children,
    }));
    const answers = sets.map((x) =>
      x.children.map(
        (c) =>
          new Promise<FinalResolution>((resolve, reject) => {
            const h = shardHtlc({ addr: x.addr, setId: x.setId, child: c, amountMsat: 250n, totalMsat: 1000n, arrivedAt: clock.now });
            Promise.resolve(reg.handle(h, resolve)).then((r) => r.action !== 'hold' && resolve(r), reject);
          }),
      ),
    );
    return { sets, answers };
  }

  it('sets completing together share a batch (group commit): few batches, settle indexes in order, all there after a restart', async () => {
    const { reg, clock, store, writes } = await setup();
    // four invoices: 75 sets pending on each at once, within the 100 an invoice may have
    const invs = [await reg.addInvoice({ amp: true }), await reg.addInvoice({ amp: true })];
    invs.push(await reg.addInvoice({ amp: true }), await reg.addInvoice({ amp: true }));
    const events: SettleEvent[] = [];
    await reg.subscribeSettled(0n, (e) => events.push(e));
    const before = writes.length;
    const count = 300; // more than one batch takes (256), across several checkpoints (64)
    const { sets, answers } = handAll(
      reg,
      clock,
      invs.map((i) => i.paymentAddr),
      count,
    );
    for (const [k, x] of sets.entries()) {
      const got = await Promise.all(answers[k]!);
      got.forEach((a, i) => assert.ok(a.action === 'settle' && equalBytes(a.preimage, x.children[i]!.preimage), `set ${k} shard ${i}`));
    }
    const batches = writes.length - before;
    assert.ok(batches >= 2 && batches <= count / 8, `${batches} batches for ${count} sets`);
    assert.deepEqual(
      events.map((e) => e.settleIndex),
      Array.from({ length: count }, (_, i) => BigInt(i + 1)),
    );
    assert.deepEqual(new Set(events.map((e) => bytesToHex(e.setId!))), new Set(sets.map((x) => bytesToHex(x.setId))));
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    for (const inv of invs) {
      const got = (await again.lookupByAddr(inv.paymentAddr, { withSets: true }))!;
      const mine = events.filter((e) => equalBytes(e.paymentAddr, inv.paymentAddr));
      assert.equal(got.settledSets, count / 4);
      assert.equal(got.amountPaidMsat, 1000n * BigInt(count / 4));
      assert.deepEqual(
        got.sets!.map((x) => x.settleIndex),
        mine.map((e) => e.settleIndex),
      );
    }
    const replay: SettleEvent[] = [];
    await again.subscribeSettled(0n, (e) => replay.push(e));
    assert.deepEqual(
      replay.map((e) => bytesToHex(e.setId!)),
      events.map((e) => bytesToHex(e.setId!)),
    );
    // one settlement entry per batch (a chunk of its sets' references), so a replay may begin inside one
    const refEntries = writes.slice(before).flatMap((b) => b.filter((op) => new TextDecoder().decode(op.key).startsWith('si/')));
    assert.equal(refEntries.length, batches);
    const fromMiddle: SettleEvent[] = [];
    await again.subscribeSettled(151n, (e) => fromMiddle.push(e));
    assert.deepEqual(
      fromMiddle.map((e) => bytesToHex(e.setId!)),
      events.slice(151).map((e) => bytesToHex(e.setId!)),
    );
  });

  it('a crash between two group commits: the sets of the batch that landed are settled, those queued behind it never are', async () => {
    const inner = await openMemoryStore();
    let batches = 0;
    let dead = false;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const sizes: number[] = [];
    const store: KvStore = {
      get: (k) => inner.get(k),
      put: (k, v) => inner.put(k, v),
      del: (k) => inner.del(k),
      batch: async (ops) => {
        const n = batches++;
        sizes.push(ops.length);
        if (n === 1) await gate; // the first settle batch is slow: the second wave queues behind it
        if (n >= 2 || dead) {
          dead = true; // the process dies while writing the second: nothing of it lands
          throw new Error('the process died');
        }
        return inner.batch(ops);
      },
      entries: (p) => inner.entries(p),
      sublevel: () => {
        throw new Error('not used');
      },
      close: () => inner.close(),
    };
    const clock = new Clock();
    const reg = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await reg.start();
    const inv = await reg.addInvoice({ amp: true });
    const first = handAll(reg, clock, [inv.paymentAddr], 30);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(batches, 2, 'the first wave is being written');
    const second = handAll(reg, clock, [inv.paymentAddr], 30);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(batches, 2, 'the second wave waits for the first write');
    release();
    const one = await Promise.all(first.answers.map((a) => Promise.allSettled(a)));
    const two = await Promise.all(second.answers.map((a) => Promise.allSettled(a)));
    assert.equal(batches, 3, `one batch per wave: ${sizes.join(', ')} ops`);
    for (const r of one.flat()) assert.ok(r.status === 'fulfilled' && r.value.action === 'settle');
    for (const r of two.flat()) assert.ok(r.status === 'rejected' || r.value.action !== 'settle', 'nothing of the lost batch is settled');
    const again = new InvoiceRegistry({ store: inner, timers: clock, now: () => clock.now });
    await again.start();
    const got = (await again.lookupByAddr(inv.paymentAddr, { withSets: true }))!;
    assert.equal(got.settledSets, 30);
    assert.equal(got.amountPaidMsat, 30_000n);
    assert.deepEqual(new Set(got.sets!.map((x) => bytesToHex(x.setId))), new Set(first.sets.map((x) => bytesToHex(x.setId))));
    for (const x of second.sets) assert.equal(await again.lookupSet(x.setId), undefined);
    // the lost sets come again after the restart (the switch asks again): they settle then, under the next indexes
    const replayed = await Promise.all(
      second.sets.flatMap((x) =>
        x.children.map((c) =>
          again.handle(
            shardHtlc({ addr: x.addr, setId: x.setId, child: c, amountMsat: 250n, totalMsat: 1000n, arrivedAt: clock.now }),
            () => undefined,
          ),
        ),
      ),
    );
    assert.equal(replayed.filter((r) => r.action === 'settle').length, 30, 'each set settled by its last shard');
    const all = (await again.lookupByAddr(inv.paymentAddr, { withSets: true }))!;
    assert.equal(all.settledSets, 60);
    assert.deepEqual(
      all.sets!.map((x) => x.settleIndex),
      Array.from({ length: 60 }, (_, i) => BigInt(i + 1)),
    );
  });

  it('a settled set_id again: the same HTLC gets its preimage again (also after a restart), a new one fails', async () => {
    const { reg, clock, store } = await setup();
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(2);
    const hs = children.map((c) =>
      shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: c, amountMsat: 500n, totalMsat: 1000n, arrivedAt: clock.now }),
    );
    for (const h of hs) await reg.handle(h, () => undefined);
    for (const r of [
      reg,
      await (async () => {
        const x = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
        await x.start();
        return x;
      })(),
    ]) {
      const same = await r.handle(hs[0]!, () => undefined);
      assert.ok(same.action === 'settle' && equalBytes(same.preimage, children[0]!.preimage));
      const fresh = await r.handle({ ...hs[1]!, key: { channelId: 'c0', htlcId: nextId++ } }, () => undefined);
      assert.ok(fresh.action === 'fail' && fresh.failure.name === 'incorrect_or_unknown_payment_details');
    }
  });

  it('a set of 40 shards, some asked twice: held once each, settled once with the right total', async () => {
    const { reg, clock } = await setup();
    const inv = await reg.addInvoice({ amp: true });
    const { shards, children } = shardsOf(40);
    const hs = children.map((c) =>
      shardHtlc({ addr: inv.paymentAddr, setId: shards.setId, child: c, amountMsat: 100n, totalMsat: 4000n, arrivedAt: clock.now }),
    );
    const settled = new Map<number, Uint8Array>();
    for (let i = 0; i < 39; i++) {
      assert.equal((await reg.handle(hs[i]!, (a) => a.action === 'settle' && settled.set(i, a.preimage))).action, 'hold');
      if (i % 7 === 3) assert.equal((await reg.handle(hs[i]!, () => assert.fail('a second callback'))).action, 'hold', 'asked again');
    }
    assert.equal(reg.pendingCount(), 39);
    const last = await reg.handle(hs[39]!, () => undefined);
    assert.ok(last.action === 'settle' && equalBytes(last.preimage, children[39]!.preimage));
    assert.equal(settled.size, 39);
    for (const [i, pre] of settled)
      assert.ok(equalBytes(pre, deriveChild(shards.root, children[i]!.share, children[i]!.childIndex).preimage));
    assert.equal((await reg.lookupSet(shards.setId))!.amountPaidMsat, 4000n);
  });

  it('cancelling an AMP invoice lists its sets settled since the last checkpoint; after a restart they are all there', async () => {
    const { reg, clock, store } = await setup();
    const inv = await reg.addInvoice({ amp: true });
    const ids = await paySets(reg, clock, inv.paymentAddr, 3);
    await reg.cancel(inv.paymentHash);
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    const got = (await again.lookupByAddr(inv.paymentAddr, { withSets: true }))!;
    assert.equal(got.state, 'canceled');
    assert.equal(got.settledSets, 3);
    assert.deepEqual(
      got.sets!.map((x) => bytesToHex(x.setId)),
      ids.map(bytesToHex),
    );
  });

  it('a regular invoice settled between AMP sets: after a restart both are counted and the indexes agree', async () => {
    const { reg, clock, store } = await setup();
    const amp = await reg.addInvoice({ amp: true });
    await paySets(reg, clock, amp.paymentAddr, 2);
    const regular = await reg.addInvoice({ amountMsat: 1000n });
    await paySets(reg, clock, amp.paymentAddr, 2);
    const h: FinalHtlc = {
      key: { channelId: 'c0', htlcId: nextId++ },
      amountMsat: 1000n,
      cltvExpiry: 1000,
      paymentHash: regular.paymentHash,
      payload: {
        amountToForwardMsat: 1000n,
        outgoingCltvValue: 1000,
        mpp: { paymentAddr: regular.paymentAddr, totalMsat: 1000n },
        customRecords: [],
        unknownRecords: [],
      },
      currentHeight: 900,
      arrivedAt: clock.now,
    };
    assert.equal((await reg.handle(h, () => undefined)).action, 'settle');
    await paySets(reg, clock, amp.paymentAddr, 1);
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    const a = (await again.lookupByAddr(amp.paymentAddr, { withSets: true }))!;
    assert.equal(a.settledSets, 5);
    assert.deepEqual(
      a.sets!.map((x) => x.settleIndex),
      [1n, 2n, 3n, 4n, 6n],
    );
    assert.equal((await again.lookupByHash(regular.paymentHash))!.settleIndex, 5n);
    const events: SettleEvent[] = [];
    await again.subscribeSettled(0n, (e) => events.push(e));
    assert.deepEqual(
      events.map((e) => e.settleIndex),
      [1n, 2n, 3n, 4n, 5n, 6n],
    );
    assert.deepEqual(
      events.map((e) => e.kind),
      ['amp', 'amp', 'amp', 'amp', 'regular', 'amp'],
    );
  });

  it('records in the earlier format (JSON) are read: invoice, sets, lists, settlements, counters; new sets go on from them', async () => {
    const { store, writes } = counting(await openMemoryStore());
    const enc = new TextEncoder();
    const addr = randomBytes(32);
    const { set: old, children } = settledTwoShardSet(addr, 'old', [{ type: 65537n, value: new Uint8Array([1, 2]) }]);
    const inv: Invoice = {
      addIndex: 1n,
      kind: 'amp',
      state: 'open',
      paymentHash: randomBytes(32),
      paymentAddr: addr,
      amountMsat: 0n,
      createdAt: 1_700_000_000,
      expirySeconds: 30 * 24 * 3600,
      minFinalCltvExpiryDelta: 18,
      amountPaidMsat: 2000n,
      settleIndex: 1n,
      settledAt: 1_700_000_000,
      settledSets: 1,
    };
    // the keys as the earlier code spelt them
    const key = (k: string): Uint8Array => enc.encode(k);
    const keys = {
      invoice: key(`i/${bytesToHex(addr)}`),
      hash: key(`h/${bytesToHex(inv.paymentHash)}`),
      set: key(`s/${bytesToHex(old.setId)}`),
      list: key(`is/${bytesToHex(addr)}/${'1'.padStart(16, '0')}`),
      settle: key(`si/${'1'.padStart(16, '0')}`),
    };
    assert.deepEqual(
      [invoiceKey(addr), hashKey(inv.paymentHash), setKey(old.setId), invoiceSetKey(addr, 1n), settleKey(1n)],
      Object.values(keys),
    );
    await store.batch([
      { type: 'put', key: keys.invoice, value: encodeJson(inv) },
      { type: 'put', key: keys.hash, value: enc.encode(bytesToHex(addr)) },
      { type: 'put', key: keys.set, value: encodeJson(old) },
      { type: 'put', key: keys.list, value: enc.encode(bytesToHex(old.setId)) },
      { type: 'put', key: keys.settle, value: encodeJson({ addr: bytesToHex(addr), setId: bytesToHex(old.setId) }) },
      { type: 'put', key: key('counters'), value: encodeJson({ addIndex: 1n, settleIndex: 1n }) },
    ]);
    writes.length = 0;
    const clock = new Clock();
    const reg = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await reg.start();
    const set = (await reg.lookupSet(old.setId))!;
    assert.equal(set.htlcs.length, 2);
    assert.ok(equalBytes(set.htlcs[1]!.preimage, children[1]!.preimage));
    assert.deepEqual(set.htlcs[0]!.customRecords, [{ type: 65537n, value: new Uint8Array([1, 2]) }]);
    // the old set's HTLC asked again gets its preimage; a new one with that set_id fails
    const oldShard = (htlcId: bigint): FinalHtlc => ({
      ...shardHtlc({ addr, setId: old.setId, child: children[1]!, amountMsat: 1000n, totalMsat: 2000n, arrivedAt: clock.now }),
      key: { channelId: 'old', htlcId },
    });
    const replay = await reg.handle(oldShard(1n), () => undefined);
    assert.ok(replay.action === 'settle' && equalBytes(replay.preimage, children[1]!.preimage));
    const fresh = await reg.handle(oldShard(7n), () => undefined);
    assert.ok(fresh.action === 'fail' && fresh.failure.name === 'incorrect_or_unknown_payment_details');
    const events: SettleEvent[] = [];
    await reg.subscribeSettled(0n, (e) => events.push(e));
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]!.customRecords, [{ type: 65537n, value: new Uint8Array([1, 2]) }]);
    // a new set on the old invoice: settle index 2, listed after the old one
    const ids = await paySets(reg, clock, addr, 1);
    const got = (await reg.lookupByAddr(addr, { withSets: true }))!;
    assert.equal(got.settledSets, 2);
    assert.deepEqual(
      got.sets!.map((x) => bytesToHex(x.setId)),
      [bytesToHex(old.setId), bytesToHex(ids[0]!)],
    );
    assert.equal(got.sets![1]!.settleIndex, 2n);
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    assert.equal((await again.lookupByAddr(addr))!.settledSets, 2);
    assert.equal((await again.addInvoice({})).addIndex, 2n);
  });

  it('set records: the binary format round-trips (custom records, non-AMP HTLCs), from objects and from columns alike', () => {
    const { children } = shardsOf(3);
    const set: AmpSet = {
      setId: randomBytes(32),
      paymentAddr: randomBytes(32),
      state: 'settled',
      settleIndex: 0x1_0000_0001n,
      settledAt: 2 ** 40 + 5,
      amountPaidMsat: 2n ** 60n,
      htlcs: children.map((c, i) => ({
        circuit: `${'ab'.repeat(32)}/${i.toString(16).padStart(16, '0')}`,
        amountMsat: BigInt(i) * 1_000_000_007n,
        paymentHash: c.hash,
        preimage: c.preimage,
        share: c.share,
        childIndex: i === 2 ? 0xffffffff : c.childIndex,
        ...(i === 1
          ? {
              customRecords: [
                { type: 65536n, value: new Uint8Array(0) },
                { type: 2n ** 63n, value: randomBytes(300) },
              ],
            }
          : {}),
      })),
    };
    const bytes = encodeSet(set);
    assert.equal(bytes[0], SET_RECORD_V1);
    assert.deepEqual(decodeSet(bytes), set);
    // version 2, from columns (what the registry writes): preimages, hashes and circuit keys derived on reading
    const sh = AmpShards.random();
    const kids = [sh.next(7), sh.next(0xffffffff), sh.next(0, { last: true })];
    const chan = 'ab'.repeat(32);
    const htlcIds = [0n, 1n << 40n, 2n ** 64n - 1n];
    const v2: AmpSet = {
      ...set,
      setId: sh.setId,
      htlcs: kids.map((c, i) => ({
        circuit: `${chan}/${htlcIds[i]!.toString(16).padStart(16, '0')}`,
        amountMsat: set.htlcs[i]!.amountMsat,
        paymentHash: c.hash,
        preimage: c.preimage,
        share: c.share,
        childIndex: c.childIndex,
        ...(set.htlcs[i]!.customRecords !== undefined ? { customRecords: set.htlcs[i]!.customRecords } : {}),
      })),
    };
    const columns = encodeSetColumns({
      setId: v2.setId,
      paymentAddr: v2.paymentAddr,
      settleIndex: v2.settleIndex,
      settledAt: v2.settledAt,
      amountPaidMsat: v2.amountPaidMsat,
      n: 3,
      channelIds: [chan, chan, chan],
      htlcIds,
      amounts: v2.htlcs.map((h) => h.amountMsat),
      sharesAndHashes: Uint8Array.from(v2.htlcs.flatMap((h) => [...h.share!, ...h.paymentHash])),
      childIndexes: v2.htlcs.map((h) => h.childIndex!),
      customRecords: v2.htlcs.map((h) => h.customRecords),
    });
    assert.equal(columns[0], SET_RECORD_V2);
    assert.deepEqual(decodeSet(columns), v2);
    assert.equal(encodeSet(v2).length - columns.length, 3 * (2 * 32) - 3 * (8 - 17), 'no preimage, no hash; the HTLC id binary');
    assert.throws(() => decodeSet(columns.subarray(0, columns.length - 1)), /ERR_TRUNCATED/);
    assert.throws(() => decodeSet(Uint8Array.from([...columns, 0])), /ERR_TRAILING_BYTES/);
    const badFlags = Uint8Array.from(columns);
    badFlags[1 + 64 + 24 + 4] = 1;
    assert.throws(() => decodeSet(badFlags), /ERR_INVALID_VALUE/);
    const tooMany = Uint8Array.from(columns);
    new DataView(tooMany.buffer).setUint32(1 + 64 + 24, 0xffffffff);
    assert.throws(() => decodeSet(tooMany), /ERR_TRUNCATED/);
    const plain: AmpSet = {
      ...set,
      htlcs: [{ circuit: 'ü/1', amountMsat: 1n, paymentHash: sha256(new Uint8Array(32)), preimage: new Uint8Array(32) }],
    };
    assert.deepEqual(decodeSet(encodeSet(plain)), plain);
    assert.throws(() => decodeSet(bytes.subarray(0, bytes.length - 1)), /ERR_TRUNCATED/);
    assert.throws(() => decodeSet(Uint8Array.from([...bytes, 0])), /ERR_TRAILING_BYTES/);
  });

  it('an AMP set settled by the version before chunks (its own 65-byte reference, a version 1 record) is replayed', async () => {
    const clock = new Clock();
    const store = await openMemoryStore();
    const reg = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await reg.start();
    const inv = await reg.addInvoice({ amp: true });
    const { set, children } = settledTwoShardSet(inv.paymentAddr, 'c0');
    await store.put(setKey(set.setId), encodeSet(set));
    await store.put(settleKey(1n), Uint8Array.from([1, ...inv.paymentAddr, ...set.setId]));
    const again = new InvoiceRegistry({ store, timers: clock, now: () => clock.now });
    await again.start();
    const got = (await again.lookupByAddr(inv.paymentAddr))!;
    assert.equal(got.settledSets, 1);
    assert.equal(got.amountPaidMsat, 2000n);
    assert.deepEqual(await again.lookupSet(set.setId), set);
    const events: SettleEvent[] = [];
    await again.subscribeSettled(0n, (e) => events.push(e));
    assert.deepEqual(
      events.map((e) => [e.settleIndex, bytesToHex(e.setId!)]),
      [[1n, bytesToHex(set.setId)]],
    );
    const refused = await again.handle(
      shardHtlc({
        addr: inv.paymentAddr,
        setId: set.setId,
        child: children[0]!,
        amountMsat: 1000n,
        totalMsat: 2000n,
        arrivedAt: clock.now,
      }),
      () => undefined,
    );
    assert.equal(refused.action, 'fail', 'a set settled before is not paid twice');
  });

  it('a chunk of settlement references that does not parse: the start fails with a typed error, nothing is guessed', async () => {
    const store = await openMemoryStore();
    const reg = new InvoiceRegistry({ store, timers: new Clock() });
    await reg.start();
    const ok = putSettleChunk(1n, [{ addr: randomBytes(32), setId: randomBytes(32) }]);
    for (const bad of [ok.type === 'put' ? ok.value.subarray(0, 40) : new Uint8Array(0), Uint8Array.from([2, 0, 0])]) {
      await store.put(settleKey(1n), bad);
      await assert.rejects(new InvoiceRegistry({ store, timers: new Clock() }).start(), /ERR_INVALID_VALUE/);
    }
    assert.throws(() => putSettleChunk(1n, []), /ERR_INVOICE_ARGUMENT/);
  });

  describe('the settled-set filter', () => {
    /** A store that counts its reads. */
    const reading = (inner: KvStore): { store: KvStore; reads: () => number } => {
      let n = 0;
      const store: KvStore = {
        get: (k) => (n++, inner.get(k)),
        put: (k, v) => inner.put(k, v),
        del: (k) => inner.del(k),
        batch: (ops) => inner.batch(ops),
        entries: (p) => inner.entries(p),
        sublevel: () => {
          throw new Error('not used');
        },
        close: () => inner.close(),
      };
      return { store, reads: () => n };
    };
    /** Pays one set of two shards; returns its shards and the first one's HTLC. */
    const pay = async (
      reg: InvoiceRegistry,
      addr: Uint8Array,
      now: number,
    ): Promise<{ setId: Uint8Array; first: FinalHtlc; answer: FinalResolution }> => {
      const { shards, children } = shardsOf(2);
      const hs = children.map((c) =>
        shardHtlc({ addr, setId: shards.setId, child: c, amountMsat: 500n, totalMsat: 1000n, arrivedAt: now }),
      );
      const held = await reg.handle(hs[0]!, () => undefined);
      assert.equal(held.action, 'hold');
      return { setId: shards.setId, first: hs[0]!, answer: await reg.handle(hs[1]!, () => undefined) };
    };
    const again = (h: FinalHtlc): FinalHtlc => ({ ...h, key: { channelId: 'c1', htlcId: nextId++ } });

    it('new sets read nothing; a settled set_id is refused after a restart, before and after the filter has loaded', async () => {
      const clock = new Clock();
      const mem = await openMemoryStore();
      const r1 = reading(mem);
      const reg = new InvoiceRegistry({ store: r1.store, timers: clock, now: () => clock.now });
      await reg.start();
      assert.equal(await reg.settledSetsLoaded(), true);
      const inv = await reg.addInvoice({ amp: true });
      const before = r1.reads();
      const paid: { setId: Uint8Array; first: FinalHtlc }[] = [];
      // 70 sets: the first 64 listed at a checkpoint, the last 6 settled since (replayed on a start)
      for (let i = 0; i < 70; i++) {
        const p = await pay(reg, inv.paymentAddr, clock.now);
        assert.equal(p.answer.action, 'settle');
        paid.push(p);
      }
      assert.equal(r1.reads() - before, 0, 'no store read for a new set');
      assert.equal(await reg.lookupSet(randomBytes(32)), undefined);
      assert.equal(r1.reads() - before, 0, 'an unknown set_id is not looked for');

      const r2 = reading(mem);
      const x = new InvoiceRegistry({ store: r2.store, timers: clock, now: () => clock.now });
      await x.start();
      const atStart = r2.reads();
      // not loaded yet: the store is asked
      const early = await x.handle(again(paid[0]!.first), () => undefined);
      assert.ok(early.action === 'fail' && early.failure.name === 'incorrect_or_unknown_payment_details');
      assert.ok(r2.reads() > atStart);
      assert.equal(await x.settledSetsLoaded(), true);
      for (const p of [paid[1]!, paid[63]!, paid[64]!, paid[69]!]) {
        const r = await x.handle(again(p.first), () => undefined);
        assert.ok(r.action === 'fail' && r.failure.name === 'incorrect_or_unknown_payment_details', 'a settled set_id is not paid twice');
        assert.ok((await x.lookupSet(p.setId)) !== undefined);
      }
      const loaded = r2.reads();
      for (let i = 0; i < 5; i++) assert.equal((await pay(x, inv.paymentAddr, clock.now)).answer.action, 'settle');
      assert.equal(r2.reads() - loaded, 0, 'loaded: new sets read nothing');
    });

    it('a filter too small for its sets answers "maybe" for nearly every set: new sets read the store and still settle', async () => {
      const clock = new Clock();
      const r = reading(await openMemoryStore());
      const reg = new InvoiceRegistry({ store: r.store, timers: clock, now: () => clock.now, config: { settledSetFilterBits: 1024 } });
      await reg.start();
      await reg.settledSetsLoaded();
      const inv = await reg.addInvoice({ amp: true });
      const paid = [];
      // 1200 sets × 4 probes in 1024 bits: nearly every bit set, so a new set_id is a "maybe" 96 % of the time
      for (let i = 0; i < 1200; i++) paid.push(await pay(reg, inv.paymentAddr, clock.now));
      assert.ok(paid.every((p) => p.answer.action === 'settle'));
      const before = r.reads();
      for (let i = 0; i < 20; i++) assert.equal((await pay(reg, inv.paymentAddr, clock.now)).answer.action, 'settle');
      assert.ok(r.reads() - before >= 10, `reads for 20 new sets: ${r.reads() - before}`);
      const twice = await reg.handle(again(paid[123]!.first), () => undefined);
      assert.equal(twice.action, 'fail');
    });

    it('the filter itself: holds every set_id added; "maybe" for all until loaded; false positives as its size says', () => {
      const f = new SettledSetFilter(2 ** 20);
      const ids = Array.from({ length: 50_000 }, () => randomBytes(32));
      for (const id of ids) f.add(id);
      const fresh = Array.from({ length: 50_000 }, () => randomBytes(32));
      assert.ok(
        fresh.every((id) => f.mayHold(id)),
        'not loaded: "maybe" for everything',
      );
      f.loaded = true;
      assert.ok(ids.every((id) => f.mayHold(id)));
      // 50 000 × 4 probes in 2^20 bits: 17.4 % of the bits set, so (0.174)^4 ≈ 0.09 % false positives (about 46 of 50 000)
      const fp = fresh.filter((id) => f.mayHold(id)).length;
      assert.ok(fp > 0 && fp < 200, `false positives: ${fp} of 50 000`);
    });

    it('a filter that cannot load (the store fails to list): a warning, and new sets keep reading the store', async () => {
      const clock = new Clock();
      const r = reading(await openMemoryStore());
      const warnings: string[] = [];
      const failing: KvStore = {
        ...r.store,
        entries: (p) =>
          new TextDecoder().decode(p) === 'is/'
            ? (async function* (): AsyncIterable<[Uint8Array, Uint8Array]> {
                yield* [];
                throw new Error('disk gone');
              })()
            : r.store.entries(p),
      };
      const reg = new InvoiceRegistry({
        store: failing,
        timers: clock,
        now: () => clock.now,
        log: (level, _o, msg) => level === 'warn' && warnings.push(msg),
      });
      await reg.start();
      assert.equal(await reg.settledSetsLoaded(), false);
      assert.equal(warnings.length, 1);
      const inv = await reg.addInvoice({ amp: true });
      const first = await pay(reg, inv.paymentAddr, clock.now);
      const before = r.reads();
      assert.equal((await pay(reg, inv.paymentAddr, clock.now)).answer.action, 'settle');
      assert.ok(r.reads() > before, 'not loaded: the store is asked');
      assert.equal((await reg.handle(again(first.first), () => undefined)).action, 'fail');
    });

    it('its size must be a power of two', async () => {
      for (const bits of [1000, 3 * 1024, 512])
        assert.throws(
          () => new InvoiceRegistry({ store: null as unknown as KvStore, timers: new Clock(), config: { settledSetFilterBits: bits } }),
          /ERR_INVOICE_ARGUMENT/,
        );
    });
  });
});
