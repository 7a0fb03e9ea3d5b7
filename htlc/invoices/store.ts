/**
 * The registry's records in its store:
 *
 *   i/<payment_addr>              the Invoice (without its AMP sets' HTLCs)
 *   h/<payment_hash>              → payment_addr
 *   a/<add index, 16 hex>         → payment_addr (listing by add index)
 *   s/<set_id>                    a settled AmpSet (set_ids are unique across invoices)
 *   is/<payment_addr>/<settle index, 16 hex>  an invoice's sets in settle order: one set_id, or a chunk of
 *                                 the set_ids of consecutive sets of that invoice from that settle index on
 *   si/<settle index, 16 hex>     → payment_addr and set_id (replaying settlements; no gaps), or a chunk: the
 *                                 references of the AMP sets of one settle batch, from that settle index on
 *   counters                      { addIndex, settleIndex }
 *
 * Keys are text with bytes as hex. Values: a settled set in the set record
 * format below; an invoice as a db/record.ts record; a settlement reference
 * and an is/ chunk as a tag byte and raw 32-byte values; counters as JSON.
 * Values written in the earlier format (JSON with bytes as hex and bigints as
 * strings, as the switch's; an is/ entry as 64 hex characters) are still
 * read: the first byte tells the formats apart ('{' for JSON).
 *
 * Checkpoints. An AMP set's write is its record, and a settle batch's one
 * chunk of settlement references (so n sets cost n + 1 puts, one batch); its
 * invoice's header and list of sets are written
 * with every CHECKPOINT_SETS-th set (registry.ts), and with every other
 * batch that writes the counters. So the counters' settle index is a
 * checkpoint: every settlement up to it is in its invoice's header and list.
 * Loading reads the settlements after it (at most a checkpoint's worth of
 * AMP sets) and counts them into their invoices again.
 *
 * Open invoices are kept in memory (their headers only); settled sets are
 * read from the store when asked for, so an invoice with a million settled
 * sets costs no more memory than one with none.
 *
 * Set record (all integers big-endian):
 *   u8 SET_RECORD_V1 | set_id[32] | payment_addr[32] | u64 settle_index | u64 settled_at (s)
 *   | u64 amount_paid_msat | u32 n, then n HTLCs:
 *   u8 flags (1: AMP share and child index follow, 2: custom records follow) | u16 circuit length | circuit (UTF-8)
 *   | u64 amount_msat | payment_hash[32] | preimage[32] | [share[32] | u32 child_index]
 *   | [u16 count, then each: u64 type | u32 length | value]
 *
 * Set record, version 2 (what the registry writes): the same header with u8 SET_RECORD_V2, then n AMP HTLCs:
 *   u8 flags (2: custom records follow) | u16 channel id length | channel id (UTF-8) | u64 htlc id | u64 amount_msat
 *   | share[32] | u32 child_index | [custom records as above]
 * Nothing that follows from the rest is written: the root is the XOR of the set's shares, each child's preimage
 * SHA256(root ‖ share ‖ BE32(child_index)) and its payment hash SHA256(preimage) (the registry checked, before the
 * set settled, that they give the hashes the HTLCs came with), its circuit key `channel id/htlc id` as the switch
 * writes it. So the write of a settling set is half the bytes, and a lookup derives the rest (2 × SHA-256 per HTLC).
 */
