/**
 * Two in-process channel endpoints joined by explicit message queues, so a
 * test decides exactly when each message is delivered (or lost). Every
 * message goes through its wire codec on the way. A fake funding wallet
 * builds a real (unspendable-input) funding transaction.
 */
import assert from 'node:assert/strict';
import type { BatchOp, KvStore } from '../../db/store.js';
import { openMemoryStore } from '../../db/store.js';
import { bytesToHex } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { decodeChannelMessage, encodeChannelMessage, type ChannelMessage, type OpenChannel } from '../../wire/channel-messages.js';
import { MTX, Outpoint, Script, buf } from '../../htlc/bolt3/btc.js';
import { p2wpkh } from '../../htlc/bolt3/index.js';
import { ChannelDriver } from '../../htlc/channel/driver.js';
import { channelPubkeys, deriveChannelSecrets } from '../../htlc/channel/keys.js';
import type {
  ChannelHtlc,
  ChannelConfig,
  ChannelEvent,
  ChannelFailure,
  ChannelSecrets,
  ChannelType,
  StepResult,
  ChannelInput,
  SigPool,
} from '../../htlc/channel/types.js';
import type { FundingWallet } from '../../htlc/channel/wallet.js';
import type { BlockEpoch, ConfirmationEvent, ConfirmationRequest, Listener, WatchHandle } from '../../htlc/chain.js';

export type Side = 'a' | 'b';
export const other = (s: Side): Side => (s === 'a' ? 'b' : 'a');

export const CHAIN_HASH = new Uint8Array(32).fill(0x06);

export function defaultConfig(fundingSat: bigint): ChannelConfig {
  const reserve = fundingSat / 100n < 354n ? 354n : fundingSat / 100n;
  return {
    dustLimitSat: 354n,
    maxHtlcValueInFlightMsat: fundingSat * 1000n,
    channelReserveSat: reserve,
    htlcMinimumMsat: 1n,
    toSelfDelay: 144,
    maxAcceptedHtlcs: 483,
  };
}

export class FakeWallet implements FundingWallet {
  broadcasts: Uint8Array[] = [];
  released: Uint8Array[] = [];
  async fundChannel(scriptPubKey: Uint8Array, amountSat: bigint): Promise<{ tx: Uint8Array; outputIndex: number }> {
    const mtx = new MTX();
    mtx.version = 2;
    mtx.addOutpoint(new Outpoint(bytesToHex(randomBytes(32)), 0));
    mtx.addOutput(Script.fromRaw(buf(p2wpkh(new Uint8Array(33).fill(2)))), 12345);
    mtx.addOutput(Script.fromRaw(buf(scriptPubKey)), Number(amountSat));
    const raw = mtx.toTX().toRaw();
    return { tx: new Uint8Array(raw), outputIndex: 1 };
  }
  async broadcast(tx: Uint8Array): Promise<void> {
    this.broadcasts.push(tx);
  }
  async release(tx: Uint8Array): Promise<void> {
    this.released.push(tx);
  }
}

/** A chain that confirms what the test says, when it says. */
export class FakeChain {
  private watches: { txid: string; numConfs: number; listener: Listener<ConfirmationEvent>; cancelled: boolean }[] = [];
  height = 800_000;
  tip(): BlockEpoch {
    return { height: this.height, hash: new Uint8Array(32) };
  }
  onBlock(): WatchHandle {
    return { cancel() {} };
  }
  watchConfirmations(r: ConfirmationRequest, listener: Listener<ConfirmationEvent>): WatchHandle {
    const w = { txid: bytesToHex(r.txid), numConfs: r.numConfs, listener, cancelled: false };
    this.watches.push(w);
    return { cancel: () => void (w.cancelled = true) };
  }
  watchSpend(): WatchHandle {
    return { cancel() {} };
  }
  async broadcast(): Promise<void> {}
  async estimateFeeratePerKw(): Promise<number> {
    return 1000;
  }
  /** Reports `confirmations` for `txid`, mined at (blockHeight, txIndex). */
  async confirm(txid: Uint8Array, confirmations: number, blockHeight: number, txIndex: number, tx: Uint8Array): Promise<void> {
    for (const w of this.watches) {
      if (w.cancelled || w.txid !== bytesToHex(txid)) continue;
      const confirmation = { blockHeight, blockHash: new Uint8Array(32), txIndex, tx };
      await w.listener(
        confirmations >= w.numConfs ? { type: 'confirmed', confirmations, confirmation } : { type: 'update', confirmations, confirmation },
      );
    }
  }
  watching(): number {
    return this.watches.filter((w) => !w.cancelled).length;
  }
}

