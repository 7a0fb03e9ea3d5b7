/**
 * Cryptographic primitives: every secp256k1 backend gives byte-identical
 * results and the same error codes, cross-checked against @noble/secp256k1
 * (an independent pure-JS implementation) over fixed and random keys; the
 * symmetric primitives against their RFC test vectors.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as noble from '@noble/secp256k1';
import fc from 'fast-check';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import {
  CURVE_ORDER,
  CryptoError,
  chacha20,
  chacha20Stream,
  chachaPolyDecrypt,
  chachaPolyEncrypt,
  hkdfSha256,
  hmacSha256,
  loadBackends,
  normalizeSignature,
  noiseNonce,
  parsePublicKey,
  secp,
  sha256,
  signatureFromDER,
  signatureToDER,
  type Secp256k1Backend,
} from '../../wire/crypto.js';

noble.hashes.sha256 = sha256 as typeof noble.hashes.sha256;
noble.hashes.hmacSha256 = hmacSha256 as typeof noble.hashes.hmacSha256;

const backends = loadBackends();
const N = CURVE_ORDER;
const to32 = (n: bigint) => hexToBytes(n.toString(16).padStart(64, '0'));
const toBig = (b: Uint8Array) => BigInt('0x' + (bytesToHex(b) || '0'));
const hex = (b: Uint8Array) => bytesToHex(b);

/** Runs f on every backend; asserts they agree (same bytes, or same error code) and returns the common result. */
function agree<T>(f: (b: Secp256k1Backend) => T): T | { error: string } {
  const results = backends.map((b) => {
    try {
      const r = f(b);
      return { ok: r, text: r instanceof Uint8Array ? hex(r) : JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? hex(v) : v)) };
    } catch (e) {
      assert.ok(e instanceof CryptoError, `${b.name}: not a CryptoError: ${String(e)}`);
      return { error: e.code, text: `error ${e.code}` };
    }
  });
  for (let i = 1; i < results.length; i++) assert.equal(results[i]!.text, results[0]!.text, `${backends[i]!.name} vs ${backends[0]!.name}`);
  const r = results[0]!;
  return 'error' in r ? { error: r.error as string } : (r.ok as T);
}

function ok<T>(r: T | { error: string }): T {
  assert.ok(!(typeof r === 'object' && r !== null && 'error' in r && !(r instanceof Uint8Array)), `unexpected ${JSON.stringify(r)}`);
  return r as T;
}

const FIXED_KEYS = [1n, 2n, 3n, N - 1n, N - 2n, N / 2n, 0x1111111111111111111111111111111111111111111111111111111111111111n].map(to32);
const privArb = fc.bigInt({ min: 1n, max: N - 1n }).map(to32);
const digestArb = fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.bigInt({ min: N, max: (1n << 256n) - 1n }).map(to32));

