/**
 * The one table of Lightning messages by type (BOLT 1 "Lightning Message
 * Format"): a 2-byte big-endian type, then the type's payload.
 *
 * Decoding follows the "it's ok to be odd" rule: a known type is decoded by
 * its codec; an unknown odd type comes back as `unknown_odd` for the caller to
 * ignore; an unknown even type is a `DecodeError('ERR_UNKNOWN_EVEN_MESSAGE')`,
 * on which the connection must be closed.
 *
 * Each message family lives in its own file and exports an array of codecs;
 * adding a family is one import, one spread in `codecs` and one union member.
 */
import { Reader } from './bytes.js';
import { ArgumentError, DecodeError } from './errors.js';
import type { MessageCodec } from './message.js';
import {
  setupMessageCodecs,
  type ErrorMessage,
  type InitMessage,
  type PingMessage,
  type PongMessage,
  type WarningMessage,
} from './setup-messages.js';
import { channelMessageCodecs, type ChannelMessage } from './channel-messages.js';

export type Message = InitMessage | ErrorMessage | WarningMessage | PingMessage | PongMessage | ChannelMessage;

export type DecodedMessage = { kind: 'message'; message: Message } | { kind: 'unknown_odd'; type: number; payload: Uint8Array };

/** Type numbers of the messages in the table. */
export const MessageType = {
  Warning: 1,
  Init: 16,
  Error: 17,
  Ping: 18,
  Pong: 19,
} as const;

const codecs: readonly MessageCodec<Message>[] = [...setupMessageCodecs, ...channelMessageCodecs];

const byType = new Map<number, MessageCodec<Message>>();
for (const c of codecs) {
  if (byType.has(c.type)) throw new Error(`two codecs for message type ${c.type}`);
  byType.set(c.type, c);
}

/** The codec for a type, if we know it. */
export function messageCodec(type: number): MessageCodec<Message> | undefined {
  return byType.get(type);
}

/**
 * BOLT names of types we may meet but do not (yet) decode, for logs.
 * Known types take their name from their codec.
 */
const OTHER_NAMES = new Map<number, string>([
  [2, 'stfu'],
  [7, 'peer_storage'],
  [9, 'peer_storage_retrieval'],
  [32, 'open_channel'],
  [33, 'accept_channel'],
  [34, 'funding_created'],
  [35, 'funding_signed'],
  [36, 'channel_ready'],
  [38, 'shutdown'],
  [39, 'closing_signed'],
  [40, 'closing_complete'],
  [41, 'closing_sig'],
  [64, 'open_channel2'],
  [65, 'accept_channel2'],
  [66, 'tx_add_input'],
  [67, 'tx_add_output'],
  [68, 'tx_remove_input'],
  [69, 'tx_remove_output'],
  [70, 'tx_complete'],
  [71, 'tx_signatures'],
  [72, 'tx_init_rbf'],
  [73, 'tx_ack_rbf'],
  [74, 'tx_abort'],
  [128, 'update_add_htlc'],
  [130, 'update_fulfill_htlc'],
  [131, 'update_fail_htlc'],
  [132, 'commitment_signed'],
  [133, 'revoke_and_ack'],
  [134, 'update_fee'],
  [135, 'update_fail_malformed_htlc'],
  [136, 'channel_reestablish'],
  [256, 'channel_announcement'],
  [257, 'node_announcement'],
  [258, 'channel_update'],
  [259, 'announcement_signatures'],
  [261, 'query_short_channel_ids'],
  [262, 'reply_short_channel_ids_end'],
  [263, 'query_channel_range'],
  [264, 'reply_channel_range'],
  [265, 'gossip_timestamp_filter'],
  [513, 'onion_message'],
]);

export function messageName(type: number): string {
  return byType.get(type)?.name ?? OTHER_NAMES.get(type) ?? `unknown_${type}`;
}

/** 2-byte type followed by the payload. */
export function encodeMessage(msg: Message): Uint8Array {
  const codec = byType.get(msg.type);
  if (codec === undefined) throw new ArgumentError(`no codec for message type ${String(msg.type)}`);
  const payload = codec.encode(msg);
  const out = new Uint8Array(2 + payload.length);
  out[0] = msg.type >> 8;
  out[1] = msg.type & 0xff;
  out.set(payload, 2);
  return out;
}

export function decodeMessage(bytes: Uint8Array): DecodedMessage {
  const r = new Reader(bytes);
  const type = r.u16('message type');
  const payload = r.rest();
  const codec = byType.get(type);
  if (codec === undefined) {
    if (type % 2 === 0) throw new DecodeError('ERR_UNKNOWN_EVEN_MESSAGE', `unknown even message type ${type}`);
    return { kind: 'unknown_odd', type, payload: payload.slice() };
  }
  return { kind: 'message', message: codec.decode(payload) as Message };
}
