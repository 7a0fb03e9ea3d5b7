/**
 * What a unilateral close leaves us, from the channel state: our current
 * commitment's txid, the sweep of our `to_local` once its CSV delay has
 * passed (our commitment confirmed), and the sweep of our `to_remote` from
 * a commitment of theirs that confirmed.
 *
 * and, when that commitment of theirs was one they had revoked, the justice
 * sweeps of their `to_local` and of every HTLC output (ours by the revocation
 * key; the HTLCs come from the revocation log), and of the output of a
 * second-stage transaction they spent an HTLC output with.
 *
 * HTLC outputs (BOLT 5): on a commitment of theirs (current or next) we
 * claim what they offered us with the preimage when we know it, and take back
 * what we offered once its cltv_expiry has passed; on our own commitment the
 * HTLC-timeout / HTLC-success transactions (the peer's signatures are stored
 * with the commitment) are published when valid, and their delayed outputs
 * swept after to_self_delay like to_local; with anchors those transactions
 * pay no fee of their own and are handed out for a wallet to fund.
 */
import { equalBytes } from '../../wire/bytes.js';
import { sha256 } from '../../wire/crypto.js';
import {
  RevocationStore,
  commitmentHash,
  deriveRevocationPrivkey,
  obscuringFactor,
  p2wsh,
  perCommitmentPoint,
  secretIndexForCommitment,
  sweepRevokedToLocal,
  sweepToLocal,
  sweepToRemote,
  toLocalWitnessScript,
  toRemoteOutput,
  type SweepTx,
} from '../bolt3/index.js';
import { TX, buf } from '../bolt3/btc.js';
import {
  buildHtlcTxs,
  buildCommitment,
  finalizeFundedHtlcTx,
  htlcTxWeight,
  offeredHtlcWitnessScript,
  receivedHtlcWitnessScript,
  sweepHtlcTimeout,
  sweepHtlcWithPreimage,
  sweepRevokedHtlc,
} from '../bolt3/index.js';
import { Bolt3Error } from '../bolt3/errors.js';
import { bytesToHex } from '../../wire/bytes.js';
import { buildLocal, paymentBasepoints, remoteCommitmentParams, signedHtlcTxs } from './commitments.js';
import { commitmentPrivkey, ourPoint, remoteCommitmentKeys } from './keys.js';
import type { ChannelHtlc, ChannelSecrets, ChannelState, CommitmentState } from './types.js';

/** Internal-order txid of our current commitment (what a force close of ours broadcasts). */
export function localCommitmentTxid(s: ChannelState, secrets: ChannelSecrets): Uint8Array {
  return commitmentHash(buildLocal(s, secrets, s.localCommit));
}

export interface ToLocalSweep {
  sweep: SweepTx;
  /** Blocks our commitment must have (confirmations) before the sweep is valid. */
  toSelfDelay: number;
  commitmentTxid: Uint8Array;
}

/** The sweep of our to_local from our current commitment, or null when that commitment has no to_local output. */
export function toLocalSweep(s: ChannelState, secrets: ChannelSecrets, destScript: Uint8Array, feeratePerKw: number): ToLocalSweep | null {
  const c = buildLocal(s, secrets, s.localCommit);
  const out = c.outputs.find((o) => o.kind === 'to_local');
  if (out === undefined || out.witnessScript === null) return null;
  const point = ourPoint(secrets, s.localCommit.height);
  const delayedPriv = commitmentPrivkey(secrets.delayedPaymentBaseSecret, s.local.pubkeys.delayedPaymentBasepoint, point);
  const txid = commitmentHash(c);
  const sweep = sweepToLocal(
    { txid, outputIndex: out.index, valueSat: out.valueSat },
    out.witnessScript,
    c.params.toSelfDelay,
    delayedPriv,
    destScript,
    feeratePerKw,
  );
  return { sweep, toSelfDelay: c.params.toSelfDelay, commitmentTxid: txid };
}

