/**
 * Hop payload codec and lnd's validation rules: each violation must give
 * invalid_onion_payload (PERM|22) naming the offending type.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, concatBytes, encodeBigSize, hexToBytes } from '../../wire/bytes.js';
import {
  decodeHopPayload,
  encodeFailureMessage,
  encodeHopPayload,
  failureCode,
  FailureCode,
  OnionError,
  type HopPayload,
} from '../../onion/index.js';

function rec(type: bigint | number, value: Uint8Array | string): Uint8Array {
  const v = typeof value === 'string' ? hexToBytes(value) : value;
  return concatBytes(encodeBigSize(BigInt(type)), encodeBigSize(v.length), v);
}
const AMT = rec(2, '03e8');
const CLTV = rec(4, '0190');
const SCID = rec(6, '0000000000000001');
const b32 = (x: number) => new Uint8Array(32).fill(x);

function expectInvalid(bytes: Uint8Array, isFinal: boolean, tlvType: bigint, offset?: number) {
  assert.throws(
    () => decodeHopPayload(bytes, { isFinal }),
    (e: unknown) => {
      assert.ok(e instanceof OnionError, `not an OnionError: ${String(e)}`);
      assert.equal(e.code, 'ERR_ONION_PAYLOAD');
      assert.equal(e.failure.name, 'invalid_onion_payload');
      assert.equal(failureCode(e.failure), 0x4016);
      if (e.failure.name === 'invalid_onion_payload') {
        assert.equal(e.failure.tlvType, tlvType, e.message);
        if (offset !== undefined) assert.equal(e.failure.offset, offset);
      }
      return true;
    },
  );
}

describe('hop payload: lnd "final hop with amp"', () => {
  const hex = '02000400' + '0e41' + '12'.repeat(32) + '13'.repeat(32) + '09';
  it('decodes to share 0x12…, set_id 0x13…, child_index 9 and re-encodes identically', () => {
    const p = decodeHopPayload(hexToBytes(hex), { isFinal: true });
    assert.equal(p.amountToForwardMsat, 0n);
    assert.equal(p.outgoingCltvValue, 0);
    assert.ok(p.amp);
    assert.equal(bytesToHex(p.amp.share), '12'.repeat(32));
    assert.equal(bytesToHex(p.amp.setId), '13'.repeat(32));
    assert.equal(p.amp.childIndex, 9);
    assert.equal(p.mpp, undefined);
    assert.equal(bytesToHex(encodeHopPayload(p)), hex);
  });
  it('is refused at an intermediate hop (and names 6 first: it is missing)', () => {
    expectInvalid(hexToBytes(hex), false, 6n);
    expectInvalid(concatBytes(hexToBytes('02000400'), SCID, hexToBytes('0e41' + '12'.repeat(32) + '13'.repeat(32) + '09')), false, 14n, 14);
  });
});

describe('hop payload: fields', () => {
  it('round-trips every known field and custom records', () => {
    const p: HopPayload = {
      amountToForwardMsat: 123456789n,
      outgoingCltvValue: 800_123,
      mpp: { paymentAddr: b32(0xaa), totalMsat: 5_000_000n },
      amp: { share: b32(1), setId: b32(2), childIndex: 0 },
      paymentMetadata: hexToBytes('deadbeef'),
      keysendPreimage: b32(3),
      customRecords: [
        { type: 65536n, value: hexToBytes('01') },
        { type: 65537n, value: hexToBytes('') },
        { type: 1n << 40n, value: hexToBytes('0203') },
      ],
      unknownRecords: [{ type: 13n, value: hexToBytes('ff') }],
    };
    const bytes = encodeHopPayload(p);
    const back = decodeHopPayload(bytes, { isFinal: true });
    assert.deepEqual(back, p);
    assert.equal(bytesToHex(encodeHopPayload(back)), bytesToHex(bytes));
  });

  it('child_index 0 encodes as a 64-byte amp record; max u32 as 68', () => {
    const base = { amountToForwardMsat: 1n, outgoingCltvValue: 1, customRecords: [], unknownRecords: [] };
    const zero = encodeHopPayload({ ...base, amp: { share: b32(1), setId: b32(2), childIndex: 0 } });
    assert.ok(bytesToHex(zero).includes('0e40'));
    const max = encodeHopPayload({ ...base, amp: { share: b32(1), setId: b32(2), childIndex: 0xffffffff } });
    assert.equal(decodeHopPayload(max, { isFinal: true }).amp?.childIndex, 0xffffffff);
  });

  it('an intermediate hop payload: 2, 4, 6', () => {
    const p = decodeHopPayload(concatBytes(AMT, CLTV, SCID), { isFinal: false });
    assert.equal(p.amountToForwardMsat, 1000n);
    assert.equal(p.outgoingCltvValue, 400);
    assert.equal(p.shortChannelId, 1n);
  });
});

describe('hop payload: violations → invalid_onion_payload naming the type', () => {
  const MPP = rec(8, concatBytes(b32(5), hexToBytes('2710')));
  const AMPR = rec(14, concatBytes(b32(1), b32(2), hexToBytes('01')));

  it('2 or 4 missing (final and intermediate)', () => {
    expectInvalid(CLTV, true, 2n, 0);
    expectInvalid(AMT, true, 4n, 0);
    expectInvalid(concatBytes(CLTV, SCID), false, 2n);
    expectInvalid(concatBytes(AMT, SCID), false, 4n);
    expectInvalid(new Uint8Array(0), true, 2n);
  });
  it('6 at the final hop, 6 missing at an intermediate hop', () => {
    expectInvalid(concatBytes(AMT, CLTV, SCID), true, 6n, AMT.length + CLTV.length);
    expectInvalid(concatBytes(AMT, CLTV), false, 6n, 0);
  });
  it('MPP or AMP at an intermediate hop', () => {
    expectInvalid(concatBytes(AMT, CLTV, SCID, MPP), false, 8n);
    expectInvalid(concatBytes(AMT, CLTV, SCID, AMPR), false, 14n);
    // both are fine at the final hop
    const ok = decodeHopPayload(concatBytes(AMT, CLTV, MPP, AMPR), { isFinal: true });
    assert.equal(ok.mpp?.totalMsat, 10000n);
    assert.equal(ok.amp?.childIndex, 1);
  });
  it('unknown even types below 65536 (the lowest is named); odd ones are ignored', () => {
    expectInvalid(concatBytes(AMT, CLTV, rec(20, '00'), rec(22, '')), true, 20n, AMT.length + CLTV.length);
    const p = decodeHopPayload(concatBytes(AMT, CLTV, rec(21, 'ab')), { isFinal: true });
    assert.deepEqual(p.unknownRecords, [{ type: 21n, value: hexToBytes('ab') }]);
    // even ≥ 65536 is a custom record, accepted
    assert.equal(decodeHopPayload(concatBytes(AMT, CLTV, rec(65538, '')), { isFinal: true }).customRecords.length, 1);
  });
  it('route-blinding fields 10, 12, 18 are refused as unknown even types', () => {
    expectInvalid(concatBytes(AMT, CLTV, rec(10, 'aa')), true, 10n);
    expectInvalid(concatBytes(AMT, CLTV, rec(12, '02' + '11'.repeat(32))), true, 12n);
    expectInvalid(concatBytes(AMT, CLTV, rec(18, '01')), true, 18n);
    expectInvalid(concatBytes(rec(10, 'aa'), rec(12, '02' + '11'.repeat(32))), false, 10n, 0);
  });
  it('bad lengths', () => {
    expectInvalid(concatBytes(AMT, CLTV, rec(6, '00000000000001')), false, 6n); // 7 bytes
    expectInvalid(concatBytes(rec(2, '010203040506070809'), CLTV), true, 2n); // tu64 of 9 bytes
    expectInvalid(concatBytes(AMT, rec(4, '0102030405')), true, 4n); // tu32 of 5 bytes
    expectInvalid(concatBytes(AMT, CLTV, rec(8, b32(1).subarray(0, 31))), true, 8n);
    expectInvalid(concatBytes(AMT, CLTV, rec(8, new Uint8Array(41))), true, 8n);
    expectInvalid(concatBytes(AMT, CLTV, rec(14, new Uint8Array(63))), true, 14n);
    expectInvalid(concatBytes(AMT, CLTV, rec(14, new Uint8Array(69))), true, 14n);
    expectInvalid(concatBytes(AMT, CLTV, rec(5482373484n, new Uint8Array(31))), true, 5482373484n);
  });
  it('non-minimal truncated integers', () => {
    expectInvalid(concatBytes(rec(2, '0001'), CLTV), true, 2n, 0);
    expectInvalid(concatBytes(AMT, rec(4, '00')), true, 4n, AMT.length);
    expectInvalid(concatBytes(AMT, CLTV, rec(8, concatBytes(b32(1), hexToBytes('0001')))), true, 8n);
    expectInvalid(concatBytes(AMT, CLTV, rec(14, concatBytes(b32(1), b32(2), hexToBytes('00')))), true, 14n);
  });
  it('structure: order, duplicates, truncation, non-minimal BigSize', () => {
    expectInvalid(concatBytes(CLTV, AMT), true, 2n, CLTV.length);
    expectInvalid(concatBytes(AMT, AMT, CLTV), true, 2n, AMT.length);
    expectInvalid(concatBytes(AMT, hexToBytes('0405')), true, 4n, AMT.length); // length beyond the end
    expectInvalid(concatBytes(AMT, hexToBytes('fd0004')), true, 0n, AMT.length); // non-minimal type
    expectInvalid(concatBytes(AMT, hexToBytes('fd')), true, 0n, AMT.length); // truncated type
  });
  it('the failure encodes as BigSize type + u16 offset', () => {
    try {
      decodeHopPayload(concatBytes(AMT, CLTV, rec(10, 'aa')), { isFinal: true });
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof OnionError);
      assert.equal(bytesToHex(encodeFailureMessage(e.failure)), '4016' + '0a' + '0008');
      assert.equal(FailureCode.invalid_onion_payload, 0x4016);
    }
  });
});

describe('hop payload: fuzzing', () => {
  it('random and truncated payloads only ever give OnionError', () => {
    const good = encodeHopPayload({
      amountToForwardMsat: 5000n,
      outgoingCltvValue: 144,
      mpp: { paymentAddr: b32(9), totalMsat: 77777n },
      amp: { share: b32(1), setId: b32(2), childIndex: 3 },
      customRecords: [{ type: 70000n, value: b32(4) }],
    });
    const check = (bytes: Uint8Array, isFinal: boolean) => {
      try {
        decodeHopPayload(bytes, { isFinal });
      } catch (e) {
        assert.ok(e instanceof OnionError, `untyped: ${String(e)}`);
        assert.equal(e.failure.name, 'invalid_onion_payload');
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (b, f) => check(b, f)),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat({ max: good.length }), fc.boolean(), (n, f) => check(good.subarray(0, n), f)),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const b = good.slice();
        b[pos]! ^= x;
        check(b, true);
      }),
      { numRuns: 300 },
    );
  });
});
