/**
 * BOLT 4 onion packets ("Packet Construction", "Packet Forwarding").
 *
 * packet = version(1) ‖ ephemeral public key(33) ‖ hop_payloads(1300) ‖ hmac(32)
 *
 * Keys: ss = SHA256(compressed(priv·E)); key_t = HMAC-SHA256(key = "t", ss)
 * for t in rho, mu, um, ammag, pad. Streams are ChaCha20 with a zero nonce.
 *
 * Peeling is on the hot path of every forwarded HTLC, so `peelOnion` works
 * on views of the input, streams the rho keystream once (1300 bytes for the
 * payloads, then only the `shift` extra bytes the next packet needs, from the
 * same cipher), feeds the HMAC in two parts instead of concatenating, and
 * allocates exactly one 1366-byte buffer: the next packet. The final hop
 * does not blind the ephemeral key (there is no next packet).
 *
 * BADONION outcomes are thrown as `OnionError` with `sharedSecret = null`
 * and a failure carrying sha256_of_onion, ready for
 * update_fail_malformed_htlc. An invalid hop payload (HMAC valid) is thrown
 * as `OnionError('ERR_ONION_PAYLOAD')` with the shared secret, so the
 * failure can be encrypted back. A packet that is not 1366 bytes is a
 * caller error (`ArgumentError`): update_add_htlc carries a fixed-size field.
 */
import * as nodeCrypto from 'node:crypto';
import { bigSizeLength, encodeBigSize } from '../wire/bytes.js';
import { ArgumentError } from '../wire/errors.js';
import { CryptoError, secp, sha256 } from '../wire/crypto.js';
import { OnionError } from './errors.js';
import { decodeHopPayload, type HopPayload } from './payload.js';

export const ONION_VERSION = 0;
export const HOP_PAYLOADS_LENGTH = 1300;
export const HMAC_LENGTH = 32;
export const ONION_PACKET_LENGTH = 1 + 33 + HOP_PAYLOADS_LENGTH + HMAC_LENGTH; // 1366

export type KeyType = 'rho' | 'mu' | 'um' | 'ammag' | 'ammagext' | 'pad';
const KEY_LABELS: Record<KeyType, Buffer> = {
  rho: Buffer.from('rho', 'ascii'),
  mu: Buffer.from('mu', 'ascii'),
  um: Buffer.from('um', 'ascii'),
  ammag: Buffer.from('ammag', 'ascii'),
  ammagext: Buffer.from('ammagext', 'ascii'),
  pad: Buffer.from('pad', 'ascii'),
};

function asU8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** HMAC-SHA256 keyed with the ASCII key type, over the shared secret. */
export function generateKey(type: KeyType, sharedSecret: Uint8Array): Uint8Array {
  return asU8(nodeCrypto.createHmac('sha256', KEY_LABELS[type]).update(sharedSecret).digest());
}

const ZERO_IV = Buffer.alloc(16);
const ZEROS = new Uint8Array(2 * HOP_PAYLOADS_LENGTH);

/** A ChaCha20 keystream cipher (zero nonce, counter 0) to XOR successive chunks with. */
export function streamCipher(key: Uint8Array): nodeCrypto.Cipher {
  return nodeCrypto.createCipheriv('chacha20', key, ZERO_IV);
}

/** `length` bytes of the ChaCha20 stream for `key`. */
export function generateCipherStream(key: Uint8Array, length: number): Uint8Array {
  const zeros = length <= ZEROS.length ? ZEROS.subarray(0, length) : new Uint8Array(length);
  return asU8(streamCipher(key).update(zeros));
}

function hmac2(key: Uint8Array, a: Uint8Array, b: Uint8Array): Uint8Array {
  return asU8(nodeCrypto.createHmac('sha256', key).update(a).update(b).digest());
}

function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

// ------------------------------------------------------------------ building

export interface OnionHop {
  /** The hop's 33-byte node id. */
  pubkey: Uint8Array;
  /** The hop's TLV payload, WITHOUT its BigSize length (buildOnion adds it). */
  payload: Uint8Array;
}

export interface HopKeys {
  ephemeralPubkey: Uint8Array;
  sharedSecret: Uint8Array;
}

/**
 * The ephemeral public key and shared secret of every hop for `sessionKey`.
 * The origin needs the secrets again to read a returned failure.
 */
