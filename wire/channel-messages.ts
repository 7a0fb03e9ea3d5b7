/**
 * BOLT 2 channel messages (establishment, normal operation, reestablish and
 * cooperative close) as plain typed objects with one codec each.
 *
 * Field names follow the BOLT in camelCase (their units are already in the
 * BOLT names: `fundingSatoshis`, `pushMsat`, `feeratePerKw`). Each message
 * ends with its TLV stream: records the BOLT defines for it are decoded into
 * named optional fields; unknown odd records are kept in `extensionUnknown`
 * and re-encoded unchanged; an unknown even record fails the decode, as
 * BOLT 1 requires. Fields the BOLT fixes in length (keys, hashes, the onion)
 * are checked here, but their meaning (a valid point, a valid signature) is
 * the channel state machine's to judge, so it can answer the peer properly.
 */
import { Reader, Writer } from './bytes.js';
import { ArgumentError, DecodeError } from './errors.js';
import type { MessageCodec } from './message.js';
import { checkLen, readExtension, withUnknown, writeExtension, type Extensible } from './extension.js';
import type { TlvRecord } from './tlv.js';

export const ONION_PACKET_LENGTH = 1366;
/** TLV type of attribution_data in update_fulfill_htlc and update_fail_htlc (BOLT 2). */
export const ATTRIBUTION_DATA_TLV_TYPE = 1n;
/** attribution_data: 20 u32 hold times and 210 four-byte truncated HMACs. */
export const ATTRIBUTION_TLV_LENGTH = 920;

function readAttributionData(m: { attributionData?: Uint8Array }, known: Map<bigint, Uint8Array>): void {
  const v = known.get(ATTRIBUTION_DATA_TLV_TYPE);
  if (v !== undefined) m.attributionData = checkLen(v, ATTRIBUTION_TLV_LENGTH, 'attribution_data');
}

function attributionRecords(m: { attributionData?: Uint8Array }): TlvRecord[] {
  const v = m.attributionData;
  if (v === undefined) return [];
  if (v.length !== ATTRIBUTION_TLV_LENGTH)
    throw new ArgumentError(`attribution_data must be ${ATTRIBUTION_TLV_LENGTH} bytes, got ${v.length}`);
  return [{ type: ATTRIBUTION_DATA_TLV_TYPE, value: v }];
}

export interface OpenChannel extends Extensible {
  type: 32;
  chainHash: Uint8Array;
  temporaryChannelId: Uint8Array;
  fundingSatoshis: bigint;
  pushMsat: bigint;
  dustLimitSatoshis: bigint;
  maxHtlcValueInFlightMsat: bigint;
  channelReserveSatoshis: bigint;
  htlcMinimumMsat: bigint;
  feeratePerKw: number;
  toSelfDelay: number;
  maxAcceptedHtlcs: number;
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
  firstPerCommitmentPoint: Uint8Array;
  channelFlags: number;
  /** TLV 0; absent means no record, an empty array means "no upfront script" (lnd sends that). */
  upfrontShutdownScript?: Uint8Array;
  /** TLV 1: the channel type as a feature bit vector (big-endian bytes). */
  channelType?: Uint8Array;
}

export interface AcceptChannel extends Extensible {
  type: 33;
  temporaryChannelId: Uint8Array;
  dustLimitSatoshis: bigint;
  maxHtlcValueInFlightMsat: bigint;
  channelReserveSatoshis: bigint;
  htlcMinimumMsat: bigint;
  minimumDepth: number;
  toSelfDelay: number;
  maxAcceptedHtlcs: number;
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
  firstPerCommitmentPoint: Uint8Array;
  upfrontShutdownScript?: Uint8Array;
  channelType?: Uint8Array;
}

export interface FundingCreated extends Extensible {
  type: 34;
  temporaryChannelId: Uint8Array;
  /** The funding txid in internal byte order (as hashed), as the BOLT sends it. */
  fundingTxid: Uint8Array;
  fundingOutputIndex: number;
  signature: Uint8Array;
}

export interface FundingSigned extends Extensible {
  type: 35;
  channelId: Uint8Array;
  signature: Uint8Array;
}

export interface ChannelReady extends Extensible {
  type: 36;
  channelId: Uint8Array;
  secondPerCommitmentPoint: Uint8Array;
  /** TLV 1: an alias short_channel_id (8 bytes). */
  shortChannelId?: bigint;
}

