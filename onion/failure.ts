/**
 * BOLT 4 failure messages ("Failure Messages"): every failure code as a
 * constant and every failure as a typed value, with its encoder and decoder.
 *
 * A failure message is `u16 failure_code ‖ data ‖ [tlv_stream]`. The code's
 * top byte holds flags (BADONION 0x8000, PERM 0x4000, NODE 0x2000, UPDATE
 * 0x1000). The list below is BOLT 4's plus the codes lnd still knows
 * (lnwire/onion_error.go): incorrect_payment_amount (PERM|16) and
 * final_expiry_too_soon (17) are deprecated but may still arrive, and
 * invalid_realm (PERM|1) comes from older spec versions. A code we do not
 * know decodes to `{ name: 'unknown', code, data }` instead of failing, so
 * the origin can still learn the flags and which hop sent it.
 *
 * `channel_update` is kept as the raw bytes that follow its u16 length. lnd
 * writes the update with its 2-byte message type (0x0102 = 258) in front
 * and counts it in the length; other implementations send it bare. lnd
 * reads both. `channelUpdateBody` strips the prefix when it is there.
 *
 * The optional TLV stream after the fixed fields (the failure message TLV
 * extension) is kept as raw records: it must be well-formed (strictly
 * increasing, minimal BigSize types and lengths), nothing is defined in it.
 *
 * `incorrect_or_unknown_payment_details` from old nodes may lack htlc_msat
 * and height; like lnd, those decode as 0.
 */
import { Reader, Writer } from '../wire/bytes.js';
import { ArgumentError } from '../wire/errors.js';
import { encodeTlvRecords, readTlvRecords, type TlvRecord } from '../wire/tlv.js';

export const BADONION = 0x8000;
export const PERM = 0x4000;
export const NODE = 0x2000;
export const UPDATE = 0x1000;

/** Every failure code, by its BOLT 4 name. */
export const FailureCode = {
  invalid_realm: PERM | 1,
  temporary_node_failure: NODE | 2,
  permanent_node_failure: PERM | NODE | 2,
  required_node_feature_missing: PERM | NODE | 3,
  invalid_onion_version: BADONION | PERM | 4,
  invalid_onion_hmac: BADONION | PERM | 5,
  invalid_onion_key: BADONION | PERM | 6,
  temporary_channel_failure: UPDATE | 7,
  permanent_channel_failure: PERM | 8,
  required_channel_feature_missing: PERM | 9,
  unknown_next_peer: PERM | 10,
  amount_below_minimum: UPDATE | 11,
  fee_insufficient: UPDATE | 12,
  incorrect_cltv_expiry: UPDATE | 13,
  expiry_too_soon: UPDATE | 14,
  incorrect_or_unknown_payment_details: PERM | 15,
  incorrect_payment_amount: PERM | 16,
  final_expiry_too_soon: 17,
  final_incorrect_cltv_expiry: 18,
  final_incorrect_htlc_amount: 19,
  channel_disabled: UPDATE | 20,
  expiry_too_far: 21,
  invalid_onion_payload: PERM | 22,
  mpp_timeout: 23,
  invalid_onion_blinding: BADONION | PERM | 24,
} as const;

export type FailureName = keyof typeof FailureCode;

const NAME_BY_CODE = new Map<number, FailureName>((Object.entries(FailureCode) as [FailureName, number][]).map(([n, c]) => [c, n]));

/** Failures whose only data is `sha256_of_onion`; sent in update_fail_malformed_htlc. */
export type BadOnionName = 'invalid_onion_version' | 'invalid_onion_hmac' | 'invalid_onion_key' | 'invalid_onion_blinding';

type NoDataName =
  | 'invalid_realm'
  | 'temporary_node_failure'
  | 'permanent_node_failure'
  | 'required_node_feature_missing'
  | 'permanent_channel_failure'
  | 'required_channel_feature_missing'
  | 'unknown_next_peer'
  | 'incorrect_payment_amount'
  | 'final_expiry_too_soon'
  | 'expiry_too_far'
  | 'mpp_timeout';

interface Ext {
  /** Failure message TLV extension: raw records, in increasing type order. */
  tlvs?: TlvRecord[];
}

