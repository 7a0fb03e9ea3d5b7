/**
 * Daemons as child processes for tests (`node --import tsx node/cli.ts start …`): their stdout lines and JSON log
 * lines, waiting on what they print, a clean stop; temporary datadirs and every process removed after the file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const START_MS = 60_000; // tsx compiles on first start
export const WAIT_MS = 20_000;

export type LogLine = Record<string, unknown>;

export class Daemon {
  readonly stdout: string[] = [];
  readonly logs: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<() => void>();

  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      this.stdout.push(l);
      this.wake();
    });
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      try {
        this.logs.push(JSON.parse(l) as LogLine);
      } catch {
        this.logs.push({ text: l });
      }
      this.wake();
    });
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    this.exited.then(() => this.wake());
  }

  static spawn(args: string[]): Daemon {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'node', 'cli.ts'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const d = new Daemon(proc);
    running.add(d);
    d.exited.then(() => running.delete(d));
    return d;
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** Polls `pred` whenever output arrives; rejects after `ms` or if the process exits first. */
  async until<T>(pred: () => T | undefined, what: string, ms = WAIT_MS): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pred();
      if (v !== undefined) return v;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`${what}: process exited first\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: not within ${ms} ms\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const w = (): void => {
          clearTimeout(t);
          this.waiters.delete(w);
          resolve();
        };
        const t = setTimeout(w, left);
        this.waiters.add(w);
      });
    }
  }

  async listening(): Promise<{ nodeId: string; address: string; port: number }> {
    const line = await this.until(() => this.stdout[0], 'listening line', START_MS);
    const j = JSON.parse(line) as { event: string; nodeId: string; address: string };
    assert.equal(j.event, 'listening');
    assert.match(j.nodeId, /^0[23][0-9a-f]{64}$/);
    assert.deepEqual(Object.keys(j), ['event', 'nodeId', 'address']);
    return { ...j, port: Number(j.address.split(':').pop()) };
  }

  /** Count of 'peer connected' log lines naming `peer`. */
  connectedCount(peer: string): number {
    return this.logs.filter((l) => l['msg'] === 'peer connected' && l['peer'] === peer).length;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.proc.kill(signal);
    const r = await Promise.race([this.exited, failAfter(WAIT_MS, () => `no exit within ${WAIT_MS} ms after ${signal}\n${this.tail()}`)]);
    return r.code;
  }

  tail(): string {
    return [...this.stdout.map((l) => `stdout: ${l}`), ...this.logs.slice(-15).map((l) => `stderr: ${JSON.stringify(l)}`)].join('\n');
  }
}

/** Rejects after `ms`; the timer does not keep the test process alive. */
export function failAfter(ms: number, what: () => string): Promise<never> {
  return new Promise<never>((_, reject) => setTimeout(() => reject(new Error(what())), ms).unref());
}

const running = new Set<Daemon>();
const dirs: string[] = [];
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ampnode-daemon-test-'));
  dirs.push(d);
  return d;
}

after(() => {
  for (const d of running) d.proc.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A TCP port free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