interface Endpoint {
  side: Side;
  seed: Uint8Array;
  secrets: ChannelSecrets;
  store: KvStore;
  wallet: FakeWallet;
  chain?: FakeChain;
  driver?: ChannelDriver;
  failures: ChannelFailure[];
  events: ChannelEvent[];
  /** Order of effects: 'write' for each store batch, 'send:<type>' for each message. */
  ops: string[];
  /** When set, the event handler crashes on this event type (as if the process died while handling it). */
  crashOn?: ChannelEvent['type'];
  /** Set before the channel opens: the driver's sig pool. */
  sigPool?: SigPool;
}

export interface OpenOptions {
  channelType: ChannelType;
  opener: Side;
  fundingSat?: bigint;
  pushMsat?: bigint;
  feeratePerKw?: number;
  minimumDepth?: number;
  upfront?: { a?: Uint8Array; b?: Uint8Array };
  /** Overrides of what each side asks of the other. */
  config?: Partial<ChannelConfig>;
}

export class Pair {
  ep: Record<Side, Endpoint>;
  /** queue[x] holds messages sent BY x, not yet delivered to the other side. */
  queue: Record<Side, ChannelMessage[]> = { a: [], b: [] };
  delivered = 0;
  /** Types of every message delivered, in order, with the sender. */
  trace: { from: Side; type: number }[] = [];
  preimages = new Map<string, Uint8Array>();
  opener: Side = 'a';
  fundingSat = 0n;

  private constructor(a: Endpoint, b: Endpoint) {
    this.ep = { a, b };
  }

  static async create(): Promise<Pair> {
    const mk = async (side: Side): Promise<Endpoint> => {
      const seed = randomBytes(32);
      const ops: string[] = [];
      const inner = await openMemoryStore();
      const store: KvStore = Object.assign(Object.create(inner) as KvStore, {
        batch: async (b: Parameters<KvStore['batch']>[0]) => {
          await inner.batch(b);
          ops.push('write');
        },
      });
      return { side, seed, secrets: deriveChannelSecrets(seed, 0), store, wallet: new FakeWallet(), failures: [], events: [], ops };
    };
    return new Pair(await mk('a'), await mk('b'));
  }

  adapters(side: Side) {
    const e = this.ep[side];
    return {
      store: e.store,
      secrets: e.secrets,
      shutdownScript: p2wpkh(channelPubkeys(e.secrets).paymentBasepoint),
      wallet: e.wallet,
      ...(e.chain === undefined ? {} : { chain: e.chain }),
      ...(e.sigPool === undefined ? {} : { sigPool: e.sigPool }),
      send: (m: ChannelMessage) => {
        e.ops.push(`send:${m.type}`);
        this.queue[side].push(m);
      },
      sendFailure: (f: ChannelFailure) => {
        e.failures.push(f);
      },
      onEvent: (ev: ChannelEvent) => {
        if (e.crashOn === ev.type) throw new Error(`crash while handling ${ev.type}`);
        e.events.push(ev);
      },
    };
  }

  driver(side: Side): ChannelDriver {
    const d = this.ep[side].driver;
    assert.ok(d !== undefined, `${side} has no channel`);
    return d;
  }

  state(side: Side) {
    return this.driver(side).state;
  }

  /** Opens and confirms a channel; both sides end in phase normal. */
  static async opened(o: OpenOptions): Promise<Pair> {
    const p = await Pair.create();
    await p.open(o);
    await p.confirm();
    return p;
  }

