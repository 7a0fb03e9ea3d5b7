/**
 * Typed errors of the on-chain wallet. Every failure leaves the wallet as it
 * was and broadcasts nothing; callers branch on `code`.
 */
import { AmpnodeError } from '../../wire/errors.js';

export type WalletErrorCode =
  | 'ERR_INSUFFICIENT_FUNDS' // spendable coins do not cover amount + fee
  | 'ERR_DUST' // an output below the dust limit of its script
  | 'ERR_INVALID_AMOUNT' // not a positive whole number of satoshis within the money supply
  | 'ERR_INVALID_ADDRESS' // not a Bitcoin address at all
  | 'ERR_WRONG_NETWORK' // a valid address of another network (mainnet, testnet)
  | 'ERR_INVALID_SCRIPT' // a funding script that is not P2WSH
  | 'ERR_INVALID_FEERATE' // a feerate below the relay floor or absurdly high
  | 'ERR_UNKNOWN_FUNDING' // no pending funding with that txid
  | 'ERR_BROADCAST' // the chain backend refused the transaction
  | 'ERR_SEED' // the seed file is unreadable/malformed, or belongs to another wallet
  | 'ERR_WALLET_CLOSED';

export class WalletError extends AmpnodeError<WalletErrorCode> {}