export interface Shutdown extends Extensible {
  type: 38;
  channelId: Uint8Array;
  scriptpubkey: Uint8Array;
}

export interface ClosingSigned extends Extensible {
  type: 39;
  channelId: Uint8Array;
  feeSatoshis: bigint;
  signature: Uint8Array;
  /** TLV 1. */
  feeRange?: { minFeeSatoshis: bigint; maxFeeSatoshis: bigint };
}

export interface UpdateAddHtlc extends Extensible {
  type: 128;
  channelId: Uint8Array;
  id: bigint;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  cltvExpiry: number;
  onionRoutingPacket: Uint8Array;
  /** TLV 0 (route blinding): the blinding point, kept as raw bytes. */
  blindingPoint?: Uint8Array;
}

export interface UpdateFulfillHtlc extends Extensible {
  type: 130;
  channelId: Uint8Array;
  id: bigint;
  paymentPreimage: Uint8Array;
  /** TLV 1 (BOLT 4 attribution data for a success): exactly 920 bytes. */
  attributionData?: Uint8Array;
}

export interface UpdateFailHtlc extends Extensible {
  type: 131;
  channelId: Uint8Array;
  id: bigint;
  reason: Uint8Array;
  /** TLV 1 (BOLT 4 attribution data beside the failure packet): exactly 920 bytes. */
  attributionData?: Uint8Array;
}

export interface UpdateFailMalformedHtlc extends Extensible {
  type: 135;
  channelId: Uint8Array;
  id: bigint;
  sha256OfOnion: Uint8Array;
  failureCode: number;
}

export interface CommitmentSigned extends Extensible {
  type: 132;
  channelId: Uint8Array;
  signature: Uint8Array;
  htlcSignatures: Uint8Array[];
}

export interface RevokeAndAck extends Extensible {
  type: 133;
  channelId: Uint8Array;
  perCommitmentSecret: Uint8Array;
  nextPerCommitmentPoint: Uint8Array;
}

export interface UpdateFee extends Extensible {
  type: 134;
  channelId: Uint8Array;
  feeratePerKw: number;
}

export interface ChannelReestablish extends Extensible {
  type: 136;
  channelId: Uint8Array;
  nextCommitmentNumber: bigint;
  nextRevocationNumber: bigint;
  yourLastPerCommitmentSecret: Uint8Array;
  myCurrentPerCommitmentPoint: Uint8Array;
  /** TLV 0 (next_funding_txid, dual funding / splicing), kept raw. */
  nextFundingTxid?: Uint8Array;
}

export type ChannelMessage =
  | OpenChannel
  | AcceptChannel
  | FundingCreated
  | FundingSigned
  | ChannelReady
  | Shutdown
  | ClosingSigned
  | UpdateAddHtlc
  | UpdateFulfillHtlc
  | UpdateFailHtlc
  | UpdateFailMalformedHtlc
  | CommitmentSigned
  | RevokeAndAck
  | UpdateFee
  | ChannelReestablish;

// ---------------------------------------------------------------- helpers

function fixed(r: Reader, n: number, what: string): Uint8Array {
  return r.bytes(n, what);
}

function u64Value(v: Uint8Array, what: string): bigint {
  checkLen(v, 8, what);
  return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0);
}

function u64Bytes(n: bigint): Uint8Array {
  return new Writer(8).u64(n).finish();
}

// ---------------------------------------------------------------- open / accept

const KEY_FIELDS = [
  'fundingPubkey',
  'revocationBasepoint',
  'paymentBasepoint',
  'delayedPaymentBasepoint',
  'htlcBasepoint',
  'firstPerCommitmentPoint',
] as const;

function openAcceptTlvs(m: { upfrontShutdownScript?: Uint8Array; channelType?: Uint8Array }): TlvRecord[] {
  const out: TlvRecord[] = [];
  if (m.upfrontShutdownScript !== undefined) out.push({ type: 0n, value: m.upfrontShutdownScript });
  if (m.channelType !== undefined) out.push({ type: 1n, value: m.channelType });
  return out;
}

function applyOpenAcceptTlvs(m: { upfrontShutdownScript?: Uint8Array; channelType?: Uint8Array }, known: Map<bigint, Uint8Array>): void {
  const s = known.get(0n);
  if (s !== undefined) m.upfrontShutdownScript = s;
  const t = known.get(1n);
  if (t !== undefined) m.channelType = t;
}

