/**
 * Types of the BOLT 2 channel state machine.
 *
 * The machine is a pure function `step(ctx, state, input) → StepResult`: the
 * next state, the messages to send, the records to persist and events for the
 * rest of the node. A driver persists `writes` before it sends `send` (BOLT 2:
 * nothing that reveals a signature or a revocation leaves before the state that
 * produced it is durable), then hands out `events`.
 *
 * Accounting follows lnd's model (lnwallet/channel.go): each side has an
 * append-only update log (adds, fulfills, fails, fee updates) with absolute
 * indices; every commitment records how many entries of each log it includes
 * (`ourLogIndex` / `theirLogIndex`), so "which updates are in which
 * commitment" is two counters per commitment, and the next commitment of a
 * chain is the previous one plus the log entries between the old and new
 * counters. What each chain may include:
 *   - the remote's next commitment (we sign it): all of our updates, and theirs
 *     up to what our current local commitment includes (theirs that we acked);
 *   - our next commitment (they sign it): all of their updates, and ours up to
 *     what the remote's current (revoked-up-to) commitment includes.
 * Our secret keys never live in the state: `ctx.secrets` carries them.
 */
import type { ChannelType } from '../bolt3/index.js';
import type { BatchOp } from '../../db/store.js';
import type { ChannelMessage, CommitmentSigned, UpdateAddHtlc } from '../../wire/channel-messages.js';
import { AmpnodeError } from '../../wire/errors.js';

export type { ChannelType };

/** The parameters ONE side announced in open_channel/accept_channel; each constrains the OTHER side. */
export interface ChannelConfig {
  /** Dust limit of the announcing side's own commitment. */
  dustLimitSat: bigint;
  /** Cap on the value of HTLCs the other side may have offered to the announcing side at once. */
  maxHtlcValueInFlightMsat: bigint;
  /** Reserve the OTHER side must keep in its balance (BOLT 2: "the minimum amount that the other node is to keep"). */
  channelReserveSat: bigint;
  /** Smallest HTLC the announcing side accepts. */
  htlcMinimumMsat: bigint;
  /** CSV delay the other side's to-self outputs get. */
  toSelfDelay: number;
  /** Most HTLCs the announcing side accepts from the other at once. */
  maxAcceptedHtlcs: number;
}

export interface ChannelPubkeys {
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
}

/** Our secret keys for one channel (derived from the node seed and the channel's key index; never persisted). */
export interface ChannelSecrets {
  fundingPriv: Uint8Array;
  revocationBaseSecret: Uint8Array;
  paymentBaseSecret: Uint8Array;
  delayedPaymentBaseSecret: Uint8Array;
  htlcBaseSecret: Uint8Array;
  /** The seed of our per-commitment secrets (BOLT 3 generate_from_seed). */
  perCommitmentSeed: Uint8Array;
}

/** One entry of an update log. `index` is absolute within its log. */
export type LogEntry =
  | {
      kind: 'add';
      index: number;
      htlcId: bigint;
      amountMsat: bigint;
      paymentHash: Uint8Array;
      cltvExpiry: number;
      onionRoutingPacket: Uint8Array;
      blindingPoint?: Uint8Array;
    }
  /** `attributionData`: BOLT 4 attribution data (920 bytes) sent or received with the update, when there was some. */
  | { kind: 'fulfill'; index: number; htlcId: bigint; paymentPreimage: Uint8Array; attributionData?: Uint8Array }
  | { kind: 'fail'; index: number; htlcId: bigint; reason: Uint8Array; attributionData?: Uint8Array }
  | { kind: 'fail_malformed'; index: number; htlcId: bigint; sha256OfOnion: Uint8Array; failureCode: number }
  | { kind: 'fee'; index: number; feeratePerKw: number };

export interface UpdateLog {
  /** Index of `entries[0]`; entries below it were compacted away (included in both chains). */
  base: number;
  entries: LogEntry[];
  /** Id the next add of this log gets. */
  nextHtlcId: bigint;
}

/** An HTLC in a commitment, from OUR point of view (`offered` = we added it). */
export interface ChannelHtlc {
  offered: boolean;
  id: bigint;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  cltvExpiry: number;
}

