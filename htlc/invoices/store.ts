/**
 * The registry's records in its store (all values JSON with bytes as hex and
 * bigints as strings, as the switch's):
 *
 *   i/<payment_addr>              the Invoice (without its AMP sets' HTLCs)
 *   h/<payment_hash>              → payment_addr
 *   a/<add index, 16 hex>         → payment_addr (listing by add index)
 *   s/<set_id>                    a settled AmpSet (set_ids are unique across invoices)
 *   is/<payment_addr>/<settle index, 16 hex>  → set_id (an invoice's sets in settle order)
 *   si/<settle index, 16 hex>     → { addr, setId? } (replaying settlements)
 *   counters                      { addIndex, settleIndex }: the last given
 *
 * Open invoices are kept in memory (their headers only); settled sets are
 * read from the store when asked for, so an invoice with a million settled
 * sets costs no more memory than one with none.
 */
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex } from '../../wire/bytes.js';
import { decodeJson, encodeJson } from '../switch/circuit-map.js';
import type { AmpSet, Invoice } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

const idx = (n: bigint): string => n.toString(16).padStart(16, '0');

export const invoiceKey = (addr: Uint8Array): Uint8Array => enc.encode(`i/${bytesToHex(addr)}`);
export const hashKey = (hash: Uint8Array): Uint8Array => enc.encode(`h/${bytesToHex(hash)}`);
export const addKey = (n: bigint): Uint8Array => enc.encode(`a/${idx(n)}`);
export const setKey = (setId: Uint8Array): Uint8Array => enc.encode(`s/${bytesToHex(setId)}`);
export const invoiceSetKey = (addr: Uint8Array, settleIndex: bigint): Uint8Array => enc.encode(`is/${bytesToHex(addr)}/${idx(settleIndex)}`);
export const settleKey = (n: bigint): Uint8Array => enc.encode(`si/${idx(n)}`);
const COUNTERS = enc.encode('counters');

export interface Counters {
  addIndex: bigint;
  settleIndex: bigint;
}

export function putInvoice(inv: Invoice): BatchOp {
  return { type: 'put', key: invoiceKey(inv.paymentAddr), value: encodeJson(inv) };
}

export function putInvoiceIndexes(inv: Invoice): BatchOp[] {
  const addr = enc.encode(bytesToHex(inv.paymentAddr));
  return [
    { type: 'put', key: hashKey(inv.paymentHash), value: addr },
    { type: 'put', key: addKey(inv.addIndex), value: addr },
  ];
}

export function putSet(set: AmpSet): BatchOp[] {
  return [
    { type: 'put', key: setKey(set.setId), value: encodeJson(set) },
    { type: 'put', key: invoiceSetKey(set.paymentAddr, set.settleIndex), value: enc.encode(bytesToHex(set.setId)) },
  ];
}

export function putSettle(n: bigint, addr: Uint8Array, setId?: Uint8Array): BatchOp {
  return { type: 'put', key: settleKey(n), value: encodeJson({ addr: bytesToHex(addr), ...(setId !== undefined ? { setId: bytesToHex(setId) } : {}) }) };
}

export function putCounters(c: Counters): BatchOp {
  return { type: 'put', key: COUNTERS, value: encodeJson(c) };
}

export async function readCounters(store: KvStore): Promise<Counters> {
  const v = await store.get(COUNTERS);
  return v === undefined ? { addIndex: 0n, settleIndex: 0n } : decodeJson<Counters>(v);
}

export async function readInvoice(store: KvStore, addr: Uint8Array): Promise<Invoice | undefined> {
  const v = await store.get(invoiceKey(addr));
  return v === undefined ? undefined : decodeJson<Invoice>(v);
}

export async function readAddrByHash(store: KvStore, hash: Uint8Array): Promise<string | undefined> {
  const v = await store.get(hashKey(hash));
  return v === undefined ? undefined : dec.decode(v);
}

export async function readSet(store: KvStore, setId: Uint8Array): Promise<AmpSet | undefined> {
  const v = await store.get(setKey(setId));
  return v === undefined ? undefined : decodeJson<AmpSet>(v);
}

export async function* invoices(store: KvStore): AsyncIterable<Invoice> {
  for await (const [, v] of store.entries(enc.encode('i/'))) yield decodeJson<Invoice>(v);
}

export async function* addIndexFrom(store: KvStore, after: bigint): AsyncIterable<[bigint, string]> {
  for await (const [k, v] of store.entries(enc.encode('a/'))) {
    const n = BigInt(`0x${dec.decode(k).slice(2)}`);
    if (n > after) yield [n, dec.decode(v)];
  }
}

export async function* settlesFrom(store: KvStore, after: bigint): AsyncIterable<[bigint, { addr: string; setId?: string }]> {
  for await (const [k, v] of store.entries(enc.encode('si/'))) {
    const n = BigInt(`0x${dec.decode(k).slice(3)}`);
    if (n > after) yield [n, decodeJson<{ addr: string; setId?: string }>(v)];
  }
}

export async function* invoiceSetIds(store: KvStore, addr: Uint8Array): AsyncIterable<string> {
  for await (const [, v] of store.entries(enc.encode(`is/${bytesToHex(addr)}/`))) yield dec.decode(v);
}