/**
 * The sweep of our to_remote output in `tx` (a commitment of theirs spending
 * the funding output), or null when `tx` pays nothing to our to_remote script.
 */
export function toRemoteSweep(
  s: ChannelState,
  secrets: ChannelSecrets,
  tx: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx | null {
  const ours = toRemoteOutput(s.channelType, s.local.pubkeys.paymentBasepoint);
  const t = TX.fromRaw(buf(tx));
  const index = t.outputs.findIndex((o) => equalBytes(new Uint8Array(o.script.toRaw()), ours.scriptPubKey));
  if (index < 0) return null;
  const txid = new Uint8Array(t.hash());
  return sweepToRemote(
    { txid, outputIndex: index, valueSat: BigInt(t.outputs[index]!.value) },
    ours.witnessScript,
    secrets.paymentBaseSecret,
    destScript,
    feeratePerKw,
  );
}

/**
 * The commitment number a commitment transaction of this channel carries
 * (BOLT 3: the obscured number is split over the input's sequence and the
 * locktime), or null when `tx` does not look like one.
 */
export function commitmentNumberOf(s: ChannelState, tx: Uint8Array): bigint | null {
  const t = TX.fromRaw(buf(tx));
  const input = t.inputs[0];
  if (t.inputs.length !== 1 || input === undefined || t.locktime >>> 24 !== 0x20 || input.sequence >>> 24 !== 0x80) return null;
  const obscured = (BigInt(input.sequence & 0xffffff) << 24n) | BigInt(t.locktime & 0xffffff);
  const { openerPaymentBasepoint, acceptorPaymentBasepoint } = paymentBasepoints(s);
  return obscured ^ obscuringFactor(openerPaymentBasepoint, acceptorPaymentBasepoint);
}

export interface JusticeSweep {
  /** The sweep of their to_local; null when that commitment had none (their balance was dust, or zero). */
  sweep: SweepTx | null;
  /** The revoked commitment number the peer broadcast. */
  commitmentNumber: bigint;
}

/**
 * When `tx` is a commitment of theirs that they had revoked (we hold its
 * per-commitment secret): the breach, with the sweep of its to_local output
 * through the revocation branch when it has one. Null when it is not revoked.
 */
export function justiceSweep(
  s: ChannelState,
  secrets: ChannelSecrets,
  tx: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): JusticeSweep | null {
  const n = commitmentNumberOf(s, tx);
  if (n === null || n >= s.remoteCommit.height) return null;
  const secret = RevocationStore.decode(s.revocationStore).get(secretIndexForCommitment(n));
  if (secret === null) return null;
  const point = perCommitmentPoint(secret);
  const keys = remoteCommitmentKeys(secrets, s.local.pubkeys, s.remote.pubkeys, point).keys;
  // their to_local waits our to_self_delay (the delay we asked of them)
  const script = toLocalWitnessScript(keys.revocationPubkey, s.local.config.toSelfDelay, keys.localDelayedPubkey);
  const spk = p2wsh(script);
  const t = TX.fromRaw(buf(tx));
  const index = t.outputs.findIndex((o) => equalBytes(new Uint8Array(o.script.toRaw()), spk));
  if (index < 0) return { sweep: null, commitmentNumber: n };
  const revocationPriv = deriveRevocationPrivkey(secrets.revocationBaseSecret, secret);
  const sweep = sweepRevokedToLocal(
    { txid: new Uint8Array(t.hash()), outputIndex: index, valueSat: BigInt(t.outputs[index]!.value) },
    script,
    revocationPriv,
    destScript,
    feeratePerKw,
  );
  return { sweep, commitmentNumber: n };
}

/** Preimages of the HTLCs we were asked to fulfill and that may still be on a commitment (payment hash hex → preimage). */
export function knownPreimages(s: ChannelState): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const hashOf = (id: bigint): string | undefined => {
    const h =
      s.localCommit.htlcs.find((x) => !x.offered && x.id === id) ??
      s.remoteCommit.htlcs.find((x) => !x.offered && x.id === id) ??
      s.remoteNextCommit?.htlcs.find((x) => !x.offered && x.id === id);
    return h === undefined ? undefined : bytesToHex(h.paymentHash);
  };
  for (const e of [...s.ourLog.entries, ...(s.pendingResolutions ?? [])]) {
    if (e.kind !== 'fulfill') continue;
    const hash = hashOf(e.htlcId);
    if (hash !== undefined) out.set(hash, e.paymentPreimage);
  }
  return out;
}

