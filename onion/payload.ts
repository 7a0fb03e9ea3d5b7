/**
 * BOLT 4 hop payloads (`tlv_payload`) with lnd's validation rules
 * (htlcswitch/hop/payload.go), since lnd is the peer we must agree with.
 *
 * Known records:
 *   2  amt_to_forward        tu64
 *   4  outgoing_cltv_value   tu32
 *   6  short_channel_id      u64 (exactly 8 bytes)
 *   8  payment_data          payment_addr[32] ‖ tu64 total_msat   (length 32..40)
 *   14 amp                   share[32] ‖ set_id[32] ‖ tu32 child_index (length 64..68)
 *   16 payment_metadata      bytes
 *   5482373484 keysend preimage (exactly 32 bytes)
 *   ≥ 65536 custom records (kept, even or odd, as lnd does)
 * Unknown odd types below 65536 are ignored but kept so the payload
 * re-encodes unchanged; unknown even types below 65536 are refused.
 *
 * Route blinding: we do not support blinded paths and do not advertise
 * option_route_blinding, so encrypted_recipient_data (10), current_path_key
 * (12) and total_amount_msat (18) are plain unknown even types here and are
 * refused with invalid_onion_payload naming the type — exactly what BOLT 1
 * asks of a node that does not understand them. We deliberately do not
 * answer invalid_onion_blinding: that BADONION code would travel back as
 * update_fail_malformed_htlc and claim a role in a blinded route we never
 * take part in.
 *
 * Every violation is an `OnionError('ERR_ONION_PAYLOAD')` whose failure is
 * invalid_onion_payload (PERM|22) naming the offending type and the byte
 * offset of its record inside the payload (0 when a required record is
 * missing; lnd always sends 0, the spec lets us be precise). Checks run in
 * this order, so the named type is deterministic:
 *   1. structure, in stream order: truncation, non-minimal BigSize, types
 *      not strictly increasing, a known type's length or minimal encoding;
 *   2. the lowest unknown even type below 65536;
 *   3. lnd's presence rules, in lnd's order: 2 missing, 4 missing, 6 at the
 *      final hop, 6 missing at an intermediate hop, 8 or 14 at an
 *      intermediate hop.
 */
import { Reader, Writer, bigSizeLength, decodeTruncated, encodeBigSize, encodeTruncated } from '../wire/bytes.js';
import { ArgumentError, DecodeError } from '../wire/errors.js';
import type { TlvRecord } from '../wire/tlv.js';
import { OnionError } from './errors.js';

export const TLV_AMT_TO_FORWARD = 2n;
export const TLV_OUTGOING_CLTV_VALUE = 4n;
export const TLV_SHORT_CHANNEL_ID = 6n;
export const TLV_PAYMENT_DATA = 8n;
export const TLV_ENCRYPTED_RECIPIENT_DATA = 10n;
export const TLV_CURRENT_PATH_KEY = 12n;
export const TLV_AMP = 14n;
export const TLV_PAYMENT_METADATA = 16n;
export const TLV_TOTAL_AMOUNT_MSAT = 18n;
export const TLV_KEYSEND_PREIMAGE = 5482373484n;
export const CUSTOM_RECORD_MIN = 65536n;

export interface MppRecord {
  paymentAddr: Uint8Array;
  totalMsat: bigint;
}

export interface AmpRecord {
  /** This HTLC's share (lnd calls the field root_share). */
  share: Uint8Array;
  setId: Uint8Array;
  childIndex: number;
}

/** A validated hop payload. 2 and 4 are always present after validation. */
export interface HopPayload {
  amountToForwardMsat: bigint;
  outgoingCltvValue: number;
  /** Present exactly at intermediate hops. */
  shortChannelId?: bigint;
  mpp?: MppRecord;
  amp?: AmpRecord;
  paymentMetadata?: Uint8Array;
  keysendPreimage?: Uint8Array;
  /** Records with type ≥ 65536 other than the keysend preimage, in type order. */
  customRecords: TlvRecord[];
  /** Unknown odd records below 65536, ignored but kept for re-encoding, in type order. */
  unknownRecords: TlvRecord[];
}

/** What `encodeHopPayload` takes: the record lists may be omitted. */
export type HopPayloadInput = Omit<HopPayload, 'customRecords' | 'unknownRecords'> & {
  customRecords?: TlvRecord[];
  unknownRecords?: TlvRecord[];
};

