/**
 * A hostile peer cannot lock others out: handshake slots shared out by
 * remote address, a shorter wait for act 1, caps on connected peers without
 * channels (and the hook that exempts peers with channels), a reserve of
 * file descriptors, the budget for incoming pings, bounded send buffers, and
 * rate-limited log lines. Every test reproduces an attack measured against
 * `ampnode start` on loopback, bounded in count and time; distinct remote
 * addresses are 127.x.y.z source addresses (Linux routes all of 127/8 to lo).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect as netConnect, type Socket } from 'node:net';
import { randomPrivateKey, secp } from '../../wire/crypto.js';
import { MessageType, type Message } from '../../wire/messages.js';
import type { InitMessage, PongMessage } from '../../wire/setup-messages.js';
import type { PeerManager } from '../../node/peer-manager.js';
import { ForgingPeer, initMessage, LogCapture, portOf, RawPeer, startNode, waitEvent } from './peer-helpers.js';

const isInit = (m: Message): m is InitMessage => m.type === MessageType.Init;
const isPong = (m: Message): m is PongMessage => m.type === MessageType.Pong;

const nodes: PeerManager[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(nodes.map((n) => n.stop()));
});

async function node(cfg: Parameters<typeof startNode>[0] = {}, capture?: LogCapture): Promise<PeerManager> {
  const n = await startNode({ pingIntervalMs: 0, ...cfg }, capture);
  nodes.push(n);
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP connection that never sends a byte. Resolves once connected (the node may close it at once: see `isClosed`). */
function halfOpen(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress });
    sockets.push(s);
    s.on('error', () => undefined);
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((r) => (s.closed ? r() : s.once('close', () => r())));
}

/** Polls `cond` every 10 ms until it holds or `ms` pass; returns whether it held. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(10);
  }
  return true;
}

/**
 * A whole attempt from `localAddress`: TCP, handshake, our init. Resolves with the peer once the
 * node's init arrives (it was let in), or undefined when the node closes the connection first.
 */
async function attempt(n: PeerManager, localAddress: string, key?: Uint8Array): Promise<RawPeer | undefined> {
  let p: RawPeer;
  try {
    p = await RawPeer.connect(n, { localAddress, ...(key !== undefined ? { key } : {}) });
  } catch {
    return undefined;
  }
  try {
    p.send(initMessage());
  } catch {
    return undefined;
  }
  const ok = await Promise.race([
    p.next(isInit, 'init', 5_000).then(
      () => true,
      () => false,
    ),
    p.closed.then(() => false),
  ]);
  if (!ok) {
    p.close();
    return undefined;
  }
  return p;
}

/** A well-behaved peer from `localAddress`: connects, inits and gets a pong; returns the ms all that took. */
async function goodPeer(n: PeerManager, localAddress: string, key?: Uint8Array): Promise<number> {
  const t0 = performance.now();
  const p = await attempt(n, localAddress, key);
  assert.ok(p, `the peer from ${localAddress} was let in`);
  p.send({ type: MessageType.Ping, numPongBytes: 8, ignored: new Uint8Array(0) });
  await p.next(isPong, 'pong', 5_000);
  const ms = performance.now() - t0;
  p.close();
  return ms;
}

