/**
 * BOLT 1 TLV streams.
 *
 * A stream is a sequence of (BigSize type, BigSize length, value) records
 * with strictly increasing types. Decoding is driven by a per-stream
 * `TlvRegistry`: a known type's value is checked and decoded by its codec;
 * an unknown even type is an error (`ERR_TLV_UNKNOWN_EVEN`); an unknown odd
 * type is kept, undecoded, in `unknown` so it can be re-encoded unchanged.
 */
import { Reader, Writer, bigSizeLength, encodeBigSize } from './bytes.js';
import { ArgumentError, DecodeError } from './errors.js';

export interface TlvRecord {
  type: bigint;
  value: Uint8Array;
}

/** How one known record type is read and written. `decode` must consume `value` whole or throw. */
export interface TlvFieldCodec<T> {
  decode(value: Uint8Array): T;
  encode(v: T): Uint8Array;
}

/** Known types of one stream (namespace), keyed by type number. */
export type TlvRegistry = ReadonlyMap<bigint, TlvFieldCodec<unknown>>;

export interface TlvStream {
  /** Decoded values of known types, keyed by type. */
  known: Map<bigint, unknown>;
  /** Unknown odd records, in order, kept raw. */
  unknown: TlvRecord[];
}

/** Splits a stream into raw records, enforcing order and minimal encodings but not meaning. */
export function readTlvRecords(bytes: Uint8Array): TlvRecord[] {
  const r = new Reader(bytes);
  const out: TlvRecord[] = [];
  let last = -1n;
  while (r.remaining > 0) {
    const type = r.bigSize('tlv type');
    const length = r.bigSize('tlv length');
    if (length > BigInt(r.remaining))
      throw new DecodeError('ERR_TRUNCATED', `tlv type ${type}: length ${length} exceeds the ${r.remaining} bytes left`);
    const value = r.view(Number(length), `tlv type ${type} value`);
    if (type <= last) throw new DecodeError('ERR_TLV_ORDER', `tlv type ${type} after ${last}: types must strictly increase`);
    last = type;
    out.push({ type, value });
  }
  return out;
}

/** Decodes a whole stream against a registry. */
export function decodeTlvStream(bytes: Uint8Array, registry: TlvRegistry): TlvStream {
  const known = new Map<bigint, unknown>();
  const unknown: TlvRecord[] = [];
  for (const rec of readTlvRecords(bytes)) {
    const codec = registry.get(rec.type);
    if (codec === undefined) {
      if (rec.type % 2n === 0n) throw new DecodeError('ERR_TLV_UNKNOWN_EVEN', `unknown even tlv type ${rec.type}`);
      unknown.push({ type: rec.type, value: rec.value.slice() });
      continue;
    }
    known.set(rec.type, codec.decode(rec.value));
  }
  return { known, unknown };
}

/** Encodes records (any order given; written sorted by type). Duplicate types are a caller bug (ArgumentError). */
export function encodeTlvRecords(records: readonly TlvRecord[]): Uint8Array {
  const sorted = [...records].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  let size = 0;
  for (const rec of sorted) size += bigSizeLength(rec.type) + bigSizeLength(BigInt(rec.value.length)) + rec.value.length;
  const w = new Writer(size);
  let last = -1n;
  for (const rec of sorted) {
    if (rec.type === last) throw new ArgumentError(`duplicate tlv type ${rec.type}`);
    last = rec.type;
    w.bytes(encodeBigSize(rec.type)).bigSize(rec.value.length).bytes(rec.value);
  }
  return w.finish();
}

/** Encodes known values (through the registry) plus kept unknown records. */
export function encodeTlvStream(stream: TlvStream, registry: TlvRegistry): Uint8Array {
  const records: TlvRecord[] = [...stream.unknown];
  for (const [type, v] of stream.known) {
    const codec = registry.get(type);
    if (codec === undefined) throw new ArgumentError(`no codec registered for tlv type ${type}`);
    records.push({ type, value: codec.encode(v) });
  }
  return encodeTlvRecords(records);
}