  async open(o: OpenOptions): Promise<void> {
    const fundingSat = o.fundingSat ?? 1_000_000n;
    this.opener = o.opener;
    this.fundingSat = fundingSat;
    const opener = this.ep[o.opener];
    const acceptor = this.ep[other(o.opener)];
    opener.driver = await ChannelDriver.open(this.adapters(o.opener), {
      temporaryChannelId: randomBytes(32),
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      fundingSat,
      pushMsat: o.pushMsat ?? 0n,
      feeratePerKw: o.feeratePerKw ?? 2500,
      channelType: o.channelType,
      config: { ...defaultConfig(fundingSat), ...o.config },
      channelFlags: 0,
      ...(o.upfront?.[o.opener] === undefined ? {} : { upfrontShutdownScript: o.upfront[o.opener] }),
    });
    const open = this.take(o.opener) as OpenChannel;
    assert.equal(open.type, 32);
    const upfrontAcceptor = o.upfront?.[other(o.opener)];
    acceptor.driver =
      (await ChannelDriver.accept(this.adapters(other(o.opener)), roundTrip(open) as OpenChannel, {
        chainHash: CHAIN_HASH,
        keyIndex: 0,
        config: { ...defaultConfig(fundingSat), ...o.config },
        minimumDepth: o.minimumDepth ?? 3,
        ...(upfrontAcceptor === undefined ? {} : { upfrontShutdownScript: upfrontAcceptor }),
      })) ?? undefined;
    assert.ok(acceptor.driver !== undefined, `accept refused: ${JSON.stringify(acceptor.failures)}`);
    await this.deliver(other(o.opener)); // accept_channel → funding_created
    await this.deliver(o.opener); // funding_created → funding_signed
    assert.equal(opener.wallet.broadcasts.length, 0, 'funding broadcast before funding_signed');
    await this.deliver(other(o.opener)); // funding_signed → broadcast
    assert.equal(opener.wallet.broadcasts.length, 1);
  }

  async confirm(depth = 3): Promise<void> {
    await this.driver('a').apply({ type: 'funding_depth', depth, shortChannelId: 0x123456n });
    await this.driver('b').apply({ type: 'funding_depth', depth, shortChannelId: 0x123456n });
    await this.deliverAll();
    assert.equal(this.state('a').phase, 'normal');
    assert.equal(this.state('b').phase, 'normal');
  }

  private take(from: Side): ChannelMessage {
    const m = this.queue[from].shift();
    assert.ok(m !== undefined, `no message queued from ${from}`);
    return m;
  }

  /** Delivers the oldest message sent by `from` to the other side. */
  async deliver(from: Side): Promise<StepResult> {
    const m = roundTrip(this.take(from));
    this.delivered++;
    this.trace.push({ from, type: m.type });
    return this.driver(other(from)).apply({ type: 'message', msg: m });
  }

