/**
 * The AMP demo (`npm start`, `ampnode demo`), written against the package's public API alone (`node/index.ts`, what
 * `import ... from 'ampnode'` gives an app): four nodes A, B, C, D on one embedded regtest chain, in fresh data
 * directories removed at the end.
 *
 *   coins to A, B and C → channels A–B, A–C, B–D, C–D (each funded by its first node) → D issues one reusable AMP
 *   invoice and A pays it three times, each payment split into shards over both paths → D issues an account
 *   (zero-amount) AMP invoice and A makes two deposits → B pays D spontaneously with AMP → a summary and the balances.
 *
 * Each payment's line: its set_id, shards, the paths they took, the amount and the time; every number is checked
 * against what D recorded. On an interactive terminal a spinner shows the step under way (yocto-spinner), otherwise
 * only the result lines are printed. Exits 0 when everything checked out, 1 with the reason otherwise; nothing is
 * left running.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createChainBackend,
  createLogger,
  createNode,
  interactive,
  isLogLevel,
  withProgress,
  type AmpNode,
  type BcoinChainBackend,
  type Logger,
  type PaymentRecord,
} from '../../node/index.js';

const NAMES = ['A', 'B', 'C', 'D'] as const;
type Name = (typeof NAMES)[number];
const CHANNEL_SAT = 1_000_000n;
const SEGWIT_HEIGHT = 432;
const COINBASE_MATURITY = 100;
const MINIMUM_DEPTH = 3;
/** Blocks mined to nobody of ours. */
const ELSEWHERE = 'bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5';
const WAIT_MS = 60_000;
const SAT = 1000n;

