/**
 * Interop fixture: real btcd (regtest), real lnd nodes and ampnode daemons as child processes on loopback,
 * with readiness waits modelled on lnd's own integration harness (lncli state = SERVER_ACTIVE, then
 * getinfo.synced_to_chain at btcd's height). Every process writes a log file in a fresh temp directory;
 * a failed test prints each log's path and tail and keeps the directory; a passing one removes it.
 *
 * API (all waits are bounded; a dead child process makes every wait fail at once with its log tail):
 *
 *   ensureBinaries()                       from ./build-binaries.ts; call in a `before` hook (BUILD_TIMEOUT_MS)
 *   const h = new Interop('name')          one scope per test file; `after(() => h.close())`
 *   h.test(name, fn, {timeoutMs})          node:test `test` that prints log tails and keeps the logs on failure
 *   waitFor(pred, {timeoutMs, what})       polls until pred() returns a truthy value (sync or async) and returns it
 *
 *   const btcd = await h.startBtcd({ initialBlocks? = 500 })        // or startBtcd() with a default scope
 *     btcd.rpcHost / rpcUser / rpcPass / rpcCertPath / rpcCert      JSON-RPC over TLS (lnd uses the same)
 *     btcd.p2pHost                          "127.0.0.1:PORT" - regtest P2P (bcoin can peer here)
 *     btcd.miner                            { address (bcrt1q… P2WPKH), privateKey } - coinbases pay here
 *     btcd.rpc(method, params?)             JSON-RPC call, returns `result`, throws BtcdRpcError
 *     btcd.generate(n, addr?)               mines n blocks; with addr (bcrt1 segwit) the coinbases pay addr
 *                                           (blocks built from getblocktemplate, mempool txs included)
 *     btcd.height()                         getblockcount
 *     btcd.sendToAddress(addr, sats)        pays a bech32 address from matured miner coinbases, returns txid
 *                                           (not mined; call generate)
 *     btcd.stop()                           (no restart: btcd wipes its regtest chain when it starts)
 *
 *   const lnd = await h.startLnd(btcd, { name?, extraArgs? })     // started, SERVER_ACTIVE and synced
 *     lnd.nodeId / p2pHost / rpcHost / restUrl / lnddir
 *     lnd.cli(['getinfo']) -> parsed JSON   (lncli, bounded; throws LncliError with stderr)
 *     lnd.rest('GET', '/v1/getinfo')        lnd REST on loopback, admin macaroon attached
 *     lnd.waitSynced()                      synced_to_chain at btcd's current height
 *     lnd.peer(pubkey)                      its `lncli listpeers` entry (features, inbound, ping_time, ...)
 *     lnd.pingLog(pubkey)                   pings/pongs exchanged with a peer, from lnd's debug log
 *     lnd.stop() / lnd.restart()
 *
 *   const amp = await h.startAmpnode({ datadir?, connect?: string[], port?, chain?: {p2p: btcd}|'embedded'|'none', api? })
 *     amp.nodeId / address / datadir / port / uri ("nodeId@address")
 *     amp.api('GET', '/v1/peers')          the daemon's local JSON API (--api on a free loopback port)
 *     amp.logs()                            parsed JSON lines the daemon wrote to stderr
 *     amp.waitForLog(pred, {timeoutMs, what})
 *     amp.stop()                            SIGTERM, resolves with the exit code
 *     amp.restart()                         same datadir and port, returns a fresh handle
 *
 * Ports are random free loopback ports; nothing listens on any other interface.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  appendFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { request as httpRequest, createServer, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { createServer as netCreateServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test as nodeTest } from 'node:test';
import { ensureBinaries, type Binaries } from './build-binaries.js';

export { ensureBinaries } from './build-binaries.js';

/** Bound for building lnd/btcd from scratch in a `before` hook. */
export const BUILD_TIMEOUT_MS = 30 * 60_000;
const REPO_ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

// ---------------------------------------------------------------------------------------------------------
// Generic helpers

export class InteropError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'InteropError';
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  what?: string;
  intervalMs?: number;
}

/** Processes whose unexpected death should abort every wait. */
const watched = new Set<Proc>();

function deadProcessError(): InteropError | undefined {
  for (const p of watched) {
    if (p.exitInfo !== undefined && !p.stopping) {
      return new InteropError('ERR_PROCESS_DIED', `${p.name} exited unexpectedly (${p.exitInfo}); log ${p.logPath}:\n${p.tail(30)}`);
    }
  }
  return undefined;
}

/**
 * Polls `predicate` until it returns a truthy value and returns that value. An exception from the predicate
 * counts as "not yet" (the last one is reported on timeout). Fails at once if a watched process died.
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const dead = deadProcessError();
    if (dead) throw dead;
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const last = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new InteropError('ERR_WAIT_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}${last}`);
    }
    await sleep(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const handedOut = new Set<number>();
/** A currently free TCP port on a loopback address (never the same one twice in this process). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = netCreateServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const a = srv.address();
        const p = typeof a === 'object' && a ? a.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new InteropError('ERR_NO_PORT', 'could not find a free loopback port');
}

// ---------------------------------------------------------------------------------------------------------
// Child processes

export interface SpawnSpec {
  name: string;
  cmd: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logPath: string;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
}

/** A child process whose stdout and stderr go to one log file (and, line by line, to optional callbacks). */
export class Proc {
  readonly name: string;
  readonly logPath: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  exitInfo: string | undefined;
  exitCode: number | null = null;
  stopping = false;
  private readonly log: WriteStream;

