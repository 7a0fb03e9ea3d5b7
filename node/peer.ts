/**
 * One peer connection after the BOLT 8 handshake: the BOLT 1 control layer.
 *
 * - `init` exchange: ours is sent at once; the peer's must be its first
 *   message and must arrive within `initTimeoutMs` (lnd: 15 s). Its legacy
 *   `globalfeatures` are merged into `features`; an even bit we do not know,
 *   a broken BOLT 9 dependency, or a `networks` list without our chain ends
 *   the connection with a typed reason.
 * - ping/pong: a ping is answered with exactly `num_pong_bytes` zero bytes,
 *   never when it asks for 65532 or more, and only within the peer's budget
 *   (`pingLimits`: token buckets of pings/s and pong bytes/s). A ping beyond
 *   it is left unanswered; a peer that keeps sending them (`floodLimit`
 *   beyond the budget, refilled over time) is disconnected with
 *   ERR_PEER_PING_FLOOD. One pong at a time: while a pong waits in our send
 *   buffer beyond the socket's high-water mark, we read nothing more from
 *   that peer, so a flooder gets its answers no faster than it reads them.
 *   We ping on a timer with a random
 *   `num_pong_bytes` (0…4096) and drop a peer whose pong is late or of the
 *   wrong length. Pongs come back in order, so outstanding pings are a FIFO
 *   and may be pipelined (`ping()`).
 * - `error` with an all-zero channel_id is connection-level: logged, and the
 *   connection closed. `warning` is logged. Unknown odd messages are ignored;
 *   an unknown even one closes the connection (BOLT 1 "it's ok to be odd").
 * - Every other message goes to the handler registered for its type (the
 *   channel layer, later). A handler that throws only costs its own peer.
 * - Bounded: past `maxSendBufferBytes` queued for the peer we stop reading
 *   from it; past 4× that (it does not read what we must send) it is
 *   disconnected (ERR_PEER_SEND_BUFFER_FULL). Lines the peer's messages
 *   trigger (its warnings, ignored messages) are rate-limited per peer: the
 *   first 5 of a kind per minute, then a count. Before init, an incoming
 *   connection's lines go through the node's shared limiter (`netLog`).
 *
 * Nothing here throws out of an event handler: all failures become a
 * `disconnect(reason)` and one 'close' event carrying that reason. The
 * socket and the NoiseConnection come from node/node.ts; this file never
 * opens anything.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { bytesToHex, equalBytes } from '../wire/bytes.js';
import { AmpnodeError, ArgumentError, DecodeError } from '../wire/errors.js';
import { FeatureVector, featureName, unknownRequiredBits, validateFeatureDependencies } from '../wire/features.js';
import { decodeMessage, encodeMessage, messageName, MessageType, type Message } from '../wire/messages.js';
import { MAX_MESSAGE_SIZE } from '../wire/noise.js';
import type { NoiseConnection } from '../wire/noise-stream.js';
import {
  PING_NO_REPLY_THRESHOLD,
  type ErrorMessage,
  type InitMessage,
  type PingMessage,
  type WarningMessage,
} from '../wire/setup-messages.js';
import { PeerError } from './errors.js';
import { LogRateLimiter, type LineLevel, type Logger } from './log.js';

/** A message handed to a registered handler. `message` is set when the central table decodes the type. */
export interface IncomingMessage {
  type: number;
  name: string;
  /** The whole message: 2-byte type ‖ payload. */
  bytes: Uint8Array;
  message: Message | undefined;
}

/** What a handler may do with the peer a message came from. */
export interface PeerHandle {
  readonly nodeId: Uint8Array;
  readonly nodeIdHex: string;
  readonly remoteFeatures: FeatureVector;
  send(msg: Message): boolean;
  /** Sends an already-encoded message (type ‖ payload). */
  sendRaw(bytes: Uint8Array): boolean;
  drained(): Promise<void>;
  disconnect(reason?: AmpnodeError): void;
}

export type MessageHandler = (peer: PeerHandle, msg: IncomingMessage) => void | Promise<void>;

