/**
 * `ampnode demo`: the best end-to-end run the node can do today, in one
 * process, on loopback and one embedded regtest chain:
 *
 *   chain + two nodes (wallet and channel manager each) → coins mined to
 *   alice → BOLT 8 + init connection → pings → a channel alice → bob
 *   (BOLT 2 opening, BOLT 3 anchors commitments) → minimum_depth and
 *   channel_ready → batches of HTLCs both ways → disconnect, reconnect and
 *   channel_reestablish → cooperative close → the wallets hold exactly the
 *   off-chain balances minus the fees.
 *
 * Both nodes follow the SAME in-memory bcoin regtest chain (the demo mines on
 * it directly), each with its own data directory (node key, wallet seed,
 * LevelDB store) in a scratch directory removed at the end. There is no
 * invoice or payment layer yet: HTLCs are added, fulfilled and failed through
 * the channel manager with preimages the demo holds, and the output says so.
 *
 * The demo is a list of steps sharing one context; each step returns the
 * lines it adds to the summary, records the numbers it checked in
 * `ctx.report` (the test reads them), and throws on anything unexpected.
 * Every wait is bounded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvStore } from '../db/store.js';
import { bytesToHex } from '../wire/bytes.js';
import { randomBytes, sha256 } from '../wire/crypto.js';
import { bcoin } from './chain/bcoin.js';
import { createChainBackend, type BcoinChainBackend } from './chain/index.js';
import type { ChannelInfo, ChannelManager } from './channels/manager.js';
import { parseHostPort } from './config.js';
import type { Logger } from './log.js';
import type { PeerManager } from './peer-manager.js';
import { createNode, type AmpNode } from './builder.js';
import type { Wallet } from './wallet/wallet.js';

/** One node of the demo and what runs beside it. */
export interface DemoParty {
  name: 'alice' | 'bob';
  amp: AmpNode;
  node: PeerManager;
  store: KvStore;
  wallet: Wallet;
  manager: ChannelManager;
}

/** The numbers the steps checked, for tests and for anyone embedding the demo. */
export interface DemoReport {
  chainHeight?: number;
  pings?: number;
  channelType?: string;
  capacitySat?: bigint;
  minimumDepth?: number;
  fundingFeeSat?: bigint;
  shortChannelId?: string;
  /** Wallet totals (confirmed + unconfirmed + locked + immature) after mining, before the channel. */
  walletStartSat?: { alice: bigint; bob: bigint };
  /** HTLCs settled / failed per direction, and the msat that moved. */
  htlcs?: { direction: 'alice→bob' | 'bob→alice'; fulfilled: number; failed: number; movedMsat: bigint }[];
  reestablished?: { alice: number; bob: number; heightsKept: boolean };
  /** Off-chain balances when the close started. */
  closeBalancesMsat?: { alice: bigint; bob: bigint };
  /** Commitment feerate before and after alice's update_fee. */
  commitFeeratePerKw?: { before: number; after: number };
  closingFeeSat?: bigint;
  closingTxid?: string;
  walletBeforeCloseSat?: { alice: bigint; bob: bigint };
  walletFinalSat?: { alice: bigint; bob: bigint };
}

export interface DemoContext {
  logger: Logger;
  /** Scratch directory holding both nodes' data directories; removed at the end. */
  dir: string;
  chain?: BcoinChainBackend;
  alice?: DemoParty;
  bob?: DemoParty;
  channel?: ChannelInfo;
  report: DemoReport;
  /** Free-form slots for later steps. */
  [k: string]: unknown;
}

export interface DemoStep {
  title: string;
  run(ctx: DemoContext): Promise<string[]>;
}

/** A regtest address no demo wallet owns (P2WPKH of key 0x01…01): blocks mined "elsewhere". */
const ELSEWHERE = 'bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5';
/** Segwit activates at height 432 on regtest (BIP9, 144-block windows); coinbases mature after 100. */
const SEGWIT_HEIGHT = 432;
const CAPACITY_SAT = 1_000_000n;
const MINIMUM_DEPTH = 3;
const FORCE_CAPACITY_SAT = 120_000n;
const FORCE_PUSH_SAT = 30_000n;
const FORCE_HTLC_SAT = 10_000n;
const WAIT_MS = 20_000;

function short(id: string): string {
  return `${id.slice(0, 10)}…`;
}

function sat(v: bigint): string {
  return `${v.toLocaleString('en-US')} sat`;
}

function msatAsSat(v: bigint): string {
  return v % 1000n === 0n ? sat(v / 1000n) : `${v.toLocaleString('en-US')} msat`;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`demo step needs ${what} from an earlier step`);
  return v;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/** Polls `pred` every 10 ms; rejects with `what` after `ms`. */
