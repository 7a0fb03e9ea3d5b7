/**
 * The daemon as a child process (`node --import tsx node/cli.ts start`):
 * the one JSON line on stdout, peers over --connect, reconnection after the
 * other side restarts, the node key kept across restarts, clean exit 0 on
 * SIGTERM/SIGINT, exit 1 on bad arguments.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const START_MS = 60_000; // tsx compiles on first start
const WAIT_MS = 20_000;

type LogLine = Record<string, unknown>;

class Daemon {
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
function failAfter(ms: number, what: () => string): Promise<never> {
  return new Promise<never>((_, reject) => setTimeout(() => reject(new Error(what())), ms).unref());
}

const running = new Set<Daemon>();
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ampnode-daemon-test-'));
  dirs.push(d);
  return d;
}

after(() => {
  for (const d of running) d.proc.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('ampnode start (child processes)', () => {
  it('prints one listening line, peers via --connect, reconnects after a restart, keeps its key, exits 0 on SIGTERM', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const a = Daemon.spawn(['start', '--datadir', dirA, '--listen', '127.0.0.1:0', '--network', 'regtest']);
    const la = await a.listening();
    assert.notEqual(la.port, 0);

    // the key file: 0600, and the node id is its public key
    const keyFile = join(dirA, 'node_key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const key = hexToBytes(readFileSync(keyFile, 'utf8').trim());
    assert.equal(bytesToHex(secp.publicKeyCreate(key)), la.nodeId);

    const b = Daemon.spawn([
      'start',
      '--datadir',
      dirB,
      '--listen',
      '127.0.0.1:0',
      '--connect',
      `${la.nodeId}@${la.address}`,
      '--log-level',
      'debug',
    ]);
    const lb = await b.listening();
    await a.until(() => (a.connectedCount(lb.nodeId) > 0 ? true : undefined), 'A sees B');
    await b.until(() => (b.connectedCount(la.nodeId) > 0 ? true : undefined), 'B sees A');
    const seenByA = a.logs.find((l) => l['msg'] === 'peer connected' && l['peer'] === lb.nodeId)!;
    assert.equal(seenByA['inbound'], true);
    assert.equal(seenByA['sub'], 'node');

    // A goes away: exit 0, nothing on stdout but the one line; B notices
    assert.equal(await a.stop('SIGTERM'), 0);
    assert.equal(a.stdout.length, 1);
    await b.until(() => b.logs.find((l) => l['msg'] === 'peer disconnected' && l['peer'] === la.nodeId), 'B sees A go');

    // A comes back on the same port with the same key; B reconnects on its own
    const a2 = Daemon.spawn(['start', '--datadir', dirA, '--listen', `127.0.0.1:${la.port}`]);
    const la2 = await a2.listening();
    assert.equal(la2.nodeId, la.nodeId, 'node id survives a restart');
    assert.equal(la2.address, la.address);
    await b.until(() => (b.connectedCount(la.nodeId) > 1 ? true : undefined), 'B reconnects to A');
    await a2.until(() => (a2.connectedCount(lb.nodeId) > 0 ? true : undefined), 'restarted A sees B');
    assert.ok(b.logs.some((l) => l['msg'] === 'reconnect scheduled' && l['peer'] === la.nodeId));

    assert.equal(await b.stop('SIGINT'), 0);
    assert.equal(await a2.stop('SIGTERM'), 0);
    assert.equal(b.stdout.length, 1);
    assert.equal(a2.stdout.length, 1);
  });

  it('SIGTERM at once after the listening line still stops cleanly with exit 0', async () => {
    for (const chain of ['embedded', 'none']) {
      const d = Daemon.spawn(['start', '--datadir', tempDir(), '--listen', '127.0.0.1:0', '--chain', chain]);
      await d.listening();
      assert.equal(await d.stop('SIGTERM'), 0, d.tail());
      assert.ok(
        d.logs.some((l) => l['msg'] === 'stopping'),
        d.tail(),
      );
    }
  });

  it('bad arguments and a busy port exit 1 with nothing on stdout', async () => {
    const bad = Daemon.spawn(['start', '--datadir', tempDir(), '--listen', '127.0.0.1:0', '--connect', 'not-a-node']);
    assert.equal((await bad.exited).code, 1);
    assert.deepEqual(bad.stdout, []);
    assert.ok(
      bad.logs.some((l) => /PUBKEY@HOST:PORT/.test(String(l['text']))),
      bad.tail(),
    );

    const noDir = Daemon.spawn(['start', '--listen', '127.0.0.1:0']);
    assert.equal((await noDir.exited).code, 1);
    assert.deepEqual(noDir.stdout, []);

    const net = Daemon.spawn(['start', '--datadir', tempDir(), '--network', 'mainnet']);
    assert.equal((await net.exited).code, 1);
    assert.deepEqual(net.stdout, []);

    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const busy = Daemon.spawn(['start', '--datadir', tempDir(), '--listen', `127.0.0.1:${port}`, '--chain', 'none']);
      assert.equal((await busy.exited).code, 1);
      assert.deepEqual(busy.stdout, []);
      assert.ok(
        busy.logs.some((l) => l['msg'] === 'could not start' && /EADDRINUSE/.test(JSON.stringify(l))),
        busy.tail(),
      );
    } finally {
      server.close();
    }
  });

  it('the datadir: an empty one touches nothing, a 0755 one ends 0700 with 0600 files, a second daemon on it exits 1 naming the pid of the first', async () => {
    // --datadir '' (run from an empty working directory): refused before anything is written
    const cwd = tempDir();
    const empty = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'node', 'cli.ts'), 'start', '--datadir', '', '--listen', '127.0.0.1:0'],
      { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
    );
    const emptyCode = await new Promise<number | null>((r) => empty.once('exit', (c) => r(c)));
    assert.equal(emptyCode, 1);
    assert.deepEqual(readdirSync(cwd), [], 'nothing created in the working directory');

    // a datadir the user made 0755: the daemon narrows it to 0700, and what it writes inside is 0600 / 0700
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const first = Daemon.spawn(['start', '--datadir', dir, '--listen', '127.0.0.1:0']);
    await first.listening();
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const walk = (d: string): string[] =>
      readdirSync(d).flatMap((n) => {
        const p = join(d, n);
        return statSync(p).isDirectory() ? [p, ...walk(p)] : [p];
      });
    const entries = walk(dir);
    assert.ok(entries.some((p) => p.endsWith('wallet_seed')) && entries.some((p) => p.includes(`${sep}db${sep}`)), entries.join(' '));
    for (const p of entries) {
      const mode = statSync(p).mode & 0o777;
      assert.equal(mode & 0o077, 0, `${p} is ${mode.toString(8)}: readable by others`);
    }

    // one daemon per datadir, in every chain mode
    for (const chain of ['embedded', 'none']) {
      const second = Daemon.spawn(['start', '--datadir', dir, '--listen', '127.0.0.1:0', '--chain', chain]);
      assert.equal((await second.exited).code, 1);
      assert.deepEqual(second.stdout, []);
      assert.ok(
        second.logs.some((l) => JSON.stringify(l).includes(`datadir in use by pid ${first.proc.pid}`)),
        second.tail(),
      );
    }
    assert.equal(await first.stop(), 0);
    // the lock went with the first daemon: a new one starts
    const again = Daemon.spawn(['start', '--datadir', dir, '--listen', '127.0.0.1:0', '--chain', 'none']);
    await again.listening();
    assert.equal(await again.stop(), 0);
  });

  it('ampnode demo runs end to end and exits 0', async () => {
    const d = Daemon.spawn(['demo']);
    const { code } = await Promise.race([d.exited, failAfter(START_MS, () => `demo did not finish\n${d.tail()}`)]);
    assert.equal(code, 0, d.tail());
    const done = /done: (\d+) of (\d+) steps ok/.exec(d.stdout.join('\n'));
    assert.ok(done !== null, d.tail());
    assert.equal(done[1], done[2]);
    assert.ok(d.stdout.some((l) => /\d+ pongs, .* every size checked/.test(l)));
  });
});
