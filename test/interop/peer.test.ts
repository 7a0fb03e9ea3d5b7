/**
 * BOLT 1 / BOLT 8 interop with a real lnd: Noise handshake and `init` in both directions, feature bits as
 * lnd parses them, lnd's ping/pong (every 60 s, random pong sizes) over more than two cycles, our own
 * pings answered, disconnect/reconnect, and lnd's reconnection to a persistent peer after we restart.
 *
 * One long-lived connection (`steady`) is opened first and checked last, so that the two-ping-cycle wait
 * overlaps the other scenarios instead of adding to the suite's run time. `steady` listens on 127.0.0.2:
 * lnd treats a peer address containing "127.0.0.1" as a Tor connection and pings it only every 3 minutes
 * (peer/brontide.go, isTorConnection); on any other address it pings every 60 s.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import {
  BUILD_TIMEOUT_MS,
  ensureBinaries,
  Interop,
  sleep,
  waitFor,
  type Ampnode,
  type AmpnodeLogLine,
  type Btcd,
  type Lnd,
  type LndPeer,
} from './harness.js';
import { FEATURE_TABLE, localFeatures } from '../../node/features.js';
import { withChannelFeatures } from '../../node/channels/features.js';

interface PeerStats {
  nodeId: string;
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  pongsSent: number;
}

/** lnd pings every 60 s; two full cycles plus slack. */
const TWO_PING_CYCLES_MS = 2 * 60_000 + 15_000;

const h = new Interop('peer');
let btcd: Btcd;
let lnd: Lnd;
let steady: Ampnode;
let steadySince = 0;

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    btcd = await h.startBtcd();
    lnd = await h.startLnd(btcd, { name: 'lnd' });
  },
  { timeout: BUILD_TIMEOUT_MS + 180_000 },
);
after(() => h.close());

function lndPeer(pubkey: string): () => Promise<LndPeer | undefined> {
  return () => lnd.peer(pubkey);
}

function gone(pubkey: string): () => Promise<boolean> {
  return async () => (await lnd.peer(pubkey)) === undefined;
}

/** Feature bits (numbers) lnd lists for a peer. */
function bitsOf(p: LndPeer): number[] {
  return Object.keys(p.features)
    .map(Number)
    .sort((a, b) => a - b);
}

/** The daemon's peer-layer log line for a completed init exchange with `peer` (lnd's node id). */
function connectedTo(peer: string): (l: AmpnodeLogLine) => boolean {
  return (l) => l.msg === 'init exchanged' && l['peer'] === peer;
}
function disconnectedFrom(peer: string): (l: AmpnodeLogLine) => boolean {
  return (l) => l.msg === 'disconnected' && l['peer'] === peer;
}

h.test(
  'lnd → ampnode: lncli connect succeeds and lnd lists the features ampnode advertises',
  async () => {
    steady = await h.startAmpnode({ name: 'steady', chain: { p2p: btcd }, host: '127.0.0.2' });
    await lnd.cli(['connect', steady.uri], 30_000);
    steadySince = Date.now();
    const p = await waitFor(lndPeer(steady.nodeId), { timeoutMs: 20_000, what: 'lnd listing ampnode' });
    assert.equal(p.inbound, false, 'lnd dialled out');
    assert.equal(p.address, steady.address);
    // Exactly the bits the daemon (with channels, as `start` runs by default) puts in its init, each known to lnd.
    const advertised = localFeatures(withChannelFeatures(FEATURE_TABLE)).bits();
    assert.deepEqual(bitsOf(p), advertised, `lnd's view ${JSON.stringify(p.features)}`);
    for (const bit of advertised) assert.equal(p.features[String(bit)]?.is_known, true, `lnd knows bit ${bit}`);
    // ampnode parsed lnd's 253-byte init (bit 2023) and completed the exchange with it.
    const got = await steady.waitForLog(connectedTo(lnd.nodeId), { timeoutMs: 10_000 });
    const lndBits = featureBits(got['features']);
    assert.ok(lndBits.includes(2023), `lnd's init carries bit 2023: ${lndBits.join(',')}`);
    for (const bit of [0, 8, 12, 14]) assert.ok(lndBits.includes(bit), `lnd requires bit ${bit}`);
    assert.equal(steady.logs().filter((l) => l.level === 'error' || l.level === 50).length, 0);
  },
  { timeoutMs: 90_000 },
);

h.test(
  'ampnode → lnd: --connect succeeds and both sides see each other',
  async () => {
    const dialer = await h.startAmpnode({ name: 'dialer', chain: { p2p: btcd }, connect: [`${lnd.nodeId}@${lnd.p2pHost}`] });
    const p = await waitFor(lndPeer(dialer.nodeId), { timeoutMs: 20_000, what: 'lnd listing the dialling ampnode' });
    assert.equal(p.inbound, true);
    await dialer.waitForLog(connectedTo(lnd.nodeId), { timeoutMs: 20_000 });
    assert.equal(await dialer.stop('SIGINT'), 0, 'clean exit on SIGINT');
    await waitFor(gone(dialer.nodeId), { timeoutMs: 20_000, what: 'lnd dropping the stopped ampnode' });
  },
  { timeoutMs: 90_000 },
);

