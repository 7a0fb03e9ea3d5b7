/**
 * `createNode`: one ampnode as an app embeds it, composed from its parts in the order they depend on each other
 * (store → wallet → invoice registry → channel manager with its switch → payment service → the peer node) and
 * stopped in reverse. It follows a chain backend it is given, so several nodes can share one embedded regtest chain
 * (the AMP demo runs four on one). Everything it keeps lives in `datadir`: the node key, the wallet seed (from which
 * the channel keys derive) and the LevelDB store.
 *
 * The facade speaks in the units and types of the rest of the code (bigint msat, hex node ids, typed errors).
 * The daemon (`ampnode start`, node/cli.ts) is this same node with a chain of its own and the control API.
 *
 * Data directory layout:
 *   DIR/node_key      the identity key (0600; node/config.ts)
 *   DIR/wallet_seed   32 random bytes (hex, 0600): the wallet's BIP32 seed; the channel key seed is derived from it,
 *                     so one file backs every key the node holds besides its identity
 *   DIR/db/           the LevelDB store (wallet, channels, circuits, invoices, payments, the event queue)
 *   DIR/chain/        bcoin's chain database, when the node runs a chain of its own
 *   DIR/api_token     the control API's bearer token (with `api`; node/datadir.ts)
 *
 * The datadir is refused when empty and made 0700 before anything is read or written (node/datadir.ts). What
 * LevelDB and bcoin create inside follows the process umask: the daemon sets 077, an app embedding this sets its own.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openDiskStore, type KvStore } from '../db/store.js';
import { DEFAULT_BATCH_CONFIG, DEFAULT_FORWARDING_POLICY, DEFAULT_SWITCH_CONFIG } from '../htlc/switch/interfaces.js';
import {
  DEFAULT_REGISTRY_CONFIG,
  InvoiceRegistry,
  type AddInvoiceRequest,
  type AmpSet,
  type Invoice,
  type RegistryConfig,
  type SettleEvent,
} from '../htlc/invoices/index.js';
import { DEFAULT_PAYMENT_CONFIG, type PaymentConfig, type PaymentEvent, type PaymentRecord } from '../htlc/router/payments.js';
import { BcoinChainBackend, createChainBackend, type ChainMode } from './chain/index.js';
import { ControlApi } from './channels/api.js';
import { withChannelFeatures } from './channels/features.js';
import { displayHex } from './channels/tx.js';
import {
  ChannelManager,
  DEFAULT_CHANNEL_POLICY,
  type ChannelInfo,
  type CloseChannelOptions,
  type ChannelPolicyConfig,
  type OpenChannelOptions,
  type PolicyUpdate,
  type RoutingChannel,
} from './channels/manager.js';
import { PaymentService, type PayInvoiceOptions, type SendSpontaneousOptions } from './channels/payments.js';
import { paymentRequest } from './channels/payreq.js';
import { DEFAULT_GOSSIP_CONFIG, GossipService, type GossipConfig } from './gossip.js';
import { EventQueue, type NodeEvent } from './events.js';
import { DEFAULTS as PEER_DEFAULTS, parseHostPort } from './config.js';
import { checkDatadirPath, loadOrCreateApiToken, prepareDatadir } from './datadir.js';
import { FEATURE_TABLE } from './features.js';
import { subsystemLogger, type Logger } from './log.js';
import { PeerManager, type PeerInfo } from './peer-manager.js';
import { NETWORKS, type Network } from './network.js';
import { UNREF_TIMERS } from './timers.js';
import { acquireSigPool } from './sig-pool.js';
import { channelSeedOf, loadOrCreateSeed } from './wallet/seed.js';
import { Wallet, type WalletBalance } from './wallet/wallet.js';

/** A chain of the node's own, kept under DATADIR/chain and closed when the node stops. */
export interface OwnChainOptions {
  /** `embedded`: a regtest chain in this process; `p2p`: follow the regtest node at `chainPeer` (btcd, bitcoind). */
  mode: ChainMode;
  chainPeer?: string;
  /** Embedded only: serve the chain over P2P on this loopback HOST:PORT, for other nodes to follow. */
  chainListen?: string;
  /** Feerate when the chain has no estimate (sat/kw). */
  fallbackFeeratePerKw?: number;
}

