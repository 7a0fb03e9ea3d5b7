/**
 * Signing and verifying commitment, closing and HTLC transactions, and
 * assembling their witnesses.
 *
 * Signature hashes are BIP 143 (segwit v0) from bcoin; ECDSA is wire/crypto.ts
 * (RFC 6979, low-S), so signatures are deterministic and match the spec
 * vectors. Signatures travel as 64-byte compact values; witnesses carry
 * DER + sighash byte. With option_anchors the counterparty signs our HTLC
 * transactions with SIGHASH_SINGLE|SIGHASH_ANYONECANPAY so fees can be added.
 */
import { secp, signatureToDER } from '../../wire/crypto.js';
import { compareBytes } from '../../wire/bytes.js';
import { Script, Witness, buf, hashType, u8, SIGHASH_SEGWIT_V0, type Tx } from './btc.js';
import { Bolt3Error } from './errors.js';
import type { ChannelType, ClosingTx, Commitment, HtlcSigner, HtlcTx } from './types.js';

function sighash(tx: Tx, inputIndex: number, witnessScript: Uint8Array, valueSat: bigint, type: number): Uint8Array {
  if (inputIndex >= tx.inputs.length) throw new Bolt3Error('ERR_BAD_PARAMS', `no input ${inputIndex}`);
  return u8(tx.signatureHash(inputIndex, Script.fromRaw(buf(witnessScript)), Number(valueSat), type, SIGHASH_SEGWIT_V0));
}

function check64(sig: Uint8Array): void {
  if (sig.length !== 64) throw new Bolt3Error('ERR_BAD_SIGNATURE', 'signature must be 64-byte compact');
}

/**
 * SIGHASH_ALL signature of input 0 spending the funding output (commitment or
 * closing transaction).
 */
export function signCommitment(tx: Tx, fundingPriv: Uint8Array, fundingWitnessScript: Uint8Array, fundingSat: bigint): Uint8Array {
  return secp.sign(sighash(tx, 0, fundingWitnessScript, fundingSat, hashType.ALL), fundingPriv);
}

/** Check a counterparty's compact funding signature on input 0 of `tx`. */
export function verifyCommitmentSig(
  tx: Tx,
  sig64: Uint8Array,
  fundingPubkey: Uint8Array,
  fundingWitnessScript: Uint8Array,
  fundingSat: bigint,
): boolean {
  if (sig64.length !== 64) return false;
  return secp.verify(sig64, sighash(tx, 0, fundingWitnessScript, fundingSat, hashType.ALL), fundingPubkey);
}

/** The sighash type of an HTLC-tx signature: SINGLE|ANYONECANPAY (0x83) for the counterparty with anchors, ALL otherwise. */
export function htlcSighashType(channelType: ChannelType, signer: HtlcSigner): number {
  if (channelType === 'anchors_zero_fee_htlc' && signer === 'counterparty') return hashType.SINGLE | hashType.ANYONECANPAY;
  return hashType.ALL;
}

/** Sign an HTLC tx with the signer's htlc privkey for this commitment. */
export function signHtlcTx(htlcTx: HtlcTx, htlcPriv: Uint8Array, signer: HtlcSigner): Uint8Array {
  const type = htlcSighashType(htlcTx.channelType, signer);
  return secp.sign(sighash(htlcTx.tx, 0, htlcTx.inputWitnessScript, htlcTx.inputValueSat, type), htlcPriv);
}

export function verifyHtlcSig(htlcTx: HtlcTx, sig64: Uint8Array, htlcPubkey: Uint8Array, signer: HtlcSigner): boolean {
  if (sig64.length !== 64) return false;
  const type = htlcSighashType(htlcTx.channelType, signer);
  return secp.verify(sig64, sighash(htlcTx.tx, 0, htlcTx.inputWitnessScript, htlcTx.inputValueSat, type), htlcPubkey);
}

function derWith(sig64: Uint8Array, type: number): Buffer {
  check64(sig64);
  const der = signatureToDER(sig64);
  const out = Buffer.alloc(der.length + 1);
  out.set(der, 0);
  out[der.length] = type;
  return out;
}

