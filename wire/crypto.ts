/**
 * Cryptographic primitives for every layer, behind one small interface.
 *
 * Hashes, HMAC, HKDF and ChaCha20(-Poly1305) come from node:crypto (OpenSSL).
 * secp256k1 comes from the fastest backend that loads: native libsecp256k1
 * (npm `secp256k1`, prebuilt binary loaded at run time) or, failing that,
 * `tiny-secp256k1` (WebAssembly). Both are wrapped to give byte-identical
 * results; tests cross-check them against @noble/secp256k1.
 *
 * Conventions (BOLT 3/4/8):
 * - public keys are 33-byte compressed points;
 * - ECDH is SHA256(compressed(k·P)), as libsecp256k1's default;
 * - signatures are 64-byte compact (r ‖ s), always low-S;
 * - `verify` rejects high-S signatures, as lnd and libsecp256k1 do.
 */
import * as nodeCrypto from 'node:crypto';
import { createRequire } from 'node:module';
import { AmpnodeError, ArgumentError } from './errors.js';
import { bigintToBytes32, bytes32ToBigint } from './bytes.js';
import { sha256Concat } from './noise-hash.js';

const require = createRequire(import.meta.url);

export class CryptoError extends AmpnodeError<'ERR_INVALID_PUBKEY' | 'ERR_INVALID_PRIVKEY' | 'ERR_INVALID_SIGNATURE' | 'ERR_CRYPTO'> {}

// ---------------------------------------------------------------- hashes

const hashOneShot: ((alg: string, data: Uint8Array, enc: 'buffer') => Buffer) | undefined = (
  nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }
).hash;

function asU8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function sha256(data: Uint8Array): Uint8Array {
  // one-block inputs (keys, hashes, outpoints): the plain-TypeScript compression beats a native call's set-up
  if (data.length <= 55) return sha256Concat(data);
  if (hashOneShot !== undefined && data.length < 4096) return asU8(hashOneShot('sha256', data, 'buffer'));
  return asU8(nodeCrypto.createHash('sha256').update(data).digest());
}

/** SHA-256 over several parts without concatenating them first. */
export function sha256Parts(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 2 && parts[0]!.length + parts[1]!.length <= 119) return sha256Concat(parts[0]!, parts[1]); // at most two blocks
  const h = nodeCrypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return asU8(h.digest());
}

export function hash160(data: Uint8Array): Uint8Array {
  return asU8(nodeCrypto.createHash('ripemd160').update(sha256(data)).digest());
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return asU8(nodeCrypto.createHmac('sha256', key).update(data).digest());
}

/** HKDF-SHA256 (RFC 5869); `info` is empty unless given, as BOLT 8 uses it. */
export function hkdfSha256(salt: Uint8Array, ikm: Uint8Array, length: number, info: Uint8Array = new Uint8Array(0)): Uint8Array {
  return new Uint8Array(nodeCrypto.hkdfSync('sha256', ikm, salt, info, length));
}

export function randomBytes(n: number): Uint8Array {
  return asU8(nodeCrypto.randomBytes(n));
}

// ---------------------------------------------------------------- ChaCha20

const ZERO_IV = new Uint8Array(16);

/** Raw ChaCha20 keystream XOR with a 96-bit nonce and 32-bit counter starting at 0 (RFC 8439). */
export function chacha20(key: Uint8Array, nonce12: Uint8Array, data: Uint8Array): Uint8Array {
  let iv = ZERO_IV;
  if (nonce12.length !== 12) throw new ArgumentError('chacha20 nonce must be 12 bytes');
  if (nonce12.some((b) => b !== 0)) {
    iv = new Uint8Array(16);
    iv.set(nonce12, 4);
  }
  const c = nodeCrypto.createCipheriv('chacha20', key, iv);
  return asU8(c.update(data));
}

/** `length` bytes of ChaCha20 keystream (zero nonce), as BOLT 4 generates its streams. */
export function chacha20Stream(key: Uint8Array, length: number): Uint8Array {
  return chacha20(key, new Uint8Array(12), new Uint8Array(length));
}

/** BOLT 8 nonce: 32 zero bits then the 64-bit little-endian counter. */
export function noiseNonce(n: bigint | number): Uint8Array {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(n), true);
  return iv;
}

