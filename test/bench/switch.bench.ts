/**
 * Switch benchmarks (suite "switch"): A → B → D over real links and channels, all in this one process (A, B and D
 * share the thread, so the value counts the work of all three).
 *
 * forward: HTLCs per second that reach D and settle back at A, with SWITCH_BENCH_INFLIGHT (default 100) in flight,
 * SWITCH_BENCH_HTLCS (default 2000) in all, over channels of 16 000 000 sat. The bound is the HTLCs per second this
 * thread could carry if it did nothing but the cryptography each one needs, measured in the same run:
 *   - A builds a two-hop onion (buildOnion), B peels it (intermediate), D peels its layer (final);
 *   - the signatures the channels need at this batch size, counted in the run on both channels (A–B, B–D), divided
 *     by the HTLCs: each commitment_signed sent is one sign by its sender and one verify by its receiver, and so is
 *     each HTLC signature it carries (BOLT 2/3: one per untrimmed HTLC of the commitment signed, so an HTLC that
 *     stays in flight while other batches are signed is signed again each time; that is the protocol, not waste).
 * Hashes, AEAD (Noise), the HTLCs' removal and the store's writes are not in the bound: they are what the ratio
 * leaves room for. The bound is the crypto's cost on this one thread; the nodes share one sig pool, as createNode
 * gives a node (AMPNODE_SIG_WORKERS threads, default one fewer than the cores; 0: none): of a commitment_signed with
 * 8 or more signatures, half are made or checked on another core, so the value is not capped at what one thread
 * could do. Also printed: p50/p99 latency (add at A to preimage at A) and commitment_signed per HTLC.
 * SWITCH_BENCH_DISK=1 puts the four nodes' stores on LevelDB on disk (synced writes) instead of memory.
 */
import { buildDiamond, routeVia, settledEverywhere } from '../node/switch-fixture.js';
import { teardown } from '../node/channels-fixture.js';
import { emit } from './harness.js';
import { benchSigPool, perHtlcPrimitiveSeconds, quantile, sigPoolSpec } from './htlc-bound.js';

const SUITE = 'switch';
const TOTAL = Number(process.env['SWITCH_BENCH_HTLCS'] ?? 2000);
const INFLIGHT = Number(process.env['SWITCH_BENCH_INFLIGHT'] ?? 100);

export async function run(): Promise<void> {
  const sigs = benchSigPool();
  const g = await buildDiamond({
    ...(process.env['SWITCH_BENCH_DISK'] === '1' ? { disk: ['a', 'b', 'c', 'd'] } : {}),
    spec: sigPoolSpec(sigs),
    channelSat: 16_000_000n,
  });
  try {
    const amount = 1_000_000n;
    const ends = [
      [g.a, g.ab],
      [g.b, g.ab],
      [g.b, g.bd],
      [g.d, g.bd],
    ] as const;
    const sigsNow = (): number => ends.reduce((n, [x, ch]) => n + x.manager.commitSigsSent(ch.channelId), 0);
    const htlcSigsNow = (): number => ends.reduce((n, [x, ch]) => n + x.manager.htlcSigsSent(ch.channelId), 0);
    const payOne = async (): Promise<number> => {
      const inv = g.handler.invoice(amount);
      const t0 = performance.now();
      const r = await g.a.manager.sendToRoute(routeVia(g, 'b', amount), inv.paymentHash);
      if (r.status !== 'settled') throw new Error(`bench: an HTLC failed: ${r.reason}`);
      return performance.now() - t0;
    };
    // warm-up: JIT and the first commitments
    await Promise.all(Array.from({ length: 20 }, payOne));
    await settledEverywhere(g);

    const sigs0 = sigsNow();
    const htlcSigs0 = htlcSigsNow();
    const latencies: number[] = [];
    let started = 0;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (started < TOTAL) {
        started++;
        latencies.push(await payOne());
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, worker));
    const seconds = (performance.now() - t0) / 1000;
    await settledEverywhere(g);
    const commitSigs = sigsNow() - sigs0;
    const htlcSigs = htlcSigsNow() - htlcSigs0;

    const p = perHtlcPrimitiveSeconds();
    const commitPerHtlc = commitSigs / TOTAL;
    const boundSeconds = p.htlc + ((commitSigs + htlcSigs) / TOTAL) * (p.sign + p.verify);
    emit(SUITE, `forward_${INFLIGHT}_inflight`, 'htlcs/s', TOTAL / seconds, 1 / boundSeconds);
    latencies.sort((x, y) => x - y);
    // latency: bound = the primitives of one HTLC alone, in ms
    emit(SUITE, 'latency_p50', 'ms', quantile(latencies, 0.5), boundSeconds * 1000);
    emit(SUITE, 'latency_p99', 'ms', quantile(latencies, 0.99), boundSeconds * 1000);
    // commitment_signed per HTLC on both channels; bound: without batching an add and its settle cost 4 per channel (each
    // side signs once for the add and once for the removal), 8 on the two
    emit(SUITE, 'commit_sigs_per_htlc', 'messages', commitPerHtlc, 8);
    // HTLC signatures per HTLC; bound: without batching and with one HTLC in flight, 2 per channel (one each way), 4
    emit(SUITE, 'htlc_sigs_per_htlc', 'signatures', htlcSigs / TOTAL, 4);
  } finally {
    await teardown(g.chain, [g.a, g.b, g.c, g.d]);
    await sigs?.release();
  }
}