import type { BatchOp, KvStore } from '../../db/store.js';
import { decodeRecord, encodeRecord, isRecord } from '../../db/record.js';
import { ByteSlab, bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { DecodeError } from '../../wire/errors.js';
import type { TlvRecord } from '../../wire/tlv.js';
import { deriveChild, reconstructRoot } from '../../onion/index.js';
import { decodeJson, encodeJson, keyString } from '../switch/circuit-map.js';
import { InvoiceError, type AmpSet, type Invoice, type SettledHtlc } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

const idx = (n: bigint): string => n.toString(16).padStart(16, '0');

const HEX_DIGITS = new TextEncoder().encode('0123456789abcdef');

/**
 * The keys and values of settled sets and of chunks of settlement references: written once, never rewritten, and
 * kept for good (in a memory store, as they are), so that no block is held by a few stray views.
 */
const slab = new ByteSlab();

/** The ASCII key `prefix` ‖ hex(bytes) (as `enc.encode(prefix + bytesToHex(bytes))`, without the string). */
function hexKey(prefix: string, bytes: Uint8Array, out: Uint8Array = new Uint8Array(prefix.length + 2 * bytes.length)): Uint8Array {
  for (let i = 0; i < prefix.length; i++) out[i] = prefix.charCodeAt(i);
  for (let i = 0, at = prefix.length; i < bytes.length; i++, at += 2) {
    out[at] = HEX_DIGITS[bytes[i]! >>> 4]!;
    out[at + 1] = HEX_DIGITS[bytes[i]! & 0xf]!;
  }
  return out;
}

export const invoiceKey = (addr: Uint8Array): Uint8Array => hexKey('i/', addr);
export const hashKey = (hash: Uint8Array): Uint8Array => hexKey('h/', hash);
export const addKey = (n: bigint): Uint8Array => enc.encode(`a/${idx(n)}`);
export const setKey = (setId: Uint8Array): Uint8Array => hexKey('s/', setId);
export const invoiceSetKey = (addr: Uint8Array, settleIndex: bigint): Uint8Array =>
  enc.encode(`is/${bytesToHex(addr)}/${idx(settleIndex)}`);
export const settleKey = (n: bigint): Uint8Array => enc.encode(`si/${idx(n)}`);
const COUNTERS = enc.encode('counters');

/** First byte of a JSON value (an object): the earlier format of every record. */
const JSON_OBJECT_START = 0x7b;
/** First byte of a set record in the formats above. */
export const SET_RECORD_V1 = 0x01;
export const SET_RECORD_V2 = 0x02;
const FLAG_AMP = 1;
const FLAG_CUSTOM = 2;
const HASH_LENGTH = 32;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const TWO_POW_32 = 2 ** 32;

export interface Counters {
  addIndex: bigint;
  settleIndex: bigint;
}

// ---------------------------------------------------------------- set records

/** Encoder working memory, grown on demand (encoding runs to completion synchronously). */
let wbuf = new Uint8Array(4096);
let wview = new DataView(wbuf.buffer);
let wpos = 0;

function ensure(n: number): void {
  if (wpos + n <= wbuf.length) return;
  let size = wbuf.length * 2;
  while (size < wpos + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(wbuf.subarray(0, wpos));
  wbuf = next;
  wview = new DataView(next.buffer);
}

const U64_MAX = 0xffffffffffffffffn;

function putU64(v: bigint, what: string): void {
  if (v < 0n || v > U64_MAX) throw new InvoiceError('ERR_INVOICE_ARGUMENT', `${what} does not fit a u64: ${v}`);
  wview.setBigUint64(wpos, v);
  wpos += 8;
}

function putBytes(b: Uint8Array, length: number, what: string): void {
  if (b.length !== length) throw new InvoiceError('ERR_INVOICE_ARGUMENT', `${what} must be ${length} bytes, got ${b.length}`);
  putRange(b, 0, length);
}

/** `length` bytes of `src` from `from` (a loop: cheaper than set() with a subarray for 32 bytes). */
function putRange(src: Uint8Array, from: number, length: number): void {
  const w = wbuf;
  let at = wpos;
  for (let i = from, end = from + length; i < end; i++) w[at++] = src[i]!;
  wpos = at;
}

/** A settled set by columns: what the registry holds of a set being settled, without an object per HTLC. */
export interface SetColumns {
  setId: Uint8Array;
  paymentAddr: Uint8Array;
  settleIndex: bigint;
  settledAt: number;
  amountPaidMsat: bigint;
  /** HTLCs (all AMP) */
  n: number;
  /** Each HTLC's circuit key: its channel id and HTLC id. */
  channelIds: readonly string[];
  htlcIds: readonly bigint[];
  amounts: readonly bigint[];
  /** Per HTLC at i × 64: its share (then its payment hash, which the record does not keep). */
  sharesAndHashes: Uint8Array;
  childIndexes: readonly number[];
  customRecords: readonly (readonly TlvRecord[] | undefined)[];
}

const SHARE_AND_HASH = 2 * HASH_LENGTH;

/** Writes a circuit key (ASCII as the switch makes them; anything else as UTF-8) with its u16 length. */
function putCircuit(c: string): void {
  ensure(2 + 3 * c.length);
  let ascii = true;
  const w = wbuf;
  const at = wpos + 2;
  for (let i = 0, len = c.length; i < len; i++) {
    const ch = c.charCodeAt(i);
    if (ch > 0x7f) {
      ascii = false;
      break;
    }
    w[at + i] = ch;
  }
  const written = ascii ? c.length : enc.encodeInto(c, wbuf.subarray(wpos + 2)).written;
  if (written > U16_MAX) throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'circuit key too long');
  wview.setUint16(wpos, written);
  wpos += 2 + written;
}

/** Starts a set record: version, set_id, payment_addr, settle index, settle time, amount paid, HTLC count. */
function putSetHeader(
  h: { setId: Uint8Array; paymentAddr: Uint8Array; settleIndex: bigint; settledAt: number; amountPaidMsat: bigint },
  n: number,
  version: number,
): void {
  wpos = 0;
  ensure(1 + 2 * HASH_LENGTH + 3 * 8 + 4);
  wbuf[wpos++] = version;
  putBytes(h.setId, HASH_LENGTH, 'set_id');
  putBytes(h.paymentAddr, HASH_LENGTH, 'payment_addr');
  putU64(h.settleIndex, 'settle index');
  if (!Number.isSafeInteger(h.settledAt) || h.settledAt < 0)
    throw new InvoiceError('ERR_INVOICE_ARGUMENT', `settle time out of range: ${h.settledAt}`);
  wview.setUint32(wpos, Math.floor(h.settledAt / TWO_POW_32));
  wview.setUint32(wpos + 4, h.settledAt % TWO_POW_32);
  wpos += 8;
  putU64(h.amountPaidMsat, 'amount paid');
  wview.setUint32(wpos, n);
  wpos += 4;
}

/** Channel ids as UTF-8 (a node has few channels; the cache is dropped whole when it grows past this many). */
const CHANNEL_ID_CACHE_MAX = 1024;
const channelIdBytes = new Map<string, Uint8Array>();

function channelIdUtf8(id: string): Uint8Array {
  let b = channelIdBytes.get(id);
  if (b === undefined) {
    b = enc.encode(id);
    if (b.length > U16_MAX) throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'channel id too long');
    if (channelIdBytes.size >= CHANNEL_ID_CACHE_MAX) channelIdBytes.clear();
    channelIdBytes.set(id, b);
  }
  return b;
}

