/**
 * The interfaces between the links, the switch and what they run on (lnd's
 * htlcswitch/interfaces.go, in small). htlc/ never opens sockets, files or
 * timers: the node hands these in.
 *
 *   channel driver ──events──▶ ChannelLink ──incoming, results──▶ HtlcSwitch
 *        ▲                         ▲                                │
 *        └── add / settle / fail ──┴────── forward, resolve ◀───────┤
 *                                                                   ▼
 *                                            FinalHopHandler (the invoice registry)
 */
import type { ChannelInput, StepResult } from '../channel/types.js';
import type { FailureMessage, HopPayload } from '../../onion/index.js';

/** An HTLC by the channel it lives on (channel id hex) and its id there. lnd: models.CircuitKey. */
export interface CircuitKey {
  channelId: string;
  htlcId: bigint;
}

/** Forwarding policy of one of our channels, applied to HTLCs leaving through it (lnd's defaults). */
export interface ForwardingPolicy {
  baseFeeMsat: bigint;
  feeRatePpm: bigint;
  /** What we keep between the incoming and outgoing expiry (lnd: bitcoin.timelockdelta 80). */
  cltvExpiryDelta: number;
  htlcMinimumMsat: bigint;
  /** Undefined: the channel's capacity. */
  htlcMaximumMsat?: bigint;
}

export const DEFAULT_FORWARDING_POLICY: ForwardingPolicy = {
  baseFeeMsat: 1000n,
  feeRatePpm: 1n,
  cltvExpiryDelta: 80,
  htlcMinimumMsat: 1000n,
};

/** Switch-wide settings (lnd's values unless said). */
export interface SwitchConfig {
  /**
   * Refuse to forward an HTLC whose outgoing expiry is this close to the tip: expiry_too_soon (the broadcast delta plus
   * 3, as lnd derives it).
   */
  outgoingCltvRejectDelta: number;
  /**
   * Go to chain when an outgoing HTLC we forwarded is still unresolved this many blocks before its expiry
   * (lnd: DefaultOutgoingBroadcastDelta, 10): the arbitrator takes it back before the incoming side expires.
   */
  outgoingBroadcastDelta: number;
  /** Refuse an incoming HTLC (to forward or to settle) that expires within this many blocks (lnd: DefaultIncomingBroadcastDelta 10). */
  incomingBroadcastDelta: number;
  /** Most blocks into the future an outgoing expiry may be: expiry_too_far (two weeks, as lnd). */
  maxCltvExpiryDelta: number;
  /** Bound on HTLCs the switch holds unresolved (incoming records + local attempts); further ones are failed back. */
  maxPendingHtlcs: number;
  /** Bound on settled/failed attempt results kept for `attemptResult` (oldest dropped). */
  maxAttemptResults: number;
}

export const DEFAULT_SWITCH_CONFIG: SwitchConfig = {
  outgoingCltvRejectDelta: 13,
  outgoingBroadcastDelta: 10,
  incomingBroadcastDelta: 10,
  maxCltvExpiryDelta: 2016,
  maxPendingHtlcs: 100_000,
  maxAttemptResults: 100_000,
};

/** Commitment batching as lnd's link does it: sign `delayMs` after the first pending update, or at once when `maxPending` wait. */
export interface BatchConfig {
  delayMs: number;
  maxPending: number;
}

export const DEFAULT_BATCH_CONFIG: BatchConfig = { delayMs: 50, maxPending: 10 };

/** Timers, handed in by node/ (htlc/ creates none). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Our node key's two uses here: the onion's ECDH and channel_update signatures. */
export interface NodeSigner {
  readonly nodeId: Uint8Array;
  /** SHA256(compressed(priv·point)), as BOLT 4's shared secret. */
  ecdh(point: Uint8Array): Uint8Array;
  /** Compact 64-byte signature of a 32-byte digest. */
  signDigest(digest32: Uint8Array): Uint8Array;
  /** The raw key, for onion peeling (peelOnion takes it). */
  readonly privateKey: Uint8Array;
}

/**
 * What a link needs of its channel, given by whoever owns the channel driver
 * (the channel manager). `apply` runs on the driver's queue; never await it
 * from inside a channel event callback of the same channel.
 */
