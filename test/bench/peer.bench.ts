/**
 * Peer layer over loopback TCP: ping/pong round trips through two Nodes
 * (BOLT 1 decode, dispatch, size check, stats) against the bound of the same
 * bytes echoed between two bare BOLT 8 connections (encryption, framing and
 * TCP only).
 */
import { randomInt } from 'node:crypto';
import { createServer, connect as netConnect, type AddressInfo } from 'node:net';
import { randomPrivateKey, secp } from '../../wire/crypto.js';
import { noiseAccept, noiseConnect, type NoiseConnection } from '../../wire/noise-stream.js';
import { silentLogger } from '../../node/log.js';
import { PeerManager } from '../../node/peer-manager.js';
import { emit } from './harness.js';

const SUITE = 'peer';

/** Two bare Noise connections; the far side answers each "ping" frame with a pong-shaped frame of the asked size. */
async function rawPair(): Promise<{ ping: (n: number) => Promise<void>; close: () => void }> {
  const key = randomPrivateKey();
  let far!: NoiseConnection;
  const accepted = new Promise<void>((resolve) => {
    const server = createServer((s) => {
      void noiseAccept(s, { localStaticPriv: key }).then((c) => {
        far = c;
        c.on('message', (m) => {
          const n = (m[2]! << 8) | m[3]!;
          const pong = new Uint8Array(4 + n);
          pong[1] = 19;
          pong[2] = n >> 8;
          pong[3] = n & 0xff;
          c.send(pong);
        });
        server.close();
        resolve();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      const sock = netConnect({ host: '127.0.0.1', port, noDelay: true });
      sock.once('connect', () => {
        void noiseConnect(sock, { localStaticPriv: randomPrivateKey(), remoteStaticPub: secp.publicKeyCreate(key) }).then((c) => {
          near = c;
          c.on('message', () => waiting.shift()?.());
        });
      });
    });
  });
  let near!: NoiseConnection;
  const waiting: (() => void)[] = [];
  await accepted;
  while (near === undefined) await new Promise((r) => setTimeout(r, 1));
  return {
    ping: (n) =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        const ping = new Uint8Array(6);
        ping[1] = 18;
        ping[2] = n >> 8;
        ping[3] = n & 0xff;
        near.send(ping);
      }),
    close: () => {
      near.close();
      far.close();
    },
  };
}

async function nodePair(): Promise<{ ping: (n: number) => Promise<void>; close: () => Promise<void> }> {
  const a = new PeerManager({ nodeKey: randomPrivateKey(), listen: null, pingIntervalMs: 0, logger: silentLogger() });
  const b = new PeerManager({ nodeKey: randomPrivateKey(), listen: '127.0.0.1:0', pingIntervalMs: 0, logger: silentLogger() });
  await a.start();
  await b.start();
  await a.connect(b.nodeIdHex, '127.0.0.1', Number(b.listenAddress!.split(':')[1]));
  return {
    ping: (n) => a.ping(b.nodeIdHex, n),
    close: async () => {
      await a.stop();
      await b.stop();
    },
  };
}

/** Round trips per second: `count` pings with `window` in flight, sizes from `sizes`. */
async function rate(ping: (n: number) => Promise<void>, sizes: number[], window: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < sizes.length) await ping(sizes[next++]!);
  };
  await Promise.all(Array.from({ length: window }, worker));
  return (sizes.length * 1000) / (performance.now() - t0);
}

export async function run(): Promise<void> {
  const raw = await rawPair();
  const nodes = await nodePair();
  try {
    for (const [name, window, count, maxSize] of [
      ['ping round trip, one at a time, 0..64 bytes', 1, 2000, 64],
      ['pipelined pings (64 in flight), 0..4096 bytes', 64, 10000, 4096],
    ] as const) {
      let value = 0;
      let bound = 0;
      for (let round = 0; round < 3; round++) {
        const sizes = Array.from({ length: count }, () => randomInt(0, maxSize + 1));
        value = Math.max(value, await rate(nodes.ping, sizes, window));
        bound = Math.max(bound, await rate(raw.ping, sizes, window));
      }
      emit(SUITE, name, 'round trips/s', value, bound);
    }
  } finally {
    raw.close();
    await nodes.close();
  }
}
