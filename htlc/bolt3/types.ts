/**
 * Shared types and constants of the BOLT 3 transaction layer.
 *
 * Everything here is described from the point of view of ONE commitment
 * transaction and its holder, exactly as BOLT 3 words it: "local" is the node
 * that holds (and may broadcast) the commitment, "remote" is the other node.
 * When a channel state machine builds the commitment it sends a signature for,
 * it fills these objects with the counterparty in the "local" role.
 *
 * Amounts are `bigint` (sat / msat, named in the field); feerates, CLTV
 * expiries and CSV delays are 32-bit and stay `number`.
 */
import type { Tx } from './btc.js';

/** The channel types this layer builds transactions for (BOLT 2 `channel_type`). */
export type ChannelType =
  /** option_static_remotekey, feature 12: `{12}` */
  | 'static_remotekey'
  /** option_anchors_zero_fee_htlc_tx on top of static_remotekey, features 12 and 22: `{12,22}` */
  | 'anchors_zero_fee_htlc';

/** A party relative to the holder of the commitment being described. */
export type Party = 'local' | 'remote';

/** Who signs an HTLC transaction of a commitment: its holder or the counterparty. */
export type HtlcSigner = 'holder' | 'counterparty';

/**
 * The HTLC's direction relative to the commitment's holder: `offered` HTLCs were
 * added by the holder (they pay the remote on success), `received` HTLCs were
 * added by the remote (they pay the holder on success).
 */
export type HtlcDirection = 'offered' | 'received';

/** The funding transaction's output that every commitment spends. */
export interface FundingOutpoint {
  /** 32-byte txid in transaction (internal) byte order, as carried in `funding_created`. */
  txid: Uint8Array;
  outputIndex: number;
}

/** One HTLC as it appears in a commitment. */
export interface CommitmentHtlc {
  id: bigint;
  direction: HtlcDirection;
  amountMsat: bigint;
  cltvExpiry: number;
  /** 32-byte SHA256 payment hash. */
  paymentHash: Uint8Array;
}

/**
 * The per-commitment keys of one commitment (BOLT 3 "Key Derivation"), all
 * 33-byte compressed points. `deriveCommitmentKeys` computes them from the
 * basepoints and the holder's per-commitment point.
 */
export interface CommitmentKeys {
  /** revocationpubkey: the remote's revocation basepoint combined with the holder's per-commitment point. */
  revocationPubkey: Uint8Array;
  /** local_delayedpubkey: the holder's delayed-payment basepoint tweaked by the per-commitment point. */
  localDelayedPubkey: Uint8Array;
  /** local_htlcpubkey: the holder's HTLC basepoint tweaked. */
  localHtlcPubkey: Uint8Array;
  /** remote_htlcpubkey: the remote's HTLC basepoint tweaked. */
  remoteHtlcPubkey: Uint8Array;
  /** The remote's payment basepoint, untweaked (option_static_remotekey): to_remote pays it. */
  remotePaymentPubkey: Uint8Array;
}

/** Everything needed to build one commitment transaction. */
export interface CommitmentParams {
  channelType: ChannelType;
  fundingOutpoint: FundingOutpoint;
  fundingSat: bigint;
  /** The holder's funding pubkey. */
  localFundingPubkey: Uint8Array;
  /** The remote's funding pubkey. */
  remoteFundingPubkey: Uint8Array;
  /** Which side opened (funded) the channel; it pays the fee and, with anchors, both anchors. */
  opener: Party;
  /** The 48-bit commitment number (0 for the first commitment). */
  commitmentNumber: bigint;
  /** The opener's payment_basepoint (used to obscure the commitment number). */
  openerPaymentBasepoint: Uint8Array;
  /** The acceptor's payment_basepoint. */
  acceptorPaymentBasepoint: Uint8Array;
  /** The CSV delay on the holder's outputs: the `to_self_delay` the REMOTE asked for. */
  toSelfDelay: number;
  /** The holder's dust_limit_satoshis. */
  dustLimitSat: bigint;
  feeratePerKw: number;
  /** The holder's balance in msat, after removing HTLCs in flight, BEFORE the commitment fee and anchors. */
  toLocalMsat: bigint;
  /** The remote's balance in msat, after removing HTLCs in flight, BEFORE the commitment fee and anchors. */
  toRemoteMsat: bigint;
  keys: CommitmentKeys;
  /** All HTLCs in flight on this commitment, trimmed or not (order does not matter). */
  htlcs: readonly CommitmentHtlc[];
}

