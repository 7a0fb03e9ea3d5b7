/**
 * BOLT 8 benchmarks (suite "noise").
 *
 * transport_1KiB / transport_64KiB: one message encrypted by one
 * NoiseTransport and decrypted by its peer (header then body), in messages/s.
 * Bound: the raw node:crypto ChaCha20-Poly1305 operations the same message
 * needs — encrypt and decrypt of the 2-byte length and of the body, each
 * with a fresh cipher object as the AEAD API demands — measured in the
 * same run. "64KiB" is the largest BOLT 8 plaintext, 65535 bytes.
 *
 * responder_handshake: a full responder handshake (act 1 in, act 2 out,
 * act 3 in), in handshakes/s. Bound: the elliptic-curve work it cannot
 * avoid — three ECDHs (es, ee, se) and one public key for its ephemeral
 * key. The responder's ephemeral key is fixed so that one recorded act 1 /
 * act 3 pair can be replayed; its public key is still derived every time.
 *
 * Each case alternates value and bound in many short windows (15 × 150 ms
 * each) and keeps each side's best window: on a shared, loaded machine a few
 * long windows let a burst of load land on one side only.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { randomPrivateKey, secp } from '../../wire/crypto.js';
import { initiatorActOne, initiatorActTwo, NoiseTransport, responderActOne, responderActThree } from '../../wire/noise.js';
import { compare, emit } from './harness.js';

const SUITE = 'noise';
const ROUNDS = 15;
const WINDOW_MS = 150;

function transportCase(name: string, size: number): void {
  const key = randomPrivateKey();
  const ck = randomPrivateKey();
  const a = new NoiseTransport(key, key, ck);
  const b = new NoiseTransport(key, key, ck);
  const msg = new Uint8Array(size).fill(0x5a);
  let sink = 0;
  const value = (): void => {
    const frame = a.encrypt(msg);
    const n = b.decryptLength(frame.subarray(0, 18));
    const out = b.decryptBody(frame.subarray(18, 18 + n + 16));
    sink += out.length;
  };
  const rawKey = Buffer.from(key);
  const nonce = Buffer.alloc(12);
  const len = Buffer.from([size >> 8, size & 0xff]);
  const opts = { authTagLength: 16 } as const;
  const bound = (): void => {
    const c1 = createCipheriv('chacha20-poly1305', rawKey, nonce, opts);
    const lc = c1.update(len);
    c1.final();
    const lt = c1.getAuthTag();
    const c2 = createCipheriv('chacha20-poly1305', rawKey, nonce, opts);
    const bc = c2.update(msg);
    c2.final();
    const bt = c2.getAuthTag();
    const d1 = createDecipheriv('chacha20-poly1305', rawKey, nonce, opts);
    d1.setAuthTag(lt);
    d1.update(lc);
    d1.final();
    const d2 = createDecipheriv('chacha20-poly1305', rawKey, nonce, opts);
    d2.setAuthTag(bt);
    const out = d2.update(bc);
    d2.final();
    sink += out.length;
  };
  const r = compare(value, bound, ROUNDS, WINDOW_MS);
  if (sink < 0) console.error(sink);
  emit(SUITE, name, 'msg/s', r.value, r.bound);
}

function handshakeCase(): void {
  const initiatorPriv = randomPrivateKey();
  const responderPriv = randomPrivateKey();
  const responderPub = secp.publicKeyCreate(responderPriv);
  const ephemeralPriv = randomPrivateKey();
  const one = initiatorActOne({ localStaticPriv: initiatorPriv, remoteStaticPub: responderPub });
  const resp0 = responderActOne({ localStaticPriv: responderPriv, ephemeralPriv }, one.actOne);
  const actThree = initiatorActTwo(one.state, resp0.actTwo).actThree;
  const opts = { localStaticPriv: responderPriv, ephemeralPriv };
  let sink = 0;
  const value = (): void => {
    const r = responderActOne(opts, one.actOne);
    const done = responderActThree(r.state, actThree);
    sink += done.remoteStaticPub.length;
  };
  const initiatorPub = secp.publicKeyCreate(initiatorPriv);
  const initiatorEphemeralPub = one.actOne.subarray(1, 34);
  const bound = (): void => {
    sink += secp.ecdh(initiatorEphemeralPub, responderPriv).length; // es
    sink += secp.publicKeyCreate(ephemeralPriv).length; // our ephemeral
    sink += secp.ecdh(initiatorEphemeralPub, ephemeralPriv).length; // ee
    sink += secp.ecdh(initiatorPub, ephemeralPriv).length; // se
  };
  const r = compare(value, bound, ROUNDS, WINDOW_MS);
  if (sink < 0) console.error(sink);
  emit(SUITE, 'responder_handshake', 'handshakes/s', r.value, r.bound);
}

export async function run(): Promise<void> {
  transportCase('transport_1KiB', 1024);
  transportCase('transport_64KiB', 65535);
  handshakeCase();
}