export interface HtlcClaim {
  /** `htlc_success`: claimed with the preimage; `htlc_timeout`: taken back after cltv_expiry. */
  kind: 'htlc_success' | 'htlc_timeout';
  /** The HTLC's id in the log of the side that offered it. */
  htlcId: bigint;
  paymentHash: Uint8Array;
  /** The first block height at which the transaction is valid (its locktime; 0 when it has none). */
  validFromHeight: number;
  sweep: SweepTx;
}

/** Which commitment of theirs `tx` is (current or next), with its per-commitment point; null for any other. */
function theirCommitment(s: ChannelState, tx: Uint8Array): { v: CommitmentState; point: Uint8Array } | null {
  const n = commitmentNumberOf(s, tx);
  if (n === null) return null;
  if (n === s.remoteCommit.height) return { v: s.remoteCommit, point: s.remoteCurrentPoint };
  if (s.remoteNextCommit !== undefined && n === s.remoteNextCommit.height && s.remoteNextPoint !== undefined)
    return { v: s.remoteNextCommit, point: s.remoteNextPoint };
  return null;
}

/**
 * The claims on the HTLC outputs of `tx`, a commitment of theirs that is
 * their current or next one: each HTLC they offered us whose preimage is in
 * `preimages`, and each HTLC we offered them (valid from its cltv_expiry).
 * `unclaimed` lists the HTLC outputs left: theirs without a known preimage,
 * and outputs too small to pay for their own sweep. Null when `tx` is not
 * such a commitment.
 */
export function remoteHtlcClaims(
  s: ChannelState,
  secrets: ChannelSecrets,
  tx: Uint8Array,
  preimages: ReadonlyMap<string, Uint8Array>,
  destScript: Uint8Array,
  feeratePerKw: number,
): { claims: HtlcClaim[]; unclaimed: { htlcId: bigint; reason: string }[] } | null {
  const which = theirCommitment(s, tx);
  if (which === null) return null;
  const k = remoteCommitmentKeys(secrets, s.local.pubkeys, s.remote.pubkeys, which.point);
  const c = buildCommitment(remoteCommitmentParams(s, which.v, k.keys));
  const t = TX.fromRaw(buf(tx));
  if (!equalBytes(commitmentHash(c), new Uint8Array(t.hash()))) return null;
  const anchors = s.channelType === 'anchors_zero_fee_htlc';
  const txid = new Uint8Array(t.hash());
  const claims: HtlcClaim[] = [];
  const unclaimed: { htlcId: bigint; reason: string }[] = [];
  for (const out of c.htlcOutputs) {
    const h = out.htlc!;
    const input = { txid, outputIndex: out.index, valueSat: out.valueSat };
    try {
      if (h.direction === 'offered') {
        // offered by them (the holder): ours with the preimage
        const preimage = preimages.get(bytesToHex(h.paymentHash));
        if (preimage === undefined) {
          unclaimed.push({ htlcId: h.id, reason: 'no preimage' });
          continue;
        }
        const sweep = sweepHtlcWithPreimage(input, out.witnessScript!, anchors, k.ourHtlcPriv, preimage, destScript, feeratePerKw);
        claims.push({ kind: 'htlc_success', htlcId: h.id, paymentHash: h.paymentHash, validFromHeight: 0, sweep });
      } else {
        const sweep = sweepHtlcTimeout(input, out.witnessScript!, anchors, k.ourHtlcPriv, h.cltvExpiry, destScript, feeratePerKw);
        claims.push({ kind: 'htlc_timeout', htlcId: h.id, paymentHash: h.paymentHash, validFromHeight: h.cltvExpiry, sweep });
      }
    } catch (e) {
      if (e instanceof Bolt3Error && e.code === 'ERR_DUST') unclaimed.push({ htlcId: h.id, reason: e.message });
      else throw e;
    }
  }
  return { claims, unclaimed };
}

