/**
 * The data directory as a whole: its path checked before anything touches
 * the disk, its permissions, the lock that keeps it to one node, and the
 * local API's bearer token kept in it.
 *
 *   DIR/ampnode.pid   the lock: created with O_EXCL, holds the pid of the
 *                     daemon running on DIR; removed at a clean stop. A lock
 *                     whose pid is not alive (process.kill(pid, 0)) is stale
 *                     and taken over.
 *   DIR/api_token     32 random bytes as hex (mode 0600): the local control
 *                     API's bearer token (node/channels/api.ts), created on
 *                     the first start with an API and reused afterwards.
 *
 * Permissions: the directory is made 0700 (narrowed with a warning when it
 * was created more open, e.g. by `mkdir` under the usual umask 022): with it
 * closed, nothing inside is reachable by other users whatever the files'
 * own modes. The daemon (node/cli.ts) also sets its umask to 077 before it
 * opens anything, so what LevelDB and bcoin create in there is 0600/0700,
 * and narrows any older file or directory left more open. Code embedding
 * the library gets the 0700 directory (createNode, node/builder.ts); the umask is
 * a per-process setting and left to the embedding program.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { AmpnodeError } from '../wire/errors.js';
import type { Logger } from './log.js';

export type DatadirErrorCode =
  | 'ERR_DATADIR_INVALID' // an empty path, or one that is not a directory
  | 'ERR_DATADIR_PERMISSIONS' // cannot be created or narrowed to 0700
  | 'ERR_DATADIR_IN_USE' // another live process holds the lock
  | 'ERR_API_TOKEN'; // api_token missing, unreadable or malformed

export class DatadirError extends AmpnodeError<DatadirErrorCode> {}

export const LOCK_FILE = 'ampnode.pid';
export const API_TOKEN_FILE = 'api_token';
const TOKEN_BYTES = 32;

/** Refuses an empty or whitespace-only datadir (it would mean the working directory); touches nothing. */
export function checkDatadirPath(dir: unknown): string {
  if (typeof dir !== 'string' || dir.trim() === '')
    throw new DatadirError(
      'ERR_DATADIR_INVALID',
      'the datadir must be a non-empty path (an empty one would put the node in the working directory)',
    );
  if (dir.includes('\0')) throw new DatadirError('ERR_DATADIR_INVALID', 'the datadir path contains a NUL byte');
  return dir;
}

/**
 * Creates DIR (and missing parents) with mode 0700, or narrows an existing
 * DIR to 0700 (warning when it was open to others). Not a directory, or a
 * mode that cannot be set (someone else's directory): an error.
 */
export function prepareDatadir(dir: string, log?: Logger): { created: boolean; narrowedFrom?: number } {
  checkDatadirPath(dir);
  let created: boolean;
  try {
    created = mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DatadirError(
      code === 'EEXIST' || code === 'ENOTDIR' ? 'ERR_DATADIR_INVALID' : 'ERR_DATADIR_PERMISSIONS',
      `cannot create the datadir: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const st = statSync(dir);
  if (!st.isDirectory()) throw new DatadirError('ERR_DATADIR_INVALID', 'the datadir is not a directory');
  const mode = st.mode & 0o777;
  if (mode === 0o700) return { created };
  try {
    chmodSync(dir, 0o700);
  } catch (e) {
    throw new DatadirError(
      'ERR_DATADIR_PERMISSIONS',
      `cannot set the datadir's mode to 700 (it is ${mode.toString(8)}): ${(e as Error).message}`,
      { cause: e },
    );
  }
  if ((mode & 0o077) !== 0)
    log?.warn({ sub: 'datadir', mode: mode.toString(8) }, 'the datadir was accessible by other users; mode set to 700');
  return { created, narrowedFrom: mode };
}

/**
 * Takes group and other permissions off every file and directory under DIR
 * (symbolic links are not followed). For datadirs written before the daemon
 * set its umask; returns how many entries were narrowed.
 */
export function narrowDatadirTree(dir: string, log?: Logger): number {
  let narrowed = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue; // removed meanwhile
      }
      if (st.isSymbolicLink()) continue;
      if ((st.mode & 0o077) !== 0 && (st.isFile() || st.isDirectory())) {
        chmodSync(p, st.mode & 0o700);
        narrowed++;
      }
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  if (narrowed > 0)
    log?.warn({ sub: 'datadir', narrowed }, 'files in the datadir were accessible by other users; group and other permissions removed');
  return narrowed;
}

