/**
 * The public channel graph learnt from gossip (lnd's graph/ in small): channel announcements with the capacity of
 * their funding output, each direction's latest channel_update, node announcements. It is the `GossipView` the
 * validator reads and the `RoutingGraph` pathfinding walks, and it answers the queries of `sync.ts`.
 *
 * `apply` validates (validate.ts) and, when a message is accepted, stores it in memory at once and queues its write;
 * `flush` writes what is queued in one batch. `GossipGraph.load` reads it all back at start, without checking the
 * signatures again (only what passed them was ever written). Records in the store (keys are text):
 *
 *   c/<scid, 16 hex>        u64 capacity_sat | u32 received_at (s) | the channel_announcement payload
 *   u/<scid, 16 hex>/<0|1>  the channel_update payload of that direction
 *   n/<node id, 66 hex>     the node_announcement payload
 *
 * Bounds on what peers can make us hold: at most `maxChannels` channels and `maxNodes` node announcements in all,
 * and per peer at most `maxNewPerPeerPerInterval` new announcements and `maxUpdatesPerPeerPerInterval` updates in
 * each `rateIntervalSec` (further ones are ignored as `rate_limited`, so a peer cannot flood us faster than that).
 * An update that comes before its channel's announcement (from a peer) is kept, at most MAX_PREMATURE_UPDATES of
 * them, and applied when the announcement is accepted (`takeReplayed` hands those out for relaying).
 * Pruning: channels whose funding output is spent (`channelSpent`, or `pruneSpent` asking the chain), directions
 * whose latest update is older than two weeks, and channels both of whose directions are (BOLT 7; lnd's rule too).
 */
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex, hexToBytes, Reader, Writer } from '../../wire/bytes.js';
import { AmpnodeError } from '../../wire/errors.js';
import {
  channelAnnouncementCodec,
  CHANNEL_FLAG_DIRECTION,
  decodeChannelUpdate,
  encodeChannelUpdate,
  nodeAnnouncementCodec,
  shortChannelIdParts,
  type ChannelAnnouncement,
  type ChannelUpdate,
  type NodeAnnouncement,
} from '../../wire/gossip.js';
import { dropIndexedEdge, edgePolicyOf, indexedEdges } from '../router/graph.js';
import type { DirectedEdge, NodeIdHex, RoutingGraph } from '../router/interfaces.js';
import {
  STALE_UPDATE_AGE_SEC,
  validateChannelAnnouncement,
  validateChannelUpdate,
  validateNodeAnnouncement,
  type Direction,
  type GossipChain,
  type GossipOutcome,
  type GossipView,
  type IgnoreReason,
  type KnownChannel,
} from './validate.js';

export class GossipGraphError extends AmpnodeError<'ERR_GRAPH_CORRUPT'> {}

/** What the graph store needs of `db/`. */
export type GraphKvStore = Pick<KvStore, 'batch' | 'entries'>;

export interface GossipGraphConfig {
  chainHash: Uint8Array;
  chain: GossipChain;
  maxChannels: number;
  maxNodes: number;
  rateIntervalSec: number;
  maxNewPerPeerPerInterval: number;
  maxUpdatesPerPeerPerInterval: number;
}

/** Room for today's public network (about 15 000 nodes and 50 000 channels) several times over. */
export const DEFAULT_GRAPH_LIMITS = {
  maxChannels: 500_000,
  maxNodes: 200_000,
  rateIntervalSec: 60,
  maxNewPerPeerPerInterval: 100_000,
  maxUpdatesPerPeerPerInterval: 200_000,
} as const;

export interface ChannelRecord extends KnownChannel {
  shortChannelId: bigint;
  /** The channel_announcement payload, kept as bytes (one array, not ten) and decoded when asked for. */
  announcementPayload: Uint8Array;
  receivedAtSec: number;
  updates: [ChannelUpdate | undefined, ChannelUpdate | undefined];
}

