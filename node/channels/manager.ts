/**
 * The channel manager: BOLT 2 channels of a running node. It owns one
 * `ChannelDriver` (htlc/channel) per channel and supplies its adapters:
 *
 * - store: a sublevel per channel (`channels/ch<keyIndex>`), next to a record
 *   `meta/<keyIndex>` naming the peer and our delivery script, so channels are
 *   found again by key index after a restart (the channel id changes at
 *   funding_created, the key index never does);
 * - secrets: derived from the node's channel seed and the channel's key index
 *   (htlc/channel/keys.ts); the next index is persisted before it is used, so
 *   no two channels ever share keys;
 * - funding wallet: node/wallet's createFunding / publishFunding / abandonFunding;
 * - chain: the funding output watched to `minimum_depth` (→ `funding_depth`,
 *   which sends channel_ready) and for its spend; a spend by a commitment is
 *   handed to the chain arbitrator (node/channels/arbitrator.ts: sweeps, HTLC
 *   outputs, justice);
 * - peer: messages routed by channel_id (temporary_channel_id for
 *   open/accept/funding_created) from the node's handler registry, and sent
 *   back through the peer; failures become BOLT 1 `error` / `warning`.
 *
 * It also plays lnd's "link" for the commitment dance: after a local update,
 * and after each commitment_signed / revoke_and_ack / channel_reestablish from
 * the peer, it asks the machine to `sign` (a no-op when nothing is pending).
 *
 * Ordering: everything that touches one peer's channels (its messages,
 * connect/disconnect, opens) runs on one queue per peer, so a message can never
 * overtake the driver it belongs to, and channel_reestablish goes out for every
 * channel before any later message of that connection is handled. Driver
 * callbacks never wait on a driver (that would deadlock its queue): work for a
 * driver that a callback starts is queued, not awaited.
 */
import { EventEmitter } from 'node:events';
import type { KvStore } from '../../db/store.js';
import type { ChainSource, WatchHandle } from '../../htlc/chain.js';
import { ChannelDriver, type ChannelAdapters } from '../../htlc/channel/driver.js';
import { loadChannels } from '../../htlc/channel/codec.js';
import { channelPubkeys, deriveChannelSecrets } from '../../htlc/channel/keys.js';
import { edgePolicyOf } from '../../htlc/router/graph.js';
import { signedLocalCommitment } from '../../htlc/channel/commitments.js';
import { commitFeeUpdate, DEFAULT_COMMIT_FEE_POLICY } from '../../htlc/channel/fee.js';
import { localCommitmentTxid } from '../../htlc/channel/unilateral.js';
import { incomingOpen, maxSendableMsat } from '../../htlc/channel/machine.js';
import {
  ChannelLink,
  decodeJson,
  DEFAULT_BATCH_CONFIG,
  DEFAULT_FORWARDING_POLICY,
  encodeJson,
  HtlcSwitch,
  type AttemptResult,
  type BatchConfig,
  type FinalHopHandler,
  type FinalPayloadRecords,
  type ForwardingPolicy,
  type LinkChannel,
  type NodeSigner,
  type Route,
  type SwitchConfig,
  type Timers,
} from '../../htlc/switch/index.js';
import type {
  ChannelConfig,
  ChannelEvent,
  ChannelFailure,
  ChannelInput,
  ChannelState,
  ChannelType,
  SigPool,
  StepResult,
} from '../../htlc/channel/types.js';
import type { FundingWallet } from '../../htlc/channel/wallet.js';
import { bytesToHex, compareBytes, concatBytes, equalBytes, hexToBytes, u16be } from '../../wire/bytes.js';
import {
  decodeChannelMessage,
  encodeChannelMessage,
  channelIdOf,
  type ChannelMessage,
  type OpenChannel,
} from '../../wire/channel-messages.js';
import { publicKeyFromPrivate, randomBytes, secp, sha256 } from '../../wire/crypto.js';
import { AmpnodeError, ArgumentError } from '../../wire/errors.js';
import { Feature } from '../../wire/features.js';
import {
  ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE,
  announcementSignaturesCodec,
  CHANNEL_FLAG_DIRECTION,
  CHANNEL_UPDATE_MESSAGE_TYPE,
  channelUpdateSignedBy,
  decodeChannelUpdate,
  encodeGossipMessage,
  type AnnouncementSignatures,
  type ChannelAnnouncement,
  type ChannelUpdate,
} from '../../wire/gossip.js';
import { MessageType } from '../../wire/messages.js';
import type { Logger } from '../log.js';
import { silentLogger, subsystemLogger } from '../log.js';
import { NETWORKS } from '../network.js';
import type { PeerManager, PeerDisconnectedEvent, PeerInfo } from '../peer-manager.js';
import type { IncomingMessage, PeerHandle } from '../peer.js';
import {
  ANNOUNCEMENT_DEPTH,
  CHANNEL_FLAG_ANNOUNCE,
  ourAnnouncementSignatures,
  signedAnnouncement,
  verifyTheirSignatures,
  type ChannelEnds,
} from './announce.js';
import type { Wallet } from '../wallet/wallet.js';
import { ChainArbitrator, type SweptOutput } from './arbitrator.js';
import { buf, displayHex, txidOf } from './tx.js';

export type { SweptOutput } from './arbitrator.js';

export type ChannelManagerErrorCode =
  | 'ERR_UNKNOWN_CHANNEL' // no channel with that id
  | 'ERR_NOT_CONNECTED' // the peer is not connected
  | 'ERR_OPEN_FAILED' // the opening was refused or abandoned
  | 'ERR_CHANNEL_REFUSED' // the state machine refused a local request (code in `cause`)
  | 'ERR_TIMEOUT' // a bounded wait ran out
  | 'ERR_INVALID_POLICY' // a forwarding policy outside what the channel or BOLT 7 allows
  | 'ERR_MANAGER_STOPPED';

export class ChannelManagerError extends AmpnodeError<ChannelManagerErrorCode> {}

/** What we ask of peers and offer them; lnd's values unless said. */
export interface ChannelPolicyConfig {
  /** minimum_depth we ask for as acceptor. */
  minimumDepth: number;
  /** to_self_delay the peer's outputs get on our commitments... (what we demand of them). */
  toSelfDelay: number;
  dustLimitSat: bigint;
  htlcMinimumMsat: bigint;
  maxAcceptedHtlcs: number;
  /** Confirmation target for commitment and closing feerates. */
  feeConfTarget: number;
  /** Bound on waits of openChannel / closeChannel. */
  timeoutMs: number;
  /** Channels a peer may have opened to us that are not ready yet (lnd: --maxpendingchannels, default 1). */
  maxPendingChannels: number;
  /**
   * As opener, the commitment feerate follows the chain's estimate for `feeUpdateConfTarget` (lnd: 3), checked at a
   * random time between the two intervals (lnd: 10 and 60 minutes); a maximum of 0 turns the check off.
   */
  feeUpdateConfTarget: number;
  feeUpdateMinIntervalMs: number;
  feeUpdateMaxIntervalMs: number;
  /** Largest share of our balance the commitment fee may take (lnd: --max-channel-fee-allocation). */
  maxFeeAllocation: number;
  /** Highest commitment feerate we propose on anchor channels (lnd: --max-commit-fee-rate-anchors, 10 sat/vbyte). */
  maxAnchorsFeeratePerKw: number;
}

export const DEFAULT_CHANNEL_POLICY: ChannelPolicyConfig = {
  minimumDepth: 3,
  toSelfDelay: 144,
  dustLimitSat: 354n,
  htlcMinimumMsat: 1n,
  maxAcceptedHtlcs: 483,
  feeConfTarget: 6,
  timeoutMs: 60_000,
  maxPendingChannels: 10,
  feeUpdateConfTarget: 3,
  feeUpdateMinIntervalMs: 10 * 60_000,
  feeUpdateMaxIntervalMs: 60 * 60_000,
  maxFeeAllocation: DEFAULT_COMMIT_FEE_POLICY.maxFeeAllocation,
  maxAnchorsFeeratePerKw: DEFAULT_COMMIT_FEE_POLICY.maxAnchorsFeeratePerKw,
};

export interface ChannelManagerOptions {
  node: PeerManager;
  /** The node's store; the manager keeps its records under `sublevel('channels')`. */
  store: KvStore;
  chain: ChainSource;
  wallet: Wallet;
  /** 32-byte secret all channel keys derive from (with each channel's key index). */
  seed: Uint8Array;
  policy?: Partial<ChannelPolicyConfig>;
  logger?: Logger;
  /**
   * `switch` (default): every HTLC goes through the links and the HTLC switch (onions peeled, forwarded, settled by the
   * final-hop handler, our payments sent with sendToRoute). `manual`: the caller drives HTLCs itself with addHtlc /
   * fulfillHtlc / failHtlc and the htlc_* events (the channel layer's own tests, and apps that intercept every HTLC).
   */
  htlcMode?: 'switch' | 'manual';
  /** The node's identity key: the onion's ECDH and our channel_update signatures; default: the node's own, once started. */
  nodeKey?: Uint8Array;
  /** Who answers HTLCs for us (the invoice registry); without one they are failed. */
  finalHop?: FinalHopHandler;
  /** How long a public channel's peer may stay away before the channel is announced disabled (lnd: 20 min). */
  chanDisableTimeoutMs?: number;
  /** Where a channel_update for a channel that is not ours goes (the gossip service); absent: ignored. */
  gossip?: {
    onForeignChannelUpdate(peer: PeerHandle, msg: IncomingMessage): void;
    /** A public channel of ours, announced by both ends: its announcement and our channel_update go to the network. */
    announceChannel(ann: ChannelAnnouncement, ourUpdate: Uint8Array, theirUpdate?: ChannelUpdate): Promise<void>;
    /** A new channel_update of ours for an announced channel (type-prefixed, as the link signs it). */
    announceUpdate(update: Uint8Array): Promise<void>;
  };
  switchConfig?: Partial<SwitchConfig>;
  /** Commitment batching of the links (lnd: 50 ms, 10 updates). */
  batch?: Partial<BatchConfig>;
  /** Forwarding policy of every channel (lnd's defaults); per channel with setForwardingPolicy. */
  forwardingPolicy?: Partial<ForwardingPolicy>;
  /** Threads for the signatures of big commitments (node/sig-pool.ts); without it every signature is made inline. */
  sigPool?: SigPool;
}

export type ChannelStatus = ChannelState['phase'] | 'failed';

/** A channel as the router sees it (see `routingChannels`). */
export interface RoutingChannel {
  channelId: string;
  peer: string;
  shortChannelId: bigint;
  capacitySat: bigint;
  /** Connected, reestablished, in the normal state. */
  active: boolean;
  /** Announced to the network (a public channel both ends announced): payers find it in the graph, not in hints. */
  announced: boolean;
  /** What an HTLC we add now may carry at most. */
  localBalanceMsat: bigint;
  ourPolicy: ForwardingPolicy;
  /** The peer's fees and delta for HTLCs it forwards to us over this channel, from its channel_update. */
  peerPolicy?: {
    feeBaseMsat: bigint;
    feeProportionalMillionths: bigint;
    cltvExpiryDelta: number;
    htlcMinimumMsat: bigint;
    htlcMaximumMsat: bigint;
    disabled: boolean;
  };
}