// ------------------------------------------------------------------ the lock

/** The datadir lock this process holds; `release()` removes the file (once, and only while it still names us). */
export class DatadirLock {
  private released = false;
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this.path);
    try {
      if (readPid(this.path) === this.pid) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

/** Lock files this process holds. */
const held = new Set<string>();

function readPid(path: string): number | undefined {
  const text = readFileSync(path, 'utf8').trim();
  return /^\d{1,10}$/.test(text) ? Number(text) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, but another user's
  }
}

/**
 * Takes DIR/ampnode.pid (O_EXCL, our pid in it). Held by a live process:
 * `ERR_DATADIR_IN_USE` "datadir in use by pid N" (also when this process
 * holds it already). Stale (its pid is dead or is our own, or the file holds
 * no pid for 2 s): removed and taken. Two processes taking over the same
 * stale lock in the same instant is not guarded against; a stale pid reused
 * by an unrelated live process keeps the datadir locked until the file is
 * removed by hand (the message names it).
 */
export function lockDatadir(dir: string): DatadirLock {
  const path = resolve(checkDatadirPath(dir), LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new DatadirError('ERR_DATADIR_PERMISSIONS', `cannot create ${LOCK_FILE}: ${(e as Error).message}`, { cause: e });
      let pid: number | undefined;
      try {
        pid = readPid(path);
      } catch {
        continue; // removed meanwhile: try again
      }
      // a lock just created by another process may not hold its pid yet: give it a moment before calling it stale
      if (pid === undefined && Date.now() - safeMtime(path) < 2_000) {
        sleepSync(50);
        continue;
      }
      if (held.has(path)) throw new DatadirError('ERR_DATADIR_IN_USE', `datadir in use by pid ${process.pid} (this process) (${path})`);
      // our own pid in a lock this process does not hold: left by an earlier process that had our pid
      // (pids are reused, and a container's daemon gets the same low pid every time): stale
      if (pid !== undefined && pid !== process.pid && alive(pid))
        throw new DatadirError('ERR_DATADIR_IN_USE', `datadir in use by pid ${pid} (${path})`);
      try {
        unlinkSync(path); // stale
      } catch {
        /* someone else removed it */
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    held.add(path);
    return new DatadirLock(path, process.pid);
  }
  throw new DatadirError('ERR_DATADIR_IN_USE', `could not take ${path}: it keeps changing`);
}

function safeMtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ------------------------------------------------------------------ the API token

function parseToken(text: string): string {
  const t = text.trim();
  if (!/^[0-9a-f]{64}$/.test(t))
    throw new DatadirError('ERR_API_TOKEN', `${API_TOKEN_FILE} must hold ${TOKEN_BYTES} bytes as lowercase hex`);
  return t;
}

/**
 * The local API's bearer token from DATADIR/api_token (64 hex characters),
 * for clients on this machine (tests, the CLI). Missing or malformed: an
 * `ERR_API_TOKEN` error.
 */
export function readApiToken(datadir: string): string {
  let text: string;
  try {
    text = readFileSync(join(checkDatadirPath(datadir), API_TOKEN_FILE), 'utf8');
  } catch (e) {
    if (e instanceof DatadirError) throw e;
    throw new DatadirError('ERR_API_TOKEN', `cannot read ${API_TOKEN_FILE}: ${(e as Error).message}`, { cause: e });
  }
  return parseToken(text);
}

/** Reads DATADIR/api_token, or creates it (mode 0600, never overwritten) on first use; a file readable by others is narrowed to 0600. */
export function loadOrCreateApiToken(datadir: string, log?: Logger): { token: string; created: boolean } {
  const path = join(checkDatadirPath(datadir), API_TOKEN_FILE);
  try {
    const token = readApiToken(datadir);
    if ((statSync(path).mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
      log?.warn({ sub: 'datadir' }, `${API_TOKEN_FILE} was readable by others; mode set to 600`);
    }
    return { token, created: false };
  } catch (e) {
    if (!(e instanceof DatadirError) || (e.cause as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') throw e;
  }
  const token = randomBytes(TOKEN_BYTES).toString('hex');
  try {
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return { token: readApiToken(datadir), created: false };
    throw new DatadirError('ERR_API_TOKEN', `cannot write ${API_TOKEN_FILE}: ${(e as Error).message}`, { cause: e });
  }
  return { token, created: true };
}