describe('handshake slots', () => {
  it('one address holding 500 half-open connections takes only its share; a peer from another address gets in within 2 s', async () => {
    const n = await node();
    const port = portOf(n);
    const hog: Socket[] = [];
    for (let i = 0; i < 5; i++) hog.push(...(await Promise.all(Array.from({ length: 100 }, () => halfOpen(port)))));
    // all but the address's share are closed at once
    const share = n.config.maxPendingInboundPerAddress;
    assert.ok(
      await until(() => hog.filter((s) => !s.closed).length <= share, 5_000),
      `${hog.filter((s) => !s.closed).length} hog connections still open`,
    );
    const ms = await goodPeer(n, '127.0.0.2');
    assert.ok(ms < 2_000, `the good peer took ${ms.toFixed(0)} ms`);
    for (const s of hog) s.destroy();
  });

  it('one address reopening 70 connections as they close does not keep peers from other addresses out; act 1 gets actOneTimeoutMs', async () => {
    const n = await node({ actOneTimeoutMs: 500 });
    const port = portOf(n);
    const actOneTimeouts: string[] = [];
    n.on('connection_failed', (e) => {
      if (e.reason.code === 'ERR_NOISE_HANDSHAKE_TIMEOUT') actOneTimeouts.push(e.reason.message);
    });
    let running = true;
    let opened = 0;
    const open = (): void => {
      if (!running) return;
      opened++;
      const s = netConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
      s.on('error', () => undefined);
      s.once('close', () => setImmediate(open));
      sockets.push(s);
    };
    for (let i = 0; i < 70; i++) open();
    try {
      const times: number[] = [];
      const started = performance.now();
      for (let i = 0; performance.now() - started < 3_000; i++) times.push(await goodPeer(n, i % 2 === 0 ? '127.0.0.2' : '127.0.0.3'));
      assert.ok(times.length >= 2);
      assert.ok(Math.max(...times) < 2_000, `good peers took ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
      assert.ok(opened > 70, 'the hog reopened');
      assert.ok(
        actOneTimeouts.some((m) => /no act 1 within 500 ms/.test(m)),
        'silent connections are cut after actOneTimeoutMs',
      );
    } finally {
      running = false;
      for (const s of sockets) s.destroy();
    }
  });

  it('addresses a peer with channels came from keep a reserve of handshake slots when all others are taken', async () => {
    const n = await node({ maxPendingInbound: 4, pendingReserveForChannelPeers: 2 });
    const chanKey = randomPrivateKey();
    const chanId = Buffer.from(secp.publicKeyCreate(chanKey)).toString('hex');
    n.setPeerProtected((id) => id === chanId);
    await goodPeer(n, '127.0.0.2', chanKey); // remembered as an address of a peer with channels
    const hog = await Promise.all(Array.from({ length: 4 }, () => halfOpen(portOf(n), '127.0.0.1')));
    await sleep(50);
    assert.equal(hog.filter((s) => !s.closed).length, 4);
    const refused = waitEvent(n, 'connection_failed', (e) => e.reason.code === 'ERR_TOO_MANY_PENDING', 5_000);
    assert.equal(await attempt(n, '127.0.0.3'), undefined, 'a stranger finds no slot');
    await refused;
    const ms = await goodPeer(n, '127.0.0.2', chanKey);
    assert.ok(ms < 2_000, `the peer with channels took ${ms.toFixed(0)} ms`);
    for (const s of hog) s.destroy();
  });
});

describe('connected peers', () => {
  it('1000 attempts from one address leave at most maxPeersPerAddress connected; a peer from another address still gets in', async () => {
    const n = await node();
    const cap = n.config.maxPeersPerAddress;
    let most = 0;
    n.on('peer_connected', () => (most = Math.max(most, n.listPeers().length)));
    const kept: RawPeer[] = [];
    let next = 0;
    const started = performance.now();
    const worker = async (): Promise<void> => {
      while (next < 1000) {
        next++;
        const p = await attempt(n, '127.0.0.1');
        if (p !== undefined) kept.push(p);
      }
    };
    await Promise.all(Array.from({ length: 25 }, worker));
    const elapsed = performance.now() - started;
    await sleep(100);
    assert.ok(most <= cap, `${most} peers were connected at once`);
    assert.ok(n.listPeers().length <= cap, `${n.listPeers().length} peers connected`);
    assert.ok(kept.filter((p) => !p.conn.closed).length <= cap);
    const ms = await goodPeer(n, '127.0.0.2');
    assert.ok(ms < 2_000, `the good peer took ${ms.toFixed(0)} ms (the 1000 attempts took ${elapsed.toFixed(0)} ms)`);
    for (const p of kept) p.close();
  });

  it('no more than maxPeersWithoutChannels incoming peers without channels; refused after the handshake, before init; peers with channels still get in', async () => {
    const n = await node({ maxPeersWithoutChannels: 5 });
    const chanKey = randomPrivateKey();
    const chanId = Buffer.from(secp.publicKeyCreate(chanKey)).toString('hex');
    n.setPeerProtected((id) => id === chanId);
    const refusals: { code: string; nodeId: string | undefined }[] = [];
    n.on('connection_failed', (e) => refusals.push({ code: e.reason.code, nodeId: e.nodeId }));
    const peers: (RawPeer | undefined)[] = [];
    for (let i = 0; i < 8; i++) peers.push(await attempt(n, `127.0.0.${10 + i}`));
    assert.equal(peers.filter((p) => p !== undefined).length, 5);
    assert.ok(await until(() => refusals.length === 3, 2_000));
    assert.ok(
      refusals.every((r) => r.code === 'ERR_TOO_MANY_PEERS' && r.nodeId !== undefined),
      JSON.stringify(refusals),
    );
    // a refused peer got the handshake and nothing else: no init from us
    const p = await RawPeer.connect(n, { localAddress: '127.0.0.30' });
    p.send(initMessage());
    await p.closed;
    assert.equal(p.received.length, 0);
    // the peer with channels is let in beyond the cap, from a new address
    await goodPeer(n, '127.0.0.40', chanKey);
    const withChannels = await attempt(n, '127.0.0.41', chanKey);
    assert.ok(withChannels);
    await until(() => n.listPeers().length === 6, 2_000);
    assert.equal(n.listPeers().length, 6);
    withChannels.close();
    for (const q of peers) q?.close();
  });

  it('maxConnections keeps a reserve of file descriptors: sockets beyond it are closed at once, and dials are not made', async () => {
    const n = await node({ maxConnections: 8 });
    const failures: string[] = [];
    n.on('connection_failed', (e) => failures.push(e.reason.code));
    // from 20 addresses, so that no per-address limit is what stops them
    const held = await Promise.all(Array.from({ length: 20 }, (_, i) => halfOpen(portOf(n), `127.0.1.${i + 1}`)));
    await sleep(100);
    assert.equal(held.filter((s) => !s.closed).length, 8);
    assert.equal(failures.filter((c) => c === 'ERR_TOO_MANY_CONNECTIONS').length, 12);
    const other = await node();
    await assert.rejects(
      n.connect(other.nodeIdHex, '127.0.0.1', portOf(other)),
      (e: { code?: string }) => e.code === 'ERR_TOO_MANY_CONNECTIONS',
    );
    for (const s of held) s.destroy();
    await Promise.all(held.map(closed));
    await until(() => failures.length >= 20, 2_000);
    await n.connect(other.nodeIdHex, '127.0.0.1', portOf(other));
  });
});

describe('incoming pings', () => {
  it('a flood of pings asking for 65 531 bytes is cut off; a good peer’s round trip stays within 2× its idle value', async (t) => {
    const n = await node();
    // the good peer answers our pings without a budget, so that we can time many in a row
    const good = await node({ pingsPerSecond: 0, pongBytesPerSecond: 0 });
    await good.connect(n.nodeIdHex, '127.0.0.1', portOf(n));
    const rtt = async (count: number): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        await n.ping(good.nodeIdHex, 4096);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length / 2)]!;
    };
    await rtt(10); // warm up
    const idle = await rtt(21);

    const f = await ForgingPeer.connect(n, { localAddress: '127.0.0.2' });
    const flooder = f.nodeIdHex;
    const connected = waitEvent(n, 'peer_connected', (i) => i.nodeId === flooder);
    f.write(f.frame(initMessage()));
    await connected;
    const cut = waitEvent(n, 'peer_disconnected', (e) => e.nodeId === flooder, 3_000);
    let flooding = true;
    let sent = 0;
    const flood = (): void => {
      if (!flooding || f.socket.destroyed) return;
      const batch: Buffer[] = [];
      for (let i = 0; i < 200; i++) batch.push(f.frame({ type: MessageType.Ping, numPongBytes: 65_531, ignored: new Uint8Array(0) }));
      sent += batch.length;
      f.write(Buffer.concat(batch));
      setImmediate(flood);
    };
    flood();
    try {
      const floodStart = performance.now();
      const during = await rtt(21);
      const [ev] = await cut.catch(() =>
        assert.fail(
          `the flood (${sent} pings) was not cut off within 3 s (good peer's round trip ${during.toFixed(2)} ms, ${idle.toFixed(2)} ms idle)`,
        ),
      );
      const cutAfter = performance.now() - floodStart;
      assert.equal(ev.reason?.code, 'ERR_PEER_PING_FLOOD');
      // what the flood got back: at most the budget's burst (16 pongs of 64 kB), not gigabytes
      assert.ok(f.socket.bytesRead < 3_000_000, `the flooder received ${f.socket.bytesRead} bytes`);
      // Medians of 21; on a loaded machine a sub-millisecond idle value doubles from scheduling noise alone, so the bound is 2× idle, but at least idle + 3 ms.
      const bound = Math.max(2 * idle, idle + 3);
      t.diagnostic(
        `idle ${idle.toFixed(2)} ms, during ${during.toFixed(2)} ms, cut after ${cutAfter.toFixed(0)} ms and ${sent} pings, flooder got ${f.socket.bytesRead} bytes`,
      );
      assert.ok(
        during <= bound,
        `round trip ${during.toFixed(2)} ms during the flood, ${idle.toFixed(2)} ms idle (cut after ${cutAfter.toFixed(0)} ms, ${sent} pings sent)`,
      );
    } finally {
      flooding = false;
      f.socket.destroy(); // a flood that was not cut off must not go on loading the tests after this one
    }
  });
});