export interface PeerOptions {
  conn: NoiseConnection;
  /** The socket under `conn`, to bound a graceful close and watch the send buffer. */
  socket?: Socket;
  inbound: boolean;
  /** `host:port` of the other end, for logs and listPeers. */
  address: string;
  /** BOLT 7 address descriptor of the peer as we see it, sent as init `remote_addr`. */
  remoteAddr?: Uint8Array;
  localFeatures: FeatureVector;
  /** Bits (both of each pair) whose even bit the peer may set. */
  knownFeatures: ReadonlySet<number>;
  chainHash: Uint8Array;
  initTimeoutMs: number;
  /** 0 disables our timer pings. */
  pingIntervalMs: number;
  pongTimeoutMs: number;
  /** Largest num_pong_bytes our timer pings ask for (inclusive). */
  maxPingPongBytes: number;
  /** Stop reading from the peer while more than this many bytes wait to be written. */
  maxSendBufferBytes: number;
  handlers: ReadonlyMap<number, MessageHandler>;
  logger: Logger;
  /** Budget for the peer's pings; absent: every ping is answered. */
  pingLimits?: PingLimits;
  /** The node's limiter for lines strangers can trigger: used for an incoming connection's lines before init. */
  netLog?: LogRateLimiter;
  /** The remote address as the node's limits count it (IPv4 address, IPv6 /64), for netLog's summaries. */
  netLogAddress?: string;
}

/** How many pings a peer may send us, and how many pong bytes it may make us send. */
export interface PingLimits {
  /** Sustained pings per second; 0: no limit on the count. */
  pingsPerSecond: number;
  /** Pings at once. */
  pingBurst: number;
  /** Sustained pong bytes per second (burst: 16 s worth, at least one largest pong); 0: no limit. */
  pongBytesPerSecond: number;
  /** Pings beyond the budget tolerated (refilling at pingsPerSecond, at least 1/s) before ERR_PEER_PING_FLOOD. */
  floodLimit: number;
}

export type PeerState = 'awaiting_init' | 'active' | 'closed';

export interface PeerStats {
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  pongsSent: number;
  /** Pings beyond the peer's budget, left unanswered. */
  pingsUnanswered: number;
  messagesReceived: number;
  messagesSent: number;
}

export interface PeerEvents {
  /** The peer's init arrived and was accepted. */
  ready: [];
  /** Once. `reason` is undefined only for a clean local close without a reason. */
  close: [reason: AmpnodeError | undefined];
}

interface PendingPing {
  numPongBytes: number;
  /** performance.now() by which the pong must arrive. */
  deadline: number;
  resolve: () => void;
  reject: (e: AmpnodeError) => void;
}

const ZERO_CHANNEL_ID = new Uint8Array(32);
/** Close reasons that are part of normal life, logged at info rather than warn. */
const ORDINARY_CLOSE_CODES: ReadonlySet<string> = new Set([
  'ERR_PEER_DISCONNECT_REQUESTED',
  'ERR_PEER_NODE_STOPPING',
  'ERR_PEER_REPLACED',
  'ERR_NOISE_CLOSED',
]);
/** How long a graceful close may take to flush before the socket is destroyed. */
const CLOSE_FLUSH_MS = 2_000;
/** A peer with this many times maxSendBufferBytes queued (it does not read) is dropped. */
const SEND_BUFFER_HARD_FACTOR = 4;
/** The pong-byte budget's burst, in seconds of its rate. */
const PONG_BURST_SECONDS = 16;
/** Lines of one kind a peer's messages may trigger per minute before they are only counted. */
const PEER_LINES_PER_MINUTE = 5;

/** A token bucket: `capacity` tokens, refilled at `rate` per second; rate 0 never runs dry. */
class TokenBucket {
  private tokens: number;
  private last = performance.now();
  constructor(
    private readonly rate: number,
    private readonly capacity: number,
  ) {
    this.tokens = capacity;
  }

  has(n: number): boolean {
    if (this.rate === 0) return true;
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    return this.tokens >= n;
  }

  /** Takes n tokens; call after has(n) said yes. */
  take(n: number): void {
    if (this.rate !== 0) this.tokens -= n;
  }
}

/** Printable ASCII of a peer's error/warning text, bounded, for logs. */
export function sanitizeText(data: Uint8Array, max = 300): string {
  let s = '';
  for (const b of data.subarray(0, max)) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?';
  return data.length > max ? `${s}…` : s;
}

