/**
 * Persistence records of the channel state machine.
 *
 * One record per channel, `channel/<channel id hex>`, holding the whole
 * ChannelState (logs, both commitment chains, the peer's signatures, the
 * encoded revocation store, the last commitment_signed we sent). Writing it as
 * one record in one batch makes every transition atomic on disk: after a crash
 * the channel is exactly as it was before or after a step, never in between.
 * The record is rewritten after every commitment step, so it uses the compact
 * binary encoding of db/record.ts (bigints and byte strings kept as they are,
 * each key written once); the parts a step passes on unchanged (both
 * commitments, the commitment_signed we sent, the channel's configuration, the
 * outbox, each entry of the two logs) are encoded once per object and embedded
 * as they are in every rewrite. Records written by earlier versions as JSON
 * (tagged bigints in decimal, byte strings in base64; they start with `{`) are
 * still read; the next step of that channel rewrites them in the binary form.
 *
 * The onions of the adds in its logs are kept out of that record (see
 * `stateWrites`): each is written once, in the batch of the first state that
 * holds it, as `onion/<channel id hex>/<o|t>/<htlc id, 16 hex>`, deleted in
 * the batch of the revocation after which it is needed no more, and put back
 * into its add when the channel is loaded.
 */
import { decodeRecord, embedOnce, embedRecord, encodeRecord, isRecord, type EmbeddedRecord } from '../../db/record.js';
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex } from '../../wire/bytes.js';
import { ChannelError, type ChannelHtlc, type ChannelState, type LogEntry, type UpdateLog } from './types.js';

const PREFIX = 'channel/';
const ONION_PREFIX = 'onion/';
const OUR_SIDE = 'o';
const THEIR_SIDE = 't';
const enc = new TextEncoder();
const dec = new TextDecoder();

export function channelKey(channelId: Uint8Array): Uint8Array {
  return enc.encode(PREFIX + bytesToHex(channelId));
}

/** Revives the tagged values of a JSON record. */
function reviver(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o['$n'] === 'string' && Object.keys(o).length === 1) return BigInt(o['$n']);
    if (typeof o['$b'] === 'string' && Object.keys(o).length === 1) return new Uint8Array(Buffer.from(o['$b'], 'base64'));
  }
  return v;
}

export function encodeState(s: ChannelState): Uint8Array {
  return encodeRecord(s);
}

export function decodeState(bytes: Uint8Array): ChannelState {
  let s: ChannelState;
  if (isRecord(bytes)) s = decodeRecord(bytes) as ChannelState;
  else if (bytes[0] === 0x7b) s = JSON.parse(dec.decode(bytes), reviver) as ChannelState;
  else throw new ChannelError('ERR_BAD_PARAMETERS', 'channel record is neither a binary record nor JSON');
  if (s.version !== 1) throw new ChannelError('ERR_BAD_PARAMETERS', `unknown channel record version ${String(s.version)}`);
  if (s.ourLog?.entries === undefined || s.theirLog?.entries === undefined)
    throw new ChannelError('ERR_BAD_PARAMETERS', 'channel record without its update logs');
  return { ...s, ourLog: flattenLog(s.ourLog), theirLog: flattenLog(s.theirLog) };
}

/**
 * The writes of a new state: the channel record, with the onions of its log's adds and its commitments left out,
 * then those parts under keys of their own.
 * - Each onion not yet written goes under `onion/<channel id>/<o|t>/<htlc id>` (o: our adds, t: theirs). An onion is
 *   1366 bytes and an add keeps it until the peer has acknowledged it (ours) or it is handed on (theirs), so with many
 *   HTLCs in flight the onions would otherwise be most of every rewrite of the record.
 * - Both commitments, the remote's next one and the commitment_signed we sent (each holds every HTLC in flight and
 *   its signatures: with a hundred HTLCs, 60 % of the record) go under `chanpart/<channel id>/<name>`. Each part's
 *   write is made once per part (its bytes kept with it), and `PartsOnDisk` lets the writer leave out a part its
 *   store holds already: the steps that change no commitment (an add, a fulfill, a fail and their receipt: most
 *   steps) then rewrite only the logs and the small fields. The record names the parts it has apart (`apart`); a key
 *   of a part the record does not name is stale and never read.
 * The record comes first in the list. Every write is in the one batch, so a state lands whole or not at all.
 */