export interface CreateNodeOptions {
  datadir: string;
  /**
   * The chain to follow: a backend the app opened (several nodes may share one; the app closes it after them), or
   * the options of one the node opens for itself under DATADIR/chain and closes at stop.
   */
  chain: BcoinChainBackend | OwnChainOptions;
  logger: Logger;
  /** `HOST:PORT` to accept peers on (port 0: any free port); null: accept none. Default 127.0.0.1:0. */
  listen?: string | null;
  /** The chain peers must share (BOLT 1 init `networks`); default regtest. */
  network?: Network;
  /** Interval of BOLT 1 pings to each peer (ms; 0: none); default the peer manager's. */
  pingIntervalMs?: number;
  /** Serve the control API (node/channels/api.ts) on this loopback HOST:PORT, with this bearer token (default: DATADIR/api_token). */
  api?: { listen: string; token?: string };
  /** Channel opening and acceptance settings (minimum depth, timeouts, ...). */
  policy?: Partial<ChannelPolicyConfig>;
  /** accept-amp, accept-keysend, mpp timeout, ... (htlc/invoices/types.ts). */
  invoices?: Partial<RegistryConfig>;
  payments?: Partial<PaymentConfig>;
  /** Gossip: our node_announcement's alias and colour, the relay period, ... (node/gossip.ts). */
  gossip?: Partial<GossipConfig>;
  /**
   * `manual`: the channels' HTLCs are left to the caller (the channel manager's addHtlc / fulfillHtlc / failHtlc), not
   * handed to the switch; for the channels demo and tests of the channel layer. Default `switch`.
   */
  htlcMode?: 'switch' | 'manual';
  /**
   * Threads that make and check the signatures of big commitments (node/sig-pool.ts, shared by the nodes of one
   * process); 0: none, every signature on the main thread. Default one fewer than the cores, at most 4.
   */
  sigWorkers?: number;
}

/**
 * Every setting's default, by group (ldk-node's defaults table on Config): `channels` is CreateNodeOptions.policy,
 * `invoices` .invoices, `payments` .payments, `peers` the peer manager's (node/config.ts); `forwarding` and
 * `batching` apply to each channel's link, `switch` to the HTLC switch. The README's table is checked against this.
 */
export const NODE_DEFAULTS = {
  peers: PEER_DEFAULTS,
  channels: DEFAULT_CHANNEL_POLICY,
  invoices: DEFAULT_REGISTRY_CONFIG,
  payments: DEFAULT_PAYMENT_CONFIG,
  forwarding: DEFAULT_FORWARDING_POLICY,
  batching: DEFAULT_BATCH_CONFIG,
  switch: DEFAULT_SWITCH_CONFIG,
  gossip: DEFAULT_GOSSIP_CONFIG,
} as const;

export class AmpNode {
  private readonly settleListeners: ((e: SettleEvent) => void)[] = [];
  private readonly paymentListeners: ((e: PaymentEvent) => void)[] = [];
  private stopped = false;
  private releaseSigPool: (() => Promise<void>) | undefined;
  /** The control API, when `api` was asked for. */
  api: ControlApi | undefined;

  private constructor(
    readonly chain: BcoinChainBackend,
    private readonly ownChain: boolean,
    readonly node: PeerManager,
    readonly store: KvStore,
    readonly wallet: Wallet,
    readonly invoices: InvoiceRegistry,
    readonly manager: ChannelManager,
    readonly payments: PaymentService,
    private readonly queue: EventQueue,
    readonly gossip: GossipService,
    private readonly log: Logger,
  ) {}

