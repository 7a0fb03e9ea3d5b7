/**
 * The HTLC switch (lnd: htlcswitch/switch.go). Links hand it every HTLC
 * that became irrevocable on their channel; it forwards each by
 * short_channel_id, or hands it to the final-hop handler, and carries
 * settles and failures back to where the HTLC came from. It also sends our
 * own payments' HTLCs (`sendToRoute`).
 *
 * Durability (records in circuit-map.ts):
 * - `onIncoming` returns only once the HTLC's record is written, so the
 *   channel drops the event from its outbox only after that;
 * - before the outgoing add is offered the record names the outgoing
 *   channel (`forwarding`); the outgoing HTLC id and its keystone are written
 *   before any commitment covering the add can be signed (the link waits);
 * - a settle or fail from downstream is written into the record before the
 *   outgoing channel drops its event, and the record is deleted only after
 *   the incoming channel has durably taken the answer;
 * - after a restart: `received` records are processed again, `forwarding`
 *   records (the add was never signed, so the channel forgot it) are failed
 *   back, `held` ones are offered to the handler again, `resolving` ones are
 *   answered again. An add that a disconnect or restart made the channel
 *   forget comes back as `onOutgoingUnsent` and is failed back: no HTLC is
 *   ever both forwarded and failed.
 *
 * Work that touches another channel's driver never runs inside a link's
 * callback (that could wait on the very driver that called): it is queued on
 * one lane per record.
 */
import type { KvStore, BatchOp } from '../../db/store.js';
import { bytesToHex, equalBytes } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { AmpnodeError } from '../../wire/errors.js';
import {
  addAttribution,
  buildOnion,
  createAttributableFailure,
  decodeHopPayload,
  encodeHopPayload,
  FailureCode,
  readAttribution,
  unwrapAttributedFailure,
  wrapAttributableFailure,
  type FailureMessage,
  type FailureName,
  type HopPayloadInput,
} from '../../onion/index.js';
import {
  delKeystone,
  delRecord,
  keyString,
  loadCircuits,
  LOCAL_CHANNEL,
  putKeystone,
  putNextAttempt,
  putRecord,
  putResult,
  readResult,
  resultIds,
  resultKey,
  type HtlcRecord,
  type Resolution,
} from './circuit-map.js';
import {
  DEFAULT_SWITCH_CONFIG,
  type AttemptResult,
  type CircuitKey,
  type FinalHopHandler,
  type FinalPayloadRecords,
  type FinalResolution,
  type Route,
  type SwitchConfig,
} from './interfaces.js';
import type { ChannelLink, IncomingAdd, LinkSwitch, PeelOutcome } from './link.js';
import { checkForward } from './policy.js';
import { withAttribution } from '../channel/types.js';

export type SwitchErrorCode = 'ERR_SWITCH_STOPPED' | 'ERR_BAD_ROUTE' | 'ERR_UNKNOWN_ATTEMPT' | 'ERR_NOT_HELD';
/**
 * The switch's records by key, keeping one sum up to date as they change: the amounts of the outgoing HTLCs recorded
 * but not yet in their channel (state `forwarding`), by outgoing short_channel_id. The router asks for it on every
 * route search; records are replaced, never changed in place, so every change passes through `set` or `delete`.
 */
export class RecordTable extends Map<string, HtlcRecord> {
  readonly forwardingMsat = new Map<bigint, bigint>();

  override set(k: string, r: HtlcRecord): this {
    this.count(super.get(k), -1n);
    this.count(r, 1n);
    return super.set(k, r);
  }

  override delete(k: string): boolean {
    this.count(super.get(k), -1n);
    return super.delete(k);
  }

  override clear(): void {
    this.forwardingMsat.clear();
    super.clear();
  }

  private count(r: HtlcRecord | undefined, sign: bigint): void {
    if (r === undefined || r.state !== 'forwarding' || r.hop.kind !== 'forward') return;
    const scid = r.hop.outgoingScid;
    const sum = (this.forwardingMsat.get(scid) ?? 0n) + sign * r.hop.amountMsat;
    if (sum === 0n) this.forwardingMsat.delete(scid);
    else this.forwardingMsat.set(scid, sum);
  }
}

export class SwitchError extends AmpnodeError<SwitchErrorCode> {}

export interface SwitchOptions {
  store: KvStore;
  /** Our final hop (the invoice registry); without one every HTLC for us is failed. */
  finalHop?: FinalHopHandler;
  config?: Partial<SwitchConfig>;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', obj: object, msg: string) => void;
  now?: () => number;
}

/** Forwarding counters (read by tests, benchmarks and the API). */
export interface SwitchStats {
  forwarded: number;
  settledUpstream: number;
  failedUpstream: number;
  final: number;
}

const LOCAL_FAILURE_SOURCE = 0;

