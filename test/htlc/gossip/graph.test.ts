/**
 * The gossip graph store: what is accepted is routable and stored, what is refused is not; a reload from the store
 * gives the same graph; pruning of spent channels and of updates older than two weeks; the per-peer and total
 * bounds; answering by block range and by time range; our own channels laid over the public graph.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openMemoryStore } from '../../../db/store.js';
import { combineGraphs, GossipGraph, STALE_UPDATE_AGE_SEC } from '../../../htlc/gossip/index.js';
import { ChannelGraph } from '../../../htlc/router/index.js';
import { makeShortChannelId } from '../../../wire/gossip.js';
import { FakeChain, makeChannel, makeNode, makeNodeAnnouncement, makeUpdate, NOW_SEC, REGTEST } from './fixtures.js';

async function setup() {
  const store = await openMemoryStore();
  const chain = new FakeChain();
  const graph = new GossipGraph(store, { chainHash: REGTEST, chain });
  const [a, b, c] = [makeNode(), makeNode(), makeNode()];
  const ab = makeChannel(a, b, makeShortChannelId(100, 1, 0), { chain, capacitySat: 500_000n });
  const bc = makeChannel(b, c, makeShortChannelId(200, 1, 0), { chain, capacitySat: 700_000n });
  return { store, chain, graph, a, b, c, ab, bc };
}

describe('GossipGraph', () => {
  it('stores what it accepts, routes over it, and loads it back', async () => {
    const { store, chain, graph, a, ab, bc } = await setup();
    assert.equal(graph.apply(ab.ann, NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.apply(bc.ann, NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.apply(makeUpdate(ab, 0, NOW_SEC - 5, { feeBaseMsat: 7 }), NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.apply(makeUpdate(ab, 1, NOW_SEC - 5), NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.apply(makeUpdate(bc, 0, NOW_SEC - 5), NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.apply(makeNodeAnnouncement(a, NOW_SEC - 1, 'alice', new Uint8Array([0x02, 0x00])), NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.channelCount, 2);
    assert.equal(graph.nodeCount, 3);
    const scid = ab.ann.shortChannelId;
    const from1 = [...graph.edgesFrom(ab.node1.hex)].filter((e) => e.shortChannelId === scid);
    assert.equal(from1.length, 1);
    assert.equal(from1[0]!.capacitySat, 500_000n);
    assert.equal(from1[0]!.policy.feeBaseMsat, 7n);
    assert.equal([...graph.edgesTo(ab.node1.hex)].filter((e) => e.shortChannelId === scid).length, 1);
    assert.deepEqual(graph.nodeFeatures(a.hex), new Uint8Array([0x02, 0x00]));
    await graph.flush();
    assert.equal(graph.pendingWrites, 0);
    const loaded = await GossipGraph.load(store, { chainHash: REGTEST, chain });
    assert.equal(loaded.channelCount, 2);
    assert.equal(loaded.nodeAnnouncementCount, 1);
    assert.deepEqual(
      [...loaded.edgesFrom(ab.node1.hex)].filter((e) => e.shortChannelId === scid),
      from1,
    );
    assert.deepEqual(loaded.channelMessages(ab.ann.shortChannelId), graph.channelMessages(ab.ann.shortChannelId));
    assert.equal(loaded.updateTimestamp(ab.ann.shortChannelId, 1), NOW_SEC - 5);
  });
  it('never stores what it refuses', async () => {
    const { store, chain, graph, a, b, ab } = await setup();
    const forged = { ...ab.ann, bitcoinSignature2: ab.ann.bitcoinSignature1 };
    assert.equal(graph.apply(forged, NOW_SEC, 'p').kind, 'reject');
    const noFunding = makeChannel(a, b, 999n);
    assert.equal(graph.apply(noFunding.ann, NOW_SEC, 'p').kind, 'ignore');
    assert.equal(graph.apply(makeNodeAnnouncement(a, NOW_SEC), NOW_SEC, 'p').kind, 'ignore');
    assert.equal(graph.apply(makeUpdate(ab, 0, NOW_SEC), NOW_SEC, 'p').kind, 'ignore');
    assert.equal(graph.channelCount, 0);
    assert.equal(graph.pendingWrites, 0);
    await graph.flush();
    assert.equal((await GossipGraph.load(store, { chainHash: REGTEST, chain })).channelCount, 0);
  });
  it('an update before its announcement is kept and applied when the announcement comes', async () => {
    const { graph, ab } = await setup();
    const u1 = makeUpdate(ab, 1, NOW_SEC - 5);
    const u0 = makeUpdate(ab, 0, NOW_SEC - 5);
    assert.deepEqual(graph.apply(u1, NOW_SEC, 'p'), { kind: 'ignore', reason: 'unknown_channel' });
    assert.deepEqual(graph.apply({ ...u0, feeBaseMsat: 99 }, NOW_SEC, 'p'), { kind: 'ignore', reason: 'unknown_channel' });
    assert.deepEqual(graph.apply(u0, NOW_SEC), { kind: 'ignore', reason: 'unknown_channel' }, 'our own: not kept');
    assert.equal(graph.apply(ab.ann, NOW_SEC, 'p').kind, 'accept');
    // the forged one (fee changed after signing) is refused on replay; the good one applied and handed out
    assert.deepEqual(graph.takeReplayed(), [u1]);
    assert.deepEqual(graph.takeReplayed(), []);
    assert.equal(graph.updateTimestamp(ab.ann.shortChannelId, 1), NOW_SEC - 5);
    assert.equal(graph.updateTimestamp(ab.ann.shortChannelId, 0), undefined);
  });
  it('a newer update replaces the older; equal and older are ignored', async () => {
    const { graph, ab } = await setup();
    graph.apply(ab.ann, NOW_SEC);
    assert.equal(graph.apply(makeUpdate(ab, 0, NOW_SEC - 10, { feeBaseMsat: 1 }), NOW_SEC).kind, 'accept');
    assert.equal(graph.apply(makeUpdate(ab, 0, NOW_SEC - 5, { feeBaseMsat: 2 }), NOW_SEC).kind, 'accept');
    assert.deepEqual(graph.apply(makeUpdate(ab, 0, NOW_SEC - 5, { feeBaseMsat: 3 }), NOW_SEC), { kind: 'ignore', reason: 'stale' });
    assert.deepEqual(graph.apply(makeUpdate(ab, 0, NOW_SEC - 6, { feeBaseMsat: 4 }), NOW_SEC), { kind: 'ignore', reason: 'stale' });
    assert.equal(graph.channel(ab.ann.shortChannelId)!.updates[0]!.feeBaseMsat, 2);
    assert.equal([...graph.edgesFrom(ab.node1.hex)].find((e) => e.shortChannelId === ab.ann.shortChannelId)!.policy.feeBaseMsat, 2n);
  });
  it('prunes spent channels (with their nodes) and updates older than two weeks', async () => {
    const { store, chain, graph, a, ab, bc } = await setup();
    for (const m of [ab.ann, bc.ann, makeUpdate(ab, 0, NOW_SEC), makeUpdate(bc, 0, NOW_SEC - 100), makeNodeAnnouncement(a, NOW_SEC)])
      graph.apply(m, NOW_SEC);
    chain.spend(ab.ann.shortChannelId);
    assert.deepEqual(graph.pruneSpent(), [ab.ann.shortChannelId]);
    assert.equal(graph.channelCount, 1);
    assert.equal(graph.nodeAnnouncement(a.hex), undefined, 'a node with no channel left goes too');
    assert.equal(graph.hasChannels(a.hex), false);
    assert.deepEqual(graph.pruneStale(NOW_SEC + STALE_UPDATE_AGE_SEC - 200), []);
    assert.equal([...graph.edgesFrom(bc.node1.hex)].length, 1, 'bc only: ab is gone');
    assert.deepEqual(graph.pruneStale(NOW_SEC + STALE_UPDATE_AGE_SEC), [bc.ann.shortChannelId]);
    assert.equal(graph.channelCount, 0);
    assert.equal([...graph.edgesFrom(bc.node1.hex)].length, 0);
    await graph.flush();
    assert.equal((await GossipGraph.load(store, { chainHash: REGTEST, chain })).channelCount, 0);
    assert.equal(graph.channelSpent(1n), false);
  });
  it('bounds what a peer can add per interval, and the total', async () => {
    const store = await openMemoryStore();
    const chain = new FakeChain();
    const graph = new GossipGraph(store, { chainHash: REGTEST, chain, maxNewPerPeerPerInterval: 2, rateIntervalSec: 60, maxChannels: 3 });
    const n = [makeNode(), makeNode()];
    const chans = [1n, 2n, 3n, 4n, 5n].map((s) => makeChannel(n[0]!, n[1]!, s, { chain }));
    assert.equal(graph.apply(chans[0]!.ann, NOW_SEC, 'p').kind, 'accept');
    assert.equal(graph.apply(chans[1]!.ann, NOW_SEC, 'p').kind, 'accept');
    assert.deepEqual(graph.apply(chans[2]!.ann, NOW_SEC, 'p'), { kind: 'ignore', reason: 'rate_limited' });
    assert.equal(graph.apply(chans[2]!.ann, NOW_SEC, 'q').kind, 'accept', 'another peer has its own allowance');
    assert.deepEqual(graph.apply(chans[3]!.ann, NOW_SEC + 60, 'p'), { kind: 'ignore', reason: 'graph_full' });
    assert.equal(graph.channelCount, 3);
  });
  it('answers by block range and by time range, announcements before their updates', async () => {
    const { graph, a, ab, bc } = await setup();
    for (const m of [
      ab.ann,
      bc.ann,
      makeUpdate(ab, 0, NOW_SEC - 50),
      makeUpdate(bc, 1, NOW_SEC - 10),
      makeNodeAnnouncement(a, NOW_SEC - 20),
    ])
      graph.apply(m, NOW_SEC);
    assert.deepEqual(graph.shortChannelIdsInBlocks(0, 150), [ab.ann.shortChannelId]);
    assert.deepEqual(graph.shortChannelIdsInBlocks(100, 101), [ab.ann.shortChannelId, bc.ann.shortChannelId]);
    const msgs = graph.messagesInTimeRange(NOW_SEC - 30, 100);
    assert.equal(msgs.length, 3);
    assert.equal((msgs[0] as { type: number }).type, 256);
    assert.equal((msgs[1] as { shortChannelId: bigint }).shortChannelId, bc.ann.shortChannelId);
    assert.equal((msgs[2] as { type: number }).type, 257);
  });
  it('combineGraphs: our channels exact, the public graph for the rest', async () => {
    const { graph, a, b, ab, bc } = await setup();
    for (const m of [
      ab.ann,
      bc.ann,
      makeUpdate(ab, 0, NOW_SEC),
      makeUpdate(ab, 1, NOW_SEC),
      makeUpdate(bc, 0, NOW_SEC),
      makeUpdate(bc, 1, NOW_SEC),
    ])
      graph.apply(m, NOW_SEC);
    // a is ours: a–b is our channel, b–c a public one
    const local = new ChannelGraph();
    local.addEdge({
      shortChannelId: ab.ann.shortChannelId,
      from: a.hex,
      to: b.hex,
      capacitySat: 500_000n,
      policy: { feeBaseMsat: 0n, feeProportionalMillionths: 0n, cltvExpiryDelta: 40, htlcMinimumMsat: 0n },
      localBalanceMsat: 123n,
    });
    const g = combineGraphs(local, graph, a.hex);
    const out = [...g.edgesFrom(a.hex)];
    assert.equal(out.length, 1);
    assert.equal(out[0]!.localBalanceMsat, 123n, 'the local copy, not the public one');
    // the public direction from b to a is kept (the local graph has not got it); b's edges: to a and to c
    assert.equal([...g.edgesTo(a.hex)].length, 1);
    assert.equal([...g.edgesFrom(b.hex)].length, 2);
    assert.equal([...g.edgesTo(b.hex)].filter((e) => e.from === a.hex && e.localBalanceMsat === 123n).length, 1);
  });
});
