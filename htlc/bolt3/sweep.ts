/**
 * One-input sweeps of the outputs a unilateral close leaves us:
 *   - our `to_local` on our own commitment, after `to_self_delay` blocks:
 *     witness `<sig> <> <to_local script>` (the delayed branch), input
 *     sequence = to_self_delay (BIP 68 relative lock);
 *   - their `to_local` on a commitment of theirs they had revoked (justice):
 *     witness `<sig> 1 <to_local script>` with the revocation private key;
 *   - our `to_remote` on their commitment: with option_static_remotekey a
 *     P2WPKH of our payment basepoint (witness `<sig> <pubkey>`); with
 *     anchors the P2WSH `<key> OP_CHECKSIGVERIFY 1 OP_CHECKSEQUENCEVERIFY`
 *     (witness `<sig> <script>`, sequence 1).
 *   - an HTLC output of their commitment (BOLT 5): one they offered, with
 *     the preimage (witness `<sig> <preimage> <offered HTLC script>`), or
 *     one we offered, after its cltv_expiry (witness `<sig> <> <received
 *     HTLC script>`, locktime = cltv_expiry); with anchors both wait one
 *     block (sequence 1).
 * The fee is the transaction's weight (with a 73-byte signature) at the
 * given feerate; a sweep whose output would fall below the dust limit of
 * its destination is refused (ERR_DUST), as is one that pays nothing.
 */
import { hash160, secp, signatureToDER } from '../../wire/crypto.js';
import { MTX, Outpoint, Script, Witness, buf, hashType, SIGHASH_SEGWIT_V0, u8, type Tx } from './btc.js';
import { Bolt3Error } from './errors.js';
import { bytesToHex } from '../../wire/bytes.js';

/** Dust limit of the sweep's own output (P2WPKH / P2WSH destinations both stay above it at 330 sat; we use 546, as wallets do). */
export const SWEEP_DUST_SAT = 546n;

export interface SweepInput {
  /** Internal-order txid of the transaction holding the output. */
  txid: Uint8Array;
  outputIndex: number;
  valueSat: bigint;
}

export interface SweepTx {
  tx: Uint8Array;
  /** Internal-order txid. */
  txid: Uint8Array;
  feeSat: bigint;
  valueSat: bigint;
}

function p2pkhScriptCode(pubkey: Uint8Array): Uint8Array {
  // OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG: the scriptCode BIP 143 uses for P2WPKH
  return Uint8Array.of(0x76, 0xa9, 0x14, ...hash160(pubkey), 0x88, 0xac);
}

