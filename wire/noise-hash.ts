/**
 * SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and the two-output HKDF
 * (RFC 5869) BOLT 8 uses, in plain TypeScript, for the handshake's tiny
 * inputs (at most a few blocks).
 *
 * Why not node:crypto: each native hash/HMAC/HKDF call costs several
 * microseconds of object set-up, more than the hashing itself; a BOLT 8
 * handshake makes about twenty of them. Hashing these few blocks in
 * JavaScript, and reusing the HMAC key's inner/outer states across the two
 * HKDF outputs, cuts that overhead several-fold (see test/bench/noise.bench.ts).
 * Inputs above the scratch size fall back to node:crypto. Results are
 * cross-checked against node:crypto in test/wire/noise.test.ts.
 */
import { createHash } from 'node:crypto';

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

const W = new Int32Array(64);
const SCRATCH_SIZE = 256;
const scratch = new Uint8Array(SCRATCH_SIZE);

/** Compresses one 64-byte block of `buf` at `off` into `s`. */
function compress(s: Int32Array, buf: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++, off += 4) W[i] = (buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!;
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15]!;
    const w2 = W[i - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = s[0]!;
  let b = s[1]!;
  let c = s[2]!;
  let d = s[3]!;
  let e = s[4]!;
  let f = s[5]!;
  let g = s[6]!;
  let h = s[7]!;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  s[0] = (s[0]! + a) | 0;
  s[1] = (s[1]! + b) | 0;
  s[2] = (s[2]! + c) | 0;
  s[3] = (s[3]! + d) | 0;
  s[4] = (s[4]! + e) | 0;
  s[5] = (s[5]! + f) | 0;
  s[6] = (s[6]! + g) | 0;
  s[7] = (s[7]! + h) | 0;
}

/**
 * Finishes a hash whose first `prefixLen` bytes (a multiple of 64) are
 * already in the midstate `mid`, over the parts a ‖ b (b optional).
 */
function finish(mid: Int32Array, prefixLen: number, a: Uint8Array, b?: Uint8Array): Uint8Array {
  const len = a.length + (b === undefined ? 0 : b.length);
  const padded = (len + 9 + 63) & ~63;
  const s = Int32Array.from(mid);
  scratch.set(a, 0);
  if (b !== undefined) scratch.set(b, a.length);
  scratch[len] = 0x80;
  scratch.fill(0, len + 1, padded - 4);
  const bits = (prefixLen + len) * 8; // < 2^32 here
  scratch[padded - 4] = bits >>> 24;
  scratch[padded - 3] = (bits >>> 16) & 0xff;
  scratch[padded - 2] = (bits >>> 8) & 0xff;
  scratch[padded - 1] = bits & 0xff;
  for (let off = 0; off < padded; off += 64) compress(s, scratch, off);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const v = s[i]!;
    out[4 * i] = v >>> 24;
    out[4 * i + 1] = (v >>> 16) & 0xff;
    out[4 * i + 2] = (v >>> 8) & 0xff;
    out[4 * i + 3] = v & 0xff;
  }
  return out;
}

/** SHA-256(a ‖ b). */
export function sha256Concat(a: Uint8Array, b?: Uint8Array): Uint8Array {
  const len = a.length + (b === undefined ? 0 : b.length);
  if (len + 9 > SCRATCH_SIZE) {
    const h = createHash('sha256').update(a);
    if (b !== undefined) h.update(b);
    const d = h.digest();
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  return finish(IV, 0, a, b);
}

/** Inner and outer HMAC midstates of a key of at most 64 bytes. */
function hmacStates(key: Uint8Array): [Int32Array, Int32Array] {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256Concat(key) : key);
  for (let i = 0; i < 64; i++) block[i]! ^= 0x36;
  const inner = Int32Array.from(IV);
  compress(inner, block, 0);
  for (let i = 0; i < 64; i++) block[i]! ^= 0x36 ^ 0x5c;
  const outer = Int32Array.from(IV);
  compress(outer, block, 0);
  return [inner, outer];
}

function hmacWith(states: [Int32Array, Int32Array], a: Uint8Array, b?: Uint8Array): Uint8Array {
  if (a.length + (b === undefined ? 0 : b.length) + 9 > SCRATCH_SIZE) throw new RangeError('hmac input too long for the small-input path');
  return finish(states[1], 64, finish(states[0], 64, a, b));
}

/** HMAC-SHA256(key, data) for data up to a few blocks. */
export function hmacSha256Small(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmacWith(hmacStates(key), data);
}

const ONE = new Uint8Array([1]);
const TWO = new Uint8Array([2]);

/** HKDF-SHA256 with empty info and 64 bytes of output, split in two 32-byte keys (BOLT 8). */
export function hkdf2(salt: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const prk = hmacWith(hmacStates(salt), ikm);
  const st = hmacStates(prk);
  const t1 = hmacWith(st, ONE);
  const t2 = hmacWith(st, t1, TWO);
  return [t1, t2];
}
