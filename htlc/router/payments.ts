/**
 * Sending payments (lnd's control tower and payment lifecycle in one place): a payment is recorded before its first
 * shard, each attempt (route, amount, AMP share and child index) before its HTLC is added, each result when it comes;
 * the payment ends succeeded or failed exactly once. Shards are found by the RouteFinder over a graph handed in per
 * search, split by halving when no route carries the amount, retried elsewhere after a failure (mission control
 * learns from each), within a fee limit, a shard cap and a timeout. After a restart `start()` collects the result of
 * every attempt left in flight from the sender (the switch, which keeps them by attempt id) and carries on.
 *
 * Records (JSON, bytes as hex and bigints as strings):
 *   p/<payment id hex>             the PaymentRecord with its attempts
 *   h/<payment hash hex>           → payment id (BOLT 11 and keysend: one live or succeeded payment per hash)
 *   c/<creation index, 16 hex>     → payment id (listing in creation order)
 *   counters                       { creationIndex, nextAttemptId }
 *
 * Pure apart from what it is handed: the store, the sender, the clock and the timers.
 */
import { embedOnce } from '../../db/record.js';
import type { BatchOp, KvStore } from '../../db/store.js';
import { AmpShards, Sharer, type AmpChild } from '../../onion/amp.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { channelUpdateSignedBy, decodeChannelUpdate } from '../../wire/gossip.js';
import { channelUpdateBody } from '../../onion/index.js';
import { AmpnodeError } from '../../wire/errors.js';
import { decodeStored, encodeStored } from '../switch/circuit-map.js';
import type { AttemptResult, FinalPayloadRecords, Route, Timers } from '../switch/interfaces.js';
import type { EdgePolicy, MissionControl, NodeIdHex, RouteError, RouteFinder, RouteHintHop, RoutingGraph } from './interfaces.js';
import { edgePolicyOf } from './graph.js';
import { PathFinder } from './pathfind.js';

export type PaymentKind = 'bolt11' | 'keysend' | 'amp';
export type PaymentStatus = 'in_flight' | 'succeeded' | 'failed';
/** lnd's FailureReason names. */
export type PaymentFailureReason = 'no_route' | 'insufficient_balance' | 'fee_limit' | 'timeout' | 'incorrect_payment_details' | 'error';

export type PaymentErrorCode =
  | 'ERR_PAYMENT_IN_FLIGHT'
  | 'ERR_ALREADY_PAID'
  | 'ERR_PAYMENT_ARGUMENT'
  | 'ERR_PAYMENTS_STOPPED'
  | 'ERR_UNKNOWN_PAYMENT'
  | 'ERR_INVOICE_EXPIRED';
export class PaymentError extends AmpnodeError<PaymentErrorCode> {}

/** Defaults as lnd's router (routerrpc) and lncli use them. */
export interface PaymentConfig {
  /** Most shards in flight at once (lnd: max_parts 16). */
  maxShards: number;
  /** No shard below this (lnd: 10 000 sat when splitting). */
  minShardMsat: bigint;
  /** After this, no new shard is sent; the payment fails with `timeout` once its shards are resolved (lnd: 60 s). */
  timeoutMs: number;
  /** Fee limit when none is given: this many ppm of the amount (lncli: 5 %), at least `minFeeLimitMsat`. */
  defaultFeeLimitPpm: bigint;
  minFeeLimitMsat: bigint;
  /** The most total time lock above the tip (lnd: 2016). */
  cltvLimit: number;
  /** Attempts per payment at most, successes and failures together. */
  maxAttempts: number;
  /**
   * Test only (no flag, environment variable or config file key reaches it): asked for each attempt once it is
   * recorded and before its HTLC is handed to the switch; true drops it there and records it failed, as a local
   * refusal would be, so that a test can leave a set short of its total at the payee. `last`: the shard takes all that
   * is left of the amount.
   */
  withholdAttempt?: (payment: Readonly<PaymentRecord>, attempt: Readonly<AttemptRecord>, last: boolean) => boolean;
}

