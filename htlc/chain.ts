/**
 * What the channel layer needs from the blockchain, declared where it is
 * consumed. It mirrors lnd's chainntnfs.ChainNotifier + lnwallet's
 * BlockChainIO/broadcast split, shaped for an event loop instead of Go
 * channels: every watch is a callback with an explicit cancel handle.
 *
 * Conventions
 * - Txids and block hashes are 32-byte `Uint8Array`s in internal byte order
 *   (the order `funding_created` carries; the reverse of the usual hex display).
 * - Callbacks are delivered in chain order, one at a time; a returned promise
 *   is awaited before the next event of the same backend is delivered, so a
 *   handler may persist state before anything else happens.
 * - Reorgs are reported, never hidden: a confirmation count that goes down and a
 *   spend that is undone each produce an event.
 * - Feerates for Lightning are sat per 1000 weight units (`feeratePerKw`).
 */
import { AmpnodeError } from '../wire/errors.js';

export type ChainErrorCode =
  | 'ERR_BROADCAST_REJECTED' // the backend refused the transaction (invalid, conflicting, non-standard)
  | 'ERR_INVALID_TX' // the bytes given are not a transaction
  | 'ERR_CHAIN_CLOSED' // the backend was closed
  | 'ERR_CHAIN_UNSUPPORTED' // the operation is not available on this kind of backend (e.g. mining while following a peer)
  | 'ERR_CHAIN_CONFIG'; // bad backend options

export class ChainError extends AmpnodeError<ChainErrorCode> {}

/** A block on the best chain. */
export interface BlockEpoch {
  height: number;
  /** 32 bytes, internal byte order. */
  hash: Uint8Array;
}

/** A change of the best chain, delivered in order. */
export type BlockEvent =
  | { type: 'connected'; height: number; hash: Uint8Array }
  /** The block at `height` left the best chain; the new tip is at `height - 1` (until the next `connected`). */
  | { type: 'disconnected'; height: number; hash: Uint8Array };

export interface ChainOutpoint {
  /** 32 bytes, internal byte order. */
  txid: Uint8Array;
  outputIndex: number;
}

/** A handle whose `cancel()` stops further callbacks (idempotent). */
export interface WatchHandle {
  cancel(): void;
}

export interface ConfirmationRequest {
  txid: Uint8Array;
  /** Confirmations to wait for (≥ 1). */
  numConfs: number;
}

/** Where a transaction was confirmed. */
export interface TxConfirmation {
  blockHeight: number;
  blockHash: Uint8Array;
  /** Position of the transaction in its block. */
  txIndex: number;
  /** The full serialized transaction (with witnesses). */
  tx: Uint8Array;
}

/**
 * Events of a confirmation watch. The watch stays live until cancelled, so
 * that a reorg after `confirmed` is still heard:
 * - `update`: the count changed but is still below `numConfs` (first sent at
 *   registration when the transaction already has confirmations);
 * - `confirmed`: the count reached `numConfs` (sent again if a reorg took it
 *   below and it later climbs back);
 * - `reorged`: the count went down (`confirmations` 0: the transaction is no
 *   longer in the best chain). `wasConfirmed` is true when a `confirmed` sent
 *   earlier no longer holds (the transaction left its block, or the count fell
 *   below `numConfs`); a drop that stays at or above `numConfs` has it false.
 *   Each disconnected block is one step: a reorg of k blocks can send k events.
 */
export type ConfirmationEvent =
  | { type: 'update'; confirmations: number; confirmation: TxConfirmation }
  | { type: 'confirmed'; confirmations: number; confirmation: TxConfirmation }
  | { type: 'reorged'; confirmations: number; wasConfirmed: boolean };

export interface SpendRequest {
  outpoint: ChainOutpoint;
  /**
   * The height from which a spend is possible (e.g. the block that confirmed the
   * output). Used to look for spends that happened before the watch was
   * registered; without it the backend finds the output's own block itself.
   */
  heightHint?: number;
}

export interface SpendDetail {
  spendingTx: Uint8Array;
  spendingTxid: Uint8Array;
  /** Which input of `spendingTx` spends the watched outpoint. */
  inputIndex: number;
  blockHeight: number;
  blockHash: Uint8Array;
}

/**
 * Events of a spend watch (spends are reported once confirmed in a block):
 * - `spent`: the outpoint is spent by `detail.spendingTx`;
 * - `reorged`: the spend reported last is no longer in the best chain; the
 *   outpoint is unspent again (a later `spent` may follow, possibly by another tx).
 */
export type SpendEvent = { type: 'spent'; detail: SpendDetail } | { type: 'reorged' };

export type Listener<E> = (event: E) => void | Promise<void>;

/** The chain as the channel layer sees it. */
export interface ChainSource {
  /** The best block as last delivered to `onBlock` listeners. */
  tip(): BlockEpoch;
  /** Every later change of the best chain, in order. */
  onBlock(listener: Listener<BlockEvent>): WatchHandle;
  /** Tell me when `txid` has `numConfs` confirmations (and when that is undone). */
  watchConfirmations(request: ConfirmationRequest, listener: Listener<ConfirmationEvent>): WatchHandle;
  /** Tell me when an outpoint is spent, and by what (and when that is undone). */
  watchSpend(request: SpendRequest, listener: Listener<SpendEvent>): WatchHandle;
  /** Hand a signed transaction to the network. Resolves once the backend accepted it (its mempool); rejects with `ChainError`. */
  broadcast(tx: Uint8Array): Promise<void>;
  /** A feerate for confirmation within `confTarget` blocks, in sat per 1000 weight units. */
  estimateFeeratePerKw(confTarget: number): Promise<number>;
}

/** The floor lnd and Bitcoin Core apply: 253 sat/kw (1 sat/vB rounded up for weight). */
export const FEERATE_PER_KW_FLOOR = 253;

/** sat/kw → sat/vB (1 vB = 4 weight units). */
export function feeratePerKwToSatPerVbyte(feeratePerKw: number): number {
  return feeratePerKw / 250;
}

/** sat/vB → sat/kw. */
export function satPerVbyteToFeeratePerKw(satPerVbyte: number): number {
  return Math.round(satPerVbyte * 250);
}