/** What an output of a commitment transaction is. */
export type CommitmentOutputKind = 'to_local' | 'to_remote' | 'local_anchor' | 'remote_anchor' | 'offered_htlc' | 'received_htlc';

export interface CommitmentOutput {
  /** Output index in the transaction (after BIP 69 sorting). */
  index: number;
  kind: CommitmentOutputKind;
  valueSat: bigint;
  scriptPubKey: Uint8Array;
  /** The P2WSH witness script, or null for the P2WPKH to_remote of static_remotekey. */
  witnessScript: Uint8Array | null;
  /** The HTLC, for `offered_htlc` / `received_htlc` outputs; null otherwise. */
  htlc: CommitmentHtlc | null;
}

/** An unsigned commitment transaction and what is in it. */
export interface Commitment {
  params: CommitmentParams;
  /** The unsigned transaction (witness empty). */
  tx: Tx;
  /** The txid in the usual (reversed, RPC) hex form. */
  txid: string;
  /** Every output, in transaction order. */
  outputs: CommitmentOutput[];
  /** The HTLC outputs only, in transaction order: the order of `htlc_signatures` in `commitment_signed`. */
  htlcOutputs: CommitmentOutput[];
  /** HTLCs left out of the transaction as dust. */
  trimmedHtlcs: CommitmentHtlc[];
  /** The fee the transaction pays: the computed fee plus every trimmed amount and sub-satoshi remainder. */
  feeSat: bigint;
  /** The fee by the weight formula at `feeratePerKw` (what BOLT 3 calls the base fee). */
  baseFeeSat: bigint;
  /** The 2-of-2 funding witness script the transaction spends. */
  fundingWitnessScript: Uint8Array;
  /** The commitment number XOR the obscuring factor (48 bits). */
  obscuredCommitmentNumber: bigint;
}

export type HtlcTxKind = 'htlc_success' | 'htlc_timeout';

/** An unsigned second-stage HTLC transaction spending one HTLC output of a commitment. */
export interface HtlcTx {
  kind: HtlcTxKind;
  channelType: ChannelType;
  htlc: CommitmentHtlc;
  /** The index of the spent output in the commitment transaction. */
  commitmentOutputIndex: number;
  tx: Tx;
  txid: string;
  /** The witness script of the spent HTLC output (what the signatures commit to). */
  inputWitnessScript: Uint8Array;
  /** The value of the spent HTLC output. */
  inputValueSat: bigint;
  /** The witness script of this transaction's single output (revocable, CSV-delayed). */
  outputWitnessScript: Uint8Array;
  feeSat: bigint;
}

/** Cooperative-close transaction inputs. */
export interface ClosingParams {
  fundingOutpoint: FundingOutpoint;
  fundingSat: bigint;
  /** Our balance in msat (rounded down to whole satoshis in the transaction). */
  localMsat: bigint;
  remoteMsat: bigint;
  localScriptPubKey: Uint8Array;
  remoteScriptPubKey: Uint8Array;
  /** Who opened the channel: its output pays the fee. */
  opener: Party;
  feeSat: bigint;
  /** Outputs below this value are left out. */
  dustLimitSat: bigint;
}

export interface ClosingOutput {
  index: number;
  party: Party;
  valueSat: bigint;
  scriptPubKey: Uint8Array;
}

export interface ClosingTx {
  tx: Tx;
  txid: string;
  outputs: ClosingOutput[];
  /** The fee actually paid (the requested fee plus any trimmed outputs). */
  feeSat: bigint;
}
