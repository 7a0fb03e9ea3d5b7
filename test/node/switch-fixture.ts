/**
 * Four switch nodes in one process (A, B, C, D; channels A–B, A–C, B–D, C–D)
 * on one embedded chain, a final-hop handler that knows some preimages, and
 * routes A → B → D and A → C → D priced by each forwarder's policy.
 */
import { decodeStored } from '../../htlc/switch/circuit-map.js';
import assert from 'node:assert/strict';
import type { BatchOp, KvStore } from '../../db/store.js';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import type { ChannelInfo } from '../../node/channels/manager.js';
import { AmpShards, randomChildIndex } from '../../onion/index.js';
import {
  forwardingFeeMsat,
  type AttemptResult,
  type FinalHopHandler,
  type FinalHtlc,
  type FinalResolution,
  type Route,
} from '../../htlc/switch/index.js';
import { bytesToHex } from '../../wire/bytes.js';
import type { RegistryConfig } from '../../htlc/invoices/index.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { fundNodes, mineElsewhere, newTestChain, TestNode, until, type TestNodeSpec } from './channels-fixture.js';

/** Settles HTLCs whose preimage it knows (checking the amount), holds those asked to, fails the rest. */
export class PreimageHandler implements FinalHopHandler {
  readonly preimages = new Map<string, Uint8Array>();
  readonly expected = new Map<string, bigint>();
  readonly hold = new Set<string>();
  readonly seen: FinalHtlc[] = [];
  readonly held = new Map<string, (r: Exclude<FinalResolution, { action: 'hold' }>) => void>();

  /** A fresh preimage this handler settles for `amountMsat`; returns its payment hash. */
  invoice(amountMsat: bigint, opts: { hold?: boolean } = {}): { paymentHash: Uint8Array; preimage: Uint8Array } {
    const preimage = randomBytes(32);
    const paymentHash = sha256(preimage);
    const h = bytesToHex(paymentHash);
    this.preimages.set(h, preimage);
    this.expected.set(h, amountMsat);
    if (opts.hold === true) this.hold.add(h);
    return { paymentHash, preimage };
  }

  handle(htlc: FinalHtlc, resolve: (r: Exclude<FinalResolution, { action: 'hold' }>) => void): FinalResolution {
    this.seen.push(htlc);
    const h = bytesToHex(htlc.paymentHash);
    const preimage = this.preimages.get(h);
    const want = this.expected.get(h);
    if (preimage === undefined || want === undefined || htlc.amountMsat < want)
      return {
        action: 'fail',
        failure: { name: 'incorrect_or_unknown_payment_details', htlcMsat: htlc.amountMsat, height: htlc.currentHeight },
      };
    if (this.hold.has(h)) {
      this.held.set(h, resolve);
      return { action: 'hold' };
    }
    return { action: 'settle', preimage };
  }
}

export interface Diamond {
  chain: BcoinChainBackend;
  a: TestNode;
  b: TestNode;
  c: TestNode;
  d: TestNode;
  ab: ChannelInfo;
  ac: ChannelInfo;
  bd: ChannelInfo;
  cd: ChannelInfo;
  handler: PreimageHandler;
}

export const CHANNEL_SAT = 2_000_000n;

/** Mines until every listed channel is active on both ends. */
async function activate(chain: BcoinChainBackend, pairs: [TestNode, TestNode, ChannelInfo][]): Promise<void> {
  await mineElsewhere(chain, 1);
  await until(
    () => pairs.every(([x, y, ch]) => x.manager.channel(ch.channelId)?.active === true && y.manager.channel(ch.channelId)?.active === true),
    'channels active',
  );
}

export async function buildDiamond(
  opts: {
    disk?: ('a' | 'b' | 'c' | 'd')[];
    spec?: Partial<TestNodeSpec>;
    registry?: Partial<Record<'a' | 'b' | 'c' | 'd', Partial<RegistryConfig>>>;
    /** each channel's capacity (default CHANNEL_SAT) */
    channelSat?: bigint;
  } = {},
): Promise<Diamond> {
  const chain = await newTestChain();
  const handler = new PreimageHandler();
  const mk = (name: 'a' | 'b' | 'c' | 'd'): TestNode =>
    new TestNode(
      {
        name,
        htlcMode: 'switch',
        disk: opts.disk?.includes(name) ?? false,
        policy: { minimumDepth: 1, ...(opts.spec?.policy ?? {}) },
        manager: { ...(name === 'd' && opts.registry === undefined ? { finalHop: handler } : {}), ...(opts.spec?.manager ?? {}) },
        ...(opts.spec?.payments !== undefined ? { payments: opts.spec.payments } : {}),
        ...(opts.registry !== undefined && opts.registry[name] !== undefined ? { registry: opts.registry[name] } : {}),
      },
      chain,
    );
  const [a, b, c, d] = [mk('a'), mk('b'), mk('c'), mk('d')];
  for (const n of [a, b, c, d]) await n.start();
  await fundNodes(chain, [a, b, c, d]);
  await a.connect(b);
  await a.connect(c);
  await b.connect(d);
  await c.connect(d);
  const sat = opts.channelSat ?? CHANNEL_SAT;
  const ab = await a.manager.openChannel(b.id, sat);
  const ac = await a.manager.openChannel(c.id, sat);
  const bd = await b.manager.openChannel(d.id, sat);
  const cd = await c.manager.openChannel(d.id, sat);
  await activate(chain, [
    [a, b, ab],
    [a, c, ac],
    [b, d, bd],
    [c, d, cd],
  ]);
  return { chain, a, b, c, d, ab, ac, bd, cd, handler };
}