export const DEFAULT_PAYMENT_CONFIG: PaymentConfig = {
  maxShards: 16,
  minShardMsat: 10_000_000n,
  timeoutMs: 60_000,
  defaultFeeLimitPpm: 50_000n,
  minFeeLimitMsat: 10_000n,
  cltvLimit: 2016,
  maxAttempts: 100,
};

export interface SendRequest {
  kind: PaymentKind;
  /** The payee (33 bytes). */
  target: Uint8Array;
  /** What the payee receives in all. */
  amountMsat: bigint;
  /** BOLT 11: the invoice's payment hash. */
  paymentHash?: Uint8Array;
  /** BOLT 11 and AMP invoices: the invoice's payment_secret; spontaneous AMP: none (a random one is made). */
  paymentAddr?: Uint8Array;
  /** BOLT 11: whether the invoice takes MPP (feature 16/17); AMP always splits, keysend never. */
  mpp?: boolean;
  /** The payee's min_final_cltv_expiry_delta (BOLT 11 `c`; 18 when absent; lnd's keysend and AMP: 40). */
  finalCltvDelta?: number;
  routeHints?: RouteHintHop[][];
  paymentMetadata?: Uint8Array;
  /** Records ≥ 65536 for the payee. */
  customRecords?: { type: bigint; value: Uint8Array }[];
  feeLimitMsat?: bigint;
  timeoutMs?: number;
  /** No shard above this (lnd's max_shard_size_msat); MPP and AMP only. */
  maxShardMsat?: bigint;
  destFeatures?: Uint8Array;
}

export interface AttemptRecord {
  attemptId: bigint;
  /** What the payee gets from this shard. */
  amountMsat: bigint;
  /** What it costs us (amount plus fees). */
  totalAmountMsat: bigint;
  paymentHash: Uint8Array;
  route: Route;
  /** AMP */
  share?: Uint8Array;
  childIndex?: number;
  status: 'in_flight' | 'settled' | 'failed';
  preimage?: Uint8Array;
  failure?: { sourceIndex: number; code?: string; node?: string; reason: string };
}

export interface PaymentRecord {
  /** BOLT 11 and keysend: the payment hash; AMP: a random id (each payment of one invoice is its own). */
  id: Uint8Array;
  creationIndex: bigint;
  kind: PaymentKind;
  target: Uint8Array;
  amountMsat: bigint;
  paymentHash?: Uint8Array;
  paymentAddr?: Uint8Array;
  /** AMP: persisted before the first shard, so that shards made after a restart still add up to it. */
  ampRoot?: Uint8Array;
  setId?: Uint8Array;
  /** Keysend: the preimage we chose; BOLT 11: the one learnt. */
  preimage?: Uint8Array;
  request: Omit<SendRequest, 'target' | 'kind' | 'amountMsat' | 'paymentHash' | 'paymentAddr'>;
  feeLimitMsat: bigint;
  /** ms since the epoch */
  createdAt: number;
  status: PaymentStatus;
  failureReason?: PaymentFailureReason;
  /** Why, in words (the last route error, the final failure). */
  failureDetail?: string;
  resolvedAt?: number;
  attempts: AttemptRecord[];
}

export interface PaymentEvent {
  type: 'payment_succeeded' | 'payment_failed';
  payment: PaymentRecord;
}

/** What the payment lifecycle asks of the switch. */
export interface PaymentSender {
  startAttempt(
    route: Route,
    paymentHash: Uint8Array,
    records: FinalPayloadRecords,
    opts: { attemptId: bigint },
  ): Promise<{ attemptId: bigint }>;
  /** Rejects with a typed error when the attempt is unknown (never recorded). */
  waitForAttempt(attemptId: bigint): Promise<AttemptResult>;
}

