/**
 * Obtains the lnd, lncli, btcd and btcctl binaries the interop suite runs against, by building them from
 * Go modules (the Go module proxy), and caches them outside the repository keyed by version:
 *
 *   ${AMPNODE_INTEROP_CACHE:-${XDG_CACHE_HOME:-~/.cache}/ampnode-interop}/lnd-v0.19.3-beta/{lnd,lncli,build.json}
 *   ${...}/btcd-<version>/{btcd,btcctl,build.json}
 *
 * lnd's go.mod carries `replace` directives, so `go install lnd@version` is refused; lnd is instead built
 * inside its own downloaded module (a writable copy of it), which also gives btcd exactly the version lnd
 * pins. GOTOOLCHAIN=local: the installed Go is used as is, never a downloaded toolchain. The `integration`
 * build tag is never set (it changes lnd's protocol defaults).
 *
 * A missing `go` is an error, never a reason to skip: the interop suite must run or fail.
 *
 *   node --import tsx test/interop/build-binaries.ts [--force]
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
  createWriteStream,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const LND_VERSION = 'v0.19.3-beta';
/** The btcd version lnd v0.19.3-beta's go.mod requires (checked against go.mod at build time). */
export const BTCD_VERSION = 'v0.24.3-0.20250318170759-4f4ea81776d6';
const LND_MODULE = 'github.com/lightningnetwork/lnd';
const BTCD_MODULE = 'github.com/btcsuite/btcd';
/** Build tags of lnd's release builds, minus none we need; never `integration`. */
const LND_TAGS = 'signrpc walletrpc chainrpc invoicesrpc routerrpc peersrpc';
const DEFAULT_BUILD_TIMEOUT_MS = 30 * 60_000;

export interface Binaries {
  lnd: string;
  lncli: string;
  btcd: string;
  btcctl: string;
  lndVersion: string;
  btcdVersion: string;
}

export interface EnsureOptions {
  /** Rebuild even when cached binaries exist. */
  force?: boolean;
  /** Upper bound for the whole build (default 30 min). */
  timeoutMs?: number;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

interface Manifest {
  module: string;
  version: string;
  goVersion: string;
  builtAt: string;
  buildSeconds: number;
  files: string[];
}

export class InteropBuildError extends Error {
  readonly code = 'ERR_INTEROP_BUILD';
  constructor(message: string) {
    super(message);
    this.name = 'InteropBuildError';
  }
}

export function cacheRoot(): string {
  const explicit = process.env['AMPNODE_INTEROP_CACHE'];
  if (explicit) return explicit;
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'ampnode-interop');
}

export function lndDir(): string {
  return join(cacheRoot(), `lnd-${LND_VERSION}`);
}

export function btcdDir(): string {
  return join(cacheRoot(), `btcd-${BTCD_VERSION}`);
}

function paths(): Binaries {
  return {
    lnd: join(lndDir(), 'lnd'),
    lncli: join(lndDir(), 'lncli'),
    btcd: join(btcdDir(), 'btcd'),
    btcctl: join(btcdDir(), 'btcctl'),
    lndVersion: LND_VERSION,
    btcdVersion: BTCD_VERSION,
  };
}

function cachedOk(dir: string, files: string[]): boolean {
  if (!existsSync(join(dir, 'build.json'))) return false;
  for (const f of files) {
    const p = join(dir, f);
    if (!existsSync(p)) return false;
    if ((statSync(p).mode & 0o100) === 0) return false;
  }
  return true;
}

/** The Go environment every build step runs with. */
function goEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOWORK: 'off' };
}

/** Throws a clear error when `go` cannot be run; returns `go version`'s output otherwise. */
export function requireGo(): string {
  const r = spawnSync('go', ['version'], { env: goEnv(), encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || `exit ${r.status}`).trim();
    throw new InteropBuildError(
      `the interop suite needs Go to build lnd ${LND_VERSION} and btcd from Go modules, but \`go version\` failed (${why}). ` +
        `Install Go >= 1.23 and put it on PATH (the lnd/btcd binaries are then built once and cached in ${cacheRoot()}).`,
    );
  }
  return r.stdout.trim();
}

/** Runs a command with output to the build log; rejects on a non-zero exit or when the deadline passes. */
function run(cmd: string, args: string[], cwd: string, deadline: number, logFile: string, log: (l: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const left = deadline - Date.now();
    if (left <= 0) {
      reject(new InteropBuildError(`build deadline passed before \`${cmd} ${args.join(' ')}\``));
      return;
    }
    log(`$ (cd ${cwd} && ${cmd} ${args.join(' ')})`);
    const out = createWriteStream(logFile, { flags: 'a' });
    out.write(`\n$ (cd ${cwd} && ${cmd} ${args.join(' ')})\n`);
    const child = spawn(cmd, args, { cwd, env: goEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderrTail = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      out.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderrTail = (stderrTail + d.toString()).slice(-4000);
      out.write(d);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, left);
    child.on('error', (e) => {
      clearTimeout(timer);
      out.end();
      reject(new InteropBuildError(`could not run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      out.end();
      if (code === 0) resolve(stdout);
      else
        reject(
          new InteropBuildError(
            `\`${cmd} ${args.join(' ')}\` failed (${signal ? `killed by ${signal}, build timeout?` : `exit ${code}`}); ` +
              `full log: ${logFile}\n${stderrTail}`,
          ),
        );
    });
  });
}

