/**
 * The chain arbitrator (lnd's contractcourt, in small): what happens once a
 * channel's funding output is spent by a commitment transaction, ours or the
 * peer's. It sweeps our outputs into the wallet (to_local after its delay,
 * to_remote at once), resolves HTLC outputs as BOLT 5 says (claims with a
 * preimage, timeouts at cltv_expiry, our second-stage transactions and their
 * delayed outputs, funded by the wallet on anchor channels), reports the
 * HTLCs we offered as settled from what the chain shows, and answers a
 * revoked commitment with justice on every output it can take. Everything is
 * planned again from the channel state when the funding spend is reported
 * after a restart; a transaction already made is simply refused by the chain.
 *
 * The channel manager owns the channels and hands each one in; the
 * arbitrator reports back through `hooks` (sweeps, settled HTLCs, failures).
 */
import type { KvStore } from '../../db/store.js';
import type { ChainSource, WatchHandle } from '../../htlc/chain.js';
import { loadRevokedHtlcs, pruneRevokedHtlcs } from '../../htlc/channel/codec.js';
import { deriveChannelSecrets } from '../../htlc/channel/keys.js';
import type { ChannelState } from '../../htlc/channel/types.js';
import {
  justiceSweep,
  knownPreimages,
  localCommitmentTxid,
  localSecondStage,
  offeredHtlcOutputs,
  preimageFromWitness,
  remoteHtlcClaims,
  revokedHtlcSweeps,
  sweepRevokedSecondLevel,
  toLocalSweep,
  toRemoteSweep,
  type SecondStage,
} from '../../htlc/channel/unilateral.js';
import { bytesToHex, equalBytes } from '../../wire/bytes.js';
import { bcoin } from '../chain/bcoin.js';
import type { Logger } from '../log.js';
import type { Wallet } from '../wallet/wallet.js';
import { buf, displayHex, txidOf } from './tx.js';

/**
 * `to_local`, `to_remote`: our main outputs; `justice`: an output of a revoked commitment of theirs (or of a
 * second-stage transaction spending one) taken with the revocation key; `htlc_success` / `htlc_timeout`: an HTLC
 * output claimed with its preimage, or taken back after its cltv_expiry (from their commitment straight into the
 * wallet; from ours, the second-stage transaction); `htlc_delayed`: the output of such a second-stage transaction
 * of ours, swept after to_self_delay.
 */
export type SweptOutput = 'to_local' | 'to_remote' | 'justice' | 'htlc_success' | 'htlc_timeout' | 'htlc_delayed';

/** How many blocks in a row a second-stage HTLC transaction is tried before giving up. */
const SECOND_STAGE_ATTEMPTS = 6;

/** What the arbitrator needs of a channel (the manager's channel record has it). */
export interface ArbitratedChannel {
  readonly keyIndex: number;
  /** The channel's store: its revocation log is there. */
  readonly store: KvStore;
  readonly driver: { readonly state: ChannelState };
  /** Waits for our commitment's CSV delay before sweeping to_local. */
  sweepWatch?: WatchHandle;
  /** HTLC claims waiting for their height, spends being watched, delayed sweeps of our second-stage transactions. */
  htlcWatches?: WatchHandle[];
  /** The commitment of theirs that spent the funding output, once seen (to claim HTLCs whose preimage comes later). */
  theirCommitmentTx?: Uint8Array;
  /** Our commitment's txid once it spent the funding output (for HTLC-success transactions whose preimage comes later). */
  ourCommitmentTxid?: Uint8Array;
}

export interface ArbitratorHooks<C> {
  /** A sweep (or a second-stage transaction) of ours was broadcast; `sweepTxid` in display order. */
  swept(chan: C, sweepTxid: string, output: SweptOutput, valueSat: bigint): void;
  /** An HTLC we offered was settled on chain: by the peer with `preimage`, or taken back by us (null). */
  htlcSettled(chan: C, htlcId: bigint, preimage: Uint8Array | null): void;
  /** The channel is over: closed on chain, or breached. */
  failed(chan: C, reason: string, level: 'error' | 'info'): void;
}