export interface ChannelInfo {
  /** Final channel id (hex); the temporary id until funding_created. */
  channelId: string;
  temporaryChannelId: string;
  peer: string;
  keyIndex: number;
  opener: 'local' | 'remote';
  channelType: ChannelType;
  capacitySat: bigint;
  localBalanceMsat: bigint;
  remoteBalanceMsat: bigint;
  /** HTLCs in our current commitment. */
  pendingHtlcs: number;
  /** Blocks our to_local waits after our commitment confirms (the peer sets it). */
  toSelfDelay: number;
  /** Feerate of our current commitment. */
  feeratePerKw: number;
  state: ChannelStatus;
  /** Connected, channel_reestablish exchanged (or just opened), and not failed. */
  active: boolean;
  /** Display-order txid and output index. */
  fundingOutpoint?: string;
  shortChannelId?: string;
  /** Display-order txid of the agreed cooperative close. */
  closingTxid?: string;
  /** Why the channel failed (an `error` sent or received). */
  failure?: string;
  /** Display-order txid of the commitment we broadcast (forceCloseChannel). */
  forceCloseTxid?: string;
  /** Our forwarding policy on it (HTLCs leaving through it; with the switch). */
  policy?: ForwardingPolicy;
}

export interface ChannelEvents {
  /** Funding signed by both sides (and broadcast by the opener); waiting for minimum_depth. */
  channel_pending: [info: ChannelInfo];
  channel_ready: [info: ChannelInfo];
  channel_reestablished: [info: ChannelInfo];
  /** Cooperative close agreed (closing tx broadcast), or an opening abandoned before funding. */
  channel_closed: [info: ChannelInfo];
  /** The funding output was spent on chain. */
  funding_spent: [info: ChannelInfo, spendingTxid: string, cooperative: boolean];
  channel_failed: [info: ChannelInfo, reason: string];
  /** The peer sent an `error` or `warning` (text made printable); `channelId` is all zeros for the whole connection. */
  peer_error: [peer: string, channelId: string, level: 'error' | 'warning', text: string];
  /**
   * A sweep after a unilateral close was broadcast (display-order txid). `output`: our to_local (our commitment, after
   * its delay), our to_remote (their commitment), or `justice`: their to_local taken with the revocation key because
   * the commitment they broadcast was one they had revoked.
   */
  sweep_broadcast: [info: ChannelInfo, sweepTxid: string, output: SweptOutput, valueSat: bigint];
  htlc_incoming: [
    channelId: string,
    htlc: { id: bigint; amountMsat: bigint; paymentHash: Uint8Array; cltvExpiry: number; onionRoutingPacket: Uint8Array },
  ];
  /** The peer revealed the preimage of an HTLC we offered (update_fulfill_htlc received, not yet irrevocable). */
  preimage_received: [channelId: string, id: bigint, paymentPreimage: Uint8Array];
  /**
   * An HTLC we offered was settled: by the peer's update_fulfill_htlc, or on chain after a unilateral close (the
   * preimage read from the peer's claim). The same HTLC may be reported more than once (off chain, then on chain;
   * again after a restart): handle it idempotently.
   */
  htlc_fulfilled: [channelId: string, id: bigint, paymentPreimage: Uint8Array];
  /** An HTLC we offered was failed: by the peer, or on chain (we took it back after its expiry; `reason` undefined). */
  htlc_failed: [
    channelId: string,
    id: bigint,
    reason: Uint8Array | undefined,
    malformed?: { failureCode: number; sha256OfOnion: Uint8Array },
  ];
  /**
   * An HTLC we offered (addHtlc returned its id) that no commitment_signed of
   * ours covered when the connection dropped or the node restarted: the peer
   * never took it, it is forgotten, and its id goes to the next add. Fail it back.
   */
  htlc_unsent: [channelId: string, htlc: { id: bigint; amountMsat: bigint; paymentHash: Uint8Array }];
}

export interface OpenChannelOptions {
  /** Announce the channel to the network (open_channel's announce_channel flag; BOLT 7 after 6 confirmations). */
  announce?: boolean;
  /** Default: anchors if the peer signals 22/23, else static_remotekey. */
  channelType?: ChannelType;
  pushMsat?: bigint;
  /** Commitment feerate; default: the chain's estimate for `feeConfTarget`. */
  feeratePerKw?: number;
}

export interface CloseChannelOptions {
  /** Where our funds go (P2WPKH/P2WSH/P2TR); default: a fresh wallet address. */
  scriptPubKey?: Uint8Array;
  feeratePerKw?: number;
}

export interface AddHtlcRequest {
  amountMsat: bigint;
  paymentHash: Uint8Array;
  cltvExpiry: number;
  /** 1366 bytes; default: a fixed filler (tests only; the switch builds real onions). */
  onionRoutingPacket?: Uint8Array;
}

/** Channel message types routed to channels. */
const CHANNEL_TYPES = [32, 33, 34, 35, 36, 38, 39, 128, 130, 131, 132, 133, 134, 135, 136] as const;
const PRE_FUNDING: ReadonlySet<ChannelState['phase']> = new Set([
  'awaiting_accept',
  'awaiting_funding_tx',
  'awaiting_funding_signed',
  'awaiting_funding_created',
]);

interface ChannelMeta {
  peer: string;
  /** Our delivery script for a cooperative close (a wallet address). */
  shutdownScript: string;
  /** Set once the channel failed (an `error` sent or received): it takes no more updates, across restarts too. */
  failure?: string;
  /** Display-order txid of the commitment we broadcast to close unilaterally. */
  forceCloseTxid?: string;
  /** That commitment, raw (hex): broadcast again after a restart and on each block until the funding output is spent. */
  forceCloseTx?: string;
  /** The peer proved our state is old (channel_reestablish): our commitment is revoked and must never be broadcast. */
  dataLoss?: boolean;
  /** A public channel: the funding is 6 deep, the peer's announcement_signatures (hex), the announcement made. */
  announcement?: { deep?: boolean; theirNodeSig?: string; theirBitcoinSig?: string; announced?: boolean };
  /** Our forwarding policy on this channel when set by updateChannelPolicy. */
  policy?: ForwardingPolicy;
}

/** The smallest cltv_expiry_delta a policy may set (lnd's MinTimeLockDelta). */
export const MIN_CLTV_EXPIRY_DELTA = 18;
const U32_MAX = 0xffffffffn;

/** A change of forwarding policy (updateChannelPolicy): the fields given replace the channel's. */
export interface PolicyUpdate {
  baseFeeMsat?: bigint;
  feeRatePpm?: bigint;
  cltvExpiryDelta?: number;
  htlcMinimumMsat?: bigint;
  htlcMaximumMsat?: bigint;
}

