/**
 * SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and the two-output HKDF
 * (RFC 5869) BOLT 8 uses, in plain TypeScript, for the handshake's tiny
 * inputs (at most a few blocks).
 *
 * Why not node:crypto: each native hash/HMAC/HKDF call costs several
 * microseconds of object set-up, more than the hashing itself; a BOLT 8
 * handshake makes about twenty of them. Why not @noble/hashes: measured on
 * these inputs (32 + 16..49 bytes, HKDF with 32-byte salt and key) its
 * SHA-256 and HKDF take about twice as long as this file, whose gain comes
 * from what a general library cannot assume: one preallocated block buffer
 * and state (calls never nest), inner digests written straight into the
 * outer hash's input, and the HMAC key's inner/outer midstates computed
 * once for both HKDF outputs. Inputs above the scratch size fall back to
 * node:crypto. The same midstates serve BOLT 4's attribution data
 * (PrefixedHmacSha256: twenty HMACs under one key over one packet). Results are cross-checked against node:crypto and
 * @noble/hashes in test/wire/noise.test.ts.
 */
import { createHash } from 'node:crypto';

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
  0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
  0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
  0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
  0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

// Shared working memory. Every exported function runs to completion
// without calling another one's callers back, so one set suffices.
const W = new Int32Array(64);
const S = new Int32Array(8);
const SCRATCH_SIZE = 256;
const scratch = new Uint8Array(SCRATCH_SIZE);
const keyBlock = new Uint8Array(64);
const inner = new Int32Array(8);
const outer = new Int32Array(8);
const prk = new Uint8Array(32);