/** A settled AMP set in the set record format, version 2, from its columns. */
export function encodeSetColumns(c: SetColumns): Uint8Array {
  putSetHeader(c, c.n, SET_RECORD_V2);
  const sh = c.sharesAndHashes;
  if (sh.length < c.n * SHARE_AND_HASH) throw new InvoiceError('ERR_INVOICE_ARGUMENT', `shares for ${c.n} HTLCs, got ${sh.length} bytes`);
  for (let i = 0; i < c.n; i++) {
    const custom = c.customRecords[i] !== undefined && c.customRecords[i]!.length > 0 ? c.customRecords[i]! : undefined;
    const chan = channelIdUtf8(c.channelIds[i]!);
    ensure(1 + 2 + chan.length + 2 * 8 + HASH_LENGTH + 4);
    const w = wbuf;
    w[wpos] = custom !== undefined ? FLAG_CUSTOM : 0;
    wview.setUint16(wpos + 1, chan.length);
    w.set(chan, wpos + 3);
    wpos += 3 + chan.length;
    putU64(c.htlcIds[i]!, 'HTLC id');
    putU64(c.amounts[i]!, 'HTLC amount');
    putRange(sh, i * SHARE_AND_HASH, HASH_LENGTH);
    const ci = c.childIndexes[i]!;
    if (!Number.isInteger(ci) || ci < 0 || ci > U32_MAX) throw new InvoiceError('ERR_INVOICE_ARGUMENT', `child index out of range: ${ci}`);
    wview.setUint32(wpos, ci);
    wpos += 4;
    if (custom !== undefined) putCustom(custom);
  }
  return slab.copy(wbuf, 0, wpos);
}

