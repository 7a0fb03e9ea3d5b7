/**
 * BOLT 3 commitment and second-stage HTLC transactions.
 *
 * `buildCommitment` follows the spec's construction order: trim HTLCs, compute
 * the base fee from the untrimmed count, take the fee (and with anchors the two
 * 330-sat anchors) from the opener, drop balances below the dust limit, add
 * anchors for sides that have an output or when HTLCs are untrimmed, then sort
 * outputs by BIP 69 with HTLCs of equal amount and script ordered by
 * cltv_expiry. Transactions are bcoin TX objects; the result also says what
 * each output is, which is what signing HTLC transactions and watching the
 * chain need.
 */
import { bytesToHex, compareBytes, hexToBytes } from '../../wire/bytes.js';
import { MTX, Outpoint, Script, TX, buf, type Tx } from './btc.js';
import { commitmentHash, commitmentLocktime, hash256, rememberCommitmentTx, serializeOneInputTx, serializeOutputs } from './sighash.js';
import { Bolt3Error } from './errors.js';
import { ANCHOR_OUTPUT_SAT, commitmentFeeSat, htlcSuccessFeeSat, htlcTimeoutFeeSat, isHtlcTrimmed, obscuringFactor } from './fees.js';
import {
  anchorWitnessScript,
  fundingWitnessScript,
  offeredHtlcWitnessScript,
  p2wsh,
  receivedHtlcWitnessScript,
  toLocalWitnessScript,
  toRemoteOutput,
} from './scripts.js';
import { memoBytes } from './memo.js';
import type { Commitment, CommitmentHtlc, CommitmentOutput, CommitmentOutputKind, CommitmentParams, HtlcTx } from './types.js';

