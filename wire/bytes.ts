/**
 * Byte helpers: hex, concatenation, comparison, and a bounds-checked
 * reader/writer for the BOLT 1 fundamental types (big-endian integers,
 * truncated and signed integers, BigSize). Every read past the end throws a
 * `DecodeError('ERR_TRUNCATED')`; no decoder ever sees `undefined`. Writing a
 * value that does not fit its field is an `ArgumentError`, never a silent wrap.
 */
import { ArgumentError, DecodeError } from './errors.js';

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

export function hexToBytes(hex: string): Uint8Array {
  if (!HEX_RE.test(hex)) throw new ArgumentError(`not an even-length hex string: ${hex.slice(0, 40)}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Lexicographic comparison, as BIP69 and key ordering need. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function xorBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new ArgumentError(`xor of unequal lengths ${a.length} and ${b.length}`);
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export function u16be(n: number): Uint8Array {
  return new Uint8Array([(n >>> 8) & 0xff, n & 0xff]);
}

export function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

export function u64be(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, n));
  return b;
}

const U64_MAX = (1n << 64n) - 1n;

/** Number of bytes of a truncated integer (tu16/tu32/tu64): no leading zero bytes. */
function truncatedLength(n: bigint): number {
  let len = 0;
  while (n > 0n) {
    len++;
    n >>= 8n;
  }
  return len;
}

export function encodeTruncated(n: bigint | number, maxBytes: 2 | 4 | 8): Uint8Array {
  const v = BigInt(n);
  if (v < 0n || v >= 1n << BigInt(8 * maxBytes)) throw new ArgumentError(`value ${v} does not fit tu${8 * maxBytes}`);
  const len = truncatedLength(v);
  const out = new Uint8Array(len);
  let x = v;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/**
 * Decodes a truncated integer that fills a whole TLV value. A value longer
 * than the type allows is a record-length error (`ERR_TLV_LENGTH`), as the
 * BOLT 1 TLV vectors classify it; a leading zero byte is `ERR_NON_MINIMAL`.
 */
export function decodeTruncated(bytes: Uint8Array, maxBytes: 2 | 4 | 8): bigint {
  if (bytes.length > maxBytes) throw new DecodeError('ERR_TLV_LENGTH', `tu${8 * maxBytes} longer than ${maxBytes} bytes`);
  if (bytes.length > 0 && bytes[0] === 0) throw new DecodeError('ERR_NON_MINIMAL', `tu${8 * maxBytes} has a leading zero byte`);
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/**
 * Signed integers (s8/s16/s32/s64): big-endian two's complement of a fixed
 * width (BOLT 1 "Fundamental Types", Appendix D).
 */
export function encodeSigned(n: bigint | number, width: 1 | 2 | 4 | 8): Uint8Array {
  const v = BigInt(n);
  const bits = BigInt(8 * width);
  if (v < -(1n << (bits - 1n)) || v >= 1n << (bits - 1n)) throw new ArgumentError(`value ${v} does not fit s${8 * width}`);
  let x = BigInt.asUintN(8 * width, v);
  const out = new Uint8Array(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** Decodes an s8/s16/s32/s64 from exactly 1, 2, 4 or 8 bytes. */
export function decodeSigned(bytes: Uint8Array): bigint {
  const w = bytes.length;
  if (w !== 1 && w !== 2 && w !== 4 && w !== 8) throw new DecodeError('ERR_TLV_LENGTH', `a signed integer is 1, 2, 4 or 8 bytes, not ${w}`);
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return BigInt.asIntN(8 * w, v);
}

/** The narrowest of s8/s16/s32/s64 (in bytes) that holds `n`. */
export function signedWidth(n: bigint | number): 1 | 2 | 4 | 8 {
  const v = BigInt(n);
  for (const w of [1, 2, 4, 8] as const) {
    const half = 1n << BigInt(8 * w - 1);
    if (v >= -half && v < half) return w;
  }
  throw new ArgumentError(`value ${v} does not fit s64`);
}

export function bigSizeLength(n: bigint): number {
  if (n < 0xfdn) return 1;
  if (n <= 0xffffn) return 3;
  if (n <= 0xffffffffn) return 5;
  return 9;
}

export function encodeBigSize(n: bigint | number): Uint8Array {
  const v = BigInt(n);
  if (v < 0n || v > U64_MAX) throw new ArgumentError(`BigSize out of range: ${v}`);
  if (v < 0xfdn) return new Uint8Array([Number(v)]);
  if (v <= 0xffffn) return concatBytes(new Uint8Array([0xfd]), u16be(Number(v)));
  if (v <= 0xffffffffn) return concatBytes(new Uint8Array([0xfe]), u32be(Number(v)));
  return concatBytes(new Uint8Array([0xff]), u64be(v));
}

/** Bounds-checked cursor over a byte array. */
export class Reader {
  private readonly dv: DataView;
  pos = 0;
  constructor(readonly data: Uint8Array) {
    this.dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  get remaining(): number {
    return this.data.length - this.pos;
  }
  private need(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new ArgumentError(`${what}: cannot read ${n} bytes`);
    if (this.pos + n > this.data.length)
      throw new DecodeError('ERR_TRUNCATED', `${what}: need ${n} bytes, have ${this.data.length - this.pos}`);
  }
  u8(what = 'u8'): number {
    this.need(1, what);
    return this.dv.getUint8(this.pos++);
  }
  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.dv.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  u64(what = 'u64'): bigint {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }
  /** A view (not a copy) of the next n bytes. */
  view(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** A copy of the next n bytes. */
  bytes(n: number, what = 'bytes'): Uint8Array {
    return this.view(n, what).slice();
  }
  rest(): Uint8Array {
    return this.view(this.remaining, 'rest');
  }
  bigSize(what = 'bigsize'): bigint {
    const first = this.u8(what);
    if (first < 0xfd) return BigInt(first);
    if (first === 0xfd) {
      const v = this.u16(what);
      if (v < 0xfd) throw new DecodeError('ERR_NON_MINIMAL', `${what}: decoded bigsize is not canonical`);
      return BigInt(v);
    }
    if (first === 0xfe) {
      const v = this.u32(what);
      if (v < 0x10000) throw new DecodeError('ERR_NON_MINIMAL', `${what}: decoded bigsize is not canonical`);
      return BigInt(v);
    }
    const v = this.u64(what);
    if (v < 0x100000000n) throw new DecodeError('ERR_NON_MINIMAL', `${what}: decoded bigsize is not canonical`);
    return v;
  }
  end(what = 'message'): void {
    if (this.remaining !== 0) throw new DecodeError('ERR_TRAILING_BYTES', `${what}: ${this.remaining} trailing bytes`);
  }
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new ArgumentError(`${what} out of range: ${v}`);
}

/** Growable writer; `finish()` returns exactly the bytes written. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  pos = 0;
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }
  private grow(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(this.buf.length * 2, 16);
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): this {
    checkUint(v, 0xff, 'u8');
    this.grow(1);
    this.view.setUint8(this.pos++, v);
    return this;
  }
  u16(v: number): this {
    checkUint(v, 0xffff, 'u16');
    this.grow(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    checkUint(v, 0xffffffff, 'u32');
    this.grow(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }
  u64(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new ArgumentError(`u64 out of range: ${String(v)}`);
    this.grow(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v));
    this.pos += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  bigSize(v: bigint | number): this {
    return this.bytes(encodeBigSize(v));
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const MASK64 = (1n << 64n) - 1n;

/** A 32-byte big-endian unsigned integer as a bigint. */
export function bytes32ToBigint(b: Uint8Array): bigint {
  if (b.length !== 32) throw new DecodeError('ERR_INVALID_VALUE', `expected 32 bytes, got ${b.length}`);
  const v = new DataView(b.buffer, b.byteOffset, 32);
  return (v.getBigUint64(0) << 192n) | (v.getBigUint64(8) << 128n) | (v.getBigUint64(16) << 64n) | v.getBigUint64(24);
}

/** A bigint in [0, 2^256) as 32 big-endian bytes, written at `offset` of `out` (a new array by default). */
export function bigintToBytes32(n: bigint, out: Uint8Array = new Uint8Array(32), offset = 0): Uint8Array {
  if (n < 0n || n >> 256n !== 0n) throw new DecodeError('ERR_INVALID_VALUE', 'value does not fit in 32 bytes');
  const v = new DataView(out.buffer, out.byteOffset + offset, 32);
  v.setBigUint64(0, (n >> 192n) & MASK64);
  v.setBigUint64(8, (n >> 128n) & MASK64);
  v.setBigUint64(16, (n >> 64n) & MASK64);
  v.setBigUint64(24, n & MASK64);
  return out;
}

/**
 * Fresh byte arrays carved out of larger blocks: a typed array longer than 64 bytes gets a backing store of its own
 * outside the JS heap, which costs about as much as hashing a kilobyte; a view into a shared block costs a small
 * object. For bytes written once and kept as they are (store keys and values): a block lives as long as any view
 * into it, so a view kept long keeps its whole block.
 */
export class ByteSlab {
  private block = new Uint8Array(0);
  private at = 0;
  constructor(private readonly blockBytes = 64 * 1024) {}

  /** `n` zeroed bytes of their own (no other view shares them). */
  take(n: number): Uint8Array {
    if (n > this.blockBytes / 4) return new Uint8Array(n);
    if (this.at + n > this.block.length) {
      this.block = new Uint8Array(this.blockBytes);
      this.at = 0;
    }
    const v = this.block.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  /** A copy of `src` from `from` to `to` in bytes of its own. */
  copy(src: Uint8Array, from = 0, to = src.length): Uint8Array {
    const v = this.take(to - from);
    v.set(src.subarray(from, to));
    return v;
  }
}