  constructor(spec: SpawnSpec) {
    this.name = spec.name;
    this.logPath = spec.logPath;
    appendFileSync(spec.logPath, `\n==== ${new Date().toISOString()} ${spec.cmd} ${spec.args.join(' ')}\n`);
    this.log = createWriteStream(spec.logPath, { flags: 'a' });
    this.child = spawn(spec.cmd, spec.args, {
      cwd: spec.cwd ?? REPO_ROOT,
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = (cb: ((l: string) => void) | undefined) => {
      let buf = '';
      return (d: Buffer) => {
        this.log.write(d);
        if (!cb) return;
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          cb(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      };
    };
    this.child.stdout?.on('data', lines(spec.onStdoutLine));
    this.child.stderr?.on('data', lines(spec.onStderrLine));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.exitInfo = `spawn failed: ${e.message}`;
        resolve(null);
      });
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        resolve(code);
      });
    });
    void this.exited.then(() => this.log.end());
    watched.add(this);
    live.add(this);
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`. Resolves with the exit code. */
  async stop(graceMs = 15_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.stopping = true;
    if (this.alive) {
      this.child.kill(signal);
      const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    watched.delete(this);
    live.delete(this);
    return this.exitCode;
  }

  /** Last `n` lines of the log file. */
  tail(n = 40): string {
    try {
      const lines = readFileSync(this.logPath, 'utf8').split('\n');
      return lines.slice(-n - 1).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** Every still-running child, killed synchronously if this process exits without tearing down. */
const live = new Set<Proc>();
process.on('exit', () => {
  for (const p of live) if (p.alive) p.child.kill('SIGKILL');
});

// ---------------------------------------------------------------------------------------------------------
// Scope: owns temp dirs, processes and servers of one test file

export class Interop {
  readonly dir: string;
  private readonly procs: Proc[] = [];
  private readonly cleanups: Array<() => Promise<void> | void> = [];
  private failed = false;
  private closed = false;
  private counter = 0;
  private binaries: Binaries | undefined;

  constructor(readonly name: string) {
    this.dir = mkdtempSync(join(tmpdir(), `ampnode-interop-${name.replace(/[^a-z0-9-]/gi, '_')}-`));
  }

  /** A fresh subdirectory of the scope's temp dir. */
  subdir(name: string): string {
    const d = join(this.dir, `${name}`);
    mkdirSync(d, { recursive: true });
    return d;
  }

  uniqueName(base: string): string {
    this.counter += 1;
    return `${base}${this.counter}`;
  }

  async bins(): Promise<Binaries> {
    this.binaries ??= await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    return this.binaries;
  }

  /** Registers a process so that it is stopped by close() and reported on failure. */
  track(p: Proc): Proc {
    this.procs.push(p);
    return p;
  }

  onClose(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** Prints every process's log path and tail (used when a test fails). */
  report(reason?: unknown): string {
    const parts = [
      `interop scope "${this.name}" failed${reason instanceof Error ? `: ${reason.message}` : ''}`,
      `logs kept in ${this.dir}`,
    ];
    const seen = new Set<string>();
    for (const p of this.procs) {
      if (seen.has(p.logPath)) continue;
      seen.add(p.logPath);
      parts.push(`---- ${p.name} (${p.alive ? 'running' : p.exitInfo}) ${p.logPath}\n${p.tail(25)}`);
    }
    return parts.join('\n');
  }

  markFailed(reason?: unknown): void {
    this.failed = true;
    process.stderr.write(this.report(reason) + '\n');
  }

  /** A node:test test whose failure prints the logs and keeps them. */
  test(name: string, fn: () => Promise<void>, opts: { timeoutMs?: number } = {}): void {
    void nodeTest(name, { timeout: opts.timeoutMs ?? 120_000 }, async () => {
      try {
        await fn();
      } catch (e) {
        this.markFailed(e);
        throw e;
      }
    });
  }

  /** Stops everything (in reverse start order); removes the temp dir unless a test failed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.procs].reverse()) {
      await p.stop(10_000).catch(() => undefined);
    }
    for (const c of this.cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    if (this.failed || process.env['AMPNODE_INTEROP_KEEP']) {
      process.stderr.write(`interop logs kept in ${this.dir}\n`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  startBtcd(opts: BtcdOptions = {}): Promise<Btcd> {
    return Btcd.start(this, opts);
  }

  startFeeServer(): Promise<FeeServer> {
    return FeeServer.start(this);
  }

  startLnd(btcd: Btcd, opts: LndOptions = {}): Promise<Lnd> {
    return Lnd.start(this, btcd, opts);
  }

  startAmpnode(opts: AmpnodeOptions = {}): Promise<Ampnode> {
    return Ampnode.start(this, opts);
  }
}

/** A module-level scope for the free functions below; close it with `closeDefault()` in an `after` hook. */
let defaultScope: Interop | undefined;
export function defaultInterop(): Interop {
  defaultScope ??= new Interop('default');
  return defaultScope;
}
export async function closeDefault(): Promise<void> {
  const s = defaultScope;
  defaultScope = undefined;
  await s?.close();
}
export const startBtcd = (opts?: BtcdOptions): Promise<Btcd> => defaultInterop().startBtcd(opts);
export const startLnd = (btcd: Btcd, opts?: LndOptions): Promise<Lnd> => defaultInterop().startLnd(btcd, opts);
export const startAmpnode = (opts?: AmpnodeOptions): Promise<Ampnode> => defaultInterop().startAmpnode(opts);

// ---------------------------------------------------------------------------------------------------------
// btcd

const requireCjs = createRequire(import.meta.url);
// bcoin (a dependency) signs the miner's spends; it predates the 'bcrt' regtest prefix, so addresses
// are encoded here (BIP173 bech32 / BIP350 bech32m).

const bcoin: any = requireCjs('bcoin');

const BECH32_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
function bech32Polymod(values: number[]): number {
  const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= gen[i] ?? 0;
  }
  return chk >>> 0;
}
function hrpExpand(hrp: string): number[] {
  const c = [...hrp].map((x) => x.charCodeAt(0));
  return [...c.map((x) => x >> 5), 0, ...c.map((x) => x & 31)];
}
function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] | undefined {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | (data[i] ?? 0);
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >> bits) & maxv);
    }
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) return undefined;
  return out;
}
/** Encodes a segwit address (v0: bech32, v1+: bech32m). */
export function encodeSegwitAddress(hrp: string, version: number, program: Uint8Array): string {
  const data = [version, ...(convertBits(program, 8, 5, true) ?? [])];
  const constant = version === 0 ? 1 : 0x2bc830a3;
  const pm = bech32Polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ constant;
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (pm >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...data, ...checksum].map((d) => BECH32_CHARSET[d]).join('')}`;
}
/** Decodes a segwit address; throws on a bad checksum or program. */
export function decodeSegwitAddress(addr: string): { hrp: string; version: number; program: Buffer } {
  const a = addr.toLowerCase();
  const sep = a.lastIndexOf('1');
  const hrp = a.slice(0, sep);
  const data = [...a.slice(sep + 1)].map((ch) => BECH32_CHARSET.indexOf(ch));
  if (sep < 1 || data.length < 7 || data.some((d) => d < 0)) throw new InteropError('ERR_ADDRESS', `not bech32: ${addr}`);
  const version = data[0] ?? -1;
  const constant = version === 0 ? 1 : 0x2bc830a3;
  if (bech32Polymod([...hrpExpand(hrp), ...data]) !== constant) throw new InteropError('ERR_ADDRESS', `bad checksum: ${addr}`);
  const program = convertBits(data.slice(1, -6), 5, 8, false);
  if (!program || program.length < 2 || program.length > 40 || version > 16) throw new InteropError('ERR_ADDRESS', `bad program: ${addr}`);
  return { hrp, version, program: Buffer.from(program) };
}