  async deliverAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit; i++) {
      if (this.queue.a.length > 0) await this.deliver('a');
      else if (this.queue.b.length > 0) await this.deliver('b');
      else return;
    }
    throw new Error('deliverAll did not settle');
  }

  apply(side: Side, input: ChannelInput): Promise<StepResult> {
    return this.driver(side).apply(input);
  }

  async add(side: Side, amountMsat: bigint, cltvExpiry = 700_000): Promise<StepResult> {
    const preimage = randomBytes(32);
    const paymentHash = sha256(preimage);
    this.preimages.set(bytesToHex(paymentHash), preimage);
    return this.apply(side, {
      type: 'add_htlc',
      amountMsat,
      paymentHash,
      cltvExpiry,
      onionRoutingPacket: new Uint8Array(1366).fill(side === 'a' ? 1 : 2),
    });
  }

  /** Incoming HTLCs `side` may settle now: irrevocably committed and not already being removed. */
  settleable(side: Side): ChannelHtlc[] {
    const s = this.state(side);
    return s.localCommit.htlcs.filter(
      (h) =>
        !h.offered &&
        s.remoteCommit.htlcs.some((r) => !r.offered && r.id === h.id) &&
        !s.ourLog.entries.some((e) => e.kind !== 'add' && e.kind !== 'fee' && e.htlcId === h.id),
    );
  }

  async fulfill(side: Side, id: bigint): Promise<StepResult> {
    const h = this.settleable(side).find((x) => x.id === id);
    assert.ok(h !== undefined, `${side} cannot settle ${id}`);
    return this.apply(side, { type: 'fulfill_htlc', id, paymentPreimage: this.preimages.get(bytesToHex(h.paymentHash))! });
  }

  async fail(side: Side, id: bigint): Promise<StepResult> {
    return this.apply(side, { type: 'fail_htlc', id, reason: new Uint8Array([1, 2, 3]) });
  }

  /** Both sides sign and answer until nothing is left to sign or deliver. */
  async settle(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      await this.deliverAll();
      const ra = await this.apply('a', { type: 'sign' });
      const rb = await this.apply('b', { type: 'sign' });
      if (this.queue.a.length === 0 && this.queue.b.length === 0) {
        const idle = (side: Side, r: StepResult) =>
          r.failure?.code === 'ERR_NOTHING_TO_SIGN' ||
          (r.failure?.code === 'ERR_NOT_READY' && (this.state(side).phase === 'negotiating' || this.state(side).phase === 'closed'));
        assert.ok(idle('a', ra) && idle('b', rb), `settle: stuck (${ra.failure?.code}, ${rb.failure?.code})`);
        return;
      }
    }
    throw new Error('settle did not converge');
  }

  async cut(): Promise<void> {
    this.queue.a = [];
    this.queue.b = [];
    await this.apply('a', { type: 'disconnected' });
    await this.apply('b', { type: 'disconnected' });
  }

  async reconnect(): Promise<void> {
    await this.apply('a', { type: 'connected' });
    await this.apply('b', { type: 'connected' });
    await this.deliverAll();
    assert.ok(this.state('a').reestablished && this.state('b').reestablished, 'reestablish did not complete');
  }

  /** Replaces `side`'s driver with one rebuilt from its store alone (as after a restart). */
  async reload(side: Side): Promise<void> {
    const e = this.ep[side];
    const drivers = await ChannelDriver.loadAll(e.store, () => this.adapters(side));
    assert.equal(drivers.length, 1);
    e.driver = drivers[0]!;
  }

  /** Funds are conserved in every commitment either side holds (checked after every step). */
  checkConserved(): void {
    for (const side of ['a', 'b'] as const) {
      const s = this.state(side);
      for (const c of [s.localCommit, s.remoteCommit, ...(s.remoteNextCommit === undefined ? [] : [s.remoteNextCommit])]) {
        const inHtlcs = c.htlcs.reduce((x, h) => x + h.amountMsat, 0n);
        assert.equal(
          c.ourBalanceMsat + c.theirBalanceMsat + inHtlcs,
          s.fundingSat * 1000n,
          `${side}: funds not conserved at height ${c.height}`,
        );
      }
    }
  }

  /** Funds conservation and the mirrored views of both sides, after the queues are drained and all is signed. */
  checkConsistent(): void {
    const a = this.state('a');
    const b = this.state('b');
    for (const s of [a, b]) {
      for (const c of [s.localCommit, s.remoteCommit]) {
        const inHtlcs = c.htlcs.reduce((x, h) => x + h.amountMsat, 0n);
        assert.equal(c.ourBalanceMsat + c.theirBalanceMsat + inHtlcs, s.fundingSat * 1000n, 'funds not conserved');
      }
    }
    assert.equal(a.localCommit.height, b.remoteCommit.height);
    assert.equal(a.localCommit.ourBalanceMsat, b.remoteCommit.theirBalanceMsat);
    assert.equal(a.localCommit.theirBalanceMsat, b.remoteCommit.ourBalanceMsat);
    assert.equal(b.localCommit.ourBalanceMsat, a.remoteCommit.theirBalanceMsat);
    assert.equal(a.localCommit.htlcs.length, b.remoteCommit.htlcs.length);
  }

  balances(side: Side): { ours: bigint; theirs: bigint } {
    const s = this.state(side);
    return { ours: s.localCommit.ourBalanceMsat, theirs: s.localCommit.theirBalanceMsat };
  }
}

export function roundTrip(m: ChannelMessage): ChannelMessage {
  return decodeChannelMessage(m.type, encodeChannelMessage(m));
}

/** A step's writes but for its commitments' (kept under `chanpart/` keys, written only when they change). */
export function withoutParts(writes: readonly BatchOp[]): BatchOp[] {
  return writes.filter((w) => !new TextDecoder().decode(w.key).startsWith('chanpart/'));
}
