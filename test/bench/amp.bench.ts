/**
 * AMP receive benchmarks (suite "amp").
 *
 * intake: the invoice registry alone (a memory store, timers that never fire)
 *   takes AMP sets of 8 shards on one reusable invoice, shard by shard as the
 *   switch hands them over (each at once, not waiting for earlier answers, at
 *   most 64 answers outstanding), up to each set's settlement (its store
 *   write, shared with the sets completing meanwhile, and every shard's child
 *   preimage). Shards/s. Bound, measured in the same
 *   run on the same inputs: per shard one Map lookup by a 64-character key,
 *   a 32-byte XOR into a running value, and 2 × SHA-256 (the child's
 *   preimage from root ‖ share ‖ index, and its hash).
 * lookup_1m_vs_1k: lookups of a settled set by set_id on an invoice with
 *   1 000 000 settled sets (a LevelDB store on disk), per second, against the
 *   same on an invoice with 1 000 (bound): ratio = 1k time / 1M time.
 * lookup_heap_1m_minus_1k: MB of heap after loading the registry and looking
 *   the invoice up with 1 000 000 sets, minus the same with 1 000; bound 50 MB
 *   (ratio ≤ 1 meets it).
 * intake_vs_bound_with_one_write: the same intake, against a bound that adds
 *   to the per-shard bound above one store write per set (one batch of one put
 *   of a set record's size under a fresh random key on a memory store, per
 *   8 shards), measured in the same run: how close the intake comes to the
 *   floor that includes the durable write every set needs.
 * intake_disk_vs_bound_with_one_synced_write: the same intake with the registry on LevelDB on disk (every write
 *   synced), against the per-shard bound plus one synced write per set (a batch of one put of a set record's size on
 *   another LevelDB on the same disk, per 8 shards), measured in the same run. Sets that complete while a write is
 *   under way share the next one, so the ratio can pass 1: it says how far the group commit takes the intake past one
 *   synced write per set.
 * heap_per_pending_shard: heap bytes plus array buffer bytes (byte arrays
 *   kept outside the JS heap count too) per pending shard with 10 000 shards
 *   held in incomplete sets (inputs released: fed from a function of their
 *   own, so no register of the measuring frame keeps them; garbage collected
 *   before and after); bound 1024 bytes (ratio ≤ 1 meets it).
 *
 * pay_e2e: A → D AMP payments of 8 shards (20 000 sat each) to one reusable invoice of D, over the two paths of the
 *   four-node diamond (A–B–D, A–C–D, 16 000 000 sat each; real links, channels and switch, all four nodes in this one
 *   process), eight payments at a time through the payment service (pathfinding, the payment lifecycle, D's
 *   registry): payments/s and shards/s, p50/p99 payment latency. Bound: the crypto each shard costs the whole
 *   process (test/bench/htlc-bound.ts: A's two-hop onion, B's or C's peel, D's peel, and one sign + one verify per
 *   commitment_signed and per HTLC signature the run's commitments carried, counted on the four channels), measured
 *   in the same run.
 *
 * receive_e2e: AMP sets of 8 shards (20 000 sat each) received by D from A over real channels in one process, the
 *   shards sent with the switch's sendToRoute alternately over A–B–D and A–C–D, 8 sets at a time, each shard built
 *   with onion/amp.ts: shards/s, p50/p99 set latency (first shard sent to the last settled at A). Bound: per shard one
 *   final-hop onion peel, plus one sign + one verify per commitment_signed and per HTLC signature on D's two channels
 *   (both ends, counted in the run) per shard.
 *
 * In pay_e2e and receive_e2e the four nodes share one sig pool, as in the switch suite (AMPNODE_SIG_WORKERS); the
 * bounds count the crypto's cost on this one thread.
 *
 * AMP_BENCH_SETS overrides the 1 000 000 (for a quick run); AMP_BENCH_PAYMENTS the 60 payments of pay_e2e and the 60
 * sets of receive_e2e; AMP_BENCH_CONCURRENCY the payments (sets) in flight at once; AMP_BENCH_ONLY (a comma list of
 * intake, heap, lookup, receive_e2e, pay_e2e) runs only those parts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openDiskStore, openMemoryStore, type BatchOp, type KvStore } from '../../db/store.js';
import { InvoiceRegistry } from '../../htlc/invoices/index.js';
import { encodeSet, putCounters, putInvoice, putSetChunk, setKey } from '../../htlc/invoices/store.js';
import type { AmpSet, Invoice } from '../../htlc/invoices/index.js';
import type { FinalHtlc, Timers } from '../../htlc/switch/index.js';
import { AmpShards, randomChildIndex, type AmpChild } from '../../onion/index.js';
import { bytesToHex } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { emit, opsPerSecond, opsPerSecondAsync } from './harness.js';
import { benchSigPool, perHtlcPrimitiveSeconds, quantile, sigPoolSpec } from './htlc-bound.js';
import { buildDiamond, channelEnds, hintsReady, routeVia } from '../node/switch-fixture.js';
import { teardown } from '../node/channels-fixture.js';

const SUITE = 'amp';
const SHARDS_PER_SET = 8;
const NEVER: Timers = { setTimeout: () => 0, clearTimeout: () => undefined };

let htlcId = 0n;
function shard(addr: Uint8Array, setId: Uint8Array, child: AmpChild, amountMsat: bigint, totalMsat: bigint): FinalHtlc {
  return {
    key: { channelId: 'bench', htlcId: htlcId++ },
    amountMsat,
    cltvExpiry: 2000,
    paymentHash: child.hash,
    payload: {
      amountToForwardMsat: amountMsat,
      outgoingCltvValue: 2000,
      mpp: { paymentAddr: addr, totalMsat },
      amp: { share: child.share, setId, childIndex: child.childIndex },
      customRecords: [],
      unknownRecords: [],
    },
    currentHeight: 1000,
    arrivedAt: Date.now(),
  };
}

/** `sets` complete sets of 8 shards for `addr` (sender work, done before timing). */
function makeSets(addr: Uint8Array, sets: number, shardsPerSet = SHARDS_PER_SET, sendAll = true): FinalHtlc[] {
  const out: FinalHtlc[] = [];
  for (let s = 0; s < sets; s++) {
    const sh = AmpShards.random();
    const n = sendAll ? shardsPerSet : shardsPerSet - 1;
    for (let i = 0; i < shardsPerSet; i++) {
      const child = sh.next(randomChildIndex(), { last: i === shardsPerSet - 1 });
      if (i < n) out.push(shard(addr, sh.setId, child, 1000n, 1000n * BigInt(shardsPerSet)));
    }
  }
  return out;
}