export function deriveHopKeys(pubkeys: readonly Uint8Array[], sessionKey: Uint8Array): HopKeys[] {
  if (!secp.isPrivateKey(sessionKey)) throw new ArgumentError('session key is not a valid private key');
  const out: HopKeys[] = [];
  let e = sessionKey;
  for (let i = 0; i < pubkeys.length; i++) {
    const pub = pubkeys[i]!;
    if (pub.length !== 33 || !secp.isPublicKey(pub)) throw new ArgumentError(`hop ${i} public key is not a valid compressed point`);
    const E = secp.publicKeyCreate(e);
    const ss = secp.ecdh(pub, e);
    out.push({ ephemeralPubkey: E, sharedSecret: ss });
    if (i < pubkeys.length - 1) e = secp.privateKeyTweakMul(e, blindingFactor(E, ss));
  }
  return out;
}

/** The shared secrets alone (what `unwrapFailure` needs). */
export function deriveSharedSecrets(pubkeys: readonly Uint8Array[], sessionKey: Uint8Array): Uint8Array[] {
  return deriveHopKeys(pubkeys, sessionKey).map((k) => k.sharedSecret);
}

function blindingFactor(E: Uint8Array, ss: Uint8Array): Uint8Array {
  return asU8(nodeCrypto.createHash('sha256').update(E).update(ss).digest());
}

export interface BuiltOnion {
  packet: Uint8Array;
  /** One per hop, in route order. */
  sharedSecrets: Uint8Array[];
}

/** Builds the onion for `hops` (first hop first). Throws `ArgumentError` on bad input or payloads that do not fit. */
export function buildOnion(hops: readonly OnionHop[], sessionKey: Uint8Array, associatedData: Uint8Array): BuiltOnion {
  const n = hops.length;
  if (n === 0) throw new ArgumentError('a route needs at least one hop');
  const frames = hops.map((h) => bigSizeLength(BigInt(h.payload.length)) + h.payload.length + HMAC_LENGTH);
  const total = frames.reduce((a, b) => a + b, 0);
  if (total > HOP_PAYLOADS_LENGTH) throw new ArgumentError(`hop payloads need ${total} bytes, more than ${HOP_PAYLOADS_LENGTH}`);
  const keys = deriveHopKeys(
    hops.map((h) => h.pubkey),
    sessionKey,
  );
  const rhos = keys.map((k) => generateKey('rho', k.sharedSecret));

  // Filler: what the earlier hops' shifts push off the end, pre-encrypted so
  // the last hop's HMAC covers exactly what it will see.
  let filler = new Uint8Array(0);
  for (let i = 0; i < n - 1; i++) {
    const shift = frames[i]!;
    const grown = new Uint8Array(filler.length + shift);
    grown.set(filler);
    const stream = generateCipherStream(rhos[i]!, HOP_PAYLOADS_LENGTH + shift);
    const from = HOP_PAYLOADS_LENGTH + shift - grown.length;
    for (let j = 0; j < grown.length; j++) grown[j]! ^= stream[from + j]!;
    filler = grown;
  }

  let payloads = generateCipherStream(generateKey('pad', sessionKey), HOP_PAYLOADS_LENGTH).slice();
  let nextHmac: Uint8Array = new Uint8Array(HMAC_LENGTH);
  for (let i = n - 1; i >= 0; i--) {
    const hop = hops[i]!;
    const shift = frames[i]!;
    const next = new Uint8Array(HOP_PAYLOADS_LENGTH);
    const len = encodeBigSize(hop.payload.length);
    next.set(len, 0);
    next.set(hop.payload, len.length);
    next.set(nextHmac, len.length + hop.payload.length);
    next.set(payloads.subarray(0, HOP_PAYLOADS_LENGTH - shift), shift);
    const stream = generateCipherStream(rhos[i]!, HOP_PAYLOADS_LENGTH);
    for (let j = 0; j < HOP_PAYLOADS_LENGTH; j++) next[j]! ^= stream[j]!;
    if (i === n - 1) next.set(filler, HOP_PAYLOADS_LENGTH - filler.length);
    payloads = next;
    nextHmac = hmac2(generateKey('mu', keys[i]!.sharedSecret), payloads, associatedData);
  }
  const packet = new Uint8Array(ONION_PACKET_LENGTH);
  packet[0] = ONION_VERSION;
  packet.set(keys[0]!.ephemeralPubkey, 1);
  packet.set(payloads, 34);
  packet.set(nextHmac, 34 + HOP_PAYLOADS_LENGTH);
  return { packet, sharedSecrets: keys.map((k) => k.sharedSecret) };
}

// ------------------------------------------------------------------ peeling

export type PeelResult =
  | {
      kind: 'forward';
      payload: HopPayload;
      /** The raw TLV payload (without length prefix). */
      payloadBytes: Uint8Array;
      /** The 1366-byte packet to put in the outgoing update_add_htlc. */
      nextPacket: Uint8Array;
      sharedSecret: Uint8Array;
    }
  | { kind: 'final'; payload: HopPayload; payloadBytes: Uint8Array; sharedSecret: Uint8Array };

