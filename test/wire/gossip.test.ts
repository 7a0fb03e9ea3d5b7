/**
 * BOLT 7 codecs: round trips of every gossip message (addresses of every type, the query TLVs), hand-built byte
 * layouts, the signature digests (a real signature over a real announcement verifies; one changed byte does not),
 * short_channel_id parts, the checksum, and malformed input (truncated, bad lengths, zlib encoding, unordered ids).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesToHex, concatBytes, hexToBytes } from '../../wire/bytes.js';
import { publicKeyFromPrivate, randomPrivateKey, secp } from '../../wire/crypto.js';
import { DecodeError } from '../../wire/errors.js';
import {
  aliasBytes,
  aliasText,
  channelAnnouncementCodec,
  channelAnnouncementDigest,
  channelAnnouncementDigestOfPayload,
  channelUpdateChecksum,
  crc32c,
  decodeGossipMessage,
  decodeShortChannelIds,
  encodeGossipMessage,
  encodeShortChannelIds,
  makeShortChannelId,
  nodeAnnouncementCodec,
  nodeAnnouncementDigest,
  QUERY_FLAG_CHANNEL_ANNOUNCEMENT,
  QUERY_FLAG_CHANNEL_UPDATE_NODE_2,
  QUERY_OPTION_TIMESTAMPS,
  queryChannelRangeCodec,
  queryShortChannelIdsCodec,
  replyChannelRangeCodec,
  shortChannelIdParts,
  type ChannelAnnouncement,
  type GossipMessage,
  type NodeAnnouncement,
  type QueryChannelRange,
  type ReplyChannelRange,
} from '../../wire/gossip.js';

const CHAIN = hexToBytes('06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f');
const fill = (n: number, b: number): Uint8Array => new Uint8Array(n).fill(b);
const code = (c: string) => (e: unknown) => {
  assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};
const roundTrip = (m: GossipMessage): GossipMessage => {
  const bytes = encodeGossipMessage(m);
  const back = decodeGossipMessage(bytes);
  assert.deepEqual(back, m);
  assert.deepEqual(encodeGossipMessage(back), bytes);
  return back;
};

function announcement(): ChannelAnnouncement {
  return {
    type: 256,
    nodeSignature1: fill(64, 1),
    nodeSignature2: fill(64, 2),
    bitcoinSignature1: fill(64, 3),
    bitcoinSignature2: fill(64, 4),
    features: new Uint8Array([0x01, 0x00]),
    chainHash: CHAIN,
    shortChannelId: makeShortChannelId(700_000, 12, 1),
    nodeId1: concatBytes(new Uint8Array([2]), fill(32, 5)),
    nodeId2: concatBytes(new Uint8Array([3]), fill(32, 6)),
    bitcoinKey1: concatBytes(new Uint8Array([2]), fill(32, 7)),
    bitcoinKey2: concatBytes(new Uint8Array([2]), fill(32, 8)),
  };
}

function nodeAnn(): NodeAnnouncement {
  return {
    type: 257,
    signature: fill(64, 9),
    features: new Uint8Array([0x88, 0x00]),
    timestamp: 1_700_000_000,
    nodeId: concatBytes(new Uint8Array([3]), fill(32, 10)),
    rgbColor: new Uint8Array([0xff, 0x80, 0x00]),
    alias: aliasBytes('ampnode ⚡'),
    addresses: [
      { kind: 'ipv4', host: '203.0.113.7', port: 9735 },
      { kind: 'ipv6', host: '2001:db8::1', port: 9736 },
      { kind: 'torv3', onion: fill(35, 0xab), port: 9737 },
      { kind: 'dns', hostname: 'node.example.com', port: 9738 },
    ],
  };
}

describe('channel_announcement (256)', () => {
  it('round-trips, lays out the fields in BOLT 7 order, and keeps extra bytes', () => {
    const m = announcement();
    const bytes = encodeGossipMessage(m);
    assert.equal(bytes.length, 2 + 4 * 64 + 2 + 2 + 32 + 8 + 4 * 33);
    assert.equal(bytesToHex(bytes.subarray(0, 2)), '0100');
    assert.equal(bytesToHex(bytes.subarray(258, 262)), '00020100');
    roundTrip(m);
    roundTrip({ ...m, extra: new Uint8Array([1, 2, 3]) });
  });
  it('the digest covers everything after the signatures, and a real signature verifies', () => {
    const priv = randomPrivateKey();
    const m = { ...announcement(), nodeId1: publicKeyFromPrivate(priv) };
    const d = channelAnnouncementDigest(m);
    assert.deepEqual(channelAnnouncementDigestOfPayload(channelAnnouncementCodec.encode(m)), d);
    // the signatures are not signed: changing one leaves the digest alone
    assert.deepEqual(channelAnnouncementDigest({ ...m, nodeSignature2: fill(64, 0x55) }), d);
    const sig = secp.sign(d, priv);
    assert.ok(secp.verify(sig, d, m.nodeId1));
    const other = channelAnnouncementDigest({ ...m, shortChannelId: m.shortChannelId + 1n });
    assert.ok(!secp.verify(sig, other, m.nodeId1));
  });
  it('rejects a truncated message', () => {
    const bytes = channelAnnouncementCodec.encode(announcement());
    assert.throws(() => channelAnnouncementCodec.decode(bytes.subarray(0, bytes.length - 1)), code('ERR_TRUNCATED'));
    assert.throws(() => channelAnnouncementCodec.decode(bytes.subarray(0, 100)), code('ERR_TRUNCATED'));
  });
});

describe('node_announcement (257)', () => {
  it('round-trips addresses of every type, alias and colour', () => {
    const m = roundTrip(nodeAnn()) as NodeAnnouncement;
    assert.equal(aliasText(m.alias), 'ampnode ⚡');
    assert.deepEqual([...m.rgbColor], [0xff, 0x80, 0]);
    assert.deepEqual(
      m.addresses.map((a) => a.kind),
      ['ipv4', 'ipv6', 'torv3', 'dns'],
    );
  });
  it('stops reading addresses at a torv2 or unknown descriptor and keeps the rest raw', () => {
    const base = nodeAnnouncementCodec.encode({ ...nodeAnn(), addresses: [] });
    const ipv4 = hexToBytes('01cb0071072607');
    const torv2 = concatBytes(new Uint8Array([3]), fill(10, 1), hexToBytes('2607'));
    const unknown = hexToBytes('09aabbcc');
    for (const tail of [torv2, unknown]) {
      const addrs = concatBytes(ipv4, tail, ipv4);
      // replace addrlen (0) at the end with the new addresses
      const payload = concatBytes(base.subarray(0, base.length - 2), new Uint8Array([0, addrs.length]), addrs);
      const m = nodeAnnouncementCodec.decode(payload);
      assert.deepEqual(m.addresses, [{ kind: 'ipv4', host: '203.0.113.7', port: 9735 }]);
      assert.deepEqual(m.addressesTail, concatBytes(tail, ipv4));
      assert.deepEqual(nodeAnnouncementCodec.encode(m), payload, 'the signed bytes come back unchanged');
    }
  });
  it('signs everything after the signature', () => {
    const priv = randomPrivateKey();
    const m = { ...nodeAnn(), nodeId: publicKeyFromPrivate(priv) };
    const sig = secp.sign(nodeAnnouncementDigest(m), priv);
    assert.ok(secp.verify(sig, nodeAnnouncementDigest({ ...m, signature: sig }), m.nodeId));
    assert.ok(!secp.verify(sig, nodeAnnouncementDigest({ ...m, timestamp: m.timestamp + 1 }), m.nodeId));
  });
  it('rejects an address list that runs past its length, a bad hostname, and an alias longer than 32 bytes', () => {
    const base = nodeAnnouncementCodec.encode({ ...nodeAnn(), addresses: [] });
    const head = base.subarray(0, base.length - 2);
    assert.throws(() => nodeAnnouncementCodec.decode(concatBytes(head, hexToBytes('000401cb00'))), code('ERR_TRUNCATED'));
    assert.throws(() => nodeAnnouncementCodec.decode(concatBytes(head, hexToBytes('0003010203'))), code('ERR_TRUNCATED'));
    assert.throws(() => nodeAnnouncementCodec.decode(concatBytes(head, hexToBytes('000505010a2607'))), code('ERR_INVALID_VALUE'));
    assert.throws(() => aliasBytes('x'.repeat(33)));
  });
});

describe('channel_update (258) and announcement_signatures (259) in the gossip table', () => {
  it('round-trips both', () => {
    roundTrip({
      type: 258,
      signature: fill(64, 1),
      chainHash: CHAIN,
      shortChannelId: 5n,
      timestamp: 7,
      messageFlags: 1,
      channelFlags: 1,
      cltvExpiryDelta: 40,
      htlcMinimumMsat: 1000n,
      feeBaseMsat: 1,
      feeProportionalMillionths: 100,
      htlcMaximumMsat: 10n ** 9n,
    });
    roundTrip({ type: 259, channelId: fill(32, 1), shortChannelId: 99n, nodeSignature: fill(64, 2), bitcoinSignature: fill(64, 3) });
  });
  it('rejects an unknown type and a short announcement_signatures', () => {
    assert.throws(() => decodeGossipMessage(hexToBytes('0010')), code('ERR_INVALID_VALUE'));
    assert.throws(() => decodeGossipMessage(concatBytes(hexToBytes('0103'), fill(100, 0))), code('ERR_TRUNCATED'));
  });
});

describe('queries (261–265)', () => {
  it('encoded_short_ids: type 0 only, ascending, whole ids', () => {
    const ids = [1n, 2n, makeShortChannelId(800_000, 1, 0)];
    const enc = encodeShortChannelIds(ids);
    assert.equal(enc[0], 0);
    assert.deepEqual(decodeShortChannelIds(enc), ids);
    assert.deepEqual(decodeShortChannelIds(new Uint8Array()), []);
    assert.throws(() => decodeShortChannelIds(concatBytes(new Uint8Array([1]), enc.subarray(1))), code('ERR_INVALID_VALUE'));
    assert.throws(() => decodeShortChannelIds(concatBytes(new Uint8Array([2]), enc.subarray(1))), code('ERR_INVALID_VALUE'));
    assert.throws(() => decodeShortChannelIds(enc.subarray(0, enc.length - 1)), code('ERR_INVALID_VALUE'));
    assert.throws(() => decodeShortChannelIds(hexToBytes('0000000000000000020000000000000001')), code('ERR_INVALID_VALUE'));
    assert.throws(() => encodeShortChannelIds([2n, 1n]));
  });
  it('query_short_channel_ids with query_flags', () => {
    const m = roundTrip({
      type: 261,
      chainHash: CHAIN,
      shortChannelIds: [10n, 20n],
      queryFlags: [BigInt(QUERY_FLAG_CHANNEL_ANNOUNCEMENT), BigInt(QUERY_FLAG_CHANNEL_UPDATE_NODE_2)],
    });
    const bytes = encodeGossipMessage(m);
    // ... len 17, the ids, then TLV 1 of length 3: encoding 0, flags 1 and 4
    assert.equal(bytesToHex(bytes.subarray(bytes.length - 5)), '0103000104');
    roundTrip({ type: 261, chainHash: CHAIN, shortChannelIds: [] });
    const bad = queryShortChannelIdsCodec.encode({ type: 261, chainHash: CHAIN, shortChannelIds: [10n] });
    assert.throws(() => queryShortChannelIdsCodec.decode(concatBytes(bad, hexToBytes('0103000104'))), code('ERR_INVALID_VALUE'));
    assert.throws(() => queryShortChannelIdsCodec.decode(concatBytes(bad, hexToBytes('02020000'))), code('ERR_TLV_UNKNOWN_EVEN'));
  });
  it('reply_short_channel_ids_end and gossip_timestamp_filter', () => {
    roundTrip({ type: 262, chainHash: CHAIN, fullInformation: 1 });
    roundTrip({ type: 265, chainHash: CHAIN, firstTimestamp: 1_700_000_000, timestampRange: 0xffffffff });
    roundTrip({ type: 265, chainHash: CHAIN, firstTimestamp: 0, timestampRange: 1, extensionUnknown: [{ type: 5n, value: fill(2, 1) }] });
  });
  it('query_channel_range with query_option', () => {
    const m = roundTrip({ type: 263, chainHash: CHAIN, firstBlocknum: 0, numberOfBlocks: 0xffffffff, queryOption: 3n });
    const bytes = queryChannelRangeCodec.encode(m as QueryChannelRange);
    assert.equal(bytesToHex(bytes.subarray(32)), '00000000ffffffff010103');
    assert.throws(
      () => queryChannelRangeCodec.decode(concatBytes(bytes.subarray(0, 40), hexToBytes('01020300'))),
      code('ERR_TRAILING_BYTES'),
    );
  });
  it('reply_channel_range with timestamps and checksums', () => {
    const m = roundTrip({
      type: 264,
      chainHash: CHAIN,
      firstBlocknum: 100,
      numberOfBlocks: 50,
      syncComplete: 1,
      shortChannelIds: [makeShortChannelId(110, 0, 0), makeShortChannelId(120, 3, 1)],
      timestamps: [
        { node1: 1, node2: 2 },
        { node1: 3, node2: 0 },
      ],
      checksums: [
        { node1: 0xdeadbeef, node2: 0 },
        { node1: 5, node2: 6 },
      ],
    });
    assert.equal(m.type, 264);
    const bytes = replyChannelRangeCodec.encode(m as ReplyChannelRange);
    // timestamps: one pair for two ids
    const { timestamps: _t, checksums: _c, ...bare } = m as ReplyChannelRange;
    const noTlv = replyChannelRangeCodec.encode(bare);
    assert.throws(() => replyChannelRangeCodec.decode(concatBytes(noTlv, hexToBytes('0109000000000100000002'))), code('ERR_INVALID_VALUE'));
    assert.throws(() => replyChannelRangeCodec.decode(bytes.subarray(0, 45)), code('ERR_TRUNCATED'));
    assert.equal(QUERY_OPTION_TIMESTAMPS, 1);
  });
});

describe('helpers', () => {
  it('short_channel_id parts', () => {
    const id = makeShortChannelId(539_268, 845, 1);
    assert.equal(id, 0x83a8400034d0001n);
    assert.deepEqual(shortChannelIdParts(id), { blockHeight: 539_268, txIndex: 845, outputIndex: 1 });
    assert.throws(() => makeShortChannelId(1 << 24, 0, 0));
  });
  it('CRC-32C check value, and the update checksum ignores signature and timestamp', () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
    const u = {
      signature: fill(64, 1),
      chainHash: CHAIN,
      shortChannelId: 5n,
      timestamp: 7,
      messageFlags: 1,
      channelFlags: 0,
      cltvExpiryDelta: 40,
      htlcMinimumMsat: 1n,
      feeBaseMsat: 1,
      feeProportionalMillionths: 1,
      htlcMaximumMsat: 2n,
    };
    const c = channelUpdateChecksum(u);
    assert.equal(channelUpdateChecksum({ ...u, timestamp: 8, signature: fill(64, 2) }), c);
    assert.notEqual(channelUpdateChecksum({ ...u, feeBaseMsat: 2 }), c);
  });
});