export interface SecondStage {
  kind: 'htlc_success' | 'htlc_timeout';
  htlcId: bigint;
  paymentHash: Uint8Array;
  /** The HTLC output of our commitment it spends (input 0). */
  commitmentOutputIndex: number;
  validFromHeight: number;
  toSelfDelay: number;
  /** static_remotekey: the signed transaction, its fee included. */
  tx?: Uint8Array;
  /**
   * anchors: the transaction pays no fee of its own. A wallet adds inputs and change to `template` for its
   * whole weight (`weight` is the template's own, witness included), then `complete` signs input 0 of that copy.
   */
  feeless?: {
    template: Uint8Array;
    weight: number;
    inputValueSat: bigint;
    inputScriptPubKey: Uint8Array;
    complete(funded: Uint8Array): Uint8Array;
  };
  /** Output 0 (revocable, delayed): ours after `toSelfDelay` confirmations of the transaction. */
  outputValueSat: bigint;
  outputScriptPubKey: Uint8Array;
  /** Sweeps output 0 of the confirmed second-stage transaction `txid` (internal order). */
  sweepOutput(txid: Uint8Array, destScript: Uint8Array, feeratePerKw: number): SweepTx;
}

/**
 * The second-stage transactions of our current commitment: every
 * HTLC-timeout (valid from its cltv_expiry) and each HTLC-success whose
 * preimage we know, with the sweep of their delayed outputs. With anchors
 * they come without a fee (see `feeless`).
 */
export function localSecondStage(
  s: ChannelState,
  secrets: ChannelSecrets,
  preimages: ReadonlyMap<string, Uint8Array>,
): { stages: SecondStage[]; unclaimed: { htlcId: bigint; reason: string }[] } {
  const c = buildLocal(s, secrets, s.localCommit);
  const unsigned = buildHtlcTxs(c);
  if (unsigned.length !== s.localCommit.remoteHtlcSigs.length)
    throw new Bolt3Error('ERR_BAD_PARAMS', 'stored HTLC signatures do not match the commitment');
  const anchors = s.channelType === 'anchors_zero_fee_htlc';
  const signed = anchors ? [] : signedHtlcTxs(s, secrets, preimages);
  const point = ourPoint(secrets, s.localCommit.height);
  const delayedPriv = commitmentPrivkey(secrets.delayedPaymentBaseSecret, s.local.pubkeys.delayedPaymentBasepoint, point);
  const htlcPriv = commitmentPrivkey(secrets.htlcBaseSecret, s.local.pubkeys.htlcBasepoint, point);
  const stages: SecondStage[] = [];
  const unclaimed: { htlcId: bigint; reason: string }[] = [];
  unsigned.forEach((h, i) => {
    const preimage = h.kind === 'htlc_success' ? preimages.get(bytesToHex(h.htlc.paymentHash)) : undefined;
    if (h.kind === 'htlc_success' && preimage === undefined) {
      unclaimed.push({ htlcId: h.htlc.id, reason: 'no preimage' });
      return;
    }
    const out = h.tx.outputs[0]!;
    const outputValueSat = BigInt(out.value);
    const remoteSig = s.localCommit.remoteHtlcSigs[i]!;
    const stage: SecondStage = {
      kind: h.kind,
      htlcId: h.htlc.id,
      paymentHash: h.htlc.paymentHash,
      commitmentOutputIndex: h.commitmentOutputIndex,
      validFromHeight: h.kind === 'htlc_timeout' ? h.htlc.cltvExpiry : 0,
      toSelfDelay: c.params.toSelfDelay,
      outputValueSat,
      outputScriptPubKey: new Uint8Array(out.script.toRaw()),
      sweepOutput: (txid, destScript, feeratePerKw) =>
        sweepToLocal(
          { txid, outputIndex: 0, valueSat: outputValueSat },
          h.outputWitnessScript,
          c.params.toSelfDelay,
          delayedPriv,
          destScript,
          feeratePerKw,
        ),
    };
    if (anchors) {
      stage.feeless = {
        template: new Uint8Array(h.tx.toRaw()),
        weight: htlcTxWeight(s.channelType, h.kind),
        inputValueSat: h.inputValueSat,
        inputScriptPubKey: p2wsh(h.inputWitnessScript),
        complete: (funded) => new Uint8Array(finalizeFundedHtlcTx(h, TX.fromRaw(buf(funded)), remoteSig, htlcPriv, preimage).toRaw()),
      };
    } else {
      stage.tx = signed[i]!.tx!;
    }
    stages.push(stage);
  });
  return { stages, unclaimed };
}