/** What `apply` made of a message: validation's outcome, plus the graph's own limits. */
export type ApplyOutcome = GossipOutcome<unknown> | { kind: 'ignore'; reason: GraphIgnoreReason };
export type GraphIgnoreReason = IgnoreReason | 'rate_limited' | 'graph_full';

export type GraphMessage = ChannelAnnouncement | NodeAnnouncement | ChannelUpdate;

const enc = new TextEncoder();
const dec = new TextDecoder();
const scidHex = (scid: bigint): string => scid.toString(16).padStart(16, '0');
const channelKey = (scid: bigint): Uint8Array => enc.encode(`c/${scidHex(scid)}`);
const updateKey = (scid: bigint, d: Direction): Uint8Array => enc.encode(`u/${scidHex(scid)}/${d}`);
const nodeKey = (node: NodeIdHex): Uint8Array => enc.encode(`n/${node}`);
const CHANNEL_HEADER_BYTES = 12;
/** Updates kept for channels not yet announced: in all, and per channel (both directions, a newer one each). */
export const MAX_PREMATURE_UPDATES = 10_000;
const MAX_PREMATURE_PER_CHANNEL = 4;
const CHANNEL_ANNOUNCEMENT_SIGNATURES_BYTES = 4 * 64;
const HASH_BYTES = 32;
const PUBKEY_BYTES = 33;
const MAX_TIMESTAMP_RANGE = 0xffffffff;

interface PeerCounter {
  window: number;
  announcements: number;
  updates: number;
}

function isChannelUpdate(m: GraphMessage): m is ChannelUpdate {
  return !('type' in m) || (m as { type: number }).type === 258;
}

export class GossipGraph implements GossipView, RoutingGraph {
  private readonly channels = new Map<bigint, ChannelRecord>();
  private readonly nodeChannels = new Map<NodeIdHex, { id: NodeIdHex; channels: Set<bigint> }>();
  private readonly nodeAnns = new Map<NodeIdHex, NodeAnnouncement>();
  private readonly byFrom = new Map<NodeIdHex, Map<bigint, DirectedEdge>>();
  private readonly byTo = new Map<NodeIdHex, Map<bigint, DirectedEdge>>();
  private readonly peers = new Map<string, PeerCounter>();
  /** Updates of channels not (yet) announced, by short_channel_id, oldest first (lnd's premature updates). */
  private readonly premature = new Map<bigint, ChannelUpdate[]>();
  private prematureCount = 0;
  private replayed: ChannelUpdate[] = [];
  private sorted: bigint[] | undefined;
  private pending: BatchOp[] = [];
  readonly config: GossipGraphConfig;

  constructor(
    private readonly store: GraphKvStore,
    config: Pick<GossipGraphConfig, 'chainHash' | 'chain'> & Partial<GossipGraphConfig>,
  ) {
    this.config = { ...DEFAULT_GRAPH_LIMITS, ...config };
  }

  /** The graph as stored: channels, their updates, node announcements. */
  static async load(
    store: GraphKvStore,
    config: Pick<GossipGraphConfig, 'chainHash' | 'chain'> & Partial<GossipGraphConfig>,
  ): Promise<GossipGraph> {
    const g = new GossipGraph(store, config);
    try {
      for await (const [, v] of store.entries(enc.encode('c/'))) {
        const r = new Reader(v);
        const capacitySat = r.u64('capacity');
        const receivedAtSec = r.u32('received_at');
        g.addChannel(r.rest().slice(), capacitySat, receivedAtSec);
      }
      for await (const [k, v] of store.entries(enc.encode('u/'))) {
        const u = decodeChannelUpdate(v);
        u.chainHash = g.config.chainHash; // one copy for all (only updates of our chain are stored)
        const d = Number(dec.decode(k).slice(-1)) as Direction;
        if (g.channels.has(u.shortChannelId)) g.setUpdate(u, d);
      }
      for await (const [, v] of store.entries(enc.encode('n/'))) {
        const n = nodeAnnouncementCodec.decode(v);
        g.nodeAnns.set(bytesToHex(n.nodeId), n);
      }
    } catch (e) {
      throw new GossipGraphError('ERR_GRAPH_CORRUPT', `graph store unreadable: ${(e as Error).message}`, { cause: e });
    }
    return g;
  }

