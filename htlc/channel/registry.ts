/**
 * The channels of one peer, by channel id: routes the peer's channel
 * messages to the right channel and answers messages for channels we do not
 * have (BOLT 2 / lnd: an `error` naming the unknown channel id; nothing else
 * changes). open_channel is handed back to the caller, which decides whether
 * and how to accept.
 */
import { bytesToHex } from '../../wire/bytes.js';
import { channelIdOf, type ChannelMessage, type OpenChannel } from '../../wire/channel-messages.js';
import type { ChannelDriver } from './driver.js';
import type { ChannelFailure, StepResult } from './types.js';

export type RouteResult =
  | { kind: 'handled'; result: StepResult }
  | { kind: 'open_channel'; msg: OpenChannel }
  | { kind: 'unknown_channel'; failure: ChannelFailure };

export class ChannelRegistry {
  private readonly byId = new Map<string, ChannelDriver>();

  add(d: ChannelDriver): void {
    this.index(d);
  }

  remove(d: ChannelDriver): void {
    for (const [k, v] of this.byId) if (v === d) this.byId.delete(k);
  }

  get(channelId: Uint8Array): ChannelDriver | undefined {
    return this.byId.get(bytesToHex(channelId));
  }

  all(): ChannelDriver[] {
    return [...new Set(this.byId.values())];
  }

  private index(d: ChannelDriver): void {
    this.byId.set(bytesToHex(d.state.temporaryChannelId), d);
    this.byId.set(bytesToHex(d.state.channelId), d);
  }

  async receive(msg: ChannelMessage): Promise<RouteResult> {
    if (msg.type === 32) return { kind: 'open_channel', msg };
    const id = channelIdOf(msg);
    const d = this.byId.get(bytesToHex(id));
    if (d === undefined) {
      return {
        kind: 'unknown_channel',
        failure: { level: 'error', code: 'ERR_UNKNOWN_CHANNEL', message: `unknown channel ${bytesToHex(id)}`, channelId: id },
      };
    }
    const result = await d.apply({ type: 'message', msg });
    this.index(d); // the channel id changes at funding_created / funding_signed
    return { kind: 'handled', result };
  }
}
