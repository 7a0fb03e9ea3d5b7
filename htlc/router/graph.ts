/**
 * The in-memory routing graph (lnd's channel graph, in small): directed edges by short_channel_id and origin node,
 * indexed both ways so pathfinding can walk backwards from the payee. Today it holds our own channels (with their
 * exact spendable balance and free HTLC slots) and the policy each peer charges in the other direction; the public
 * graph from gossip fills the same structure later (`applyChannelUpdate` already takes a BOLT 7 channel_update).
 *
 * An invoice's route hints are not written into the graph: `withRouteHints` lays them over it for one search, as
 * lnd's "additional edges" (a hint's capacity is unknown, so it is taken as large, and hints leaving us are dropped:
 * our own channels are in the graph already).
 */
import { ArgumentError } from '../../wire/errors.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { CHANNEL_FLAG_DIRECTION, CHANNEL_FLAG_DISABLED, channelUpdateSignedBy, type ChannelUpdate } from '../../wire/gossip.js';
import type { DirectedEdge, EdgePolicy, NodeIdHex, RouteHintHop, RoutingGraph } from './interfaces.js';

/** The capacity assumed for a route hint's channel: 10 BTC, as lnd (fakeHopHintCapacity), so it never bounds the amount. */
export const HOP_HINT_CAPACITY_SAT = 1_000_000_000n;

const NODE_ID_HEX = /^0[23][0-9a-f]{64}$/;
const U64_LIMIT = 1n << 64n;
const MAX_CLTV_EXPIRY_DELTA = 0xffff;
const COMPRESSED_PUBKEY_LENGTH = 33;

/** A 33-byte node id as the graph's key (lowercase hex). */
export function nodeIdHex(nodeId: Uint8Array): NodeIdHex {
  if (nodeId.length !== COMPRESSED_PUBKEY_LENGTH)
    throw new ArgumentError(`a node id is ${COMPRESSED_PUBKEY_LENGTH} bytes, not ${nodeId.length}`);
  const hex = bytesToHex(nodeId);
  if (!NODE_ID_HEX.test(hex)) throw new ArgumentError(`not a compressed public key: ${hex}`);
  return hex;
}

function checkNodeId(id: NodeIdHex, what: string): void {
  if (!NODE_ID_HEX.test(id)) throw new ArgumentError(`${what} is not a node id (66 lowercase hex characters): ${id}`);
}

function checkMsat(v: bigint, what: string): void {
  if (v < 0n || v >= U64_LIMIT) throw new ArgumentError(`${what} must be a u64, got ${v}`);
}

function checkPolicy(p: EdgePolicy): void {
  checkMsat(p.feeBaseMsat, 'fee_base_msat');
  checkMsat(p.feeProportionalMillionths, 'fee_proportional_millionths');
  checkMsat(p.htlcMinimumMsat, 'htlc_minimum_msat');
  if (p.htlcMaximumMsat !== undefined) checkMsat(p.htlcMaximumMsat, 'htlc_maximum_msat');
  if (!Number.isInteger(p.cltvExpiryDelta) || p.cltvExpiryDelta < 0 || p.cltvExpiryDelta > MAX_CLTV_EXPIRY_DELTA)
    throw new ArgumentError(`cltv_expiry_delta must be a u16, got ${p.cltvExpiryDelta}`);
}

function checkEdge(e: DirectedEdge): void {
  checkMsat(e.shortChannelId, 'short_channel_id');
  checkNodeId(e.from, 'edge origin');
  checkNodeId(e.to, 'edge destination');
  if (e.from === e.to) throw new ArgumentError(`channel ${e.shortChannelId} goes from a node to itself`);
  checkMsat(e.capacitySat, 'capacity');
  checkPolicy(e.policy);
  if (e.localBalanceMsat !== undefined) checkMsat(e.localBalanceMsat, 'local balance');
  if (e.freeHtlcSlots !== undefined && (!Number.isInteger(e.freeHtlcSlots) || e.freeHtlcSlots < 0))
    throw new ArgumentError(`free HTLC slots must be a non-negative integer, got ${e.freeHtlcSlots}`);
}

function copyEdge(e: DirectedEdge): DirectedEdge {
  const c: DirectedEdge = { shortChannelId: e.shortChannelId, from: e.from, to: e.to, capacitySat: e.capacitySat, policy: { ...e.policy } };
  if (e.localBalanceMsat !== undefined) c.localBalanceMsat = e.localBalanceMsat;
  if (e.freeHtlcSlots !== undefined) c.freeHtlcSlots = e.freeHtlcSlots;
  return c;
}

