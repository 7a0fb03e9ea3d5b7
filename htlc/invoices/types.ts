/**
 * Invoices as the registry keeps them (lnd: invoices/), and its settings.
 */
import type { TlvRecord } from '../../wire/tlv.js';
import { AmpnodeError } from '../../wire/errors.js';

export type InvoiceKind =
  /** A payment hash whose preimage we hold: settled as soon as its HTLCs are in. */
  | 'regular'
  /** A payment hash whose preimage the app holds: accepted once paid, then settled or cancelled by the app. */
  | 'hold'
  /** Reusable AMP (amp.md §3): each payment a set of its own (set_id); the invoice stays open. */
  | 'amp'
  /** Made on the spot for a keysend payment. */
  | 'keysend';

export type InvoiceState = 'open' | 'accepted' | 'settled' | 'canceled';

/** One invoice, without the HTLCs of its settled AMP sets (those live in the store, one record per set). */
export interface Invoice {
  addIndex: bigint;
  kind: InvoiceKind;
  state: InvoiceState;
  /** The payment hash (for AMP a random one, only an index). */
  paymentHash: Uint8Array;
  /** Regular invoices: the preimage; hold invoices: once the app settled. */
  preimage?: Uint8Array;
  /** payment_secret / payment_addr (BOLT 11 `s`). */
  paymentAddr: Uint8Array;
  /** 0: any amount (an AMP "account" invoice, or a donation). */
  amountMsat: bigint;
  memo?: string;
  /** Seconds since the epoch. */
  createdAt: number;
  expirySeconds: number;
  minFinalCltvExpiryDelta: number;
  /** Made by the registry for a spontaneous AMP or keysend payment. */
  spontaneous?: boolean;
  /** Non-AMP: what its settled HTLCs carried in all; AMP: the sum over settled sets. */
  amountPaidMsat: bigint;
  /** Non-AMP: its settle index; AMP: that of the last settled set. */
  settleIndex?: bigint;
  settledAt?: number;
  /** AMP: how many sets settled. */
  settledSets?: number;
  /** Non-AMP, once settled: the HTLCs that paid it (to answer them again after a restart). */
  htlcs?: SettledHtlc[];
}

export interface SettledHtlc {
  /** The switch's circuit key, `channelId/htlcId`. */
  circuit: string;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  preimage: Uint8Array;
  /** AMP */
  share?: Uint8Array;
  childIndex?: number;
  customRecords?: TlvRecord[];
}

/** One settled AMP set (lnd's AMP invoice state per set_id). */
export interface AmpSet {
  setId: Uint8Array;
  paymentAddr: Uint8Array;
  state: 'settled';
  settleIndex: bigint;
  /** Seconds since the epoch. */
  settledAt: number;
  amountPaidMsat: bigint;
  htlcs: SettledHtlc[];
}

/** What subscribers of settled payments get: one per settled invoice, one per settled AMP set. */
export interface SettleEvent {
  settleIndex: bigint;
  paymentAddr: Uint8Array;
  paymentHash: Uint8Array;
  kind: InvoiceKind;
  amountMsat: bigint;
  setId?: Uint8Array;
  /** Custom records (≥ 65536) of the HTLCs, in HTLC order. */
  customRecords: TlvRecord[];
}

export interface RegistryConfig {
  /** Hold time of an HTLC of an incomplete set before it fails with mpp_timeout (lnd: 120 s). */
  mppTimeoutMs: number;
  /**
   * Refuse an HTLC expiring sooner than this many blocks above the tip, whatever the invoice says (as lnd, 19); the
   * invoice's own delta applies too.
   */
  finalCltvRejectDelta: number;
  /** Pay a keysend HTLC (lnd: accept-keysend, off by default). */
  acceptKeysend: boolean;
  /** Pay an AMP HTLC whose payment_addr matches no invoice, making one on the spot (lnd: accept-amp, off by default). */
  acceptAmp: boolean;
  /** Sets being received at once on one invoice. */
  maxPendingSetsPerInvoice: number;
  /** HTLCs held in incomplete sets, over all invoices. */
  maxPendingHtlcs: number;
  /** Default expiry of new invoices (BOLT 11: 3600 s), and of AMP invoices (lnd: 30 days). */
  defaultExpirySeconds: number;
  defaultAmpExpirySeconds: number;
  /** min_final_cltv_expiry_delta of new invoices when none is given (BOLT 11's default `c`, 18). */
  defaultMinFinalCltvExpiryDelta: number;
  /**
   * Bits of the filter of settled set_ids that spares a new AMP set its store read (a power of two; 2^24: 2 MB, which
   * stays exact enough for 1 000 000 settled sets, see settled-filter.ts).
   */
  settledSetFilterBits: number;
}

export const DEFAULT_REGISTRY_CONFIG: RegistryConfig = {
  mppTimeoutMs: 120_000,
  finalCltvRejectDelta: 19,
  acceptKeysend: false,
  acceptAmp: false,
  maxPendingSetsPerInvoice: 100,
  maxPendingHtlcs: 10_000,
  defaultExpirySeconds: 3600,
  defaultAmpExpirySeconds: 30 * 24 * 3600,
  defaultMinFinalCltvExpiryDelta: 18,
  settledSetFilterBits: 2 ** 24,
};

export type InvoiceErrorCode = 'ERR_INVOICE_EXISTS' | 'ERR_INVOICE_NOT_FOUND' | 'ERR_INVOICE_STATE' | 'ERR_INVOICE_ARGUMENT';

export class InvoiceError extends AmpnodeError<InvoiceErrorCode> {}