function putCustom(custom: readonly TlvRecord[]): void {
  if (custom.length > U16_MAX) throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'too many custom records');
  ensure(2);
  wview.setUint16(wpos, custom.length);
  wpos += 2;
  for (const r of custom) {
    ensure(8 + 4 + r.value.length);
    putU64(r.type, 'custom record type');
    wview.setUint32(wpos, r.value.length);
    wpos += 4;
    wbuf.set(r.value, wpos);
    wpos += r.value.length;
  }
}

/** A settled set in the set record format. */
export function encodeSet(set: AmpSet): Uint8Array {
  putSetHeader(set, set.htlcs.length, SET_RECORD_V1);
  for (const h of set.htlcs) {
    const custom = h.customRecords !== undefined && h.customRecords.length > 0 ? h.customRecords : undefined;
    ensure(1);
    wbuf[wpos++] = (h.share !== undefined ? FLAG_AMP : 0) | (custom !== undefined ? FLAG_CUSTOM : 0);
    putCircuit(h.circuit);
    ensure(8 + 3 * HASH_LENGTH + 4 + 2);
    putU64(h.amountMsat, 'HTLC amount');
    putBytes(h.paymentHash, HASH_LENGTH, 'payment hash');
    putBytes(h.preimage, HASH_LENGTH, 'preimage');
    if (h.share !== undefined) {
      putBytes(h.share, HASH_LENGTH, 'share');
      const ci = h.childIndex ?? 0;
      if (!Number.isInteger(ci) || ci < 0 || ci > U32_MAX)
        throw new InvoiceError('ERR_INVOICE_ARGUMENT', `child index out of range: ${ci}`);
      wview.setUint32(wpos, ci);
      wpos += 4;
    }
    if (custom !== undefined) putCustom(custom);
  }
  return wbuf.slice(0, wpos);
}