/** What `applyChannelUpdate` did. */
export type ChannelUpdateOutcome =
  { applied: true; edge: DirectedEdge } | { applied: false; reason: 'unknown_channel' | 'stale' | 'bad_signature' | 'not_origin' };

/**
 * Directed edges keyed by (short_channel_id, origin). The edges it hands out are its own: read them, do not change
 * them (change them through its methods).
 */
export class ChannelGraph implements RoutingGraph {
  private readonly byScid = new Map<bigint, DirectedEdge[]>();
  private readonly byFrom = new Map<NodeIdHex, Map<bigint, DirectedEdge>>();
  private readonly byTo = new Map<NodeIdHex, Map<bigint, DirectedEdge>>();
  private readonly features = new Map<NodeIdHex, Uint8Array>();
  /** The timestamp of the last channel_update applied per direction ("scid/from"). */
  private readonly updateTimestamps = new Map<string, number>();

  /** Adds the edge, or replaces the one with the same channel and origin. A channel joins the same two nodes both ways. */
  addEdge(edge: DirectedEdge): void {
    checkEdge(edge);
    const dirs = this.byScid.get(edge.shortChannelId) ?? [];
    for (const d of dirs) {
      const sameEnds = (d.from === edge.from && d.to === edge.to) || (d.from === edge.to && d.to === edge.from);
      if (!sameEnds) throw new ArgumentError(`channel ${edge.shortChannelId} already joins ${d.from} and ${d.to}`);
    }
    this.removeEdge(edge.shortChannelId, edge.from);
    const e = copyEdge(edge);
    const list = this.byScid.get(e.shortChannelId);
    if (list === undefined) this.byScid.set(e.shortChannelId, [e]);
    else list.push(e);
    indexedEdges(this.byFrom, e.from).set(e.shortChannelId, e);
    indexedEdges(this.byTo, e.to).set(e.shortChannelId, e);
  }

  /** The edge of channel `scid` leaving `from`. */
  edge(scid: bigint, from: NodeIdHex): DirectedEdge | undefined {
    return this.byFrom.get(from)?.get(scid);
  }

  /** Both directions of a channel that the graph knows. */
  channel(scid: bigint): readonly DirectedEdge[] {
    return this.byScid.get(scid) ?? [];
  }

  /** Replaces the policy `from` charges on channel `scid`; false when the graph has no such edge. */
  updatePolicy(scid: bigint, from: NodeIdHex, policy: EdgePolicy): boolean {
    checkPolicy(policy);
    const e = this.edge(scid, from);
    if (e === undefined) return false;
    e.policy = { ...policy };
    return true;
  }

  /** Our own channel's spendable balance and free HTLC slots changed; false when the graph has no such edge. */
  updateLocalChannel(scid: bigint, from: NodeIdHex, localBalanceMsat: bigint, freeHtlcSlots?: number): boolean {
    checkMsat(localBalanceMsat, 'local balance');
    if (freeHtlcSlots !== undefined && (!Number.isInteger(freeHtlcSlots) || freeHtlcSlots < 0))
      throw new ArgumentError(`free HTLC slots must be a non-negative integer, got ${freeHtlcSlots}`);
    const e = this.edge(scid, from);
    if (e === undefined) return false;
    e.localBalanceMsat = localBalanceMsat;
    if (freeHtlcSlots === undefined) delete e.freeHtlcSlots;
    else e.freeHtlcSlots = freeHtlcSlots;
    return true;
  }

  /** Removes one direction of a channel (`from` given) or both; returns how many edges went. */
  removeEdge(scid: bigint, from?: NodeIdHex): number {
    const dirs = this.byScid.get(scid);
    if (dirs === undefined) return 0;
    const gone = dirs.filter((d) => from === undefined || d.from === from);
    for (const d of gone) {
      dropIndexedEdge(this.byFrom, d.from, scid);
      dropIndexedEdge(this.byTo, d.to, scid);
      this.updateTimestamps.delete(`${scid}/${d.from}`);
    }
    const kept = dirs.filter((d) => !gone.includes(d));
    if (kept.length === 0) this.byScid.delete(scid);
    else this.byScid.set(scid, kept);
    return gone.length;
  }