export type FailureMessage =
  | ({ name: NoDataName } & Ext)
  | ({ name: BadOnionName; sha256OfOnion: Uint8Array } & Ext)
  | ({ name: 'temporary_channel_failure' | 'expiry_too_soon'; channelUpdate: Uint8Array } & Ext)
  | ({ name: 'amount_below_minimum' | 'fee_insufficient'; htlcMsat: bigint; channelUpdate: Uint8Array } & Ext)
  | ({ name: 'incorrect_cltv_expiry'; cltvExpiry: number; channelUpdate: Uint8Array } & Ext)
  | ({ name: 'channel_disabled'; disabledFlags: number; channelUpdate: Uint8Array } & Ext)
  | ({ name: 'incorrect_or_unknown_payment_details'; htlcMsat: bigint; height: number } & Ext)
  | ({ name: 'final_incorrect_cltv_expiry'; cltvExpiry: number } & Ext)
  | ({ name: 'final_incorrect_htlc_amount'; incomingHtlcAmtMsat: bigint } & Ext)
  | ({ name: 'invalid_onion_payload'; tlvType: bigint; offset: number } & Ext)
  /** A code this implementation does not know; `data` is everything after the code. */
  | { name: 'unknown'; code: number; data: Uint8Array };

/** The numeric failure code of a failure. */
export function failureCode(f: FailureMessage): number {
  return f.name === 'unknown' ? f.code : FailureCode[f.name];
}

export function isBadOnion(code: number): boolean {
  return (code & BADONION) !== 0;
}
export function isPermanent(code: number): boolean {
  return (code & PERM) !== 0;
}
export function isNodeFailure(code: number): boolean {
  return (code & NODE) !== 0;
}
export function hasChannelUpdate(code: number): boolean {
  return (code & UPDATE) !== 0;
}

/** The message type of channel_update, which lnd writes in front of the update. */
export const CHANNEL_UPDATE_TYPE = 258;

/** A channel_update from a failure without lnd's optional 2-byte type prefix. */
export function channelUpdateBody(channelUpdate: Uint8Array): Uint8Array {
  if (channelUpdate.length >= 2 && ((channelUpdate[0]! << 8) | channelUpdate[1]!) === CHANNEL_UPDATE_TYPE) return channelUpdate.subarray(2);
  return channelUpdate;
}

function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new ArgumentError(`${what} must be a u32, got ${n}`);
  return n;
}
function u64(n: bigint, what: string): bigint {
  if (n < 0n || n >= 1n << 64n) throw new ArgumentError(`${what} must be a u64, got ${n}`);
  return n;
}
function sha(b: Uint8Array): Uint8Array {
  if (b.length !== 32) throw new ArgumentError(`sha256_of_onion must be 32 bytes, got ${b.length}`);
  return b;
}
function update(w: Writer, cu: Uint8Array): void {
  if (cu.length > 0xffff) throw new ArgumentError('channel_update longer than 65535 bytes');
  w.u16(cu.length).bytes(cu);
}