export const openChannelCodec: MessageCodec<OpenChannel> = {
  type: 32,
  name: 'open_channel',
  decode(payload) {
    const r = new Reader(payload);
    const m: OpenChannel = {
      type: 32,
      chainHash: fixed(r, 32, 'chain_hash'),
      temporaryChannelId: fixed(r, 32, 'temporary_channel_id'),
      fundingSatoshis: r.u64('funding_satoshis'),
      pushMsat: r.u64('push_msat'),
      dustLimitSatoshis: r.u64('dust_limit_satoshis'),
      maxHtlcValueInFlightMsat: r.u64('max_htlc_value_in_flight_msat'),
      channelReserveSatoshis: r.u64('channel_reserve_satoshis'),
      htlcMinimumMsat: r.u64('htlc_minimum_msat'),
      feeratePerKw: r.u32('feerate_per_kw'),
      toSelfDelay: r.u16('to_self_delay'),
      maxAcceptedHtlcs: r.u16('max_accepted_htlcs'),
      fundingPubkey: fixed(r, 33, 'funding_pubkey'),
      revocationBasepoint: fixed(r, 33, 'revocation_basepoint'),
      paymentBasepoint: fixed(r, 33, 'payment_basepoint'),
      delayedPaymentBasepoint: fixed(r, 33, 'delayed_payment_basepoint'),
      htlcBasepoint: fixed(r, 33, 'htlc_basepoint'),
      firstPerCommitmentPoint: fixed(r, 33, 'first_per_commitment_point'),
      channelFlags: r.u8('channel_flags'),
    };
    const ext = readExtension(r, [0n, 1n]);
    applyOpenAcceptTlvs(m, ext.known);
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(320);
    w.bytes(checkLen(m.chainHash, 32, 'chain_hash')).bytes(checkLen(m.temporaryChannelId, 32, 'temporary_channel_id'));
    w.u64(m.fundingSatoshis).u64(m.pushMsat).u64(m.dustLimitSatoshis).u64(m.maxHtlcValueInFlightMsat);
    w.u64(m.channelReserveSatoshis).u64(m.htlcMinimumMsat).u32(m.feeratePerKw).u16(m.toSelfDelay).u16(m.maxAcceptedHtlcs);
    for (const f of KEY_FIELDS) w.bytes(checkLen(m[f], 33, f));
    w.u8(m.channelFlags);
    return writeExtension(w, openAcceptTlvs(m), m.extensionUnknown);
  },
};

export const acceptChannelCodec: MessageCodec<AcceptChannel> = {
  type: 33,
  name: 'accept_channel',
  decode(payload) {
    const r = new Reader(payload);
    const m: AcceptChannel = {
      type: 33,
      temporaryChannelId: fixed(r, 32, 'temporary_channel_id'),
      dustLimitSatoshis: r.u64('dust_limit_satoshis'),
      maxHtlcValueInFlightMsat: r.u64('max_htlc_value_in_flight_msat'),
      channelReserveSatoshis: r.u64('channel_reserve_satoshis'),
      htlcMinimumMsat: r.u64('htlc_minimum_msat'),
      minimumDepth: r.u32('minimum_depth'),
      toSelfDelay: r.u16('to_self_delay'),
      maxAcceptedHtlcs: r.u16('max_accepted_htlcs'),
      fundingPubkey: fixed(r, 33, 'funding_pubkey'),
      revocationBasepoint: fixed(r, 33, 'revocation_basepoint'),
      paymentBasepoint: fixed(r, 33, 'payment_basepoint'),
      delayedPaymentBasepoint: fixed(r, 33, 'delayed_payment_basepoint'),
      htlcBasepoint: fixed(r, 33, 'htlc_basepoint'),
      firstPerCommitmentPoint: fixed(r, 33, 'first_per_commitment_point'),
    };
    const ext = readExtension(r, [0n, 1n]);
    applyOpenAcceptTlvs(m, ext.known);
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(280);
    w.bytes(checkLen(m.temporaryChannelId, 32, 'temporary_channel_id'));
    w.u64(m.dustLimitSatoshis).u64(m.maxHtlcValueInFlightMsat).u64(m.channelReserveSatoshis).u64(m.htlcMinimumMsat);
    w.u32(m.minimumDepth).u16(m.toSelfDelay).u16(m.maxAcceptedHtlcs);
    for (const f of KEY_FIELDS) w.bytes(checkLen(m[f], 33, f));
    return writeExtension(w, openAcceptTlvs(m), m.extensionUnknown);
  },
};

