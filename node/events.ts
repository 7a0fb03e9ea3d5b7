/**
 * The node's persisted event queue (ldk-node's event queue in shape): what an app must learn about, in the order it
 * happened, delivered at least once across restarts. An event stays at the head of the queue until the app
 * acknowledges it (`eventHandled`); a node stopped or killed before that delivers it again after its restart.
 *
 * Each source's event is written in the same batch as the source's cursor or marker, so that a kill between the
 * source's own write and ours loses nothing and doubles nothing: at start the queue reconciles with every source
 *  - payments received: the invoice registry's settle index (`subscribeSettled(cursor)` replays what came after);
 *  - payments sent: the payment records ended since the lowest creation index not yet fully queued;
 *  - channels: each channel's state (pending, ready, closed) against one marker per channel and kind.
 *
 * Bounds: the queue holds at most one event per received payment or AMP set, per payment of ours and three per
 * channel, each already paid for by a payment or a channel; it lives on disk, and memory holds at most
 * `WINDOW` of it.
 */
import type { BatchOp, KvStore } from '../db/store.js';
import type { InvoiceKind, SettleEvent } from '../htlc/invoices/index.js';
import type { PaymentFailureReason, PaymentKind, PaymentRecord } from '../htlc/router/payments.js';
import { bytesToHex } from '../wire/bytes.js';
import type { ChannelInfo } from './channels/manager.js';
import { NodeError } from './errors.js';

/** A payment to us settled: one per settled invoice, and for AMP one per settled set (`setId`). */
export interface PaymentReceivedEvent {
  type: 'payment_received';
  kind: InvoiceKind;
  paymentHash: string;
  paymentAddr: string;
  setId?: string;
  amountMsat: bigint;
  /** The registry's settle index of this payment (lnd's settle_index). */
  settleIndex: bigint;
  /** Custom records (≥ 65536) of its HTLCs, in HTLC order; values hex. */
  customRecords: { type: bigint; valueHex: string }[];
}

export interface PaymentSucceededEvent {
  type: 'payment_succeeded';
  /** The payment's id (lookupPayment): BOLT 11 and keysend its hash, AMP a random id. */
  paymentId: string;
  paymentKind: PaymentKind;
  paymentHash?: string;
  preimage?: string;
  setId?: string;
  amountMsat: bigint;
  /** What the settled shards cost beyond the amount. */
  feeMsat: bigint;
}

export interface PaymentFailedEvent {
  type: 'payment_failed';
  paymentId: string;
  paymentKind: PaymentKind;
  paymentHash?: string;
  reason: PaymentFailureReason;
  detail?: string;
}

export interface ChannelPendingEvent {
  type: 'channel_pending';
  channelId: string;
  peer: string;
  capacitySat: bigint;
  fundingOutpoint?: string;
}

export interface ChannelReadyEvent {
  type: 'channel_ready';
  channelId: string;
  peer: string;
  shortChannelId?: string;
}

export interface ChannelClosedEvent {
  type: 'channel_closed';
  channelId: string;
  peer: string;
  /** Agreed by both (a closing transaction), or not (a commitment on chain, or an opening abandoned). */
  cooperative: boolean;
  /** The transaction that spent the funding output, when known (display order). */
  closingTxid?: string;
}

export type NodeEventBody =
  PaymentReceivedEvent | PaymentSucceededEvent | PaymentFailedEvent | ChannelPendingEvent | ChannelReadyEvent | ChannelClosedEvent;

/** An event as the queue delivers it: `eventId` grows by one per event and is never reused. */
export type NodeEvent = NodeEventBody & { eventId: bigint };

/** How many queued events memory holds at once; the rest wait on disk. */
export const WINDOW = 64;

const enc = new TextEncoder();
const dec = new TextDecoder();
const QUEUE = 'q/';
const K_NEXT = enc.encode('n');
const K_SETTLE = enc.encode('c/settle');
const K_PAY_FLOOR = enc.encode('c/pay');

const queueKey = (seq: bigint): Uint8Array => enc.encode(QUEUE + seq.toString(16).padStart(16, '0'));
const markerKey = (m: string): Uint8Array => enc.encode(`m/${m}`);
const ONE = new Uint8Array([1]);

function encodeEvent(e: NodeEvent): Uint8Array {
  return enc.encode(JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? { $n: v.toString() } : v)));
}

function decodeEvent(b: Uint8Array): NodeEvent {
  return JSON.parse(dec.decode(b), (_k, v: unknown) =>
    v !== null && typeof v === 'object' && '$n' in v && typeof (v as { $n: unknown }).$n === 'string'
      ? BigInt((v as { $n: string }).$n)
      : v,
  ) as NodeEvent;
}

const readBig = (b: Uint8Array | undefined): bigint => (b === undefined ? 0n : BigInt(dec.decode(b)));
const writeBig = (n: bigint): Uint8Array => enc.encode(n.toString());