/**
 * The outputs of commitment `tx` (ours, or their current or next one) that
 * hold HTLCs we offered: whoever spends them settles the HTLC on chain — the
 * peer with the preimage, or we after its cltv_expiry. Empty when `tx` is
 * none of those commitments.
 */
export function offeredHtlcOutputs(
  s: ChannelState,
  secrets: ChannelSecrets,
  tx: Uint8Array,
): { htlcId: bigint; paymentHash: Uint8Array; outputIndex: number }[] {
  const t = TX.fromRaw(buf(tx));
  const txid = new Uint8Array(t.hash());
  const local = buildLocal(s, secrets, s.localCommit);
  if (equalBytes(commitmentHash(local), txid)) {
    return local.htlcOutputs
      .filter((o) => o.htlc!.direction === 'offered')
      .map((o) => ({ htlcId: o.htlc!.id, paymentHash: o.htlc!.paymentHash, outputIndex: o.index }));
  }
  const which = theirCommitment(s, tx);
  if (which === null) return [];
  const k = remoteCommitmentKeys(secrets, s.local.pubkeys, s.remote.pubkeys, which.point);
  const c = buildCommitment(remoteCommitmentParams(s, which.v, k.keys));
  if (!equalBytes(commitmentHash(c), txid)) return [];
  // on their commitment the HTLCs we offered are the ones they receive
  return c.htlcOutputs
    .filter((o) => o.htlc!.direction === 'received')
    .map((o) => ({ htlcId: o.htlc!.id, paymentHash: o.htlc!.paymentHash, outputIndex: o.index }));
}

/** The preimage of `paymentHash` if input `inputIndex` of `spendingTx` reveals it in its witness (the peer's claim), else null. */
export function preimageFromWitness(spendingTx: Uint8Array, inputIndex: number, paymentHash: Uint8Array): Uint8Array | null {
  const input = TX.fromRaw(buf(spendingTx)).inputs[inputIndex];
  if (input === undefined) return null;
  for (const item of (input.witness as unknown as { items: Buffer[] }).items) {
    if (item.length === 32 && equalBytes(sha256(item), paymentHash)) return new Uint8Array(item);
  }
  return null;
}

export interface RevokedHtlcSweep {
  htlcId: bigint;
  /** The HTLC output of the revoked commitment. */
  outputIndex: number;
  sweep: SweepTx;
}

