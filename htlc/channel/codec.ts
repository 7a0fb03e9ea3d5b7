/**
 * Persistence records of the channel state machine.
 *
 * One record per channel, `channel/<channel id hex>`, holding the whole
 * ChannelState (logs, both commitment chains, the peer's signatures, the
 * encoded revocation store, the last commitment_signed we sent). Writing it as
 * one record in one batch makes every transition atomic on disk: after a crash
 * the channel is exactly as it was before or after a step, never in between.
 * The encoding is versioned JSON with tagged bigints and byte strings, so a
 * record stays readable by eye when debugging a channel.
 */
import type { BatchOp, KvStore } from '../../db/store.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { ChannelError, type ChannelState } from './types.js';

const PREFIX = 'channel/';
const enc = new TextEncoder();
const dec = new TextDecoder();

export function channelKey(channelId: Uint8Array): Uint8Array {
  return enc.encode(PREFIX + bytesToHex(channelId));
}

function replacer(this: unknown, _k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return { $n: v.toString() };
  if (v instanceof Uint8Array) return { $x: bytesToHex(v) };
  return v;
}

function reviver(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o['$n'] === 'string' && Object.keys(o).length === 1) return BigInt(o['$n']);
    if (typeof o['$x'] === 'string' && Object.keys(o).length === 1) return hexToBytes(o['$x']);
  }
  return v;
}

export function encodeState(s: ChannelState): Uint8Array {
  return enc.encode(JSON.stringify(s, replacer));
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