/**
 * The chain steps of a test that runs ampnode embedded (its `status()` in this process) beside lnds on btcd:
 * `synced` waits until ampnode and every lnd are at btcd's height, `mine` mines n blocks and waits for that.
 */
export function embeddedChainSteps(
  btcd: () => Btcd,
  amp: () => { status(): { chainTip: { height: number } } },
  lnds: () => readonly Lnd[],
): { synced: () => Promise<void>; mine: (n: number) => Promise<void> } {
  const synced = async (): Promise<void> => {
    const target = await btcd().height();
    await waitFor(() => amp().status().chainTip.height === target, { timeoutMs: 60_000, what: `ampnode at btcd's height ${target}` });
    for (const l of lnds()) await l.waitSynced();
  };
  const mine = async (n: number): Promise<void> => {
    await btcd().generate(n);
    await synced();
  };
  return { synced, mine };
}

export class BtcdRpcError extends InteropError {
  constructor(
    readonly method: string,
    readonly rpcCode: number | undefined,
    message: string,
  ) {
    super('ERR_BTCD_RPC', `btcd ${method}: ${message}`);
  }
}

export interface BtcdOptions {
  /** Blocks mined at start (default 500: BIP9 segwit/CSV/taproot active from 432, coinbases matured). */
  initialBlocks?: number;
  /** Extra btcd flags. */
  extraArgs?: string[];
}

interface Coinbase {
  txid: string;
  vout: number;
  value: number;
  script: string;
  height: number;
  spent: boolean;
}

export class Btcd {
  readonly rpcUser = 'ampnode';
  readonly rpcPass = 'interop';
  readonly rpcCertPath: string;
  readonly rpcKeyPath: string;
  readonly dir: string;
  readonly miner: { address: string; privateKey: string };
  private readonly ring: any;
  private proc: Proc | undefined;
  private agent: Agent | undefined;
  private rpcId = 0;
  private readonly coinbases: Coinbase[] = [];

  private constructor(
    private readonly scope: Interop,
    private readonly bin: Binaries,
    readonly rpcPort: number,
    readonly p2pPort: number,
    private readonly extraArgs: string[],
  ) {
    this.dir = scope.subdir(scope.uniqueName('btcd'));
    this.rpcCertPath = join(this.dir, 'rpc.cert');
    this.rpcKeyPath = join(this.dir, 'rpc.key');
    writeFileSync(join(this.dir, 'btcd.conf'), '');
    this.ring = bcoin.KeyRing.generate(true);
    this.ring.witness = true;
    this.miner = {
      address: encodeSegwitAddress('bcrt', 0, this.ring.getKeyHash()),
      privateKey: this.ring.getPrivateKey().toString('hex'),
    };
  }

  static async start(scope: Interop, opts: BtcdOptions): Promise<Btcd> {
    const bin = await scope.bins();
    const b = new Btcd(scope, bin, await freePort(), await freePort(), opts.extraArgs ?? []);
    await b.launch();
    const n = opts.initialBlocks ?? 500;
    if (n > 0) await b.generate(n);
    return b;
  }

  get rpcHost(): string {
    return `127.0.0.1:${this.rpcPort}`;
  }

  get p2pHost(): string {
    return `127.0.0.1:${this.p2pPort}`;
  }

  get rpcCert(): Buffer {
    return readFileSync(this.rpcCertPath);
  }

  get logPath(): string {
    return join(this.dir, 'btcd.log');
  }

