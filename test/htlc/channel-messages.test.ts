/**
 * BOLT 2 channel message codecs: hand-built examples with known byte
 * layouts, round trips of random messages, and random bytes that must
 * decode to a message or fail with a typed DecodeError (never anything else).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../wire/errors.js';
import { bytesToHex, concatBytes, hexToBytes } from '../../wire/bytes.js';
import {
  channelMessageCodecs,
  decodeChannelMessage,
  encodeChannelMessage,
  ONION_PACKET_LENGTH,
  type ChannelMessage,
} from '../../wire/channel-messages.js';

const b = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const varBytes = fc.uint8Array({ maxLength: 80 });
const oddUnknown = fc
  .uniqueArray(
    fc.bigInt({ min: 3n, max: 1000n }).map((t) => t | 1n),
    { maxLength: 2 },
  )
  .chain((types) => fc.tuple(...types.map((t) => fc.uint8Array({ maxLength: 10 }).map((value) => ({ type: t, value })))))
  .map((recs) => [...recs].sort((x, y) => (x.type < y.type ? -1 : 1)));

function withExt<T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.tuple(arb, oddUnknown).map(([m, u]) => (u.length > 0 ? { ...m, extensionUnknown: u } : { ...m }));
}

const keys = {
  fundingPubkey: b(33),
  revocationBasepoint: b(33),
  paymentBasepoint: b(33),
  delayedPaymentBasepoint: b(33),
  htlcBasepoint: b(33),
  firstPerCommitmentPoint: b(33),
};

const arbitraries: Record<number, fc.Arbitrary<ChannelMessage>> = {
  32: withExt(
    fc.record(
      {
        type: fc.constant(32 as const),
        chainHash: b(32),
        temporaryChannelId: b(32),
        fundingSatoshis: u64,
        pushMsat: u64,
        dustLimitSatoshis: u64,
        maxHtlcValueInFlightMsat: u64,
        channelReserveSatoshis: u64,
        htlcMinimumMsat: u64,
        feeratePerKw: u32,
        toSelfDelay: u16,
        maxAcceptedHtlcs: u16,
        ...keys,
        channelFlags: fc.integer({ min: 0, max: 255 }),
        upfrontShutdownScript: varBytes,
        channelType: fc.uint8Array({ maxLength: 4 }),
      },
      {
        requiredKeys: [
          'type',
          'chainHash',
          'temporaryChannelId',
          'fundingSatoshis',
          'pushMsat',
          'dustLimitSatoshis',
          'maxHtlcValueInFlightMsat',
          'channelReserveSatoshis',
          'htlcMinimumMsat',
          'feeratePerKw',
          'toSelfDelay',
          'maxAcceptedHtlcs',
          'fundingPubkey',
          'revocationBasepoint',
          'paymentBasepoint',
          'delayedPaymentBasepoint',
          'htlcBasepoint',
          'firstPerCommitmentPoint',
          'channelFlags',
        ],
      },
    ),
  ),
  33: withExt(
    fc.record(
      {
        type: fc.constant(33 as const),
        temporaryChannelId: b(32),
        dustLimitSatoshis: u64,
        maxHtlcValueInFlightMsat: u64,
        channelReserveSatoshis: u64,
        htlcMinimumMsat: u64,
        minimumDepth: u32,
        toSelfDelay: u16,
        maxAcceptedHtlcs: u16,
        ...keys,
        upfrontShutdownScript: varBytes,
        channelType: fc.uint8Array({ maxLength: 4 }),
      },
      {
        requiredKeys: [
          'type',
          'temporaryChannelId',
          'dustLimitSatoshis',
          'maxHtlcValueInFlightMsat',
          'channelReserveSatoshis',
          'htlcMinimumMsat',
          'minimumDepth',
          'toSelfDelay',
          'maxAcceptedHtlcs',
          'fundingPubkey',
          'revocationBasepoint',
          'paymentBasepoint',
          'delayedPaymentBasepoint',
          'htlcBasepoint',
          'firstPerCommitmentPoint',
        ],
      },
    ),
  ),
  34: withExt(
    fc.record({ type: fc.constant(34 as const), temporaryChannelId: b(32), fundingTxid: b(32), fundingOutputIndex: u16, signature: b(64) }),
  ),
  35: withExt(fc.record({ type: fc.constant(35 as const), channelId: b(32), signature: b(64) })),
  36: withExt(
    fc.record(
      { type: fc.constant(36 as const), channelId: b(32), secondPerCommitmentPoint: b(33), shortChannelId: u64 },
      { requiredKeys: ['type', 'channelId', 'secondPerCommitmentPoint'] },
    ),
  ),
  38: withExt(fc.record({ type: fc.constant(38 as const), channelId: b(32), scriptpubkey: varBytes })),
  39: withExt(
    fc.record(
      {
        type: fc.constant(39 as const),
        channelId: b(32),
        feeSatoshis: u64,
        signature: b(64),
        feeRange: fc.record({ minFeeSatoshis: u64, maxFeeSatoshis: u64 }).map((r) => ({ ...r })),
      },
      { requiredKeys: ['type', 'channelId', 'feeSatoshis', 'signature'] },
    ),
  ),
  128: withExt(
    fc.record(
      {
        type: fc.constant(128 as const),
        channelId: b(32),
        id: u64,
        amountMsat: u64,
        paymentHash: b(32),
        cltvExpiry: u32,
        onionRoutingPacket: b(ONION_PACKET_LENGTH),
        blindingPoint: b(33),
      },
      { requiredKeys: ['type', 'channelId', 'id', 'amountMsat', 'paymentHash', 'cltvExpiry', 'onionRoutingPacket'] },
    ),
  ),
  130: withExt(fc.record({ type: fc.constant(130 as const), channelId: b(32), id: u64, paymentPreimage: b(32) })),
  131: withExt(fc.record({ type: fc.constant(131 as const), channelId: b(32), id: u64, reason: fc.uint8Array({ maxLength: 300 }) })),
  135: withExt(fc.record({ type: fc.constant(135 as const), channelId: b(32), id: u64, sha256OfOnion: b(32), failureCode: u16 })),
  132: withExt(
    fc.record({ type: fc.constant(132 as const), channelId: b(32), signature: b(64), htlcSignatures: fc.array(b(64), { maxLength: 5 }) }),
  ),
  133: withExt(fc.record({ type: fc.constant(133 as const), channelId: b(32), perCommitmentSecret: b(32), nextPerCommitmentPoint: b(33) })),
  134: withExt(fc.record({ type: fc.constant(134 as const), channelId: b(32), feeratePerKw: u32 })),
  136: withExt(
    fc.record(
      {
        type: fc.constant(136 as const),
        channelId: b(32),
        nextCommitmentNumber: u64,
        nextRevocationNumber: u64,
        yourLastPerCommitmentSecret: b(32),
        myCurrentPerCommitmentPoint: b(33),
        nextFundingTxid: b(32),
      },
      {
        requiredKeys: [
          'type',
          'channelId',
          'nextCommitmentNumber',
          'nextRevocationNumber',
          'yourLastPerCommitmentSecret',
          'myCurrentPerCommitmentPoint',
        ],
      },
    ),
  ),
};

describe('channel messages', () => {
  it('has one codec per BOLT 2 type, each with a property test', () => {
    const types = channelMessageCodecs.map((c) => c.type).sort((x, y) => x - y);
    assert.deepEqual(types, [32, 33, 34, 35, 36, 38, 39, 128, 130, 131, 132, 133, 134, 135, 136]);
    for (const t of types) assert.ok(arbitraries[t] !== undefined, `arbitrary for ${t}`);
  });

  for (const codec of channelMessageCodecs) {
    it(`${codec.name} (${codec.type}) round-trips`, () => {
      fc.assert(
        fc.property(arbitraries[codec.type]!, (m) => {
          const bytes = encodeChannelMessage(m);
          const back = decodeChannelMessage(codec.type, bytes);
          assert.deepEqual(back, m);
          assert.equal(bytesToHex(encodeChannelMessage(back)), bytesToHex(bytes));
        }),
        { numRuns: 60 },
      );
    });

    it(`${codec.name} (${codec.type}) decodes random bytes or throws DecodeError`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: codec.type === 128 ? 1500 : 400 }), (bytes) => {
          try {
            const m = codec.decode(bytes);
            // whatever decodes re-encodes to the same bytes (canonical form)
            assert.equal(bytesToHex(codec.encode(m as never)), bytesToHex(bytes));
          } catch (e) {
            assert.ok(e instanceof DecodeError, `unexpected ${String(e)}`);
          }
        }),
        { numRuns: 200 },
      );
    });
  }

  it('lays update_fee and revoke_and_ack out as BOLT 2 says', () => {
    const channelId = new Uint8Array(32).fill(0xaa);
    const fee = encodeChannelMessage({ type: 134, channelId, feeratePerKw: 253 });
    assert.equal(bytesToHex(fee), 'aa'.repeat(32) + '000000fd');
    const raa = encodeChannelMessage({
      type: 133,
      channelId,
      perCommitmentSecret: new Uint8Array(32).fill(1),
      nextPerCommitmentPoint: new Uint8Array(33).fill(2),
    });
    assert.equal(bytesToHex(raa), 'aa'.repeat(32) + '01'.repeat(32) + '02'.repeat(33));
  });

  it('reads commitment_signed with its htlc signature count', () => {
    const channelId = new Uint8Array(32);
    const payload = concatBytes(
      channelId,
      new Uint8Array(64).fill(7),
      hexToBytes('0002'),
      new Uint8Array(64).fill(8),
      new Uint8Array(64).fill(9),
    );
    const m = decodeChannelMessage(132, payload);
    assert.equal(m.type, 132);
    if (m.type !== 132) return;
    assert.equal(m.htlcSignatures.length, 2);
    assert.equal(m.htlcSignatures[1]![0], 9);
    assert.throws(
      () => decodeChannelMessage(132, payload.subarray(0, payload.length - 1)),
      (e: unknown) => e instanceof DecodeError && e.code === 'ERR_TRUNCATED',
    );
  });

  it('keeps the upfront_shutdown_script and channel_type TLVs of open_channel, and rejects unknown even TLVs', () => {
    const base = encodeChannelMessage({
      type: 33,
      temporaryChannelId: new Uint8Array(32),
      dustLimitSatoshis: 354n,
      maxHtlcValueInFlightMsat: 1n,
      channelReserveSatoshis: 1000n,
      htlcMinimumMsat: 1n,
      minimumDepth: 3,
      toSelfDelay: 144,
      maxAcceptedHtlcs: 483,
      fundingPubkey: new Uint8Array(33),
      revocationBasepoint: new Uint8Array(33),
      paymentBasepoint: new Uint8Array(33),
      delayedPaymentBasepoint: new Uint8Array(33),
      htlcBasepoint: new Uint8Array(33),
      firstPerCommitmentPoint: new Uint8Array(33),
      upfrontShutdownScript: new Uint8Array(0),
      channelType: hexToBytes('401000'),
    });
    // the stream ends with: 00 00 (empty upfront script) 01 03 401000
    assert.ok(bytesToHex(base).endsWith('0000' + '0103401000'));
    const m = decodeChannelMessage(33, base);
    assert.equal(m.type === 33 && m.upfrontShutdownScript?.length, 0);
    const withEven = concatBytes(base, hexToBytes('0200'));
    assert.throws(
      () => decodeChannelMessage(33, withEven),
      (e: unknown) => e instanceof DecodeError && e.code === 'ERR_TLV_UNKNOWN_EVEN',
    );
  });
});
