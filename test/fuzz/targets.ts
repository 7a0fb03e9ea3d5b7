/**
 * Fuzz targets: decoders a peer's bytes reach. Each takes one input and must either return or throw an AmpnodeError
 * (a typed error); anything else (a TypeError, a RangeError, a hang) is a finding. Seeds are valid encodings; the
 * campaign (run.ts) feeds random bytes and mutations of the seeds.
 */
import { readFileSync } from 'node:fs';
import { encodeMessage, decodeMessage } from '../../wire/messages.js';
import { setupMessageCodecs, parseAddressDescriptor } from '../../wire/setup-messages.js';
import { channelMessageCodecs, decodeChannelMessage } from '../../wire/channel-messages.js';
import { decodeChannelUpdate, decodeGossipMessage, encodeGossipMessage, gossipMessageCodecs } from '../../wire/gossip.js';
import { readTlvRecords } from '../../wire/tlv.js';
import { hexToBytes } from '../../wire/bytes.js';
import { AmpnodeError } from '../../wire/errors.js';
import { decodeInvoice } from '../../wire/bolt11.js';
import {
  decodeFailureMessage,
  decodeHopPayload,
  encodeFailureMessage,
  encodeHopPayload,
  peelOnion,
  unwrapFailure,
} from '../../onion/index.js';

export interface FuzzTarget {
  name: string;
  seeds: Uint8Array[];
  /** Runs one input; throws only to report a finding. */
  run(input: Uint8Array): void;
}

/** Calls `f`; an AmpnodeError is an expected answer, anything else a finding. */
export function typedOnly(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (e instanceof AmpnodeError) return;
    throw e;
  }
}

const onionVector = JSON.parse(readFileSync(new URL('../fixtures/bolt04-onion.json', import.meta.url), 'utf8')) as {
  onion: string;
  associated_data: string;
  hops: { privkey: string }[];
};

const secrets = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];

const bolt11Vectors = JSON.parse(readFileSync(new URL('../fixtures/bolt11-invoices.json', import.meta.url), 'utf8')) as {
  valid: { invoice: string }[];
};
const latin1 = new TextDecoder('latin1');

/** One valid encoding of each BOLT 7 message (with every optional part present). */
function gossipSeeds(): Uint8Array[] {
  const z = (n: number): Uint8Array => new Uint8Array(n);
  const key = Uint8Array.of(2, ...new Uint8Array(32).fill(1));
  const chainHash = z(32);
  return [
    encodeGossipMessage({
      type: 256,
      nodeSignature1: z(64),
      nodeSignature2: z(64),
      bitcoinSignature1: z(64),
      bitcoinSignature2: z(64),
      features: Uint8Array.of(2),
      chainHash,
      shortChannelId: 1n,
      nodeId1: key,
      nodeId2: key,
      bitcoinKey1: key,
      bitcoinKey2: key,
    }),
    encodeGossipMessage({
      type: 257,
      signature: z(64),
      features: z(2),
      timestamp: 1,
      nodeId: key,
      rgbColor: z(3),
      alias: z(32),
      addresses: [
        { kind: 'ipv4', host: '1.2.3.4', port: 1 },
        { kind: 'ipv6', host: '::1', port: 2 },
        { kind: 'torv3', onion: z(35), port: 3 },
        { kind: 'dns', hostname: 'a.b', port: 4 },
      ],
    }),
    encodeGossipMessage({ type: 259, channelId: z(32), shortChannelId: 1n, nodeSignature: z(64), bitcoinSignature: z(64) }),
    encodeGossipMessage({ type: 261, chainHash, shortChannelIds: [1n, 2n], queryFlags: [1n, 2n] }),
    encodeGossipMessage({ type: 262, chainHash, fullInformation: 1 }),
    encodeGossipMessage({ type: 263, chainHash, firstBlocknum: 0, numberOfBlocks: 9, queryOption: 3n }),
    encodeGossipMessage({
      type: 264,
      chainHash,
      firstBlocknum: 0,
      numberOfBlocks: 9,
      syncComplete: 1,
      shortChannelIds: [1n],
      timestamps: [{ node1: 1, node2: 2 }],
      checksums: [{ node1: 3, node2: 4 }],
    }),
    encodeGossipMessage({ type: 265, chainHash, firstTimestamp: 1, timestampRange: 2 }),
  ];
}

export const TARGETS: FuzzTarget[] = [
  {
    name: 'wire-messages',
    seeds: [
      encodeMessage({ type: 18, numPongBytes: 4, ignored: new Uint8Array(3) }),
      encodeMessage({ type: 19, ignored: new Uint8Array(4) }),
    ],
    run: (b) => {
      typedOnly(() => decodeMessage(b));
      for (const c of setupMessageCodecs) typedOnly(() => c.decode(b));
      typedOnly(() => parseAddressDescriptor(b));
    },
  },
  {
    name: 'channel-messages',
    seeds: [new Uint8Array(32 + 8 + 8 + 32 + 4 + 1366), new Uint8Array(32 + 64 + 2)],
    run: (b) => {
      for (const c of channelMessageCodecs) typedOnly(() => decodeChannelMessage(c.type, b));
      typedOnly(() => decodeChannelUpdate(b));
    },
  },
  {
    name: 'gossip-messages',
    seeds: gossipSeeds(),
    run: (b) => {
      typedOnly(() => decodeGossipMessage(b));
      for (const c of gossipMessageCodecs) typedOnly(() => c.decode(b.subarray(2)));
    },
  },
  {
    name: 'tlv',
    seeds: [hexToBytes('0100020101fd00fe0102')],
    run: (b) => typedOnly(() => readTlvRecords(b)),
  },
  {
    name: 'hop-payload',
    seeds: [
      encodeHopPayload({ amountToForwardMsat: 1000n, outgoingCltvValue: 500, shortChannelId: 42n }),
      encodeHopPayload({
        amountToForwardMsat: 1000n,
        outgoingCltvValue: 500,
        amp: { share: new Uint8Array(32), setId: new Uint8Array(32).fill(7), childIndex: 3 },
      }),
    ],
    run: (b) => {
      typedOnly(() => decodeHopPayload(b, { isFinal: true }));
      typedOnly(() => decodeHopPayload(b, { isFinal: false }));
    },
  },
  {
    name: 'failure',
    seeds: [encodeFailureMessage({ name: 'incorrect_or_unknown_payment_details', htlcMsat: 1000n, height: 100 }), new Uint8Array(292)],
    run: (b) => {
      typedOnly(() => decodeFailureMessage(b));
      const out = unwrapFailure(b, secrets); // never throws: a garbled packet is 'unreadable'
      if (!['failure', 'malformed', 'unreadable'].includes(out.kind)) throw new Error(`unwrapFailure gave ${out.kind}`);
    },
  },
  {
    // what a user pastes (payinvoice, decodepayreq): the bytes read as one character each
    name: 'bolt11',
    seeds: bolt11Vectors.valid.slice(0, 6).map((v) => new TextEncoder().encode(v.invoice)),
    run: (b) => typedOnly(() => decodeInvoice(latin1.decode(b))),
  },
  {
    name: 'onion-peel',
    seeds: [hexToBytes(onionVector.onion)],
    run: (b) => typedOnly(() => peelOnion(b, hexToBytes(onionVector.hops[0]!.privkey), hexToBytes(onionVector.associated_data))),
  },
];