export interface ChainArbitratorOptions<C> {
  chain: ChainSource;
  wallet: Wallet;
  /** The node's channel seed (each channel's secrets derive from it and the channel's key index). */
  seed: Uint8Array;
  /** Confirmation target for sweep feerates. */
  feeConfTarget: number;
  log: Logger;
  hooks: ArbitratorHooks<C>;
}

export class ChainArbitrator<C extends ArbitratedChannel> {
  private readonly chain: ChainSource;
  private readonly wallet: Wallet;
  private readonly seed: Uint8Array;
  private readonly feeConfTarget: number;
  private readonly log: Logger;
  private readonly hooks: ArbitratorHooks<C>;

  constructor(o: ChainArbitratorOptions<C>) {
    this.chain = o.chain;
    this.wallet = o.wallet;
    this.seed = o.seed;
    this.feeConfTarget = o.feeConfTarget;
    this.log = o.log;
    this.hooks = o.hooks;
  }

  /**
   * Claims the HTLC outputs of `tx`, a commitment of theirs: ours after their cltv_expiry, theirs with the preimages
   * the channel holds. With `successOnly` (a preimage learnt after the commitment confirmed) only the latter.
   */
  private async claimRemoteHtlcs(chan: C, tx: Uint8Array, successOnly: boolean): Promise<void> {
    const s = chan.driver.state;
    const channelId = bytesToHex(s.channelId);
    const secrets = deriveChannelSecrets(this.seed, chan.keyIndex);
    const feeratePerKw = await this.chain.estimateFeeratePerKw(this.feeConfTarget);
    const dest = (await this.wallet.newAddress()).script;
    const htlcs = remoteHtlcClaims(s, secrets, tx, knownPreimages(s), dest, feeratePerKw);
    if (htlcs === null) {
      if (s.remoteCommit.htlcs.length > 0 || (s.remoteNextCommit?.htlcs.length ?? 0) > 0)
        this.log.warn({ channelId }, 'their commitment on chain is not one we know: its HTLC outputs are not claimed');
      return;
    }
    if (!successOnly)
      for (const u of htlcs.unclaimed)
        this.log.info({ channelId, htlcId: String(u.htlcId), reason: u.reason }, 'HTLC output on their commitment left unclaimed for now');
    for (const c of htlcs.claims) {
      if (successOnly && c.kind !== 'htlc_success') continue;
      this.atHeight(chan, c.validFromHeight, () => this.publishSweep(chan, c.sweep.tx, c.sweep.txid, c.kind, c.sweep.valueSat));
    }
  }

  /** Runs `go` once the chain's tip reaches `height` (a transaction with that locktime is valid from then on). */
  private atHeight(chan: C, height: number, go: () => Promise<void>): void {
    if (this.chain.tip().height >= height) {
      void go();
      return;
    }
    const w: WatchHandle = this.chain.onBlock((ev) => {
      if (ev.type !== 'connected' || ev.height < height) return;
      w.cancel();
      chan.htlcWatches = (chan.htlcWatches ?? []).filter((x) => x !== w);
      void go();
    });
    (chan.htlcWatches ??= []).push(w);
  }

  /** Broadcasts a sweep of ours; a refusal (most likely made already, or the output taken first) is only logged. */
  private async publishSweep(chan: C, raw: Uint8Array, sweepTxid: Uint8Array, output: SweptOutput, valueSat: bigint): Promise<void> {
    try {
      await this.chain.broadcast(buf(raw));
    } catch (err) {
      this.log.debug({ err, output }, 'sweep refused (most likely made already)');
      return;
    }
    const id = displayHex(sweepTxid);
    this.log.info(
      { channelId: bytesToHex(chan.driver.state.channelId), sweepTxid: id, output, valueSat: String(valueSat) },
      'sweep broadcast',
    );
    this.hooks.swept(chan, id, output, valueSat);
  }

  /**
   * A preimage the channel took after a commitment confirmed (a fulfill on a failed channel): the HTLC is claimed
   * with it, from their commitment directly, or from ours through its HTLC-success transaction.
   */
  async preimageLearnt(chan: C, htlcId: bigint): Promise<void> {
    if (chan.theirCommitmentTx !== undefined) await this.claimRemoteHtlcs(chan, chan.theirCommitmentTx, true);
    else if (chan.ourCommitmentTxid !== undefined) this.secondStageFor(chan, chan.ourCommitmentTxid, htlcId);
  }

