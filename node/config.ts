/**
 * Node configuration: one table of defaults (in the manner of ldk-node's
 * Config), the parsers for the textual forms the CLI accepts (`HOST:PORT`,
 * `PUBKEY@HOST:PORT`), and the node identity key kept in the data directory.
 *
 * Timing defaults are lnd's where lnd has one: init within 15 s, a ping every
 * 60 s, the pong within 30 s; BOLT 8's handshake gets 10 s.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { bytesToHex, hexToBytes } from '../wire/bytes.js';
import { randomPrivateKey, secp } from '../wire/crypto.js';
import { NodeError } from './errors.js';
import type { FeatureRow } from './features.js';
import type { Logger, LogLevel } from './log.js';
import { isNetwork, type Network } from './network.js';

export interface NodeConfig {
  /** Where `node_key` (and, later, the database) live. Required unless `nodeKey` is given. */
  datadir?: string;
  /** Use this identity key instead of the one in `datadir` (embedding, tests). */
  nodeKey?: Uint8Array;
  /** `HOST:PORT` to accept peers on (port 0: any free port); null: do not listen. */
  listen?: string | null;
  network?: Network;
  /** BOLT 8 handshake must finish within this. */
  handshakeTimeoutMs?: number;
  /** The peer's init must arrive within this after the handshake. */
  initTimeoutMs?: number;
  /** Our pings' period; 0 disables them. */
  pingIntervalMs?: number;
  /** A pong must arrive within this. */
  pongTimeoutMs?: number;
  /** Largest num_pong_bytes our timer pings ask for. */
  maxPingPongBytes?: number;
  /** TCP connect timeout for outgoing connections. */
  connectTimeoutMs?: number;
  /** First reconnect delay for persistent peers; doubled per failure... */
  reconnectInitialDelayMs?: number;
  /** ...up to this bound. */
  reconnectMaxDelayMs?: number;
  /** Stop reading from a peer while this many bytes wait to be sent to it. */
  maxSendBufferBytes?: number;
  /** Incoming connections allowed at once in the handshake or init exchange; more are closed at once. */
  maxPendingInbound?: number;
  // ---- peer limits (a hostile peer cannot lock others out); see README "Running a node"
  /** Of those, how many one remote address (IPv4 address, IPv6 /64) may hold. */
  maxPendingInboundPerAddress?: number;
  /** Extra handshake slots, beyond maxPendingInbound, for addresses a peer with channels last connected from. */
  pendingReserveForChannelPeers?: number;
  /** An incoming connection must deliver BOLT 8 act 1 within this (the whole handshake: handshakeTimeoutMs). */
  actOneTimeoutMs?: number;
  /** Incoming peers without channels (see PeerManager.setPeerProtected) connected at once; more are closed after the handshake. */
  maxPeersWithoutChannels?: number;
  /** Incoming peers without channels connected at once from one remote address. */
  maxPeersPerAddress?: number;
  /** Peer sockets (in and out, any phase) at once; default: the open-file limit less reservedFileDescriptors. */
  maxConnections?: number;
  /** File descriptors kept free of peer sockets for the store, the chain, the API and logs (when maxConnections is not given). */
  reservedFileDescriptors?: number;
  /** Pings a peer may send per second, sustained (0: no limit)... */
  pingsPerSecond?: number;
  /** ...and at once. */
  pingBurst?: number;
  /** Pong bytes we send a peer per second, sustained, with a burst of 16 s worth and at least one largest pong (0: no limit). */
  pongBytesPerSecond?: number;
  /** Pings beyond those budgets (left unanswered) a peer may send before it is disconnected; refills at pingsPerSecond (at least 1/s). */
  pingFloodLimit?: number;
  /** Lines the network can trigger (refusals, failed handshakes) are summarized once per this period. */
  logSummaryIntervalMs?: number;
  /** Feature table (node/features.ts) to advertise from; the default one when absent. */
  features?: readonly FeatureRow[];
  /** Root logger; one on stderr at `logLevel` is made when absent. */
  logger?: Logger;
  logLevel?: LogLevel;
}

export const DEFAULTS = {
  listen: '127.0.0.1:9735',
  network: 'regtest' as Network,
  handshakeTimeoutMs: 10_000,
  initTimeoutMs: 15_000,
  pingIntervalMs: 60_000,
  pongTimeoutMs: 30_000,
  maxPingPongBytes: 4096,
  connectTimeoutMs: 10_000,
  reconnectInitialDelayMs: 1_000,
  reconnectMaxDelayMs: 60_000,
  maxSendBufferBytes: 4 * 1024 * 1024,
  maxPendingInbound: 64,
  maxPendingInboundPerAddress: 4,
  pendingReserveForChannelPeers: 16,
  actOneTimeoutMs: 5_000,
  maxPeersWithoutChannels: 100,
  maxPeersPerAddress: 16,
  reservedFileDescriptors: 1024,
  pingsPerSecond: 10,
  pingBurst: 200,
  pongBytesPerSecond: 65_536,
  pingFloodLimit: 100,
  logSummaryIntervalMs: 60_000,
  logLevel: 'info' as LogLevel,
} as const;