  private async launch(): Promise<void> {
    const args = [
      `--configfile=${join(this.dir, 'btcd.conf')}`,
      '--regtest',
      `--datadir=${join(this.dir, 'data')}`,
      `--logdir=${join(this.dir, 'logs')}`,
      `--rpcuser=${this.rpcUser}`,
      `--rpcpass=${this.rpcPass}`,
      `--rpclisten=${this.rpcHost}`,
      `--rpccert=${this.rpcCertPath}`,
      `--rpckey=${this.rpcKeyPath}`,
      `--listen=${this.p2pHost}`,
      '--txindex',
      '--rejectnonstd',
      `--miningaddr=${this.miner.address}`,
      '--nobanning',
      '--nostalldetect',
      '--debuglevel=info',
      ...this.extraArgs,
    ];
    this.proc = this.scope.track(new Proc({ name: 'btcd', cmd: this.bin.btcd, args, logPath: this.logPath }));
    await waitFor(() => existsSync(this.rpcCertPath) && existsSync(this.rpcKeyPath), { timeoutMs: 20_000, what: 'btcd RPC certificate' });
    this.agent?.destroy();
    this.agent = new Agent({ ca: this.rpcCert, keepAlive: true, maxSockets: 4 });
    await waitFor(async () => (await this.rpc<number>('getblockcount')) >= 0, { timeoutMs: 30_000, what: 'btcd RPC' });
  }

  /** One JSON-RPC call over TLS (btcd's own certificate as the only CA). */
  rpc<T = unknown>(method: string, params: unknown[] = [], timeoutMs = 60_000): Promise<T> {
    const body = JSON.stringify({ jsonrpc: '1.0', id: ++this.rpcId, method, params });
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: this.rpcPort,
          method: 'POST',
          path: '/',
          agent: this.agent,
          auth: `${this.rpcUser}:${this.rpcPass}`,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: timeoutMs,
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (data += d));
          res.on('end', () => {
            let parsed: { result?: T; error?: { code?: number; message?: string } | null };
            try {
              parsed = JSON.parse(data) as typeof parsed;
            } catch {
              reject(new BtcdRpcError(method, undefined, `HTTP ${res.statusCode}: ${data.slice(0, 200)}`));
              return;
            }
            if (parsed.error) reject(new BtcdRpcError(method, parsed.error.code, parsed.error.message ?? JSON.stringify(parsed.error)));
            else resolve(parsed.result as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      req.on('error', (e) => reject(new BtcdRpcError(method, undefined, e.message)));
      req.end(body);
    });
  }

  height(): Promise<number> {
    return this.rpc<number>('getblockcount');
  }

  /**
   * Mines `n` blocks and returns their hashes. Without `addr` btcd's own miner pays the harness key
   * (`generate`, in batches of at most 100). btcd has no generatetoaddress and wipes its regtest chain on a
   * restart, so with `addr` each block is assembled here from `getblocktemplate` (mempool transactions
   * and btcd's witness commitment included) with a coinbase paying `addr`, solved and `submitblock`ed.
   */
  async generate(n: number, addr?: string): Promise<string[]> {
    const hashes: string[] = [];
    if (addr !== undefined && addr !== this.miner.address) {
      const script = addressScript(addr);
      for (let i = 0; i < n; i++) hashes.push(await this.mineTemplateBlock(script));
      return hashes;
    }
    for (let left = n; left > 0;) {
      const k = Math.min(left, 100);
      hashes.push(...(await this.rpc<string[]>('generate', [k], 120_000)));
      left -= k;
    }
    await this.recordCoinbases(hashes);
    return hashes;
  }

  private async mineTemplateBlock(payTo: Buffer): Promise<string> {
    const tpl = await this.rpc<BlockTemplate>('getblocktemplate', [{ capabilities: ['coinbasevalue'], rules: ['segwit'] }]);
    if (tpl.coinbasevalue === undefined) throw new InteropError('ERR_TEMPLATE', 'getblocktemplate gave no coinbasevalue');
    // BIP141 commitment to the wtxids (the coinbase's counts as zero), when any transaction has a witness.
    const hasWitness = tpl.transactions.some((t) => t.hash !== t.txid);
    const commitment = hasWitness
      ? Buffer.concat([
          Buffer.from('6a24aa21a9ed', 'hex'),
          sha256d(
            Buffer.concat([
              merkleRoot([Buffer.alloc(32), ...tpl.transactions.map((t) => Buffer.from(t.hash, 'hex').reverse())]),
              Buffer.alloc(32),
            ]),
          ),
        ])
      : undefined;
    // Coinbase: BIP34 height push plus 8 random bytes (unique txids), one output to payTo, btcd's commitment.
    const height = scriptNum(tpl.height);
    const sigScript = Buffer.concat([Buffer.from([height.length]), height, Buffer.from([8]), randomBytes(8)]);
    const outputs = [txOut(BigInt(tpl.coinbasevalue), payTo)];
    if (commitment) outputs.push(txOut(0n, commitment));
    const body = Buffer.concat([
      varInt(1),
      Buffer.alloc(32),
      u32le(0xffffffff),
      varInt(sigScript.length),
      sigScript,
      u32le(0xffffffff),
      varInt(outputs.length),
      ...outputs,
    ]);
    const version = u32le(1);
    const locktime = u32le(0);
    const cbStripped = Buffer.concat([version, body, locktime]);
    const cbFull = commitment
      ? Buffer.concat([version, Buffer.from([0, 1]), body, Buffer.from([1, 32]), Buffer.alloc(32), locktime])
      : cbStripped;
    const txids = [sha256d(cbStripped), ...tpl.transactions.map((t) => Buffer.from(t.txid, 'hex').reverse())];
    const header = Buffer.concat([
      u32le(tpl.version),
      Buffer.from(tpl.previousblockhash, 'hex').reverse(),
      merkleRoot(txids),
      u32le(tpl.curtime),
      u32le(parseInt(tpl.bits, 16)),
      u32le(0),
    ]);
    const target = BigInt('0x' + tpl.target);
    for (let nonce = 0; ; nonce++) {
      if (nonce > 0xffffffff) throw new InteropError('ERR_TEMPLATE', 'no nonce solves the block');
      header.writeUInt32LE(nonce, 76);
      const hash = sha256d(header).reverse();
      if (BigInt('0x' + hash.toString('hex')) <= target) break;
    }
    const block = Buffer.concat([
      header,
      varInt(1 + tpl.transactions.length),
      cbFull,
      ...tpl.transactions.map((t) => Buffer.from(t.data, 'hex')),
    ]);
    const res = await this.rpc<string | null>('submitblock', [block.toString('hex')]);
    if (res !== null) throw new InteropError('ERR_SUBMITBLOCK', `btcd rejected the block: ${res}`);
    return sha256d(header).reverse().toString('hex');
  }

