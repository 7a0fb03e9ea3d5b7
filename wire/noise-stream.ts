/**
 * BOLT 8 over a byte stream: runs the Noise_XK handshake (wire/noise.ts) on
 * any Node `Duplex` (a TCP socket, a pipe, an in-memory pair) and then
 * frames encrypted messages in both directions.
 *
 * `NoiseConnection` is an EventEmitter rather than an async iterator, so
 * that several parts of a peer (ping handler, gossip, channel links) can
 * listen, and back-pressure is explicit on both sides:
 * - writing: `send()` returns the socket's `write()` result; when false,
 *   wait for `drained()` before sending more;
 * - reading: messages are only decrypted and emitted while at least one
 *   'message' listener is attached and `pause()` is not in force. Otherwise
 *   the socket is paused and TCP pushes back on the peer, so no message is
 *   lost between the handshake's end and the first listener.
 *
 * Every failure — a bad act, a bad MAC, a truncated frame, a socket error,
 * the handshake timeout — ends the connection once, with one typed
 * `NoiseError` as the 'close' reason (or the handshake promise's rejection),
 * and destroys the socket. Bad bytes from the peer never throw out of a
 * socket event handler.
 *
 * The handshake timeout lives here although timers otherwise belong to
 * node/: it guards a half-finished handshake on this very stream, and the
 * stream is all this module sees. The timer is injectable (`setTimer`) so
 * that node/ can supply its own clock; by default it uses setTimeout. This
 * module never creates sockets: callers hand it a connected stream.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { secp } from './crypto.js';
import { AmpnodeError, ArgumentError } from './errors.js';
import {
  ACT_ONE_SIZE,
  ACT_THREE_SIZE,
  ACT_TWO_SIZE,
  HEADER_SIZE,
  initiatorActOne,
  initiatorActTwo,
  NoiseError,
  responderActOne,
  responderActThree,
  TAG_SIZE,
  type HandshakeResult,
  type InitiatorAwaitingActTwo,
  type NoiseTransport,
  type ResponderAwaitingActThree,
} from './noise.js';

/** Starts a one-shot timer; returns a function that cancels it. */
export type SetTimer = (ms: number, fn: () => void) => () => void;

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const defaultSetTimer: SetTimer = (ms, fn) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

export interface NoiseConnectOptions {
  localStaticPriv: Uint8Array;
  remoteStaticPub: Uint8Array;
  /** Default 10000. */
  handshakeTimeoutMs?: number;
  /** Fixed ephemeral key, for tests only; random when absent. */
  ephemeralPriv?: Uint8Array;
  setTimer?: SetTimer;
}

export interface NoiseAcceptOptions {
  localStaticPriv: Uint8Array;
  /** Default 10000. */
  handshakeTimeoutMs?: number;
  /** Fixed ephemeral key, for tests only; random when absent. */
  ephemeralPriv?: Uint8Array;
  setTimer?: SetTimer;
}

export interface NoiseConnectionEvents {
  /** One decrypted message (a whole BOLT 1 message: type ‖ payload). */
  message: [msg: Uint8Array];
  /**
   * Emitted once, asynchronously, when the connection ends. `reason` is
   * undefined only after a local `close()` without a reason; a peer that
   * hangs up gives ERR_NOISE_CLOSED, bad bytes give their own code.
   */
  close: [reason: AmpnodeError | undefined];
}

/** Chunks received but not yet consumed; hands out exact-size pieces, copying only when a piece spans chunks. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Caller guarantees n <= length. */
  take(n: number): Uint8Array {
    this.length -= n;
    const first = this.chunks[this.head]!;
    if (first.length >= n) {
      if (first.length === n) this.advance();
      else this.chunks[this.head] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[this.head]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.advance();
      else this.chunks[this.head] = c.subarray(k);
    }
    return out;
  }

  private advance(): void {
    this.head++;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 64) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

type Phase = 'act1' | 'act2' | 'act3' | 'header' | 'body' | 'closed';

/**
 * An established BOLT 8 connection. Obtain one from `noiseConnect` or
 * `noiseAccept`; the constructor is not part of the API.
 */
export class NoiseConnection extends EventEmitter<NoiseConnectionEvents> {
  /** Our static public key (33 bytes). */
  localStaticPub: Uint8Array = new Uint8Array(0);
  /** The peer's static public key (33 bytes): its node id. */
  remoteStaticPub: Uint8Array = new Uint8Array(0);
  /** Why the connection ended; undefined while open or after a plain local close(). */
  closeReason: AmpnodeError | undefined;

  private readonly socket: Duplex;
  private readonly queue = new ByteQueue();
  private phase: Phase;
  private need: number;
  private transport: NoiseTransport | undefined;
  private initiatorState: InitiatorAwaitingActTwo | undefined;
  private responderState: ResponderAwaitingActThree | undefined;
  private readonly responderOpts: { localStaticPriv: Uint8Array; ephemeralPriv?: Uint8Array } | undefined;
  private settle: { resolve: (c: NoiseConnection) => void; reject: (e: NoiseError) => void } | undefined;
  private cancelTimer: (() => void) | undefined;
  private userPaused = false;
  private socketPaused = false;
  private pumping = false;
  private eof = false;
  private drain: Promise<void> | undefined;

