/**
 * The TLV extension that ends many BOLT messages (BOLT 1: a message's trailing TLV stream): split into the records
 * a codec knows and the unknown odd ones, which are kept and re-sent unchanged. Shared by the channel (BOLT 2) and
 * gossip (BOLT 7) codecs.
 */
import type { Reader, Writer } from './bytes.js';
import { DecodeError } from './errors.js';
import { decodeTlvStream, encodeTlvRecords, type TlvRecord } from './tlv.js';

export interface Extensible {
  /** Unknown odd TLV records of the message's stream, kept to be re-sent unchanged. */
  extensionUnknown?: TlvRecord[];
}

/** Splits a message's TLV stream into records of the given known types and kept unknown odd ones. */
export function readExtension(r: Reader, knownTypes: readonly bigint[]): { known: Map<bigint, Uint8Array>; unknown: TlvRecord[] } {
  const registry = new Map(knownTypes.map((t) => [t, { decode: (v: Uint8Array) => v.slice(), encode: (v: unknown) => v as Uint8Array }]));
  const stream = decodeTlvStream(r.rest(), registry);
  const known = new Map<bigint, Uint8Array>();
  for (const [t, v] of stream.known) known.set(t, v as Uint8Array);
  return { known, unknown: stream.unknown };
}

/** Appends the known records and the kept unknown ones, and finishes the message. */
export function writeExtension(w: Writer, records: TlvRecord[], unknown: TlvRecord[] | undefined): Uint8Array {
  const all = unknown === undefined ? records : [...records, ...unknown];
  if (all.length > 0) w.bytes(encodeTlvRecords(all));
  return w.finish();
}

export function withUnknown<M extends Extensible>(m: M, unknown: TlvRecord[]): M {
  if (unknown.length > 0) m.extensionUnknown = unknown;
  return m;
}

/** A field of fixed length, or a DecodeError naming it. */
export function checkLen(b: Uint8Array, n: number, what: string): Uint8Array {
  if (b.length !== n) throw new DecodeError('ERR_INVALID_VALUE', `${what} must be ${n} bytes, got ${b.length}`);
  return b;
}