export class Peer extends EventEmitter<PeerEvents> implements PeerHandle {
  readonly nodeId: Uint8Array;
  readonly nodeIdHex: string;
  readonly inbound: boolean;
  readonly address: string;
  readonly log: Logger;
  readonly stats: PeerStats = {
    pingsSent: 0,
    pongsReceived: 0,
    pingsReceived: 0,
    pongsSent: 0,
    pingsUnanswered: 0,
    messagesReceived: 0,
    messagesSent: 0,
  };
  state: PeerState = 'awaiting_init';
  /** The peer's features (legacy global features merged in); empty until init. */
  remoteFeatures: FeatureVector = FeatureVector.empty;
  /** The peer's init message, once received. */
  remoteInit: InitMessage | undefined;
  /** ms since the epoch when init completed. */
  connectedSince: number | undefined;
  closeReason: AmpnodeError | undefined;

  /** The TCP socket under the connection, when known. */
  readonly socket: Socket | undefined;
  private readonly opts: PeerOptions;
  private readonly conn: NoiseConnection;
  private readonly pending: PendingPing[] = [];
  private initTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pongTimer: NodeJS.Timeout | undefined;
  private readPaused = false;
  private corked = false;
  private started = false;
  /** Rate-limits the lines this peer's messages trigger. */
  private readonly lines: LogRateLimiter;
  private readonly pingTokens: TokenBucket | undefined;
  private readonly pongTokens: TokenBucket | undefined;
  private readonly floodTokens: TokenBucket | undefined;

  constructor(opts: PeerOptions) {
    super();
    this.opts = opts;
    this.conn = opts.conn;
    this.socket = opts.socket;
    this.nodeId = opts.conn.remoteStaticPub;
    this.nodeIdHex = bytesToHex(this.nodeId);
    this.inbound = opts.inbound;
    this.address = opts.address;
    this.log = opts.logger;
    this.lines = new LogRateLimiter({ log: this.log, intervalMs: 60_000, burst: PEER_LINES_PER_MINUTE }).kind('warning', { level: 'warn' });
    const pl = opts.pingLimits;
    if (pl !== undefined) {
      this.pingTokens = new TokenBucket(pl.pingsPerSecond, pl.pingBurst);
      this.pongTokens = new TokenBucket(pl.pongBytesPerSecond, Math.max(PONG_BURST_SECONDS * pl.pongBytesPerSecond, 0xffff));
      this.floodTokens = new TokenBucket(Math.max(1, pl.pingsPerSecond), pl.floodLimit);
    }
  }

  /** Sends our init, starts the init timer and starts reading. Call once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.conn.on('close', (reason) => this.onConnClose(reason));
    if (this.conn.closed) {
      this.onConnClose(this.conn.closeReason);
      return;
    }
    const init: InitMessage = {
      type: MessageType.Init,
      globalFeatures: new Uint8Array(0),
      features: this.opts.localFeatures.encode(),
      networks: [this.opts.chainHash],
      unknownTlvs: [],
    };
    if (this.opts.remoteAddr !== undefined) init.remoteAddr = this.opts.remoteAddr;
    if (!this.send(init)) return;
    this.initTimer = setTimeout(() => {
      this.disconnect(new PeerError('ERR_PEER_INIT_TIMEOUT', `no init within ${this.opts.initTimeoutMs} ms`), { warn: true });
    }, this.opts.initTimeoutMs);
    this.conn.on('message', (bytes) => this.onMessage(bytes));
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  // ------------------------------------------------------------------ sending

  /** Encodes and sends; see `sendRaw` for the return value. */
  send(msg: Message): boolean {
    return this.sendRaw(encodeMessage(msg));
  }