  private readonly onData = (chunk: Buffer | string): void => {
    this.queue.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    this.pump();
  };
  private readonly onEnd = (): void => {
    this.eof = true;
    this.pump();
  };
  private readonly onError = (err: Error): void => {
    this.fail(new NoiseError('ERR_NOISE_CLOSED', `socket error: ${err.message}`, { cause: err }));
  };
  private readonly onSocketClose = (): void => {
    this.eof = true;
    this.pump();
    this.fail(new NoiseError('ERR_NOISE_CLOSED', 'socket closed'));
  };

  /** @internal use noiseConnect / noiseAccept */
  constructor(
    socket: Duplex,
    role: { initiator: InitiatorAwaitingActTwo } | { responder: { localStaticPriv: Uint8Array; ephemeralPriv?: Uint8Array } },
  ) {
    super();
    this.socket = socket;
    if ('initiator' in role) {
      this.initiatorState = role.initiator;
      this.phase = 'act2';
      this.need = ACT_TWO_SIZE;
    } else {
      this.responderOpts = role.responder;
      this.phase = 'act1';
      this.need = ACT_ONE_SIZE;
    }
    (this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'message') queueMicrotask(() => this.maybeResume());
    });
  }

  /** @internal */
  start(timeoutMs: number, setTimer: SetTimer, firstAct: Uint8Array | undefined): Promise<NoiseConnection> {
    return new Promise<NoiseConnection>((resolve, reject) => {
      this.settle = { resolve, reject };
      const s = this.socket;
      s.on('error', this.onError);
      if (s.destroyed || (s.readableEnded && s.writableEnded)) {
        this.fail(new NoiseError('ERR_NOISE_CLOSED', 'socket is already closed'));
        return;
      }
      s.on('data', this.onData);
      s.on('end', this.onEnd);
      s.on('close', this.onSocketClose);
      this.cancelTimer = setTimer(timeoutMs, () => {
        this.fail(new NoiseError('ERR_NOISE_HANDSHAKE_TIMEOUT', `handshake not complete after ${timeoutMs} ms`));
      });
      if (firstAct !== undefined) s.write(firstAct);
    });
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  /**
   * Encrypts and writes one message. Returns false when the socket's buffer
   * is full: wait for `drained()` before sending more. Throws NoiseError
   * ERR_NOISE_MESSAGE_TOO_LONG (over 65535 bytes; nothing is sent) or
   * ERR_NOISE_CLOSED.
   */
  send(msg: Uint8Array): boolean {
    const t = this.transport;
    if (this.phase === 'closed' || t === undefined) throw this.closedError();
    return this.socket.write(t.encrypt(msg));
  }

  /** Resolves once the socket can take more data; rejects with the close reason if the connection ends first. */
  drained(): Promise<void> {
    if (this.phase === 'closed') return Promise.reject(this.closedError());
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    if (this.drain === undefined) {
      this.drain = new Promise<void>((resolve, reject) => {
        const done = (err?: AmpnodeError): void => {
          this.socket.off('drain', onDrain);
          this.off('close', onClose);
          this.drain = undefined;
          if (err === undefined) resolve();
          else reject(err);
        };
        const onDrain = (): void => done();
        const onClose = (): void => done(this.closedError());
        this.socket.on('drain', onDrain);
        this.on('close', onClose);
      });
    }
    return this.drain;
  }

  /** Stops emitting messages (and reading from the socket) until `resume()`. */
  pause(): void {
    this.userPaused = true;
  }

  resume(): void {
    this.userPaused = false;
    this.maybeResume();
  }

  /**
   * Ends the connection. Without a reason, pending writes are flushed first;
   * with one, the socket is destroyed at once. 'close' follows asynchronously.
   */
  close(reason?: AmpnodeError): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.closeReason = reason;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onSocketClose);
    // keep an error listener: a destroyed socket may still report one
    if (reason !== undefined || s.destroyed) {
      s.destroy();
    } else {
      s.once('finish', () => s.destroy());
      s.end();
    }
    const settle = this.settle;
    this.settle = undefined;
    settle?.reject(reason instanceof NoiseError ? reason : this.closedError());
    process.nextTick(() => this.emit('close', reason));
  }

  private fail(err: NoiseError): void {
    this.close(err);
  }

  private closedError(): NoiseError {
    const r = this.closeReason;
    if (r instanceof NoiseError && r.code === 'ERR_NOISE_CLOSED') return r;
    return new NoiseError('ERR_NOISE_CLOSED', 'connection is closed', r !== undefined ? { cause: r } : undefined);
  }

  private flowing(): boolean {
    return !this.userPaused && this.listenerCount('message') > 0;
  }

  private maybeResume(): void {
    if (this.transport === undefined || this.phase === 'closed' || !this.flowing()) return;
    if (this.socketPaused) {
      this.socketPaused = false;
      this.socket.resume();
    }
    this.pump();
  }

  /** Consumes buffered bytes: handshake acts, then frames. Never throws on bad input. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.phase !== 'closed' && this.queue.length >= this.need) {
        if (this.transport !== undefined && !this.flowing()) break;
        const bytes = this.queue.take(this.need);
        let msg: Uint8Array | undefined;
        try {
          msg = this.step(bytes);
        } catch (e) {
          this.fail(
            e instanceof NoiseError ? e : new NoiseError('ERR_NOISE_CLOSED', `unexpected failure: ${(e as Error).message}`, { cause: e }),
          );
          return;
        }
        if (msg !== undefined) this.emit('message', msg);
      }
      if (this.phase === 'closed') return;
      if (this.transport !== undefined && !this.flowing()) {
        if (!this.socketPaused) {
          this.socketPaused = true;
          this.socket.pause();
        }
        return;
      }
      if (this.eof) {
        if (this.transport === undefined) {
          this.fail(
            this.queue.length > 0
              ? new NoiseError('ERR_NOISE_BAD_LENGTH', `peer closed after ${this.queue.length} of ${this.need} act bytes`, {
                  act: this.actNumber(),
                })
              : new NoiseError('ERR_NOISE_CLOSED', 'peer closed during the handshake', { act: this.actNumber() }),
          );
        } else {
          const partial = this.queue.length > 0 || this.phase === 'body';
          this.fail(new NoiseError('ERR_NOISE_CLOSED', partial ? 'peer closed in the middle of a message' : 'peer closed the connection'));
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private actNumber(): 1 | 2 | 3 {
    return this.phase === 'act1' ? 1 : this.phase === 'act2' ? 2 : 3;
  }

  /** One state transition for one complete piece of input. */
  private step(bytes: Uint8Array): Uint8Array | undefined {
    switch (this.phase) {
      case 'header': {
        const n = this.transport!.decryptLength(bytes);
        this.phase = 'body';
        this.need = n + TAG_SIZE;
        return undefined;
      }
      case 'body': {
        const msg = this.transport!.decryptBody(bytes);
        this.phase = 'header';
        this.need = HEADER_SIZE;
        return msg;
      }
      case 'act1': {
        const r = responderActOne(this.responderOpts!, bytes);
        this.responderState = r.state;
        this.phase = 'act3';
        this.need = ACT_THREE_SIZE;
        this.socket.write(r.actTwo);
        return undefined;
      }
      case 'act2': {
        const r = initiatorActTwo(this.initiatorState!, bytes);
        this.initiatorState = undefined;
        this.socket.write(r.actThree);
        this.established(r);
        return undefined;
      }
      case 'act3': {
        const r = responderActThree(this.responderState!, bytes);
        this.responderState = undefined;
        this.established(r);
        return undefined;
      }
      case 'closed':
        return undefined;
    }
  }

  private established(r: HandshakeResult): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.transport = r.transport;
    this.localStaticPub = r.localStaticPub;
    this.remoteStaticPub = r.remoteStaticPub;
    this.phase = 'header';
    this.need = HEADER_SIZE;
    const settle = this.settle;
    this.settle = undefined;
    settle?.resolve(this);
  }
}