class SetReader {
  pos = 1;
  private readonly view: DataView;
  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.data.length)
      throw new DecodeError('ERR_TRUNCATED', `set record: need ${n} bytes at ${this.pos}, have ${this.data.length - this.pos}`);
  }
  u8(): number {
    this.need(1);
    return this.data[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }
  seconds(): number {
    const hi = this.u32();
    return hi * TWO_POW_32 + this.u32();
  }
  /** A view of the record's bytes (the record is the caller's own copy). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  left(): number {
    return this.data.length - this.pos;
  }
  end(): void {
    if (this.pos !== this.data.length)
      throw new DecodeError('ERR_TRAILING_BYTES', `set record: ${this.data.length - this.pos} trailing bytes`);
  }
}

function readCustom(r: SetReader): TlvRecord[] {
  const count = r.u16();
  const records: TlvRecord[] = [];
  for (let k = 0; k < count; k++) {
    const type = r.u64();
    records.push({ type, value: r.bytes(r.u32()) });
  }
  return records;
}

/** Reads a set record (either version above). */
export function decodeSet(v: Uint8Array): AmpSet {
  if (v[0] !== SET_RECORD_V1 && v[0] !== SET_RECORD_V2) throw new DecodeError('ERR_INVALID_VALUE', `not a set record (first byte ${v[0]})`);
  const r = new SetReader(v);
  const setId = r.bytes(HASH_LENGTH);
  const paymentAddr = r.bytes(HASH_LENGTH);
  const settleIndex = r.u64();
  const settledAt = r.seconds();
  const amountPaidMsat = r.u64();
  const n = r.u32();
  const htlcs = v[0] === SET_RECORD_V1 ? readHtlcsV1(r, n) : readHtlcsV2(r, n);
  r.end();
  return { setId, paymentAddr, state: 'settled', settleIndex, settledAt, amountPaidMsat, htlcs };
}

function readHtlcsV1(r: SetReader, n: number): SettledHtlc[] {
  const htlcs: SettledHtlc[] = [];
  for (let i = 0; i < n; i++) {
    const flags = r.u8();
    const circuit = dec.decode(r.bytes(r.u16()));
    const amountMsat = r.u64();
    const paymentHash = r.bytes(HASH_LENGTH);
    const preimage = r.bytes(HASH_LENGTH);
    const h: SettledHtlc = { circuit, amountMsat, paymentHash, preimage };
    if ((flags & FLAG_AMP) !== 0) {
      h.share = r.bytes(HASH_LENGTH);
      h.childIndex = r.u32();
    }
    if ((flags & FLAG_CUSTOM) !== 0) h.customRecords = readCustom(r);
    htlcs.push(h);
  }
  return htlcs;
}

/** Version 2: AMP HTLCs whose preimages and hashes follow from the shares (root = their XOR). */
function readHtlcsV2(r: SetReader, n: number): SettledHtlc[] {
  // bounded by the record: each HTLC takes at least this many bytes
  const least = 1 + 2 + 2 * 8 + HASH_LENGTH + 4;
  if (n * least > r.left()) throw new DecodeError('ERR_TRUNCATED', `set record: ${n} HTLCs do not fit in ${r.left()} bytes`);
  const read: { flags: number; circuit: string; amountMsat: bigint; share: Uint8Array; childIndex: number; custom?: TlvRecord[] }[] = [];
  for (let i = 0; i < n; i++) {
    const flags = r.u8();
    if ((flags & ~FLAG_CUSTOM) !== 0) throw new DecodeError('ERR_INVALID_VALUE', `set record: unknown HTLC flags ${flags}`);
    const channelId = dec.decode(r.bytes(r.u16()));
    const htlcId = r.u64();
    const amountMsat = r.u64();
    const share = r.bytes(HASH_LENGTH);
    const childIndex = r.u32();
    const x: (typeof read)[number] = { flags, circuit: keyString({ channelId, htlcId }), amountMsat, share, childIndex };
    if ((flags & FLAG_CUSTOM) !== 0) x.custom = readCustom(r);
    read.push(x);
  }
  const root = reconstructRoot(read.map((x) => x.share));
  return read.map((x) => {
    const child = deriveChild(root, x.share, x.childIndex);
    const h: SettledHtlc = {
      circuit: x.circuit,
      amountMsat: x.amountMsat,
      paymentHash: child.hash,
      preimage: child.preimage,
      share: x.share,
      childIndex: x.childIndex,
    };
    if (x.custom !== undefined) h.customRecords = x.custom;
    return h;
  });
}

/** A stored set in either format. */
export function readSetValue(v: Uint8Array): AmpSet {
  return v[0] === JSON_OBJECT_START ? decodeJson<AmpSet>(v) : decodeSet(v);
}

// ---------------------------------------------------------------- invoices, references

function readRecordValue<T>(v: Uint8Array): T {
  if (v[0] === JSON_OBJECT_START) return decodeJson<T>(v);
  if (isRecord(v)) return decodeRecord(v) as T;
  throw new DecodeError('ERR_INVALID_VALUE', `unknown invoice record format (first byte ${v[0]})`);
}

export function putInvoice(inv: Invoice): BatchOp {
  return { type: 'put', key: invoiceKey(inv.paymentAddr), value: encodeRecord(inv) };
}

export function putInvoiceIndexes(inv: Invoice): BatchOp[] {
  const addr = enc.encode(bytesToHex(inv.paymentAddr));
  return [
    { type: 'put', key: hashKey(inv.paymentHash), value: addr },
    { type: 'put', key: addKey(inv.addIndex), value: addr },
  ];
}

/** A settled set's record alone (its invoice lists it later, in a chunk: `putSetChunk`). */
export function putSetRecord(c: SetColumns): BatchOp {
  return { type: 'put', key: hexKey('s/', c.setId, slab.take(2 + 2 * HASH_LENGTH)), value: encodeSetColumns(c) };
}

/** First byte of an is/ chunk: the set_ids (32 bytes each) of consecutive sets of one invoice, from the key's settle index on. */
export const SET_CHUNK_V1 = 0x01;

/** Lists sets of one invoice (in settle order; the first settled at `firstSettleIndex`). */
export function putSetChunk(addr: Uint8Array, firstSettleIndex: bigint, setIds: readonly Uint8Array[]): BatchOp {
  const v = new Uint8Array(1 + HASH_LENGTH * setIds.length);
  v[0] = SET_CHUNK_V1;
  setIds.forEach((id, i) => v.set(id, 1 + HASH_LENGTH * i));
  return { type: 'put', key: invoiceSetKey(addr, firstSettleIndex), value: v };
}

/** First byte of a settlement reference: payment_addr[32], then set_id[32] for an AMP set. */
export const SETTLE_REF_V1 = 0x01;

/** The settlement reference of a regular invoice (AMP sets' go in chunks: `putSettleChunk`). */
export function putSettle(n: bigint, addr: Uint8Array): BatchOp {
  const v = new Uint8Array(1 + HASH_LENGTH);
  v[0] = SETTLE_REF_V1;
  v.set(addr, 1);
  return { type: 'put', key: settleKey(n), value: v };
}

/**
 * First byte of a chunk of settlement references: u16 count, then per settlement (consecutive settle indexes from the
 * key's on) payment_addr[32] ‖ set_id[32] (AMP sets only).
 */
export const SETTLE_CHUNK_V1 = 0x02;
const MAX_CHUNK_REFS = 0xffff;

/** The settlement references of AMP sets settled at `first`, `first` + 1, … (one put for a settle batch). */
export function putSettleChunk(first: bigint, refs: readonly { addr: Uint8Array; setId: Uint8Array }[]): BatchOp {
  if (refs.length === 0 || refs.length > MAX_CHUNK_REFS)
    throw new InvoiceError('ERR_INVOICE_ARGUMENT', `a chunk holds 1 to ${MAX_CHUNK_REFS} settlements, not ${refs.length}`);
  const v = slab.take(3 + 2 * HASH_LENGTH * refs.length);
  v[0] = SETTLE_CHUNK_V1;
  v[1] = refs.length >>> 8;
  v[2] = refs.length & 0xff;
  let at = 3;
  for (const r of refs) {
    if (r.addr.length !== HASH_LENGTH || r.setId.length !== HASH_LENGTH)
      throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'payment_addr and set_id must be 32 bytes');
    v.set(r.addr, at);
    v.set(r.setId, at + HASH_LENGTH);
    at += 2 * HASH_LENGTH;
  }
  return { type: 'put', key: settleKey(first), value: v };
}