describe('secp256k1 backends', () => {
  it('both backends load (native libsecp256k1 and wasm)', () => {
    assert.deepEqual(
      backends.map((b) => b.name),
      ['native', 'wasm'],
    );
    assert.ok(backends.some((b) => b.name === secp.name));
  });

  function checkPair(a: Uint8Array, b: Uint8Array, digest: Uint8Array): void {
    const pubA = ok(agree((s) => s.publicKeyCreate(a)));
    const pubB = ok(agree((s) => s.publicKeyCreate(b)));
    assert.equal(hex(pubA), hex(noble.getPublicKey(a, true)));

    // ECDH = SHA256(compressed shared point), symmetric.
    const ss = ok(agree((s) => s.ecdh(pubB, a)));
    assert.equal(hex(ss), hex(sha256(noble.getSharedSecret(a, pubB, true))));
    assert.equal(hex(ok(agree((s) => s.ecdh(pubA, b)))), hex(ss));

    // Tweaks and combination.
    const PA = noble.Point.fromBytes(pubA);
    const PB = noble.Point.fromBytes(pubB);
    const tb = toBig(b);
    assert.equal(hex(ok(agree((s) => s.publicKeyTweakMul(pubA, b)))), hex(PA.multiply(tb).toBytes(true)));
    const added = agree((s) => s.publicKeyTweakAdd(pubA, b));
    const combined = agree((s) => s.publicKeyCombine(pubA, pubB));
    const sumA = (toBig(a) + tb) % N;
    if (sumA === 0n) {
      assert.deepEqual(added, { error: 'ERR_INVALID_PUBKEY' });
      assert.deepEqual(combined, { error: 'ERR_INVALID_PUBKEY' });
    } else {
      assert.equal(hex(ok(added)), hex(PA.add(noble.Point.BASE.multiply(tb)).toBytes(true)));
      assert.equal(hex(ok(combined)), hex(PA.add(PB).toBytes(true)));
      const privSum = ok(agree((s) => s.privateKeyTweakAdd(a, b)));
      assert.equal(toBig(privSum), sumA);
      assert.equal(hex(ok(agree((s) => s.publicKeyCreate(privSum)))), hex(ok(added)));
    }
    const privProd = ok(agree((s) => s.privateKeyTweakMul(a, b)));
    assert.equal(toBig(privProd), (toBig(a) * tb) % N);
    assert.equal(hex(ok(agree((s) => s.publicKeyCreate(privProd)))), hex(ok(agree((s) => s.publicKeyTweakMul(pubA, b)))));

    // Deterministic low-S signatures (RFC 6979), identical to noble's.
    const sig = ok(agree((s) => s.sign(digest, a)));
    assert.equal(hex(sig), hex(noble.sign(digest, a, { prehash: false })));
    assert.ok(toBig(sig.subarray(32)) <= N / 2n);
    assert.equal(ok(agree((s) => s.verify(sig, digest, pubA))), true);
    assert.ok(noble.verify(sig, digest, pubA, { prehash: false }));
    // With digest ≡ 0 (mod n) a signature also verifies under −P (same x); otherwise only under P.
    const sameX = hex(pubA.subarray(1)) === hex(pubB.subarray(1));
    assert.equal(ok(agree((s) => s.verify(sig, digest, pubB))), hex(pubA) === hex(pubB) || (sameX && toBig(digest) % N === 0n));
    const flipped = digest.slice();
    flipped[0]! ^= 1;
    assert.equal(ok(agree((s) => s.verify(sig, flipped, pubA))), false);

    // High-S twin: valid ECDSA, but rejected by our strict verify.
    const high = sig.slice();
    high.set(to32(N - toBig(sig.subarray(32))), 32);
    assert.ok(noble.verify(high, digest, pubA, { prehash: false, lowS: false }));
    assert.equal(ok(agree((s) => s.verify(high, digest, pubA))), false);
    assert.equal(hex(normalizeSignature(high)), hex(sig));

    // Recoverable signatures.
    const rec = ok(agree((s) => s.signRecoverable(digest, a)));
    assert.equal(hex(rec.signature), hex(sig));
    const nobleRec = noble.sign(digest, a, { prehash: false, format: 'recovered' });
    assert.equal(rec.recoveryId, nobleRec[0]);
    assert.equal(hex(ok(agree((s) => s.recover(sig, rec.recoveryId, digest)))!), hex(pubA));
    assert.equal(hex(noble.recoverPublicKey(nobleRec, digest, { prehash: false })), hex(pubA));
    const other = agree((s) => s.recover(sig, rec.recoveryId ^ 1, digest));
    assert.ok(other === null || hex(ok(other)) !== hex(pubA));

    // DER round trip, byte-identical with libsecp256k1's own export where available.
    const der = signatureToDER(sig);
    assert.equal(hex(signatureFromDER(der)), hex(sig));
    assert.equal(hex(der), hex(derReference(sig)));
  }

  it('fixed keys', () => {
    // ff…ff is ≥ n: RFC 6979 derives the nonce from the digest reduced mod n.
    const digests = [new Uint8Array(32), sha256(new Uint8Array([1])), hexToBytes('ff'.repeat(32)), to32(N), to32(N + 1n)];
    let i = 0;
    for (const a of FIXED_KEYS) for (const b of FIXED_KEYS) checkPair(a, b, digests[i++ % digests.length]!);
    assert.ok(i >= digests.length * 5, 'every digest is used with several key pairs');
  });

  it('random keys', () => {
    fc.assert(
      fc.property(privArb, privArb, digestArb, (a, b, d) => checkPair(a, b, d)),
      { numRuns: 60 },
    );
  });

  it('uncompressed input keys are accepted and re-encoded compressed', () => {
    const a = to32(7n);
    const full = noble.getPublicKey(a, false);
    assert.equal(hex(ok(agree((s) => s.publicKeyCompress(full)))), hex(noble.getPublicKey(a, true)));
    assert.equal(hex(ok(agree((s) => s.ecdh(full, to32(5n))))), hex(ok(agree((s) => s.ecdh(noble.getPublicKey(a, true), to32(5n))))));
  });
});