  private async recordCoinbases(hashes: string[]): Promise<void> {
    for (const h of hashes) {
      const blk = await this.rpc<{ height: number; tx: string[] }>('getblock', [h, 1]);
      const txid = blk.tx[0];
      if (!txid) continue;
      const tx = await this.rpc<{ vout: Array<{ value: number; n: number; scriptPubKey: { hex: string } }> }>('getrawtransaction', [
        txid,
        1,
      ]);
      const ours = bcoin.Script.fromProgram(0, this.ring.getKeyHash()).toRaw().toString('hex') as string;
      for (const o of tx.vout) {
        if (o.scriptPubKey.hex === ours) {
          this.coinbases.push({
            txid,
            vout: o.n,
            value: Math.round(o.value * 1e8),
            script: o.scriptPubKey.hex,
            height: blk.height,
            spent: false,
          });
        }
      }
    }
  }

  /**
   * Pays `sats` to a bech32 (segwit v0/v1) address from matured miner coinbases (fee 2 sat/vB, change back
   * to the miner); returns the txid. The transaction is in btcd's mempool; mine it with generate().
   */
  async sendToAddress(addr: string, sats: number): Promise<string> {
    const outScript = bcoin.Script.fromRaw(addressScript(addr));
    const tip = await this.height();
    const mtx = new bcoin.MTX();
    mtx.addOutput(outScript, sats);
    let total = 0;
    const used: Coinbase[] = [];
    for (const c of this.coinbases) {
      if (c.spent || tip - c.height < 100) continue;
      const coin = new bcoin.Coin({
        version: 1,
        height: c.height,
        value: c.value,
        script: bcoin.Script.fromRaw(Buffer.from(c.script, 'hex')),
        hash: Buffer.from(c.txid, 'hex').reverse().toString('hex'),
        index: c.vout,
        coinbase: true,
      });
      mtx.addCoin(coin);
      used.push(c);
      total += c.value;
      if (total >= sats + 10_000 * used.length + 1000) break;
    }
    const vsize = 11 + 31 * 2 + 68 * used.length;
    const fee = vsize * 2;
    if (total < sats + fee) throw new InteropError('ERR_FUNDS', `miner has ${total} sat matured, needs ${sats + fee}`);
    const change = total - sats - fee;
    if (change > 1000) mtx.addOutput(bcoin.Script.fromProgram(0, this.ring.getKeyHash()), change);
    mtx.sign(this.ring);
    const hex = mtx.toTX().toRaw().toString('hex') as string;
    const txid = await this.rpc<string>('sendrawtransaction', [hex]);
    for (const c of used) c.spent = true;
    return txid;
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.agent?.destroy();
  }
}

interface BlockTemplate {
  version: number;
  previousblockhash: string;
  curtime: number;
  bits: string;
  target: string;
  height: number;
  coinbasevalue?: number;
  transactions: Array<{ data: string; txid: string; hash: string }>;
}

/** Output script of a regtest segwit address (bech32 / bech32m, hrp bcrt). */
export function addressScript(addr: string): Buffer {
  const dec = decodeSegwitAddress(addr);
  if (dec.hrp !== 'bcrt') throw new InteropError('ERR_ADDRESS', `not a regtest segwit address: ${addr}`);
  const op = dec.version === 0 ? 0x00 : 0x50 + dec.version;
  return Buffer.concat([Buffer.from([op, dec.program.length]), dec.program]);
}

function sha256d(b: Buffer): Buffer {
  return createHash('sha256').update(createHash('sha256').update(b).digest()).digest();
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function varInt(n: number): Buffer {
  if (n < 0xfd) return Buffer.from([n]);
  if (n <= 0xffff) return Buffer.from([0xfd, n & 0xff, n >> 8]);
  return Buffer.concat([Buffer.from([0xfe]), u32le(n)]);
}

function txOut(value: bigint, script: Buffer): Buffer {
  const v = Buffer.alloc(8);
  v.writeBigUInt64LE(value);
  return Buffer.concat([v, varInt(script.length), script]);
}

/** Minimal little-endian script number (BIP34 height). */
function scriptNum(n: number): Buffer {
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.push(v & 0xff);
  if (out.length > 0 && ((out[out.length - 1] ?? 0) & 0x80) !== 0) out.push(0);
  return Buffer.from(out);
}

function merkleRoot(hashes: Buffer[]): Buffer {
  let level = hashes;
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const a = level[i] as Buffer;
      const b = level[i + 1] ?? a;
      next.push(sha256d(Buffer.concat([a, b])));
    }
    level = next;
  }
  return level[0] as Buffer;
}

// ---------------------------------------------------------------------------------------------------------
// Fee estimates for lnd (--fee.url): a fixed answer, so that lnd's fee rate does not depend on the chain.

export class FeeServer {
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static body = { fee_by_block_target: { '1': 50_000 }, min_relay_feerate: 1012 };