export interface AmpDemoReport {
  payments: { label: string; setId: string; shards: number; paths: string[]; amountSat: bigint; ms: number }[];
  balances: Record<Name, bigint>;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Where the demo writes: result lines, and (an interactive terminal only) a spinner on the step under way. */
export interface DemoOutput {
  line(text: string): void;
  /** Set only for an interactive terminal: the spinner is drawn on it. */
  terminal?: NodeJS.WriteStream;
}

/** Runs `work` as one step: a spinner with the elapsed seconds while it runs (terminal only), then its result line. */
async function step<T>(o: DemoOutput, text: string, work: () => Promise<T>, done: (r: T) => string): Promise<T> {
  const r = await withProgress(o.terminal, text, work(), done);
  if (o.terminal === undefined) o.line(done(r));
  return r;
}

async function until(pred: () => boolean, what: string): Promise<void> {
  const end = Date.now() + WAIT_MS;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

export async function runAmpDemo(logger: Logger, output: DemoOutput | ((line: string) => void)): Promise<AmpDemoReport> {
  const o: DemoOutput = typeof output === 'function' ? { line: output } : output;
  const out = (l: string): void => o.line(l);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'ampnode-amp-demo-'));
  let chain: BcoinChainBackend | undefined;
  const nodes: Partial<Record<Name, AmpNode>> = {};
  const report: AmpDemoReport = { payments: [], balances: { A: 0n, B: 0n, C: 0n, D: 0n } };
  try {
    const [a, b, c, d] = await step(
      o,
      'starting the embedded regtest chain and four nodes',
      async () => {
        chain = await createChainBackend({ onError: (e) => logger.warn({ err: e }, 'chain backend error') });
        for (const name of NAMES) {
          nodes[name] = await createNode({
            datadir: join(dir, name),
            chain,
            logger: logger.child({ node: name }),
            policy: { minimumDepth: MINIMUM_DEPTH, timeoutMs: WAIT_MS },
            ...(name === 'D' ? { invoices: { acceptAmp: true } } : {}),
          });
        }
        return NAMES.map((n) => nodes[n]!) as [AmpNode, AmpNode, AmpNode, AmpNode];
      },
      () => `four nodes on one embedded regtest chain: ${NAMES.map((n) => `${n} ${nodes[n]!.nodeId.slice(0, 12)}…`).join(', ')}`,
    );
    const mine = async (n: number, address = ELSEWHERE): Promise<void> => {
      await chain!.generateToAddress(n, address);
      await chain!.synced();
    };
    const nameOf = new Map(NAMES.map((n) => [nodes[n]!.nodeId, n]));

    await step(
      o,
      'mining coins to A, B and C',
      async () => {
        for (const n of [a, b, c]) await mine(2, await n.newAddress());
        await mine(Math.max(SEGWIT_HEIGHT - chain!.tip().height, COINBASE_MATURITY));
      },
      () => `mined to height ${chain!.tip().height}: coinbases to A, B and C, mature`,
    );

    await step(
      o,
      `opening A–B, A–C, B–D, C–D and waiting for ${MINIMUM_DEPTH} confirmations`,
      async () => {
        await a.connect(b.uri);
        await a.connect(c.uri);
        await b.connect(d.uri);
        await c.connect(d.uri);
        const opened = [
          await a.openChannel(b.nodeId, CHANNEL_SAT),
          await a.openChannel(c.nodeId, CHANNEL_SAT),
          await b.openChannel(d.nodeId, CHANNEL_SAT),
          await c.openChannel(d.nodeId, CHANNEL_SAT),
        ];
        await mine(MINIMUM_DEPTH);
        const ends: [AmpNode, string][] = [
          [a, opened[0]!.channelId],
          [a, opened[1]!.channelId],
          [b, opened[2]!.channelId],
          [c, opened[3]!.channelId],
        ];
        await until(
          () => ends.every(([n, id]) => n.channels().find((x) => x.channelId === id)?.active === true),
          'the four channels active',
        );
        await until(() => d.routingChannels().filter((x) => x.peerPolicy !== undefined).length === 2, "B's and C's channel_update at D");
      },
      () => `channels A–B, A–C, B–D, C–D open (${CHANNEL_SAT} sat each, ${MINIMUM_DEPTH} confirmations)`,
    );

    const received: string[] = [];
    d.onPaymentReceived((e) => received.push(e.setId !== undefined ? hex(e.setId) : hex(e.paymentHash)));
    const record = (label: string, payer: Name, pay: () => Promise<PaymentRecord>): Promise<AmpDemoReport['payments'][number]> =>
      step(
        o,
        label,
        async () => {
          const t0 = Date.now();
          const p = await pay();
          check(p.status === 'succeeded', `${label}: ${p.failureReason ?? ''} ${p.failureDetail ?? ''}`);
          const shards = p.attempts.filter((x) => x.status === 'settled');
          const setId = hex(p.setId!);
          const set = await d.lookupSet(p.setId!);
          check(
            set !== undefined && set.amountPaidMsat === p.amountMsat && set.htlcs.length === shards.length,
            `${label}: D holds the set with every shard`,
          );
          await until(() => received.includes(setId), `${label}: D's settle event`);
          const paths = [
            ...new Set(shards.map((x) => [payer, ...x.route.hops.map((h) => nameOf.get(hex(h.pubkey)) ?? '?')].join('→'))),
          ].sort();
          const line = { label, setId, shards: shards.length, paths, amountSat: p.amountMsat / SAT, ms: Date.now() - t0 };
          report.payments.push(line);
          return line;
        },
        (l) =>
          `${label}: ${l.amountSat} sat in ${l.shards} shard${l.shards === 1 ? '' : 's'} over ${l.paths.join(' and ')}, ` +
          `set_id ${l.setId}, ${l.ms} ms`,
      );

    const reusable = await d.addInvoice({ amp: true, memo: 'ampnode demo: reusable AMP invoice' });
    out(`D's reusable AMP invoice: ${reusable.paymentRequest.slice(0, 40)}…`);
    for (const [i, amountSat] of [150_000n, 220_000n, 180_000n].entries()) {
      await record(`A pays it (${i + 1})`, 'A', () =>
        a.payInvoice(reusable.paymentRequest, { amountMsat: amountSat * SAT, maxShardMsat: 50_000n * SAT }),
      );
    }
    const inv = await d.lookupInvoice(reusable.invoice.paymentAddr);
    check(inv?.sets?.length === 3 && new Set(inv.sets.map((s) => hex(s.setId))).size === 3, 'three distinct sets on the reusable invoice');

    const account = await d.addInvoice({ amp: true, memo: 'ampnode demo: account' });
    out(`D's account invoice (no amount): ${account.paymentRequest.slice(0, 40)}…`);
    for (const [i, amountSat] of [40_000n, 65_000n].entries()) {
      await record(`A deposits to D's account invoice (${i + 1})`, 'A', () =>
        a.payInvoice(account.paymentRequest, { amountMsat: amountSat * SAT }),
      );
    }
    check(
      (await d.lookupInvoice(account.invoice.paymentAddr))?.amountPaidMsat === 105_000n * SAT,
      'the account invoice holds both deposits',
    );

    await record('B pays D spontaneously (AMP)', 'B', () =>
      b.sendSpontaneous({ dest: Buffer.from(d.nodeId, 'hex'), amountMsat: 70_000n * SAT, kind: 'amp', maxShardMsat: 30_000n * SAT }),
    );

    const balance = (n: AmpNode): bigint => n.channels().reduce((s, x) => s + x.localBalanceMsat, 0n) / SAT;
    await step(
      o,
      'waiting for the last commitments',
      // the last commitments may still be in flight: D's channels show the 725 000 sat once they are signed
      () => until(() => balance(d) === 725_000n, 'D holding 725 000 sat in its channels'),
      () => 'every commitment signed',
    );
    for (const name of NAMES) report.balances[name] = balance(nodes[name]!);
    for (const l of summary(report, Date.now() - started)) out(l);
    return report;
  } finally {
    for (const name of NAMES) await nodes[name]?.stop().catch(() => undefined);
    await chain?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The closing table: one row per payment (label, amount, shards, paths, time, set_id), then the balances. */
export function summary(report: AmpDemoReport, elapsedMs: number): string[] {
  const rows = [
    ['payment', 'amount (sat)', 'shards', 'paths', 'time (ms)', 'set_id'],
    ...report.payments.map((p) => [p.label, String(p.amountSat), String(p.shards), p.paths.join(', '), String(p.ms), p.setId]),
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  const right = new Set([1, 2, 4]);
  const fmt = (r: string[]): string =>
    '  ' +
    r
      .map((cell, col) => (right.has(col) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join('  ')
      .trimEnd();
  const shards = report.payments.reduce((s, p) => s + p.shards, 0);
  return [
    '',
    `summary: ${report.payments.length} AMP payments in ${shards} shards, every set_id settled once, ` +
      `${(elapsedMs / 1000).toFixed(1)} s in all`,
    ...rows.map(fmt),
    '',
    `channel balances (sat): ${NAMES.map((n) => `${n} ${report.balances[n]}`).join(', ')}`,
  ];
}

/** The output a process gets: result lines on stdout, the spinner too when stdout is an interactive terminal. */
export function processOutput(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): DemoOutput {
  return { line: (l) => stream.write(`${l}\n`), ...(interactive(stream, env) ? { terminal: stream } : {}) };
}

/** `npm start` / `ampnode demo`: prints the demo's lines; 0 when every check held, 1 with the reason otherwise. */
export async function main(level = process.env['AMPNODE_LOG_LEVEL'] ?? 'warn'): Promise<number> {
  const logger = createLogger({ level: isLogLevel(level) ? level : 'warn' });
  try {
    await runAmpDemo(logger, processOutput());
    return 0;
  } catch (e) {
    process.stderr.write(`ampnode demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  void main().then((code) => process.exit(code));
}
