/**
 * Onion benchmarks (suite "onion").
 *
 * peel_intermediate / peel_final: peels per second of a real packet, against
 * the raw primitives that one such peel needs, measured in the same run:
 *   ECDH (point multiply + SHA-256), the two key-derivation HMACs (mu, rho),
 *   the HMAC over hop_payloads ‖ associated data (1300 + 32 bytes), the
 *   ChaCha20 stream (1300 bytes, plus the shift the next packet needs at an
 *   intermediate hop), and, at an intermediate hop only, the SHA-256 of the
 *   blinding factor and the point multiply that blinds the ephemeral key.
 * amp_child_derive: children per second against 2 × SHA-256 of the same inputs.
 */
import * as nodeCrypto from 'node:crypto';
import { secp, randomPrivateKey, publicKeyFromPrivate, sha256 } from '../../wire/crypto.js';
import { buildOnion, deriveChild, encodeHopPayload, peelOnion } from '../../onion/index.js';
import { compare, emit } from './harness.js';

const SUITE = 'onion';
// More, shorter interleaved rounds than the default: the best of each side is
// then less exposed to load bursts from other processes.
const ROUNDS = 8;
const ROUND_MS = 250;

function boundFor(packet: Uint8Array, priv: Uint8Array, ad: Uint8Array, streamLength: number, blind: boolean): () => void {
  const E = packet.subarray(1, 34);
  const payloads = packet.subarray(34, 1334);
  const zeros = new Uint8Array(streamLength);
  const iv = Buffer.alloc(16);
  return () => {
    const ss = secp.ecdh(E, priv);
    const mu = nodeCrypto.createHmac('sha256', 'mu').update(ss).digest();
    const rho = nodeCrypto.createHmac('sha256', 'rho').update(ss).digest();
    nodeCrypto.createHmac('sha256', mu).update(payloads).update(ad).digest();
    nodeCrypto.createCipheriv('chacha20', rho, iv).update(zeros);
    if (blind) {
      const bf = nodeCrypto.createHash('sha256').update(E).update(ss).digest();
      secp.publicKeyTweakMul(E, bf);
    }
  };
}

export async function run(): Promise<void> {
  const ad = sha256(new Uint8Array([1, 2, 3]));
  const k0 = randomPrivateKey();
  const k1 = randomPrivateKey();

  // intermediate hop: a typical 2/4/6 payload, forwarding to one more hop
  const mid = encodeHopPayload({ amountToForwardMsat: 1_000_000n, outgoingCltvValue: 800_144, shortChannelId: 0x0a0b0c000001000an });
  const fin = encodeHopPayload({
    amountToForwardMsat: 1_000_000n,
    outgoingCltvValue: 800_100,
    mpp: { paymentAddr: new Uint8Array(32).fill(7), totalMsat: 5_000_000n },
    amp: { share: new Uint8Array(32).fill(1), setId: new Uint8Array(32).fill(2), childIndex: 12345 },
  });
  const two = buildOnion(
    [
      { pubkey: publicKeyFromPrivate(k0), payload: mid },
      { pubkey: publicKeyFromPrivate(k1), payload: fin },
    ],
    randomPrivateKey(),
    ad,
  ).packet;
  if (peelOnion(two, k0, ad).kind !== 'forward') throw new Error('bench setup: expected a forward peel');
  const shift = 1 + mid.length + 32;
  const r1 = compare(
    () => {
      peelOnion(two, k0, ad);
    },
    boundFor(two, k0, ad, 1300 + shift, true),
    ROUNDS,
    ROUND_MS,
  );
  emit(SUITE, 'peel_intermediate', 'peels/s', r1.value, r1.bound);

  // final hop: an AMP payload
  const one = buildOnion([{ pubkey: publicKeyFromPrivate(k1), payload: fin }], randomPrivateKey(), ad).packet;
  if (peelOnion(one, k1, ad).kind !== 'final') throw new Error('bench setup: expected a final peel');
  const r2 = compare(
    () => {
      peelOnion(one, k1, ad);
    },
    boundFor(one, k1, ad, 1300, false),
    ROUNDS,
    ROUND_MS,
  );
  emit(SUITE, 'peel_final', 'peels/s', r2.value, r2.bound);

  // AMP child derivation
  const root = sha256(new Uint8Array([9]));
  const share = sha256(new Uint8Array([8]));
  const input = new Uint8Array(68);
  input.set(root, 0);
  input.set(share, 32);
  let i = 0;
  let j = 0;
  const dv = new DataView(input.buffer);
  const r3 = compare(
    () => {
      deriveChild(root, share, i++ >>> 0);
    },
    () => {
      dv.setUint32(64, j++ >>> 0);
      sha256(sha256(input));
    },
    ROUNDS,
    ROUND_MS,
  );
  emit(SUITE, 'amp_child_derive', 'children/s', r3.value, r3.bound);
}
