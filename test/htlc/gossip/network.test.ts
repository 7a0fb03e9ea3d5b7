/**
 * Six nodes that learn the public graph by gossip alone: each has a graph store, a sync machine per peer and a relay
 * queue, joined by an in-memory message bus that carries encoded bytes (no sockets). Channels are announced with
 * real signatures by keys made here, their funding outputs are in a shared fake chain. Five nodes connect and sync,
 * then refresh their updates, which the relay queues carry across the network; the sixth joins late and learns the
 * whole graph by range sync from its one peer. Every node's graph then agrees on every node, channel and update.
 * A forged signature, an announcement of a funding output that does not exist, one of a spent output and a stale
 * update are each dropped, never stored, never relayed. A graph reloaded from its store is the same without a sync,
 * and pathfinding finds a multi-hop route over the learnt graph.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openMemoryStore, type KvStore } from '../../../db/store.js';
import {
  defaultSyncConfig,
  GossipGraph,
  initialSyncState,
  RelayQueue,
  syncStep,
  type ApplyOutcome,
  type SyncMessage,
  type SyncState,
} from '../../../htlc/gossip/index.js';
import { isRouteError, PathFinder } from '../../../htlc/router/index.js';
import { bytesToHex } from '../../../wire/bytes.js';
import { FeatureVector } from '../../../wire/features.js';
import {
  decodeGossipMessage,
  encodeGossipMessage,
  makeShortChannelId,
  type ChannelUpdate,
  type GossipMessage,
} from '../../../wire/gossip.js';
import {
  FakeChain,
  makeChannel,
  makeNode,
  makeNodeAnnouncement,
  makeUpdate,
  NOW_SEC,
  REGTEST,
  type TestChannel,
  type TestNode,
} from './fixtures.js';

const FEATURES = FeatureVector.fromBits([7]).encode();
const config = { ...defaultSyncConfig(REGTEST), batchSize: 3 };
const typeOf = (m: SyncMessage): number => ('type' in m ? m.type : 258);

interface Sim {
  key: TestNode;
  store: KvStore;
  graph: GossipGraph;
  relay: RelayQueue;
  peers: Map<number, SyncState>;
  refused: ApplyOutcome[];
}

class Network {
  readonly nodes: Sim[] = [];
  private readonly bus: { from: number; to: number; bytes: Uint8Array }[] = [];
  nowSec = NOW_SEC;
  delivered = 0;

  constructor(readonly chain: FakeChain) {}

  async add(key: TestNode): Promise<number> {
    const store = await openMemoryStore();
    this.nodes.push({
      key,
      store,
      graph: new GossipGraph(store, { chainHash: REGTEST, chain: this.chain }),
      relay: new RelayQueue(),
      peers: new Map(),
      refused: [],
    });
    return this.nodes.length - 1;
  }

  /** A node's own gossip: applied to its graph as its own, and queued for its peers. */
  own(i: number, msgs: GossipMessage[] | ChannelUpdate[]): void {
    const n = this.nodes[i]!;
    for (const m of msgs) {
      const r = n.graph.apply(m as never, this.nowSec);
      assert.equal(r.kind, 'accept', `own gossip refused: ${JSON.stringify(r)}`);
      n.relay.enqueue(m as SyncMessage);
    }
  }

  send(from: number, to: number, msgs: readonly SyncMessage[]): void {
    for (const m of msgs) {
      const tagged = ('type' in m ? m : { ...m, type: 258 }) as GossipMessage;
      this.bus.push({ from, to, bytes: encodeGossipMessage(tagged) });
    }
  }

  connect(a: number, b: number): void {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = syncStep(
        initialSyncState(),
        { kind: 'connected', remoteFeatures: FEATURES, localFeatures: FEATURES, nowSec: this.nowSec },
        this.nodes[x]!.graph,
        config,
      );
      this.nodes[x]!.peers.set(y, r.state);
      this.send(x, y, r.send);
    }
  }

  /** Delivers everything on the bus (and what it causes), in order. */
  run(): void {
    while (this.bus.length > 0) {
      const { from, to, bytes } = this.bus.shift()!;
      this.delivered++;
      const n = this.nodes[to]!;
      const m = decodeGossipMessage(bytes);
      const t = typeOf(m);
      if (t === 256 || t === 257 || t === 258) {
        const r = n.graph.apply(m as never, this.nowSec, String(from));
        if (r.kind === 'accept') n.relay.enqueue(m, String(from));
        else n.refused.push(r);
        for (const u of n.graph.takeReplayed()) n.relay.enqueue(u, String(from));
      }
      const state = n.peers.get(from);
      if (state === undefined) continue;
      const r = syncStep(state, { kind: 'message', message: m, nowSec: this.nowSec }, n.graph, config);
      n.peers.set(from, r.state);
      this.send(to, from, r.send);
    }
  }

  /** One staggered broadcast: every node flushes its relay queue, and the bus is run. */
  flushAll(): void {
    for (const [i, n] of this.nodes.entries()) {
      const peers = [...n.peers].map(([id, sync]) => ({ id: String(id), sync }));
      for (const [peer, msgs] of n.relay.flush(peers)) this.send(i, Number(peer), msgs);
    }
    this.run();
  }

  settle(): void {
    for (let round = 0; round < 20; round++) {
      this.run();
      if (this.nodes.every((n) => n.relay.queued === 0)) return;
      this.flushAll();
    }
    assert.fail('gossip did not settle');
  }
}

