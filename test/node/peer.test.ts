/**
 * Peer layer over real loopback TCP: init exchange, feature negotiation,
 * ping/pong, error/warning, unknown messages, and isolation (a misbehaving
 * peer is dropped with a typed reason while others keep being served).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomInt } from 'node:crypto';
import { MessageType, type Message } from '../../wire/messages.js';
import type { InitMessage, PingMessage, PongMessage, WarningMessage } from '../../wire/setup-messages.js';
import type { PeerManager } from '../../node/peer-manager.js';
import { ForgingPeer, initMessage, RawPeer, REGTEST, startNode, tcp, waitEvent, withTimeout } from './peer-helpers.js';

const isPong = (m: Message): m is PongMessage => m.type === MessageType.Pong;
const isPing = (m: Message): m is PingMessage => m.type === MessageType.Ping;
const isInit = (m: Message): m is InitMessage => m.type === MessageType.Init;
const isWarning = (m: Message): m is WarningMessage => m.type === MessageType.Warning;

/** The other, well-behaved peer still answers pings. */
async function stillServes(a: PeerManager, b: PeerManager): Promise<void> {
  await withTimeout(a.ping(b.nodeIdHex, 77), 'ping to the good peer');
}

async function disconnectedWith(node: PeerManager, nodeIdHex: string, code: string, action: () => void | Promise<void>): Promise<void> {
  const ev = waitEvent(node, 'peer_disconnected', (e) => e.nodeId === nodeIdHex);
  await action();
  const [e] = await ev;
  assert.equal(e.reason?.code, code, `reason: ${e.reason?.message}`);
}

describe('two nodes over loopback', () => {
  let a: PeerManager;
  let b: PeerManager;
  before(async () => {
    // the pipelined-ping test below pings far beyond the default budget for incoming pings (test/node/peer-limits.test.ts)
    const unlimited = { pingsPerSecond: 0, pongBytesPerSecond: 0 };
    a = await startNode({ pingIntervalMs: 0, ...unlimited });
    b = await startNode({ pingIntervalMs: 0, ...unlimited });
  });
  after(async () => {
    await a.stop();
    await b.stop();
  });

  it('connect, exchange init and see each other', async () => {
    const onB = waitEvent(b, 'peer_connected', (i) => i.nodeId === a.nodeIdHex);
    const info = await a.connect(b.nodeIdHex, '127.0.0.1', Number(b.listenAddress!.split(':')[1]));
    const [infoB] = await onB;
    assert.equal(info.nodeId, b.nodeIdHex);
    assert.equal(info.inbound, false);
    assert.equal(infoB.inbound, true);
    assert.deepEqual(info.features, [1]);
    assert.deepEqual(info.featureNames, ['option_data_loss_protect']);
    assert.ok(info.connectedSince > 0);
    assert.deepEqual(
      a.listPeers().map((p) => p.nodeId),
      [b.nodeIdHex],
    );
    assert.deepEqual(
      b.listPeers().map((p) => p.nodeId),
      [a.nodeIdHex],
    );
    // connecting again returns the existing peer
    const again = await a.connect(b.nodeIdHex, '127.0.0.1', Number(b.listenAddress!.split(':')[1]));
    assert.equal(again.nodeId, b.nodeIdHex);
    assert.equal(a.listPeers().length, 1);
  });

  it('trades 10 000 pipelined pings with pongs of random sizes, every size checked', async () => {
    const total = 10_000;
    const window = 128;
    const before = a.listPeers()[0]!;
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        next++;
        // sizes across the whole allowed range, weighted to keep the run short
        const n = randomInt(0, 10) === 0 ? randomInt(0, 65532) : randomInt(0, 4097);
        await a.ping(b.nodeIdHex, n, randomInt(0, 64));
        done++;
      }
    };
    await withTimeout(Promise.all(Array.from({ length: window }, worker)), '10 000 pings', 120_000);
    assert.equal(done, total);
    const pa = a.listPeers()[0]!;
    const pb = b.listPeers()[0]!;
    assert.equal(pa.pingsSent - before.pingsSent, total);
    assert.equal(pa.pongsReceived - before.pongsReceived, total);
    assert.equal(pb.pingsReceived, pa.pingsSent);
    assert.equal(pb.pongsSent, pa.pingsSent);
  });

  it('disconnect() drops the peer on both sides with a typed reason', async () => {
    const onB = waitEvent(b, 'peer_disconnected', (e) => e.nodeId === a.nodeIdHex);
    const onA = waitEvent(a, 'peer_disconnected', (e) => e.nodeId === b.nodeIdHex);
    assert.equal(a.disconnect(b.nodeIdHex), true);
    const [[ea], [eb]] = await Promise.all([onA, onB]);
    assert.equal(ea.reason?.code, 'ERR_PEER_DISCONNECT_REQUESTED');
    assert.equal(eb.reason?.code, 'ERR_NOISE_CLOSED');
    assert.deepEqual(a.listPeers(), []);
    assert.deepEqual(b.listPeers(), []);
    assert.equal(a.disconnect(b.nodeIdHex), false);
  });
});

