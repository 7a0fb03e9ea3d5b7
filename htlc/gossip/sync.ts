/**
 * Gossip sync with one peer, lnd's way (its GossipSyncer), as a pure state machine: `syncStep(state, input, graph)`
 * returns the next state and the messages to send; the caller sends them, applies the gossip the peer sends to the
 * graph (graph.ts), and feeds the queries and replies here. Time comes in with the input.
 *
 * As the initiator, when both sides support gossip_queries (feature 6/7):
 *   connected          → query_channel_range over the whole chain (first block 0, 2^32 − 1 blocks), timestamps asked;
 *   reply_channel_range… → collect the ids until a reply reaches the end of the range we asked (its sync_complete
 *                        says whether the peer knows the whole chain; we go on either way);
 *   query_short_channel_ids for what we lack (or hold older updates of), `batchSize` at a time, each answered by the
 *                        peer's gossip and a reply_short_channel_ids_end before the next;
 *   synced             → gossip_timestamp_filter from now on, so the peer relays new gossip to us.
 * A peer that stops answering for `stallTimeoutSec` is given up on (we go to synced). A peer without
 * gossip_queries sends what it has unasked: nothing to query.
 *
 * As the responder: query_channel_range is answered from the graph in replies of at most MAX_REPLY_IDS ids that
 * cover the asked range; query_short_channel_ids with each channel's announcement and updates, then the node
 * announcements of its ends, then reply_short_channel_ids_end; gossip_timestamp_filter is remembered (the relay
 * queue reads it: nothing is relayed to a gossip_queries peer before it sends one) and answered with what the graph
 * holds in its time range.
 */
import { equalBytes } from '../../wire/bytes.js';
import { Feature, FeatureVector } from '../../wire/features.js';
import {
  QUERY_FLAG_CHANNEL_ANNOUNCEMENT,
  QUERY_FLAG_CHANNEL_UPDATE_NODE_1,
  QUERY_FLAG_CHANNEL_UPDATE_NODE_2,
  QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_1,
  QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_2,
  QUERY_OPTION_TIMESTAMPS,
  shortChannelIdParts,
  type ChannelAnnouncement,
  type ChannelPair,
  type ChannelUpdate,
  type GossipMessage,
  type GossipTimestampFilter,
  type NodeAnnouncement,
  type QueryChannelRange,
  type QueryShortChannelIds,
  type ReplyChannelRange,
} from '../../wire/gossip.js';
import type { NodeIdHex } from '../router/interfaces.js';
import type { Direction } from './validate.js';

/** The most blocks a u32 range can say: a query over "the whole chain". */
export const WHOLE_CHAIN_BLOCKS = 0xffffffff;
/** Ids per reply_channel_range: 8 bytes each, 16 with timestamps, within a message's 65 535 bytes. */
export const MAX_REPLY_IDS = 8000;
export const MAX_REPLY_IDS_WITH_TIMESTAMPS = 3500;
/** Ids per query_short_channel_ids we send (lnd queries in chunks of this order). */
export const DEFAULT_QUERY_BATCH_SIZE = 500;
/** Ids we collect from one peer's replies at most: a peer cannot make us hold more. */
export const MAX_COLLECTED_IDS = 1_000_000;
export const DEFAULT_STALL_TIMEOUT_SEC = 300;
/**
 * Range replies we take from one peer for one query at most: the whole chain in replies of one block each would be
 * far fewer for any real chain, so a peer that sends more is stalling us (we give up and go to synced).
 */
export const MAX_RANGE_REPLIES = 100_000;
const U32_END = 0x1_0000_0000;

/** What sync reads of the graph (GossipGraph has it all). */
export interface SyncGraphView {
  channel(scid: bigint): { nodeId1: NodeIdHex; nodeId2: NodeIdHex } | undefined;
  updateTimestamp(scid: bigint, d: Direction): number | undefined;
  shortChannelIdsInBlocks(firstBlock: number, numberOfBlocks: number): bigint[];
  channelMessages(scid: bigint): (ChannelAnnouncement | ChannelUpdate)[];
  nodeAnnouncement(node: NodeIdHex): NodeAnnouncement | undefined;
  messagesInTimeRange(firstTimestamp: number, timestampRange: number): (ChannelAnnouncement | ChannelUpdate | NodeAnnouncement)[];
}