export type ResolvedConfig = Required<Omit<NodeConfig, 'datadir' | 'nodeKey' | 'features' | 'logger' | 'listen'>> & {
  datadir: string | undefined;
  listen: string | null;
};

function nonNegative(name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new NodeError('ERR_NODE_CONFIG', `${name} must be a non-negative number, got ${v}`);
  return v;
}

/**
 * The soft limit on open files (RLIMIT_NOFILE) of this process, from /proc/self/limits; undefined
 * where that cannot be read (not Linux). Node.js raises the soft limit to the hard one at start-up.
 */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === undefined) return undefined;
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Peer sockets allowed at once when maxConnections is not given: the open-file limit less the reserve, at least 64 (1024 when the limit is unknown). */
export function defaultMaxConnections(reservedFileDescriptors: number, limit: number | undefined): number {
  if (limit === undefined) return 1024;
  return Math.max(64, Math.min(limit - reservedFileDescriptors, 1_000_000));
}

function positiveInt(name: string, v: number, allowZero = false): number {
  if (!Number.isInteger(v) || v < 0 || (!allowZero && v === 0))
    throw new NodeError('ERR_NODE_CONFIG', `${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${v}`);
  return v;
}

export function resolveConfig(c: NodeConfig): ResolvedConfig {
  const r: ResolvedConfig = {
    datadir: c.datadir,
    listen: c.listen === undefined ? DEFAULTS.listen : c.listen,
    network: c.network ?? DEFAULTS.network,
    handshakeTimeoutMs: positiveInt('handshakeTimeoutMs', c.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs),
    initTimeoutMs: positiveInt('initTimeoutMs', c.initTimeoutMs ?? DEFAULTS.initTimeoutMs),
    pingIntervalMs: positiveInt('pingIntervalMs', c.pingIntervalMs ?? DEFAULTS.pingIntervalMs, true),
    pongTimeoutMs: positiveInt('pongTimeoutMs', c.pongTimeoutMs ?? DEFAULTS.pongTimeoutMs),
    maxPingPongBytes: positiveInt('maxPingPongBytes', c.maxPingPongBytes ?? DEFAULTS.maxPingPongBytes, true),
    connectTimeoutMs: positiveInt('connectTimeoutMs', c.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs),
    reconnectInitialDelayMs: positiveInt('reconnectInitialDelayMs', c.reconnectInitialDelayMs ?? DEFAULTS.reconnectInitialDelayMs),
    reconnectMaxDelayMs: positiveInt('reconnectMaxDelayMs', c.reconnectMaxDelayMs ?? DEFAULTS.reconnectMaxDelayMs),
    maxSendBufferBytes: positiveInt('maxSendBufferBytes', c.maxSendBufferBytes ?? DEFAULTS.maxSendBufferBytes),
    maxPendingInbound: positiveInt('maxPendingInbound', c.maxPendingInbound ?? DEFAULTS.maxPendingInbound),
    maxPendingInboundPerAddress: positiveInt(
      'maxPendingInboundPerAddress',
      c.maxPendingInboundPerAddress ?? DEFAULTS.maxPendingInboundPerAddress,
    ),
    pendingReserveForChannelPeers: positiveInt(
      'pendingReserveForChannelPeers',
      c.pendingReserveForChannelPeers ?? DEFAULTS.pendingReserveForChannelPeers,
      true,
    ),
    actOneTimeoutMs: positiveInt('actOneTimeoutMs', c.actOneTimeoutMs ?? DEFAULTS.actOneTimeoutMs),
    maxPeersWithoutChannels: positiveInt('maxPeersWithoutChannels', c.maxPeersWithoutChannels ?? DEFAULTS.maxPeersWithoutChannels, true),
    maxPeersPerAddress: positiveInt('maxPeersPerAddress', c.maxPeersPerAddress ?? DEFAULTS.maxPeersPerAddress, true),
    reservedFileDescriptors: positiveInt('reservedFileDescriptors', c.reservedFileDescriptors ?? DEFAULTS.reservedFileDescriptors, true),
    maxConnections: positiveInt(
      'maxConnections',
      c.maxConnections ?? defaultMaxConnections(c.reservedFileDescriptors ?? DEFAULTS.reservedFileDescriptors, openFileLimit()),
    ),
    pingsPerSecond: nonNegative('pingsPerSecond', c.pingsPerSecond ?? DEFAULTS.pingsPerSecond),
    pingBurst: positiveInt('pingBurst', c.pingBurst ?? DEFAULTS.pingBurst),
    pongBytesPerSecond: nonNegative('pongBytesPerSecond', c.pongBytesPerSecond ?? DEFAULTS.pongBytesPerSecond),
    pingFloodLimit: positiveInt('pingFloodLimit', c.pingFloodLimit ?? DEFAULTS.pingFloodLimit),
    logSummaryIntervalMs: positiveInt('logSummaryIntervalMs', c.logSummaryIntervalMs ?? DEFAULTS.logSummaryIntervalMs),
    logLevel: c.logLevel ?? DEFAULTS.logLevel,
  };
  if (!isNetwork(r.network)) throw new NodeError('ERR_NODE_CONFIG', `unsupported network "${String(r.network)}" (only regtest)`);
  if (r.maxPingPongBytes >= 65532) throw new NodeError('ERR_NODE_CONFIG', 'maxPingPongBytes must be below 65532');
  if (r.reconnectMaxDelayMs < r.reconnectInitialDelayMs)
    throw new NodeError('ERR_NODE_CONFIG', 'reconnectMaxDelayMs is below reconnectInitialDelayMs');
  if (r.listen !== null) parseHostPort(r.listen);
  if (c.datadir === undefined && c.nodeKey === undefined) throw new NodeError('ERR_NODE_CONFIG', 'give a datadir (or a nodeKey)');
  // an empty datadir would be the working directory
  if (c.datadir !== undefined && (typeof c.datadir !== 'string' || c.datadir.trim() === ''))
    throw new NodeError('ERR_NODE_CONFIG', 'the datadir must be a non-empty path');
  return r;
}

