/**
 * A compact binary encoding for structured records (plain objects, arrays,
 * strings, numbers, booleans, null, bigints and byte strings), used where a
 * record is rewritten often and must be cheap to produce, such as a channel's
 * state after every commitment step.
 *
 * Compared with JSON it keeps bigints and Uint8Arrays as themselves (no
 * decimal or base64 text), copies byte strings as they are, and writes each
 * object key once per record (later uses refer back to it by number).
 *
 * Layout: the magic byte 0xa1, the format version 1, then one value.
 *   0x00 null | 0x01 false | 0x02 true
 *   0x03 integer of magnitude below 2^52 as zigzag LEB128
 *   0x04 float64, little-endian
 *   0x05 string: LEB128 byte length, UTF-8
 *   0x06 bigint ≥ 0 in the safe range: LEB128 | 0x07 bigint < 0 in the safe range: LEB128 of its magnitude
 *   0x08 any other bigint: its decimal text as a string (length, UTF-8)
 *   0x09 bytes: LEB128 length, raw
 *   0x0a array: LEB128 count, values (undefined and functions as null, as JSON does)
 *   0x0b object: members, each a key and a value, then a 0 byte. A key is
 *        LEB128 k: k = 1 introduces a new key (LEB128 length, UTF-8) that
 *        takes the next number in this record; k ≥ 2 repeats key number k − 2.
 *        Members whose value is undefined or a function are left out.
 *   0x0c embedded value: LEB128 byte length, then one value with a key
 *        table of its own (it starts empty; the keys it introduces are
 *        forgotten after it). Made by `embedRecord`, so that a part of a
 *        record that is rewritten unchanged (a channel's commitment while
 *        its logs change) is encoded once and copied into each rewrite.
 *
 * Objects are read back as plain objects; class instances are not supported
 * (their prototype is lost), which is fine for records built of plain data.
 */
import { DecodeError } from '../wire/errors.js';

export const RECORD_MAGIC = 0xa1;
const VERSION = 1;

const T_NULL = 0x00;
const T_FALSE = 0x01;
const T_TRUE = 0x02;
const T_INT = 0x03;
const T_F64 = 0x04;
const T_STR = 0x05;
const T_BIG_POS = 0x06;
const T_BIG_NEG = 0x07;
const T_BIG_TEXT = 0x08;
const T_BYTES = 0x09;
const T_ARRAY = 0x0a;
const T_OBJECT = 0x0b;
const T_EMBEDDED = 0x0c;

const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
/** Integers below this in magnitude still have a safe zigzag form (2|v|); larger ones go as float64, exactly. */
const ZIGZAG_LIMIT = 2 ** 52;
const MAX_DEPTH = 64;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Encoder working memory, grown on demand and reused (encoding runs to completion synchronously). */
let buf = new Uint8Array(1 << 16);
let view = new DataView(buf.buffer);
let pos = 0;
let keys = new Map<string, number>();
/** The deepest nesting of the value being encoded (an embedded value keeps its own). */
let deepest = 0;

/** A value encoded once by `embedRecord`, written as it is wherever a record holds it. */
export class EmbeddedRecord {
  constructor(
    /** The value's encoding (no magic byte or version). */
    readonly bytes: Uint8Array,
    /** How deep it nests. */
    readonly depth: number,
  ) {}
}

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, pos));
  buf = next;
  view = new DataView(buf.buffer);
}