  static async create(o: CreateNodeOptions): Promise<AmpNode> {
    const log = subsystemLogger(o.logger, 'node');
    prepareDatadir(checkDatadirPath(o.datadir), subsystemLogger(o.logger, 'datadir'));
    const { seed } = await loadOrCreateSeed(join(o.datadir, 'wallet_seed'));
    // what was opened, closed in reverse if a later step fails
    const opened: (() => Promise<void> | void)[] = [];
    try {
      const ownChain = !(o.chain instanceof BcoinChainBackend);
      const chain = o.chain instanceof BcoinChainBackend ? o.chain : await openOwnChain(o.datadir, o.chain, o.logger);
      if (ownChain) opened.push(() => chain.close());
      const store = await openDiskStore(join(o.datadir, 'db'));
      opened.push(() => store.close());
      const node = new PeerManager({
        datadir: o.datadir,
        listen: o.listen === undefined ? '127.0.0.1:0' : o.listen,
        features: withChannelFeatures(FEATURE_TABLE),
        logger: o.logger,
        ...(o.network !== undefined ? { network: o.network } : {}),
        ...(o.pingIntervalMs !== undefined ? { pingIntervalMs: o.pingIntervalMs } : {}),
      });
      const queue = new EventQueue(store.sublevel('events'));
      await queue.load();
      opened.push(() => queue.close());
      const evLog = subsystemLogger(o.logger, 'events');
      const queued = (p: Promise<void>): void => void p.catch((err: unknown) => evLog.error({ err }, 'queueing an event failed'));
      const wallet = await Wallet.open({ chain, store, seed: Buffer.from(seed) });
      opened.push(() => wallet.close());
      const gossip = await GossipService.create({
        peers: node,
        chain,
        store: store.sublevel('graph'),
        chainHash: NETWORKS[node.config.network].chainHash,
        logger: subsystemLogger(o.logger, 'gossip'),
        localFeatures: () => node.localFeatureBytes(),
        ...(o.gossip !== undefined ? { config: o.gossip } : {}),
      });
      opened.push(() => gossip.stop());
      const invLog = subsystemLogger(o.logger, 'invoices');
      const invoices = new InvoiceRegistry({
        store: store.sublevel('invoices'),
        timers: UNREF_TIMERS,
        ...(o.invoices !== undefined ? { config: o.invoices } : {}),
        log: (l, obj, msg) => invLog[l](obj, msg),
      });
      await invoices.start();
      opened.push(() => invoices.stop());
      const sigs = acquireSigPool(o.sigWorkers, (err) => log.warn({ err }, 'a sig pool thread failed; its signatures are made inline'));
      if (sigs !== undefined) opened.push(() => sigs.release());
      const manager = new ChannelManager({
        node,
        store,
        chain,
        wallet,
        seed: channelSeedOf(seed),
        logger: o.logger,
        ...(o.policy !== undefined ? { policy: o.policy } : {}),
        finalHop: invoices,
        gossip,
        chanDisableTimeoutMs: gossip.config.chanDisableTimeoutMs,
        ...(o.htlcMode !== undefined ? { htlcMode: o.htlcMode } : {}),
        ...(sigs !== undefined ? { sigPool: sigs.pool } : {}),
      });
      const holder: { node?: AmpNode } = {};
      const payments = new PaymentService({
        manager,
        store: store.sublevel('payments'),
        network: 'bcrt',
        timers: UNREF_TIMERS,
        log: subsystemLogger(o.logger, 'payments'),
        ...(o.payments !== undefined ? { config: o.payments } : {}),
        publicGraph: gossip.graph,
        onEvent: (e) => {
          queued(queue.onPaymentEnded(e.payment));
          holder.node?.paymentListeners.forEach((f) => f(e));
        },
      });
      const self = new AmpNode(chain, ownChain, node, store, wallet, invoices, manager, payments, queue, gossip, log);
      holder.node = self;
      self.releaseSigPool = sigs?.release;
      manager.on('channel_pending', (c) => queued(queue.onChannel('pending', c)));
      manager.on('channel_ready', (c) => queued(queue.onChannel('ready', c)));
      manager.on('channel_closed', (c) => queued(queue.onChannel('closed', c)));
      manager.on('funding_spent', (c, txid, cooperative) => queued(queue.onChannel('closed', c, { cooperative, txid })));
      await manager.start(); // its message handlers before the first peer
      opened.push(() => manager.stop());
      await queue.reconcileChannels(manager.listChannels());
      if (o.htlcMode !== 'manual') {
        await payments.start(); // (manual: no switch to send with; paying fails with ERR_PAYMENTS_STOPPED)
        opened.push(() => payments.stop());
      }
      const floor = await queue.paymentFloor();
      await queue.reconcilePayments(await payments.list({ afterCreationIndex: floor - 1n, limit: Number.MAX_SAFE_INTEGER }));
      await node.start();
      opened.push(() => node.stop());
      gossip.start();
      await invoices.subscribeSettled(await queue.settleCursor(), (e) => {
        queued(queue.onSettled(e));
        self.settleListeners.forEach((f) => f(e));
      });
      if (o.api !== undefined) {
        const api = new ControlApi(self, { token: o.api.token ?? loadOrCreateApiToken(o.datadir, log).token });
        self.api = api;
        const address = await api.listen(o.api.listen);
        log.info({ api: `http://${address}` }, 'local API listening');
      }
      log.info({ nodeId: node.nodeIdHex, chain: chain.mode, height: chain.tip().height, listen: node.listenAddress }, 'node started');
      return self;
    } catch (e) {
      for (const close of opened.reverse()) await Promise.resolve(close()).catch(() => undefined);
      throw e;
    }
  }

  get nodeId(): string {
    return this.node.nodeIdHex;
  }

  /** `nodeId@host:port`. */
  get uri(): string {
    return `${this.node.nodeIdHex}@${this.node.listenAddress ?? ''}`;
  }