/** One commitment of either chain, described from our point of view. */
export interface CommitmentState {
  height: bigint;
  ourLogIndex: number;
  theirLogIndex: number;
  ourBalanceMsat: bigint;
  theirBalanceMsat: bigint;
  feeratePerKw: number;
  htlcs: ChannelHtlc[];
}

/** Our current commitment, with the peer's signatures that make it broadcastable. */
export interface LocalCommitment extends CommitmentState {
  remoteSig: Uint8Array;
  remoteHtlcSigs: Uint8Array[];
}

export type ChannelPhase =
  /** opener: open_channel sent, waiting for accept_channel */
  | 'awaiting_accept'
  /** opener: accept_channel received, waiting for the wallet's funding transaction */
  | 'awaiting_funding_tx'
  /** opener: funding_created sent */
  | 'awaiting_funding_signed'
  /** acceptor: accept_channel sent */
  | 'awaiting_funding_created'
  /** both: commitments 0 signed, funding not yet deep enough or channel_ready not yet exchanged */
  | 'awaiting_ready'
  | 'normal'
  /** shutdown sent or received; HTLCs draining */
  | 'shutdown'
  /** no HTLCs left; closing_signed being exchanged */
  | 'negotiating'
  | 'closed';

export interface ShutdownState {
  localScript?: Uint8Array;
  remoteScript?: Uint8Array;
  sentShutdown: boolean;
  receivedShutdown: boolean;
  /** Our last closing_signed offer. */
  lastSentFeeSat?: bigint;
  lastReceivedFeeSat?: bigint;
  /** Feerate our ideal closing fee is computed at. */
  feeratePerKw?: number;
  /** The signed closing tx, once agreed (raw bytes). */
  closingTx?: Uint8Array;
}

/** Everything persisted about one channel (secrets excluded). */
export interface ChannelState {
  version: 1;
  phase: ChannelPhase;
  chainHash: Uint8Array;
  temporaryChannelId: Uint8Array;
  /** The final channel id; equal to the temporary one until funding_created. */
  channelId: Uint8Array;
  opener: 'local' | 'remote';
  channelType: ChannelType;
  /** Derivation index of our keys for this channel. */
  keyIndex: number;
  fundingSat: bigint;
  pushMsat: bigint;
  fundingTxid?: Uint8Array;
  fundingOutputIndex?: number;
  /** The funding tx (opener only), until it is broadcast and confirmed. */
  fundingTx?: Uint8Array;
  minimumDepth: number;
  channelFlags: number;
  local: { config: ChannelConfig; pubkeys: ChannelPubkeys; upfrontShutdownScript: Uint8Array };
  remote: { config: ChannelConfig; pubkeys: ChannelPubkeys; upfrontShutdownScript: Uint8Array };
  ourLog: UpdateLog;
  theirLog: UpdateLog;
  localCommit: LocalCommitment;
  /** The remote's current (unrevoked) commitment. */
  remoteCommit: CommitmentState;
  /** The remote's next commitment: signed by us, not yet revoked past by them. */
  remoteNextCommit?: CommitmentState;
  /** The commitment_signed we sent for `remoteNextCommit`, kept for retransmission. */
  sentCommitSig?: CommitmentSigned;
  /** Per-commitment point of `remoteCommit`. */
  remoteCurrentPoint: Uint8Array;
  /** Per-commitment point of the remote's next commitment (from channel_ready / revoke_and_ack). */
  remoteNextPoint?: Uint8Array;
  /** Encoded bolt3 RevocationStore of the remote's revealed secrets. */
  revocationStore: Uint8Array;
  /** Which of revoke_and_ack / commitment_signed we sent last (for the retransmission order). */
  lastSentWasRevoke: boolean;
  fundingDepthReached: boolean;
  sentChannelReady: boolean;
  receivedChannelReady: boolean;
  shortChannelId?: bigint;
  /** Connection-scoped: cleared on disconnect, set when channel_reestablish was received (or the channel was just opened). */
  reestablished: boolean;
  /** We sent channel_reestablish on this connection. */
  sentReestablish: boolean;
  shutdown?: ShutdownState;
  /**
   * HTLC resolutions and incoming HTLCs that became irrevocable, persisted in
   * the same write as the revocation that made them so, until the caller
   * confirms it handled them (`events_handled`): delivered at least once,
   * even across a crash.
   */
  outbox?: OutboxEvent[];
  /**
   * Our fulfills and fails waiting to be sent: asked for while the peer was
   * away, or sent but reversed by a reconnection before a commitment_signed
   * covered them (BOLT 2 forgets such updates on both sides). They are sent
   * again right after the next channel_reestablish, so a resolution asked for
   * once is never lost; persisted, so a preimage we released survives a
   * crash. `index` is meaningless here (a new one is given when sent).
   */
  pendingResolutions?: ResolutionEntry[];
}

