/** Building step results (shared by every part of the channel state machine). */
import type { ChannelMessage } from '../../wire/channel-messages.js';
import { stateWrite } from './codec.js';
import type { ChannelErrorCode, ChannelEvent, ChannelState, StepResult } from './types.js';

/** A successful step; `persist` adds the write of the whole new state. */
export function ok(state: ChannelState, send: ChannelMessage[] = [], persist = false, events: ChannelEvent[] = []): StepResult {
  return { state, send, writes: persist ? [stateWrite(state)] : [], events };
}

/** A refused input: the state is unchanged, nothing is sent or written. */
export function failWith(s: ChannelState, level: 'error' | 'warning' | 'local', code: ChannelErrorCode, message: string): StepResult {
  return { state: s, send: [], writes: [], events: [], failure: { level, code, message, channelId: s.channelId } };
}
