/**
 * Pathfinding (lnd's routing/pathfind.go, in small): Dijkstra from the payee back to us, so that every hop's amount
 * (the fees of the hops after it added) and expiry (their CLTV deltas added to the final expiry) are exact when the
 * hop is reached, and each edge's limits (HTLC minimum and maximum, capacity, our own spendable balance) are checked
 * against the amount that edge will really carry.
 *
 * The distance of a partial path is lnd's: its weight (every fee plus a time-lock penalty: the amount locked times
 * the blocks it is locked for, times RISK_FACTOR_BILLIONTHS / 10^9) plus the cost of an attempt that fails (a fixed
 * part plus a share of the amount) divided by the probability that the path gets through, the probability being the
 * product of each edge's, as the probability source (mission control) estimates it. So of two paths with success
 * probabilities p1 < p2, the likelier one wins while its fees exceed the other's by less than cost · (1/p1 − 1/p2).
 *
 * The source's own channels charge no fee and add no CLTV delta: the first HTLC carries the first hop's amount and
 * expiry. Everything found or not found is a value: a Route, or a RouteError saying why not.
 */
import { ArgumentError } from '../../wire/errors.js';
import { hexToBytes } from '../../wire/bytes.js';
import { Feature, FeatureVector, unknownRequiredBits, validateFeatureDependencies } from '../../wire/features.js';
import { encodeHopPayload, HMAC_LENGTH, HOP_PAYLOADS_LENGTH } from '../../onion/index.js';
import type { FinalPayloadRecords, Route, RouteHop } from '../switch/interfaces.js';
import { withPolicyOverrides, withRouteHints } from './graph.js';
import { DEFAULT_APRIORI_HOP_PROBABILITY } from './mission-control.js';
import type {
  DirectedEdge,
  EdgePolicy,
  NodeIdHex,
  ProbabilitySource,
  RouteError,
  RouteFinder,
  RouteRequest,
  RoutingGraph,
} from './interfaces.js';

/** lnd's RiskFactorBillionths: msat of weight per msat locked per block of CLTV delta, in billionths. */
export const RISK_FACTOR_BILLIONTHS = 15n;
/** lnd's DefaultAttemptCost: the fixed virtual cost of a failed attempt, 100 sat. */
export const DEFAULT_ATTEMPT_COST_MSAT = 100_000n;
/** lnd's DefaultAttemptCostPPM: the proportional virtual cost of a failed attempt, 0.1 % of the amount. */
export const DEFAULT_ATTEMPT_COST_PPM = 1000n;
/** lnd's DefaultMinRouteProbability: paths less likely than this are dropped. */
export const DEFAULT_MIN_ROUTE_PROBABILITY = 0.01;
/** lnd's sphinx.NumMaxHops: the most hops TLV payloads fit in the onion's 1300 bytes (the switch enforces it too). */
export const MAX_ROUTE_HOPS = 27;

const MILLIONTHS = 1_000_000n;
const BILLIONTHS = 1_000_000_000n;
const MSAT_PER_SAT = 1000n;
const U64_LIMIT = 1n << 64n;
const MAX_U32 = 0xffffffff;
/** A BigSize of one byte holds values below this. */
const BIGSIZE_ONE_BYTE_LIMIT = 0xfd;
const BIGSIZE_THREE_BYTES_LIMIT = 0x10000;
/** Each of the records 2, 4, 6 of an intermediate payload: a one-byte type and a one-byte length. */
const TLV_RECORD_HEADER_BYTES = 2;
const SHORT_CHANNEL_ID_BYTES = 8;

export interface PathFindingConfig {
  attemptCostMsat: bigint;
  attemptCostPpm: bigint;
  minProbability: number;
  riskFactorBillionths: bigint;
  /** When set: nodes (and payees) requiring a feature bit not in here are not routed through (lnd does the same). */
  knownFeatureBits?: ReadonlySet<number>;
}

export const DEFAULT_PATH_FINDING_CONFIG: PathFindingConfig = {
  attemptCostMsat: DEFAULT_ATTEMPT_COST_MSAT,
  attemptCostPpm: DEFAULT_ATTEMPT_COST_PPM,
  minProbability: DEFAULT_MIN_ROUTE_PROBABILITY,
  riskFactorBillionths: RISK_FACTOR_BILLIONTHS,
};