  /**
   * Returns false when the peer is closed (the message is dropped: the close
   * event says why) and also, after queueing the message, under
   * back-pressure (see `drained()`). Throws ArgumentError for a message over
   * 65535 bytes, which BOLT 8 cannot carry.
   */
  sendRaw(bytes: Uint8Array): boolean {
    if (bytes.length > MAX_MESSAGE_SIZE)
      throw new ArgumentError(`message of ${bytes.length} bytes exceeds the BOLT 8 limit of ${MAX_MESSAGE_SIZE}`);
    if (this.state === 'closed' || this.conn.closed) return false;
    let ok: boolean;
    try {
      ok = this.conn.send(bytes);
    } catch {
      return false; // closed underneath us; the 'close' event carries the reason
    }
    this.stats.messagesSent++;
    if (!ok) this.onSendBlocked();
    return !this.closed;
  }

  drained(): Promise<void> {
    return this.conn.drained();
  }

  /**
   * A peer that floods us (pings, say) without reading our answers must not
   * grow our send buffer without bound: past the limit we stop reading until
   * the buffer drains, and TCP pushes back on the peer. What we send on our
   * own (channel messages) is not held back by that, so a peer that does not
   * read at all is dropped once 4× the limit waits for it.
   */
  private onSendBlocked(): void {
    const s = this.opts.socket;
    if (s === undefined) return;
    const limit = this.opts.maxSendBufferBytes;
    if (s.writableLength > SEND_BUFFER_HARD_FACTOR * limit) {
      this.disconnect(
        new PeerError(
          'ERR_PEER_SEND_BUFFER_FULL',
          `${s.writableLength} bytes queued for a peer that does not read them (limit ${SEND_BUFFER_HARD_FACTOR * limit})`,
        ),
      );
      return;
    }
    if (s.writableLength > limit) this.pauseUntilDrained('send buffer full');
  }

  /** Stops reading from the peer until our send buffer to it has drained. */
  private pauseUntilDrained(why: string): void {
    if (this.readPaused || this.closed) return;
    this.readPaused = true;
    this.conn.pause();
    this.lines.note(
      'read_paused',
      this.log,
      'debug',
      { buffered: this.opts.socket?.writableLength, why },
      'reading paused until our send buffer drains',
    );
    this.conn.drained().then(
      () => {
        this.readPaused = false;
        if (!this.closed) this.conn.resume();
      },
      () => undefined,
    );
  }

  // ------------------------------------------------------------------ ping

  /**
   * Sends a ping and resolves when its pong arrives with exactly
   * `numPongBytes` bytes (a wrong size or a late pong disconnects the peer,
   * and every outstanding ping rejects with that reason). Pings may be
   * pipelined. A ping asking for 65532 bytes or more expects no pong and
   * resolves once sent.
   */
  ping(numPongBytes: number, ignoredLength = 0): Promise<void> {
    if (!Number.isInteger(numPongBytes) || numPongBytes < 0 || numPongBytes > 0xffff)
      return Promise.reject(new ArgumentError(`num_pong_bytes must be an integer in 0..65535, got ${numPongBytes}`));
    if (this.state !== 'active')
      return Promise.reject(this.closeReason ?? new PeerError('ERR_PEER_DISCONNECT_REQUESTED', 'peer is not active'));
    return new Promise<void>((resolve, reject) => {
      const expectsPong = numPongBytes < PING_NO_REPLY_THRESHOLD;
      if (expectsPong) {
        this.pending.push({ numPongBytes, deadline: performance.now() + this.opts.pongTimeoutMs, resolve, reject });
        this.armPongTimer();
      }
      const sent = this.send({ type: MessageType.Ping, numPongBytes, ignored: new Uint8Array(ignoredLength) });
      if (!sent) {
        if (!expectsPong) reject(this.closeReason ?? new PeerError('ERR_PEER_DISCONNECT_REQUESTED', 'peer is closed'));
        return; // pending entries are rejected by the close
      }
      this.stats.pingsSent++;
      if (!expectsPong) resolve();
    });
  }

  /**
   * One timer for all outstanding pings, set for the oldest one's deadline
   * (pongs come back in order, so the oldest is always due first). When it
   * fires early because that ping was answered meanwhile, it re-arms for the
   * next one.
   */
  private armPongTimer(): void {
    if (this.pongTimer !== undefined || this.closed) return;
    const head = this.pending[0];
    if (head === undefined) return;
    this.pongTimer = setTimeout(
      () => {
        this.pongTimer = undefined;
        const due = this.pending[0];
        if (due !== undefined && performance.now() >= due.deadline) {
          this.disconnect(new PeerError('ERR_PEER_PONG_TIMEOUT', `no pong within ${this.opts.pongTimeoutMs} ms`));
          return;
        }
        this.armPongTimer();
      },
      Math.max(0, Math.ceil(head.deadline - performance.now())),
    );
  }