export function paymentReceivedEvent(e: SettleEvent): PaymentReceivedEvent {
  return {
    type: 'payment_received',
    kind: e.kind,
    paymentHash: bytesToHex(e.paymentHash),
    paymentAddr: bytesToHex(e.paymentAddr),
    ...(e.setId !== undefined ? { setId: bytesToHex(e.setId) } : {}),
    amountMsat: e.amountMsat,
    settleIndex: e.settleIndex,
    customRecords: e.customRecords.map((r) => ({ type: r.type, valueHex: bytesToHex(r.value) })),
  };
}

/** The event a payment record that ended calls for (undefined while it is in flight). */
export function paymentEndedEvent(p: PaymentRecord): PaymentSucceededEvent | PaymentFailedEvent | undefined {
  const common = {
    paymentId: bytesToHex(p.id),
    paymentKind: p.kind,
    ...(p.paymentHash !== undefined ? { paymentHash: bytesToHex(p.paymentHash) } : {}),
  };
  if (p.status === 'succeeded') {
    const settled = p.attempts.filter((a) => a.status === 'settled');
    return {
      type: 'payment_succeeded',
      ...common,
      ...(p.preimage !== undefined ? { preimage: bytesToHex(p.preimage) } : {}),
      ...(p.setId !== undefined ? { setId: bytesToHex(p.setId) } : {}),
      amountMsat: p.amountMsat,
      feeMsat: settled.reduce((s, a) => s + a.totalAmountMsat - a.amountMsat, 0n),
    };
  }
  if (p.status === 'failed')
    return {
      type: 'payment_failed',
      ...common,
      reason: p.failureReason ?? 'error',
      ...(p.failureDetail !== undefined ? { detail: p.failureDetail } : {}),
    };
  return undefined;
}

type ChannelKind = 'pending' | 'ready' | 'closed';

function channelEvent(kind: ChannelKind, c: ChannelInfo, closed?: { cooperative: boolean; txid?: string }): NodeEventBody {
  if (kind === 'pending')
    return {
      type: 'channel_pending',
      channelId: c.channelId,
      peer: c.peer,
      capacitySat: c.capacitySat,
      ...(c.fundingOutpoint !== undefined ? { fundingOutpoint: c.fundingOutpoint } : {}),
    };
  if (kind === 'ready')
    return {
      type: 'channel_ready',
      channelId: c.channelId,
      peer: c.peer,
      ...(c.shortChannelId !== undefined ? { shortChannelId: c.shortChannelId } : {}),
    };
  const txid = closed?.txid ?? c.closingTxid ?? c.forceCloseTxid;
  return {
    type: 'channel_closed',
    channelId: c.channelId,
    peer: c.peer,
    cooperative: closed?.cooperative ?? c.closingTxid !== undefined,
    ...(txid !== undefined ? { closingTxid: txid } : {}),
  };
}

/** The kinds of event a channel in this state has earned, in order. */
export function channelKindsOf(c: ChannelInfo): ChannelKind[] {
  const funded = c.fundingOutpoint !== undefined;
  switch (c.state) {
    case 'awaiting_accept':
    case 'awaiting_funding_tx':
    case 'awaiting_funding_signed':
    case 'awaiting_funding_created':
      return [];
    case 'awaiting_ready':
      return funded ? ['pending'] : [];
    case 'normal':
    case 'shutdown':
    case 'negotiating':
      return ['pending', 'ready'];
    case 'closed':
      return c.shortChannelId !== undefined ? ['pending', 'ready', 'closed'] : funded ? ['pending', 'closed'] : ['closed'];
    case 'failed':
      return c.shortChannelId !== undefined ? ['pending', 'ready'] : funded ? ['pending'] : [];
  }
}