function writeUint(n: number): void {
  ensure(8);
  const b = buf;
  let p = pos;
  while (n >= 0x80) {
    b[p++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  b[p++] = n;
  pos = p;
}

function writeString(s: string): void {
  const n = s.length;
  // ASCII fast path: one byte per UTF-16 unit
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    writeUint(n);
    ensure(n);
    const b = buf;
    let p = pos;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    pos = p;
    return;
  }
  const bytes = utf8.encode(s);
  writeUint(bytes.length);
  ensure(bytes.length);
  buf.set(bytes, pos);
  pos += bytes.length;
}

function writeValue(v: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw new DecodeError('ERR_INVALID_VALUE', `record nests deeper than ${MAX_DEPTH}`);
  if (depth > deepest) deepest = depth;
  ensure(1);
  switch (typeof v) {
    case 'number':
      if (Number.isInteger(v) && Math.abs(v) < ZIGZAG_LIMIT && !Object.is(v, -0)) {
        buf[pos++] = T_INT;
        writeUint(v >= 0 ? v * 2 : -v * 2 - 1);
      } else {
        buf[pos++] = T_F64;
        ensure(8);
        view.setFloat64(pos, v, true);
        pos += 8;
      }
      return;
    case 'string':
      buf[pos++] = T_STR;
      writeString(v);
      return;
    case 'boolean':
      buf[pos++] = v ? T_TRUE : T_FALSE;
      return;
    case 'bigint':
      if (v >= 0n && v <= MAX_SAFE_BIG) {
        buf[pos++] = T_BIG_POS;
        writeUint(Number(v));
      } else if (v < 0n && v >= -MAX_SAFE_BIG) {
        buf[pos++] = T_BIG_NEG;
        writeUint(Number(-v));
      } else {
        buf[pos++] = T_BIG_TEXT;
        writeString(v.toString());
      }
      return;
    case 'object': {
      if (v === null) {
        buf[pos++] = T_NULL;
        return;
      }
      if (v instanceof Uint8Array) {
        buf[pos++] = T_BYTES;
        const n = v.length;
        writeUint(n);
        ensure(n);
        if (n <= 16) {
          // a loop over locals beats set() for very short strings
          const b = buf;
          let p = pos;
          for (let i = 0; i < n; i++) b[p++] = v[i]!;
          pos = p;
        } else {
          buf.set(v, pos);
          pos += n;
        }
        return;
      }
      if (v instanceof EmbeddedRecord) {
        if (depth + v.depth > MAX_DEPTH) throw new DecodeError('ERR_INVALID_VALUE', `record nests deeper than ${MAX_DEPTH}`);
        if (depth + v.depth > deepest) deepest = depth + v.depth;
        buf[pos++] = T_EMBEDDED;
        const n = v.bytes.length;
        writeUint(n);
        ensure(n);
        buf.set(v.bytes, pos);
        pos += n;
        return;
      }
      if (Array.isArray(v)) {
        buf[pos++] = T_ARRAY;
        writeUint(v.length);
        for (let i = 0; i < v.length; i++) {
          const x: unknown = v[i];
          if (x === undefined || typeof x === 'function') {
            ensure(1);
            buf[pos++] = T_NULL;
          } else writeValue(x, depth + 1);
        }
        return;
      }
      buf[pos++] = T_OBJECT;
      const o = v as Record<string, unknown>;
      for (const k in o) {
        const x = o[k];
        if (x === undefined || typeof x === 'function') continue;
        const known = keys.get(k);
        if (known !== undefined) writeUint(known + 2);
        else {
          keys.set(k, keys.size);
          writeUint(1);
          writeString(k);
        }
        writeValue(x, depth + 1);
      }
      ensure(1);
      buf[pos++] = 0; // end of members
      return;
    }
    default:
      // undefined, functions and symbols at the top level or inside an array slot
      buf[pos++] = T_NULL;
  }
}

/** Encodes `value` (see the layout above). Throws on nesting deeper than 64. */
export function encodeRecord(value: unknown): Uint8Array {
  pos = 0;
  keys = new Map();
  deepest = 0;
  ensure(2);
  buf[pos++] = RECORD_MAGIC;
  buf[pos++] = VERSION;
  writeValue(value, 0);
  return buf.slice(0, pos);
}

const embeddings = new WeakMap<object, EmbeddedRecord>();

/**
 * `embedRecord(value)`, made once per object and kept while the object lives: for the parts of a record that are
 * written again and again unchanged (a value that is never changed in place, as the states of this project's state
 * machines, which make a new object for every change and share what did not change).
 */
export function embedOnce(value: object): EmbeddedRecord;
export function embedOnce(value: object | undefined): EmbeddedRecord | undefined;
export function embedOnce(value: object | undefined): EmbeddedRecord | undefined {
  if (value === undefined) return undefined;
  let e = embeddings.get(value);
  if (e === undefined) {
    e = embedRecord(value);
    embeddings.set(value, e);
  }
  return e;
}

/**
 * Encodes `value` once, to be written as it is wherever it appears in a record (as an embedded value, with a key
 * table of its own). The caller must not change `value` afterwards: the encoding is what it was at this call.
 */
export function embedRecord(value: unknown): EmbeddedRecord {
  // may run while a record is being encoded: the record's working state is put back afterwards
  const start = pos;
  const outerKeys = keys;
  const outerDeepest = deepest;
  keys = new Map();
  deepest = 0;
  try {
    writeValue(value, 0);
    return new EmbeddedRecord(buf.slice(start, pos), deepest);
  } finally {
    pos = start;
    keys = outerKeys;
    deepest = outerDeepest;
  }
}

// ---------------------------------------------------------------- decoding

class RecordReader {
  pos = 2;
  keys: string[] = [];
  private readonly view: DataView;
  constructor(readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  fail(what: string): never {
    throw new DecodeError('ERR_INVALID_VALUE', `bad record at byte ${this.pos}: ${what}`);
  }
  byte(): number {
    if (this.pos >= this.data.length) this.fail('truncated');
    return this.data[this.pos++]!;
  }
  uint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (n > Number.MAX_SAFE_INTEGER) this.fail('integer out of range');
        return n;
      }
      scale *= 0x80;
    }
    return this.fail('integer too long');
  }
  take(n: number): Uint8Array {
    if (n > this.data.length - this.pos) this.fail('truncated');
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  string(): string {
    const bytes = this.take(this.uint());
    try {
      return fromUtf8.decode(bytes);
    } catch {
      return this.fail('invalid UTF-8');
    }
  }
  value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const t = this.byte();
    switch (t) {
      case T_NULL:
        return null;
      case T_FALSE:
        return false;
      case T_TRUE:
        return true;
      case T_INT: {
        const z = this.uint();
        return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      }
      case T_F64: {
        this.take(8);
        return this.view.getFloat64(this.pos - 8, true);
      }
      case T_STR:
        return this.string();
      case T_BIG_POS:
        return BigInt(this.uint());
      case T_BIG_NEG:
        return -BigInt(this.uint());
      case T_BIG_TEXT: {
        const s = this.string();
        if (!/^-?[0-9]+$/.test(s)) this.fail('bad bigint text');
        return BigInt(s);
      }
      case T_BYTES:
        return this.take(this.uint()).slice();
      case T_ARRAY: {
        const n = this.uint();
        if (n > this.data.length - this.pos) this.fail('array count exceeds the record');
        const out: unknown[] = new Array<unknown>(n);
        for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
        return out;
      }
      case T_OBJECT: {
        const out: Record<string, unknown> = {};
        for (;;) {
          const k = this.uint();
          if (k === 0) break;
          let key: string;
          if (k === 1) {
            key = this.string();
            this.keys.push(key);
          } else {
            const known = this.keys[k - 2];
            if (known === undefined) this.fail(`unknown key number ${k - 2}`);
            key = known;
          }
          if (Object.prototype.hasOwnProperty.call(out, key)) this.fail(`key ${key} twice in one object`);
          if (key === '__proto__') this.fail('forbidden key');
          out[key] = this.value(depth + 1);
        }
        return out;
      }
      case T_EMBEDDED: {
        const n = this.uint();
        if (n > this.data.length - this.pos) this.fail('truncated');
        const end = this.pos + n;
        const outer = this.keys;
        this.keys = [];
        const v = this.value(depth);
        if (this.pos !== end) this.fail('embedded value of the wrong length');
        this.keys = outer;
        return v;
      }
      default:
        return this.fail(`unknown tag 0x${t.toString(16)}`);
    }
  }
}

/** True when `bytes` starts like a record written by encodeRecord. */
export function isRecord(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === RECORD_MAGIC;
}

/** Decodes what encodeRecord wrote; a malformed record throws DecodeError (ERR_INVALID_VALUE). */
export function decodeRecord(bytes: Uint8Array): unknown {
  if (!isRecord(bytes)) throw new DecodeError('ERR_INVALID_VALUE', 'not a record (bad magic byte)');
  if (bytes[1] !== VERSION) throw new DecodeError('ERR_INVALID_VALUE', `unknown record format version ${bytes[1]}`);
  const r = new RecordReader(bytes);
  const v = r.value(0);
  if (r.pos !== bytes.length) r.fail('trailing bytes');
  return v;
}
