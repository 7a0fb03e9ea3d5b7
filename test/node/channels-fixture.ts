/**
 * Two (or more) ampnode Nodes in one process, each with its own store, wallet
 * and ChannelManager, talking over real loopback TCP and sharing ONE embedded
 * in-memory regtest chain. A node may live on a disk store so that it can be
 * stopped and started again from its data directory.
 */
import { PaymentService } from '../../node/channels/payments.js';
import { UNREF_TIMERS } from '../../node/timers.js';
import { paymentRequest } from '../../node/channels/payreq.js';
import type { PaymentConfig, PaymentEvent } from '../../htlc/router/payments.js';
import type { Invoice } from '../../htlc/invoices/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDiskStore, openMemoryStore, type KvStore } from '../../db/store.js';
import { BcoinChainBackend } from '../../node/chain/index.js';
import { ChannelManager, type ChannelManagerOptions, type ChannelPolicyConfig } from '../../node/channels/manager.js';
import { withChannelFeatures } from '../../node/channels/features.js';
import { FEATURE_TABLE } from '../../node/features.js';
import { createLogger } from '../../node/log.js';
import { PeerManager } from '../../node/peer-manager.js';
import { ELSEWHERE, SEGWIT_HEIGHT } from './chain-fixture.js';
import { Wallet } from '../../node/wallet/wallet.js';
import { InvoiceRegistry, type RegistryConfig } from '../../htlc/invoices/index.js';
import { randomBytes, randomPrivateKey, sha256 } from '../../wire/crypto.js';

export interface TestNodeSpec {
  name: string;
  /** Keep the store on disk (restartable). */
  disk?: boolean;
  policy?: Partial<ChannelPolicyConfig>;
  /** `manual` (default here: the channel-layer tests drive HTLCs by hand) or `switch` (links, switch, sendToRoute). */
  htlcMode?: 'switch' | 'manual';
  /** Extra ChannelManager options for `switch` nodes (final hop, batching, switch config, forwarding policy). */
  manager?: Partial<Pick<ChannelManagerOptions, 'finalHop' | 'batch' | 'switchConfig' | 'forwardingPolicy' | 'sigPool'>>;
  /** Give the node an invoice registry (its final-hop handler) with these settings. */
  registry?: Partial<RegistryConfig>;
  /** `switch` nodes: a payment service (router, mission control, payment lifecycle) with these settings. */
  payments?: Partial<PaymentConfig>;
  /** Wraps the node's store each time it is opened (fault injection: a crash between two writes). */
  wrapStore?: (s: KvStore) => KvStore;
  /** Where the node's log lines go (at debug); absent: silent unless AMPNODE_TEST_LOG is set. */
  logDestination?: { write(line: string): unknown };
}

export class TestNode {
  node!: PeerManager;
  store!: KvStore;
  /** The store under any wrapper. */
  rawStore!: KvStore;
  wallet!: Wallet;
  manager!: ChannelManager;
  /** With `spec.registry`: the invoice registry, made again at each start. */
  registry: InvoiceRegistry | undefined;
  /** With `spec.payments`: the payment service, made again at each start; its events in order. */
  payments: PaymentService | undefined;
  readonly paymentEvents: PaymentEvent[] = [];
  readonly nodeKey = randomPrivateKey();
  readonly walletSeed: Uint8Array = Buffer.from(randomBytes(32)); // bcoin HD wants a Buffer
  readonly channelSeed = randomBytes(32);
  readonly dir: string | undefined;

  constructor(
    readonly spec: TestNodeSpec,
    readonly chain: BcoinChainBackend,
  ) {
    this.dir = spec.disk === true ? mkdtempSync(join(tmpdir(), `ampnode-channels-${spec.name}-`)) : undefined;
  }

  get id(): string {
    return this.node.nodeIdHex;
  }

  get port(): number {
    return Number(this.node.listenAddress!.split(':').pop());
  }

  async start(): Promise<void> {
    this.rawStore = this.dir === undefined ? await openMemoryStore() : await openDiskStore(join(this.dir, 'db'));
    this.store = this.spec.wrapStore?.(this.rawStore) ?? this.rawStore;
    this.wallet = await Wallet.open({ chain: this.chain, store: this.store, seed: this.walletSeed });
    const logger = (
      this.spec.logDestination !== undefined
        ? createLogger({ level: 'debug', destination: this.spec.logDestination })
        : createLogger({ level: (process.env['AMPNODE_TEST_LOG'] as 'debug' | undefined) ?? 'silent' })
    ).child({ node: this.spec.name });
    this.node = new PeerManager({
      nodeKey: this.nodeKey,
      listen: '127.0.0.1:0',
      features: withChannelFeatures(FEATURE_TABLE),
      logger,
      pingIntervalMs: 0,
    });
    if (this.spec.registry !== undefined) {
      this.registry = new InvoiceRegistry({
        store: this.store.sublevel('invoices'),
        timers: UNREF_TIMERS,
        config: this.spec.registry,
      });
      await this.registry.start();
    }
    this.manager = new ChannelManager({
      node: this.node,
      store: this.store,
      chain: this.chain,
      wallet: this.wallet,
      seed: this.channelSeed,
      logger,
      policy: { timeoutMs: 30_000, ...(this.spec.policy ?? {}) },
      htlcMode: this.spec.htlcMode ?? 'manual',
      nodeKey: this.nodeKey,
      ...(this.registry !== undefined ? { finalHop: this.registry } : {}),
      ...(this.spec.manager ?? {}),
    });
    await this.manager.start();
    if (this.spec.payments !== undefined) {
      this.payments = new PaymentService({
        manager: this.manager,
        store: this.store.sublevel('payments'),
        network: 'bcrt',
        timers: UNREF_TIMERS,
        log: logger,
        config: this.spec.payments,
        onEvent: (e) => this.paymentEvents.push(e),
      });
      await this.payments.start();
    }
    await this.node.start();
  }

