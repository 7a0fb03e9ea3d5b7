/**
 * BOLT 7 gossip benchmarks (suite "gossip").
 *
 * channel_announcement_validate: validateChannelAnnouncement of a well-signed announcement of a channel we do not
 * hold, whose funding output the (in-memory) chain has, in announcements/s. Bound: four raw secp256k1 verifications
 * (`secp.verify` of the four signatures over the same digest), counted as one unit per four, measured in the same
 * run: what validating an announcement cannot avoid. The rest of the value's cost is the digest, the funding script
 * and the comparisons.
 *
 * A synthetic graph of 15 000 nodes and 80 000 channels (both directions updated, every node announced), written
 * in the graph store's record format into a memory store, then:
 *   graph_load: GossipGraph.load of the whole store, in channels/s. Bound: reading the same store's entries
 *     without decoding them, in channels/s (the store iteration load cannot avoid).
 *   graph_heap: the heap the loaded graph holds, in MB. Bound: the bytes of its records in the store, in MB
 *     (so ratio = heap per stored byte; lower is better, unlike the other cases).
 *   pathfind_p50 / pathfind_p99: PathFinder.findRoute between random pairs of nodes, in ms (lower is better).
 *     Bound: one walk over every edge of the graph through `edgesTo` from every node (what a Dijkstra over the
 *     whole graph touches at least), in ms, so ratio = route time / full walk time.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fundingWitnessScript, p2wsh } from '../../htlc/bolt3/scripts.js';
import {
  channelRecordOp,
  GossipGraph,
  nodeRecordOp,
  updateRecordOp,
  validateChannelAnnouncement,
  type FundingOutput,
  type GossipView,
} from '../../htlc/gossip/index.js';
import { isRouteError, PathFinder } from '../../htlc/router/index.js';
import { openMemoryStore } from '../../db/store.js';
import type { BatchOp } from '../../db/store.js';
import { bytesToHex, compareBytes } from '../../wire/bytes.js';
import { publicKeyFromPrivate, randomBytes, randomPrivateKey, secp } from '../../wire/crypto.js';
import {
  aliasBytes,
  channelAnnouncementDigest,
  makeShortChannelId,
  MESSAGE_FLAG_MUST_BE_ONE,
  type ChannelAnnouncement,
  type ChannelUpdate,
} from '../../wire/gossip.js';
import { compare, emit } from './harness.js';

const SUITE = 'gossip';
const CHAIN = new Uint8Array(32).fill(6);
const NODES = 15_000;
const CHANNELS = 80_000;
const PATH_QUERIES = 60;
const NOW_SEC = 1_800_000_000;

function validateCase(): void {
  const privs = [randomPrivateKey(), randomPrivateKey(), randomPrivateKey(), randomPrivateKey()];
  const pubs = privs.map(publicKeyFromPrivate);
  const [n1, n2] = compareBytes(pubs[0]!, pubs[1]!) < 0 ? [0, 1] : [1, 0];
  const base: ChannelAnnouncement = {
    type: 256,
    nodeSignature1: new Uint8Array(64),
    nodeSignature2: new Uint8Array(64),
    bitcoinSignature1: new Uint8Array(64),
    bitcoinSignature2: new Uint8Array(64),
    features: new Uint8Array(),
    chainHash: CHAIN,
    shortChannelId: makeShortChannelId(800_000, 1, 0),
    nodeId1: pubs[n1]!,
    nodeId2: pubs[n2]!,
    bitcoinKey1: pubs[2]!,
    bitcoinKey2: pubs[3]!,
  };
  const d = channelAnnouncementDigest(base);
  const ann: ChannelAnnouncement = {
    ...base,
    nodeSignature1: secp.sign(d, privs[n1]!),
    nodeSignature2: secp.sign(d, privs[n2]!),
    bitcoinSignature1: secp.sign(d, privs[2]!),
    bitcoinSignature2: secp.sign(d, privs[3]!),
  };
  const out: FundingOutput = {
    scriptPubKey: p2wsh(fundingWitnessScript(ann.bitcoinKey1, ann.bitcoinKey2)),
    valueSat: 1_000_000n,
    spent: false,
  };
  const view: GossipView = {
    channel: () => undefined,
    updateTimestamp: () => undefined,
    nodeTimestamp: () => undefined,
    hasChannels: () => false,
  };
  const ctx = { chainHash: CHAIN, chain: { lookupFundingOutput: () => out }, view, nowSec: NOW_SEC };
  let sink = 0;
  const value = (): void => {
    if (validateChannelAnnouncement(ann, ctx).kind === 'accept') sink++;
  };
  const pairs: [Uint8Array, Uint8Array][] = [
    [ann.nodeSignature1, ann.nodeId1],
    [ann.nodeSignature2, ann.nodeId2],
    [ann.bitcoinSignature1, ann.bitcoinKey1],
    [ann.bitcoinSignature2, ann.bitcoinKey2],
  ];
  const bound = (): void => {
    for (const [sig, pub] of pairs) if (secp.verify(sig, d, pub)) sink++;
  };
  const r = compare(value, bound, 10, 200);
  if (sink === 0) throw new Error('nothing verified');
  emit(SUITE, 'channel_announcement_validate', 'announcements/s', r.value, r.bound);
}

/** A random-looking but well-formed node id (the graph does not check the point at load). */
function fakeNodeId(): Uint8Array {
  const b = randomBytes(33);
  b[0] = 2 + (b[0]! & 1);
  return b;
}