interface Waiter {
  resolve: (info: ChannelInfo) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Chan {
  keyIndex: number;
  peer: string;
  meta: ChannelMeta;
  store: KvStore;
  driver: ChannelDriver;
  /** Between the driver and the switch: onion peeling, the HTLC hand-off, commitment batching. */
  link: ChannelLink;
  confWatch?: WatchHandle;
  spendWatch?: WatchHandle;
  /** Waits for our commitment's CSV delay before sweeping to_local. */
  sweepWatch?: WatchHandle;
  /** HTLC claims waiting for their height, and the delayed sweeps of our second-stage transactions. */
  htlcWatches?: WatchHandle[];
  /** Re-broadcasts our force-close commitment on each block until the funding output is spent. */
  rebroadcastWatch?: WatchHandle;
  /** Publishes again, on each block, a funding transaction the chain refused, until one attempt is taken or it confirms. */
  fundingRetryWatch?: WatchHandle;
  /** The commitment of theirs that spent the funding output, once seen (to claim HTLCs whose preimage comes later). */
  theirCommitmentTx?: Uint8Array;
  /** Our commitment's txid once it spent the funding output (for HTLC-success transactions whose preimage comes later). */
  ourCommitmentTxid?: Uint8Array;
  failure?: string;
  /** openChannel waiting for channel_pending. */
  opening?: Waiter;
  /** closeChannel waiting for the closing tx. */
  closing?: Waiter;
  /** Waits for the 6 confirmations of a public channel's funding (BOLT 7). */
  announceWatch?: WatchHandle;
  /** Our announcement_signatures went out on this connection. */
  announcementSent?: boolean;
  /** Announces the channel disabled if its peer stays away (scheduleDisable). */
  disableTimer?: NodeJS.Timeout;
  /** Our last announced update for it said disabled. */
  announcedDisabled?: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const K_NEXT_INDEX = enc.encode('next_key_index');
const P_META = 'meta/';

function scid(blockHeight: number, txIndex: number, outputIndex: number): bigint {
  return (BigInt(blockHeight) << 40n) | (BigInt(txIndex) << 16n) | BigInt(outputIndex);
}

function formatScid(v: bigint): string {
  return `${v >> 40n}x${(v >> 16n) & 0xffffffn}x${v & 0xffffn}`;
}

export class ChannelManager extends EventEmitter<ChannelEvents> {
  readonly log: Logger;
  readonly policy: ChannelPolicyConfig;
  private readonly node: PeerManager;
  private readonly root: KvStore;
  private readonly chain: ChainSource;
  private readonly wallet: Wallet;
  private readonly seed: Uint8Array;
  private readonly chainHash: Uint8Array;
  private readonly chans = new Map<number, Chan>();
  private readonly peerQueues = new Map<string, Promise<void>>();
  private indexLock: Promise<unknown> = Promise.resolve();
  private started = false;
  private stopped = false;
  private feeTimer: NodeJS.Timeout | undefined;
  private blockWatch: WatchHandle | undefined;
  /** The HTLC switch (undefined in `manual` mode). */
  readonly htlcSwitch: HtlcSwitch | undefined;
  private readonly signer: NodeSigner | undefined;
  private readonly batch: BatchConfig;
  private readonly forwardingPolicy: ForwardingPolicy;
  /** The peers' channel_updates for our channels with them, by short_channel_id. */
  private readonly peerUpdates = new Map<bigint, ChannelUpdate>();
  private readonly timers: Timers = {
    setTimeout: (fn, ms) => {
      const t = setTimeout(fn, ms);
      t.unref();
      return t;
    },
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  };
  /** What happens on chain once a channel's funding output is spent by a commitment. */
  private readonly arbitrator: ChainArbitrator<Chan>;
  private readonly onConnected = (info: PeerInfo): void => this.peerConnected(info.nodeId);
  private readonly onDisconnected = (ev: PeerDisconnectedEvent): void => this.peerDisconnected(ev.nodeId);

  private readonly gossip: ChannelManagerOptions['gossip'];
  private readonly sigPool: SigPool | undefined;
  private readonly chanDisableTimeoutMs: number;

  constructor(o: ChannelManagerOptions) {
    super();
    if (o.seed.length !== 32) throw new ArgumentError('channel seed must be 32 bytes');
    this.node = o.node;
    this.gossip = o.gossip;
    this.sigPool = o.sigPool;
    this.chanDisableTimeoutMs = o.chanDisableTimeoutMs ?? 20 * 60_000;
    this.root = o.store.sublevel('channels');
    this.chain = o.chain;
    this.wallet = o.wallet;
    this.seed = o.seed;
    this.policy = { ...DEFAULT_CHANNEL_POLICY, ...(o.policy ?? {}) };
    this.chainHash = NETWORKS[o.node.config.network].chainHash;
    this.log = subsystemLogger(o.logger ?? silentLogger(), 'channels');
    this.batch = { ...DEFAULT_BATCH_CONFIG, ...(o.batch ?? {}) };
    this.forwardingPolicy = { ...DEFAULT_FORWARDING_POLICY, ...(o.forwardingPolicy ?? {}) };
    if ((o.htlcMode ?? 'switch') === 'switch') {
      // the node loads its key in start(), which comes after ours: read it when first used
      const given = o.nodeKey;
      if (given !== undefined && !secp.isPrivateKey(given)) throw new ArgumentError('nodeKey is not a valid private key');
      let nodeId: Uint8Array | undefined;
      const key = (): Uint8Array => given ?? o.node.identityKey();
      this.signer = {
        get nodeId() {
          return (nodeId ??= publicKeyFromPrivate(key()));
        },
        get privateKey() {
          return key();
        },
        ecdh: (p) => secp.ecdh(p, key()),
        signDigest: (d) => secp.sign(d, key()),
      };
      const swLog = subsystemLogger(o.logger ?? silentLogger(), 'switch');
      this.htlcSwitch = new HtlcSwitch({
        store: o.store.sublevel('switch'),
        ...(o.finalHop !== undefined ? { finalHop: o.finalHop } : {}),
        ...(o.switchConfig !== undefined ? { config: o.switchConfig } : {}),
        log: (level, obj, msg) => swLog[level](obj, msg),
      });
    } else {
      this.htlcSwitch = undefined;
      this.signer = undefined;
    }
    this.arbitrator = new ChainArbitrator<Chan>({
      chain: this.chain,
      wallet: this.wallet,
      seed: this.seed,
      feeConfTarget: this.policy.feeConfTarget,
      log: this.log,
      hooks: {
        swept: (chan, sweepTxid, output, valueSat) => this.emit('sweep_broadcast', this.info(chan), sweepTxid, output, valueSat),
        htlcSettled: (chan, htlcId, preimage) => {
          const channelId = bytesToHex(chan.driver.state.channelId);
          if (preimage !== null) this.emit('htlc_fulfilled', channelId, htlcId, preimage);
          else this.emit('htlc_failed', channelId, htlcId, undefined);
          const sw = this.htlcSwitch;
          if (sw === undefined) return;
          const done =
            preimage !== null
              ? sw.onOutgoingSettle(channelId, htlcId, preimage, 'chain')
              : sw.onOutgoingFail(channelId, htlcId, { onChain: true });
          void done.catch((err: unknown) =>
            this.log.error({ err, channelId, htlcId: String(htlcId) }, 'switch could not take an on-chain resolution'),
          );
        },
        failed: (chan, reason, level) => void this.fail(chan, reason, level),
      },
    });
  }

  /**
   * Reloads every stored channel, registers the channel message handlers and
   * follows peer connections. Call before the node connects to anyone (its
   * handlers must be in place before the first message). HTLC events a
   * previous run may not have handled (and `htlc_unsent` for adds it forgot)
   * are emitted again during start(): listen before calling it.
   */
  async start(): Promise<void> {
    if (this.started) throw new ChannelManagerError('ERR_MANAGER_STOPPED', 'start() called twice');
    this.started = true;
    for (const t of CHANNEL_TYPES) this.node.registerHandler(t, (peer, msg) => this.onMessage(peer, msg));
    this.node.registerHandler(MessageType.Error, (peer, msg) => this.onPeerError(peer, msg, 'error'));
    this.node.registerHandler(MessageType.Warning, (peer, msg) => this.onPeerError(peer, msg, 'warning'));
    // BOLT 7 messages a channel peer sends about our channels: its channel_update (258, even, so it must be
    // handled or the connection fails), kept as the policy of its direction for the router and route hints; and
    // announcement_signatures (259) for public channels (node/channels/announce.ts).
    this.node.registerHandler(CHANNEL_UPDATE_MESSAGE_TYPE, (peer, msg) => this.onChannelUpdate(peer, msg));
    this.node.registerHandler(ANNOUNCEMENT_SIGNATURES_MESSAGE_TYPE, (peer, msg) => this.onAnnouncementSignatures(peer, msg));
    // the switch's records first: the channels' replayed events below are checked against them
    await this.htlcSwitch?.start(this.chain.tip().height);
    for await (const [k, v] of this.root.entries(enc.encode(P_META))) {
      const keyIndex = Number(dec.decode(k).slice(P_META.length));
      // bigints tagged as the switch's JSON records tag them (records without any read as plain JSON)
      const meta = decodeJson<ChannelMeta>(v);
      const store = this.channelStore(keyIndex);
      const states = await loadChannels(store);
      const s = states[0];
      if (s === undefined) continue; // never got past the opening: nothing was signed
      const chan = { keyIndex, peer: meta.peer, meta, store, ...(meta.failure !== undefined ? { failure: meta.failure } : {}) } as Chan;
      this.makeLink(chan);
      chan.driver = ChannelDriver.restore(this.adapters(chan), s);
      this.chans.set(keyIndex, chan);
      await this.resume(chan);
      // HTLC events persisted but maybe not handled before the stop, and our adds the restart forgot
      await chan.driver.replay();
    }
    this.htlcSwitch?.resume();
    if (this.htlcSwitch !== undefined) {
      const sw = this.htlcSwitch;
      this.blockWatch = this.chain.onBlock((ev) => {
        if (ev.type === 'connected') sw.blockConnected(ev.height);
      });
    }
    this.node.on('peer_connected', this.onConnected);
    this.node.on('peer_disconnected', this.onDisconnected);
    // Peers connected before start() (normally none) still get channel_reestablish.
    for (const p of this.node.listPeers()) this.peerConnected(p.nodeId);
    this.scheduleFeeCheck();
    this.log.info({ channels: this.chans.size }, 'channel manager started');
  }

  /** Stops watching the chain and following peers; the node and stores are the caller's. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.feeTimer);
    this.blockWatch?.cancel();
    this.htlcSwitch?.stop();
    this.node.off('peer_connected', this.onConnected);
    this.node.off('peer_disconnected', this.onDisconnected);
    for (const c of this.chans.values()) {
      c.confWatch?.cancel();
      c.spendWatch?.cancel();
      c.sweepWatch?.cancel();
      for (const w of c.htlcWatches ?? []) w.cancel();
      c.rebroadcastWatch?.cancel();
      c.fundingRetryWatch?.cancel();
      c.announceWatch?.cancel();
      clearTimeout(c.disableTimer);
      c.link?.stop();
      const err = new ChannelManagerError('ERR_MANAGER_STOPPED', 'channel manager stopped');
      this.settle(c, 'opening', err);
      this.settle(c, 'closing', err);
    }
    await Promise.all([...this.peerQueues.values()]);
  }

  // ------------------------------------------------------------------ public API

  listChannels(): ChannelInfo[] {
    return [...this.chans.values()].sort((a, b) => a.keyIndex - b.keyIndex).map((c) => this.info(c));
  }

  channel(channelId: string): ChannelInfo | undefined {
    const c = this.find(channelId);
    return c === undefined ? undefined : this.info(c);
  }

  /** The raw machine state of a channel (read-only use: tests, diagnostics). */
  channelState(channelId: string): ChannelState {
    return this.require(channelId).driver.state;
  }

  /**
   * Opens a channel to a connected peer as the opener. Resolves once the
   * funding transaction is signed by both sides and broadcast (channel_pending);
   * rejects if the peer refuses, the connection drops first, or no progress
   * within the policy's timeout.
   */
  async openChannel(peerId: string, fundingSat: bigint, opts: OpenChannelOptions = {}): Promise<ChannelInfo> {
    this.checkRunning();
    const peer = peerId.toLowerCase();
    const handle = this.node.peer(peer);
    if (handle === undefined) throw new ChannelManagerError('ERR_NOT_CONNECTED', `not connected to ${peer}`);
    const channelType =
      opts.channelType ?? (handle.remoteFeatures.supports(Feature.AnchorsZeroFeeHtlcTx) ? 'anchors_zero_fee_htlc' : 'static_remotekey');
    const feeratePerKw = opts.feeratePerKw ?? (await this.chain.estimateFeeratePerKw(this.policy.feeConfTarget));
    const { keyIndex, meta, store } = await this.newChannelRecord(peer);
    return new Promise<ChannelInfo>((resolve, reject) => {
      this.onPeerQueue(peer, async () => {
        const chan = { keyIndex, peer, meta, store } as Chan;
        this.makeLink(chan);
        const waiter = this.waiter(chan, 'opening', resolve, reject, 'channel opening');
        chan.opening = waiter;
        try {
          chan.driver = await ChannelDriver.open(
            this.adapters(chan, () => this.chans.set(keyIndex, chan)),
            {
              temporaryChannelId: randomBytes(32),
              chainHash: this.chainHash,
              keyIndex,
              fundingSat,
              pushMsat: opts.pushMsat ?? 0n,
              feeratePerKw,
              channelType,
              config: this.ourConfig(fundingSat),
              channelFlags: opts.announce === true ? CHANNEL_FLAG_ANNOUNCE : 0,
            },
          );
          this.chans.set(keyIndex, chan);
          this.log.info({ peer, keyIndex, fundingSat: String(fundingSat), channelType, feeratePerKw }, 'open_channel sent');
        } catch (e) {
          this.settle(chan, 'opening', e as Error);
        }
      });
    });
  }

  /**
   * Starts a cooperative close (shutdown, then closing_signed negotiation).
   * Resolves once both sides signed the closing transaction and it was broadcast.
   */
  async closeChannel(channelId: string, opts: CloseChannelOptions = {}): Promise<ChannelInfo> {
    this.checkRunning();
    const c = this.requireUsable(channelId);
    if (c.closing !== undefined)
      throw new ChannelManagerError('ERR_CHANNEL_REFUSED', `a cooperative close of ${channelId} is already in progress`);
    const scriptPubKey = opts.scriptPubKey ?? hexToBytes(c.meta.shutdownScript);
    return new Promise<ChannelInfo>((resolve, reject) => {
      // the waiter takes the slot at once, so a second call is refused even while this one awaits the fee estimate
      c.closing = this.waiter(c, 'closing', resolve, reject, 'cooperative close');
      void (async () => {
        const feeratePerKw = opts.feeratePerKw ?? (await this.chain.estimateFeeratePerKw(this.policy.feeConfTarget));
        const r = await c.driver.apply({ type: 'shutdown', scriptPubKey, feeratePerKw });
        if (r.failure !== undefined) this.settle(c, 'closing', refused(r));
      })().catch((e: unknown) => this.settle(c, 'closing', e as Error));
    });
  }

  /** `manual` mode: offers an HTLC on a channel and signs it; returns its id. (In `switch` mode: sendToRoute.) */
  async addHtlc(channelId: string, req: AddHtlcRequest): Promise<bigint> {
    this.requireManual();
    const c = this.requireUsable(channelId);
    const r = await c.driver.apply({
      type: 'add_htlc',
      amountMsat: req.amountMsat,
      paymentHash: req.paymentHash,
      cltvExpiry: req.cltvExpiry,
      onionRoutingPacket: req.onionRoutingPacket ?? new Uint8Array(1366),
    });
    if (r.failure !== undefined) throw refused(r);
    const add = r.send.find((m) => m.type === 128);
    if (add === undefined || add.type !== 128) throw new ChannelManagerError('ERR_CHANNEL_REFUSED', 'no update_add_htlc produced');
    await c.link.signNow();
    return add.id;
  }

  /**
   * Closes the channel unilaterally: broadcasts our current commitment
   * (signed by both sides) and fails the channel. Our balance comes back to
   * the wallet by itself: once the commitment has `to_self_delay`
   * confirmations the manager sweeps our to_local output (see
   * `sweep_broadcast`). Pending HTLCs are resolved through the
   * second-stage transactions (HTLC-timeout at cltv_expiry, HTLC-success
   * when we hold the preimage; on anchor channels the wallet adds the fee),
   * whose outputs are swept after to_self_delay. Refused after the peer
   * proved our state is old (our commitment is revoked then).
   * Returns the commitment's display-order txid.
   */
  async forceCloseChannel(channelId: string): Promise<string> {
    this.checkRunning();
    const c = this.require(channelId);
    // on the peer's queue: no message of the peer is applied while we sign and record the commitment (a
    // commitment_signed applied in between would make us revoke the very commitment we broadcast)
    return new Promise<string>((resolve, reject) => {
      this.onPeerQueue(c.peer, async () => {
        try {
          resolve(await this.forceCloseNow(c));
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  }

  private async forceCloseNow(c: Chan): Promise<string> {
    const s = c.driver.state;
    if (s.phase === 'closed' || PRE_FUNDING.has(s.phase))
      throw new ChannelManagerError('ERR_CHANNEL_REFUSED', `cannot force close a channel in phase ${s.phase}`);
    if (c.meta.dataLoss === true)
      throw new ChannelManagerError(
        'ERR_CHANNEL_REFUSED',
        'the peer proved our channel state is old: our commitment is revoked, only the peer can close',
      );
    if (c.meta.forceCloseTx !== undefined && c.meta.forceCloseTxid !== undefined) {
      // closed already: the same commitment again
      await this.chain
        .broadcast(buf(hexToBytes(c.meta.forceCloseTx)))
        .catch((err: unknown) => this.log.debug({ err }, 'commitment re-broadcast refused'));
      return c.meta.forceCloseTxid;
    }
    if (c.theirCommitmentTx !== undefined || c.ourCommitmentTxid !== undefined)
      throw new ChannelManagerError('ERR_CHANNEL_REFUSED', 'the funding output is spent by a commitment already');
    // failed from here on: the peer's later messages are dropped
    const wasFailed = c.failure !== undefined;
    c.failure ??= 'force closed by us';
    const secrets = deriveChannelSecrets(this.seed, c.keyIndex);
    const raw = signedLocalCommitment(s, secrets);
    const txid = displayHex(localCommitmentTxid(s, secrets));
    c.meta = { ...c.meta, failure: c.failure, forceCloseTxid: txid, forceCloseTx: bytesToHex(raw) };
    await this.saveMeta(c);
    this.rebroadcastUntilSpent(c, raw);
    try {
      await this.chain.broadcast(buf(raw));
      this.log.info({ channelId: bytesToHex(s.channelId), txid }, 'force close: our commitment broadcast');
    } catch (err) {
      this.log.warn({ err, channelId: bytesToHex(s.channelId), txid }, 'force close: broadcast refused; tried again on each block');
    }
    if (!wasFailed) this.announceFailure(c, c.failure, 'info');
    return txid;
  }

  /** A funding transaction the chain refused goes out again on each block while the channel waits for it. */
  private retryFundingOnBlocks(c: Chan, tx: Uint8Array): void {
    c.fundingRetryWatch?.cancel();
    let trying = false;
    const watch = this.chain.onBlock((ev) => {
      if (ev.type !== 'connected' || trying) return;
      if (c.driver?.state.phase !== 'awaiting_ready' || this.stopped) {
        watch.cancel();
        return;
      }
      trying = true;
      void this.publishFunding(tx)
        .then(
          () => {
            watch.cancel();
            this.log.info({ peer: c.peer, keyIndex: c.keyIndex, height: ev.height }, 'funding transaction taken by the chain');
          },
          (err: unknown) => this.log.debug({ err, height: ev.height }, 'funding transaction refused again'),
        )
        .finally(() => (trying = false));
    });
    c.fundingRetryWatch = watch;
  }

  /** Our force-close commitment goes out again on each block until the funding output is spent. */
  private rebroadcastUntilSpent(c: Chan, raw: Uint8Array): void {
    c.rebroadcastWatch?.cancel();
    c.rebroadcastWatch = this.chain.onBlock((ev) => {
      if (ev.type !== 'connected') return;
      void this.chain.broadcast(buf(raw)).catch((err: unknown) => this.log.debug({ err }, 'commitment re-broadcast refused'));
    });
  }

  /**
   * Settles an incoming HTLC. Once this resolves the channel has persisted the
   * preimage and will see the fulfill through without being asked again:
   * while the peer is away it waits for the next channel_reestablish, and a
   * disconnect (or a restart) that reverses it before a commitment_signed
   * covered it makes the channel send it again after the reestablish, which
   * the manager then signs. It rejects only when the channel refused it (an
   * unknown HTLC, a wrong preimage, one already being resolved). The same
   * holds for failHtlc.
   */
  async fulfillHtlc(channelId: string, id: bigint, paymentPreimage: Uint8Array): Promise<void> {
    await this.resolveHtlc(channelId, { type: 'fulfill_htlc', id, paymentPreimage });
  }

  async failHtlc(channelId: string, id: bigint, reason: Uint8Array = new Uint8Array(0)): Promise<void> {
    await this.resolveHtlc(channelId, { type: 'fail_htlc', id, reason });
  }

  private async resolveHtlc(channelId: string, input: ChannelInput & { type: 'fulfill_htlc' | 'fail_htlc' }): Promise<void> {
    this.requireManual();
    // on a failed channel a fulfill is still recorded (its preimage claims the HTLC output if a commitment reaches the
    // chain) but nothing is signed; failing back there changes nothing on chain and is refused
    const c = input.type === 'fulfill_htlc' ? this.require(channelId) : this.requireUsable(channelId);
    const r = await c.driver.apply(input);
    if (r.failure !== undefined) throw refused(r);
    if (c.failure !== undefined) {
      if (input.type === 'fulfill_htlc') await this.arbitrator.preimageLearnt(c, input.id);
      return;
    }
    // taken and persisted: a signing failure now (the store gone) must not look like a refusal to the caller;
    // the next reestablish or revoke_and_ack signs it
    await c.link
      .signNow()
      .catch((err: unknown) =>
        this.log.warn({ err, id: String(input.id) }, 'signing after a resolution failed; the channel keeps the resolution'),
      );
  }

  /**
   * Proposes a new commitment feerate to the peer (update_fee, then
   * commitment_signed); only the opener may, on an active channel. With
   * `feeratePerKw` that rate is sent as given; without it the chain's
   * estimate goes through the opener's policy (htlc/channel/fee.ts: a change
   * of 10 % or more, capped by `maxFeeAllocation` and, on anchor channels,
   * `maxAnchorsFeeratePerKw`), and nothing is sent for a smaller change.
   * Returns the feerate sent, or null. An update_fee the peer never saw
   * signed (a disconnect) is forgotten by both sides: the next check sends
   * it again.
   */
  async updateChannelFee(channelId: string, feeratePerKw?: number): Promise<number | null> {
    this.checkRunning();
    const c = this.requireUsable(channelId);
    if (!this.info(c).active) throw new ChannelManagerError('ERR_NOT_CONNECTED', `channel ${channelId} is not active`);
    let rate = feeratePerKw;
    if (rate === undefined) {
      const network = await this.chain.estimateFeeratePerKw(this.policy.feeUpdateConfTarget);
      rate = commitFeeUpdate(c.driver.state, network, this.policy) ?? undefined;
      if (rate === undefined) return null;
    }
    const r = await c.driver.apply({ type: 'update_fee', feeratePerKw: rate });
    if (r.failure !== undefined) throw refused(r);
    this.log.info({ channelId: bytesToHex(c.driver.state.channelId), feeratePerKw: rate }, 'update_fee sent');
    await c.link.signNow();
    return rate;
  }

  /** Resolves with the channel once `pred` holds for it (checked on every channel event), or rejects after `timeoutMs`. */
  waitForChannel(channelId: string, pred: (i: ChannelInfo) => boolean, timeoutMs = this.policy.timeoutMs): Promise<ChannelInfo> {
    return new Promise<ChannelInfo>((resolve, reject) => {
      const names = [
        'channel_pending',
        'channel_ready',
        'channel_reestablished',
        'channel_closed',
        'funding_spent',
        'channel_failed',
      ] as const;
      const check = (): boolean => {
        const i = this.channel(channelId);
        if (i !== undefined && pred(i)) {
          done();
          resolve(i);
          return true;
        }
        return false;
      };
      const listener = (): void => void check();
      const timer = setTimeout(() => {
        done();
        reject(
          new ChannelManagerError(
            'ERR_TIMEOUT',
            `channel ${channelId}: condition not met within ${timeoutMs} ms (state ${this.channel(channelId)?.state ?? 'unknown'})`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        for (const n of names) this.off(n, listener);
      };
      for (const n of names) this.on(n, listener);
      check();
    });
  }

  // ------------------------------------------------------------------ records and adapters

  private channelStore(keyIndex: number): KvStore {
    return this.root.sublevel(`ch${keyIndex}`);
  }

  /** A fresh key index (persisted before use) and the channel's meta record. */
  private async newChannelRecord(peer: string): Promise<{ keyIndex: number; meta: ChannelMeta; store: KvStore }> {
    const run = this.indexLock.then(async () => {
      const cur = await this.root.get(K_NEXT_INDEX);
      const keyIndex = cur === undefined ? 0 : Number(dec.decode(cur));
      const script = (await this.wallet.newChangeAddress()).script;
      const meta: ChannelMeta = { peer, shutdownScript: bytesToHex(script) };
      await this.root.batch([
        { type: 'put', key: K_NEXT_INDEX, value: enc.encode(String(keyIndex + 1)) },
        { type: 'put', key: enc.encode(`${P_META}${keyIndex}`), value: encodeJson(meta) },
      ]);
      return { keyIndex, meta, store: this.channelStore(keyIndex) };
    });
    this.indexLock = run.catch(() => undefined);
    return run;
  }

  private ourConfig(fundingSat: bigint): ChannelConfig {
    const onePercent = fundingSat / 100n;
    return {
      dustLimitSat: this.policy.dustLimitSat,
      maxHtlcValueInFlightMsat: fundingSat * 1000n,
      channelReserveSat: onePercent < this.policy.dustLimitSat ? this.policy.dustLimitSat : onePercent,
      htlcMinimumMsat: this.policy.htlcMinimumMsat,
      toSelfDelay: this.policy.toSelfDelay,
      maxAcceptedHtlcs: this.policy.maxAcceptedHtlcs,
    };
  }

  /** `register` runs at the first persisted write (the driver is not returned yet when open/accept send). */
  private adapters(chan: Chan, register?: () => void): ChannelAdapters {
    const wallet: FundingWallet = {
      fundChannel: async (scriptPubKey, amountSat, feeratePerKw) => {
        const f = await this.wallet.createFunding({ script: buf(scriptPubKey), amountSat, feeratePerKw });
        return { tx: f.tx, outputIndex: f.outputIndex };
      },
      // As lnd: the channel is persisted and signed by both before this, so a refusal by the chain (a mempool rule, a
      // chain not ready for segwit spends) does not undo the opening; the transaction goes out again on every block.
      broadcast: async (tx) => {
        try {
          await this.publishFunding(tx);
        } catch (err) {
          this.log.error(
            { peer: chan.peer, keyIndex: chan.keyIndex, err },
            'the chain refused our funding transaction; publishing it again on every block until it is taken',
          );
          this.retryFundingOnBlocks(chan, tx);
        }
      },
      release: async (tx) => this.wallet.abandonFunding(txidOf(tx)).catch(() => undefined),
    };
    return {
      store: chan.store,
      secrets: deriveChannelSecrets(this.seed, chan.keyIndex),
      shutdownScript: hexToBytes(chan.meta.shutdownScript),
      wallet,
      send: (m) => {
        register?.();
        this.sendTo(chan.peer, m);
      },
      sendFailure: (f) => this.sendFailure(chan, f),
      onEvent: (e) => this.onChannelEvent(chan, e),
      ...(this.sigPool !== undefined ? { sigPool: this.sigPool } : {}),
    };
  }

  private async publishFunding(tx: Uint8Array): Promise<void> {
    const txid = txidOf(tx);
    if (this.wallet.pendingFundings().some((f) => equalBytes(f.txid, txid))) await this.wallet.publishFunding(txid);
    else await this.chain.broadcast(buf(tx));
  }

  // ------------------------------------------------------------------ announcing public channels (BOLT 7)

  private isPublic(chan: Chan): boolean {
    return chan.driver !== undefined && (chan.driver.state.channelFlags & CHANNEL_FLAG_ANNOUNCE) !== 0 && this.gossip !== undefined;
  }

  /** A public channel waits for its funding to be 6 deep before the announcement_signatures exchange. */
  private watchAnnouncementDepth(chan: Chan): void {
    const s = chan.driver.state;
    if (!this.isPublic(chan) || chan.meta.announcement?.deep === true || s.fundingTxid === undefined) {
      if (chan.meta.announcement?.deep === true)
        void this.advanceAnnouncement(chan).catch((err: unknown) => this.log.warn({ err }, 'channel announcement failed'));
      return;
    }
    chan.announceWatch?.cancel();
    chan.announceWatch = this.chain.watchConfirmations({ txid: s.fundingTxid, numConfs: ANNOUNCEMENT_DEPTH }, (ev) => {
      if (ev.type !== 'confirmed' || ev.confirmations < ANNOUNCEMENT_DEPTH) return;
      chan.announceWatch?.cancel();
      chan.announceWatch = undefined;
      void (async () => {
        chan.meta = { ...chan.meta, announcement: { ...chan.meta.announcement, deep: true } };
        await this.saveMeta(chan);
        await this.advanceAnnouncement(chan);
      })().catch((err: unknown) => this.log.warn({ err }, 'channel announcement failed'));
    });
  }

  private channelEnds(chan: Chan): ChannelEnds | undefined {
    const s = chan.driver.state;
    if (s.shortChannelId === undefined) return undefined;
    return {
      chainHash: this.chainHash,
      shortChannelId: s.shortChannelId,
      ourNodeId: this.ourNodeId(),
      theirNodeId: hexToBytes(chan.peer),
      ourFundingPubkey: channelPubkeys(deriveChannelSecrets(this.seed, chan.keyIndex)).fundingPubkey,
      theirFundingPubkey: s.remote.pubkeys.fundingPubkey,
    };
  }

  /**
   * The next step of a public channel's announcement: once 6 deep and usable, our announcement_signatures to the
   * peer (once per connection, until the announcement is made); once we hold theirs too, the channel_announcement
   * and our channel_update go to the gossip service.
   */
  private async advanceAnnouncement(chan: Chan): Promise<void> {
    const a = chan.meta.announcement;
    if (!this.isPublic(chan) || a?.deep !== true || chan.driver.state.phase !== 'normal' || chan.failure !== undefined) return;
    const ends = this.channelEnds(chan);
    if (ends === undefined) return;
    const ours = ourAnnouncementSignatures(
      ends,
      chan.driver.state.channelId,
      this.signer?.privateKey ?? this.node.identityKey(),
      deriveChannelSecrets(this.seed, chan.keyIndex).fundingPriv,
    );
    const peer = this.node.peer(chan.peer);
    if (peer !== undefined && chan.announcementSent !== true && a.announced !== true) {
      peer.sendRaw(encodeGossipMessage(ours));
      chan.announcementSent = true;
      this.log.info(
        { channelId: bytesToHex(ours.channelId), shortChannelId: formatScid(ends.shortChannelId) },
        'announcement_signatures sent',
      );
    }
    if (a.theirNodeSig === undefined || a.theirBitcoinSig === undefined || a.announced === true) return;
    const theirs: AnnouncementSignatures = {
      ...ours,
      nodeSignature: hexToBytes(a.theirNodeSig),
      bitcoinSignature: hexToBytes(a.theirBitcoinSig),
    };
    const theirUpdate = this.peerUpdates.get(ends.shortChannelId);
    await this.gossip!.announceChannel(signedAnnouncement(ends, ours, theirs), chan.link.channelUpdate(), theirUpdate);
    chan.meta = { ...chan.meta, announcement: { ...a, announced: true } };
    await this.saveMeta(chan);
    this.log.info({ shortChannelId: formatScid(ends.shortChannelId) }, 'channel announced');
  }

  /** The peer's announcement_signatures for a public channel of ours: checked, kept, and the announcement made. */
  private async onAnnouncementSignatures(peer: PeerHandle, msg: IncomingMessage): Promise<void> {
    let m: AnnouncementSignatures;
    try {
      m = announcementSignaturesCodec.decode(msg.bytes.subarray(2));
    } catch (e) {
      this.log.debug({ peer: peer.nodeIdHex, err: e }, 'malformed announcement_signatures ignored');
      return;
    }
    const chan = this.find(bytesToHex(m.channelId));
    if (chan === undefined || chan.peer !== peer.nodeIdHex || !this.isPublic(chan)) {
      this.log.debug({ peer: peer.nodeIdHex }, 'announcement_signatures for no public channel of ours with this peer ignored');
      return;
    }
    const ends = this.channelEnds(chan);
    if (ends === undefined || !verifyTheirSignatures(ends, m)) {
      // BOLT 7: bad signatures may fail the channel; a warning keeps it usable, and the channel stays unannounced
      peer.send({ type: MessageType.Warning, channelId: m.channelId, data: enc.encode('announcement_signatures do not verify') });
      this.log.warn({ peer: peer.nodeIdHex, channelId: bytesToHex(m.channelId) }, 'announcement_signatures do not verify');
      return;
    }
    const a = chan.meta.announcement ?? {};
    if (a.theirNodeSig === undefined) {
      chan.meta = {
        ...chan.meta,
        announcement: { ...a, theirNodeSig: bytesToHex(m.nodeSignature), theirBitcoinSig: bytesToHex(m.bitcoinSignature) },
      };
      await this.saveMeta(chan);
    }
    await this.advanceAnnouncement(chan);
  }

  private saveMeta(chan: Chan): Promise<void> {
    return this.root.put(enc.encode(`${P_META}${chan.keyIndex}`), encodeJson(chan.meta));
  }

  // ------------------------------------------------------------------ channel_update with the peer

  /**
   * Our channel_update for a channel, sent to its peer once the channel is usable (channel_ready, or
   * channel_reestablish after a reconnection), as lnd does for unannounced channels: the peer learns our fees and
   * CLTV delta for HTLCs it routes through us, and can put them in its invoices' route hints.
   */
  private sendChannelUpdate(chan: Chan): void {
    if (chan.driver?.state.shortChannelId === undefined || this.htlcSwitch === undefined) return;
    this.node.peer(chan.peer)?.sendRaw(chan.link.channelUpdate());
  }

  /**
   * A peer's channel_update for one of our channels with it: kept (in memory; the peer sends it again on each
   * reconnection) if its signature is the peer's, its chain ours, its direction the peer's, and it is newer than
   * the one we hold. Anything else is logged and ignored: BOLT 7 asks no more of a node that does not relay gossip.
   */
  private onChannelUpdate(peer: PeerHandle, msg: IncomingMessage): void {
    const log = this.log.child({ peer: peer.nodeIdHex });
    let u: ChannelUpdate;
    try {
      u = decodeChannelUpdate(msg.bytes.subarray(2));
    } catch (e) {
      log.debug({ err: e }, 'malformed channel_update ignored');
      return;
    }
    const chan = [...this.chans.values()].find((c) => c.peer === peer.nodeIdHex && c.driver?.state.shortChannelId === u.shortChannelId);
    const scidText = formatScid(u.shortChannelId);
    if (chan === undefined) {
      if (this.gossip !== undefined) this.gossip.onForeignChannelUpdate(peer, msg);
      else log.debug({ shortChannelId: scidText }, 'channel_update for a channel we do not have with this peer ignored');
      return;
    }
    const peerKey = hexToBytes(peer.nodeIdHex);
    const theirDirection = compareBytes(peerKey, this.ourNodeId()) < 0 ? 0 : CHANNEL_FLAG_DIRECTION;
    if (!equalBytes(u.chainHash, this.chainHash) || (u.channelFlags & CHANNEL_FLAG_DIRECTION) !== theirDirection) {
      log.debug({ shortChannelId: scidText }, 'channel_update of another chain or direction ignored');
      return;
    }
    if (!channelUpdateSignedBy(u, peerKey)) {
      log.warn({ shortChannelId: scidText }, 'channel_update with a bad signature ignored');
      return;
    }
    // a public channel's update is gossip too: the graph keeps it for the router and relays it
    if (chan.meta.announcement?.announced === true) this.gossip?.onForeignChannelUpdate(peer, msg);
    const held = this.peerUpdates.get(u.shortChannelId);
    if (held !== undefined && held.timestamp >= u.timestamp) return;
    this.peerUpdates.set(u.shortChannelId, u);
    log.debug(
      { shortChannelId: scidText, feeBaseMsat: u.feeBaseMsat, feePpm: u.feeProportionalMillionths, cltvExpiryDelta: u.cltvExpiryDelta },
      'peer channel_update kept',
    );
  }

  /** Our node id (hex). */
  nodeIdHex(): string {
    return bytesToHex(this.ourNodeId());
  }

  /** The chain tip's height. */
  height(): number {
    return this.chain.tip().height;
  }

  private ourNodeId(): Uint8Array {
    return this.signer?.nodeId ?? publicKeyFromPrivate(this.node.identityKey());
  }

  /**
   * The channels the router may use, from our side: for each usable channel its short_channel_id, capacity, what we
   * can send now, our forwarding policy and the peer's (from its channel_update; undefined until it sent one).
   */
  routingChannels(): RoutingChannel[] {
    const out: RoutingChannel[] = [];
    for (const c of this.chans.values()) {
      const st = c.driver?.state;
      if (st?.shortChannelId === undefined || c.failure !== undefined) continue;
      const info = this.info(c);
      const u = this.peerUpdates.get(st.shortChannelId);
      out.push({
        channelId: info.channelId,
        peer: c.peer,
        shortChannelId: st.shortChannelId,
        capacitySat: info.capacitySat,
        active: info.active && info.state === 'normal',
        announced: c.meta.announcement?.announced === true,
        localBalanceMsat: maxSendableMsat(st),
        ourPolicy: this.forwardingPolicy,
        ...(u !== undefined ? { peerPolicy: edgePolicyOf(u) } : {}),
      });
    }
    return out;
  }

  private sendTo(peer: string, m: ChannelMessage): void {
    const p = this.node.peer(peer);
    if (p === undefined) {
      this.log.debug({ peer, type: m.type }, 'peer not connected; message dropped (retransmitted on reestablish)');
      return;
    }
    p.sendRaw(concatBytes(u16be(m.type), encodeChannelMessage(m)));
  }

  private async sendFailure(chan: Chan | undefined, f: ChannelFailure, peerId?: string): Promise<void> {
    const peer = chan?.peer ?? peerId;
    // `sends`, not `level`: that field is the log line's own level
    this.log.warn({ peer, channelId: bytesToHex(f.channelId), sends: f.level, code: f.code, reason: f.message }, 'channel failure');
    if (f.level === 'local' || peer === undefined) return;
    const data = enc.encode(`${f.code}: ${f.message}`.slice(0, 500));
    if (f.level === 'error') {
      // the failure is on disk before the error leaves: a restart cannot bring the channel back to life
      if (chan !== undefined) await this.fail(chan, `sent error ${f.code}: ${f.message}`);
      this.node.peer(peer)?.send({ type: MessageType.Error, channelId: f.channelId, data });
    } else {
      this.node.peer(peer)?.send({ type: MessageType.Warning, channelId: f.channelId, data });
    }
  }

  /** The channel is failed: an opening is abandoned; an established channel stops taking updates. */
  private fail(chan: Chan, reason: string, level: 'error' | 'info' = 'error'): Promise<void> {
    const state = chan.driver?.state;
    if (state === undefined || PRE_FUNDING.has(state.phase)) {
      this.abandonOpening(chan, state, reason);
      return Promise.resolve();
    }
    if (chan.failure !== undefined) return Promise.resolve();
    chan.failure = reason;
    chan.meta = { ...chan.meta, failure: reason };
    const written = this.saveMeta(chan).catch((err: unknown) => this.log.error({ err }, 'could not record the channel failure'));
    this.announceFailure(chan, reason, level);
    return written;
  }

  /** A failed channel stays open on chain until one side closes it: forceCloseChannel() (ours) or the peer's commitment. */
  private announceFailure(chan: Chan, reason: string, level: 'error' | 'info'): void {
    this.log[level]({ channelId: bytesToHex(chan.driver.state.channelId), reason }, 'channel failed');
    this.settle(chan, 'closing', new ChannelManagerError('ERR_CHANNEL_REFUSED', reason));
    this.emit('channel_failed', this.info(chan), reason);
  }

  /** An opening that will not complete: forget it, unlock the funding inputs, tell the caller. */
  private abandonOpening(chan: Chan, state: ChannelState | undefined, reason: string): void {
    this.chans.delete(chan.keyIndex);
    if (state?.fundingTx !== undefined) void this.wallet.abandonFunding(txidOf(state.fundingTx)).catch(() => undefined);
    void this.root.del(enc.encode(`${P_META}${chan.keyIndex}`)).catch(() => undefined);
    this.log.info({ peer: chan.peer, keyIndex: chan.keyIndex, reason }, 'channel opening abandoned');
    this.settle(chan, 'opening', new ChannelManagerError('ERR_OPEN_FAILED', reason));
  }

  // ------------------------------------------------------------------ peers and messages

  private onPeerQueue(peer: string, fn: () => Promise<void>): void {
    const prev = this.peerQueues.get(peer) ?? Promise.resolve();
    const next = prev.then(fn).catch((e: unknown) => this.log.error({ peer, err: e }, 'channel work failed'));
    this.peerQueues.set(peer, next);
    void next.then(() => {
      if (this.peerQueues.get(peer) === next) this.peerQueues.delete(peer);
    });
  }

  private peerChans(peer: string): Chan[] {
    return [...this.chans.values()].filter((c) => c.peer === peer);
  }

  private peerConnected(peer: string): void {
    if (this.stopped) return;
    this.onPeerQueue(peer, async () => {
      for (const c of this.peerChans(peer)) {
        if (c.driver.state.phase === 'closed' && c.driver.state.shutdown?.closingTx === undefined) continue;
        await c.driver.apply({ type: 'connected' });
      }
    });
  }

  private peerDisconnected(peer: string): void {
    if (this.stopped) return;
    this.onPeerQueue(peer, async () => {
      for (const c of this.peerChans(peer)) {
        if (PRE_FUNDING.has(c.driver.state.phase)) {
          this.abandonOpening(c, c.driver.state, 'peer disconnected during the opening');
          await c.driver.apply({ type: 'disconnected' }); // → closed, channel_closed
          continue;
        }
        await c.driver.apply({ type: 'disconnected' });
        this.scheduleDisable(c);
      }
    });
  }

  /**
   * A public channel whose peer stays away for `chanDisableTimeoutMs` (lnd's chan-disable-timeout, 20 min) is
   * announced disabled, so that payers stop routing over it; it is announced enabled again when it comes back.
   */
  private scheduleDisable(c: Chan): void {
    if (c.meta.announcement?.announced !== true || this.gossip === undefined) return;
    clearTimeout(c.disableTimer);
    c.disableTimer = setTimeout(() => {
      c.disableTimer = undefined;
      if (this.stopped || this.node.peer(c.peer) !== undefined) return;
      c.announcedDisabled = true;
      void this.gossip!.announceUpdate(c.link.channelUpdate(true)).catch((err: unknown) =>
        this.log.warn({ err }, 'disabling update failed'),
      );
    }, this.chanDisableTimeoutMs);
    c.disableTimer.unref();
  }

  private onMessage(peer: PeerHandle, msg: IncomingMessage): void {
    const peerId = peer.nodeIdHex;
    let m: ChannelMessage;
    try {
      m = decodeChannelMessage(msg.type, msg.bytes.subarray(2));
    } catch (e) {
      const reason = e instanceof AmpnodeError ? e : new ChannelManagerError('ERR_CHANNEL_REFUSED', String(e));
      this.log.warn({ peer: peerId, type: msg.type, reason: reason.message }, 'malformed channel message; disconnecting');
      peer.send({
        type: MessageType.Warning,
        channelId: new Uint8Array(32),
        data: enc.encode(`malformed ${msg.name}: ${reason.message}`.slice(0, 500)),
      });
      peer.disconnect(reason);
      return;
    }
    this.onPeerQueue(peerId, () => this.route(peerId, m));
  }

  private async route(peer: string, m: ChannelMessage): Promise<void> {
    const id = channelIdOf(m);
    if (m.type === 32) {
      await this.acceptOpen(peer, m);
      return;
    }
    const chan = this.peerChans(peer).find(
      (c) =>
        equalBytes(c.driver.state.channelId, id) || ((m.type === 33 || m.type === 34) && equalBytes(c.driver.state.temporaryChannelId, id)),
    );
    if (chan === undefined) {
      this.log.warn({ peer, type: m.type, channelId: bytesToHex(id) }, 'message for an unknown channel');
      this.sendFailure(
        undefined,
        { level: 'error', code: 'ERR_UNKNOWN_CHANNEL', message: `unknown channel ${bytesToHex(id)}`, channelId: id },
        peer,
      );
      return;
    }
    if (chan.failure !== undefined) {
      // a failed channel takes no more updates; to its peer's channel_reestablish it answers with the error again
      // (BOLT 2: a channel in an error state retransmits the error and ignores the rest). Our own channel_reestablish
      // still goes out on connect, so a peer that lost its state learns our current point.
      if (m.type === 136) {
        this.log.info(
          { peer, channelId: bytesToHex(id), reason: chan.failure },
          'channel_reestablish for a failed channel: error retransmitted',
        );
        this.node
          .peer(peer)
          ?.send({ type: MessageType.Error, channelId: id, data: enc.encode(`channel failed: ${chan.failure}`.slice(0, 500)) });
      }
      return;
    }
    if (chan.driver.state.phase === 'closed' && (m.type === 38 || m.type === 39)) {
      // lnd echoes the agreed closing_signed after we accepted its fee: the close is done, nothing to answer
      this.log.debug({ peer, type: m.type, channelId: bytesToHex(id) }, 'closing message for a closed channel ignored');
      return;
    }
    try {
      await chan.driver.apply({ type: 'message', msg: m });
    } catch (e) {
      // an adapter failed (the wallet could not fund, the store could not write): the step was not applied
      this.log.error({ peer, type: m.type, err: e }, 'channel step failed');
      if (PRE_FUNDING.has(chan.driver.state.phase)) {
        const reason = `opening failed: ${(e as Error).message}`;
        this.sendFailure(
          undefined,
          { level: 'error', code: 'ERR_BAD_PARAMETERS', message: 'internal error; channel opening abandoned', channelId: id },
          peer,
        );
        this.abandonOpening(chan, chan.driver.state, reason);
      }
      return;
    }
    if (m.type === 132 || m.type === 133 || m.type === 136) await chan.link.afterPeerUpdate();
  }

  private async acceptOpen(peer: string, m: OpenChannel): Promise<void> {
    const mine = this.peerChans(peer);
    if (mine.some((c) => equalBytes(c.driver.state.temporaryChannelId, m.temporaryChannelId))) {
      this.sendFailure(
        undefined,
        { level: 'error', code: 'ERR_BAD_PARAMETERS', message: 'temporary_channel_id already in use', channelId: m.temporaryChannelId },
        peer,
      );
      return;
    }
    const pending = mine.filter(
      (c) => c.driver.state.opener === 'remote' && (PRE_FUNDING.has(c.driver.state.phase) || c.driver.state.phase === 'awaiting_ready'),
    ).length;
    if (pending >= this.policy.maxPendingChannels) {
      this.sendFailure(
        undefined,
        { level: 'error', code: 'ERR_BAD_PARAMETERS', message: `too many pending channels (${pending})`, channelId: m.temporaryChannelId },
        peer,
      );
      return;
    }
    const { keyIndex, meta, store } = await this.newChannelRecord(peer);
    const chan = { keyIndex, peer, meta, store } as Chan;
    this.makeLink(chan);
    const d = await ChannelDriver.accept(
      this.adapters(chan, () => this.chans.set(keyIndex, chan)),
      m,
      {
        chainHash: this.chainHash,
        keyIndex,
        config: this.ourConfig(m.fundingSatoshis),
        minimumDepth: this.policy.minimumDepth,
      },
    );
    if (d === null) {
      this.chans.delete(keyIndex);
      await this.root.del(enc.encode(`${P_META}${keyIndex}`));
      return;
    }
    chan.driver = d;
    this.chans.set(keyIndex, chan);
    this.log.info({ peer, keyIndex, fundingSat: String(m.fundingSatoshis), channelType: d.state.channelType }, 'accepted open_channel');
  }

  private onPeerError(peer: PeerHandle, msg: IncomingMessage, level: 'error' | 'warning'): void {
    const m = msg.message;
    if (m === undefined || (m.type !== MessageType.Error && m.type !== MessageType.Warning)) return;
    const text = dec
      .decode(m.data)
      .replace(/[^\x20-\x7e]/g, '?')
      .slice(0, 300);
    const chan = this.peerChans(peer.nodeIdHex).find(
      (c) => equalBytes(c.driver.state.channelId, m.channelId) || equalBytes(c.driver.state.temporaryChannelId, m.channelId),
    );
    this.log.warn(
      { peer: peer.nodeIdHex, channelId: bytesToHex(m.channelId), level, text, known: chan !== undefined },
      `peer sent ${level}`,
    );
    this.emit('peer_error', peer.nodeIdHex, bytesToHex(m.channelId), level, text);
    if (chan === undefined || level === 'warning' || chan.driver.state.phase === 'closed') return;
    this.onPeerQueue(peer.nodeIdHex, async () => this.fail(chan, `peer sent error: ${text}`));
  }

  /** The opener's periodic feerate check (lnd's link does the same on a random 10–60 minute timer). */
  private scheduleFeeCheck(): void {
    const { feeUpdateMinIntervalMs: min, feeUpdateMaxIntervalMs: max } = this.policy;
    if (this.stopped || max <= 0) return;
    const delay = min + Math.floor(Math.random() * Math.max(0, max - min));
    this.feeTimer = setTimeout(() => {
      void this.checkFees().finally(() => this.scheduleFeeCheck());
    }, delay);
    this.feeTimer.unref();
  }

  private async checkFees(): Promise<void> {
    for (const c of this.chans.values()) {
      if (this.stopped) return;
      const s = c.driver.state;
      if (s.opener !== 'local' || s.phase !== 'normal' || !this.info(c).active) continue;
      await this.updateChannelFee(bytesToHex(s.channelId)).catch((err: unknown) =>
        this.log.warn({ err, channelId: bytesToHex(s.channelId) }, 'commitment fee update failed'),
      );
    }
  }

  // ------------------------------------------------------------------ channel events

  /** Called from inside the driver: never awaits the driver. */
  private async onChannelEvent(chan: Chan, e: ChannelEvent): Promise<void> {
    const cid = (): string => bytesToHex(chan.driver?.state.channelId ?? new Uint8Array(32));
    switch (e.type) {
      case 'watch_funding':
        this.watchFunding(chan, e.txid, e.outputIndex, e.minimumDepth);
        queueMicrotask(() => {
          const info = this.info(chan);
          this.settle(chan, 'opening', undefined, info);
          this.emit('channel_pending', info);
        });
        return;
      case 'channel_ready':
        chan.confWatch?.cancel();
        chan.confWatch = undefined;
        queueMicrotask(() => {
          this.sendChannelUpdate(chan);
          this.watchAnnouncementDepth(chan);
          this.emit('channel_ready', this.info(chan));
        });
        return;
      case 'channel_reestablished':
        queueMicrotask(() => {
          this.sendChannelUpdate(chan);
          chan.announcementSent = false;
          clearTimeout(chan.disableTimer);
          if (chan.announcedDisabled === true) {
            chan.announcedDisabled = false;
            void this.gossip
              ?.announceUpdate(chan.link.channelUpdate())
              .catch((err: unknown) => this.log.warn({ err }, 'enabling update failed'));
          }
          void this.advanceAnnouncement(chan).catch((err: unknown) => this.log.warn({ err }, 'channel announcement failed'));
          this.emit('channel_reestablished', this.info(chan));
        });
        return;
      case 'htlc_incoming': {
        const h = e.htlc;
        queueMicrotask(() =>
          this.emit('htlc_incoming', cid(), {
            id: h.htlcId,
            amountMsat: h.amountMsat,
            paymentHash: h.paymentHash,
            cltvExpiry: h.cltvExpiry,
            onionRoutingPacket: h.onionRoutingPacket,
          }),
        );
        // the switch records it before this returns: only then does the channel drop it from its outbox
        await chan.link.onChannelEvent(e);
        return;
      }
      case 'preimage_received':
        queueMicrotask(() => this.emit('preimage_received', cid(), e.id, e.paymentPreimage));
        await chan.link.onChannelEvent(e);
        return;
      case 'htlc_fulfilled':
        queueMicrotask(() => this.emit('htlc_fulfilled', cid(), e.id, e.paymentPreimage));
        await chan.link.onChannelEvent(e);
        return;
      case 'htlc_failed': {
        const malformed =
          e.failureCode !== undefined && e.sha256OfOnion !== undefined
            ? { failureCode: e.failureCode, sha256OfOnion: e.sha256OfOnion }
            : undefined;
        queueMicrotask(() => this.emit('htlc_failed', cid(), e.id, e.reason, malformed));
        await chan.link.onChannelEvent(e);
        return;
      }
      case 'htlc_unsent':
        this.log.info({ channelId: cid(), id: String(e.htlc.htlcId) }, 'HTLC dropped unsigned at disconnect');
        queueMicrotask(() =>
          this.emit('htlc_unsent', cid(), { id: e.htlc.htlcId, amountMsat: e.htlc.amountMsat, paymentHash: e.htlc.paymentHash }),
        );
        await chan.link.onChannelEvent(e);
        return;
      case 'closing_tx':
        await this.chain
          .broadcast(buf(e.tx))
          .catch((err: unknown) => this.log.warn({ err }, 'closing tx broadcast failed (the peer may have broadcast it first)'));
        this.log.info({ channelId: cid(), txid: displayHex(txidOf(e.tx)), feeSat: String(e.feeSat) }, 'closing tx broadcast');
        return;
      case 'channel_closed':
        queueMicrotask(() => {
          const info = this.info(chan);
          if (chan.driver !== undefined && chan.driver.state.shutdown?.closingTx !== undefined)
            this.settle(chan, 'closing', undefined, info);
          this.emit('channel_closed', info);
        });
        return;
      case 'data_loss':
        // recorded before anything else: forceCloseChannel refuses from now on (our commitment is revoked)
        chan.meta = { ...chan.meta, dataLoss: true };
        await this.saveMeta(chan);
        this.log.error(
          { channelId: cid() },
          'peer proved we lost channel state; our commitment must not be broadcast, the peer has to close',
        );
        return;
      case 'funding_needed':
      case 'broadcast_funding':
        return; // done by the driver through the wallet adapter
    }
  }

  private watchFunding(chan: Chan, txid: Uint8Array, outputIndex: number, minimumDepth: number): void {
    chan.confWatch?.cancel();
    chan.confWatch = this.chain.watchConfirmations({ txid, numConfs: Math.max(1, minimumDepth) }, (ev) => {
      if (ev.type !== 'confirmed' || chan.driver === undefined) return;
      const c = ev.confirmation;
      void chan.driver
        .apply({ type: 'funding_depth', depth: ev.confirmations, shortChannelId: scid(c.blockHeight, c.txIndex, outputIndex) })
        .catch((err: unknown) => this.log.error({ err }, 'funding_depth failed'));
    });
    this.watchFundingSpend(chan, txid, outputIndex);
  }

  private watchFundingSpend(chan: Chan, txid: Uint8Array, outputIndex: number): void {
    chan.spendWatch?.cancel();
    chan.spendWatch = this.chain.watchSpend({ outpoint: { txid, outputIndex } }, (ev) => {
      if (ev.type !== 'spent') return;
      chan.rebroadcastWatch?.cancel();
      chan.rebroadcastWatch = undefined;
      const spending = displayHex(ev.detail.spendingTxid);
      const closing = chan.driver?.state.shutdown?.closingTx;
      const cooperative = closing !== undefined && equalBytes(txidOf(closing), ev.detail.spendingTxid);
      this.log.info({ channelId: bytesToHex(chan.driver.state.channelId), spendingTxid: spending, cooperative }, 'funding output spent');
      this.emit('funding_spent', this.info(chan), spending, cooperative);
      if (!cooperative)
        void this.arbitrator
          .onUnilateralClose(chan, ev.detail.spendingTx, ev.detail.spendingTxid)
          .catch((err: unknown) => this.log.error({ err }, 'sweeping a unilateral close failed'));
      else void this.arbitrator.pruneRevocationLog(chan);
    });
  }

  /** After a restart: watches, and re-publication of what may not have reached the network. */
  private async resume(chan: Chan): Promise<void> {
    const s = chan.driver.state;
    if (s.fundingTxid !== undefined && s.fundingOutputIndex !== undefined) {
      if (s.phase === 'awaiting_ready') this.watchFunding(chan, s.fundingTxid, s.fundingOutputIndex, s.minimumDepth);
      else this.watchFundingSpend(chan, s.fundingTxid, s.fundingOutputIndex); // only the spend matters now
      if (s.phase === 'normal') this.watchAnnouncementDepth(chan);
    }
    if (s.opener === 'local' && s.fundingTx !== undefined && s.phase === 'awaiting_ready') {
      await this.publishFunding(s.fundingTx).catch((err: unknown) =>
        this.log.debug({ err }, 'funding tx re-broadcast refused (likely confirmed already)'),
      );
    }
    if (s.phase === 'closed' && s.shutdown?.closingTx !== undefined) {
      await this.chain.broadcast(buf(s.shutdown.closingTx)).catch(() => undefined);
    }
    if (chan.meta.forceCloseTx !== undefined && s.phase !== 'closed') {
      // the mempool may not have kept it: again now, and on each block until the funding output is spent
      const raw = hexToBytes(chan.meta.forceCloseTx);
      this.rebroadcastUntilSpent(chan, raw);
      await this.chain
        .broadcast(buf(raw))
        .catch((err: unknown) => this.log.debug({ err }, 'commitment re-broadcast refused (likely confirmed or spent already)'));
    }
  }

  // ------------------------------------------------------------------ helpers

  private info(c: Chan): ChannelInfo {
    const s = c.driver.state;
    return {
      channelId: bytesToHex(s.channelId),
      temporaryChannelId: bytesToHex(s.temporaryChannelId),
      peer: c.peer,
      keyIndex: c.keyIndex,
      opener: s.opener,
      channelType: s.channelType,
      capacitySat: s.fundingSat,
      localBalanceMsat: s.localCommit.ourBalanceMsat,
      remoteBalanceMsat: s.localCommit.theirBalanceMsat,
      pendingHtlcs: s.localCommit.htlcs.length,
      toSelfDelay: s.remote.config.toSelfDelay,
      feeratePerKw: s.localCommit.feeratePerKw,
      state: c.failure !== undefined ? 'failed' : s.phase,
      active:
        c.failure === undefined &&
        s.reestablished &&
        this.node.peer(c.peer) !== undefined &&
        (s.phase === 'normal' || s.phase === 'shutdown' || s.phase === 'negotiating'),
      ...(s.fundingTxid !== undefined ? { fundingOutpoint: `${displayHex(s.fundingTxid)}:${s.fundingOutputIndex}` } : {}),
      ...(s.shortChannelId !== undefined ? { shortChannelId: formatScid(s.shortChannelId) } : {}),
      ...(s.shutdown?.closingTx !== undefined ? { closingTxid: displayHex(txidOf(s.shutdown.closingTx)) } : {}),
      ...(c.failure !== undefined ? { failure: c.failure } : {}),
      ...(c.meta.forceCloseTxid !== undefined ? { forceCloseTxid: c.meta.forceCloseTxid } : {}),
      ...(c.link !== undefined && this.htlcSwitch !== undefined ? { policy: { ...c.link.policy } } : {}),
    };
  }

  private find(channelId: string): Chan | undefined {
    const id = channelId.toLowerCase();
    for (const c of this.chans.values()) {
      const s = c.driver?.state;
      if (s !== undefined && (bytesToHex(s.channelId) === id || bytesToHex(s.temporaryChannelId) === id)) return c;
    }
    return undefined;
  }

  private require(channelId: string): Chan {
    const c = this.find(channelId);
    if (c === undefined) throw new ChannelManagerError('ERR_UNKNOWN_CHANNEL', `no channel ${channelId}`);
    return c;
  }

  /** A channel that takes local updates: not failed (an error, a force close, a data loss). */
  private requireUsable(channelId: string): Chan {
    const c = this.require(channelId);
    if (c.failure !== undefined) throw new ChannelManagerError('ERR_CHANNEL_REFUSED', `channel ${channelId} failed: ${c.failure}`);
    return c;
  }

  private requireManual(): void {
    if (this.htlcSwitch !== undefined)
      throw new ChannelManagerError(
        'ERR_CHANNEL_REFUSED',
        'HTLCs are handled by the switch in this mode (htlcMode: switch); use sendToRoute',
      );
  }

  /** The link of a channel: between its driver and the switch. */
  private makeLink(chan: Chan): void {
    const channel: LinkChannel = {
      get channelId() {
        return bytesToHex(chan.driver?.state.channelId ?? new Uint8Array(32));
      },
      shortChannelId: () => chan.driver?.state.shortChannelId,
      peerNodeId: () => hexToBytes(chan.peer),
      capacityMsat: () => (chan.driver?.state.fundingSat ?? 0n) * 1000n,
      canAdd: () => {
        const s = chan.driver?.state;
        return (
          s !== undefined &&
          chan.failure === undefined &&
          s.phase === 'normal' &&
          s.shutdown === undefined &&
          s.reestablished &&
          this.node.peer(chan.peer) !== undefined
        );
      },
      failed: () => chan.failure !== undefined,
      apply: (input) => chan.driver.apply(input),
      incomingOpen: (id) => chan.driver !== undefined && incomingOpen(chan.driver.state, id),
      preimageLearnt: (id) => this.arbitrator.preimageLearnt(chan, id),
      forceClose: async (_reason) => {
        await this.forceCloseChannel(bytesToHex(chan.driver.state.channelId));
      },
    };
    chan.link = new ChannelLink({
      channel,
      signer: this.signer ?? {
        nodeId: new Uint8Array(33),
        privateKey: new Uint8Array(32),
        ecdh: () => new Uint8Array(32),
        signDigest: () => new Uint8Array(64),
      },
      chainHash: this.chainHash,
      policy: { ...this.forwardingPolicy, ...(chan.meta?.policy ?? {}) },
      batch: this.htlcSwitch !== undefined ? this.batch : { delayMs: 0, maxPending: 1 },
      timers: this.timers,
      ...(this.htlcSwitch !== undefined ? { switch: this.htlcSwitch } : {}),
      log: (level, obj, msg) => this.log[level](obj, msg),
    });
    this.htlcSwitch?.registerLink(chan.link);
  }

  /**
   * Sends an HTLC along `route` (lnd's SendToRouteV2) and resolves with the attempt's result: the preimage, or the
   * decrypted failure with the index of the hop that sent it. See HtlcSwitch.sendToRoute.
   */
  sendToRoute(
    route: Route,
    paymentHash: Uint8Array,
    records: FinalPayloadRecords = {},
    opts: { attemptId?: bigint } = {},
  ): Promise<AttemptResult> {
    this.checkRunning();
    const sw = this.htlcSwitch;
    if (sw === undefined) throw new ChannelManagerError('ERR_CHANNEL_REFUSED', 'no HTLC switch in manual mode');
    return sw.sendToRoute(route, paymentHash, records, opts);
  }

  /** Sets the forwarding policy of one channel (HTLCs leaving through it). */
  setForwardingPolicy(channelId: string, policy: Partial<ForwardingPolicy>): void {
    const c = this.require(channelId);
    c.link.policy = { ...c.link.policy, ...policy };
  }

  /**
   * Changes our forwarding policy (lnd's updatechanpolicy) on one channel, or on every open channel when `channelId`
   * is undefined. Checked first for every channel (nothing changes if one refuses): cltv_expiry_delta 18–65535, fees
   * within BOLT 7's u32, htlc_minimum_msat at least what the peer accepts from us and at most htlc_maximum_msat, which is
   * at most the channel's capacity. Each new policy is persisted before it applies; then the new channel_update goes
   * to the network for an announced channel and to the peer for a private one. Returns the channels changed.
   */
  async updateChannelPolicy(channelId: string | undefined, change: PolicyUpdate): Promise<ChannelInfo[]> {
    if (this.stopped) throw new ChannelManagerError('ERR_MANAGER_STOPPED', 'the channel manager is stopped');
    const chans =
      channelId !== undefined
        ? [this.require(channelId)]
        : [...this.chans.values()].filter((c) => c.driver !== undefined && c.failure === undefined && c.driver.state.phase === 'normal');
    const next = new Map<Chan, ForwardingPolicy>();
    for (const c of chans) {
      const id = bytesToHex(c.driver.state.channelId);
      if (c.failure !== undefined || c.driver.state.phase !== 'normal')
        throw new ChannelManagerError('ERR_INVALID_POLICY', `channel ${id} is not open (${c.failure ?? c.driver.state.phase})`);
      const p: ForwardingPolicy = { ...c.link.policy };
      if (change.baseFeeMsat !== undefined) p.baseFeeMsat = change.baseFeeMsat;
      if (change.feeRatePpm !== undefined) p.feeRatePpm = change.feeRatePpm;
      if (change.cltvExpiryDelta !== undefined) p.cltvExpiryDelta = change.cltvExpiryDelta;
      if (change.htlcMinimumMsat !== undefined) p.htlcMinimumMsat = change.htlcMinimumMsat;
      if (change.htlcMaximumMsat !== undefined) p.htlcMaximumMsat = change.htlcMaximumMsat;
      const bad = (why: string): never => {
        throw new ChannelManagerError('ERR_INVALID_POLICY', `channel ${id}: ${why}`);
      };
      if (!Number.isInteger(p.cltvExpiryDelta) || p.cltvExpiryDelta < MIN_CLTV_EXPIRY_DELTA || p.cltvExpiryDelta > 0xffff)
        bad(`cltv_expiry_delta ${p.cltvExpiryDelta} is outside ${MIN_CLTV_EXPIRY_DELTA}–65535`);
      if (p.baseFeeMsat < 0n || p.baseFeeMsat > U32_MAX) bad(`base fee ${p.baseFeeMsat} msat is outside 0–${U32_MAX}`);
      if (p.feeRatePpm < 0n || p.feeRatePpm > U32_MAX) bad(`fee rate ${p.feeRatePpm} ppm is outside 0–${U32_MAX}`);
      const capacityMsat = c.driver.state.fundingSat * 1000n;
      const peerMinimum = c.driver.state.remote.config.htlcMinimumMsat;
      if (p.htlcMinimumMsat < peerMinimum) bad(`htlc_minimum_msat ${p.htlcMinimumMsat} is below the peer's minimum ${peerMinimum}`);
      if (p.htlcMaximumMsat !== undefined) {
        if (p.htlcMaximumMsat > capacityMsat) bad(`htlc_maximum_msat ${p.htlcMaximumMsat} is above the capacity ${capacityMsat}`);
        if (p.htlcMaximumMsat < p.htlcMinimumMsat) bad(`htlc_maximum_msat ${p.htlcMaximumMsat} is below htlc_minimum_msat`);
      } else if (p.htlcMinimumMsat > capacityMsat) bad(`htlc_minimum_msat ${p.htlcMinimumMsat} is above the capacity`);
      next.set(c, p);
    }
    const changed: ChannelInfo[] = [];
    for (const [c, p] of next) {
      c.meta = { ...c.meta, policy: p };
      await this.saveMeta(c);
      c.link.policy = p;
      if (c.meta.announcement?.announced === true)
        await this.gossip
          ?.announceUpdate(c.link.channelUpdate())
          .catch((err: unknown) => this.log.warn({ err }, 'policy update announcement failed'));
      else this.sendChannelUpdate(c);
      this.log.info(
        {
          channelId: bytesToHex(c.driver.state.channelId),
          baseFeeMsat: String(p.baseFeeMsat),
          feeRatePpm: String(p.feeRatePpm),
          cltvExpiryDelta: p.cltvExpiryDelta,
        },
        'forwarding policy updated',
      );
      changed.push(this.info(c));
    }
    return changed;
  }

  /** The forwarding policy a channel's link applies. */
  forwardingPolicyOf(channelId: string): ForwardingPolicy {
    return { ...this.require(channelId).link.policy };
  }

  /** commitment_signed messages a channel's link has sent (for tests and benchmarks). */
  commitSigsSent(channelId: string): number {
    return this.require(channelId).link.commitSigsSent;
  }

  /** HTLC signatures those commitment_signed messages carried. */
  htlcSigsSent(channelId: string): number {
    return this.require(channelId).link.htlcSigsSent;
  }

  private checkRunning(): void {
    if (!this.started || this.stopped) throw new ChannelManagerError('ERR_MANAGER_STOPPED', 'the channel manager is not running');
  }

  private waiter(
    c: Chan,
    slot: 'opening' | 'closing',
    resolve: (i: ChannelInfo) => void,
    reject: (e: Error) => void,
    what: string,
  ): Waiter {
    const w: Waiter = { resolve, reject, timer: undefined as unknown as NodeJS.Timeout };
    w.timer = setTimeout(() => {
      // only this waiter: the slot may hold a later one by now
      if (c[slot] === w)
        this.settle(c, slot, new ChannelManagerError('ERR_TIMEOUT', `${what} did not complete within ${this.policy.timeoutMs} ms`));
    }, this.policy.timeoutMs);
    w.timer.unref();
    return w;
  }

  private settle(c: Chan, slot: 'opening' | 'closing', err?: Error, info?: ChannelInfo): void {
    const w = c[slot];
    if (w === undefined) return;
    c[slot] = undefined;
    clearTimeout(w.timer);
    if (err !== undefined) w.reject(err);
    else w.resolve(info ?? this.info(c));
  }
}

function refused(r: StepResult): ChannelManagerError {
  const f = r.failure!;
  return new ChannelManagerError('ERR_CHANNEL_REFUSED', `${f.code}: ${f.message}`);
}

/** SHA-256 payment hash of a preimage (for callers building HTLCs). */
export function paymentHashOf(preimage: Uint8Array): Uint8Array {
  return sha256(preimage);
}