export class EventQueue {
  private next = 0n;
  /** The head of the queue in memory (at most WINDOW); `loadedEnd`: the seq after the last of them. */
  private window: NodeEvent[] = [];
  private loadedEnd = 0n;
  private waiters: { resolve: (e: NodeEvent) => void; reject: (err: Error) => void }[] = [];
  /** Writes in the order they were asked for, each complete before the next reads a marker. */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly store: KvStore) {}

  async load(): Promise<void> {
    this.next = readBig(await this.store.get(K_NEXT));
    await this.refill();
  }

  /** The settle index the registry's replay starts after. */
  settleCursor(): Promise<bigint> {
    return this.store.get(K_SETTLE).then(readBig);
  }

  /** The lowest payment creation index whose payment may still need an event (all below it are queued). */
  paymentFloor(): Promise<bigint> {
    return this.store.get(K_PAY_FLOOR).then(readBig);
  }

  /** Events not yet acknowledged. */
  get pending(): number {
    return Number(this.next - (this.window[0]?.eventId ?? this.next));
  }

  nextEvent(): NodeEvent | undefined {
    return this.window[0];
  }

  waitNextEvent(): Promise<NodeEvent> {
    const head = this.window[0];
    if (head !== undefined) return Promise.resolve(head);
    if (this.closed) return Promise.reject(new NodeError('ERR_NODE_NOT_STARTED', 'the node is stopped'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Acknowledges the head of the queue (or, given its id, checks that it is the head first). */
  eventHandled(eventId?: bigint): Promise<void> {
    return this.serial(async () => {
      const head = this.window[0];
      if (head === undefined) throw new NodeError('ERR_EVENT_NOT_PENDING', 'no event is waiting to be handled');
      if (eventId !== undefined && eventId !== head.eventId)
        throw new NodeError('ERR_EVENT_NOT_PENDING', `event ${eventId} is not the head of the queue (${head.eventId} is)`);
      await this.store.del(queueKey(head.eventId));
      this.window.shift();
      if (this.window.length === 0 && this.loadedEnd < this.next) await this.refill();
    });
  }

  /** A payment to us settled (from the registry's settle subscription: in settle-index order). */
  onSettled(e: SettleEvent): Promise<void> {
    return this.serial(async () => {
      if (e.settleIndex <= (await this.settleCursor())) return; // queued before a restart
      await this.append([paymentReceivedEvent(e)], [{ type: 'put', key: K_SETTLE, value: writeBig(e.settleIndex) }]);
    });
  }

  /** A payment of ours ended. */
  onPaymentEnded(p: PaymentRecord): Promise<void> {
    return this.serial(async () => {
      const ev = paymentEndedEvent(p);
      if (ev === undefined || p.creationIndex < (await this.paymentFloor())) return;
      const marker = markerKey(`pay/${bytesToHex(p.id)}`);
      if ((await this.store.get(marker)) !== undefined) return;
      await this.append([ev], [{ type: 'put', key: marker, value: ONE }]);
    });
  }

  /**
   * Queues what ended payments are owed, from the floor on (`payments` in creation order), and raises the floor past
   * every payment that ended, dropping their markers.
   */
  reconcilePayments(payments: readonly PaymentRecord[]): Promise<void> {
    return this.serial(async () => {
      const floor = await this.paymentFloor();
      let newFloor = floor;
      let contiguous = true;
      const drop: BatchOp[] = [];
      for (const p of payments) {
        if (p.creationIndex < floor) continue;
        const ev = paymentEndedEvent(p);
        const marker = markerKey(`pay/${bytesToHex(p.id)}`);
        if (ev !== undefined && (await this.store.get(marker)) === undefined)
          await this.append([ev], [{ type: 'put', key: marker, value: ONE }]);
        if (ev === undefined) contiguous = false;
        else if (contiguous) {
          newFloor = p.creationIndex + 1n;
          drop.push({ type: 'del', key: marker });
        }
      }
      if (newFloor > floor) await this.store.batch([...drop, { type: 'put', key: K_PAY_FLOOR, value: writeBig(newFloor) }]);
    });
  }

  /** A channel reached a state an app hears of (live: the manager's events). */
  onChannel(kind: ChannelKind, c: ChannelInfo, closed?: { cooperative: boolean; txid?: string }): Promise<void> {
    return this.serial(async () => {
      const marker = markerKey(`ch/${c.channelId}/${kind}`);
      if ((await this.store.get(marker)) !== undefined) return;
      await this.append([channelEvent(kind, c, closed)], [{ type: 'put', key: marker, value: ONE }]);
    });
  }

  /** At start: every channel's earned events that were not queued (a kill between the channel's write and ours). */
  async reconcileChannels(channels: readonly ChannelInfo[]): Promise<void> {
    for (const c of channels) for (const kind of channelKindsOf(c)) await this.onChannel(kind, c);
  }

  /** Rejects whoever waits; what is queued stays on disk for the next start. */
  close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new NodeError('ERR_NODE_NOT_STARTED', 'the node stopped'));
    return this.chain;
  }

  private async append(bodies: NodeEventBody[], extra: BatchOp[]): Promise<void> {
    if (this.closed) return; // the source's cursor was not moved: the next start replays it
    const events = bodies.map((b, i) => ({ ...b, eventId: this.next + BigInt(i) }) as NodeEvent);
    const next = this.next + BigInt(events.length);
    await this.store.batch([
      ...events.map((e) => ({ type: 'put' as const, key: queueKey(e.eventId), value: encodeEvent(e) })),
      { type: 'put', key: K_NEXT, value: writeBig(next) },
      ...extra,
    ]);
    this.next = next;
    for (const e of events)
      if (this.loadedEnd === e.eventId && this.window.length < WINDOW) {
        this.window.push(e);
        this.loadedEnd = e.eventId + 1n;
      }
    const head = this.window[0];
    if (head !== undefined) for (const w of this.waiters.splice(0)) w.resolve(head);
  }

  private async refill(): Promise<void> {
    this.window = [];
    for await (const [, v] of this.store.entries(enc.encode(QUEUE))) {
      this.window.push(decodeEvent(v));
      if (this.window.length >= WINDOW) break;
    }
    const last = this.window[this.window.length - 1];
    this.loadedEnd = last === undefined ? this.next : last.eventId + 1n;
  }

  private serial(f: () => Promise<void>): Promise<void> {
    const p = this.chain.then(f);
    this.chain = p.catch(() => undefined);
    return p;
  }
}