describe('invalid keys give CryptoError codes (the same on every backend)', () => {
  const priv = to32(5n);
  const pub = noble.getPublicKey(priv, true);
  const d = sha256(new Uint8Array([1]));
  const notOnCurve = hexToBytes('02' + '00'.repeat(31) + '05'); // x = 5 has no point on secp256k1
  assert.throws(() => noble.Point.fromBytes(notOnCurve));
  const negPub = Uint8Array.from([pub[0]! ^ 1, ...pub.subarray(1)]);
  const cases: [string, (s: Secp256k1Backend) => unknown, string][] = [
    ['publicKeyCreate(0)', (s) => s.publicKeyCreate(new Uint8Array(32)), 'ERR_INVALID_PRIVKEY'],
    ['publicKeyCreate(n)', (s) => s.publicKeyCreate(to32(N)), 'ERR_INVALID_PRIVKEY'],
    ['publicKeyCreate(31 bytes)', (s) => s.publicKeyCreate(new Uint8Array(31).fill(1)), 'ERR_INVALID_PRIVKEY'],
    ['ecdh(point not on curve)', (s) => s.ecdh(notOnCurve, priv), 'ERR_INVALID_PUBKEY'],
    ['ecdh(zero bytes)', (s) => s.ecdh(new Uint8Array(33), priv), 'ERR_INVALID_PUBKEY'],
    ['ecdh(priv 0)', (s) => s.ecdh(pub, new Uint8Array(32)), 'ERR_INVALID_PRIVKEY'],
    ['publicKeyTweakAdd(tweak n)', (s) => s.publicKeyTweakAdd(pub, to32(N)), 'ERR_INVALID_PRIVKEY'],
    ['publicKeyTweakAdd(to infinity)', (s) => s.publicKeyTweakAdd(pub, to32(N - 5n)), 'ERR_INVALID_PUBKEY'],
    ['publicKeyTweakMul(tweak 0)', (s) => s.publicKeyTweakMul(pub, new Uint8Array(32)), 'ERR_INVALID_PRIVKEY'],
    ['publicKeyTweakMul(bad point)', (s) => s.publicKeyTweakMul(notOnCurve, priv), 'ERR_INVALID_PUBKEY'],
    ['publicKeyCombine(P, -P)', (s) => s.publicKeyCombine(pub, negPub), 'ERR_INVALID_PUBKEY'],
    ['publicKeyCombine(bad point)', (s) => s.publicKeyCombine(pub, notOnCurve), 'ERR_INVALID_PUBKEY'],
    ['privateKeyTweakAdd(priv 0)', (s) => s.privateKeyTweakAdd(new Uint8Array(32), priv), 'ERR_INVALID_PRIVKEY'],
    ['privateKeyTweakAdd(to zero)', (s) => s.privateKeyTweakAdd(priv, to32(N - 5n)), 'ERR_INVALID_PRIVKEY'],
    ['privateKeyTweakAdd(tweak n)', (s) => s.privateKeyTweakAdd(priv, to32(N)), 'ERR_INVALID_PRIVKEY'],
    ['privateKeyTweakMul(tweak 0)', (s) => s.privateKeyTweakMul(priv, new Uint8Array(32)), 'ERR_INVALID_PRIVKEY'],
    ['privateKeyTweakMul(priv n)', (s) => s.privateKeyTweakMul(to32(N), priv), 'ERR_INVALID_PRIVKEY'],
    ['sign(priv 0)', (s) => s.sign(d, new Uint8Array(32)), 'ERR_INVALID_PRIVKEY'],
    ['signRecoverable(priv n)', (s) => s.signRecoverable(d, to32(N)), 'ERR_INVALID_PRIVKEY'],
  ];
  for (const [name, f, code] of cases) it(name, () => assert.deepEqual(agree(f), { error: code }));

  it('verify and recover answer false / null, never throw', () => {
    const sig = secp.sign(d, priv);
    assert.equal(
      agree((s) => s.verify(sig, d, notOnCurve)),
      false,
    );
    assert.equal(
      agree((s) => s.verify(sig.subarray(1), d, pub)),
      false,
    );
    assert.equal(
      agree((s) => s.verify(new Uint8Array(64), d, pub)),
      false,
    );
    assert.equal(
      agree((s) => s.verify(sig, d.subarray(1), pub)),
      false,
    );
    assert.equal(
      agree((s) => s.recover(new Uint8Array(64), 0, d)),
      null,
    );
    assert.equal(
      agree((s) => s.recover(sig, 7, d)),
      null,
    );
    assert.equal(
      agree((s) => s.isPublicKey(notOnCurve)),
      false,
    );
    assert.equal(
      agree((s) => s.isPrivateKey(to32(N))),
      false,
    );
  });

  it('parsePublicKey accepts only 33-byte compressed points', () => {
    assert.equal(parsePublicKey(pub), pub);
    for (const bad of [notOnCurve, noble.getPublicKey(priv, false), pub.subarray(1), Uint8Array.from([4, ...pub.subarray(1)])])
      assert.throws(
        () => parsePublicKey(bad),
        (e: unknown) => e instanceof CryptoError && e.code === 'ERR_INVALID_PUBKEY',
      );
  });
});

