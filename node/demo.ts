/**
 * `ampnode demo`: the best end-to-end run the node can do today, on loopback,
 * in one process: two nodes, a BOLT 8 + init connection, a burst of pings.
 *
 * The demo is a list of steps sharing one context; each step returns the
 * lines it adds to the summary. Later layers (the embedded chain, channels,
 * AMP payments) append their steps to `DEMO_STEPS`, reading what earlier
 * steps left in the context (`ctx.alice`, `ctx.bob`, ...).
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostPort } from './config.js';
import type { Logger } from './log.js';
import { Node } from './node.js';

export interface DemoContext {
  logger: Logger;
  /** Scratch directory holding both nodes' data directories; removed at the end. */
  dir: string;
  alice?: Node;
  bob?: Node;
  /** Free-form slots for later steps. */
  [k: string]: unknown;
}

export interface DemoStep {
  title: string;
  run(ctx: DemoContext): Promise<string[]>;
}

function short(id: string): string {
  return `${id.slice(0, 10)}…`;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`demo step needs ${what} from an earlier step`);
  return v;
}

export const DEMO_STEPS: DemoStep[] = [
  {
    title: 'start two nodes (keys created in fresh data directories)',
    async run(ctx) {
      ctx.alice = new Node({ datadir: join(ctx.dir, 'alice'), listen: '127.0.0.1:0', logger: ctx.logger.child({ node: 'alice' }) });
      ctx.bob = new Node({ datadir: join(ctx.dir, 'bob'), listen: '127.0.0.1:0', logger: ctx.logger.child({ node: 'bob' }) });
      await ctx.alice.start();
      await ctx.bob.start();
      return [`alice ${short(ctx.alice.nodeIdHex)} on ${ctx.alice.listenAddress}`, `bob   ${short(ctx.bob.nodeIdHex)} on ${ctx.bob.listenAddress}`];
    },
  },
  {
    title: 'alice connects to bob (BOLT 8 Noise_XK handshake, BOLT 1 init)',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { host, port } = parseHostPort(need(bob.listenAddress, "bob's address"));
      const info = await alice.connect(bob.nodeIdHex, host, port);
      const back = bob.listPeers().find((p) => p.nodeId === alice.nodeIdHex);
      if (back === undefined) throw new Error('bob does not list alice as a peer');
      const features = info.features.map((b, i) => `${b} ${info.featureNames[i]}`).join(', ') || 'none';
      return [`connected; bob's features: ${features}`, `bob sees alice as an inbound peer from ${back.address}`];
    },
  },
  {
    title: 'ping/pong: 1000 pipelined pings with random pong sizes',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const count = 1000;
      let bytes = 0;
      const t0 = performance.now();
      const pings: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const n = randomInt(0, 4097);
        bytes += n;
        pings.push(alice.ping(bob.nodeIdHex, n));
      }
      await Promise.all(pings);
      const ms = performance.now() - t0;
      const p = alice.listPeers()[0]!;
      return [`${count} pongs, ${(bytes / 1024).toFixed(0)} KiB in all, every size checked, in ${ms.toFixed(0)} ms`, `alice's counters: ${p.pingsSent} pings sent, ${p.pongsReceived} pongs received`];
    },
  },
  {
    title: 'alice disconnects from bob',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const gone = new Promise<string>((resolve) => bob.once('peer_disconnected', (e) => resolve(e.reason?.code ?? 'clean close')));
      alice.disconnect(bob.nodeIdHex);
      const code = await gone;
      return [`bob saw the disconnect (${code})`];
    },
  },
];

/** Runs the steps, printing each as it completes; returns 0 when all pass, 1 otherwise. */
export async function runDemo(logger: Logger, out: (line: string) => void, steps: DemoStep[] = DEMO_STEPS): Promise<number> {
  const ctx: DemoContext = { logger, dir: mkdtempSync(join(tmpdir(), 'ampnode-demo-')) };
  out('ampnode demo — regtest, two nodes on loopback');
  let ok = 0;
  try {
    for (const [i, step] of steps.entries()) {
      const t0 = performance.now();
      let lines: string[];
      try {
        lines = await step.run(ctx);
      } catch (e) {
        out(`${i + 1}. ${step.title}: FAILED: ${e instanceof Error ? e.message : String(e)}`);
        return 1;
      }
      out(`${i + 1}. ${step.title} (${(performance.now() - t0).toFixed(0)} ms)`);
      for (const l of lines) out(`   ${l}`);
      ok++;
    }
    out(`done: ${ok} of ${steps.length} steps ok`);
    return 0;
  } finally {
    await ctx.alice?.stop();
    await ctx.bob?.stop();
    rmSync(ctx.dir, { recursive: true, force: true });
  }
}
