/**
 * Mission control (lnd's routing/missioncontrol.go, result_interpretation.go and the a-priori estimator of
 * probability_apriori.go, in small): what past attempts taught about each directed node pair, and the success
 * probability pathfinding asks for.
 *
 * Per pair it keeps the last failure (amount and time) and the largest amount that got through. An amount at or above
 * a failed one is unlikely right after the failure and recovers towards the node's probability with a half-life; an
 * amount up to one that succeeded is taken as likely (0.95). The node's probability mixes the a-priori hop probability
 * (0.6, lowered for amounts close to the capacity) with what its other pairs showed, weighted by `aprioriWeight`.
 *
 * A failed attempt is interpreted by who sent the failure and its code, as lnd does: e.g. temporary_channel_failure at
 * hop i marks the pair (hop i → hop i+1) failed for that amount and the pairs before it successful; unknown_next_peer
 * marks that pair failed for every amount, both ways; a node failure marks every pair of the node; an unreadable
 * failure every pair of the route; incorrect_or_unknown_payment_details from the payee ends the payment. Policy
 * failures (fee, CLTV, minimum, disabled) get one "second chance" per pair a minute: the channel_update they carry may
 * be all we lacked.
 *
 * Memory is bounded: at most `maxPairs` pairs are remembered, the longest unchanged forgotten first. Time comes in as
 * `nowMs`.
 */
import { ArgumentError } from '../../wire/errors.js';
import { bytesToHex } from '../../wire/bytes.js';
import type { FailureMessage } from '../../onion/index.js';
import type { Route } from '../switch/interfaces.js';
import type { AttemptFailure, FailureInterpretation, MissionControl, NodeIdHex } from './interfaces.js';

/** lnd's DefaultAprioriHopProbability. */
export const DEFAULT_APRIORI_HOP_PROBABILITY = 0.6;
/** lnd's DefaultAprioriWeight: how much the a-priori probability counts against what the node's pairs showed. */
export const DEFAULT_APRIORI_WEIGHT = 0.5;
/** lnd's DefaultPenaltyHalfLife: one hour. */
export const DEFAULT_PENALTY_HALF_LIFE_MS = 60 * 60 * 1000;
/** lnd's DefaultMinFailureRelaxInterval: a higher failure amount within this of the last failure is ignored. */
export const DEFAULT_MIN_FAILURE_RELAX_INTERVAL_MS = 60 * 1000;
/** lnd's minSecondChanceInterval. */
export const DEFAULT_SECOND_CHANCE_INTERVAL_MS = 60 * 1000;
/** lnd's DefaultCapacityFraction: amounts above this share of the capacity get a lower a-priori probability. */
export const DEFAULT_CAPACITY_FRACTION = 0.9999;
/** lnd's prevSuccessProbability: an amount up to one that got through the pair before. */
export const PREVIOUS_SUCCESS_PROBABILITY = 0.95;
export const DEFAULT_MAX_PAIRS = 10_000;

/** lnd's capacitySmearingFraction and minCapacityFactor: the shape of the fall-off near the capacity. */
const CAPACITY_SMEARING_FRACTION = 0.025;
const MIN_CAPACITY_FACTOR = 0.5;
const MIN_CAPACITY_FRACTION = 0.75;
/** An amount no HTLC reaches: local pairs are judged for it, so only failures count (lnd's MaxMilliSatoshi). */
const MAX_MSAT = (1n << 64n) - 1n;

export interface MissionControlConfig {
  /** Our node: pairs from it are our own channels, judged by their failures alone (lnd's LocalPairProbability). */
  selfNode?: NodeIdHex;
  penaltyHalfLifeMs: number;
  aprioriHopProbability: number;
  /** 0..1; 1: past results of a node's other pairs are ignored. */
  aprioriWeight: number;
  capacityFraction: number;
  minFailureRelaxIntervalMs: number;
  secondChanceIntervalMs: number;
  maxPairs: number;
}