/** The fee a node charges to forward `amountToForwardMsat` over a channel with `policy` (BOLT 7, floored). */
export function forwardingFee(policy: EdgePolicy, amountToForwardMsat: bigint): bigint {
  return policy.feeBaseMsat + (amountToForwardMsat * policy.feeProportionalMillionths) / MILLIONTHS;
}

/** lnd's edge weight: the fee plus the time-lock penalty of `lockedMsat` held for `cltvDelta` blocks. */
export function edgeWeight(lockedMsat: bigint, feeMsat: bigint, cltvDelta: number, riskFactorBillionths = RISK_FACTOR_BILLIONTHS): bigint {
  return feeMsat + (lockedMsat * BigInt(cltvDelta) * riskFactorBillionths) / BILLIONTHS;
}

/** A path's distance: its weight plus the attempt cost over its success probability (infinite at probability 0). */
export function probabilityBasedDistance(weight: bigint, probability: number, attemptCostMsat: number): number {
  if (probability <= 0) return Number.POSITIVE_INFINITY;
  return Number(weight) + attemptCostMsat / probability;
}

/** 2^(8k) for k = 0..7: a truncated integer below the k-th takes k bytes. */
const TRUNCATED_LIMITS = Array.from({ length: 8 }, (_, k) => 1n << BigInt(8 * k));
const MAX_TRUNCATED_U64_BYTES = 8;

function truncatedLength(v: bigint): number {
  for (let k = 0; k < TRUNCATED_LIMITS.length; k++) if (v < TRUNCATED_LIMITS[k]!) return k;
  return MAX_TRUNCATED_U64_BYTES;
}

function bigSizeLength(n: number): number {
  if (n < BIGSIZE_ONE_BYTE_LIMIT) return 1;
  if (n < BIGSIZE_THREE_BYTES_LIMIT) return 3;
  return n <= MAX_U32 ? 5 : 9;
}

/** What a payload of `payloadLength` bytes takes of the onion's hop_payloads: its BigSize length, itself, its HMAC. */
export function framedPayloadSize(payloadLength: number): number {
  return bigSizeLength(payloadLength) + payloadLength + HMAC_LENGTH;
}

/** Bytes of hop_payloads an intermediate hop takes: records 2 (amount), 4 (expiry), 6 (channel), framed. */
export function intermediateHopSize(amountToForwardMsat: bigint, outgoingCltvValue: number): number {
  const payload =
    TLV_RECORD_HEADER_BYTES +
    truncatedLength(amountToForwardMsat) +
    TLV_RECORD_HEADER_BYTES +
    truncatedLength(BigInt(outgoingCltvValue)) +
    TLV_RECORD_HEADER_BYTES +
    SHORT_CHANNEL_ID_BYTES;
  return framedPayloadSize(payload);
}

/** Bytes of hop_payloads the final hop takes, with its records. */
export function finalHopSize(amountMsat: bigint, cltvExpiry: number, records: FinalPayloadRecords = {}): number {
  const payload = encodeHopPayload({
    amountToForwardMsat: amountMsat,
    outgoingCltvValue: cltvExpiry,
    ...(records.mpp !== undefined ? { mpp: records.mpp } : {}),
    ...(records.amp !== undefined ? { amp: records.amp } : {}),
    ...(records.keysendPreimage !== undefined ? { keysendPreimage: records.keysendPreimage } : {}),
    ...(records.paymentMetadata !== undefined ? { paymentMetadata: records.paymentMetadata } : {}),
    ...(records.customRecords !== undefined ? { customRecords: records.customRecords } : {}),
  });
  return framedPayloadSize(payload.length);
}

export function isRouteError(r: Route | RouteError): r is RouteError {
  return 'kind' in r;
}

/** The best known way from `node` to the target: what `node` must receive, at what expiry, over which edge onwards. */
interface Label {
  node: NodeIdHex;
  /** The amount of the HTLC `node` receives. */
  amountMsat: bigint;
  /** The expiry of the HTLC `node` receives. */
  cltv: number;
  weight: bigint;
  probability: number;
  dist: number;
  /** Channels from `node` to the target. */
  hops: number;
  /** hop_payloads bytes of `node` (when it forwards) and of every hop after it. */
  payloadBytes: number;
  edge?: DirectedEdge;
  next?: Label;
}

/** Binary min-heap of labels by distance; stale entries are skipped by the reader. */
class LabelHeap {
  private readonly items: Label[] = [];
  get size(): number {
    return this.items.length;
  }
  push(l: Label): void {
    const a = this.items;
    a.push(l);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.dist <= l.dist) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = l;
  }
  pop(): Label | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]!.dist < a[l]!.dist ? r : l;
      if (a[c]!.dist >= last.dist) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** Limits a search may lift to learn whether they alone stood in the way. */