export interface SyncConfig {
  chainHash: Uint8Array;
  batchSize: number;
  stallTimeoutSec: number;
}

export type SyncPhase = 'idle' | 'awaiting_range' | 'querying' | 'synced';

export interface SyncState {
  phase: SyncPhase;
  /** Both sides support gossip_queries. */
  queries: boolean;
  /** The range we asked for (awaiting_range). */
  range?: { first: number; end: number };
  /** Ids to ask for, in order; the next batch is taken from the front. */
  wanted: bigint[];
  /** Ids seen in the peer's replies so far (awaiting_range). */
  collected: number;
  /** Replies to our range query so far, and the first block of the last one (they may not go backwards). */
  replies?: number;
  lastReplyFirst?: number;
  /** A query_short_channel_ids is out and its reply_short_channel_ids_end not yet in. */
  inFlight: boolean;
  /** The last time the peer answered us (or we started). */
  lastProgressSec: number;
  /** What the peer asked us to relay (its gossip_timestamp_filter). */
  remoteFilter?: { firstTimestamp: number; timestampRange: number };
  /** The peer's sync_complete: 0 when it said it does not know the whole chain. */
  remoteComplete?: boolean;
}

/** A wire message as sync sees it (the gossip union; a channel_update with or without its type tag). */
export type SyncMessage = GossipMessage | ChannelUpdate;

export type SyncInput =
  | { kind: 'connected'; remoteFeatures: Uint8Array; localFeatures: Uint8Array; nowSec: number }
  | { kind: 'message'; message: SyncMessage; nowSec: number }
  | { kind: 'tick'; nowSec: number };

export interface SyncResult {
  state: SyncState;
  send: SyncMessage[];
}

export function initialSyncState(): SyncState {
  return { phase: 'idle', queries: false, wanted: [], collected: 0, inFlight: false, lastProgressSec: 0 };
}

export function defaultSyncConfig(chainHash: Uint8Array): SyncConfig {
  return { chainHash, batchSize: DEFAULT_QUERY_BATCH_SIZE, stallTimeoutSec: DEFAULT_STALL_TIMEOUT_SEC };
}

/** Whether a feature vector offers gossip_queries (either bit of 6/7). */
export function supportsGossipQueries(features: Uint8Array): boolean {
  return FeatureVector.decode(features).supports(Feature.GossipQueries);
}

export function syncStep(state: SyncState, input: SyncInput, graph: SyncGraphView, config: SyncConfig): SyncResult {
  switch (input.kind) {
    case 'connected':
      return onConnected(input.remoteFeatures, input.localFeatures, input.nowSec, config);
    case 'tick':
      if ((state.phase === 'awaiting_range' || state.phase === 'querying') && input.nowSec - state.lastProgressSec > config.stallTimeoutSec)
        return toSynced(state, input.nowSec, config);
      return { state, send: [] };
    case 'message':
      return onMessage(state, input.message, input.nowSec, graph, config);
  }
}

function onConnected(remote: Uint8Array, local: Uint8Array, nowSec: number, config: SyncConfig): SyncResult {
  const queries = supportsGossipQueries(remote) && supportsGossipQueries(local);
  const state: SyncState = { ...initialSyncState(), queries, lastProgressSec: nowSec };
  if (!queries) return { state: { ...state, phase: 'synced' }, send: [] };
  const query: QueryChannelRange = {
    type: 263,
    chainHash: config.chainHash,
    firstBlocknum: 0,
    numberOfBlocks: WHOLE_CHAIN_BLOCKS,
    queryOption: BigInt(QUERY_OPTION_TIMESTAMPS),
  };
  return { state: { ...state, phase: 'awaiting_range', range: { first: 0, end: WHOLE_CHAIN_BLOCKS } }, send: [query] };
}

function toSynced(state: SyncState, nowSec: number, config: SyncConfig): SyncResult {
  const filter: GossipTimestampFilter = { type: 265, chainHash: config.chainHash, firstTimestamp: nowSec, timestampRange: 0xffffffff };
  const { range: _range, replies: _replies, lastReplyFirst: _last, ...rest } = state;
  return { state: { ...rest, phase: 'synced', wanted: [], inFlight: false }, send: state.queries ? [filter] : [] };
}