describe('misbehaving peers are dropped; the others are still served', () => {
  let node: PeerManager;
  let good: PeerManager;
  before(async () => {
    node = await startNode({ pingIntervalMs: 0, initTimeoutMs: 300 });
    good = await startNode({ pingIntervalMs: 0 });
    await good.connect(node.nodeIdHex, '127.0.0.1', Number(node.listenAddress!.split(':')[1]));
  });
  after(async () => {
    await node.stop();
    await good.stop();
  });

  it('our init is sent at once: features, networks = [regtest], remote_addr', async () => {
    const p = await RawPeer.connect(node);
    const init = await p.next(isInit, 'init');
    assert.deepEqual([...init.features], [0x02]);
    assert.equal(init.globalFeatures.length, 0);
    assert.equal(init.networks?.length, 1);
    assert.equal(Buffer.from(init.networks![0]!).toString('hex'), '06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f');
    assert.equal(init.remoteAddr?.[0], 1); // an IPv4 descriptor: how the node sees us
    p.close();
  });

  it('garbage instead of a handshake: connection_failed with a Noise error', async () => {
    const s = await tcp(Number(node.listenAddress!.split(':')[1]));
    const failed = waitEvent(node, 'connection_failed', (e) => e.direction === 'inbound');
    s.on('error', () => undefined);
    s.write(Buffer.alloc(50, 0xff));
    const [e] = await failed;
    assert.equal(e.reason.code, 'ERR_NOISE_BAD_VERSION');
    await stillServes(good, node);
  });

  it('garbage after the handshake: ERR_NOISE_BAD_TAG', async () => {
    const f = await ForgingPeer.connect(node);
    await disconnectedWith(node, f.nodeIdHex, 'ERR_NOISE_BAD_TAG', async () => {
      const connected = waitEvent(node, 'peer_connected', (i) => i.nodeId === f.nodeIdHex);
      f.write(f.frame(initMessage()));
      await connected;
      f.write(Buffer.from('this is not a BOLT 8 frame at all, just bytes...', 'latin1'));
    });
    await stillServes(good, node);
  });

  it('a frame with a bad MAC: ERR_NOISE_BAD_TAG', async () => {
    const f = await ForgingPeer.connect(node);
    await disconnectedWith(node, f.nodeIdHex, 'ERR_NOISE_BAD_TAG', async () => {
      const connected = waitEvent(node, 'peer_connected', (i) => i.nodeId === f.nodeIdHex);
      f.write(f.frame(initMessage()));
      await connected;
      const frame = f.frame({ type: MessageType.Ping, numPongBytes: 4, ignored: new Uint8Array(10) });
      frame[frame.length - 1]! ^= 0x01; // last byte of the body's tag
      f.write(frame);
    });
    await stillServes(good, node);
  });

  it('a frame longer than 65535 bytes (length prefix wraps): ERR_NOISE_BAD_TAG', async () => {
    const f = await ForgingPeer.connect(node);
    await disconnectedWith(node, f.nodeIdHex, 'ERR_NOISE_BAD_TAG', async () => {
      const connected = waitEvent(node, 'peer_connected', (i) => i.nodeId === f.nodeIdHex);
      f.write(f.frame(initMessage()));
      await connected;
      f.write(f.oversizeFrame(70_000));
    });
    await stillServes(good, node);
  });

  it('a frame of exactly 65535 bytes is fine', async () => {
    const p = await RawPeer.ready(node);
    const big = new Uint8Array(65535);
    big[0] = 0x01; // type 511: unknown and odd, so ignored
    big[1] = 0xff;
    p.sendRaw(big);
    p.send({ type: MessageType.Ping, numPongBytes: 9, ignored: new Uint8Array(0) });
    const pong = await p.next(isPong, 'pong');
    assert.equal(pong.ignored.length, 9);
    p.close();
  });

  it('an unknown even message: ERR_UNKNOWN_EVEN_MESSAGE, after a warning naming it', async () => {
    const p = await RawPeer.ready(node);
    await disconnectedWith(node, p.nodeIdHex, 'ERR_UNKNOWN_EVEN_MESSAGE', () => p.sendRaw(Uint8Array.from([0x01, 0x2c, 1, 2, 3]))); // type 300
    const w = await p.next(isWarning, 'warning');
    assert.match(Buffer.from(w.data).toString(), /unknown even message type 300/);
    assert.deepEqual([...w.channelId], new Array(32).fill(0));
    await stillServes(good, node);
  });

  it('an unknown odd message is ignored', async () => {
    const p = await RawPeer.ready(node);
    p.sendRaw(Uint8Array.from([0x01, 0x2d, 9, 9, 9])); // type 301
    p.send({ type: MessageType.Ping, numPongBytes: 3, ignored: new Uint8Array(0) });
    const pong = await p.next(isPong, 'pong');
    assert.deepEqual([...pong.ignored], [0, 0, 0]);
    assert.ok(node.peer(p.nodeIdHex));
    p.close();
  });

  it('a malformed known message (truncated ping): disconnected with the DecodeError', async () => {
    const p = await RawPeer.ready(node);
    await disconnectedWith(node, p.nodeIdHex, 'ERR_TRUNCATED', () => p.sendRaw(Uint8Array.from([0x00, 0x12, 0x00])));
    await stillServes(good, node);
  });

  it('pings asking for 65532 or more bytes get no pong; others are answered with exactly num_pong_bytes zeros', async () => {
    const p = await RawPeer.ready(node);
    p.send({ type: MessageType.Ping, numPongBytes: 65532, ignored: new Uint8Array(0) });
    p.send({ type: MessageType.Ping, numPongBytes: 65535, ignored: new Uint8Array(5) });
    p.send({ type: MessageType.Ping, numPongBytes: 65531, ignored: new Uint8Array(0) });
    p.send({ type: MessageType.Ping, numPongBytes: 0, ignored: new Uint8Array(100) });
    const first = await p.next(isPong, 'pong');
    assert.equal(first.ignored.length, 65531);
    assert.ok(first.ignored.every((x) => x === 0));
    const second = await p.next(isPong, 'pong');
    assert.equal(second.ignored.length, 0);
    p.close();
  });

  it('a peer that never sends init: ERR_PEER_INIT_TIMEOUT', async () => {
    const p = await RawPeer.connect(node);
    await disconnectedWithFailed(node, p.nodeIdHex, 'ERR_PEER_INIT_TIMEOUT', () => undefined);
    const w = await p.next(isWarning, 'warning');
    assert.match(Buffer.from(w.data).toString(), /no init within 300 ms/);
    await stillServes(good, node);
  });

  it('a first message other than init: ERR_PEER_FIRST_NOT_INIT', async () => {
    const p = await RawPeer.connect(node);
    await disconnectedWithFailed(node, p.nodeIdHex, 'ERR_PEER_FIRST_NOT_INIT', () =>
      p.send({ type: MessageType.Ping, numPongBytes: 1, ignored: new Uint8Array(0) }),
    );
  });

  it('an unknown required feature bit: ERR_PEER_UNKNOWN_REQUIRED_FEATURE', async () => {
    const p = await RawPeer.connect(node);
    await disconnectedWithFailed(node, p.nodeIdHex, 'ERR_PEER_UNKNOWN_REQUIRED_FEATURE', () => p.send(initMessage({ features: [1, 100] })));
    const w = await p.next(isWarning, 'warning');
    assert.match(Buffer.from(w.data).toString(), /100/);
    await stillServes(good, node);
  });

  it('an unknown required bit in the legacy global field counts too', async () => {
    const p = await RawPeer.connect(node);
    await disconnectedWithFailed(node, p.nodeIdHex, 'ERR_PEER_UNKNOWN_REQUIRED_FEATURE', () =>
      p.send(initMessage({ features: [1], global: [42] })),
    );
  });

  it('a broken feature dependency (payment_secret without var_onion): ERR_PEER_FEATURE_DEPENDENCY', async () => {
    const p = await RawPeer.connect(node);
    await disconnectedWithFailed(node, p.nodeIdHex, 'ERR_PEER_FEATURE_DEPENDENCY', () => p.send(initMessage({ features: [1, 15] })));
  });

  it("lnd's init (required 0, 8, 12, 14; optional bits up to 2023; 8 and 12 also in the legacy field) is accepted and merged", async () => {
    const lnd = [0, 5, 7, 8, 12, 14, 17, 23, 25, 27, 31, 45, 2023];
    const p = await RawPeer.ready(node, initMessage({ features: lnd, global: [8, 12], networks: null }));
    const info = node.listPeers().find((i) => i.nodeId === p.nodeIdHex)!;
    assert.deepEqual(info.features, lnd);
    p.close();
  });

  it('unknown odd feature bits are fine, and a networks list that includes regtest', async () => {
    const other = new Uint8Array(32).fill(7);
    const p = await RawPeer.ready(node, initMessage({ features: [1, 101, 1001], networks: [other, REGTEST] }));
    p.close();
  });

  it('a networks list without regtest: ERR_PEER_NETWORK_MISMATCH', async () => {
    const p = await RawPeer.connect(node);
    const mainnet = Buffer.from('6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000', 'hex');
    await disconnectedWithFailed(node, p.nodeIdHex, 'ERR_PEER_NETWORK_MISMATCH', () => p.send(initMessage({ networks: [mainnet] })));
  });

  it('an error with an all-zero channel_id: ERR_PEER_REMOTE_ERROR', async () => {
    const p = await RawPeer.ready(node);
    await disconnectedWith(node, p.nodeIdHex, 'ERR_PEER_REMOTE_ERROR', () =>
      p.send({ type: MessageType.Error, channelId: new Uint8Array(32), data: new TextEncoder().encode('go away\n') }),
    );
    await stillServes(good, node);
  });

  it('an error for a channel we do not have, and a warning, are logged and ignored', async () => {
    const p = await RawPeer.ready(node);
    p.send({ type: MessageType.Error, channelId: new Uint8Array(32).fill(1), data: new TextEncoder().encode('no such channel') });
    p.send({ type: MessageType.Warning, channelId: new Uint8Array(32), data: new TextEncoder().encode('careful') });
    p.send({ type: MessageType.Ping, numPongBytes: 2, ignored: new Uint8Array(0) });
    await p.next(isPong, 'pong');
    assert.ok(node.peer(p.nodeIdHex));
    p.close();
  });
});

