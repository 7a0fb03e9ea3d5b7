/**
 * What the daemon runs besides the peer layer: the store, the chain backend,
 * the on-chain wallet, the invoice registry (the final hop of every HTLC
 * paying us) and the channel manager, wired in the order they depend on each
 * other, and stopped in reverse.
 *
 * Data directory layout (next to the node key the PeerManager keeps there):
 *   DIR/wallet_seed   32 random bytes (hex, 0600): the wallet's BIP32 seed;
 *                     the channel key seed is derived from it, so one file
 *                     backs every key the node holds besides its identity
 *   DIR/db/           the LevelDB store (wallet, channel, circuit and invoice records)
 *   DIR/chain/        bcoin's chain database
 *   DIR/api_token     the control API's bearer token (with `api`; node/datadir.ts)
 *
 * The datadir is refused when empty and made 0700 before anything is read or
 * written (node/datadir.ts). What LevelDB and bcoin create inside follows the
 * process umask: the daemon sets 077, a program embedding this sets its own.
 *
 * The channel manager must start before the node accepts or dials anyone:
 * its message handlers have to be registered before the first message.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openDiskStore, type KvStore } from '../../db/store.js';
import { InvoiceRegistry, type RegistryConfig } from '../../htlc/invoices/index.js';
import { createChainBackend, type BcoinChainBackend, type ChainMode } from '../chain/index.js';
import type { Logger } from '../log.js';
import { subsystemLogger } from '../log.js';
import type { PeerManager } from '../peer-manager.js';
import { checkDatadirPath, loadOrCreateApiToken, prepareDatadir } from '../datadir.js';
import { channelSeedOf, loadOrCreateSeed } from '../wallet/seed.js';
import { Wallet } from '../wallet/wallet.js';
import { ControlApi } from './api.js';
import { ChannelManager, type ChannelPolicyConfig } from './manager.js';
import { PaymentService } from './payments.js';
import { UNREF_TIMERS } from '../timers.js';

export interface ChannelServicesOptions {
  node: PeerManager;
  datadir: string;
  /** `embedded` (default): a regtest chain of our own; `p2p`: follow `chainPeer`. */
  chain?: ChainMode;
  chainPeer?: string;
  /** Embedded chain only: serve it over P2P on this loopback HOST:PORT for other daemons to follow. */
  chainListen?: string;
  /** `HOST:PORT` (loopback only) of the local control API; absent: no API. */
  api?: string;
  /** The API's bearer token; default: DIR/api_token, created on the first start. */
  apiToken?: string;
  policy?: Partial<ChannelPolicyConfig>;
  /** The invoice registry's settings (accept-keysend, accept-amp, mpp timeout, ...; htlc/invoices/types.ts). */
  invoices?: Partial<RegistryConfig>;
  log: Logger;
}

export class ChannelServices {
  api: ControlApi | undefined;

  private constructor(
    readonly node: PeerManager,
    readonly store: KvStore,
    readonly chain: BcoinChainBackend,
    readonly wallet: Wallet,
    readonly invoices: InvoiceRegistry,
    readonly manager: ChannelManager,
    readonly payments: PaymentService,
    private readonly log: Logger,
  ) {}

  /** Opens everything and starts the manager; the node itself is started by the caller afterwards. */
  static async start(o: ChannelServicesOptions): Promise<ChannelServices> {
    const log = subsystemLogger(o.log, 'services');
    prepareDatadir(checkDatadirPath(o.datadir), log);
    const { seed } = await loadOrCreateSeed(join(o.datadir, 'wallet_seed'));
    const store = await openDiskStore(join(o.datadir, 'db'));
    let chain: BcoinChainBackend | undefined;
    let wallet: Wallet | undefined;
    let invoices: InvoiceRegistry | undefined;
    try {
      const chainLog = subsystemLogger(o.log, 'chain');
      // bcoin keeps its databases in <chainDir>/regtest/ and does not create that directory itself
      await mkdir(join(o.datadir, 'chain', 'regtest'), { recursive: true, mode: 0o700 });
      chain = await createChainBackend({
        chain: o.chain ?? 'embedded',
        ...(o.chainPeer !== undefined ? { chainPeer: o.chainPeer } : {}),
        ...(o.chainListen !== undefined ? { chainListen: o.chainListen } : {}),
        chainDir: join(o.datadir, 'chain'),
        onError: (e) => chainLog.warn({ err: e }, 'chain backend error'),
      });
      wallet = await Wallet.open({ chain, store, seed: Buffer.from(seed) });
      const invoiceLog = subsystemLogger(o.log, 'invoices');
      invoices = new InvoiceRegistry({
        store: store.sublevel('invoices'),
        timers: UNREF_TIMERS,
        ...(o.invoices !== undefined ? { config: o.invoices } : {}),
        log: (level, obj, msg) => invoiceLog[level](obj, msg),
      });
      await invoices.start();
      const manager = new ChannelManager({
        node: o.node,
        store,
        chain,
        wallet,
        seed: channelSeedOf(seed),
        logger: o.log,
        ...(o.policy !== undefined ? { policy: o.policy } : {}),
        finalHop: invoices,
      });
      await manager.start();
      const payments = new PaymentService({
        manager,
        store: store.sublevel('payments'),
        network: 'bcrt',
        timers: UNREF_TIMERS,
        log: subsystemLogger(o.log, 'payments'),
      });
      await payments.start();
      const s = new ChannelServices(o.node, store, chain, wallet, invoices, manager, payments, log);
      if (o.api !== undefined) {
        s.api = new ControlApi(s, { token: o.apiToken ?? loadOrCreateApiToken(o.datadir, log).token });
        const address = await s.api.listen(o.api);
        log.info({ api: `http://${address}` }, 'local API listening');
      }
      log.info({ chain: chain.mode, height: chain.tip().height }, 'channel services started');
      return s;
    } catch (e) {
      invoices?.stop();
      await wallet?.close().catch(() => undefined);
      await chain?.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw e;
    }
  }

  /** Stops the API, the manager, the wallet and the chain, then closes the store. Stop the node first. */
  async stop(): Promise<void> {
    await this.api?.close();
    this.payments.stop();
    await this.manager.stop();
    this.invoices.stop();
    await this.wallet.close();
    await this.chain.close();
    await this.store.close();
    this.log.info('channel services stopped');
  }
}
