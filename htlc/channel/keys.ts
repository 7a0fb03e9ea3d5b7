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
import { bigintToBytes32, bytes32ToBigint, concatBytes, u32be } from '../../wire/bytes.js';
import { CURVE_ORDER, hmacSha256, secp, sha256Parts } from '../../wire/crypto.js';
import { ArgumentError } from '../../wire/errors.js';
import { PerCommitmentSecrets, perCommitmentPoint, secretIndexForCommitment, type CommitmentKeys } from '../bolt3/index.js';
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

/** Recently used per-commitment secrets and points of each key set (a commitment's point is needed several times). */
const cache = new WeakMap<ChannelSecrets, { gen: PerCommitmentSecrets; m: Map<bigint, { secret: Uint8Array; point?: Uint8Array }> }>();
const CACHE_SIZE = 8;

function cached(s: ChannelSecrets, n: bigint): { secret: Uint8Array; point?: Uint8Array } {
  let c = cache.get(s);
  if (c === undefined) cache.set(s, (c = { gen: new PerCommitmentSecrets(s.perCommitmentSeed), m: new Map() }));
  const m = c.m;
  let e = m.get(n);
  if (e === undefined) {
    e = { secret: c.gen.secret(secretIndexForCommitment(n)) };
    m.set(n, e);
    if (m.size > CACHE_SIZE) m.delete(m.keys().next().value as bigint);
  }
  return e;
}

/** Our per-commitment secret for commitment number `n`. */
export function ourSecret(s: ChannelSecrets, n: bigint): Uint8Array {
  return cached(s, n).secret.slice();
}

/** Our per-commitment point for commitment number `n`. */
export function ourPoint(s: ChannelSecrets, n: bigint): Uint8Array {
  const e = cached(s, n);
  if (e.point === undefined) e.point = perCommitmentPoint(e.secret);
  return e.point.slice();
}

// ---------------------------------------------------------------- per-commitment keys with our secrets
//
// BOLT 3 key derivation, computed where possible from the private keys we hold:
// a point we know the discrete log of is one fixed-base multiplication
// (publicKeyCreate) instead of a variable-base one. Results equal
// bolt3.deriveCommitmentKeys (a test checks it).

function tweak(point: Uint8Array, basepoint: Uint8Array): Uint8Array {
  return sha256Parts(point, basepoint);
}

/**
 * Our private key of one commitment (BOLT 3: basepoint_secret + SHA256(per_commitment_point ‖ basepoint)), with the
 * basepoint given rather than recomputed from its secret.
 */
export function commitmentPrivkey(baseSecret: Uint8Array, basepoint: Uint8Array, point: Uint8Array): Uint8Array {
  return secp.privateKeyTweakAdd(baseSecret, tweak(point, basepoint));
}

/**
 * m·X + k·G, for a revocation pubkey (m·X is the variable-base part, k·G the
 * part whose discrete log we hold). Done as one double-base multiplication by
 * ECDSA public-key recovery: with R = X (r = x(X), recovery id = parity of
 * y(X)), s = m·r and e = −k·r, recovery returns r⁻¹(s·R − e·G) = m·X + k·G.
 * That costs about one signature check instead of a multiplication, a
 * fixed-base multiplication and an addition, which is what it falls back to
 * in the cases recovery cannot express (x(X) ≥ n, a zero scalar).
 */
function mulAddG(x: Uint8Array, m: Uint8Array, k: Uint8Array): Uint8Array {
  if (x.length === 33 && m.length === 32 && k.length === 32) {
    const r = bytes32ToBigint(x.subarray(1, 33));
    const sv = (bytes32ToBigint(m) * r) % CURVE_ORDER;
    const e = ((CURVE_ORDER - (bytes32ToBigint(k) % CURVE_ORDER)) * r) % CURVE_ORDER;
    if (r !== 0n && r < CURVE_ORDER && sv !== 0n && e !== 0n) {
      const sig = new Uint8Array(64);
      bigintToBytes32(r, sig, 0);
      bigintToBytes32(sv, sig, 32);
      const q = secp.recover(sig, x[0]! & 1, bigintToBytes32(e));
      if (q !== null) return q;
    }
  }
  return secp.publicKeyCombine(secp.publicKeyTweakMul(x, m), secp.publicKeyCreate(k));
}

/**
 * Keys of OUR commitment with our per-commitment secret `secret` (point `point`).
 * The two HTLC keys are computed when first read: a commitment without HTLC
 * outputs never needs them.
 */
export function localCommitmentKeys(
  s: ChannelSecrets,
  ours: ChannelPubkeys,
  theirs: ChannelPubkeys,
  secret: Uint8Array,
  point: Uint8Array,
): CommitmentKeys {
  const rb = theirs.revocationBasepoint;
  // revocation = rb·SHA256(rb ‖ point) + (secret·SHA256(point ‖ rb))·G
  const revocationPubkey = mulAddG(rb, sha256Parts(rb, point), secp.privateKeyTweakMul(secret, sha256Parts(point, rb)));
  let localHtlc: Uint8Array | undefined;
  let remoteHtlc: Uint8Array | undefined;
  return {
    revocationPubkey,
    localDelayedPubkey: secp.publicKeyCreate(commitmentPrivkey(s.delayedPaymentBaseSecret, ours.delayedPaymentBasepoint, point)),
    get localHtlcPubkey(): Uint8Array {
      return (localHtlc ??= secp.publicKeyCreate(commitmentPrivkey(s.htlcBaseSecret, ours.htlcBasepoint, point)));
    },
    get remoteHtlcPubkey(): Uint8Array {
      return (remoteHtlc ??= secp.publicKeyTweakAdd(theirs.htlcBasepoint, tweak(point, theirs.htlcBasepoint)));
    },
    remotePaymentPubkey: theirs.paymentBasepoint,
  };
}

/**
 * Keys of THEIR commitment with their per-commitment point, plus our HTLC
 * private key for it (HTLC keys computed when first read, as above).
 */
export function remoteCommitmentKeys(
  s: ChannelSecrets,
  ours: ChannelPubkeys,
  theirs: ChannelPubkeys,
  point: Uint8Array,
): { keys: CommitmentKeys; ourHtlcPriv: Uint8Array } {
  const rb = ours.revocationBasepoint;
  // revocation = point·SHA256(point ‖ rb) + (rb_secret·SHA256(rb ‖ point))·G
  const revocationPubkey = mulAddG(point, sha256Parts(point, rb), secp.privateKeyTweakMul(s.revocationBaseSecret, sha256Parts(rb, point)));
  let ourHtlcPriv: Uint8Array | undefined;
  let localHtlc: Uint8Array | undefined;
  let remoteHtlc: Uint8Array | undefined;
  const htlcPriv = (): Uint8Array => (ourHtlcPriv ??= commitmentPrivkey(s.htlcBaseSecret, ours.htlcBasepoint, point));
  return {
    keys: {
      revocationPubkey,
      localDelayedPubkey: secp.publicKeyTweakAdd(theirs.delayedPaymentBasepoint, tweak(point, theirs.delayedPaymentBasepoint)),
      get localHtlcPubkey(): Uint8Array {
        return (localHtlc ??= secp.publicKeyTweakAdd(theirs.htlcBasepoint, tweak(point, theirs.htlcBasepoint)));
      },
      get remoteHtlcPubkey(): Uint8Array {
        return (remoteHtlc ??= secp.publicKeyCreate(htlcPriv()));
      },
      remotePaymentPubkey: ours.paymentBasepoint,
    },
    get ourHtlcPriv(): Uint8Array {
      return htlcPriv();
    },
  };
}
