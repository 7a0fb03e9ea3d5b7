/**
 * BOLT 4 attribution data: the 920 bytes that update_fail_htlc and
 * update_fulfill_htlc may carry (TLV 1) so that the origin learns how long
 * each hop held the HTLC and which hop, if any, tampered with the answer.
 *
 * Layout (ATTRIBUTION_MAX_HOPS = 20 slots):
 *   htlc_hold_times  20 × u32, big-endian, in units of 100 ms; slot 0 is the
 *                    hop that last touched the data
 *   truncated_hmacs  210 × 4 bytes, in blocks: block k belongs to the hop k
 *                    steps downstream of the one that last touched the data
 *                    and holds 20 − k entries; entry j of block k is for that
 *                    hop being at position 19 − k − j, a position being the
 *                    number of hops between it and the erring (or final) node.
 *
 * A hop at position p authenticates, with its `um` key and truncated to 4
 * bytes: the return packet as it received it (before its own `ammag` stream;
 * nothing for a fulfill) ‖ hold times 0..p ‖ the entries of blocks 1..p
 * for positions p − 1 .. 0 (the hops downstream of it, nearest first). It
 * does this for every position 0..19, since only the origin knows where it
 * sits.
 *
 * Each hop back shifts the data one slot to the right (hold times by one,
 * every block becomes the next one and loses its entry for the largest
 * position; block 19 falls off), writes its own hold time and block 0, and
 * XORs the whole 920 bytes with its `ammagext` stream. A hop that received
 * no attribution data starts from 920 zero bytes.
 *
 * The origin removes the layers in route order: after hop i's `ammag` and
 * `ammagext` streams it checks hop i's entry for its position, reads its hold
 * time and shifts the data back to what hop i + 1 sent. The first entry that
 * does not verify ends the walk: that hop, or the one before it, broke the
 * data.
 */
import * as nodeCrypto from 'node:crypto';
import { ArgumentError } from '../wire/errors.js';
import { PrefixedHmacSha256 } from '../wire/noise-hash.js';
import { type FailureMessage } from './failure.js';
import {
  buildFailurePacket,
  obfuscateFailurePacketInPlace,
  unwrapFailure,
  wrapFailurePacket,
  type UnwrappedFailure,
} from './failurePacket.js';
import { generateKey, streamCipher } from './packet.js';

/** Most hops attribution data has room for. */
export const ATTRIBUTION_MAX_HOPS = 20;
/** One hold time: a u32. */
export const HOLD_TIME_LENGTH = 4;
/** HMAC-SHA256 outputs are cut to their first 4 bytes. */
export const TRUNCATED_HMAC_LENGTH = 4;
export const HOLD_TIMES_LENGTH = ATTRIBUTION_MAX_HOPS * HOLD_TIME_LENGTH;
/** 20 + 19 + … + 1 */
export const ATTRIBUTION_HMAC_COUNT = (ATTRIBUTION_MAX_HOPS * (ATTRIBUTION_MAX_HOPS + 1)) / 2;
/** 80 + 840 = 920 bytes. */
export const ATTRIBUTION_DATA_LENGTH = HOLD_TIMES_LENGTH + ATTRIBUTION_HMAC_COUNT * TRUNCATED_HMAC_LENGTH;
/** Hold times travel in units of 100 ms. */
export const HOLD_TIME_UNIT_MS = 100;
const MAX_HOLD_TIME_UNITS = 0xffff_ffff;
const SHARED_SECRET_LENGTH = 32;
/** An HMAC-SHA256 output, before it is cut. */
const HMAC_LENGTH = 32;
const EMPTY = new Uint8Array(0);
const ZERO_ATTRIBUTION = new Uint8Array(ATTRIBUTION_DATA_LENGTH);

/** What the origin learnt from attribution data. */
export interface AttributionReport {
  /** The hold time each hop reported, in ms, route order, one per hop whose HMAC verified. */
  holdTimesMs: number[];
  /** Index of the last hop whose HMAC verified (0 = first hop after us); -1 when the first hop's did not. */
  lastVerifiedHop: number;
}

/** A hold time in the wire's units: whole 100 ms, clamped to a u32 (negative or not finite: 0). */
export function holdTimeUnits(holdTimeMs: number): number {
  if (!(holdTimeMs > 0)) return 0;
  return Math.min(Math.floor(holdTimeMs / HOLD_TIME_UNIT_MS), MAX_HOLD_TIME_UNITS);
}

/** Byte offset of block `k`'s first entry. */
function blockOffset(k: number): number {
  return HOLD_TIMES_LENGTH + (ATTRIBUTION_MAX_HOPS * k - (k * (k - 1)) / 2) * TRUNCATED_HMAC_LENGTH;
}