/** `<> <sig1> <sig2> <2-of-2 script>` with the signatures in the script's (sorted) key order. */
export function fundingWitness(
  fundingWitnessScript: Uint8Array,
  pubA: Uint8Array,
  sigA64: Uint8Array,
  pubB: Uint8Array,
  sigB64: Uint8Array,
): Buffer[] {
  const a = derWith(sigA64, hashType.ALL);
  const b = derWith(sigB64, hashType.ALL);
  const [first, second] = compareBytes(pubA, pubB) <= 0 ? [a, b] : [b, a];
  return [Buffer.alloc(0), first, second, buf(fundingWitnessScript)];
}

function withWitness(tx: Tx, items: Buffer[]): Tx {
  const out = tx.clone();
  const input = out.inputs[0];
  if (input === undefined) throw new Bolt3Error('ERR_BAD_PARAMS', 'transaction has no input');
  input.witness = Witness.fromItems(items);
  out.refresh();
  return out;
}

/** A signed copy of the commitment (the holder's signature and the counterparty's). */
export function finalizeCommitment(c: Commitment, localSig64: Uint8Array, remoteSig64: Uint8Array): Tx {
  const items = fundingWitness(c.fundingWitnessScript, c.params.localFundingPubkey, localSig64, c.params.remoteFundingPubkey, remoteSig64);
  return withWitness(c.tx, items);
}

/** A signed copy of a closing transaction. */
export function finalizeClosingTx(
  closing: ClosingTx,
  fundingWitnessScript: Uint8Array,
  localFundingPubkey: Uint8Array,
  localSig64: Uint8Array,
  remoteFundingPubkey: Uint8Array,
  remoteSig64: Uint8Array,
): Tx {
  return withWitness(closing.tx, fundingWitness(fundingWitnessScript, localFundingPubkey, localSig64, remoteFundingPubkey, remoteSig64));
}

/**
 * A signed copy of the holder's HTLC transaction:
 * `<> <remotesig> <localsig> <preimage | <>> <htlc script>`.
 */
/**
 * Completes input 0 of `funded`: the HTLC transaction `h` of an anchor channel
 * with inputs (and change) added to pay its fee. The counterparty's signature
 * (SIGHASH_SINGLE|ANYONECANPAY) still holds; ours (SIGHASH_ALL) is made over
 * `funded` as it is. Input 0 and output 0 must be `h`'s.
 */
export function finalizeFundedHtlcTx(h: HtlcTx, funded: Tx, remoteSig64: Uint8Array, htlcPriv: Uint8Array, preimage?: Uint8Array): Tx {
  const in0 = funded.inputs[0];
  const own = h.tx.inputs[0]!;
  if (
    in0 === undefined ||
    in0.prevout.hash !== own.prevout.hash ||
    in0.prevout.index !== own.prevout.index ||
    in0.sequence !== own.sequence
  )
    throw new Bolt3Error('ERR_BAD_PARAMS', "input 0 is not the HTLC transaction's input");
  const out0 = funded.outputs[0];
  if (out0 === undefined || out0.value !== h.tx.outputs[0]!.value || !out0.script.toRaw().equals(h.tx.outputs[0]!.script.toRaw()))
    throw new Bolt3Error('ERR_BAD_PARAMS', "output 0 is not the HTLC transaction's output");
  if (funded.locktime !== h.tx.locktime) throw new Bolt3Error('ERR_BAD_PARAMS', 'locktime changed');
  const localSig64 = secp.sign(
    sighash(funded, 0, h.inputWitnessScript, h.inputValueSat, htlcSighashType(h.channelType, 'holder')),
    htlcPriv,
  );
  return finalizeHtlcTx({ ...h, tx: funded }, remoteSig64, localSig64, preimage);
}

export function finalizeHtlcTx(h: HtlcTx, remoteSig64: Uint8Array, localSig64: Uint8Array, preimage?: Uint8Array): Tx {
  let last: Buffer;
  if (h.kind === 'htlc_success') {
    if (preimage === undefined || preimage.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', 'HTLC-success needs the 32-byte preimage');
    last = buf(preimage);
  } else {
    last = Buffer.alloc(0);
  }
  const items = [
    Buffer.alloc(0),
    derWith(remoteSig64, htlcSighashType(h.channelType, 'counterparty')),
    derWith(localSig64, htlcSighashType(h.channelType, 'holder')),
    last,
    buf(h.inputWitnessScript),
  ];
  return withWitness(h.tx, items);
}
