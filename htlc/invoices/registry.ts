/**
 * The invoice registry (lnd: invoices/invoiceregistry.go): the switch's
 * final-hop handler. It decides every HTLC for us with an outcome as a value
 * (settle with a preimage, fail with a BOLT 4 failure, hold).
 *
 * Kinds: regular invoices (one HTLC or basic MPP, always with
 * payment_secret), hold invoices (the app settles or cancels), keysend
 * (`acceptKeysend`), and AMP (amp.md §3): reusable invoices whose every
 * payment is a set of its own (set_id), subscription invoices (an amount each
 * payment must reach), account invoices (amount 0), and spontaneous AMP
 * (`acceptAmp`: an invoice made on the spot from the sender's payment_addr).
 *
 * The hot path. A shard costs two map lookups (payment_addr, then set_id),
 * a 32-byte XOR into the set's running XOR of shares and an add to its running
 * sum; a shard that times out or fails is XORed and subtracted back out.
 * Children are derived (2 × SHA-256 each) only when the set completes. No
 * shard is read from or written to the store: the switch already holds every
 * pending HTLC on disk and asks again after a restart (with the HTLC's
 * original arrival time, so hold timers keep counting). The registry writes
 * once per completed set, and no HTLC is settled before that write is
 * durable. Hold timers share one timer: every HTLC waits the same time, so
 * deadlines come in arrival order.
 *
 * Beyond lnd (amp.md §5): a set_id that settled is refused when it comes
 * again; an AMP invoice's expiry holds for new sets even after earlier sets
 * settled; a set one of whose HTLCs failed takes no more HTLCs.
 */
import type { KvStore, BatchOp } from '../../db/store.js';
import { bytesToHex, equalBytes, hexToBytes } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import type { TlvRecord } from '../../wire/tlv.js';
import { deriveChild, type FailureMessage, type HopPayload } from '../../onion/index.js';
import { keyString } from '../switch/circuit-map.js';
import type { FinalHopHandler, FinalHtlc, FinalResolution, Timers } from '../switch/interfaces.js';
import {
  addIndexFrom,
  invoices as allInvoices,
  invoiceSetIds,
  putCounters,
  putInvoice,
  putInvoiceIndexes,
  putSet,
  putSettle,
  readAddrByHash,
  readCounters,
  readInvoice,
  readSet,
  settlesFrom,
  type Counters,
} from './store.js';
import { DEFAULT_REGISTRY_CONFIG, InvoiceError, type AmpSet, type Invoice, type InvoiceKind, type RegistryConfig, type SettledHtlc, type SettleEvent } from './types.js';

type Answer = Exclude<FinalResolution, { action: 'hold' }>;

interface PendingHtlc {
  circuit: string;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  share?: Uint8Array;
  childIndex?: number;
  customRecords: TlvRecord[];
  resolve: (a: Answer) => void;
  deadline: number;
  /** Still in its set (not timed out, failed or settled). */
  live: boolean;
}

interface PendingSet {
  /** set_id hex, or '' for the one set of a regular / hold invoice. */
  id: string;
  setId?: Uint8Array;
  totalMsat: bigint;
  sumMsat: bigint;
  /** Running XOR of the live shares (AMP). */
  xor: Uint8Array;
  htlcs: Map<string, PendingHtlc>;
  /** One of its HTLCs failed: it takes no more (amp.md §5). */
  failed: boolean;
  /** Complete and waiting for the app (hold invoices) or for its settle write. */
  complete: boolean;
}

interface Open {
  inv: Invoice;
  sets: Map<string, PendingSet>;
}

export interface RegistryOptions {
  store: KvStore;
  timers: Timers;
  config?: Partial<RegistryConfig>;
  /** ms since the epoch */
  now?: () => number;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', obj: object, msg: string) => void;
}

export interface AddInvoiceRequest {
  amountMsat?: bigint;
  memo?: string;
  expirySeconds?: number;
  minFinalCltvExpiryDelta?: number;
  /** Regular invoices: the preimage (default: random). */
  preimage?: Uint8Array;
  /** Hold invoices: the payment hash; the app settles with its preimage later. */
  paymentHash?: Uint8Array;
  /** Reusable AMP invoice. */
  amp?: boolean;
  paymentAddr?: Uint8Array;
}

