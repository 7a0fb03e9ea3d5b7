/**
 * BOLT 4 "Returning Errors": the failure packet an erring node creates, each
 * hop back re-obfuscates, and the origin unwraps.
 *
 * packet = HMAC(um, rest) ‖ rest, rest = u16 failure_len ‖ failuremsg ‖
 * u16 pad_len ‖ pad, then XORed with the erring node's ammag stream; every
 * hop back XORs its own ammag stream. The origin XORs the streams of hop 0,
 * 1, … in turn and checks each hop's um-HMAC: the first match names the hop
 * that failed. As BOLT 4 advises, it then keeps running dummy rounds up to
 * 27 in all, so the time taken does not reveal the erring hop's position.
 *
 * Padding: failure_len + pad_len is 256 by default (BOLT 4's SHOULD, and
 * what lnd both sends and requires), or the caller's `paddedLength`, or the
 * message length if that is longer. On reading we accept any padding.
 *
 * Attribution data (hold times and per-hop HMACs over this packet, carried
 * beside it in update_fail_htlc) is in attribution.ts.
 */
import * as nodeCrypto from 'node:crypto';
import { Reader } from '../wire/bytes.js';
import { ArgumentError, DecodeError } from '../wire/errors.js';
import { decodeFailureMessage, encodeFailureMessage, type FailureMessage } from './failure.js';
import { generateKey, streamCipher } from './packet.js';

export const FAILURE_PADDED_LENGTH = 256;
/** Maximum route length of TLV payloads; the origin runs this many unwrap rounds. */
export const MAX_HOPS = 27;

function asU8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function xorStreamInPlace(key: Uint8Array, data: Uint8Array): void {
  const stream = streamCipher(key).update(data);
  // `update` XORs the keystream into a copy; write it back.
  data.set(stream);
}

/** The unobfuscated payload `u16 failure_len ‖ failuremsg ‖ u16 pad_len ‖ pad`. */
export function encodeFailurePayload(failure: FailureMessage, paddedLength = FAILURE_PADDED_LENGTH): Uint8Array {
  const msg = encodeFailureMessage(failure);
  if (msg.length > 0xffff) throw new ArgumentError('failure message longer than 65535 bytes');
  const total = Math.max(paddedLength, msg.length);
  const pad = total - msg.length;
  if (pad > 0xffff) throw new ArgumentError('padding longer than 65535 bytes');
  const out = new Uint8Array(2 + msg.length + 2 + pad);
  out[0] = msg.length >>> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, 2);
  out[2 + msg.length] = pad >>> 8;
  out[3 + msg.length] = pad & 0xff;
  return out;
}

/**
 * At the erring node, before obfuscation: `HMAC(um, payload) ‖ payload`. Attribution data authenticates this form;
 * `obfuscateFailurePacketInPlace` then makes it the reason to send.
 */
export function buildFailurePacket(sharedSecret: Uint8Array, failure: FailureMessage, opts: { paddedLength?: number } = {}): Uint8Array {
  const payload = encodeFailurePayload(failure, opts.paddedLength);
  const packet = new Uint8Array(32 + payload.length);
  packet.set(nodeCrypto.createHmac('sha256', generateKey('um', sharedSecret)).update(payload).digest(), 0);
  packet.set(payload, 32);
  return packet;
}

/** XORs the erring node's ammag stream into a packet from buildFailurePacket. */
export function obfuscateFailurePacketInPlace(sharedSecret: Uint8Array, packet: Uint8Array): void {
  xorStreamInPlace(generateKey('ammag', sharedSecret), packet);
}

/**
 * At the erring node: the obfuscated failure packet for the previous hop
 * (update_fail_htlc's reason).
 */
export function createFailurePacket(sharedSecret: Uint8Array, failure: FailureMessage, opts: { paddedLength?: number } = {}): Uint8Array {
  const packet = buildFailurePacket(sharedSecret, failure, opts);
  obfuscateFailurePacketInPlace(sharedSecret, packet);
  return packet;
}

/** At every hop on the way back: XOR with this hop's ammag stream. Returns a new array. */
export function wrapFailurePacket(sharedSecret: Uint8Array, packet: Uint8Array): Uint8Array {
  return asU8(streamCipher(generateKey('ammag', sharedSecret)).update(packet));
}

export type UnwrappedFailure =
  /** Hop `hopIndex` (0 = first hop after us) sent `failure`. */
  | { kind: 'failure'; hopIndex: number; failure: FailureMessage }
  /** Hop `hopIndex` authenticated the packet but its contents do not parse: blame that hop. */
  | { kind: 'malformed'; hopIndex: number; reason: string }
  /**
   * No hop's HMAC matched: some hop corrupted the packet. Without attribution data no one can be named; with it
   * (unwrapAttributedFailure) `hopIndex` is the hop the attribution data blames.
   */
  | { kind: 'unreadable'; hopIndex?: number };

const DUMMY_SECRET = new Uint8Array(32);

/** At the origin: which hop failed and why. `sharedSecrets` are the route's, in order. */
export function unwrapFailure(packet: Uint8Array, sharedSecrets: readonly Uint8Array[]): UnwrappedFailure {
  const cur = packet.slice();
  let found: UnwrappedFailure | null = null;
  const rounds = Math.max(MAX_HOPS, sharedSecrets.length);
  for (let i = 0; i < rounds; i++) {
    const real = found === null && i < sharedSecrets.length;
    const ss = real ? sharedSecrets[i]! : DUMMY_SECRET;
    xorStreamInPlace(generateKey('ammag', ss), cur);
    if (cur.length < 32) continue;
    const mac = nodeCrypto.createHmac('sha256', generateKey('um', ss)).update(cur.subarray(32)).digest();
    if (real && nodeCrypto.timingSafeEqual(mac, cur.subarray(0, 32))) found = decodeAt(i, cur.subarray(32));
  }
  return found ?? { kind: 'unreadable' };
}

function decodeAt(hopIndex: number, payload: Uint8Array): UnwrappedFailure {
  try {
    const r = new Reader(payload);
    const len = r.u16('failure_len');
    const msg = r.view(len, 'failuremsg');
    const padLen = r.u16('pad_len');
    r.view(padLen, 'pad');
    r.end('failure packet');
    return { kind: 'failure', hopIndex, failure: decodeFailureMessage(msg) };
  } catch (e) {
    if (e instanceof DecodeError) return { kind: 'malformed', hopIndex, reason: e.message };
    throw e;
  }
}