export const DEFAULT_MISSION_CONTROL_CONFIG: MissionControlConfig = {
  penaltyHalfLifeMs: DEFAULT_PENALTY_HALF_LIFE_MS,
  aprioriHopProbability: DEFAULT_APRIORI_HOP_PROBABILITY,
  aprioriWeight: DEFAULT_APRIORI_WEIGHT,
  capacityFraction: DEFAULT_CAPACITY_FRACTION,
  minFailureRelaxIntervalMs: DEFAULT_MIN_FAILURE_RELAX_INTERVAL_MS,
  secondChanceIntervalMs: DEFAULT_SECOND_CHANCE_INTERVAL_MS,
  maxPairs: DEFAULT_MAX_PAIRS,
};

/** What is known of one directed pair (lnd's TimedPairResult). `failTimeMs` undefined: no failure recorded. */
export interface PairHistory {
  failTimeMs?: number;
  /** Amounts at or above this failed (0 with a failure time: every amount). */
  failAmountMsat: bigint;
  successTimeMs?: number;
  /** Amounts up to this got through (0: none known). */
  successAmountMsat: bigint;
}

export interface PairSnapshot extends PairHistory {
  from: NodeIdHex;
  to: NodeIdHex;
}

/** The outcome for one pair that an attempt taught (lnd's pairResult). A failure amount of 0: every amount. */
interface PairResult {
  success: boolean;
  amountMsat: bigint;
}

/** What an attempt's outcome means (lnd's interpretedResult). */
interface Interpretation {
  nodeFailure?: NodeIdHex;
  pairs: Map<string, { from: NodeIdHex; to: NodeIdHex; result: PairResult }>;
  finalReason?: FailureInterpretation['reason'];
  policyFailure?: { from: NodeIdHex; to: NodeIdHex };
}

function pairKey(from: NodeIdHex, to: NodeIdHex): string {
  return `${from}>${to}`;
}

/** The nodes of a route in order: the source, then each hop's. */
function routeNodes(route: Route, source: NodeIdHex): NodeIdHex[] {
  return [source, ...route.hops.map((h) => bytesToHex(h.pubkey))];
}

/**
 * lnd's a-priori capacity factor: 1 far below the capacity, falling to MIN_CAPACITY_FACTOR around
 * `fraction` of it, 0 above it. A capacity of 0 (unknown) or a fraction of 1 leaves the probability alone.
 */
export function capacityFactor(amountMsat: bigint, capacityMsat: bigint, fraction: number): number {
  if (fraction === 1 || capacityMsat === 0n) return 1;
  if (amountMsat > capacityMsat) return 0;
  const cap = Number(capacityMsat);
  const amt = Number(amountMsat);
  const cutoff = fraction * cap;
  const smearing = CAPACITY_SMEARING_FRACTION * cap;
  return 1 - (1 - MIN_CAPACITY_FACTOR) / (1 + Math.exp(-(amt - cutoff) / smearing));
}

export class InMemoryMissionControl implements MissionControl {
  private readonly config: MissionControlConfig;
  /** Pair histories by origin node, then destination. */
  private readonly byFrom = new Map<NodeIdHex, Map<NodeIdHex, PairHistory>>();
  /** Every remembered pair, the least recently changed first. */
  private readonly order = new Map<string, { from: NodeIdHex; to: NodeIdHex }>();
  /** When each pair last got a second chance for a policy failure. */
  private readonly secondChances = new Map<string, number>();