const ZERO32 = new Uint8Array(32);
const unknownDetails = (h: FinalHtlc): FailureMessage => ({ name: 'incorrect_or_unknown_payment_details', htlcMsat: h.amountMsat, height: h.currentHeight });

export class InvoiceRegistry implements FinalHopHandler {
  readonly config: RegistryConfig;
  private readonly open = new Map<string, Open>(); // by payment_addr hex
  private readonly byHash = new Map<string, string>(); // payment hash hex → payment_addr hex (open ones)
  /** set_id hex → payment_addr hex of every pending set. */
  private readonly pendingSetIds = new Map<string, string>();
  private pendingHtlcs = 0;
  /** AMP set_ids that failed (bounded, oldest forgotten first): they take no more HTLCs. */
  private readonly failedSetIds = new Set<string>();
  /** Hold timers in deadline order, one timer for all. */
  private readonly expiries: { deadline: number; addr: string; set: string; circuit: string }[] = [];
  private expiryHead = 0;
  private timer: unknown;
  private timerAt = 0;
  private counters: Counters = { addIndex: 0n, settleIndex: 0n };
  private readonly subscribers = new Set<(e: SettleEvent) => void>();
  /** Writes that change counters or invoices run one at a time. */
  private writeLock: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: RegistryOptions) {
    this.config = { ...DEFAULT_REGISTRY_CONFIG, ...(o.config ?? {}) };
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** Loads the open invoices; call before the switch resumes. */
  async start(): Promise<void> {
    this.counters = await readCounters(this.o.store);
    for await (const inv of allInvoices(this.o.store)) if (inv.state === 'open' || inv.state === 'accepted') this.track({ ...inv, state: 'open' });
  }

  stop(): void {
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private track(inv: Invoice): Open {
    const addr = bytesToHex(inv.paymentAddr);
    const o: Open = { inv, sets: new Map() };
    this.open.set(addr, o);
    this.byHash.set(bytesToHex(inv.paymentHash), addr);
    return o;
  }

  private untrack(inv: Invoice): void {
    this.open.delete(bytesToHex(inv.paymentAddr));
    this.byHash.delete(bytesToHex(inv.paymentHash));
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeLock.then(fn);
    this.writeLock = run.catch(() => undefined);
    return run;
  }

  // ---------------------------------------------------------------- invoices

  /** Adds an invoice; returns it (the caller encodes it as BOLT 11 with its payment_addr, hash, amount and expiry). */
  async addInvoice(req: AddInvoiceRequest = {}): Promise<Invoice> {
    const amountMsat = req.amountMsat ?? 0n;
    if (amountMsat < 0n) throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'amount must not be negative');
    if (req.amp === true && (req.preimage !== undefined || req.paymentHash !== undefined))
      throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'an AMP invoice has no preimage of its own: each shard derives its own');
    if (req.preimage !== undefined && req.paymentHash !== undefined) throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'give a preimage or a payment hash, not both');
    for (const [b, what] of [[req.preimage, 'preimage'], [req.paymentHash, 'payment hash'], [req.paymentAddr, 'payment_addr']] as const)
      if (b !== undefined && b.length !== 32) throw new InvoiceError('ERR_INVOICE_ARGUMENT', `${what} must be 32 bytes`);
    const kind: InvoiceKind = req.amp === true ? 'amp' : req.paymentHash !== undefined ? 'hold' : 'regular';
    const preimage = kind === 'regular' ? (req.preimage ?? randomBytes(32)) : undefined;
    const paymentHash = kind === 'amp' ? randomBytes(32) : kind === 'hold' ? req.paymentHash! : sha256(preimage!);
    return this.insert({
      kind,
      state: 'open',
      paymentHash,
      ...(preimage !== undefined ? { preimage } : {}),
      paymentAddr: req.paymentAddr ?? randomBytes(32),
      amountMsat,
      ...(req.memo !== undefined ? { memo: req.memo } : {}),
      createdAt: Math.floor(this.now() / 1000),
      expirySeconds: req.expirySeconds ?? (kind === 'amp' ? this.config.defaultAmpExpirySeconds : this.config.defaultExpirySeconds),
      minFinalCltvExpiryDelta: req.minFinalCltvExpiryDelta ?? this.config.defaultMinFinalCltvExpiryDelta,
      amountPaidMsat: 0n,
      ...(kind === 'amp' ? { settledSets: 0 } : {}),
    });
  }

  private insert(fields: Omit<Invoice, 'addIndex'>, extra: BatchOp[] = []): Promise<Invoice> {
    return this.locked(async () => {
      const addr = bytesToHex(fields.paymentAddr);
      if (this.open.has(addr) || (await readInvoice(this.o.store, fields.paymentAddr)) !== undefined)
        throw new InvoiceError('ERR_INVOICE_EXISTS', `an invoice with payment_addr ${addr} exists`);
      if (this.byHash.has(bytesToHex(fields.paymentHash)) || (await readAddrByHash(this.o.store, fields.paymentHash)) !== undefined)
        throw new InvoiceError('ERR_INVOICE_EXISTS', `an invoice with payment hash ${bytesToHex(fields.paymentHash)} exists`);
      const counters = { ...this.counters, addIndex: this.counters.addIndex + 1n };
      const inv: Invoice = { addIndex: counters.addIndex, ...fields };
      await this.o.store.batch([putInvoice(inv), ...putInvoiceIndexes(inv), putCounters(counters), ...extra]);
      this.counters = counters;
      if (inv.state === 'open') this.track(inv);
      return inv;
    });
  }

  /** By payment hash (an AMP invoice's own random hash included). */
  async lookupByHash(paymentHash: Uint8Array): Promise<Invoice | undefined> {
    const addr = this.byHash.get(bytesToHex(paymentHash)) ?? (await readAddrByHash(this.o.store, paymentHash));
    return addr === undefined ? undefined : this.lookupByAddr(hexToBytes(addr));
  }

  /** By payment_addr; `withSets` also reads every settled AMP set (with their HTLCs). */
  async lookupByAddr(paymentAddr: Uint8Array, opts: { withSets?: boolean } = {}): Promise<(Invoice & { sets?: AmpSet[] }) | undefined> {
    const inv = this.open.get(bytesToHex(paymentAddr))?.inv ?? (await readInvoice(this.o.store, paymentAddr));
    if (inv === undefined) return undefined;
    if (opts.withSets !== true) return { ...inv };
    const sets: AmpSet[] = [];
    for await (const id of invoiceSetIds(this.o.store, paymentAddr)) {
      const s = await readSet(this.o.store, hexToBytes(id));
      if (s !== undefined) sets.push(s);
    }
    return { ...inv, sets };
  }

  /** A settled AMP set (only its own HTLCs). */
  lookupSet(setId: Uint8Array): Promise<AmpSet | undefined> {
    return readSet(this.o.store, setId);
  }

  /** Invoices in add-index order after `afterAddIndex`, at most `limit`. */
  async listInvoices(opts: { afterAddIndex?: bigint; limit?: number } = {}): Promise<Invoice[]> {
    const out: Invoice[] = [];
    const limit = opts.limit ?? 100;
    for await (const [, addr] of addIndexFrom(this.o.store, opts.afterAddIndex ?? 0n)) {
      if (out.length >= limit) break;
      const inv = await this.lookupByAddr(hexToBytes(addr));
      if (inv !== undefined) out.push(inv);
    }
    return out;
  }

  /**
   * Calls `listener` for every settlement after `afterSettleIndex` (replayed from the store, in order), then for each
   * new one. Returns the unsubscribe function.
   */
  async subscribeSettled(afterSettleIndex: bigint, listener: (e: SettleEvent) => void): Promise<() => void> {
    const live: SettleEvent[] = [];
    let replaying = true;
    const sub = (e: SettleEvent): void => {
      if (replaying) live.push(e);
      else listener(e);
    };
    this.subscribers.add(sub);
    let last = afterSettleIndex;
    for await (const [n, ref] of settlesFrom(this.o.store, afterSettleIndex)) {
      const e = await this.settleEvent(n, ref);
      if (e !== undefined) listener(e);
      last = n;
    }
    replaying = false;
    for (const e of live) if (e.settleIndex > last) listener(e);
    return () => this.subscribers.delete(sub);
  }

  private async settleEvent(n: bigint, ref: { addr: string; setId?: string }): Promise<SettleEvent | undefined> {
    const inv = await this.lookupByAddr(hexToBytes(ref.addr));
    if (inv === undefined) return undefined;
    if (ref.setId !== undefined) {
      const set = await readSet(this.o.store, hexToBytes(ref.setId));
      if (set === undefined) return undefined;
      return this.eventOf(inv, n, set.amountPaidMsat, set.htlcs, set.setId);
    }
    return this.eventOf(inv, n, inv.amountPaidMsat, inv.htlcs ?? []);
  }

  private eventOf(inv: Invoice, settleIndex: bigint, amountMsat: bigint, htlcs: SettledHtlc[], setId?: Uint8Array): SettleEvent {
    return {
      settleIndex,
      paymentAddr: inv.paymentAddr,
      paymentHash: inv.paymentHash,
      kind: inv.kind,
      amountMsat,
      ...(setId !== undefined ? { setId } : {}),
      customRecords: htlcs.flatMap((h) => h.customRecords ?? []),
    };
  }

  /** Hold invoice: settle with the preimage (all its HTLCs are in: state accepted). */
  async settleHold(preimage: Uint8Array): Promise<void> {
    const hash = sha256(preimage);
    const o = this.openByHash(hash);
    if (o === undefined || o.inv.kind !== 'hold') throw new InvoiceError('ERR_INVOICE_NOT_FOUND', `no open hold invoice for ${bytesToHex(hash)}`);
    const set = o.sets.get('');
    if (set === undefined || !set.complete || o.inv.state !== 'accepted') throw new InvoiceError('ERR_INVOICE_STATE', 'the hold invoice is not accepted (not paid in full yet)');
    await this.settleSet(o, set, () => preimage);
  }

  /** Cancels an open or accepted invoice (not an AMP one with settled sets: those are final): its held HTLCs fail. */
  async cancel(paymentHash: Uint8Array): Promise<void> {
    const o = this.openByHash(paymentHash);
    if (o === undefined) throw new InvoiceError('ERR_INVOICE_NOT_FOUND', `no open invoice for ${bytesToHex(paymentHash)}`);
    await this.locked(async () => {
      const inv: Invoice = { ...o.inv, state: 'canceled' };
      await this.o.store.batch([putInvoice(inv)]);
      this.untrack(o.inv);
      o.inv = inv;
    });
    for (const set of o.sets.values()) this.failSet(o, set, { name: 'incorrect_or_unknown_payment_details', htlcMsat: 0n, height: 0 });
  }

  private openByHash(hash: Uint8Array): Open | undefined {
    const addr = this.byHash.get(bytesToHex(hash));
    return addr === undefined ? undefined : this.open.get(addr);
  }

  // ---------------------------------------------------------------- HTLCs

  handle(h: FinalHtlc, resolve: (r: Answer) => void): FinalResolution | Promise<FinalResolution> {
    const p = h.payload;
    if (p.amp !== undefined) return this.intakeAmp(h, p, resolve);
    if (p.keysendPreimage !== undefined && p.mpp === undefined) return this.keysend(h, p);
    return this.intakeRegular(h, p, resolve);
  }

  private checkExpiry(h: FinalHtlc, inv: Invoice): boolean {
    return h.cltvExpiry >= h.currentHeight + Math.max(this.config.finalCltvRejectDelta, inv.minFinalCltvExpiryDelta);
  }

  private expired(inv: Invoice): boolean {
    return this.now() / 1000 > inv.createdAt + inv.expirySeconds;
  }

  /** An HTLC of a payment that settled already (we answered it before a restart): its preimage again, or null. */
  private async answeredBefore(h: FinalHtlc, htlcs: SettledHtlc[] | undefined): Promise<FinalResolution | null> {
    const c = keyString(h.key);
    const mine = htlcs?.find((x) => x.circuit === c);
    return mine === undefined ? null : { action: 'settle', preimage: mine.preimage };
  }

  private async intakeAmp(h: FinalHtlc, p: HopPayload, resolve: (r: Answer) => void): Promise<FinalResolution> {
    const amp = p.amp!;
    const fail = (failure: FailureMessage = unknownDetails(h)): FinalResolution => ({ action: 'fail', failure });
    if (p.mpp === undefined) return fail();
    const addr = bytesToHex(p.mpp.paymentAddr);
    const setHex = bytesToHex(amp.setId);
    let o = this.open.get(addr);
    if (o === undefined) {
      const settled = await readInvoice(this.o.store, p.mpp.paymentAddr);
      if (settled !== undefined) return fail(); // not open
      if (!this.config.acceptAmp || equalBytes(p.mpp.paymentAddr, ZERO32)) return fail();
      // spontaneous AMP: an invoice made on the spot from the sender's payment_addr
      if (this.pendingSetIds.has(setHex) || (await readSet(this.o.store, amp.setId)) !== undefined) return fail();
      try {
        await this.insert({
          kind: 'amp',
          state: 'open',
          paymentHash: randomBytes(32),
          paymentAddr: p.mpp.paymentAddr,
          amountMsat: 0n,
          createdAt: Math.floor(this.now() / 1000),
          expirySeconds: this.config.defaultAmpExpirySeconds,
          minFinalCltvExpiryDelta: this.config.finalCltvRejectDelta,
          spontaneous: true,
          amountPaidMsat: 0n,
          settledSets: 0,
        });
      } catch (e) {
        if (!(e instanceof InvoiceError)) throw e; // two shards of one new payment raced: the other made it
      }
      o = this.open.get(addr);
      if (o === undefined) return fail();
    }
    const inv = o.inv;
    if (inv.kind !== 'amp' || inv.state !== 'open') return fail();
    let set = o.sets.get(setHex);
    if (set === undefined) {
      // a new set: the checks that cost a read run once per set, not per shard
      const done = await readSet(this.o.store, amp.setId);
      if (done !== undefined) {
        if (bytesToHex(done.paymentAddr) !== addr) return fail();
        return (await this.answeredBefore(h, done.htlcs)) ?? fail(); // beyond lnd: a settled set_id is not paid twice
      }
      const other = this.pendingSetIds.get(setHex);
      if (other !== undefined && other !== addr) return fail(); // set_ids are unique across invoices
      set = o.sets.get(setHex); // an await above may have let another shard of this set in
      if (set === undefined) {
        if (this.expired(inv)) return fail();
        if (equalBytes(amp.setId, ZERO32) || this.failedSetIds.has(setHex)) return fail();
        if (p.mpp.totalMsat === 0n || p.mpp.totalMsat < inv.amountMsat) return fail();
        if (o.sets.size >= this.config.maxPendingSetsPerInvoice) return fail({ name: 'temporary_node_failure' });
        set = { id: setHex, setId: amp.setId, totalMsat: p.mpp.totalMsat, sumMsat: 0n, xor: new Uint8Array(32), htlcs: new Map(), failed: false, complete: false };
        o.sets.set(setHex, set);
        this.pendingSetIds.set(setHex, addr);
      }
    }
    if (set.failed || set.complete) return fail();
    if (p.mpp.totalMsat !== set.totalMsat) {
      this.failSet(o, set, unknownDetails(h));
      return fail();
    }
    if (!this.checkExpiry(h, inv)) return fail();
    return this.addToSet(o, set, h, resolve, amp.share, amp.childIndex);
  }

  private async intakeRegular(h: FinalHtlc, p: HopPayload, resolve: (r: Answer) => void): Promise<FinalResolution> {
    const fail = (failure: FailureMessage = unknownDetails(h)): FinalResolution => ({ action: 'fail', failure });
    const hash = bytesToHex(h.paymentHash);
    const addr = this.byHash.get(hash);
    const o = addr === undefined ? undefined : this.open.get(addr);
    if (o === undefined) {
      // settled before? then this may be one of its HTLCs asked again after a restart
      const a = await readAddrByHash(this.o.store, h.paymentHash);
      const inv = a === undefined ? undefined : await readInvoice(this.o.store, hexToBytes(a));
      return (inv !== undefined ? await this.answeredBefore(h, inv.htlcs) : null) ?? fail();
    }
    const inv = o.inv;
    if (inv.kind === 'amp') return fail(); // an AMP invoice is paid by AMP shards only
    // lnd requires payment_secret: without it (or with another) the invoice is not found
    if (p.mpp === undefined || !equalBytes(p.mpp.paymentAddr, inv.paymentAddr)) return fail();
    if (inv.state !== 'open') return fail();
    if (this.expired(inv)) return fail();
    let set = o.sets.get('');
    if (set === undefined) {
      if (p.mpp.totalMsat < inv.amountMsat || p.mpp.totalMsat === 0n) return fail();
      set = { id: '', totalMsat: p.mpp.totalMsat, sumMsat: 0n, xor: new Uint8Array(0), htlcs: new Map(), failed: false, complete: false };
      o.sets.set('', set);
    }
    if (set.complete) return fail();
    if (p.mpp.totalMsat !== set.totalMsat) {
      this.failSet(o, set, unknownDetails(h));
      return fail();
    }
    if (!this.checkExpiry(h, inv)) return fail();
    return this.addToSet(o, set, h, resolve);
  }

  private addToSet(o: Open, set: PendingSet, h: FinalHtlc, resolve: (r: Answer) => void, share?: Uint8Array, childIndex?: number): FinalResolution | Promise<FinalResolution> {
    const circuit = keyString(h.key);
    if (set.htlcs.has(circuit)) return { action: 'hold' }; // asked again: still waiting
    if (this.pendingHtlcs >= this.config.maxPendingHtlcs) return { action: 'fail', failure: { name: 'temporary_node_failure' } };
    const deadline = h.arrivedAt + this.config.mppTimeoutMs;
    if (deadline <= this.now()) return { action: 'fail', failure: { name: 'mpp_timeout' } };
    const entry: PendingHtlc = {
      circuit,
      amountMsat: h.amountMsat,
      paymentHash: h.paymentHash,
      ...(share !== undefined ? { share, childIndex: childIndex! } : {}),
      customRecords: h.payload.customRecords,
      resolve,
      deadline,
      live: true,
    };
    set.htlcs.set(circuit, entry);
    this.pendingHtlcs++;
    set.sumMsat += h.amountMsat;
    if (share !== undefined) xorInto(set.xor, share);
    this.scheduleExpiry(deadline, bytesToHex(o.inv.paymentAddr), set.id, circuit);
    if (set.sumMsat < set.totalMsat) return { action: 'hold' };
    // complete: the sum of the HTLC amounts reaches total_msat (overpaying is allowed)
    set.complete = true;
    if (o.inv.kind === 'hold') {
      o.inv = { ...o.inv, state: 'accepted' };
      return { action: 'hold' };
    }
    return this.completeSet(o, set, circuit);
  }

  /** A complete set: check it, write its settlement, then answer its HTLCs. Returns the answer of `self`. */
  private async completeSet(o: Open, set: PendingSet, self: string): Promise<FinalResolution> {
    let preimageOf: (x: PendingHtlc) => Uint8Array;
    if (o.inv.kind === 'amp') {
      const root = set.xor.slice();
      const children = new Map<string, Uint8Array>();
      for (const x of set.htlcs.values()) {
        if (!x.live) continue;
        const child = deriveChild(root, x.share!, x.childIndex!);
        if (!equalBytes(child.hash, x.paymentHash)) {
          // one bad share spoils the set: every HTLC of it fails
          this.o.log?.('info', { setId: set.id, circuit: x.circuit }, 'AMP set does not reconstruct; failed whole');
          const f: FailureMessage = { name: 'incorrect_or_unknown_payment_details', htlcMsat: x.amountMsat, height: 0 };
          this.failSet(o, set, f, self);
          return { action: 'fail', failure: f };
        }
        children.set(x.circuit, child.preimage);
      }
      preimageOf = (x) => children.get(x.circuit)!;
    } else {
      const pre = o.inv.preimage!;
      preimageOf = () => pre;
    }
    return this.settleSet(o, set, preimageOf, self);
  }

  private async settleSet(o: Open, set: PendingSet, preimageOf: (x: PendingHtlc) => Uint8Array, self?: string): Promise<FinalResolution> {
    const live = [...set.htlcs.values()].filter((x) => x.live);
    const settled: SettledHtlc[] = live.map((x) => ({
      circuit: x.circuit,
      amountMsat: x.amountMsat,
      paymentHash: x.paymentHash,
      preimage: preimageOf(x),
      ...(x.share !== undefined ? { share: x.share, childIndex: x.childIndex! } : {}),
      ...(x.customRecords.length > 0 ? { customRecords: x.customRecords } : {}),
    }));
    const amount = live.reduce((a, x) => a + x.amountMsat, 0n);
    const event = await this.locked(async () => {
      const settleIndex = this.counters.settleIndex + 1n;
      const counters = { ...this.counters, settleIndex };
      const at = Math.floor(this.now() / 1000);
      let inv: Invoice;
      const ops: BatchOp[] = [putCounters(counters)];
      let setRecord: AmpSet | undefined;
      if (o.inv.kind === 'amp') {
        // the invoice stays open: one record per set, the header only counts
        setRecord = { setId: set.setId!, paymentAddr: o.inv.paymentAddr, state: 'settled', settleIndex, settledAt: at, amountPaidMsat: amount, htlcs: settled };
        inv = { ...o.inv, amountPaidMsat: o.inv.amountPaidMsat + amount, settleIndex, settledAt: at, settledSets: (o.inv.settledSets ?? 0) + 1 };
        ops.push(...putSet(setRecord), putSettle(settleIndex, inv.paymentAddr, set.setId));
      } else {
        inv = { ...o.inv, state: 'settled', amountPaidMsat: amount, settleIndex, settledAt: at, htlcs: settled, preimage: settled[0]?.preimage ?? o.inv.preimage! };
        ops.push(putSettle(settleIndex, inv.paymentAddr));
      }
      ops.push(putInvoice(inv));
      // durable before any HTLC of it is settled
      await this.o.store.batch(ops);
      this.counters = counters;
      o.inv = inv;
      return this.eventOf(inv, settleIndex, amount, settled, set.setId);
    });
    this.dropSet(o, set);
    if (o.inv.state !== 'open') this.untrack(o.inv);
    let own: FinalResolution = { action: 'hold' };
    for (const x of live) {
      const pre = preimageOf(x);
      if (x.circuit === self) own = { action: 'settle', preimage: pre };
      else x.resolve({ action: 'settle', preimage: pre });
    }
    for (const s of this.subscribers) s(event);
    this.o.log?.('info', { setId: set.id || undefined, amountMsat: String(amount), htlcs: live.length, settleIndex: String(event.settleIndex) }, 'payment settled');
    return own;
  }

  private dropSet(o: Open, set: PendingSet): void {
    for (const x of set.htlcs.values())
      if (x.live) {
        x.live = false;
        this.pendingHtlcs--;
      }
    o.sets.delete(set.id);
    if (set.id !== '') this.pendingSetIds.delete(set.id);
  }

  /** Fails every live HTLC of a set (but `except`, which the caller answers) and drops the set. */
  private failSet(o: Open, set: PendingSet, failure: FailureMessage, except?: string): void {
    set.failed = true;
    if (set.id !== '') {
      this.failedSetIds.add(set.id);
      if (this.failedSetIds.size > 10_000) this.failedSetIds.delete(this.failedSetIds.values().next().value!);
    }
    const live = [...set.htlcs.values()].filter((x) => x.live);
    this.dropSet(o, set);
    if (o.inv.state === 'accepted') o.inv = { ...o.inv, state: 'open' };
    for (const x of live) if (x.circuit !== except) x.resolve({ action: 'fail', failure });
  }

  // ---------------------------------------------------------------- keysend

  private async keysend(h: FinalHtlc, p: HopPayload): Promise<FinalResolution> {
    const fail: FinalResolution = { action: 'fail', failure: unknownDetails(h) };
    if (!this.config.acceptKeysend) return fail;
    const preimage = p.keysendPreimage!;
    if (!equalBytes(sha256(preimage), h.paymentHash)) return fail;
    const a = await readAddrByHash(this.o.store, h.paymentHash);
    if (a !== undefined) {
      const inv = await readInvoice(this.o.store, hexToBytes(a));
      return (inv !== undefined ? await this.answeredBefore(h, inv.htlcs) : null) ?? fail;
    }
    if (h.cltvExpiry < h.currentHeight + this.config.finalCltvRejectDelta) return fail;
    if (h.amountMsat < p.amountToForwardMsat) return { action: 'fail', failure: { name: 'final_incorrect_htlc_amount', incomingHtlcAmtMsat: h.amountMsat } };
    // made settled at once: one write, then the preimage goes back
    const htlc: SettledHtlc = { circuit: keyString(h.key), amountMsat: h.amountMsat, paymentHash: h.paymentHash, preimage, ...(p.customRecords.length > 0 ? { customRecords: p.customRecords } : {}) };
    const inv = await this.locked(async () => {
      const counters = { addIndex: this.counters.addIndex + 1n, settleIndex: this.counters.settleIndex + 1n };
      const at = Math.floor(this.now() / 1000);
      const inv: Invoice = {
        addIndex: counters.addIndex,
        kind: 'keysend',
        state: 'settled',
        paymentHash: h.paymentHash,
        preimage,
        paymentAddr: randomBytes(32),
        amountMsat: h.amountMsat,
        createdAt: at,
        expirySeconds: this.config.defaultExpirySeconds,
        minFinalCltvExpiryDelta: this.config.finalCltvRejectDelta,
        spontaneous: true,
        amountPaidMsat: h.amountMsat,
        settleIndex: counters.settleIndex,
        settledAt: at,
        htlcs: [htlc],
      };
      await this.o.store.batch([putInvoice(inv), ...putInvoiceIndexes(inv), putSettle(counters.settleIndex, inv.paymentAddr), putCounters(counters)]);
      this.counters = counters;
      return inv;
    });
    const e = this.eventOf(inv, inv.settleIndex!, h.amountMsat, [htlc]);
    for (const s of this.subscribers) s(e);
    return { action: 'settle', preimage };
  }

  // ---------------------------------------------------------------- hold timers

  private scheduleExpiry(deadline: number, addr: string, set: string, circuit: string): void {
    const q = this.expiries;
    const item = { deadline, addr, set, circuit };
    // deadlines arrive in order (one hold time for all); an HTLC asked again after a restart may come out of order
    if (q.length === this.expiryHead || q[q.length - 1]!.deadline <= deadline) q.push(item);
    else {
      let i = q.length;
      while (i > this.expiryHead && q[i - 1]!.deadline > deadline) i--;
      q.splice(i, 0, item);
    }
    this.armTimer();
  }

  private armTimer(): void {
    const next = this.expiries[this.expiryHead];
    if (next === undefined) return;
    if (this.timer !== undefined && this.timerAt <= next.deadline) return;
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timerAt = next.deadline;
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = undefined;
      this.expire();
    }, Math.max(0, next.deadline - this.now()));
  }

  private expire(): void {
    const now = this.now();
    const q = this.expiries;
    while (this.expiryHead < q.length && q[this.expiryHead]!.deadline <= now) {
      const it = q[this.expiryHead++]!;
      const o = this.open.get(it.addr);
      const set = o?.sets.get(it.set);
      const x = set?.htlcs.get(it.circuit);
      if (o === undefined || set === undefined || x === undefined || !x.live || set.complete) continue;
      // without this HTLC the set cannot complete any more: all of it fails with mpp_timeout (a regular invoice
      // can be paid again by a new attempt; an AMP set_id is done)
      this.failSet(o, set, { name: 'mpp_timeout' });
    }
    if (this.expiryHead > 1024 && this.expiryHead * 2 > q.length) {
      q.splice(0, this.expiryHead);
      this.expiryHead = 0;
    }
    this.armTimer();
  }

  /** HTLCs held in incomplete sets (for tests and limits). */
  pendingCount(): number {
    return this.pendingHtlcs;
  }
}

function xorInto(acc: Uint8Array, b: Uint8Array): void {
  for (let i = 0; i < 32; i++) acc[i]! ^= b[i]!;
}
