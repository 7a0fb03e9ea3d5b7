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
 * The hot path. A shard of a set already begun is answered synchronously
 * (no promise): two map lookups (payment_addr, then set_id, keyed by the
 * bytes as a 32-character string), the checks, a 32-byte XOR into the set's
 * running XOR of shares, an add to its running sum, and a slot in the set's
 * parallel arrays (no object per HTLC; share and payment hash copied into one
 * byte arena per set). The first shard of a set asks the settled-set filter
 * whether its set_id may have settled (a settled set_id is not paid twice),
 * and reads the store only on a "maybe" (rare; and until the filter has
 * loaded after a start); the shard that completes the set derives
 * every child (2 × SHA-256 each) and writes the set's settlement: its record
 * (version 2: its shares, not the preimages and hashes that follow from them)
 * and, with the other sets of its batch, one chunk of settlement references
 * (its invoice's header and list of sets follow
 * at the next checkpoint, see store.ts; loading counts the sets after the
 * last checkpoint again). Settlements are group-committed: sets that complete
 * while a settle write is under way go together into the next batch (at most
 * MAX_SETS_PER_BATCH), so a burst of sets costs a few writes, not one each.
 * Shards of one new set that arrive before its store read returns share
 * that read. No other shard is read from or
 * written to the store: the switch
 * already holds every pending HTLC on disk and asks again after a restart
 * (with the HTLC's original arrival time, so hold timers keep counting). No
 * HTLC is settled before its set's write is durable. Hold timers share one
 * timer: every HTLC waits the same time, so deadlines come in arrival order
 * and sit in one FIFO (deadline and set per HTLC).
 *
 * Beyond lnd (amp.md §5): a set_id that settled is refused when it comes
 * again; an AMP invoice's expiry holds for new sets even after earlier sets
 * settled; a set one of whose HTLCs failed takes no more HTLCs.
 */
import type { KvStore, BatchOp } from '../../db/store.js';
import { bytesToHex, equalBytes, hexToBytes } from '../../wire/bytes.js';
import { randomBytes, sha256, sha256Parts } from '../../wire/crypto.js';
import type { TlvRecord } from '../../wire/tlv.js';
import type { FailureMessage, HopPayload } from '../../onion/index.js';
import { keyString } from '../switch/circuit-map.js';
import type { CircuitKey, FinalHopHandler, FinalHtlc, FinalResolution, Timers } from '../switch/interfaces.js';
import {
  addIndexFrom,
  counterFloor,
  invoices as allInvoices,
  invoiceSetIds,
  listedSetIds,
  putCounters,
  putInvoice,
  putInvoiceIndexes,
  putSetChunk,
  putSetRecord,
  putSettle,
  putSettleChunk,
  readAddrByHash,
  readCounters,
  readInvoice,
  readSet,
  readSettlesAt,
  settlesFrom,
  type Counters,
  type SettleRef,
} from './store.js';
import {
  DEFAULT_REGISTRY_CONFIG,
  InvoiceError,
  type AmpSet,
  type Invoice,
  type InvoiceKind,
  type RegistryConfig,
  type SettledHtlc,
  type SettleEvent,
} from './types.js';
import { SettledSetFilter } from './settled-filter.js';

type Answer = Exclude<FinalResolution, { action: 'hold' }>;
type Resolve = (a: Answer) => void;

const HASH_LENGTH = 32;
/** Per AMP HTLC in a set's arena: its share, then its payment hash. */
const AMP_SLOT = 2 * HASH_LENGTH;
/** Slots a set's arrays start with (a set of up to this many HTLCs never grows them). */
const INITIAL_SLOTS = 8;
/** Arenas of sets gone kept for new sets (at most this many: 512 KB). */
const MAX_SPARE_ARENAS = 1024;
/** Up to this many HTLCs a set finds an HTLC asked again by scanning; beyond, by a map. */
const LINEAR_LOOKUP_MAX = 16;
/** Failed AMP set_ids remembered (oldest forgotten first). */
const MAX_FAILED_SET_IDS = 10_000;
/** Hold timers already run out are dropped from the front of the queue once this many have gathered. */
const EXPIRY_COMPACT_AT = 1024;
const MS_PER_SECOND = 1000;
/**
 * Settled AMP sets between two writes of their invoices' headers and lists of sets (a checkpoint). In between, a
 * set's write is its record and its settlement reference alone; loading replays the references after the last
 * checkpoint (at most this many AMP sets) onto the headers.
 */
const CHECKPOINT_SETS = 64;
/** At most this many AMP sets' settlements in one batch. */
const MAX_SETS_PER_BATCH = 256;

const HOLD: FinalResolution = Object.freeze({ action: 'hold' });
const NO_SLOTS = new Uint8Array(0);

/**
 * 32 bytes (a payment_addr, payment hash or set_id) as a map key: 16 UTF-16 code units, two bytes each (several
 * times cheaper to make than hex). Other lengths (never met here) as '#' and hex: an odd length, so the two
 * forms cannot collide.
 */
function keyOf(b: Uint8Array): string {
  if (b.length !== HASH_LENGTH) return `#${bytesToHex(b)}`;
  return String.fromCharCode(
    (b[0]! << 8) | b[1]!,
    (b[2]! << 8) | b[3]!,
    (b[4]! << 8) | b[5]!,
    (b[6]! << 8) | b[7]!,
    (b[8]! << 8) | b[9]!,
    (b[10]! << 8) | b[11]!,
    (b[12]! << 8) | b[13]!,
    (b[14]! << 8) | b[15]!,
    (b[16]! << 8) | b[17]!,
    (b[18]! << 8) | b[19]!,
    (b[20]! << 8) | b[21]!,
    (b[22]! << 8) | b[23]!,
    (b[24]! << 8) | b[25]!,
    (b[26]! << 8) | b[27]!,
    (b[28]! << 8) | b[29]!,
    (b[30]! << 8) | b[31]!,
  );
}

/** A complete AMP set waiting for its settlement write. */
interface QueuedSettle {
  set: PendingSet;
  preimages: Uint8Array[];
  resolve: (settleIndex: bigint | undefined) => void;
  reject: (err: unknown) => void;
}

/** What a batch of settlements makes of one invoice: its header after the batch, and its sets in the batch. */
interface Settled {
  inv: Invoice;
  sets: { settleIndex: bigint; setId: Uint8Array; amountMsat: bigint }[];
}

interface Open {
  inv: Invoice;
  /** keyOf(payment_addr) */
  key: string;
  /** Pending sets by keyOf(set_id), or '' for the one set of a regular / hold invoice. */
  sets: Map<string, PendingSet>;
  /** AMP sets settled since the invoice's header and list of sets were last written, in settle order. */
  unlisted: { settleIndex: bigint; setId: Uint8Array }[];
}

/**
 * The HTLCs of a set being received, in arrival order. HTLCs leave a set
 * only all at once (settled, failed or timed out), so a slot is never freed
 * and the set keeps them in parallel arrays.
 */
class PendingSet {
  /** HTLCs in the set. */
  n = 0;
  sumMsat = 0n;
  /** Running XOR of the shares (AMP). */
  readonly xor: Uint8Array;
  channelIds: string[] = [];
  htlcIds: bigint[] = [];
  amounts: bigint[] = [];
  resolves: Resolve[] = [];
  /** AMP: share ‖ payment hash of each HTLC (AMP_SLOT bytes apiece). */
  arena: Uint8Array;
  childIndexes: number[] = [];
  /** Custom records (≥ 65536) of each HTLC, undefined when it has none. */
  customRecords: (TlvRecord[] | undefined)[] = [];
  private byCircuit: Map<string, number> | undefined;
  /** One of its HTLCs failed: it takes no more (amp.md §5). */
  failed = false;
  /** Complete and waiting for the app (hold invoices) or for its settle write. */
  complete = false;
  /** Left its invoice (settled or failed): entries of it still in the hold timer queue are void. */
  dropped = false;

  constructor(
    readonly open: Open,
    /** keyOf(set_id), or '' */
    readonly id: string,
    readonly setId: Uint8Array | undefined,
    readonly totalMsat: bigint,
    /** AMP: an arena of INITIAL_SLOTS slots (its bytes need not be zero: a slot is written before it is read). */
    arena: Uint8Array = NO_SLOTS,
  ) {
    this.xor = setId !== undefined ? new Uint8Array(HASH_LENGTH) : NO_SLOTS;
    this.arena = arena;
  }

  /** The slot of the HTLC with this circuit key, or -1. */
  find(k: CircuitKey): number {
    if (this.byCircuit !== undefined) return this.byCircuit.get(keyString(k)) ?? -1;
    for (let i = 0; i < this.n; i++) if (this.htlcIds[i] === k.htlcId && this.channelIds[i] === k.channelId) return i;
    return -1;
  }

  add(h: FinalHtlc, resolve: Resolve, share: Uint8Array | undefined, childIndex: number): void {
    const i = this.n++;
    this.channelIds.push(h.key.channelId);
    this.htlcIds.push(h.key.htlcId);
    this.amounts.push(h.amountMsat);
    this.resolves.push(resolve);
    const custom = h.payload.customRecords;
    this.customRecords.push(custom.length > 0 ? custom : undefined);
    if (share !== undefined) {
      if ((i + 1) * AMP_SLOT > this.arena.length) {
        const next = new Uint8Array(this.arena.length * 2);
        next.set(this.arena);
        this.arena = next;
      }
      this.arena.set(share, i * AMP_SLOT);
      this.arena.set(h.paymentHash, i * AMP_SLOT + HASH_LENGTH);
      this.childIndexes.push(childIndex);
      const x = this.xor;
      for (let b = 0; b < HASH_LENGTH; b++) x[b]! ^= share[b]!;
    }
    this.sumMsat += h.amountMsat;
    if (this.byCircuit !== undefined) this.byCircuit.set(keyString(h.key), i);
    else if (this.n > LINEAR_LOOKUP_MAX) {
      this.byCircuit = new Map();
      for (let k = 0; k < this.n; k++) this.byCircuit.set(keyString({ channelId: this.channelIds[k]!, htlcId: this.htlcIds[k]! }), k);
    }
  }

  circuit(i: number): string {
    return keyString({ channelId: this.channelIds[i]!, htlcId: this.htlcIds[i]! });
  }

  /** Lets go of the HTLCs' data (the set object may stay referenced by the hold timer queue a while); returns its arena. */
  release(): Uint8Array {
    const arena = this.arena;
    this.channelIds = [];
    this.htlcIds = [];
    this.amounts = [];
    this.resolves = [];
    this.customRecords = [];
    this.childIndexes = [];
    this.arena = NO_SLOTS;
    this.byCircuit = undefined;
    return arena;
  }
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

const ZERO32 = new Uint8Array(HASH_LENGTH);
const unknownDetails = (h: FinalHtlc): FailureMessage => ({
  name: 'incorrect_or_unknown_payment_details',
  htlcMsat: h.amountMsat,
  height: h.currentHeight,
});
const failWith = (failure: FailureMessage): FinalResolution => ({ action: 'fail', failure });
const failUnknown = (h: FinalHtlc): FinalResolution => failWith(unknownDetails(h));

export class InvoiceRegistry implements FinalHopHandler {
  readonly config: RegistryConfig;
  /** Open invoices by keyOf(payment_addr). */
  private readonly open = new Map<string, Open>();
  /** Open invoices by keyOf(payment hash). */
  private readonly byHash = new Map<string, Open>();
  /** keyOf(set_id) → invoice of every pending AMP set. */
  private readonly pendingSetIds = new Map<string, Open>();
  private pendingHtlcs = 0;
  /** AMP set_ids (keyOf) that failed (bounded, oldest forgotten first): they take no more HTLCs. */
  private readonly failedSetIds = new Set<string>();
  /** Hold timers in deadline order, one timer for all: per HTLC its deadline and its set. */
  private expiryDeadlines: number[] = [];
  private expirySets: PendingSet[] = [];
  private expiryHead = 0;
  private timer: unknown;
  private timerAt = 0;
  private counters: Counters = { addIndex: 0n, settleIndex: 0n };
  /** Invoices with AMP sets settled since the last checkpoint. */
  private readonly unlisted = new Set<Open>();
  private setsSinceCheckpoint = 0;
  private readonly subscribers = new Set<(e: SettleEvent) => void>();
  /** Writes that change counters or invoices run one at a time. */
  private writeLock: Promise<unknown> = Promise.resolve();
  /** Complete AMP sets waiting for the next settle batch, and whether that batch is scheduled. */
  private readonly settleQueue: QueuedSettle[] = [];
  private settleFlushScheduled = false;
  /** keyOf(set_id) → the store read of a new set under way (its other shards wait for it too). */
  private readonly setReads = new Map<string, Promise<AmpSet | undefined>>();
  /** Arenas of dropped AMP sets, for new sets. */
  private readonly spareArenas: Uint8Array[] = [];
  /** Child derivation input: root ‖ share, and BE32(child index). */
  private readonly childBlock = new Uint8Array(2 * HASH_LENGTH);
  private readonly childIndexBytes = new Uint8Array(4);
  private readonly childIndexView = new DataView(this.childIndexBytes.buffer);
  /** set_ids that may have settled: a new set whose set_id it does not hold needs no store read. */
  private readonly settledSets: SettledSetFilter;
  private filterLoad: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: RegistryOptions) {
    this.config = { ...DEFAULT_REGISTRY_CONFIG, ...(o.config ?? {}) };
    this.settledSets = new SettledSetFilter(this.config.settledSetFilterBits);
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** Loads the open invoices; call before the switch resumes. */
  async start(): Promise<void> {
    const stored = await readCounters(this.o.store);
    let counters = stored;
    for await (const inv of allInvoices(this.o.store)) {
      counters = counterFloor(counters, inv);
      if (inv.state === 'open' || inv.state === 'accepted') this.track({ ...inv, state: 'open' });
    }
    // the settlements after the last checkpoint (settle indexes have no gaps): AMP sets not yet in their headers
    let n = stored.settleIndex;
    for (;;) {
      const refs = await readSettlesAt(this.o.store, n + 1n);
      if (refs === undefined) break;
      for (const ref of refs) {
        n++;
        if (ref.setId === undefined) continue;
        this.settledSets.add(ref.setId);
        await this.replaySet(n, ref.addr, ref.setId);
      }
    }
    this.counters = n > counters.settleIndex ? { ...counters, settleIndex: n } : counters;
    // the listed sets (all but those just replayed) into the filter, while HTLCs already come in
    this.filterLoad = this.loadSettledSets();
  }

  private async loadSettledSets(): Promise<void> {
    try {
      for await (const id of listedSetIds(this.o.store)) {
        if (this.stopped) return; // the store may close under a load left running
        this.settledSets.add(id);
      }
      this.settledSets.loaded = true;
    } catch (e) {
      if (this.stopped) return;
      // not loaded: every new set keeps reading the store, as before the filter existed
      this.o.log?.('warn', { err: (e as Error).message }, 'settled-set filter not loaded; new AMP sets read the store');
    }
  }

  /** Resolves once the settled-set filter has loaded (or failed to: then new sets read the store). */
  settledSetsLoaded(): Promise<boolean> {
    return this.filterLoad.then(() => this.settledSets.loaded);
  }

  /** An AMP set settled after the last checkpoint: counted into its open invoice unless the header has it. */
  private async replaySet(settleIndex: bigint, addr: Uint8Array, setId: Uint8Array): Promise<void> {
    const o = this.open.get(keyOf(addr));
    if (o === undefined || o.inv.kind !== 'amp' || (o.inv.settleIndex ?? 0n) >= settleIndex) return;
    const set = await readSet(this.o.store, setId);
    if (set === undefined) return;
    o.inv = {
      ...o.inv,
      amountPaidMsat: o.inv.amountPaidMsat + set.amountPaidMsat,
      settleIndex,
      settledAt: set.settledAt,
      settledSets: (o.inv.settledSets ?? 0) + 1,
    };
    o.unlisted.push({ settleIndex, setId: set.setId });
    this.unlisted.add(o);
    this.setsSinceCheckpoint++;
  }

  /**
   * The writes that bring every header and list of sets up to date (`latest`: the header one of them will have
   * after the batch these go into). Goes into every batch that writes the counters, so that the counters'
   * settle index never passes an AMP set whose invoice does not count it yet.
   */
  private checkpointOps(latest?: ReadonlyMap<Open, Settled>): BatchOp[] {
    const ops: BatchOp[] = [];
    const all = new Set(this.unlisted);
    if (latest !== undefined) for (const o of latest.keys()) all.add(o);
    for (const o of all) {
      const l = latest?.get(o);
      const inv = l !== undefined ? l.inv : o.inv;
      const sets = l !== undefined ? [...o.unlisted, ...l.sets] : o.unlisted;
      ops.push(putInvoice(inv));
      if (sets.length > 0)
        ops.push(
          putSetChunk(
            inv.paymentAddr,
            sets[0]!.settleIndex,
            sets.map((x) => x.setId),
          ),
        );
    }
    return ops;
  }

  /** After a batch with checkpointOps landed. */
  private checkpointed(): void {
    for (const o of this.unlisted) o.unlisted = [];
    this.unlisted.clear();
    this.setsSinceCheckpoint = 0;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private track(inv: Invoice): Open {
    const o: Open = { inv, key: keyOf(inv.paymentAddr), sets: new Map(), unlisted: [] };
    this.open.set(o.key, o);
    this.byHash.set(keyOf(inv.paymentHash), o);
    return o;
  }

  private untrack(inv: Invoice): void {
    this.open.delete(keyOf(inv.paymentAddr));
    this.byHash.delete(keyOf(inv.paymentHash));
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
    if (req.preimage !== undefined && req.paymentHash !== undefined)
      throw new InvoiceError('ERR_INVOICE_ARGUMENT', 'give a preimage or a payment hash, not both');
    for (const [b, what] of [
      [req.preimage, 'preimage'],
      [req.paymentHash, 'payment hash'],
      [req.paymentAddr, 'payment_addr'],
    ] as const)
      if (b !== undefined && b.length !== HASH_LENGTH) throw new InvoiceError('ERR_INVOICE_ARGUMENT', `${what} must be 32 bytes`);
    const kind: InvoiceKind = req.amp === true ? 'amp' : req.paymentHash !== undefined ? 'hold' : 'regular';
    const preimage = kind === 'regular' ? (req.preimage ?? randomBytes(HASH_LENGTH)) : undefined;
    const paymentHash = kind === 'amp' ? randomBytes(HASH_LENGTH) : kind === 'hold' ? req.paymentHash! : sha256(preimage!);
    return this.insert({
      kind,
      state: 'open',
      paymentHash,
      ...(preimage !== undefined ? { preimage } : {}),
      paymentAddr: req.paymentAddr ?? randomBytes(HASH_LENGTH),
      amountMsat,
      ...(req.memo !== undefined ? { memo: req.memo } : {}),
      createdAt: Math.floor(this.now() / MS_PER_SECOND),
      expirySeconds: req.expirySeconds ?? (kind === 'amp' ? this.config.defaultAmpExpirySeconds : this.config.defaultExpirySeconds),
      minFinalCltvExpiryDelta: req.minFinalCltvExpiryDelta ?? this.config.defaultMinFinalCltvExpiryDelta,
      amountPaidMsat: 0n,
      ...(kind === 'amp' ? { settledSets: 0 } : {}),
    });
  }

  private insert(fields: Omit<Invoice, 'addIndex'>, extra: BatchOp[] = []): Promise<Invoice> {
    return this.locked(async () => {
      if (this.open.has(keyOf(fields.paymentAddr)) || (await readInvoice(this.o.store, fields.paymentAddr)) !== undefined)
        throw new InvoiceError('ERR_INVOICE_EXISTS', `an invoice with payment_addr ${bytesToHex(fields.paymentAddr)} exists`);
      if (this.byHash.has(keyOf(fields.paymentHash)) || (await readAddrByHash(this.o.store, fields.paymentHash)) !== undefined)
        throw new InvoiceError('ERR_INVOICE_EXISTS', `an invoice with payment hash ${bytesToHex(fields.paymentHash)} exists`);
      const counters = { ...this.counters, addIndex: this.counters.addIndex + 1n };
      const inv: Invoice = { addIndex: counters.addIndex, ...fields };
      await this.o.store.batch([putInvoice(inv), ...putInvoiceIndexes(inv), putCounters(counters), ...this.checkpointOps(), ...extra]);
      this.counters = counters;
      this.checkpointed();
      if (inv.state === 'open') this.track(inv);
      return inv;
    });
  }

  /** By payment hash (an AMP invoice's own random hash included). */
  async lookupByHash(paymentHash: Uint8Array): Promise<Invoice | undefined> {
    const o = this.byHash.get(keyOf(paymentHash));
    if (o !== undefined) return { ...o.inv };
    const addr = await readAddrByHash(this.o.store, paymentHash);
    return addr === undefined ? undefined : this.lookupByAddr(hexToBytes(addr));
  }

  /** By payment_addr; `withSets` also reads every settled AMP set (with their HTLCs). */
  async lookupByAddr(paymentAddr: Uint8Array, opts: { withSets?: boolean } = {}): Promise<(Invoice & { sets?: AmpSet[] }) | undefined> {
    const inv = this.open.get(keyOf(paymentAddr))?.inv ?? (await readInvoice(this.o.store, paymentAddr));
    if (inv === undefined) return undefined;
    if (opts.withSets !== true) return { ...inv };
    const sets: AmpSet[] = [];
    const ids: Uint8Array[] = [];
    for await (const id of invoiceSetIds(this.o.store, paymentAddr)) ids.push(id);
    // settled since the last checkpoint: not in the stored list yet
    for (const x of this.open.get(keyOf(paymentAddr))?.unlisted ?? []) ids.push(x.setId);
    for (const id of ids) {
      const s = await readSet(this.o.store, id);
      if (s !== undefined) sets.push(s);
    }
    return { ...inv, sets };
  }

  /** A settled AMP set (only its own HTLCs). */
  lookupSet(setId: Uint8Array): Promise<AmpSet | undefined> {
    if (!this.settledSets.mayHold(setId)) return Promise.resolve(undefined);
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

  private async settleEvent(n: bigint, ref: SettleRef): Promise<SettleEvent | undefined> {
    const inv = await this.lookupByAddr(ref.addr);
    if (inv === undefined) return undefined;
    if (ref.setId !== undefined) {
      const set = await readSet(this.o.store, ref.setId);
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
    const o = this.byHash.get(keyOf(hash));
    if (o === undefined || o.inv.kind !== 'hold')
      throw new InvoiceError('ERR_INVOICE_NOT_FOUND', `no open hold invoice for ${bytesToHex(hash)}`);
    const set = o.sets.get('');
    if (set === undefined || !set.complete || o.inv.state !== 'accepted')
      throw new InvoiceError('ERR_INVOICE_STATE', 'the hold invoice is not accepted (not paid in full yet)');
    await this.settleSet(
      set,
      set.amounts.map(() => preimage),
    );
  }

  /** Cancels an open or accepted invoice (not an AMP one with settled sets: those are final): its held HTLCs fail. */
  async cancel(paymentHash: Uint8Array): Promise<void> {
    const o = this.byHash.get(keyOf(paymentHash));
    if (o === undefined) throw new InvoiceError('ERR_INVOICE_NOT_FOUND', `no open invoice for ${bytesToHex(paymentHash)}`);
    await this.locked(async () => {
      const inv: Invoice = { ...o.inv, state: 'canceled' };
      const ops: BatchOp[] = [putInvoice(inv)];
      // its AMP sets settled since the last checkpoint go into its list now: it leaves memory
      if (o.unlisted.length > 0)
        ops.push(
          putSetChunk(
            inv.paymentAddr,
            o.unlisted[0]!.settleIndex,
            o.unlisted.map((x) => x.setId),
          ),
        );
      await this.o.store.batch(ops);
      this.untrack(o.inv);
      o.inv = inv;
      o.unlisted = [];
      this.unlisted.delete(o);
    });
    for (const set of [...o.sets.values()]) this.failSet(set, { name: 'incorrect_or_unknown_payment_details', htlcMsat: 0n, height: 0 });
  }

  // ---------------------------------------------------------------- HTLCs

  handle(h: FinalHtlc, resolve: Resolve): FinalResolution | Promise<FinalResolution> {
    const p = h.payload;
    if (p.amp !== undefined) return this.intakeAmp(h, p, resolve);
    if (p.keysendPreimage !== undefined && p.mpp === undefined) return this.keysend(h, p);
    return this.intakeRegular(h, p, resolve);
  }

  private checkExpiry(h: FinalHtlc, inv: Invoice): boolean {
    return h.cltvExpiry >= h.currentHeight + Math.max(this.config.finalCltvRejectDelta, inv.minFinalCltvExpiryDelta);
  }

  private expired(inv: Invoice): boolean {
    return this.now() / MS_PER_SECOND > inv.createdAt + inv.expirySeconds;
  }

  /** An HTLC of a payment that settled already (we answered it before a restart): its preimage again, or null. */
  private answeredBefore(h: FinalHtlc, htlcs: SettledHtlc[] | undefined): FinalResolution | null {
    const c = keyString(h.key);
    const mine = htlcs?.find((x) => x.circuit === c);
    return mine === undefined ? null : { action: 'settle', preimage: mine.preimage };
  }

  /** An AMP shard: synchronous when its invoice is open and its set begun, as nearly every shard is. */
  private intakeAmp(h: FinalHtlc, p: HopPayload, resolve: Resolve): FinalResolution | Promise<FinalResolution> {
    const mpp = p.mpp;
    if (mpp === undefined) return failUnknown(h);
    const o = this.open.get(keyOf(mpp.paymentAddr));
    if (o === undefined) return this.intakeAmpNoInvoice(h, p, resolve);
    const inv = o.inv;
    if (inv.kind !== 'amp' || inv.state !== 'open') return failUnknown(h);
    const id = keyOf(p.amp!.setId);
    const set = o.sets.get(id);
    if (set === undefined) return this.intakeAmpNewSet(h, p, resolve, o, id);
    return this.intakeAmpShard(h, p, resolve, set);
  }

  /** No open invoice has the shard's payment_addr: a spontaneous AMP payment (`acceptAmp`) makes one. */
  private async intakeAmpNoInvoice(h: FinalHtlc, p: HopPayload, resolve: Resolve): Promise<FinalResolution> {
    const amp = p.amp!;
    const mpp = p.mpp!;
    const settled = await readInvoice(this.o.store, mpp.paymentAddr);
    // another shard of the same new payment may have made the invoice during the read: join it
    if (this.open.has(keyOf(mpp.paymentAddr))) return this.intakeAmp(h, p, resolve);
    if (settled !== undefined) return failUnknown(h); // not open
    if (!this.config.acceptAmp || equalBytes(mpp.paymentAddr, ZERO32)) return failUnknown(h);
    if (this.pendingSetIds.has(keyOf(amp.setId))) return failUnknown(h);
    const setDone = this.settledSets.mayHold(amp.setId) && (await readSet(this.o.store, amp.setId)) !== undefined;
    if (this.open.has(keyOf(mpp.paymentAddr))) return this.intakeAmp(h, p, resolve);
    if (setDone) return failUnknown(h);
    try {
      await this.insert({
        kind: 'amp',
        state: 'open',
        paymentHash: randomBytes(HASH_LENGTH),
        paymentAddr: mpp.paymentAddr,
        amountMsat: 0n,
        createdAt: Math.floor(this.now() / MS_PER_SECOND),
        expirySeconds: this.config.defaultAmpExpirySeconds,
        minFinalCltvExpiryDelta: this.config.finalCltvRejectDelta,
        spontaneous: true,
        amountPaidMsat: 0n,
        settledSets: 0,
      });
    } catch (e) {
      if (!(e instanceof InvoiceError)) throw e; // two shards of one new payment raced: the other made it
    }
    if (!this.open.has(keyOf(mpp.paymentAddr))) return failUnknown(h);
    return this.intakeAmp(h, p, resolve);
  }

  /** The first shard of a set: synchronous when the filter knows its set_id never settled, as it nearly always does. */
  private intakeAmpNewSet(h: FinalHtlc, p: HopPayload, resolve: Resolve, o: Open, id: string): FinalResolution | Promise<FinalResolution> {
    if (this.settledSets.mayHold(p.amp!.setId) || this.setReads.has(id)) return this.intakeAmpNewSetRead(h, p, resolve, o, id);
    return this.beginSet(h, p, resolve, o, id);
  }

  /** The first shard of a set whose set_id may have settled: the store says (once per set, not per shard). */
  private async intakeAmpNewSetRead(h: FinalHtlc, p: HopPayload, resolve: Resolve, o: Open, id: string): Promise<FinalResolution> {
    const amp = p.amp!;
    const mpp = p.mpp!;
    let read = this.setReads.get(id);
    if (read === undefined) {
      read = readSet(this.o.store, amp.setId);
      this.setReads.set(id, read);
      void read.then(
        () => this.setReads.delete(id),
        () => this.setReads.delete(id),
      );
    }
    const done = await read;
    if (done !== undefined) {
      if (!equalBytes(done.paymentAddr, mpp.paymentAddr)) return failUnknown(h);
      return this.answeredBefore(h, done.htlcs) ?? failUnknown(h); // beyond lnd: a settled set_id is not paid twice
    }
    return this.beginSet(h, p, resolve, o, id);
  }

  /** A shard of a set_id that has not settled: it begins its set (or joins it, if another shard began it meanwhile). */
  private beginSet(h: FinalHtlc, p: HopPayload, resolve: Resolve, o: Open, id: string): FinalResolution | Promise<FinalResolution> {
    const amp = p.amp!;
    const mpp = p.mpp!;
    const other = this.pendingSetIds.get(id);
    if (other !== undefined && other !== o) return failUnknown(h); // set_ids are unique across invoices
    let set = o.sets.get(id); // the read above may have let another shard of this set in
    if (set === undefined) {
      const inv = o.inv;
      if (inv.state !== 'open' || this.open.get(o.key) !== o) return failUnknown(h); // cancelled during the read
      if (this.expired(inv)) return failUnknown(h);
      if (equalBytes(amp.setId, ZERO32) || this.failedSetIds.has(id)) return failUnknown(h);
      if (mpp.totalMsat === 0n || mpp.totalMsat < inv.amountMsat) return failUnknown(h);
      if (o.sets.size >= this.config.maxPendingSetsPerInvoice) return failWith({ name: 'temporary_node_failure' });
      set = new PendingSet(o, id, amp.setId.slice(), mpp.totalMsat, this.spareArenas.pop() ?? new Uint8Array(INITIAL_SLOTS * AMP_SLOT));
      o.sets.set(id, set);
      this.pendingSetIds.set(id, o);
    }
    return this.intakeAmpShard(h, p, resolve, set);
  }

  private intakeAmpShard(h: FinalHtlc, p: HopPayload, resolve: Resolve, set: PendingSet): FinalResolution | Promise<FinalResolution> {
    if (set.failed || set.complete) return failUnknown(h);
    if (p.mpp!.totalMsat !== set.totalMsat) {
      this.failSet(set, unknownDetails(h));
      return failUnknown(h);
    }
    if (!this.checkExpiry(h, set.open.inv)) return failUnknown(h);
    return this.addToSet(set, h, resolve, p.amp!.share, p.amp!.childIndex);
  }

  private intakeRegular(h: FinalHtlc, p: HopPayload, resolve: Resolve): FinalResolution | Promise<FinalResolution> {
    const o = this.byHash.get(keyOf(h.paymentHash));
    if (o === undefined) return this.regularSettledBefore(h);
    const inv = o.inv;
    if (inv.kind === 'amp') return failUnknown(h); // an AMP invoice is paid by AMP shards only
    // lnd requires payment_secret: without it (or with another) the invoice is not found
    if (p.mpp === undefined || !equalBytes(p.mpp.paymentAddr, inv.paymentAddr)) return failUnknown(h);
    if (inv.state !== 'open') return failUnknown(h);
    if (this.expired(inv)) return failUnknown(h);
    let set = o.sets.get('');
    if (set === undefined) {
      if (p.mpp.totalMsat < inv.amountMsat || p.mpp.totalMsat === 0n) return failUnknown(h);
      set = new PendingSet(o, '', undefined, p.mpp.totalMsat);
      o.sets.set('', set);
    }
    if (set.complete) return failUnknown(h);
    if (p.mpp.totalMsat !== set.totalMsat) {
      this.failSet(set, unknownDetails(h));
      return failUnknown(h);
    }
    if (!this.checkExpiry(h, inv)) return failUnknown(h);
    return this.addToSet(set, h, resolve, undefined, 0);
  }

  /** Settled before? Then this may be one of its HTLCs asked again after a restart. */
  private async regularSettledBefore(h: FinalHtlc): Promise<FinalResolution> {
    const a = await readAddrByHash(this.o.store, h.paymentHash);
    const inv = a === undefined ? undefined : await readInvoice(this.o.store, hexToBytes(a));
    return (inv !== undefined ? this.answeredBefore(h, inv.htlcs) : null) ?? failUnknown(h);
  }

  private addToSet(
    set: PendingSet,
    h: FinalHtlc,
    resolve: Resolve,
    share: Uint8Array | undefined,
    childIndex: number,
  ): FinalResolution | Promise<FinalResolution> {
    if (set.find(h.key) >= 0) return HOLD; // asked again: still waiting
    if (this.pendingHtlcs >= this.config.maxPendingHtlcs) return failWith({ name: 'temporary_node_failure' });
    const deadline = h.arrivedAt + this.config.mppTimeoutMs;
    if (deadline <= this.now()) return failWith({ name: 'mpp_timeout' });
    set.add(h, resolve, share, childIndex);
    this.pendingHtlcs++;
    this.scheduleExpiry(deadline, set);
    if (set.sumMsat < set.totalMsat) return HOLD;
    // complete: the sum of the HTLC amounts reaches total_msat (overpaying is allowed)
    set.complete = true;
    const o = set.open;
    if (o.inv.kind === 'hold') {
      o.inv = { ...o.inv, state: 'accepted' };
      return HOLD;
    }
    return this.completeSet(set, set.n - 1);
  }

  /** A complete set: check it, write its settlement, then answer its HTLCs. Returns the answer of slot `self`. */
  private completeSet(set: PendingSet, self: number): Promise<FinalResolution> {
    const inv = set.open.inv;
    if (inv.kind !== 'amp') {
      const pre = inv.preimage!;
      return this.settleSet(
        set,
        set.amounts.map(() => pre),
        self,
      );
    }
    // root = XOR of the shares; child_preimage = SHA256(root ‖ share ‖ BE32(index)); child_hash = SHA256(child_preimage)
    const block = this.childBlock;
    block.set(set.xor, 0);
    const arena = set.arena;
    const preimages: Uint8Array[] = [];
    for (let i = 0; i < set.n; i++) {
      const at = i * AMP_SLOT;
      for (let b = 0; b < HASH_LENGTH; b++) block[HASH_LENGTH + b] = arena[at + b]!;
      this.childIndexView.setUint32(0, set.childIndexes[i]!);
      const preimage = sha256Parts(block, this.childIndexBytes);
      const hash = sha256(preimage);
      let diff = 0;
      for (let b = 0; b < HASH_LENGTH; b++) diff |= hash[b]! ^ arena[at + HASH_LENGTH + b]!;
      if (diff !== 0) {
        // one bad share spoils the set: every HTLC of it fails
        this.o.log?.('info', { setId: bytesToHex(set.setId!), circuit: set.circuit(i) }, 'AMP set does not reconstruct; failed whole');
        const f: FailureMessage = { name: 'incorrect_or_unknown_payment_details', htlcMsat: set.amounts[i]!, height: 0 };
        this.failSet(set, f, self);
        return Promise.resolve(failWith(f));
      }
      preimages.push(preimage);
    }
    return this.settleSet(set, preimages, self);
  }

  /** Writes a complete set's settlement, then settles its HTLCs (slot `self` by the returned answer, the others by their callbacks). */
  private async settleSet(set: PendingSet, preimages: Uint8Array[], self = -1): Promise<FinalResolution> {
    const o = set.open;
    const n = set.n;
    const amount = set.sumMsat;
    const settleIndex = await this.commitSettlement(set, preimages).catch((err: unknown) => {
      // not written, so not settled: the set's other HTLCs fail back now (the payer keeps its money), this one by the throw
      this.failSet(set, { name: 'temporary_node_failure' }, self);
      throw err;
    });
    if (settleIndex === undefined)
      return failWith({ name: 'incorrect_or_unknown_payment_details', htlcMsat: set.amounts[self] ?? 0n, height: 0 });
    const resolves = set.resolves;
    const customRecords = set.customRecords;
    this.dropSet(set);
    if (o.inv.state !== 'open') this.untrack(o.inv);
    let own: FinalResolution = HOLD;
    for (let i = 0; i < n; i++) {
      const answer: Answer = { action: 'settle', preimage: preimages[i]! };
      if (i === self) own = answer;
      else resolves[i]!(answer);
    }
    if (this.subscribers.size > 0) {
      const event: SettleEvent = {
        settleIndex,
        paymentAddr: o.inv.paymentAddr,
        paymentHash: o.inv.paymentHash,
        kind: o.inv.kind,
        amountMsat: amount,
        ...(set.setId !== undefined ? { setId: set.setId } : {}),
        customRecords: customRecords.flatMap((c) => c ?? []),
      };
      for (const s of this.subscribers) s(event);
    }
    this.o.log?.(
      'info',
      {
        setId: set.setId !== undefined ? bytesToHex(set.setId) : undefined,
        amountMsat: String(amount),
        htlcs: n,
        settleIndex: String(settleIndex),
      },
      'payment settled',
    );
    return own;
  }

  /** Writes a complete set's settlement (an AMP set through the group commit); its settle index, or undefined if it was dropped. */
  private commitSettlement(set: PendingSet, preimages: Uint8Array[]): Promise<bigint | undefined> {
    if (set.setId !== undefined) return this.commitAmpSet(set, preimages);
    const o = set.open;
    const amount = set.sumMsat;
    return this.locked(async () => {
      if (set.dropped) return undefined; // failed (the invoice cancelled) while waiting for the lock
      const settleIndex = this.counters.settleIndex + 1n;
      const at = Math.floor(this.now() / MS_PER_SECOND);
      const settled: SettledHtlc[] = set.amounts.map((amountMsat, i) => {
        const x: SettledHtlc = { circuit: set.circuit(i), amountMsat, paymentHash: o.inv.paymentHash, preimage: preimages[i]! };
        const custom = set.customRecords[i];
        if (custom !== undefined) x.customRecords = custom;
        return x;
      });
      const inv: Invoice = {
        ...o.inv,
        state: 'settled',
        amountPaidMsat: amount,
        settleIndex,
        settledAt: at,
        htlcs: settled,
        preimage: settled[0]?.preimage ?? o.inv.preimage!,
      };
      // durable before any HTLC of it is settled
      await this.o.store.batch([
        putSettle(settleIndex, inv.paymentAddr),
        putInvoice(inv),
        putCounters({ ...this.counters, settleIndex }),
        ...this.checkpointOps(),
      ]);
      this.counters = { ...this.counters, settleIndex };
      o.inv = inv;
      this.checkpointed();
      return settleIndex;
    });
  }

  /** Queues a complete AMP set for the next settle batch; resolves with its settle index once durable (undefined: dropped). */
  private commitAmpSet(set: PendingSet, preimages: Uint8Array[]): Promise<bigint | undefined> {
    return new Promise((resolve, reject) => {
      this.settleQueue.push({ set, preimages, resolve, reject });
      this.scheduleSettleFlush();
    });
  }

  private scheduleSettleFlush(): void {
    if (this.settleFlushScheduled) return;
    this.settleFlushScheduled = true;
    void this.locked(() => this.flushSettles());
  }

  /**
   * Writes the queued sets' settlements in one batch: per set its record and settlement reference, each with the
   * next settle index; with them the headers and lists of sets when a checkpoint is due.
   */
  private async flushSettles(): Promise<void> {
    this.settleFlushScheduled = false;
    const group = this.settleQueue.splice(0, MAX_SETS_PER_BATCH);
    if (this.settleQueue.length > 0) this.scheduleSettleFlush();
    const at = Math.floor(this.now() / MS_PER_SECOND);
    const ops: BatchOp[] = [];
    const latest = new Map<Open, Settled>();
    const live: { q: QueuedSettle; settleIndex: bigint }[] = [];
    const refs: { addr: Uint8Array; setId: Uint8Array }[] = [];
    let settleIndex = this.counters.settleIndex;
    for (const q of group) {
      const set = q.set;
      if (set.dropped) {
        q.resolve(undefined); // failed (the invoice cancelled) while waiting
        continue;
      }
      settleIndex++;
      const o = set.open;
      let l = latest.get(o);
      if (l === undefined) {
        l = { inv: o.inv, sets: [] };
        latest.set(o, l);
      }
      const amount = set.sumMsat;
      // the invoice stays open: one record per set (its header after the batch is made below, once)
      l.sets.push({ settleIndex, setId: set.setId!, amountMsat: amount });
      refs.push({ addr: o.inv.paymentAddr, setId: set.setId! });
      ops.push(
        putSetRecord({
          setId: set.setId!,
          paymentAddr: o.inv.paymentAddr,
          settleIndex,
          settledAt: at,
          amountPaidMsat: amount,
          n: set.n,
          channelIds: set.channelIds,
          htlcIds: set.htlcIds,
          amounts: set.amounts,
          sharesAndHashes: set.arena,
          childIndexes: set.childIndexes,
          customRecords: set.customRecords,
        }),
      );
      live.push({ q, settleIndex });
    }
    if (live.length === 0) return;
    for (const l of latest.values()) {
      let paid = l.inv.amountPaidMsat;
      for (const x of l.sets) paid += x.amountMsat;
      l.inv = {
        ...l.inv,
        amountPaidMsat: paid,
        settleIndex: l.sets[l.sets.length - 1]!.settleIndex,
        settledAt: at,
        settledSets: (l.inv.settledSets ?? 0) + l.sets.length,
      };
    }
    // the batch's settlement references, one entry from its first settle index on
    ops.push(putSettleChunk(live[0]!.settleIndex, refs));
    // the headers and lists of sets every CHECKPOINT_SETS sets
    const checkpoint = this.setsSinceCheckpoint + live.length >= CHECKPOINT_SETS;
    if (checkpoint) ops.push(putCounters({ ...this.counters, settleIndex }), ...this.checkpointOps(latest));
    try {
      // durable before any HTLC of these sets is settled
      await this.o.store.batch(ops);
    } catch (err) {
      for (const { q } of live) q.reject(err);
      return;
    }
    this.counters = { ...this.counters, settleIndex };
    for (const { q } of live) this.settledSets.add(q.set.setId!);
    for (const [o, l] of latest) o.inv = l.inv;
    if (checkpoint) this.checkpointed();
    else {
      for (const [o, l] of latest) {
        o.unlisted.push(...l.sets);
        this.unlisted.add(o);
      }
      this.setsSinceCheckpoint += live.length;
    }
    for (const { q, settleIndex } of live) q.resolve(settleIndex);
  }

  private dropSet(set: PendingSet): void {
    if (set.dropped) return;
    set.dropped = true;
    this.pendingHtlcs -= set.n;
    const o = set.open;
    if (o.sets.get(set.id) === set) o.sets.delete(set.id);
    if (set.setId !== undefined && this.pendingSetIds.get(set.id) === o) this.pendingSetIds.delete(set.id);
    const arena = set.release();
    // its arena serves a later set (a fresh one costs a backing store of its own, outside the heap)
    if (arena.length === INITIAL_SLOTS * AMP_SLOT && this.spareArenas.length < MAX_SPARE_ARENAS) this.spareArenas.push(arena);
  }

  /** Fails every HTLC of a set (but slot `except`, which the caller answers) and drops the set. */
  private failSet(set: PendingSet, failure: FailureMessage, except = -1): void {
    if (set.dropped) return;
    set.failed = true;
    if (set.setId !== undefined) {
      this.failedSetIds.add(set.id);
      if (this.failedSetIds.size > MAX_FAILED_SET_IDS) this.failedSetIds.delete(this.failedSetIds.values().next().value!);
    }
    const resolves = set.resolves;
    const n = set.n;
    this.dropSet(set);
    const o = set.open;
    if (o.inv.state === 'accepted') o.inv = { ...o.inv, state: 'open' };
    const answer: Answer = { action: 'fail', failure };
    for (let i = 0; i < n; i++) if (i !== except) resolves[i]!(answer);
  }

  // ---------------------------------------------------------------- keysend

  private async keysend(h: FinalHtlc, p: HopPayload): Promise<FinalResolution> {
    const fail: FinalResolution = failUnknown(h);
    if (!this.config.acceptKeysend) return fail;
    const preimage = p.keysendPreimage!;
    if (!equalBytes(sha256(preimage), h.paymentHash)) return fail;
    const a = await readAddrByHash(this.o.store, h.paymentHash);
    if (a !== undefined) {
      const inv = await readInvoice(this.o.store, hexToBytes(a));
      return (inv !== undefined ? this.answeredBefore(h, inv.htlcs) : null) ?? fail;
    }
    if (h.cltvExpiry < h.currentHeight + this.config.finalCltvRejectDelta) return fail;
    if (h.amountMsat < p.amountToForwardMsat)
      return { action: 'fail', failure: { name: 'final_incorrect_htlc_amount', incomingHtlcAmtMsat: h.amountMsat } };
    // made settled at once: one write, then the preimage goes back
    const htlc: SettledHtlc = {
      circuit: keyString(h.key),
      amountMsat: h.amountMsat,
      paymentHash: h.paymentHash,
      preimage,
      ...(p.customRecords.length > 0 ? { customRecords: p.customRecords } : {}),
    };
    const inv = await this.locked(async () => {
      const counters = { addIndex: this.counters.addIndex + 1n, settleIndex: this.counters.settleIndex + 1n };
      const at = Math.floor(this.now() / MS_PER_SECOND);
      const inv: Invoice = {
        addIndex: counters.addIndex,
        kind: 'keysend',
        state: 'settled',
        paymentHash: h.paymentHash,
        preimage,
        paymentAddr: randomBytes(HASH_LENGTH),
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
      await this.o.store.batch([
        putInvoice(inv),
        ...putInvoiceIndexes(inv),
        putSettle(counters.settleIndex, inv.paymentAddr),
        putCounters(counters),
        ...this.checkpointOps(),
      ]);
      this.counters = counters;
      this.checkpointed();
      return inv;
    });
    const e = this.eventOf(inv, inv.settleIndex!, h.amountMsat, [htlc]);
    for (const s of this.subscribers) s(e);
    return { action: 'settle', preimage };
  }

  // ---------------------------------------------------------------- hold timers

  private scheduleExpiry(deadline: number, set: PendingSet): void {
    const ds = this.expiryDeadlines;
    // deadlines arrive in order (one hold time for all); an HTLC asked again after a restart may come out of order
    if (ds.length === this.expiryHead || ds[ds.length - 1]! <= deadline) {
      ds.push(deadline);
      this.expirySets.push(set);
    } else {
      let i = ds.length;
      while (i > this.expiryHead && ds[i - 1]! > deadline) i--;
      ds.splice(i, 0, deadline);
      this.expirySets.splice(i, 0, set);
    }
    this.armTimer();
  }

  private armTimer(): void {
    if (this.expiryHead >= this.expiryDeadlines.length) return;
    const next = this.expiryDeadlines[this.expiryHead]!;
    if (this.timer !== undefined && this.timerAt <= next) return;
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = this.o.timers.setTimeout(
      () => {
        this.timer = undefined;
        this.expire();
      },
      Math.max(0, next - this.now()),
    );
  }

  private expire(): void {
    const now = this.now();
    const ds = this.expiryDeadlines;
    const sets = this.expirySets;
    while (this.expiryHead < ds.length && ds[this.expiryHead]! <= now) {
      const set = sets[this.expiryHead]!;
      this.expiryHead++;
      if (set.dropped || set.complete) continue;
      // without this HTLC the set cannot complete any more: all of it fails with mpp_timeout (a regular invoice
      // can be paid again by a new attempt; an AMP set_id is done)
      this.failSet(set, { name: 'mpp_timeout' });
    }
    if (this.expiryHead > EXPIRY_COMPACT_AT && this.expiryHead * 2 > ds.length) {
      this.expiryDeadlines = ds.slice(this.expiryHead);
      this.expirySets = sets.slice(this.expiryHead);
      this.expiryHead = 0;
    }
    this.armTimer();
  }

  /** HTLCs held in incomplete sets (for tests and limits). */
  pendingCount(): number {
    return this.pendingHtlcs;
  }
}
