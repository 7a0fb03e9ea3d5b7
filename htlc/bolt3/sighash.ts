/**
 * BIP 143 (segwit v0) signature hashes of commitment and HTLC transactions,
 * computed from what a `Commitment` already describes.
 *
 * Signing a commitment and its HTLC transactions is the hot path of every
 * commitment_signed (one signature per HTLC output, sent or checked). The
 * BIP 143 preimage only needs the version, the spent outpoint and its value,
 * the witness script, the sequence, the hash of the outputs and the locktime,
 * so it is written here directly instead of building a bcoin transaction per
 * HTLC and asking it for the hash. The legacy-serialization helpers are also
 * what `buildCommitment` uses for the txid. Results are identical to bcoin's
 * `signatureHash` (the BOLT 3 vector tests sign through both).
 */
import { hexToBytes } from '../../wire/bytes.js';
import { sha256 } from '../../wire/crypto.js';
import { hashType } from './btc.js';
import { htlcSuccessFeeSat, htlcTimeoutFeeSat } from './fees.js';
import { p2wsh, toLocalWitnessScript } from './scripts.js';
import { htlcSighashType } from './sign.js';
import type { Commitment, HtlcSigner } from './types.js';

const ZERO32 = new Uint8Array(32);

/** SHA256(SHA256(data)): Bitcoin's hash256. */
export function hash256(data: Uint8Array): Uint8Array {
  return sha256(sha256(data));
}

function varIntSize(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : 5;
}