function invalid(tlvType: bigint, offset: number, why: string, cause?: unknown): OnionError {
  return new OnionError(
    'ERR_ONION_PAYLOAD',
    `hop payload type ${tlvType}: ${why}`,
    { name: 'invalid_onion_payload', tlvType, offset: Math.min(offset, 0xffff) },
    null,
    cause === undefined ? undefined : { cause },
  );
}

function fixed(value: Uint8Array, n: number, what: string): Uint8Array {
  if (value.length !== n) throw new DecodeError('ERR_TLV_LENGTH', `${what} must be ${n} bytes, got ${value.length}`);
  return value.slice();
}

/**
 * Decodes and validates a hop payload (the TLV stream, without its BigSize
 * length prefix). Throws `OnionError('ERR_ONION_PAYLOAD')` on any violation.
 */
export function decodeHopPayload(bytes: Uint8Array, opts: { isFinal: boolean }): HopPayload {
  const r = new Reader(bytes);
  const out: Partial<HopPayload> & { customRecords: TlvRecord[]; unknownRecords: TlvRecord[] } = {
    customRecords: [],
    unknownRecords: [],
  };
  let last = -1n;
  let minUnknownEven: bigint | null = null;
  while (r.remaining > 0) {
    const start = r.pos;
    let type: bigint;
    try {
      type = r.bigSize('tlv type');
    } catch (e) {
      throw invalid(0n, start, 'unreadable record type', e);
    }
    try {
      if (type <= last) throw new DecodeError('ERR_TLV_ORDER', `type ${type} after ${last}: types must strictly increase`);
      last = type;
      const length = r.bigSize('tlv length');
      if (length > BigInt(r.remaining)) throw new DecodeError('ERR_TRUNCATED', `length ${length} exceeds the ${r.remaining} bytes left`);
      const value = r.view(Number(length), 'tlv value');
      switch (type) {
        case TLV_AMT_TO_FORWARD:
          out.amountToForwardMsat = decodeTruncated(value, 8);
          break;
        case TLV_OUTGOING_CLTV_VALUE:
          out.outgoingCltvValue = Number(decodeTruncated(value, 4));
          break;
        case TLV_SHORT_CHANNEL_ID:
          if (value.length !== 8) throw new DecodeError('ERR_TLV_LENGTH', `short_channel_id must be 8 bytes, got ${value.length}`);
          out.shortChannelId = new Reader(value).u64();
          break;
        case TLV_PAYMENT_DATA:
          if (value.length < 32 || value.length > 40)
            throw new DecodeError('ERR_TLV_LENGTH', `payment_data length ${value.length} not in 32..40`);
          out.mpp = { paymentAddr: value.slice(0, 32), totalMsat: decodeTruncated(value.subarray(32), 8) };
          break;
        case TLV_AMP:
          if (value.length < 64 || value.length > 68) throw new DecodeError('ERR_TLV_LENGTH', `amp length ${value.length} not in 64..68`);
          out.amp = {
            share: value.slice(0, 32),
            setId: value.slice(32, 64),
            childIndex: Number(decodeTruncated(value.subarray(64), 4)),
          };
          break;
        case TLV_PAYMENT_METADATA:
          out.paymentMetadata = value.slice();
          break;
        case TLV_KEYSEND_PREIMAGE:
          out.keysendPreimage = fixed(value, 32, 'keysend preimage');
          break;
        default:
          if (type >= CUSTOM_RECORD_MIN) out.customRecords.push({ type, value: value.slice() });
          else if (type % 2n === 1n) out.unknownRecords.push({ type, value: value.slice() });
          else if (minUnknownEven === null) minUnknownEven = type; // types increase: the first is the lowest
      }
    } catch (e) {
      if (e instanceof DecodeError) throw invalid(type, start, e.message, e);
      throw e;
    }
  }
  const at = (t: bigint) => recordOffset(bytes, t);
  if (minUnknownEven !== null) throw invalid(minUnknownEven, at(minUnknownEven), 'unknown even type below 65536');
  if (out.amountToForwardMsat === undefined) throw invalid(TLV_AMT_TO_FORWARD, 0, 'amt_to_forward missing');
  if (out.outgoingCltvValue === undefined) throw invalid(TLV_OUTGOING_CLTV_VALUE, 0, 'outgoing_cltv_value missing');
  if (opts.isFinal && out.shortChannelId !== undefined)
    throw invalid(TLV_SHORT_CHANNEL_ID, at(TLV_SHORT_CHANNEL_ID), 'short_channel_id at the final hop');
  if (!opts.isFinal && out.shortChannelId === undefined)
    throw invalid(TLV_SHORT_CHANNEL_ID, 0, 'short_channel_id missing at an intermediate hop');
  if (!opts.isFinal && out.mpp !== undefined) throw invalid(TLV_PAYMENT_DATA, at(TLV_PAYMENT_DATA), 'payment_data at an intermediate hop');
  if (!opts.isFinal && out.amp !== undefined) throw invalid(TLV_AMP, at(TLV_AMP), 'amp at an intermediate hop');
  return out as HopPayload;
}