function sweep(
  input: SweepInput,
  sequence: number,
  destScript: Uint8Array,
  feeratePerKw: number,
  scriptCode: Uint8Array,
  priv: Uint8Array,
  witness: (sigDer: Uint8Array) => Uint8Array[],
  locktime = 0,
): SweepTx {
  if (input.txid.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', 'txid must be 32 bytes');
  if (!Number.isInteger(feeratePerKw) || feeratePerKw <= 0) throw new Bolt3Error('ERR_BAD_PARAMS', `bad feerate ${feeratePerKw}`);
  const build = (valueSat: bigint): Tx => {
    const mtx = new MTX();
    mtx.version = 2;
    mtx.locktime = locktime;
    const inp = mtx.addOutpoint(new Outpoint(bytesToHex(input.txid), input.outputIndex));
    inp.sequence = sequence;
    mtx.addOutput(Script.fromRaw(buf(destScript)), Number(valueSat));
    return mtx as unknown as Tx;
  };
  // weight with a worst-case (73-byte) signature decides the fee
  const probe = build(input.valueSat);
  probe.inputs[0]!.witness = Witness.fromItems(witness(new Uint8Array(73)).map(buf));
  const feeSat = (BigInt(probe.getWeight()) * BigInt(feeratePerKw) + 999n) / 1000n;
  const valueSat = input.valueSat - feeSat;
  if (valueSat < SWEEP_DUST_SAT)
    throw new Bolt3Error('ERR_DUST', `sweeping ${input.valueSat} sat at ${feeratePerKw} sat/kw leaves ${valueSat} sat`);
  const tx = build(valueSat);
  const digest = u8(tx.signatureHash(0, Script.fromRaw(buf(scriptCode)), Number(input.valueSat), hashType.ALL, SIGHASH_SEGWIT_V0));
  const sig = Uint8Array.of(...signatureToDER(secp.sign(digest, priv)), hashType.ALL);
  tx.inputs[0]!.witness = Witness.fromItems(witness(sig).map(buf));
  const raw = u8((tx as unknown as { toTX(): Tx }).toTX().toRaw());
  const final = (tx as unknown as { toTX(): Tx }).toTX();
  return { tx: raw.slice(), txid: u8(final.hash()).slice(), feeSat, valueSat };
}

/**
 * Spends `to_local` of our own commitment through its delayed branch.
 * `delayedPriv` is our local delayed private key for that commitment;
 * `witnessScript` the to_local script; `toSelfDelay` its CSV delay.
 */
export function sweepToLocal(
  input: SweepInput,
  witnessScript: Uint8Array,
  toSelfDelay: number,
  delayedPriv: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  if (!Number.isInteger(toSelfDelay) || toSelfDelay < 0 || toSelfDelay > 0xffff)
    throw new Bolt3Error('ERR_BAD_PARAMS', `bad to_self_delay ${toSelfDelay}`);
  return sweep(input, toSelfDelay, destScript, feeratePerKw, witnessScript, delayedPriv, (sig) => [sig, new Uint8Array(0), witnessScript]);
}

/**
 * Takes the `to_local` output of a revoked commitment of theirs through its
 * revocation branch (witness `<sig> 1 <to_local script>`, no delay), with the
 * revocation private key their revealed per-commitment secret gives us.
 */
export function sweepRevokedToLocal(
  input: SweepInput,
  witnessScript: Uint8Array,
  revocationPriv: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  return sweep(input, 0xffffffff, destScript, feeratePerKw, witnessScript, revocationPriv, (sig) => [sig, Uint8Array.of(1), witnessScript]);
}

/**
 * Spends our `to_remote` output of their commitment with our payment
 * basepoint secret: P2WPKH for static_remotekey, the 1-block-CSV P2WSH with
 * anchors (`witnessScript` given).
 */
export function sweepToRemote(
  input: SweepInput,
  witnessScript: Uint8Array | null,
  paymentPriv: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  const pubkey = secp.publicKeyCreate(paymentPriv);
  if (witnessScript === null)
    return sweep(input, 0xffffffff, destScript, feeratePerKw, p2pkhScriptCode(pubkey), paymentPriv, (sig) => [sig, pubkey]);
  return sweep(input, 1, destScript, feeratePerKw, witnessScript, paymentPriv, (sig) => [sig, witnessScript]);
}

/**
 * Claims an HTLC output of their commitment that they offered us, with its
 * preimage: the success branch of their offered-HTLC script, where our HTLC
 * key is the "remote" one. `htlcPriv` is our HTLC private key for that
 * commitment.
 */
export function sweepHtlcWithPreimage(
  input: SweepInput,
  witnessScript: Uint8Array,
  anchors: boolean,
  htlcPriv: Uint8Array,
  paymentPreimage: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  if (paymentPreimage.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', 'payment preimage must be 32 bytes');
  return sweep(input, anchors ? 1 : 0xffffffff, destScript, feeratePerKw, witnessScript, htlcPriv, (sig) => [
    sig,
    paymentPreimage,
    witnessScript,
  ]);
}

/**
 * Takes back an HTLC output of their commitment that we offered, once its
 * cltv_expiry has passed: the timeout branch of their received-HTLC script
 * (locktime = cltv_expiry, so the transaction is valid from that height on).
 */
export function sweepHtlcTimeout(
  input: SweepInput,
  witnessScript: Uint8Array,
  anchors: boolean,
  htlcPriv: Uint8Array,
  cltvExpiry: number,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  if (!Number.isInteger(cltvExpiry) || cltvExpiry < 0 || cltvExpiry >= 500_000_000)
    throw new Bolt3Error('ERR_BAD_PARAMS', `cltv_expiry ${cltvExpiry} is not a block height`);
  // a sequence below 0xffffffff keeps the locktime in force
  return sweep(
    input,
    anchors ? 1 : 0xfffffffe,
    destScript,
    feeratePerKw,
    witnessScript,
    htlcPriv,
    (sig) => [sig, new Uint8Array(0), witnessScript],
    cltvExpiry,
  );
}

/**
 * Takes an HTLC output (offered or received) of a revoked commitment of theirs
 * through the revocation branch: witness `<sig> <revocationpubkey> <script>`,
 * at once (the branch has no delay, with anchors too).
 */
export function sweepRevokedHtlc(
  input: SweepInput,
  witnessScript: Uint8Array,
  revocationPriv: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  const revocationPubkey = secp.publicKeyCreate(revocationPriv);
  return sweep(input, 0xffffffff, destScript, feeratePerKw, witnessScript, revocationPriv, (sig) => [sig, revocationPubkey, witnessScript]);
}
