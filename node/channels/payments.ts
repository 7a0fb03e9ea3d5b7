/**
 * Paying: BOLT 11 invoices (single path, MPP when the invoice takes it, AMP when its features say so) and spontaneous
 * payments to a node id (keysend or AMP), over the router (htlc/router: pathfinding, mission control, the payment
 * lifecycle) and the switch. The graph is our own channels as they are at each search (what each can send now,
 * from routingChannels()) with the invoice's route hints laid over it; there is no public graph yet (no gossip).
 */
import type { KvStore } from '../../db/store.js';
import { ChannelGraph, InMemoryMissionControl, type RouteHintHop, type RoutingGraph } from '../../htlc/router/index.js';
import { combineGraphs } from '../../htlc/gossip/index.js';
import {
  Payments,
  PaymentError,
  type PaymentConfig,
  type PaymentEvent,
  type PaymentRecord,
  type SendRequest,
} from '../../htlc/router/payments.js';
import type { Timers } from '../../htlc/switch/interfaces.js';
import { decodeInvoice, isAmpInvoice, isInvoiceExpired, supportsMpp, type Bolt11Network } from '../../wire/bolt11.js';
import { bytesToHex } from '../../wire/bytes.js';
import type { Logger } from '../log.js';
import type { ChannelManager } from './manager.js';

export interface PayInvoiceOptions {
  /** Required for an invoice without an amount; refused for one with an amount different from it. */
  amountMsat?: bigint;
  feeLimitMsat?: bigint;
  timeoutMs?: number;
  customRecords?: { type: bigint; value: Uint8Array }[];
  /** No shard above this (lnd's max_shard_size_msat). */
  maxShardMsat?: bigint;
}

export interface SendSpontaneousOptions {
  dest: Uint8Array;
  amountMsat: bigint;
  /** AMP (default) or keysend. */
  kind?: 'amp' | 'keysend';
  customRecords?: { type: bigint; value: Uint8Array }[];
  feeLimitMsat?: bigint;
  timeoutMs?: number;
  maxShardMsat?: bigint;
}

export interface PaymentServiceOptions {
  manager: ChannelManager;
  store: KvStore;
  network: Bolt11Network;
  timers: Timers;
  log: Logger;
  config?: Partial<PaymentConfig>;
  onEvent?: (e: PaymentEvent) => void;
  /** The public channel graph from gossip; our own channels are laid over it. */
  publicGraph?: RoutingGraph;
}

export class PaymentService {
  readonly payments: Payments;
  readonly mission = new InMemoryMissionControl();
  private selfId: string | undefined;

  constructor(private readonly o: PaymentServiceOptions) {
    // without the switch (htlcMode: manual) the service still reads its records; sending fails
    const sw = (): NonNullable<ChannelManager['htlcSwitch']> => {
      const x = o.manager.htlcSwitch;
      if (x === undefined) throw new PaymentError('ERR_PAYMENTS_STOPPED', 'payments need the switch (htlcMode: switch)');
      return x;
    };
    this.payments = new Payments({
      store: o.store,
      sender: {
        startAttempt: async (r, h, rec, opts) => sw().startAttempt(r, h, rec, opts),
        waitForAttempt: async (id) => sw().waitForAttempt(id),
      },
      mission: this.mission,
      graph: () => (o.publicGraph !== undefined ? combineGraphs(this.graph(), o.publicGraph, this.self) : this.graph()),
      self: () => this.self,
      height: () => o.manager.height(),
      timers: o.timers,
      ...(o.config !== undefined ? { config: o.config } : {}),
      ...(o.onEvent !== undefined ? { onEvent: o.onEvent } : {}),
      log: (level, obj, msg) => o.log[level](obj, msg),
    });
  }

  /** Our node id (the node loads its key when it starts, after this is made). */
  private get self(): string {
    return (this.selfId ??= this.o.manager.nodeIdHex());
  }

  start(): Promise<void> {
    return this.payments.start();
  }

  stop(): void {
    this.payments.stop();
  }

