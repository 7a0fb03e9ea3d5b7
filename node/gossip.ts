/**
 * The node's gossip (BOLT 7): each peer's messages validated against our chain and stored in the graph
 * (htlc/gossip/graph.ts), a sync per peer (htlc/gossip/sync.ts: a range query at connect, then the timestamp filter,
 * and answers to the peer's own queries), and what we accept relayed to the other peers once a minute
 * (htlc/gossip/relay.ts). The router reads the graph (PaymentService.graph lays our own channels over it).
 *
 * A peer's messages are handled one at a time, in order (a channel announcement waits for its funding output to be
 * looked up on chain, and the updates after it must find it stored). Invalid gossip is dropped, never stored; where
 * BOLT 7 says so the peer gets a warning. Everything a peer can grow is bounded: the graph's own limits (per peer per
 * minute, in all), the relay backlog per peer, and the messages waiting to be handled per peer.
 */
import type { KvStore } from '../db/store.js';
import {
  defaultSyncConfig,
  GossipGraph,
  initialSyncState,
  RelayQueue,
  syncStep,
  type FundingOutput,
  type GraphMessage,
  type SyncConfig,
  type SyncInput,
  type SyncMessage,
  type SyncState,
} from '../htlc/gossip/index.js';
import { isIPv4, isIPv6 } from 'node:net';
import { bytesToHex } from '../wire/bytes.js';
import { secp } from '../wire/crypto.js';
import { AmpnodeError } from '../wire/errors.js';
import {
  CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE,
  CHANNEL_UPDATE_MESSAGE_TYPE,
  decodeGossipMessage,
  encodeGossipMessage,
  GOSSIP_TIMESTAMP_FILTER_MESSAGE_TYPE,
  NODE_ANNOUNCEMENT_MESSAGE_TYPE,
  QUERY_CHANNEL_RANGE_MESSAGE_TYPE,
  QUERY_SHORT_CHANNEL_IDS_MESSAGE_TYPE,
  REPLY_CHANNEL_RANGE_MESSAGE_TYPE,
  REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE,
  decodeChannelUpdate,
  shortChannelIdParts,
  type ChannelAnnouncement,
  type ChannelUpdate,
  type GossipMessage,
} from '../wire/gossip.js';
import type { NetAddress } from '../wire/setup-messages.js';
import { nodeAnnouncement } from './channels/announce.js';
import { parseHostPort } from './config.js';
import { MessageType } from '../wire/messages.js';
import type { BcoinChainBackend } from './chain/index.js';
import type { Logger } from './log.js';
import type { IncomingMessage, PeerHandle } from './peer.js';
import type { PeerDisconnectedEvent, PeerInfo, PeerManager } from './peer-manager.js';

/** Gossip message types a peer's messages are routed here for (channel_update comes through the channel manager). */
export const GOSSIP_HANDLED_TYPES = [
  CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE,
  NODE_ANNOUNCEMENT_MESSAGE_TYPE,
  QUERY_SHORT_CHANNEL_IDS_MESSAGE_TYPE,
  REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE,
  QUERY_CHANNEL_RANGE_MESSAGE_TYPE,
  REPLY_CHANNEL_RANGE_MESSAGE_TYPE,
  GOSSIP_TIMESTAMP_FILTER_MESSAGE_TYPE,
] as const;

export interface GossipConfig {
  /** Our node_announcement's alias (default: the start of our node id, as lnd's). */
  alias?: string;
  /** Our node_announcement's colour (3 bytes; lnd's default #3399ff). */
  rgbColor: Uint8Array;
  /** Relay flush period (BOLT 7's staggered broadcast: 60 s). */
  relayIntervalMs: number;
  /** Messages of one peer waiting to be handled; beyond this its gossip is dropped until the queue drains. */
  maxQueuedPerPeer: number;
  /** Pruning of stale updates and spent channels, this often. */
  pruneIntervalMs: number;
  /** A public channel whose peer stays away this long is announced disabled (lnd's chan-disable-timeout). */
  chanDisableTimeoutMs: number;
}

export const DEFAULT_GOSSIP_CONFIG: GossipConfig = {
  rgbColor: new Uint8Array([0x33, 0x99, 0xff]),
  relayIntervalMs: 60_000,
  maxQueuedPerPeer: 20_000,
  pruneIntervalMs: 3600_000,
  chanDisableTimeoutMs: 20 * 60_000,
};

