/**
 * TLV streams against every case of BOLT 1 Appendix B, through registries for
 * the spec's test namespaces n1 and n2 whose record codecs follow the spec's
 * field types (tu64, tu32, short_channel_id, point, u64, u16): exact record
 * lengths, minimal truncated integers, valid points. Plus the two stream
 * appending rules, round trips and random input.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Reader, Writer, bytesToHex, concatBytes, decodeTruncated, encodeTruncated, hexToBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import { AmpnodeError, ArgumentError, DecodeError } from '../../wire/errors.js';
import {
  decodeTlvStream,
  encodeTlvRecords,
  encodeTlvStream,
  readTlvRecords,
  type TlvFieldCodec,
  type TlvRecord,
  type TlvRegistry,
} from '../../wire/tlv.js';

type FieldType = 'tu64' | 'tu32' | 'short_channel_id' | 'point' | 'u64' | 'u16';
interface RecordDef {
  type: number;
  name: string;
  fields: { type: FieldType; name: string }[];
}
interface StreamCase {
  stream: string;
  stream_display: string;
  namespaces: ('n1' | 'n2')[];
  reason?: string;
}
interface Vectors {
  tlv_namespaces: Record<'n1' | 'n2', RecordDef[]>;
  tlv_rules_text: string[];
  tlv_decoding_failures: StreamCase[];
  tlv_stream_decoding_failures: StreamCase[];
  tlv_decoding_successes: (StreamCase & {
    explanation?: string;
    decoded: { record: string; fields: Record<string, string> } | null;
  })[];
}
const V = JSON.parse(readFileSync(new URL('../fixtures/bolt01-tlv.json', import.meta.url), 'utf8')) as Vectors;

// ---------------------------------------------------------------- n1 / n2 registries

/** A decoded record: its name and each field as the spec prints it. */
interface Decoded {
  record: string;
  fields: Record<string, string>;
}

const FIXED_SIZE: Record<FieldType, number | null> = { tu64: null, tu32: null, short_channel_id: 8, point: 33, u64: 8, u16: 2 };

function lengthError(rec: RecordDef, why: string): DecodeError {
  return new DecodeError('ERR_TLV_LENGTH', `${rec.name}: ${why}`);
}

function recordCodec(rec: RecordDef): TlvFieldCodec<Decoded> {
  const fixed = rec.fields.filter((f) => FIXED_SIZE[f.type] !== null).reduce((n, f) => n + FIXED_SIZE[f.type]!, 0);
  const truncated = rec.fields.find((f) => FIXED_SIZE[f.type] === null);
  // A truncated integer may only be the last field.
  assert.ok(truncated === undefined || truncated === rec.fields[rec.fields.length - 1]);
  return {
    decode(value) {
      if (value.length < fixed) throw lengthError(rec, `less than encoding length (${value.length} < ${fixed})`);
      if (truncated === undefined && value.length > fixed)
        throw lengthError(rec, `greater than encoding length (${value.length} > ${fixed})`);
      const r = new Reader(value);
      const fields: Record<string, string> = {};
      for (const f of rec.fields) {
        switch (f.type) {
          case 'tu64':
          case 'tu32':
            fields[f.name] = decodeTruncated(r.rest(), f.type === 'tu64' ? 8 : 4).toString();
            break;
          case 'u64':
            fields[f.name] = r.u64().toString();
            break;
          case 'u16':
            fields[f.name] = String(r.u16());
            break;
          case 'short_channel_id': {
            const v = r.u64();
            fields[f.name] = `${v >> 40n}x${(v >> 16n) & 0xffffffn}x${v & 0xffffn}`;
            break;
          }
          case 'point': {
            const p = r.bytes(33);
            if ((p[0] !== 2 && p[0] !== 3) || !secp.isPublicKey(p))
              throw new DecodeError('ERR_INVALID_VALUE', `${f.name} is not a valid point`);
            fields[f.name] = bytesToHex(p);
            break;
          }
        }
      }
      r.end(rec.name);
      return { record: rec.name, fields };
    },
    encode(d) {
      const w = new Writer();
      for (const f of rec.fields) {
        const s = d.fields[f.name];
        if (s === undefined) throw new ArgumentError(`missing ${f.name}`);
        switch (f.type) {
          case 'tu64':
          case 'tu32':
            w.bytes(encodeTruncated(BigInt(s), f.type === 'tu64' ? 8 : 4));
            break;
          case 'u64':
            w.u64(BigInt(s));
            break;
          case 'u16':
            w.u16(Number(s));
            break;
          case 'short_channel_id': {
            const [block, tx, out] = s.split('x').map(BigInt) as [bigint, bigint, bigint];
            w.u64((block << 40n) | (tx << 16n) | out);
            break;
          }
          case 'point':
            w.bytes(hexToBytes(s));
            break;
        }
      }
      return w.finish();
    },
  };
}

