/**
 * Pathfinding over a hand-built graph: exact fees and expiries (worked out by hand, and checked hop by hop with the
 * switch's own forwarding checks), the diamond A–B–D / A–C–D with mission control steering away from a failed pair,
 * the limits (fee, CLTV, hops and the onion's 1300 bytes), exclusions, route hints to an unannounced payee, HTLC
 * minimum and maximum, capacity, our own balance (insufficient_balance vs no_route), features; and the graph itself
 * (edges, channel_update).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChannelGraph,
  DEFAULT_ATTEMPT_COST_MSAT,
  HOP_HINT_CAPACITY_SAT,
  InMemoryMissionControl,
  MAX_ROUTE_HOPS,
  PathFinder,
  edgeWeight,
  finalHopSize,
  forwardingFee,
  intermediateHopSize,
  isRouteError,
  nodeIdHex,
  routeHintEdges,
  type DirectedEdge,
  type EdgePolicy,
  type NodeIdHex,
  type ProbabilitySource,
  type RouteError,
  type RouteHintHop,
  type RouteRequest,
} from '../../htlc/router/index.js';
import { checkForward, DEFAULT_SWITCH_CONFIG, forwardingFeeMsat, type Route } from '../../htlc/switch/index.js';
import { buildOnion, encodeHopPayload, HOP_PAYLOADS_LENGTH } from '../../onion/index.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import { Feature, FeatureVector } from '../../wire/features.js';
import { channelUpdateDigest, CHANNEL_FLAG_DIRECTION, CHANNEL_FLAG_DISABLED, type ChannelUpdate } from '../../wire/gossip.js';

const HEIGHT = 800_000;
const FINAL_DELTA = 18;
const NOW = 1_700_000_000_000;

/** Node keys from small private keys, so that onions can be built and updates signed. */
function key(i: number): { priv: Uint8Array; id: NodeIdHex } {
  const priv = new Uint8Array(32);
  priv[31] = i & 0xff;
  priv[30] = (i >> 8) & 0xff;
  return { priv, id: bytesToHex(secp.publicKeyCreate(priv)) };
}

const K = { S: key(1), A: key(2), B: key(3), C: key(4), D: key(5), X: key(6), Y: key(7), T: key(8), P: key(9) };
const S = K.S.id;
const A = K.A.id;
const B = K.B.id;
const C = K.C.id;
const D = K.D.id;
const X = K.X.id;
const Y = K.Y.id;
const T = K.T.id;
const P = K.P.id;

/** lnd's default forwarding policy (base 1000 msat, 1 ppm) with the CLTV delta given. */
function policy(over: Partial<EdgePolicy> = {}): EdgePolicy {
  return { feeBaseMsat: 1000n, feeProportionalMillionths: 1n, cltvExpiryDelta: 40, htlcMinimumMsat: 1000n, ...over };
}

/** A channel both ways: `aPolicy` is what `a` charges towards `b`. Our own side (a === S) gets its balance. */
function channel(
  g: ChannelGraph,
  scid: bigint,
  a: NodeIdHex,
  b: NodeIdHex,
  opts: {
    aPolicy?: Partial<EdgePolicy>;
    bPolicy?: Partial<EdgePolicy>;
    capacitySat?: bigint;
    localBalanceMsat?: bigint;
    freeHtlcSlots?: number;
  } = {},
): void {
  const capacitySat = opts.capacitySat ?? 10_000_000n;
  const ab: DirectedEdge = { shortChannelId: scid, from: a, to: b, capacitySat, policy: policy(opts.aPolicy) };
  if (a === S) {
    ab.localBalanceMsat = opts.localBalanceMsat ?? (capacitySat * 1000n) / 2n;
    ab.freeHtlcSlots = opts.freeHtlcSlots ?? 483;
  }
  g.addEdge(ab);
  g.addEdge({ shortChannelId: scid, from: b, to: a, capacitySat, policy: policy(opts.bPolicy) });
}

function request(over: Partial<RouteRequest> = {}): RouteRequest {
  return {
    source: S,
    target: D,
    amountMsat: 1_000_000n,
    finalCltvDelta: FINAL_DELTA,
    currentHeight: HEIGHT,
    feeLimitMsat: 1_000_000n,
    cltvLimit: 2016,
    routeHints: [],
    ...over,
  };
}

