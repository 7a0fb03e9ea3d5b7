/**
 * The per-peer sync machine and the relay queue: the range query at connect, replies collected until the range is
 * covered, queries in batches for what we lack, then the timestamp filter; answers to a peer's range query cover the
 * range in chunks; answers to id queries follow the query flags; a silent peer is given up on; no gossip_queries, no
 * queries. The relay queue dedupes, orders, filters, skips the sender and rate-limits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openMemoryStore } from '../../../db/store.js';
import {
  answerChannelRange,
  answerShortChannelIds,
  defaultSyncConfig,
  GossipGraph,
  initialSyncState,
  MAX_REPLY_IDS,
  RelayQueue,
  syncStep,
  WHOLE_CHAIN_BLOCKS,
  type SyncMessage,
  type SyncState,
} from '../../../htlc/gossip/index.js';
import { FeatureVector } from '../../../wire/features.js';
import { makeShortChannelId, QUERY_FLAG_CHANNEL_UPDATE_NODE_2, shortChannelIdParts, type ReplyChannelRange } from '../../../wire/gossip.js';
import { FakeChain, makeChannel, makeNode, makeNodeAnnouncement, makeUpdate, NOW_SEC, REGTEST } from './fixtures.js';

const QUERIES = FeatureVector.fromBits([7]).encode();
const config = { ...defaultSyncConfig(REGTEST), batchSize: 2 };
const typeOf = (m: SyncMessage): number => ('type' in m ? m.type : 258);

async function graphWith(n: number, chain = new FakeChain()) {
  const graph = new GossipGraph(await openMemoryStore(), { chainHash: REGTEST, chain });
  const a = makeNode();
  const b = makeNode();
  const chans = [];
  for (let i = 0; i < n; i++) {
    const ch = makeChannel(a, b, makeShortChannelId(100 + i, 0, 0), { chain });
    graph.apply(ch.ann, NOW_SEC);
    graph.apply(makeUpdate(ch, 0, NOW_SEC - 10), NOW_SEC);
    chans.push(ch);
  }
  graph.apply(makeNodeAnnouncement(a, NOW_SEC - 5), NOW_SEC);
  return { graph, chain, a, b, chans };
}

describe('sync machine', () => {
  it('range query at connect, batches of id queries, then the timestamp filter', async () => {
    const { graph: theirs, chain } = await graphWith(5);
    const { graph: ours } = await graphWith(0, chain);
    let s: SyncState = initialSyncState();
    let r = syncStep(s, { kind: 'connected', remoteFeatures: QUERIES, localFeatures: QUERIES, nowSec: NOW_SEC }, ours, config);
    assert.equal(r.state.phase, 'awaiting_range');
    assert.deepEqual(r.send, [{ type: 263, chainHash: REGTEST, firstBlocknum: 0, numberOfBlocks: WHOLE_CHAIN_BLOCKS, queryOption: 1n }]);
    const replies = answerChannelRange(r.send[0] as never, theirs, config);
    s = r.state;
    for (const rep of replies) {
      r = syncStep(s, { kind: 'message', message: rep, nowSec: NOW_SEC }, ours, config);
      s = r.state;
    }
    assert.equal(s.phase, 'querying');
    const asked: bigint[] = [];
    while (s.phase === 'querying') {
      assert.equal(r.send.length, 1);
      const q = r.send[0]!;
      assert.equal(typeOf(q), 261);
      const ids = (q as { shortChannelIds: bigint[] }).shortChannelIds;
      assert.ok(ids.length <= 2);
      asked.push(...ids);
      for (const m of answerShortChannelIds(q as never, theirs, config)) {
        if (typeOf(m) !== 262) ours.apply(m as never, NOW_SEC, 'p');
        r = syncStep(s, { kind: 'message', message: m, nowSec: NOW_SEC }, ours, config);
        s = r.state;
      }
    }
    assert.equal(asked.length, 5);
    assert.equal(s.phase, 'synced');
    assert.deepEqual(r.send, [{ type: 265, chainHash: REGTEST, firstTimestamp: NOW_SEC, timestampRange: 0xffffffff }]);
    assert.equal(ours.channelCount, 5);
    assert.equal(ours.nodeAnnouncementCount, 1);
  });
  it('asks only for what it lacks or holds older updates of', async () => {
    const { graph, chans } = await graphWith(3);
    const s0 = syncStep(
      initialSyncState(),
      { kind: 'connected', remoteFeatures: QUERIES, localFeatures: QUERIES, nowSec: NOW_SEC },
      graph,
      config,
    );
    const ids = [...chans.map((c) => c.ann.shortChannelId), makeShortChannelId(500, 0, 0)];
    const reply: ReplyChannelRange = {
      type: 264,
      chainHash: REGTEST,
      firstBlocknum: 0,
      numberOfBlocks: WHOLE_CHAIN_BLOCKS,
      syncComplete: 1,
      shortChannelIds: ids,
      timestamps: [
        { node1: NOW_SEC - 10, node2: 0 },
        { node1: NOW_SEC - 9, node2: 0 },
        { node1: 0, node2: NOW_SEC },
        { node1: 0, node2: 0 },
      ],
    };
    const r = syncStep(s0.state, { kind: 'message', message: reply, nowSec: NOW_SEC }, graph, { ...config, batchSize: 10 });
    assert.deepEqual((r.send[0] as { shortChannelIds: bigint[] }).shortChannelIds, ids.slice(1));
  });
  it('without gossip_queries on both sides there is nothing to query; a silent peer is given up on', async () => {
    const { graph } = await graphWith(0);
    const r = syncStep(
      initialSyncState(),
      { kind: 'connected', remoteFeatures: new Uint8Array(), localFeatures: QUERIES, nowSec: 1 },
      graph,
      config,
    );
    assert.equal(r.state.phase, 'synced');
    assert.deepEqual(r.send, []);
    const q = syncStep(
      initialSyncState(),
      { kind: 'connected', remoteFeatures: QUERIES, localFeatures: QUERIES, nowSec: 1 },
      graph,
      config,
    );
    assert.equal(syncStep(q.state, { kind: 'tick', nowSec: 100 }, graph, config).state.phase, 'awaiting_range');
    const t = syncStep(q.state, { kind: 'tick', nowSec: 1 + config.stallTimeoutSec + 1 }, graph, config);
    assert.equal(t.state.phase, 'synced');
    assert.equal(typeOf(t.send[0]!), 265);
  });
  it('replies that go backwards, or of another chain, end the range sync', async () => {
    const { graph } = await graphWith(0);
    const q = syncStep(
      initialSyncState(),
      { kind: 'connected', remoteFeatures: QUERIES, localFeatures: QUERIES, nowSec: 1 },
      graph,
      config,
    );
    const reply = (first: number, num: number, ids: bigint[] = []): ReplyChannelRange => ({
      type: 264,
      chainHash: REGTEST,
      firstBlocknum: first,
      numberOfBlocks: num,
      syncComplete: 1,
      shortChannelIds: ids,
    });
    const r1 = syncStep(q.state, { kind: 'message', message: reply(100, 50, [makeShortChannelId(120, 0, 0)]), nowSec: 2 }, graph, config);
    assert.equal(r1.state.phase, 'awaiting_range');
    assert.equal(r1.state.wanted.length, 1);
    const back = syncStep(r1.state, { kind: 'message', message: reply(50, 10), nowSec: 3 }, graph, config);
    assert.equal(back.state.phase, 'synced');
    assert.deepEqual(back.send.map(typeOf), [265]);
    const other = syncStep(
      r1.state,
      { kind: 'message', message: { ...reply(150, 10), chainHash: new Uint8Array(32) }, nowSec: 3 },
      graph,
      config,
    );
    assert.equal(other.state.phase, 'synced');
    // a reply that reaches the end of the range asks for what was collected
    const end = syncStep(r1.state, { kind: 'message', message: reply(150, WHOLE_CHAIN_BLOCKS - 150), nowSec: 3 }, graph, config);
    assert.equal(end.state.phase, 'querying');
    assert.deepEqual((end.send[0] as { shortChannelIds: bigint[] }).shortChannelIds, [makeShortChannelId(120, 0, 0)]);
  });
  it('a gossip_timestamp_filter is remembered and answered from the graph', async () => {
    const { graph } = await graphWith(2);
    const r = syncStep(
      initialSyncState(),
      { kind: 'message', message: { type: 265, chainHash: REGTEST, firstTimestamp: NOW_SEC - 100, timestampRange: 1000 }, nowSec: NOW_SEC },
      graph,
      config,
    );
    assert.deepEqual(r.state.remoteFilter, { firstTimestamp: NOW_SEC - 100, timestampRange: 1000 });
    assert.deepEqual(r.send.map(typeOf), [256, 258, 256, 258, 257]);
  });
});

describe('answering queries', () => {
  it('range replies cover the asked range in chunks, in order', async () => {
    const ids = Array.from({ length: MAX_REPLY_IDS + 10 }, (_, i) => makeShortChannelId(1000 + Math.floor(i / 3), i % 3, 0));
    const view = {
      channel: () => undefined,
      updateTimestamp: () => undefined,
      shortChannelIdsInBlocks: (f: number, n: number) =>
        ids.filter((s) => shortChannelIdParts(s).blockHeight >= f && shortChannelIdParts(s).blockHeight < f + n),
      channelMessages: () => [],
      nodeAnnouncement: () => undefined,
      messagesInTimeRange: () => [],
    };
    const replies = answerChannelRange({ type: 263, chainHash: REGTEST, firstBlocknum: 10, numberOfBlocks: 100_000 }, view, config);
    assert.equal(replies.length, 2);
    assert.equal(replies[0]!.firstBlocknum, 10);
    assert.deepEqual(
      replies.flatMap((r) => r.shortChannelIds),
      ids,
    );
    const last = replies[1]!;
    assert.equal(last.firstBlocknum + last.numberOfBlocks, 100_010);
    assert.ok(last.firstBlocknum >= replies[0]!.firstBlocknum);
    const lastOfFirst = shortChannelIdParts(replies[0]!.shortChannelIds.at(-1)!).blockHeight;
    assert.ok(replies[0]!.firstBlocknum + replies[0]!.numberOfBlocks > lastOfFirst);
    const empty = answerChannelRange({ type: 263, chainHash: REGTEST, firstBlocknum: 0, numberOfBlocks: 5 }, view, config);
    assert.deepEqual(empty, [{ type: 264, chainHash: REGTEST, firstBlocknum: 0, numberOfBlocks: 5, syncComplete: 1, shortChannelIds: [] }]);
    const other = answerChannelRange({ type: 263, chainHash: new Uint8Array(32), firstBlocknum: 0, numberOfBlocks: 5 }, view, config);
    assert.equal(other[0]!.syncComplete, 0);
  });
  it('id queries follow the query flags, and end with reply_short_channel_ids_end', async () => {
    const { graph, chans } = await graphWith(1);
    const scid = chans[0]!.ann.shortChannelId;
    graph.apply(makeUpdate(chans[0]!, 1, NOW_SEC - 3), NOW_SEC);
    const full = answerShortChannelIds({ type: 261, chainHash: REGTEST, shortChannelIds: [scid, 77n] }, graph, config);
    assert.deepEqual(full.map(typeOf), [256, 258, 258, 257, 262]);
    const only = answerShortChannelIds(
      { type: 261, chainHash: REGTEST, shortChannelIds: [scid], queryFlags: [BigInt(QUERY_FLAG_CHANNEL_UPDATE_NODE_2)] },
      graph,
      config,
    );
    assert.deepEqual(only.map(typeOf), [258, 262]);
    assert.equal((only[0] as { channelFlags: number }).channelFlags & 1, 1);
  });
});

describe('relay queue', () => {
  it('dedupes, orders, skips the sender, filters and rate-limits', () => {
    const [a, x, y] = [makeNode(), makeNode(), makeNode()];
    const chans = [makeChannel(x, y, 5n), makeChannel(x, y, 6n)];
    const q = new RelayQueue({ maxPerPeerPerFlush: 3 });
    q.enqueue(makeNodeAnnouncement(a, NOW_SEC), 'p1');
    q.enqueue(makeUpdate(chans[0]!, 0, NOW_SEC - 5, { feeBaseMsat: 1 }), 'p1');
    q.enqueue(makeUpdate(chans[0]!, 0, NOW_SEC - 4, { feeBaseMsat: 2 }), 'p1');
    q.enqueue(makeUpdate(chans[0]!, 0, NOW_SEC - 6, { feeBaseMsat: 3 }), 'p1');
    q.enqueue(chans[0]!.ann, 'p1');
    q.enqueue(chans[1]!.ann, 'p2');
    assert.equal(q.queued, 4);
    const open = { queries: false };
    const filtered = { queries: true, remoteFilter: { firstTimestamp: NOW_SEC, timestampRange: 10 } };
    const out = q.flush([
      { id: 'p1', sync: open },
      { id: 'p2', sync: open },
      { id: 'p3', sync: { queries: true } },
      { id: 'p4', sync: filtered },
    ]);
    assert.deepEqual(out.get('p1')!.map(typeOf), [256]);
    const p2 = out.get('p2')!;
    assert.deepEqual(p2.map(typeOf), [256, 258, 257]);
    assert.equal((p2[1] as { feeBaseMsat: number }).feeBaseMsat, 2);
    assert.equal(out.get('p3'), undefined, 'no filter yet: nothing of others');
    assert.deepEqual(out.get('p4')!.map(typeOf), [256, 256, 257], 'the update is older than the filter');
    // p2 had 3 (the cap); nothing left over, and a second flush sends nothing new
    assert.equal(q.flush([{ id: 'p2', sync: open }]).size, 0);
    q.enqueue(makeNodeAnnouncement(x, NOW_SEC));
    assert.deepEqual(
      q
        .flush([{ id: 'p3', sync: { queries: true } }])
        .get('p3')!
        .map(typeOf),
      [257],
      'but our own, yes',
    );
    const q2 = new RelayQueue({ maxPerPeerPerFlush: 1 });
    q2.enqueue(chans[0]!.ann);
    q2.enqueue(chans[1]!.ann);
    assert.equal(q2.flush([{ id: 'p', sync: open }]).get('p')!.length, 1);
    assert.equal(q2.flush([{ id: 'p', sync: open }]).get('p')!.length, 1, 'the rest at the next flush');
  });
});