  private secondStageFor(chan: C, commitmentTxid: Uint8Array, htlcId: bigint): void {
    const s = chan.driver.state;
    const st = localSecondStage(s, deriveChannelSecrets(this.seed, chan.keyIndex), knownPreimages(s)).stages.find(
      (x) => x.kind === 'htlc_success' && x.htlcId === htlcId,
    );
    if (st === undefined) return; // trimmed, or not on our commitment
    this.watchSecondStage(chan, commitmentTxid, st);
    void this.publishSecondStage(chan, st, 0);
  }

  /**
   * Publishes one of our second-stage HTLC transactions: as signed (static_remotekey), or with a fee the wallet
   * adds (anchors). A refusal is tried again at the next blocks (the wallet may lack a confirmed coin, the
   * mempool a parent), a few times: the output may also be the peer's by now.
   */
  private async publishSecondStage(chan: C, st: SecondStage, attempt: number): Promise<void> {
    const channelId = bytesToHex(chan.driver.state.channelId);
    if (st.tx !== undefined) {
      await this.publishSweep(chan, st.tx, txidOf(st.tx), st.kind, st.outputValueSat);
      return;
    }
    const f = st.feeless!;
    try {
      const sent = await this.wallet.payFeeAndBroadcast({
        tx: f.template,
        weight: f.weight,
        feeratePerKw: await this.chain.estimateFeeratePerKw(this.feeConfTarget),
        foreignCoins: [{ valueSat: f.inputValueSat, scriptPubKey: f.inputScriptPubKey }],
        complete: f.complete,
      });
      const id = displayHex(sent.txid);
      this.log.info(
        { channelId, txid: id, output: st.kind, feeSat: String(sent.feeSat) },
        'second-stage HTLC transaction broadcast with a wallet fee input',
      );
      this.hooks.swept(chan, id, st.kind, st.outputValueSat);
    } catch (err) {
      if (attempt >= SECOND_STAGE_ATTEMPTS) {
        this.log.error({ err, channelId, htlcId: String(st.htlcId) }, 'second-stage HTLC transaction not published; giving up');
        return;
      }
      this.log.warn(
        { err, channelId, htlcId: String(st.htlcId), attempt },
        'second-stage HTLC transaction not published; trying again next block',
      );
      this.atHeight(chan, this.chain.tip().height + 1, () => this.publishSecondStage(chan, st, attempt + 1));
    }
  }

  /**
   * Whatever spends the HTLC output `st` claims: when it is our second-stage transaction (fee inputs may differ
   * from the one we built), its output is swept into the wallet after to_self_delay confirmations.
   */
  private watchSecondStage(chan: C, commitmentTxid: Uint8Array, st: SecondStage): void {
    const channelId = bytesToHex(chan.driver.state.channelId);
    const spend = this.chain.watchSpend({ outpoint: { txid: commitmentTxid, outputIndex: st.commitmentOutputIndex } }, (ev) => {
      if (ev.type !== 'spent') return;
      spend.cancel();
      chan.htlcWatches = (chan.htlcWatches ?? []).filter((x) => x !== spend);
      const t = bcoin.TX.fromRaw(buf(ev.detail.spendingTx));
      const out0 = t.outputs[0];
      if (ev.detail.inputIndex !== 0 || out0 === undefined || !equalBytes(new Uint8Array(out0.script.toRaw()), st.outputScriptPubKey)) {
        this.log.info({ channelId, htlcId: String(st.htlcId) }, 'HTLC output of our commitment taken by the peer');
        return;
      }
      const spendingTxid = ev.detail.spendingTxid;
      const conf = this.chain.watchConfirmations({ txid: spendingTxid, numConfs: Math.max(1, st.toSelfDelay) }, (c) => {
        if (c.type !== 'confirmed') return;
        conf.cancel();
        chan.htlcWatches = (chan.htlcWatches ?? []).filter((x) => x !== conf);
        void (async () => {
          const out = st.sweepOutput(
            spendingTxid,
            (await this.wallet.newAddress()).script,
            await this.chain.estimateFeeratePerKw(this.feeConfTarget),
          );
          await this.publishSweep(chan, out.tx, out.txid, 'htlc_delayed', out.valueSat);
        })().catch((err: unknown) => this.log.warn({ err, channelId }, 'sweeping a second-stage output failed'));
      });
      (chan.htlcWatches ??= []).push(conf);
    });
    (chan.htlcWatches ??= []).push(spend);
  }

