/**
 * What a unilateral close leaves us, from the channel state: our current
 * commitment's txid, the sweep of our `to_local` once its CSV delay has
 * passed (our commitment confirmed), and the sweep of our `to_remote` from
 * a commitment of theirs that confirmed.
 *
 * Not covered here: HTLC outputs (second-stage transactions and their
 * sweeps) and revoked commitments of theirs (justice transactions).
 */
import { equalBytes } from '../../wire/bytes.js';
import { secp, sha256Parts } from '../../wire/crypto.js';
import { commitmentHash, sweepToLocal, sweepToRemote, toRemoteOutput, type SweepTx } from '../bolt3/index.js';
import { TX, buf } from '../bolt3/btc.js';
import { buildLocal } from './commitments.js';
import { ourPoint } from './keys.js';
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
