/**
 * BOLT 3 "Key Derivation": the per-commitment public and private keys.
 *
 *   pubkey     = basepoint + SHA256(per_commitment_point ‖ basepoint)·G
 *   privkey    = basepoint_secret + SHA256(per_commitment_point ‖ basepoint)
 *   revocation = revocation_basepoint·SHA256(revocation_basepoint ‖ per_commitment_point)
 *              + per_commitment_point·SHA256(per_commitment_point ‖ revocation_basepoint)
 *
 * With option_static_remotekey the remote's payment key is its untweaked
 * payment_basepoint, so `derivePubkey` serves localpubkey/htlcpubkey/delayedpubkey.
 */
import { secp, sha256Parts } from '../../wire/crypto.js';
import type { CommitmentKeys } from './types.js';

export function derivePubkey(basepoint: Uint8Array, perCommitmentPoint: Uint8Array): Uint8Array {
  return secp.publicKeyTweakAdd(basepoint, sha256Parts(perCommitmentPoint, basepoint));
}

export function derivePrivkey(basepointSecret: Uint8Array, perCommitmentPoint: Uint8Array): Uint8Array {
  const basepoint = secp.publicKeyCreate(basepointSecret);
  return secp.privateKeyTweakAdd(basepointSecret, sha256Parts(perCommitmentPoint, basepoint));
}

export function deriveRevocationPubkey(revocationBasepoint: Uint8Array, perCommitmentPoint: Uint8Array): Uint8Array {
  const a = secp.publicKeyTweakMul(revocationBasepoint, sha256Parts(revocationBasepoint, perCommitmentPoint));
  const b = secp.publicKeyTweakMul(perCommitmentPoint, sha256Parts(perCommitmentPoint, revocationBasepoint));
  return secp.publicKeyCombine(a, b);
}

export function deriveRevocationPrivkey(revocationBasepointSecret: Uint8Array, perCommitmentSecret: Uint8Array): Uint8Array {
  const revocationBasepoint = secp.publicKeyCreate(revocationBasepointSecret);
  const point = secp.publicKeyCreate(perCommitmentSecret);
  const a = secp.privateKeyTweakMul(revocationBasepointSecret, sha256Parts(revocationBasepoint, point));
  const b = secp.privateKeyTweakMul(perCommitmentSecret, sha256Parts(point, revocationBasepoint));
  return secp.privateKeyTweakAdd(a, b);
}

/** The basepoints that, with the holder's per-commitment point, give one commitment's keys. */
export interface CommitmentBasepoints {
  /** The holder's per-commitment point for this commitment. */
  perCommitmentPoint: Uint8Array;
  /** The holder's delayed_payment_basepoint. */
  localDelayedPaymentBasepoint: Uint8Array;
  localHtlcBasepoint: Uint8Array;
  remoteHtlcBasepoint: Uint8Array;
  /** The remote's revocation_basepoint. */
  remoteRevocationBasepoint: Uint8Array;
  /** The remote's payment_basepoint (used untweaked: option_static_remotekey). */
  remotePaymentBasepoint: Uint8Array;
}

export function deriveCommitmentKeys(b: CommitmentBasepoints): CommitmentKeys {
  return {
    revocationPubkey: deriveRevocationPubkey(b.remoteRevocationBasepoint, b.perCommitmentPoint),
    localDelayedPubkey: derivePubkey(b.localDelayedPaymentBasepoint, b.perCommitmentPoint),
    localHtlcPubkey: derivePubkey(b.localHtlcBasepoint, b.perCommitmentPoint),
    remoteHtlcPubkey: derivePubkey(b.remoteHtlcBasepoint, b.perCommitmentPoint),
    remotePaymentPubkey: b.remotePaymentBasepoint,
  };
}