export class HtlcSwitch implements LinkSwitch {
  readonly config: SwitchConfig;
  readonly stats: SwitchStats = { forwarded: 0, settledUpstream: 0, failedUpstream: 0, final: 0 };
  private finalHop: FinalHopHandler | undefined;
  private readonly links = new Set<ChannelLink>();
  private byChannel = new Map<string, ChannelLink>();
  private byScid = new Map<bigint, ChannelLink>();
  private readonly records = new RecordTable();
  /** outgoing (channel, htlc) → the record it serves. */
  private readonly keystones = new Map<string, CircuitKey>();
  private readonly lanes = new Map<string, Promise<void>>();
  private readonly waiters = new Map<bigint, ((r: AttemptResult) => void)[]>();
  /** Outgoing channels we asked to go to chain (once each per run). */
  private readonly goingToChain = new Set<string>();
  private nextAttempt = 1n;
  private height = 0;
  private started = false;
  private stopped = false;
  private resultCount = 0;

  constructor(private readonly o: SwitchOptions) {
    this.config = { ...DEFAULT_SWITCH_CONFIG, ...(o.config ?? {}) };
    this.finalHop = o.finalHop;
  }

  setFinalHop(h: FinalHopHandler): void {
    this.finalHop = h;
  }

  /** Loads the records; call before any link replays its channel's events. */
  async start(height: number): Promise<void> {
    this.height = height;
    const c = await loadCircuits(this.o.store);
    for (const r of c.records) this.records.set(keyString(r.key), r);
    for (const [out, incoming] of c.keystones) this.keystones.set(keyString(out), incoming);
    this.nextAttempt = c.nextAttempt;
    this.resultCount = (await resultIds(this.o.store)).length;
    this.started = true;
  }