export function chachaPolyEncrypt(key: Uint8Array, nonce12: Uint8Array, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = nodeCrypto.createCipheriv('chacha20-poly1305', key, nonce12, { authTagLength: 16 });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  const tag = c.getAuthTag();
  const out = new Uint8Array(body.length + 16);
  out.set(body, 0);
  out.set(tag, body.length);
  return out;
}

/** Returns null when the tag does not verify. */
export function chachaPolyDecrypt(key: Uint8Array, nonce12: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
  if (ciphertext.length < 16) return null;
  const d = nodeCrypto.createDecipheriv('chacha20-poly1305', key, nonce12, { authTagLength: 16 });
  d.setAAD(ad, { plaintextLength: ciphertext.length - 16 });
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const body = d.update(ciphertext.subarray(0, ciphertext.length - 16));
  try {
    d.final();
  } catch {
    return null;
  }
  return asU8(body);
}

// ---------------------------------------------------------------- secp256k1

export const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_ORDER = CURVE_ORDER >> 1n;

/** The operations every layer needs; each backend implements exactly these. */
export interface Secp256k1Backend {
  readonly name: 'native' | 'wasm';
  isPrivateKey(priv: Uint8Array): boolean;
  isPublicKey(pub: Uint8Array): boolean;
  /** 33-byte compressed public key of `priv`. */
  publicKeyCreate(priv: Uint8Array): Uint8Array;
  /** Re-encode any valid SEC1 key (33 or 65 bytes) as 33-byte compressed. */
  publicKeyCompress(pub: Uint8Array): Uint8Array;
  /** SHA256(compressed(priv·pub)). */
  ecdh(pub: Uint8Array, priv: Uint8Array): Uint8Array;
  /** tweak·pub, compressed. */
  publicKeyTweakMul(pub: Uint8Array, tweak: Uint8Array): Uint8Array;
  /** pub + tweak·G, compressed. */
  publicKeyTweakAdd(pub: Uint8Array, tweak: Uint8Array): Uint8Array;
  /** a + b, compressed. */
  publicKeyCombine(a: Uint8Array, b: Uint8Array): Uint8Array;
  privateKeyTweakAdd(priv: Uint8Array, tweak: Uint8Array): Uint8Array;
  privateKeyTweakMul(priv: Uint8Array, tweak: Uint8Array): Uint8Array;
  /** RFC 6979 deterministic ECDSA over a 32-byte digest; compact 64-byte, low-S. */
  sign(digest32: Uint8Array, priv: Uint8Array): Uint8Array;
  /** Compact signature plus recovery id (for BOLT 11). */
  signRecoverable(digest32: Uint8Array, priv: Uint8Array): { signature: Uint8Array; recoveryId: number };
  /** Strict verify: rejects high-S. */
  verify(sig64: Uint8Array, digest32: Uint8Array, pub: Uint8Array): boolean;
  /** Public key from a compact signature and recovery id; null if none. */
  recover(sig64: Uint8Array, recoveryId: number, digest32: Uint8Array): Uint8Array | null;
}

function toBig(b: Uint8Array): bigint {
  if (b.length === 32) return bytes32ToBigint(b);
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}

function to32(n: bigint): Uint8Array {
  return bigintToBytes32(n);
}

function checkDigest(d: Uint8Array): void {
  if (d.length !== 32) throw new ArgumentError('digest must be 32 bytes');
}

/**
 * A digest as the scalar mod n. ECDSA signs `digest mod n` anyway; RFC 6979
 * also derives the nonce from the reduced value, which the bundled
 * libsecp256k1 does not do for digests ≥ n (tiny-secp256k1 and noble do).
 * Reducing first makes every backend produce the same signature.
 */
function reduceDigest(d: Uint8Array): Uint8Array {
  if (d[0] !== 0xff) return d;
  const v = toBig(d);
  return v >= CURVE_ORDER ? to32(v - CURVE_ORDER) : d;
}