  constructor(config: Partial<MissionControlConfig> = {}) {
    this.config = { ...DEFAULT_MISSION_CONTROL_CONFIG, ...config };
    const c = this.config;
    if (!(c.penaltyHalfLifeMs > 0)) throw new ArgumentError(`the penalty half-life must be positive, got ${c.penaltyHalfLifeMs}`);
    if (!(c.aprioriHopProbability >= 0 && c.aprioriHopProbability <= 1))
      throw new ArgumentError(`the a-priori hop probability must be in [0, 1], got ${c.aprioriHopProbability}`);
    if (!(c.aprioriWeight >= 0 && c.aprioriWeight <= 1))
      throw new ArgumentError(`the a-priori weight must be in [0, 1], got ${c.aprioriWeight}`);
    if (!(c.capacityFraction >= MIN_CAPACITY_FRACTION && c.capacityFraction <= 1))
      throw new ArgumentError(`the capacity fraction must be in [${MIN_CAPACITY_FRACTION}, 1], got ${c.capacityFraction}`);
    if (!(c.minFailureRelaxIntervalMs >= 0) || !(c.secondChanceIntervalMs >= 0)) throw new ArgumentError('intervals must not be negative');
    if (!Number.isInteger(c.maxPairs) || c.maxPairs < 1) throw new ArgumentError(`max pairs must be a positive integer, got ${c.maxPairs}`);
  }

  /** How many pairs are remembered. */
  get pairCount(): number {
    return this.order.size;
  }

  /** What is known of one pair. */
  pair(from: NodeIdHex, to: NodeIdHex): PairHistory | undefined {
    const h = this.byFrom.get(from)?.get(to);
    return h === undefined ? undefined : { ...h };
  }

  /** Every remembered pair, the least recently changed first (for debugging and the API). */
  snapshot(): PairSnapshot[] {
    const out: PairSnapshot[] = [];
    for (const { from, to } of this.order.values()) out.push({ from, to, ...this.byFrom.get(from)!.get(to)! });
    return out;
  }

  /** Forgets everything (lnd's ResetHistory). */
  reset(): void {
    this.byFrom.clear();
    this.order.clear();
    this.secondChances.clear();
  }

  probability(from: NodeIdHex, to: NodeIdHex, amountMsat: bigint, capacityMsat: bigint, nowMs: number): number {
    const results = this.byFrom.get(from);
    if (from === this.config.selfNode) return this.pairProbability(nowMs, results, PREVIOUS_SUCCESS_PROBABILITY, to, MAX_MSAT);
    const node = this.nodeProbability(nowMs, results, amountMsat, capacityMsat);
    return this.pairProbability(nowMs, results, node, to, amountMsat);
  }

  reportSuccess(route: Route, source: NodeIdHex, nowMs: number): void {
    const i: Interpretation = { pairs: new Map() };
    const nodes = routeNodes(route, source);
    successRange(i, route, nodes, 0, route.hops.length - 1);
    this.apply(i, nowMs);
  }

  reportFailure(f: AttemptFailure, source: NodeIdHex, nowMs: number): FailureInterpretation {
    const route = f.route;
    const n = route.hops.length;
    if (n === 0) throw new ArgumentError('a route has at least one hop');
    const nodes = routeNodes(route, source);
    const i: Interpretation = { pairs: new Map() };
    const idx = f.failureSourceIndex;
    if (f.unreadable === true || idx < 0 || idx > n) interpretUnknown(i, route, nodes);
    else if (idx === 0) interpretSelf(i, route, nodes, f.failure);
    else if (idx === n) interpretFinal(i, route, nodes, f.failure);
    else interpretIntermediate(i, route, nodes, idx, f.failure);

    const out: FailureInterpretation = { final: i.finalReason !== undefined };
    if (i.finalReason !== undefined) out.reason = i.finalReason;
    if (f.failure !== undefined && 'channelUpdate' in f.failure && idx >= 1 && idx <= n) {
      out.channelUpdate = f.failure.channelUpdate;
      out.erringNode = nodes[idx]!;
    }
    if (i.policyFailure !== undefined && this.grantSecondChance(i.policyFailure.from, i.policyFailure.to, nowMs)) {
      out.secondChance = true;
      return out;
    }
    this.apply(i, nowMs);
    return out;
  }

  private grantSecondChance(from: NodeIdHex, to: NodeIdHex, nowMs: number): boolean {
    const key = pairKey(from, to);
    const last = this.secondChances.get(key);
    if (last !== undefined && nowMs - last <= this.config.secondChanceIntervalMs) return false;
    this.secondChances.set(key, nowMs);
    // bounded like the pairs: the oldest grant goes first
    if (this.secondChances.size > this.config.maxPairs) this.secondChances.delete(this.secondChances.keys().next().value!);
    return true;
  }

