/**
 * What channel establishment needs from an on-chain wallet, declared where it
 * is consumed (node/wallet implements it).
 *
 * The opener asks for a transaction paying `amountSat` to the 2-of-2 funding
 * script; it is broadcast only after the peer's funding_signed has been
 * verified and the channel persisted (so we can always spend our side), and
 * released (its inputs unlocked) if the opening fails before that.
 */
export interface FundingWallet {
  /** A signed transaction with an output of `amountSat` to `scriptPubKey`; raw bytes with witnesses. */
  fundChannel(scriptPubKey: Uint8Array, amountSat: bigint, feeratePerKw: number): Promise<{ tx: Uint8Array; outputIndex: number }>;
  broadcast(tx: Uint8Array): Promise<void>;
  /** Unlocks the inputs of a funding transaction that will not be broadcast. */
  release(tx: Uint8Array): Promise<void>;
}