/** A settlement reference: the invoice's payment_addr, and the set_id of an AMP set. */
export interface SettleRef {
  addr: Uint8Array;
  setId?: Uint8Array;
}

/** The references an si/ value holds (one, or a chunk's), for consecutive settle indexes from its key's. */
function readSettleRefs(v: Uint8Array): SettleRef[] {
  if (v[0] !== SETTLE_CHUNK_V1) return [readSettleRef(v)];
  const count = v.length >= 3 ? (v[1]! << 8) | v[2]! : 0;
  if (count === 0 || v.length !== 3 + 2 * HASH_LENGTH * count)
    throw new DecodeError('ERR_INVALID_VALUE', `bad chunk of settlement references (${v.length} bytes, ${count} named)`);
  const out: SettleRef[] = [];
  for (let at = 3; at < v.length; at += 2 * HASH_LENGTH)
    out.push({ addr: v.slice(at, at + HASH_LENGTH), setId: v.slice(at + HASH_LENGTH, at + 2 * HASH_LENGTH) });
  return out;
}

function readSettleRef(v: Uint8Array): SettleRef {
  if (v[0] === JSON_OBJECT_START) {
    const j = decodeJson<{ addr: string; setId?: string }>(v);
    return j.setId !== undefined ? { addr: hexToBytes(j.addr), setId: hexToBytes(j.setId) } : { addr: hexToBytes(j.addr) };
  }
  if (v[0] !== SETTLE_REF_V1 || (v.length !== 1 + HASH_LENGTH && v.length !== 1 + 2 * HASH_LENGTH))
    throw new DecodeError('ERR_INVALID_VALUE', `bad settlement reference (${v.length} bytes, first ${v[0]})`);
  const addr = v.slice(1, 1 + HASH_LENGTH);
  return v.length === 1 + HASH_LENGTH ? { addr } : { addr, setId: v.slice(1 + HASH_LENGTH) };
}

/**
 * The settlements written from settle index `n` on in one entry (one, or a settle batch's chunk), if an entry begins
 * at `n`. (Each batch begins an entry at the settle index after the one before it, so from a checkpoint, which is
 * always a batch's end, entries follow one another with no gaps.)
 */