/** Like disconnectedWith, for a peer dropped before init completed (it never became a connected peer). */
async function disconnectedWithFailed(node: PeerManager, nodeIdHex: string, code: string, action: () => void): Promise<void> {
  const ev = waitEvent(node, 'connection_failed', (e) => e.nodeId === nodeIdHex);
  action();
  const [e] = await ev;
  assert.equal(e.reason.code, code, `reason: ${e.reason.message}`);
  assert.equal(e.direction, 'inbound');
  assert.equal(node.peer(nodeIdHex), undefined);
}

describe('our pings', () => {
  it('a pong of the wrong size: ERR_PEER_PONG_SIZE', async () => {
    const node = await startNode({ pingIntervalMs: 20 });
    try {
      const p = await RawPeer.ready(node);
      const ev = waitEvent(node, 'peer_disconnected', (e) => e.nodeId === p.nodeIdHex);
      const ping = await p.next(isPing, 'ping');
      assert.ok(ping.numPongBytes >= 0 && ping.numPongBytes <= 4096);
      p.send({ type: MessageType.Pong, ignored: new Uint8Array(ping.numPongBytes + 1) });
      const [e] = await ev;
      assert.equal(e.reason?.code, 'ERR_PEER_PONG_SIZE');
    } finally {
      await node.stop();
    }
  });

  it('no pong in time: ERR_PEER_PONG_TIMEOUT', async () => {
    const node = await startNode({ pingIntervalMs: 20, pongTimeoutMs: 200 });
    try {
      const p = await RawPeer.ready(node);
      const ev = waitEvent(node, 'peer_disconnected', (e) => e.nodeId === p.nodeIdHex);
      await p.next(isPing, 'ping');
      const [e] = await ev;
      assert.equal(e.reason?.code, 'ERR_PEER_PONG_TIMEOUT');
    } finally {
      await node.stop();
    }
  });

  it('pipelined pings: the first answered, the second not: that one times out', async () => {
    const node = await startNode({ pingIntervalMs: 0, pongTimeoutMs: 300 });
    try {
      const p = await RawPeer.ready(node);
      const first = node.ping(p.nodeIdHex, 11);
      const second = node.ping(p.nodeIdHex, 22);
      const secondOutcome = second.then(
        () => 'resolved',
        (e: { code?: string }) => e.code,
      );
      const ev = waitEvent(node, 'peer_disconnected', (e) => e.nodeId === p.nodeIdHex);
      const ping = await p.next(isPing, 'ping');
      assert.equal(ping.numPongBytes, 11);
      p.send({ type: MessageType.Pong, ignored: new Uint8Array(11) });
      await first;
      const [e] = await ev;
      assert.equal(e.reason?.code, 'ERR_PEER_PONG_TIMEOUT');
      assert.equal(await secondOutcome, 'ERR_PEER_PONG_TIMEOUT');
    } finally {
      await node.stop();
    }
  });

  it('a peer answering correctly stays connected through many timer pings, sizes within 0..4096', async () => {
    const node = await startNode({ pingIntervalMs: 5, pongTimeoutMs: 5_000 });
    try {
      const p = await RawPeer.ready(node);
      const sizes: number[] = [];
      while (sizes.length < 20) {
        const ping = await p.next(isPing, 'ping');
        sizes.push(ping.numPongBytes);
        p.send({ type: MessageType.Pong, ignored: new Uint8Array(ping.numPongBytes) });
      }
      assert.ok(sizes.every((n) => n >= 0 && n <= 4096));
      assert.ok(new Set(sizes).size > 1, 'sizes are random');
      assert.ok(node.peer(p.nodeIdHex));
      const info = node.listPeers()[0]!;
      assert.ok(info.pingsSent >= 20);
      p.close();
    } finally {
      await node.stop();
    }
  });
});