  /**
   * After every link is registered and has replayed its channel's events: picks up what a previous run left.
   */
  resume(): void {
    for (const r of [...this.records.values()]) {
      const k = keyString(r.key);
      switch (r.state) {
        case 'received':
          this.lane(k, () => this.process(k));
          break;
        case 'forwarding':
          // the add was never signed (its keystone was not written): the channel forgot it after the restart
          this.lane(k, () => this.failBack(k, { name: 'temporary_channel_failure', channelUpdate: this.updateFor(r.out?.channelId) }));
          break;
        case 'held':
          this.lane(k, () => this.askFinalHop(k));
          break;
        case 'resolving':
          this.lane(k, () => this.applyResolution(k));
          break;
        case 'forwarded':
          break; // waits for the outgoing channel
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }

  registerLink(link: ChannelLink): void {
    this.links.add(link);
    this.byChannel.clear();
    this.byScid.clear();
  }

  unregisterLink(link: ChannelLink): void {
    this.links.delete(link);
    this.byChannel.clear();
    this.byScid.clear();
  }

  link(channelId: string): ChannelLink | undefined {
    let l = this.byChannel.get(channelId);
    if (l === undefined) {
      for (const x of this.links) if (x.channelId === channelId) l = x;
      if (l !== undefined) this.byChannel.set(channelId, l);
    }
    return l;
  }

  linkByScid(scid: bigint): ChannelLink | undefined {
    let l = this.byScid.get(scid);
    if (l === undefined) {
      for (const x of this.links) if (x.channel.shortChannelId() === scid) l = x;
      if (l !== undefined) this.byScid.set(scid, l);
    }
    return l;
  }

  /** HTLCs the switch is responsible for (incoming records and attempts in flight). */
  pendingCount(): number {
    return this.records.size;
  }

  /**
   * Outgoing HTLCs recorded but not yet in their channel (state `forwarding`), summed by outgoing short_channel_id:
   * what a channel's balance does not show yet, for the router.
   */
  pendingAddsMsat(): ReadonlyMap<bigint, bigint> {
    return this.records.forwardingMsat;
  }

  // ---------------------------------------------------------------- blocks

  /** A block was connected: outgoing HTLCs close to expiry send their channel to chain. */
  blockConnected(height: number): void {
    this.height = height;
    for (const r of this.records.values()) {
      const out = r.out;
      if (r.state !== 'forwarded' || out?.htlcId === undefined) continue;
      if (out.cltvExpiry - this.config.outgoingBroadcastDelta > height) continue;
      if (this.goingToChain.has(out.channelId)) continue;
      const l = this.link(out.channelId);
      if (l === undefined || l.channel.failed()) continue;
      this.goingToChain.add(out.channelId);
      const reason = `outgoing HTLC ${out.htlcId} expires at ${out.cltvExpiry}, height ${height}: going to chain`;
      this.o.log?.(
        'warn',
        { channelId: out.channelId, htlcId: String(out.htlcId), cltvExpiry: out.cltvExpiry, height },
        'outgoing HTLC near expiry; force-closing its channel',
      );
      void l.channel
        .forceClose(reason)
        .catch((err: unknown) => this.o.log?.('error', { err, channelId: out.channelId }, 'force close for an expiring HTLC failed'));
    }
  }

  // ---------------------------------------------------------------- from links

  async onIncoming(link: ChannelLink, add: IncomingAdd, peel: PeelOutcome): Promise<void> {
    const key: CircuitKey = { channelId: link.channelId, htlcId: add.htlcId };
    const k = keyString(key);
    if (this.records.has(k)) return; // a replay of an HTLC we recorded already
    if (!link.channel.incomingOpen(add.htlcId)) return; // answered already (the replayed event outlived our record)
    const base = {
      key,
      amountMsat: add.amountMsat,
      cltvExpiry: add.cltvExpiry,
      paymentHash: add.paymentHash,
      arrivedAt: this.now(),
    };
    let r: HtlcRecord;
    if (this.records.size >= this.config.maxPendingHtlcs) {
      r = {
        ...base,
        state: 'resolving',
        hop: { kind: 'reject' },
        resolution: this.encryptFailure(peel, { name: 'temporary_node_failure' }),
      };
    } else if (peel.kind === 'malformed') {
      r = {
        ...base,
        state: 'resolving',
        hop: { kind: 'reject' },
        resolution: { kind: 'malformed', failureCode: peel.failureCode, sha256OfOnion: peel.sha256OfOnion },
      };
    } else if (peel.kind === 'fail') {
      r = {
        ...base,
        state: 'resolving',
        hop: { kind: 'reject' },
        sharedSecret: peel.sharedSecret,
        resolution: { kind: 'fail', ...createAttributableFailure(peel.sharedSecret, peel.failure, 0) },
      };
    } else if (peel.kind === 'forward') {
      const p = peel.payload;
      r = {
        ...base,
        state: 'received',
        sharedSecret: peel.sharedSecret,
        hop: {
          kind: 'forward',
          outgoingScid: p.shortChannelId!,
          amountMsat: p.amountToForwardMsat,
          cltvExpiry: p.outgoingCltvValue,
          nextOnion: peel.nextPacket,
        },
      };
    } else {
      r = { ...base, state: 'received', sharedSecret: peel.sharedSecret, hop: { kind: 'final', payloadBytes: peel.payloadBytes } };
    }
    await this.o.store.batch([putRecord(r)]);
    this.records.set(k, r);
    this.lane(k, () => (r.state === 'resolving' ? this.applyResolution(k) : this.process(k)));
  }

  async onOutgoingSettle(
    channelId: string,
    htlcId: bigint,
    preimage: Uint8Array,
    how: 'early' | 'irrevocable' | 'chain',
    attributionData?: Uint8Array,
  ): Promise<void> {
    const inKey = this.keystones.get(keyString({ channelId, htlcId }));
    if (inKey === undefined) return;
    const k = keyString(inKey);
    const r = this.records.get(k);
    if (r === undefined || r.state !== 'forwarded' || !equalBytes(sha256(preimage), r.paymentHash)) return;
    this.o.log?.('debug', { channelId, htlcId: String(htlcId), how }, 'outgoing HTLC settled');
    // BOLT 4: a forwarding hop adds its hold time to the attribution data (from zeros if downstream sent none); our own
    // attempt keeps what came back, for the result to read
    const attribution =
      r.attempt !== undefined ? attributionData : r.sharedSecret && addAttribution(r.sharedSecret, attributionData, this.holdTimeMs(r));
    // written here (not in the lane): the outgoing channel drops its event once this returns
    await this.setResolution(r, { kind: 'settle', preimage, ...withAttribution(attribution) });
    this.lane(k, () => this.applyResolution(k));
  }

  async onOutgoingFail(
    channelId: string,
    htlcId: bigint,
    f: { reason?: Uint8Array; attributionData?: Uint8Array; failureCode?: number; sha256OfOnion?: Uint8Array; onChain?: boolean },
  ): Promise<void> {
    const inKey = this.keystones.get(keyString({ channelId, htlcId }));
    if (inKey === undefined) return;
    const k = keyString(inKey);
    const r = this.records.get(k);
    if (r === undefined || r.state !== 'forwarded') return;
    let res: Resolution;
    if (r.attempt !== undefined) {
      // our own payment: keep what came back raw; the result reads it
      if (f.reason !== undefined) res = { kind: 'fail', reason: f.reason, ...withAttribution(f.attributionData) };
      else if (f.failureCode !== undefined && f.sha256OfOnion !== undefined)
        res = { kind: 'malformed', failureCode: f.failureCode, sha256OfOnion: f.sha256OfOnion };
      else
        // our own doing (the channel went to chain), not the first hop's: blaming it would keep mission control
        // off that node for every later payment
        res = {
          kind: 'local',
          sourceIndex: LOCAL_FAILURE_SOURCE,
          failure: { name: 'permanent_channel_failure' },
          reason: 'the first hop did not settle; the HTLC was taken back on chain',
        };
    } else if (f.reason !== undefined) {
      res = { kind: 'fail', ...wrapAttributableFailure(r.sharedSecret!, f.reason, f.attributionData, this.holdTimeMs(r)) };
    } else if (f.failureCode !== undefined && f.sha256OfOnion !== undefined) {
      // BOLT 4: a malformed answer from downstream goes back as update_fail_htlc, encrypted by us
      res = this.encryptWith(r, this.badOnionFailure(f.failureCode, f.sha256OfOnion));
    } else {
      // taken back on chain after its expiry: the channel is gone
      res = this.encryptWith(r, { name: 'permanent_channel_failure' });
    }
    await this.setResolution(r, res);
    this.lane(k, () => this.applyResolution(k));
  }

  async onOutgoingUnsent(channelId: string, htlcId: bigint): Promise<void> {
    const out = { channelId, htlcId };
    const inKey = this.keystones.get(keyString(out));
    if (inKey === undefined) return;
    const k = keyString(inKey);
    const r = this.records.get(k);
    // the id is given to the next add: the keystone goes now, with the answer
    this.keystones.delete(keyString(out));
    if (r === undefined || r.state !== 'forwarded') {
      await this.o.store.batch([delKeystone(out)]);
      return;
    }
    const res =
      r.attempt !== undefined
        ? this.localFailure(r, 'temporary_channel_failure', channelId)
        : this.encryptWith(r, { name: 'temporary_channel_failure', channelUpdate: this.updateFor(channelId) });
    const next: HtlcRecord = { ...r, state: 'resolving', resolution: res };
    const { out: _o, ...withoutOut } = next;
    await this.o.store.batch([delKeystone(out), putRecord(withoutOut)]);
    this.records.set(k, withoutOut);
    this.lane(k, () => this.applyResolution(k));
  }

  // ---------------------------------------------------------------- held HTLCs

  /** Answers an HTLC the final-hop handler held. */
  async resolveHeld(key: CircuitKey, resolution: Exclude<FinalResolution, { action: 'hold' }>): Promise<void> {
    const k = keyString(key);
    const r = this.records.get(k);
    if (r === undefined || r.state !== 'held') throw new SwitchError('ERR_NOT_HELD', `no held HTLC ${k}`);
    await new Promise<void>((resolve, reject) => this.lane(k, () => this.finishFinal(k, resolution).then(resolve, reject)));
  }

  // ---------------------------------------------------------------- our payments

  /**
   * Sends an HTLC along `route` (lnd's SendToRouteV2): the onion for its hops, the add on the first channel. Resolves
   * with the attempt's result: settled with the preimage, or failed with the decrypted failure and the index of the hop
   * that sent it (0: we could not send it). The result stays readable by its id (`attemptResult`), also after a restart.
   */
  async sendToRoute(
    route: Route,
    paymentHash: Uint8Array,
    records: FinalPayloadRecords = {},
    opts: { attemptId?: bigint; sessionKey?: Uint8Array } = {},
  ): Promise<AttemptResult> {
    const { attemptId } = await this.startAttempt(route, paymentHash, records, opts);
    return this.waitForAttempt(attemptId);
  }

  /** Like sendToRoute, but resolves as soon as the attempt is recorded, with its id (wait with waitForAttempt). */
  async startAttempt(
    route: Route,
    paymentHash: Uint8Array,
    records: FinalPayloadRecords = {},
    opts: { attemptId?: bigint; sessionKey?: Uint8Array } = {},
  ): Promise<{ attemptId: bigint }> {
    if (!this.started || this.stopped) throw new SwitchError('ERR_SWITCH_STOPPED', 'the switch is not running');
    const hops = route.hops;
    if (hops.length === 0 || hops.length > 27) throw new SwitchError('ERR_BAD_ROUTE', `a route has 1 to 27 hops, not ${hops.length}`);
    if (paymentHash.length !== 32) throw new SwitchError('ERR_BAD_ROUTE', 'payment hash must be 32 bytes');
    const payloads: Uint8Array[] = hops.map((h, i) => {
      const next = hops[i + 1];
      const p: HopPayloadInput =
        next === undefined
          ? {
              amountToForwardMsat: h.amountToForwardMsat,
              outgoingCltvValue: h.outgoingCltvValue,
              ...(records.mpp !== undefined ? { mpp: records.mpp } : {}),
              ...(records.amp !== undefined ? { amp: records.amp } : {}),
              ...(records.keysendPreimage !== undefined ? { keysendPreimage: records.keysendPreimage } : {}),
              ...(records.paymentMetadata !== undefined ? { paymentMetadata: records.paymentMetadata } : {}),
              ...(records.customRecords !== undefined ? { customRecords: records.customRecords } : {}),
            }
          : { amountToForwardMsat: h.amountToForwardMsat, outgoingCltvValue: h.outgoingCltvValue, shortChannelId: next.shortChannelId };
      return encodeHopPayload(p);
    });
    const sessionKey = opts.sessionKey ?? randomBytes(32);
    let onion;
    try {
      onion = buildOnion(
        hops.map((h, i) => ({ pubkey: h.pubkey, payload: payloads[i]! })),
        sessionKey,
        paymentHash,
      );
    } catch (e) {
      throw new SwitchError('ERR_BAD_ROUTE', `cannot build the onion: ${(e as Error).message}`, { cause: e });
    }
    return this.sendOnion(
      {
        firstHopScid: hops[0]!.shortChannelId,
        amountMsat: route.totalAmountMsat,
        cltvExpiry: route.totalTimeLock,
        paymentHash,
        onion: onion.packet,
        sharedSecrets: onion.sharedSecrets,
      },
      opts,
    );
  }

  /**
   * Sends an onion somebody else built (lnd: switchrpc SendOnion) on the channel `firstHopScid`; `sharedSecrets` (the
   * route's, in order) read the failure that comes back. Resolves once the attempt is recorded.
   */
  async sendOnion(
    o: {
      firstHopScid: bigint;
      amountMsat: bigint;
      cltvExpiry: number;
      paymentHash: Uint8Array;
      onion: Uint8Array;
      sharedSecrets: Uint8Array[];
    },
    opts: { attemptId?: bigint } = {},
  ): Promise<{ attemptId: bigint }> {
    if (!this.started || this.stopped) throw new SwitchError('ERR_SWITCH_STOPPED', 'the switch is not running');
    if (o.paymentHash.length !== 32 || o.onion.length !== 1366)
      throw new SwitchError('ERR_BAD_ROUTE', 'payment hash must be 32 bytes and the onion 1366');
    const paymentHash = o.paymentHash;
    const route = { totalAmountMsat: o.amountMsat, totalTimeLock: o.cltvExpiry };
    const hops = [{ shortChannelId: o.firstHopScid }];
    const onion = { packet: o.onion, sharedSecrets: o.sharedSecrets };
    const attemptId = opts.attemptId ?? this.nextAttempt;
    if (attemptId >= this.nextAttempt) this.nextAttempt = attemptId + 1n;
    const key: CircuitKey = { channelId: LOCAL_CHANNEL, htlcId: attemptId };
    const k = keyString(key);
    if (this.records.has(k) || (await readResult(this.o.store, attemptId)) !== undefined)
      throw new SwitchError('ERR_BAD_ROUTE', `attempt ${attemptId} exists already`);
    const first = this.linkByScid(hops[0]!.shortChannelId);
    const r: HtlcRecord = {
      key,
      state: 'forwarding',
      amountMsat: route.totalAmountMsat,
      cltvExpiry: route.totalTimeLock,
      paymentHash,
      hop: {
        kind: 'forward',
        outgoingScid: hops[0]!.shortChannelId,
        amountMsat: route.totalAmountMsat,
        cltvExpiry: route.totalTimeLock,
        nextOnion: onion.packet,
      },
      attempt: { sharedSecrets: onion.sharedSecrets, createdAt: this.now() },
      ...(first !== undefined ? { out: { channelId: first.channelId, cltvExpiry: route.totalTimeLock } } : {}),
    };
    await this.o.store.batch([putRecord(r), putNextAttempt(this.nextAttempt)]);
    this.records.set(k, r);
    this.lane(k, () => this.offer(k));
    return { attemptId };
  }

  /** The result of a finished attempt, or undefined while it is in flight (or unknown). */
  async attemptResult(attemptId: bigint): Promise<AttemptResult | undefined> {
    return readResult(this.o.store, attemptId);
  }

  /** Resolves with the attempt's result once it has one (at once if it has one already). */
  async waitForAttempt(attemptId: bigint): Promise<AttemptResult> {
    const k = keyString({ channelId: LOCAL_CHANNEL, htlcId: attemptId });
    const wait = new Promise<AttemptResult>((resolve) => {
      const list = this.waiters.get(attemptId) ?? [];
      list.push(resolve);
      this.waiters.set(attemptId, list);
    });
    if (!this.records.has(k)) {
      const done = await readResult(this.o.store, attemptId);
      if (done === undefined) {
        this.waiters.delete(attemptId);
        throw new SwitchError('ERR_UNKNOWN_ATTEMPT', `no attempt ${attemptId}`);
      }
      this.notify(done);
    }
    return wait;
  }

  // ---------------------------------------------------------------- processing

  private lane(k: string, fn: () => Promise<void>): void {
    const prev = this.lanes.get(k) ?? Promise.resolve();
    const next = prev
      .then(() => (this.stopped ? undefined : fn()))
      .catch((err: unknown) => this.o.log?.('error', { err, htlc: k }, 'switch work failed'));
    this.lanes.set(k, next);
    void next.then(() => {
      if (this.lanes.get(k) === next) this.lanes.delete(k);
    });
  }

  private async process(k: string): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined || r.state !== 'received') return;
    if (r.hop.kind === 'final') return this.askFinalHop(k);
    if (r.hop.kind !== 'forward') return;
    const hop = r.hop;
    const out = this.linkByScid(hop.outgoingScid);
    if (out === undefined) return this.failBack(k, { name: 'unknown_next_peer' });
    const failure = checkForward({
      incomingAmountMsat: r.amountMsat,
      incomingCltvExpiry: r.cltvExpiry,
      outgoingAmountMsat: hop.amountMsat,
      outgoingCltvExpiry: hop.cltvExpiry,
      height: this.height,
      policy: out.policy,
      capacityMsat: out.channel.capacityMsat(),
      config: this.config,
      channelUpdate: () => out.channelUpdate(),
    });
    if (failure !== null) return this.failBack(k, failure);
    if (!out.channel.canAdd()) return this.failBack(k, { name: 'temporary_channel_failure', channelUpdate: out.channelUpdate() });
    const forwarding: HtlcRecord = { ...r, state: 'forwarding', out: { channelId: out.channelId, cltvExpiry: hop.cltvExpiry } };
    await this.o.store.batch([putRecord(forwarding)]);
    this.records.set(k, forwarding);
    await this.offer(k);
  }

