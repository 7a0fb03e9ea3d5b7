/**
 * The switch's persisted records (lnd: the circuit map and the forwarding
 * packages, folded into one record per HTLC the switch is responsible for).
 *
 *   h/<channel id>/<htlc id>   one HtlcRecord per incoming HTLC we have not
 *                              finished with; local payment attempts live
 *                              under the channel id `local` with the attempt
 *                              id as htlc id
 *   k/<channel id>/<htlc id>   keystone: our outgoing HTLC → the record it
 *                              serves (written before the add is signed)
 *   a/<attempt id>             the result of a finished attempt
 *   next_attempt               the next attempt id
 *
 * A record moves received → forwarding → forwarded → resolving, or
 * received → (held, in memory only) → resolving, or received → resolving, and is deleted once
 * the incoming channel has durably taken the resolution (or, for an attempt,
 * when its result is written, in the same batch).
 */
import { decodeRecord, embedOnce, encodeRecord, isRecord } from '../../db/record.js';
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import type { FailureMessage } from '../../onion/index.js';
import type { AttemptResult, CircuitKey } from './interfaces.js';

export const LOCAL_CHANNEL = 'local';

/** What peeling the incoming onion decided. */
export type HopDecision =
  | { kind: 'forward'; outgoingScid: bigint; amountMsat: bigint; cltvExpiry: number; nextOnion: Uint8Array }
  /** For us: the raw payload (re-decoded for the handler). */
  | { kind: 'final'; payloadBytes: Uint8Array }
  /** The onion could not be used: the answer is already decided. */
  | { kind: 'reject' };

/** How an HTLC is answered towards where it came from. */
export type Resolution =
  /**
   * `attributionData` (BOLT 4, 920 bytes): ours added for the incoming hop; for our own attempts, what the first hop
   * sent. Absent in records of earlier versions and when a peer sent none to an attempt.
   */
  | { kind: 'settle'; preimage: Uint8Array; attributionData?: Uint8Array }
  /** `reason`: the failure packet as update_fail_htlc carries it (already wrapped for the incoming hop). */
  | { kind: 'fail'; reason: Uint8Array; attributionData?: Uint8Array }
  | { kind: 'malformed'; failureCode: number; sha256OfOnion: Uint8Array }
  /** Our own attempt ended without a failure packet to read: not sent (source 0), or taken back on chain (source 1). */
  | { kind: 'local'; sourceIndex: number; failure: FailureMessage; reason: string };

export interface HtlcRecord {
  key: CircuitKey;
  state: 'received' | 'forwarding' | 'forwarded' | 'held' | 'resolving';
  amountMsat: bigint;
  cltvExpiry: number;
  paymentHash: Uint8Array;
  /** The incoming hop's onion shared secret (absent for local attempts and unreadable onions). */
  sharedSecret?: Uint8Array;
  hop: HopDecision;
  /** The outgoing HTLC: its channel once chosen, its id once the add was taken. */
  out?: { channelId: string; htlcId?: bigint; cltvExpiry: number };
  resolution?: Resolution;
  /** When the switch first recorded it (ms since the epoch): hold timers count from here, also after a restart. */
  arrivedAt?: number;
  /** For local attempts: the route's shared secrets (to read failures) and its length. */
  attempt?: { sharedSecrets: Uint8Array[]; createdAt: number };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function replacer(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return { $n: v.toString() };
  if (v instanceof Uint8Array) return { $b: bytesToHex(v) };
  return v;
}

function reviver(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object') {
    const o = v as { $n?: string; $b?: string };
    if (typeof o.$n === 'string' && Object.keys(o).length === 1) return BigInt(o.$n);
    if (typeof o.$b === 'string' && Object.keys(o).length === 1) return hexToBytes(o.$b);
  }
  return v;
}

export function encodeJson(v: unknown): Uint8Array {
  return enc.encode(JSON.stringify(v, replacer));
}

export function decodeJson<T>(b: Uint8Array): T {
  return JSON.parse(dec.decode(b), reviver) as T;
}

/**
 * The values the switch and the payment lifecycle write: db/record.ts records (bigints and bytes as themselves, a
 * fraction of JSON's cost to write). Values an earlier version wrote as JSON (they start with `{`) still read.
 */
export function encodeStored(v: unknown): Uint8Array {
  return encodeRecord(v);
}

export function decodeStored<T>(b: Uint8Array): T {
  return (isRecord(b) ? decodeRecord(b) : decodeJson<T>(b)) as T;
}

function idHex(id: bigint): string {
  return id.toString(16).padStart(16, '0');
}

export function keyString(k: CircuitKey): string {
  return `${k.channelId}/${idHex(k.htlcId)}`;
}

export const recordKey = (k: CircuitKey): Uint8Array => enc.encode(`h/${keyString(k)}`);
export const keystoneKey = (k: CircuitKey): Uint8Array => enc.encode(`k/${keyString(k)}`);
export const resultKey = (attemptId: bigint): Uint8Array => enc.encode(`a/${idHex(attemptId)}`);
export const NEXT_ATTEMPT_KEY = enc.encode('next_attempt');

export function putRecord(r: HtlcRecord): BatchOp {
  // a record is rewritten at each change of state; its hop decision (with the next onion) and attempt stay the same
  const value = encodeStored({ ...r, hop: embedOnce(r.hop), attempt: embedOnce(r.attempt) });
  return { type: 'put', key: recordKey(r.key), value };
}

export function delRecord(k: CircuitKey): BatchOp {
  return { type: 'del', key: recordKey(k) };
}

export function putKeystone(out: CircuitKey, incoming: CircuitKey): BatchOp {
  return { type: 'put', key: keystoneKey(out), value: encodeStored(incoming) };
}

export function delKeystone(out: CircuitKey): BatchOp {
  return { type: 'del', key: keystoneKey(out) };
}

export function putResult(r: AttemptResult): BatchOp {
  return { type: 'put', key: resultKey(r.attemptId), value: encodeStored(r) };
}

/** Everything the switch keeps, read once at start. */
export async function loadCircuits(
  store: KvStore,
): Promise<{ records: HtlcRecord[]; keystones: [CircuitKey, CircuitKey][]; nextAttempt: bigint }> {
  const records: HtlcRecord[] = [];
  for await (const [, v] of store.entries(enc.encode('h/'))) records.push(decodeStored<HtlcRecord>(v));
  const keystones: [CircuitKey, CircuitKey][] = [];
  for await (const [k, v] of store.entries(enc.encode('k/'))) {
    const s = dec.decode(k).slice(2);
    const slash = s.lastIndexOf('/');
    keystones.push([{ channelId: s.slice(0, slash), htlcId: BigInt(`0x${s.slice(slash + 1)}`) }, decodeStored<CircuitKey>(v)]);
  }
  const n = await store.get(NEXT_ATTEMPT_KEY);
  return { records, keystones, nextAttempt: n === undefined ? 1n : BigInt(dec.decode(n)) };
}

export function putNextAttempt(n: bigint): BatchOp {
  return { type: 'put', key: NEXT_ATTEMPT_KEY, value: enc.encode(n.toString()) };
}

/** Results in id order (the oldest first), for pruning. */
export async function resultIds(store: KvStore): Promise<bigint[]> {
  const ids: bigint[] = [];
  for await (const [k] of store.entries(enc.encode('a/'))) ids.push(BigInt(`0x${dec.decode(k).slice(2)}`));
  return ids;
}

export async function readResult(store: KvStore, attemptId: bigint): Promise<AttemptResult | undefined> {
  const v = await store.get(resultKey(attemptId));
  return v === undefined ? undefined : decodeStored<AttemptResult>(v);
}