describe('incoming pings within and beyond the budget', () => {
  it('a burst within the default budget (150 pipelined pings of 0..4096 bytes, as the demo sends) is answered in full and in order', async () => {
    const n = await node();
    const p = await RawPeer.ready(n);
    const sizes = Array.from({ length: 150 }, (_, i) => (i * 2654435761) % 4097);
    for (const numPongBytes of sizes) p.send({ type: MessageType.Ping, numPongBytes, ignored: new Uint8Array(0) });
    const got: number[] = [];
    for (let i = 0; i < sizes.length; i++) got.push((await p.next(isPong, 'pong')).ignored.length);
    assert.deepEqual(got, sizes);
    assert.ok(n.peer(p.nodeIdHex));
    p.close();
  });

  it('a flood of empty pings is cut off by their count', async () => {
    const n = await node();
    const f = await ForgingPeer.connect(n);
    const connected = waitEvent(n, 'peer_connected', (i) => i.nodeId === f.nodeIdHex);
    f.write(f.frame(initMessage()));
    await connected;
    const cut = waitEvent(n, 'peer_disconnected', (e) => e.nodeId === f.nodeIdHex, 5_000);
    const frames: Buffer[] = [];
    for (let i = 0; i < 2_000; i++) frames.push(f.frame({ type: MessageType.Ping, numPongBytes: 0, ignored: new Uint8Array(0) }));
    f.write(Buffer.concat(frames));
    try {
      const [ev] = await cut;
      assert.equal(ev.reason?.code, 'ERR_PEER_PING_FLOOD');
    } finally {
      f.socket.destroy();
    }
  });
});