// ---------------------------------------------------------------- DER

/** An independent strict-DER encoder (bigint based) to compare with. */
function derReference(sig: Uint8Array): Uint8Array {
  const int = (v: bigint) => {
    let h = v.toString(16);
    if (h.length % 2) h = '0' + h;
    if (parseInt(h.slice(0, 2), 16) & 0x80) h = '00' + h;
    return '02' + (h.length / 2).toString(16).padStart(2, '0') + h;
  };
  const body = int(toBig(sig.subarray(0, 32))) + int(toBig(sig.subarray(32)));
  return hexToBytes('30' + (body.length / 2).toString(16).padStart(2, '0') + body);
}

describe('DER signatures', () => {
  const sig = secp.sign(sha256(new Uint8Array([9])), to32(11n));
  const der = signatureToDER(sig);
  it('round trip, incl. short and high-bit integers', () => {
    for (const s of [sig, hexToBytes('00'.repeat(31) + '01' + '00'.repeat(31) + '01'), hexToBytes('80'.repeat(32) + '7f'.repeat(32))]) {
      assert.equal(hex(signatureToDER(s)), hex(derReference(s)));
      assert.equal(hex(signatureFromDER(signatureToDER(s))), hex(s));
    }
  });
  it('random signatures round-trip', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (s) => {
        assert.equal(hex(signatureToDER(s)), hex(derReference(s)));
        assert.equal(hex(signatureFromDER(signatureToDER(s))), hex(s));
      }),
    );
  });
  it('strict DER: rejects every malformed form', () => {
    const h = hex(der);
    const rLen = der[3]!;
    const bad: [string, string][] = [
      ['wrong sequence tag', '31' + h.slice(2)],
      ['sequence length too long', h.slice(0, 2) + (der[1]! + 1).toString(16).padStart(2, '0') + h.slice(4)],
      ['trailing byte', h.slice(0, 2) + (der[1]! + 1).toString(16).padStart(2, '0') + h.slice(4) + '00'],
      ['r not an integer', h.slice(0, 4) + '03' + h.slice(6)],
      ['empty r', '3006020002020101'],
      ['negative r', '3008020280010201' + '01'],
      ['non-minimal r (padding zero)', '300702020001020101'],
      ['non-minimal s (padding zero)', '300702010102020001'],
      ['r of 34 bytes', '3026' + '0222' + '00' + '80' + '00'.repeat(32) + '020101'],
      ['truncated', h.slice(0, h.length - 2)],
      ['too short', '3006020101020101'.slice(0, 12)],
      ['s length past the end', h.slice(0, 8 + 2 * rLen) + '02' + 'ff' + h.slice(12 + 2 * rLen)],
    ];
    for (const [why, b] of bad)
      assert.throws(
        () => signatureFromDER(hexToBytes(b)),
        (e: unknown) => e instanceof CryptoError && e.code === 'ERR_INVALID_SIGNATURE',
        why,
      );
    assert.equal(hex(signatureFromDER(hexToBytes('3006020101020101'))), '00'.repeat(31) + '01' + '00'.repeat(31) + '01');
  });
  it('compact signatures must be 64 bytes', () => {
    assert.throws(() => signatureToDER(new Uint8Array(63)), CryptoError);
    assert.throws(() => normalizeSignature(new Uint8Array(65)), CryptoError);
  });
});

