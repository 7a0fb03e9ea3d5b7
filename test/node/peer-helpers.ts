/**
 * Helpers for the peer and node tests: in-process nodes on loopback, a
 * scripted "raw" peer speaking BOLT 8 + BOLT 1 by hand (to misbehave on
 * purpose), and a forging peer that writes frames byte by byte.
 */
import { createCipheriv } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { randomPrivateKey, secp } from '../../wire/crypto.js';
import type { AmpnodeError } from '../../wire/errors.js';
import { decodeMessage, encodeMessage, type Message } from '../../wire/messages.js';
import { ACT_TWO_SIZE, initiatorActOne, initiatorActTwo, type NoiseTransport } from '../../wire/noise.js';
import { noiseConnect, type NoiseConnection } from '../../wire/noise-stream.js';
import type { InitMessage } from '../../wire/setup-messages.js';
import type { NodeConfig } from '../../node/config.js';
import { createLogger, type Logger } from '../../node/log.js';
import { NETWORKS } from '../../node/network.js';
import { PeerManager, type PeerManagerEvents } from '../../node/peer-manager.js';

export const REGTEST = NETWORKS.regtest.chainHash;
export const WAIT_MS = 10_000;

/** Collects a node's JSON log lines in memory (for assertions on what was logged). */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') this.lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  }
}

export async function startNode(cfg: Partial<NodeConfig> = {}, capture?: LogCapture): Promise<PeerManager> {
  const logger: Logger = createLogger({ level: capture ? 'debug' : 'silent', ...(capture ? { destination: capture } : {}) });
  const node = new PeerManager({ nodeKey: randomPrivateKey(), listen: '127.0.0.1:0', logger, ...cfg });
  await node.start();
  return node;
}

export function portOf(node: PeerManager): number {
  return Number(node.listenAddress!.split(':').pop());
}

/** Resolves with the first event `name` whose argument satisfies `pred`; rejects after `ms`. */
export function waitEvent<K extends keyof PeerManagerEvents>(
  node: PeerManager,
  name: K,
  pred: (...args: PeerManagerEvents[K]) => boolean = () => true,
  ms = WAIT_MS,
): Promise<PeerManagerEvents[K]> {
  return new Promise((resolve, reject) => {
    const em = node as unknown as EventEmitter;
    const t = setTimeout(() => {
      em.off(name, on);
      reject(new Error(`no ${String(name)} event within ${ms} ms`));
    }, ms);
    const on = (...args: unknown[]): void => {
      if (!pred(...(args as PeerManagerEvents[K]))) return;
      clearTimeout(t);
      em.off(name, on);
      resolve(args as PeerManagerEvents[K]);
    };
    em.on(name, on);
  });
}

export function withTimeout<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

/** A TCP connection to 127.0.0.1:port, from `localAddress` when given (any 127.x.y.z works on Linux loopback: distinct remote addresses). */
export function tcp(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port, ...(localAddress !== undefined ? { localAddress } : {}) }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export function initMessage(opts: { features?: number[]; global?: number[]; networks?: Uint8Array[] | null } = {}): InitMessage {
  const bits = (list: number[]): Uint8Array => {
    const max = Math.max(-1, ...list);
    const out = new Uint8Array(max < 0 ? 0 : (max >> 3) + 1);
    for (const b of list) out[out.length - 1 - (b >> 3)]! |= 1 << (b & 7);
    return out;
  };
  const m: InitMessage = { type: 16, globalFeatures: bits(opts.global ?? []), features: bits(opts.features ?? [1]), unknownTlvs: [] };
  if (opts.networks !== null) m.networks = opts.networks ?? [REGTEST];
  return m;
}

/** A peer driven by the test over a real BOLT 8 connection: sends what it is told, records what it gets. */
export class RawPeer {
  readonly key: Uint8Array;
  readonly received: Message[] = [];
  readonly unknown: { type: number }[] = [];
  conn!: NoiseConnection;
  closed!: Promise<AmpnodeError | undefined>;
  private waiters: (() => void)[] = [];

  constructor(key: Uint8Array = randomPrivateKey()) {
    this.key = key;
  }