/**
 * Compresses one 64-byte block of `buf` at `off` into `s`. The rounds run
 * four at a time with the working variables renamed instead of shifted
 * (Ch and Maj in their three-operation forms), which V8 runs about 20%
 * faster than the one-round loop.
 */
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
  for (let i = 0; i < 64; i += 4) {
    // round i: h takes the new value of a, d that of e
    h = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + (g ^ (e & (f ^ g))) + K[i]! + W[i]!) | 0;
    d = (d + h) | 0;
    h = (h + (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & b) | (c & (a | b)))) | 0;
    // round i + 1: (a..h) is now (h, a, b, c, d, e, f, g)
    g =
      (g + (((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7))) + (f ^ (d & (e ^ f))) + K[i + 1]! + W[i + 1]!) |
      0;
    c = (c + g) | 0;
    g = (g + (((h >>> 2) | (h << 30)) ^ ((h >>> 13) | (h << 19)) ^ ((h >>> 22) | (h << 10))) + ((h & a) | (b & (h | a)))) | 0;
    // round i + 2: (g, h, a, b, c, d, e, f)
    f =
      (f + (((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7))) + (e ^ (c & (d ^ e))) + K[i + 2]! + W[i + 2]!) |
      0;
    b = (b + f) | 0;
    f = (f + (((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10))) + ((g & h) | (a & (g | h)))) | 0;
    // round i + 3: (f, g, h, a, b, c, d, e)
    e =
      (e + (((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7))) + (d ^ (b & (c ^ d))) + K[i + 3]! + W[i + 3]!) |
      0;
    a = (a + e) | 0;
    e = (e + (((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10))) + ((f & g) | (h & (f | g)))) | 0;
    // after four rounds (a..h) is (e, f, g, h, a, b, c, d): rename back
    const ta = a;
    const tb = b;
    const tc = c;
    const td = d;
    a = e;
    b = f;
    c = g;
    d = h;
    e = ta;
    f = tb;
    g = tc;
    h = td;
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
 * already in the midstate `mid` and whose remaining `len` bytes are at the
 * start of `scratch`; writes the digest to `out` at `outOff` (which may be
 * `scratch` itself, as the outer HMAC hash's input).
 */
function finish(mid: Int32Array, prefixLen: number, len: number, out: Uint8Array, outOff: number): void {
  const padded = (len + 9 + 63) & ~63;
  scratch[len] = 0x80;
  scratch.fill(0, len + 1, padded - 4);
  const bits = (prefixLen + len) * 8; // < 2^32 here
  scratch[padded - 4] = bits >>> 24;
  scratch[padded - 3] = (bits >>> 16) & 0xff;
  scratch[padded - 2] = (bits >>> 8) & 0xff;
  scratch[padded - 1] = bits & 0xff;
  S.set(mid);
  for (let off = 0; off < padded; off += 64) compress(S, scratch, off);
  for (let i = 0; i < 8; i++, outOff += 4) {
    const v = S[i]!;
    out[outOff] = v >>> 24;
    out[outOff + 1] = (v >>> 16) & 0xff;
    out[outOff + 2] = (v >>> 8) & 0xff;
    out[outOff + 3] = v & 0xff;
  }
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
  scratch.set(a, 0);
  if (b !== undefined) scratch.set(b, a.length);
  const out = new Uint8Array(32);
  finish(IV, 0, len, out, 0);
  return out;
}

/** Sets `inner` and `outer` to the HMAC midstates of `key`. */
function hmacKey(key: Uint8Array): void {
  if (key.length > 64) key = sha256Concat(key);
  keyBlock.set(key);
  keyBlock.fill(0, key.length);
  for (let i = 0; i < 64; i++) keyBlock[i]! ^= 0x36;
  inner.set(IV);
  compress(inner, keyBlock, 0);
  for (let i = 0; i < 64; i++) keyBlock[i]! ^= 0x36 ^ 0x5c;
  outer.set(IV);
  compress(outer, keyBlock, 0);
}

/** HMAC under the current `inner`/`outer` midstates of the `len` bytes at the start of `scratch`, into `out`. */
function hmacScratch(len: number, out: Uint8Array): void {
  finish(inner, 64, len, scratch, 0);
  finish(outer, 64, 32, out, 0);
}

function place(a: Uint8Array, b?: Uint8Array): number {
  const len = a.length + (b === undefined ? 0 : b.length);
  if (len + 9 > SCRATCH_SIZE) throw new RangeError('hmac input too long for the small-input path');
  scratch.set(a, 0);
  if (b !== undefined) scratch.set(b, a.length);
  return len;
}

/** HMAC-SHA256(key, data) for data up to a few blocks. */
export function hmacSha256Small(key: Uint8Array, data: Uint8Array): Uint8Array {
  hmacKey(key); // first: a long key is hashed in the scratch buffer
  const len = place(data);
  const out = new Uint8Array(32);
  hmacScratch(len, out);
  return out;
}

/** HKDF-SHA256 with empty info and 64 bytes of output, split in two 32-byte keys (BOLT 8). */
export function hkdf2(salt: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  // extract: prk = HMAC(salt, ikm)
  hmacKey(salt); // first: a long salt is hashed in the scratch buffer
  const len = place(ikm);
  hmacScratch(len, prk);
  // expand: t1 = HMAC(prk, 0x01), t2 = HMAC(prk, t1 ‖ 0x02)
  hmacKey(prk);
  const t1 = new Uint8Array(32);
  const t2 = new Uint8Array(32);
  scratch[0] = 1;
  hmacScratch(1, t1);
  scratch.set(t1, 0);
  scratch[32] = 2;
  hmacScratch(33, t2);
  return [t1, t2];
}

/**
 * HMAC-SHA256 under one key of `prefix ‖ a ‖ b` for one fixed prefix and many short (a, b): the key's pads and the
 * prefix's whole blocks are compressed once, into midstates of this object's own; each digest then hashes only the
 * prefix's last partial block and (a, b). (a, b) with the prefix's tail must fit the scratch buffer.
 */
export class PrefixedHmacSha256 {
  private readonly innerMid = new Int32Array(8);
  private readonly outerMid = new Int32Array(8);
  private readonly tail: Uint8Array;
  private readonly hashedLength: number;

  constructor(key: Uint8Array, prefix: Uint8Array) {
    hmacKey(key);
    this.innerMid.set(inner);
    this.outerMid.set(outer);
    const whole = prefix.length - (prefix.length % 64);
    for (let off = 0; off < whole; off += 64) compress(this.innerMid, prefix, off);
    this.hashedLength = 64 + whole;
    this.tail = prefix.slice(whole);
  }

  /** HMAC(key, prefix ‖ a[0, aLength) ‖ b[0, bLength)) into `out` (32 bytes at `outOff`). */
  digestInto(a: Uint8Array, aLength: number, b: Uint8Array, bLength: number, out: Uint8Array, outOff = 0): void {
    const t = this.tail.length;
    const len = t + aLength + bLength;
    if (len + 9 > SCRATCH_SIZE || aLength > a.length || bLength > b.length) throw new RangeError('hmac input out of range');
    scratch.set(this.tail, 0);
    for (let i = 0; i < aLength; i++) scratch[t + i] = a[i]!;
    for (let i = 0; i < bLength; i++) scratch[t + aLength + i] = b[i]!;
    finish(this.innerMid, this.hashedLength, len, scratch, 0);
    finish(this.outerMid, 64, 32, out, outOff);
  }
}
