/**
 * Random channel messages thrown at an open channel (with HTLCs in flight):
 * the machine never throws, and every refusal leaves the state untouched
 * (the same object, nothing written or sent). Fields are random but each
 * message has its channel's id most of the time, so the checks behind the
 * id check are reached.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Pair } from './channel-harness.js';
import { step } from '../../htlc/channel/machine.js';
import { DEFAULT_POLICY } from '../../htlc/channel/types.js';
import type { ChannelMessage } from '../../wire/channel-messages.js';

describe('channel: random peer messages', () => {
  it('never throw and never change the state when refused', async () => {
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 300_000_000n });
    await p.add('a', 9_000_000n);
    await p.add('b', 8_000_000n);
    await p.settle();
    await p.add('a', 1_000_000n);
    await p.apply('a', { type: 'sign' });
    await p.deliver('a');
    const s = p.state('b');
    const ctx = { secrets: p.ep.b.secrets, policy: DEFAULT_POLICY };
    const id = fc.oneof(
      { weight: 4, arbitrary: fc.constant(s.channelId) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }) },
    );
    const b = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
    const small = fc.bigInt({ min: 0n, max: 5n });
    const point = fc.oneof(b(33), fc.constant(s.remoteCurrentPoint), fc.constant(s.local.pubkeys.fundingPubkey));
    const msg: fc.Arbitrary<ChannelMessage> = fc.oneof(
      fc.record({
        type: fc.constant(128 as const),
        channelId: id,
        id: small,
        amountMsat: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        paymentHash: b(32),
        cltvExpiry: fc.nat(),
        onionRoutingPacket: b(1366),
      }),
      fc.record({ type: fc.constant(130 as const), channelId: id, id: small, paymentPreimage: b(32) }),
      fc.record({ type: fc.constant(131 as const), channelId: id, id: small, reason: fc.uint8Array({ maxLength: 20 }) }),
      fc.record({
        type: fc.constant(135 as const),
        channelId: id,
        id: small,
        sha256OfOnion: b(32),
        failureCode: fc.integer({ min: 0, max: 0xffff }),
      }),
      fc.record({ type: fc.constant(132 as const), channelId: id, signature: b(64), htlcSignatures: fc.array(b(64), { maxLength: 4 }) }),
      fc.record({
        type: fc.constant(133 as const),
        channelId: id,
        perCommitmentSecret: fc.oneof(b(32), fc.constant(new Uint8Array(32)), fc.constant(new Uint8Array(32).fill(0xff))),
        nextPerCommitmentPoint: point,
      }),
      fc.record({ type: fc.constant(134 as const), channelId: id, feeratePerKw: fc.nat({ max: 0xffffffff }) }),
      fc.record({
        type: fc.constant(136 as const),
        channelId: id,
        nextCommitmentNumber: small,
        nextRevocationNumber: small,
        yourLastPerCommitmentSecret: b(32),
        myCurrentPerCommitmentPoint: point,
      }),
      fc.record({ type: fc.constant(36 as const), channelId: id, secondPerCommitmentPoint: point }),
      fc.record({ type: fc.constant(38 as const), channelId: id, scriptpubkey: fc.uint8Array({ maxLength: 40 }) }),
      fc.record({
        type: fc.constant(39 as const),
        channelId: id,
        feeSatoshis: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        signature: b(64),
      }),
      fc.record({
        type: fc.constant(34 as const),
        temporaryChannelId: id,
        fundingTxid: b(32),
        fundingOutputIndex: fc.nat({ max: 0xffff }),
        signature: b(64),
      }),
      fc.record({ type: fc.constant(35 as const), channelId: id, signature: b(64) }),
    );
    let refusedCount = 0;
    fc.assert(
      fc.property(msg, (m) => {
        const r = step(ctx, s, { type: 'message', msg: m });
        if (r.failure !== undefined) {
          refusedCount++;
          assert.equal(r.state, s);
          assert.equal(r.writes.length + r.send.length, 0);
        }
      }),
      { numRuns: 400 },
    );
    assert.ok(refusedCount > 300);
  });
});