describe('message handlers', () => {
  it('types the peer layer does not handle reach their registered handler; a throwing handler costs only its peer', async () => {
    const node = await startNode({ pingIntervalMs: 0 });
    const good = await startNode({ pingIntervalMs: 0 });
    try {
      await good.connect(node.nodeIdHex, '127.0.0.1', Number(node.listenAddress!.split(':')[1]));
      // 32770 and 32772: even types from the experimental range, absent from the message table
      const seen: { type: number; len: number; decoded: boolean }[] = [];
      node.registerHandler(32770, (peer, msg) => {
        seen.push({ type: msg.type, len: msg.bytes.length, decoded: msg.message !== undefined });
        peer.sendRaw(Uint8Array.from([0x80, 0x03, 0xaa])); // answer with odd type 32771
      });
      node.registerHandler(32772, () => {
        throw new Error('handler bug');
      });
      assert.throws(() => node.registerHandler(18, () => undefined), /peer layer/);
      assert.throws(() => node.registerHandler(32770, () => undefined), /already registered/);

      const p = await RawPeer.ready(node);
      p.sendRaw(Uint8Array.from([0x80, 0x02, 1, 2, 3, 4]));
      const deadline = Date.now() + 10_000;
      while (!p.unknown.some((u) => u.type === 32771)) {
        assert.ok(Date.now() < deadline, 'no answer from the handler within 10 s');
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.deepEqual(seen, [{ type: 32770, len: 6, decoded: false }]);
      await disconnectedWith(node, p.nodeIdHex, 'ERR_PEER_HANDLER_FAILED', () => p.sendRaw(Uint8Array.from([0x80, 0x04])));
      await stillServes(good, node);
    } finally {
      await node.stop();
      await good.stop();
    }
  });
});
