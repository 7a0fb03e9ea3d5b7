/**
 * Relaying what we learn to our other peers (BOLT 7 "Rebroadcasting"), without timers: the caller enqueues each
 * accepted message with the peer it came from, and calls `flush` once every STAGGER_INTERVAL_MS (BOLT 7: flush
 * outgoing gossip once every 60 seconds, whatever the arrival times: the staggered broadcast). A flush dedupes
 * (only the newest update of a channel direction and node announcement of a node), orders (channel announcements,
 * then updates, then node announcements, as BOLT 7 wants them received), never sends a message back to the peer it
 * came from, honours each peer's gossip_timestamp_filter (a gossip_queries peer gets only our own until it sent one), and
 * hands each peer at most `maxPerPeerPerFlush` messages: the rest waits for the next flush (at most
 * `maxBacklogPerPeer` of it; beyond that the oldest are dropped, as a peer that reads that slowly gets them in sync).
 */
import { bytesToHex } from '../../wire/bytes.js';
import type { ChannelUpdate } from '../../wire/gossip.js';
import type { SyncMessage, SyncState } from './sync.js';

export const STAGGER_INTERVAL_MS = 60_000;
export const DEFAULT_MAX_PER_PEER_PER_FLUSH = 5000;
export const DEFAULT_MAX_BACKLOG_PER_PEER = 50_000;
const U32_END = 0x1_0000_0000;

export interface RelayConfig {
  maxPerPeerPerFlush: number;
  maxBacklogPerPeer: number;
}

export interface RelayPeer {
  id: string;
  sync: Pick<SyncState, 'queries' | 'remoteFilter'>;
}

interface Entry {
  message: SyncMessage;
  from?: string;
  rank: number;
}

function keyOf(m: SyncMessage): { key: string; rank: number; timestamp?: number } {
  if ('type' in m && m.type === 256) return { key: `c/${m.shortChannelId}`, rank: 0 };
  if ('type' in m && m.type === 257) return { key: `n/${bytesToHex(m.nodeId)}`, rank: 2, timestamp: m.timestamp };
  const u = m as ChannelUpdate;
  return { key: `u/${u.shortChannelId}/${u.channelFlags & 1}`, rank: 1, timestamp: u.timestamp };
}

function timestampOf(m: SyncMessage): number | undefined {
  return keyOf(m).timestamp;
}

export class RelayQueue {
  private batch = new Map<string, Entry>();
  private readonly backlog = new Map<string, SyncMessage[]>();
  readonly config: RelayConfig;

  constructor(config: Partial<RelayConfig> = {}) {
    this.config = { maxPerPeerPerFlush: DEFAULT_MAX_PER_PEER_PER_FLUSH, maxBacklogPerPeer: DEFAULT_MAX_BACKLOG_PER_PEER, ...config };
  }

  /** A message the graph accepted, from `from` (undefined: our own). A newer one of the same key replaces it. */
  enqueue(message: SyncMessage, from?: string): void {
    const k = keyOf(message);
    const had = this.batch.get(k.key);
    if (had !== undefined && k.timestamp !== undefined && (timestampOf(had.message) ?? 0) >= k.timestamp) return;
    const e: Entry = { message, rank: k.rank };
    if (from !== undefined) e.from = from;
    this.batch.set(k.key, e);
  }

  get queued(): number {
    return this.batch.size;
  }

  /** What each peer gets now: this interval's batch (filtered) after what was left over from earlier ones. */
  flush(peers: Iterable<RelayPeer>): Map<string, SyncMessage[]> {
    const entries = [...this.batch.values()].sort((a, b) => a.rank - b.rank);
    this.batch = new Map();
    const out = new Map<string, SyncMessage[]>();
    const live = new Set<string>();
    for (const p of peers) {
      live.add(p.id);
      const f = p.sync.remoteFilter;
      // a gossip_queries peer without a filter gets only what we generated ourselves (BOLT 7)
      const ownOnly = p.sync.queries && f === undefined;
      const end = f === undefined ? U32_END : f.firstTimestamp + f.timestampRange;
      const pass = (e: Entry): boolean => {
        if (ownOnly) return e.from === undefined;
        if (f === undefined) return true;
        const t = timestampOf(e.message);
        return t === undefined || (t >= f.firstTimestamp && t < end);
      };
      let q = this.backlog.get(p.id) ?? [];
      for (const e of entries) if (e.from !== p.id && pass(e)) q.push(e.message);
      if (q.length > this.config.maxBacklogPerPeer) q = q.slice(q.length - this.config.maxBacklogPerPeer);
      const now = q.slice(0, this.config.maxPerPeerPerFlush);
      const rest = q.slice(now.length);
      if (rest.length > 0) this.backlog.set(p.id, rest);
      else this.backlog.delete(p.id);
      if (now.length > 0) out.set(p.id, now);
    }
    for (const id of [...this.backlog.keys()]) if (!live.has(id)) this.backlog.delete(id);
    return out;
  }
}