export type ResolutionEntry = Extract<LogEntry, { kind: 'fulfill' | 'fail' | 'fail_malformed' }>;

export type OutboxEvent = Extract<ChannelEvent, { type: 'htlc_incoming' | 'htlc_fulfilled' | 'htlc_failed' }>;

/** What the machine is asked to do. */
export type ChannelInput =
  | { type: 'message'; msg: ChannelMessage }
  | {
      type: 'add_htlc';
      amountMsat: bigint;
      paymentHash: Uint8Array;
      cltvExpiry: number;
      onionRoutingPacket: Uint8Array;
      blindingPoint?: Uint8Array;
    }
  | { type: 'fulfill_htlc'; id: bigint; paymentPreimage: Uint8Array; attributionData?: Uint8Array }
  | { type: 'fail_htlc'; id: bigint; reason: Uint8Array; attributionData?: Uint8Array }
  | { type: 'fail_malformed_htlc'; id: bigint; sha256OfOnion: Uint8Array; failureCode: number }
  | { type: 'update_fee'; feeratePerKw: number }
  /** Sign the remote's next commitment if there is anything to sign. */
  | { type: 'sign' }
  /** The funding output has `depth` confirmations (at `shortChannelId`). */
  | { type: 'funding_depth'; depth: number; shortChannelId?: bigint }
  /** The wallet made the funding transaction (opener). */
  | { type: 'funding_tx'; tx: Uint8Array; outputIndex: number }
  | { type: 'connected' }
  | { type: 'disconnected' }
  /** These outbox events (the same objects) were handled; not persisted by itself, so delivery is at least once. */
  | { type: 'events_handled'; events: readonly ChannelEvent[] }
  /** Start a cooperative close (scriptPubKey: where our funds go; defaults to the upfront script). */
  | { type: 'shutdown'; scriptPubKey?: Uint8Array; feeratePerKw: number };

export type ChannelEvent =
  /** An HTLC the peer offered is now irrevocably committed: forward or settle it. */
  | { type: 'htlc_incoming'; htlc: LogEntry & { kind: 'add' } }
  /** The peer revealed the preimage of an HTLC we offered (not yet irrevocable; safe to pass upstream at once). */
  | { type: 'preimage_received'; id: bigint; paymentPreimage: Uint8Array; attributionData?: Uint8Array }
  /** An HTLC we offered was fulfilled, irrevocably. */
  | { type: 'htlc_fulfilled'; id: bigint; paymentPreimage: Uint8Array; attributionData?: Uint8Array }
  /** An HTLC we offered failed, irrevocably. */
  | { type: 'htlc_failed'; id: bigint; reason?: Uint8Array; attributionData?: Uint8Array; sha256OfOnion?: Uint8Array; failureCode?: number }
  /** An HTLC we added was never signed before a disconnect: it is forgotten (offer it again or fail it upstream). */
  | { type: 'htlc_unsent'; htlc: LogEntry & { kind: 'add' } }
  /** Opener: make the funding transaction paying this script. */
  | { type: 'funding_needed'; scriptPubKey: Uint8Array; amountSat: bigint; feeratePerKw: number }
  /** Opener: the opening failed before funding_signed; unlock the funding tx's inputs (never broadcast it). */
  | { type: 'release_funding'; tx: Uint8Array }
  /** Opener: funding_signed verified and persisted; broadcast now. */
  | { type: 'broadcast_funding'; tx: Uint8Array }
  /** Watch the funding output for `minimumDepth` confirmations. */
  | { type: 'watch_funding'; txid: Uint8Array; outputIndex: number; minimumDepth: number }
  | { type: 'channel_ready' }
  | { type: 'channel_reestablished' }
  /** The peer proved we lost state: do NOT broadcast our commitment. */
  | { type: 'data_loss'; theirCurrentPoint: Uint8Array }
  | { type: 'closing_tx'; tx: Uint8Array; feeSat: bigint }
  | { type: 'channel_closed' };