function nativeBackend(): Secp256k1Backend {
  // `secp256k1/bindings` throws when the prebuilt binary does not load (unlike
  // the package root, which silently falls back to a pure-JS implementation).
  const s = require('secp256k1/bindings') as typeof import('secp256k1');
  const wrap = <T>(code: CryptoError['code'], what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new CryptoError(code, `${what}: ${(e as Error).message}`);
    }
  };
  // Argument checks run before the library call, in the same order as the
  // wasm backend's, so both backends fail with the same error code.
  const isPub = (p: Uint8Array) => (p.length === 33 || p.length === 65) && s.publicKeyVerify(p);
  const isPriv = (k: Uint8Array) => k.length === 32 && s.privateKeyVerify(k);
  const needPriv = (k: Uint8Array, what: string) => {
    if (!isPriv(k)) throw new CryptoError('ERR_INVALID_PRIVKEY', `${what}: not a valid private key`);
  };
  const needTweak = (k: Uint8Array, what: string) => {
    if (k.length !== 32 || toBig(k) >= CURVE_ORDER) throw new CryptoError('ERR_INVALID_PRIVKEY', `${what}: tweak out of range`);
  };
  return {
    name: 'native',
    isPrivateKey: isPriv,
    isPublicKey: isPub,
    publicKeyCreate: (priv) => wrap('ERR_INVALID_PRIVKEY', 'publicKeyCreate', () => s.publicKeyCreate(priv, true)),
    publicKeyCompress: (pub) => wrap('ERR_INVALID_PUBKEY', 'publicKeyCompress', () => s.publicKeyConvert(pub, true)),
    ecdh: (pub, priv) => {
      // The private key is checked first, so that a throw from libsecp256k1
      // below can only mean the point did not parse (no second parse of the
      // point here: ECDH is the hot path of every handshake and onion peel).
      needPriv(priv, 'ecdh');
      if (pub.length !== 33 && pub.length !== 65) throw new CryptoError('ERR_INVALID_PUBKEY', 'ecdh: not a valid public key');
      return wrap('ERR_INVALID_PUBKEY', 'ecdh', () => s.ecdh(pub, priv));
    },
    // Tweaks are checked first and the point is left to libsecp256k1 to parse
    // (once): a throw below can then only be about the point.
    publicKeyTweakMul: (pub, tweak) => {
      needPriv(tweak, 'publicKeyTweakMul');
      return wrap('ERR_INVALID_PUBKEY', 'publicKeyTweakMul', () => s.publicKeyTweakMul(pub, tweak, true));
    },
    publicKeyTweakAdd: (pub, tweak) => {
      needTweak(tweak, 'publicKeyTweakAdd');
      return wrap('ERR_INVALID_PUBKEY', 'publicKeyTweakAdd', () => s.publicKeyTweakAdd(pub, tweak, true));
    },
    publicKeyCombine: (a, b) => wrap('ERR_INVALID_PUBKEY', 'publicKeyCombine', () => s.publicKeyCombine([a, b], true)),
    privateKeyTweakAdd: (priv, tweak) => {
      needPriv(priv, 'privateKeyTweakAdd');
      needTweak(tweak, 'privateKeyTweakAdd');
      return wrap('ERR_INVALID_PRIVKEY', 'privateKeyTweakAdd', () => s.privateKeyTweakAdd(Uint8Array.from(priv), tweak));
    },
    privateKeyTweakMul: (priv, tweak) => {
      needPriv(priv, 'privateKeyTweakMul');
      needPriv(tweak, 'privateKeyTweakMul');
      return wrap('ERR_INVALID_PRIVKEY', 'privateKeyTweakMul', () => s.privateKeyTweakMul(Uint8Array.from(priv), tweak));
    },
    sign: (d, priv) => {
      checkDigest(d);
      return wrap('ERR_INVALID_PRIVKEY', 'sign', () => s.ecdsaSign(reduceDigest(d), priv).signature);
    },
    signRecoverable: (d, priv) => {
      checkDigest(d);
      const r = wrap('ERR_INVALID_PRIVKEY', 'sign', () => s.ecdsaSign(reduceDigest(d), priv));
      return { signature: r.signature, recoveryId: r.recid };
    },
    verify: (sig, d, pub) => {
      if (sig.length !== 64 || d.length !== 32) return false;
      try {
        return s.ecdsaVerify(sig, d, pub);
      } catch {
        return false;
      }
    },
    recover: (sig, recid, d) => {
      try {
        return s.ecdsaRecover(sig, recid, d, true);
      } catch {
        return null;
      }
    },
  };
}