/** Encodes `failure_code ‖ data ‖ tlv extension`. */
export function encodeFailureMessage(f: FailureMessage): Uint8Array {
  const w = new Writer(64);
  if (f.name === 'unknown') {
    if (!Number.isInteger(f.code) || f.code < 0 || f.code > 0xffff) throw new ArgumentError(`failure code ${f.code} is not a u16`);
    return w.u16(f.code).bytes(f.data).finish();
  }
  w.u16(FailureCode[f.name]);
  switch (f.name) {
    case 'invalid_onion_version':
    case 'invalid_onion_hmac':
    case 'invalid_onion_key':
    case 'invalid_onion_blinding':
      w.bytes(sha(f.sha256OfOnion));
      break;
    case 'temporary_channel_failure':
    case 'expiry_too_soon':
      update(w, f.channelUpdate);
      break;
    case 'amount_below_minimum':
    case 'fee_insufficient':
      w.u64(u64(f.htlcMsat, 'htlc_msat'));
      update(w, f.channelUpdate);
      break;
    case 'incorrect_cltv_expiry':
      w.u32(u32(f.cltvExpiry, 'cltv_expiry'));
      update(w, f.channelUpdate);
      break;
    case 'channel_disabled':
      if (!Number.isInteger(f.disabledFlags) || f.disabledFlags < 0 || f.disabledFlags > 0xffff)
        throw new ArgumentError('disabled_flags must be a u16');
      w.u16(f.disabledFlags);
      update(w, f.channelUpdate);
      break;
    case 'incorrect_or_unknown_payment_details':
      w.u64(u64(f.htlcMsat, 'htlc_msat')).u32(u32(f.height, 'height'));
      break;
    case 'final_incorrect_cltv_expiry':
      w.u32(u32(f.cltvExpiry, 'cltv_expiry'));
      break;
    case 'final_incorrect_htlc_amount':
      w.u64(u64(f.incomingHtlcAmtMsat, 'incoming_htlc_amt'));
      break;
    case 'invalid_onion_payload':
      if (!Number.isInteger(f.offset) || f.offset < 0 || f.offset > 0xffff) throw new ArgumentError('offset must be a u16');
      w.bigSize(u64(f.tlvType, 'type')).u16(f.offset);
      break;
    default:
      break; // no data
  }
  if (f.tlvs !== undefined && f.tlvs.length > 0) w.bytes(encodeTlvRecords(f.tlvs));
  return w.finish();
}

/** Decodes a failure message; throws `DecodeError` on malformed bytes. */
export function decodeFailureMessage(bytes: Uint8Array): FailureMessage {
  const r = new Reader(bytes);
  const code = r.u16('failure_code');
  const name = NAME_BY_CODE.get(code);
  if (name === undefined) return { name: 'unknown', code, data: r.bytes(r.remaining) };
  const cu = (): Uint8Array => {
    const len = r.u16('channel_update len');
    return r.bytes(len, 'channel_update');
  };
  let f: FailureMessage;
  switch (name) {
    case 'invalid_onion_version':
    case 'invalid_onion_hmac':
    case 'invalid_onion_key':
    case 'invalid_onion_blinding':
      f = { name, sha256OfOnion: r.bytes(32, 'sha256_of_onion') };
      break;
    case 'temporary_channel_failure':
    case 'expiry_too_soon':
      f = { name, channelUpdate: cu() };
      break;
    case 'amount_below_minimum':
    case 'fee_insufficient': {
      const htlcMsat = r.u64('htlc_msat');
      f = { name, htlcMsat, channelUpdate: cu() };
      break;
    }
    case 'incorrect_cltv_expiry': {
      const cltvExpiry = r.u32('cltv_expiry');
      f = { name, cltvExpiry, channelUpdate: cu() };
      break;
    }
    case 'channel_disabled': {
      const disabledFlags = r.u16('disabled_flags');
      f = { name, disabledFlags, channelUpdate: cu() };
      break;
    }
    case 'incorrect_or_unknown_payment_details': {
      // Both fields were added to the spec later; old senders may omit them.
      const htlcMsat = r.remaining === 0 ? 0n : r.u64('htlc_msat');
      const height = r.remaining === 0 ? 0 : r.u32('height');
      f = { name, htlcMsat, height };
      break;
    }
    case 'final_incorrect_cltv_expiry':
      f = { name, cltvExpiry: r.u32('cltv_expiry') };
      break;
    case 'final_incorrect_htlc_amount':
      f = { name, incomingHtlcAmtMsat: r.u64('incoming_htlc_amt') };
      break;
    case 'invalid_onion_payload': {
      const tlvType = r.bigSize('type');
      f = { name, tlvType, offset: r.u16('offset') };
      break;
    }
    default:
      f = { name };
  }
  if (r.remaining > 0) {
    const records = readTlvRecords(r.rest());
    (f as Ext).tlvs = records.map((x) => ({ type: x.type, value: x.value.slice() }));
  }
  return f;
}

/** Builds the BADONION failure for an onion we could not process. */
export function badOnionFailure(name: BadOnionName, sha256OfOnion: Uint8Array): FailureMessage {
  return { name, sha256OfOnion };
}
