/**
 * BOLT 8 Appendix A: every handshake vector (both roles, success and each
 * failure at its act) and the message-encryption vector with key rotation,
 * plus round trips and a property that hostile bytes only give NoiseError.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { chachaPolyEncrypt, noiseNonce, randomPrivateKey, secp } from '../../wire/crypto.js';
import { ArgumentError } from '../../wire/errors.js';
import {
  ACT_ONE_SIZE,
  ACT_THREE_SIZE,
  hkdf2,
  initiatorActOne,
  initiatorActTwo,
  MAX_MESSAGE_SIZE,
  NoiseError,
  NoiseTransport,
  responderActOne,
  responderActThree,
  type NoiseErrorCode,
} from '../../wire/noise.js';
import { hkdfSha256, hmacSha256, sha256 } from '../../wire/crypto.js';
import { hmacSha256Small, sha256Concat } from '../../wire/noise-hash.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

interface HandshakeVector {
  name: string;
  ls_priv: string;
  ls_pub: string;
  e_priv: string;
  e_pub: string;
  rs_pub?: string;
  act_one_output?: string;
  act_two_input?: string;
  act_three_output?: string;
  act_one_input?: string;
  act_two_output?: string;
  act_three_input?: string;
  sk?: string;
  rk?: string;
  final_ck?: string;
  expected_error: string | null;
  expected_error_code: string | null;
  error_at?: 'act_one' | 'act_two' | 'act_three';
}
interface Vectors {
  initiator_tests: HandshakeVector[];
  responder_tests: HandshakeVector[];
  message_encryption_test: {
    ck: string;
    sk: string;
    rk: string;
    plaintext: string;
    outputs: { index: number; ciphertext: string }[];
    first_two_messages_detail: {
      part: string;
      cleartext: string;
      nonce: string;
      key: string;
      ciphertext: string;
      for_output_index: number;
    }[];
    key_rotations: { before_output_index: number; hkdf_salt_ck: string; hkdf_ikm_k: string; new_ck: string; new_k: string }[];
  };
}

const V = JSON.parse(readFileSync(new URL('../fixtures/bolt08-noise.json', import.meta.url), 'utf8')) as Vectors;
const h = hexToBytes;
const hex = bytesToHex;

/** The spec's error names (ACTn_WHAT) mapped to our codes. */
const SPEC_ERRORS: Record<string, NoiseErrorCode> = {
  READ_FAILED: 'ERR_NOISE_BAD_LENGTH',
  BAD_VERSION: 'ERR_NOISE_BAD_VERSION',
  BAD_PUBKEY: 'ERR_NOISE_BAD_PUBKEY',
  BAD_TAG: 'ERR_NOISE_BAD_TAG',
  BAD_CIPHERTEXT: 'ERR_NOISE_BAD_TAG',
};
const ACTS = { act_one: 1, act_two: 2, act_three: 3 } as const;

function expectedError(v: HandshakeVector): { code: NoiseErrorCode; act: 1 | 2 | 3 } {
  const m = /^ACT([123])_([A-Z_]+)$/.exec(v.expected_error_code ?? '');
  assert.ok(m, `unrecognised spec error ${v.expected_error_code}`);
  const code = SPEC_ERRORS[m[2]!];
  assert.ok(code, `no mapping for spec error ${m[2]}`);
  const act = Number(m[1]) as 1 | 2 | 3;
  assert.equal(act, ACTS[v.error_at!], 'error_at agrees with the error name');
  return { code, act };
}