export interface LinkChannel {
  readonly channelId: string;
  /** BOLT 7 short_channel_id, once the funding transaction is deep enough. */
  shortChannelId(): bigint | undefined;
  peerNodeId(): Uint8Array;
  capacityMsat(): bigint;
  /** Connected, reestablished, not failed, in a phase that takes adds. */
  canAdd(): boolean;
  /** The channel failed (an error, a force close): resolutions are still recorded but not signed. */
  failed(): boolean;
  apply(input: ChannelInput): Promise<StepResult>;
  /** An incoming HTLC is irrevocably committed and no resolution of ours is pending for it. */
  incomingOpen(htlcId: bigint): boolean;
  /** After a fulfill was recorded on a failed channel: claim the HTLC on chain. */
  preimageLearnt(htlcId: bigint): Promise<void>;
  /** Force-close the channel (the chain arbitrator takes its HTLCs from there). */
  forceClose(reason: string): Promise<void>;
}

/** An HTLC for us, handed to the final-hop handler. */
export interface FinalHtlc {
  key: CircuitKey;
  amountMsat: bigint;
  cltvExpiry: number;
  paymentHash: Uint8Array;
  payload: HopPayload;
  /** The tip height the switch saw when it handed the HTLC over. */
  currentHeight: number;
  /** When the switch first recorded the HTLC (ms since the epoch; the same after a restart). */
  arrivedAt: number;
}

/** A protocol outcome, as values: settle with the preimage, fail with a BOLT 4 failure, or hold (answer later). */
export type FinalResolution = { action: 'settle'; preimage: Uint8Array } | { action: 'fail'; failure: FailureMessage } | { action: 'hold' };

/**
 * The final hop (lnd: the invoice registry). `handle` may answer at once, or
 * `hold` and call `resolve` later. A hold is not written anywhere: after a
 * restart the switch asks again for every HTLC for us it has not answered
 * (with the same `arrivedAt`), so answer idempotently.
 */
export interface FinalHopHandler {
  handle(htlc: FinalHtlc, resolve: (r: Exclude<FinalResolution, { action: 'hold' }>) => void): FinalResolution | Promise<FinalResolution>;
}

/**
 * One hop of a route, as lnd's route.Hop: `shortChannelId` is the channel that reaches the hop; `amountToForwardMsat`
 * and `outgoingCltvValue` what the hop sends on (at the final hop: what it receives), which is what its payload says.
 */
export interface RouteHop {
  pubkey: Uint8Array;
  shortChannelId: bigint;
  amountToForwardMsat: bigint;
  outgoingCltvValue: number;
}

export interface Route {
  /** What the first channel carries (the last hop's amount plus every fee). */
  totalAmountMsat: bigint;
  /** The first HTLC's cltv_expiry. */
  totalTimeLock: number;
  hops: RouteHop[];
}

/** Records of the final hop's payload besides amount and expiry. */
export interface FinalPayloadRecords {
  mpp?: { paymentAddr: Uint8Array; totalMsat: bigint };
  amp?: { share: Uint8Array; setId: Uint8Array; childIndex: number };
  keysendPreimage?: Uint8Array;
  paymentMetadata?: Uint8Array;
  customRecords?: { type: bigint; value: Uint8Array }[];
}

/**
 * The result of a sendToRoute attempt. `failureSourceIndex`: 0 = us, i = the i-th hop of the route.
 * From BOLT 4 attribution data, when the answer carried some: `holdTimesMs`, the hold time each hop reported, first
 * hop first, for the hops whose HMAC verified (on a failure: up to the failing hop); `attributionBrokenAt`, the route
 * index (as `failureSourceIndex`) of the first hop whose HMAC did not verify where it should have (it or the hop
 * before it broke the data).
 */
export type AttemptResult =
  | { attemptId: bigint; status: 'settled'; preimage: Uint8Array; holdTimesMs?: number[]; attributionBrokenAt?: number }
  | {
      attemptId: bigint;
      status: 'failed';
      failureSourceIndex: number;
      failure?: FailureMessage;
      unreadable?: boolean;
      reason: string;
      holdTimesMs?: number[];
      attributionBrokenAt?: number;
    };