  /**
   * The HTLCs we offered that a commitment on chain holds are settled by whoever spends their outputs: the peer
   * with the preimage (`htlc_fulfilled`, the preimage read from its witness), or we after the expiry
   * (`htlc_failed`). Reported again after a restart.
   */
  private watchOfferedHtlcs(chan: C, tx: Uint8Array, txid: Uint8Array): void {
    const s = chan.driver.state;
    const channelId = bytesToHex(s.channelId);
    for (const o of offeredHtlcOutputs(s, deriveChannelSecrets(this.seed, chan.keyIndex), tx)) {
      const w = this.chain.watchSpend({ outpoint: { txid, outputIndex: o.outputIndex } }, (ev) => {
        if (ev.type !== 'spent') return;
        w.cancel();
        chan.htlcWatches = (chan.htlcWatches ?? []).filter((x) => x !== w);
        const preimage = preimageFromWitness(ev.detail.spendingTx, ev.detail.inputIndex, o.paymentHash);
        if (preimage !== null) {
          this.log.info({ channelId, htlcId: String(o.htlcId) }, 'the peer claimed our HTLC on chain: preimage learnt');
          this.hooks.htlcSettled(chan, o.htlcId, preimage);
        } else {
          this.log.info({ channelId, htlcId: String(o.htlcId) }, 'our HTLC taken back on chain after its expiry');
          this.hooks.htlcSettled(chan, o.htlcId, null);
        }
      });
      (chan.htlcWatches ??= []).push(w);
    }
  }

  /** No revoked commitment can reach the chain any more: the channel's revocation log goes. */
  async pruneRevocationLog(chan: C): Promise<void> {
    try {
      const n = await pruneRevokedHtlcs(chan.store, chan.driver.state.channelId);
      if (n > 0) this.log.debug({ channelId: bytesToHex(chan.driver.state.channelId), entries: n }, 'revocation log pruned');
    } catch (err) {
      this.log.warn({ err }, 'could not prune the revocation log');
    }
  }

  /**
   * A revoked commitment of theirs on chain: each of its HTLC outputs (the HTLCs come from the revocation log) is
   * ours with the revocation key; one they manage to spend first with a second-stage transaction leaves its output
   * to the same key.
   */
  private async justiceOnHtlcs(
    chan: C,
    tx: Uint8Array,
    txid: Uint8Array,
    commitmentNumber: bigint,
    dest: Uint8Array,
    feeratePerKw: number,
  ): Promise<void> {
    const s = chan.driver.state;
    const channelId = bytesToHex(s.channelId);
    const htlcs = await loadRevokedHtlcs(chan.store, s.channelId, commitmentNumber);
    const rev = revokedHtlcSweeps(s, deriveChannelSecrets(this.seed, chan.keyIndex), tx, htlcs, dest, feeratePerKw);
    if (rev === null) return;
    for (const r of rev.sweeps) {
      const w = this.chain.watchSpend({ outpoint: { txid, outputIndex: r.outputIndex } }, (ev) => {
        if (ev.type !== 'spent') return;
        w.cancel();
        chan.htlcWatches = (chan.htlcWatches ?? []).filter((x) => x !== w);
        // their second stage pays the revocable script at the index of the input it spends with (SIGHASH_SINGLE)
        const i = ev.detail.inputIndex;
        const out = bcoin.TX.fromRaw(buf(ev.detail.spendingTx)).outputs[i];
        if (out === undefined || !equalBytes(new Uint8Array(out.script.toRaw()), rev.secondLevel.scriptPubKey)) return; // our own justice, most likely
        this.log.warn(
          { channelId, htlcId: String(r.htlcId) },
          'the peer spent a revoked HTLC output with a second-stage transaction: taking its output',
        );
        void (async () => {
          const sw = sweepRevokedSecondLevel(
            ev.detail.spendingTx,
            i,
            rev.secondLevel.witnessScript,
            rev.secondLevel.revocationPriv,
            dest,
            await this.chain.estimateFeeratePerKw(this.feeConfTarget),
          );
          await this.publishSweep(chan, sw.tx, sw.txid, 'justice', sw.valueSat);
        })().catch((err: unknown) => this.log.error({ err, channelId }, 'justice on a second-stage output failed'));
      });
      (chan.htlcWatches ??= []).push(w);
      await this.publishSweep(chan, r.sweep.tx, r.sweep.txid, 'justice', r.sweep.valueSat);
    }
  }

