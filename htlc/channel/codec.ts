/**
 * Persistence records of the channel state machine.
 *
 * One record per channel, `channel/<channel id hex>`, holding the whole
 * ChannelState (logs, both commitment chains, the peer's signatures, the
 * encoded revocation store, the last commitment_signed we sent). Writing it as
 * one record in one batch makes every transition atomic on disk: after a crash
 * the channel is exactly as it was before or after a step, never in between.
 * The encoding is versioned JSON with tagged bigints (decimal) and byte
 * strings (base64), so a record stays readable when debugging a channel.
 */
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex } from '../../wire/bytes.js';
import { ChannelError, type ChannelState } from './types.js';

const PREFIX = 'channel/';
const enc = new TextEncoder();
const dec = new TextDecoder();

export function channelKey(channelId: Uint8Array): Uint8Array {
  return enc.encode(PREFIX + bytesToHex(channelId));
}

/** Tags bigints and byte strings (a recursive walk is much faster than a JSON.stringify replacer). */
function tag(v: unknown): unknown {
  if (typeof v === 'bigint') return { $n: v.toString() };
  if (v instanceof Uint8Array) return { $b: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (Array.isArray(v)) return v.map(tag);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = tag(x);
    }
    return out;
  }
  return v;
}

function reviver(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o['$n'] === 'string' && Object.keys(o).length === 1) return BigInt(o['$n']);
    if (typeof o['$b'] === 'string' && Object.keys(o).length === 1) return new Uint8Array(Buffer.from(o['$b'], 'base64'));
  }
  return v;
}

export function encodeState(s: ChannelState): Uint8Array {
  return enc.encode(JSON.stringify(tag(s)));
}

export function decodeState(bytes: Uint8Array): ChannelState {
  const s = JSON.parse(dec.decode(bytes), reviver) as ChannelState;
  if (s.version !== 1) throw new ChannelError('ERR_BAD_PARAMETERS', `unknown channel record version ${String(s.version)}`);
  return s;
}

/** The write that persists `s`. */
export function stateWrite(s: ChannelState): BatchOp {
  return { type: 'put', key: channelKey(s.channelId), value: encodeState(s) };
}

/** Every channel in the store. */
export async function loadChannels(store: KvStore): Promise<ChannelState[]> {
  const out: ChannelState[] = [];
  for await (const [, v] of store.entries(enc.encode(PREFIX))) out.push(decodeState(v));
  return out;
}
