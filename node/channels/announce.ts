/**
 * Announcing a public channel (BOLT 7): the channel_announcement both ends sign, the announcement_signatures each
 * sends the other once the funding transaction is 6 blocks deep, and our node_announcement. Pure: keys and time come
 * in as arguments.
 */
import { compareBytes, equalBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import {
  ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE,
  aliasBytes,
  CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE,
  channelAnnouncementDigest,
  NODE_ANNOUNCEMENT_MESSAGE_TYPE,
  nodeAnnouncementDigest,
  type AnnouncementSignatures,
  type ChannelAnnouncement,
  type NodeAnnouncement,
} from '../../wire/gossip.js';
import type { NetAddress } from '../../wire/setup-messages.js';

/** BOLT 7: announcement_signatures only once the funding transaction has this many confirmations. */
export const ANNOUNCEMENT_DEPTH = 6;
/** channel_flags bit 0 of open_channel: the opener wants the channel announced. */
export const CHANNEL_FLAG_ANNOUNCE = 1;

export interface ChannelEnds {
  chainHash: Uint8Array;
  shortChannelId: bigint;
  ourNodeId: Uint8Array;
  theirNodeId: Uint8Array;
  ourFundingPubkey: Uint8Array;
  theirFundingPubkey: Uint8Array;
}

const ZERO64 = new Uint8Array(64);

/** The channel_announcement with its signatures left empty, the ends in BOLT 7's order (node_id_1 the lesser). */
export function unsignedAnnouncement(e: ChannelEnds): { ann: ChannelAnnouncement; weAreNode1: boolean } {
  const weAreNode1 = compareBytes(e.ourNodeId, e.theirNodeId) < 0;
  const [n1, n2, b1, b2] = weAreNode1
    ? [e.ourNodeId, e.theirNodeId, e.ourFundingPubkey, e.theirFundingPubkey]
    : [e.theirNodeId, e.ourNodeId, e.theirFundingPubkey, e.ourFundingPubkey];
  return {
    weAreNode1,
    ann: {
      type: CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE,
      nodeSignature1: ZERO64,
      nodeSignature2: ZERO64,
      bitcoinSignature1: ZERO64,
      bitcoinSignature2: ZERO64,
      features: new Uint8Array(0),
      chainHash: e.chainHash,
      shortChannelId: e.shortChannelId,
      nodeId1: n1,
      nodeId2: n2,
      bitcoinKey1: b1,
      bitcoinKey2: b2,
    },
  };
}

/** Our announcement_signatures for the channel: the node key's and the funding key's signatures of the digest. */
export function ourAnnouncementSignatures(
  e: ChannelEnds,
  channelId: Uint8Array,
  nodePrivateKey: Uint8Array,
  fundingPrivateKey: Uint8Array,
): AnnouncementSignatures {
  const digest = channelAnnouncementDigest(unsignedAnnouncement(e).ann);
  return {
    type: ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE,
    channelId,
    shortChannelId: e.shortChannelId,
    nodeSignature: secp.sign(digest, nodePrivateKey),
    bitcoinSignature: secp.sign(digest, fundingPrivateKey),
  };
}

/** Whether the peer's announcement_signatures are its node key's and its funding key's over this channel. */
export function verifyTheirSignatures(e: ChannelEnds, s: AnnouncementSignatures): boolean {
  if (s.shortChannelId !== e.shortChannelId) return false;
  const digest = channelAnnouncementDigest(unsignedAnnouncement(e).ann);
  try {
    return secp.verify(s.nodeSignature, digest, e.theirNodeId) && secp.verify(s.bitcoinSignature, digest, e.theirFundingPubkey);
  } catch {
    return false;
  }
}

/** The complete channel_announcement from both ends' signatures. */
export function signedAnnouncement(e: ChannelEnds, ours: AnnouncementSignatures, theirs: AnnouncementSignatures): ChannelAnnouncement {
  const { ann, weAreNode1 } = unsignedAnnouncement(e);
  const [first, second] = weAreNode1 ? [ours, theirs] : [theirs, ours];
  return {
    ...ann,
    nodeSignature1: first.nodeSignature,
    nodeSignature2: second.nodeSignature,
    bitcoinSignature1: first.bitcoinSignature,
    bitcoinSignature2: second.bitcoinSignature,
  };
}

/** Our node_announcement, signed. `timestamp` must grow with each new one (BOLT 7: newer replaces older). */
export function nodeAnnouncement(o: {
  nodePrivateKey: Uint8Array;
  nodeId: Uint8Array;
  features: Uint8Array;
  timestamp: number;
  alias: string;
  rgbColor: Uint8Array;
  addresses: NetAddress[];
}): NodeAnnouncement {
  const m: NodeAnnouncement = {
    type: NODE_ANNOUNCEMENT_MESSAGE_TYPE,
    signature: ZERO64,
    features: o.features,
    timestamp: o.timestamp,
    nodeId: o.nodeId,
    rgbColor: o.rgbColor,
    alias: aliasBytes(o.alias),
    addresses: o.addresses,
  };
  return { ...m, signature: secp.sign(nodeAnnouncementDigest(m), o.nodePrivateKey) };
}

/** Whether two announcement_signatures carry the same signatures (a resend). */
export function sameSignatures(a: AnnouncementSignatures, b: AnnouncementSignatures): boolean {
  return equalBytes(a.nodeSignature, b.nodeSignature) && equalBytes(a.bitcoinSignature, b.bitcoinSignature);
}
