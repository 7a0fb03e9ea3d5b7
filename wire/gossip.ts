/**
 * BOLT 7 channel_update (type 258): the codec and the digest its signature
 * covers. Forwarding failures carry our channel_update (BOLT 4), so the
 * switch needs it before gossip does.
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
import { sha256 } from './crypto.js';

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
