/**
 * The peer manager: identity key, TCP listener, outgoing connections,
 * persistent peers with bounded exponential-backoff reconnects, and a typed
 * event stream (peer_connected / peer_disconnected with a typed reason).
 * Shaped after ldk-node's embedding API: construct with a config (defaults
 * in node/config.ts), `start()`, use, `stop()`.
 *
 * Isolation: each connection lives in its own `Peer` (node/peer.ts) with its
 * own error handling; a socket error, bad bytes or a throwing handler end
 * that one peer and nothing else. This is the only module that opens
 * sockets or starts reconnect timers.
 *
 * Limits (a hostile peer cannot lock others out; defaults in node/config.ts):
 * - before the handshake, by remote address (IPv4 address, IPv6 /64): an
 *   incoming connection is closed at once, before any byte is read, when
 *   `maxConnections` peer sockets are open (the rest of the open-file limit is
 *   kept for the store, the chain and the API), when its address already holds
 *   `maxPendingInboundPerAddress` of the slots for connections in handshake or
 *   init, when all `maxPendingInbound` of those are taken (addresses where a
 *   peer with channels last connected from get `pendingReserveForChannelPeers`
 *   more), or when `maxPeersPerAddress` peers without channels are already
 *   connected from it. Act 1 must arrive within `actOneTimeoutMs`.
 * - after the handshake, by node id: a peer without channels (see
 *   `setPeerProtected`; persistent peers count as protected) is closed right
 *   after act 3, before init, when `maxPeersWithoutChannels` incoming peers
 *   without channels are connected or `maxPeersPerAddress` of them from its
 *   address. Outgoing connections are ours and only bound by maxConnections.
 * - refusals and failed incoming handshakes are logged at debug, the first 10
 *   per `logSummaryIntervalMs`, with one summary line per period
 *   ("refused N incoming connections from M addresses in the last 60 s").
 *
 * One connection per node id. When a second one completes init:
 * - same direction as the first: the new one wins (the old is likely stale);
 * - opposite direction (both sides dialled at once): the connection dialled
 *   by the node with the smaller id wins. Both ends apply the same rule to
 *   the same pair of connections, so they keep the same one.
 */
