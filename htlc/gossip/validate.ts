/**
 * BOLT 7's receiving rules for the three gossip messages, as pure functions: the message, what we already know (a
 * `GossipView`, which the graph store implements), the chain (a `GossipChain`), and the time (`nowSec`) come in; an
 * outcome comes out as a value. Nothing here stores, sends or waits.
 *
 *   accept   the message is valid and new: store it (and relay it);
 *   ignore   valid enough but not for us: a duplicate, older than what we have, a channel we do not know, another
 *            chain, a funding output that is gone. Dropped silently, as BOLT 7 says "ignore";
 *   reject   the peer sent something wrong (a bad signature, a funding output that is not the announced 2-of-2):
 *            dropped, and `warnPeer` says whether BOLT 7 says to send it a warning.
 *
 * Checks run cheapest first: the chain hash and what we already hold before any signature, the signatures before
 * the chain lookup (which on a real backend is the costly one).
 */
import { bytesToHex, compareBytes, equalBytes, hexToBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import { FeatureVector, unknownRequiredBits } from '../../wire/features.js';
import {
  CHANNEL_FLAG_DIRECTION,
  MESSAGE_FLAG_MUST_BE_ONE,
  channelAnnouncementDigest,
  channelUpdateDigest,
  nodeAnnouncementDigest,
  type ChannelAnnouncement,
  type ChannelUpdate,
  type NodeAnnouncement,
} from '../../wire/gossip.js';
import { fundingWitnessScript, p2wsh } from '../bolt3/scripts.js';
import type { NodeIdHex } from '../router/interfaces.js';

/** BOLT 7's pruning horizon: a channel whose latest update is older than this is stale (two weeks). */
export const STALE_UPDATE_AGE_SEC = 14 * 24 * 3600;
/** Timestamps further ahead of our clock than this are ignored (BOLT 7: "unreasonably far in the future", MAY discard). */
export const MAX_FUTURE_TIMESTAMP_SEC = 3600;
const MSAT_PER_SAT = 1000n;

/** The funding output a short_channel_id points at, as the chain reports it. */
export interface FundingOutput {
  scriptPubKey: Uint8Array;
  valueSat: bigint;
  spent: boolean;
}

/**
 * What validation asks of the chain: the output at (block, tx index, output index) of a short_channel_id, or
 * undefined when there is no such block, transaction or output. A backend that answers asynchronously looks the
 * output up before calling the validator (the peer manager awaits it, then validates).
 */
export interface GossipChain {
  lookupFundingOutput(shortChannelId: bigint): FundingOutput | undefined;
}

/** A channel we hold an announcement for. */
export interface KnownChannel {
  nodeId1: NodeIdHex;
  nodeId2: NodeIdHex;
  capacitySat: bigint;
}

/** 0: the update comes from node_1 (the lesser id); 1: from node_2 (channel_flags bit 0). */
export type Direction = 0 | 1;

/** What validation needs to know of the graph so far. */
export interface GossipView {
  channel(shortChannelId: bigint): KnownChannel | undefined;
  /** The timestamp of the update we hold for this direction. */
  updateTimestamp(shortChannelId: bigint, direction: Direction): number | undefined;
  /** The timestamp of the node announcement we hold for the node. */
  nodeTimestamp(node: NodeIdHex): number | undefined;
  /** Whether the node is an end of a channel we hold. */
  hasChannels(node: NodeIdHex): boolean;
}

export interface ValidationContext {
  /** The chain we are on (genesis block hash, as chain_hash carries it). */
  chainHash: Uint8Array;
  chain: GossipChain;
  view: GossipView;
  nowSec: number;
}

export type IgnoreReason =
  | 'wrong_chain'
  | 'duplicate'
  | 'unknown_channel'
  | 'unknown_node'
  | 'funding_missing'
  | 'funding_spent'
  | 'stale'
  | 'too_far_in_future'
  | 'unknown_required_feature'
  | 'no_htlc_maximum'
  | 'htlc_maximum_above_capacity';

export type RejectReason =
  'bad_node_signature' | 'bad_bitcoin_signature' | 'bad_signature' | 'node_ids_unordered' | 'funding_script_mismatch';

export type GossipOutcome<T> =
  { kind: 'accept'; value: T } | { kind: 'ignore'; reason: IgnoreReason } | { kind: 'reject'; reason: RejectReason; warnPeer: boolean };

const ignore = (reason: IgnoreReason): { kind: 'ignore'; reason: IgnoreReason } => ({ kind: 'ignore', reason });
const reject = (reason: RejectReason, warnPeer: boolean): { kind: 'reject'; reason: RejectReason; warnPeer: boolean } => ({
  kind: 'reject',
  reason,
  warnPeer,
});

/** Channel announcement features we understand: none defined yet, so any even bit is unknown. */
const KNOWN_CHANNEL_FEATURES: ReadonlySet<number> = new Set();

function verify(sig: Uint8Array, digest: Uint8Array, pub: Uint8Array): boolean {
  try {
    return secp.verify(sig, digest, pub);
  } catch {
    return false; // not a point on the curve, or a malformed signature
  }
}

export interface AcceptedChannel extends KnownChannel {
  shortChannelId: bigint;
}

/**
 * BOLT 7 channel_announcement: the chain, the node ids in order, not already held, all four signatures (a bad one:
 * warn the peer), then the funding output: it exists and is unspent (else ignored: it may simply be gone), and it is
 * the P2WSH of the 2-of-2 of the two bitcoin keys (else rejected). The output's value is the channel's capacity.
 */
export function validateChannelAnnouncement(m: ChannelAnnouncement, ctx: ValidationContext): GossipOutcome<AcceptedChannel> {
  if (!equalBytes(m.chainHash, ctx.chainHash)) return ignore('wrong_chain');
  if (compareBytes(m.nodeId1, m.nodeId2) >= 0) return reject('node_ids_unordered', true);
  if (ctx.view.channel(m.shortChannelId) !== undefined) return ignore('duplicate');
  if (m.features.length > 0 && unknownRequiredBits(FeatureVector.decode(m.features), KNOWN_CHANNEL_FEATURES).length > 0)
    return ignore('unknown_required_feature');
  const digest = channelAnnouncementDigest(m);
  if (!verify(m.nodeSignature1, digest, m.nodeId1) || !verify(m.nodeSignature2, digest, m.nodeId2))
    return reject('bad_node_signature', true);
  if (!verify(m.bitcoinSignature1, digest, m.bitcoinKey1) || !verify(m.bitcoinSignature2, digest, m.bitcoinKey2))
    return reject('bad_bitcoin_signature', true);
  const out = ctx.chain.lookupFundingOutput(m.shortChannelId);
  if (out === undefined) return ignore('funding_missing');
  if (out.spent) return ignore('funding_spent');
  if (!equalBytes(out.scriptPubKey, p2wsh(fundingWitnessScript(m.bitcoinKey1, m.bitcoinKey2))))
    return reject('funding_script_mismatch', false);
  return {
    kind: 'accept',
    value: { shortChannelId: m.shortChannelId, nodeId1: bytesToHex(m.nodeId1), nodeId2: bytesToHex(m.nodeId2), capacitySat: out.valueSat },
  };
}

/**
 * BOLT 7 node_announcement: only for a node with a channel we hold (else ignored), newer than the one we hold
 * (equal or older: ignored), not too far ahead of our clock, and signed by the node (a bad signature: warn).
 */
export function validateNodeAnnouncement(m: NodeAnnouncement, ctx: ValidationContext): GossipOutcome<{ node: NodeIdHex }> {
  const node = bytesToHex(m.nodeId);
  if (!ctx.view.hasChannels(node)) return ignore('unknown_node');
  const last = ctx.view.nodeTimestamp(node);
  if (last !== undefined && m.timestamp <= last) return ignore('stale');
  if (m.timestamp > ctx.nowSec + MAX_FUTURE_TIMESTAMP_SEC) return ignore('too_far_in_future');
  if (!verify(m.signature, nodeAnnouncementDigest(m), m.nodeId)) return reject('bad_signature', true);
  return { kind: 'accept', value: { node } };
}

export interface AcceptedUpdate {
  direction: Direction;
  /** The node that signed it: node_1 for direction 0, node_2 for 1. */
  from: NodeIdHex;
  to: NodeIdHex;
}

/**
 * BOLT 7 channel_update: the chain, a channel we hold an announcement for, htlc_maximum_msat present and within the
 * capacity, newer than the update we hold for its direction (equal or older: ignored), neither older than two weeks
 * nor too far ahead of our clock, and signed by the node of its direction (a bad signature: warn).
 */
export function validateChannelUpdate(u: ChannelUpdate, ctx: ValidationContext): GossipOutcome<AcceptedUpdate> {
  if (!equalBytes(u.chainHash, ctx.chainHash)) return ignore('wrong_chain');
  const ch = ctx.view.channel(u.shortChannelId);
  if (ch === undefined) return ignore('unknown_channel');
  const direction: Direction = (u.channelFlags & CHANNEL_FLAG_DIRECTION) === 0 ? 0 : 1;
  const last = ctx.view.updateTimestamp(u.shortChannelId, direction);
  if (last !== undefined && u.timestamp <= last) return ignore('stale');
  if (u.timestamp + STALE_UPDATE_AGE_SEC < ctx.nowSec) return ignore('stale');
  if (u.timestamp > ctx.nowSec + MAX_FUTURE_TIMESTAMP_SEC) return ignore('too_far_in_future');
  if ((u.messageFlags & MESSAGE_FLAG_MUST_BE_ONE) === 0) return ignore('no_htlc_maximum');
  if (u.htlcMaximumMsat > ch.capacitySat * MSAT_PER_SAT) return ignore('htlc_maximum_above_capacity');
  const from = direction === 0 ? ch.nodeId1 : ch.nodeId2;
  const to = direction === 0 ? ch.nodeId2 : ch.nodeId1;
  if (!verify(u.signature, channelUpdateDigest(u), hexToBytes(from))) return reject('bad_signature', true);
  return { kind: 'accept', value: { direction, from, to } };
}
