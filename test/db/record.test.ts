import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeRecord, embedOnce, embedRecord, encodeRecord, isRecord, RECORD_MAGIC } from '../../db/record.js';
import { DecodeError } from '../../wire/errors.js';

/** Values the record format promises to return unchanged (JSON-like data plus bigint and Uint8Array). */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double({ noNaN: false }),
    fc.string(),
    fc.string({ unit: 'grapheme' }),
    fc.bigInt(),
    fc.bigInt({ min: -(1n << 200n), max: 1n << 200n }),
    fc.uint8Array({ maxLength: 200 }),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 6 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('node'),
      { maxKeys: 6, noNullPrototype: true },
    ),
  ),
})).node;

describe('db/record: binary records', () => {
  it('round-trips JSON-like values with bigints and byte strings exactly (types included)', () => {
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encodeRecord(v);
        assert.equal(bytes[0], RECORD_MAGIC);
        assert.ok(isRecord(bytes));
        assert.deepStrictEqual(decodeRecord(bytes), v);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps small bigints bigints and small numbers numbers, -0 and non-finite numbers included', () => {
    const v = { a: 5n, b: 5, c: -0, d: Infinity, e: NaN, f: -(1n << 70n), g: 2 ** 60, h: -1n, i: 0n };
    const back = decodeRecord(encodeRecord(v)) as typeof v;
    assert.deepStrictEqual(back, v);
    assert.equal(typeof back.a, 'bigint');
    assert.equal(typeof back.b, 'number');
    assert.ok(Object.is(back.c, -0));
  });

  it('leaves out undefined members and writes undefined array slots as null, as JSON does', () => {
    const back = decodeRecord(encodeRecord({ a: undefined, b: [1, undefined, 2], c: { d: undefined } }));
    assert.deepStrictEqual(back, { b: [1, null, 2], c: {} });
  });

  it('writes each key once per record', () => {
    const many = Array.from({ length: 100 }, (_, i) => ({ someLongishKeyName: i, anotherLongishKeyName: i }));
    const bytes = encodeRecord(many);
    const text = new TextDecoder().decode(bytes);
    assert.equal(text.split('someLongishKeyName').length - 1, 1);
    assert.equal(text.split('anotherLongishKeyName').length - 1, 1);
    assert.deepStrictEqual(decodeRecord(bytes), many);
  });

  it('returns byte strings that do not alias the record', () => {
    const bytes = encodeRecord({ b: new Uint8Array([1, 2, 3]) });
    const back = decodeRecord(bytes) as { b: Uint8Array };
    bytes.fill(0);
    assert.deepStrictEqual(back.b, new Uint8Array([1, 2, 3]));
  });

  it('refuses nesting deeper than 64 on both sides', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    assert.throws(() => encodeRecord(deep), DecodeError);
  });

  it('turns every truncation and every byte flip into a DecodeError or another valid value, never a crash', () => {
    const good = encodeRecord({ amountMsat: 1234n, sig: new Uint8Array(64).fill(9), list: [1, 'two', { three: 3n }], flag: true });
    for (let n = 0; n < good.length; n++) assert.throws(() => decodeRecord(good.subarray(0, n)), DecodeError);
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const bad = good.slice();
        bad[at] = bad[at]! ^ x;
        try {
          decodeRecord(bad);
        } catch (e) {
          assert.ok(e instanceof DecodeError, String(e));
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        try {
          decodeRecord(Uint8Array.of(RECORD_MAGIC, 1, ...junk));
        } catch (e) {
          assert.ok(e instanceof DecodeError, String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects unknown versions, trailing bytes, repeated keys and __proto__ keys', () => {
    assert.throws(() => decodeRecord(Uint8Array.of(RECORD_MAGIC, 2, 0)), /version 2/);
    assert.throws(() => decodeRecord(Uint8Array.of(RECORD_MAGIC, 1, 0, 0)), /trailing/);
    const key = [...new TextEncoder().encode('k')];
    // object { k: null, k: null }: new key "k", then key number 0 again
    assert.throws(() => decodeRecord(Uint8Array.of(RECORD_MAGIC, 1, 0x0b, 1, 1, ...key, 0, 2, 0, 0)), /twice/);
    const proto = [...new TextEncoder().encode('__proto__')];
    assert.throws(() => decodeRecord(Uint8Array.of(RECORD_MAGIC, 1, 0x0b, 1, proto.length, ...proto, 0, 0)), /forbidden/);
    assert.throws(() => decodeRecord(new TextEncoder().encode('{"a":1}')), /magic/);
  });

  it('reads an embedded value back as the value itself, wherever it sits, its keys apart from the record’s', () => {
    fc.assert(
      fc.property(value, value, fc.string({ maxLength: 8 }), (outer, inner, key) => {
        fc.pre(key !== '__proto__');
        const e = embedRecord(inner);
        // the same encoding in two places, next to plain values that reuse the embedded value's keys
        const rec = { [key]: e, list: [e, outer, inner], inner };
        assert.deepStrictEqual(decodeRecord(encodeRecord(rec)), { [key]: inner, list: [inner, outer, inner], inner });
      }),
      { numRuns: 300 },
    );
  });

  it('copies an embedded value without encoding it again, and may make one while a record is being encoded', () => {
    const part = { htlcs: Array.from({ length: 50 }, (_, i) => ({ id: BigInt(i), amountMsat: 1000n * BigInt(i) })) };
    const e = embedRecord(part);
    // the encoding is what the value was at embedRecord: a later change is not seen (states are never changed in place)
    part.htlcs.push({ id: 99n, amountMsat: 1n });
    const back = decodeRecord(encodeRecord({ a: e, b: e })) as { a: { htlcs: unknown[] }; b: { htlcs: unknown[] } };
    assert.equal(back.a.htlcs.length, 50);
    assert.deepStrictEqual(back.a, back.b);
    // made in the middle of another record's encoding (a getter runs during it): the outer record is intact
    const outer = {
      first: { someKey: 1 },
      get lazy() {
        return embedRecord({ someKey: 2, other: [3n] });
      },
      last: { someKey: 4 },
    };
    assert.deepStrictEqual(decodeRecord(encodeRecord(outer)), {
      first: { someKey: 1 },
      lazy: { someKey: 2, other: [3n] },
      last: { someKey: 4 },
    });
  });

  it('counts an embedded value’s nesting into the record’s, and rejects a malformed one', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    const e = embedRecord(deep);
    let outer: unknown = e;
    for (let i = 0; i < 30; i++) outer = [outer];
    assert.throws(() => encodeRecord(outer), /deeper than 64/);
    const ok = encodeRecord([e]);
    assert.deepStrictEqual(decodeRecord(ok), [deep]);
    // an embedded value whose length says more or less than its value takes
    const inner = [...embedRecord({ k: 1 }).bytes];
    assert.throws(() => decodeRecord(Uint8Array.of(RECORD_MAGIC, 1, 0x0c, inner.length + 1, ...inner, 0)), /wrong length/);
    assert.throws(() => decodeRecord(Uint8Array.of(RECORD_MAGIC, 1, 0x0c, inner.length - 1, ...inner)), DecodeError);
    // its keys are its own: the record cannot refer to them after it
    const k = [...new TextEncoder().encode('k')];
    const refAfter = Uint8Array.of(RECORD_MAGIC, 1, 0x0a, 2, 0x0c, 6, 0x0b, 1, 1, ...k, 0x00, 0, 0x0b, 2, 0x00, 0);
    assert.throws(() => decodeRecord(refAfter), /unknown key number 0/);
  });

  it('embeds an object once: the same object gives the same encoding, an equal but other object its own', () => {
    const part = { sigs: [new Uint8Array(64).fill(1), new Uint8Array(64).fill(2)], height: 7n };
    const e = embedOnce(part);
    assert.equal(embedOnce(part), e);
    assert.equal(embedOnce(undefined), undefined);
    const twin = { ...part };
    assert.notEqual(embedOnce(twin), e);
    assert.deepStrictEqual(embedOnce(twin).bytes, e.bytes);
    assert.deepStrictEqual(decodeRecord(encodeRecord({ a: e, b: embedOnce(twin) })), { a: part, b: part });
  });
});
