/**
 * BOLT 7 gossip messages. First channel_update (type 258): the codec and the
 * digest its signature covers (forwarding failures carry our channel_update,
 * BOLT 4, so the switch needed it before gossip did); then the announcements
 * (256, 257, 259), the queries (261–265), and the digests the announcements'
 * signatures cover.
 *
 *   signature (64) · chain_hash (32) · short_channel_id (8) · timestamp (4)
 *   · message_flags (1) · channel_flags (1) · cltv_expiry_delta (2)
 *   · htlc_minimum_msat (8) · fee_base_msat (4) · fee_proportional_millionths (4)
 *   · htlc_maximum_msat (8)
 *
 * message_flags bit 0 (`must_be_one`) says htlc_maximum_msat is present;
 * BOLT 7 requires it now. channel_flags bit 0 is the direction (set when the
 * sender is node_2, the greater node id), bit 1 `disable`.
 */
import { Reader, Writer } from './bytes.js';
import { secp, sha256 } from './crypto.js';
import { ArgumentError, DecodeError } from './errors.js';
import type { MessageCodec } from './message.js';
import { encodeAddressDescriptor, parseAddressDescriptor, type NetAddress } from './setup-messages.js';
import { checkLen, readExtension, withUnknown, writeExtension, type Extensible } from './extension.js';
import type { TlvRecord } from './tlv.js';

export const CHANNEL_UPDATE_MESSAGE_TYPE = 258;
export const CHANNEL_FLAG_DIRECTION = 1;
export const CHANNEL_FLAG_DISABLED = 2;
export const MESSAGE_FLAG_MUST_BE_ONE = 1;

export interface ChannelUpdate {
  signature: Uint8Array;
  chainHash: Uint8Array;
  shortChannelId: bigint;
  timestamp: number;
  messageFlags: number;
  channelFlags: number;
  cltvExpiryDelta: number;
  htlcMinimumMsat: bigint;
  feeBaseMsat: number;
  feeProportionalMillionths: number;
  htlcMaximumMsat: bigint;
  /** Bytes after htlc_maximum_msat (future fields), kept so the signature still verifies. */
  extra?: Uint8Array;
}

function writeBody(w: Writer, u: ChannelUpdate): Writer {
  w.bytes(u.chainHash).u64(u.shortChannelId).u32(u.timestamp).u8(u.messageFlags).u8(u.channelFlags).u16(u.cltvExpiryDelta);
  w.u64(u.htlcMinimumMsat).u32(u.feeBaseMsat).u32(u.feeProportionalMillionths).u64(u.htlcMaximumMsat);
  if (u.extra !== undefined) w.bytes(u.extra);
  return w;
}

/** The message without its 2-byte type. */
export function encodeChannelUpdate(u: ChannelUpdate): Uint8Array {
  return writeBody(new Writer(136).bytes(u.signature), u).finish();
}

/** Parses a channel_update without its 2-byte type. Throws DecodeError. */
export function decodeChannelUpdate(bytes: Uint8Array): ChannelUpdate {
  const r = new Reader(bytes);
  const u: ChannelUpdate = {
    signature: r.bytes(64, 'signature'),
    chainHash: r.bytes(32, 'chain_hash'),
    shortChannelId: r.u64('short_channel_id'),
    timestamp: r.u32('timestamp'),
    messageFlags: r.u8('message_flags'),
    channelFlags: r.u8('channel_flags'),
    cltvExpiryDelta: r.u16('cltv_expiry_delta'),
    htlcMinimumMsat: r.u64('htlc_minimum_msat'),
    feeBaseMsat: r.u32('fee_base_msat'),
    feeProportionalMillionths: r.u32('fee_proportional_millionths'),
    htlcMaximumMsat: r.u64('htlc_maximum_msat'),
  };
  const extra = r.rest();
  return extra.length > 0 ? { ...u, extra: extra.slice() } : u;
}

/** What the signature signs: the double SHA-256 of everything after it. */
export function channelUpdateDigest(u: ChannelUpdate): Uint8Array {
  return sha256(sha256(writeBody(new Writer(72), u).finish()));
}