describe('what one peer can grow', () => {
  it('a peer that does not read while we keep sending is dropped once 4× maxSendBufferBytes wait for it', async () => {
    const n = await node({ maxSendBufferBytes: 64 * 1024 });
    const p = await RawPeer.ready(n);
    p.conn.pause(); // reads nothing more: TCP fills up, then our buffer
    const dropped = waitEvent(n, 'peer_disconnected', (e) => e.nodeId === p.nodeIdHex, 10_000);
    const big = new Uint8Array(60_000);
    big[0] = 0x01; // type 511: unknown, odd
    big[1] = 0xff;
    const peer = n.peer(p.nodeIdHex)!;
    let sent = 0;
    while (!peer.closed && sent < 1_000) {
      for (let i = 0; i < 10; i++) if (peer.sendRaw(big)) sent++;
      await new Promise((r) => setImmediate(r));
    }
    const [ev] = await dropped;
    assert.equal(ev.reason?.code, 'ERR_PEER_SEND_BUFFER_FULL');
    assert.ok(sent < 1_000, `${sent} messages of 60 kB queued`);
    p.close();
  });

  it('a flood of unknown odd messages and warnings writes a bounded number of lines', async () => {
    const capture = new LogCapture();
    const n = await node({}, capture);
    const p = await RawPeer.ready(n);
    for (let i = 0; i < 2_000; i++) p.sendRaw(Uint8Array.from([0x01, 0x2d, i & 0xff])); // type 301
    for (let i = 0; i < 500; i++)
      p.send({ type: MessageType.Warning, channelId: new Uint8Array(32), data: new TextEncoder().encode(`careful ${i}`) });
    p.send({ type: MessageType.Ping, numPongBytes: 1, ignored: new Uint8Array(0) });
    await p.next(isPong, 'pong');
    const gone = waitEvent(n, 'peer_disconnected', (e) => e.nodeId === p.nodeIdHex);
    p.close();
    await gone;
    const mine = capture.lines.filter((l) => l.peer === p.nodeIdHex);
    const ignored = mine.filter((l) => l.msg === 'message without a handler ignored');
    const warnings = mine.filter((l) => l.msg === 'peer sent a warning');
    assert.ok(ignored.length <= 5 && warnings.length <= 5, `${ignored.length} + ${warnings.length} lines`);
    const summaries = mine.filter((l) => l.summary !== undefined).map((l) => l.summary as { kind: string; count: number });
    assert.equal(summaries.find((s) => s.kind === 'ignored')?.count, 2_000);
    assert.equal(summaries.find((s) => s.kind === 'warning')?.count, 500);
    assert.ok(mine.length < 30, `${mine.length} lines for this peer`);
  });
});

