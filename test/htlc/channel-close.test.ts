/**
 * Cooperative close: shutdown from either side while HTLCs are still in
 * flight (they must clear first), legacy closing_signed negotiation that
 * converges when the two sides want different fees, upfront shutdown scripts,
 * and delivery-script rules.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pair, type Side } from './channel-harness.js';
import { p2wpkh, p2wsh, fundingWitnessScript } from '../../htlc/bolt3/index.js';
import { parseTx } from '../../htlc/channel/tx.js';
import { bytesToHex } from '../../wire/bytes.js';
import type { UpdateAddHtlc } from '../../wire/channel-messages.js';

const SCRIPT_A = p2wpkh(new Uint8Array(33).fill(2));
const SCRIPT_B = p2wsh(new Uint8Array([0x51]));

function closingTxOf(p: Pair, side: Side): Uint8Array {
  const e = p.ep[side].events.find((x) => x.type === 'closing_tx');
  assert.ok(e !== undefined && e.type === 'closing_tx', `${side} has no closing tx`);
  return e.tx;
}

for (const initiator of ['a', 'b'] as const) {
  for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
    describe(`cooperative close initiated by ${initiator} (${channelType}, a opened)`, () => {
      it('waits for HTLCs to clear, negotiates the fee, and both sides get the same signed closing tx', async () => {
        const p = await Pair.opened({ channelType, opener: 'a', pushMsat: 300_000_000n });
        await p.add('a', 10_000_000n);
        await p.add('b', 20_000_000n);
        await p.settle();
        const ready = p.settleable('b');
        assert.equal(ready.length, 1);

        const scripts = { a: SCRIPT_A, b: SCRIPT_B };
        // the opener wants a high fee, the other side a low one: they must converge
        const r = await p.apply(initiator, {
          type: 'shutdown',
          scriptPubKey: scripts[initiator],
          feeratePerKw: initiator === 'a' ? 5000 : 1000,
        });
        assert.equal(r.failure, undefined);
        await p.deliverAll();
        assert.equal(p.state('a').phase, 'shutdown');
        assert.equal(p.state('b').phase, 'shutdown');
        // no new HTLCs now
        const refused = await p.add('a', 1_000_000n);
        assert.equal(refused.failure?.code, 'ERR_SHUTDOWN');
        // the HTLCs in flight still settle
        await p.fulfill('b', ready[0]!.id);
        await p.fail('a', p.settleable('a')[0]!.id);
        await p.settle();
        await p.deliverAll();
        assert.equal(p.state('a').phase, 'closed');
        assert.equal(p.state('b').phase, 'closed');
        const ta = closingTxOf(p, 'a');
        const tb = closingTxOf(p, 'b');
        assert.equal(bytesToHex(ta), bytesToHex(tb));
        const tx = parseTx(ta);
        const s = p.state('a');
        const feeA = p.ep.a.events.find((e) => e.type === 'closing_tx');
        const fee = feeA?.type === 'closing_tx' ? feeA.feeSat : -1n;
        const outs = new Map(tx.outputs.map((o) => [bytesToHex(o.scriptPubKey), o.valueSat]));
        // b received 10 000 sat on top of the push; a (the opener) pays the fee
        const scriptOf = { a: s.shutdown!.localScript!, b: s.shutdown!.remoteScript! };
        assert.equal(bytesToHex(scriptOf[initiator]), bytesToHex(scripts[initiator]));
        assert.equal(outs.get(bytesToHex(scriptOf.b)), 310_000n);
        assert.equal(outs.get(bytesToHex(scriptOf.a)), 690_000n - fee);
        assert.ok(fee > 0n);
        assert.equal(s.localCommit.ourBalanceMsat, 690_000_000n);
        // the witness carries both signatures over the funding script
        assert.ok(bytesToHex(ta).includes(bytesToHex(fundingWitnessScript(s.local.pubkeys.fundingPubkey, s.remote.pubkeys.fundingPubkey))));
        assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
        // the fees differ by far more than 30 %: at least one counter-offer before agreement
        const offers = p.trace.filter((t) => t.type === 39);
        assert.equal(offers[0]!.from, 'a', 'the opener offers first');
        assert.ok(offers.length >= 3, `only ${offers.length} closing_signed`);
      });
    });
  }
}

describe('cooperative close rules', () => {
  it('honours upfront shutdown scripts', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', upfront: { a: SCRIPT_A } });
    const r = await p.apply('a', { type: 'shutdown', scriptPubKey: SCRIPT_B, feeratePerKw: 1000 });
    assert.equal(r.failure?.code, 'ERR_SHUTDOWN');
    assert.equal(r.failure?.level, 'local');
    // b refuses a shutdown from a that breaks a's upfront script
    const before = p.state('b');
    const bad = await p.apply('b', { type: 'message', msg: { type: 38, channelId: before.channelId, scriptpubkey: SCRIPT_B } });
    assert.equal(bad.failure?.code, 'ERR_SHUTDOWN');
    assert.equal(bad.failure?.level, 'error');
    assert.equal(p.state('b'), before);
    // without a script given, the upfront one is used
    assert.equal((await p.apply('a', { type: 'shutdown', feeratePerKw: 1000 })).failure, undefined);
    await p.deliverAll();
    assert.equal(p.state('a').phase, 'closed');
    assert.ok(parseTx(closingTxOf(p, 'b')).outputs.some((o) => bytesToHex(o.scriptPubKey) === bytesToHex(SCRIPT_A)));
  });

  it('answers a P2PKH delivery script with a warning and keeps the channel', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    const p2pkh = new Uint8Array([0x76, 0xa9, 0x14, ...new Uint8Array(20), 0x88, 0xac]);
    const before = p.state('b');
    const r = await p.apply('b', { type: 'message', msg: { type: 38, channelId: before.channelId, scriptpubkey: p2pkh } });
    assert.equal(r.failure?.level, 'warning');
    assert.equal(p.state('b'), before);
  });

  it('fails the channel on update_add_htlc after shutdown', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
    await p.apply('a', { type: 'shutdown', scriptPubKey: SCRIPT_A, feeratePerKw: 1000 });
    await p.deliver('a'); // b gets shutdown and answers
    await p.deliver('b'); // a gets b's shutdown
    const before = p.state('a');
    const add: UpdateAddHtlc = {
      type: 128,
      channelId: before.channelId,
      id: before.theirLog.nextHtlcId,
      amountMsat: 1_000_000n,
      paymentHash: new Uint8Array(32),
      cltvExpiry: 700_000,
      onionRoutingPacket: new Uint8Array(1366),
    };
    const r = await p.apply('a', { type: 'message', msg: add });
    assert.equal(r.failure?.code, 'ERR_SHUTDOWN');
    assert.equal(r.failure?.level, 'error');
    assert.equal(p.state('a'), before);
  });
});

describe('shutdown while our updates are unsigned', () => {
  it('answers shutdown only after signing its pending updates', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 300_000_000n });
    await p.add('b', 2_000_000n); // b's add, not yet signed
    await p.apply('a', { type: 'shutdown', scriptPubKey: SCRIPT_A, feeratePerKw: 1000 });
    await p.deliver('b'); // a receives b's add
    await p.deliver('a'); // b receives a's shutdown while its add is unsigned
    assert.equal(p.queue.b.length, 0, 'b answered shutdown with updates pending');
    await p.apply('b', { type: 'sign' });
    assert.deepEqual(
      p.queue.b.map((m) => m.type),
      [132, 38],
    );
    await p.settle();
    for (const h of p.settleable('a')) await p.fulfill('a', h.id);
    await p.settle();
    await p.deliverAll();
    assert.equal(p.state('a').phase, 'closed');
    assert.equal(p.state('b').phase, 'closed');
    assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
  });
});

describe('cooperative close across a reconnection', () => {
  for (const cutAfter of [0, 1, 2, 3]) {
    it(`completes when the connection drops after ${cutAfter} closing messages`, async () => {
      const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 300_000_000n });
      await p.apply('b', { type: 'shutdown', scriptPubKey: SCRIPT_B, feeratePerKw: 400 });
      await p.deliver('b'); // shutdown → a answers with shutdown and its first offer
      await p.deliver('a'); // a's shutdown
      for (let i = 0; i < cutAfter && p.queue.a.length + p.queue.b.length > 0; i++) await p.deliver(p.queue.a.length > 0 ? 'a' : 'b');
      await p.cut();
      await p.reconnect();
      await p.deliverAll();
      assert.equal(p.state('a').phase, 'closed');
      assert.equal(p.state('b').phase, 'closed');
      assert.equal(bytesToHex(closingTxOf(p, 'a')), bytesToHex(closingTxOf(p, 'b')));
      assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
    });
  }
});
