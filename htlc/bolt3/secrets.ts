/**
 * BOLT 3 "Per-commitment Secret Requirements": generating the 2^48 secrets of a
 * channel from one seed, and storing the counterparty's revealed secrets in
 * O(log n) space (the shachain "compact storage", at most 49 entries).
 *
 * Secrets are indexed from 2^48-1 downward: commitment number n uses index
 * 2^48-1-n. Indices are `bigint` because they need 48 bits.
 */
import { sha256, secp } from '../../wire/crypto.js';
import { Reader, Writer, equalBytes } from '../../wire/bytes.js';
import { Bolt3Error } from './errors.js';

export const MAX_COMMITMENT_INDEX = (1n << 48n) - 1n;

function checkIndex(index: bigint): void {
  if (index < 0n || index > MAX_COMMITMENT_INDEX) throw new Bolt3Error('ERR_COMMITMENT_INDEX', `index ${index} is outside 0 … 2^48-1`);
}

function check32(b: Uint8Array, what: string): void {
  if (b.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', `${what} must be 32 bytes`);
}

/** Apply the flip-and-hash steps for bits `bits-1` … 0 of `index` to `base` (BOLT 3 derive_secret). */
function deriveSecret(base: Uint8Array, bits: number, index: bigint): Uint8Array {
  let p: Uint8Array = base;
  for (let b = bits - 1; b >= 0; b--) {
    if ((index >> BigInt(b)) & 1n) {
      const q = p.slice(); // never flip bits in place: hash outputs may share memory
      q[b >> 3] = q[b >> 3]! ^ (1 << (b & 7));
      p = sha256(q);
    }
  }
  return p === base ? base.slice() : p;
}

/** BOLT 3 generate_from_seed: the per-commitment secret at `index`. */
export function perCommitmentSecretFromSeed(seed: Uint8Array, index: bigint): Uint8Array {
  check32(seed, 'seed');
  checkIndex(index);
  return deriveSecret(seed, 48, index);
}

/** Bits below the cached prefix of `PerCommitmentSecrets` (at most this many hashes per secret). */
const LOW_BITS = 16;

/**
 * The secrets of one seed, for indices asked in any order, usually
 * consecutive. The value reached after the flips of bits 47…16 depends only on
 * index >> 16, and a channel's indices share that prefix for 65 536
 * commitments at a time, so it is kept: each secret then costs at most 16
 * hashes instead of up to 48. Results equal perCommitmentSecretFromSeed.
 */
export class PerCommitmentSecrets {
  private readonly seed: Uint8Array;
  private prefix = -1n;
  private prefixValue: Uint8Array = new Uint8Array(0);
  constructor(seed: Uint8Array) {
    check32(seed, 'seed');
    this.seed = seed.slice();
  }
  secret(index: bigint): Uint8Array {
    checkIndex(index);
    const prefix = index >> BigInt(LOW_BITS);
    if (prefix !== this.prefix) {
      // flips of bits 47…16 only (the low bits of the index masked out)
      this.prefixValue = deriveSecret(this.seed, 48, prefix << BigInt(LOW_BITS));
      this.prefix = prefix;
    }
    return deriveSecret(this.prefixValue, LOW_BITS, index);
  }
}

/** The secret index that commitment number `commitmentNumber` uses: 2^48-1 - n. */
export function secretIndexForCommitment(commitmentNumber: bigint): bigint {
  checkIndex(commitmentNumber);
  return MAX_COMMITMENT_INDEX - commitmentNumber;
}

/** per_commitment_point = per_commitment_secret · G. */
export function perCommitmentPoint(secret: Uint8Array): Uint8Array {
  check32(secret, 'per-commitment secret');
  return secp.publicKeyCreate(secret);
}

/** Number of trailing zero bits of a 48-bit index (48 for index 0): the bucket it is stored in. */
function bucketOf(index: bigint): number {
  if (index === 0n) return 48;
  let b = 0;
  while (((index >> BigInt(b)) & 1n) === 0n) b++;
  return b;
}

interface Known {
  index: bigint;
  secret: Uint8Array;
}

const ENCODING_VERSION = 0;

/**
 * The counterparty's revealed per-commitment secrets, kept compactly.
 *
 * Secrets must be inserted in the order they are revealed: each index one
 * below the previous. A secret that does not derive the ones already held is
 * refused (the peer lied), and the store is left unchanged.
 */
export class RevocationStore {
  private readonly known: (Known | undefined)[] = new Array<Known | undefined>(49);
  private lowest: bigint | null = null;

  /** The index the next insert must have, or null when the store is empty. */
  get nextIndex(): bigint | null {
    return this.lowest === null ? null : this.lowest - 1n;
  }

  /** How many secrets have been inserted. */
  get count(): bigint {
    return this.lowest === null ? 0n : MAX_COMMITMENT_INDEX - this.lowest + 1n;
  }

  insert(index: bigint, secret: Uint8Array): void {
    checkIndex(index);
    check32(secret, 'per-commitment secret');
    if (this.lowest !== null && index !== this.lowest - 1n)
      throw new Bolt3Error('ERR_SHACHAIN_ORDER', `expected secret index ${this.lowest - 1n}, got ${index}`);
    const bucket = bucketOf(index);
    for (let b = 0; b < bucket; b++) {
      const k = this.known[b];
      if (k === undefined) continue;
      const derived = deriveSecret(secret, bucket, k.index);
      if (!equalBytes(derived, k.secret))
        throw new Bolt3Error('ERR_SHACHAIN_MISMATCH', `secret at index ${index} does not derive the stored secret at index ${k.index}`);
    }
    this.known[bucket] = { index, secret: secret.slice() };
    this.lowest = index;
  }

  /** The secret at `index` if it has been revealed (directly or derivably), else null. */
  get(index: bigint): Uint8Array | null {
    checkIndex(index);
    for (let b = 0; b < 49; b++) {
      const k = this.known[b];
      if (k === undefined) continue;
      const mask = ~((1n << BigInt(b)) - 1n) & MAX_COMMITMENT_INDEX;
      if ((index & mask) === k.index) return deriveSecret(k.secret, b, index);
    }
    return null;
  }

  /** Bytes for persistence: version u8, count u8, then per entry bucket u8, index u64, secret 32. */
  encode(): Uint8Array {
    const w = new Writer();
    const entries = this.known.map((k, b) => [b, k] as const).filter((e): e is readonly [number, Known] => e[1] !== undefined);
    w.u8(ENCODING_VERSION);
    w.u8(entries.length);
    for (const [b, k] of entries) {
      w.u8(b);
      w.u64(k.index);
      w.bytes(k.secret);
    }
    return w.finish();
  }

  static decode(bytes: Uint8Array): RevocationStore {
    const bad = (why: string): never => {
      throw new Bolt3Error('ERR_SHACHAIN_ENCODING', why);
    };
    const store = new RevocationStore();
    try {
      const r = new Reader(bytes);
      if (r.u8() !== ENCODING_VERSION) bad('unknown version');
      const n = r.u8();
      if (n > 49) bad('too many entries');
      let lowest: bigint | null = null;
      for (let i = 0; i < n; i++) {
        const b = r.u8();
        const index = r.u64();
        const secret = r.bytes(32);
        if (b > 48 || index > MAX_COMMITMENT_INDEX || bucketOf(index) !== b || store.known[b] !== undefined) bad('inconsistent entry');
        store.known[b] = { index, secret };
        if (lowest === null || index < lowest) lowest = index;
      }
      r.end('revocation store');
      store.lowest = lowest;
    } catch (e) {
      if (e instanceof Bolt3Error) throw e;
      throw new Bolt3Error('ERR_SHACHAIN_ENCODING', (e as Error).message);
    }
    return store;
  }
}