export interface PaymentsOptions {
  store: KvStore;
  sender: PaymentSender;
  mission: MissionControl;
  /** The graph as it is now (our channels' balances change with every HTLC): asked for before each search. */
  graph: () => RoutingGraph;
  /** Or a route finder of the caller's (tests); default: a PathFinder over `graph()` with mission control's probabilities. */
  finder?: (graph: RoutingGraph) => RouteFinder;
  /** Our node id (asked for when needed: the node key may be loaded after this is made). */
  self: () => NodeIdHex;
  height: () => number;
  timers: Timers;
  /** ms since the epoch */
  now?: () => number;
  config?: Partial<PaymentConfig>;
  onEvent?: (e: PaymentEvent) => void;
  log?: (level: 'debug' | 'info' | 'warn', obj: object, msg: string) => void;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const idx = (n: bigint): string => n.toString(16).padStart(16, '0');
const paymentKey = (id: Uint8Array): Uint8Array => enc.encode(`p/${bytesToHex(id)}`);
const hashKey = (h: Uint8Array): Uint8Array => enc.encode(`h/${bytesToHex(h)}`);
const creationKey = (n: bigint): Uint8Array => enc.encode(`c/${idx(n)}`);
const COUNTERS = enc.encode('counters');
/** Our attempt ids start here, clear of the ones the switch hands out to sendToRoute callers. */
const FIRST_ATTEMPT_ID = 1n << 40n;
const KEYSEND_FINAL_CLTV_DELTA = 40;
/** Blocks added to the final expiry (lnd's BlockPadding): a block found while the HTLC travels must not make it too soon. */
export const BLOCK_PADDING = 3;
const DEFAULT_FINAL_CLTV_DELTA = 18;
/** How often a payment with shards in flight looks again for a route for the rest when there was none. */
const NO_ROUTE_RETRY_MS = 1000;

/** One payment while it runs. */
interface Live {
  rec: PaymentRecord;
  shards?: AmpShards;
  /** attempt id → its AMP child, for shards in flight */
  children: Map<bigint, AmpChild>;
  waits: Map<bigint, Promise<{ id: bigint; result: AttemptResult | Error }>>;
  finalFailure?: { reason: PaymentFailureReason; detail: string };
  lastRouteError?: RouteError;
  /**
   * The channel_updates this payment's failures carried (verified as the erring node's), keyed `${scid}/${from}`:
   * later searches of the payment use them over the graph's and the hints' policies.
   */
  updates?: Map<string, { timestamp: number; policy: EdgePolicy }>;
  done: Promise<PaymentRecord>;
  resolve: (p: PaymentRecord) => void;
}

export class Payments {
  private readonly config: PaymentConfig;
  private readonly now: () => number;
  private readonly live = new Map<string, Live>();
  private creationIndex = 0n;
  private nextAttemptId = FIRST_ATTEMPT_ID;
  private started = false;
  private stopped = false;

  constructor(private readonly o: PaymentsOptions) {
    this.config = { ...DEFAULT_PAYMENT_CONFIG, ...(o.config ?? {}) };
    this.now = o.now ?? Date.now;
  }

  /** Reads the counters and resumes every payment left in flight (their attempts' results come from the sender). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const c = await this.o.store.get(COUNTERS);
    if (c !== undefined) {
      const v = decodeStored<{ creationIndex: bigint; nextAttemptId: bigint }>(c);
      this.creationIndex = v.creationIndex;
      this.nextAttemptId = v.nextAttemptId;
    }
    for await (const [, v] of this.o.store.entries(enc.encode('p/'))) {
      const rec = decodeStored<PaymentRecord>(v);
      if (rec.status === 'in_flight') this.resume(rec);
    }
  }

  /** No new shard from now on; the in-flight ones stay recorded and are taken up by the next start(). */
  stop(): void {
    this.stopped = true;
  }