/** A little-endian byte writer into a buffer of known size. */
class LeWriter {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  u32(v: number): void {
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }
  u64(v: bigint): void {
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }
  varInt(n: number): void {
    if (n < 0xfd) this.buf[this.pos++] = n;
    else if (n <= 0xffff) {
      this.buf[this.pos++] = 0xfd;
      this.view.setUint16(this.pos, n, true);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xfe;
      this.view.setUint32(this.pos, n, true);
      this.pos += 4;
    }
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

export interface TxOutputData {
  valueSat: bigint;
  scriptPubKey: Uint8Array;
}

/** The outputs as serialized in a transaction (without their count). */
export function serializeOutputs(outputs: readonly TxOutputData[]): Uint8Array {
  let size = 0;
  for (const o of outputs) size += 8 + varIntSize(o.scriptPubKey.length) + o.scriptPubKey.length;
  const w = new LeWriter(size);
  for (const o of outputs) {
    w.u64(o.valueSat);
    w.varInt(o.scriptPubKey.length);
    w.bytes(o.scriptPubKey);
  }
  return w.buf;
}

/**
 * Legacy (no witness) serialization of a one-input transaction with an empty
 * scriptSig: what its txid hashes. `prevTxid` is in internal byte order.
 */
export function serializeOneInputTx(
  version: number,
  prevTxid: Uint8Array,
  prevIndex: number,
  sequence: number,
  outputCount: number,
  outputs: Uint8Array,
  locktime: number,
): Uint8Array {
  const w = new LeWriter(4 + 1 + 36 + 1 + 4 + varIntSize(outputCount) + outputs.length + 4);
  w.u32(version);
  w.varInt(1);
  w.bytes(prevTxid);
  w.u32(prevIndex);
  w.varInt(0);
  w.u32(sequence);
  w.varInt(outputCount);
  w.bytes(outputs);
  w.u32(locktime);
  return w.buf;
}

function outpointHash(txid: Uint8Array, index: number): Uint8Array {
  const w = new LeWriter(36);
  w.bytes(txid);
  w.u32(index);
  return hash256(w.buf);
}

function u32Hash(v: number): Uint8Array {
  const w = new LeWriter(4);
  w.u32(v);
  return hash256(w.buf);
}

/** The BIP 143 digest of input (`txid`, `index`) given the three intermediate hashes. */
function bip143(
  version: number,
  hashPrevouts: Uint8Array,
  hashSequence: Uint8Array,
  txid: Uint8Array,
  index: number,
  scriptCode: Uint8Array,
  valueSat: bigint,
  sequence: number,
  hashOutputs: Uint8Array,
  locktime: number,
  type: number,
): Uint8Array {
  const w = new LeWriter(4 + 32 + 32 + 36 + varIntSize(scriptCode.length) + scriptCode.length + 8 + 4 + 32 + 4 + 4);
  w.u32(version);
  w.bytes(hashPrevouts);
  w.bytes(hashSequence);
  w.bytes(txid);
  w.u32(index);
  w.varInt(scriptCode.length);
  w.bytes(scriptCode);
  w.u64(valueSat);
  w.u32(sequence);
  w.bytes(hashOutputs);
  w.u32(locktime);
  w.u32(type);
  return hash256(w.buf);
}

/** What `buildCommitment` keeps about the transaction it serialized (so signing need not redo it). */
interface CommitmentTxData {
  /** Internal-order txid. */
  hash: Uint8Array;
  /** Serialized outputs. */
  outputs: Uint8Array;
}

const txData = new WeakMap<Commitment, CommitmentTxData>();

/** Called by buildCommitment for the commitments it makes. */
export function rememberCommitmentTx(c: Commitment, hash: Uint8Array, outputs: Uint8Array): void {
  txData.set(c, { hash, outputs });
}

function commitmentTxData(c: Commitment): CommitmentTxData {
  let d = txData.get(c);
  if (d === undefined) {
    d = { hash: hexToBytes(c.txid).reverse(), outputs: serializeOutputs(c.outputs) };
    txData.set(c, d);
  }
  return d;
}

/** Internal-order txid of commitment `c`. */
export function commitmentHash(c: Commitment): Uint8Array {
  return commitmentTxData(c).hash;
}

/** Locktime and input sequence of a commitment: the obscured commitment number split in two. */
export function commitmentLocktime(obscured: bigint): { locktime: number; sequence: number } {
  return { locktime: Number((0x20n << 24n) | (obscured & 0xffffffn)), sequence: Number((0x80n << 24n) | (obscured >> 24n)) };
}

/** SIGHASH_ALL digest of the commitment's funding input: what commitment_signed.signature signs. */
export function commitmentSighash(c: Commitment): Uint8Array {
  const { fundingOutpoint: fo, fundingSat } = c.params;
  const { locktime, sequence } = commitmentLocktime(c.obscuredCommitmentNumber);
  const hashPrevouts = outpointHash(fo.txid, fo.outputIndex);
  const hashOutputs = hash256(commitmentTxData(c).outputs);
  return bip143(
    2,
    hashPrevouts,
    u32Hash(sequence),
    fo.txid,
    fo.outputIndex,
    c.fundingWitnessScript,
    fundingSat,
    sequence,
    hashOutputs,
    locktime,
    hashType.ALL,
  );
}

/**
 * The digests `signer` signs on the HTLC-timeout / HTLC-success transactions
 * of `c`, one per HTLC output in output order (the order of htlc_signatures).
 * Same transactions as `buildHtlcTxs(c)`.
 */
export function htlcSighashes(c: Commitment, signer: HtlcSigner): Uint8Array[] {
  if (c.htlcOutputs.length === 0) return [];
  const { channelType, feeratePerKw, keys, toSelfDelay } = c.params;
  const type = htlcSighashType(channelType, signer);
  const anyoneCanPay = (type & hashType.ANYONECANPAY) !== 0;
  const anchors = channelType === 'anchors_zero_fee_htlc';
  const sequence = anchors ? 1 : 0;
  const hashSequence = anyoneCanPay ? ZERO32 : u32Hash(sequence);
  const outSpk = p2wsh(toLocalWitnessScript(keys.revocationPubkey, toSelfDelay, keys.localDelayedPubkey));
  const timeoutFee = htlcTimeoutFeeSat(channelType, feeratePerKw);
  const successFee = htlcSuccessFeeSat(channelType, feeratePerKw);
  const txid = commitmentHash(c);
  // the single output, with its value rewritten per HTLC
  const out = new LeWriter(8 + varIntSize(outSpk.length) + outSpk.length);
  out.u64(0n);
  out.varInt(outSpk.length);
  out.bytes(outSpk);
  const outView = new DataView(out.buf.buffer);
  return c.htlcOutputs.map((o) => {
    const htlc = o.htlc!;
    const timeout = htlc.direction === 'offered';
    outView.setBigUint64(0, o.valueSat - (timeout ? timeoutFee : successFee), true);
    const hashPrevouts = anyoneCanPay ? ZERO32 : outpointHash(txid, o.index);
    return bip143(
      2,
      hashPrevouts,
      hashSequence,
      txid,
      o.index,
      o.witnessScript!,
      o.valueSat,
      sequence,
      hash256(out.buf),
      timeout ? htlc.cltvExpiry : 0,
      type,
    );
  });
}