/**
 * The justice sweeps of the HTLC outputs of `tx`, a revoked commitment of
 * theirs whose HTLCs (`htlcs`, from the revocation log) we kept; and the
 * revocable script every second-stage transaction of theirs pays to (their
 * HTLC-timeout/-success outputs use the to_local script), for the case where
 * they spend an HTLC output first. Null when `tx` is not a revoked commitment.
 */
export function revokedHtlcSweeps(
  s: ChannelState,
  secrets: ChannelSecrets,
  tx: Uint8Array,
  htlcs: readonly ChannelHtlc[],
  destScript: Uint8Array,
  feeratePerKw: number,
): { sweeps: RevokedHtlcSweep[]; secondLevel: { scriptPubKey: Uint8Array; witnessScript: Uint8Array; revocationPriv: Uint8Array } } | null {
  const n = commitmentNumberOf(s, tx);
  if (n === null || n >= s.remoteCommit.height) return null;
  const secret = RevocationStore.decode(s.revocationStore).get(secretIndexForCommitment(n));
  if (secret === null) return null;
  const keys = remoteCommitmentKeys(secrets, s.local.pubkeys, s.remote.pubkeys, perCommitmentPoint(secret)).keys;
  const revocationPriv = deriveRevocationPrivkey(secrets.revocationBaseSecret, secret);
  const t = TX.fromRaw(buf(tx));
  const txid = new Uint8Array(t.hash());
  const used = new Set<number>();
  const sweeps: RevokedHtlcSweep[] = [];
  for (const h of htlcs) {
    // on their commitment the holder is them: what we offered they receive
    const script = h.offered
      ? receivedHtlcWitnessScript(
          s.channelType,
          keys.revocationPubkey,
          keys.localHtlcPubkey,
          keys.remoteHtlcPubkey,
          h.paymentHash,
          h.cltvExpiry,
        )
      : offeredHtlcWitnessScript(s.channelType, keys.revocationPubkey, keys.localHtlcPubkey, keys.remoteHtlcPubkey, h.paymentHash);
    const spk = p2wsh(script);
    const index = t.outputs.findIndex((o, i) => !used.has(i) && equalBytes(new Uint8Array(o.script.toRaw()), spk));
    if (index < 0) continue; // trimmed on that commitment
    used.add(index);
    try {
      const sweep = sweepRevokedHtlc(
        { txid, outputIndex: index, valueSat: BigInt(t.outputs[index]!.value) },
        script,
        revocationPriv,
        destScript,
        feeratePerKw,
      );
      sweeps.push({ htlcId: h.id, outputIndex: index, sweep });
    } catch (e) {
      if (!(e instanceof Bolt3Error && e.code === 'ERR_DUST')) throw e;
    }
  }
  const witnessScript = toLocalWitnessScript(keys.revocationPubkey, s.local.config.toSelfDelay, keys.localDelayedPubkey);
  return { sweeps, secondLevel: { scriptPubKey: p2wsh(witnessScript), witnessScript, revocationPriv } };
}

/**
 * Sweeps output `outputIndex` of their second-stage transaction `tx` (a revocable to_local script) with the
 * revocation key. With anchors the peer may have moved its HTLC input (and so its output: SIGHASH_SINGLE pairs them)
 * away from index 0 and added fee inputs and change.
 */
export function sweepRevokedSecondLevel(
  tx: Uint8Array,
  outputIndex: number,
  witnessScript: Uint8Array,
  revocationPriv: Uint8Array,
  destScript: Uint8Array,
  feeratePerKw: number,
): SweepTx {
  const t = TX.fromRaw(buf(tx));
  const out = t.outputs[outputIndex];
  if (out === undefined) throw new Bolt3Error('ERR_BAD_PARAMS', `no output ${outputIndex}`);
  return sweepRevokedToLocal(
    { txid: new Uint8Array(t.hash()), outputIndex, valueSat: BigInt(out.value) },
    witnessScript,
    revocationPriv,
    destScript,
    feeratePerKw,
  );
}
