/** Building step results (shared by every part of the channel state machine). */
import type { ChannelMessage } from '../../wire/channel-messages.js';
import { stateWrites } from './codec.js';
import type { ChannelErrorCode, ChannelEvent, ChannelState, StepResult } from './types.js';

/** A successful step; `persist` adds the writes of the whole new state (the record first, then new onions). */
export function ok(state: ChannelState, send: ChannelMessage[] = [], persist = false, events: ChannelEvent[] = []): StepResult {
  return { state, send, writes: persist ? stateWrites(state) : [], events };
}

/** A refused input: the state is unchanged, nothing is sent or written. */
export function failWith(s: ChannelState, level: 'error' | 'warning' | 'local', code: ChannelErrorCode, message: string): StepResult {
  return { state: s, send: [], writes: [], events: [], failure: { level, code, message, channelId: s.channelId } };
}
