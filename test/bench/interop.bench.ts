/**
 * Interop benchmark (suite "interop", run only when named: `npm run bench -- interop`; it needs the lnd and btcd
 * binaries test/interop builds, and a few minutes).
 *
 * receive_vs_lnd: AMP receive throughput of the ampnode daemon against lnd's, with the same payer in the same run.
 *   One payer lnd opens a channel of the same capacity (anchors, 5 000 000 sat) to a receiving lnd and to the ampnode
 *   daemon (both with accept-amp, lnd at log level info, ampnode at its default, info). The payer sends spontaneous
 *   AMP payments of 8 shards of 10 000 sat each (`SendPaymentV2` over REST: amp, max_shard_size_msat), 4 payments in
 *   flight at once, 12 payments a round, to one receiver at a time; rounds alternate lnd, ampnode, lnd, ampnode, ...
 *   (3 each) and each side keeps its best round, so that load from elsewhere on the machine hits both alike.
 *   Counted: shards settled per second, i.e. the HTLCs the payer reports SUCCEEDED in the round's payments divided by
 *   the round's wall time from the first payment sent to the last one final at the payer. value: ampnode receiving;
 *   bound: lnd receiving; ratio = ampnode / lnd (above 1: ampnode takes AMP shards faster than lnd does).
 *   Both sides share everything else (the payer's pathfinding, its commitment dance, the REST round trips), so the
 *   ratio understates the difference between the receivers themselves. INTEROP_BENCH_PAYMENTS and
 *   INTEROP_BENCH_CONCURRENCY change the 12 and the 4 (with 8 or 16 at once the payer lnd itself slows down, and some of
 *   its payments to the lnd receiver hang past two minutes).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { BUILD_TIMEOUT_MS, Interop, ensureBinaries, waitFor, type Ampnode, type Lnd } from '../interop/harness.js';
import { LndPair } from '../interop/lnd-pair.js';
import { emit } from './harness.js';

const SUITE = 'interop';
const SHARDS = 8;
const SHARD_SAT = 10_000;
const PAYMENTS_PER_ROUND = Number(process.env['INTEROP_BENCH_PAYMENTS'] ?? 12);
const CONCURRENCY = Number(process.env['INTEROP_BENCH_CONCURRENCY'] ?? 4);
const ROUNDS = 3;
const CAPACITY_SAT = 5_000_000;

interface LndPayment {
  status: string;
  failure_reason: string;
  htlcs?: { status: string }[];
}

/** SendPaymentV2 over lnd's REST API: the stream of payment updates, read to its end; the last (final) one. */
function sendPaymentV2(lnd: Lnd, body: Record<string, unknown>): Promise<LndPayment> {
  const mac = readFileSync(lnd.macaroonPath).toString('hex');
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: lnd.restPort,
        method: 'POST',
        path: '/v2/router/send',
        timeout: 120_000,
        headers: { 'Grpc-Metadata-macaroon': mac, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (data += d));
        res.on('end', () => {
          const lines = data.split('\n').filter((l) => l.trim() !== '');
          try {
            const last = JSON.parse(lines.at(-1) ?? '{}') as { result?: LndPayment; error?: unknown };
            if (last.result === undefined) reject(new Error(`SendPaymentV2: ${data.slice(0, 300)}`));
            else resolve(last.result);
          } catch (e) {
            reject(new Error(`SendPaymentV2: not JSON: ${data.slice(0, 300)}`, { cause: e }));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('SendPaymentV2 timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** One AMP payment of SHARDS shards from `payer` to `dest`; the shards settled. */
async function pay(payer: Lnd, dest: string): Promise<number> {
  const r = await sendPaymentV2(payer, {
    dest: Buffer.from(dest, 'hex').toString('base64'),
    amt: String(SHARDS * SHARD_SAT),
    amp: true,
    max_shard_size_msat: String(SHARD_SAT * 1000),
    timeout_seconds: 60,
    fee_limit_sat: '1000',
    no_inflight_updates: true,
  }).catch((e: unknown) => {
    throw new Error(`bench: a payment to ${dest.slice(0, 16)}…: ${(e as Error).message}`, { cause: e });
  });
  if (r.status !== 'SUCCEEDED') throw new Error(`bench: a payment to ${dest.slice(0, 16)}… failed: ${r.failure_reason}`);
  return (r.htlcs ?? []).filter((x) => x.status === 'SUCCEEDED').length;
}

/** A round of PAYMENTS_PER_ROUND payments, CONCURRENCY at a time: shards settled per second. */
async function round(payer: Lnd, dest: string): Promise<number> {
  let started = 0;
  let shards = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (started < PAYMENTS_PER_ROUND) {
      started++;
      shards += await pay(payer, dest);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return (shards * 1000) / (performance.now() - t0);
}

/** Opens an anchors channel of CAPACITY_SAT from `payer` to `dest` and waits until the payer can pay over it. */
async function openTo(p: LndPair, dest: string, uri: string): Promise<void> {
  await p.lnd.cli(['connect', uri], 30_000);
  const r = await p.lnd.cli<{ funding_txid: string }>([
    'openchannel',
    '--node_key',
    dest,
    '--local_amt',
    String(CAPACITY_SAT),
    '--channel_type',
    'anchors',
  ]);
  await p.inMempool(r.funding_txid);
  await p.mine(3);
  await waitFor(
    async () =>
      ((await p.lnd.cli<{ channels?: { channel_point: string; active: boolean }[] }>(['listchannels'])).channels ?? []).some(
        (c) => c.channel_point.startsWith(`${r.funding_txid}:`) && c.active,
      ),
    { timeoutMs: 60_000, what: `channel to ${dest.slice(0, 16)}… active` },
  );
  // lnd lists a channel active a moment before its link carries HTLCs: one payment that goes through
  await waitFor(
    async () => {
      try {
        return (await pay(p.lnd, dest)) === SHARDS;
      } catch {
        return false;
      }
    },
    { timeoutMs: 60_000, intervalMs: 1_000, what: `a first payment to ${dest.slice(0, 16)}…` },
  );
}

export async function run(): Promise<void> {
  await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
  const h = new Interop('bench');
  try {
    const btcd = await h.startBtcd();
    const payer = await h.startLnd(btcd, { name: 'payer', extraArgs: ['--debuglevel=info'] });
    const receiver = await h.startLnd(btcd, { name: 'receiver', extraArgs: ['--debuglevel=info'] });
    const amp: Ampnode = await h.startAmpnode({ name: 'amp', chain: { p2p: btcd }, api: true, extraArgs: ['--accept-amp'] });
    const p = new LndPair(btcd, payer, amp);
    await p.ampSynced();
    await p.fund(3);
    await openTo(p, receiver.nodeId, `${receiver.nodeId}@${receiver.p2pHost}`);
    await openTo(p, amp.nodeId, amp.uri);
    await receiver.waitSynced();
    let lndBest = 0;
    let ampBest = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const l = await round(payer, receiver.nodeId);
      const a = await round(payer, amp.nodeId);
      process.stderr.write(`interop bench round ${i + 1}: lnd ${l.toFixed(2)} shards/s, ampnode ${a.toFixed(2)} shards/s\n`);
      lndBest = Math.max(lndBest, l);
      ampBest = Math.max(ampBest, a);
    }
    assert.ok(lndBest > 0 && ampBest > 0);
    emit(SUITE, 'receive_vs_lnd', 'shards/s', ampBest, lndBest);
  } catch (e) {
    h.markFailed(e);
    throw e;
  } finally {
    await h.close();
  }
}