// ---------------------------------------------------------------- funding

export const fundingCreatedCodec: MessageCodec<FundingCreated> = {
  type: 34,
  name: 'funding_created',
  decode(payload) {
    const r = new Reader(payload);
    const m: FundingCreated = {
      type: 34,
      temporaryChannelId: fixed(r, 32, 'temporary_channel_id'),
      fundingTxid: fixed(r, 32, 'funding_txid'),
      fundingOutputIndex: r.u16('funding_output_index'),
      signature: fixed(r, 64, 'signature'),
    };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(130);
    w.bytes(checkLen(m.temporaryChannelId, 32, 'temporary_channel_id')).bytes(checkLen(m.fundingTxid, 32, 'funding_txid'));
    w.u16(m.fundingOutputIndex).bytes(checkLen(m.signature, 64, 'signature'));
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const fundingSignedCodec: MessageCodec<FundingSigned> = {
  type: 35,
  name: 'funding_signed',
  decode(payload) {
    const r = new Reader(payload);
    const m: FundingSigned = { type: 35, channelId: fixed(r, 32, 'channel_id'), signature: fixed(r, 64, 'signature') };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(96);
    w.bytes(checkLen(m.channelId, 32, 'channel_id')).bytes(checkLen(m.signature, 64, 'signature'));
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const channelReadyCodec: MessageCodec<ChannelReady> = {
  type: 36,
  name: 'channel_ready',
  decode(payload) {
    const r = new Reader(payload);
    const m: ChannelReady = {
      type: 36,
      channelId: fixed(r, 32, 'channel_id'),
      secondPerCommitmentPoint: fixed(r, 33, 'second_per_commitment_point'),
    };
    const ext = readExtension(r, [1n]);
    const alias = ext.known.get(1n);
    if (alias !== undefined) m.shortChannelId = u64Value(alias, 'channel_ready short_channel_id');
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(80);
    w.bytes(checkLen(m.channelId, 32, 'channel_id')).bytes(checkLen(m.secondPerCommitmentPoint, 33, 'second_per_commitment_point'));
    const recs: TlvRecord[] = m.shortChannelId === undefined ? [] : [{ type: 1n, value: u64Bytes(m.shortChannelId) }];
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

// ---------------------------------------------------------------- close

export const shutdownCodec: MessageCodec<Shutdown> = {
  type: 38,
  name: 'shutdown',
  decode(payload) {
    const r = new Reader(payload);
    const channelId = fixed(r, 32, 'channel_id');
    const len = r.u16('len');
    const m: Shutdown = { type: 38, channelId, scriptpubkey: r.bytes(len, 'scriptpubkey') };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(80);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u16(m.scriptpubkey.length)
      .bytes(m.scriptpubkey);
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const closingSignedCodec: MessageCodec<ClosingSigned> = {
  type: 39,
  name: 'closing_signed',
  decode(payload) {
    const r = new Reader(payload);
    const m: ClosingSigned = {
      type: 39,
      channelId: fixed(r, 32, 'channel_id'),
      feeSatoshis: r.u64('fee_satoshis'),
      signature: fixed(r, 64, 'signature'),
    };
    const ext = readExtension(r, [1n]);
    const fr = ext.known.get(1n);
    if (fr !== undefined) {
      checkLen(fr, 16, 'fee_range');
      m.feeRange = {
        minFeeSatoshis: u64Value(fr.subarray(0, 8), 'min_fee_satoshis'),
        maxFeeSatoshis: u64Value(fr.subarray(8), 'max_fee_satoshis'),
      };
    }
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(112);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u64(m.feeSatoshis)
      .bytes(checkLen(m.signature, 64, 'signature'));
    const recs: TlvRecord[] = [];
    if (m.feeRange !== undefined)
      recs.push({ type: 1n, value: new Writer(16).u64(m.feeRange.minFeeSatoshis).u64(m.feeRange.maxFeeSatoshis).finish() });
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

// ---------------------------------------------------------------- updates

export const updateAddHtlcCodec: MessageCodec<UpdateAddHtlc> = {
  type: 128,
  name: 'update_add_htlc',
  decode(payload) {
    const r = new Reader(payload);
    const m: UpdateAddHtlc = {
      type: 128,
      channelId: fixed(r, 32, 'channel_id'),
      id: r.u64('id'),
      amountMsat: r.u64('amount_msat'),
      paymentHash: fixed(r, 32, 'payment_hash'),
      cltvExpiry: r.u32('cltv_expiry'),
      onionRoutingPacket: fixed(r, ONION_PACKET_LENGTH, 'onion_routing_packet'),
    };
    const ext = readExtension(r, [0n]);
    const bp = ext.known.get(0n);
    if (bp !== undefined) m.blindingPoint = checkLen(bp, 33, 'blinding_point');
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(1460);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u64(m.id)
      .u64(m.amountMsat)
      .bytes(checkLen(m.paymentHash, 32, 'payment_hash'));
    w.u32(m.cltvExpiry).bytes(checkLen(m.onionRoutingPacket, ONION_PACKET_LENGTH, 'onion_routing_packet'));
    const recs: TlvRecord[] = m.blindingPoint === undefined ? [] : [{ type: 0n, value: checkLen(m.blindingPoint, 33, 'blinding_point') }];
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

export const updateFulfillHtlcCodec: MessageCodec<UpdateFulfillHtlc> = {
  type: 130,
  name: 'update_fulfill_htlc',
  decode(payload) {
    const r = new Reader(payload);
    const m: UpdateFulfillHtlc = {
      type: 130,
      channelId: fixed(r, 32, 'channel_id'),
      id: r.u64('id'),
      paymentPreimage: fixed(r, 32, 'payment_preimage'),
    };
    const ext = readExtension(r, [ATTRIBUTION_DATA_TLV_TYPE]);
    readAttributionData(m, ext.known);
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(72);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u64(m.id)
      .bytes(checkLen(m.paymentPreimage, 32, 'payment_preimage'));
    return writeExtension(w, attributionRecords(m), m.extensionUnknown);
  },
};

export const updateFailHtlcCodec: MessageCodec<UpdateFailHtlc> = {
  type: 131,
  name: 'update_fail_htlc',
  decode(payload) {
    const r = new Reader(payload);
    const channelId = fixed(r, 32, 'channel_id');
    const id = r.u64('id');
    const len = r.u16('len');
    const m: UpdateFailHtlc = { type: 131, channelId, id, reason: r.bytes(len, 'reason') };
    const ext = readExtension(r, [ATTRIBUTION_DATA_TLV_TYPE]);
    readAttributionData(m, ext.known);
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(50 + m.reason.length);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u64(m.id)
      .u16(m.reason.length)
      .bytes(m.reason);
    return writeExtension(w, attributionRecords(m), m.extensionUnknown);
  },
};

export const updateFailMalformedHtlcCodec: MessageCodec<UpdateFailMalformedHtlc> = {
  type: 135,
  name: 'update_fail_malformed_htlc',
  decode(payload) {
    const r = new Reader(payload);
    const m: UpdateFailMalformedHtlc = {
      type: 135,
      channelId: fixed(r, 32, 'channel_id'),
      id: r.u64('id'),
      sha256OfOnion: fixed(r, 32, 'sha256_of_onion'),
      failureCode: r.u16('failure_code'),
    };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(74);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u64(m.id)
      .bytes(checkLen(m.sha256OfOnion, 32, 'sha256_of_onion'))
      .u16(m.failureCode);
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const commitmentSignedCodec: MessageCodec<CommitmentSigned> = {
  type: 132,
  name: 'commitment_signed',
  decode(payload) {
    const r = new Reader(payload);
    const channelId = fixed(r, 32, 'channel_id');
    const signature = fixed(r, 64, 'signature');
    const n = r.u16('num_htlcs');
    const htlcSignatures: Uint8Array[] = [];
    for (let i = 0; i < n; i++) htlcSignatures.push(fixed(r, 64, 'htlc_signature'));
    const m: CommitmentSigned = { type: 132, channelId, signature, htlcSignatures };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    if (m.htlcSignatures.length > 0xffff) throw new DecodeError('ERR_INVALID_VALUE', 'too many htlc_signatures');
    const w = new Writer(98 + 64 * m.htlcSignatures.length);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .bytes(checkLen(m.signature, 64, 'signature'))
      .u16(m.htlcSignatures.length);
    for (const s of m.htlcSignatures) w.bytes(checkLen(s, 64, 'htlc_signature'));
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const revokeAndAckCodec: MessageCodec<RevokeAndAck> = {
  type: 133,
  name: 'revoke_and_ack',
  decode(payload) {
    const r = new Reader(payload);
    const m: RevokeAndAck = {
      type: 133,
      channelId: fixed(r, 32, 'channel_id'),
      perCommitmentSecret: fixed(r, 32, 'per_commitment_secret'),
      nextPerCommitmentPoint: fixed(r, 33, 'next_per_commitment_point'),
    };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(97);
    w.bytes(checkLen(m.channelId, 32, 'channel_id')).bytes(checkLen(m.perCommitmentSecret, 32, 'per_commitment_secret'));
    w.bytes(checkLen(m.nextPerCommitmentPoint, 33, 'next_per_commitment_point'));
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const updateFeeCodec: MessageCodec<UpdateFee> = {
  type: 134,
  name: 'update_fee',
  decode(payload) {
    const r = new Reader(payload);
    const m: UpdateFee = { type: 134, channelId: fixed(r, 32, 'channel_id'), feeratePerKw: r.u32('feerate_per_kw') };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(36);
    w.bytes(checkLen(m.channelId, 32, 'channel_id')).u32(m.feeratePerKw);
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const channelReestablishCodec: MessageCodec<ChannelReestablish> = {
  type: 136,
  name: 'channel_reestablish',
  decode(payload) {
    const r = new Reader(payload);
    const m: ChannelReestablish = {
      type: 136,
      channelId: fixed(r, 32, 'channel_id'),
      nextCommitmentNumber: r.u64('next_commitment_number'),
      nextRevocationNumber: r.u64('next_revocation_number'),
      yourLastPerCommitmentSecret: fixed(r, 32, 'your_last_per_commitment_secret'),
      myCurrentPerCommitmentPoint: fixed(r, 33, 'my_current_per_commitment_point'),
    };
    const ext = readExtension(r, [0n]);
    const nf = ext.known.get(0n);
    if (nf !== undefined) m.nextFundingTxid = checkLen(nf, 32, 'next_funding_txid');
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(150);
    w.bytes(checkLen(m.channelId, 32, 'channel_id'))
      .u64(m.nextCommitmentNumber)
      .u64(m.nextRevocationNumber);
    w.bytes(checkLen(m.yourLastPerCommitmentSecret, 32, 'your_last_per_commitment_secret'));
    w.bytes(checkLen(m.myCurrentPerCommitmentPoint, 33, 'my_current_per_commitment_point'));
    const recs: TlvRecord[] =
      m.nextFundingTxid === undefined ? [] : [{ type: 0n, value: checkLen(m.nextFundingTxid, 32, 'next_funding_txid') }];
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

/** Every BOLT 2 channel message codec, for the one table by type in `wire/messages.ts`. */
export const channelMessageCodecs = [
  openChannelCodec,
  acceptChannelCodec,
  fundingCreatedCodec,
  fundingSignedCodec,
  channelReadyCodec,
  shutdownCodec,
  closingSignedCodec,
  updateAddHtlcCodec,
  updateFulfillHtlcCodec,
  updateFailHtlcCodec,
  updateFailMalformedHtlcCodec,
  commitmentSignedCodec,
  revokeAndAckCodec,
  updateFeeCodec,
  channelReestablishCodec,
] as const;

const byType = new Map<number, MessageCodec<ChannelMessage>>(
  channelMessageCodecs.map((c) => [c.type, c as unknown as MessageCodec<ChannelMessage>]),
);

/** Encodes a channel message's payload (after the 2-byte type). */
export function encodeChannelMessage(m: ChannelMessage): Uint8Array {
  const c = byType.get(m.type);
  if (c === undefined) throw new DecodeError('ERR_INVALID_VALUE', `not a channel message type: ${m.type}`);
  return c.encode(m);
}

/** Decodes a channel message's payload given its type. */
export function decodeChannelMessage(type: number, payload: Uint8Array): ChannelMessage {
  const c = byType.get(type);
  if (c === undefined) throw new DecodeError('ERR_INVALID_VALUE', `not a channel message type: ${type}`);
  return c.decode(payload);
}

/** The channel id a channel message concerns (the temporary one for open/accept/funding_created). */
export function channelIdOf(m: ChannelMessage): Uint8Array {
  switch (m.type) {
    case 32:
    case 33:
    case 34:
      return m.temporaryChannelId;
    default:
      return m.channelId;
  }
}