  /** Our channels as pathfinding sees them now: one edge from us to each peer, with what we can send on it. */
  graph(): ChannelGraph {
    const g = new ChannelGraph();
    const pending = this.o.manager.htlcSwitch?.pendingAddsMsat() ?? new Map<bigint, bigint>();
    for (const c of this.o.manager.routingChannels()) {
      if (!c.active) continue;
      const held = pending.get(c.shortChannelId) ?? 0n;
      g.addEdge({
        shortChannelId: c.shortChannelId,
        from: this.self,
        to: c.peer,
        capacitySat: c.capacitySat,
        policy: { feeBaseMsat: 0n, feeProportionalMillionths: 0n, cltvExpiryDelta: 0, htlcMinimumMsat: 1n },
        localBalanceMsat: c.localBalanceMsat > held ? c.localBalanceMsat - held : 0n,
      });
    }
    return g;
  }

  /** Decodes, checks and starts paying a BOLT 11 invoice; resolves once the payment has ended. */
  async payInvoice(payReq: string, opts: PayInvoiceOptions = {}): Promise<PaymentRecord> {
    const rec = await this.startInvoice(payReq, opts);
    return this.payments.wait(rec.id);
  }

  /** As payInvoice, but resolves once the payment is recorded. */
  async startInvoice(payReq: string, opts: PayInvoiceOptions = {}): Promise<PaymentRecord> {
    const inv = decodeInvoice(payReq, { network: this.o.network });
    if (isInvoiceExpired(inv, Math.floor(Date.now() / 1000)))
      throw new PaymentError(
        'ERR_INVOICE_EXPIRED',
        `the invoice expired at ${new Date((inv.timestamp + inv.expirySeconds) * 1000).toISOString()}`,
      );
    if (inv.amountMsat !== undefined && opts.amountMsat !== undefined && opts.amountMsat !== inv.amountMsat)
      throw new PaymentError('ERR_PAYMENT_ARGUMENT', `the invoice asks for ${inv.amountMsat} msat, not ${opts.amountMsat}`);
    const amountMsat = inv.amountMsat ?? opts.amountMsat;
    if (amountMsat === undefined) throw new PaymentError('ERR_PAYMENT_ARGUMENT', 'the invoice has no amount: give one');
    const amp = isAmpInvoice(inv);
    const routeHints: RouteHintHop[][] = inv.routeHints.map((r) =>
      r.map((h) => ({
        nodeId: h.nodeId,
        shortChannelId: h.shortChannelId,
        feeBaseMsat: BigInt(h.feeBaseMsat),
        feeProportionalMillionths: BigInt(h.feeProportionalMillionths),
        cltvExpiryDelta: h.cltvExpiryDelta,
      })),
    );
    const req: SendRequest = {
      kind: amp ? 'amp' : 'bolt11',
      target: inv.payee,
      amountMsat,
      ...(amp ? {} : { paymentHash: inv.paymentHash }),
      paymentAddr: inv.paymentSecret,
      mpp: supportsMpp(inv),
      finalCltvDelta: inv.minFinalCltvExpiryDelta,
      routeHints,
      ...(inv.metadata !== undefined ? { paymentMetadata: inv.metadata } : {}),
      ...(inv.features.length > 0 ? { destFeatures: inv.features } : {}),
      ...(opts.customRecords !== undefined ? { customRecords: opts.customRecords } : {}),
      ...(opts.feeLimitMsat !== undefined ? { feeLimitMsat: opts.feeLimitMsat } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.maxShardMsat !== undefined ? { maxShardMsat: opts.maxShardMsat } : {}),
    };
    this.o.log.info({ payee: bytesToHex(inv.payee), amountMsat, amp }, 'paying an invoice');
    return this.payments.send(req);
  }

  /** Keysend or spontaneous AMP to a node id; resolves once the payment has ended. */
  async sendSpontaneous(o: SendSpontaneousOptions): Promise<PaymentRecord> {
    const rec = await this.payments.send({
      kind: o.kind ?? 'amp',
      target: o.dest,
      amountMsat: o.amountMsat,
      ...(o.customRecords !== undefined ? { customRecords: o.customRecords } : {}),
      ...(o.feeLimitMsat !== undefined ? { feeLimitMsat: o.feeLimitMsat } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.maxShardMsat !== undefined ? { maxShardMsat: o.maxShardMsat } : {}),
    });
    return this.payments.wait(rec.id);
  }

  /** Resolves with the payment once it has ended. */
  wait(id: Uint8Array): Promise<PaymentRecord> {
    return this.payments.wait(id);
  }

  list(opts: { afterCreationIndex?: bigint; limit?: number } = {}): Promise<PaymentRecord[]> {
    return this.payments.list(opts);
  }

  lookup(id: Uint8Array): Promise<PaymentRecord | undefined> {
    return this.payments.lookup(id);
  }
}