  // ---------------------------------------------------------------- GossipView

  channel(scid: bigint): ChannelRecord | undefined {
    return this.channels.get(scid);
  }
  updateTimestamp(scid: bigint, d: Direction): number | undefined {
    return this.channels.get(scid)?.updates[d]?.timestamp;
  }
  nodeTimestamp(node: NodeIdHex): number | undefined {
    return this.nodeAnns.get(node)?.timestamp;
  }
  hasChannels(node: NodeIdHex): boolean {
    return (this.nodeChannels.get(node)?.channels.size ?? 0) > 0;
  }

  // ---------------------------------------------------------------- RoutingGraph

  edgesTo(node: NodeIdHex): Iterable<DirectedEdge> {
    return this.byTo.get(node)?.values() ?? [];
  }
  edgesFrom(node: NodeIdHex): Iterable<DirectedEdge> {
    return this.byFrom.get(node)?.values() ?? [];
  }
  nodeFeatures(node: NodeIdHex): Uint8Array | undefined {
    const f = this.nodeAnns.get(node)?.features;
    return f === undefined || f.length === 0 ? undefined : f;
  }

  // ---------------------------------------------------------------- reading

  get channelCount(): number {
    return this.channels.size;
  }
  get nodeCount(): number {
    return this.nodeChannels.size;
  }
  get nodeAnnouncementCount(): number {
    return this.nodeAnns.size;
  }
  nodeAnnouncement(node: NodeIdHex): NodeAnnouncement | undefined {
    return this.nodeAnns.get(node);
  }
  /** Every node that is an end of a channel. */
  nodes(): IterableIterator<NodeIdHex> {
    return this.nodeChannels.keys();
  }
  /** Every short_channel_id, ascending. */
  shortChannelIds(): readonly bigint[] {
    this.sorted ??= [...this.channels.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.sorted;
  }
  /** The short_channel_ids whose funding block is in [first, first + count), ascending. */
  shortChannelIdsInBlocks(firstBlock: number, numberOfBlocks: number): bigint[] {
    const end = firstBlock + numberOfBlocks;
    return this.shortChannelIds().filter((s) => {
      const h = shortChannelIdParts(s).blockHeight;
      return h >= firstBlock && h < end;
    });
  }
  /**
   * What we would send a peer for a channel: its announcement, then its updates (BOLT 7: the announcement before
   * the updates, the node announcements after the channel's).
   */
  channelMessages(scid: bigint): (ChannelAnnouncement | ChannelUpdate)[] {
    const c = this.channels.get(scid);
    if (c === undefined) return [];
    const out: (ChannelAnnouncement | ChannelUpdate)[] = [channelAnnouncementCodec.decode(c.announcementPayload)];
    for (const u of c.updates) if (u !== undefined) out.push(u);
    return out;
  }
  /**
   * Everything with a timestamp in [first, first + range) for a gossip_timestamp_filter: each channel with an update
   * in the range (its announcement first), then node announcements in the range.
   */
  messagesInTimeRange(firstTimestamp: number, timestampRange: number): GraphMessage[] {
    const end = Math.min(firstTimestamp + timestampRange, MAX_TIMESTAMP_RANGE + 1);
    const inRange = (t: number): boolean => t >= firstTimestamp && t < end;
    const out: GraphMessage[] = [];
    for (const scid of this.shortChannelIds()) {
      const c = this.channels.get(scid)!;
      const ups = c.updates.filter((u): u is ChannelUpdate => u !== undefined && inRange(u.timestamp));
      if (ups.length === 0) continue;
      out.push(channelAnnouncementCodec.decode(c.announcementPayload), ...ups);
    }
    for (const n of this.nodeAnns.values()) if (inRange(n.timestamp)) out.push(n);
    return out;
  }

  // ---------------------------------------------------------------- writing

  /**
   * Validates a gossip message and, when it is accepted, stores it (in memory now, in the store at the next
   * `flush`). `peer` names the sender, for the per-peer limits (omit for our own messages).
   */
  apply(m: GraphMessage, nowSec: number, peer?: string): ApplyOutcome {
    const ctx = { chainHash: this.config.chainHash, chain: this.config.chain, view: this, nowSec };
    const counter = peer === undefined ? undefined : this.counter(peer, nowSec);
    if (isChannelUpdate(m)) {
      if (counter !== undefined && counter.updates >= this.config.maxUpdatesPerPeerPerInterval)
        return { kind: 'ignore', reason: 'rate_limited' };
      const r = validateChannelUpdate(m, ctx);
      if (r.kind === 'ignore' && r.reason === 'unknown_channel' && peer !== undefined) this.keepPremature(m);
      if (r.kind !== 'accept') return r;
      const u: ChannelUpdate = { ...m, chainHash: this.config.chainHash };
      delete (u as { type?: number }).type;
      this.setUpdate(u, r.value.direction);
      this.pending.push(updateRecordOp(u));
      if (counter !== undefined) counter.updates++;
      return r;
    }
    if (counter !== undefined && counter.announcements >= this.config.maxNewPerPeerPerInterval)
      return { kind: 'ignore', reason: 'rate_limited' };
    if (m.type === 256) {
      if (this.channels.size >= this.config.maxChannels && !this.channels.has(m.shortChannelId))
        return { kind: 'ignore', reason: 'graph_full' };
      const r = validateChannelAnnouncement(m, ctx);
      if (r.kind !== 'accept') return r;
      const op = channelRecordOp(m, r.value.capacitySat, nowSec);
      this.addChannel(op.value.subarray(CHANNEL_HEADER_BYTES), r.value.capacitySat, nowSec);
      this.pending.push(op);
      if (counter !== undefined) counter.announcements++;
      this.replayPremature(m.shortChannelId, nowSec);
      return r;
    }
    const node = bytesToHex(m.nodeId);
    if (this.nodeAnns.size >= this.config.maxNodes && !this.nodeAnns.has(node)) return { kind: 'ignore', reason: 'graph_full' };
    const r = validateNodeAnnouncement(m, ctx);
    if (r.kind !== 'accept') return r;
    this.nodeAnns.set(node, m);
    this.pending.push(nodeRecordOp(m));
    if (counter !== undefined) counter.announcements++;
    return r;
  }

  /** Writes what `apply` and the pruning queued, in one batch. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const ops = this.pending;
    this.pending = [];
    await this.store.batch(ops);
  }

  /** Writes queued and not yet flushed. */
  get pendingWrites(): number {
    return this.pending.length;
  }

  /** The funding output of a channel was spent (a block watcher saw it): the channel goes. */
  channelSpent(scid: bigint): boolean {
    const c = this.channels.get(scid);
    if (c === undefined) return false;
    this.removeChannel(c);
    return true;
  }

  /** Asks the chain about every channel and removes those whose funding output is spent or gone. */
  pruneSpent(): bigint[] {
    const gone: bigint[] = [];
    for (const c of [...this.channels.values()]) {
      const out = this.config.chain.lookupFundingOutput(c.shortChannelId);
      if (out === undefined || out.spent) {
        this.removeChannel(c);
        gone.push(c.shortChannelId);
      }
    }
    return gone;
  }

  /**
   * BOLT 7's two weeks: a direction whose latest update is older is no longer routed over, and a channel with no
   * direction newer (or, without any update, announced longer ago) is removed. Returns the channels removed.
   */
  pruneStale(nowSec: number): bigint[] {
    const horizon = nowSec - STALE_UPDATE_AGE_SEC;
    const gone: bigint[] = [];
    for (const c of [...this.channels.values()]) {
      let fresh = false;
      let hadUpdate = false;
      for (const d of [0, 1] as const) {
        const u = c.updates[d];
        if (u === undefined) continue;
        hadUpdate = true;
        if (u.timestamp < horizon) {
          c.updates[d] = undefined;
          this.unindexEdge(c, d);
          this.pending.push({ type: 'del', key: updateKey(c.shortChannelId, d) });
        } else fresh = true;
      }
      if (!fresh && (hadUpdate || c.receivedAtSec < horizon)) {
        this.removeChannel(c);
        gone.push(c.shortChannelId);
      }
    }
    return gone;
  }

  /**
   * The updates that arrived before their channel's announcement and were applied when it was accepted: the caller
   * relays them as it relays what `apply` accepts. Each is handed out once.
   */
  takeReplayed(): ChannelUpdate[] {
    const out = this.replayed;
    this.replayed = [];
    return out;
  }

  // ---------------------------------------------------------------- internals

  private keepPremature(u: ChannelUpdate): void {
    while (this.prematureCount >= MAX_PREMATURE_UPDATES) {
      const [oldest, list] = this.premature.entries().next().value as [bigint, ChannelUpdate[]];
      this.premature.delete(oldest);
      this.prematureCount -= list.length;
    }
    const list = this.premature.get(u.shortChannelId) ?? [];
    if (list.length >= MAX_PREMATURE_PER_CHANNEL) return;
    list.push(u);
    this.premature.set(u.shortChannelId, list);
    this.prematureCount++;
  }

  private replayPremature(scid: bigint, nowSec: number): void {
    const list = this.premature.get(scid);
    if (list === undefined) return;
    this.premature.delete(scid);
    this.prematureCount -= list.length;
    for (const u of list) if (this.apply(u, nowSec).kind === 'accept') this.replayed.push(u);
  }

  private counter(peer: string, nowSec: number): PeerCounter {
    const window = Math.floor(nowSec / this.config.rateIntervalSec);
    let c = this.peers.get(peer);
    if (c === undefined || c.window !== window) {
      if (c === undefined && this.peers.size > this.config.maxNodes) this.peers.clear();
      c = { window, announcements: 0, updates: 0 };
      this.peers.set(peer, c);
    }
    return c;
  }

  /** `payload`: a channel_announcement's, already validated (its ends are read at their fixed offsets). */
  private addChannel(payload: Uint8Array, capacitySat: bigint, receivedAtSec: number): void {
    const r = new Reader(payload);
    r.view(CHANNEL_ANNOUNCEMENT_SIGNATURES_BYTES, 'signatures');
    r.view(r.u16('len'), 'features');
    r.view(HASH_BYTES, 'chain_hash');
    const shortChannelId = r.u64('short_channel_id');
    const ends: NodeIdHex[] = [];
    for (const what of ['node_id_1', 'node_id_2']) {
      const hex = bytesToHex(r.view(PUBKEY_BYTES, what));
      let entry = this.nodeChannels.get(hex);
      if (entry === undefined) this.nodeChannels.set(hex, (entry = { id: hex, channels: new Set() }));
      entry.channels.add(shortChannelId);
      ends.push(entry.id); // one string per node, shared by its channels and edges
    }
    const rec: ChannelRecord = {
      shortChannelId,
      nodeId1: ends[0]!,
      nodeId2: ends[1]!,
      capacitySat,
      announcementPayload: payload,
      receivedAtSec,
      updates: [undefined, undefined],
    };
    this.channels.set(shortChannelId, rec);
    this.sorted = undefined;
  }

  private removeChannel(c: ChannelRecord): void {
    this.channels.delete(c.shortChannelId);
    this.sorted = undefined;
    this.pending.push({ type: 'del', key: channelKey(c.shortChannelId) });
    for (const d of [0, 1] as const) {
      this.unindexEdge(c, d);
      if (c.updates[d] !== undefined) this.pending.push({ type: 'del', key: updateKey(c.shortChannelId, d) });
    }
    for (const n of [c.nodeId1, c.nodeId2]) {
      const s = this.nodeChannels.get(n)?.channels;
      s?.delete(c.shortChannelId);
      if (s !== undefined && s.size === 0) {
        this.nodeChannels.delete(n);
        if (this.nodeAnns.delete(n)) this.pending.push({ type: 'del', key: nodeKey(n) });
      }
    }
  }

  private setUpdate(u: ChannelUpdate, d: Direction): void {
    const c = this.channels.get(u.shortChannelId)!;
    c.updates[d] = u;
    const from = d === 0 ? c.nodeId1 : c.nodeId2;
    const to = d === 0 ? c.nodeId2 : c.nodeId1;
    const edge: DirectedEdge = {
      shortChannelId: c.shortChannelId,
      from,
      to,
      capacitySat: c.capacitySat,
      policy: edgePolicyOf(u),
    };
    indexedEdges(this.byFrom, from).set(c.shortChannelId, edge);
    indexedEdges(this.byTo, to).set(c.shortChannelId, edge);
  }

  private unindexEdge(c: ChannelRecord, d: Direction): void {
    const from = d === 0 ? c.nodeId1 : c.nodeId2;
    const to = d === 0 ? c.nodeId2 : c.nodeId1;
    dropIndexedEdge(this.byFrom, from, c.shortChannelId);
    dropIndexedEdge(this.byTo, to, c.shortChannelId);
  }
}

/** The store record of a channel (see the file comment). */
export function channelRecordOp(ann: ChannelAnnouncement, capacitySat: bigint, receivedAtSec: number): Extract<BatchOp, { type: 'put' }> {
  const head = new Writer(CHANNEL_HEADER_BYTES).u64(capacitySat).u32(receivedAtSec).finish();
  const body = channelAnnouncementCodec.encode(ann);
  const value = new Uint8Array(head.length + body.length);
  value.set(head);
  value.set(body, head.length);
  return { type: 'put', key: channelKey(ann.shortChannelId), value };
}

/** The store record of a channel update, under its direction. */
export function updateRecordOp(u: ChannelUpdate): BatchOp {
  return { type: 'put', key: updateKey(u.shortChannelId, updateDirection(u)), value: encodeChannelUpdate(u) };
}

/** The store record of a node announcement. */
export function nodeRecordOp(n: NodeAnnouncement): BatchOp {
  return { type: 'put', key: nodeKey(bytesToHex(n.nodeId)), value: nodeAnnouncementCodec.encode(n) };
}

/**
 * Our own channels (exact: their spendable balance, free HTLC slots and our peers' policies, from
 * htlc/router/graph.ts's ChannelGraph) laid over the public graph: a public edge is dropped when the local graph has
 * the same channel in the same direction, and every public edge leaving `self` is dropped (only the local graph
 * knows what we can send). Node features come from the public graph, then the local one.
 */
export function combineGraphs(local: RoutingGraph, publicGraph: RoutingGraph, self: NodeIdHex): RoutingGraph {
  const localHas = (e: DirectedEdge): boolean => {
    for (const l of local.edgesFrom(e.from)) if (l.shortChannelId === e.shortChannelId) return true;
    return false;
  };
  return {
    *edgesTo(node: NodeIdHex): Iterable<DirectedEdge> {
      yield* local.edgesTo(node);
      for (const e of publicGraph.edgesTo(node)) if (e.from !== self && !localHas(e)) yield e;
    },
    *edgesFrom(node: NodeIdHex): Iterable<DirectedEdge> {
      yield* local.edgesFrom(node);
      if (node === self) return;
      for (const e of publicGraph.edgesFrom(node)) if (!localHas(e)) yield e;
    },
    nodeFeatures(node: NodeIdHex): Uint8Array | undefined {
      return publicGraph.nodeFeatures?.(node) ?? local.nodeFeatures?.(node);
    },
  };
}

/** A node id in the graph's key form, from bytes. */
export const graphNodeId = (nodeId: Uint8Array): NodeIdHex => bytesToHex(nodeId);
/** A node id's bytes, from the graph's key form. */
export const graphNodeIdBytes = (node: NodeIdHex): Uint8Array => hexToBytes(node);
/** The direction bit of an update. */
export const updateDirection = (u: ChannelUpdate): Direction => ((u.channelFlags & CHANNEL_FLAG_DIRECTION) === 0 ? 0 : 1);