/** Internal-order txid bytes from the usual reversed hex form. */
export function txidFromHex(rpcHex: string): Uint8Array {
  const b = hexToBytes(rpcHex);
  if (b.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', 'txid must be 32 bytes');
  return b.reverse();
}

/** The usual reversed hex form of an internal-order txid. */
export function txidToHex(txid: Uint8Array): string {
  return bytesToHex(Uint8Array.from(txid).reverse());
}

// per-channel constants, the same for every commitment of a channel (results are shared: read-only)
const fundingScriptOf = memoBytes(fundingWitnessScript);
const obscuringFactorOf = memoBytes(obscuringFactor);
const anchorOf = memoBytes((fundingPubkey: Uint8Array) => {
  const ws = anchorWitnessScript(fundingPubkey);
  return { ws, spk: p2wsh(ws) };
});

interface Draft {
  kind: CommitmentOutputKind;
  valueSat: bigint;
  scriptPubKey: Uint8Array;
  witnessScript: Uint8Array | null;
  htlc: CommitmentHtlc | null;
}

function compareDrafts(a: Draft, b: Draft): number {
  if (a.valueSat !== b.valueSat) return a.valueSat < b.valueSat ? -1 : 1;
  const c = compareBytes(a.scriptPubKey, b.scriptPubKey);
  if (c !== 0) return c;
  if (a.htlc !== null && b.htlc !== null) {
    if (a.htlc.cltvExpiry !== b.htlc.cltvExpiry) return a.htlc.cltvExpiry - b.htlc.cltvExpiry;
    if (a.htlc.id !== b.htlc.id) return a.htlc.id < b.htlc.id ? -1 : 1;
  }
  return 0;
}

function checkParams(p: CommitmentParams): void {
  const bad = (why: string): never => {
    throw new Bolt3Error('ERR_BAD_PARAMS', why);
  };
  if (p.fundingOutpoint.txid.length !== 32) bad('funding txid must be 32 bytes');
  if (!Number.isInteger(p.fundingOutpoint.outputIndex) || p.fundingOutpoint.outputIndex < 0 || p.fundingOutpoint.outputIndex > 0xffffffff)
    bad('funding output index out of range');
  if (p.fundingSat <= 0n || p.fundingSat > 21_000_000n * 100_000_000n) bad('funding amount out of range');
  if (p.commitmentNumber < 0n || p.commitmentNumber >= 1n << 48n) bad('commitment number outside 48 bits');
  if (p.toLocalMsat < 0n || p.toRemoteMsat < 0n) bad('negative balance');
  if (p.dustLimitSat < 0n) bad('negative dust limit');
  let total = p.toLocalMsat + p.toRemoteMsat;
  for (const h of p.htlcs) {
    if (h.amountMsat <= 0n) bad(`HTLC ${h.id} has a non-positive amount`);
    if (h.paymentHash.length !== 32) bad(`HTLC ${h.id} payment hash must be 32 bytes`);
    if (!Number.isInteger(h.cltvExpiry) || h.cltvExpiry < 0 || h.cltvExpiry > 0xffffffff) bad(`HTLC ${h.id} cltv_expiry out of range`);
    total += h.amountMsat;
  }
  if (total > p.fundingSat * 1000n) bad('balances and HTLCs exceed the funding amount');
}

/** Build the unsigned commitment transaction described by `params`. */
export function buildCommitment(params: CommitmentParams): Commitment {
  checkParams(params);
  const { channelType: type, keys, feeratePerKw, dustLimitSat } = params;
  const anchors = type === 'anchors_zero_fee_htlc';

  const drafts: Draft[] = [];
  const trimmedHtlcs: CommitmentHtlc[] = [];
  for (const h of params.htlcs) {
    if (isHtlcTrimmed(type, h.direction, h.amountMsat, feeratePerKw, dustLimitSat)) {
      trimmedHtlcs.push(h);
      continue;
    }
    const ws =
      h.direction === 'offered'
        ? offeredHtlcWitnessScript(type, keys.revocationPubkey, keys.localHtlcPubkey, keys.remoteHtlcPubkey, h.paymentHash)
        : receivedHtlcWitnessScript(type, keys.revocationPubkey, keys.localHtlcPubkey, keys.remoteHtlcPubkey, h.paymentHash, h.cltvExpiry);
    drafts.push({
      kind: h.direction === 'offered' ? 'offered_htlc' : 'received_htlc',
      valueSat: h.amountMsat / 1000n,
      scriptPubKey: p2wsh(ws),
      witnessScript: ws,
      htlc: h,
    });
  }
  const numHtlcs = drafts.length;

  const baseFeeSat = commitmentFeeSat(type, feeratePerKw, numHtlcs);
  const openerCostMsat = (baseFeeSat + (anchors ? 2n * ANCHOR_OUTPUT_SAT : 0n)) * 1000n;
  let toLocalMsat = params.toLocalMsat;
  let toRemoteMsat = params.toRemoteMsat;
  if (params.opener === 'local') toLocalMsat = toLocalMsat > openerCostMsat ? toLocalMsat - openerCostMsat : 0n;
  else toRemoteMsat = toRemoteMsat > openerCostMsat ? toRemoteMsat - openerCostMsat : 0n;
  const toLocalSat = toLocalMsat / 1000n;
  const toRemoteSat = toRemoteMsat / 1000n;

  const hasLocal = toLocalSat >= dustLimitSat;
  const hasRemote = toRemoteSat >= dustLimitSat;
  if (hasLocal) {
    const ws = toLocalWitnessScript(keys.revocationPubkey, params.toSelfDelay, keys.localDelayedPubkey);
    drafts.push({ kind: 'to_local', valueSat: toLocalSat, scriptPubKey: p2wsh(ws), witnessScript: ws, htlc: null });
  }
  if (hasRemote) {
    const o = toRemoteOutput(type, keys.remotePaymentPubkey);
    drafts.push({ kind: 'to_remote', valueSat: toRemoteSat, scriptPubKey: o.scriptPubKey, witnessScript: o.witnessScript, htlc: null });
  }
  if (anchors) {
    if (hasLocal || numHtlcs > 0) {
      const { ws, spk } = anchorOf(params.localFundingPubkey);
      drafts.push({ kind: 'local_anchor', valueSat: ANCHOR_OUTPUT_SAT, scriptPubKey: spk, witnessScript: ws, htlc: null });
    }
    if (hasRemote || numHtlcs > 0) {
      const { ws, spk } = anchorOf(params.remoteFundingPubkey);
      drafts.push({ kind: 'remote_anchor', valueSat: ANCHOR_OUTPUT_SAT, scriptPubKey: spk, witnessScript: ws, htlc: null });
    }
  }
  drafts.sort(compareDrafts);

  const obscured = params.commitmentNumber ^ obscuringFactorOf(params.openerPaymentBasepoint, params.acceptorPaymentBasepoint);
  const { locktime, sequence } = commitmentLocktime(obscured);
  let outSum = 0n;
  for (const d of drafts) outSum += d.valueSat;
  const outputBytes = serializeOutputs(drafts);
  const raw = serializeOneInputTx(
    2,
    params.fundingOutpoint.txid,
    params.fundingOutpoint.outputIndex,
    sequence,
    drafts.length,
    outputBytes,
    locktime,
  );
  const hash = hash256(raw);
  const outputs: CommitmentOutput[] = drafts.map((d, index) => ({ index, ...d }));
  let tx: Tx | undefined;
  const c: Commitment = {
    params,
    // the bcoin object is only made when asked for (signing works from the serialization)
    get tx(): Tx {
      return (tx ??= TX.fromRaw(buf(raw)));
    },
    txid: bytesToHex(Uint8Array.from(hash).reverse()),
    outputs,
    htlcOutputs: outputs.filter((o) => o.htlc !== null),
    trimmedHtlcs,
    feeSat: params.fundingSat - outSum,
    baseFeeSat,
    fundingWitnessScript: fundingScriptOf(params.localFundingPubkey, params.remoteFundingPubkey),
    obscuredCommitmentNumber: obscured,
  };
  rememberCommitmentTx(c, hash, outputBytes);
  return c;
}

/**
 * The HTLC-timeout (offered HTLC) or HTLC-success (received HTLC) transaction
 * spending `output` of the commitment: version 2, locktime cltv_expiry / 0,
 * input sequence 0 (1 with anchors), one output paying the revocable,
 * to_self_delay-delayed script.
 */
export function buildHtlcTx(c: Commitment, output: CommitmentOutput): HtlcTx {
  const outWs = toLocalWitnessScript(c.params.keys.revocationPubkey, c.params.toSelfDelay, c.params.keys.localDelayedPubkey);
  return htlcTxWith(c, output, outWs, Script.fromRaw(buf(p2wsh(outWs))), bytesToHex(commitmentHash(c)));
}

function htlcTxWith(
  c: Commitment,
  output: CommitmentOutput,
  outWs: Uint8Array,
  outSpk: ReturnType<typeof Script.fromRaw>,
  commitmentHash: string,
): HtlcTx {
  const htlc = output.htlc;
  if (htlc === null || output.witnessScript === null || c.outputs[output.index] !== output)
    throw new Bolt3Error('ERR_BAD_PARAMS', 'not an HTLC output of this commitment');
  const { channelType: type, feeratePerKw } = c.params;
  const timeout = htlc.direction === 'offered';
  const feeSat = timeout ? htlcTimeoutFeeSat(type, feeratePerKw) : htlcSuccessFeeSat(type, feeratePerKw);
  const mtx = new MTX();
  mtx.version = 2;
  mtx.locktime = timeout ? htlc.cltvExpiry : 0;
  const input = mtx.addOutpoint(new Outpoint(commitmentHash, output.index));
  input.sequence = type === 'anchors_zero_fee_htlc' ? 1 : 0;
  mtx.addOutput(outSpk, Number(output.valueSat - feeSat));
  const tx = mtx.toTX();
  return {
    kind: timeout ? 'htlc_timeout' : 'htlc_success',
    channelType: type,
    htlc,
    commitmentOutputIndex: output.index,
    tx,
    txid: tx.txid(),
    inputWitnessScript: output.witnessScript,
    inputValueSat: output.valueSat,
    outputWitnessScript: outWs,
    feeSat,
  };
}

/** One HTLC transaction per HTLC output, in output order (the order of `htlc_signatures`). */
export function buildHtlcTxs(c: Commitment): HtlcTx[] {
  if (c.htlcOutputs.length === 0) return [];
  const outWs = toLocalWitnessScript(c.params.keys.revocationPubkey, c.params.toSelfDelay, c.params.keys.localDelayedPubkey);
  const outSpk = Script.fromRaw(buf(p2wsh(outWs)));
  const hash = bytesToHex(commitmentHash(c));
  return c.htlcOutputs.map((o) => htlcTxWith(c, o, outWs, outSpk, hash));
}
