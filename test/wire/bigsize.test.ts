/**
 * BigSize (BOLT 1 Appendix A) and signed integers (Appendix D): every vector of
 * the spec, plus round-trip and random-input properties.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  Reader,
  Writer,
  bigSizeLength,
  bytesToHex,
  decodeSigned,
  decodeTruncated,
  encodeBigSize,
  encodeSigned,
  encodeTruncated,
  hexToBytes,
  signedWidth,
} from '../../wire/bytes.js';
import { AmpnodeError, ArgumentError, DecodeError } from '../../wire/errors.js';

interface Vectors {
  bigsize_decoding: { name: string; value: string; bytes: string; exp_error: string | null }[];
  bigsize_encoding: { name: string; value: string; bytes: string }[];
  signed_integers: { value: string; bytes: string }[];
}
const V = JSON.parse(readFileSync(new URL('../fixtures/bolt01-tlv.json', import.meta.url), 'utf8')) as Vectors;

/** The spec's Go error texts mapped to our codes. */
const ERROR_CODES: Record<string, string> = {
  EOF: 'ERR_TRUNCATED',
  'unexpected EOF': 'ERR_TRUNCATED',
  'decoded bigsize is not canonical': 'ERR_NON_MINIMAL',
};

function decodeBigSize(bytes: Uint8Array): bigint {
  const r = new Reader(bytes);
  const v = r.bigSize();
  r.end('bigsize');
  return v;
}

describe('BigSize decoding vectors (BOLT 1 Appendix A)', () => {
  assert.equal(V.bigsize_decoding.length, 18);
  for (const t of V.bigsize_decoding) {
    it(`${t.name} (${t.bytes || 'empty'})`, () => {
      const bytes = hexToBytes(t.bytes);
      if (t.exp_error === null) {
        assert.equal(decodeBigSize(bytes), BigInt(t.value));
      } else {
        const code = ERROR_CODES[t.exp_error];
        assert.ok(code !== undefined, `unmapped spec error ${t.exp_error}`);
        assert.throws(
          () => decodeBigSize(bytes),
          (e: unknown) => e instanceof DecodeError && e.code === code,
        );
      }
    });
  }
});

describe('BigSize encoding vectors (BOLT 1 Appendix A)', () => {
  assert.equal(V.bigsize_encoding.length, 8);
  for (const t of V.bigsize_encoding) {
    it(`${t.name} → ${t.bytes}`, () => {
      const v = BigInt(t.value);
      assert.equal(bytesToHex(encodeBigSize(v)), t.bytes);
      assert.equal(bigSizeLength(v), t.bytes.length / 2);
      assert.equal(bytesToHex(new Writer(0).bigSize(v).finish()), t.bytes);
    });
  }
  it('rejects values outside u64', () => {
    assert.throws(() => encodeBigSize(-1n), ArgumentError);
    assert.throws(() => encodeBigSize(1n << 64n), ArgumentError);
  });
});

describe('BigSize properties', () => {
  it('round-trips every u64 and uses the shortest form', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        const enc = encodeBigSize(v);
        assert.equal(enc.length, bigSizeLength(v));
        assert.equal(decodeBigSize(enc), v);
      }),
      { numRuns: 2000 },
    );
  });
  it('random bytes decode to a canonical value or a DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 10 }), (bytes) => {
        const r = new Reader(bytes);
        try {
          const v = r.bigSize();
          assert.equal(bytesToHex(encodeBigSize(v)), bytesToHex(bytes.subarray(0, r.pos)));
        } catch (e) {
          assert.ok(e instanceof DecodeError, String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('signed integers (BOLT 1 Appendix D)', () => {
  assert.equal(V.signed_integers.length, 23);
  for (const t of V.signed_integers) {
    it(`${t.value} ↔ ${t.bytes}`, () => {
      const v = BigInt(t.value);
      const width = signedWidth(v);
      assert.equal(width, t.bytes.length / 2, 'narrowest type that holds the value');
      assert.equal(bytesToHex(encodeSigned(v, width)), t.bytes);
      assert.equal(decodeSigned(hexToBytes(t.bytes)), v);
    });
  }
  it('round-trips at every width and rejects values that do not fit', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), fc.constantFrom(1, 2, 4, 8 as const), (v, w) => {
        const width = w as 1 | 2 | 4 | 8;
        const half = 1n << BigInt(8 * width - 1);
        if (v >= -half && v < half) assert.equal(decodeSigned(encodeSigned(v, width)), v);
        else assert.throws(() => encodeSigned(v, width), ArgumentError);
      }),
    );
    assert.throws(
      () => decodeSigned(new Uint8Array(3)),
      (e: unknown) => e instanceof DecodeError && e.code === 'ERR_TLV_LENGTH',
    );
  });
});

describe('truncated integers', () => {
  it('round-trip and reject non-minimal or overlong encodings', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        const enc = encodeTruncated(v, 8);
        assert.ok(enc.length === 0 || enc[0] !== 0);
        assert.equal(decodeTruncated(enc, 8), v);
      }),
    );
    assert.equal(encodeTruncated(0n, 2).length, 0);
    assert.throws(() => encodeTruncated(0x10000, 2), ArgumentError);
    assert.throws(
      () => decodeTruncated(hexToBytes('0001'), 4),
      (e: unknown) => e instanceof DecodeError && e.code === 'ERR_NON_MINIMAL',
    );
    assert.throws(
      () => decodeTruncated(hexToBytes('0102030405'), 4),
      (e: unknown) => e instanceof DecodeError && e.code === 'ERR_TLV_LENGTH',
    );
  });
});

describe('Reader and Writer', () => {
  it('every read past the end is ERR_TRUNCATED, never a RangeError', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 12 }),
        fc.array(fc.constantFrom('u8', 'u16', 'u32', 'u64', 'bigSize', 'b3'), { maxLength: 6 }),
        (bytes, ops) => {
          const r = new Reader(bytes);
          try {
            for (const op of ops) {
              if (op === 'b3') r.bytes(3);
              else r[op as 'u8' | 'u16' | 'u32' | 'u64' | 'bigSize']();
            }
          } catch (e) {
            assert.ok(e instanceof AmpnodeError && e instanceof DecodeError, String(e));
          }
        },
      ),
    );
  });
  it('writes what it reads, grows from an empty buffer, and refuses out-of-range values', () => {
    const w = new Writer(0).u8(0xab).u16(0x1234).u32(0xdeadbeef).u64(0x0102030405060708n).bigSize(0x10000).bytes(hexToBytes('ff'));
    const bytes = w.finish();
    assert.equal(bytesToHex(bytes), 'ab1234deadbeef0102030405060708fe00010000ff');
    const r = new Reader(bytes);
    assert.deepEqual(
      [r.u8(), r.u16(), r.u32(), r.u64(), r.bigSize(), r.bytes(1)],
      [0xab, 0x1234, 0xdeadbeef, 0x0102030405060708n, 0x10000n, hexToBytes('ff')],
    );
    r.end();
    for (const bad of [
      () => new Writer().u8(256),
      () => new Writer().u16(-1),
      () => new Writer().u32(2 ** 32),
      () => new Writer().u16(1.5),
      () => new Writer().u64(-1n),
    ])
      assert.throws(bad, ArgumentError);
    assert.throws(() => new Reader(new Uint8Array(4)).bytes(-1), ArgumentError);
  });
});
