/**
 * BOLT 7 receiving rules: a channel announcement with good signatures and its funding output is accepted with the
 * output's value as capacity; each of the four signatures forged, the output missing, spent or paying another script,
 * another chain, a duplicate are each refused with the right outcome; node announcements only for nodes with a
 * channel and only newer; channel updates checked against the node of their direction, newer only, within two weeks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  STALE_UPDATE_AGE_SEC,
  validateChannelAnnouncement,
  validateChannelUpdate,
  validateNodeAnnouncement,
  type Direction,
  type GossipView,
  type KnownChannel,
  type ValidationContext,
} from '../../../htlc/gossip/index.js';
import { FakeChain, makeChannel, makeNode, makeNodeAnnouncement, makeUpdate, NOW_SEC, REGTEST } from './fixtures.js';

class MapView implements GossipView {
  readonly channels = new Map<bigint, KnownChannel>();
  readonly updates = new Map<string, number>();
  readonly nodes = new Map<string, number>();
  channel(scid: bigint): KnownChannel | undefined {
    return this.channels.get(scid);
  }
  updateTimestamp(scid: bigint, d: Direction): number | undefined {
    return this.updates.get(`${scid}/${d}`);
  }
  nodeTimestamp(node: string): number | undefined {
    return this.nodes.get(node);
  }
  hasChannels(node: string): boolean {
    for (const c of this.channels.values()) if (c.nodeId1 === node || c.nodeId2 === node) return true;
    return false;
  }
}

function setup() {
  const chain = new FakeChain();
  const view = new MapView();
  const ctx: ValidationContext = { chainHash: REGTEST, chain, view, nowSec: NOW_SEC };
  const a = makeNode();
  const b = makeNode();
  const ch = makeChannel(a, b, 1000n, { chain, capacitySat: 250_000n });
  return { chain, view, ctx, a, b, ch };
}

const flip = (sig: Uint8Array): Uint8Array => {
  const s = sig.slice();
  s[10]! ^= 1;
  return s;
};

describe('channel_announcement validation', () => {
  it('accepts a well-signed announcement of an unspent 2-of-2 output, with its value as capacity', () => {
    const { ctx, ch } = setup();
    const r = validateChannelAnnouncement(ch.ann, ctx);
    assert.deepEqual(r, {
      kind: 'accept',
      value: { shortChannelId: 1000n, nodeId1: ch.node1.hex, nodeId2: ch.node2.hex, capacitySat: 250_000n },
    });
  });
  it('rejects each forged signature and warns the peer', () => {
    const { ctx, ch } = setup();
    for (const [field, reason] of [
      ['nodeSignature1', 'bad_node_signature'],
      ['nodeSignature2', 'bad_node_signature'],
      ['bitcoinSignature1', 'bad_bitcoin_signature'],
      ['bitcoinSignature2', 'bad_bitcoin_signature'],
    ] as const) {
      assert.deepEqual(validateChannelAnnouncement({ ...ch.ann, [field]: flip(ch.ann[field]) }, ctx), {
        kind: 'reject',
        reason,
        warnPeer: true,
      });
    }
    // a signature by the right key over other bytes
    assert.equal(validateChannelAnnouncement({ ...ch.ann, features: new Uint8Array([0x02]) }, ctx).kind, 'reject');
  });
  it('ignores an output that does not exist or is spent; rejects one paying another script', () => {
    const { ctx, chain, ch, a, b } = setup();
    const absent = makeChannel(a, b, 2000n);
    assert.deepEqual(validateChannelAnnouncement(absent.ann, ctx), { kind: 'ignore', reason: 'funding_missing' });
    chain.spend(1000n);
    assert.deepEqual(validateChannelAnnouncement(ch.ann, ctx), { kind: 'ignore', reason: 'funding_spent' });
    const other = makeChannel(a, b, 3000n, { chain });
    const mismatch = makeChannel(a, b, 3000n); // same scid, other bitcoin keys
    assert.equal(validateChannelAnnouncement(other.ann, ctx).kind, 'accept');
    assert.deepEqual(validateChannelAnnouncement(mismatch.ann, ctx), {
      kind: 'reject',
      reason: 'funding_script_mismatch',
      warnPeer: false,
    });
  });
  it('ignores another chain and a duplicate; rejects node ids out of order', () => {
    const { ctx, view, ch, a, b, chain } = setup();
    const other = makeChannel(a, b, 1000n, { chainHash: new Uint8Array(32) });
    assert.deepEqual(validateChannelAnnouncement(other.ann, ctx), { kind: 'ignore', reason: 'wrong_chain' });
    const swapped = { ...ch.ann, nodeId1: ch.ann.nodeId2, nodeId2: ch.ann.nodeId1 };
    assert.deepEqual(validateChannelAnnouncement(swapped, ctx), { kind: 'reject', reason: 'node_ids_unordered', warnPeer: true });
    view.channels.set(1000n, { nodeId1: ch.node1.hex, nodeId2: ch.node2.hex, capacitySat: 1n });
    assert.deepEqual(validateChannelAnnouncement(ch.ann, ctx), { kind: 'ignore', reason: 'duplicate' });
    const withEven = makeChannel(a, b, 4000n, { chain });
    assert.deepEqual(validateChannelAnnouncement({ ...withEven.ann, features: new Uint8Array([0x01]) }, ctx), {
      kind: 'ignore',
      reason: 'unknown_required_feature',
    });
  });
});

describe('node_announcement validation', () => {
  it('only for a node with a channel, only newer, signed by the node', () => {
    const { ctx, view, ch, a } = setup();
    const na = makeNodeAnnouncement(a, NOW_SEC - 10);
    assert.deepEqual(validateNodeAnnouncement(na, ctx), { kind: 'ignore', reason: 'unknown_node' });
    view.channels.set(1000n, { nodeId1: ch.node1.hex, nodeId2: ch.node2.hex, capacitySat: 1n });
    assert.deepEqual(validateNodeAnnouncement(na, ctx), { kind: 'accept', value: { node: a.hex } });
    assert.deepEqual(validateNodeAnnouncement({ ...na, signature: flip(na.signature) }, ctx), {
      kind: 'reject',
      reason: 'bad_signature',
      warnPeer: true,
    });
    view.nodes.set(a.hex, NOW_SEC - 10);
    assert.deepEqual(validateNodeAnnouncement(na, ctx), { kind: 'ignore', reason: 'stale' });
    assert.equal(validateNodeAnnouncement(makeNodeAnnouncement(a, NOW_SEC - 9), ctx).kind, 'accept');
    assert.deepEqual(validateNodeAnnouncement(makeNodeAnnouncement(a, NOW_SEC + 7200), ctx), {
      kind: 'ignore',
      reason: 'too_far_in_future',
    });
  });
});

describe('channel_update validation', () => {
  it('checks the signature against the node of the direction bit', () => {
    const { ctx, view, ch } = setup();
    const u0 = makeUpdate(ch, 0, NOW_SEC - 100);
    assert.deepEqual(validateChannelUpdate(u0, ctx), { kind: 'ignore', reason: 'unknown_channel' });
    view.channels.set(1000n, { nodeId1: ch.node1.hex, nodeId2: ch.node2.hex, capacitySat: 1_000_000n });
    assert.deepEqual(validateChannelUpdate(u0, ctx), { kind: 'accept', value: { direction: 0, from: ch.node1.hex, to: ch.node2.hex } });
    const u1 = makeUpdate(ch, 1, NOW_SEC - 100);
    assert.deepEqual(validateChannelUpdate(u1, ctx), { kind: 'accept', value: { direction: 1, from: ch.node2.hex, to: ch.node1.hex } });
    // node_1's signature with the direction bit of node_2
    assert.deepEqual(validateChannelUpdate({ ...u0, channelFlags: 1 }, ctx), { kind: 'reject', reason: 'bad_signature', warnPeer: true });
  });
  it('newer replaces older: equal or older is ignored, and so is one older than two weeks or from the future', () => {
    const { ctx, view, ch } = setup();
    view.channels.set(1000n, { nodeId1: ch.node1.hex, nodeId2: ch.node2.hex, capacitySat: 1_000_000n });
    view.updates.set('1000/0', NOW_SEC - 100);
    assert.deepEqual(validateChannelUpdate(makeUpdate(ch, 0, NOW_SEC - 100), ctx), { kind: 'ignore', reason: 'stale' });
    assert.deepEqual(validateChannelUpdate(makeUpdate(ch, 0, NOW_SEC - 101), ctx), { kind: 'ignore', reason: 'stale' });
    assert.equal(validateChannelUpdate(makeUpdate(ch, 0, NOW_SEC - 99), ctx).kind, 'accept');
    assert.equal(validateChannelUpdate(makeUpdate(ch, 1, NOW_SEC - 101), ctx).kind, 'accept', 'the other direction is its own');
    assert.deepEqual(validateChannelUpdate(makeUpdate(ch, 1, NOW_SEC - STALE_UPDATE_AGE_SEC - 1), ctx), {
      kind: 'ignore',
      reason: 'stale',
    });
    assert.deepEqual(validateChannelUpdate(makeUpdate(ch, 1, NOW_SEC + 7200), ctx), { kind: 'ignore', reason: 'too_far_in_future' });
  });
  it('ignores another chain, a missing htlc_maximum_msat and one above the capacity', () => {
    const { ctx, view, ch } = setup();
    view.channels.set(1000n, { nodeId1: ch.node1.hex, nodeId2: ch.node2.hex, capacitySat: 1000n });
    assert.deepEqual(validateChannelUpdate({ ...makeUpdate(ch, 0, NOW_SEC), chainHash: new Uint8Array(32) }, ctx), {
      kind: 'ignore',
      reason: 'wrong_chain',
    });
    assert.deepEqual(validateChannelUpdate({ ...makeUpdate(ch, 0, NOW_SEC), messageFlags: 0 }, ctx), {
      kind: 'ignore',
      reason: 'no_htlc_maximum',
    });
    assert.deepEqual(validateChannelUpdate(makeUpdate(ch, 0, NOW_SEC, { htlcMaximumMsat: 1_000_001n }), ctx), {
      kind: 'ignore',
      reason: 'htlc_maximum_above_capacity',
    });
    assert.equal(validateChannelUpdate(makeUpdate(ch, 0, NOW_SEC, { htlcMaximumMsat: 1_000_000n }), ctx).kind, 'accept');
  });
});