function nextBatch(state: SyncState, nowSec: number, config: SyncConfig): SyncResult {
  if (state.wanted.length === 0) return toSynced(state, nowSec, config);
  const batch = state.wanted.slice(0, config.batchSize);
  const query: QueryShortChannelIds = { type: 261, chainHash: config.chainHash, shortChannelIds: batch };
  return {
    state: { ...state, phase: 'querying', wanted: state.wanted.slice(batch.length), inFlight: true, lastProgressSec: nowSec },
    send: [query],
  };
}

function messageType(m: SyncMessage): number {
  return 'type' in m ? m.type : 258;
}

function onMessage(state: SyncState, m: SyncMessage, nowSec: number, graph: SyncGraphView, config: SyncConfig): SyncResult {
  switch (messageType(m)) {
    case 264:
      return onReplyChannelRange(state, m as ReplyChannelRange, nowSec, graph, config);
    case 262:
      if (state.phase !== 'querying' || !state.inFlight) return { state, send: [] };
      return nextBatch({ ...state, inFlight: false }, nowSec, config);
    case 263:
      return { state, send: answerChannelRange(m as QueryChannelRange, graph, config) };
    case 261:
      return { state, send: answerShortChannelIds(m as QueryShortChannelIds, graph, config) };
    case 265: {
      const f = m as GossipTimestampFilter;
      if (!equalBytes(f.chainHash, config.chainHash)) return { state, send: [] };
      const remoteFilter = { firstTimestamp: f.firstTimestamp, timestampRange: f.timestampRange };
      return { state: { ...state, remoteFilter }, send: graph.messagesInTimeRange(f.firstTimestamp, f.timestampRange) };
    }
    default:
      if (state.phase === 'querying' || state.phase === 'awaiting_range') return { state: { ...state, lastProgressSec: nowSec }, send: [] };
      return { state, send: [] };
  }
}

