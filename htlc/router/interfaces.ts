/**
 * The router's seams (lnd's routing/ package in small): the graph pathfinding reads, the memory of failures (mission
 * control), and what the payment lifecycle asks of them. Pathfinding (`pathfind.ts`, `graph.ts`,
 * `mission-control.ts`) implements `RouteFinder` and `MissionControl`; the payment lifecycle (`control-tower.ts`,
 * `payment-lifecycle.ts`) uses them with the switch's `sendToRoute` (htlc/switch/switch.ts). Pure: no sockets, files
 * or timers; time comes in as `nowMs`.
 */
import type { FailureMessage } from '../../onion/index.js';
import type { FinalPayloadRecords, Route } from '../switch/interfaces.js';

/** A node id as 66 lowercase hex characters (compressed pubkey): usable as a Map key. */
export type NodeIdHex = string;

/** A channel's forwarding policy in one direction, as its channel_update (or a route hint) gives it. */
export interface EdgePolicy {
  feeBaseMsat: bigint;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
  htlcMinimumMsat: bigint;
  /** undefined: no maximum known (the capacity bounds it). */
  htlcMaximumMsat?: bigint;
  disabled?: boolean;
}

/**
 * A directed channel from `from` to `to`. `policy` is the policy `from` charges to forward over it (for our own
 * channels the first hop charges nothing: `from` is us). `localBalanceMsat` is set only for our own channels: what we
 * can send on it now (spendable, after reserve and in-flight HTLCs), which pathfinding treats as exact.
 */
export interface DirectedEdge {
  shortChannelId: bigint;
  from: NodeIdHex;
  to: NodeIdHex;
  capacitySat: bigint;
  policy: EdgePolicy;
  localBalanceMsat?: bigint;
  /** Our own channel's remaining HTLC slots (max_accepted_htlcs less those in flight); undefined for others. */
  freeHtlcSlots?: number;
}

/** The graph pathfinding walks: our channels now; the public graph from gossip later fills the same interface. */
export interface RoutingGraph {
  /** Edges that end at `node` (pathfinding goes backwards from the destination). */
  edgesTo(node: NodeIdHex): Iterable<DirectedEdge>;
  /** Edges that start at `node`. */
  edgesFrom(node: NodeIdHex): Iterable<DirectedEdge>;
  /** A node's features from its announcement (or undefined when unknown). */
  nodeFeatures?(node: NodeIdHex): Uint8Array | undefined;
}

/** One hop of a BOLT 11 route hint (`r`): the channel from `nodeId` towards the next hop (the last: the payee). */
export interface RouteHintHop {
  nodeId: Uint8Array;
  shortChannelId: bigint;
  feeBaseMsat: bigint;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

export interface RouteRequest {
  source: NodeIdHex;
  target: NodeIdHex;
  /** What the final hop receives with this shard. */
  amountMsat: bigint;
  /** The final hop's min_final_cltv_expiry_delta (invoice `c`; 18 when absent, as BOLT 11). */
  finalCltvDelta: number;
  /** The chain tip: the final hop's expiry is tip + finalCltvDelta (plus any shadow offset the finder adds). */
  currentHeight: number;
  /** The most fees this route may cost (excluding the amount). */
  feeLimitMsat: bigint;
  /** The most total time lock above the tip (lnd's cltv_limit; default 2016). */
  cltvLimit: number;
  routeHints: RouteHintHop[][];
  excludedChannels?: ReadonlySet<bigint>;
  excludedNodes?: ReadonlySet<NodeIdHex>;
  /**
   * At most this many hops (default 27: lnd's sphinx.NumMaxHops, which the switch enforces too; the legacy 65-byte
   * frames allowed 20). The 1300 bytes of hop payloads bound a route as well, whatever this says.
   */
  maxHops?: number;
  /** Our own channels to start from (lnd's outgoing_chan_ids); empty or absent: any. */
  outgoingChannels?: ReadonlySet<bigint>;
  /** The last hop must come in over one of these from this node (lnd's last_hop). */
  lastHop?: NodeIdHex;
  /** The final hop's extra records (MPP, AMP, keysend, metadata, custom): they count against the onion's 1300 bytes. */
  finalPayloadRecords?: FinalPayloadRecords;
  /** The payee's features (invoice `9`); when absent, the graph's node features of the target, if any. */
  destFeatures?: Uint8Array;
  /**
   * Policies that replace the graph's (and the route hints') for some directed channels, keyed `${scid}/${from}`: the
   * channel_updates this payment's failures carried (lnd applies them before the next attempt).
   */
  policyOverrides?: ReadonlyMap<string, { readonly policy: EdgePolicy }>;
}

/** No route, with the reason the lifecycle reports (lnd's FailureReasonNoRoute and its kin). */
export type RouteError =
  { kind: 'no_route'; reason: string } | { kind: 'insufficient_balance'; reason: string } | { kind: 'fee_limit'; reason: string };

export interface RouteFinder {
  /** A route carrying `req.amountMsat` to `req.target`, or why there is none. */
  findRoute(req: RouteRequest, nowMs: number): Route | RouteError;
}

/** What a failed attempt tells mission control: the route, where it failed, and how. */
export interface AttemptFailure {
  route: Route;
  /**
   * 0: we failed it ourselves; i: the i-th hop of the route sent the failure; negative (the switch's -1) or `unreadable`:
   * no hop could be named. A failure the i-th hop sent whose message did not decode comes with `failure` undefined.
   */
  failureSourceIndex: number;
  failure?: FailureMessage;
  /** The failure could not be decrypted (a hop garbled it). */
  unreadable?: boolean;
}

/** Why a payment cannot go on, as lnd's FailureReason names them. */
export type FinalFailureReason = 'incorrect_payment_details' | 'error';

/** What mission control made of a failed attempt. */
export interface FailureInterpretation {
  /** No other route can help: fail the payment with `reason`. */
  final: boolean;
  /** With `final`: a FinalFailureReason. */
  reason?: FinalFailureReason | string;
  /**
   * The channel_update the failure carried (raw, as onion/failure.ts keeps it) and the node that sent it, who must
   * have signed it: the caller applies it before the next attempt (the payment lifecycle: to its later searches,
   * RouteRequest.policyOverrides; a ChannelGraph of its own: ChannelGraph.applyChannelUpdate).
   */
  channelUpdate?: Uint8Array;
  erringNode?: NodeIdHex;
  /**
   * A policy failure (fee, CLTV, minimum, disabled) from a pair that had no second chance within the last minute:
   * nothing was penalised, on the chance that our copy of its channel_update was stale (lnd's second chance).
   */
  secondChance?: boolean;
}

/** The success probability pathfinding asks for each edge: MissionControl.probability has this shape. */
export type ProbabilitySource = (from: NodeIdHex, to: NodeIdHex, amountMsat: bigint, capacityMsat: bigint, nowMs: number) => number;

/** lnd's mission control: remembers which pairs failed which amounts, and forgets with a half-life. */
export interface MissionControl {
  reportSuccess(route: Route, source: NodeIdHex, nowMs: number): void;
  /** Returns whether the failure is final for the whole payment (e.g. incorrect_or_unknown_payment_details at the final hop). */
  reportFailure(f: AttemptFailure, source: NodeIdHex, nowMs: number): FailureInterpretation;
  /** The probability (0..1) that `amountMsat` gets through the pair from → to now. */
  probability(from: NodeIdHex, to: NodeIdHex, amountMsat: bigint, capacityMsat: bigint, nowMs: number): number;
}