  /**
   * The funding output was spent by commitment `tx` (ours or theirs): the channel is failed and what is ours is
   * swept to a fresh wallet address. Our own commitment: to_local after its CSV delay, HTLCs through our
   * second-stage transactions. Theirs: to_remote at once (one confirmation, which the spend already has), HTLCs
   * claimed directly; if it was a commitment they had revoked, justice on to_local and every HTLC output instead.
   * Called again after a restart (the spend watch reports the spend again).
   */
  async onUnilateralClose(chan: C, tx: Uint8Array, txid: Uint8Array): Promise<void> {
    const s = chan.driver.state;
    const secrets = deriveChannelSecrets(this.seed, chan.keyIndex);
    const ours = equalBytes(localCommitmentTxid(s, secrets), txid);
    const feeratePerKw = await this.chain.estimateFeeratePerKw(this.feeConfTarget);
    const dest = (await this.wallet.newAddress()).script;
    const justice = ours ? null : justiceSweep(s, secrets, tx, dest, feeratePerKw);
    if (justice !== null) this.hooks.failed(chan, `breach: the peer broadcast its revoked commitment ${justice.commitmentNumber}`, 'error');
    else {
      this.hooks.failed(chan, ours ? 'force closed by us' : 'closed on chain by the peer', 'info');
      void this.pruneRevocationLog(chan);
    }
    const publish = (raw: Uint8Array, sweepTxid: Uint8Array, output: SweptOutput, valueSat: bigint): Promise<void> =>
      this.publishSweep(chan, raw, sweepTxid, output, valueSat);
    const channelId = bytesToHex(s.channelId);
    const atHeight = (height: number, go: () => Promise<void>): void => this.atHeight(chan, height, go);
    const preimages = knownPreimages(s);
    if (!ours) {
      if (justice?.sweep) await publish(justice.sweep.tx, justice.sweep.txid, 'justice', justice.sweep.valueSat);
      const sw = toRemoteSweep(s, secrets, tx, dest, feeratePerKw);
      if (sw === null) this.log.info({ channelId }, 'their commitment pays nothing to us');
      else await publish(sw.tx, sw.txid, 'to_remote', sw.valueSat);
      if (justice !== null) {
        await this.justiceOnHtlcs(chan, tx, txid, justice.commitmentNumber, dest, feeratePerKw);
        return;
      }
      chan.theirCommitmentTx = tx;
      this.watchOfferedHtlcs(chan, tx, txid);
      await this.claimRemoteHtlcs(chan, tx, false);
      return;
    }
    this.watchOfferedHtlcs(chan, tx, txid);
    chan.ourCommitmentTxid = txid;
    if (s.localCommit.htlcs.length > 0) {
      const second = localSecondStage(s, secrets, preimages);
      for (const u of second.unclaimed)
        this.log.info({ channelId, htlcId: String(u.htlcId), reason: u.reason }, 'HTLC output on our commitment left unclaimed for now');
      for (const st of second.stages) {
        this.watchSecondStage(chan, txid, st);
        atHeight(st.validFromHeight, () => this.publishSecondStage(chan, st, 0));
      }
    }
    const plan = toLocalSweep(s, secrets, dest, feeratePerKw);
    if (plan === null) return; // our balance was below the dust limit
    chan.sweepWatch?.cancel();
    chan.sweepWatch = this.chain.watchConfirmations({ txid, numConfs: Math.max(1, plan.toSelfDelay) }, (ev) => {
      if (ev.type !== 'confirmed') return;
      chan.sweepWatch?.cancel();
      chan.sweepWatch = undefined;
      void publish(plan.sweep.tx, plan.sweep.txid, 'to_local', plan.sweep.valueSat);
    });
  }
}