  /** Offers the record's outgoing HTLC (state `forwarding`) on its channel. */
  private async offer(k: string): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined || r.state !== 'forwarding' || r.hop.kind !== 'forward') return;
    const hop = r.hop;
    const out = r.out === undefined ? undefined : this.link(r.out.channelId);
    if (out === undefined) {
      if (r.attempt !== undefined) return this.setAndApply(k, this.localFailure(r, 'unknown_next_peer', undefined));
      return this.failBack(k, { name: 'unknown_next_peer' });
    }
    const res = await out.addHtlc(
      { amountMsat: hop.amountMsat, paymentHash: r.paymentHash, cltvExpiry: hop.cltvExpiry, onionRoutingPacket: hop.nextOnion },
      async (htlcId) => {
        const outKey = { channelId: out.channelId, htlcId };
        const forwarded: HtlcRecord = { ...r, state: 'forwarded', out: { channelId: out.channelId, htlcId, cltvExpiry: hop.cltvExpiry } };
        await this.o.store.batch([putRecord(forwarded), putKeystone(outKey, r.key)]);
        this.records.set(k, forwarded);
        this.keystones.set(keyString(outKey), r.key);
      },
    );
    if ('refused' in res) {
      this.o.log?.('debug', { htlc: k, channelId: out.channelId, reason: res.refused }, 'outgoing add refused');
      if (r.attempt !== undefined) return this.setAndApply(k, this.localFailure(r, 'temporary_channel_failure', out.channelId));
      return this.failBack(k, { name: 'temporary_channel_failure', channelUpdate: out.channelUpdate() });
    }
    this.stats.forwarded++;
  }

  private async askFinalHop(k: string): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined || (r.state !== 'received' && r.state !== 'held') || r.hop.kind !== 'final') return;
    const payload = decodeHopPayload(r.hop.payloadBytes, { isFinal: true });
    // BOLT 4 at the final node: the onion must not promise more than the HTLC carries
    if (r.amountMsat < payload.amountToForwardMsat)
      return this.failBack(k, { name: 'final_incorrect_htlc_amount', incomingHtlcAmtMsat: r.amountMsat });
    if (r.cltvExpiry < payload.outgoingCltvValue)
      return this.failBack(k, { name: 'final_incorrect_cltv_expiry', cltvExpiry: r.cltvExpiry });
    const handler = this.finalHop;
    if (handler === undefined)
      return this.failBack(k, { name: 'incorrect_or_unknown_payment_details', htlcMsat: r.amountMsat, height: this.height });
    this.stats.final++;
    const later = (res: Exclude<FinalResolution, { action: 'hold' }>): void => this.lane(k, () => this.finishFinal(k, res));
    let answer: FinalResolution;
    try {
      answer = await handler.handle(
        {
          key: r.key,
          amountMsat: r.amountMsat,
          cltvExpiry: r.cltvExpiry,
          paymentHash: r.paymentHash,
          payload,
          currentHeight: this.height,
          arrivedAt: r.arrivedAt ?? this.now(),
        },
        later,
      );
    } catch (err) {
      this.o.log?.('error', { err, htlc: k }, 'final-hop handler failed; HTLC failed back');
      answer = { action: 'fail', failure: { name: 'temporary_node_failure' } };
    }
    if (answer.action === 'hold') {
      // in memory only: the record stays `received` on disk, and a restart asks the handler again
      if (r.state !== 'held') this.records.set(k, { ...r, state: 'held' });
      return;
    }
    await this.finishFinal(k, answer);
  }

  private async finishFinal(k: string, answer: Exclude<FinalResolution, { action: 'hold' }>): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined || (r.state !== 'received' && r.state !== 'held')) return;
    if (answer.action === 'settle') {
      if (!equalBytes(sha256(answer.preimage), r.paymentHash)) {
        this.o.log?.('error', { htlc: k }, 'final-hop handler gave a preimage that does not match; HTLC failed back');
        return this.failBack(k, { name: 'temporary_node_failure' });
      }
      const attributionData = r.sharedSecret && addAttribution(r.sharedSecret, undefined, this.holdTimeMs(r));
      return this.setAndApply(k, {
        kind: 'settle',
        preimage: answer.preimage,
        ...withAttribution(attributionData),
      });
    }
    return this.failBack(k, answer.failure);
  }

  private failBack(k: string, failure: FailureMessage): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined) return Promise.resolve();
    const res = r.attempt !== undefined ? this.localFailureFrom(failure) : this.encryptWith(r, failure);
    return this.setAndApply(k, res);
  }

  private async setAndApply(k: string, res: Resolution): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined) return;
    await this.setResolution(r, res);
    await this.applyResolution(k);
  }

  private async setResolution(r: HtlcRecord, res: Resolution): Promise<void> {
    const next: HtlcRecord = { ...r, state: 'resolving', resolution: res };
    await this.o.store.batch([putRecord(next)]);
    this.records.set(keyString(r.key), next);
  }

  /** Hands the record's answer to the incoming channel (or ends the attempt); deletes the record once taken. */
  private async applyResolution(k: string): Promise<void> {
    const r = this.records.get(k);
    if (r === undefined || r.state !== 'resolving' || r.resolution === undefined) return;
    const res = r.resolution;
    const cleanup: BatchOp[] = [delRecord(r.key)];
    if (r.out?.htlcId !== undefined) {
      const outKey = { channelId: r.out.channelId, htlcId: r.out.htlcId };
      cleanup.push(delKeystone(outKey));
    }
    if (r.attempt !== undefined) {
      const result = this.attemptOutcome(r, res);
      await this.o.store.batch([...cleanup, putResult(result)]);
      this.forget(r);
      this.resultCount++;
      await this.pruneResults();
      this.notify(result);
      return;
    }
    const link = this.link(r.key.channelId);
    if (link === undefined) {
      this.o.log?.('warn', { htlc: k }, 'incoming channel not known; answer kept until it is');
      return;
    }
    const done = await link.resolve(r.key.htlcId, res);
    if (done === 'retry') return; // kept; answered again on the next start (or when the channel comes back)
    if (res.kind === 'settle') this.stats.settledUpstream++;
    else this.stats.failedUpstream++;
    await this.o.store.batch(cleanup);
    this.forget(r);
  }

  /** Answers again the records a channel could not take (called when a link comes back). */
  retryChannel(channelId: string): void {
    for (const r of this.records.values())
      if (r.key.channelId === channelId && r.state === 'resolving') {
        const k = keyString(r.key);
        this.lane(k, () => this.applyResolution(k));
      }
  }

  private forget(r: HtlcRecord): void {
    this.records.delete(keyString(r.key));
    if (r.out?.htlcId !== undefined) {
      const ok = keyString({ channelId: r.out.channelId, htlcId: r.out.htlcId });
      if (this.keystones.get(ok) !== undefined && keyString(this.keystones.get(ok)!) === keyString(r.key)) this.keystones.delete(ok);
    }
  }

  private async pruneResults(): Promise<void> {
    if (this.resultCount <= this.config.maxAttemptResults) return;
    const ids = await resultIds(this.o.store);
    const drop = ids.slice(0, Math.max(0, ids.length - this.config.maxAttemptResults));
    await this.o.store.batch(drop.map((id) => ({ type: 'del' as const, key: resultKey(id) })));
    this.resultCount = ids.length - drop.length;
  }

  private notify(result: AttemptResult): void {
    const list = this.waiters.get(result.attemptId);
    if (list === undefined) return;
    this.waiters.delete(result.attemptId);
    for (const w of list) w(result);
  }

  // ---------------------------------------------------------------- failures

  private encryptWith(r: HtlcRecord, failure: FailureMessage): Resolution {
    if (r.sharedSecret === undefined)
      return { kind: 'malformed', failureCode: FailureCode.invalid_onion_hmac, sha256OfOnion: new Uint8Array(32) };
    return { kind: 'fail', ...createAttributableFailure(r.sharedSecret, failure, this.holdTimeMs(r)) };
  }

  private encryptFailure(peel: PeelOutcome, failure: FailureMessage): Resolution {
    if (peel.kind === 'malformed') return { kind: 'malformed', failureCode: peel.failureCode, sha256OfOnion: peel.sha256OfOnion };
    return { kind: 'fail', ...createAttributableFailure(peel.sharedSecret, failure, 0) };
  }

  /** How long we have held an incoming HTLC: from when the switch first recorded it until now. */
  private holdTimeMs(r: HtlcRecord): number {
    const now = this.now();
    return now - (r.arrivedAt ?? now);
  }

  /** The clock in ms (the configured one, or the system's). */
  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private badOnionFailure(code: number, sha256OfOnion: Uint8Array): FailureMessage {
    const name = (Object.keys(FailureCode) as FailureName[]).find((n) => FailureCode[n] === code);
    if (
      name === 'invalid_onion_version' ||
      name === 'invalid_onion_hmac' ||
      name === 'invalid_onion_key' ||
      name === 'invalid_onion_blinding'
    )
      return { name, sha256OfOnion };
    return { name: 'invalid_onion_hmac', sha256OfOnion };
  }

  private updateFor(channelId: string | undefined): Uint8Array {
    const l = channelId === undefined ? undefined : this.link(channelId);
    return l?.channelUpdate() ?? new Uint8Array(0);
  }

  /** A failure of our own attempt before it left us (source index 0). */
  private localFailure(_r: HtlcRecord, name: 'temporary_channel_failure' | 'unknown_next_peer', channelId: string | undefined): Resolution {
    const f: FailureMessage = name === 'unknown_next_peer' ? { name } : { name, channelUpdate: this.updateFor(channelId) };
    return this.localFailureFrom(f);
  }

  private localFailureFrom(f: FailureMessage): Resolution {
    return { kind: 'local', sourceIndex: LOCAL_FAILURE_SOURCE, failure: f, reason: `not sent: ${f.name}` };
  }

  private attemptOutcome(r: HtlcRecord, res: Resolution): AttemptResult {
    const attemptId = r.key.htlcId;
    if (res.kind === 'settle') {
      if (res.attributionData === undefined) return { attemptId, status: 'settled', preimage: res.preimage };
      const secrets = r.attempt!.sharedSecrets;
      const a = readAttribution(res.attributionData, secrets);
      const broken = a.lastVerifiedHop + 1 < secrets.length ? { attributionBrokenAt: a.lastVerifiedHop + 2 } : {};
      return { attemptId, status: 'settled', preimage: res.preimage, holdTimesMs: a.holdTimesMs, ...broken };
    }
    if (res.kind === 'local')
      return { attemptId, status: 'failed', failureSourceIndex: res.sourceIndex, failure: res.failure, reason: res.reason };
    if (res.kind === 'malformed') {
      // the first hop could not read our onion: it says so itself
      return {
        attemptId,
        status: 'failed',
        failureSourceIndex: 1,
        reason: `first hop answered update_fail_malformed_htlc 0x${res.failureCode.toString(16)}`,
        failure: this.badOnionFailure(res.failureCode, res.sha256OfOnion),
      };
    }
    const u = unwrapAttributedFailure(res.reason, res.attributionData, r.attempt!.sharedSecrets);
    // hold times of the hops whose HMAC verified; a break before the hop that failed (or anywhere, when none could be
    // named from the packet) names the hop whose HMAC broke
    let attributed: { holdTimesMs?: number[]; attributionBrokenAt?: number } = {};
    if (u.attribution !== undefined) {
      const expected = u.kind === 'unreadable' ? r.attempt!.sharedSecrets.length : u.hopIndex + 1;
      const verified = u.attribution.lastVerifiedHop + 1;
      attributed = { holdTimesMs: u.attribution.holdTimesMs, ...(verified < expected ? { attributionBrokenAt: verified + 1 } : {}) };
    }
    if (u.kind === 'failure')
      return { attemptId, status: 'failed', failureSourceIndex: u.hopIndex + 1, failure: u.failure, reason: u.failure.name, ...attributed };
    if (u.kind === 'malformed')
      return {
        attemptId,
        status: 'failed',
        failureSourceIndex: u.hopIndex + 1,
        reason: `unreadable failure from hop ${u.hopIndex + 1}: ${u.reason}`,
        ...attributed,
      };
    if (u.hopIndex !== undefined)
      return {
        attemptId,
        status: 'failed',
        failureSourceIndex: u.hopIndex + 1,
        unreadable: true,
        reason: `the failure packet is corrupted; attribution data names hop ${u.hopIndex + 1}`,
        ...attributed,
      };
    return {
      attemptId,
      status: 'failed',
      failureSourceIndex: -1,
      unreadable: true,
      reason: 'no hop could be named: the failure packet is corrupted',
    };
  }

  /** For diagnostics: the records in flight. */
  debugRecords(): HtlcRecord[] {
    return [...this.records.values()];
  }

  /** Channel id hex of a link (for callers that hold bytes). */
  static channelKey(channelId: Uint8Array): string {
    return bytesToHex(channelId);
  }
}