// ---------------------------------------------------------------- symmetric primitives

describe('ChaCha20 / ChaCha20-Poly1305 (RFC 8439)', () => {
  it('§2.8.2 AEAD test vector', () => {
    const key = hexToBytes('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hexToBytes('070000004041424344454647');
    const aad = hexToBytes('50515253c0c1c2c3c4c5c6c7');
    const pt = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const ct =
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
      '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116';
    const tag = '1ae10b594f09e26a7e902ecbd0600691';
    const sealed = chachaPolyEncrypt(key, nonce, aad, pt);
    assert.equal(hex(sealed), ct + tag);
    assert.equal(hex(chachaPolyDecrypt(key, nonce, aad, sealed)!), hex(pt));
    const tampered = sealed.slice();
    tampered[10]! ^= 1;
    assert.equal(chachaPolyDecrypt(key, nonce, aad, tampered), null);
    assert.equal(chachaPolyDecrypt(key, nonce, hexToBytes('00'), sealed), null);
    assert.equal(chachaPolyDecrypt(key, nonce, aad, sealed.subarray(0, 15)), null);
  });
  it('A.1 keystream test vector #1 (zero key, zero nonce, counter 0)', () => {
    assert.equal(
      hex(chacha20Stream(new Uint8Array(32), 64)),
      '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586',
    );
    // A non-zero nonce changes the stream, and XOR twice is the identity.
    const k = new Uint8Array(32).fill(7);
    const data = new Uint8Array(100).fill(3);
    assert.notEqual(hex(chacha20(k, noiseNonce(1), data)), hex(chacha20(k, noiseNonce(0), data)));
    assert.equal(hex(chacha20(k, noiseNonce(1), chacha20(k, noiseNonce(1), data))), hex(data));
    assert.equal(hex(noiseNonce(0x0102n)), '000000000201000000000000');
  });
});

describe('HKDF-SHA256 (RFC 5869)', () => {
  it('test case 1', () => {
    const okm = hkdfSha256(hexToBytes('000102030405060708090a0b0c'), hexToBytes('0b'.repeat(22)), 42, hexToBytes('f0f1f2f3f4f5f6f7f8f9'));
    assert.equal(hex(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  });
  it('empty info by default (as BOLT 8 uses it) equals an explicit empty info', () => {
    const salt = new Uint8Array(32).fill(1);
    const ikm = new Uint8Array(32).fill(2);
    assert.equal(hex(hkdfSha256(salt, ikm, 64)), hex(hkdfSha256(salt, ikm, 64, new Uint8Array(0))));
  });
});
