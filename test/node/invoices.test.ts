/**
 * The invoice registry as D's final-hop handler, on four nodes (A, B, C, D;
 * channels A–B, A–C, B–D, C–D), the sender driving sendToRoute with AMP
 * shards built by onion/amp.ts:
 *   - a reusable AMP invoice paid three times, each set split over both
 *     paths; per-set records, settle indexes, lookups, the settle events;
 *   - account and subscription invoices; spontaneous AMP and keysend, each
 *     with its config switch on and off;
 *   - a set missing a shard (mpp_timeout), a corrupted share (the whole set
 *     fails), a settled set_id again, a set_id of another invoice;
 *   - regular invoices with one HTLC and with MPP over both paths; hold
 *     invoices settled and cancelled by the app;
 *   - bad input: each gets lnd's BOLT 4 answer and the channels stay up.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AmpShards, randomChildIndex, type FailureName } from '../../onion/index.js';
import type { AttemptResult, FinalPayloadRecords } from '../../htlc/switch/index.js';
import type { Invoice, SettleEvent } from '../../htlc/invoices/index.js';
import { bytesToHex, equalBytes } from '../../wire/bytes.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import { teardown, until } from './channels-fixture.js';
import { buildDiamond, routeVia, scidOf, sendAmpShard, settledEverywhere, type Diamond } from './switch-fixture.js';

const T = { timeout: 180_000 };
const MPP_TIMEOUT_MS = 1500;

type Path = 'b' | 'c';

describe('invoice registry: receiving on four nodes', () => {
  let g: Diamond;
  const events: SettleEvent[] = [];

  before(async () => {
    g = await buildDiamond({ registry: { d: { mppTimeoutMs: MPP_TIMEOUT_MS } } });
    await g.d.registry!.subscribeSettled(0n, (e) => events.push(e));
  });
  after(() => teardown(g?.chain, [g?.a, g?.b, g?.c, g?.d]));

  const reg = () => g.d.registry!;

  /** Sends one AMP set of `paths.length` shards (amounts split evenly), returns each shard's result. */
  async function payAmp(
    inv: { paymentAddr: Uint8Array },
    totalMsat: bigint,
    paths: Path[],
    opts: { shards?: AmpShards; corruptShard?: number; send?: number } = {},
  ): Promise<{ setId: Uint8Array; results: AttemptResult[] }> {
    const shards = opts.shards ?? AmpShards.random();
    const n = paths.length;
    const each = totalMsat / BigInt(n);
    const sends: Promise<AttemptResult>[] = [];
    for (let i = 0; i < n; i++) {
      const amountMsat = i === n - 1 ? totalMsat - each * BigInt(n - 1) : each;
      if ((opts.send ?? n) <= i) break; // never sent: the set stays incomplete
      sends.push(
        sendAmpShard(g, {
          paymentAddr: inv.paymentAddr,
          totalMsat,
          shards,
          path: paths[i]!,
          amountMsat,
          last: i === n - 1,
          corrupt: opts.corruptShard === i,
        }),
      );
    }
    return { setId: shards.setId, results: await Promise.all(sends) };
  }

  function allSettled(rs: AttemptResult[]): void {
    for (const r of rs)
      assert.equal(
        r.status,
        'settled',
        JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
  }

  function allFailed(rs: AttemptResult[], name: FailureName, source = 2): void {
    for (const r of rs) {
      assert.equal(r.status, 'failed');
      assert.ok(
        r.status === 'failed' && r.failureSourceIndex === source && r.failure?.name === name,
        `${r.status === 'failed' ? r.reason : ''} at ${r.status === 'failed' ? r.failureSourceIndex : ''}`,
      );
    }
  }

  it(
    'a reusable AMP invoice paid three times, each set over both paths: per-set records, lookups, events; the invoice stays open',
    T,
    async () => {
      const inv = await reg().addInvoice({ amp: true, memo: 'reusable' });
      const before = events.length;
      const sets: { setId: Uint8Array; amount: bigint }[] = [];
      for (const [k, amount] of [
        [1, 8_000_000n],
        [2, 12_000_000n],
        [3, 4_000_000n],
      ] as const) {
        const { setId, results } = await payAmp(inv, amount, ['b', 'c', 'b', 'c']);
        allSettled(results);
        sets.push({ setId, amount });
        const set = await reg().lookupSet(setId);
        assert.ok(set !== undefined, `set ${k} recorded`);
        assert.equal(set.state, 'settled');
        assert.equal(set.amountPaidMsat, amount);
        assert.equal(set.htlcs.length, 4);
        // each HTLC settled with its own child preimage, which the sender got back
        results.forEach((r) =>
          assert.ok(
            r.status === 'settled' &&
              set.htlcs.some((h) => equalBytes(h.preimage, r.preimage) && equalBytes(h.paymentHash, sha256(r.preimage))),
          ),
        );
      }
      await settledEverywhere(g);
      const head = (await reg().lookupByAddr(inv.paymentAddr))!;
      assert.equal(head.state, 'open', 'a reusable AMP invoice stays open');
      assert.equal(head.settledSets, 3);
      assert.equal(head.amountPaidMsat, 24_000_000n);
      assert.equal(head.sets, undefined, 'without its sets');
      const full = (await reg().lookupByAddr(inv.paymentAddr, { withSets: true }))!;
      assert.deepEqual(
        full.sets!.map((s) => bytesToHex(s.setId)),
        sets.map((s) => bytesToHex(s.setId)),
        'sets in settle order',
      );
      const idx = full.sets!.map((s) => s.settleIndex);
      assert.ok(idx[0]! < idx[1]! && idx[1]! < idx[2]!, 'settle indexes increase');
      const mine = events.slice(before);
      assert.equal(mine.length, 3, 'one event per settled set');
      assert.deepEqual(
        mine.map((e) => bytesToHex(e.setId!)),
        sets.map((s) => bytesToHex(s.setId)),
      );
      assert.deepEqual(
        mine.map((e) => e.amountMsat),
        sets.map((s) => s.amount),
      );
      assert.equal((await reg().lookupByHash(inv.paymentHash))?.addIndex, inv.addIndex, 'found by its (random) hash too');
      // a late subscriber replays from a settle index
      const replay: SettleEvent[] = [];
      const off = await reg().subscribeSettled(idx[0]!, (e) => replay.push(e));
      off();
      assert.ok(
        replay.some((e) => e.settleIndex === idx[1]) &&
          replay.some((e) => e.settleIndex === idx[2]) &&
          !replay.some((e) => e.settleIndex === idx[0]),
      );
    },
  );

  it(
    'an account invoice takes two deposits of different sizes; a subscription invoice refuses an underpayment, takes the exact amount and more',
    T,
    async () => {
      const account = await reg().addInvoice({ amp: true });
      allSettled((await payAmp(account, 3_000_000n, ['b', 'c'])).results);
      allSettled((await payAmp(account, 7_500_000n, ['c', 'b', 'c'])).results);
      assert.equal((await reg().lookupByAddr(account.paymentAddr))!.amountPaidMsat, 10_500_000n);
      const sub = await reg().addInvoice({ amp: true, amountMsat: 5_000_000n });
      allFailed((await payAmp(sub, 4_999_000n, ['b', 'c'])).results, 'incorrect_or_unknown_payment_details');
      allSettled((await payAmp(sub, 5_000_000n, ['b', 'c'])).results);
      allSettled((await payAmp(sub, 6_000_000n, ['c', 'b'])).results);
      const s = (await reg().lookupByAddr(sub.paymentAddr))!;
      assert.equal(s.settledSets, 2);
      assert.equal(s.amountPaidMsat, 11_000_000n);
      await settledEverywhere(g);
    },
  );

  /** B pays D directly (one hop over B–D). */
  async function fromB(amountMsat: bigint, paymentHash: Uint8Array, records: FinalPayloadRecords): Promise<AttemptResult> {
    const cltv = g.chain.tip().height + 40;
    const hop = {
      pubkey: g.d.node.nodeId,
      shortChannelId: scidOf(g.b, g.bd.channelId),
      amountToForwardMsat: amountMsat,
      outgoingCltvValue: cltv,
    };
    return g.b.manager.sendToRoute({ totalAmountMsat: amountMsat, totalTimeLock: cltv, hops: [hop] }, paymentHash, records);
  }

  it('spontaneous AMP from B: settled with accept-amp on, refused with it off', T, async () => {
    const send = async (): Promise<AttemptResult> => {
      const shards = AmpShards.random();
      const child = shards.next(randomChildIndex(), { last: true });
      return fromB(2_000_000n, child.hash, {
        mpp: { paymentAddr: randomBytes(32), totalMsat: 2_000_000n },
        amp: { share: child.share, setId: shards.setId, childIndex: child.childIndex },
        customRecords: [{ type: 65537n, value: new TextEncoder().encode('hello') }],
      });
    };
    reg().config.acceptAmp = false;
    const off = await send();
    assert.ok(off.status === 'failed' && off.failureSourceIndex === 1 && off.failure?.name === 'incorrect_or_unknown_payment_details');
    reg().config.acceptAmp = true;
    const before = events.length;
    const on = await send();
    assert.equal(on.status, 'settled');
    const e = events.slice(before).find((x) => x.kind === 'amp');
    assert.ok(e !== undefined && new TextDecoder().decode(e.customRecords[0]!.value) === 'hello', 'the event carries the custom record');
    reg().config.acceptAmp = false;
  });

  it('keysend from B: settled with accept-keysend on, refused with it off', T, async () => {
    const send = async (): Promise<AttemptResult> => {
      const preimage = randomBytes(32);
      return fromB(1_500_000n, sha256(preimage), { keysendPreimage: preimage });
    };
    reg().config.acceptKeysend = false;
    const off = await send();
    assert.ok(off.status === 'failed' && off.failure?.name === 'incorrect_or_unknown_payment_details');
    reg().config.acceptKeysend = true;
    const on = await send();
    assert.equal(on.status, 'settled');
    reg().config.acceptKeysend = false;
    await settledEverywhere(g);
  });

  it('a set missing one shard: every HTLC of it fails with mpp_timeout after the hold time, nothing settles', T, async () => {
    const inv = await reg().addInvoice({ amp: true });
    const t0 = Date.now();
    const { setId, results } = await payAmp(inv, 6_000_000n, ['b', 'c', 'b'], { send: 2 });
    assert.ok(Date.now() - t0 >= MPP_TIMEOUT_MS - 100, 'held for the hold time');
    allFailed(results, 'mpp_timeout');
    assert.equal(await reg().lookupSet(setId), undefined, 'nothing settled');
    assert.equal((await reg().lookupByAddr(inv.paymentAddr))!.amountPaidMsat, 0n);
    assert.equal(reg().pendingCount(), 0);
    await settledEverywhere(g);
  });

  it('a set with one corrupted share fails whole', T, async () => {
    const inv = await reg().addInvoice({ amp: true });
    const { setId, results } = await payAmp(inv, 6_000_000n, ['b', 'c', 'b', 'c'], { corruptShard: 1 });
    allFailed(results, 'incorrect_or_unknown_payment_details');
    assert.equal(await reg().lookupSet(setId), undefined);
    await settledEverywhere(g);
  });

  it('a settled set_id sent again is rejected; a set_id already used on another invoice is rejected', T, async () => {
    const inv = await reg().addInvoice({ amp: true });
    const shards = AmpShards.random();
    allSettled((await payAmp(inv, 2_000_000n, ['b', 'c'])).results);
    const first = await payAmp(inv, 2_000_000n, ['b', 'c'], { shards });
    allSettled(first.results);
    // the same set_id again (a fresh root under it), on the same invoice and on another one
    const again = new AmpShards(AmpShards.random().remaining, shards.setId);
    allFailed((await payAmp(inv, 2_000_000n, ['b', 'c'], { shards: again })).results, 'incorrect_or_unknown_payment_details');
    const other = await reg().addInvoice({ amp: true });
    const elsewhere = new AmpShards(AmpShards.random().remaining, shards.setId);
    allFailed((await payAmp(other, 2_000_000n, ['b', 'c'], { shards: elsewhere })).results, 'incorrect_or_unknown_payment_details');
    assert.equal((await reg().lookupSet(shards.setId))!.htlcs.length, 2, 'the settled set is unchanged');
    await settledEverywhere(g);
  });

  /** A regular (or hold) invoice paid with MPP over `paths`. */
  async function payRegular(
    inv: Invoice,
    totalMsat: bigint,
    paths: Path[],
    opts: { paymentAddr?: Uint8Array; totalInOnion?: (i: number) => bigint } = {},
  ): Promise<AttemptResult[]> {
    const n = paths.length;
    const each = totalMsat / BigInt(n);
    return Promise.all(
      paths.map((p, i) =>
        g.a.manager.sendToRoute(routeVia(g, p, i === n - 1 ? totalMsat - each * BigInt(n - 1) : each), inv.paymentHash, {
          mpp: { paymentAddr: opts.paymentAddr ?? inv.paymentAddr, totalMsat: opts.totalInOnion?.(i) ?? totalMsat },
        }),
      ),
    );
  }

  it('a regular invoice paid with one HTLC, another with MPP over both paths', T, async () => {
    const one = await reg().addInvoice({ amountMsat: 3_000_000n });
    const [r] = await payRegular(one, 3_000_000n, ['b']);
    assert.ok(r!.status === 'settled' && equalBytes(r!.preimage, one.preimage!));
    assert.equal((await reg().lookupByHash(one.paymentHash))!.state, 'settled');
    const mpp = await reg().addInvoice({ amountMsat: 9_000_000n });
    const rs = await payRegular(mpp, 9_000_000n, ['b', 'c', 'c']);
    allSettled(rs);
    const got = (await reg().lookupByHash(mpp.paymentHash))!;
    assert.equal(got.state, 'settled');
    assert.equal(got.amountPaidMsat, 9_000_000n);
    assert.equal(got.htlcs!.length, 3);
    // paid: a second payment of it is refused
    allFailed(await payRegular(mpp, 9_000_000n, ['b']), 'incorrect_or_unknown_payment_details');
    await settledEverywhere(g);
  });

  it('hold invoices: one settled by the app once accepted, another cancelled', T, async () => {
    const preimage = randomBytes(32);
    const held = await reg().addInvoice({ amountMsat: 4_000_000n, paymentHash: sha256(preimage) });
    const paying = payRegular(held, 4_000_000n, ['b', 'c']);
    await until(async () => (await reg().lookupByHash(held.paymentHash))?.state === 'accepted', 'accepted');
    await assert.rejects(reg().settleHold(randomBytes(32)), /no open hold invoice/);
    await reg().settleHold(preimage);
    allSettled(await paying);
    const other = await reg().addInvoice({ amountMsat: 4_000_000n, paymentHash: sha256(randomBytes(32)) });
    const paying2 = payRegular(other, 4_000_000n, ['c']);
    await until(async () => (await reg().lookupByHash(other.paymentHash))?.state === 'accepted', 'accepted');
    await reg().cancel(other.paymentHash);
    allFailed(await paying2, 'incorrect_or_unknown_payment_details');
    assert.equal((await reg().lookupByHash(other.paymentHash))!.state, 'canceled');
    await settledEverywhere(g);
  });

  describe("bad input: lnd's answer, the channels stay up, nothing recorded", () => {
    it('below the invoice amount; a wrong payment_secret; an unknown payment_addr', T, async () => {
      const inv = await reg().addInvoice({ amountMsat: 5_000_000n });
      allFailed(await payRegular(inv, 4_000_000n, ['b']), 'incorrect_or_unknown_payment_details');
      allFailed(await payRegular(inv, 5_000_000n, ['b'], { paymentAddr: randomBytes(32) }), 'incorrect_or_unknown_payment_details');
      allFailed((await payAmp({ paymentAddr: randomBytes(32) }, 2_000_000n, ['c'])).results, 'incorrect_or_unknown_payment_details');
      assert.equal((await reg().lookupByHash(inv.paymentHash))!.state, 'open', 'still open, nothing paid');
      assert.equal((await reg().lookupByHash(inv.paymentHash))!.amountPaidMsat, 0n);
    });

    it('an expired invoice', T, async () => {
      const inv = await reg().addInvoice({ amountMsat: 1_000_000n, expirySeconds: 1 });
      await new Promise((r) => setTimeout(r, 2100));
      allFailed(await payRegular(inv, 1_000_000n, ['b']), 'incorrect_or_unknown_payment_details');
      const amp = await reg().addInvoice({ amp: true, expirySeconds: 1 });
      await new Promise((r) => setTimeout(r, 2100));
      allFailed((await payAmp(amp, 1_000_000n, ['b'])).results, 'incorrect_or_unknown_payment_details');
    });

    it('a final CLTV too close to the tip', T, async () => {
      const inv = await reg().addInvoice({ amountMsat: 1_000_000n, minFinalCltvExpiryDelta: 30 });
      // 25 blocks of final delta: above 19, below the invoice's 30
      const r = await g.a.manager.sendToRoute(routeVia(g, 'b', 1_000_000n, 25), inv.paymentHash, {
        mpp: { paymentAddr: inv.paymentAddr, totalMsat: 1_000_000n },
      });
      allFailed([r], 'incorrect_or_unknown_payment_details');
      assert.equal((await reg().lookupByHash(inv.paymentHash))!.state, 'open');
    });

    it('an MPP total that changes between shards fails the set', T, async () => {
      const inv = await reg().addInvoice({ amountMsat: 6_000_000n });
      const rs = await payRegular(inv, 6_000_000n, ['b', 'c'], { totalInOnion: (i) => (i === 0 ? 6_000_000n : 7_000_000n) });
      allFailed(rs, 'incorrect_or_unknown_payment_details');
      await settledEverywhere(g);
      assert.equal(reg().pendingCount(), 0);
      for (const [n, ch] of [
        [g.a, g.ab],
        [g.a, g.ac],
        [g.d, g.bd],
        [g.d, g.cd],
      ] as const)
        assert.equal(n.manager.channel(ch.channelId)?.active, true);
      // and the invoice can still be paid properly
      allSettled(await payRegular(inv, 6_000_000n, ['b', 'c']));
    });
  });
});