function onReplyChannelRange(state: SyncState, r: ReplyChannelRange, nowSec: number, graph: SyncGraphView, config: SyncConfig): SyncResult {
  if (state.phase !== 'awaiting_range' || state.range === undefined) return { state, send: [] };
  if (!equalBytes(r.chainHash, config.chainHash)) return toSynced(state, nowSec, config);
  // BOLT 7: each reply starts at or after the one before; and a peer may not keep us here with replies forever
  const replies = (state.replies ?? 0) + 1;
  if (r.firstBlocknum < (state.lastReplyFirst ?? 0) || replies > MAX_RANGE_REPLIES) return toSynced(state, nowSec, config);
  const wanted = [...state.wanted];
  let collected = state.collected;
  r.shortChannelIds.forEach((scid, i) => {
    if (collected >= MAX_COLLECTED_IDS) return;
    collected++;
    if (needs(scid, r.timestamps?.[i], graph)) wanted.push(scid);
  });
  const next: SyncState = {
    ...state,
    wanted,
    collected,
    replies,
    lastReplyFirst: r.firstBlocknum,
    lastProgressSec: nowSec,
    remoteComplete: r.syncComplete !== 0,
  };
  const replyEnd = Math.min(r.firstBlocknum + r.numberOfBlocks, U32_END - 1);
  if (replyEnd < state.range.end) return { state: next, send: [] };
  // the whole range is answered: ask for what we lack, in block order
  const unique = [...new Set(wanted)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const { range: _range, replies: _replies, lastReplyFirst: _last, ...rest } = next;
  return nextBatch({ ...rest, wanted: unique, collected: 0 }, nowSec, config);
}

/** A channel we do not hold, or one whose update in some direction the peer has newer than ours. */
function needs(scid: bigint, ts: ChannelPair | undefined, graph: SyncGraphView): boolean {
  if (graph.channel(scid) === undefined) return true;
  if (ts === undefined) return false;
  const newer = (d: Direction, t: number): boolean => t > 0 && t > (graph.updateTimestamp(scid, d) ?? 0);
  return newer(0, ts.node1) || newer(1, ts.node2);
}

/** Replies covering the asked range: ids in block order, at most MAX_REPLY_IDS(_WITH_TIMESTAMPS) each. */
export function answerChannelRange(q: QueryChannelRange, graph: SyncGraphView, config: SyncConfig): ReplyChannelRange[] {
  const end = Math.min(q.firstBlocknum + q.numberOfBlocks, U32_END - 1);
  const base = { type: 264 as const, chainHash: q.chainHash };
  if (!equalBytes(q.chainHash, config.chainHash))
    return [{ ...base, firstBlocknum: q.firstBlocknum, numberOfBlocks: q.numberOfBlocks, syncComplete: 0, shortChannelIds: [] }];
  const withTimestamps = q.queryOption !== undefined && (q.queryOption & BigInt(QUERY_OPTION_TIMESTAMPS)) !== 0n;
  const per = withTimestamps ? MAX_REPLY_IDS_WITH_TIMESTAMPS : MAX_REPLY_IDS;
  const ids = graph.shortChannelIdsInBlocks(q.firstBlocknum, end - q.firstBlocknum);
  const out: ReplyChannelRange[] = [];
  let first = q.firstBlocknum;
  for (let i = 0; i === 0 || i < ids.length; i += per) {
    const chunk = ids.slice(i, i + per);
    const last = i + per >= ids.length;
    const chunkEnd = last ? end : shortChannelIdParts(chunk[chunk.length - 1]!).blockHeight + 1;
    const reply: ReplyChannelRange = {
      ...base,
      firstBlocknum: first,
      numberOfBlocks: chunkEnd - first,
      syncComplete: 1,
      shortChannelIds: chunk,
    };
    if (withTimestamps)
      reply.timestamps = chunk.map((s) => ({ node1: graph.updateTimestamp(s, 0) ?? 0, node2: graph.updateTimestamp(s, 1) ?? 0 }));
    out.push(reply);
    // the next reply starts where this one's last block is (a block's ids may run over two replies)
    if (!last) first = shortChannelIdParts(ids[i + per]!).blockHeight;
    if (ids.length === 0) break;
  }
  return out;
}

/** Each asked channel's announcement and updates (as its query flags say), the node announcements, then the end. */
export function answerShortChannelIds(q: QueryShortChannelIds, graph: SyncGraphView, config: SyncConfig): SyncMessage[] {
  const endMsg = (full: number): SyncMessage => ({ type: 262, chainHash: q.chainHash, fullInformation: full });
  if (!equalBytes(q.chainHash, config.chainHash)) return [endMsg(0)];
  const all = BigInt(
    QUERY_FLAG_CHANNEL_ANNOUNCEMENT |
      QUERY_FLAG_CHANNEL_UPDATE_NODE_1 |
      QUERY_FLAG_CHANNEL_UPDATE_NODE_2 |
      QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_1 |
      QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_2,
  );
  const has = (flags: bigint, bit: number): boolean => (flags & BigInt(bit)) !== 0n;
  const out: SyncMessage[] = [];
  const nodes: NodeIdHex[] = [];
  const seenNodes = new Set<NodeIdHex>();
  q.shortChannelIds.forEach((scid, i) => {
    const ch = graph.channel(scid);
    if (ch === undefined) return;
    const flags = q.queryFlags?.[i] ?? all;
    for (const m of graph.channelMessages(scid)) {
      if ('type' in m && m.type === 256) {
        if (has(flags, QUERY_FLAG_CHANNEL_ANNOUNCEMENT)) out.push(m);
      } else {
        const u = m as ChannelUpdate;
        const bit = (u.channelFlags & 1) === 0 ? QUERY_FLAG_CHANNEL_UPDATE_NODE_1 : QUERY_FLAG_CHANNEL_UPDATE_NODE_2;
        if (has(flags, bit)) out.push(u);
      }
    }
    for (const [node, bit] of [
      [ch.nodeId1, QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_1],
      [ch.nodeId2, QUERY_FLAG_NODE_ANNOUNCEMENT_NODE_2],
    ] as const) {
      if (has(flags, bit) && !seenNodes.has(node)) {
        seenNodes.add(node);
        nodes.push(node);
      }
    }
  });
  for (const n of nodes) {
    const na = graph.nodeAnnouncement(n);
    if (na !== undefined) out.push(na);
  }
  out.push(endMsg(1));
  return out;
}
