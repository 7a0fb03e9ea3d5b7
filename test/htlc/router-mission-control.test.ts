/**
 * Mission control alone, with a hand-driven clock: the a-priori estimator's numbers (a failure's decay over 0, 1, 2
 * half-lives, successes, the capacity factor), the failure relax interval, how each kind of failure is read (final
 * hop, intermediate channel and node failures, policy failures with their second chance, unreadable failures,
 * failures of our own) and the bound on remembered pairs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  capacityFactor,
  DEFAULT_MAX_PAIRS,
  DEFAULT_PENALTY_HALF_LIFE_MS,
  InMemoryMissionControl,
  type AttemptFailure,
  type NodeIdHex,
} from '../../htlc/router/index.js';
import type { Route } from '../../htlc/switch/index.js';
import type { FailureMessage } from '../../onion/index.js';
import { hexToBytes } from '../../wire/bytes.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const TINY = 1n;

function id(i: number): NodeIdHex {
  return '02' + i.toString(16).padStart(64, '0');
}

const S = id(1);
const A = id(2);
const B = id(3);
const D = id(4);
const X = id(5);

/**
 * A route from S through `nodes`; each forwarding hop takes 1000 msat and 40 blocks, the payee gets `amountMsat`.
 * As the switch reads it: hop i forwards what hop i+1 receives; the last two hops carry the payee's amount.
 */
function mkRoute(nodes: NodeIdHex[], amountMsat = 1_000_000n): Route {
  const n = nodes.length;
  const hops = nodes.map((node, i) => ({
    pubkey: hexToBytes(node),
    shortChannelId: BigInt(i + 1),
    amountToForwardMsat: amountMsat + 1000n * BigInt(Math.max(0, n - 2 - i)),
    outgoingCltvValue: 800_018 + 40 * Math.max(0, n - 2 - i),
  }));
  return { totalAmountMsat: amountMsat + 1000n * BigInt(n - 1), totalTimeLock: 800_018 + 40 * (n - 1), hops };
}

function fail(route: Route, failureSourceIndex: number, failure?: FailureMessage, unreadable?: boolean): AttemptFailure {
  return { route, failureSourceIndex, ...(failure !== undefined ? { failure } : {}), ...(unreadable !== undefined ? { unreadable } : {}) };
}

const UPDATE = new Uint8Array([1, 2, 3]);
const tempChan: FailureMessage = { name: 'temporary_channel_failure', channelUpdate: UPDATE };