  private schedulePing(): void {
    if (this.opts.pingIntervalMs <= 0 || this.closed) return;
    this.pingTimer = setTimeout(() => {
      this.pingTimer = undefined;
      if (this.closed) return;
      const n = Math.floor(Math.random() * (this.opts.maxPingPongBytes + 1));
      this.ping(n).catch(() => undefined); // a failure disconnects; nothing else to do here
      this.schedulePing();
    }, this.opts.pingIntervalMs);
  }

  // ------------------------------------------------------------------ receiving

  /**
   * Messages decrypted from one TCP read arrive in one synchronous burst;
   * corking the socket until the next tick sends all our answers (pongs,
   * later channel replies) in one write instead of one per message.
   */
  private corkUntilTick(): void {
    const s = this.opts.socket;
    if (this.corked || s === undefined) return;
    this.corked = true;
    s.cork();
    process.nextTick(() => {
      this.corked = false;
      s.uncork();
    });
  }

  private onMessage(bytes: Uint8Array): void {
    if (this.closed) return;
    this.stats.messagesReceived++;
    this.corkUntilTick();
    try {
      this.handleMessage(bytes);
    } catch (e) {
      // A bug in our own handling must cost only this peer.
      this.log.error({ err: e }, 'unexpected failure handling a message');
      this.disconnect(
        e instanceof AmpnodeError ? e : new PeerError('ERR_PEER_HANDLER_FAILED', `unexpected failure: ${String(e)}`, { cause: e }),
      );
    }
  }

  private handleMessage(bytes: Uint8Array): void {
    const type = bytes.length >= 2 ? (bytes[0]! << 8) | bytes[1]! : -1;
    let message: Message | undefined;
    let unknownOdd = false;
    try {
      const d = decodeMessage(bytes);
      if (d.kind === 'message') message = d.message;
      else unknownOdd = true;
    } catch (e) {
      const handler = this.opts.handlers.get(type);
      if (e instanceof DecodeError && e.code === 'ERR_UNKNOWN_EVEN_MESSAGE' && handler !== undefined && this.state === 'active') {
        this.dispatch(handler, { type, name: messageName(type), bytes, message: undefined });
        return;
      }
      const err = e instanceof AmpnodeError ? e : new DecodeError('ERR_INVALID_VALUE', String(e));
      this.disconnect(err, { warn: true });
      return;
    }

    if (this.state === 'awaiting_init') {
      if (message?.type !== MessageType.Init) {
        this.disconnect(new PeerError('ERR_PEER_FIRST_NOT_INIT', `first message is ${messageName(type)} (${type}), not init`), {
          warn: true,
        });
        return;
      }
      this.onInit(message);
      return;
    }

    if (message !== undefined) {
      switch (message.type) {
        case MessageType.Ping:
          this.onPing(message);
          return;
        case MessageType.Pong:
          this.onPong(message.ignored.length);
          return;
        case MessageType.Init:
          this.lines.note('second_init', this.log, 'warn', {}, 'second init ignored');
          return;
        case MessageType.Error:
          this.onError(message);
          return;
        case MessageType.Warning:
          this.onWarning(message);
          return;
      }
    }
    const handler = this.opts.handlers.get(type);
    if (handler !== undefined) {
      this.dispatch(handler, { type, name: messageName(type), bytes, message });
      return;
    }
    this.lines.note('ignored', this.log, 'debug', { type, name: messageName(type), unknownOdd }, 'message without a handler ignored');
  }