interface Relax {
  fee?: boolean;
  cltv?: boolean;
  hops?: boolean;
}

/** What stopped partial paths during one search. */
interface Pruned {
  fee: boolean;
  cltv: boolean;
  hops: boolean;
}

interface Search {
  req: RouteRequest;
  graph: RoutingGraph;
  nowMs: number;
  maxHops: number;
  finalCltv: number;
  attemptCost: number;
  finalBytes: number;
}

export interface PathFinderOptions {
  graph: RoutingGraph;
  /** Edge success probabilities (MissionControl.probability); absent: lnd's a-priori hop probability for every edge. */
  probability?: ProbabilitySource;
  config?: Partial<PathFindingConfig>;
}

export class PathFinder implements RouteFinder {
  private readonly graph: RoutingGraph;
  private readonly probability: ProbabilitySource;
  private readonly config: PathFindingConfig;

  constructor(opts: PathFinderOptions) {
    this.graph = opts.graph;
    this.probability = opts.probability ?? (() => DEFAULT_APRIORI_HOP_PROBABILITY);
    this.config = { ...DEFAULT_PATH_FINDING_CONFIG, ...opts.config };
    const c = this.config;
    if (c.attemptCostMsat < 0n || c.attemptCostPpm < 0n || c.riskFactorBillionths < 0n)
      throw new ArgumentError('attempt costs and the risk factor must not be negative');
    if (!(c.minProbability >= 0 && c.minProbability <= 1))
      throw new ArgumentError(`minimum probability must be in [0, 1], got ${c.minProbability}`);
  }

  findRoute(req: RouteRequest, nowMs: number): Route | RouteError {
    checkRequest(req);
    if (req.source === req.target) return { kind: 'no_route', reason: 'payments to ourselves are not routed' };
    const maxHops = req.maxHops ?? MAX_ROUTE_HOPS;

    const destIssue = this.destinationIssue(req);
    if (destIssue !== null) return { kind: 'no_route', reason: destIssue };

    // lnd's getOutgoingBalance: not enough on all our usable channels together is a different failure (nothing can
    // help but more balance) from not enough on any single one (splitting may help).
    const { max, total } = this.outgoingBalance(req);
    if (total < req.amountMsat)
      return { kind: 'insufficient_balance', reason: `our channels can send ${total} msat in all, ${req.amountMsat} msat needed` };
    if (max < req.amountMsat)
      return {
        kind: 'no_route',
        reason: `no single channel of ours can send ${req.amountMsat} msat (the most is ${max} msat): split the amount`,
      };

    const finalCltv = req.currentHeight + req.finalCltvDelta;
    const s: Search = {
      req,
      graph: withPolicyOverrides(withRouteHints(this.graph, req.routeHints, req.target, req.source), req.policyOverrides),
      nowMs,
      maxHops,
      finalCltv,
      attemptCost: Number(this.config.attemptCostMsat + (req.amountMsat * this.config.attemptCostPpm) / MILLIONTHS),
      finalBytes: finalHopSize(req.amountMsat, finalCltv, req.finalPayloadRecords),
    };
    if (s.finalBytes > HOP_PAYLOADS_LENGTH)
      return {
        kind: 'no_route',
        reason: `the final hop's payload alone takes ${s.finalBytes} of the onion's ${HOP_PAYLOADS_LENGTH} bytes`,
      };

    const pruned: Pruned = { fee: false, cltv: false, hops: false };
    const found = this.search(s, {}, pruned);
    if (found !== undefined) return toRoute(found);

    // Learn whether a limit alone stood in the way, so the caller hears which one.
    if (pruned.fee) {
      const r = this.search(s, { fee: true }, { fee: false, cltv: false, hops: false });
      if (r !== undefined)
        return {
          kind: 'fee_limit',
          reason: `a route exists, but it costs ${r.amountMsat - req.amountMsat} msat in fees, over the limit of ${req.feeLimitMsat} msat`,
        };
    }
    if (pruned.cltv) {
      const r = this.search(s, { cltv: true }, { fee: false, cltv: false, hops: false });
      if (r !== undefined)
        return {
          kind: 'no_route',
          reason: `a route exists, but its time lock of ${r.cltv - req.currentHeight} blocks is over the limit of ${req.cltvLimit}`,
        };
    }
    if (pruned.hops) {
      const r = this.search(s, { hops: true }, { fee: false, cltv: false, hops: false });
      if (r !== undefined) return { kind: 'no_route', reason: `a route exists, but it has ${r.hops} hops, over the limit of ${maxHops}` };
    }
    return { kind: 'no_route', reason: `no route from ${req.source} to ${req.target} for ${req.amountMsat} msat` };
  }

