/**
 * Runs one channel's state machine against its adapters: persists each step's
 * writes, THEN sends its messages, THEN hands out its events (lnd protofsm's
 * order). Inputs are applied one at a time, in arrival order.
 *
 * The driver also performs the effects establishment asks for: it asks the
 * funding wallet for the funding transaction and feeds it back, and broadcasts
 * the funding transaction only after the step that verified funding_signed has
 * been persisted. Failures caused by the peer are passed to `sendFailure`
 * (the peer layer turns them into BOLT 1 `error` / `warning`).
 */
import type { KvStore } from '../../db/store.js';
import type { ChainSource, WatchHandle } from '../chain.js';
import type { ChannelMessage, OpenChannel } from '../../wire/channel-messages.js';
import { loadChannels, PartsOnDisk, writesLanded } from './codec.js';
import { acceptChannel, openChannel, type AcceptParams, type OpenParams } from './establish.js';
import { disconnect, nextSignJobs, step } from './machine.js';
import type { FundingWallet } from './wallet.js';
import {
  DEFAULT_POLICY,
  type ChannelEvent,
  type ChannelFailure,
  type ChannelInput,
  type ChannelPolicy,
  type ChannelSecrets,
  type ChannelState,
  type SigPool,
  type StepContext,
  type VerifyJob,
  type StepResult,
} from './types.js';

export interface ChannelAdapters {
  store: KvStore;
  secrets: ChannelSecrets;
  policy?: ChannelPolicy;
  shutdownScript?: Uint8Array;
  send(msg: ChannelMessage): void | Promise<void>;
  sendFailure?(f: ChannelFailure): void | Promise<void>;
  onEvent?(e: ChannelEvent): void | Promise<void>;
  wallet?: FundingWallet;
  /** Where funding confirmations come from; without it, feed `funding_depth` inputs yourself. */
  chain?: ChainSource;
  /** Makes and checks the signatures of big commitments on other threads; without it, all are done inline. */
  sigPool?: SigPool;
}

/** BOLT 7 short_channel_id: block height (3 bytes), transaction index (3 bytes), output index (2 bytes). */
export function shortChannelId(blockHeight: number, txIndex: number, outputIndex: number): bigint {
  return (BigInt(blockHeight) << 40n) | (BigInt(txIndex) << 16n) | BigInt(outputIndex);
}

export class ChannelDriver {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ctx: StepContext;
  private fundingWatch: WatchHandle | undefined;
  private restoreEvents: ChannelEvent[] = [];
  /** The channel's parts its store holds (written by this driver only). */
  private readonly partsOnDisk = new PartsOnDisk();

  private constructor(
    public state: ChannelState,
    private readonly a: ChannelAdapters,
  ) {
    this.ctx = {
      secrets: a.secrets,
      policy: a.policy ?? DEFAULT_POLICY,
      ...(a.shutdownScript === undefined ? {} : { shutdownScript: a.shutdownScript }),
    };
  }

  /** Opens a channel as the opener: sends open_channel. */
  static async open(a: ChannelAdapters, p: OpenParams): Promise<ChannelDriver> {
    const ctx: StepContext = { secrets: a.secrets, policy: a.policy ?? DEFAULT_POLICY };
    const r = openChannel(ctx, p);
    const d = new ChannelDriver(r.state, a);
    await d.effects(r);
    return d;
  }

  /** Answers an open_channel as the acceptor; null (after reporting the failure) if refused. */
  static async accept(a: ChannelAdapters, m: OpenChannel, p: AcceptParams): Promise<ChannelDriver | null> {
    const ctx: StepContext = { secrets: a.secrets, policy: a.policy ?? DEFAULT_POLICY };
    const r = acceptChannel(ctx, m, p);
    if (r.state === undefined) {
      await a.sendFailure?.(r.failure);
      return null;
    }
    const d = new ChannelDriver(r.state, a);
    await d.effects(r);
    return d;
  }

  /** A channel reloaded from the store: as after a disconnect (unsigned updates forgotten). */
  static restore(a: ChannelAdapters, s: ChannelState): ChannelDriver {
    const r = disconnect(s);
    const d = new ChannelDriver(r.state, a);
    d.restoreEvents = r.events; // adds of ours that no commitment_signed covered: handed out by replay()
    const st = d.state;
    if (st.phase === 'awaiting_ready' && !st.sentChannelReady && st.fundingTxid !== undefined && st.fundingOutputIndex !== undefined)
      d.watchFunding(st.fundingTxid, st.fundingOutputIndex, st.minimumDepth);
    return d;
  }

  /** Stops watching the chain (the channel's state is untouched). */
  stop(): void {
    this.fundingWatch?.cancel();
    this.fundingWatch = undefined;
  }

  private watchFunding(txid: Uint8Array, outputIndex: number, minimumDepth: number): void {
    const chain = this.a.chain;
    if (chain === undefined || this.fundingWatch !== undefined) return;
    this.fundingWatch = chain.watchConfirmations({ txid, numConfs: Math.max(minimumDepth, 1) }, async (e) => {
      if (e.type !== 'confirmed') return;
      const scid = shortChannelId(e.confirmation.blockHeight, e.confirmation.txIndex, outputIndex);
      await this.apply({ type: 'funding_depth', depth: e.confirmations, shortChannelId: scid });
      if (this.state.sentChannelReady) this.stop();
    });
  }