function syntheticOps(): { ops: BatchOp[]; nodes: string[] } {
  const ids = Array.from({ length: NODES }, fakeNodeId);
  const sig = new Uint8Array(64).fill(1);
  const ops: BatchOp[] = [];
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < CHANNELS; i++) {
    // a connected backbone (i → i + 1) and random chords
    const a = i < NODES - 1 ? i : rand(NODES);
    let b = i < NODES - 1 ? i + 1 : rand(NODES);
    if (b === a) b = (a + 1) % NODES;
    const [x, y] = compareBytes(ids[a]!, ids[b]!) < 0 ? [ids[a]!, ids[b]!] : [ids[b]!, ids[a]!];
    const scid = makeShortChannelId(500_000 + Math.floor(i / 10), i % 10, 0);
    const ann: ChannelAnnouncement = {
      type: 256,
      nodeSignature1: sig,
      nodeSignature2: sig,
      bitcoinSignature1: sig,
      bitcoinSignature2: sig,
      features: new Uint8Array(),
      chainHash: CHAIN,
      shortChannelId: scid,
      nodeId1: x,
      nodeId2: y,
      bitcoinKey1: x,
      bitcoinKey2: y,
    };
    ops.push(channelRecordOp(ann, 5_000_000n + BigInt(rand(1_000_000)), NOW_SEC));
    for (const dir of [0, 1]) {
      const u: ChannelUpdate = {
        signature: sig,
        chainHash: CHAIN,
        shortChannelId: scid,
        timestamp: NOW_SEC - rand(1000),
        messageFlags: MESSAGE_FLAG_MUST_BE_ONE,
        channelFlags: dir,
        cltvExpiryDelta: 40 + rand(100),
        htlcMinimumMsat: 1000n,
        feeBaseMsat: rand(2000),
        feeProportionalMillionths: rand(1000),
        htlcMaximumMsat: 4_000_000_000n,
      };
      ops.push(updateRecordOp(u));
    }
  }
  for (const id of ids)
    ops.push(
      nodeRecordOp({
        type: 257,
        signature: sig,
        features: new Uint8Array(),
        timestamp: NOW_SEC,
        nodeId: id,
        rgbColor: new Uint8Array(3),
        alias: aliasBytes('n'),
        addresses: [],
      }),
    );
  return { ops, nodes: ids.map(bytesToHex) };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function graphCases(): Promise<void> {
  const store = await openMemoryStore();
  const { ops, nodes } = syntheticOps();
  let storedBytes = 0;
  for (const op of ops) if (op.type === 'put') storedBytes += op.key.length + op.value.length;
  for (let i = 0; i < ops.length; i += 10_000) await store.batch(ops.slice(i, i + 10_000));
  const config = { chainHash: CHAIN, chain: { lookupFundingOutput: () => undefined } };

  const records = ops.length;
  ops.length = 0;

  // the heap first, with nothing else alive: a full collection before each reading
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const base = process.memoryUsage().heapUsed;
  let graph = await GossipGraph.load(store, config);
  gc();
  const heapMb = (process.memoryUsage().heapUsed - base) / 2 ** 20;
  if (graph.channelCount !== CHANNELS) throw new Error('graph did not load');

  let rawMs = Infinity;
  let loadMs = Infinity;
  for (let round = 0; round < 3; round++) {
    let t = performance.now();
    let n = 0;
    for (const prefix of ['c/', 'u/', 'n/']) for await (const _e of store.entries(new TextEncoder().encode(prefix))) n++;
    rawMs = Math.min(rawMs, performance.now() - t);
    if (n !== records) throw new Error(`read ${n} of ${records} records`);
    t = performance.now();
    graph = await GossipGraph.load(store, config);
    loadMs = Math.min(loadMs, performance.now() - t);
  }
  emit(SUITE, 'graph_load', 'channels/s', (CHANNELS * 1000) / loadMs, (CHANNELS * 1000) / rawMs);
  emit(SUITE, 'graph_heap', 'MB', heapMb, storedBytes / 2 ** 20);

  const finder = new PathFinder({ graph });
  const g = graph;
  let walkMs = Infinity;
  for (let round = 0; round < 3; round++) {
    const t = performance.now();
    let edges = 0;
    for (const n of nodes) for (const _e of g.edgesTo(n)) edges++;
    walkMs = Math.min(walkMs, performance.now() - t);
    if (edges !== 2 * CHANNELS) throw new Error(`walked ${edges} edges`);
  }
  const times: number[] = [];
  let found = 0;
  let seed = 99;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let q = 0; q < PATH_QUERIES; q++) {
    const source = nodes[rand(NODES)]!;
    let target = nodes[rand(NODES)]!;
    if (target === source) target = nodes[(nodes.indexOf(source) + 1) % NODES]!;
    const t = performance.now();
    const r = finder.findRoute(
      {
        source,
        target,
        amountMsat: 10_000_000n,
        finalCltvDelta: 18,
        currentHeight: 800_000,
        feeLimitMsat: 1_000_000_000n,
        cltvLimit: 5000,
        routeHints: [],
        maxHops: 27,
      },
      NOW_SEC * 1000,
    );
    times.push(performance.now() - t);
    if (!isRouteError(r)) found++;
  }
  if (found === 0) throw new Error('no route found between any pair');
  times.sort((a, b) => a - b);
  emit(SUITE, 'pathfind_p50', 'ms', percentile(times, 50), walkMs);
  emit(SUITE, 'pathfind_p99', 'ms', percentile(times, 99), walkMs);
}

export async function run(): Promise<void> {
  validateCase();
  await graphCases();
}