  static async start(scope: Interop): Promise<FeeServer> {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(FeeServer.body));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const a = server.address();
    const port = typeof a === 'object' && a ? a.port : 0;
    const fs = new FeeServer(server, `http://127.0.0.1:${port}/fees`);
    scope.onClose(() => fs.close());
    return fs;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// lnd

export class LncliError extends InteropError {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    message: string,
  ) {
    super('ERR_LNCLI', message);
  }
}

export interface LndOptions {
  name?: string;
  extraArgs?: string[];
  /** Fee endpoint to use; by default one per scope is started. */
  feeServer?: FeeServer;
}

const feeServers = new WeakMap<Interop, Promise<FeeServer>>();

export class Lnd {
  nodeId = '';
  readonly lnddir: string;
  private proc: Proc | undefined;

  private constructor(
    private readonly scope: Interop,
    private readonly bin: Binaries,
    readonly btcd: Btcd,
    readonly name: string,
    readonly p2pPort: number,
    readonly rpcPort: number,
    readonly restPort: number,
    private readonly feeUrl: string,
    private readonly extraArgs: string[],
  ) {
    this.lnddir = scope.subdir(name);
  }

  static async start(scope: Interop, btcd: Btcd, opts: LndOptions): Promise<Lnd> {
    const bin = await scope.bins();
    let fee = opts.feeServer;
    if (!fee) {
      let p = feeServers.get(scope);
      if (!p) {
        p = scope.startFeeServer();
        feeServers.set(scope, p);
      }
      fee = await p;
    }
    const name = opts.name ?? scope.uniqueName('lnd');
    const lnd = new Lnd(scope, bin, btcd, name, await freePort(), await freePort(), await freePort(), fee.url, opts.extraArgs ?? []);
    await lnd.launch();
    return lnd;
  }

  get p2pHost(): string {
    return `127.0.0.1:${this.p2pPort}`;
  }
  get rpcHost(): string {
    return `127.0.0.1:${this.rpcPort}`;
  }
  get restUrl(): string {
    return `http://127.0.0.1:${this.restPort}`;
  }
  get logPath(): string {
    return join(this.lnddir, 'lnd.out.log');
  }
  /** lnd's own log file (debug level). */
  get lndLogPath(): string {
    return join(this.lnddir, 'logs', 'bitcoin', 'regtest', 'lnd.log');
  }
  get macaroonPath(): string {
    return join(this.lnddir, 'data', 'chain', 'bitcoin', 'regtest', 'admin.macaroon');
  }

  args(): string[] {
    return [
      `--lnddir=${this.lnddir}`,
      `--alias=${this.name}`,
      '--bitcoin.regtest',
      '--bitcoin.node=btcd',
      `--btcd.rpchost=${this.btcd.rpcHost}`,
      `--btcd.rpcuser=${this.btcd.rpcUser}`,
      `--btcd.rpcpass=${this.btcd.rpcPass}`,
      `--btcd.rpccert=${this.btcd.rpcCertPath}`,
      '--noseedbackup',
      '--nobootstrap',
      `--listen=${this.p2pHost}`,
      `--rpclisten=${this.rpcHost}`,
      `--restlisten=127.0.0.1:${this.restPort}`,
      '--no-rest-tls',
      '--accept-keysend',
      '--accept-amp',
      '--trickledelay=50',
      '--bitcoin.defaultchanconfs=1',
      '--maxpendingchannels=10',
      '--bitcoin.defaultremotedelay=4',
      `--fee.url=${this.feeUrl}`,
      '--debuglevel=debug',
      ...this.extraArgs,
    ];
  }

  private async launch(): Promise<void> {
    this.proc = this.scope.track(new Proc({ name: this.name, cmd: this.bin.lnd, args: this.args(), logPath: this.logPath }));
    // As lnd's itest harness: first the state service, then the chain sync.
    await waitFor(
      async () => {
        const s = await this.cli<{ state?: string }>(['state'], 10_000);
        return s.state === 'SERVER_ACTIVE';
      },
      { timeoutMs: 90_000, what: `${this.name} state SERVER_ACTIVE`, intervalMs: 300 },
    );
    const info = await this.cli<{ identity_pubkey: string }>(['getinfo']);
    this.nodeId = info.identity_pubkey;
    await this.waitSynced();
  }