function registryFor(ns: 'n1' | 'n2'): TlvRegistry {
  return new Map(V.tlv_namespaces[ns].map((rec) => [BigInt(rec.type), recordCodec(rec) as TlvFieldCodec<unknown>]));
}
const REGISTRIES = { n1: registryFor('n1'), n2: registryFor('n2') };

// ---------------------------------------------------------------- expected codes

/** The spec's failure reasons mapped to our DecodeError codes. */
function expectedCode(reason: string): string {
  const rules: [RegExp, string][] = [
    [/^type truncated$|^missing length$|^\(length truncated\)$|^missing value$|^value truncated$/, 'ERR_TRUNCATED'],
    [/^not minimally encoded (type|length)$|is not minimal$/, 'ERR_NON_MINIMAL'],
    [/^unknown even (type|field)/, 'ERR_TLV_UNKNOWN_EVEN'],
    [/^(greater|less) than encoding length/, 'ERR_TLV_LENGTH'],
    [/is not a valid point/, 'ERR_INVALID_VALUE'],
    [/invalid ordering|duplicate TLV type/, 'ERR_TLV_ORDER'],
  ];
  for (const [re, code] of rules) if (re.test(reason)) return code;
  throw new Error(`no code mapped for the spec reason "${reason}"`);
}

function isDecodeError(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

// ---------------------------------------------------------------- vectors

describe('TLV decoding failures (BOLT 1 Appendix B)', () => {
  assert.equal(V.tlv_decoding_failures.length, 33);
  for (const t of V.tlv_decoding_failures) {
    for (const ns of t.namespaces) {
      it(`${ns}: ${t.stream_display.slice(0, 48)} — ${t.reason}`, () => {
        assert.throws(() => decodeTlvStream(hexToBytes(t.stream), REGISTRIES[ns]), isDecodeError(expectedCode(t.reason!)));
      });
    }
  }
});

describe('TLV stream decoding failures (BOLT 1 Appendix B)', () => {
  assert.equal(V.tlv_stream_decoding_failures.length, 5);
  for (const t of V.tlv_stream_decoding_failures) {
    for (const ns of t.namespaces) {
      it(`${ns}: ${t.stream_display} — ${t.reason}`, () => {
        const code = expectedCode(t.reason!);
        assert.throws(() => decodeTlvStream(hexToBytes(t.stream), REGISTRIES[ns]), isDecodeError(code));
        // Ordering is a property of the stream itself, whatever the namespace.
        assert.throws(() => readTlvRecords(hexToBytes(t.stream)), isDecodeError(code));
      });
    }
  }
});

describe('TLV decoding successes (BOLT 1 Appendix B)', () => {
  assert.equal(V.tlv_decoding_successes.length, 19);
  for (const t of V.tlv_decoding_successes) {
    for (const ns of t.namespaces) {
      it(`${ns}: ${t.stream_display} — ${t.explanation ?? t.decoded?.record}`, () => {
        const bytes = hexToBytes(t.stream);
        const s = decodeTlvStream(bytes, REGISTRIES[ns]);
        if (t.decoded === null) {
          assert.equal(s.known.size, 0, 'every record is ignored');
          assert.ok(s.unknown.every((r) => r.type % 2n === 1n));
        } else {
          assert.equal(s.known.size, 1);
          assert.equal(s.unknown.length, 0);
          assert.deepEqual([...s.known.values()][0], t.decoded);
        }
        // Re-encoding gives back the very same bytes.
        assert.equal(bytesToHex(encodeTlvStream(s, REGISTRIES[ns])), t.stream);
      });
    }
  }
});

describe('TLV appending rules (BOLT 1 Appendix B)', () => {
  assert.equal(V.tlv_rules_text.length, 2);
  const successes = V.tlv_decoding_successes;
  const failures = [...V.tlv_decoding_failures, ...V.tlv_stream_decoding_failures];
  const typesOf = (hex: string) => readTlvRecords(hexToBytes(hex)).map((r) => r.type);

  it(V.tlv_rules_text[0]!, () => {
    let n = 0;
    for (const ns of ['n1', 'n2'] as const)
      for (const ok of successes.filter((s) => s.namespaces.includes(ns)))
        for (const bad of failures.filter((f) => f.namespaces.includes(ns))) {
          const stream = hexToBytes(ok.stream + bad.stream);
          assert.throws(() => decodeTlvStream(stream, REGISTRIES[ns]), DecodeError, `${ok.stream} + ${bad.stream}`);
          n++;
        }
    assert.ok(n > 500);
  });

  it(V.tlv_rules_text[1]!, () => {
    let n = 0;
    for (const ns of ['n1', 'n2'] as const) {
      const valid = successes.filter((s) => s.namespaces.includes(ns) && s.stream !== '');
      for (const lo of valid)
        for (const hi of valid) {
          const a = typesOf(lo.stream);
          const b = typesOf(hi.stream);
          if (!(a[a.length - 1]! < b[0]!)) continue;
          const s = decodeTlvStream(hexToBytes(lo.stream + hi.stream), REGISTRIES[ns]);
          assert.equal(s.known.size + s.unknown.length, 2);
          n++;
        }
    }
    assert.ok(n > 20);
  });
});

// ---------------------------------------------------------------- properties

const recordsArb = fc
  .uniqueArray(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { maxLength: 6 })
  .chain((types) => fc.tuple(...types.map((type) => fc.uint8Array({ maxLength: 300 }).map((value): TlvRecord => ({ type, value })))));

describe('TLV properties', () => {
  it('any set of records round-trips through encodeTlvRecords / readTlvRecords, sorted', () => {
    fc.assert(
      fc.property(recordsArb, (recs) => {
        const bytes = encodeTlvRecords(recs);
        const back = readTlvRecords(bytes);
        const sorted = [...recs].sort((a, b) => (a.type < b.type ? -1 : 1));
        assert.deepEqual(
          back.map((r) => [r.type, bytesToHex(r.value)]),
          sorted.map((r) => [r.type, bytesToHex(r.value)]),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('odd unknown records survive decodeTlvStream → encodeTlvStream unchanged', () => {
    fc.assert(
      fc.property(recordsArb, (recs) => {
        const odd = recs.map((r) => ({ type: r.type | 1n, value: r.value }));
        const unique = [...new Map(odd.map((r) => [r.type, r])).values()];
        const bytes = encodeTlvRecords(unique);
        const empty: TlvRegistry = new Map();
        assert.equal(bytesToHex(encodeTlvStream(decodeTlvStream(bytes, empty), empty)), bytesToHex(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes decode or throw a DecodeError (n1, n2, raw)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          recordsArb.map((r) => encodeTlvRecords(r).subarray(0, 80)),
        ),
        (bytes) => {
          for (const f of [
            () => readTlvRecords(bytes),
            () => decodeTlvStream(bytes, REGISTRIES.n1),
            () => decodeTlvStream(bytes, REGISTRIES.n2),
          ]) {
            try {
              assert.notEqual(f(), undefined);
            } catch (e) {
              assert.ok(e instanceof AmpnodeError, `not an AmpnodeError: ${String(e)}`);
            }
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('encoding duplicates or unregistered known types is a caller error', () => {
    assert.throws(
      () =>
        encodeTlvRecords([
          { type: 1n, value: new Uint8Array() },
          { type: 1n, value: new Uint8Array() },
        ]),
      ArgumentError,
    );
    assert.throws(() => encodeTlvStream({ known: new Map([[7n, 1]]), unknown: [] }, REGISTRIES.n1), ArgumentError);
    assert.equal(encodeTlvRecords([]).length, 0);
    assert.equal(bytesToHex(concatBytes(encodeTlvRecords([{ type: 0xfdn, value: hexToBytes('aa') }]))), 'fd00fd01aa');
  });
});