export function stateWrites(s: ChannelState): BatchOp[] {
  const extra: BatchOp[] = [];
  const apart: Part[] = [];
  for (const part of PARTS) {
    const value = s[part];
    if (value === undefined) continue;
    apart.push(part);
    const w: BatchOp = { type: 'put', key: partKey(s.channelId, part), value: partBytes(value) };
    partOfWrite.set(w, part);
    extra.push(w);
  }
  const lean = {
    ...s,
    ourLog: logAsWritten(s, s.ourLog, OUR_SIDE, extra),
    theirLog: logAsWritten(s, s.theirLog, THEIR_SIDE, extra),
    local: embedOnce(s.local),
    remote: embedOnce(s.remote),
    localCommit: undefined,
    remoteCommit: undefined,
    remoteNextCommit: undefined,
    sentCommitSig: undefined,
    apart,
    outbox: embedOnce(s.outbox),
  };
  return [{ type: 'put', key: channelKey(s.channelId), value: encodeRecord(lean) }, ...extra];
}

/** The parts of a state that `stateWrites` keeps under keys of their own. */
const PARTS = ['localCommit', 'remoteCommit', 'remoteNextCommit', 'sentCommitSig'] as const;
type Part = (typeof PARTS)[number];
const PART_PREFIX = 'chanpart/';

function partKey(channelId: Uint8Array, part: Part): Uint8Array {
  return enc.encode(`${PART_PREFIX}${bytesToHex(channelId)}/${part}`);
}

/** A part's stored form, made once per part object (states are never changed in place). */
const partEncodings = new WeakMap<object, Uint8Array>();
/** The part each part write of `stateWrites` writes. */
const partOfWrite = new WeakMap<BatchOp, Part>();

function partBytes(value: object): Uint8Array {
  let bytes = partEncodings.get(value);
  if (bytes === undefined) {
    bytes = encodeRecord(embedOnce(value));
    partEncodings.set(value, bytes);
  }
  return bytes;
}

/**
 * What one store holds of one channel's parts, as far as its writer has stored them: a part write equal to it is
 * left out. Kept by the channel's driver for its own store; it starts empty (every part written once).
 */
export class PartsOnDisk {
  private readonly stored = new Map<Part, Uint8Array>();

  /** `writes` without the part writes the store holds already. */
  needed(writes: BatchOp[]): BatchOp[] {
    let out: BatchOp[] | undefined;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!;
      const part = partOfWrite.get(w);
      const held = part !== undefined && w.type === 'put' && this.stored.get(part) === w.value;
      if (held && out === undefined) out = writes.slice(0, i);
      else if (!held && out !== undefined) out.push(w);
    }
    return out ?? writes;
  }

  /** Called once `writes` are stored. */
  landed(writes: readonly BatchOp[]): void {
    for (const w of writes) {
      const part = partOfWrite.get(w);
      if (part !== undefined && w.type === 'put') this.stored.set(part, w.value);
    }
  }
}

/** The single write of a state with its onions inline (kept for callers and records that want one op). */
export function stateWrite(s: ChannelState): BatchOp {
  return { type: 'put', key: channelKey(s.channelId), value: encodeState(s) };
}

/**
 * Onions that a state write of this process has put on disk (by identity: a log entry keeps its array). Marked by
 * `writesLanded` once the batch that carried them is stored, so that a batch that failed is written whole again.
 */
const onionsWritten = new WeakSet<Uint8Array>();
const ONION_KEY_PREFIX = enc.encode(ONION_PREFIX);

function isOnionKey(key: Uint8Array): boolean {
  if (key.length < ONION_KEY_PREFIX.length) return false;
  for (let i = 0; i < ONION_KEY_PREFIX.length; i++) if (key[i] !== ONION_KEY_PREFIX[i]) return false;
  return true;
}