/** SHA-256 of the whole onion, as invalid_onion_* failures and update_fail_malformed_htlc carry it. */
export function sha256OfOnion(packet: Uint8Array): Uint8Array {
  return sha256(packet);
}

/**
 * Peels one layer off `packet` with our node key. `associatedData` is the
 * HTLC's payment hash. Throws `OnionError` (see the file header).
 */
export function peelOnion(packet: Uint8Array, nodePriv: Uint8Array, associatedData: Uint8Array): PeelResult {
  if (packet.length !== ONION_PACKET_LENGTH)
    throw new ArgumentError(`onion packet must be ${ONION_PACKET_LENGTH} bytes, got ${packet.length}`);
  if (packet[0] !== ONION_VERSION)
    throw new OnionError('ERR_ONION_VERSION', `unknown onion version ${packet[0]}`, {
      name: 'invalid_onion_version',
      sha256OfOnion: sha256(packet),
    });
  const E = packet.subarray(1, 34);
  const badKey = () =>
    new OnionError('ERR_ONION_KEY', 'ephemeral key is not a valid point', {
      name: 'invalid_onion_key',
      sha256OfOnion: sha256(packet),
    });
  if (E[0] !== 2 && E[0] !== 3) throw badKey();
  // ECDH parses (and so validates) the point itself; a separate check would
  // decompress it twice on the hot path.
  let ss: Uint8Array;
  try {
    ss = secp.ecdh(E, nodePriv);
  } catch (e) {
    if (!secp.isPrivateKey(nodePriv)) throw new ArgumentError('node private key is not valid');
    if (e instanceof CryptoError) throw badKey();
    throw e;
  }
  const hopPayloads = packet.subarray(34, 34 + HOP_PAYLOADS_LENGTH);
  const expected = hmac2(generateKey('mu', ss), hopPayloads, associatedData);
  if (!nodeCrypto.timingSafeEqual(expected, packet.subarray(34 + HOP_PAYLOADS_LENGTH)))
    throw new OnionError('ERR_ONION_HMAC', 'onion HMAC does not match', {
      name: 'invalid_onion_hmac',
      sha256OfOnion: sha256(packet),
    });

  const cipher = streamCipher(generateKey('rho', ss));
  const plainBuf = cipher.update(hopPayloads);
  const plain = asU8(plainBuf);
  const bad = (why: string) => new OnionError('ERR_ONION_PAYLOAD', why, { name: 'invalid_onion_payload', tlvType: 0n, offset: 0 }, ss);
  // BigSize length of the payload, read by hand: it must be minimal.
  const first = plain[0]!;
  let hdr: number;
  let length: number;
  if (first < 0xfd) {
    hdr = 1;
    length = first;
  } else if (first === 0xfd) {
    hdr = 3;
    length = (plain[1]! << 8) | plain[2]!;
    if (length < 0xfd) throw bad('payload length is not a minimal BigSize');
  } else {
    throw bad('payload length does not fit the packet');
  }
  if (length === 0) throw bad('legacy (realm 0) hop payloads are not supported');
  const shift = hdr + length + HMAC_LENGTH;
  if (shift > HOP_PAYLOADS_LENGTH) throw bad(`payload length ${length} does not fit the packet`);
  const payloadBytes = plain.subarray(hdr, hdr + length);
  const nextHmac = plain.subarray(hdr + length, shift);
  const isFinal = isZero(nextHmac);
  let payload: HopPayload;
  try {
    payload = decodeHopPayload(payloadBytes, { isFinal });
  } catch (e) {
    if (e instanceof OnionError) throw new OnionError(e.code, e.message.replace(/^[A-Z_]+: /, ''), e.failure, ss, { cause: e });
    throw e;
  }
  if (isFinal) return { kind: 'final', payload, payloadBytes, sharedSecret: ss };

  const tail = cipher.update(ZEROS.subarray(0, shift));
  const nextE = secp.publicKeyTweakMul(E, blindingFactor(E, ss));
  const next = new Uint8Array(ONION_PACKET_LENGTH);
  next[0] = ONION_VERSION;
  next.set(nextE, 1);
  next.set(plain.subarray(shift), 34);
  next.set(tail, 34 + HOP_PAYLOADS_LENGTH - shift);
  next.set(nextHmac, 34 + HOP_PAYLOADS_LENGTH);
  return { kind: 'forward', payload, payloadBytes, nextPacket: next, sharedSecret: ss };
}