function close(actual: number, expected: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what} ${actual} ≠ ${expected}`);
}

/** The probability for every amount is 0 now: the pair failed for all amounts. */
function deadForAll(mc: InMemoryMissionControl, from: NodeIdHex, to: NodeIdHex, now: number): void {
  assert.equal(mc.probability(from, to, TINY, 0n, now), 0, `${from.slice(-2)}→${to.slice(-2)} fails all amounts`);
  assert.equal(mc.pair(from, to)?.failAmountMsat, 0n);
}

describe('mission control: probabilities', () => {
  it('a failed amount: 0 at once, 0.2 after one half-life, 0.36 after two, back towards 0.6; smaller amounts untouched', () => {
    const mc = new InMemoryMissionControl({ selfNode: S });
    const r = mkRoute([A, B, D]);
    // B (hop 2) could not forward 1 000 000 msat on to D
    const out = mc.reportFailure(fail(r, 2, tempChan), S, T0);
    assert.deepEqual(out, { final: false, channelUpdate: UPDATE, erringNode: B });
    const X_MSAT = r.hops[1]!.amountToForwardMsat;
    assert.equal(X_MSAT, 1_000_000n);
    assert.deepEqual(mc.pair(B, D), { failTimeMs: T0, failAmountMsat: X_MSAT, successAmountMsat: 0n });
    // node probability of B with a failure of weight w: (0.6 · 1 + 0) / (1 + w), the a-priori weight 0.5 counting 1;
    // the pair's: that times (1 − w). w = 1, 1/2, 1/4 after 0, 1, 2 half-lives.
    // (0.6 / 2) · 0 = 0, (0.6 / 1.5) · 0.5 = 0.2, (0.6 / 1.25) · 0.75 = 0.36
    close(mc.probability(B, D, X_MSAT, 0n, T0), 0, 'after 0 half-lives');
    close(mc.probability(B, D, X_MSAT, 0n, T0 + HOUR), 0.2, 'after 1 half-life');
    close(mc.probability(B, D, X_MSAT, 0n, T0 + 2 * HOUR), 0.36, 'after 2 half-lives');
    assert.ok(Math.abs(mc.probability(B, D, X_MSAT, 0n, T0 + 40 * HOUR) - 0.6) < 1e-9);
    // more than the failed amount is as unlikely; less is judged a priori
    close(mc.probability(B, D, 5n * X_MSAT, 0n, T0 + HOUR), 0.2);
    close(mc.probability(B, D, X_MSAT - 1n, 0n, T0), 0.6);
    // the pairs before the failure forwarded it: A→B got 1 001 000 through
    assert.equal(mc.pair(A, B)?.successAmountMsat, 1_001_000n);
    close(mc.probability(A, B, 1_001_000n, 0n, T0), 0.95);
    close(mc.probability(A, B, 1_001_001n, 0n, T0), 0.6);
    // B's other pairs: B's failure lowers its node probability for amounts at or above 1 000 000 (0.6 / (1 + 1))
    close(mc.probability(B, X, X_MSAT, 0n, T0), 0.3);
    close(mc.probability(B, X, X_MSAT - 1n, 0n, T0), 0.6);
    // our own channel is judged by its failures only (0.95 otherwise)
    close(mc.probability(S, A, 10n ** 12n, 0n, T0), 0.95);
  });

  it('the half-life and the a-priori probability are configurable', () => {
    const mc = new InMemoryMissionControl({ penaltyHalfLifeMs: 10 * MINUTE, aprioriHopProbability: 0.8 });
    mc.reportFailure(fail(mkRoute([A, B, D]), 2, tempChan), S, T0);
    close(mc.probability(B, D, 1_000_000n, 0n, T0 + 10 * MINUTE), (0.8 / 1.5) * 0.5);
    close(mc.probability(B, D, 1n, 0n, T0), 0.8);
    assert.equal(DEFAULT_PENALTY_HALF_LIFE_MS, HOUR);
    assert.throws(() => new InMemoryMissionControl({ penaltyHalfLifeMs: 0 }), /half-life/);
    assert.throws(() => new InMemoryMissionControl({ aprioriHopProbability: 1.5 }), /a-priori hop probability/);
    assert.throws(() => new InMemoryMissionControl({ maxPairs: 0 }), /max pairs/);
  });

  it('a success makes amounts up to it likely (0.95); a later failure below it lowers it; a success above a failure raises that', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    mc.reportSuccess(r, S, T0);
    assert.deepEqual(mc.pair(B, D), { successTimeMs: T0, failAmountMsat: 0n, successAmountMsat: 1_000_000n });
    close(mc.probability(B, D, 1_000_000n, 0n, T0), 0.95);
    // above the success: B's node probability mixes in nothing that applies (0.6)
    close(mc.probability(B, D, 1_000_001n, 0n, T0), 0.6);
    // an amount up to a success also raises B's other pairs: (0.6 + 0.95) / 2
    close(mc.probability(B, X, 500_000n, 0n, T0), (0.6 + 0.95) / 2);
    // B→D then fails 800 000: what got through cannot be above it
    mc.reportFailure(fail(mkRoute([A, B, D], 800_000n), 2, tempChan), S, T0 + 1);
    assert.deepEqual(mc.pair(B, D), { successTimeMs: T0, failTimeMs: T0 + 1, failAmountMsat: 800_000n, successAmountMsat: 799_999n });
    // 900 000 gets through later: the failure amount moves above it
    mc.reportSuccess(mkRoute([A, B, D], 900_000n), S, T0 + 2);
    assert.deepEqual(mc.pair(B, D), { successTimeMs: T0 + 2, failTimeMs: T0 + 1, failAmountMsat: 900_001n, successAmountMsat: 900_000n });
    close(mc.probability(B, D, 900_000n, 0n, T0 + 2), 0.95);
    assert.ok(mc.probability(B, D, 900_001n, 0n, T0 + 2) < 1e-6);
  });

  it('a higher failure amount within the relax interval (1 minute) is not believed; after it, it is; a lower one always', () => {
    const mc = new InMemoryMissionControl();
    mc.reportFailure(fail(mkRoute([A, B, D], 1_000_000n), 2, tempChan), S, T0);
    mc.reportFailure(fail(mkRoute([A, B, D], 2_000_000n), 2, tempChan), S, T0 + 30_000);
    assert.deepEqual(mc.pair(B, D), { failTimeMs: T0, failAmountMsat: 1_000_000n, successAmountMsat: 0n });
    mc.reportFailure(fail(mkRoute([A, B, D], 500_000n), 2, tempChan), S, T0 + 40_000);
    assert.deepEqual(mc.pair(B, D), { failTimeMs: T0 + 40_000, failAmountMsat: 500_000n, successAmountMsat: 0n });
    mc.reportFailure(fail(mkRoute([A, B, D], 2_000_000n), 2, tempChan), S, T0 + 40_000 + MINUTE);
    assert.deepEqual(mc.pair(B, D), { failTimeMs: T0 + 40_000 + MINUTE, failAmountMsat: 2_000_000n, successAmountMsat: 0n });
  });

  it('the capacity factor: 1 far below the capacity, 0.75 at 99.99 % of it, 0 above it', () => {
    const cap = 1_000_000_000n;
    assert.ok(capacityFactor(1000n, cap, 0.9999) > 0.999999);
    close(capacityFactor(999_900_000n, cap, 0.9999), 0.75);
    assert.equal(capacityFactor(cap + 1n, cap, 0.9999), 0);
    assert.equal(capacityFactor(cap + 1n, 0n, 0.9999), 1, 'unknown capacity');
    const mc = new InMemoryMissionControl();
    close(mc.probability(A, B, 999_900_000n, cap, T0), 0.6 * 0.75);
  });
});

describe('mission control: reading failures', () => {
  it('from the payee: incorrect_or_unknown_payment_details ends the payment and every pair forwarded it', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    const out = mc.reportFailure(
      fail(r, 3, { name: 'incorrect_or_unknown_payment_details', htlcMsat: 1_000_000n, height: 800_000 }),
      S,
      T0,
    );
    assert.deepEqual(out, { final: true, reason: 'incorrect_payment_details' });
    assert.equal(mc.pair(S, A)?.successAmountMsat, 1_002_000n);
    assert.equal(mc.pair(A, B)?.successAmountMsat, 1_001_000n);
    assert.equal(mc.pair(B, D)?.successAmountMsat, 1_000_000n);
    assert.deepEqual(mc.reportFailure(fail(r, 3, { name: 'final_expiry_too_soon' }), S, T0), {
      final: true,
      reason: 'incorrect_payment_details',
    });
    assert.deepEqual(mc.reportFailure(fail(r, 3, { name: 'incorrect_payment_amount' }), S, T0), {
      final: true,
      reason: 'incorrect_payment_details',
    });
  });

  it('from the payee: mpp_timeout lets the payment go on (lnd); a wrong HTLC amount or expiry blames the last channel', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    assert.deepEqual(mc.reportFailure(fail(r, 3, { name: 'mpp_timeout' }), S, T0), { final: false });
    assert.equal(mc.pair(B, D)?.successAmountMsat, 1_000_000n);
    const out = mc.reportFailure(fail(r, 3, { name: 'final_incorrect_htlc_amount', incomingHtlcAmtMsat: 999_999n }), S, T0 + 1);
    assert.deepEqual(out, { final: false });
    deadForAll(mc, B, D, T0 + 1);
    deadForAll(mc, D, B, T0 + 1);
    // a direct payment: nobody else to blame
    const direct = mkRoute([D]);
    assert.deepEqual(mc.reportFailure(fail(direct, 1, { name: 'final_incorrect_cltv_expiry', cltvExpiry: 1 }), S, T0), {
      final: true,
      reason: 'error',
    });
  });

  it('from the payee, anything else (a node failure, an odd code) ends the payment and blames the payee', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    assert.deepEqual(mc.reportFailure(fail(r, 3, { name: 'temporary_node_failure' }), S, T0), { final: true, reason: 'error' });
    deadForAll(mc, B, D, T0);
    deadForAll(mc, D, B, T0);
    assert.equal(mc.pair(A, B)?.successAmountMsat, 1_001_000n);
  });

  it('temporary_channel_failure at hop i: the pair hop i → hop i+1 fails from that amount up, one way only', () => {
    const mc = new InMemoryMissionControl();
    mc.reportFailure(fail(mkRoute([A, B, D]), 1, tempChan), S, T0);
    assert.equal(mc.pair(A, B)?.failAmountMsat, 1_001_000n);
    assert.equal(mc.pair(B, A), undefined);
    assert.equal(mc.pair(S, A)?.successAmountMsat, 1_002_000n);
    assert.equal(mc.pairCount, 2);
  });

  it('unknown_next_peer / permanent_channel_failure: the channel fails for every amount, both ways', () => {
    const mc = new InMemoryMissionControl();
    assert.deepEqual(mc.reportFailure(fail(mkRoute([A, B, D]), 1, { name: 'unknown_next_peer' }), S, T0), { final: false });
    deadForAll(mc, A, B, T0);
    deadForAll(mc, B, A, T0);
    assert.equal(mc.pairCount, 2, 'nothing else learnt');
    mc.reportFailure(fail(mkRoute([A, B, D]), 2, { name: 'permanent_channel_failure' }), S, T0);
    deadForAll(mc, B, D, T0);
    deadForAll(mc, D, B, T0);
  });

  it('channel_disabled: a second chance the first time (nothing penalised, the update handed back), the channel failed the next', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    const disabled: FailureMessage = { name: 'channel_disabled', disabledFlags: 0, channelUpdate: UPDATE };
    assert.deepEqual(mc.reportFailure(fail(r, 2, disabled), S, T0), {
      final: false,
      channelUpdate: UPDATE,
      erringNode: B,
      secondChance: true,
    });
    assert.equal(mc.pairCount, 0);
    assert.deepEqual(mc.reportFailure(fail(r, 2, disabled), S, T0 + 30_000), { final: false, channelUpdate: UPDATE, erringNode: B });
    deadForAll(mc, B, D, T0 + 30_000);
    deadForAll(mc, D, B, T0 + 30_000);
    assert.equal(mc.pair(A, B)?.successAmountMsat, 1_001_000n);
    // more than a minute after the last second chance: another one
    assert.equal(mc.reportFailure(fail(r, 2, disabled), S, T0 + 30_000 + MINUTE + 1).secondChance, true);
  });

  it('fee_insufficient / incorrect_cltv_expiry: a second chance, then the incoming channel (or the first hop itself) is blamed', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    const fee: FailureMessage = { name: 'fee_insufficient', htlcMsat: 1_001_000n, channelUpdate: UPDATE };
    assert.equal(mc.reportFailure(fail(r, 2, fee), S, T0).secondChance, true);
    assert.equal(mc.pairCount, 0);
    const cltv: FailureMessage = { name: 'incorrect_cltv_expiry', cltvExpiry: 1, channelUpdate: UPDATE };
    assert.equal(mc.reportFailure(fail(r, 2, cltv), S, T0 + 1).secondChance, undefined);
    // hop 2 (B) complained about what A sent it: A→B is blamed, S→A forwarded fine
    deadForAll(mc, A, B, T0 + 1);
    deadForAll(mc, B, A, T0 + 1);
    assert.equal(mc.pair(B, D), undefined);
    assert.equal(mc.pair(S, A)?.successAmountMsat, 1_002_000n);
    // from the first hop, we trust our own channel: A itself is blamed
    const mc2 = new InMemoryMissionControl();
    mc2.reportFailure(fail(r, 1, fee), S, T0);
    mc2.reportFailure(fail(r, 1, fee), S, T0 + 1);
    deadForAll(mc2, S, A, T0 + 1);
    deadForAll(mc2, A, B, T0 + 1);
    deadForAll(mc2, B, A, T0 + 1);
  });

  it('expiry_too_soon at hop i: every channel up to it is blamed, ours included', () => {
    const mc = new InMemoryMissionControl();
    const out = mc.reportFailure(fail(mkRoute([A, B, D]), 2, { name: 'expiry_too_soon', channelUpdate: UPDATE }), S, T0);
    assert.deepEqual(out, { final: false, channelUpdate: UPDATE, erringNode: B });
    for (const [f, t] of [
      [S, A],
      [A, S],
      [A, B],
      [B, A],
    ] as const)
      deadForAll(mc, f, t, T0);
    assert.equal(mc.pair(B, D), undefined);
  });

  it('a node failure (temporary_node_failure, invalid_onion_payload) fails every pair of that node mission control knows', () => {
    const mc = new InMemoryMissionControl();
    // B forwarded to X before, and X to B
    mc.reportSuccess(mkRoute([A, B, X]), S, T0);
    mc.reportSuccess(mkRoute([A, X, B]), S, T0);
    assert.equal(mc.pair(B, X)?.successAmountMsat, 1_000_000n);
    const out = mc.reportFailure(fail(mkRoute([A, B, D]), 2, { name: 'temporary_node_failure' }), S, T0 + 1);
    assert.deepEqual(out, { final: false });
    for (const [f, t] of [
      [B, X],
      [X, B],
      [A, B],
      [B, A],
      [B, D],
      [D, B],
    ] as const)
      deadForAll(mc, f, t, T0 + 1);
    // pairs not touching B are left alone
    assert.equal(mc.pair(A, X)?.successAmountMsat, 1_001_000n);
    assert.equal(mc.pair(S, A)?.successAmountMsat, 1_002_000n);
    // invalid_onion_payload blames the node that sent it, too
    const mc2 = new InMemoryMissionControl();
    mc2.reportFailure(fail(mkRoute([A, B, D]), 1, { name: 'invalid_onion_payload', tlvType: 2n, offset: 0 }), S, T0);
    deadForAll(mc2, S, A, T0);
    deadForAll(mc2, A, B, T0);
    // a failure whose message did not decode (the hop named, no message): the node too
    const mc3 = new InMemoryMissionControl();
    mc3.reportFailure(fail(mkRoute([A, B, D]), 2), S, T0);
    deadForAll(mc3, A, B, T0);
    deadForAll(mc3, B, D, T0);
  });

  it('an unreadable failure blames every channel of the route both ways; on a direct payment it is final', () => {
    const mc = new InMemoryMissionControl();
    const out = mc.reportFailure(fail(mkRoute([A, B, D]), -1, undefined, true), S, T0);
    assert.deepEqual(out, { final: false });
    for (const [f, t] of [
      [S, A],
      [A, S],
      [A, B],
      [B, A],
      [B, D],
      [D, B],
    ] as const)
      deadForAll(mc, f, t, T0);
    assert.equal(mc.pairCount, 6);
    const direct = new InMemoryMissionControl();
    assert.deepEqual(direct.reportFailure(fail(mkRoute([D]), -1), S, T0), { final: true, reason: 'error' });
    deadForAll(direct, S, D, T0);
  });

  it('failures of our own: a malformed-onion answer from our peer blames the peer; others teach nothing', () => {
    const mc = new InMemoryMissionControl();
    const r = mkRoute([A, B, D]);
    assert.deepEqual(mc.reportFailure(fail(r, 0, tempChan), S, T0), { final: false });
    assert.equal(mc.pairCount, 0);
    const bad: FailureMessage = { name: 'invalid_onion_hmac', sha256OfOnion: new Uint8Array(32) };
    assert.deepEqual(mc.reportFailure(fail(r, 0, bad), S, T0), { final: false });
    deadForAll(mc, S, A, T0);
    deadForAll(mc, A, B, T0);
    assert.deepEqual(new InMemoryMissionControl().reportFailure(fail(mkRoute([D]), 0, bad), S, T0), { final: true, reason: 'error' });
    // our HTLC taken back on chain (the switch's answer when a first hop never resolved it): the payee is not blamed
    const direct = new InMemoryMissionControl();
    assert.deepEqual(direct.reportFailure(fail(mkRoute([D]), 0, { name: 'permanent_channel_failure' }), S, T0), { final: false });
    assert.equal(direct.pairCount, 0);
  });
});

describe('mission control: memory', () => {
  it('remembers at most maxPairs pairs, forgetting the longest unchanged first', () => {
    const mc = new InMemoryMissionControl({ maxPairs: 100 });
    for (let i = 0; i < 300; i++) mc.reportSuccess(mkRoute([id(1000 + i)]), S, T0 + i);
    assert.equal(mc.pairCount, 100);
    const snap = mc.snapshot();
    assert.equal(snap.length, 100);
    assert.deepEqual(
      snap.map((p) => p.to),
      Array.from({ length: 100 }, (_, i) => id(1200 + i)),
    );
    assert.equal(mc.pair(S, id(1000)), undefined);
    assert.equal(mc.pair(S, id(1199)), undefined);
    assert.equal(mc.pair(S, id(1200))?.successTimeMs, T0 + 200);
    // touching an old pair makes it the newest
    mc.reportSuccess(mkRoute([id(1200)]), S, T0 + 1000);
    mc.reportSuccess(mkRoute([id(5000)]), S, T0 + 1001);
    assert.equal(mc.pairCount, 100);
    assert.ok(mc.pair(S, id(1200)) !== undefined);
    assert.equal(mc.pair(S, id(1201)), undefined);
    // the default bound
    assert.equal(DEFAULT_MAX_PAIRS, 10_000);
    const big = new InMemoryMissionControl();
    for (let i = 0; i < 6_000; i++) big.reportSuccess(mkRoute([id(10_000 + 2 * i), id(10_001 + 2 * i)]), S, T0);
    assert.equal(big.pairCount, DEFAULT_MAX_PAIRS);
    big.reset();
    assert.equal(big.pairCount, 0);
  });
});
