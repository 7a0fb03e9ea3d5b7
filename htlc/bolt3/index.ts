/**
 * BOLT 3 (Bitcoin transaction and script formats) for ampnode channels.
 *
 * Pure functions and plain data: no I/O, no clocks, no state beyond the
 * revocation store object. Transactions, scripts and BIP 143 signature hashes
 * come from bcoin; ECDSA comes from wire/crypto.ts. A channel state machine
 * (BOLT 2) uses it like this:
 *
 *   keys   = deriveCommitmentKeys({ perCommitmentPoint, ...basepoints })
 *   c      = buildCommitment({ channelType, fundingOutpoint, ..., keys, htlcs })
 *   sig    = signCommitment(c.tx, fundingPriv, c.fundingWitnessScript, c.params.fundingSat)     // commitment_signed.signature
 *   htlcs  = buildHtlcTxs(c)                                                                    // in c.htlcOutputs order
 *   hsigs  = htlcs.map((h) => signHtlcTx(h, htlcPrivFor(c), 'counterparty'))                   // commitment_signed.htlc_signatures
 *   ok     = verifyCommitmentSig(c.tx, theirSig, theirFundingPubkey, c.fundingWitnessScript, c.params.fundingSat)
 *   ok     = verifyHtlcSig(htlcs[i], theirHtlcSigs[i], remoteHtlcPubkey, 'counterparty')
 *   signed = finalizeCommitment(c, localSig, remoteSig)                                         // broadcastable tx
 *
 * Perspective: every `Commitment*` object is described from the holder of
 * that commitment ("local"); to build the counterparty's commitment, put the
 * counterparty in the local role (its balances, its dust limit, keys derived
 * from ITS per-commitment point, `opener` relative to it).
 *
 * Signatures are 64-byte compact (r ‖ s, low-S), as BOLT 2 messages carry them;
 * the DER + sighash-byte form only appears inside witnesses.
 *
 * ---------------------------------------------------------------- API
 * Types (types.ts): ChannelType ('static_remotekey' | 'anchors_zero_fee_htlc'), Party, HtlcDirection,
 *   HtlcSigner ('holder' | 'counterparty'), FundingOutpoint, CommitmentHtlc, CommitmentKeys,
 *   CommitmentParams, CommitmentOutput(Kind), Commitment, HtlcTx(Kind), ClosingParams, ClosingOutput, ClosingTx;
 *   Tx (a bcoin TX: .toRaw(), .txid(), .hash(), .inputs, .outputs).
 *
 * Per-commitment secrets (secrets.ts):
 *   MAX_COMMITMENT_INDEX = 2^48-1
 *   perCommitmentSecretFromSeed(seed32, index: bigint): Uint8Array     // BOLT 3 generate_from_seed
 *   secretIndexForCommitment(commitmentNumber: bigint): bigint        // 2^48-1 - n
 *   perCommitmentPoint(secret32): Uint8Array                            // secret·G
 *   class PerCommitmentSecrets { constructor(seed32); secret(index): Uint8Array }  // same secrets, fewer hashes for nearby indices
 *   class RevocationStore { insert(index, secret) (throws Bolt3Error ERR_SHACHAIN_MISMATCH / ERR_SHACHAIN_ORDER);
 *     get(index): Uint8Array | null; nextIndex: bigint | null; count: bigint; encode(): Uint8Array; static decode(bytes) }
 *
 * Keys (keys.ts):
 *   derivePubkey(basepoint, perCommitmentPoint)               // localpubkey, htlcpubkey, delayedpubkey
 *   derivePrivkey(basepointSecret, perCommitmentPoint)
 *   deriveRevocationPubkey(revocationBasepoint, perCommitmentPoint)
 *   deriveRevocationPrivkey(revocationBasepointSecret, perCommitmentSecret)
 *   deriveCommitmentKeys(b: CommitmentBasepoints = { perCommitmentPoint, localDelayedPaymentBasepoint, localHtlcBasepoint,
 *     remoteHtlcBasepoint, remoteRevocationBasepoint, remotePaymentBasepoint }): CommitmentKeys
 *
 * Scripts (scripts.ts), all returning raw script bytes:
 *   fundingWitnessScript(pubA, pubB)  (keys sorted), p2wsh(witnessScript), p2wpkh(pubkey),
 *   toLocalWitnessScript(revocationPubkey, toSelfDelay, localDelayedPubkey)  (also the HTLC-tx output script),
 *   toRemoteOutput(channelType, remotePaymentPubkey): { scriptPubKey, witnessScript | null },
 *   anchorWitnessScript(fundingPubkey),
 *   offeredHtlcWitnessScript(channelType, revocationPubkey, localHtlcPubkey, remoteHtlcPubkey, paymentHash),
 *   receivedHtlcWitnessScript(channelType, revocationPubkey, localHtlcPubkey, remoteHtlcPubkey, paymentHash, cltvExpiry)
 *
 * Fees and trimming (fees.ts):
 *   ANCHOR_OUTPUT_SAT (330n), HTLC_OUTPUT_WEIGHT (172), commitmentBaseWeight(type), commitmentWeight(type, nHtlcs),
 *   commitmentFeeSat(type, feeratePerKw, nUntrimmedHtlcs), openerCommitmentCostSat(type, feeratePerKw, nUntrimmedHtlcs) (fee + anchors),
 *   htlcTimeoutFeeSat(type, feeratePerKw), htlcSuccessFeeSat(type, feeratePerKw),
 *   htlcTrimThresholdSat(type, direction, feeratePerKw, dustLimitSat), isHtlcTrimmed(type, direction, amountMsat, feeratePerKw, dustLimitSat),
 *   untrimmedHtlcs(type, htlcs, feeratePerKw, dustLimitSat), obscuringFactor(openerPaymentBasepoint, acceptorPaymentBasepoint)
 *
 * Transactions (commitment.ts, closing.ts):
 *   buildCommitment(params: CommitmentParams): Commitment
 *   buildHtlcTxs(c: Commitment): HtlcTx[]                        // one per c.htlcOutputs, same order
 *   buildHtlcTx(c: Commitment, output: CommitmentOutput): HtlcTx
 *   buildClosingTx(params: ClosingParams): ClosingTx
 *   closingTxWeight(localScriptPubKey | null, remoteScriptPubKey | null): number
 *   txidFromHex(rpcHex): Uint8Array (internal order), txidToHex(internal): string
 *
 * Signing (sign.ts); signatures are 64-byte compact:
 *   signCommitment(tx, fundingPriv, fundingWitnessScript, fundingSat): Uint8Array     // also closing txs
 *   verifyCommitmentSig(tx, sig64, fundingPubkey, fundingWitnessScript, fundingSat): boolean
 *   htlcSighashType(channelType, signer: HtlcSigner): number   // 0x01, or 0x83 for the counterparty with anchors
 *   signHtlcTx(htlcTx, htlcPriv, signer): Uint8Array
 *   verifyHtlcSig(htlcTx, sig64, htlcPubkey, signer): boolean
 *   fundingWitness(fundingWitnessScript, pubA, sigA64, pubB, sigB64): Buffer[]   (sigs put in script order)
 *   finalizeCommitment(c, localSig64, remoteSig64): Tx          // signed copy; c.tx stays unsigned
 *   finalizeClosingTx(closing, fundingWitnessScript, localFundingPubkey, localSig64, remoteFundingPubkey, remoteSig64): Tx
 *   finalizeHtlcTx(h, remoteSig64, localSig64, preimage?: Uint8Array): Tx   // preimage required for htlc_success
 *   finalizeFundedHtlcTx(h, funded, remoteSig64, htlcPriv, preimage?): Tx      // anchors: input 0 of a fee-funded copy
 *
 * Signature hashes straight from a Commitment (sighash.ts), without building bcoin transactions:
 *   commitmentSighash(c): Uint8Array                    // what commitment_signed.signature signs (SIGHASH_ALL)
 *   htlcSighashes(c, signer): Uint8Array[]              // one per c.htlcOutputs: what each htlc_signature signs
 *   commitmentHash(c): Uint8Array (internal-order txid), hash256(bytes)
 *   sweepToLocal(input, toLocalScript, toSelfDelay, delayedPriv, destScript, feeratePerKw), sweepToRemote(input, scriptOrNull,
 *     paymentPriv, destScript, feeratePerKw), sweepHtlcWithPreimage / sweepHtlcTimeout (HTLC outputs of their commitment):
 *     SweepTx (one-input sweeps of a unilateral close; throws ERR_DUST)
 */