  /** Starts a payment; resolves once it is recorded (with its id). Wait for its end with `wait(id)`. */
  async send(req: SendRequest): Promise<PaymentRecord> {
    if (!this.started || this.stopped) throw new PaymentError('ERR_PAYMENTS_STOPPED', 'payments are not running');
    this.check(req);
    const kind = req.kind;
    let paymentHash = req.paymentHash;
    let preimage: Uint8Array | undefined;
    if (kind === 'keysend') {
      preimage = randomBytes(32);
      paymentHash = sha256(preimage);
    }
    const drop: BatchOp[] = [];
    if (paymentHash !== undefined) {
      const prior = await this.o.store.get(hashKey(paymentHash));
      if (prior !== undefined) {
        const old = await this.lookup(hexToBytes(dec.decode(prior)));
        if (old?.status === 'in_flight')
          throw new PaymentError('ERR_PAYMENT_IN_FLIGHT', `a payment of hash ${bytesToHex(paymentHash)} is in flight`);
        if (old?.status === 'succeeded')
          throw new PaymentError('ERR_ALREADY_PAID', `the invoice of hash ${bytesToHex(paymentHash)} is paid already`);
        // a failed payment may be tried again: the new one takes its place
        if (old !== undefined) drop.push({ type: 'del', key: creationKey(old.creationIndex) });
      }
    }
    const amp = kind === 'amp' ? AmpShards.random() : undefined;
    const id = paymentHash ?? randomBytes(32);
    const { target, amountMsat, paymentAddr, kind: _k, paymentHash: _h, ...request } = req;
    this.creationIndex++;
    const rec: PaymentRecord = {
      id,
      creationIndex: this.creationIndex,
      kind,
      target: target.slice(),
      amountMsat,
      ...(paymentHash !== undefined ? { paymentHash } : {}),
      // spontaneous AMP: a random payment_addr of our own (lnd: never zero)
      ...(paymentAddr !== undefined ? { paymentAddr } : kind === 'amp' ? { paymentAddr: randomBytes(32) } : {}),
      ...(amp !== undefined ? { ampRoot: amp.root, setId: amp.setId } : {}),
      ...(preimage !== undefined ? { preimage } : {}),
      request,
      feeLimitMsat: req.feeLimitMsat ?? this.defaultFeeLimit(amountMsat),
      createdAt: this.now(),
      status: 'in_flight',
      attempts: [],
    };
    await this.o.store.batch([
      ...drop,
      this.put(rec),
      ...(paymentHash !== undefined ? [{ type: 'put' as const, key: hashKey(paymentHash), value: enc.encode(bytesToHex(id)) }] : []),
      { type: 'put', key: creationKey(rec.creationIndex), value: enc.encode(bytesToHex(id)) },
      this.counters(),
    ]);
    this.resume(rec, amp);
    return rec;
  }

  /** Resolves with the payment once it has ended (succeeded or failed). */
  async wait(id: Uint8Array): Promise<PaymentRecord> {
    const l = this.live.get(bytesToHex(id));
    if (l !== undefined) return l.done;
    const rec = await this.lookup(id);
    if (rec === undefined) throw new PaymentError('ERR_UNKNOWN_PAYMENT', `no payment ${bytesToHex(id)}`);
    return rec;
  }

  async lookup(id: Uint8Array): Promise<PaymentRecord | undefined> {
    const live = this.live.get(bytesToHex(id));
    if (live !== undefined) return live.rec;
    const v = await this.o.store.get(paymentKey(id));
    return v === undefined ? undefined : decodeStored<PaymentRecord>(v);
  }

  async list(opts: { afterCreationIndex?: bigint; limit?: number } = {}): Promise<PaymentRecord[]> {
    const out: PaymentRecord[] = [];
    const limit = opts.limit ?? 100;
    for await (const [k, v] of this.o.store.entries(enc.encode('c/'))) {
      if (BigInt(`0x${dec.decode(k).slice(2)}`) <= (opts.afterCreationIndex ?? 0n)) continue;
      const rec = await this.lookup(hexToBytes(dec.decode(v)));
      if (rec !== undefined) out.push(rec);
      if (out.length >= limit) break;
    }
    return out;
  }

  // ------------------------------------------------------------------ the lifecycle