h.test(
  'lnd disconnect, then lnd connects again',
  async () => {
    const a = await h.startAmpnode({ name: 'flappy', chain: { p2p: btcd } });
    await lnd.cli(['connect', a.uri], 30_000);
    await waitFor(lndPeer(a.nodeId), { timeoutMs: 20_000, what: 'first connection' });
    await a.waitForLog(connectedTo(lnd.nodeId), { timeoutMs: 10_000 });
    await lnd.cli(['disconnect', a.nodeId]);
    await waitFor(gone(a.nodeId), { timeoutMs: 20_000, what: 'lnd dropping ampnode' });
    await a.waitForLog(disconnectedFrom(lnd.nodeId), { timeoutMs: 20_000 });
    await lnd.cli(['connect', a.uri], 30_000);
    await waitFor(lndPeer(a.nodeId), { timeoutMs: 20_000, what: 'second connection' });
    await waitFor(() => a.logs().filter(connectedTo(lnd.nodeId)).length === 2, {
      timeoutMs: 10_000,
      what: 'ampnode seeing the second connection',
    });
    assert.ok(a.alive);
  },
  { timeoutMs: 120_000 },
);

h.test(
  'after ampnode restarts, lnd reconnects to it as a persistent peer',
  async () => {
    const a = await h.startAmpnode({ name: 'restarting', chain: { p2p: btcd } });
    await lnd.cli(['connect', '--perm', a.uri], 30_000);
    await waitFor(lndPeer(a.nodeId), { timeoutMs: 20_000, what: 'persistent connection' });
    assert.equal(await a.stop('SIGTERM'), 0, 'clean exit on SIGTERM');
    await waitFor(gone(a.nodeId), { timeoutMs: 20_000, what: 'lnd noticing the restart' });
    const b = await a.restart();
    assert.equal(b.nodeId, a.nodeId, 'node key kept in the data dir');
    const p = await waitFor(lndPeer(b.nodeId), { timeoutMs: 90_000, what: 'lnd reconnecting on its own' });
    assert.equal(p.inbound, false);
    await b.waitForLog(connectedTo(lnd.nodeId), { timeoutMs: 10_000 });
  },
  { timeoutMs: 180_000 },
);

h.test(
  'the first connection stays up over two 60 s ping periods, and pings both ways are answered',
  async () => {
    const left = steadySince + TWO_PING_CYCLES_MS - Date.now();
    // Watch the connection while the cycles run: it must never drop.
    const deadline = Date.now() + Math.max(0, left);
    while (Date.now() < deadline) {
      assert.ok(await lnd.peer(steady.nodeId), 'lnd still lists ampnode');
      await sleep(Math.min(10_000, Math.max(0, deadline - Date.now())));
    }
    const p = await lnd.peer(steady.nodeId);
    assert.ok(p, 'still connected after two ping cycles');
    assert.equal(steady.logs().filter(connectedTo(lnd.nodeId)).length, 1, 'one connection, never re-established');
    assert.equal(steady.logs().filter(disconnectedFrom(lnd.nodeId)).length, 0);
    // lnd pinged every 60 s with a random num_pong_bytes (1..4096); ampnode answered each with exactly that
    // many bytes (lnd fails the connection on a wrong length) and lnd measured the round trip.
    const wire = lnd.pingLog(steady.nodeId);
    assert.ok(wire.pingsSent >= 2, `lnd sent ${wire.pingsSent} pings`);
    assert.ok(
      wire.pongsReceived.length >= 2 && wire.pongsReceived.length >= wire.pingsSent - 1,
      `lnd got ${wire.pongsReceived.length} pongs for ${wire.pingsSent} pings`,
    );
    assert.ok(
      wire.pongsReceived.every((n) => n >= 1 && n <= 4096),
      `pong sizes ${wire.pongsReceived.join(',')}`,
    );
    assert.ok(BigInt(p.ping_time) > 0n, `lnd ping_time ${p.ping_time}`);
    // ampnode's own pings (every 60 s, random num_pong_bytes up to 4096; it drops a peer whose pong is late
    // or of the wrong length) were answered by lnd, as both sides record.
    const peers = await steady.api<PeerStats[]>('GET', '/v1/peers');
    const mine = peers.find((x) => x.nodeId === lnd.nodeId);
    assert.ok(mine, `ampnode lists lnd: ${JSON.stringify(peers)}`);
    assert.ok(mine.pingsSent >= 2, `ampnode sent ${mine.pingsSent} pings`);
    assert.ok(
      mine.pongsReceived >= 2 && mine.pongsReceived >= mine.pingsSent - 1,
      `lnd answered ${mine.pongsReceived} of ${mine.pingsSent} pings`,
    );
    assert.ok(
      wire.pingsReceived >= 2 && wire.pongsSent.length >= 2,
      `lnd saw ${wire.pingsReceived} pings, sent ${wire.pongsSent.length} pongs`,
    );
    assert.ok(
      mine.pingsReceived >= wire.pingsSent - 1 && mine.pongsSent === mine.pingsReceived,
      `ampnode answered ${mine.pongsSent}/${mine.pingsReceived} lnd pings`,
    );
    process.stderr.write(
      `ping cycles over ${Math.round((Date.now() - steadySince) / 1000)} s: lnd→ampnode pings ${wire.pingsSent} (pongs ${wire.pongsReceived.length}), ` +
        `ampnode→lnd pings ${mine.pingsSent} (pongs ${mine.pongsReceived})\n`,
    );
  },
  { timeoutMs: TWO_PING_CYCLES_MS + 120_000 },
);

/**
 * Feature bits from the daemon's log field: a list of numbers, "bit:name,..." (FeatureVector.toString)
 * or a hex feature field.
 */
function featureBits(v: unknown): number[] {
  if (Array.isArray(v)) return v.map(Number);
  const s = String(v);
  if (/^\d+(:[^,]*)?(,\d+(:[^,]*)?)*$/.test(s)) return s.split(',').map((x) => Number(x.split(':')[0]));
  assert.match(s, /^([0-9a-f]{2})*$/, `feature field ${s}`);
  const bytes = Buffer.from(s, 'hex');
  const bits: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[bytes.length - 1 - i] ?? 0;
    for (let b = 0; b < 8; b++) if (byte & (1 << b)) bits.push(i * 8 + b);
  }
  return bits;
}