// ------------------------------------------------------------------ addresses

export interface HostPort {
  host: string;
  port: number;
}

/** At most 100 characters of a value given to a parser, for its error message. */
function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

/** `127.0.0.1:9735`, `localhost:9735`, `[::1]:9735`. */
export function parseHostPort(s: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  if (m === null) throw new NodeError('ERR_NODE_CONFIG', `not HOST:PORT: "${clip(s)}"`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NodeError('ERR_NODE_CONFIG', `bad port in "${clip(s)}"`);
  if (s.startsWith('[') && !isIPv6(host)) throw new NodeError('ERR_NODE_CONFIG', `not an IPv6 address: "${clip(host)}"`);
  return { host, port };
}

export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `PUBKEY@HOST:PORT` (lncli's form). */
export function parseNodeAddress(s: string): HostPort & { nodeId: Uint8Array } {
  const at = s.indexOf('@');
  if (at < 0) throw new NodeError('ERR_NODE_CONFIG', `not PUBKEY@HOST:PORT: "${clip(s)}"`);
  const nodeId = parseNodeId(s.slice(0, at));
  return { nodeId, ...parseHostPort(s.slice(at + 1)) };
}

/** A 33-byte compressed public key in hex. */
export function parseNodeId(hex: string): Uint8Array {
  if (!/^(02|03)[0-9a-fA-F]{64}$/.test(hex))
    throw new NodeError('ERR_NODE_CONFIG', `not a node id (33-byte compressed key in hex): "${clip(hex)}"`);
  const b = hexToBytes(hex.toLowerCase());
  if (!secp.isPublicKey(b)) throw new NodeError('ERR_NODE_CONFIG', `not a point on secp256k1: "${hex}"`);
  return b;
}

// ------------------------------------------------------------------ identity key

export const NODE_KEY_FILE = 'node_key';

/**
 * Loads `DATADIR/node_key` (64 hex characters), or creates it (mode 0600,
 * datadir 0700) on first start. A key file readable by others is narrowed
 * to 0600 with a warning; an invalid one is an error, never overwritten.
 */
export function loadOrCreateNodeKey(datadir: string, log?: Logger): { key: Uint8Array; created: boolean } {
  mkdirSync(datadir, { recursive: true, mode: 0o700 });
  const path = join(datadir, NODE_KEY_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new NodeError('ERR_NODE_KEY_INVALID', `cannot read ${NODE_KEY_FILE}: ${(e as Error).message}`, { cause: e });
    const key = randomPrivateKey();
    try {
      writeFileSync(path, `${bytesToHex(key)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (w) {
      if ((w as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateNodeKey(datadir, log); // created meanwhile
      throw new NodeError('ERR_NODE_KEY_INVALID', `cannot write ${NODE_KEY_FILE}: ${(w as Error).message}`, { cause: w });
    }
    return { key, created: true };
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new NodeError('ERR_NODE_KEY_INVALID', `${NODE_KEY_FILE} must hold 64 hex characters`);
  const key = hexToBytes(hex.toLowerCase());
  if (!secp.isPrivateKey(key)) throw new NodeError('ERR_NODE_KEY_INVALID', `${NODE_KEY_FILE} is not a valid secp256k1 private key`);
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    chmodSync(path, 0o600);
    log?.warn({ mode: mode.toString(8) }, `${NODE_KEY_FILE} was readable by others; mode set to 600`);
  }
  return { key, created: false };
}