function route(r: Route | RouteError): Route {
  assert.ok(!isRouteError(r), `expected a route, got ${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  return r;
}

function error(r: Route | RouteError): RouteError {
  assert.ok(isRouteError(r), 'expected no route');
  return r;
}

function path(r: Route): NodeIdHex[] {
  return r.hops.map((h) => bytesToHex(h.pubkey));
}

/** S–A, S–C (ours), A–D cheap, C–D dearer: the diamond with S as its top. */
function diamond(opts: { cFee?: bigint; aDelta?: number } = {}): ChannelGraph {
  const g = new ChannelGraph();
  channel(g, 1n, S, A);
  channel(g, 2n, S, C);
  channel(g, 3n, A, D, { aPolicy: { cltvExpiryDelta: opts.aDelta ?? 40 } });
  channel(g, 4n, C, D, { aPolicy: { feeBaseMsat: opts.cFee ?? 5000n } });
  return g;
}

/** Runs the switch's forwarding checks at every intermediate hop of `r`, with each forwarding node's policy from `g`. */
function switchAccepts(g: ChannelGraph, r: Route, source: NodeIdHex): void {
  let inAmount = r.totalAmountMsat;
  let inCltv = r.totalTimeLock;
  let prev = source;
  for (let i = 0; i < r.hops.length - 1; i++) {
    const hop = r.hops[i]!;
    const node = bytesToHex(hop.pubkey);
    const out = g.edge(r.hops[i + 1]!.shortChannelId, node);
    assert.ok(out !== undefined, `hop ${i + 1} forwards over a channel the graph has`);
    assert.ok(g.edge(hop.shortChannelId, prev) !== undefined, `hop ${i + 1} is reached over a channel from ${prev}`);
    const fp = {
      baseFeeMsat: out.policy.feeBaseMsat,
      feeRatePpm: out.policy.feeProportionalMillionths,
      cltvExpiryDelta: out.policy.cltvExpiryDelta,
      htlcMinimumMsat: out.policy.htlcMinimumMsat,
      ...(out.policy.htlcMaximumMsat !== undefined ? { htlcMaximumMsat: out.policy.htlcMaximumMsat } : {}),
    };
    const check = (incomingAmountMsat: bigint, incomingCltvExpiry: number) =>
      checkForward({
        incomingAmountMsat,
        incomingCltvExpiry,
        outgoingAmountMsat: hop.amountToForwardMsat,
        outgoingCltvExpiry: hop.outgoingCltvValue,
        height: HEIGHT,
        policy: fp,
        capacityMsat: out.capacitySat * 1000n,
        config: DEFAULT_SWITCH_CONFIG,
        channelUpdate: () => new Uint8Array(0),
      });
    assert.equal(check(inAmount, inCltv), null, `hop ${i + 1} forwards it`);
    // exact, not generous: one msat or one block less is refused
    assert.equal(check(inAmount - 1n, inCltv)?.name, 'fee_insufficient');
    assert.equal(check(inAmount, inCltv - 1)?.name, 'incorrect_cltv_expiry');
    inAmount = hop.amountToForwardMsat;
    inCltv = hop.outgoingCltvValue;
    prev = node;
  }
  const last = r.hops[r.hops.length - 1]!;
  assert.equal(inAmount, last.amountToForwardMsat, 'the payee receives what the last payload says');
  assert.equal(inCltv, last.outgoingCltvValue);
}

describe('router pathfinding: amounts and expiries', () => {
  it('three hops at base 1000 msat, 1 ppm, delta 40: the amounts and expiries worked out by hand', () => {
    const g = new ChannelGraph();
    // our own channel's policy is not charged: set it anyway to see that
    channel(g, 0x10n, S, X, { aPolicy: { feeBaseMsat: 7777n, cltvExpiryDelta: 99 } });
    channel(g, 0x11n, X, Y);
    channel(g, 0x12n, Y, T);
    const amount = 5_500_000n;
    const r = route(new PathFinder({ graph: g }).findRoute(request({ target: T, amountMsat: amount }), NOW));
    // Y forwards 5 500 000: fee 1000 + floor(5 500 000 · 1 / 10^6) = 1005 → Y receives 5 501 005
    // X forwards 5 501 005: fee 1000 + floor(5.501005) = 1005       → X receives 5 502 010 (= what we send)
    // expiries: the payee 800 000 + 18 = 800 018; Y gets 800 058; X gets 800 098 (our channel adds nothing)
    assert.deepEqual(r, {
      totalAmountMsat: 5_502_010n,
      totalTimeLock: 800_098,
      hops: [
        { pubkey: hexToBytes(X), shortChannelId: 0x10n, amountToForwardMsat: 5_501_005n, outgoingCltvValue: 800_058 },
        { pubkey: hexToBytes(Y), shortChannelId: 0x11n, amountToForwardMsat: 5_500_000n, outgoingCltvValue: 800_018 },
        { pubkey: hexToBytes(T), shortChannelId: 0x12n, amountToForwardMsat: 5_500_000n, outgoingCltvValue: 800_018 },
      ],
    });
    assert.deepEqual(path(r), [X, Y, T]);
    switchAccepts(g, r, S);
  });

  it("the fee formula is the switch's (floor of base + amount · ppm / 10^6) and lnd's weight adds the time-lock risk", () => {
    for (const [amt, base, ppm] of [
      [1n, 0n, 1n],
      [999_999n, 1000n, 1n],
      [1_000_000n, 1000n, 1n],
      [123_456_789n, 21n, 4999n],
    ] as const) {
      const p = policy({ feeBaseMsat: base, feeProportionalMillionths: ppm });
      assert.equal(
        forwardingFee(p, amt),
        forwardingFeeMsat({ baseFeeMsat: base, feeRatePpm: ppm, cltvExpiryDelta: 40, htlcMinimumMsat: 0n }, amt),
      );
    }
    assert.equal(forwardingFee(policy(), 999_999n), 1000n);
    assert.equal(forwardingFee(policy(), 1_000_000n), 1001n);
    // 10^8 msat locked 144 blocks: 10^8 · 144 · 15 / 10^9 = 216 msat of risk on top of the fee
    assert.equal(edgeWeight(100_000_000n, 1100n, 144), 1316n);
    assert.equal(edgeWeight(100_000_000n, 1100n, 0), 1100n);
  });

  it("the route shape is the one the switch builds by hand (A → B → D): payee amount at both hops, total with B's fee", () => {
    const g = diamond();
    const r = route(new PathFinder({ graph: g }).findRoute(request(), NOW));
    const fee = forwardingFee(policy(), 1_000_000n);
    assert.deepEqual(r, {
      totalAmountMsat: 1_000_000n + fee,
      totalTimeLock: HEIGHT + FINAL_DELTA + 40,
      hops: [
        { pubkey: hexToBytes(A), shortChannelId: 1n, amountToForwardMsat: 1_000_000n, outgoingCltvValue: HEIGHT + FINAL_DELTA },
        { pubkey: hexToBytes(D), shortChannelId: 3n, amountToForwardMsat: 1_000_000n, outgoingCltvValue: HEIGHT + FINAL_DELTA },
      ],
    });
    assert.deepEqual(path(r), [A, D]);
    switchAccepts(g, r, S);
  });
});

describe('router pathfinding: choosing between paths', () => {
  it('the diamond: the cheaper side first; after mission control hears it failed, the other side', () => {
    const g = diamond();
    const mc = new InMemoryMissionControl({ selfNode: S });
    const pf = new PathFinder({ graph: g, probability: mc.probability.bind(mc) });
    const first = route(pf.findRoute(request(), NOW));
    assert.deepEqual(path(first), [A, D]);
    const out = mc.reportFailure(
      { route: first, failureSourceIndex: 1, failure: { name: 'temporary_channel_failure', channelUpdate: new Uint8Array(0) } },
      S,
      NOW,
    );
    assert.equal(out.final, false);
    assert.equal(mc.probability(A, D, 1_000_000n, 0n, NOW), 0);
    const second = route(pf.findRoute(request(), NOW + 1));
    assert.deepEqual(path(second), [C, D]);
    assert.equal(second.totalAmountMsat, 1_000_000n + forwardingFee(policy({ feeBaseMsat: 5000n }), 1_000_000n));
    switchAccepts(g, second, S);
    // a smaller amount than the one that failed still goes the cheap way
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 500_000n }), NOW + 1))), [A, D]);
    // The failure fades with a half-life of an hour: A→D's probability is 0.6 · (1 − w) / (1 + w) with w = 2^-hours
    // (the node's own failure counts in its probability too). The 4000 msat A saves outweigh the attempt cost
    // 101 000 / 0.95 · (1/p − 1/0.6) once p > 0.5868: after 6.5 hours, not after 6.
    assert.deepEqual(path(route(pf.findRoute(request(), NOW + 6 * 3_600_000))), [C, D]);
    assert.deepEqual(path(route(pf.findRoute(request(), NOW + 7 * 3_600_000))), [A, D]);
  });

  it('fees against probability: the attempt cost (100 sat + 0.1 %) over the path probability decides', () => {
    // A→D succeeds with probability 0.5, C→D surely. Attempt cost for 1 000 000 msat: 100 000 + 1000 = 101 000 msat.
    // via A: 1001 + 101 000 / 0.5 = 203 001; via C at base 50 000: 50 001 + 101 000 = 151 001 → C;
    // via C at base 150 000: 251 001 → A.
    const prob: ProbabilitySource = (from, to) => (from === A && to === D ? 0.5 : 1);
    assert.equal(DEFAULT_ATTEMPT_COST_MSAT, 100_000n);
    const viaC = route(new PathFinder({ graph: diamond({ cFee: 50_000n }), probability: prob }).findRoute(request(), NOW));
    assert.deepEqual(path(viaC), [C, D]);
    const viaA = route(new PathFinder({ graph: diamond({ cFee: 150_000n }), probability: prob }).findRoute(request(), NOW));
    assert.deepEqual(path(viaA), [A, D]);
    // with no attempt cost, only fees count
    const feesOnly = new PathFinder({
      graph: diamond({ cFee: 50_000n }),
      probability: prob,
      config: { attemptCostMsat: 0n, attemptCostPpm: 0n },
    });
    assert.deepEqual(path(route(feesOnly.findRoute(request(), NOW))), [A, D]);
  });

  it('the time-lock risk: a long delta costs amount · delta · 15 / 10^9 (so a large amount avoids it)', () => {
    // A→D delta 1000 blocks; C→D delta 40 but base 5000. For 10^9 msat: risk 10^9·1000·15/10^9 = 15 000 via A vs
    // 600 via C: 1000+1000+15 000 = 17 000 > 5000+1000+600 = 6600 → C. For 10^6 msat: 1001 + 15 vs 5001 + 0 → A.
    const g = diamond({ aDelta: 1000 });
    const pf = new PathFinder({ graph: g, probability: () => 1 });
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 1_000_000_000n, feeLimitMsat: 10_000_000n }), NOW))), [C, D]);
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 1_000_000n }), NOW))), [A, D]);
  });
});

describe('router pathfinding: limits', () => {
  it("fee limit: exactly the route's fee passes, one msat less is fee_limit", () => {
    const g = new ChannelGraph();
    channel(g, 1n, S, A);
    channel(g, 3n, A, D);
    const pf = new PathFinder({ graph: g });
    const fee = forwardingFee(policy(), 1_000_000n);
    assert.equal(route(pf.findRoute(request({ feeLimitMsat: fee }), NOW)).totalAmountMsat, 1_000_000n + fee);
    const e = error(pf.findRoute(request({ feeLimitMsat: fee - 1n }), NOW));
    assert.equal(e.kind, 'fee_limit');
    assert.match(e.reason, /1001 msat in fees, over the limit of 1000/);
  });

  it('fee limit picks the dearer-in-weight but cheaper-in-fee path when the cheap-weight one costs too much', () => {
    // A→D: base 3000, delta 40; C→D: base 2000 but delta 2000 blocks. For 10^9 msat: via A 4000 + 600 risk,
    // via C 3000 + 30 000 risk → A by weight. A fee limit of 3500 leaves only C.
    const g = new ChannelGraph();
    channel(g, 1n, S, A, { capacitySat: 100_000_000n });
    channel(g, 2n, S, C, { capacitySat: 100_000_000n });
    channel(g, 3n, A, D, { aPolicy: { feeBaseMsat: 3000n }, capacitySat: 100_000_000n });
    channel(g, 4n, C, D, { aPolicy: { feeBaseMsat: 2000n, cltvExpiryDelta: 2000 }, capacitySat: 100_000_000n });
    const pf = new PathFinder({ graph: g, probability: () => 1 });
    const req = request({ amountMsat: 1_000_000_000n, cltvLimit: 5000 });
    assert.deepEqual(path(route(pf.findRoute(req, NOW))), [A, D]);
    const capped = route(pf.findRoute({ ...req, feeLimitMsat: 3500n }, NOW));
    assert.deepEqual(path(capped), [C, D]);
    assert.equal(capped.totalAmountMsat - 1_000_000_000n, 3000n);
  });

  it('CLTV limit: a route whose time lock is over the limit is refused, the one within it taken', () => {
    // via A: delta 144 (total 18 + 144 = 162 blocks); via C: delta 40 (58 blocks) at a higher fee
    const g = diamond({ aDelta: 144 });
    const pf = new PathFinder({ graph: g });
    assert.deepEqual(path(route(pf.findRoute(request(), NOW))), [A, D]);
    const within = route(pf.findRoute(request({ cltvLimit: 161 }), NOW));
    assert.deepEqual(path(within), [C, D]);
    assert.equal(within.totalTimeLock, HEIGHT + 58);
    assert.equal(route(pf.findRoute(request({ cltvLimit: 58 }), NOW)).totalTimeLock, HEIGHT + 58);
    const e = error(pf.findRoute(request({ cltvLimit: 57 }), NOW));
    assert.equal(e.kind, 'no_route');
    assert.match(e.reason, /time lock of \d+ blocks is over the limit of 57/);
  });

  it('max hops: a route of n hops needs maxHops ≥ n; a longer cheap path loses to a short dear one under the limit', () => {
    const g = new ChannelGraph();
    // a line S → N1 → … → N5 → T of six channels at no fee
    const line = [S, ...Array.from({ length: 5 }, (_, i) => key(100 + i).id), T];
    for (let i = 0; i + 1 < line.length; i++)
      channel(g, BigInt(0x100 + i), line[i]!, line[i + 1]!, { aPolicy: { feeBaseMsat: 0n, feeProportionalMillionths: 0n } });
    const pf = new PathFinder({ graph: g, probability: () => 1 });
    assert.equal(route(pf.findRoute(request({ target: T, maxHops: 6 }), NOW)).hops.length, 6);
    const e = error(pf.findRoute(request({ target: T, maxHops: 5 }), NOW));
    assert.equal(e.kind, 'no_route');
    assert.match(e.reason, /6 hops, over the limit of 5/);
    // a two-hop way at a high fee
    channel(g, 0x200n, S, P);
    channel(g, 0x201n, P, T, { aPolicy: { feeBaseMsat: 50_000n } });
    assert.equal(route(pf.findRoute(request({ target: T }), NOW)).hops.length, 6);
    assert.deepEqual(path(route(pf.findRoute(request({ target: T, maxHops: 5 }), NOW))), [P, T]);
    assert.equal(MAX_ROUTE_HOPS, 27);
    assert.throws(() => pf.findRoute(request({ target: T, maxHops: 28 }), NOW), /max hops must be 1 to 27/);
  });

  it("the onion's 1300 bytes: the payload sizes are the encoder's, and the longest route found still builds as an onion", () => {
    for (const [amt, cltv] of [
      [0n, 0],
      [1n, 1],
      [255n, 256],
      [1_000_000n, 800_000],
      [(1n << 64n) - 1n, 0xffffffff],
    ] as const) {
      const payload = encodeHopPayload({ amountToForwardMsat: amt, outgoingCltvValue: cltv, shortChannelId: 0x123456n });
      assert.equal(intermediateHopSize(amt, cltv), 1 + payload.length + 32);
      assert.equal(finalHopSize(amt, cltv), 1 + encodeHopPayload({ amountToForwardMsat: amt, outgoingCltvValue: cltv }).length + 32);
    }
    // A line of 27 channels at no fee and delta 40 from height 800 000: each forwarding hop's payload is
    // 2+3 + 2+3 + 2+8 = 20 bytes, 53 framed; the payee's 43. 24 hops: 23 · 53 + 43 = 1262 fit; 25 hops: 1315 do not.
    const keys = Array.from({ length: 27 }, (_, i) => key(200 + i));
    const g = new ChannelGraph();
    const nodes = [S, ...keys.map((k) => k.id)];
    for (let i = 0; i + 1 < nodes.length; i++)
      channel(g, BigInt(0x300 + i), nodes[i]!, nodes[i + 1]!, { aPolicy: { feeBaseMsat: 0n, feeProportionalMillionths: 0n } });
    const pf = new PathFinder({ graph: g, probability: () => 1 });
    const reach = (n: number) => pf.findRoute(request({ target: nodes[n]!, cltvLimit: 5000 }), NOW);
    const sizeOf = (r: Route) =>
      r.hops.reduce(
        (sum, h, i) =>
          sum +
          (i + 1 < r.hops.length
            ? intermediateHopSize(h.amountToForwardMsat, h.outgoingCltvValue)
            : finalHopSize(h.amountToForwardMsat, h.outgoingCltvValue)),
        0,
      );
    let longest = 0;
    for (let n = 1; n < nodes.length; n++) {
      const r = reach(n);
      if (isRouteError(r)) break;
      assert.ok(sizeOf(r) <= HOP_PAYLOADS_LENGTH);
      longest = n;
    }
    assert.equal(longest, 24, '24 hops: 23 · 53 + 43 = 1262 bytes; 25 would take 1315');
    const r = route(reach(longest));
    assert.equal(sizeOf(r), 23 * 53 + 43);
    // the same payloads the switch writes, built into an onion
    const payloads = r.hops.map((h, i) =>
      encodeHopPayload({
        amountToForwardMsat: h.amountToForwardMsat,
        outgoingCltvValue: h.outgoingCltvValue,
        ...(i + 1 < r.hops.length ? { shortChannelId: r.hops[i + 1]!.shortChannelId } : {}),
      }),
    );
    const onionHops = r.hops.map((h, i) => ({ pubkey: h.pubkey, payload: payloads[i]! }));
    assert.equal(buildOnion(onionHops, new Uint8Array(32).fill(7), new Uint8Array(32)).packet.length, 1366);
    const over = error(reach(longest + 1));
    assert.equal(over.kind, 'no_route');
    // the final hop's records count too: 60 bytes of custom records push the 24-hop route out
    const withRecords = pf.findRoute(
      request({
        target: nodes[longest]!,
        cltvLimit: 5000,
        finalPayloadRecords: { customRecords: [{ type: 65537n, value: new Uint8Array(60) }] },
      }),
      NOW,
    );
    assert.ok(isRouteError(withRecords));
  });
});

describe('router pathfinding: restrictions', () => {
  it('excluded channels and nodes are not used', () => {
    const g = diamond();
    const pf = new PathFinder({ graph: g });
    assert.deepEqual(path(route(pf.findRoute(request({ excludedChannels: new Set([3n]) }), NOW))), [C, D]);
    assert.deepEqual(path(route(pf.findRoute(request({ excludedNodes: new Set([A]) }), NOW))), [C, D]);
    assert.deepEqual(path(route(pf.findRoute(request({ excludedChannels: new Set([1n]) }), NOW))), [C, D]);
    assert.equal(error(pf.findRoute(request({ excludedNodes: new Set([A, C]) }), NOW)).kind, 'no_route');
  });

  it('outgoing channels and last hop restrict the first and the last channel', () => {
    const g = diamond();
    const pf = new PathFinder({ graph: g });
    assert.deepEqual(path(route(pf.findRoute(request({ outgoingChannels: new Set([2n]) }), NOW))), [C, D]);
    assert.deepEqual(path(route(pf.findRoute(request({ outgoingChannels: new Set() }), NOW))), [A, D]);
    assert.deepEqual(path(route(pf.findRoute(request({ lastHop: C }), NOW))), [C, D]);
    // only C as last hop but only A's channel to start from: none
    assert.equal(error(pf.findRoute(request({ lastHop: C, outgoingChannels: new Set([1n]) }), NOW)).kind, 'no_route');
  });

  it('a disabled edge is not used; nor is our channel without free HTLC slots', () => {
    const g = diamond();
    const pf = new PathFinder({ graph: g });
    assert.ok(g.updatePolicy(3n, A, policy({ disabled: true })));
    assert.deepEqual(path(route(pf.findRoute(request(), NOW))), [C, D]);
    assert.ok(g.updatePolicy(3n, A, policy()));
    assert.ok(g.updateLocalChannel(1n, S, 5_000_000_000n, 0));
    assert.deepEqual(path(route(pf.findRoute(request(), NOW))), [C, D]);
  });

  it('HTLC minimum and maximum are checked against what the edge carries (the fees after it included)', () => {
    const g = new ChannelGraph();
    channel(g, 0x10n, S, X);
    channel(g, 0x11n, X, Y);
    channel(g, 0x12n, Y, T);
    const pf = new PathFinder({ graph: g });
    const req = request({ target: T, amountMsat: 5_500_000n });
    // X→Y carries 5 501 005 (the amount plus Y's fee), not the 5 500 000 the payee gets
    assert.ok(g.updatePolicy(0x11n, X, policy({ htlcMinimumMsat: 5_501_005n })));
    route(pf.findRoute(req, NOW));
    assert.ok(g.updatePolicy(0x11n, X, policy({ htlcMinimumMsat: 5_501_006n })));
    assert.equal(error(pf.findRoute(req, NOW)).kind, 'no_route');
    assert.ok(g.updatePolicy(0x11n, X, policy({ htlcMaximumMsat: 5_501_005n })));
    route(pf.findRoute(req, NOW));
    assert.ok(g.updatePolicy(0x11n, X, policy({ htlcMaximumMsat: 5_501_004n })));
    assert.equal(error(pf.findRoute(req, NOW)).kind, 'no_route');
    // the diamond: a minimum on one side sends small amounts the other way
    const d = diamond();
    assert.ok(d.updatePolicy(3n, A, policy({ htlcMinimumMsat: 2_000_000n })));
    const dpf = new PathFinder({ graph: d });
    assert.deepEqual(path(route(dpf.findRoute(request(), NOW))), [C, D]);
    assert.deepEqual(path(route(dpf.findRoute(request({ amountMsat: 3_000_000n }), NOW))), [A, D]);
  });

  it("capacity: an amount above an edge's capacity cannot use it", () => {
    const g = diamond();
    g.addEdge({ shortChannelId: 3n, from: A, to: D, capacitySat: 1000n, policy: policy() });
    const pf = new PathFinder({ graph: g });
    // 1000 sat = 1 000 000 msat: the payee's amount fits exactly
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 1_000_000n }), NOW))), [A, D]);
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 1_000_001n }), NOW))), [C, D]);
  });

  it('our balance: a channel without enough is skipped; not enough on any one is no_route, not enough in all insufficient_balance', () => {
    const g = new ChannelGraph();
    channel(g, 1n, S, A, { localBalanceMsat: 600_000n });
    channel(g, 2n, S, C, { localBalanceMsat: 500_000n });
    channel(g, 3n, A, D);
    channel(g, 4n, C, D, { aPolicy: { feeBaseMsat: 5000n } });
    const pf = new PathFinder({ graph: g });
    // 1 100 000 msat in all, 600 000 at most on one
    const split = error(pf.findRoute(request({ amountMsat: 1_000_000n }), NOW));
    assert.equal(split.kind, 'no_route');
    assert.match(split.reason, /split/);
    const poor = error(pf.findRoute(request({ amountMsat: 1_100_001n }), NOW));
    assert.equal(poor.kind, 'insufficient_balance');
    // the cheap side lacks the balance for 550 000 + fee, the dear side has it: the dear side is taken
    assert.ok(g.updateLocalChannel(1n, S, 550_000n));
    assert.ok(g.updateLocalChannel(2n, S, 600_000n));
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 550_000n }), NOW))), [C, D]);
    // exactly the amount plus the fee is enough; one msat less is not (and the pre-check passes: no_route)
    const need = 550_000n + forwardingFee(policy(), 550_000n);
    assert.ok(g.updateLocalChannel(1n, S, need));
    assert.deepEqual(path(route(pf.findRoute(request({ amountMsat: 550_000n }), NOW))), [A, D]);
    assert.ok(g.updateLocalChannel(1n, S, need - 1n));
    assert.ok(g.updateLocalChannel(2n, S, 0n));
    assert.equal(error(pf.findRoute(request({ amountMsat: 550_000n }), NOW)).kind, 'no_route');
    // no channels at all
    assert.equal(error(new PathFinder({ graph: new ChannelGraph() }).findRoute(request(), NOW)).kind, 'insufficient_balance');
  });

  it('features: a node requiring an unknown bit is not routed through; a payee without payment_secret gets no MPP', () => {
    const g = diamond();
    g.setNodeFeatures(A, FeatureVector.fromBits([100]).encode());
    const strict = new PathFinder({ graph: g, config: { knownFeatureBits: new Set([Feature.VarOnionOptin, Feature.PaymentSecret]) } });
    assert.deepEqual(path(route(strict.findRoute(request(), NOW))), [C, D]);
    const lax = new PathFinder({ graph: g });
    assert.deepEqual(path(route(lax.findRoute(request(), NOW))), [A, D]);
    const mpp = { mpp: { paymentAddr: new Uint8Array(32), totalMsat: 1_000_000n } };
    const noSecret = FeatureVector.fromBits([Feature.VarOnionOptin + 1]).encode();
    const e = error(lax.findRoute(request({ finalPayloadRecords: mpp, destFeatures: noSecret }), NOW));
    assert.match(e.reason, /payment_secret/);
    const withSecret = FeatureVector.fromBits([Feature.VarOnionOptin + 1, Feature.PaymentSecret + 1, Feature.BasicMpp + 1]).encode();
    route(lax.findRoute(request({ finalPayloadRecords: mpp, destFeatures: withSecret }), NOW));
    // a broken dependency (basic_mpp without payment_secret) in the payee's own features
    assert.match(
      error(lax.findRoute(request({ destFeatures: FeatureVector.fromBits([Feature.BasicMpp + 1]).encode() }), NOW)).reason,
      /dependency/,
    );
  });
});

/** S–A–B in the graph, and a one-hop hint from B (2000 msat + 100 ppm, delta 30) to T, whom the graph does not know. */
function hintedPayee(): {
  g: ChannelGraph;
  hint: RouteHintHop[];
  pf: PathFinder;
} {
  const g = new ChannelGraph();
  channel(g, 1n, S, A);
  channel(g, 5n, A, B);
  const hint = [{ nodeId: hexToBytes(B), shortChannelId: 0x77n, feeBaseMsat: 2000n, feeProportionalMillionths: 100n, cltvExpiryDelta: 30 }];
  return { g, hint, pf: new PathFinder({ graph: g }) };
}

describe('router pathfinding: route hints', () => {
  it("a one-hop hint reaches a payee the graph does not know, with the hint's fee and delta", () => {
    const { g, hint, pf } = hintedPayee();
    assert.equal(error(pf.findRoute(request({ target: T }), NOW)).kind, 'no_route');
    const r = route(pf.findRoute(request({ target: T, amountMsat: 2_000_000n, routeHints: [hint] }), NOW));
    // B forwards 2 000 000 to T: 2000 + 200 = 2200 → B gets 2 002 200; A forwards that: 1000 + 2 = 1002 → 2 003 202
    // expiries: 800 018 at T, 800 048 at B, 800 088 at A
    assert.deepEqual(path(r), [A, B, T]);
    assert.equal(r.totalAmountMsat, 2_003_202n);
    assert.equal(r.totalTimeLock, 800_088);
    assert.deepEqual(
      r.hops.map((h) => [h.shortChannelId, h.amountToForwardMsat, h.outgoingCltvValue]),
      [
        [1n, 2_002_200n, 800_048],
        [5n, 2_000_000n, 800_018],
        [0x77n, 2_000_000n, 800_018],
      ],
    );
    // the hint was not written into the graph
    assert.equal(g.edge(0x77n, B), undefined);
  });

  it("policy overrides (a failure's channel_update) replace a hint's and the graph's policy for that direction only", () => {
    const { g, hint, pf } = hintedPayee();
    const policyOverrides = new Map([
      [`${0x77n}/${B}`, { policy: policy({ feeBaseMsat: 5000n, feeProportionalMillionths: 0n, cltvExpiryDelta: 50 }) }],
      [`5/${A}`, { policy: policy({ feeBaseMsat: 0n, feeProportionalMillionths: 0n, cltvExpiryDelta: 40 }) }],
      [`5/${B}`, { policy: policy({ feeBaseMsat: 99_999n }) }], // the other direction: not on this route
    ]);
    const r = route(pf.findRoute(request({ target: T, amountMsat: 2_000_000n, routeHints: [hint], policyOverrides }), NOW));
    // B charges 5000 now (not the hint's 2200) and A nothing: 2 005 000 from S; expiries 800 018, 800 068 at B, 800 108 at A
    assert.deepEqual(path(r), [A, B, T]);
    assert.equal(r.totalAmountMsat, 2_005_000n);
    assert.equal(r.totalTimeLock, 800_108);
    // the graph itself is untouched
    assert.equal(g.edge(5n, A)!.policy.feeBaseMsat, 1000n);
  });

  it('a two-hop hint through an unknown node; a hint leaving us is ignored; the hint edges are as lnd makes them', () => {
    const g = new ChannelGraph();
    channel(g, 1n, S, A);
    const hint = [
      { nodeId: hexToBytes(A), shortChannelId: 0x80n, feeBaseMsat: 0n, feeProportionalMillionths: 1000n, cltvExpiryDelta: 20 },
      { nodeId: hexToBytes(P), shortChannelId: 0x81n, feeBaseMsat: 10n, feeProportionalMillionths: 0n, cltvExpiryDelta: 10 },
    ];
    const r = route(new PathFinder({ graph: g }).findRoute(request({ target: T, amountMsat: 1_000_000n, routeHints: [hint] }), NOW));
    // P: 10 → 1 000 010; A: floor(1 000 010 · 1000 / 10^6) = 1000 → 1 001 010
    assert.deepEqual(path(r), [A, P, T]);
    assert.equal(r.totalAmountMsat, 1_001_010n);
    assert.equal(r.totalTimeLock, HEIGHT + FINAL_DELTA + 10 + 20);
    const edges = routeHintEdges([hint], T);
    assert.deepEqual(
      edges.map((e) => [e.from, e.to, e.shortChannelId, e.capacitySat, e.policy.htlcMinimumMsat, e.policy.htlcMaximumMsat]),
      [
        [A, P, 0x80n, HOP_HINT_CAPACITY_SAT, 0n, undefined],
        [P, T, 0x81n, HOP_HINT_CAPACITY_SAT, 0n, undefined],
      ],
    );
    // a hint from ourselves is dropped: our channels are in the graph with their balance
    const selfHint = [
      { nodeId: hexToBytes(S), shortChannelId: 0x90n, feeBaseMsat: 0n, feeProportionalMillionths: 0n, cltvExpiryDelta: 10 },
    ];
    assert.equal(routeHintEdges([selfHint], T, S).length, 0);
    assert.equal(error(new PathFinder({ graph: g }).findRoute(request({ target: T, routeHints: [selfHint] }), NOW)).kind, 'no_route');
  });
});

describe('router graph', () => {
  it('adds, updates and removes directed edges; indexes both ways; refuses a channel joining other nodes', () => {
    const g = new ChannelGraph();
    channel(g, 1n, S, A);
    channel(g, 3n, A, D);
    assert.equal(g.edgeCount, 4);
    assert.deepEqual(
      [...g.edgesTo(D)].map((e) => e.from),
      [A],
    );
    assert.deepEqual(
      [...g.edgesFrom(A)].map((e) => e.to),
      [S, D],
    );
    assert.throws(() => g.addEdge({ shortChannelId: 1n, from: S, to: B, capacitySat: 1n, policy: policy() }), /already joins/);
    assert.throws(() => g.addEdge({ shortChannelId: 9n, from: S, to: S, capacitySat: 1n, policy: policy() }), /itself/);
    assert.throws(() => g.addEdge({ shortChannelId: 9n, from: 'zz', to: S, capacitySat: 1n, policy: policy() }), /node id/);
    assert.equal(g.removeEdge(3n, A), 1);
    assert.deepEqual([...g.edgesTo(D)], []);
    assert.equal(g.removeEdge(1n), 2);
    assert.equal(g.edgeCount, 1);
    assert.equal(g.updatePolicy(1n, S, policy()), false);
    assert.equal(nodeIdHex(hexToBytes(S)), S);
  });

  it('applies a signed channel_update: direction from channel_flags, signature of the origin, stale ones refused', () => {
    const g = new ChannelGraph();
    channel(g, 42n, A, B);
    const [n1, n2] = A < B ? [K.A, K.B] : [K.B, K.A];
    const sign = (priv: Uint8Array, u: Omit<ChannelUpdate, 'signature'>): ChannelUpdate => {
      const unsigned = { ...u, signature: new Uint8Array(64) };
      return { ...unsigned, signature: secp.sign(channelUpdateDigest(unsigned), priv) };
    };
    const base = {
      chainHash: new Uint8Array(32),
      shortChannelId: 42n,
      timestamp: 1000,
      messageFlags: 1,
      cltvExpiryDelta: 144,
      htlcMinimumMsat: 1n,
      feeBaseMsat: 10,
      feeProportionalMillionths: 250,
      htlcMaximumMsat: 5_000_000n,
    };
    const fromNode2 = sign(n2.priv, { ...base, channelFlags: CHANNEL_FLAG_DIRECTION });
    const outcome = g.applyChannelUpdate(fromNode2, { expectedOrigin: n2.id });
    assert.ok(outcome.applied);
    assert.deepEqual(g.edge(42n, n2.id)!.policy, {
      feeBaseMsat: 10n,
      feeProportionalMillionths: 250n,
      cltvExpiryDelta: 144,
      htlcMinimumMsat: 1n,
      htlcMaximumMsat: 5_000_000n,
      disabled: false,
    });
    assert.deepEqual(g.applyChannelUpdate(fromNode2), { applied: false, reason: 'stale' });
    // signed by the wrong node for its direction
    const forged = sign(n2.priv, { ...base, timestamp: 2000, channelFlags: 0 });
    assert.deepEqual(g.applyChannelUpdate(forged), { applied: false, reason: 'bad_signature' });
    assert.deepEqual(g.applyChannelUpdate(forged, { expectedOrigin: n2.id }), { applied: false, reason: 'not_origin' });
    const disable = sign(n1.priv, { ...base, timestamp: 2000, channelFlags: CHANNEL_FLAG_DISABLED });
    assert.ok(g.applyChannelUpdate(disable).applied);
    assert.equal(g.edge(42n, n1.id)!.policy.disabled, true);
    assert.deepEqual(g.applyChannelUpdate({ ...disable, shortChannelId: 43n }), { applied: false, reason: 'unknown_channel' });
  });
});