/**
 * Runs the initiator side of the handshake on a connected stream. Resolves
 * with the connection once act 3 is sent; rejects with a NoiseError (bad
 * act 2, timeout, socket closed) after destroying the socket, or with an
 * ArgumentError for bad keys.
 */
export async function noiseConnect(socket: Duplex, opts: NoiseConnectOptions): Promise<NoiseConnection> {
  const one = initiatorActOne({
    localStaticPriv: opts.localStaticPriv,
    remoteStaticPub: opts.remoteStaticPub,
    ...(opts.ephemeralPriv !== undefined ? { ephemeralPriv: opts.ephemeralPriv } : {}),
  });
  const conn = new NoiseConnection(socket, { initiator: one.state });
  return conn.start(opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, opts.setTimer ?? defaultSetTimer, one.actOne);
}

/**
 * Runs the responder side of the handshake on a connected stream. Resolves
 * once act 3 is verified (the peer's node id is then `remoteStaticPub`).
 */
export async function noiseAccept(socket: Duplex, opts: NoiseAcceptOptions): Promise<NoiseConnection> {
  if (!secp.isPrivateKey(opts.localStaticPriv)) throw new ArgumentError('local static key is not a valid secp256k1 private key');
  const conn = new NoiseConnection(socket, {
    responder: {
      localStaticPriv: opts.localStaticPriv,
      ...(opts.ephemeralPriv !== undefined ? { ephemeralPriv: opts.ephemeralPriv } : {}),
    },
  });
  return conn.start(opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, opts.setTimer ?? defaultSetTimer, undefined);
}