  private apply(i: Interpretation, nowMs: number): void {
    if (i.nodeFailure !== undefined) this.failAllPairsOf(i.nodeFailure, nowMs);
    for (const { from, to, result } of i.pairs.values()) this.setPairResult(from, to, nowMs, result);
  }

  /** lnd's setAllFail: every remembered pair from or to `node` failed now, for every amount. */
  private failAllPairsOf(node: NodeIdHex, nowMs: number): void {
    const hit: { from: NodeIdHex; to: NodeIdHex }[] = [];
    for (const p of this.order.values()) if (p.from === node || p.to === node) hit.push(p);
    for (const { from, to } of hit) this.store(from, to, { failTimeMs: nowMs, failAmountMsat: 0n, successAmountMsat: 0n });
  }

  /** lnd's setLastPairResult, without its `force`. */
  private setPairResult(from: NodeIdHex, to: NodeIdHex, nowMs: number, r: PairResult): void {
    const current: PairHistory = { ...(this.byFrom.get(from)?.get(to) ?? { failAmountMsat: 0n, successAmountMsat: 0n }) };
    if (r.success) {
      current.successTimeMs = nowMs;
      if (r.amountMsat > current.successAmountMsat) current.successAmountMsat = r.amountMsat;
      // what got through cannot be at or above what failed
      if (current.failTimeMs !== undefined && r.amountMsat >= current.failAmountMsat) current.failAmountMsat = r.amountMsat + 1n;
    } else {
      // a larger failure amount so soon after the last failure is not believed yet
      const sinceLast = current.failTimeMs === undefined ? Number.POSITIVE_INFINITY : nowMs - current.failTimeMs;
      if (r.amountMsat > current.failAmountMsat && sinceLast < this.config.minFailureRelaxIntervalMs) return;
      current.failTimeMs = nowMs;
      current.failAmountMsat = r.amountMsat;
      if (r.amountMsat === 0n) current.successAmountMsat = 0n;
      else if (r.amountMsat <= current.successAmountMsat) current.successAmountMsat = r.amountMsat - 1n;
    }
    this.store(from, to, current);
  }

  private store(from: NodeIdHex, to: NodeIdHex, h: PairHistory): void {
    let inner = this.byFrom.get(from);
    if (inner === undefined) {
      inner = new Map();
      this.byFrom.set(from, inner);
    }
    inner.set(to, h);
    const key = pairKey(from, to);
    this.order.delete(key);
    this.order.set(key, { from, to });
    while (this.order.size > this.config.maxPairs) {
      const [oldKey, old] = this.order.entries().next().value!;
      this.order.delete(oldKey);
      const m = this.byFrom.get(old.from);
      m?.delete(old.to);
      if (m !== undefined && m.size === 0) this.byFrom.delete(old.from);
    }
  }

  /** 2^(-age / half-life): how much a failure `ageMs` old still counts. */
  private failureWeight(ageMs: number): number {
    return Math.pow(2, -Math.max(0, ageMs) / this.config.penaltyHalfLifeMs);
  }

  /** lnd's getNodeProbability: the a-priori probability mixed with the node's relevant results. */
  private nodeProbability(
    nowMs: number,
    results: Map<NodeIdHex, PairHistory> | undefined,
    amountMsat: bigint,
    capacityMsat: bigint,
  ): number {
    const c = this.config;
    const apriori = c.aprioriHopProbability * capacityFactor(amountMsat, capacityMsat, c.capacityFraction);
    if (c.aprioriWeight === 1 || results === undefined || results.size === 0) return apriori;
    const aprioriFactor = 1 / (1 - c.aprioriWeight) - 1;
    let total = apriori * aprioriFactor;
    let weight = aprioriFactor;
    for (const r of results.values()) {
      if (amountMsat <= r.successAmountMsat) {
        weight += 1;
        total += PREVIOUS_SUCCESS_PROBABILITY;
      } else if (r.failTimeMs !== undefined && amountMsat >= r.failAmountMsat) {
        weight += this.failureWeight(nowMs - r.failTimeMs);
      }
    }
    return weight === 0 ? apriori : total / weight;
  }

