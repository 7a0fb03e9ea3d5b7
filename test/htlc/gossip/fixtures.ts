/**
 * Gossip as real nodes would send it: keys generated here, announcements and updates signed with them, funding
 * outputs in a fake chain (the 2-of-2 P2WSH of the announced bitcoin keys).
 */
import { fundingWitnessScript, p2wsh } from '../../../htlc/bolt3/scripts.js';
import type { FundingOutput, GossipChain } from '../../../htlc/gossip/index.js';
import { bytesToHex, compareBytes, hexToBytes } from '../../../wire/bytes.js';
import { publicKeyFromPrivate, randomPrivateKey, secp } from '../../../wire/crypto.js';
import {
  aliasBytes,
  channelAnnouncementDigest,
  channelUpdateDigest,
  CHANNEL_FLAG_DIRECTION,
  CHANNEL_FLAG_DISABLED,
  MESSAGE_FLAG_MUST_BE_ONE,
  nodeAnnouncementDigest,
  type ChannelAnnouncement,
  type ChannelUpdate,
  type NodeAnnouncement,
} from '../../../wire/gossip.js';

export const REGTEST = hexToBytes('06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f');
export const NOW_SEC = 1_800_000_000;

export interface TestNode {
  priv: Uint8Array;
  pub: Uint8Array;
  hex: string;
}

export function makeNode(): TestNode {
  const priv = randomPrivateKey();
  const pub = publicKeyFromPrivate(priv);
  return { priv, pub, hex: bytesToHex(pub) };
}

/** A chain holding funding outputs by short_channel_id. */
export class FakeChain implements GossipChain {
  readonly outputs = new Map<bigint, FundingOutput>();
  lookupFundingOutput(scid: bigint): FundingOutput | undefined {
    return this.outputs.get(scid);
  }
  spend(scid: bigint): void {
    const o = this.outputs.get(scid);
    if (o !== undefined) o.spent = true;
  }
}

export interface TestChannel {
  ann: ChannelAnnouncement;
  node1: TestNode;
  node2: TestNode;
}

/** A signed channel_announcement between a and b; its funding output goes into `opts.chain` when one is given. */
export function makeChannel(
  a: TestNode,
  b: TestNode,
  scid: bigint,
  opts: { chain?: FakeChain; capacitySat?: bigint; chainHash?: Uint8Array } = {},
): TestChannel {
  const [node1, node2] = compareBytes(a.pub, b.pub) < 0 ? [a, b] : [b, a];
  const btc1 = randomPrivateKey();
  const btc2 = randomPrivateKey();
  const unsigned: ChannelAnnouncement = {
    type: 256,
    nodeSignature1: new Uint8Array(64),
    nodeSignature2: new Uint8Array(64),
    bitcoinSignature1: new Uint8Array(64),
    bitcoinSignature2: new Uint8Array(64),
    features: new Uint8Array(),
    chainHash: opts.chainHash ?? REGTEST,
    shortChannelId: scid,
    nodeId1: node1.pub,
    nodeId2: node2.pub,
    bitcoinKey1: publicKeyFromPrivate(btc1),
    bitcoinKey2: publicKeyFromPrivate(btc2),
  };
  const d = channelAnnouncementDigest(unsigned);
  const ann: ChannelAnnouncement = {
    ...unsigned,
    nodeSignature1: secp.sign(d, node1.priv),
    nodeSignature2: secp.sign(d, node2.priv),
    bitcoinSignature1: secp.sign(d, btc1),
    bitcoinSignature2: secp.sign(d, btc2),
  };
  opts.chain?.outputs.set(scid, {
    scriptPubKey: p2wsh(fundingWitnessScript(ann.bitcoinKey1, ann.bitcoinKey2)),
    valueSat: opts.capacitySat ?? 1_000_000n,
    spent: false,
  });
  return { ann, node1, node2 };
}

export interface PolicyFields {
  feeBaseMsat?: number;
  feeProportionalMillionths?: number;
  cltvExpiryDelta?: number;
  htlcMinimumMsat?: bigint;
  htlcMaximumMsat?: bigint;
  disabled?: boolean;
}

/** The channel_update of `ch` from node_1 (direction 0) or node_2 (1), signed by that node. */
export function makeUpdate(ch: TestChannel, direction: 0 | 1, timestamp: number, p: PolicyFields = {}): ChannelUpdate {
  const signer = direction === 0 ? ch.node1 : ch.node2;
  const u: ChannelUpdate = {
    signature: new Uint8Array(64),
    chainHash: ch.ann.chainHash,
    shortChannelId: ch.ann.shortChannelId,
    timestamp,
    messageFlags: MESSAGE_FLAG_MUST_BE_ONE,
    channelFlags: (direction === 1 ? CHANNEL_FLAG_DIRECTION : 0) | (p.disabled === true ? CHANNEL_FLAG_DISABLED : 0),
    cltvExpiryDelta: p.cltvExpiryDelta ?? 40,
    htlcMinimumMsat: p.htlcMinimumMsat ?? 1000n,
    feeBaseMsat: p.feeBaseMsat ?? 1000,
    feeProportionalMillionths: p.feeProportionalMillionths ?? 100,
    htlcMaximumMsat: p.htlcMaximumMsat ?? 500_000_000n,
  };
  return { ...u, signature: secp.sign(channelUpdateDigest(u), signer.priv) };
}

export function makeNodeAnnouncement(
  n: TestNode,
  timestamp: number,
  alias = 'node',
  features: Uint8Array = new Uint8Array(),
): NodeAnnouncement {
  const m: NodeAnnouncement = {
    type: 257,
    signature: new Uint8Array(64),
    features,
    timestamp,
    nodeId: n.pub,
    rgbColor: new Uint8Array([1, 2, 3]),
    alias: aliasBytes(alias),
    addresses: [{ kind: 'ipv4', host: '127.0.0.1', port: 9735 }],
  };
  return { ...m, signature: secp.sign(nodeAnnouncementDigest(m), n.priv) };
}