  /** Why the payee cannot be paid with these records, by its features (null: no objection). */
  private destinationIssue(req: RouteRequest): string | null {
    const raw = req.destFeatures ?? this.graph.nodeFeatures?.(req.target);
    if (raw === undefined) return null;
    const problem = this.featureProblem(raw);
    if (problem !== null) return `the payee's features: ${problem}`;
    const fv = FeatureVector.decode(raw);
    const records = req.finalPayloadRecords;
    if (records?.mpp !== undefined && !fv.supports(Feature.PaymentSecret)) return 'the payee does not support payment_secret';
    if (records?.amp !== undefined && !fv.supports(Feature.Amp)) return 'the payee does not support AMP';
    return null;
  }

  /** A node's features we cannot route through: an unknown required bit or a missing dependency (null: fine). */
  private featureProblem(raw: Uint8Array): string | null {
    let fv: FeatureVector;
    try {
      fv = FeatureVector.decode(raw);
    } catch (e) {
      return (e as Error).message;
    }
    const known = this.config.knownFeatureBits;
    if (known !== undefined) {
      const unknown = unknownRequiredBits(fv, known);
      if (unknown.length > 0) return `unknown required feature bits ${unknown.join(', ')}`;
    }
    return validateFeatureDependencies(fv);
  }

  private outgoingBalance(req: RouteRequest): { max: bigint; total: bigint } {
    let max = 0n;
    let total = 0n;
    for (const e of this.graph.edgesFrom(req.source)) {
      if (!firstHopAllowed(req, e)) continue;
      const b = e.localBalanceMsat ?? e.capacitySat * MSAT_PER_SAT;
      if (b > max) max = b;
      total += b;
    }
    return { max, total };
  }

  /** One Dijkstra run from the target back to the source; the source's label, or undefined. */
  private search(s: Search, relax: Relax, pruned: Pruned): Label | undefined {
    const { req, graph } = s;
    const cfg = this.config;
    const cltvCeiling = relax.cltv === true ? Number.POSITIVE_INFINITY : req.currentHeight + req.cltvLimit;
    const feeLimit = relax.fee === true ? U64_LIMIT : req.feeLimitMsat;
    const maxHops = relax.hops === true ? MAX_ROUTE_HOPS : s.maxHops;
    const featureOk = new Map<NodeIdHex, boolean>();
    const nodeUsable = (node: NodeIdHex): boolean => {
      if (graph.nodeFeatures === undefined || node === req.source) return true;
      let ok = featureOk.get(node);
      if (ok === undefined) {
        const raw = graph.nodeFeatures(node);
        ok = raw === undefined || this.featureProblem(raw) === null;
        featureOk.set(node, ok);
      }
      return ok;
    };

    const start: Label = {
      node: req.target,
      amountMsat: req.amountMsat,
      cltv: s.finalCltv,
      weight: 0n,
      probability: 1,
      dist: 0,
      hops: 0,
      payloadBytes: s.finalBytes,
    };
    // The target is never given a label: no path may pass through it.
    const best = new Map<NodeIdHex, Label>();
    const heap = new LabelHeap();
    heap.push(start);

    for (let cur = heap.pop(); cur !== undefined; cur = heap.pop()) {
      if (cur !== start && best.get(cur.node) !== cur) continue;
      if (cur.node === req.source) break;
      for (const edge of graph.edgesTo(cur.node)) {
        const from = edge.from;
        if (from === req.target) continue;
        if (cur === start && req.lastHop !== undefined && from !== req.lastHop) continue;
        if (req.excludedChannels?.has(edge.shortChannelId) === true) continue;
        if (from !== req.source && req.excludedNodes?.has(from) === true) continue;
        if (edge.policy.disabled === true) continue;
        const isFirstHop = from === req.source;
        if (isFirstHop && !firstHopAllowed(req, edge)) continue;

        // What `from` sends over this edge: what the node it reaches must receive.
        const amountToSend = cur.amountMsat;
        if (!amountFits(edge, amountToSend)) continue;
        if (!nodeUsable(from)) continue;

        const fee = isFirstHop ? 0n : forwardingFee(edge.policy, amountToSend);
        const delta = isFirstHop ? 0 : edge.policy.cltvExpiryDelta;
        const amountIn = amountToSend + fee;
        if (amountIn - req.amountMsat > feeLimit) {
          pruned.fee = true;
          continue;
        }
        const cltvIn = cur.cltv + delta;
        if (cltvIn > cltvCeiling) {
          pruned.cltv = true;
          continue;
        }
        const hops = cur.hops + 1;
        if (hops > maxHops) {
          pruned.hops = true;
          continue;
        }
        const payloadBytes = isFirstHop ? cur.payloadBytes : cur.payloadBytes + intermediateHopSize(amountToSend, cur.cltv);
        if (payloadBytes > HOP_PAYLOADS_LENGTH) {
          pruned.hops = true;
          continue;
        }

        const edgeProbability = this.probability(from, cur.node, amountToSend, edge.capacitySat * MSAT_PER_SAT, s.nowMs);
        if (!(edgeProbability > 0)) continue;
        const probability = cur.probability * edgeProbability;
        if (probability < cfg.minProbability) continue;

        const weight = cur.weight + edgeWeight(amountToSend, fee, delta, cfg.riskFactorBillionths);
        const dist = probabilityBasedDistance(weight, probability, s.attemptCost);
        const known = best.get(from);
        if (known !== undefined && (dist > known.dist || (dist === known.dist && probability <= known.probability))) continue;

        const label: Label = {
          node: from,
          amountMsat: amountIn,
          cltv: cltvIn,
          weight,
          probability,
          dist,
          hops,
          payloadBytes,
          edge,
          next: cur,
        };
        best.set(from, label);
        heap.push(label);
      }
    }
    return best.get(req.source);
  }
}