describe('log lines from the network', () => {
  it('5 000 refused connections write a few lines: the first ones at debug, then one summary', async () => {
    const capture = new LogCapture();
    // 4 slots for connections in handshake, taken by 4 silent connections that stay
    const n = await node({ maxPendingInbound: 4, actOneTimeoutMs: 60_000, handshakeTimeoutMs: 60_000 }, capture);
    const port = portOf(n);
    const held = await Promise.all(Array.from({ length: 4 }, () => halfOpen(port)));
    await sleep(50);
    const before = capture.lines.length;
    let refusedEvents = 0;
    n.on('connection_failed', () => refusedEvents++);
    const started = performance.now();
    for (let wave = 0; wave < 20; wave++) {
      const batch = await Promise.all(Array.from({ length: 250 }, () => halfOpen(port)));
      await Promise.race([Promise.all(batch.map(closed)), sleep(2_000)]);
      assert.ok(performance.now() - started < 15_000, 'the refusals take too long');
    }
    assert.ok(await until(() => refusedEvents === 5_000, 5_000), `${refusedEvents} refusals seen`);
    assert.equal(held.filter((s) => !s.closed).length, 4);
    await n.stop(); // writes the summary of the period under way
    const lines = capture.lines.slice(before);
    assert.ok(lines.length <= 50, `${lines.length} lines`);
    const summary = lines.filter((l) => l.summary !== undefined && (l.summary as { kind: string }).kind === 'refused');
    assert.equal(summary.length, 1);
    assert.equal((summary[0]!.summary as { count: number }).count, 5_000);
    assert.match(String(summary[0]!.msg), /^refused 5000 incoming connections from 1 address in the last \d+ s$/);
    assert.equal(summary[0]!.level, 40); // warn
    for (const s of held) s.destroy();
  });

  it('the summary comes every logSummaryIntervalMs, without waiting for stop()', async () => {
    const capture = new LogCapture();
    const n = await node({ maxPendingInboundPerAddress: 1, actOneTimeoutMs: 60_000, logSummaryIntervalMs: 300 }, capture);
    const port = portOf(n);
    const held = await halfOpen(port, '127.0.0.5');
    await sleep(50);
    for (let i = 0; i < 30; i++) {
      const s = await halfOpen(port, '127.0.0.5');
      await Promise.race([closed(s), sleep(1_000)]);
      assert.ok(s.closed, 'a second connection from 127.0.0.5 is refused at once');
    }
    const summary = (): Record<string, unknown> | undefined =>
      capture.lines.find((l) => l.summary !== undefined && (l.summary as { kind: string }).kind === 'refused');
    assert.ok(await until(() => summary() !== undefined, 2_000), 'no summary line');
    assert.equal((summary()!.summary as { count: number; codes: Record<string, number> }).count, 30);
    assert.deepEqual((summary()!.summary as { codes: Record<string, number> }).codes, { ERR_TOO_MANY_PENDING_FROM_ADDRESS: 30 });
    const oneByOne = capture.lines.filter((l) => l.msg === 'incoming connection refused');
    assert.equal(oneByOne.length, 10);
    assert.ok(oneByOne.every((l) => l.level === 20)); // debug
    held.destroy();
  });
});