export * from './types.js';
export type { Tx } from './btc.js';
export { Bolt3Error, type Bolt3ErrorCode } from './errors.js';
export {
  MAX_COMMITMENT_INDEX,
  perCommitmentSecretFromSeed,
  secretIndexForCommitment,
  perCommitmentPoint,
  PerCommitmentSecrets,
  RevocationStore,
} from './secrets.js';
export {
  derivePubkey,
  derivePrivkey,
  deriveRevocationPubkey,
  deriveRevocationPrivkey,
  deriveCommitmentKeys,
  type CommitmentBasepoints,
} from './keys.js';
export {
  fundingWitnessScript,
  p2wsh,
  p2wpkh,
  toLocalWitnessScript,
  toRemoteOutput,
  anchorWitnessScript,
  offeredHtlcWitnessScript,
  receivedHtlcWitnessScript,
} from './scripts.js';
export {
  ANCHOR_OUTPUT_SAT,
  HTLC_OUTPUT_WEIGHT,
  commitmentBaseWeight,
  commitmentWeight,
  commitmentFeeSat,
  openerCommitmentCostSat,
  htlcTimeoutFeeSat,
  htlcTxWeight,
  htlcSuccessFeeSat,
  htlcTrimThresholdSat,
  isHtlcTrimmed,
  untrimmedHtlcs,
  obscuringFactor,
} from './fees.js';
export { buildCommitment, buildHtlcTxs, buildHtlcTx, txidFromHex, txidToHex } from './commitment.js';
export { commitmentSighash, htlcSighashes, commitmentHash, hash256 } from './sighash.js';
export { buildClosingTx, closingTxWeight } from './closing.js';
export {
  sweepToLocal,
  sweepToRemote,
  sweepRevokedToLocal,
  sweepRevokedHtlc,
  sweepHtlcWithPreimage,
  sweepHtlcTimeout,
  SWEEP_DUST_SAT,
  type SweepInput,
  type SweepTx,
} from './sweep.js';
export {
  signCommitment,
  verifyCommitmentSig,
  htlcSighashType,
  signHtlcTx,
  verifyHtlcSig,
  fundingWitness,
  finalizeCommitment,
  finalizeClosingTx,
  finalizeHtlcTx,
  finalizeFundedHtlcTx,
} from './sign.js';