  private check(req: SendRequest): void {
    const bad = (m: string): never => {
      throw new PaymentError('ERR_PAYMENT_ARGUMENT', m);
    };
    if (req.target.length !== 33) bad('the payee must be a 33-byte public key');
    if (bytesToHex(req.target) === this.o.self()) bad('payments to ourselves are not supported');
    if (req.amountMsat <= 0n) bad('the amount must be positive');
    if (req.kind === 'bolt11' && (req.paymentHash?.length !== 32 || req.paymentAddr?.length !== 32))
      bad('a BOLT 11 payment needs the payment hash and payment_secret');
    if (req.kind !== 'bolt11' && req.paymentHash !== undefined) bad('only BOLT 11 payments take a payment hash');
    if (req.kind === 'keysend' && req.paymentAddr !== undefined) bad('keysend carries no payment_secret');
    if (req.maxShardMsat !== undefined && req.maxShardMsat <= 0n) bad('the shard size limit must be positive');
    if (req.paymentAddr !== undefined && (req.paymentAddr.length !== 32 || req.paymentAddr.every((b) => b === 0)))
      bad('payment_addr must be 32 bytes, not all zero');
    for (const r of req.customRecords ?? []) if (r.type < 65536n) bad(`custom record type ${r.type} is below 65536`);
  }

  private defaultFeeLimit(amountMsat: bigint): bigint {
    const l = (amountMsat * this.config.defaultFeeLimitPpm) / 1_000_000n;
    return l > this.config.minFeeLimitMsat ? l : this.config.minFeeLimitMsat;
  }

  private resume(rec: PaymentRecord, amp?: AmpShards): void {
    let resolve!: (p: PaymentRecord) => void;
    const done = new Promise<PaymentRecord>((r) => (resolve = r));
    const l: Live = { rec, children: new Map(), waits: new Map(), done, resolve };
    if (rec.kind === 'amp') {
      if (amp !== undefined) l.shards = amp;
      else {
        // the root less every share still live or settled is what new shards may take
        let remaining: Uint8Array = rec.ampRoot!.slice();
        for (const a of rec.attempts) if (a.status !== 'failed') remaining = xor(remaining, a.share!);
        l.shards = new AmpShards(Sharer.withShare(rec.ampRoot!, remaining), rec.setId!);
      }
    }
    this.live.set(bytesToHex(rec.id), l);
    for (const a of rec.attempts) if (a.status === 'in_flight') this.watch(l, a.attemptId);
    void this.run(l).catch((e: unknown) => this.o.log?.('warn', { err: e, payment: bytesToHex(rec.id) }, 'payment loop stopped'));
  }

  private watch(l: Live, attemptId: bigint): void {
    l.waits.set(
      attemptId,
      this.o.sender.waitForAttempt(attemptId).then(
        (result) => ({ id: attemptId, result }),
        (e: unknown) => ({ id: attemptId, result: e instanceof Error ? e : new Error(String(e)) }),
      ),
    );
  }

  private inFlightMsat(rec: PaymentRecord): bigint {
    return rec.attempts.reduce((s, a) => (a.status === 'failed' ? s : s + a.amountMsat), 0n);
  }
  private settledMsat(rec: PaymentRecord): bigint {
    return rec.attempts.reduce((s, a) => (a.status === 'settled' ? s + a.amountMsat : s), 0n);
  }
  private feesMsat(rec: PaymentRecord): bigint {
    return rec.attempts.reduce((s, a) => (a.status === 'failed' ? s : s + a.totalAmountMsat - a.amountMsat), 0n);
  }