  /**
   * Answers within the peer's budget (see the file comment). A pong costs us
   * up to 65 531 bytes to encrypt and send for a ping of a few bytes, so the
   * budget counts pong bytes as well as pings.
   */
  private onPing(msg: PingMessage): void {
    this.stats.pingsReceived++;
    const pongBytes = msg.numPongBytes < PING_NO_REPLY_THRESHOLD ? msg.numPongBytes : -1;
    const pings = this.pingTokens;
    const bytes = this.pongTokens;
    if (pings !== undefined && bytes !== undefined) {
      if (!pings.has(1) || !bytes.has(Math.max(0, pongBytes))) {
        this.stats.pingsUnanswered++;
        const flood = this.floodTokens!;
        if (!flood.has(1)) {
          const pl = this.opts.pingLimits!;
          this.disconnect(
            new PeerError(
              'ERR_PEER_PING_FLOOD',
              `more than ${pl.floodLimit} pings beyond the budget of ${pl.pingsPerSecond || 'any number of'} pings/s (burst ${pl.pingBurst}) and ${pl.pongBytesPerSecond || 'any number of'} pong bytes/s`,
            ),
            { warn: true },
          );
          return;
        }
        flood.take(1);
        this.lines.note('ping_unanswered', this.log, 'debug', { numPongBytes: msg.numPongBytes }, 'ping beyond the budget left unanswered');
        return;
      }
      pings.take(1);
      bytes.take(Math.max(0, pongBytes));
    }
    if (pongBytes < 0) return;
    if (!this.send({ type: MessageType.Pong, ignored: new Uint8Array(pongBytes) })) return;
    this.stats.pongsSent++;
    // One pong at a time: the next ping is read once this one has left our buffer.
    if (this.opts.socket?.writableNeedDrain === true) this.pauseUntilDrained('pong queued');
  }

  private onInit(msg: InitMessage): void {
    clearTimeout(this.initTimer);
    this.initTimer = undefined;
    let features: FeatureVector;
    try {
      features = FeatureVector.decode(msg.features).merge(FeatureVector.decode(msg.globalFeatures));
    } catch (e) {
      this.disconnect(e instanceof AmpnodeError ? e : new DecodeError('ERR_INVALID_VALUE', String(e)), { warn: true });
      return;
    }
    const unknown = unknownRequiredBits(features, this.opts.knownFeatures);
    if (unknown.length > 0) {
      const list = unknown.map((b) => `${b} (${featureName(b)})`).join(', ');
      this.disconnect(new PeerError('ERR_PEER_UNKNOWN_REQUIRED_FEATURE', `peer requires feature bits we do not know: ${list}`), {
        warn: true,
      });
      return;
    }
    const broken = validateFeatureDependencies(features);
    if (broken !== null) {
      this.disconnect(new PeerError('ERR_PEER_FEATURE_DEPENDENCY', broken), { warn: true });
      return;
    }
    if (msg.networks !== undefined && !msg.networks.some((c) => equalBytes(c, this.opts.chainHash))) {
      const theirs = msg.networks.map((c) => bytesToHex(c)).join(',') || 'none';
      this.disconnect(
        new PeerError(
          'ERR_PEER_NETWORK_MISMATCH',
          `peer's networks [${theirs}] do not include our chain ${bytesToHex(this.opts.chainHash)}`,
        ),
        { warn: true },
      );
      return;
    }
    this.remoteInit = msg;
    this.remoteFeatures = features;
    this.state = 'active';
    this.connectedSince = Date.now();
    this.log.info({ features: features.toString(), address: this.address, inbound: this.inbound }, 'init exchanged');
    this.schedulePing();
    this.emit('ready');
  }

  private onPong(length: number): void {
    this.stats.pongsReceived++;
    const p = this.pending.shift();
    if (p === undefined) {
      this.lines.note('unsolicited_pong', this.log, 'debug', { length }, 'unsolicited pong ignored');
      return;
    }
    if (this.pending.length === 0) {
      clearTimeout(this.pongTimer);
      this.pongTimer = undefined;
    }
    if (length !== p.numPongBytes) {
      this.disconnect(new PeerError('ERR_PEER_PONG_SIZE', `pong of ${length} bytes for a ping asking ${p.numPongBytes}`), { warn: true });
      p.reject(this.closeReason!);
      return;
    }
    p.resolve();
  }