/** Byte offset of block `k`'s entry for position `position`. */
function entryOffset(k: number, position: number): number {
  return blockOffset(k) + (ATTRIBUTION_MAX_HOPS - 1 - k - position) * TRUNCATED_HMAC_LENGTH;
}

const BLOCK_OFFSETS = Array.from({ length: ATTRIBUTION_MAX_HOPS + 1 }, (_, k) => blockOffset(k));

function checkSecret(sharedSecret: Uint8Array): void {
  if (sharedSecret.length !== SHARED_SECRET_LENGTH) throw new ArgumentError(`shared secret is ${sharedSecret.length} bytes, not 32`);
}

function checkData(data: Uint8Array): void {
  if (data.length !== ATTRIBUTION_DATA_LENGTH)
    throw new ArgumentError(`attribution data is ${data.length} bytes, not ${ATTRIBUTION_DATA_LENGTH}`);
}

function xorStreamInPlace(key: Uint8Array, data: Uint8Array): void {
  data.set(streamCipher(key).update(data));
}

/** The truncated HMAC of the hop in block 0 of `view`, at `position`. `scratch` holds the downstream entries. */
function positionHmac(mac: PrefixedHmacSha256, view: Uint8Array, position: number, scratch: Uint8Array, out: Uint8Array): void {
  for (let k = 1; k <= position; k++) {
    const at = entryOffset(k, position - k);
    const to = (k - 1) * TRUNCATED_HMAC_LENGTH;
    for (let j = 0; j < TRUNCATED_HMAC_LENGTH; j++) scratch[to + j] = view[at + j]!;
  }
  mac.digestInto(view, (position + 1) * HOLD_TIME_LENGTH, scratch, position * TRUNCATED_HMAC_LENGTH, out);
}

/**
 * One hop's attribution data: `downstream` is what the next hop sent (undefined: none came, start from zeros),
 * `packet` the return packet as this hop received it, or built it before obfuscating (empty for a fulfill).
 * Returns the 920 bytes to send upstream.
 */
export function addAttribution(
  sharedSecret: Uint8Array,
  downstream: Uint8Array | undefined,
  holdTimeMs: number,
  packet: Uint8Array = EMPTY,
): Uint8Array {
  checkSecret(sharedSecret);
  const prev = downstream ?? ZERO_ATTRIBUTION;
  checkData(prev);
  const out = new Uint8Array(ATTRIBUTION_DATA_LENGTH);
  out.set(prev.subarray(0, HOLD_TIMES_LENGTH - HOLD_TIME_LENGTH), HOLD_TIME_LENGTH);
  // block k - 1 becomes block k, without its entry for the largest position
  for (let k = 1; k < ATTRIBUTION_MAX_HOPS; k++) {
    out.set(prev.subarray(BLOCK_OFFSETS[k - 1]! + TRUNCATED_HMAC_LENGTH, BLOCK_OFFSETS[k]!), BLOCK_OFFSETS[k]!);
  }
  new DataView(out.buffer).setUint32(0, holdTimeUnits(holdTimeMs));
  const mac = new PrefixedHmacSha256(generateKey('um', sharedSecret), packet);
  const scratch = new Uint8Array((ATTRIBUTION_MAX_HOPS - 1) * TRUNCATED_HMAC_LENGTH);
  const h = new Uint8Array(HMAC_LENGTH);
  for (let position = 0; position < ATTRIBUTION_MAX_HOPS; position++) {
    positionHmac(mac, out, position, scratch, h);
    out.set(h.subarray(0, TRUNCATED_HMAC_LENGTH), entryOffset(0, position));
  }
  xorStreamInPlace(generateKey('ammagext', sharedSecret), out);
  return out;
}

/** update_fail_htlc's reason and attribution_data. */
export interface AttributedFailurePacket {
  reason: Uint8Array;
  attributionData: Uint8Array;
}

/** At the erring node: the failure packet and fresh attribution data with our hold time. */
export function createAttributableFailure(
  sharedSecret: Uint8Array,
  failure: FailureMessage,
  holdTimeMs: number,
  opts: { paddedLength?: number } = {},
): AttributedFailurePacket {
  checkSecret(sharedSecret);
  const raw = buildFailurePacket(sharedSecret, failure, opts);
  const attributionData = addAttribution(sharedSecret, undefined, holdTimeMs, raw);
  obfuscateFailurePacketInPlace(sharedSecret, raw);
  return { reason: raw, attributionData };
}