/** Called once `writes` (a step's writes) are stored: their onions need not be written again. */
export function writesLanded(writes: readonly BatchOp[]): void {
  for (const w of writes) if (w.type === 'put' && isOnionKey(w.key)) onionsWritten.add(w.value);
}

export function onionKey(channelId: Uint8Array, side: 'o' | 't', htlcId: bigint): Uint8Array {
  return enc.encode(`${ONION_PREFIX}${bytesToHex(channelId)}/${side}/${htlcId.toString(16).padStart(16, '0')}`);
}

/**
 * The log as written, adds without their onions: each entry encoded once (a log keeps its entries for many steps),
 * and each run of LOG_CHUNK entries from an index that is a multiple of LOG_CHUNK encoded once more as one value, so
 * that a rewrite copies a few runs instead of every entry one by one. A run is read back as an array among the
 * entries (`flattenLog`).
 */
function logAsWritten(s: ChannelState, log: UpdateLog, side: 'o' | 't', out: BatchOp[]): object {
  const all = log.entries;
  const entries: EmbeddedRecord[] = [];
  for (const e of all) {
    if (e.kind === 'add' && e.onionRoutingPacket.length > 0 && !onionsWritten.has(e.onionRoutingPacket)) {
      out.push({ type: 'put', key: onionKey(s.channelId, side, e.htlcId), value: e.onionRoutingPacket });
    }
  }
  let i = 0;
  while (i < all.length) {
    if ((log.base + i) % LOG_CHUNK === 0 && i + LOG_CHUNK <= all.length) {
      entries.push(chunkEmbedding(all, i));
      i += LOG_CHUNK;
    } else entries.push(leanEmbedding(all[i++]!));
  }
  return { ...log, entries };
}

const LOG_CHUNK = 16;
/** By the first entry of a run: the run's entries and its encoding. */
const chunks = new WeakMap<LogEntry, { members: LogEntry[]; embedding: EmbeddedRecord }>();

function chunkEmbedding(all: LogEntry[], from: number): EmbeddedRecord {
  const known = chunks.get(all[from]!);
  if (known !== undefined && known.members.every((m, k) => m === all[from + k])) return known.embedding;
  const members = all.slice(from, from + LOG_CHUNK);
  const embedding = embedRecord(members.map(leanEmbedding));
  chunks.set(members[0]!, { members, embedding });
  return embedding;
}

/** A log as read: the runs of entries written as one value put back in line. */
function flattenLog(log: UpdateLog): UpdateLog {
  const raw = log.entries as unknown[];
  if (!raw.some(Array.isArray)) return log;
  return { ...log, entries: raw.flatMap((e) => (Array.isArray(e) ? (e as LogEntry[]) : [e as LogEntry])) };
}

/** Each entry's encoding, an add's without its onion, made once (entries are never changed in place). */
const leanEmbeddings = new WeakMap<LogEntry, EmbeddedRecord>();

function leanEmbedding(e: LogEntry): EmbeddedRecord {
  if (e.kind !== 'add' || e.onionRoutingPacket.length === 0) return embedOnce(e);
  let lean = leanEmbeddings.get(e);
  if (lean === undefined) {
    lean = embedRecord({ ...e, onionRoutingPacket: NO_ONION });
    leanEmbeddings.set(e, lean);
  }
  return lean;
}

const NO_ONION = new Uint8Array(0);

/** Deletes of the onions of `ids` (adds of one side whose onion is needed no more). */
export function onionDeletes(channelId: Uint8Array, side: 'o' | 't', ids: readonly bigint[]): BatchOp[] {
  return ids.map((id) => ({ type: 'del', key: onionKey(channelId, side, id) }));
}

/** Puts the onions stored apart back into the adds of a state read from disk. */
async function withOnions(store: KvStore, s: ChannelState): Promise<ChannelState> {
  const fill = async (log: UpdateLog, side: 'o' | 't'): Promise<UpdateLog> => {
    let entries: LogEntry[] | undefined;
    for (let i = 0; i < log.entries.length; i++) {
      const e = log.entries[i]!;
      if (e.kind !== 'add' || e.onionRoutingPacket.length !== 0) continue;
      const onion = await store.get(onionKey(s.channelId, side, e.htlcId));
      if (onion === undefined) continue; // acknowledged or handed on: not needed
      onionsWritten.add(onion);
      entries ??= log.entries.slice();
      entries[i] = { ...e, onionRoutingPacket: onion };
    }
    return entries === undefined ? log : { ...log, entries };
  };
  return { ...s, ourLog: await fill(s.ourLog, OUR_SIDE), theirLog: await fill(s.theirLog, THEIR_SIDE) };
}