function assertNoiseError(f: () => unknown, code: NoiseErrorCode, act?: 1 | 2 | 3): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof NoiseError, `expected NoiseError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (act !== undefined) assert.equal(e.act, act);
    return true;
  });
}

describe('BOLT 8 handshake vectors: initiator', () => {
  assert.equal(V.initiator_tests.length, 5);
  for (const v of V.initiator_tests) {
    it(v.name, () => {
      assert.equal(hex(secp.publicKeyCreate(h(v.ls_priv))), v.ls_pub);
      assert.equal(hex(secp.publicKeyCreate(h(v.e_priv))), v.e_pub);
      const one = initiatorActOne({ localStaticPriv: h(v.ls_priv), remoteStaticPub: h(v.rs_pub!), ephemeralPriv: h(v.e_priv) });
      assert.equal(hex(one.actOne), v.act_one_output);
      if (v.expected_error_code === null) {
        const r = initiatorActTwo(one.state, h(v.act_two_input!));
        assert.equal(hex(r.actThree), v.act_three_output);
        const k = r.transport.keyState();
        assert.equal(hex(k.sk), v.sk);
        assert.equal(hex(k.rk), v.rk);
        assert.equal(hex(k.sck), v.final_ck);
        assert.equal(hex(k.rck), v.final_ck);
        assert.equal(hex(r.remoteStaticPub), v.rs_pub);
        assert.equal(hex(r.localStaticPub), v.ls_pub);
      } else {
        const { code, act } = expectedError(v);
        assert.equal(act, 2);
        assertNoiseError(() => initiatorActTwo(one.state, h(v.act_two_input!)), code, act);
      }
    });
  }
});

describe('BOLT 8 handshake vectors: responder', () => {
  assert.equal(V.responder_tests.length, 10);
  for (const v of V.responder_tests) {
    it(v.name, () => {
      assert.equal(hex(secp.publicKeyCreate(h(v.ls_priv))), v.ls_pub);
      const opts = { localStaticPriv: h(v.ls_priv), ephemeralPriv: h(v.e_priv) };
      const err = v.expected_error_code === null ? undefined : expectedError(v);
      if (err?.act === 1) {
        assertNoiseError(() => responderActOne(opts, h(v.act_one_input!)), err.code, 1);
        return;
      }
      const one = responderActOne(opts, h(v.act_one_input!));
      assert.equal(hex(one.actTwo), v.act_two_output);
      if (err !== undefined) {
        assert.equal(err.act, 3);
        assertNoiseError(() => responderActThree(one.state, h(v.act_three_input!)), err.code, 3);
        return;
      }
      const r = responderActThree(one.state, h(v.act_three_input!));
      const k = r.transport.keyState();
      assert.equal(hex(k.sk), v.sk);
      assert.equal(hex(k.rk), v.rk);
      assert.equal(hex(k.sck), v.final_ck);
      assert.equal(hex(k.rck), v.final_ck);
      // the initiator of the vectors uses static key 0x11…11
      assert.equal(hex(r.remoteStaticPub), hex(secp.publicKeyCreate(new Uint8Array(32).fill(0x11))));
      assert.equal(hex(r.localStaticPub), v.ls_pub);
    });
  }
});

describe('BOLT 8 message encryption vector', () => {
  const m = V.message_encryption_test;
  const plaintext = h(m.plaintext);

  it('outputs at 0, 1, 500, 501, 1000, 1001 and decryption of all 1002', () => {
    const sender = new NoiseTransport(h(m.sk), h(m.rk), h(m.ck));
    const receiver = new NoiseTransport(h(m.rk), h(m.sk), h(m.ck));
    const want = new Map(m.outputs.map((o) => [o.index, o.ciphertext]));
    assert.deepEqual([...want.keys()], [0, 1, 500, 501, 1000, 1001]);
    let seen = 0;
    for (let i = 0; i <= 1001; i++) {
      const frame = sender.encrypt(plaintext);
      const w = want.get(i);
      if (w !== undefined) {
        assert.equal(hex(frame), w, `message ${i}`);
        seen++;
      }
      assert.equal(hex(receiver.decrypt(frame)), m.plaintext);
    }
    assert.equal(seen, 6);
  });

  it('first two messages: length and body parts with their nonces and key', () => {
    assert.equal(m.first_two_messages_detail.length, 4);
    for (const d of m.first_two_messages_detail) {
      const ct = chachaPolyEncrypt(h(d.key), h(d.nonce), new Uint8Array(0), h(d.cleartext));
      assert.equal(hex(ct), d.ciphertext);
      const out = m.outputs.find((o) => o.index === d.for_output_index)!;
      const at = d.part === 'length' ? 0 : 36;
      assert.equal(out.ciphertext.slice(at, at + d.ciphertext.length), d.ciphertext);
      const n = Number(new DataView(h(d.nonce).buffer).getBigUint64(4, true));
      assert.equal(hex(noiseNonce(n)), d.nonce);
      assert.equal(d.key, m.sk);
    }
  });

  it('key rotations happen before messages 500 and 1000 with the stated ck and k', () => {
    assert.equal(m.key_rotations.length, 2);
    const sender = new NoiseTransport(h(m.sk), h(m.rk), h(m.ck));
    let sent = 0;
    for (const rot of m.key_rotations) {
      const before = sender.keyState();
      assert.equal(hex(before.sck), rot.hkdf_salt_ck);
      // the rotation HKDF, by hkdf2 and by the general HKDF
      assert.deepEqual(hkdf2(h(rot.hkdf_salt_ck), h(rot.hkdf_ikm_k)).map(hex), [rot.new_ck, rot.new_k]);
      assert.equal(hex(hkdfSha256(h(rot.hkdf_salt_ck), h(rot.hkdf_ikm_k), 64)), rot.new_ck + rot.new_k);
      while (sent < rot.before_output_index) {
        assert.equal(hex(sender.keyState().sk), rot.hkdf_ikm_k);
        sender.encrypt(plaintext);
        sent++;
      }
      const after = sender.keyState();
      assert.equal(hex(after.sck), rot.new_ck);
      assert.equal(hex(after.sk), rot.new_k);
      assert.equal(after.sn, 0);
      // the receive direction is independent and untouched
      assert.equal(hex(after.rk), m.rk);
      assert.equal(hex(after.rck), m.ck);
    }
  });
});

function handshakePair(): { a: NoiseTransport; b: NoiseTransport; aPub: Uint8Array; bPub: Uint8Array } {
  const aPriv = randomPrivateKey();
  const bPriv = randomPrivateKey();
  const bPub = secp.publicKeyCreate(bPriv);
  const one = initiatorActOne({ localStaticPriv: aPriv, remoteStaticPub: bPub });
  const resp = responderActOne({ localStaticPriv: bPriv }, one.actOne);
  const init = initiatorActTwo(one.state, resp.actTwo);
  const done = responderActThree(resp.state, init.actThree);
  assert.equal(hex(done.remoteStaticPub), hex(secp.publicKeyCreate(aPriv)));
  assert.equal(hex(init.remoteStaticPub), hex(bPub));
  return { a: init.transport, b: done.transport, aPub: secp.publicKeyCreate(aPriv), bPub };
}

describe('NoiseTransport', () => {
  it('random handshakes agree and carry messages both ways across rotations', () => {
    const { a, b } = handshakePair();
    for (let i = 0; i < 1200; i++) {
      const msg = new Uint8Array(i % 97).fill(i & 0xff);
      assert.deepEqual(b.decrypt(a.encrypt(msg)), msg);
      assert.deepEqual(a.decrypt(b.encrypt(msg)), msg);
    }
    assert.equal(a.keyState().sn, 2 * 1200 - 2 * 1000);
  });

  it('empty and 65535-byte messages; 65536 is refused', () => {
    const { a, b } = handshakePair();
    assert.deepEqual(b.decrypt(a.encrypt(new Uint8Array(0))), new Uint8Array(0));
    const big = new Uint8Array(MAX_MESSAGE_SIZE).map((_, i) => i * 7);
    const frame = a.encrypt(big);
    assert.equal(frame.length, MAX_MESSAGE_SIZE + 34);
    assert.deepEqual(b.decrypt(frame), big);
    assertNoiseError(() => a.encrypt(new Uint8Array(MAX_MESSAGE_SIZE + 1)), 'ERR_NOISE_MESSAGE_TOO_LONG');
    // the refused message consumed no nonce
    assert.deepEqual(b.decrypt(a.encrypt(Uint8Array.of(1, 2, 3))), Uint8Array.of(1, 2, 3));
  });

  it('a flipped bit anywhere in a frame is a bad tag', () => {
    const msg = Uint8Array.of(9, 8, 7, 6, 5);
    for (let bit = 0; bit < (18 + 5 + 16) * 8; bit += 5) {
      const { a, b } = handshakePair();
      const frame = a.encrypt(msg);
      frame[bit >> 3]! ^= 1 << (bit & 7);
      if (bit < 18 * 8) {
        assertNoiseError(() => b.decryptLength(frame.subarray(0, 18)), 'ERR_NOISE_BAD_TAG');
      } else {
        assert.equal(b.decryptLength(frame.subarray(0, 18)), 5);
        assertNoiseError(() => b.decryptBody(frame.subarray(18)), 'ERR_NOISE_BAD_TAG');
      }
    }
  });

  it('a replayed or reordered frame fails (nonces are per message)', () => {
    const p = handshakePair();
    const f1 = p.a.encrypt(Uint8Array.of(1));
    assert.deepEqual(p.b.decrypt(f1), Uint8Array.of(1));
    assertNoiseError(() => p.b.decrypt(f1), 'ERR_NOISE_BAD_TAG');
    const q = handshakePair();
    q.a.encrypt(Uint8Array.of(1));
    const g2 = q.a.encrypt(Uint8Array.of(2));
    assertNoiseError(() => q.b.decrypt(g2), 'ERR_NOISE_BAD_TAG');
  });

  it('wrong sizes and out-of-order steps are typed errors', () => {
    const { a, b } = handshakePair();
    assertNoiseError(() => b.decryptLength(new Uint8Array(17)), 'ERR_NOISE_BAD_LENGTH');
    assertNoiseError(() => b.decryptBody(new Uint8Array(16)), 'ERR_NOISE_BAD_STATE');
    const frame = a.encrypt(Uint8Array.of(1, 2));
    assert.equal(b.decryptLength(frame.subarray(0, 18)), 2);
    assertNoiseError(() => b.decryptLength(frame.subarray(0, 18)), 'ERR_NOISE_BAD_STATE');
    assertNoiseError(() => b.decryptBody(new Uint8Array(15)), 'ERR_NOISE_BAD_LENGTH');
    assertNoiseError(() => b.decrypt(new Uint8Array(3)), 'ERR_NOISE_BAD_LENGTH');
  });

  it('bad local arguments are argument errors, not protocol errors', () => {
    const pub = secp.publicKeyCreate(randomPrivateKey());
    assert.throws(() => initiatorActOne({ localStaticPriv: new Uint8Array(32), remoteStaticPub: pub }), ArgumentError);
    assert.throws(() => initiatorActOne({ localStaticPriv: randomPrivateKey(), remoteStaticPub: pub.subarray(1) }), ArgumentError);
    assert.throws(() => responderActOne({ localStaticPriv: new Uint8Array(31) }, new Uint8Array(50)), ArgumentError);
  });
});

describe('small-input SHA-256 / HMAC / HKDF agree with node:crypto and @noble/hashes', () => {
  it('on random inputs of every length around the block boundaries', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 120 }),
        fc.uint8Array({ minLength: 0, maxLength: 100 }),
        (a, b, key) => {
          const ab = new Uint8Array(a.length + b.length);
          ab.set(a);
          ab.set(b, a.length);
          const digest = hex(sha256Concat(a, b));
          assert.equal(digest, hex(sha256(ab)));
          assert.equal(digest, hex(nobleSha256(ab)));
          assert.equal(hex(sha256Concat(a)), hex(sha256(a)));
          const mac = hex(hmacSha256Small(key, b));
          assert.equal(mac, hex(hmacSha256(key, b)));
          assert.equal(mac, hex(nobleHmac(nobleSha256, key, b)));
          const salt = a.subarray(0, 32);
          const ikm = b.subarray(0, 32);
          const okm = hex(hkdf2(salt, ikm)[0]) + hex(hkdf2(salt, ikm)[1]);
          assert.equal(okm, hex(hkdfSha256(salt, ikm, 64)));
          assert.equal(okm, hex(nobleHkdf(nobleSha256, ikm, salt, new Uint8Array(0), 64)));
        },
      ),
      { numRuns: 400 },
    );
    for (let n = 0; n < 300; n++) {
      const x = new Uint8Array(n).map((_, i) => i * 31 + n);
      assert.equal(hex(sha256Concat(x)), hex(sha256(x)), `length ${n}`);
      assert.equal(
        hex(hmacSha256Small(x.subarray(0, 80), x.subarray(0, 200))),
        hex(hmacSha256(x.subarray(0, 80), x.subarray(0, 200))),
        `hmac length ${n}`,
      );
    }
    // one call's shared buffers must not leak into the next: interleave all three
    const k = new Uint8Array(32).fill(7);
    const first = hex(hkdf2(k, k)[1]);
    sha256Concat(new Uint8Array(250).fill(1));
    hmacSha256Small(new Uint8Array(100).fill(2), new Uint8Array(200).fill(3));
    assert.equal(hex(hkdf2(k, k)[1]), first);
    const longSalt = new Uint8Array(100).fill(9);
    assert.equal(hex(hkdf2(longSalt, k)[0]) + hex(hkdf2(longSalt, k)[1]), hex(hkdfSha256(longSalt, k, 64)));
  });
});

describe('hostile handshake and transport bytes give only NoiseError', () => {
  const bPriv = randomPrivateKey();
  const bPub = secp.publicKeyCreate(bPriv);
  const isNoise = (f: () => unknown): void => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof NoiseError)) throw e;
    }
  };

  it('act 1 (responder) and act 2 (initiator)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 80 }), fc.uint8Array({ minLength: ACT_ONE_SIZE, maxLength: ACT_ONE_SIZE })),
        (bytes) => {
          isNoise(() => responderActOne({ localStaticPriv: bPriv }, bytes));
          const one = initiatorActOne({ localStaticPriv: bPriv, remoteStaticPub: bPub });
          isNoise(() => initiatorActTwo(one.state, bytes));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('act 3 (responder), including valid prefixes with mutated tails', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: ACT_THREE_SIZE, maxLength: ACT_THREE_SIZE }),
        fc.integer({ min: 0, max: ACT_THREE_SIZE }),
        fc.boolean(),
        (noise, keep, zeroVersion) => {
          const aPriv = randomPrivateKey();
          const one = initiatorActOne({ localStaticPriv: aPriv, remoteStaticPub: bPub });
          const resp = responderActOne({ localStaticPriv: bPriv }, one.actOne);
          const good = initiatorActTwo(one.state, resp.actTwo).actThree;
          const bad = Uint8Array.from(noise);
          bad.set(good.subarray(0, keep));
          if (zeroVersion) bad[0] = 0;
          if (keep === ACT_THREE_SIZE) return; // that is the genuine act
          isNoise(() => responderActThree(resp.state, bad));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('transport headers and bodies', () => {
    const { b } = handshakePair();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 100 }), (bytes) => {
        const fresh = handshakePair().b;
        isNoise(() => fresh.decrypt(bytes));
        isNoise(() => b.decryptLength(bytes.subarray(0, 18)));
        isNoise(() => b.decryptBody(bytes));
      }),
      { numRuns: 200 },
    );
  });
});
