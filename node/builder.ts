/**
 * `createNode`: one ampnode as an app embeds it, composed from its parts in the order they depend on each other
 * (store → wallet → invoice registry → channel manager with its switch → payment service → the peer node) and
 * stopped in reverse. It follows a chain backend it is given, so several nodes can share one embedded regtest chain
 * (the AMP demo runs four on one). Everything it keeps lives in `datadir`: the node key, the wallet seed (from which
 * the channel keys derive) and the LevelDB store.
 *
 * The facade speaks in the units and types of the rest of the code (bigint msat, hex node ids, typed errors).
 */
import { join } from 'node:path';
import { openDiskStore, type KvStore } from '../db/store.js';
import {
  InvoiceRegistry,
  type AddInvoiceRequest,
  type AmpSet,
  type Invoice,
  type RegistryConfig,
  type SettleEvent,
} from '../htlc/invoices/index.js';
import type { PaymentConfig, PaymentEvent, PaymentRecord } from '../htlc/router/payments.js';
import type { BcoinChainBackend } from './chain/index.js';
import { withChannelFeatures } from './channels/features.js';
import { displayHex } from './channels/tx.js';
import {
  ChannelManager,
  type ChannelInfo,
  type CloseChannelOptions,
  type ChannelPolicyConfig,
  type OpenChannelOptions,
  type RoutingChannel,
} from './channels/manager.js';
import { PaymentService, type PayInvoiceOptions, type SendSpontaneousOptions } from './channels/payments.js';
import { paymentRequest } from './channels/payreq.js';
import { EventQueue, type NodeEvent } from './events.js';
import { parseHostPort } from './config.js';
import { checkDatadirPath, prepareDatadir } from './datadir.js';
import { FEATURE_TABLE } from './features.js';
import { subsystemLogger, type Logger } from './log.js';
import { PeerManager, type PeerInfo } from './peer-manager.js';
import { UNREF_TIMERS } from './timers.js';
import { channelSeedOf, loadOrCreateSeed } from './wallet/seed.js';
import { Wallet, type WalletBalance } from './wallet/wallet.js';

export interface CreateNodeOptions {
  datadir: string;
  chain: BcoinChainBackend;
  logger: Logger;
  /** `HOST:PORT` to accept peers on (port 0: any free port); default 127.0.0.1:0. */
  listen?: string;
  /** Channel opening and acceptance settings (minimum depth, timeouts, ...). */
  policy?: Partial<ChannelPolicyConfig>;
  /** accept-amp, accept-keysend, mpp timeout, ... (htlc/invoices/types.ts). */
  invoices?: Partial<RegistryConfig>;
  payments?: Partial<PaymentConfig>;
}

export class AmpNode {
  private readonly settleListeners: ((e: SettleEvent) => void)[] = [];
  private readonly paymentListeners: ((e: PaymentEvent) => void)[] = [];
  private stopped = false;

  private constructor(
    private readonly chain: BcoinChainBackend,
    readonly node: PeerManager,
    readonly store: KvStore,
    readonly wallet: Wallet,
    readonly invoices: InvoiceRegistry,
    readonly manager: ChannelManager,
    readonly payments: PaymentService,
    private readonly queue: EventQueue,
  ) {}

  static async create(o: CreateNodeOptions): Promise<AmpNode> {
    prepareDatadir(checkDatadirPath(o.datadir), subsystemLogger(o.logger, 'datadir'));
    const { seed } = await loadOrCreateSeed(join(o.datadir, 'wallet_seed'));
    const store = await openDiskStore(join(o.datadir, 'db'));
    const node = new PeerManager({
      datadir: o.datadir,
      listen: o.listen ?? '127.0.0.1:0',
      features: withChannelFeatures(FEATURE_TABLE),
      logger: o.logger,
      pingIntervalMs: 0,
    });
    const queue = new EventQueue(store.sublevel('events'));
    await queue.load();
    const evLog = subsystemLogger(o.logger, 'events');
    const queued = (p: Promise<void>): void => void p.catch((err: unknown) => evLog.error({ err }, 'queueing an event failed'));
    const wallet = await Wallet.open({ chain: o.chain, store, seed: Buffer.from(seed) });
    const invLog = subsystemLogger(o.logger, 'invoices');
    const invoices = new InvoiceRegistry({
      store: store.sublevel('invoices'),
      timers: UNREF_TIMERS,
      ...(o.invoices !== undefined ? { config: o.invoices } : {}),
      log: (l, obj, msg) => invLog[l](obj, msg),
    });
    await invoices.start();
    const manager = new ChannelManager({
      node,
      store,
      chain: o.chain,
      wallet,
      seed: channelSeedOf(seed),
      logger: o.logger,
      ...(o.policy !== undefined ? { policy: o.policy } : {}),
      finalHop: invoices,
    });
    const holder: { node?: AmpNode } = {};
    const payments = new PaymentService({
      manager,
      store: store.sublevel('payments'),
      network: 'bcrt',
      timers: UNREF_TIMERS,
      log: subsystemLogger(o.logger, 'payments'),
      ...(o.payments !== undefined ? { config: o.payments } : {}),
      onEvent: (e) => {
        queued(queue.onPaymentEnded(e.payment));
        holder.node?.paymentListeners.forEach((f) => f(e));
      },
    });
    const self = new AmpNode(o.chain, node, store, wallet, invoices, manager, payments, queue);
    holder.node = self;
    manager.on('channel_pending', (c) => queued(queue.onChannel('pending', c)));
    manager.on('channel_ready', (c) => queued(queue.onChannel('ready', c)));
    manager.on('channel_closed', (c) => queued(queue.onChannel('closed', c)));
    manager.on('funding_spent', (c, txid, cooperative) => queued(queue.onChannel('closed', c, { cooperative, txid })));
    await manager.start(); // its message handlers before the first peer
    await queue.reconcileChannels(manager.listChannels());
    await payments.start();
    await queue.reconcilePayments(await payments.list({ afterCreationIndex: (await queue.paymentFloor()) - 1n, limit: 1_000_000 }));
    await node.start();
    await invoices.subscribeSettled(await queue.settleCursor(), (e) => {
      queued(queue.onSettled(e));
      self.settleListeners.forEach((f) => f(e));
    });
    return self;
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

  /** Stops the peer node, the payments, the channels, the registry and the wallet, then closes the store. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.node.stop();
    this.payments.stop();
    await this.manager.stop();
    this.invoices.stop();
    await this.queue.close();
    await this.wallet.close();
    await this.store.close();
  }
}

export function createNode(o: CreateNodeOptions): Promise<AmpNode> {
  return AmpNode.create(o);
}