/**
 * The revocation log: for each commitment of the peer's that it revoked while it held HTLCs, those HTLCs
 * (`revoked/<channel id hex>/<commitment number, 12 hex digits>`), written in the same batch as the state that
 * takes in the revocation. A breach with that commitment is answered on its HTLC outputs too; their scripts
 * need each HTLC's payment hash and expiry.
 */
export function revokedKey(channelId: Uint8Array, height: bigint): Uint8Array {
  return enc.encode(`${revokedPrefix(channelId)}${height.toString(16).padStart(12, '0')}`);
}

function revokedPrefix(channelId: Uint8Array): string {
  return `revoked/${bytesToHex(channelId)}/`;
}

/** Commitment numbers the revocation log of a channel holds. */
export async function revokedHeights(store: KvStore, channelId: Uint8Array): Promise<bigint[]> {
  const prefix = revokedPrefix(channelId);
  const out: bigint[] = [];
  for await (const [k] of store.entries(enc.encode(prefix))) out.push(BigInt(`0x${dec.decode(k).slice(prefix.length)}`));
  return out;
}

/**
 * Empties a channel's revocation log: once the funding output is spent by anything but a revoked commitment
 * (a cooperative close, or a current commitment) no revoked one can reach the chain any more.
 */
export async function pruneRevokedHtlcs(store: KvStore, channelId: Uint8Array): Promise<number> {
  const heights = await revokedHeights(store, channelId);
  if (heights.length > 0) await store.batch(heights.map((h) => ({ type: 'del' as const, key: revokedKey(channelId, h) })));
  return heights.length;
}

export function revokedHtlcsWrite(channelId: Uint8Array, height: bigint, htlcs: readonly ChannelHtlc[]): BatchOp {
  return { type: 'put', key: revokedKey(channelId, height), value: encodeRecord(htlcs) };
}

/** The HTLCs of the peer's revoked commitment `height`; empty when it held none (or is not revoked). */
export async function loadRevokedHtlcs(store: KvStore, channelId: Uint8Array, height: bigint): Promise<ChannelHtlc[]> {
  const v = await store.get(revokedKey(channelId, height));
  return v === undefined ? [] : (decodeRecord(v) as ChannelHtlc[]);
}

/** Puts the parts stored apart (the record's `apart`) back into a state read from disk. */
async function withParts(store: KvStore, read: ChannelState & { apart?: Part[] }): Promise<ChannelState> {
  const { apart, ...s } = read;
  if (apart === undefined) return s; // written whole (stateWrite, or an earlier version)
  const out = { ...s } as Record<string, unknown>;
  for (const part of apart) {
    if (!(PARTS as readonly string[]).includes(part))
      throw new ChannelError('ERR_BAD_PARAMETERS', `channel record names an unknown part ${part}`);
    const bytes = await store.get(partKey(s.channelId, part));
    if (bytes === undefined) throw new ChannelError('ERR_BAD_PARAMETERS', `the channel record's ${part} is not in the store`);
    out[part] = decodeRecord(bytes);
  }
  return out as unknown as ChannelState;
}

/** The state of one channel as stored, or undefined. */
export async function loadChannel(store: KvStore, channelId: Uint8Array): Promise<ChannelState | undefined> {
  const v = await store.get(channelKey(channelId));
  return v === undefined ? undefined : withOnions(store, await withParts(store, decodeState(v)));
}

/** Every channel in the store. */
export async function loadChannels(store: KvStore): Promise<ChannelState[]> {
  const out: ChannelState[] = [];
  for await (const [, v] of store.entries(enc.encode(PREFIX))) out.push(decodeState(v));
  return Promise.all(out.map(async (s) => withOnions(store, await withParts(store, s))));
}