  private async run(l: Live): Promise<void> {
    const rec = l.rec;
    const timeoutMs = rec.request.timeoutMs ?? this.config.timeoutMs;
    const deadline = rec.createdAt + timeoutMs;
    const splittable = rec.kind === 'amp' || (rec.kind === 'bolt11' && rec.request.mpp === true);
    const cap = splittable ? rec.request.maxShardMsat : undefined;
    let shardMsat = cap !== undefined && cap < rec.amountMsat ? cap : rec.amountMsat;
    let timer: unknown;
    let noRouteWhileWaiting = false;
    const timedOut = new Promise<'timeout'>(
      (r) => (timer = this.o.timers.setTimeout(() => r('timeout'), Math.max(0, deadline - this.now()))),
    );
    try {
      for (;;) {
        // send shards while there is something to send and room to send it
        while (
          !this.stopped &&
          l.finalFailure === undefined &&
          this.now() < deadline &&
          l.waits.size < this.config.maxShards &&
          rec.attempts.length < this.config.maxAttempts
        ) {
          const remaining = rec.amountMsat - this.inFlightMsat(rec);
          if (remaining <= 0n) break;
          // a shard leaves no less than the minimum behind (halving an odd amount would leave 1 msat), unless the
          // caller's shard size limit forbids taking the rest at once
          let amount = remaining < shardMsat ? remaining : shardMsat;
          const minMsat = cap !== undefined && cap < this.config.minShardMsat ? cap : this.config.minShardMsat;
          if (remaining > amount && remaining - amount < minMsat && (cap === undefined || remaining <= cap)) amount = remaining;
          const route = this.findRoute(rec, amount);
          if ('kind' in route) {
            l.lastRouteError = route;
            const half = amount / 2n;
            if (
              splittable &&
              route.kind !== 'insufficient_balance' &&
              half >= (cap !== undefined && cap < this.config.minShardMsat ? cap : this.config.minShardMsat)
            ) {
              shardMsat = half;
              continue;
            }
            if (l.waits.size === 0) l.finalFailure = { reason: route.kind, detail: route.reason };
            else noRouteWhileWaiting = true;
            break;
          }
          noRouteWhileWaiting = false;
          await this.launch(l, amount, route, remaining === amount);
        }
        if (l.waits.size === 0) break;
        // with shards in flight and nothing found for the rest, look again now and then: channels come back (after a
        // restart, a reconnection) while the shards already sent wait at the payee
        let retry: unknown;
        const later = noRouteWhileWaiting
          ? new Promise<'retry'>((r) => (retry = this.o.timers.setTimeout(() => r('retry'), NO_ROUTE_RETRY_MS)))
          : undefined;
        const next = await Promise.race([...l.waits.values(), timedOut, ...(later !== undefined ? [later] : [])]);
        if (retry !== undefined) this.o.timers.clearTimeout(retry);
        if (next === 'retry') {
          shardMsat =
            rec.request.maxShardMsat !== undefined && rec.request.maxShardMsat < rec.amountMsat ? rec.request.maxShardMsat : rec.amountMsat;
          continue;
        }
        if (next === 'timeout') {
          // no new shards; wait for the ones in flight
          const rest = await Promise.all(l.waits.values());
          for (const r of rest) await this.record(l, r.id, r.result);
          break;
        }
        await this.record(l, next.id, next.result);
        if (this.stopped) return;
      }
      if (this.stopped && l.waits.size > 0) return;
      await this.finish(l, deadline);
    } finally {
      this.o.timers.clearTimeout(timer);
    }
  }

  /**
   * A route for one shard. Shards are spread: a first try leaves out the first channels that shards of this payment
   * hold in flight (so that the parts of a payment travel different paths when there are several, and the
   * liquidity of one path is not raced for); if that finds nothing, a second try takes any channel.
   */
  private findRoute(rec: PaymentRecord, amountMsat: bigint): Route | RouteError {
    const busy = new Set(rec.attempts.filter((a) => a.status === 'in_flight').map((a) => a.route.hops[0]!.shortChannelId));
    if (busy.size > 0) {
      const spread = this.findRouteExcluding(rec, amountMsat, busy);
      if (!('kind' in spread)) return spread;
    }
    return this.findRouteExcluding(rec, amountMsat, new Set());
  }