  private onError(msg: ErrorMessage): void {
    const text = sanitizeText(msg.data);
    if (equalBytes(msg.channelId, ZERO_CHANNEL_ID)) {
      this.log.warn({ text }, 'peer sent a connection-level error');
      this.disconnect(new PeerError('ERR_PEER_REMOTE_ERROR', `peer error: ${text}`));
      return;
    }
    const handler = this.opts.handlers.get(MessageType.Error);
    if (handler !== undefined) {
      this.dispatch(handler, { type: MessageType.Error, name: 'error', bytes: encodeMessage(msg), message: msg });
      return;
    }
    // BOLT 1: an error naming no channel we have is ignored.
    this.lines.note(
      'error_ignored',
      this.log,
      'warn',
      { channelId: bytesToHex(msg.channelId), text },
      'peer sent an error for an unknown channel; ignored',
    );
  }

  private onWarning(msg: WarningMessage): void {
    const text = sanitizeText(msg.data);
    const zero = equalBytes(msg.channelId, ZERO_CHANNEL_ID);
    this.lines.note('warning', this.log, 'warn', { channelId: zero ? undefined : bytesToHex(msg.channelId), text }, 'peer sent a warning');
    const handler = this.opts.handlers.get(MessageType.Warning);
    if (!zero && handler !== undefined)
      this.dispatch(handler, { type: MessageType.Warning, name: 'warning', bytes: encodeMessage(msg), message: msg });
  }

  private dispatch(handler: MessageHandler, msg: IncomingMessage): void {
    const fail = (e: unknown): void => {
      if (this.closed) return;
      this.log.error({ err: e, type: msg.type, name: msg.name }, 'message handler failed');
      this.disconnect(
        new PeerError('ERR_PEER_HANDLER_FAILED', `${msg.name} handler failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e }),
      );
    };
    try {
      const r = handler(this, msg);
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  // ------------------------------------------------------------------ closing

  /**
   * Ends the connection. With `warn`, a connection-level `warning` carrying
   * the reason is sent first. With `warn` or `graceful`, what is queued is
   * flushed (for at most 2 s) before the socket closes; otherwise the socket
   * goes at once. 'close' follows with `reason`.
   */
  disconnect(reason?: AmpnodeError, opts: { warn?: boolean; graceful?: boolean } = {}): void {
    if (this.state === 'closed') return;
    if (reason !== undefined && opts.warn === true && !this.conn.closed) {
      const data = new TextEncoder().encode(reason.message.slice(0, 500));
      try {
        this.conn.send(encodeMessage({ type: MessageType.Warning, channelId: ZERO_CHANNEL_ID, data }));
      } catch {
        // the connection is already failing; the close below says why
      }
    }
    this.closeReason = reason;
    this.finish(reason);
    if (opts.warn === true || opts.graceful === true) {
      this.conn.close(); // flush, then end
      const s = this.opts.socket;
      if (s !== undefined) setTimeout(() => s.destroy(), CLOSE_FLUSH_MS).unref();
    } else {
      this.conn.close(reason);
    }
  }

  private onConnClose(reason: AmpnodeError | undefined): void {
    if (this.state === 'closed') return;
    this.closeReason = reason;
    this.finish(reason);
  }

  private finish(reason: AmpnodeError | undefined): void {
    const wasActive = this.state === 'active';
    this.state = 'closed';
    clearTimeout(this.initTimer);
    clearTimeout(this.pingTimer);
    this.initTimer = undefined;
    this.pingTimer = undefined;
    const err = reason ?? new PeerError('ERR_PEER_DISCONNECT_REQUESTED', 'disconnected');
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    for (const p of this.pending.splice(0)) p.reject(err);
    this.lines.close();
    const ordinary = reason === undefined || ORDINARY_CLOSE_CODES.has(reason.code);
    const level: LineLevel = ordinary ? 'info' : 'warn';
    const fields = { reason: reason?.message, code: reason?.code };
    if (!wasActive && this.inbound && this.opts.netLog !== undefined) {
      // a stranger that never got through init: one of possibly many, counted rather than each logged
      this.opts.netLog.note('init_failed', this.log, level, fields, 'disconnected before init', {
        address: this.opts.netLogAddress,
        code: reason?.code,
      });
    } else {
      this.log[level](fields, 'disconnected');
    }
    queueMicrotask(() => this.emit('close', reason));
  }
}