  edgesTo(node: NodeIdHex): Iterable<DirectedEdge> {
    return this.byTo.get(node)?.values() ?? [];
  }

  edgesFrom(node: NodeIdHex): Iterable<DirectedEdge> {
    return this.byFrom.get(node)?.values() ?? [];
  }

  /** Sets a node's features (from its node_announcement); an empty or absent vector clears them. */
  setNodeFeatures(node: NodeIdHex, features: Uint8Array | undefined): void {
    checkNodeId(node, 'node');
    if (features === undefined || features.length === 0) this.features.delete(node);
    else this.features.set(node, features.slice());
  }

  nodeFeatures(node: NodeIdHex): Uint8Array | undefined {
    return this.features.get(node);
  }

  get edgeCount(): number {
    let n = 0;
    for (const d of this.byScid.values()) n += d.length;
    return n;
  }

  /**
   * Applies a BOLT 7 channel_update to a channel the graph knows (at least one direction): the direction comes from
   * channel_flags bit 0 (0: the update is from the numerically lesser node id), the signature must be that node's
   * (unless `verify` is false, for an update the caller has verified), and an update no newer than the last one
   * applied to the direction is stale. A direction the graph had not seen is added with the channel's capacity.
   * `expectedOrigin`: the node the update must come from (the erring hop of a failure), else not_origin.
   */
  applyChannelUpdate(update: ChannelUpdate, opts: { verify?: boolean; expectedOrigin?: NodeIdHex } = {}): ChannelUpdateOutcome {
    const dirs = this.byScid.get(update.shortChannelId);
    if (dirs === undefined || dirs.length === 0) return { applied: false, reason: 'unknown_channel' };
    const known = dirs[0]!;
    const node1 = known.from < known.to ? known.from : known.to;
    const node2 = node1 === known.from ? known.to : known.from;
    const from = (update.channelFlags & CHANNEL_FLAG_DIRECTION) === 0 ? node1 : node2;
    const to = from === node1 ? node2 : node1;
    if (opts.expectedOrigin !== undefined && opts.expectedOrigin !== from) return { applied: false, reason: 'not_origin' };
    const key = `${update.shortChannelId}/${from}`;
    const last = this.updateTimestamps.get(key);
    if (last !== undefined && update.timestamp <= last) return { applied: false, reason: 'stale' };
    if (opts.verify !== false && !channelUpdateSignedBy(update, hexToBytes(from))) return { applied: false, reason: 'bad_signature' };
    const policy = edgePolicyOf(update);
    const existing = this.edge(update.shortChannelId, from);
    if (existing !== undefined) {
      checkPolicy(policy);
      existing.policy = policy;
    } else {
      this.addEdge({ shortChannelId: update.shortChannelId, from, to, capacitySat: known.capacitySat, policy });
    }
    this.updateTimestamps.set(key, update.timestamp);
    return { applied: true, edge: this.edge(update.shortChannelId, from)! };
  }
}

/** `graph` with the policy of some directed channels replaced (keyed `${scid}/${from}`), see RouteRequest.policyOverrides. */
export function withPolicyOverrides(
  graph: RoutingGraph,
  overrides: ReadonlyMap<string, { readonly policy: EdgePolicy }> | undefined,
): RoutingGraph {
  if (overrides === undefined || overrides.size === 0) return graph;
  const swap = (e: DirectedEdge): DirectedEdge => {
    const o = overrides.get(`${e.shortChannelId}/${e.from}`);
    return o === undefined ? e : { ...e, policy: o.policy };
  };
  return withFeaturesOf(graph, {
    *edgesTo(node: NodeIdHex): Iterable<DirectedEdge> {
      for (const e of graph.edgesTo(node)) yield swap(e);
    },
    *edgesFrom(node: NodeIdHex): Iterable<DirectedEdge> {
      for (const e of graph.edgesFrom(node)) yield swap(e);
    },
  });
}

/** `overlay`, answering node features as `graph` does (an overlay changes edges, not nodes). */
function withFeaturesOf(graph: RoutingGraph, overlay: RoutingGraph): RoutingGraph {
  if (graph.nodeFeatures !== undefined) {
    const nf = graph.nodeFeatures.bind(graph);
    overlay.nodeFeatures = (node: NodeIdHex) => nf(node);
  }
  return overlay;
}