  async connect(uri: string): Promise<void> {
    const [id, addr] = uri.split('@') as [string, string];
    const { host, port } = parseHostPort(addr);
    await this.node.connect(id, host, port);
  }

  /** A fresh on-chain address of this node's wallet (P2WPKH). */
  async newAddress(): Promise<string> {
    return (await this.wallet.newAddress()).address;
  }

  /** Drops the connection to a peer (and stops reconnecting to it); false when it was not connected. */
  disconnect(nodeId: string): boolean {
    return this.node.disconnect(nodeId);
  }

  listPeers(): PeerInfo[] {
    return this.node.listPeers();
  }

  /** Closes a channel cooperatively; resolves when the closing transaction is signed by both and published. */
  closeChannel(channelId: string, opts: CloseChannelOptions = {}): Promise<ChannelInfo> {
    return this.manager.closeChannel(channelId, opts);
  }

  /**
   * Changes our forwarding policy (fees, CLTV delta, HTLC limits) on one channel, or on every open channel without
   * `channelId` (lnd's updatechanpolicy); persisted, and announced (a public channel) or sent to the peer (a private
   * one). Throws ChannelManagerError ERR_INVALID_POLICY, changing nothing, when a channel cannot take it.
   */
  updateChannelPolicy(change: PolicyUpdate & { channelId?: string }): Promise<ChannelInfo[]> {
    const { channelId, ...rest } = change;
    return this.manager.updateChannelPolicy(channelId, rest);
  }

  /** On chain (the wallet: confirmed, unconfirmed, immature, locked) and in channels (what we could send now). */
  balances(): { onChain: WalletBalance; channelsMsat: bigint } {
    return { onChain: this.wallet.balance(), channelsMsat: this.channels().reduce((s, c) => s + c.localBalanceMsat, 0n) };
  }

  /**
   * Running or stopped, the chain tip this node follows (height, hash in display order), whether it is caught up with
   * its chain (BcoinChainBackend.isSynced), peers and channels.
   */
  status(): {
    running: boolean;
    nodeId: string;
    chainTip: { height: number; hashHex: string };
    synced: boolean;
    peers: number;
    channels: number;
  } {
    const tip = this.chain.tip();
    return {
      running: !this.stopped,
      nodeId: this.nodeId,
      chainTip: { height: tip.height, hashHex: displayHex(tip.hash) },
      synced: !this.stopped && this.chain.isSynced(),
      peers: this.node.listPeers().length,
      channels: this.channels().length,
    };
  }

  listPayments(opts: { afterCreationIndex?: bigint; limit?: number } = {}): Promise<PaymentRecord[]> {
    return this.payments.list(opts);
  }

  lookupPayment(id: Uint8Array): Promise<PaymentRecord | undefined> {
    return this.payments.lookup(id);
  }

  /** Invoices in the order they were added, after `afterAddIndex`, at most `limit`. */
  listInvoices(opts: { afterAddIndex?: bigint; limit?: number } = {}): Promise<Invoice[]> {
    return this.invoices.listInvoices(opts);
  }

  lookupInvoiceByHash(paymentHash: Uint8Array): Promise<Invoice | undefined> {
    return this.invoices.lookupByHash(paymentHash);
  }

  openChannel(peer: string, fundingSat: bigint, opts: OpenChannelOptions = {}): Promise<ChannelInfo> {
    return this.manager.openChannel(peer, fundingSat, opts);
  }

  channels(): ChannelInfo[] {
    return this.manager.listChannels();
  }

  /** The channels payments can use, with what each can send now and the peer's policy. */
  routingChannels(): RoutingChannel[] {
    return this.manager.routingChannels();
  }

  /** A new invoice and its BOLT 11 payment request (route hints over our channels whose peers sent their policy). */
  async addInvoice(req: AddInvoiceRequest = {}): Promise<{ invoice: Invoice; paymentRequest: string }> {
    const invoice = await this.invoices.addInvoice(req);
    return { invoice, paymentRequest: paymentRequest(invoice, this.node.identityKey(), 'bcrt', this.manager.routingChannels()) };
  }

  payInvoice(payReq: string, opts: PayInvoiceOptions = {}): Promise<PaymentRecord> {
    return this.payments.payInvoice(payReq, opts);
  }

  sendSpontaneous(o: SendSpontaneousOptions): Promise<PaymentRecord> {
    return this.payments.sendSpontaneous(o);
  }

  lookupSet(setId: Uint8Array): Promise<AmpSet | undefined> {
    return this.invoices.lookupSet(setId);
  }