function snapshot(g: GossipGraph): string {
  const lines: string[] = [];
  for (const scid of g.shortChannelIds()) {
    const c = g.channel(scid)!;
    const ups = c.updates.map((u) => (u === undefined ? '-' : `${u.timestamp}/${u.feeBaseMsat}`)).join(' ');
    lines.push(`${scid} ${c.nodeId1} ${c.nodeId2} ${c.capacitySat} ${ups}`);
  }
  for (const n of [...g.nodes()].sort()) lines.push(`${n} ${g.nodeAnnouncement(n)?.timestamp ?? '-'}`);
  return lines.join('\n');
}

describe('six nodes learn the graph by gossip alone', () => {
  it('agree on every node and channel, drop what is invalid, reload without sync, and route over it', async () => {
    const chain = new FakeChain();
    const net = new Network(chain);
    const keys = Array.from({ length: 6 }, () => makeNode());
    for (const k of keys) await net.add(k);
    // 0–1, 1–2, 2–3, 3–4, 4–0, 1–3, 4–5: a ring of five with a chord, and 5 hanging off 4
    const pairs: [number, number][] = [
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 0],
      [1, 3],
      [4, 5],
    ];
    const chans: TestChannel[] = pairs.map(([a, b], i) =>
      makeChannel(keys[a]!, keys[b]!, makeShortChannelId(1000 + i, 1, 0), { chain, capacitySat: 1_000_000n + BigInt(i) }),
    );
    const endsOf = (ch: TestChannel): number[] => [keys.indexOf(ch.node1), keys.indexOf(ch.node2)];
    const ownOf = (i: number, ts: number, fee: number): GossipMessage[] => {
      const out: GossipMessage[] = [];
      for (const ch of chans) {
        const ends = endsOf(ch);
        if (!ends.includes(i)) continue;
        out.push(ch.ann);
      }
      return out.concat(
        chans
          .filter((ch) => endsOf(ch).includes(i))
          .map((ch) => ({ ...makeUpdate(ch, ch.node1 === keys[i] ? 0 : 1, ts, { feeBaseMsat: fee }), type: 258 as const })),
        [makeNodeAnnouncement(keys[i]!, ts, `node${i}`, FeatureVector.fromBits([9, 15]).encode())],
      );
    };

    // 1. each node knows its own channels; nodes 0–4 connect to their channel peers and sync
    const t0 = NOW_SEC - 1000;
    for (let i = 0; i < 6; i++) {
      const own = ownOf(i, t0, 1000 + i);
      for (const m of own) {
        const r = net.nodes[i]!.graph.apply(m as never, net.nowSec);
        assert.ok(r.kind === 'accept' || (r.kind === 'ignore' && r.reason === 'duplicate'));
        if (r.kind === 'accept') net.nodes[i]!.relay.enqueue(m);
      }
    }
    for (const [a, b] of pairs) if (a !== 5 && b !== 5) net.connect(a, b);
    net.settle();
    for (let i = 0; i < 5; i++) for (const s of net.nodes[i]!.peers.values()) assert.equal(s.phase, 'synced');

    // 2. every node refreshes its updates and its announcement: the relay queues carry them across
    net.nowSec += 600;
    for (let i = 0; i < 6; i++)
      net.own(
        i,
        ownOf(i, net.nowSec - 1, 2000 + i).filter((m) => m.type !== 256),
      );
    net.settle();

    // 3. node 5 joins late: its one peer's range replies give it the rest
    net.connect(4, 5);
    net.settle();

    const ref = snapshot(net.nodes[0]!.graph);
    assert.equal(net.nodes[0]!.graph.channelCount, 7);
    assert.equal(net.nodes[0]!.graph.nodeCount, 6);
    for (const n of net.nodes) {
      assert.equal(snapshot(n.graph), ref);
      assert.equal(n.graph.nodeAnnouncementCount, 6);
      for (const scid of n.graph.shortChannelIds())
        for (const u of n.graph.channel(scid)!.updates) assert.equal(u?.timestamp, net.nowSec - 1);
    }

    // 4. invalid gossip from node 3 to node 2: each dropped, never stored, never relayed
    const before = net.nodes.map((n) => snapshot(n.graph));
    const forged = makeChannel(keys[0]!, keys[5]!, makeShortChannelId(2000, 1, 0), { chain });
    const forgedAnn = { ...forged.ann, nodeSignature1: forged.ann.nodeSignature2 };
    const missing = makeChannel(keys[0]!, keys[2]!, makeShortChannelId(2001, 1, 0));
    const spent = makeChannel(keys[0]!, keys[3]!, makeShortChannelId(2002, 1, 0), { chain });
    chain.spend(spent.ann.shortChannelId);
    const stale = { ...makeUpdate(chans[0]!, 0, net.nowSec - 2, { feeBaseMsat: 9 }), type: 258 as const };
    const refusedBefore = net.nodes[2]!.refused.length;
    net.send(3, 2, [forgedAnn, missing.ann, spent.ann, stale]);
    net.settle();
    const refused = net.nodes[2]!.refused.slice(refusedBefore);
    assert.deepEqual(refused, [
      { kind: 'reject', reason: 'bad_node_signature', warnPeer: true },
      { kind: 'ignore', reason: 'funding_missing' },
      { kind: 'ignore', reason: 'funding_spent' },
      { kind: 'ignore', reason: 'stale' },
    ]);
    assert.deepEqual(
      net.nodes.map((n) => snapshot(n.graph)),
      before,
    );
    for (const n of net.nodes) for (const c of [forged, missing, spent]) assert.equal(n.graph.channel(c.ann.shortChannelId), undefined);

    // 5. node 5's graph, reloaded from its store, is the same graph: no sync needed
    await net.nodes[5]!.graph.flush();
    const reloaded = await GossipGraph.load(net.nodes[5]!.store, { chainHash: REGTEST, chain });
    assert.equal(snapshot(reloaded), ref);

    // 6. from node 2 to node 5: at least 2–3–4–5 or 2–1–0–4–5, over channels node 2 learnt by gossip
    const finder = new PathFinder({ graph: reloaded });
    const route = finder.findRoute(
      {
        source: keys[2]!.hex,
        target: keys[5]!.hex,
        amountMsat: 50_000_000n,
        finalCltvDelta: 18,
        currentHeight: 800_000,
        feeLimitMsat: 1_000_000n,
        cltvLimit: 2016,
        routeHints: [],
      },
      net.nowSec * 1000,
    );
    assert.ok(
      !isRouteError(route),
      JSON.stringify(route, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
    );
    assert.ok(route.hops.length >= 3, `a multi-hop route, got ${route.hops.length} hops`);
    assert.equal(bytesToHex(route.hops.at(-1)!.pubkey), keys[5]!.hex);
    assert.equal(route.hops.at(-1)!.shortChannelId, chans[6]!.ann.shortChannelId);
    assert.ok(route.totalAmountMsat > 50_000_000n, 'the intermediate hops charge their fees');
  });
});