/** Offset of the record of type `t` in a stream already known to be well-formed (0 if absent). */
function recordOffset(bytes: Uint8Array, t: bigint): number {
  const r = new Reader(bytes);
  while (r.remaining > 0) {
    const start = r.pos;
    const type = r.bigSize();
    const length = Number(r.bigSize());
    if (type === t) return start;
    r.view(length);
  }
  return 0;
}

function need32(b: Uint8Array, what: string): Uint8Array {
  if (b.length !== 32) throw new ArgumentError(`${what} must be 32 bytes, got ${b.length}`);
  return b;
}

/** Encodes a hop payload as a TLV stream (no length prefix). Throws `ArgumentError` on bad field values. */
export function encodeHopPayload(p: HopPayloadInput): Uint8Array {
  const recs: TlvRecord[] = [];
  recs.push({ type: TLV_AMT_TO_FORWARD, value: encodeTruncated(p.amountToForwardMsat, 8) });
  recs.push({ type: TLV_OUTGOING_CLTV_VALUE, value: encodeTruncated(p.outgoingCltvValue, 4) });
  if (p.shortChannelId !== undefined) {
    if (p.shortChannelId < 0n || p.shortChannelId >= 1n << 64n) throw new ArgumentError('short_channel_id must be a u64');
    recs.push({ type: TLV_SHORT_CHANNEL_ID, value: new Writer(8).u64(p.shortChannelId).finish() });
  }
  if (p.mpp !== undefined)
    recs.push({
      type: TLV_PAYMENT_DATA,
      value: new Writer(40).bytes(need32(p.mpp.paymentAddr, 'payment_addr')).bytes(encodeTruncated(p.mpp.totalMsat, 8)).finish(),
    });
  if (p.amp !== undefined)
    recs.push({
      type: TLV_AMP,
      value: new Writer(68)
        .bytes(need32(p.amp.share, 'amp share'))
        .bytes(need32(p.amp.setId, 'amp set_id'))
        .bytes(encodeTruncated(p.amp.childIndex, 4))
        .finish(),
    });
  if (p.paymentMetadata !== undefined) recs.push({ type: TLV_PAYMENT_METADATA, value: p.paymentMetadata });
  if (p.keysendPreimage !== undefined) recs.push({ type: TLV_KEYSEND_PREIMAGE, value: need32(p.keysendPreimage, 'keysend preimage') });
  for (const c of p.customRecords ?? []) {
    if (c.type < CUSTOM_RECORD_MIN || c.type === TLV_KEYSEND_PREIMAGE) throw new ArgumentError(`custom record type ${c.type} not allowed`);
    recs.push(c);
  }
  for (const u of p.unknownRecords ?? []) {
    if (u.type >= CUSTOM_RECORD_MIN || u.type % 2n === 0n)
      throw new ArgumentError(`unknown record type ${u.type} must be odd and below 65536`);
    recs.push(u);
  }
  recs.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  let size = 0;
  for (const x of recs) size += bigSizeLength(x.type) + bigSizeLength(BigInt(x.value.length)) + x.value.length;
  const w = new Writer(size);
  let lastType = -1n;
  for (const x of recs) {
    if (x.type === lastType) throw new ArgumentError(`duplicate tlv type ${x.type}`);
    lastType = x.type;
    w.bytes(encodeBigSize(x.type)).bigSize(x.value.length).bytes(x.value);
  }
  return w.finish();
}