  /** Every stored channel; `secretsFor` gives each one's secrets by key index. */
  static async loadAll(store: KvStore, adapters: (s: ChannelState) => ChannelAdapters): Promise<ChannelDriver[]> {
    return (await loadChannels(store)).map((s) => ChannelDriver.restore(adapters(s), s));
  }

  /** Applies one input; resolves with the step's result once its writes, messages and events are done. */
  apply(input: ChannelInput): Promise<StepResult> {
    const run = this.queue.then(() => this.applyNow(input));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(input: ChannelInput): Promise<StepResult> {
    const pool = this.a.sigPool;
    let r: StepResult;
    if (pool !== undefined && input.type === 'sign') r = await this.signWithPool(pool);
    else if (
      pool !== undefined &&
      input.type === 'message' &&
      input.msg.type === 132 &&
      input.msg.htlcSignatures.length + 1 >= pool.minBatch
    )
      r = await this.verifyWithPool(pool, input);
    else r = step(this.ctx, this.state, input);
    await this.effects(r);
    return r;
  }

  /** A `sign` step whose signatures the pool made; the same step inline when the batch is small or nothing is to sign. */
  private async signWithPool(pool: SigPool): Promise<StepResult> {
    const s = this.state;
    const jobs = nextSignJobs(this.ctx, s);
    if (jobs === undefined || jobs.length < pool.minBatch) return step(this.ctx, s, { type: 'sign' });
    const sigs = await pool.sign(jobs);
    // the queue holds every other input of this channel meanwhile, so the state signed is still the state
    const presigned = { state: s, signature: sigs[0]!, htlcSignatures: sigs.slice(1) };
    return step({ ...this.ctx, presigned }, s, { type: 'sign' });
  }

  /**
   * A commitment_signed checked by the pool: the step runs with every signature taken as good while noting them, and
   * its result is kept only if the pool finds them all good; else the step runs again checking inline, which
   * refuses the message exactly as it would have.
   */
  private async verifyWithPool(pool: SigPool, input: ChannelInput): Promise<StepResult> {
    const s = this.state;
    const noted: VerifyJob[] = [];
    const verify = (sig: Uint8Array, digest: Uint8Array, pub: Uint8Array): boolean => (noted.push({ sig, digest, pub }), true);
    const r = step({ ...this.ctx, verify }, s, input);
    if (noted.length === 0 || (r.failure === undefined && (await pool.verify(noted)))) return r;
    return step(this.ctx, s, input);
  }

  private async effects(r: StepResult): Promise<void> {
    if (r.failure !== undefined) {
      if (r.failure.level !== 'local') await this.a.sendFailure?.(r.failure);
      // a refused step changes nothing, but may report what it found (data_loss: the peer proved our state is old)
      for (const e of r.events) await this.a.onEvent?.(e);
      return;
    }
    if (r.writes.length > 0) {
      const writes = this.partsOnDisk.needed(r.writes);
      await this.a.store.batch(writes);
      writesLanded(writes);
      this.partsOnDisk.landed(writes);
    }
    this.state = r.state;
    for (const m of r.send) await this.a.send(m);
    const handled: ChannelEvent[] = [];
    for (const e of r.events) {
      if (e.type === 'funding_needed' && this.a.wallet !== undefined) {
        const f = await this.a.wallet.fundChannel(e.scriptPubKey, e.amountSat, e.feeratePerKw);
        const r2 = step(this.ctx, this.state, { type: 'funding_tx', tx: f.tx, outputIndex: f.outputIndex });
        if (r2.failure !== undefined) await this.a.wallet.release(f.tx);
        await this.effects(r2);
      } else if (e.type === 'broadcast_funding' && this.a.wallet !== undefined) {
        await this.a.wallet.broadcast(e.tx);
      } else if (e.type === 'release_funding' && this.a.wallet !== undefined) {
        await this.a.wallet.release(e.tx);
      } else if (e.type === 'watch_funding') {
        this.watchFunding(e.txid, e.outputIndex, e.minimumDepth);
      }
      await this.a.onEvent?.(e);
      if (e.type === 'htlc_incoming' || e.type === 'htlc_fulfilled' || e.type === 'htlc_failed') handled.push(e);
    }
    if (handled.length > 0) this.state = step(this.ctx, this.state, { type: 'events_handled', events: handled }).state;
  }

  /**
   * Hands out again the HTLC events a previous run persisted but may not have
   * finished handling, and `htlc_unsent` for our adds the restart forgot
   * (call after `restore`, once `onEvent` is ready).
   */
  replay(): Promise<void> {
    const run = this.queue.then(async () => {
      const forgotten = this.restoreEvents;
      this.restoreEvents = [];
      for (const e of forgotten) await this.a.onEvent?.(e);
      const pending = this.state.outbox ?? [];
      for (const e of pending) await this.a.onEvent?.(e);
      if (pending.length > 0) this.state = step(this.ctx, this.state, { type: 'events_handled', events: pending }).state;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