/** The forwarding policy a channel_update announces for its direction. */
export function edgePolicyOf(update: ChannelUpdate): Required<EdgePolicy> {
  return {
    feeBaseMsat: BigInt(update.feeBaseMsat),
    feeProportionalMillionths: BigInt(update.feeProportionalMillionths),
    cltvExpiryDelta: update.cltvExpiryDelta,
    htlcMinimumMsat: update.htlcMinimumMsat,
    htlcMaximumMsat: update.htlcMaximumMsat,
    disabled: (update.channelFlags & CHANNEL_FLAG_DISABLED) !== 0,
  };
}

/** The edges of `node` in an index by node (made on first use). */
export function indexedEdges(m: Map<NodeIdHex, Map<bigint, DirectedEdge>>, node: NodeIdHex): Map<bigint, DirectedEdge> {
  let inner = m.get(node);
  if (inner === undefined) {
    inner = new Map();
    m.set(node, inner);
  }
  return inner;
}

/** Drops one edge of `node` from an index by node (and the node when it has none left). */
export function dropIndexedEdge(m: Map<NodeIdHex, Map<bigint, DirectedEdge>>, node: NodeIdHex, scid: bigint): void {
  const inner = m.get(node);
  if (inner === undefined) return;
  inner.delete(scid);
  if (inner.size === 0) m.delete(node);
}

/**
 * The edges a set of route hints describes: in each hint, hop k is the channel from its node to hop k+1's node (the
 * last hop's: to `target`), with the hint's fees and CLTV delta, no HTLC minimum or maximum, and HOP_HINT_CAPACITY_SAT.
 * Hops leaving `self` are left out (our own channels are in the graph, with their real balance).
 */
export function routeHintEdges(hints: readonly (readonly RouteHintHop[])[], target: NodeIdHex, self?: NodeIdHex): DirectedEdge[] {
  checkNodeId(target, 'target');
  const out: DirectedEdge[] = [];
  for (const hint of hints) {
    for (let k = 0; k < hint.length; k++) {
      const hop = hint[k]!;
      const from = nodeIdHex(hop.nodeId);
      const next = hint[k + 1];
      const to = next === undefined ? target : nodeIdHex(next.nodeId);
      if (from === self || from === to) continue;
      const edge: DirectedEdge = {
        shortChannelId: hop.shortChannelId,
        from,
        to,
        capacitySat: HOP_HINT_CAPACITY_SAT,
        policy: {
          feeBaseMsat: hop.feeBaseMsat,
          feeProportionalMillionths: hop.feeProportionalMillionths,
          cltvExpiryDelta: hop.cltvExpiryDelta,
          htlcMinimumMsat: 0n,
        },
      };
      checkEdge(edge);
      out.push(edge);
    }
  }
  return out;
}

/**
 * `graph` with route hints laid over it for one search. A hint edge whose channel and origin the graph already has is
 * dropped (the graph's copy is the one kept up to date); the same hint edge given twice counts once.
 */
export function withRouteHints(
  graph: RoutingGraph,
  hints: readonly (readonly RouteHintHop[])[],
  target: NodeIdHex,
  self?: NodeIdHex,
): RoutingGraph {
  const edges = routeHintEdges(hints, target, self);
  if (edges.length === 0) return graph;
  const hasInGraph = (e: DirectedEdge): boolean => {
    for (const g of graph.edgesFrom(e.from)) if (g.shortChannelId === e.shortChannelId) return true;
    return false;
  };
  const to = new Map<NodeIdHex, DirectedEdge[]>();
  const from = new Map<NodeIdHex, DirectedEdge[]>();
  const seen = new Set<string>();
  for (const e of edges) {
    const key = `${e.shortChannelId}/${e.from}`;
    if (seen.has(key) || hasInGraph(e)) continue;
    seen.add(key);
    (to.get(e.to) ?? to.set(e.to, []).get(e.to)!).push(e);
    (from.get(e.from) ?? from.set(e.from, []).get(e.from)!).push(e);
  }
  return withFeaturesOf(graph, {
    *edgesTo(node: NodeIdHex): Iterable<DirectedEdge> {
      yield* graph.edgesTo(node);
      yield* to.get(node) ?? [];
    },
    *edgesFrom(node: NodeIdHex): Iterable<DirectedEdge> {
      yield* graph.edgesFrom(node);
      yield* from.get(node) ?? [];
    },
  });
}