/** The listen address as node_announcement carries it: only a concrete, routable one (none for loopback or any). */
export function announceableAddresses(listen: string | undefined): NetAddress[] {
  if (listen === undefined) return [];
  const { host, port } = parseHostPort(listen);
  if (isIPv4(host)) {
    if (host.startsWith('127.') || host === '0.0.0.0') return [];
    return [{ kind: 'ipv4', host, port }];
  }
  if (isIPv6(host)) {
    if (host === '::1' || host === '::') return [];
    return [{ kind: 'ipv6', host, port }];
  }
  return [{ kind: 'dns', hostname: host, port }];
}

export interface GossipServiceOptions {
  peers: PeerManager;
  chain: BcoinChainBackend;
  /** The graph's records (a sublevel of the node's store). */
  store: KvStore;
  chainHash: Uint8Array;
  logger: Logger;
  config?: Partial<GossipConfig>;
  /** Our feature bits as sent in init (gossip_queries is negotiated from them). */
  localFeatures: () => Uint8Array;
}

interface PeerGossip {
  sync: SyncState;
  queue: Promise<void>;
  queued: number;
}

const nowSec = (): number => Math.floor(Date.now() / 1000);
/** Funding outpoints remembered for pruning (beyond this the oldest are looked up again from their block). */
const MAX_OUTPOINTS = 1_000_000;
/** How often each peer's sync is told the time. */
const SYNC_TICK_MS = 30_000;

function wireOf(m: SyncMessage): Uint8Array {
  return encodeGossipMessage(('type' in m ? m : { ...m, type: CHANNEL_UPDATE_MESSAGE_TYPE }) as GossipMessage);
}

export class GossipService {
  readonly config: GossipConfig;
  private readonly peers = new Map<string, PeerGossip>();
  private readonly relay = new RelayQueue();
  private readonly syncConfig: SyncConfig;
  private timers: NodeJS.Timeout[] = [];
  /** Funding transactions of the channels we validated (bcoin's hash form), for the pruning's coin-set lookups. */
  private readonly outpoints = new Map<bigint, string>();
  private stopped = false;
  private readonly log: Logger;

  private constructor(
    private readonly o: GossipServiceOptions,
    readonly graph: GossipGraph,
    /** Funding outputs looked up for the announcements being validated (the validator asks synchronously). */
    private readonly fetched: Map<bigint, FundingOutput | undefined>,
  ) {
    this.config = { ...DEFAULT_GOSSIP_CONFIG, ...o.config };
    this.syncConfig = defaultSyncConfig(o.chainHash);
    this.log = o.logger;
  }

  /** Loads the graph and registers the message handlers: before the peer manager starts. */
  static async create(o: GossipServiceOptions): Promise<GossipService> {
    const fetched = new Map<bigint, FundingOutput | undefined>();
    const graph = await GossipGraph.load(o.store, { chainHash: o.chainHash, chain: { lookupFundingOutput: (scid) => fetched.get(scid) } });
    const s = new GossipService(o, graph, fetched);
    for (const t of GOSSIP_HANDLED_TYPES) o.peers.registerHandler(t, (peer, msg) => s.onMessage(peer, msg));
    o.peers.on('peer_connected', (info) => s.onConnected(info));
    o.peers.on('peer_disconnected', (ev) => s.onDisconnected(ev));
    return s;
  }