  /** lnd's calculateProbability: the pair's own result on top of the node's probability. */
  private pairProbability(
    nowMs: number,
    results: Map<NodeIdHex, PairHistory> | undefined,
    nodeProbability: number,
    to: NodeIdHex,
    amountMsat: bigint,
  ): number {
    const last = results?.get(to);
    if (last === undefined) return nodeProbability;
    if (amountMsat <= last.successAmountMsat) return PREVIOUS_SUCCESS_PROBABILITY;
    if (last.failTimeMs === undefined || amountMsat < last.failAmountMsat) return nodeProbability;
    return nodeProbability * (1 - this.failureWeight(nowMs - last.failTimeMs));
  }
}

// ---- interpretation of an attempt's outcome (lnd's result_interpretation.go) ----
// Channel index k of a route is the channel from nodes[k] to nodes[k+1] (nodes[0]: the source); the amount it carried
// is route.totalAmountMsat for k = 0 and hops[k-1].amountToForwardMsat after.

function pairOf(route: Route, nodes: NodeIdHex[], k: number): { from: NodeIdHex; to: NodeIdHex; amountMsat: bigint } {
  return { from: nodes[k]!, to: nodes[k + 1]!, amountMsat: k === 0 ? route.totalAmountMsat : route.hops[k - 1]!.amountToForwardMsat };
}

function put(i: Interpretation, from: NodeIdHex, to: NodeIdHex, result: PairResult): void {
  const key = pairKey(from, to);
  i.pairs.delete(key);
  i.pairs.set(key, { from, to, result });
}

function successRange(i: Interpretation, route: Route, nodes: NodeIdHex[], fromK: number, toK: number): void {
  for (let k = fromK; k <= toK; k++) {
    const p = pairOf(route, nodes, k);
    put(i, p.from, p.to, { success: true, amountMsat: p.amountMsat });
  }
}

/** The channel failed for every amount, in both directions. */
function failPair(i: Interpretation, route: Route, nodes: NodeIdHex[], k: number): void {
  const p = pairOf(route, nodes, k);
  put(i, p.from, p.to, { success: false, amountMsat: 0n });
  put(i, p.to, p.from, { success: false, amountMsat: 0n });
}

function failPairRange(i: Interpretation, route: Route, nodes: NodeIdHex[], fromK: number, toK: number): void {
  for (let k = fromK; k <= toK; k++) failPair(i, route, nodes, k);
}

/** The channel lacked balance in this direction: amounts from the one it carried up failed. */
function failPairBalance(i: Interpretation, route: Route, nodes: NodeIdHex[], k: number): void {
  const p = pairOf(route, nodes, k);
  put(i, p.from, p.to, { success: false, amountMsat: p.amountMsat });
}

/** The node at position `idx` (1: the first hop) failed: all its pairs, and the channels in and out of it both ways. */
function failNode(i: Interpretation, route: Route, nodes: NodeIdHex[], idx: number): void {
  i.nodeFailure = nodes[idx]!;
  failPair(i, route, nodes, idx - 1);
  if (idx < route.hops.length) failPair(i, route, nodes, idx);
}

function interpretUnknown(i: Interpretation, route: Route, nodes: NodeIdHex[]): void {
  const n = route.hops.length;
  if (n === 1) {
    // a direct payment: only the payee can have garbled it
    failNode(i, route, nodes, 1);
    i.finalReason = 'error';
    return;
  }
  // one of them did it: every channel of the route, our own included
  failPairRange(i, route, nodes, 0, n - 1);
}

function isBadOnionName(f: FailureMessage | undefined): boolean {
  return f !== undefined && (f.name === 'invalid_onion_version' || f.name === 'invalid_onion_hmac' || f.name === 'invalid_onion_key');
}

