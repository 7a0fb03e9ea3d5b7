/**
 * Channel key material: the six per-channel secrets (funding key, four
 * basepoint secrets, per-commitment seed) derived from a node seed and a
 * channel key index, and their public halves.
 *
 * Secrets stay out of the persisted channel state (the state keeps only the
 * key index), so a store dump never holds spendable keys. The derivation is
 * HMAC-SHA256(seed, "ampnode/channel" ‖ index ‖ purpose), retried with a
 * counter in the (negligible) case the result is not a valid scalar.
 */
import { u32be, concatBytes } from '../../wire/bytes.js';
import { hmacSha256, secp } from '../../wire/crypto.js';
import { ArgumentError } from '../../wire/errors.js';
import { perCommitmentPoint, perCommitmentSecretFromSeed, secretIndexForCommitment } from '../bolt3/index.js';
import type { ChannelPubkeys, ChannelSecrets } from './types.js';

const LABEL = new TextEncoder().encode('ampnode/channel');

function scalar(seed: Uint8Array, index: number, purpose: number): Uint8Array {
  for (let ctr = 0; ; ctr++) {
    const k = hmacSha256(seed, concatBytes(LABEL, u32be(index), new Uint8Array([purpose, ctr])));
    if (secp.isPrivateKey(k)) return k;
  }
}

/** The channel secrets for key index `index` under node seed `seed` (32 bytes). */
export function deriveChannelSecrets(seed: Uint8Array, index: number): ChannelSecrets {
  if (seed.length !== 32) throw new ArgumentError('node seed must be 32 bytes');
  return {
    fundingPriv: scalar(seed, index, 0),
    revocationBaseSecret: scalar(seed, index, 1),
    paymentBaseSecret: scalar(seed, index, 2),
    delayedPaymentBaseSecret: scalar(seed, index, 3),
    htlcBaseSecret: scalar(seed, index, 4),
    perCommitmentSeed: scalar(seed, index, 5),
  };
}

export function channelPubkeys(s: ChannelSecrets): ChannelPubkeys {
  return {
    fundingPubkey: secp.publicKeyCreate(s.fundingPriv),
    revocationBasepoint: secp.publicKeyCreate(s.revocationBaseSecret),
    paymentBasepoint: secp.publicKeyCreate(s.paymentBaseSecret),
    delayedPaymentBasepoint: secp.publicKeyCreate(s.delayedPaymentBaseSecret),
    htlcBasepoint: secp.publicKeyCreate(s.htlcBaseSecret),
  };
}

/** Our per-commitment secret for commitment number `n`. */
export function ourSecret(s: ChannelSecrets, n: bigint): Uint8Array {
  return perCommitmentSecretFromSeed(s.perCommitmentSeed, secretIndexForCommitment(n));
}

/** Our per-commitment point for commitment number `n`. */
export function ourPoint(s: ChannelSecrets, n: bigint): Uint8Array {
  return perCommitmentPoint(ourSecret(s, n));
}