  /** Starts the relay and pruning timers. */
  start(): void {
    const every = (ms: number, f: () => Promise<void> | void): void => {
      const t = setInterval(() => void Promise.resolve(f()).catch((err: unknown) => this.log.warn({ err }, 'gossip timer failed')), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.config.relayIntervalMs, () => this.flushRelay());
    every(this.config.pruneIntervalMs, () => this.prune());
    // a sync whose peer stopped answering gives up after its stall timeout (htlc/gossip/sync.ts)
    every(SYNC_TICK_MS, () => {
      for (const [id, p] of this.peers) {
        const peer = this.o.peers.peer(id);
        if (peer !== undefined) this.step(peer, p, { kind: 'tick', nowSec: nowSec() });
      }
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all([...this.peers.values()].map((p) => p.queue));
    await this.graph.flush();
  }

  /** A channel_update the channel manager did not take as one of ours. */
  onForeignChannelUpdate(peer: PeerHandle, msg: IncomingMessage): void {
    this.onMessage(peer, msg);
  }

  /** Our own gossip (announcements of our channels and of us, our updates): into the graph and out to every peer. */
  async announce(m: GraphMessage): Promise<boolean> {
    const ann = 'type' in m && m.type === CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE ? m : undefined;
    if (ann !== undefined) await this.fetchFunding(ann.shortChannelId);
    const out = this.graph.apply(m, nowSec());
    if (ann !== undefined) this.fetched.delete(ann.shortChannelId);
    if (out.kind !== 'accept') {
      this.log.debug({ reason: out.reason }, 'own gossip not taken by the graph');
      return false;
    }
    this.relay.enqueue(m);
    for (const u of this.graph.takeReplayed()) this.relay.enqueue(u);
    // our own gossip goes out at once (what others sent waits for the minute's flush, as BOLT 7 staggers it)
    await this.flushRelay();
    return true;
  }

  /**
   * A public channel of ours that both ends announced: the announcement, our channel_update for it (and the peer's,
   * when it came first), and our node_announcement (a node is announced only once it has a channel) go into the graph
   * and out to the peers.
   */
  async announceChannel(ann: ChannelAnnouncement, ourUpdate: Uint8Array, theirUpdate?: ChannelUpdate): Promise<void> {
    // the peer may have announced the channel first (the graph has it then): our update and node announcement must
    // still go out, or the network never learns our side of it
    if (!(await this.announce(ann)) && this.graph.channel(ann.shortChannelId) === undefined) return;
    await this.announce(decodeChannelUpdate(ourUpdate.subarray(2)));
    // the peer's update came before the channel was announced (the graph ignored it then): now it has a channel
    if (theirUpdate !== undefined) await this.announce(theirUpdate);
    await this.announceNode();
  }

  /** A new channel_update of ours (type-prefixed) for an announced channel: into the graph and out at once. */
  async announceUpdate(update: Uint8Array): Promise<void> {
    await this.announce(decodeChannelUpdate(update.subarray(2)));
  }

  /** Our node_announcement, newer than the last (BOLT 7: the timestamp must grow). */
  async announceNode(): Promise<boolean> {
    const key = this.o.peers.identityKey();
    const nodeId = secp.publicKeyCreate(key);
    const last = this.graph.nodeAnnouncement(bytesToHex(nodeId))?.timestamp ?? 0;
    const m = nodeAnnouncement({
      nodePrivateKey: key,
      nodeId,
      features: this.o.localFeatures(),
      timestamp: Math.max(nowSec(), last + 1),
      alias: this.config.alias ?? bytesToHex(nodeId).slice(0, 20),
      rgbColor: this.config.rgbColor,
      addresses: announceableAddresses(this.o.peers.listenAddress),
    });
    return this.announce(m);
  }

  /** Sends what the relay queue has for each peer now (normally once a minute; tests call it at will). */
  async flushRelay(): Promise<void> {
    const ready = [...this.peers.entries()].map(([id, p]) => ({ id, sync: p.sync }));
    for (const [id, msgs] of this.relay.flush(ready)) {
      const peer = this.o.peers.peer(id);
      if (peer === undefined) continue;
      for (const m of msgs) peer.sendRaw(wireOf(m));
    }
    await this.graph.flush();
  }

  /**
   * Stale updates (two weeks) and channels whose funding output was spent: a coin-set lookup per channel whose
   * outpoint we learnt (a block read for the others, once).
   */
  async prune(): Promise<void> {
    const spent: bigint[] = [];
    for (const scid of [...this.graph.shortChannelIds()]) {
      let at = this.outpoints.get(scid);
      if (at === undefined) {
        await this.fetchFunding(scid);
        this.fetched.delete(scid);
        at = this.outpoints.get(scid);
      }
      const { outputIndex } = shortChannelIdParts(scid);
      if (at === undefined || !(await this.o.chain.isUnspent(at, outputIndex))) {
        if (this.graph.channelSpent(scid)) spent.push(scid);
        this.outpoints.delete(scid);
      }
    }
    const stale = this.graph.pruneStale(nowSec());
    await this.graph.flush();
    if (spent.length + stale.length > 0) this.log.info({ spent: spent.length, stale: stale.length }, 'graph pruned');
  }

  private onConnected(info: PeerInfo): void {
    const peer = this.o.peers.peer(info.nodeId);
    if (peer === undefined) return;
    const p: PeerGossip = { sync: initialSyncState(), queue: Promise.resolve(), queued: 0 };
    this.peers.set(info.nodeId, p);
    this.step(peer, p, {
      kind: 'connected',
      remoteFeatures: peer.remoteFeatures.encode(),
      localFeatures: this.o.localFeatures(),
      nowSec: nowSec(),
    });
  }

  private onDisconnected(ev: PeerDisconnectedEvent): void {
    this.peers.delete(ev.nodeId);
  }

  private onMessage(peer: PeerHandle, msg: IncomingMessage): void {
    const p = this.peers.get(peer.nodeIdHex);
    if (p === undefined || this.stopped) return;
    if (p.queued >= this.config.maxQueuedPerPeer) {
      this.log.debug({ peer: peer.nodeIdHex, type: msg.type }, 'gossip dropped: too many messages of this peer waiting');
      return;
    }
    p.queued++;
    p.queue = p.queue
      .then(() => this.handle(peer, p, msg))
      .catch((err: unknown) => this.log.warn({ err, peer: peer.nodeIdHex }, 'gossip message failed'))
      .finally(() => p.queued--);
  }

  private async handle(peer: PeerHandle, p: PeerGossip, msg: IncomingMessage): Promise<void> {
    let m: GossipMessage;
    try {
      m = decodeGossipMessage(msg.bytes);
    } catch (e) {
      this.log.debug({ peer: peer.nodeIdHex, type: msg.type, err: e }, 'malformed gossip ignored');
      return;
    }
    if (
      m.type === CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE ||
      m.type === NODE_ANNOUNCEMENT_MESSAGE_TYPE ||
      m.type === CHANNEL_UPDATE_MESSAGE_TYPE
    ) {
      if (m.type === CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE) await this.fetchFunding(m.shortChannelId);
      const out = this.graph.apply(m, nowSec(), peer.nodeIdHex);
      if (m.type === CHANNEL_ANNOUNCEMENT_MESSAGE_TYPE) this.fetched.delete(m.shortChannelId);
      if (out.kind === 'accept') {
        this.relay.enqueue(m, peer.nodeIdHex);
        for (const u of this.graph.takeReplayed()) this.relay.enqueue(u); // updates that came before this announcement
      } else if (out.kind === 'reject') {
        this.log.info({ peer: peer.nodeIdHex, type: m.type, reason: out.reason }, 'invalid gossip dropped');
        if (out.warnPeer)
          peer.send({
            type: MessageType.Warning,
            channelId: new Uint8Array(32),
            data: new TextEncoder().encode(`invalid gossip: ${out.reason}`),
          });
      } else this.log.trace({ peer: peer.nodeIdHex, type: m.type, reason: out.reason }, 'gossip ignored');
      if (this.graph.pendingWrites >= 1000) await this.graph.flush();
    }
    this.step(peer, p, { kind: 'message', message: m, nowSec: nowSec() });
    if (m.type === REPLY_SHORT_CHANNEL_IDS_END_MESSAGE_TYPE || m.type === REPLY_CHANNEL_RANGE_MESSAGE_TYPE) await this.graph.flush();
  }

  private step(peer: PeerHandle, p: PeerGossip, input: SyncInput): void {
    const r = syncStep(p.sync, input, this.graph, this.syncConfig);
    const before = p.sync.phase;
    p.sync = r.state;
    if (before !== r.state.phase) this.log.debug({ peer: peer.nodeIdHex, from: before, to: r.state.phase }, 'gossip sync');
    for (const m of r.send) peer.sendRaw(wireOf(m));
  }

  private async fetchFunding(scid: bigint): Promise<void> {
    const { blockHeight, txIndex, outputIndex } = shortChannelIdParts(scid);
    try {
      const out = await this.o.chain.outputAt(blockHeight, txIndex, outputIndex);
      this.fetched.set(scid, out);
      if (out !== undefined && !out.spent) {
        if (this.outpoints.size >= MAX_OUTPOINTS) this.outpoints.delete(this.outpoints.keys().next().value!);
        this.outpoints.set(scid, out.txHashHex);
      }
    } catch (e) {
      if (!(e instanceof AmpnodeError)) throw e;
      this.fetched.set(scid, undefined); // the chain is closing: treated as not found
    }
  }

  /** For diagnostics and tests: each peer's sync phase. */
  syncPhases(): Record<string, string> {
    return Object.fromEntries([...this.peers.entries()].map(([id, p]) => [id, p.sync.phase]));
  }
}