  /** A BOLT 11 payment request for one of this node's registry invoices. */
  payReq(inv: Invoice): string {
    return paymentRequest(inv, this.nodeKey, 'bcrt', this.manager.routingChannels());
  }

  async stop(): Promise<void> {
    await this.node.stop();
    this.payments?.stop();
    await this.manager.stop();
    this.registry?.stop();
    await this.wallet.close();
    await this.store.close();
  }

  /**
   * A crash: the connections drop and the store closes at once, whatever is in flight (writes a wrapper holds back
   * never happen). Start again with start().
   */
  async kill(): Promise<void> {
    await this.node.stop();
    this.payments?.stop();
    void this.manager.stop().catch(() => undefined);
    this.registry?.stop();
    await this.wallet.close().catch(() => undefined);
    await this.rawStore.close();
  }

  async connect(other: TestNode): Promise<void> {
    await this.node.connect(other.id, '127.0.0.1', other.port);
  }

  /** Spendable + unconfirmed + locked: everything the wallet holds outside channels. */
  walletTotalSat(): bigint {
    const b = this.wallet.balance();
    return b.confirmedSat + b.unconfirmedSat + b.lockedSat + b.immatureSat;
  }

  cleanup(): void {
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * An embedded in-memory regtest chain. bcoin's FullNode also binds its HTTP
 * API to a fixed port (48332 on regtest), which collides with any other
 * chain in another process; nothing here uses that API, so it is not opened.
 */
export async function newTestChain(): Promise<BcoinChainBackend> {
  const b = new BcoinChainBackend({
    onError: (e) => {
      throw e;
    },
  });
  const http = (b.node as unknown as { http?: { open(): Promise<void>; close(): Promise<void> } }).http;
  if (http !== undefined) {
    http.open = async () => undefined;
    http.close = async () => undefined;
  }
  await b.open();
  return b;
}

/** Polls `pred` every 20 ms until it returns true; rejects after `ms`. */
export async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Two coinbases to each node's wallet, then blocks elsewhere past segwit activation and coinbase maturity. */
export async function fundNodes(chain: BcoinChainBackend, nodes: readonly TestNode[]): Promise<void> {
  for (const n of nodes) await chain.generateToAddress(2, (await n.wallet.newAddress()).address);
  await chain.generateToAddress(Math.max(SEGWIT_HEIGHT - chain.tip().height, 100), ELSEWHERE);
  await chain.synced();
}

/** Mines `n` blocks to an address no test wallet owns and waits until everything follows. */
export async function mineElsewhere(chain: BcoinChainBackend, n: number): Promise<void> {
  await chain.generateToAddress(n, ELSEWHERE);
  await chain.synced();
}

/** Resolves with the id of the HTLC `node` reports incoming on `channelId` with `paymentHash`. */
export function nextIncoming(node: TestNode, channelId: string, paymentHash: Uint8Array): Promise<bigint> {
  const want = Buffer.from(paymentHash).toString('hex');
  return new Promise<bigint>((resolve) => {
    const on = (cid: string, h: { id: bigint; paymentHash: Uint8Array }): void => {
      if (cid === channelId && Buffer.from(h.paymentHash).toString('hex') === want) {
        node.manager.off('htlc_incoming', on);
        resolve(h.id);
      }
    };
    node.manager.on('htlc_incoming', on);
  });
}

/** `from` offers an HTLC with a fresh preimage on `channelId`; resolves once `to` reported it incoming. */
export async function offerHtlc(
  chain: BcoinChainBackend,
  from: TestNode,
  to: TestNode,
  channelId: string,
  amountMsat: bigint,
  cltvExpiry = chain.tip().height + 100,
): Promise<{ id: bigint; preimage: Uint8Array }> {
  const preimage = randomBytes(32);
  const paymentHash = sha256(preimage);
  const incoming = nextIncoming(to, channelId, paymentHash);
  await from.manager.addHtlc(channelId, { amountMsat, paymentHash, cltvExpiry });
  return { id: await incoming, preimage };
}

/** Stops the nodes and the chain and removes the nodes' data directories. */
export async function teardown(chain: BcoinChainBackend | undefined, nodes: (TestNode | undefined)[]): Promise<void> {
  for (const n of nodes) await n?.stop().catch(() => undefined);
  await chain?.close();
  for (const n of nodes) n?.cleanup();
}