/** Copies a module directory (read-only in the module cache) into a writable tree. */
function copyWritable(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  for (const name of readdirSync(src)) {
    const s = join(src, name);
    const d = join(dst, name);
    const st = statSync(s);
    if (st.isDirectory()) copyWritable(s, d);
    else if (st.isFile()) {
      copyFileSync(s, d);
      chmodSync(d, st.mode & 0o111 ? 0o755 : 0o644);
    }
  }
}

function publish(staging: string, final: string, manifest: Manifest): void {
  writeFileSync(join(staging, 'build.json'), JSON.stringify(manifest, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(staging, final);
}

/**
 * Returns the paths of the four binaries, building whatever is not cached yet. Safe to call from every
 * interop test file: a cache hit costs a few stat calls.
 */
export async function ensureBinaries(opts: EnsureOptions = {}): Promise<Binaries> {
  const want = paths();
  const lndCached = !opts.force && cachedOk(lndDir(), ['lnd', 'lncli']);
  const btcdCached = !opts.force && cachedOk(btcdDir(), ['btcd', 'btcctl']);
  if (lndCached && btcdCached) return want;

  const log = opts.log ?? ((l: string) => process.stderr.write(`[interop build] ${l}\n`));
  const goVersion = requireGo();
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS);
  const root = cacheRoot();
  mkdirSync(root, { recursive: true });
  const logFile = join(root, `build-${LND_VERSION}.log`);
  writeFileSync(logFile, `${new Date().toISOString()} ${goVersion}\n`);
  log(`building lnd ${LND_VERSION} / btcd ${BTCD_VERSION} with ${goVersion} into ${root} (log: ${logFile})`);

  // 1. lnd's module source, downloaded through the module proxy (outside any go.mod).
  const dlOut = await run('go', ['mod', 'download', '-json', `${LND_MODULE}@${LND_VERSION}`], tmpdir(), deadline, logFile, log);
  const dl = JSON.parse(dlOut) as { Dir?: string; Error?: string };
  if (!dl.Dir) throw new InteropBuildError(`go mod download gave no directory for lnd: ${dl.Error ?? dlOut}`);

  // 2. A writable copy to build in (the module cache is read-only).
  const src = join(root, '.src', `lnd-${LND_VERSION}-${process.pid}`);
  rmSync(src, { recursive: true, force: true });
  copyWritable(dl.Dir, src);
  try {
    const gomod = readFileSync(join(src, 'go.mod'), 'utf8');
    const m = /^\s*github\.com\/btcsuite\/btcd (v\S+)/m.exec(gomod);
    if (!m || m[1] !== BTCD_VERSION) {
      throw new InteropBuildError(`lnd ${LND_VERSION}'s go.mod requires btcd ${m?.[1] ?? '(none)'}, expected ${BTCD_VERSION}`);
    }

    if (!lndCached) {
      const t0 = Date.now();
      const staging = `${lndDir()}.tmp-${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      await run(
        'go',
        ['build', '-trimpath', '-buildvcs=false', `-tags=${LND_TAGS}`, '-o', staging + '/', './cmd/lnd', './cmd/lncli'],
        src,
        deadline,
        logFile,
        log,
      );
      const secs = Math.round((Date.now() - t0) / 1000);
      publish(staging, lndDir(), {
        module: LND_MODULE,
        version: LND_VERSION,
        goVersion,
        builtAt: new Date().toISOString(),
        buildSeconds: secs,
        files: ['lnd', 'lncli'],
      });
      log(`lnd + lncli built in ${secs} s`);
    }

    if (!btcdCached) {
      const t0 = Date.now();
      const staging = `${btcdDir()}.tmp-${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      // Built from lnd's module so that the go.mod/go.sum there pick exactly the btcd lnd runs against.
      await run(
        'go',
        ['build', '-trimpath', '-buildvcs=false', '-o', staging + '/', BTCD_MODULE, `${BTCD_MODULE}/cmd/btcctl`],
        src,
        deadline,
        logFile,
        log,
      );
      const secs = Math.round((Date.now() - t0) / 1000);
      publish(staging, btcdDir(), {
        module: BTCD_MODULE,
        version: BTCD_VERSION,
        goVersion,
        builtAt: new Date().toISOString(),
        buildSeconds: secs,
        files: ['btcd', 'btcctl'],
      });
      log(`btcd + btcctl built in ${secs} s`);
    }
  } finally {
    rmSync(src, { recursive: true, force: true });
    try {
      rmdirSync(join(root, '.src')); // only when empty: another build may be using it
    } catch {
      /* not empty or already gone */
    }
  }

  for (const p of [want.lnd, want.lncli, want.btcd, want.btcctl]) {
    if (!existsSync(p)) throw new InteropBuildError(`build finished but ${p} is missing`);
  }
  return want;
}

/** Total size in bytes of a directory tree. */
export function treeBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  const st = statSync(dir);
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const name of readdirSync(dir)) n += treeBytes(join(dir, name));
  return n;
}

async function main(): Promise<void> {
  const force = process.argv.includes('--force');
  const t0 = Date.now();
  const b = await ensureBinaries({ force });
  const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as Manifest;
  process.stdout.write(
    JSON.stringify({
      ...b,
      seconds: Math.round((Date.now() - t0) / 1000),
      lndBuildSeconds: readManifest(lndDir()).buildSeconds,
      btcdBuildSeconds: readManifest(btcdDir()).buildSeconds,
      lndBytes: treeBytes(lndDir()),
      btcdBytes: treeBytes(btcdDir()),
    }) + '\n',
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
