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
 * each key written once). Records written by earlier versions as JSON (tagged
 * bigints in decimal, byte strings in base64; they start with `{`) are still
 * read; the next step of that channel rewrites them in the binary form.
 */
import { decodeRecord, encodeRecord, isRecord } from '../../db/record.js';
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex } from '../../wire/bytes.js';
import { ChannelError, type ChannelHtlc, type ChannelState } from './types.js';

const PREFIX = 'channel/';
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
  return s;
}

/** The write that persists `s`. */
export function stateWrite(s: ChannelState): BatchOp {
  return { type: 'put', key: channelKey(s.channelId), value: encodeState(s) };
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

/** Every channel in the store. */
export async function loadChannels(store: KvStore): Promise<ChannelState[]> {
  const out: ChannelState[] = [];
  for await (const [, v] of store.entries(enc.encode(PREFIX))) out.push(decodeState(v));
  return out;
}
