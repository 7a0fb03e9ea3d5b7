/**
 * channel_update between channel peers (the four-node diamond, switch mode): each side sends its own once the
 * channel is usable, and keeps the peer's as the policy of the peer's direction, which routingChannels() reports
 * with what we can send now. A forged update (a signature not the peer's) and one for a channel we do not have are
 * ignored; a newer properly signed one replaces the old.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHANNEL_FLAG_DIRECTION,
  CHANNEL_UPDATE_MESSAGE_TYPE,
  channelUpdateDigest,
  encodeChannelUpdate,
  MESSAGE_FLAG_MUST_BE_ONE,
  type ChannelUpdate,
} from '../../wire/gossip.js';
import { compareBytes, concatBytes, hexToBytes, u16be } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import { maxSendableMsat } from '../../htlc/channel/machine.js';
import { DEFAULT_FORWARDING_POLICY } from '../../htlc/switch/interfaces.js';
import { NETWORKS } from '../../node/network.js';
import { teardown, until, type TestNode } from './channels-fixture.js';
import { buildDiamond, scidOf, type Diamond } from './switch-fixture.js';

describe('channel_update between channel peers', () => {
  let g: Diamond;
  before(async () => {
    g = await buildDiamond();
  });
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  const policyAt = (n: TestNode, scid: bigint) => n.manager.routingChannels().find((c) => c.shortChannelId === scid)?.peerPolicy;

  /** An update for `scid` in `from`'s direction, signed with `key`. */
  const update = (from: TestNode, to: TestNode, scid: bigint, feeBaseMsat: number, timestamp: number, key: Uint8Array): Uint8Array => {
    const dir = compareBytes(hexToBytes(from.id), hexToBytes(to.id)) < 0 ? 0 : CHANNEL_FLAG_DIRECTION;
    const u: ChannelUpdate = {
      signature: new Uint8Array(64),
      chainHash: NETWORKS.regtest.chainHash,
      shortChannelId: scid,
      timestamp,
      messageFlags: MESSAGE_FLAG_MUST_BE_ONE,
      channelFlags: dir,
      cltvExpiryDelta: 144,
      htlcMinimumMsat: 1000n,
      feeBaseMsat,
      feeProportionalMillionths: 10,
      htlcMaximumMsat: 1_000_000_000n,
    };
    u.signature = secp.sign(channelUpdateDigest(u), key);
    return concatBytes(u16be(CHANNEL_UPDATE_MESSAGE_TYPE), encodeChannelUpdate(u));
  };

  it("every node holds its peers' policies, with what it can send on each channel", async () => {
    const ends: [TestNode, TestNode, string][] = [
      [g.a, g.b, g.ab.channelId],
      [g.b, g.a, g.ab.channelId],
      [g.a, g.c, g.ac.channelId],
      [g.b, g.d, g.bd.channelId],
      [g.d, g.b, g.bd.channelId],
      [g.d, g.c, g.cd.channelId],
    ];
    await until(() => ends.every(([n, , id]) => policyAt(n, scidOf(n, id)) !== undefined), "peers' channel_updates received");
    for (const [n, peer, id] of ends) {
      const rc = n.manager.routingChannels().find((c) => c.channelId === id)!;
      assert.equal(rc.peer, peer.id);
      assert.equal(rc.active, true);
      assert.deepEqual(rc.peerPolicy, {
        feeBaseMsat: DEFAULT_FORWARDING_POLICY.baseFeeMsat,
        feeProportionalMillionths: DEFAULT_FORWARDING_POLICY.feeRatePpm,
        cltvExpiryDelta: DEFAULT_FORWARDING_POLICY.cltvExpiryDelta,
        htlcMinimumMsat: DEFAULT_FORWARDING_POLICY.htlcMinimumMsat,
        htlcMaximumMsat: rc.capacitySat * 1000n,
        disabled: false,
      });
      assert.equal(rc.localBalanceMsat, maxSendableMsat(n.manager.channelState(id)));
    }
    // the openers hold the funds: A can send on A–B, B nothing yet
    const ab = (n: TestNode) => n.manager.routingChannels().find((c) => c.channelId === g.ab.channelId)!;
    assert.ok(ab(g.a).localBalanceMsat > 0n && ab(g.a).localBalanceMsat < ab(g.a).capacitySat * 1000n);
    assert.equal(ab(g.b).localBalanceMsat, 0n);
  });

  it('a forged update and one for a channel we do not have are ignored; a newer signed one replaces the old', async () => {
    const scid = scidOf(g.a, g.ab.channelId);
    const toA = g.b.node.peer(g.a.id)!;
    const later = Math.floor(Date.now() / 1000) + 60;
    toA.sendRaw(update(g.b, g.a, scid, 999_999, later, g.c.nodeKey)); // signed by C, not B
    toA.sendRaw(update(g.b, g.a, scidOf(g.b, g.bd.channelId), 5, later, g.b.nodeKey)); // B–D: not A's channel
    toA.sendRaw(update(g.b, g.a, scid, 4242, later, g.b.nodeKey));
    await until(() => policyAt(g.a, scid)?.feeBaseMsat === 4242n, 'the signed update taken');
    assert.equal(policyAt(g.a, scid)!.cltvExpiryDelta, 144);
    toA.sendRaw(update(g.b, g.a, scid, 7, later - 30, g.b.nodeKey)); // older: kept out
    const ping = g.b.node.peer(g.a.id)!;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(policyAt(g.a, scid)!.feeBaseMsat, 4242n);
    assert.ok(ping !== undefined && g.a.manager.channel(g.ab.channelId)!.active, 'the channel and the connection stay up');
  });
});