/**
 * A failure. `level` says what to tell the peer: 'error' (BOLT 1 `error`,
 * the channel is failed), 'warning' (BOLT 1 `warning`, keep the channel), or
 * 'local' (a bad request from our own side; nothing is sent).
 */
export interface ChannelFailure {
  level: 'error' | 'warning' | 'local';
  code: ChannelErrorCode;
  message: string;
  channelId: Uint8Array;
}

export type ChannelErrorCode =
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_BAD_HTLC_SIGNATURES'
  | 'ERR_BAD_REVOCATION'
  | 'ERR_UNEXPECTED_MESSAGE'
  | 'ERR_UNKNOWN_HTLC'
  | 'ERR_HTLC_LIMIT'
  | 'ERR_HTLC_AMOUNT'
  | 'ERR_CANNOT_AFFORD'
  | 'ERR_DUST_EXPOSURE'
  | 'ERR_FEE'
  | 'ERR_NOTHING_TO_SIGN'
  | 'ERR_AWAITING_REVOCATION'
  | 'ERR_BAD_PARAMETERS'
  | 'ERR_CHANNEL_TYPE'
  | 'ERR_SYNC'
  | 'ERR_DATA_LOSS'
  | 'ERR_SHUTDOWN'
  | 'ERR_CLOSING'
  | 'ERR_UNKNOWN_CHANNEL'
  | 'ERR_NOT_READY'
  /** a field the checks did not foresee is unusable (an invalid point or scalar) */
  | 'ERR_INVALID_MESSAGE';

export class ChannelError extends AmpnodeError<ChannelErrorCode> {}

export interface StepResult {
  state: ChannelState;
  send: ChannelMessage[];
  writes: BatchOp[];
  events: ChannelEvent[];
  failure?: ChannelFailure;
}

/** Node-wide policy the machine applies (lnd's defaults unless stated). */
export interface ChannelPolicy {
  /** Cap on dust HTLC value on either commitment (lnd: 500 000 sat). */
  maxDustExposureMsat: bigint;
}

export const DEFAULT_POLICY: ChannelPolicy = { maxDustExposureMsat: 500_000_000n };

/** The optional attribution data field, present only when there is some (records and messages stay as before without it). */
export function withAttribution(attributionData: Uint8Array | undefined): { attributionData?: Uint8Array } {
  return attributionData === undefined ? {} : { attributionData };
}

/** What a step may use besides the state: our secrets and policy. */
export interface StepContext {
  secrets: ChannelSecrets;
  policy: ChannelPolicy;
  /** Where our funds go on a cooperative close when no upfront script was set. */
  shutdownScript?: Uint8Array;
  /** Signatures made ahead for the commitment_signed a `sign` step on exactly this state sends (the sig pool). */
  presigned?: { state: ChannelState; signature: Uint8Array; htlcSignatures: Uint8Array[] };
  /** Checks one signature of a commitment_signed received; the library's strict verify unless set. */
  verify?: (sig64: Uint8Array, digest32: Uint8Array, pub: Uint8Array) => boolean;
}

/** One ECDSA signature to make: a 32-byte digest under a private key. */
export interface SignJob {
  digest: Uint8Array;
  priv: Uint8Array;
}

/** One compact signature to check against a digest and a compressed public key. */
export interface VerifyJob {
  sig: Uint8Array;
  digest: Uint8Array;
  pub: Uint8Array;
}

/**
 * Makes and checks batches of commitment signatures off the thread that runs the channels (lnd's sigpool). Results
 * are exactly the synchronous ones: RFC 6979 signatures, strict low-S verification.
 */
export interface SigPool {
  /** Batches smaller than this are cheaper done inline. */
  readonly minBatch: number;
  /** One compact signature per job, in order. */
  sign(jobs: SignJob[]): Promise<Uint8Array[]>;
  /** true when every job's signature verifies. */
  verify(jobs: VerifyJob[]): Promise<boolean>;
}

export type AddEntry = LogEntry & { kind: 'add' };
export type { UpdateAddHtlc };