async function until(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the event's arguments the first time `match` holds; rejects after `ms`. */
function nextEvent<A extends unknown[]>(
  target: { on(name: never, f: never): unknown; off(name: never, f: never): unknown },
  name: string,
  match: (...a: A) => boolean,
  what: string,
  ms = WAIT_MS,
): Promise<A> {
  const emitter = target as unknown as {
    on(name: string, f: (...a: A) => void): unknown;
    off(name: string, f: (...a: A) => void): unknown;
  };
  return new Promise<A>((resolve, reject) => {
    const on = (...a: A): void => {
      if (!match(...a)) return;
      clearTimeout(timer);
      emitter.off(name, on);
      resolve(a);
    };
    const timer = setTimeout(() => {
      emitter.off(name, on);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    emitter.on(name, on);
  });
}

/** Everything a wallet holds outside channels. */
function walletTotal(p: DemoParty): bigint {
  const b = p.wallet.balance();
  return b.confirmedSat + b.unconfirmedSat + b.lockedSat + b.immatureSat;
}

async function startParty(ctx: DemoContext, name: 'alice' | 'bob', chain: BcoinChainBackend): Promise<DemoParty> {
  const amp = await createNode({
    datadir: join(ctx.dir, name),
    chain,
    logger: ctx.logger.child({ node: name }),
    policy: { minimumDepth: MINIMUM_DEPTH, timeoutMs: WAIT_MS },
    // the demo drives HTLCs by hand on one channel (the AMP demo, `ampnode demo`, pays invoices)
    htlcMode: 'manual',
  });
  return { name, amp, node: amp.node, store: amp.store, wallet: amp.wallet, manager: amp.manager };
}

async function stopParty(p: DemoParty | undefined): Promise<void> {
  await p?.amp.stop().catch(() => undefined);
}

async function mine(chain: BcoinChainBackend, n: number, address = ELSEWHERE): Promise<void> {
  await chain.generateToAddress(n, address);
  await chain.synced();
}

async function connect(alice: DemoParty, bob: DemoParty): Promise<void> {
  const { host, port } = parseHostPort(need(bob.node.listenAddress, "bob's address"));
  await alice.node.connect(bob.node.nodeIdHex, host, port);
}

/** True once neither side has a commitment in flight on the channel. */
function settled(parties: DemoParty[], channelId: string): boolean {
  return parties.every((p) => {
    const s = p.manager.channelState(channelId);
    return s.remoteNextCommit === undefined && s.localCommit.htlcs.length === 0 && s.remoteCommit.htlcs.length === 0;
  });
}

/** Both sides agree on both commitments' balances and heights. */
function checkMirrored(a: DemoParty, b: DemoParty, channelId: string): void {
  const x = a.manager.channelState(channelId);
  const y = b.manager.channelState(channelId);
  check(
    x.localCommit.ourBalanceMsat === y.localCommit.theirBalanceMsat && x.localCommit.theirBalanceMsat === y.localCommit.ourBalanceMsat,
    'both sides hold the same balances',
  );
  check(
    x.localCommit.height === y.remoteCommit.height && y.localCommit.height === x.remoteCommit.height,
    'both sides hold the same commitment heights',
  );
}

/**
 * Sends `amountsMsat.length` HTLCs from `from` to `to` at once, then the
 * receiver fulfills the first `fulfill` of them (with the preimage) and fails
 * the rest, all at once; resolves when the sender saw every resolution and
 * the commitment dance is over.
 */
async function htlcBatch(
  chain: BcoinChainBackend,
  from: DemoParty,
  to: DemoParty,
  channelId: string,
  amountsMsat: bigint[],
  fulfill: number,
) {
  const heightBefore = from.manager.channelState(channelId).localCommit.height;
  const items = amountsMsat.map((amountMsat) => {
    const preimage = randomBytes(32);
    return { amountMsat, preimage, paymentHash: sha256(preimage), hashHex: '' };
  });
  for (const it of items) it.hashHex = bytesToHex(it.paymentHash);
  const pending = new Map(items.map((it) => [it.hashHex, it]));
  const incomingIds = new Map<string, bigint>();
  const wrongAmounts: string[] = [];
  const onIncoming = (cid: string, h: { id: bigint; amountMsat: bigint; paymentHash: Uint8Array }): void => {
    const key = bytesToHex(h.paymentHash);
    const it = pending.get(key);
    if (cid !== channelId || it === undefined || incomingIds.has(key)) return;
    if (h.amountMsat !== it.amountMsat) wrongAmounts.push(`${h.amountMsat} msat instead of ${it.amountMsat}`);
    incomingIds.set(key, h.id);
  };
  to.manager.on('htlc_incoming', onIncoming);
  let ids: bigint[];
  try {
    const cltvExpiry = chain.tip().height + 100;
    ids = await Promise.all(
      items.map((it) => from.manager.addHtlc(channelId, { amountMsat: it.amountMsat, paymentHash: it.paymentHash, cltvExpiry })),
    );
    await until(() => incomingIds.size === items.length, `${items.length} HTLCs irrevocably committed at ${to.name}`);
  } finally {
    to.manager.off('htlc_incoming', onIncoming);
  }
  check(wrongAmounts.length === 0, `${to.name} received the amounts sent (${wrongAmounts.join(', ')})`);
  // the receiver knows each HTLC under the id the sender gave it
  items.forEach((it, i) => check(incomingIds.get(it.hashHex) === ids[i], `HTLC ${i} arrived under the sender's id`));

  const outcomes = new Map<bigint, 'fulfilled' | 'failed'>();
  const onFulfilled = (cid: string, id: bigint, preimage: Uint8Array): void => {
    if (cid !== channelId) return;
    const i = ids.indexOf(id);
    if (i >= 0 && bytesToHex(sha256(preimage)) === items[i]!.hashHex) outcomes.set(id, 'fulfilled');
  };
  const onFailed = (cid: string, id: bigint): void => {
    if (cid === channelId && ids.includes(id)) outcomes.set(id, 'failed');
  };
  from.manager.on('htlc_fulfilled', onFulfilled);
  from.manager.on('htlc_failed', onFailed);
  try {
    await Promise.all(
      items.map((it, i) =>
        i < fulfill
          ? to.manager.fulfillHtlc(channelId, ids[i]!, it.preimage)
          : to.manager.failHtlc(channelId, ids[i]!, new TextEncoder().encode('no such payment (demo)')),
      ),
    );
    await until(() => outcomes.size === items.length, `${from.name} to see all ${items.length} HTLCs resolved`);
    await until(() => settled([from, to], channelId), 'the commitment dance to settle');
  } finally {
    from.manager.off('htlc_fulfilled', onFulfilled);
    from.manager.off('htlc_failed', onFailed);
  }
  ids.forEach((id, i) =>
    check(outcomes.get(id) === (i < fulfill ? 'fulfilled' : 'failed'), `HTLC ${i} ${i < fulfill ? 'fulfilled' : 'failed'}`),
  );
  checkMirrored(from, to, channelId);
  const movedMsat = items.slice(0, fulfill).reduce((a, it) => a + it.amountMsat, 0n);
  const commitments = from.manager.channelState(channelId).localCommit.height - heightBefore;
  return { fulfilled: fulfill, failed: items.length - fulfill, movedMsat, commitments };
}

function balancesLine(alice: DemoParty, bob: DemoParty, channelId: string): string {
  const a = need(alice.manager.channel(channelId), 'the channel at alice');
  const b = need(bob.manager.channel(channelId), 'the channel at bob');
  check(a.localBalanceMsat === b.remoteBalanceMsat && a.remoteBalanceMsat === b.localBalanceMsat, 'alice and bob agree on the balances');
  return `balances: alice ${msatAsSat(a.localBalanceMsat)}, bob ${msatAsSat(b.localBalanceMsat)} (before the commitment fee and anchors, paid by alice as opener)`;
}

export const DEMO_STEPS: DemoStep[] = [
  {
    title: 'start an embedded regtest chain (bcoin, in memory) shared by both nodes',
    async run(ctx) {
      ctx.chain = await createChainBackend({ onError: (e) => ctx.logger.warn({ err: e }, 'chain backend error') });
      const tip = ctx.chain.tip();
      return [
        `height ${tip.height}, genesis ${short(Buffer.from(tip.hash).reverse().toString('hex'))}; fallback feerate ${await ctx.chain.estimateFeeratePerKw(6)} sat/kw`,
      ];
    },
  },
  {
    title: 'start alice and bob (node key, wallet seed and LevelDB store in fresh data directories; wallet + channel manager each)',
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      ctx.alice = await startParty(ctx, 'alice', chain);
      ctx.bob = await startParty(ctx, 'bob', chain);
      const { alice, bob } = ctx;
      return [
        `alice ${short(alice.node.nodeIdHex)} on ${alice.node.listenAddress}`,
        `bob   ${short(bob.node.nodeIdHex)} on ${bob.node.listenAddress}`,
      ];
    },
  },
  {
    title: `mine 2 coinbases to alice, then blocks elsewhere up to segwit activation (height ${SEGWIT_HEIGHT}) and coinbase maturity`,
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { address } = await alice.wallet.newAddress();
      await mine(chain, 2, address);
      await mine(chain, Math.max(SEGWIT_HEIGHT - chain.tip().height, 100));
      const b = alice.wallet.balance();
      check(b.confirmedSat > CAPACITY_SAT && b.immatureSat === 0n, "alice's coinbases are mature and spendable");
      check(walletTotal(bob) === 0n, 'bob starts with an empty wallet');
      ctx.report.chainHeight = chain.tip().height;
      ctx.report.walletStartSat = { alice: walletTotal(alice), bob: walletTotal(bob) };
      return [
        `height ${chain.tip().height}; alice's wallet (BIP84) ${sat(b.confirmedSat)} spendable at ${address}`,
        `bob's wallet ${sat(walletTotal(bob))}`,
      ];
    },
  },
  {
    title: 'alice connects to bob (BOLT 8 Noise_XK handshake, BOLT 1 init)',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      await connect(alice, bob);
      const info = alice.node.listPeers().find((p) => p.nodeId === bob.node.nodeIdHex);
      const back = bob.node.listPeers().find((p) => p.nodeId === alice.node.nodeIdHex);
      if (info === undefined || back === undefined) throw new Error('alice and bob do not list each other as peers');
      const features = info.features.map((b, i) => `${b} ${info.featureNames[i]}`).join(', ') || 'none';
      return [`bob's features: ${features}`, `bob sees alice as an inbound peer from ${back.address}`];
    },
  },
  {
    title: 'ping/pong: 100 pipelined pings with random pong sizes',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const count = 100;
      let bytes = 0;
      const pings: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const n = (i * 2654435761) % 4097; // spread over 0..4096
        bytes += n;
        pings.push(alice.node.ping(bob.node.nodeIdHex, n));
      }
      await Promise.all(pings);
      const p = need(alice.node.listPeers()[0], "alice's peer");
      ctx.report.pings = p.pongsReceived;
      return [
        `${count} pongs, ${(bytes / 1024).toFixed(0)} KiB in all, every size checked; alice's counters: ${p.pingsSent} sent, ${p.pongsReceived} received`,
      ];
    },
  },
  {
    title: `alice opens a ${sat(CAPACITY_SAT)} channel to bob (BOLT 2 open_channel … funding_signed, anchors commitments)`,
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const before = walletTotal(alice);
      const info = await alice.manager.openChannel(bob.node.nodeIdHex, CAPACITY_SAT, { channelType: 'anchors_zero_fee_htlc' });
      await until(() => bob.manager.channel(info.channelId)?.state === 'awaiting_ready', 'bob to hold the channel');
      await until(() => before - walletTotal(alice) > CAPACITY_SAT, "the funding tx in alice's wallet");
      ctx.channel = info;
      const s = alice.manager.channelState(info.channelId);
      const fundingFee = before - walletTotal(alice) - CAPACITY_SAT;
      check(fundingFee > 0n && fundingFee < 10_000n, `funding fee ${fundingFee} sat`);
      check(bob.manager.channel(info.channelId)!.channelType === info.channelType, 'bob agrees on the channel type');
      ctx.report.channelType = info.channelType;
      ctx.report.capacitySat = info.capacitySat;
      ctx.report.fundingFeeSat = fundingFee;
      ctx.report.minimumDepth = s.minimumDepth;
      return [
        `channel_type ${info.channelType} (option_anchors_zero_fee_htlc_tx + static_remotekey, explicit channel_type echoed by bob)`,
        `channel ${short(info.channelId)}, funding ${info.fundingOutpoint ?? '?'} broadcast, fee ${sat(fundingFee)}, commitment feerate ${s.localCommit.feeratePerKw} sat/kw`,
        `state ${info.state} on both sides; bob asks for minimum_depth ${s.minimumDepth}`,
      ];
    },
  },
  {
    title: `mine ${MINIMUM_DEPTH} blocks: funding at minimum_depth, channel_ready both ways`,
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const ready = (p: DemoParty): boolean => p.manager.channel(channelId)?.state === 'normal';
      await mine(chain, MINIMUM_DEPTH - 1);
      check(!ready(alice) && !ready(bob), `not ready below depth ${MINIMUM_DEPTH}`);
      await mine(chain, 1);
      await until(() => ready(alice) && ready(bob), 'channel_ready on both sides');
      const a = alice.manager.channel(channelId)!;
      const b = bob.manager.channel(channelId)!;
      check(a.shortChannelId !== undefined && a.shortChannelId === b.shortChannelId, 'both sides know the same short_channel_id');
      check(a.active && b.active, 'the channel is active on both sides');
      ctx.report.shortChannelId = a.shortChannelId!;
      return [
        `not ready at depth ${MINIMUM_DEPTH - 1}; at depth ${MINIMUM_DEPTH} (height ${chain.tip().height}) both sent channel_ready: state normal on both sides`,
        `short_channel_id ${a.shortChannelId}`,
        balancesLine(alice, bob, channelId),
      ];
    },
  },
  {
    title: 'HTLCs alice → bob: 20 added at once, bob fulfills 16 and fails 4 (manager-level add/fulfill/fail)',
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const before = alice.manager.channel(channelId)!.localBalanceMsat;
      const amounts = Array.from({ length: 20 }, (_, i) => BigInt(5_000 + 1_000 * i) * 1000n); // 5 000 .. 24 000 sat
      const r = await htlcBatch(chain, alice, bob, channelId, amounts, 16);
      check(
        alice.manager.channel(channelId)!.localBalanceMsat === before - r.movedMsat,
        "alice's balance fell by exactly the fulfilled amounts",
      );
      (ctx.report.htlcs ??= []).push({ direction: 'alice→bob', fulfilled: r.fulfilled, failed: r.failed, movedMsat: r.movedMsat });
      return [
        'no invoice/payment layer yet: the demo holds the preimages and drives the channel managers directly (no onion, no switch)',
        `${r.fulfilled} fulfilled (${msatAsSat(r.movedMsat)} to bob), ${r.failed} failed back, in ${r.commitments} commitment updates`,
        balancesLine(alice, bob, channelId),
      ];
    },
  },
  {
    title: 'HTLCs bob → alice: 8 added at once, alice fulfills 6 and fails 2',
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const before = bob.manager.channel(channelId)!.localBalanceMsat;
      const amounts = Array.from({ length: 8 }, (_, i) => BigInt(3_000 + 500 * i) * 1000n); // 3 000 .. 6 500 sat
      const r = await htlcBatch(chain, bob, alice, channelId, amounts, 6);
      check(
        bob.manager.channel(channelId)!.localBalanceMsat === before - r.movedMsat,
        "bob's balance fell by exactly the fulfilled amounts",
      );
      (ctx.report.htlcs ??= []).push({ direction: 'bob→alice', fulfilled: r.fulfilled, failed: r.failed, movedMsat: r.movedMsat });
      return [
        `${r.fulfilled} fulfilled (${msatAsSat(r.movedMsat)} to alice), ${r.failed} failed back, in ${r.commitments} commitment updates`,
        balancesLine(alice, bob, channelId),
      ];
    },
  },
  {
    title: 'disconnect with an HTLC in flight, reconnect: channel_reestablish on both sides, then the HTLC settles',
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const preimage = randomBytes(32);
      const paymentHash = sha256(preimage);
      const incoming = nextEvent<[string, { id: bigint; paymentHash: Uint8Array }]>(
        bob.manager,
        'htlc_incoming',
        (cid, h) => cid === channelId && bytesToHex(h.paymentHash) === bytesToHex(paymentHash),
        'the in-flight HTLC at bob',
      );
      const id = await alice.manager.addHtlc(channelId, { amountMsat: 10_000_000n, paymentHash, cltvExpiry: chain.tip().height + 100 });
      const [, h] = await incoming;
      check(h.id === id, 'bob holds the HTLC under alice’s id');
      // let the dance finish so that both sides hold the HTLC on both commitments
      await until(
        () =>
          [alice, bob].every((p) => {
            const s = p.manager.channelState(channelId);
            return s.remoteNextCommit === undefined && s.localCommit.htlcs.length === 1 && s.remoteCommit.htlcs.length === 1;
          }),
        'the HTLC on both commitments of both sides',
      );
      const heights = [alice, bob].map((p) => p.manager.channelState(channelId).localCommit.height);

      const gone = nextEvent(bob.node, 'peer_disconnected', () => true, 'bob to see the disconnect');
      check(alice.node.disconnect(bob.node.nodeIdHex), 'alice had bob as a peer');
      await gone;
      await until(
        () => !alice.manager.channel(channelId)!.active && !bob.manager.channel(channelId)!.active,
        'the channel inactive on both sides',
      );

      const counts = { alice: 0, bob: 0 };
      const counters = [alice, bob].map((p) => {
        const f = (i: ChannelInfo): void => {
          if (i.channelId === channelId) counts[p.name]++;
        };
        p.manager.on('channel_reestablished', f);
        return () => p.manager.off('channel_reestablished', f);
      });
      try {
        await connect(alice, bob);
        await until(() => counts.alice > 0 && counts.bob > 0, 'channel_reestablished on both sides');
      } finally {
        for (const off of counters) off();
      }
      const heightsKept = [alice, bob].every((p, i) => p.manager.channelState(channelId).localCommit.height === heights[i]);
      check(heightsKept, 'no commitment lost or invented across the reconnect');
      check(alice.manager.channel(channelId)!.active && bob.manager.channel(channelId)!.active, 'the channel active again');
      ctx.report.reestablished = { ...counts, heightsKept };

      const paid = nextEvent<[string, bigint, Uint8Array]>(
        alice.manager,
        'htlc_fulfilled',
        (cid, hid) => cid === channelId && hid === id,
        'the fulfill at alice',
      );
      await bob.manager.fulfillHtlc(channelId, id, preimage);
      await paid;
      await until(() => settled([alice, bob], channelId), 'the commitment dance to settle');
      checkMirrored(alice, bob, channelId);
      (ctx.report.htlcs ??= []).push({ direction: 'alice→bob', fulfilled: 1, failed: 0, movedMsat: 10_000_000n });
      return [
        `disconnected with HTLC #${id} (10,000 sat) committed; commitment heights alice ${heights[0]}, bob ${heights[1]}`,
        `reconnected: channel_reestablish received by alice ${counts.alice}×, bob ${counts.bob}×; heights unchanged; HTLC fulfilled afterwards`,
        balancesLine(alice, bob, channelId),
      ];
    },
  },
  {
    title: 'alice, the opener, raises the commitment feerate by half (update_fee, then commitment_signed / revoke_and_ack both ways)',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const before = alice.manager.channel(channelId)!.feeratePerKw;
      const target = before + Math.floor(before / 2);
      const sent = await alice.manager.updateChannelFee(channelId, target);
      check(sent === target, 'alice sent the feerate asked for');
      await until(
        () => [alice, bob].every((p) => p.manager.channel(channelId)!.feeratePerKw === target) && settled([alice, bob], channelId),
        'both commitments at the new feerate',
      );
      checkMirrored(alice, bob, channelId);
      ctx.report.commitFeeratePerKw = { before, after: target };
      return [`commitment feerate ${before} → ${target} sat/kw on both sides' commitments`, balancesLine(alice, bob, channelId)];
    },
  },
  {
    title: 'cooperative close started by alice (shutdown, closing_signed fee negotiation)',
    async run(ctx) {
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const balances = { alice: alice.manager.channel(channelId)!.localBalanceMsat, bob: bob.manager.channel(channelId)!.localBalanceMsat };
      ctx.report.walletBeforeCloseSat = { alice: walletTotal(alice), bob: walletTotal(bob) };
      const info = await alice.manager.closeChannel(channelId);
      await until(() => bob.manager.channel(channelId)?.state === 'closed', 'bob to agree on the close');
      check(
        info.closingTxid !== undefined && bob.manager.channel(channelId)!.closingTxid === info.closingTxid,
        'both sides signed the same closing tx',
      );
      const tx = bcoin.TX.fromRaw(Buffer.from(need(alice.manager.channelState(channelId).shutdown?.closingTx, 'the closing tx')));
      const outSat = tx.outputs.reduce((a, o) => a + BigInt(o.value), 0n);
      const feeSat = info.capacitySat - outSat;
      check(feeSat > 0n && feeSat < 5_000n, `closing fee ${feeSat} sat`);
      const outputs = tx.outputs.map((o) => {
        const raw = new Uint8Array(o.script.toRaw());
        const who = alice.wallet.isMine(raw) ? 'alice' : bob.wallet.isMine(raw) ? 'bob' : 'someone else';
        return `${who} ${sat(BigInt(o.value))}`;
      });
      ctx.report.closeBalancesMsat = balances;
      ctx.report.closingFeeSat = feeSat;
      ctx.report.closingTxid = info.closingTxid!;
      return [`closing tx ${short(info.closingTxid!)} broadcast: ${outputs.join(', ')}; fee ${sat(feeSat)} (paid by alice as opener)`];
    },
  },
  {
    title: 'mine 1 block: the close confirms; the wallets hold the off-chain balances minus the fees',
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const { channelId } = need(ctx.channel, 'the channel');
      const r = ctx.report;
      const start = need(r.walletStartSat, 'the starting balances');
      const beforeClose = need(r.walletBeforeCloseSat, 'the balances before the close');
      const off = need(r.closeBalancesMsat, 'the off-chain balances');
      const closingFee = need(r.closingFeeSat, 'the closing fee');
      const fundingFee = need(r.fundingFeeSat, 'the funding fee');
      const spent = [alice, bob].map((p) =>
        nextEvent<[ChannelInfo, string, boolean]>(
          p.manager,
          'funding_spent',
          (i, txid, coop) => i.channelId === channelId && coop && txid === r.closingTxid,
          `${p.name} to see the close confirmed`,
        ),
      );
      await mine(chain, 1);
      await Promise.all(spent);
      const expected = { alice: beforeClose.alice + off.alice / 1000n - closingFee, bob: beforeClose.bob + off.bob / 1000n };
      await until(
        () =>
          alice.wallet.balance().unconfirmedSat === 0n &&
          bob.wallet.balance().unconfirmedSat === 0n &&
          walletTotal(alice) === expected.alice &&
          walletTotal(bob) === expected.bob,
        `wallets to hold alice ${expected.alice} sat, bob ${expected.bob} sat (they hold ${walletTotal(alice)} and ${walletTotal(bob)})`,
      );
      const final = { alice: walletTotal(alice), bob: walletTotal(bob) };
      r.walletFinalSat = final;
      // nothing created or lost: what alice mined is now in the two wallets, less the two on-chain fees
      // (every HTLC here is a whole number of satoshis, so no msat remainder falls into the closing fee)
      check(off.alice % 1000n === 0n && off.bob % 1000n === 0n, 'whole-satoshi balances');
      const conserved = start.alice + start.bob === final.alice + final.bob + fundingFee + closingFee;
      check(conserved, 'start = final + funding fee + closing fee');
      const moved = (r.htlcs ?? []).reduce((a, h) => a + (h.direction === 'alice→bob' ? h.movedMsat : -h.movedMsat), 0n);
      check(off.bob === moved, "bob's off-chain balance is exactly what the fulfilled HTLCs moved");
      return [
        `height ${chain.tip().height}; both managers saw the funding output spent cooperatively; channel closed`,
        `alice: wallet ${sat(beforeClose.alice)} + channel ${msatAsSat(off.alice)} − closing fee ${sat(closingFee)} = ${sat(final.alice)} on chain`,
        `bob:   wallet ${sat(beforeClose.bob)} + channel ${msatAsSat(off.bob)} = ${sat(final.bob)} on chain`,
        `check: alice's mined ${sat(start.alice)} = ${sat(final.alice)} + ${sat(final.bob)} + funding fee ${sat(fundingFee)} + closing fee ${sat(closingFee)}`,
      ];
    },
  },
  {
    title:
      'bob opens a static_remotekey channel to alice (with a push), offers her an HTLC, and force-closes before she settles it; alice sweeps her to_remote at once, claims the HTLC on chain with its preimage, and bob reads the preimage off the chain',
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const alice = need(ctx.alice, 'alice');
      const bob = need(ctx.bob, 'bob');
      const info = await bob.manager.openChannel(alice.node.nodeIdHex, FORCE_CAPACITY_SAT, {
        channelType: 'static_remotekey',
        pushMsat: FORCE_PUSH_SAT * 1000n,
      });
      await mine(chain, MINIMUM_DEPTH);
      await until(
        () => alice.manager.channel(info.channelId)?.state === 'normal' && bob.manager.channel(info.channelId)?.state === 'normal',
        'the second channel ready',
      );
      // a payment in flight: bob offers alice an HTLC; the preimage stays with the demo until after the close
      const preimage = randomBytes(32);
      const incoming = nextEvent<[string, { id: bigint }]>(
        alice.manager,
        'htlc_incoming',
        (cid) => cid === info.channelId,
        'the HTLC at alice',
      );
      const htlcId = await bob.manager.addHtlc(info.channelId, {
        amountMsat: FORCE_HTLC_SAT * 1000n,
        paymentHash: sha256(preimage),
        cltvExpiry: chain.tip().height + 500,
      });
      await incoming;
      await until(
        () =>
          [alice, bob].every(
            (p) =>
              p.manager.channel(info.channelId)!.pendingHtlcs === 1 &&
              p.manager.channelState(info.channelId).remoteNextCommit === undefined,
          ),
        'the HTLC on both commitments',
      );
      const before = { alice: walletTotal(alice), bob: walletTotal(bob) };
      const bobBalanceSat = bob.manager.channel(info.channelId)!.localBalanceMsat / 1000n;
      const swept = nextEvent<[ChannelInfo, string, string, bigint]>(
        alice.manager,
        'sweep_broadcast',
        (i, _t, output) => i.channelId === info.channelId && output === 'to_remote',
        'alice to sweep her to_remote',
      );
      const txid = await bob.manager.forceCloseChannel(info.channelId);
      await mine(chain, 1);
      const [, sweepTxid, , valueSat] = await swept;
      // the preimage reaches alice now: the channel is closed on chain, so she claims the HTLC output with it
      const claimed = nextEvent<[ChannelInfo, string, string, bigint]>(
        alice.manager,
        'sweep_broadcast',
        (i, _t, output) => i.channelId === info.channelId && output === 'htlc_success',
        'alice to claim the HTLC',
      );
      const learnt = nextEvent<[string, bigint, Uint8Array]>(
        bob.manager,
        'htlc_fulfilled',
        (cid, id) => cid === info.channelId && id === htlcId,
        'bob to learn the preimage on chain',
      );
      await alice.manager.fulfillHtlc(info.channelId, htlcId, preimage);
      const [, claimTxid, , claimSat] = await claimed;
      await mine(chain, 1);
      const [, , seen] = await learnt;
      check(bytesToHex(seen) === bytesToHex(preimage), 'bob read the right preimage from alice’s claim');
      await until(
        () => walletTotal(alice) === before.alice + valueSat + claimSat && alice.wallet.balance().unconfirmedSat === 0n,
        "alice's sweeps confirmed in her wallet",
      );
      check(valueSat > FORCE_PUSH_SAT - 2_000n && valueSat < FORCE_PUSH_SAT, `alice swept ${valueSat} sat of ${FORCE_PUSH_SAT}`);
      check(claimSat > FORCE_HTLC_SAT - 2_000n && claimSat < FORCE_HTLC_SAT, `alice claimed ${claimSat} sat of ${FORCE_HTLC_SAT}`);
      ctx['force'] = { channelId: info.channelId, txid, confirmedAt: chain.tip().height - 1, bobBefore: before.bob, bobBalanceSat };
      return [
        `channel ${short(info.channelId)} (${sat(FORCE_CAPACITY_SAT)}, ${sat(FORCE_PUSH_SAT)} pushed to alice) ready; bob offers alice ${sat(FORCE_HTLC_SAT)} and broadcasts his commitment ${short(txid)} with the HTLC in it`,
        `alice sees bob's commitment confirmed and sweeps her to_remote (P2WPKH of her payment basepoint): ${short(sweepTxid)} pays her wallet ${sat(valueSat)} (sweep fee ${sat(FORCE_PUSH_SAT - valueSat)})`,
        `alice then gets the preimage and claims the HTLC output with it: ${short(claimTxid)} pays her wallet ${sat(claimSat)}; bob's node reads the preimage from that claim (htlc_fulfilled)`,
      ];
    },
  },
  {
    title: "mine to bob's to_self_delay: not a block early, bob sweeps his to_local into his wallet",
    async run(ctx) {
      const chain = need(ctx.chain, 'the chain');
      const bob = need(ctx.bob, 'bob');
      const f = need(
        ctx['force'] as { channelId: string; txid: string; confirmedAt: number; bobBefore: bigint; bobBalanceSat: bigint } | undefined,
        'the force close',
      );
      const delay = bob.manager.channel(f.channelId)!.toSelfDelay;
      let sweptAt: number | undefined;
      let swept: { txid: string; valueSat: bigint } | undefined;
      const listener = (i: ChannelInfo, txid: string, output: string, valueSat: bigint): void => {
        if (i.channelId === f.channelId && output === 'to_local') {
          sweptAt = chain.tip().height;
          swept = { txid, valueSat };
        }
      };
      bob.manager.on('sweep_broadcast', listener);
      try {
        // the commitment has 2 confirmations now; one block short of the delay, nothing may happen
        await mine(chain, delay - 3);
        await new Promise((r) => setTimeout(r, 100));
        check(swept === undefined, `no to_local sweep at ${delay - 1} confirmations`);
        await mine(chain, 1);
        await until(() => swept !== undefined, "bob's to_local sweep");
      } finally {
        bob.manager.off('sweep_broadcast', listener);
      }
      const s = need(swept, 'the sweep');
      await mine(chain, 1);
      await until(
        () => walletTotal(bob) === f.bobBefore + s.valueSat && bob.wallet.balance().unconfirmedSat === 0n,
        "bob's sweep confirmed in his wallet",
      );
      const commitFee = f.bobBalanceSat - s.valueSat; // commitment fee (bob opened) + sweep fee
      check(commitFee > 0n && commitFee < 10_000n, `fees ${commitFee} sat`);
      return [
        `to_self_delay ${delay} (set by alice): bob's commitment confirmed at height ${f.confirmedAt}, sweep broadcast at height ${sweptAt} (${delay} confirmations)`,
        `bob: channel ${sat(f.bobBalanceSat)} − commitment fee − sweep fee = ${sat(s.valueSat)} back in his wallet (${short(s.txid)})`,
      ];
    },
  },
];