  /** Connects (from `localAddress`, with identity `key`, when given) and completes the BOLT 8 handshake. */
  static async connect(node: PeerManager, opts: { localAddress?: string; key?: Uint8Array } = {}): Promise<RawPeer> {
    const p = new RawPeer(opts.key);
    const socket = await tcp(portOf(node), opts.localAddress);
    p.conn = await noiseConnect(socket, { localStaticPriv: p.key, remoteStaticPub: node.nodeId, handshakeTimeoutMs: WAIT_MS });
    p.closed = new Promise((r) => p.conn.once('close', r));
    p.conn.once('close', () => {
      for (const w of p.waiters.splice(0)) w();
    });
    p.conn.on('message', (bytes) => {
      try {
        const d = decodeMessage(bytes);
        if (d.kind === 'message') p.received.push(d.message);
        else p.unknown.push({ type: d.type });
      } catch {
        p.unknown.push({ type: (bytes[0]! << 8) | bytes[1]! });
      }
      for (const w of p.waiters.splice(0)) w();
    });
    return p;
  }

  get nodeIdHex(): string {
    return Buffer.from(this.conn.localStaticPub).toString('hex');
  }

  send(msg: Message): void {
    this.conn.send(encodeMessage(msg));
  }

  sendRaw(bytes: Uint8Array): void {
    this.conn.send(bytes);
  }

  /** Waits for a received message satisfying `pred` (already received ones count); removes and returns it. Throws once the connection closes without one. */
  async next<T extends Message>(pred: (m: Message) => m is T, what: string, ms = WAIT_MS): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.received.findIndex(pred);
      if (i >= 0) return this.received.splice(i, 1)[0] as T;
      if (this.conn.closed) throw new Error(`raw peer: connection closed before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`raw peer: no ${what} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Connects, completes the init exchange (with `init`, a valid one by default) and returns. */
  static async ready(
    node: PeerManager,
    init: InitMessage = initMessage(),
    opts: { localAddress?: string; key?: Uint8Array } = {},
  ): Promise<RawPeer> {
    const p = await RawPeer.connect(node, opts);
    const connected = waitEvent(node, 'peer_connected', (i) => i.nodeId === p.nodeIdHex);
    p.send(init);
    await p.next((m): m is InitMessage => m.type === 16, 'init');
    await connected;
    return p;
  }

  close(): void {
    this.conn.close();
  }
}

/** A peer that does the handshake by hand and then writes arbitrary bytes, for malformed frames. */
export class ForgingPeer {
  readonly key = randomPrivateKey();
  socket!: Socket;
  transport!: NoiseTransport;

  static async connect(node: PeerManager, opts: { localAddress?: string } = {}): Promise<ForgingPeer> {
    const p = new ForgingPeer();
    p.socket = await tcp(portOf(node), opts.localAddress);
    p.socket.on('error', () => undefined);
    const one = initiatorActOne({ localStaticPriv: p.key, remoteStaticPub: node.nodeId });
    p.socket.write(one.actOne);
    const actTwo = await readExactly(p.socket, ACT_TWO_SIZE);
    const r = initiatorActTwo(one.state, actTwo);
    p.socket.write(r.actThree);
    p.transport = r.transport;
    p.socket.resume(); // discard whatever the node sends from now on
    return p;
  }

  get nodeIdHex(): string {
    return Buffer.from(secp.publicKeyCreate(this.key)).toString('hex');
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  frame(msg: Message | Uint8Array): Buffer {
    return this.transport.encrypt(msg instanceof Uint8Array ? msg : encodeMessage(msg));
  }

  /**
   * A frame for a message longer than BOLT 8 allows: the length prefix can
   * only say (length mod 65536), the body is encrypted whole. Built with the
   * transport's current sending key and nonce.
   */
  oversizeFrame(length: number): Buffer {
    const ks = this.transport.keyState();
    const nonce = (n: number): Buffer => {
      const b = Buffer.alloc(12);
      b.writeUInt32LE(n, 4);
      return b;
    };
    const seal = (n: number, data: Uint8Array): Buffer => {
      const c = createCipheriv('chacha20-poly1305', ks.sk, nonce(n), { authTagLength: 16 });
      const out = Buffer.concat([c.update(data), c.final()]);
      return Buffer.concat([out, c.getAuthTag()]);
    };
    const header = Buffer.alloc(2);
    header.writeUInt16BE(length & 0xffff);
    const body = Buffer.alloc(length);
    body.writeUInt16BE(18); // a ping type, to look plausible
    return Buffer.concat([seal(ks.sn, header), seal(ks.sn + 1, body)]);
  }

  closed(): Promise<void> {
    return new Promise((r) => (this.socket.closed ? r() : this.socket.once('close', () => r())));
  }
}

function readExactly(socket: Socket, n: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) {
        socket.off('data', onData);
        socket.off('close', onClose);
        socket.pause();
        if (buf.length > n) socket.unshift(buf.subarray(n));
        resolve(buf.subarray(0, n));
      }
    };
    const onClose = (): void => reject(new Error('socket closed during the handshake'));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