export function scidOf(n: TestNode, channelId: string): bigint {
  const s = n.manager.channelState(channelId).shortChannelId;
  if (s === undefined) throw new Error(`channel ${channelId} has no short_channel_id yet`);
  return s;
}

/** A → mid → D for `amountMsat` delivered, `finalCltvDelta` blocks above the tip at D; priced by mid's policy on its channel to D. */
export function routeVia(g: Diamond, mid: 'b' | 'c', amountMsat: bigint, finalCltvDelta = 40): Route {
  const m = mid === 'b' ? g.b : g.c;
  const inCh = mid === 'b' ? g.ab : g.ac;
  const outCh = mid === 'b' ? g.bd : g.cd;
  const policy = linkPolicy(m, outCh.channelId);
  const finalCltv = g.chain.tip().height + finalCltvDelta;
  const fee = forwardingFeeMsat(policy, amountMsat);
  return {
    totalAmountMsat: amountMsat + fee,
    totalTimeLock: finalCltv + policy.cltvExpiryDelta,
    hops: [
      { pubkey: m.node.nodeId, shortChannelId: scidOf(g.a, inCh.channelId), amountToForwardMsat: amountMsat, outgoingCltvValue: finalCltv },
      {
        pubkey: g.d.node.nodeId,
        shortChannelId: scidOf(m, outCh.channelId),
        amountToForwardMsat: amountMsat,
        outgoingCltvValue: finalCltv,
      },
    ],
  };
}

/** The forwarding policy a node's link applies on one of its channels. */
export function linkPolicy(
  n: TestNode,
  channelId: string,
): { baseFeeMsat: bigint; feeRatePpm: bigint; cltvExpiryDelta: number; htlcMinimumMsat: bigint; htlcMaximumMsat?: bigint } {
  return n.manager.forwardingPolicyOf(channelId);
}

/** Local balance of `n` on `channelId` (its current commitment). */
export function localMsat(n: TestNode, channelId: string): bigint {
  return n.manager.channel(channelId)!.localBalanceMsat;
}

/** Both ends of the four channels, as [node, channel]. */
export function channelEnds(g: Diamond): [TestNode, ChannelInfo][] {
  return [
    [g.a, g.ab],
    [g.b, g.ab],
    [g.a, g.ac],
    [g.c, g.ac],
    [g.b, g.bd],
    [g.d, g.bd],
    [g.c, g.cd],
    [g.d, g.cd],
  ];
}

/** Waits until D holds B's and C's channel_update for their channels to it (what its invoices' route hints need). */
export async function hintsReady(g: Diamond): Promise<void> {
  await until(() => g.d.manager.routingChannels().filter((c) => c.peerPolicy !== undefined).length === 2, "D holds B's and C's policies");
}

/** Waits until no channel of these nodes has an HTLC left on either commitment and their switches are idle. */
export async function settledEverywhere(g: Diamond, ms = 30_000): Promise<void> {
  const chans = channelEnds(g);
  await until(
    () =>
      chans.every(([n, ch]) => {
        const s = n.manager.channelState(ch.channelId);
        return s.localCommit.htlcs.length === 0 && s.remoteCommit.htlcs.length === 0 && s.remoteNextCommit === undefined;
      }) && [g.a, g.b, g.c, g.d].every((n) => n.manager.htlcSwitch!.pendingCount() === 0),
    'every HTLC resolved',
    ms,
  );
}

/**
 * A store that stops writing for good once `trigger` matches a write (the matching write itself goes through or not,
 * as `includeTrigger` says): what a crash between two writes leaves on disk. Writes after that never resolve.
 */
