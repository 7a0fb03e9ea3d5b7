/**
 * What a unilateral close leaves us, from the channel state: our current
 * commitment's txid, the sweep of our `to_local` once its CSV delay has
 * passed (our commitment confirmed), and the sweep of our `to_remote` from
 * a commitment of theirs that confirmed.
 *
 * and, when that commitment of theirs was one they had revoked, the justice
 * sweep of their `to_local` (ours by the revocation key).
 *
 * Not covered here: HTLC outputs (second-stage transactions and their
 * sweeps, and the revoked ones a justice transaction could also take).
 */
import { equalBytes } from '../../wire/bytes.js';
import { secp, sha256Parts } from '../../wire/crypto.js';
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
import { buildLocal, paymentBasepoints } from './commitments.js';
import { ourPoint, remoteCommitmentKeys } from './keys.js';
import type { ChannelSecrets, ChannelState } from './types.js';

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
  const delayedPriv = secp.privateKeyTweakAdd(secrets.delayedPaymentBaseSecret, sha256Parts(point, s.local.pubkeys.delayedPaymentBasepoint));
  const txid = commitmentHash(c);
  const sweep = sweepToLocal({ txid, outputIndex: out.index, valueSat: out.valueSat }, out.witnessScript, c.params.toSelfDelay, delayedPriv, destScript, feeratePerKw);
  return { sweep, toSelfDelay: c.params.toSelfDelay, commitmentTxid: txid };
}

/**
 * The sweep of our to_remote output in `tx` (a commitment of theirs spending
 * the funding output), or null when `tx` pays nothing to our to_remote script.
 */
export function toRemoteSweep(s: ChannelState, secrets: ChannelSecrets, tx: Uint8Array, destScript: Uint8Array, feeratePerKw: number): SweepTx | null {
  const ours = toRemoteOutput(s.channelType, s.local.pubkeys.paymentBasepoint);
  const t = TX.fromRaw(buf(tx));
  const index = t.outputs.findIndex((o) => equalBytes(new Uint8Array(o.script.toRaw()), ours.scriptPubKey));
  if (index < 0) return null;
  const txid = new Uint8Array(t.hash());
  return sweepToRemote({ txid, outputIndex: index, valueSat: BigInt(t.outputs[index]!.value) }, ours.witnessScript, secrets.paymentBaseSecret, destScript, feeratePerKw);
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
  sweep: SweepTx;
  /** The revoked commitment number the peer broadcast. */
  commitmentNumber: bigint;
}

/**
 * When `tx` is a commitment of theirs that they had revoked (we hold its
 * per-commitment secret): the sweep of its to_local output through the
 * revocation branch. Null when it is not revoked, or has no to_local output.
 */
export function justiceSweep(s: ChannelState, secrets: ChannelSecrets, tx: Uint8Array, destScript: Uint8Array, feeratePerKw: number): JusticeSweep | null {
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
  if (index < 0) return null;
  const revocationPriv = deriveRevocationPrivkey(secrets.revocationBaseSecret, secret);
  const sweep = sweepRevokedToLocal({ txid: new Uint8Array(t.hash()), outputIndex: index, valueSat: BigInt(t.outputs[index]!.value) }, script, revocationPriv, destScript, feeratePerKw);
  return { sweep, commitmentNumber: n };
}