  private findRouteExcluding(rec: PaymentRecord, amountMsat: bigint, excludedChannels: ReadonlySet<bigint>): Route | RouteError {
    const graph = this.o.graph();
    const finder =
      this.o.finder?.(graph) ??
      new PathFinder({ graph, probability: (a, b, amt, cap, now) => this.o.mission.probability(a, b, amt, cap, now) });
    const records = this.recordsFor(rec, undefined);
    const overrides = this.live.get(bytesToHex(rec.id))?.updates;
    return finder.findRoute(
      {
        source: this.o.self(),
        target: bytesToHex(rec.target),
        amountMsat,
        finalCltvDelta:
          (rec.request.finalCltvDelta ?? (rec.kind === 'bolt11' ? DEFAULT_FINAL_CLTV_DELTA : KEYSEND_FINAL_CLTV_DELTA)) + BLOCK_PADDING,
        currentHeight: this.o.height(),
        feeLimitMsat: rec.feeLimitMsat - this.feesMsat(rec),
        cltvLimit: this.config.cltvLimit,
        routeHints: rec.request.routeHints ?? [],
        ...(excludedChannels.size > 0 ? { excludedChannels } : {}),
        finalPayloadRecords: records,
        ...(rec.request.destFeatures !== undefined ? { destFeatures: rec.request.destFeatures } : {}),
        ...(overrides !== undefined ? { policyOverrides: overrides } : {}),
      },
      this.now(),
    );
  }

  private recordsFor(rec: PaymentRecord, child: AmpChild | undefined): FinalPayloadRecords {
    const custom = rec.request.customRecords;
    const base: FinalPayloadRecords = {
      ...(custom !== undefined && custom.length > 0 ? { customRecords: custom } : {}),
      ...(rec.request.paymentMetadata !== undefined ? { paymentMetadata: rec.request.paymentMetadata } : {}),
    };
    if (rec.kind === 'keysend') return { ...base, keysendPreimage: rec.preimage! };
    const mpp = { paymentAddr: rec.paymentAddr!, totalMsat: rec.amountMsat };
    if (rec.kind === 'amp')
      return { ...base, mpp, amp: { share: child?.share ?? new Uint8Array(32), setId: rec.setId!, childIndex: child?.childIndex ?? 0 } };
    return { ...base, mpp };
  }

  /** Records the attempt, then hands it to the sender. */
  private async launch(l: Live, amountMsat: bigint, route: Route, last: boolean): Promise<void> {
    const rec = l.rec;
    const attemptId = this.nextAttemptId++;
    const child = l.shards?.next(undefined, { last });
    const paymentHash = child?.hash ?? rec.paymentHash ?? sha256(rec.preimage!);
    const a: AttemptRecord = {
      attemptId,
      amountMsat,
      totalAmountMsat: route.totalAmountMsat,
      paymentHash,
      route,
      ...(child !== undefined ? { share: child.share, childIndex: child.childIndex } : {}),
      status: 'in_flight',
    };
    rec.attempts.push(a);
    await this.o.store.batch([this.put(rec), this.counters()]);
    if (this.config.withholdAttempt?.(rec, a, last) === true) {
      await this.record(l, attemptId, new Error('withheld before the HTLC was added (test hook)'));
      return;
    }
    try {
      await this.o.sender.startAttempt(route, paymentHash, this.recordsFor(rec, child), { attemptId });
      if (child !== undefined) l.children.set(attemptId, child);
      this.watch(l, attemptId);
    } catch (e) {
      await this.record(l, attemptId, e instanceof Error ? e : new Error(String(e)));
    }
  }

  private async record(l: Live, attemptId: bigint, result: AttemptResult | Error): Promise<void> {
    const rec = l.rec;
    l.waits.delete(attemptId);
    const a = rec.attempts.find((x) => x.attemptId === attemptId);
    if (a === undefined || a.status !== 'in_flight') return;
    const now = this.now();
    if (result instanceof Error) {
      // never recorded by the switch (cut between our write and its), or refused before it was sent
      a.status = 'failed';
      a.failure = { sourceIndex: 0, reason: result.message };
    } else if (result.status === 'settled') {
      a.status = 'settled';
      a.preimage = result.preimage;
      if (rec.kind === 'bolt11') rec.preimage ??= result.preimage;
      this.o.mission.reportSuccess(a.route, this.o.self(), now);
    } else {
      a.status = 'failed';
      const erring = result.failureSourceIndex > 0 ? a.route.hops[result.failureSourceIndex - 1] : undefined;
      a.failure = {
        sourceIndex: result.failureSourceIndex,
        ...(result.failure !== undefined ? { code: result.failure.name } : {}),
        ...(erring !== undefined ? { node: bytesToHex(erring.pubkey) } : {}),
        reason: result.reason,
      };
      const seen = this.o.mission.reportFailure(
        {
          route: a.route,
          failureSourceIndex: result.failureSourceIndex,
          ...(result.failure !== undefined ? { failure: result.failure } : {}),
          ...(result.unreadable === true ? { unreadable: true } : {}),
        },
        this.o.self(),
        now,
      );
      if (seen.channelUpdate !== undefined && seen.erringNode !== undefined) this.takeUpdate(l, seen.channelUpdate, seen.erringNode);
      if (seen.final && l.finalFailure === undefined)
        l.finalFailure = {
          reason: seen.reason === 'incorrect_payment_details' ? 'incorrect_payment_details' : 'error',
          detail: result.reason,
        };
    }
    if (a.status === 'failed' && a.share !== undefined) l.shards?.fail(a.share);
    l.children.delete(attemptId);
    await this.o.store.batch([this.put(rec)]);
  }