  /** Runs lncli with `args`; parses its JSON output (empty output → {}). */
  cli<T = any>(args: string[], timeoutMs = 60_000): Promise<T> {
    const full = [`--lnddir=${this.lnddir}`, '--network=regtest', `--rpcserver=${this.rpcHost}`, ...args];
    return new Promise<T>((resolve, reject) => {
      const child = spawn(this.bin.lncli, full, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => {
        clearTimeout(t);
        reject(new LncliError(args, '', `lncli ${args.join(' ')}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(t);
        if (code !== 0) {
          const why = signal ? `killed (${signal}) after ${timeoutMs} ms` : (err || out).trim();
          reject(new LncliError(args, err, `${this.name}: lncli ${args.join(' ')}: ${why}`));
          return;
        }
        const text = out.trim();
        if (text === '') {
          resolve({} as T);
          return;
        }
        try {
          resolve(JSON.parse(text) as T);
        } catch {
          reject(new LncliError(args, err, `${this.name}: lncli ${args.join(' ')}: output is not JSON: ${text.slice(0, 300)}`));
        }
      });
    });
  }

  /** lnd's REST API on loopback (plain HTTP, admin macaroon). */
  rest<T = any>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const mac = readFileSync(this.macaroonPath).toString('hex');
    return httpJson<T>(this.restPort, method, path, { 'Grpc-Metadata-macaroon': mac }, body, timeoutMs, this.name);
  }

  /** Waits until lnd reports synced_to_chain at btcd's current height. */
  async waitSynced(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        const [info, height] = await Promise.all([
          this.cli<{ synced_to_chain?: boolean; block_height?: number }>(['getinfo'], 15_000),
          this.btcd.height(),
        ]);
        return info.synced_to_chain === true && info.block_height === height;
      },
      { timeoutMs, what: `${this.name} synced to btcd's height`, intervalMs: 300 },
    );
  }

  /**
   * Ping/pong traffic with one peer as lnd's debug log records it ("Sending Ping(...) to <pubkey>@...",
   * "Received Pong(len(pong_bytes)=N) from <pubkey>@..."): lnd's own pings and the pongs it got back,
   * the peer's pings and lnd's answers.
   */
  pingLog(pubkey: string): { pingsSent: number; pongsReceived: number[]; pingsReceived: number; pongsSent: number[] } {
    const r = { pingsSent: 0, pongsReceived: [] as number[], pingsReceived: 0, pongsSent: [] as number[] };
    let text: string;
    try {
      text = readFileSync(this.logPath, 'utf8');
    } catch {
      return r;
    }
    for (const line of text.split('\n')) {
      if (!line.includes(pubkey)) continue;
      if (/ Sending Ping\(/.test(line)) r.pingsSent++;
      else if (/ Received Ping\(/.test(line)) r.pingsReceived++;
      else {
        const m = / (Sending|Received) Pong\(len\(pong_bytes\)=(\d+)\)/.exec(line);
        if (m) (m[1] === 'Sending' ? r.pongsSent : r.pongsReceived).push(Number(m[2]));
      }
    }
    return r;
  }

  /** The entry of `lncli listpeers` for `pubkey`, or undefined. */
  async peer(pubkey: string): Promise<LndPeer | undefined> {
    const r = await this.cli<{ peers?: LndPeer[] }>(['listpeers']);
    return r.peers?.find((p) => p.pub_key === pubkey);
  }

  get alive(): boolean {
    return this.proc?.alive ?? false;
  }

  get pid(): number | undefined {
    return this.proc?.child.pid;
  }

  async stop(): Promise<void> {
    if (this.proc?.alive) {
      await this.cli(['stop'], 15_000).catch(() => undefined);
      await Promise.race([this.proc.exited, sleep(15_000)]);
    }
    await this.proc?.stop();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }
}

export interface LndPeer {
  pub_key: string;
  address: string;
  inbound: boolean;
  ping_time: string;
  bytes_sent: string;
  bytes_recv: string;
  features: Record<string, { name: string; is_required: boolean; is_known: boolean }>;
  errors?: Array<{ timestamp: string; error: string }>;
  flap_count?: number;
  last_flap_ns?: string;
  last_ping_payload?: string;
  sync_type?: string;
}

// ---------------------------------------------------------------------------------------------------------
// ampnode daemon (node/cli.ts start)

export interface AmpnodeOptions {
  /** Data directory (default: a fresh one in the scope). Reusing one keeps the node key. */
  datadir?: string;
  /** `PUBKEY@HOST:PORT` peers to connect to at start. */
  connect?: string[];
  /** Listen port (default: a free one). */
  port?: number;
  /**
   * Loopback address to listen on (default 127.0.0.1). lnd takes any peer whose address contains
   * "127.0.0.1" for a Tor connection and triples its ping interval and timeouts for it (3 min instead of
   * 60 s); listen on e.g. 127.0.0.2 to see lnd's normal ping cadence.
   */
  host?: string;
  name?: string;
  extraArgs?: string[];
  /**
   * Chain backend: `{ p2p: btcd }` follows btcd over P2P (`--chain p2p --chain-peer`), 'embedded' is the
   * daemon's own regtest chain, 'none' runs without channels. Default: follow btcd when given, else 'none'.
   */
  chain?: 'embedded' | 'none' | { p2p: Btcd };
  /** Serve the daemon's local JSON API on a free loopback port (default true); see `amp.api()`. */
  api?: boolean;
  /** Daemon entry file (default node/cli.ts; env AMPNODE_INTEROP_ENTRY overrides, e.g. a built dist/node/cli.js). */
  entry?: string;
  /** Bound for the "listening" line (default 60 s: tsx compiles on first start). */
  startTimeoutMs?: number;
}

export interface AmpnodeLogLine {
  msg?: string;
  level?: number | string;
  [k: string]: unknown;
}

export class Ampnode {
  nodeId = '';
  address = '';
  private readonly lines: AmpnodeLogLine[] = [];
  private proc!: Proc;

  private constructor(
    private readonly scope: Interop,
    readonly name: string,
    readonly datadir: string,
    readonly port: number,
    readonly apiPort: number | undefined,
    private readonly opts: AmpnodeOptions,
  ) {}

  private chainArgs(): string[] {
    const c = this.opts.chain ?? 'none';
    if (typeof c === 'object') return ['--chain', 'p2p', '--chain-peer', c.p2p.p2pHost];
    return ['--chain', c];
  }

  /** The daemon's local JSON API (`--api`): `amp.api('GET', '/v1/peers')`. */
  api<T = any>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    if (this.apiPort === undefined) throw new InteropError('ERR_AMPNODE', `${this.name} runs without --api`);
    // The daemon writes its bearer token to DATADIR/api_token before it listens.
    const token = readFileSync(join(this.datadir, 'api_token'), 'utf8').trim();
    return httpJson<T>(this.apiPort, method, path, { authorization: `Bearer ${token}` }, body, timeoutMs, this.name);
  }

  /**
   * `ampcli ARGS` against this daemon, as a user types it (a child process: node/ampcli.ts with this datadir and API
   * address); its JSON output, or a rejection with what it printed on a non-zero exit.
   */
  cli<T = any>(args: string[], timeoutMs = 120_000): Promise<T> {
    if (this.apiPort === undefined) throw new InteropError('ERR_AMPNODE', `${this.name} runs without --api`);
    const full = ['--import', 'tsx', join(REPO_ROOT, 'node', 'ampcli.ts'), '--datadir', this.datadir, '--api', `127.0.0.1:${this.apiPort}`];
    return new Promise<T>((resolve, reject) => {
      const child = spawn(process.execPath, [...full, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => {
        clearTimeout(t);
        reject(new InteropError('ERR_AMPCLI', `ampcli ${args.join(' ')}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(t);
        if (code !== 0) {
          const why = signal ? `killed (${signal}) after ${timeoutMs} ms` : (err || out).trim();
          reject(new InteropError('ERR_AMPCLI', `${this.name}: ampcli ${args.join(' ')}: ${why}`));
          return;
        }
        try {
          resolve(JSON.parse(out) as T);
        } catch {
          reject(new InteropError('ERR_AMPCLI', `${this.name}: ampcli ${args.join(' ')}: output is not JSON: ${out.slice(0, 300)}`));
        }
      });
    });
  }

  static async start(scope: Interop, opts: AmpnodeOptions): Promise<Ampnode> {
    const name = opts.name ?? scope.uniqueName('ampnode');
    const datadir = opts.datadir ?? scope.subdir(name);
    const port = opts.port ?? (await freePort(opts.host));
    const apiPort = opts.api === false ? undefined : await freePort();
    const a = new Ampnode(scope, name, datadir, port, apiPort, opts);
    await a.launch();
    return a;
  }

  get logPath(): string {
    return join(this.scope.dir, `${this.name}.log`);
  }

  private async launch(): Promise<void> {
    const args = [
      '--import',
      'tsx',
      this.opts.entry ?? process.env['AMPNODE_INTEROP_ENTRY'] ?? join(REPO_ROOT, 'node', 'cli.ts'),
      'start',
      '--datadir',
      this.datadir,
      '--listen',
      `${this.opts.host ?? '127.0.0.1'}:${this.port}`,
      '--network',
      'regtest',
      ...(this.opts.connect ?? []).flatMap((c) => ['--connect', c]),
      ...this.chainArgs(),
      ...(this.apiPort !== undefined ? ['--api', `127.0.0.1:${this.apiPort}`] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    let listening: ((v: { nodeId: string; address: string }) => void) | undefined;
    const ready = new Promise<{ nodeId: string; address: string }>((r) => (listening = r));
    this.proc = this.scope.track(
      new Proc({
        name: this.name,
        cmd: process.execPath,
        args,
        cwd: REPO_ROOT,
        logPath: this.logPath,
        onStdoutLine: (l) => {
          const j = parseJson(l);
          if (j && j['event'] === 'listening' && typeof j['nodeId'] === 'string' && typeof j['address'] === 'string') {
            listening?.({ nodeId: j['nodeId'], address: j['address'] });
          }
        },
        onStderrLine: (l) => {
          const j = parseJson(l);
          if (j) this.lines.push(j);
        },
      }),
    );
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    const r = await Promise.race([
      ready,
      this.proc.exited.then(() => {
        throw new InteropError('ERR_PROCESS_DIED', `${this.name} exited before listening (${this.proc.exitInfo}):\n${this.proc.tail(30)}`);
      }),
      sleep(timeoutMs).then(() => {
        throw new InteropError(
          'ERR_WAIT_TIMEOUT',
          `${this.name} printed no "listening" line within ${timeoutMs} ms:\n${this.proc.tail(30)}`,
        );
      }),
    ]);
    if (!/^(02|03)[0-9a-f]{64}$/.test(r.nodeId)) throw new InteropError('ERR_AMPNODE', `${this.name}: bad nodeId ${r.nodeId}`);
    this.nodeId = r.nodeId;
    this.address = r.address;
  }

  /** `nodeId@address`, as lncli connect wants it. */
  get uri(): string {
    return `${this.nodeId}@${this.address}`;
  }

  get alive(): boolean {
    return this.proc.alive;
  }

  /** Parsed JSON lines the daemon wrote to stderr so far. */
  logs(): AmpnodeLogLine[] {
    return this.lines;
  }

  waitForLog(pred: (l: AmpnodeLogLine) => boolean, opts: WaitOptions = {}): Promise<AmpnodeLogLine> {
    return waitFor(() => this.lines.find(pred), { what: `${this.name} log line`, ...opts });
  }

  /** SIGTERM (or SIGINT); resolves with the exit code. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    return this.proc.stop(15_000, signal);
  }

  /** Stops this daemon and starts a new one on the same data dir and port. */
  async restart(opts: Partial<AmpnodeOptions> = {}): Promise<Ampnode> {
    if (this.alive) await this.stop();
    return Ampnode.start(this.scope, { ...this.opts, ...opts, name: this.name, datadir: this.datadir, port: this.port });
  }
}

/** A JSON request to a loopback HTTP server; rejects on a non-2xx status with the body in the message. */
function httpJson<T>(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: unknown,
  timeoutMs: number,
  who: string,
): Promise<T> {
  // The daemon's API takes POST bodies only as application/json, an empty one included.
  const payload = body === undefined ? (method === 'POST' ? '{}' : undefined) : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        timeout: timeoutMs,
        headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (data += d));
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 300) {
            reject(new InteropError('ERR_HTTP', `${who} ${method} ${path}: HTTP ${res.statusCode} ${data.slice(0, 300)}`));
            return;
          }
          try {
            resolve((data ? JSON.parse(data) : {}) as T);
          } catch {
            reject(new InteropError('ERR_HTTP', `${who} ${method} ${path}: not JSON: ${data.slice(0, 300)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new InteropError('ERR_HTTP', `${who} ${method} ${path}: ${e.message}`)));
    req.end(payload);
  });
}

function parseJson(line: string): Record<string, unknown> | undefined {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