  lookupInvoice(paymentAddr: Uint8Array): Promise<(Invoice & { sets?: AmpSet[] }) | undefined> {
    return this.invoices.lookupByAddr(paymentAddr, { withSets: true });
  }

  /**
   * The oldest event not yet acknowledged (undefined when none waits). It stays the head of the queue, across
   * restarts too, until `eventHandled()`.
   */
  nextEvent(): NodeEvent | undefined {
    return this.queue.nextEvent();
  }

  /** The head of the queue, once there is one. Rejects (ERR_NODE_NOT_STARTED) when the node stops first. */
  waitNextEvent(): Promise<NodeEvent> {
    return this.queue.waitNextEvent();
  }

  /**
   * Acknowledges the head of the queue, durably: it is not delivered again. Given `eventId`, checks first that it is
   * the head (ERR_EVENT_NOT_PENDING otherwise).
   */
  eventHandled(eventId?: bigint): Promise<void> {
    return this.queue.eventHandled(eventId);
  }

  /** How many events wait to be acknowledged. */
  pendingEvents(): number {
    return this.queue.pending;
  }

  /**
   * The queue as an async iterator: `for await (const e of node.events()) { ... }`. An event is acknowledged when the
   * loop comes back for the next one; leaving the loop (break, throw) leaves the last one to be delivered again.
   * The loop ends when the node stops.
   */
  events(): AsyncIterableIterator<NodeEvent> {
    let delivered: bigint | undefined;
    const it: AsyncIterableIterator<NodeEvent> = {
      next: async () => {
        if (delivered !== undefined) {
          const id = delivered;
          delivered = undefined;
          if (this.queue.nextEvent()?.eventId === id) await this.queue.eventHandled(id);
        }
        if (this.stopped) return { done: true, value: undefined };
        try {
          const e = await this.queue.waitNextEvent();
          delivered = e.eventId;
          return { done: false, value: e };
        } catch (err) {
          if (this.stopped) return { done: true, value: undefined };
          throw err;
        }
      },
      return: () => {
        delivered = undefined;
        return Promise.resolve({ done: true, value: undefined });
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Every settled payment to us: one event per settled invoice and per settled AMP set. */
  onPaymentReceived(f: (e: SettleEvent) => void): void {
    this.settleListeners.push(f);
  }

  /** Every payment of ours that ended (succeeded or failed). */
  onPaymentEnded(f: (e: PaymentEvent) => void): void {
    this.paymentListeners.push(f);
  }

  /**
   * Stops the API, the peers, the payments, the channels, the registry, the event queue and the wallet, closes the
   * store, and the chain if it is the node's own. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.api?.close();
    await this.node.stop();
    await this.gossip.stop();
    this.payments.stop();
    await this.manager.stop();
    await this.releaseSigPool?.();
    this.invoices.stop();
    await this.queue.close();
    await this.wallet.close();
    await this.store.close();
    if (this.ownChain) await this.chain.close();
    this.log.info('node stopped');
  }
}

async function openOwnChain(datadir: string, o: OwnChainOptions, logger: Logger): Promise<BcoinChainBackend> {
  const chainLog = subsystemLogger(logger, 'chain');
  // bcoin keeps its databases in <chainDir>/regtest/ and does not create that directory itself
  await mkdir(join(datadir, 'chain', 'regtest'), { recursive: true, mode: 0o700 });
  return createChainBackend({
    chain: o.mode,
    ...(o.chainPeer !== undefined ? { chainPeer: o.chainPeer } : {}),
    ...(o.chainListen !== undefined ? { chainListen: o.chainListen } : {}),
    ...(o.fallbackFeeratePerKw !== undefined ? { fallbackFeeratePerKw: o.fallbackFeeratePerKw } : {}),
    chainDir: join(datadir, 'chain'),
    onError: (e) => chainLog.warn({ err: e }, 'chain backend error'),
  });
}

/**
 * A node of the peer layer alone (the daemon's `--chain none`): BOLT 8 connections, init and pings, no chain, no
 * channels. The caller starts and stops it.
 */
export function createPeerOnlyNode(o: { datadir: string; logger: Logger; listen?: string | null; network?: Network }): PeerManager {
  prepareDatadir(checkDatadirPath(o.datadir), subsystemLogger(o.logger, 'datadir'));
  return new PeerManager({
    datadir: o.datadir,
    listen: o.listen === undefined ? '127.0.0.1:0' : o.listen,
    logger: o.logger,
    ...(o.network !== undefined ? { network: o.network } : {}),
  });
}

export function createNode(o: CreateNodeOptions): Promise<AmpNode> {
  return AmpNode.create(o);
}