  /** A failure's channel_update, if it decodes and the erring node signed it, for this payment's next searches. */
  private takeUpdate(l: Live, raw: Uint8Array, erringNode: NodeIdHex): void {
    let u;
    try {
      u = decodeChannelUpdate(channelUpdateBody(raw));
    } catch {
      return; // a malformed update teaches nothing; the failure itself still counts
    }
    if (!channelUpdateSignedBy(u, hexToBytes(erringNode))) return;
    const key = `${u.shortChannelId}/${erringNode}`;
    const updates = (l.updates ??= new Map());
    const had = updates.get(key);
    if (had !== undefined && had.timestamp >= u.timestamp) return;
    updates.set(key, { timestamp: u.timestamp, policy: edgePolicyOf(u) });
  }

  private async finish(l: Live, deadline: number): Promise<void> {
    const rec = l.rec;
    if (rec.status !== 'in_flight') return;
    const settled = this.settledMsat(rec);
    if (settled >= rec.amountMsat) rec.status = 'succeeded';
    else if (rec.kind !== 'amp' && settled > 0n) {
      // the payee took some shards: it has revealed the preimage, so the payment is paid (lnd reports it so)
      rec.status = 'succeeded';
    } else {
      rec.status = 'failed';
      const f =
        l.finalFailure ??
        (this.now() >= deadline
          ? { reason: 'timeout' as const, detail: `no success within ${rec.request.timeoutMs ?? this.config.timeoutMs} ms` }
          : undefined);
      const e = l.lastRouteError;
      rec.failureReason = f?.reason ?? e?.kind ?? 'error';
      rec.failureDetail = f?.detail ?? e?.reason ?? `gave up after ${rec.attempts.length} attempts`;
      // what the last shard that reached a hop came back with (mpp_timeout: the payee gave up on an incomplete set)
      const lastCode = [...rec.attempts].reverse().find((a) => a.failure?.code !== undefined)?.failure?.code;
      if (lastCode !== undefined && l.finalFailure === undefined) rec.failureDetail += `; the last shard failed with ${lastCode}`;
    }
    rec.resolvedAt = this.now();
    await this.o.store.batch([this.put(rec)]);
    this.live.delete(bytesToHex(rec.id));
    l.resolve(rec);
    this.o.onEvent?.({ type: rec.status === 'succeeded' ? 'payment_succeeded' : 'payment_failed', payment: rec });
  }

  private put(rec: PaymentRecord): BatchOp {
    // rewritten at every change of every attempt: the request (route hints and all) and each attempt's route, never
    // changed once made, are encoded once
    const attempts = rec.attempts.map((a) => ({ ...a, route: embedOnce(a.route) }));
    return { type: 'put', key: paymentKey(rec.id), value: encodeStored({ ...rec, request: embedOnce(rec.request), attempts }) };
  }

  private counters(): BatchOp {
    return { type: 'put', key: COUNTERS, value: encodeStored({ creationIndex: this.creationIndex, nextAttemptId: this.nextAttemptId }) };
  }
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}