function interpretSelf(i: Interpretation, route: Route, nodes: NodeIdHex[], failure: FailureMessage | undefined): void {
  // Our peer said our onion was malformed: we trust our own onion, so the peer is at fault. Other failures of our
  // own making come from conditions that changed since pathfinding; the next search sees the new state.
  if (isBadOnionName(failure)) {
    failNode(i, route, nodes, 1);
    if (route.hops.length === 1) i.finalReason = 'error';
  }
}

function interpretFinal(i: Interpretation, route: Route, nodes: NodeIdHex[], failure: FailureMessage | undefined): void {
  const n = route.hops.length;
  const failPayee = (): void => {
    failNode(i, route, nodes, n);
    if (n > 1) successRange(i, route, nodes, 0, n - 2);
    i.finalReason = 'error';
  };
  switch (failure?.name) {
    case 'final_incorrect_cltv_expiry':
    case 'final_incorrect_htlc_amount':
      // the payee, or its predecessor tampering with the HTLC: another route may do
      if (n === 1) {
        failNode(i, route, nodes, n);
        i.finalReason = 'error';
        return;
      }
      failPair(i, route, nodes, n - 1);
      successRange(i, route, nodes, 0, n - 2);
      return;
    case 'incorrect_payment_amount':
    case 'incorrect_or_unknown_payment_details':
      // the HTLC reached the payee as sent: the payment itself is wrong
      successRange(i, route, nodes, 0, n - 1);
      i.finalReason = 'incorrect_payment_details';
      return;
    case 'final_expiry_too_soon':
      i.finalReason = 'incorrect_payment_details';
      return;
    case 'mpp_timeout':
      // the shard arrived; the set did not complete in time: the payment may go on
      successRange(i, route, nodes, 0, n - 1);
      return;
    default:
      failPayee();
  }
}

function interpretIntermediate(
  i: Interpretation,
  route: Route,
  nodes: NodeIdHex[],
  idx: number,
  failure: FailureMessage | undefined,
): void {
  const outgoing = (): void => failPair(i, route, nodes, idx);
  const incoming = (): void => {
    // from the first hop the node itself is to blame: we trust our own channel
    if (idx === 1) {
      failNode(i, route, nodes, idx);
      return;
    }
    failPair(i, route, nodes, idx - 1);
    successRange(i, route, nodes, 0, idx - 2);
  };
  const node = (): void => {
    failNode(i, route, nodes, idx);
    if (idx > 1) successRange(i, route, nodes, 0, idx - 2);
  };
  const policy = (): void => {
    i.policyFailure = { from: nodes[idx]!, to: nodes[idx + 1]! };
  };
  switch (failure?.name) {
    case 'invalid_onion_version':
    case 'invalid_onion_hmac':
    case 'invalid_onion_key':
      // relayed from its successor, or its own: the outgoing channel covers both
      outgoing();
      return;
    case 'invalid_onion_payload':
      node();
      return;
    case 'unknown_next_peer':
    case 'permanent_channel_failure':
      outgoing();
      return;
    case 'channel_disabled':
      policy();
      outgoing();
      successRange(i, route, nodes, 0, idx - 1);
      return;
    case 'amount_below_minimum':
    case 'fee_insufficient':
    case 'incorrect_cltv_expiry':
      // the predecessor may have changed the HTLC, or our copy of the policy is old (second chance)
      policy();
      incoming();
      return;
    case 'temporary_channel_failure':
      failPairBalance(i, route, nodes, idx);
      successRange(i, route, nodes, 0, idx - 1);
      return;
    case 'expiry_too_soon':
      // some hop up to here delayed it: all of them, our own channel included
      if (idx === 1) {
        failNode(i, route, nodes, idx);
        return;
      }
      failPairRange(i, route, nodes, 0, idx - 1);
      return;
    default:
      // failures that should not happen (temporary/permanent node failure, missing features, an undecodable message)
      failNode(i, route, nodes, idx);
  }
}