export class CrashingStore implements KvStore {
  private constructor(
    private readonly inner: KvStore,
    private readonly path: string,
    private readonly shared: {
      armed: boolean;
      crashed: boolean;
      trigger: (path: string, ops: readonly BatchOp[]) => boolean;
      includeTrigger: boolean;
      onCrash?: () => void;
    },
  ) {}

  static wrap(
    inner: KvStore,
    trigger: (path: string, ops: readonly BatchOp[]) => boolean,
    includeTrigger: boolean,
    onCrash?: () => void,
  ): CrashingStore {
    return new CrashingStore(inner, '', {
      armed: false,
      crashed: false,
      trigger,
      includeTrigger,
      ...(onCrash !== undefined ? { onCrash } : {}),
    });
  }

  arm(): void {
    this.shared.armed = true;
  }

  get crashed(): boolean {
    return this.shared.crashed;
  }

  private async write(ops: readonly BatchOp[]): Promise<void> {
    const sh = this.shared;
    if (sh.crashed) return new Promise<void>(() => undefined);
    if (sh.armed && sh.trigger(this.path, ops)) {
      sh.crashed = true;
      if (sh.includeTrigger) await this.inner.batch(ops);
      sh.onCrash?.();
      return new Promise<void>(() => undefined);
    }
    return this.inner.batch(ops);
  }

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }
  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.write([{ type: 'put', key, value }]);
  }
  del(key: Uint8Array): Promise<void> {
    return this.write([{ type: 'del', key }]);
  }
  batch(ops: readonly BatchOp[]): Promise<void> {
    return this.write(ops);
  }
  entries(prefix: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]> {
    return this.inner.entries(prefix);
  }
  sublevel(prefix: string): KvStore {
    return new CrashingStore(this.inner.sublevel(prefix), `${this.path}${prefix}/`, this.shared);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The switch's record write of `state` for an HTLC (keys `h/...` under the `switch` sublevel). */
export function isSwitchRecordWrite(path: string, ops: readonly BatchOp[], state: string): boolean {
  if (path !== 'switch/') return false;
  const dec = new TextDecoder();
  return ops.some(
    (op) => op.type === 'put' && dec.decode(op.key).startsWith('h/') && decodeStored<{ state?: string }>(op.value).state === state,
  );
}

/** After a restart: every pair connected again and every channel active on both ends. */
export async function reconnectAll(g: Diamond): Promise<void> {
  const pairs: [TestNode, TestNode][] = [
    [g.a, g.b],
    [g.a, g.c],
    [g.b, g.d],
    [g.c, g.d],
  ];
  for (const [x, y] of pairs) if (x.node.peer(y.id) === undefined) await x.connect(y).catch(() => undefined);
  const chans: [TestNode, TestNode, string][] = [
    [g.a, g.b, g.ab.channelId],
    [g.a, g.c, g.ac.channelId],
    [g.b, g.d, g.bd.channelId],
    [g.c, g.d, g.cd.channelId],
  ];
  await until(
    () => chans.every(([x, y, id]) => x.manager.channel(id)?.active === true && y.manager.channel(id)?.active === true),
    'channels active again',
  );
}

/** Both ends of every channel agree on both balances. */
export function balancesAgree(g: Diamond): void {
  const chans: [TestNode, TestNode, string][] = [
    [g.a, g.b, g.ab.channelId],
    [g.a, g.c, g.ac.channelId],
    [g.b, g.d, g.bd.channelId],
    [g.c, g.d, g.cd.channelId],
  ];
  for (const [x, y, id] of chans) {
    assert.equal(localMsat(x, id), y.manager.channel(id)!.remoteBalanceMsat, `${x.spec.name}/${y.spec.name} agree`);
    assert.equal(localMsat(y, id), x.manager.channel(id)!.remoteBalanceMsat, `${y.spec.name}/${x.spec.name} agree`);
  }
}

/** A sends one AMP shard of `shards` (the last one takes the remaining share) for an AMP payment to D. */
export function sendAmpShard(
  g: Diamond,
  o: {
    paymentAddr: Uint8Array;
    totalMsat: bigint;
    shards: AmpShards;
    path: 'b' | 'c';
    amountMsat: bigint;
    last: boolean;
    corrupt?: boolean;
  },
): Promise<AttemptResult> {
  const child = o.shards.next(randomChildIndex(), { last: o.last });
  const share = o.corrupt === true ? child.share.map((b, j) => (j === 0 ? b ^ 1 : b)) : child.share;
  return g.a.manager.sendToRoute(routeVia(g, o.path, o.amountMsat), child.hash, {
    mpp: { paymentAddr: o.paymentAddr, totalMsat: o.totalMsat },
    amp: { share, setId: o.shards.setId, childIndex: child.childIndex },
  });
}