export interface DemoResult {
  exitCode: number;
  /** Steps that completed. */
  completed: number;
  report: DemoReport;
}

/** Runs the steps, printing each as it completes; cleans everything up. */
export async function runDemoSteps(logger: Logger, out: (line: string) => void, steps: DemoStep[] = DEMO_STEPS): Promise<DemoResult> {
  const ctx: DemoContext = { logger, dir: mkdtempSync(join(tmpdir(), 'ampnode-demo-')), report: {} };
  out('ampnode demo — regtest, two nodes on loopback, one embedded chain');
  const t00 = performance.now();
  let completed = 0;
  try {
    for (const [i, step] of steps.entries()) {
      const t0 = performance.now();
      let lines: string[];
      try {
        lines = await step.run(ctx);
      } catch (e) {
        out(
          `${i + 1}. ${step.title}: FAILED after ${(performance.now() - t0).toFixed(0)} ms: ${e instanceof Error ? e.message : String(e)}`,
        );
        return { exitCode: 1, completed, report: ctx.report };
      }
      out(`${i + 1}. ${step.title} (${(performance.now() - t0).toFixed(0)} ms)`);
      for (const l of lines) out(`   ${l}`);
      completed++;
    }
    out(`done: ${completed} of ${steps.length} steps ok in ${((performance.now() - t00) / 1000).toFixed(1)} s`);
    return { exitCode: 0, completed, report: ctx.report };
  } finally {
    await stopParty(ctx.alice);
    await stopParty(ctx.bob);
    await ctx.chain?.close().catch(() => undefined);
    rmSync(ctx.dir, { recursive: true, force: true });
  }
}

/** Runs the steps, printing each as it completes; returns 0 when all pass, 1 otherwise. */
export async function runDemo(logger: Logger, out: (line: string) => void, steps: DemoStep[] = DEMO_STEPS): Promise<number> {
  return (await runDemoSteps(logger, out, steps)).exitCode;
}