/**
 * Hands `input` to the registry as the switch does: each HTLC as soon as it is there, without waiting for earlier
 * ones' answers (the switch asks in one lane per HTLC), at most HAND_OVER_WINDOW answers outstanding.
 */
const HAND_OVER_WINDOW = 64;
async function handOver(reg: InvoiceRegistry, input: FinalHtlc[], resolve: (a: { action: string }) => void): Promise<void> {
  const outstanding: Promise<unknown>[] = [];
  let head = 0;
  for (const h of input) {
    const r = reg.handle(h, resolve);
    if (!(r instanceof Promise)) continue;
    outstanding.push(r);
    if (outstanding.length - head > HAND_OVER_WINDOW) await outstanding[head++];
  }
  await Promise.all(outstanding);
}

/** The intake of `rounds` rounds of 1000 sets (8000 shards, tens of ms) on a fresh registry over `store`: the best shards/s. */
async function intakeOn(store: KvStore, rounds: number, between: () => Promise<void>): Promise<number> {
  const reg = new InvoiceRegistry({ store, timers: NEVER });
  await reg.start();
  const inv = await reg.addInvoice({ amp: true });
  let best = 0;
  let settled = 0;
  const count = (a: { action: string }): void => {
    if (a.action === 'settle') settled++;
  };
  for (let round = 0; round < rounds; round++) {
    const input = makeSets(inv.paymentAddr, 1000);
    const t0 = performance.now();
    await handOver(reg, input, count);
    const dt = performance.now() - t0;
    // the callbacks answer 7 of each 8 shards (the last one's answer is the returned value)
    if (settled !== (input.length * (SHARDS_PER_SET - 1)) / SHARDS_PER_SET) throw new Error(`intake: ${settled} shards settled`);
    settled = 0;
    best = Math.max(best, (input.length * 1000) / dt);
    await between();
  }
  return best;
}