export async function readSettlesAt(store: KvStore, n: bigint): Promise<SettleRef[] | undefined> {
  const v = await store.get(settleKey(n));
  return v === undefined ? undefined : readSettleRefs(v);
}

export function putCounters(c: Counters): BatchOp {
  return { type: 'put', key: COUNTERS, value: encodeJson(c) };
}

export async function readCounters(store: KvStore): Promise<Counters> {
  const v = await store.get(COUNTERS);
  return v === undefined ? { addIndex: 0n, settleIndex: 0n } : decodeJson<Counters>(v);
}

/** The counters at least as far as `inv` took them (its add index, and its settle index if it settled). */
export function counterFloor(c: Counters, inv: Invoice): Counters {
  const settle = inv.settleIndex ?? 0n;
  if (inv.addIndex <= c.addIndex && settle <= c.settleIndex) return c;
  return { addIndex: inv.addIndex > c.addIndex ? inv.addIndex : c.addIndex, settleIndex: settle > c.settleIndex ? settle : c.settleIndex };
}

export async function readInvoice(store: KvStore, addr: Uint8Array): Promise<Invoice | undefined> {
  const v = await store.get(invoiceKey(addr));
  return v === undefined ? undefined : readRecordValue<Invoice>(v);
}

export async function readAddrByHash(store: KvStore, hash: Uint8Array): Promise<string | undefined> {
  const v = await store.get(hashKey(hash));
  return v === undefined ? undefined : dec.decode(v);
}

export async function readSet(store: KvStore, setId: Uint8Array): Promise<AmpSet | undefined> {
  const v = await store.get(setKey(setId));
  return v === undefined ? undefined : readSetValue(v);
}

export async function* invoices(store: KvStore): AsyncIterable<Invoice> {
  for await (const [, v] of store.entries(enc.encode('i/'))) yield readRecordValue<Invoice>(v);
}

export async function* addIndexFrom(store: KvStore, after: bigint): AsyncIterable<[bigint, string]> {
  for await (const [k, v] of store.entries(enc.encode('a/'))) {
    const n = BigInt(`0x${dec.decode(k).slice(2)}`);
    if (n > after) yield [n, dec.decode(v)];
  }
}

export async function* settlesFrom(store: KvStore, after: bigint): AsyncIterable<[bigint, SettleRef]> {
  for await (const [k, v] of store.entries(enc.encode('si/'))) {
    const first = BigInt(`0x${dec.decode(k).slice(3)}`);
    const refs = readSettleRefs(v);
    if (first + BigInt(refs.length) <= after) continue;
    for (let i = 0; i < refs.length; i++) if (first + BigInt(i) > after) yield [first + BigInt(i), refs[i]!];
  }
}

/** The set_ids an entry of a list of sets holds: a single one (64 hex characters) or a chunk. */
function* setIdsOfEntry(v: Uint8Array): Iterable<Uint8Array> {
  if (v.length === 2 * HASH_LENGTH && v[0] !== SET_CHUNK_V1) yield hexToBytes(dec.decode(v));
  else if (v[0] === SET_CHUNK_V1 && (v.length - 1) % HASH_LENGTH === 0 && v.length > 1)
    for (let at = 1; at < v.length; at += HASH_LENGTH) yield v.slice(at, at + HASH_LENGTH);
  else throw new DecodeError('ERR_INVALID_VALUE', `bad entry in an invoice's list of sets (${v.length} bytes)`);
}

/** An invoice's settled set_ids in settle order, from single entries (64 hex characters) and chunks alike. */
export async function* invoiceSetIds(store: KvStore, addr: Uint8Array): AsyncIterable<Uint8Array> {
  for await (const [, v] of store.entries(enc.encode(`is/${bytesToHex(addr)}/`))) yield* setIdsOfEntry(v);
}

/** Every listed settled set_id of every invoice (those settled since the last checkpoint are not listed yet). */
export async function* listedSetIds(store: KvStore): AsyncIterable<Uint8Array> {
  for await (const [, v] of store.entries(enc.encode('is/'))) yield* setIdsOfEntry(v);
}