/** Whether the source may start over this channel of its own at all (amount aside). */
function firstHopAllowed(req: RouteRequest, e: DirectedEdge): boolean {
  if (e.policy.disabled === true) return false;
  if (e.freeHtlcSlots === 0) return false;
  if (req.excludedChannels?.has(e.shortChannelId) === true) return false;
  const only = req.outgoingChannels;
  if (only !== undefined && only.size > 0 && !only.has(e.shortChannelId)) return false;
  return true;
}

/** Whether the edge can carry `amountMsat`: its policy's HTLC limits, its capacity (0: unknown), our balance on it. */
function amountFits(e: DirectedEdge, amountMsat: bigint): boolean {
  if (amountMsat < e.policy.htlcMinimumMsat) return false;
  if (e.policy.htlcMaximumMsat !== undefined && amountMsat > e.policy.htlcMaximumMsat) return false;
  if (e.capacitySat > 0n && amountMsat > e.capacitySat * MSAT_PER_SAT) return false;
  if (e.localBalanceMsat !== undefined && amountMsat > e.localBalanceMsat) return false;
  return true;
}

/** The route the source's label describes, in the shape sendToRoute takes. */
function toRoute(source: Label): Route {
  const hops: RouteHop[] = [];
  for (let l = source; l.next !== undefined && l.edge !== undefined; l = l.next) {
    const reached = l.next;
    const after = reached.next;
    hops.push({
      pubkey: hexToBytes(reached.node),
      shortChannelId: l.edge.shortChannelId,
      amountToForwardMsat: after === undefined ? reached.amountMsat : after.amountMsat,
      outgoingCltvValue: after === undefined ? reached.cltv : after.cltv,
    });
  }
  return { totalAmountMsat: source.amountMsat, totalTimeLock: source.cltv, hops };
}

function checkRequest(req: RouteRequest): void {
  if (req.amountMsat <= 0n || req.amountMsat >= U64_LIMIT)
    throw new ArgumentError(`the amount must be a positive u64, got ${req.amountMsat}`);
  if (req.feeLimitMsat < 0n) throw new ArgumentError(`the fee limit must not be negative, got ${req.feeLimitMsat}`);
  for (const [v, what] of [
    [req.finalCltvDelta, 'final CLTV delta'],
    [req.currentHeight, 'current height'],
    [req.cltvLimit, 'CLTV limit'],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new ArgumentError(`the ${what} must be a u32, got ${v}`);
  }
  if (req.maxHops !== undefined && (!Number.isInteger(req.maxHops) || req.maxHops < 1 || req.maxHops > MAX_ROUTE_HOPS))
    throw new ArgumentError(`max hops must be 1 to ${MAX_ROUTE_HOPS}, got ${req.maxHops}`);
}