/** Whether `u` carries `nodeId`'s signature (false, not a throw, for a malformed signature or key). */
export function channelUpdateSignedBy(u: ChannelUpdate, nodeId: Uint8Array): boolean {
  try {
    return secp.verify(u.signature, channelUpdateDigest(u), nodeId);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the other BOLT 7 messages

export const CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE = 256;
export const NODE_ANNOUNCEMENT_MESSAGE_TYPE = 257;
export const ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE = 259;
export const QUERY_SHORT_CHANNEL_IDS_MESSAGE_TYPE = 261;
export const REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE = 262;
export const QUERY_CHANNEL_RANGE_MESSAGE_TYPE = 263;
export const REPLY_CHANNEL_RANGE_MESSAGE_TYPE = 264;
export const GOSSIP_TIMESTAMP_FILTER_MESSAGE_TYPE = 265;

/**
 * encoded_short_ids (and encoded_timestamps, encoded_query_flags) start with an encoding type. Type 0 is the plain
 * array. Type 1 was zlib: BOLT 7 now says it MUST NOT be used, so we never send it and a message that uses it fails
 * to decode (ERR_INVALID_VALUE), as any other unknown encoding does.
 */
export const ENCODING_UNCOMPRESSED = 0;
export const ENCODING_ZLIB_DEPRECATED = 1;

/** query_flags bits of query_short_channel_ids (what the querier wants for each short_channel_id). */
export const QUERY_FLAG_CHANNEL_ANNOUNCEMENT = 1;
export const QUERY_FLAG_CHANNEL_UPDATE_NODE_1 = 2;
export const QUERY_FLAG_CHANNEL_UPDATE_NODE_2 = 4;
export const QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_1 = 8;
export const QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_2 = 16;

/** query_option flags of query_channel_range: what reply_channel_range should carry besides the ids. */
export const QUERY_OPTION_TIMESTAMPS = 1;
export const QUERY_OPTION_CHECKSUMS = 2;

const TLV_QUERY_FLAGS = 1n;
const TLV_QUERY_OPTION = 1n;
const TLV_TIMESTAMPS = 1n;
const TLV_CHECKSUMS = 3n;

const SIGNATURE_LENGTH = 64;
const HASH_LENGTH = 32;
const PUBKEY_LENGTH = 33;
const RGB_LENGTH = 3;
const ALIAS_LENGTH = 32;
const SCID_LENGTH = 8;
const U32_LENGTH = 4;
/** channel_announcement: the four signatures the digest leaves out. */
const CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET = 4 * SIGNATURE_LENGTH;
/** Address descriptor types (BOLT 7): 3 (torv2, 12 bytes) is deprecated and skipped. */
const ADDRESS_TYPE_TORV2 = 3;
const KNOWN_ADDRESS_TYPES: ReadonlySet<number> = new Set([1, 2, 4, 5]);

export interface ChannelAnnouncement {
  type: typeof CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE;
  nodeSignature1: Uint8Array;
  nodeSignature2: Uint8Array;
  bitcoinSignature1: Uint8Array;
  bitcoinSignature2: Uint8Array;
  features: Uint8Array;
  chainHash: Uint8Array;
  shortChannelId: bigint;
  /** node_id_1 < node_id_2 (lexicographically), as BOLT 7 requires. */
  nodeId1: Uint8Array;
  nodeId2: Uint8Array;
  bitcoinKey1: Uint8Array;
  bitcoinKey2: Uint8Array;
  /** Bytes after bitcoin_key_2, kept so the signatures still verify. */
  extra?: Uint8Array;
}

export interface NodeAnnouncement {
  type: typeof NODE_ANNOUNCEMENT_MESSAGE_TYPE;
  signature: Uint8Array;
  features: Uint8Array;
  timestamp: number;
  nodeId: Uint8Array;
  rgbColor: Uint8Array;
  /** 32 bytes, UTF-8 padded with zero bytes (see `aliasText`). */
  alias: Uint8Array;
  addresses: NetAddress[];
  /**
   * The address bytes from the first descriptor we do not read on (a deprecated torv2 or an unknown type: BOLT 7
   * says to stop there), re-sent unchanged.
   */
  addressesTail?: Uint8Array;
  /** Bytes after the addresses, kept so the signature still verifies. */
  extra?: Uint8Array;
}

export interface AnnouncementSignatures {
  type: typeof ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE;
  channelId: Uint8Array;
  shortChannelId: bigint;
  nodeSignature: Uint8Array;
  bitcoinSignature: Uint8Array;
}

export interface QueryShortChannelIds extends Extensible {
  type: typeof QUERY_SHORT_CHANNEL_IDS_MESSAGE_TYPE;
  chainHash: Uint8Array;
  shortChannelIds: bigint[];
  /** TLV 1: one flag set (QUERY_FLAG_*) per short_channel_id. */
  queryFlags?: bigint[];
}

export interface ReplyShortChannelIdsEnd extends Extensible {
  type: typeof REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE;
  chainHash: Uint8Array;
  /** 0: the replier does not keep up to date with this chain. */
  fullInformation: number;
}

export interface QueryChannelRange extends Extensible {
  type: typeof QUERY_CHANNEL_RANGE_MESSAGE_TYPE;
  chainHash: Uint8Array;
  firstBlocknum: number;
  numberOfBlocks: number;
  /** TLV 1: QUERY_OPTION_* bits. */
  queryOption?: bigint;
}

/** The two timestamps (or checksums) of one channel's updates, node_1's then node_2's; 0 when none. */
export interface ChannelPair {
  node1: number;
  node2: number;
}

export interface ReplyChannelRange extends Extensible {
  type: typeof REPLY_CHANNEL_RANGE_MESSAGE_TYPE;
  chainHash: Uint8Array;
  firstBlocknum: number;
  numberOfBlocks: number;
  syncComplete: number;
  shortChannelIds: bigint[];
  /** TLV 1: the channel_update timestamps per short_channel_id. */
  timestamps?: ChannelPair[];
  /** TLV 3: the channel_update checksums per short_channel_id (`channelUpdateChecksum`). */
  checksums?: ChannelPair[];
}

export interface GossipTimestampFilter extends Extensible {
  type: typeof GOSSIP_TIMESTAMP_FILTER_MESSAGE_TYPE;
  chainHash: Uint8Array;
  firstTimestamp: number;
  timestampRange: number;
}

/** A channel_update in the gossip union (the type tag added). */
export type ChannelUpdateMessage = ChannelUpdate & { type: typeof CHANNEL_UPDATE_MESSAGE_TYPE };

export type GossipMessage =
  | ChannelAnnouncement
  | NodeAnnouncement
  | ChannelUpdateMessage
  | AnnouncementSignatures
  | QueryShortChannelIds
  | ReplyShortChannelIdsEnd
  | QueryChannelRange
  | ReplyChannelRange
  | GossipTimestampFilter;

// ---------------------------------------------------------------- helpers

function checkEncoding(encoding: number, what: string): void {
  if (encoding === ENCODING_ZLIB_DEPRECATED)
    throw new DecodeError('ERR_INVALID_VALUE', `${what}: zlib encoding (1) is no longer allowed by BOLT 7`);
  if (encoding !== ENCODING_UNCOMPRESSED) throw new DecodeError('ERR_INVALID_VALUE', `${what}: unknown encoding type ${encoding}`);
}

/** encoded_short_ids, type 0: strictly ascending 8-byte ids. */
export function decodeShortChannelIds(bytes: Uint8Array): bigint[] {
  if (bytes.length === 0) return [];
  const r = new Reader(bytes);
  checkEncoding(r.u8('encoding type'), 'encoded_short_ids');
  if (r.remaining % SCID_LENGTH !== 0)
    throw new DecodeError('ERR_INVALID_VALUE', `encoded_short_ids: ${r.remaining} bytes is not a whole number of ids`);
  const out: bigint[] = [];
  let last = -1n;
  while (r.remaining > 0) {
    const id = r.u64('short_channel_id');
    if (id <= last) throw new DecodeError('ERR_INVALID_VALUE', 'encoded_short_ids: ids must be in strictly ascending order');
    last = id;
    out.push(id);
  }
  return out;
}

/** encoded_short_ids of type 0; the ids must be strictly ascending (ArgumentError otherwise). */
export function encodeShortChannelIds(ids: readonly bigint[]): Uint8Array {
  const w = new Writer(1 + SCID_LENGTH * ids.length).u8(ENCODING_UNCOMPRESSED);
  let last = -1n;
  for (const id of ids) {
    if (id <= last) throw new ArgumentError('short_channel_ids must be strictly ascending');
    last = id;
    w.u64(id);
  }
  return w.finish();
}

function readIds(r: Reader): bigint[] {
  return decodeShortChannelIds(r.view(r.u16('len'), 'encoded_short_ids'));
}

function writeIds(w: Writer, ids: readonly bigint[]): void {
  const enc = encodeShortChannelIds(ids);
  w.u16(enc.length).bytes(enc);
}

function decodePairs(v: Uint8Array, count: number, withEncoding: boolean, what: string): ChannelPair[] {
  const r = new Reader(v);
  if (withEncoding) checkEncoding(r.u8('encoding type'), what);
  if (r.remaining !== count * 2 * U32_LENGTH)
    throw new DecodeError('ERR_INVALID_VALUE', `${what}: ${r.remaining} bytes for ${count} short_channel_ids`);
  const out: ChannelPair[] = [];
  for (let i = 0; i < count; i++) out.push({ node1: r.u32(what), node2: r.u32(what) });
  return out;
}

function encodePairs(pairs: readonly ChannelPair[], count: number, withEncoding: boolean, what: string): Uint8Array {
  if (pairs.length !== count) throw new ArgumentError(`${what}: ${pairs.length} entries for ${count} short_channel_ids`);
  const w = new Writer(1 + pairs.length * 2 * U32_LENGTH);
  if (withEncoding) w.u8(ENCODING_UNCOMPRESSED);
  for (const p of pairs) w.u32(p.node1).u32(p.node2);
  return w.finish();
}

// ---------------------------------------------------------------- channel_announcement

function writeChannelAnnouncementBody(w: Writer, m: ChannelAnnouncement): Writer {
  w.u16(m.features.length)
    .bytes(m.features)
    .bytes(checkLen(m.chainHash, HASH_LENGTH, 'chain_hash'))
    .u64(m.shortChannelId);
  w.bytes(checkLen(m.nodeId1, PUBKEY_LENGTH, 'node_id_1')).bytes(checkLen(m.nodeId2, PUBKEY_LENGTH, 'node_id_2'));
  w.bytes(checkLen(m.bitcoinKey1, PUBKEY_LENGTH, 'bitcoin_key_1')).bytes(checkLen(m.bitcoinKey2, PUBKEY_LENGTH, 'bitcoin_key_2'));
  if (m.extra !== undefined) w.bytes(m.extra);
  return w;
}

export const channelAnnouncementCodec: MessageCodec<ChannelAnnouncement> = {
  type: CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE,
  name: 'channel_announcement',
  decode(payload) {
    const r = new Reader(payload);
    const m: ChannelAnnouncement = {
      type: CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE,
      nodeSignature1: r.bytes(SIGNATURE_LENGTH, 'node_signature_1'),
      nodeSignature2: r.bytes(SIGNATURE_LENGTH, 'node_signature_2'),
      bitcoinSignature1: r.bytes(SIGNATURE_LENGTH, 'bitcoin_signature_1'),
      bitcoinSignature2: r.bytes(SIGNATURE_LENGTH, 'bitcoin_signature_2'),
      features: r.bytes(r.u16('len'), 'features'),
      chainHash: r.bytes(HASH_LENGTH, 'chain_hash'),
      shortChannelId: r.u64('short_channel_id'),
      nodeId1: r.bytes(PUBKEY_LENGTH, 'node_id_1'),
      nodeId2: r.bytes(PUBKEY_LENGTH, 'node_id_2'),
      bitcoinKey1: r.bytes(PUBKEY_LENGTH, 'bitcoin_key_1'),
      bitcoinKey2: r.bytes(PUBKEY_LENGTH, 'bitcoin_key_2'),
    };
    const extra = r.rest();
    if (extra.length > 0) m.extra = extra.slice();
    return m;
  },
  encode(m) {
    const w = new Writer(432);
    w.bytes(checkLen(m.nodeSignature1, SIGNATURE_LENGTH, 'node_signature_1'));
    w.bytes(checkLen(m.nodeSignature2, SIGNATURE_LENGTH, 'node_signature_2'));
    w.bytes(checkLen(m.bitcoinSignature1, SIGNATURE_LENGTH, 'bitcoin_signature_1'));
    w.bytes(checkLen(m.bitcoinSignature2, SIGNATURE_LENGTH, 'bitcoin_signature_2'));
    return writeChannelAnnouncementBody(w, m).finish();
  },
};

/** What all four signatures of a channel_announcement sign: the double SHA-256 of everything after them. */
export function channelAnnouncementDigest(m: ChannelAnnouncement): Uint8Array {
  return sha256(sha256(writeChannelAnnouncementBody(new Writer(176), m).finish()));
}

/** The same digest from the raw payload (after the 2-byte type), as received. */
export function channelAnnouncementDigestOfPayload(payload: Uint8Array): Uint8Array {
  if (payload.length < CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET) throw new DecodeError('ERR_TRUNCATED', 'channel_announcement too short');
  return sha256(sha256(payload.subarray(CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET)));
}

// ---------------------------------------------------------------- node_announcement

function readAddresses(bytes: Uint8Array): { addresses: NetAddress[]; tail?: Uint8Array } {
  const addresses: NetAddress[] = [];
  const r = new Reader(bytes);
  while (r.remaining > 0) {
    const start = r.pos;
    const kind = bytes[start]!;
    if (kind === ADDRESS_TYPE_TORV2 || !KNOWN_ADDRESS_TYPES.has(kind)) return { addresses, tail: bytes.slice(start) };
    const len = descriptorLength(bytes, start);
    addresses.push(parseAddressDescriptor(r.view(len, 'address descriptor')));
  }
  return { addresses };
}

/** The length of the known-type descriptor at `at` (ERR_TRUNCATED when it runs past the end). */
function descriptorLength(bytes: Uint8Array, at: number): number {
  const kind = bytes[at]!;
  const port = 2;
  switch (kind) {
    case 1:
      return 1 + 4 + port;
    case 2:
      return 1 + 16 + port;
    case 4:
      return 1 + 35 + port;
    default: {
      const n = bytes[at + 1];
      if (n === undefined) throw new DecodeError('ERR_TRUNCATED', 'address descriptor: hostname length missing');
      return 2 + n + port;
    }
  }
}

function writeNodeAnnouncementBody(w: Writer, m: NodeAnnouncement): Writer {
  w.u16(m.features.length)
    .bytes(m.features)
    .u32(m.timestamp)
    .bytes(checkLen(m.nodeId, PUBKEY_LENGTH, 'node_id'));
  w.bytes(checkLen(m.rgbColor, RGB_LENGTH, 'rgb_color')).bytes(checkLen(m.alias, ALIAS_LENGTH, 'alias'));
  const addrs = m.addresses.map(encodeAddressDescriptor);
  if (m.addressesTail !== undefined) addrs.push(m.addressesTail);
  let len = 0;
  for (const a of addrs) len += a.length;
  w.u16(len);
  for (const a of addrs) w.bytes(a);
  if (m.extra !== undefined) w.bytes(m.extra);
  return w;
}

export const nodeAnnouncementCodec: MessageCodec<NodeAnnouncement> = {
  type: NODE_ANNOUNCEMENT_MESSAGE_TYPE,
  name: 'node_announcement',
  decode(payload) {
    const r = new Reader(payload);
    const signature = r.bytes(SIGNATURE_LENGTH, 'signature');
    const features = r.bytes(r.u16('flen'), 'features');
    const timestamp = r.u32('timestamp');
    const nodeId = r.bytes(PUBKEY_LENGTH, 'node_id');
    const rgbColor = r.bytes(RGB_LENGTH, 'rgb_color');
    const alias = r.bytes(ALIAS_LENGTH, 'alias');
    const parsed = readAddresses(r.view(r.u16('addrlen'), 'addresses'));
    const m: NodeAnnouncement = {
      type: NODE_ANNOUNCEMENT_MESSAGE_TYPE,
      signature,
      features,
      timestamp,
      nodeId,
      rgbColor,
      alias,
      addresses: parsed.addresses,
    };
    if (parsed.tail !== undefined) m.addressesTail = parsed.tail;
    const extra = r.rest();
    if (extra.length > 0) m.extra = extra.slice();
    return m;
  },
  encode(m) {
    return writeNodeAnnouncementBody(new Writer(200).bytes(checkLen(m.signature, SIGNATURE_LENGTH, 'signature')), m).finish();
  },
};

/** What a node_announcement's signature signs: the double SHA-256 of everything after it. */
export function nodeAnnouncementDigest(m: NodeAnnouncement): Uint8Array {
  return sha256(sha256(writeNodeAnnouncementBody(new Writer(136), m).finish()));
}

/** A 32-byte alias as text: UTF-8, trailing zero bytes dropped (invalid UTF-8 becomes U+FFFD). */
export function aliasText(alias: Uint8Array): string {
  let end = alias.length;
  while (end > 0 && alias[end - 1] === 0) end--;
  return new TextDecoder().decode(alias.subarray(0, end));
}

/** A text alias as the 32 bytes BOLT 7 sends (UTF-8, zero-padded); ArgumentError when longer than 32 bytes. */
export function aliasBytes(text: string): Uint8Array {
  const b = new TextEncoder().encode(text);
  if (b.length > ALIAS_LENGTH) throw new ArgumentError(`alias is ${b.length} bytes, at most ${ALIAS_LENGTH}`);
  const out = new Uint8Array(ALIAS_LENGTH);
  out.set(b);
  return out;
}

// ---------------------------------------------------------------- announcement_signatures

export const announcementSignaturesCodec: MessageCodec<AnnouncementSignatures> = {
  type: ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE,
  name: 'announcement_signatures',
  decode(payload) {
    const r = new Reader(payload);
    const m: AnnouncementSignatures = {
      type: ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE,
      channelId: r.bytes(HASH_LENGTH, 'channel_id'),
      shortChannelId: r.u64('short_channel_id'),
      nodeSignature: r.bytes(SIGNATURE_LENGTH, 'node_signature'),
      bitcoinSignature: r.bytes(SIGNATURE_LENGTH, 'bitcoin_signature'),
    };
    // later fields (a TLV stream) may follow: ignored, as nothing in them is defined yet
    return m;
  },
  encode(m) {
    const w = new Writer(168).bytes(checkLen(m.channelId, HASH_LENGTH, 'channel_id')).u64(m.shortChannelId);
    w.bytes(checkLen(m.nodeSignature, SIGNATURE_LENGTH, 'node_signature'));
    return w.bytes(checkLen(m.bitcoinSignature, SIGNATURE_LENGTH, 'bitcoin_signature')).finish();
  },
};

// ---------------------------------------------------------------- queries

function decodeQueryFlags(v: Uint8Array): bigint[] {
  const r = new Reader(v);
  checkEncoding(r.u8('encoding type'), 'encoded_query_flags');
  const out: bigint[] = [];
  while (r.remaining > 0) out.push(r.bigSize('query flag'));
  return out;
}

export const queryShortChannelIdsCodec: MessageCodec<QueryShortChannelIds> = {
  type: QUERY_SHORT_CHANNEL_IDS_MESSAGE_TYPE,
  name: 'query_short_channel_ids',
  decode(payload) {
    const r = new Reader(payload);
    const m: QueryShortChannelIds = {
      type: QUERY_SHORT_CHANNEL_IDS_MESSAGE_TYPE,
      chainHash: r.bytes(HASH_LENGTH, 'chain_hash'),
      shortChannelIds: readIds(r),
    };
    const ext = readExtension(r, [TLV_QUERY_FLAGS]);
    const flags = ext.known.get(TLV_QUERY_FLAGS);
    if (flags !== undefined) {
      m.queryFlags = decodeQueryFlags(flags);
      if (m.queryFlags.length !== m.shortChannelIds.length)
        throw new DecodeError('ERR_INVALID_VALUE', `${m.queryFlags.length} query_flags for ${m.shortChannelIds.length} short_channel_ids`);
    }
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(64 + SCID_LENGTH * m.shortChannelIds.length).bytes(checkLen(m.chainHash, HASH_LENGTH, 'chain_hash'));
    writeIds(w, m.shortChannelIds);
    const recs: TlvRecord[] = [];
    if (m.queryFlags !== undefined) {
      if (m.queryFlags.length !== m.shortChannelIds.length) throw new ArgumentError('one query flag per short_channel_id');
      const fw = new Writer(1 + m.queryFlags.length).u8(ENCODING_UNCOMPRESSED);
      for (const f of m.queryFlags) fw.bigSize(f);
      recs.push({ type: TLV_QUERY_FLAGS, value: fw.finish() });
    }
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

export const replyShortChannelIdsEndCodec: MessageCodec<ReplyShortChannelIdsEnd> = {
  type: REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE,
  name: 'reply_short_channel_ids_end',
  decode(payload) {
    const r = new Reader(payload);
    const m: ReplyShortChannelIdsEnd = {
      type: REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE,
      chainHash: r.bytes(HASH_LENGTH, 'chain_hash'),
      fullInformation: r.u8('full_information'),
    };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(33).bytes(checkLen(m.chainHash, HASH_LENGTH, 'chain_hash')).u8(m.fullInformation);
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const queryChannelRangeCodec: MessageCodec<QueryChannelRange> = {
  type: QUERY_CHANNEL_RANGE_MESSAGE_TYPE,
  name: 'query_channel_range',
  decode(payload) {
    const r = new Reader(payload);
    const m: QueryChannelRange = {
      type: QUERY_CHANNEL_RANGE_MESSAGE_TYPE,
      chainHash: r.bytes(HASH_LENGTH, 'chain_hash'),
      firstBlocknum: r.u32('first_blocknum'),
      numberOfBlocks: r.u32('number_of_blocks'),
    };
    const ext = readExtension(r, [TLV_QUERY_OPTION]);
    const opt = ext.known.get(TLV_QUERY_OPTION);
    if (opt !== undefined) {
      const or = new Reader(opt);
      m.queryOption = or.bigSize('query_option_flags');
      or.end('query_option');
    }
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(48)
      .bytes(checkLen(m.chainHash, HASH_LENGTH, 'chain_hash'))
      .u32(m.firstBlocknum)
      .u32(m.numberOfBlocks);
    const recs: TlvRecord[] = [];
    if (m.queryOption !== undefined) recs.push({ type: TLV_QUERY_OPTION, value: new Writer(9).bigSize(m.queryOption).finish() });
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

export const replyChannelRangeCodec: MessageCodec<ReplyChannelRange> = {
  type: REPLY_CHANNEL_RANGE_MESSAGE_TYPE,
  name: 'reply_channel_range',
  decode(payload) {
    const r = new Reader(payload);
    const m: ReplyChannelRange = {
      type: REPLY_CHANNEL_RANGE_MESSAGE_TYPE,
      chainHash: r.bytes(HASH_LENGTH, 'chain_hash'),
      firstBlocknum: r.u32('first_blocknum'),
      numberOfBlocks: r.u32('number_of_blocks'),
      syncComplete: r.u8('sync_complete'),
      shortChannelIds: readIds(r),
    };
    const ext = readExtension(r, [TLV_TIMESTAMPS, TLV_CHECKSUMS]);
    const n = m.shortChannelIds.length;
    const ts = ext.known.get(TLV_TIMESTAMPS);
    if (ts !== undefined) m.timestamps = decodePairs(ts, n, true, 'timestamps_tlv');
    const cs = ext.known.get(TLV_CHECKSUMS);
    if (cs !== undefined) m.checksums = decodePairs(cs, n, false, 'checksums_tlv');
    return withUnknown(m, ext.unknown);
  },
  encode(m) {
    const w = new Writer(64 + SCID_LENGTH * m.shortChannelIds.length).bytes(checkLen(m.chainHash, HASH_LENGTH, 'chain_hash'));
    w.u32(m.firstBlocknum).u32(m.numberOfBlocks).u8(m.syncComplete);
    writeIds(w, m.shortChannelIds);
    const n = m.shortChannelIds.length;
    const recs: TlvRecord[] = [];
    if (m.timestamps !== undefined) recs.push({ type: TLV_TIMESTAMPS, value: encodePairs(m.timestamps, n, true, 'timestamps') });
    if (m.checksums !== undefined) recs.push({ type: TLV_CHECKSUMS, value: encodePairs(m.checksums, n, false, 'checksums') });
    return writeExtension(w, recs, m.extensionUnknown);
  },
};

export const gossipTimestampFilterCodec: MessageCodec<GossipTimestampFilter> = {
  type: GOSSIP_TIMESTAMP_FILTER_MESSAGE_TYPE,
  name: 'gossip_timestamp_filter',
  decode(payload) {
    const r = new Reader(payload);
    const m: GossipTimestampFilter = {
      type: GOSSIP_TIMESTAMP_FILTER_MESSAGE_TYPE,
      chainHash: r.bytes(HASH_LENGTH, 'chain_hash'),
      firstTimestamp: r.u32('first_timestamp'),
      timestampRange: r.u32('timestamp_range'),
    };
    return withUnknown(m, readExtension(r, []).unknown);
  },
  encode(m) {
    const w = new Writer(40)
      .bytes(checkLen(m.chainHash, HASH_LENGTH, 'chain_hash'))
      .u32(m.firstTimestamp)
      .u32(m.timestampRange);
    return writeExtension(w, [], m.extensionUnknown);
  },
};

export const channelUpdateCodec: MessageCodec<ChannelUpdateMessage> = {
  type: CHANNEL_UPDATE_MESSAGE_TYPE,
  name: 'channel_update',
  decode: (payload) => ({ type: CHANNEL_UPDATE_MESSAGE_TYPE, ...decodeChannelUpdate(payload) }),
  encode: (m) => encodeChannelUpdate(m),
};

/**
 * Every BOLT 7 codec. They are not (yet) in the one table of `messages.ts`: joining it changes how the peer treats a
 * malformed channel_update (today ignored by its handler, then a decode failure that closes the connection), so it
 * comes with the peer manager's gossip handling. Until then `decodeGossipMessage` reads a handler's raw bytes.
 */
export const gossipMessageCodecs = [
  channelAnnouncementCodec,
  nodeAnnouncementCodec,
  channelUpdateCodec,
  announcementSignaturesCodec,
  queryShortChannelIdsCodec,
  replyShortChannelIdsEndCodec,
  queryChannelRangeCodec,
  replyChannelRangeCodec,
  gossipTimestampFilterCodec,
] as const;

const gossipByType = new Map<number, MessageCodec<GossipMessage>>(
  gossipMessageCodecs.map((c) => [c.type, c as unknown as MessageCodec<GossipMessage>]),
);

export function isGossipMessageType(type: number): boolean {
  return gossipByType.has(type);
}

/** A gossip message with its 2-byte type. */
export function encodeGossipMessage(m: GossipMessage): Uint8Array {
  const c = gossipByType.get(m.type);
  if (c === undefined) throw new ArgumentError(`not a gossip message type: ${String(m.type)}`);
  const payload = c.encode(m);
  const out = new Uint8Array(2 + payload.length);
  out[0] = m.type >> 8;
  out[1] = m.type & 0xff;
  out.set(payload, 2);
  return out;
}

/** Decodes a whole gossip message (2-byte type first). Throws DecodeError. */
export function decodeGossipMessage(bytes: Uint8Array): GossipMessage {
  const r = new Reader(bytes);
  const type = r.u16('message type');
  const c = gossipByType.get(type);
  if (c === undefined) throw new DecodeError('ERR_INVALID_VALUE', `not a gossip message type: ${type}`);
  return c.decode(r.rest());
}

// ---------------------------------------------------------------- short_channel_id and checksum helpers

const BLOCK_SHIFT = 40n;
const TX_SHIFT = 16n;
const TX_MASK = 0xffffffn;
const OUTPUT_MASK = 0xffffn;

/** A short_channel_id's parts: block height (3 bytes), transaction index (3 bytes), output index (2 bytes). */
export function shortChannelIdParts(scid: bigint): { blockHeight: number; txIndex: number; outputIndex: number } {
  return {
    blockHeight: Number(scid >> BLOCK_SHIFT),
    txIndex: Number((scid >> TX_SHIFT) & TX_MASK),
    outputIndex: Number(scid & OUTPUT_MASK),
  };
}

export function makeShortChannelId(blockHeight: number, txIndex: number, outputIndex: number): bigint {
  if (blockHeight < 0 || blockHeight > 0xffffff || txIndex < 0 || txIndex > 0xffffff || outputIndex < 0 || outputIndex > 0xffff)
    throw new ArgumentError(`short_channel_id parts out of range: ${blockHeight}x${txIndex}x${outputIndex}`);
  return (BigInt(blockHeight) << BLOCK_SHIFT) | (BigInt(txIndex) << TX_SHIFT) | BigInt(outputIndex);
}

const CRC32C_POLY_REVERSED = 0x82f63b78;
const CRC32C_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY_REVERSED : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as BOLT 7's checksums use. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** BOLT 7's channel_update checksum: CRC-32C of the update without its signature and timestamp. */
export function channelUpdateChecksum(u: ChannelUpdate): number {
  const w = new Writer(72).bytes(u.chainHash).u64(u.shortChannelId).u8(u.messageFlags).u8(u.channelFlags).u16(u.cltvExpiryDelta);
  w.u64(u.htlcMinimumMsat).u32(u.feeBaseMsat).u32(u.feeProportionalMillionths).u64(u.htlcMaximumMsat);
  if (u.extra !== undefined) w.bytes(u.extra);
  return crc32c(w.finish());
}
