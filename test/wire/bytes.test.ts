import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bigintToBytes32, bytes32ToBigint, bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { DecodeError } from '../../wire/errors.js';

describe('32-byte integers', () => {
  it('convert both ways exactly as the hex form does, at any offset', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }), fc.nat(8), (n, offset) => {
        const hex = n.toString(16).padStart(64, '0');
        assert.equal(bytesToHex(bigintToBytes32(n)), hex);
        assert.equal(bytes32ToBigint(hexToBytes(hex)), n);
        const out = new Uint8Array(48).fill(0xee);
        bigintToBytes32(n, out, offset);
        assert.equal(bytesToHex(out.subarray(offset, offset + 32)), hex);
        assert.ok(out.subarray(0, offset).every((b) => b === 0xee) && out.subarray(offset + 32).every((b) => b === 0xee));
        assert.equal(bytes32ToBigint(out.subarray(offset, offset + 32)), n);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuse values that do not fit and inputs of another length', () => {
    assert.throws(() => bigintToBytes32(1n << 256n), DecodeError);
    assert.throws(() => bigintToBytes32(-1n), DecodeError);
    assert.throws(() => bytes32ToBigint(new Uint8Array(31)), DecodeError);
  });
});