function wasmBackend(): Secp256k1Backend {
  const t = require('tiny-secp256k1') as typeof import('tiny-secp256k1');
  const must = (code: CryptoError['code'], what: string, v: Uint8Array | null): Uint8Array => {
    if (v === null) throw new CryptoError(code, `${what}: result is the point at infinity or zero`);
    return v;
  };
  const guard = <T>(code: CryptoError['code'], what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof CryptoError) throw e;
      throw new CryptoError(code, `${what}: ${(e as Error).message}`);
    }
  };
  const isPub = (p: Uint8Array) => (p.length === 33 || p.length === 65) && t.isPoint(p);
  const needPub = (p: Uint8Array, what: string) => {
    if (!isPub(p)) throw new CryptoError('ERR_INVALID_PUBKEY', `${what}: not a valid public key`);
  };
  const needPriv = (k: Uint8Array, what: string) => {
    if (!(k.length === 32 && t.isPrivate(k))) throw new CryptoError('ERR_INVALID_PRIVKEY', `${what}: not a valid private key`);
  };
  const needTweak = (k: Uint8Array, what: string) => {
    if (k.length !== 32 || toBig(k) >= CURVE_ORDER) throw new CryptoError('ERR_INVALID_PRIVKEY', `${what}: tweak out of range`);
  };
  return {
    name: 'wasm',
    isPrivateKey: (priv) => priv.length === 32 && t.isPrivate(priv),
    isPublicKey: isPub,
    publicKeyCreate: (priv) => {
      needPriv(priv, 'publicKeyCreate');
      return must('ERR_INVALID_PRIVKEY', 'publicKeyCreate', t.pointFromScalar(priv, true));
    },
    publicKeyCompress: (pub) => {
      needPub(pub, 'publicKeyCompress');
      return guard('ERR_INVALID_PUBKEY', 'publicKeyCompress', () => t.pointCompress(pub, true));
    },
    ecdh: (pub, priv) => {
      needPriv(priv, 'ecdh');
      needPub(pub, 'ecdh');
      return sha256(must('ERR_INVALID_PUBKEY', 'ecdh', t.pointMultiply(pub, priv, true)));
    },
    publicKeyTweakMul: (pub, tweak) => {
      needPriv(tweak, 'publicKeyTweakMul');
      needPub(pub, 'publicKeyTweakMul');
      return must('ERR_INVALID_PUBKEY', 'publicKeyTweakMul', t.pointMultiply(pub, tweak, true));
    },
    publicKeyTweakAdd: (pub, tweak) => {
      needTweak(tweak, 'publicKeyTweakAdd');
      needPub(pub, 'publicKeyTweakAdd');
      return must('ERR_INVALID_PUBKEY', 'publicKeyTweakAdd', t.pointAddScalar(pub, tweak, true));
    },
    publicKeyCombine: (a, b) => {
      needPub(a, 'publicKeyCombine');
      needPub(b, 'publicKeyCombine');
      return must('ERR_INVALID_PUBKEY', 'publicKeyCombine', t.pointAdd(a, b, true));
    },
    privateKeyTweakAdd: (priv, tweak) => {
      needPriv(priv, 'privateKeyTweakAdd');
      needTweak(tweak, 'privateKeyTweakAdd');
      return must('ERR_INVALID_PRIVKEY', 'privateKeyTweakAdd', t.privateAdd(priv, tweak));
    },
    privateKeyTweakMul: (priv, tweak) => {
      needPriv(priv, 'privateKeyTweakMul');
      needPriv(tweak, 'privateKeyTweakMul');
      return to32((toBig(priv) * toBig(tweak)) % CURVE_ORDER);
    },
    sign: (d, priv) => {
      checkDigest(d);
      needPriv(priv, 'sign');
      return t.sign(d, priv); // RFC 6979, low-S
    },
    signRecoverable: (d, priv) => {
      checkDigest(d);
      needPriv(priv, 'sign');
      const r = t.signRecoverable(d, priv);
      return { signature: r.signature, recoveryId: r.recoveryId };
    },
    verify: (sig, d, pub) => {
      if (sig.length !== 64 || d.length !== 32 || !isPub(pub)) return false;
      const sVal = toBig(sig.subarray(32));
      if (sVal > HALF_ORDER) return false;
      try {
        return t.verify(d, pub, sig, true);
      } catch {
        return false;
      }
    },
    recover: (sig, recid, d) => {
      try {
        return t.recover(d, sig, recid as 0 | 1 | 2 | 3, true);
      } catch {
        return null;
      }
    },
  };
}