async function intake(): Promise<void> {
  // the bound's inputs: the same shapes
  const keys = new Map<string, number>();
  const sample = Array.from({ length: 64 }, () => ({ key: bytesToHex(randomBytes(32)), share: randomBytes(32), root: randomBytes(32) }));
  for (const s of sample) keys.set(s.key, 1);
  const acc = new Uint8Array(32);
  const buf = new Uint8Array(68);
  let j = 0;
  const bound = (): void => {
    const s = sample[j++ & 63]!;
    keys.get(s.key);
    for (let i = 0; i < 32; i++) acc[i]! ^= s.share[i]!;
    buf.set(s.root, 0);
    buf.set(s.share, 32);
    sha256(sha256(buf));
  };
  // one durable write per set: a batch of one put of a set record's size under a fresh key
  const recordBytes = 1 + 2 * 32 + 3 * 8 + 4 + SHARDS_PER_SET * (1 + 2 + 22 + 8 + 3 * 32 + 4);
  const writeKeys = Array.from({ length: 4096 }, () => new TextEncoder().encode(`s/${bytesToHex(randomBytes(32))}`));
  let w = 0;
  const writesPerSecond = (store: KvStore, ms: number, warmupMs: number): Promise<number> =>
    opsPerSecondAsync(
      async () => {
        await store.batch([{ type: 'put', key: writeKeys[w++ & 4095]!, value: new Uint8Array(recordBytes) }]);
      },
      ms,
      warmupMs,
    );
  let bestBound = 0;
  let bestWrites = 0;
  const writeStore = await openMemoryStore();
  let round = 0;
  const best = await intakeOn(await openMemoryStore(), 8, async () => {
    bestBound = Math.max(bestBound, opsPerSecond(bound, 300, round === 0 ? 200 : 50));
    bestWrites = Math.max(bestWrites, await writesPerSecond(writeStore, 150, round === 0 ? 100 : 20));
    round++;
  });
  await writeStore.close();
  emit(SUITE, 'intake', 'shards/s', best, bestBound);
  emit(SUITE, 'intake_vs_bound_with_one_write', 'shards/s', best, 1 / (1 / bestBound + 1 / (bestWrites * SHARDS_PER_SET)));

  // the same on LevelDB on disk, every write synced
  const dir = mkdtempSync(join(tmpdir(), 'ampnode-bench-intake-'));
  try {
    const disk = await openDiskStore(join(dir, 'registry'));
    const syncStore = await openDiskStore(join(dir, 'writes'));
    let syncedWrites = 0;
    const bestDisk = await intakeOn(disk, 3, async () => {
      syncedWrites = Math.max(syncedWrites, await writesPerSecond(syncStore, 300, 50));
    });
    await disk.close();
    await syncStore.close();
    emit(
      SUITE,
      'intake_disk_vs_bound_with_one_synced_write',
      'shards/s',
      bestDisk,
      1 / (1 / bestBound + 1 / (syncedWrites * SHARDS_PER_SET)),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An invoice with `n` settled sets of one HTLC each, written straight into a disk store; returns two set_ids to look up. */
async function populate(dir: string, n: number): Promise<{ store: KvStore; addr: Uint8Array; ids: Uint8Array[] }> {
  const store = await openDiskStore(dir);
  const addr = randomBytes(32);
  const inv: Invoice = {
    addIndex: 1n,
    kind: 'amp',
    state: 'open',
    paymentHash: randomBytes(32),
    paymentAddr: addr,
    amountMsat: 0n,
    createdAt: Math.floor(Date.now() / 1000),
    expirySeconds: 30 * 24 * 3600,
    minFinalCltvExpiryDelta: 18,
    amountPaidMsat: BigInt(n) * 1000n,
    settledSets: n,
    settleIndex: BigInt(n),
  };
  const ids: Uint8Array[] = [];
  let ops: BatchOp[] = [putInvoice(inv), putCounters({ addIndex: 1n, settleIndex: BigInt(n) })];
  const preimage = randomBytes(32);
  const hash = sha256(preimage);
  // listed as the registry lists them: in chunks of 64 consecutive sets
  let chunk: Uint8Array[] = [];
  for (let i = 1; i <= n; i++) {
    const setId = randomBytes(32);
    if (ids.length < 2000 && i % Math.max(1, Math.floor(n / 2000)) === 0) ids.push(setId);
    const set: AmpSet = {
      setId,
      paymentAddr: addr,
      state: 'settled',
      settleIndex: BigInt(i),
      settledAt: inv.createdAt,
      amountPaidMsat: 1000n,
      htlcs: [{ circuit: `c/${i}`, amountMsat: 1000n, paymentHash: hash, preimage, share: preimage, childIndex: i }],
    };
    ops.push({ type: 'put', key: setKey(setId), value: encodeSet(set) });
    chunk.push(setId);
    if (chunk.length === 64 || i === n) {
      ops.push(putSetChunk(addr, BigInt(i - chunk.length + 1), chunk));
      chunk = [];
    }
    if (ops.length >= 20_000) {
      await store.batch(ops);
      ops = [];
    }
  }
  if (ops.length > 0) await store.batch(ops);
  return { store, addr, ids };
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1e6;
}

async function lookups(): Promise<void> {
  const big = Number(process.env['AMP_BENCH_SETS'] ?? 1_000_000);
  const root = mkdtempSync(join(tmpdir(), 'ampnode-bench-amp-'));
  try {
    const small = await populate(join(root, 'small'), 1000);
    const large = await populate(join(root, 'large'), big);
    const measure = async (p: { store: KvStore; addr: Uint8Array; ids: Uint8Array[] }): Promise<{ perSec: number; heap: number }> => {
      const reg = new InvoiceRegistry({ store: p.store, timers: NEVER });
      await reg.start();
      // its one read of the lists of sets, in the background after a start, done before lookups are timed
      if (!(await reg.settledSetsLoaded())) throw new Error('settled-set filter not loaded');
      await reg.lookupByAddr(p.addr);
      const heap = heapMb();
      let perSec = 0;
      for (let round = 0; round < 3; round++) {
        const t0 = performance.now();
        for (const id of p.ids) if ((await reg.lookupSet(id)) === undefined) throw new Error('set not found');
        perSec = Math.max(perSec, (p.ids.length * 1000) / (performance.now() - t0));
      }
      return { perSec, heap };
    };
    // interleaved: large, small, large, small — the best of each
    let l = await measure(large);
    let s = await measure(small);
    const l2 = await measure(large);
    const s2 = await measure(small);
    l = { perSec: Math.max(l.perSec, l2.perSec), heap: Math.min(l.heap, l2.heap) };
    s = { perSec: Math.max(s.perSec, s2.perSec), heap: Math.min(s.heap, s2.heap) };
    emit(SUITE, big === 1_000_000 ? 'lookup_1m_vs_1k' : `lookup_${big}_vs_1k`, 'lookups/s', l.perSec, s.perSec);
    emit(SUITE, 'lookup_heap_1m_minus_1k', 'MB', Math.max(0, l.heap - s.heap), 50);
    await small.store.close();
    await large.store.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Heap plus array buffer bytes in use, after full collections. */
function memoryBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Hands `pending` shards (7 of 8 of each set: none completes) to `reg`; the inputs are garbage once it returns. */
async function feedPending(reg: InvoiceRegistry, addr: Uint8Array, pending: number): Promise<void> {
  const resolve = (): void => undefined;
  const input = makeSets(addr, Math.ceil(pending / (SHARDS_PER_SET - 1)), SHARDS_PER_SET, false).slice(0, pending);
  for (const h of input) await reg.handle(h, resolve);
}

async function heapPerPendingShard(): Promise<void> {
  const pending = 10_000;
  const reg = new InvoiceRegistry({
    store: await openMemoryStore(),
    timers: NEVER,
    config: { maxPendingHtlcs: pending, maxPendingSetsPerInvoice: pending },
  });
  await reg.start();
  const inv = await reg.addInvoice({ amp: true });
  // the baseline before the inputs exist: whatever of them the registry keeps counts
  const before = memoryBytes();
  await feedPending(reg, inv.paymentAddr, pending);
  const after = memoryBytes();
  if (reg.pendingCount() !== pending) throw new Error(`expected ${pending} pending shards, got ${reg.pendingCount()}`);
  emit(SUITE, 'heap_per_pending_shard', 'bytes', (after - before) / pending, 1024);
}

const PAY_SHARDS = 8;
const PAY_SHARD_SAT = 20_000n;
const PAYMENTS = Number(process.env['AMP_BENCH_PAYMENTS'] ?? 60);
/** Payments in flight at once (each its own AMP set on the one invoice). */
const PAY_CONCURRENCY = Number(process.env['AMP_BENCH_CONCURRENCY'] ?? 8);
/** Each diamond channel's capacity: the largest without option_support_large_channel, room for 90 payments. */
const BENCH_CHANNEL_SAT = 16_000_000n;

async function payE2e(): Promise<void> {
  const sigs = benchSigPool();
  const g = await buildDiamond({ spec: { payments: {}, ...sigPoolSpec(sigs) }, registry: { d: {} }, channelSat: BENCH_CHANNEL_SAT });
  try {
    await hintsReady(g);
    const invoice = await g.d.registry!.addInvoice({ amp: true });
    const payReq = g.d.payReq(invoice);
    const ends = channelEnds(g);
    const sigs = (): number =>
      ends.reduce((n, [x, ch]) => n + x.manager.commitSigsSent(ch.channelId) + x.manager.htlcSigsSent(ch.channelId), 0);
    const pay = async (): Promise<number> => {
      const t0 = performance.now();
      const r = await g.a.payments!.payInvoice(payReq, {
        amountMsat: BigInt(PAY_SHARDS) * PAY_SHARD_SAT * 1000n,
        maxShardMsat: PAY_SHARD_SAT * 1000n,
      });
      if (r.status !== 'succeeded' || r.attempts.filter((x) => x.status === 'settled').length !== PAY_SHARDS)
        throw new Error(`bench: a payment did not settle in ${PAY_SHARDS} shards: ${r.failureDetail ?? ''}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 2; i++) await pay(); // warm-up
    const sigs0 = sigs();
    const latencies: number[] = [];
    const t0 = performance.now();
    let started = 0;
    const worker = async (): Promise<void> => {
      while (started < PAYMENTS) {
        started++;
        latencies.push(await pay());
      }
    };
    await Promise.all(Array.from({ length: PAY_CONCURRENCY }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const shards = PAYMENTS * PAY_SHARDS;
    const p = perHtlcPrimitiveSeconds();
    const perShard = p.htlc + ((sigs() - sigs0) / shards) * (p.sign + p.verify);
    latencies.sort((x, y) => x - y);
    emit(SUITE, 'pay_e2e_payments', 'payments/s', PAYMENTS / seconds, 1 / (perShard * PAY_SHARDS));
    emit(SUITE, 'pay_e2e_shards', 'shards/s', shards / seconds, 1 / perShard);
    emit(SUITE, 'pay_e2e_latency_p50', 'ms', quantile(latencies, 0.5), perShard * PAY_SHARDS * 1000);
    emit(SUITE, 'pay_e2e_latency_p99', 'ms', quantile(latencies, 0.99), perShard * PAY_SHARDS * 1000);
  } finally {
    await teardown(g.chain, [g.a, g.b, g.c, g.d]);
    await sigs?.release();
  }
}

async function receiveE2e(): Promise<void> {
  const sigs = benchSigPool();
  const g = await buildDiamond({ spec: sigPoolSpec(sigs), registry: { d: {} }, channelSat: BENCH_CHANNEL_SAT });
  try {
    const invoice = await g.d.registry!.addInvoice({ amp: true });
    const dEnds = channelEnds(g).filter(([, ch]) => ch === g.bd || ch === g.cd);
    const sigs = (): number =>
      dEnds.reduce((n, [x, ch]) => n + x.manager.commitSigsSent(ch.channelId) + x.manager.htlcSigsSent(ch.channelId), 0);
    const shardMsat = PAY_SHARD_SAT * 1000n;
    const totalMsat = BigInt(PAY_SHARDS) * shardMsat;
    const receiveSet = async (): Promise<number> => {
      const t0 = performance.now();
      const set = AmpShards.random();
      const results = await Promise.all(
        Array.from({ length: PAY_SHARDS }, (_, i) => {
          const child = set.next(randomChildIndex(), { last: i === PAY_SHARDS - 1 });
          return g.a.manager.sendToRoute(routeVia(g, i % 2 === 0 ? 'b' : 'c', shardMsat), child.hash, {
            mpp: { paymentAddr: invoice.paymentAddr, totalMsat },
            amp: { share: child.share, setId: set.setId, childIndex: child.childIndex },
          });
        }),
      );
      if (results.some((r) => r.status !== 'settled')) throw new Error('bench: a shard of a set did not settle');
      return performance.now() - t0;
    };
    for (let i = 0; i < 2; i++) await receiveSet(); // warm-up
    const sigs0 = sigs();
    const latencies: number[] = [];
    let started = 0;
    const worker = async (): Promise<void> => {
      while (started < PAYMENTS) {
        started++;
        latencies.push(await receiveSet());
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: PAY_CONCURRENCY }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const shards = PAYMENTS * PAY_SHARDS;
    const p = perHtlcPrimitiveSeconds();
    const perShard = p.finalPeel + ((sigs() - sigs0) / shards) * (p.sign + p.verify);
    latencies.sort((x, y) => x - y);
    emit(SUITE, 'receive_e2e', 'shards/s', shards / seconds, 1 / perShard);
    emit(SUITE, 'receive_e2e_set_latency_p50', 'ms', quantile(latencies, 0.5), perShard * PAY_SHARDS * 1000);
    emit(SUITE, 'receive_e2e_set_latency_p99', 'ms', quantile(latencies, 0.99), perShard * PAY_SHARDS * 1000);
  } finally {
    await teardown(g.chain, [g.a, g.b, g.c, g.d]);
    await sigs?.release();
  }
}

export async function run(): Promise<void> {
  // AMP_BENCH_ONLY=intake,receive_e2e,... runs those parts alone (a quick look at one number)
  const only = process.env['AMP_BENCH_ONLY']?.split(',');
  const parts: [string, () => Promise<void>][] = [
    ['intake', intake],
    ['heap', heapPerPendingShard],
    ['lookup', lookups],
    ['receive_e2e', receiveE2e],
    ['pay_e2e', payE2e],
  ];
  for (const [name, part] of parts) if (only === undefined || only.includes(name)) await part();
}