/**
 * At a forwarding hop, for a failure from downstream: the reason wrapped in our `ammag` stream and the attribution
 * data with our hold time added (`downstream` undefined: the next hop sent none; we start from zeros).
 */
export function wrapAttributableFailure(
  sharedSecret: Uint8Array,
  reason: Uint8Array,
  downstream: Uint8Array | undefined,
  holdTimeMs: number,
): AttributedFailurePacket {
  const attributionData = addAttribution(sharedSecret, downstream, holdTimeMs, reason);
  return { reason: wrapFailurePacket(sharedSecret, reason), attributionData };
}

/**
 * At the origin: walks the attribution data hop by hop (`sharedSecrets` in route order; the last of them is taken as
 * the erring or final node). `packet`: the failure's reason as it reached us (absent for a fulfill). Stops at the
 * first hop whose HMAC does not verify. Routes longer than ATTRIBUTION_MAX_HOPS cannot be checked: nothing verifies.
 */
export function readAttribution(data: Uint8Array, sharedSecrets: readonly Uint8Array[], packet?: Uint8Array): AttributionReport {
  checkData(data);
  const holdTimesMs: number[] = [];
  const n = sharedSecrets.length;
  if (n > ATTRIBUTION_MAX_HOPS) return { holdTimesMs, lastVerifiedHop: -1 };
  let cur = data.slice();
  let next = new Uint8Array(ATTRIBUTION_DATA_LENGTH);
  const pkt = packet?.slice() ?? EMPTY;
  const scratch = new Uint8Array((ATTRIBUTION_MAX_HOPS - 1) * TRUNCATED_HMAC_LENGTH);
  const h = new Uint8Array(HMAC_LENGTH);
  for (let i = 0; i < n; i++) {
    const ss = sharedSecrets[i]!;
    checkSecret(ss);
    if (pkt.length > 0) xorStreamInPlace(generateKey('ammag', ss), pkt);
    xorStreamInPlace(generateKey('ammagext', ss), cur);
    const position = n - 1 - i;
    positionHmac(new PrefixedHmacSha256(generateKey('um', ss), pkt), cur, position, scratch, h);
    const at = entryOffset(0, position);
    if (!nodeCrypto.timingSafeEqual(h.subarray(0, TRUNCATED_HMAC_LENGTH), cur.subarray(at, at + TRUNCATED_HMAC_LENGTH))) break;
    holdTimesMs.push(new DataView(cur.buffer).getUint32(0) * HOLD_TIME_UNIT_MS);
    // back to what hop i + 1 sent: the entries hop i dropped are never needed again, zeros stand in for them
    next.fill(0);
    next.set(cur.subarray(HOLD_TIME_LENGTH, HOLD_TIMES_LENGTH), 0);
    for (let k = 0; k < ATTRIBUTION_MAX_HOPS - 1; k++) {
      next.set(cur.subarray(BLOCK_OFFSETS[k + 1]!, BLOCK_OFFSETS[k + 2]!), BLOCK_OFFSETS[k]! + TRUNCATED_HMAC_LENGTH);
    }
    [cur, next] = [next, cur];
  }
  return { holdTimesMs, lastVerifiedHop: holdTimesMs.length - 1 };
}

/** unwrapFailure's answer, with what the attribution data (when there was some) told. */
export type AttributedFailure = UnwrappedFailure & { attribution?: AttributionReport };

/**
 * At the origin: unwrapFailure, then the attribution data. When the packet names hop e, the attribution is read for
 * hops 0..e (hop e at position 0). When no hop can be named from the packet, the attribution names one: the first
 * hop whose HMAC does not verify (it, or the hop before it, broke the data), or the last hop if every one verifies
 * (its HMAC covers the packet it sent, so the packet is its own doing); `hopIndex` is then set on the unreadable result.
 */
export function unwrapAttributedFailure(
  packet: Uint8Array,
  attributionData: Uint8Array | undefined,
  sharedSecrets: readonly Uint8Array[],
): AttributedFailure {
  const legacy = unwrapFailure(packet, sharedSecrets);
  if (attributionData === undefined) return legacy;
  if (legacy.kind !== 'unreadable') {
    const attribution = readAttribution(attributionData, sharedSecrets.slice(0, legacy.hopIndex + 1), packet);
    return { ...legacy, attribution };
  }
  const attribution = readAttribution(attributionData, sharedSecrets, packet);
  if (sharedSecrets.length === 0 || sharedSecrets.length > ATTRIBUTION_MAX_HOPS) return { ...legacy, attribution };
  const hopIndex = Math.min(attribution.lastVerifiedHop + 1, sharedSecrets.length - 1);
  return { kind: 'unreadable', hopIndex, attribution };
}