/** Both backends, each only if it loads; for tests and benchmarks. */
export function loadBackends(): Secp256k1Backend[] {
  const out: Secp256k1Backend[] = [];
  for (const make of [nativeBackend, wasmBackend]) {
    try {
      out.push(make());
    } catch {
      /* backend not available on this platform */
    }
  }
  return out;
}

function pickBackend(): Secp256k1Backend {
  const want = process.env['AMPNODE_SECP256K1'];
  if (want === 'wasm') return wasmBackend();
  try {
    return nativeBackend();
  } catch {
    return wasmBackend();
  }
}

/** The backend every module uses. */
export const secp: Secp256k1Backend = pickBackend();

// ---------------------------------------------------------------- signatures

/** Normalise a compact signature to low-S. */
export function normalizeSignature(sig64: Uint8Array): Uint8Array {
  if (sig64.length !== 64) throw new CryptoError('ERR_INVALID_SIGNATURE', 'compact signature must be 64 bytes');
  const s = toBig(sig64.subarray(32));
  if (s <= HALF_ORDER) return sig64;
  const out = new Uint8Array(64);
  out.set(sig64.subarray(0, 32), 0);
  out.set(to32(CURVE_ORDER - s), 32);
  return out;
}

function derInt(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  if (v[0]! & 0x80) {
    const out = new Uint8Array(v.length + 1);
    out.set(v, 1);
    return out;
  }
  return v.slice();
}

/** Strict DER encoding (BIP 66) of a compact signature. */
export function signatureToDER(sig64: Uint8Array): Uint8Array {
  if (sig64.length !== 64) throw new CryptoError('ERR_INVALID_SIGNATURE', 'compact signature must be 64 bytes');
  const r = derInt(sig64.subarray(0, 32));
  const s = derInt(sig64.subarray(32));
  const out = new Uint8Array(6 + r.length + s.length);
  out[0] = 0x30;
  out[1] = 4 + r.length + s.length;
  out[2] = 0x02;
  out[3] = r.length;
  out.set(r, 4);
  out[4 + r.length] = 0x02;
  out[5 + r.length] = s.length;
  out.set(s, 6 + r.length);
  return out;
}

/** Parse a strict DER signature (BIP 66 rules) into 64-byte compact form. */
export function signatureFromDER(der: Uint8Array): Uint8Array {
  const bad = (why: string): never => {
    throw new CryptoError('ERR_INVALID_SIGNATURE', `DER signature: ${why}`);
  };
  if (der.length < 8 || der.length > 72) bad('bad length');
  if (der[0] !== 0x30) bad('no sequence tag');
  if (der[1] !== der.length - 2) bad('sequence length mismatch');
  const readInt = (off: number): [Uint8Array, number] => {
    if (der[off] !== 0x02) bad('no integer tag');
    const len = der[off + 1] ?? bad('truncated');
    if (len === 0 || len > 33) bad('integer length');
    if (off + 2 + len > der.length) bad('truncated integer');
    const v = der.subarray(off + 2, off + 2 + len);
    if (v[0]! & 0x80) bad('negative integer');
    if (len > 1 && v[0] === 0 && !(v[1]! & 0x80)) bad('non-minimal integer');
    return [v, off + 2 + len];
  };
  const [r, next] = readInt(2);
  const [s, end] = readInt(next);
  if (end !== der.length) bad('trailing bytes');
  const out = new Uint8Array(64);
  const rr = r[0] === 0 ? r.subarray(1) : r;
  const ss = s[0] === 0 ? s.subarray(1) : s;
  if (rr.length > 32 || ss.length > 32) bad('integer too large');
  out.set(rr, 32 - rr.length);
  out.set(ss, 64 - ss.length);
  return out;
}

// ---------------------------------------------------------------- conveniences

export function publicKeyFromPrivate(priv: Uint8Array): Uint8Array {
  return secp.publicKeyCreate(priv);
}

/** Parse and validate a 33-byte compressed public key from the wire. */
export function parsePublicKey(pub: Uint8Array, what = 'public key'): Uint8Array {
  if (pub.length !== 33 || (pub[0] !== 2 && pub[0] !== 3) || !secp.isPublicKey(pub))
    throw new CryptoError('ERR_INVALID_PUBKEY', `${what} is not a valid compressed secp256k1 point`);
  return pub;
}

/** A fresh random private key. */
export function randomPrivateKey(): Uint8Array {
  for (;;) {
    const k = randomBytes(32);
    if (secp.isPrivateKey(k)) return k;
  }
}