import { EventEmitter } from 'node:events';
import { createServer, isIPv6, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { bytesToHex, compareBytes } from '../wire/bytes.js';
import { secp } from '../wire/crypto.js';
import { AmpnodeError, ArgumentError } from '../wire/errors.js';
import type { Message } from '../wire/messages.js';
import { MessageType } from '../wire/messages.js';
import { ACT_ONE_SIZE, NoiseError } from '../wire/noise.js';
import { noiseAccept, noiseConnect, type NoiseConnection } from '../wire/noise-stream.js';
import { ipAddressDescriptor } from '../wire/setup-messages.js';
import {
  formatHostPort,
  loadOrCreateNodeKey,
  parseHostPort,
  parseNodeId,
  resolveConfig,
  type NodeConfig,
  type ResolvedConfig,
} from './config.js';
import { NodeError, PeerError } from './errors.js';
import { describeFeatures, FEATURE_TABLE, knownFeatureBits, localFeatures } from './features.js';
import { createLogger, LogRateLimiter, peerLogger, subsystemLogger, type Logger } from './log.js';
import { NETWORKS } from './network.js';
import { Peer, type MessageHandler } from './peer.js';

export interface PeerInfo {
  nodeId: string;
  address: string;
  inbound: boolean;
  /** Feature bits the peer set (legacy global features merged in). */
  features: number[];
  featureNames: string[];
  /** ms since the epoch. */
  connectedSince: number;
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  pongsSent: number;
}

export interface PeerDisconnectedEvent {
  nodeId: string;
  address: string;
  inbound: boolean;
  /** Why; undefined only for a clean close without a stated reason. */
  reason: AmpnodeError | undefined;
}

export interface ConnectionFailedEvent {
  direction: 'inbound' | 'outbound';
  address: string;
  /** Known for outgoing connections, and for incoming ones that got past the handshake. */
  nodeId: string | undefined;
  reason: AmpnodeError;
}

export interface PeerManagerEvents {
  listening: [address: string];
  peer_connected: [info: PeerInfo];
  peer_disconnected: [ev: PeerDisconnectedEvent];
  /** A connection that never became a peer: TCP, handshake or init failure. */
  connection_failed: [ev: ConnectionFailedEvent];
}

export interface ConnectOptions {
  /** Keep reconnecting (with backoff) whenever the connection drops, until `disconnect()` or `stop()`. */
  persistent?: boolean;
}

interface PersistentPeer {
  host: string;
  port: number;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  dialing: boolean;
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/** Whether we have channels with a peer (node id in lower-case hex); see PeerManager.setPeerProtected. */
export type PeerProtectedFn = (nodeIdHex: string) => boolean;

/** Addresses of peers with channels remembered for the handshake-slot reserve. */
const MAX_CHANNEL_PEER_ADDRESSES = 1024;
/** Lines of one network-triggered kind (refusals, failed handshakes) written one by one per summary period. */
const NET_LINES_PER_PERIOD = 10;

/**
 * The key remote addresses are counted under: an IPv4 address as it is
 * (also when IPv4-mapped), an IPv6 address by its /64 — one host or LAN
 * usually has a whole /64, so counting single IPv6 addresses would limit nothing.
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped !== null) return mapped[1]!;
  if (!isIPv6(ip.split('%')[0]!)) return ip;
  const addr = ip.split('%')[0]!.toLowerCase();
  const [head, tail] = addr.includes('::') ? (addr.split('::') as [string, string]) : [addr, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const tailGroups = t.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = tail === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - tailGroups)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

export class PeerManager extends EventEmitter<PeerManagerEvents> {
  readonly config: ResolvedConfig;
  readonly log: Logger;
  private readonly featureTable;
  private readonly handlers = new Map<number, MessageHandler>();
  private readonly peers = new Map<string, Peer>();
  /** Connections past the handshake, waiting for init. */
  private readonly pendingPeers = new Set<Peer>();
  private readonly sockets = new Set<Socket>();
  private readonly persistent = new Map<string, PersistentPeer>();
  private readonly explicitKey: Uint8Array | undefined;
  private key: Uint8Array | undefined;
  private pub: Uint8Array | undefined;
  private server: Server | undefined;
  private boundAddress: string | undefined;
  private state: State = 'new';
  private pendingInbound = 0;
  /** Connections in handshake or init per address key. */
  private readonly pendingByAddress = new Map<string, number>();
  /** Incoming peers let in after the handshake (in init or connected), all and per address key. */
  private readonly admitted = new Set<Peer>();
  private readonly admittedByAddress = new Map<string, Set<Peer>>();
  /** Address keys a peer with channels last connected from (least recently seen first). */
  private readonly channelPeerAddresses = new Map<string, true>();
  private peerProtected: PeerProtectedFn | undefined;
  /** Lines strangers can trigger, rate-limited and summarized. */
  private readonly netLog: LogRateLimiter;

  constructor(config: NodeConfig) {
    super();
    this.config = resolveConfig(config);
    if (config.nodeKey !== undefined && !secp.isPrivateKey(config.nodeKey))
      throw new NodeError('ERR_NODE_KEY_INVALID', 'nodeKey is not a valid secp256k1 private key');
    this.explicitKey = config.nodeKey;
    this.featureTable = config.features ?? FEATURE_TABLE;
    localFeatures(this.featureTable); // validates the table now rather than on the first connection
    this.log = config.logger ?? createLogger({ level: this.config.logLevel });
    const server = subsystemLogger(this.log, 'server');
    const perSeconds = (n: number, what: string, s: { addresses: number; addressesTruncated: boolean; seconds: number }): string =>
      `${what} ${n} incoming connection${n === 1 ? '' : 's'} from ${s.addresses}${s.addressesTruncated ? '+' : ''} address${s.addresses === 1 ? '' : 'es'} in the last ${s.seconds} s`;
    this.netLog = new LogRateLimiter({
      log: server,
      intervalMs: this.config.logSummaryIntervalMs,
      burst: NET_LINES_PER_PERIOD,
      timer: true,
    })
      .kind('refused', { level: 'warn', always: true, message: (st) => perSeconds(st.count, 'refused', st) })
      .kind('handshake_failed', {
        level: 'info',
        always: true,
        message: (st) =>
          `${st.count} incoming handshake${st.count === 1 ? '' : 's'} failed, from ${st.addresses} address${st.addresses === 1 ? '' : 'es'}, in the last ${st.seconds} s`,
      })
      .kind('init_failed', {
        level: 'info',
        always: true,
        message: (st) =>
          `${st.count} incoming connection${st.count === 1 ? '' : 's'} closed before init, from ${st.addresses} address${st.addresses === 1 ? '' : 'es'}, in the last ${st.seconds} s`,
      })
      .kind('handshake_complete', { level: 'debug' })
      .kind('protected_hook_failed', { level: 'error' })
      .kind('listener_error', { level: 'error' });
  }

  /**
   * Tells the node which peers we have channels with (the channel manager
   * wires this): such peers bypass maxPeersWithoutChannels and
   * maxPeersPerAddress, and the addresses they connect from get the reserve
   * of handshake slots. Called for each incoming peer right after its
   * handshake and when counting peers at a cap; keep it cheap, and it must
   * not throw (a throw counts as "no channels"). Persistent peers are always
   * protected. `undefined` removes the hook.
   */
  setPeerProtected(fn: PeerProtectedFn | undefined): void {
    this.peerProtected = fn;
  }

  /** Whether the peer bypasses the limits on peers without channels. */
  isPeerProtected(nodeIdHex: string): boolean {
    const id = nodeIdHex.toLowerCase();
    if (this.persistent.has(id)) return true;
    const fn = this.peerProtected;
    if (fn === undefined) return false;
    try {
      return fn(id) === true;
    } catch (e) {
      this.netLog.note(
        'protected_hook_failed',
        subsystemLogger(this.log, 'node'),
        'error',
        { err: e },
        'setPeerProtected hook threw; the peer counts as without channels',
      );
      return false;
    }
  }

  /** Our node id (33-byte compressed public key); available after `start()`. */
  get nodeId(): Uint8Array {
    if (this.pub === undefined) throw new NodeError('ERR_NODE_NOT_STARTED', 'the node has not been started');
    return this.pub;
  }

  get nodeIdHex(): string {
    return bytesToHex(this.nodeId);
  }

  /**
   * The identity private key, for the layers that sign or do ECDH with it (onion peeling, channel_update); available
   * after `start()`. Never logged or sent.
   */
  identityKey(): Uint8Array {
    if (this.key === undefined) throw new NodeError('ERR_NODE_NOT_STARTED', 'the node has not been started');
    return this.key;
  }

  /** `HOST:PORT` actually bound (port 0 resolved), or undefined when not listening. */
  get listenAddress(): string | undefined {
    return this.boundAddress;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Loads or creates the identity key and starts listening (unless `listen` is null). */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new NodeError('ERR_NODE_ALREADY_STARTED', `start() called in state ${this.state}`);
    this.state = 'starting';
    try {
      if (this.explicitKey !== undefined) {
        this.key = Uint8Array.from(this.explicitKey);
      } else {
        const { key, created } = loadOrCreateNodeKey(this.config.datadir!, this.log);
        this.key = key;
        this.log.info({ sub: 'node', created }, created ? 'created a new node key' : 'loaded the node key');
      }
      this.pub = secp.publicKeyCreate(this.key);
      if (this.config.listen !== null) await this.listen(this.config.listen);
    } catch (e) {
      this.state = 'stopped';
      this.server?.close();
      throw e;
    }
    this.state = 'running';
    this.log.info({ sub: 'node', nodeId: this.nodeIdHex, network: this.config.network, listen: this.boundAddress }, 'node started');
  }

  private listen(spec: string): Promise<void> {
    const { host, port } = parseHostPort(spec);
    const server = createServer({ noDelay: true });
    this.server = server;
    const log = subsystemLogger(this.log, 'server');
    server.on('connection', (socket) => this.onInbound(socket));
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        // accept() failing (EMFILE, say) is reported here once per connection attempt: rate-limited
        server.on('error', (e) =>
          this.netLog.note('listener_error', log, 'error', { err: e }, 'listener error', { code: (e as NodeJS.ErrnoException).code }),
        );
        const a = server.address() as AddressInfo;
        this.boundAddress = formatHostPort(a.address, a.port);
        log.info({ address: this.boundAddress }, 'listening');
        this.emit('listening', this.boundAddress);
        resolve();
      });
    });
  }

  /**
   * Stops accepting, cancels reconnects and pending dials, disconnects every
   * peer (flushing what is queued) and resolves once all sockets are closed
   * (or after a bound of 3 s, by destroying what is left).
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    for (const p of this.persistent.values()) clearTimeout(p.timer);
    this.persistent.clear();
    const serverClosed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    const reason = new PeerError('ERR_PEER_NODE_STOPPING', 'node is stopping');
    const withPeer = new Set<Socket>();
    for (const p of [...this.peers.values(), ...this.pendingPeers]) {
      if (p.socket !== undefined) withPeer.add(p.socket);
      p.disconnect(reason, { graceful: true });
    }
    // connections still in TCP connect or in the handshake have nothing to flush
    for (const s of this.sockets) if (!withPeer.has(s)) s.destroy();
    const socketsClosed = Promise.all(
      [...this.sockets].map((s) => new Promise<void>((r) => (s.closed ? r() : s.once('close', () => r())))),
    );
    const bound = new Promise<void>((r) => setTimeout(r, 3_000).unref());
    await Promise.race([Promise.all([serverClosed, socketsClosed]), bound]);
    for (const s of this.sockets) s.destroy();
    this.netLog.close();
    this.state = 'stopped';
    this.log.info({ sub: 'node' }, 'node stopped');
  }

  /** The feature vector we send in init (BOLT 1), encoded. */
  localFeatureBytes(): Uint8Array {
    return localFeatures(this.featureTable).encode();
  }

  // ------------------------------------------------------------------ handlers

  /**
   * Routes messages of `type` (channel messages and the like) to `handler`.
   * init, ping and pong belong to the peer layer; `error`/`warning` naming a
   * channel may be handled here (connection-level ones never reach a handler).
   */
  registerHandler(type: number, handler: MessageHandler): void {
    if (type === MessageType.Init || type === MessageType.Ping || type === MessageType.Pong)
      throw new ArgumentError(`message type ${type} is handled by the peer layer`);
    if (this.handlers.has(type)) throw new ArgumentError(`a handler for message type ${type} is already registered`);
    this.handlers.set(type, handler);
  }

  // ------------------------------------------------------------------ peers

  listPeers(): PeerInfo[] {
    return [...this.peers.values()].map((p) => peerInfo(p));
  }

  /** The connected peer with this node id (hex), if any. */
  peer(nodeIdHex: string): Peer | undefined {
    return this.peers.get(nodeIdHex.toLowerCase());
  }

  /** Sends a message to a connected peer; false under back-pressure (see Peer.drained). */
  send(nodeIdHex: string, msg: Message): boolean {
    const p = this.requirePeer(nodeIdHex);
    return p.send(msg);
  }

  /** Pings a connected peer; resolves when the right-sized pong arrives. */
  ping(nodeIdHex: string, numPongBytes: number, ignoredLength = 0): Promise<void> {
    return this.requirePeer(nodeIdHex).ping(numPongBytes, ignoredLength);
  }

  private requirePeer(nodeIdHex: string): Peer {
    const p = this.peers.get(nodeIdHex.toLowerCase());
    if (p === undefined) throw new NodeError('ERR_NOT_CONNECTED', `not connected to ${nodeIdHex}`);
    return p;
  }

  /**
   * Connects to `nodeId` at host:port: TCP, BOLT 8 handshake, init exchange.
   * Resolves with the peer once init is accepted (at once if already
   * connected); rejects with the typed reason otherwise. With `persistent`,
   * the node keeps reconnecting whenever the connection is down — also when
   * this first attempt fails.
   */
  async connect(nodeId: string | Uint8Array, host: string, port: number, opts: ConnectOptions = {}): Promise<PeerInfo> {
    if (this.state !== 'running') throw new NodeError('ERR_NODE_NOT_STARTED', 'the node is not running');
    const id = typeof nodeId === 'string' ? parseNodeId(nodeId) : parseNodeId(bytesToHex(nodeId));
    const idHex = bytesToHex(id);
    if (idHex === this.nodeIdHex) throw new ArgumentError('cannot connect to ourselves');
    if (opts.persistent === true) {
      const existing = this.persistent.get(idHex);
      if (existing === undefined) this.persistent.set(idHex, { host, port, attempt: 0, timer: undefined, dialing: false });
      else {
        existing.host = host;
        existing.port = port;
      }
    }
    const active = this.peers.get(idHex);
    if (active !== undefined) return peerInfo(active);
    const pp = this.persistent.get(idHex);
    if (pp !== undefined) {
      clearTimeout(pp.timer);
      pp.timer = undefined;
      pp.dialing = true;
    }
    try {
      return await this.dial(id, host, port);
    } catch (e) {
      if (pp !== undefined && this.persistent.get(idHex) === pp) this.scheduleReconnect(idHex, pp);
      throw e;
    } finally {
      if (pp !== undefined) pp.dialing = false;
    }
  }

  /** Drops the connection to a peer and forgets it as a persistent peer. */
  disconnect(nodeIdHex: string): boolean {
    const id = nodeIdHex.toLowerCase();
    const pp = this.persistent.get(id);
    if (pp !== undefined) {
      clearTimeout(pp.timer);
      this.persistent.delete(id);
    }
    const p = this.peers.get(id);
    if (p === undefined) return false;
    p.disconnect(new PeerError('ERR_PEER_DISCONNECT_REQUESTED', 'disconnect requested'), { graceful: true });
    return true;
  }

  private async dial(id: Uint8Array, host: string, port: number): Promise<PeerInfo> {
    const address = formatHostPort(host, port);
    const idHex = bytesToHex(id);
    const fail = (reason: AmpnodeError): never => {
      this.emit('connection_failed', { direction: 'outbound', address, nodeId: idHex, reason });
      throw reason;
    };
    if (this.sockets.size >= this.config.maxConnections)
      return fail(
        new NodeError(
          'ERR_TOO_MANY_CONNECTIONS',
          `${this.sockets.size} peer sockets are open (maxConnections ${this.config.maxConnections})`,
        ),
      );
    let socket: Socket;
    try {
      socket = await this.tcpConnect(host, port);
    } catch (e) {
      return fail(e as AmpnodeError);
    }
    if (this.state !== 'running') {
      socket.destroy();
      return fail(new PeerError('ERR_PEER_NODE_STOPPING', 'node is stopping'));
    }
    let conn: NoiseConnection;
    try {
      conn = await noiseConnect(socket, {
        localStaticPriv: this.key!,
        remoteStaticPub: id,
        handshakeTimeoutMs: this.config.handshakeTimeoutMs,
      });
    } catch (e) {
      socket.destroy();
      return fail(e instanceof AmpnodeError ? e : new NodeError('ERR_CONNECT_FAILED', String(e)));
    }
    return this.outcome(this.attach(conn, socket, false, address));
  }

  /**
   * Resolves when a connection to the peer's node is up: this one, or the one
   * that won a duplicate-connection decision (then this one may close first,
   * and the other may still be in its init exchange).
   */
  private outcome(peer: Peer): Promise<PeerInfo> {
    const idHex = peer.nodeIdHex;
    return new Promise<PeerInfo>((resolve, reject) => {
      peer.once('ready', () => {
        const winner = this.peers.get(idHex);
        if (winner !== undefined) resolve(peerInfo(winner));
      });
      peer.once('close', (reason) => {
        const winner = this.peers.get(idHex);
        if (winner !== undefined && winner !== peer) {
          resolve(peerInfo(winner));
          return;
        }
        const other = [...this.pendingPeers].find((p) => p !== peer && p.nodeIdHex === idHex);
        if (other !== undefined && reason?.code !== 'ERR_PEER_NODE_STOPPING') {
          this.outcome(other).then(resolve, reject);
          return;
        }
        reject(reason ?? new PeerError('ERR_PEER_DISCONNECT_REQUESTED', 'closed before init'));
      });
    });
  }

  private tcpConnect(host: string, port: number): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const socket = netConnect({ host, port, noDelay: true });
      this.track(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new NodeError(
            'ERR_CONNECT_FAILED',
            `TCP connect to ${formatHostPort(host, port)} timed out after ${this.config.connectTimeoutMs} ms`,
          ),
        );
      }, this.config.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        resolve(socket);
      });
      const onError = (e: Error): void => {
        clearTimeout(timer);
        reject(new NodeError('ERR_CONNECT_FAILED', `TCP connect to ${formatHostPort(host, port)}: ${e.message}`, { cause: e }));
      };
      const onClose = (): void => {
        clearTimeout(timer);
        reject(new NodeError('ERR_CONNECT_FAILED', `TCP connect to ${formatHostPort(host, port)}: closed before connecting`));
      };
      socket.once('error', onError);
      socket.once('close', onClose);
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    // a late error after our own listeners are gone must never crash the process
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private onInbound(socket: Socket): void {
    const ip = socket.remoteAddress ?? '?';
    const address = formatHostPort(ip, socket.remotePort ?? 0);
    const key = addressKey(ip);
    this.track(socket);
    if (this.state !== 'running') {
      socket.destroy();
      return;
    }
    // Connections that have not finished init cost memory and timers but prove nothing yet: cap them, per address too.
    const refusal = this.refuseConnection(key);
    if (refusal !== undefined) {
      socket.destroy();
      this.refused(address, key, undefined, refusal);
      return;
    }
    this.pendingInbound++;
    this.pendingByAddress.set(key, (this.pendingByAddress.get(key) ?? 0) + 1);
    let counted = true;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      this.pendingInbound--;
      const n = (this.pendingByAddress.get(key) ?? 1) - 1;
      if (n > 0) this.pendingByAddress.set(key, n);
      else this.pendingByAddress.delete(key);
    };
    socket.once('close', release);
    // A connection that sends nothing costs a slot until the handshake timeout: act 1 gets less time.
    let actOneLate = false;
    const actOneTimer = setTimeout(() => {
      if (socket.bytesRead >= ACT_ONE_SIZE || socket.destroyed) return;
      actOneLate = true;
      socket.destroy();
    }, this.config.actOneTimeoutMs);
    actOneTimer.unref();
    socket.once('close', () => clearTimeout(actOneTimer));
    noiseAccept(socket, { localStaticPriv: this.key!, handshakeTimeoutMs: this.config.handshakeTimeoutMs }).then(
      (conn) => {
        clearTimeout(actOneTimer);
        if (this.state !== 'running') {
          conn.close();
          return;
        }
        const id = bytesToHex(conn.remoteStaticPub);
        const late = this.refusePeer(id, key);
        if (late !== undefined) {
          // closed before init: BOLT 1 has no "busy" message, and a peer refused here gets nothing from us but the handshake
          conn.close(late);
          this.refused(address, key, id, late);
          return;
        }
        const peer = this.attach(conn, socket, true, address, key);
        this.admit(peer, key);
        peer.once('ready', release);
      },
      (e: unknown) => {
        clearTimeout(actOneTimer);
        socket.destroy();
        const reason = actOneLate
          ? new NoiseError('ERR_NOISE_HANDSHAKE_TIMEOUT', `no act 1 within ${this.config.actOneTimeoutMs} ms`, { act: 1 })
          : e instanceof AmpnodeError
            ? e
            : new NodeError('ERR_CONNECT_FAILED', String(e));
        this.netLog.note(
          'handshake_failed',
          subsystemLogger(this.log, 'server'),
          'debug',
          { address, code: reason.code, reason: reason.message },
          'incoming handshake failed',
          {
            address: key,
            code: reason.code,
          },
        );
        this.emit('connection_failed', { direction: 'inbound', address, nodeId: undefined, reason });
      },
    );
  }

  /** Why an incoming connection from `key` is closed before its handshake, if it is. */
  private refuseConnection(key: string): NodeError | undefined {
    const c = this.config;
    // this socket is already tracked
    if (this.sockets.size > c.maxConnections)
      return new NodeError(
        'ERR_TOO_MANY_CONNECTIONS',
        `${this.sockets.size - 1} peer sockets are open (maxConnections ${c.maxConnections})`,
      );
    const here = this.pendingByAddress.get(key) ?? 0;
    if (here >= c.maxPendingInboundPerAddress)
      return new NodeError(
        'ERR_TOO_MANY_PENDING_FROM_ADDRESS',
        `${here} incoming connections from ${key} are still in handshake or init (maxPendingInboundPerAddress ${c.maxPendingInboundPerAddress})`,
      );
    const channelPeer = this.channelPeerAddresses.has(key);
    const cap = c.maxPendingInbound + (channelPeer ? c.pendingReserveForChannelPeers : 0);
    if (this.pendingInbound >= cap)
      return new NodeError('ERR_TOO_MANY_PENDING', `${this.pendingInbound} incoming connections are still in handshake or init`);
    // an address no peer with channels came from, already at its cap of peers: no need to do the handshake to refuse it
    if (!channelPeer) {
      const n = this.unprotectedCount(this.admittedByAddress.get(key), c.maxPeersPerAddress);
      if (n >= c.maxPeersPerAddress)
        return new NodeError(
          'ERR_TOO_MANY_PEERS_FROM_ADDRESS',
          `${n} peers without channels are connected from ${key} (maxPeersPerAddress ${c.maxPeersPerAddress})`,
        );
    }
    return undefined;
  }

  /** Why an incoming peer is closed right after its handshake, if it is. */
  private refusePeer(id: string, key: string): NodeError | undefined {
    const c = this.config;
    if (this.isPeerProtected(id) || this.peers.has(id)) return undefined; // a reconnection replaces its connection: no new slot
    const all = this.unprotectedCount(this.admitted, c.maxPeersWithoutChannels);
    if (all >= c.maxPeersWithoutChannels)
      return new NodeError(
        'ERR_TOO_MANY_PEERS',
        `${all} incoming peers without channels are connected (maxPeersWithoutChannels ${c.maxPeersWithoutChannels})`,
      );
    const here = this.unprotectedCount(this.admittedByAddress.get(key), c.maxPeersPerAddress);
    if (here >= c.maxPeersPerAddress)
      return new NodeError(
        'ERR_TOO_MANY_PEERS_FROM_ADDRESS',
        `${here} peers without channels are connected from ${key} (maxPeersPerAddress ${c.maxPeersPerAddress})`,
      );
    return undefined;
  }

  /** Peers in `set` without channels; exact only when that reaches `cap` (below it, the set's size is enough to know). */
  private unprotectedCount(set: ReadonlySet<Peer> | undefined, cap: number): number {
    if (set === undefined || set.size < cap) return set?.size ?? 0;
    let n = 0;
    for (const p of set) if (!this.isPeerProtected(p.nodeIdHex)) n++;
    return n;
  }

  private admit(peer: Peer, key: string): void {
    this.admitted.add(peer);
    let set = this.admittedByAddress.get(key);
    if (set === undefined) this.admittedByAddress.set(key, (set = new Set()));
    set.add(peer);
    peer.once('close', () => {
      this.admitted.delete(peer);
      set.delete(peer);
      if (set.size === 0 && this.admittedByAddress.get(key) === set) this.admittedByAddress.delete(key);
    });
  }

  private refused(address: string, key: string, nodeId: string | undefined, reason: NodeError): void {
    this.netLog.note(
      'refused',
      subsystemLogger(this.log, 'server'),
      'debug',
      { address, peer: nodeId, code: reason.code, reason: reason.message },
      'incoming connection refused',
      {
        address: key,
        code: reason.code,
      },
    );
    this.emit('connection_failed', { direction: 'inbound', address, nodeId, reason });
  }

  private attach(conn: NoiseConnection, socket: Socket, inbound: boolean, address: string, key?: string): Peer {
    const idHex = bytesToHex(conn.remoteStaticPub);
    let remoteAddr: Uint8Array | undefined;
    try {
      if (socket.remoteAddress !== undefined && socket.remotePort !== undefined)
        remoteAddr = ipAddressDescriptor(socket.remoteAddress, socket.remotePort);
    } catch {
      remoteAddr = undefined;
    }
    const peer = new Peer({
      conn,
      socket,
      inbound,
      address,
      ...(remoteAddr !== undefined ? { remoteAddr } : {}),
      localFeatures: localFeatures(this.featureTable),
      knownFeatures: knownFeatureBits(this.featureTable),
      chainHash: NETWORKS[this.config.network].chainHash,
      initTimeoutMs: this.config.initTimeoutMs,
      pingIntervalMs: this.config.pingIntervalMs,
      pongTimeoutMs: this.config.pongTimeoutMs,
      maxPingPongBytes: this.config.maxPingPongBytes,
      maxSendBufferBytes: this.config.maxSendBufferBytes,
      handlers: this.handlers,
      logger: peerLogger(this.log, idHex),
      pingLimits: {
        pingsPerSecond: this.config.pingsPerSecond,
        pingBurst: this.config.pingBurst,
        pongBytesPerSecond: this.config.pongBytesPerSecond,
        floodLimit: this.config.pingFloodLimit,
      },
      ...(inbound ? { netLog: this.netLog } : {}),
      ...(key !== undefined ? { netLogAddress: key } : {}),
    });
    this.pendingPeers.add(peer);
    peer.once('ready', () => this.onPeerReady(peer));
    peer.once('close', (reason) => this.onPeerClose(peer, reason));
    if (inbound) this.netLog.note('handshake_complete', peer.log, 'debug', { address, inbound }, 'handshake complete', { address: key });
    else peer.log.debug({ address, inbound }, 'handshake complete');
    peer.start();
    return peer;
  }

  private onPeerReady(peer: Peer): void {
    this.pendingPeers.delete(peer);
    if (this.state !== 'running') {
      peer.disconnect(new PeerError('ERR_PEER_NODE_STOPPING', 'node is stopping'));
      return;
    }
    const id = peer.nodeIdHex;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      const keepNew = existing.inbound === peer.inbound || compareBytes(this.initiator(peer), this.initiator(existing)) < 0;
      const loser = keepNew ? existing : peer;
      loser.log.info({ keptInbound: keepNew ? peer.inbound : existing.inbound }, 'duplicate connection closed');
      if (!keepNew) {
        loser.disconnect(new PeerError('ERR_PEER_REPLACED', 'another connection to this node is kept'), { graceful: true });
        return;
      }
      this.peers.delete(id);
      existing.disconnect(new PeerError('ERR_PEER_REPLACED', 'a newer connection to this node replaced this one'), { graceful: true });
    }
    this.peers.set(id, peer);
    if (this.isPeerProtected(id) && peer.socket?.remoteAddress !== undefined) {
      const key = addressKey(peer.socket.remoteAddress);
      this.channelPeerAddresses.delete(key);
      this.channelPeerAddresses.set(key, true);
      if (this.channelPeerAddresses.size > MAX_CHANNEL_PEER_ADDRESSES)
        this.channelPeerAddresses.delete(this.channelPeerAddresses.keys().next().value!);
    }
    const pp = this.persistent.get(id);
    if (pp !== undefined) {
      pp.attempt = 0;
      clearTimeout(pp.timer);
      pp.timer = undefined;
    }
    const info = peerInfo(peer);
    subsystemLogger(this.log, 'node').info(
      { peer: id, address: info.address, inbound: info.inbound, features: info.features },
      'peer connected',
    );
    this.emit('peer_connected', info);
  }

  private initiator(p: Peer): Uint8Array {
    return p.inbound ? p.nodeId : this.nodeId;
  }

  private onPeerClose(peer: Peer, reason: AmpnodeError | undefined): void {
    const id = peer.nodeIdHex;
    const wasPending = this.pendingPeers.delete(peer);
    if (this.peers.get(id) === peer) {
      this.peers.delete(id);
      subsystemLogger(this.log, 'node').info(
        { peer: id, address: peer.address, code: reason?.code, reason: reason?.message },
        'peer disconnected',
      );
      this.emit('peer_disconnected', { nodeId: id, address: peer.address, inbound: peer.inbound, reason });
    } else if (wasPending && reason !== undefined) {
      this.emit('connection_failed', { direction: peer.inbound ? 'inbound' : 'outbound', address: peer.address, nodeId: id, reason });
    }
    const pp = this.persistent.get(id);
    if (pp !== undefined && this.state === 'running' && !this.peers.has(id) && !pp.dialing && pp.timer === undefined)
      this.scheduleReconnect(id, pp);
  }

  /** Next attempt after min(initial · 2^attempt, max) ms, less up to 20% jitter. */
  private scheduleReconnect(id: string, pp: PersistentPeer): void {
    if (this.state !== 'running') return;
    const base = Math.min(this.config.reconnectInitialDelayMs * 2 ** Math.min(pp.attempt, 30), this.config.reconnectMaxDelayMs);
    const delay = Math.round(base * (1 - 0.2 * Math.random()));
    pp.attempt++;
    subsystemLogger(this.log, 'node').info({ peer: id, delayMs: delay, attempt: pp.attempt }, 'reconnect scheduled');
    clearTimeout(pp.timer);
    pp.timer = setTimeout(() => {
      pp.timer = undefined;
      if (this.state !== 'running' || this.persistent.get(id) !== pp || this.peers.has(id)) return;
      this.connect(id, pp.host, pp.port, { persistent: true }).catch((e: unknown) => {
        subsystemLogger(this.log, 'node').info({ peer: id, reason: (e as Error).message }, 'reconnect attempt failed');
      });
    }, delay);
  }
}

function peerInfo(p: Peer): PeerInfo {
  const f = describeFeatures(p.remoteFeatures);
  return {
    nodeId: p.nodeIdHex,
    address: p.address,
    inbound: p.inbound,
    features: f.map((x) => x.bit),
    featureNames: f.map((x) => x.name),
    connectedSince: p.connectedSince ?? 0,
    pingsSent: p.stats.pingsSent,
    pongsReceived: p.stats.pongsReceived,
    pingsReceived: p.stats.pingsReceived,
    pongsSent: p.stats.pongsSent,
  };
}

/** Builder-style entry point: `const peers = createPeerManager({datadir}); await peers.start()`. */
export function createPeerManager(config: NodeConfig): PeerManager {
  return new PeerManager(config);
}
