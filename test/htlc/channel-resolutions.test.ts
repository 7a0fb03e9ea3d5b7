/**
 * Our own updates are never lost silently: a fulfill or fail that a
 * disconnect reverses (BOLT 2 forgets updates no commitment_signed covered)
 * is sent again by the channel after channel_reestablish, also across a
 * restart from the store; one asked for while the peer is away waits for the
 * next reestablish; an add that a crash cut before signing is reported as
 * unsent after the restart. One our commitment_signed covers is retransmitted
 * with it instead, never twice; during a cooperative close the re-sent
 * resolutions clear the HTLCs so the close can complete.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pair, withoutParts } from './channel-harness.js';
import { decodeState, loadChannels } from '../../htlc/channel/codec.js';
import { ChannelDriver } from '../../htlc/channel/driver.js';
import { parseTx } from '../../htlc/channel/tx.js';
import { p2wpkh } from '../../htlc/bolt3/index.js';
import { bytesToHex } from '../../wire/bytes.js';

const AMOUNT = 7_000_000n;
const afterRestart = (restart: boolean): string => (restart ? ' (after a restart)' : '');

/** a offers b an HTLC and both sign it in: b may settle it. */
async function committedHtlc(): Promise<{ p: Pair; id: bigint }> {
  const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 100_000_000n });
  await p.add('a', AMOUNT);
  await p.settle();
  const h = p.settleable('b')[0];
  assert.ok(h !== undefined);
  return { p, id: h.id };
}

type Kind = 'fulfill' | 'fail' | 'fail_malformed';

async function resolve(p: Pair, id: bigint, kind: Kind) {
  if (kind === 'fulfill') return p.fulfill('b', id);
  if (kind === 'fail') return p.fail('b', id);
  return p.apply('b', { type: 'fail_malformed_htlc', id, sha256OfOnion: new Uint8Array(32).fill(9), failureCode: 0x8000 | 0x4000 | 5 });
}

/** After the dust settles: the HTLC is gone from every commitment, and the money went where the resolution says. */
function checkResolved(p: Pair, kind: Kind, before: { a: bigint; b: bigint }): void {
  for (const side of ['a', 'b'] as const) {
    const s = p.state(side);
    assert.equal(s.localCommit.htlcs.length, 0, `${side} still holds the HTLC`);
    assert.equal(s.remoteCommit.htlcs.length, 0);
    assert.equal(s.pendingResolutions, undefined, `${side} still queues a resolution`);
  }
  const paid = kind === 'fulfill' ? AMOUNT : 0n;
  assert.equal(p.balances('a').ours, before.a - paid);
  assert.equal(p.balances('b').ours, before.b + paid);
  p.checkConsistent();
  const outcome = p.ep.a.events.filter((e) => e.type === 'htlc_fulfilled' || e.type === 'htlc_failed');
  assert.equal(outcome.length, 1, 'the payer learns the outcome exactly once');
  assert.equal(outcome[0]!.type, kind === 'fulfill' ? 'htlc_fulfilled' : 'htlc_failed');
}

function startBalances(p: Pair): { a: bigint; b: bigint } {
  // the HTLC's amount is out of a's balance while it is pending
  return { a: p.balances('a').ours + AMOUNT, b: p.balances('b').ours };
}

describe('our resolutions survive disconnects and restarts', () => {
  for (const kind of ['fulfill', 'fail', 'fail_malformed'] as const) {
    it(`${kind}: cut before it was signed → sent again after reestablish, once`, async () => {
      const { p, id } = await committedHtlc();
      const before = startBalances(p);
      const r = await resolve(p, id, kind);
      assert.equal(r.failure, undefined);
      assert.equal(withoutParts(r.writes).length, 1, 'persisted before it leaves');
      await p.cut(); // the update never reached a
      assert.equal(p.state('b').pendingResolutions?.length, 1);
      await p.reconnect();
      const resent = p.trace.filter((t) => t.from === 'b' && t.type === (kind === 'fulfill' ? 130 : kind === 'fail' ? 131 : 135));
      assert.equal(resent.length, 1);
      await p.settle();
      checkResolved(p, kind, before);
    });

    it(`${kind}: cut, then a restart from the store, → still sent after reestablish`, async () => {
      const { p, id } = await committedHtlc();
      const before = startBalances(p);
      await resolve(p, id, kind);
      p.queue.b = []; // the update was lost on the wire, then b's process died
      await p.apply('a', { type: 'disconnected' });
      await p.reload('b'); // rebuilt from what the store holds
      assert.equal(p.state('b').pendingResolutions?.length, 1, 'the restart found the resolution on disk');
      await p.reconnect();
      await p.settle();
      checkResolved(p, kind, before);
    });
  }

  it('a fulfill asked for while the peer is away waits for the reestablish, persisted', async () => {
    const { p, id } = await committedHtlc();
    const before = startBalances(p);
    await p.cut();
    const r = await p.fulfill('b', id);
    assert.equal(r.failure, undefined);
    assert.equal(r.send.length, 0, 'nothing goes out while disconnected');
    assert.equal(withoutParts(r.writes).length, 1);
    const onDisk = decodeState((r.writes[0] as { value: Uint8Array }).value);
    assert.equal(onDisk.pendingResolutions?.[0]?.kind, 'fulfill');
    // asking twice is refused: the first is already queued
    const again = await p.fulfill('b', id).catch(() => undefined);
    assert.ok(again === undefined || again.failure?.code === 'ERR_UNKNOWN_HTLC');
    await p.reconnect();
    await p.settle();
    checkResolved(p, 'fulfill', before);
  });

  it('a resolution the peer got with its commitment_signed is retransmitted as part of it, not queued again', async () => {
    const { p, id } = await committedHtlc();
    const before = startBalances(p);
    await p.fulfill('b', id);
    await p.apply('b', { type: 'sign' });
    await p.deliver('b'); // update_fulfill_htlc
    await p.deliver('b'); // commitment_signed; a's revoke_and_ack is lost in the cut
    await p.cut();
    assert.equal(p.state('b').pendingResolutions, undefined, 'covered by a commitment_signed: not reversed');
    await p.reconnect();
    await p.settle();
    const fulfills = p.trace.filter((t) => t.from === 'b' && t.type === 130);
    assert.equal(fulfills.length, 1, 'no second update_fulfill_htlc');
    checkResolved(p, 'fulfill', before);
  });

  for (const restart of [false, true]) {
    const title =
      `a resolution signed but whose commitment_signed was lost is` + ` retransmitted with it, not queued${afterRestart(restart)}`;
    it(title, async () => {
      const { p, id } = await committedHtlc();
      const before = startBalances(p);
      await p.fulfill('b', id);
      const signed = await p.apply('b', { type: 'sign' });
      assert.equal(signed.failure, undefined);
      p.queue.b = []; // update_fulfill_htlc and commitment_signed never reached a
      await p.apply('a', { type: 'disconnected' });
      if (restart) await p.reload('b');
      else await p.apply('b', { type: 'disconnected' });
      assert.equal(p.state('b').pendingResolutions, undefined, 'our signature covers it: kept in the log for retransmission');
      const from = p.trace.length;
      await p.reconnect();
      const again = p.trace
        .slice(from)
        .filter((t) => t.from === 'b')
        .map((t) => t.type);
      assert.deepEqual(
        again.filter((t) => t === 130 || t === 132),
        [130, 132],
        'the fulfill once, then the same commitment_signed',
      );
      await p.settle();
      checkResolved(p, 'fulfill', before);
    });
  }

  it('a resolution for an HTLC that is no longer committed is dropped, not sent', async () => {
    const { p, id } = await committedHtlc();
    await p.fulfill('b', id);
    await p.settle(); // done: the HTLC is gone
    const s = p.state('b');
    // a stale queue entry (as if written before the HTLC went away) finds nothing to settle
    const stale = { ...s, pendingResolutions: [{ kind: 'fail' as const, index: 0, htlcId: id, reason: new Uint8Array(1) }] };
    p.ep.b.driver = ChannelDriver.restore(p.adapters('b'), stale);
    await p.apply('a', { type: 'disconnected' });
    const sentBefore = p.trace.length;
    await p.reconnect();
    assert.ok(!p.trace.slice(sentBefore).some((t) => t.type === 131), 'no update_fail_htlc for a settled HTLC');
    assert.equal(p.state('b').pendingResolutions, undefined);
  });

  it('an add persisted but cut by a crash before signing is reported as unsent after the restart', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 0n });
    const r = await p.add('a', AMOUNT);
    assert.equal(r.failure, undefined);
    const written = withoutParts(r.writes);
    assert.equal(written.length, 2, 'the add is persisted: the channel record and, apart, its onion');
    assert.match(new TextDecoder().decode(written[1]!.key), /^onion\/[0-9a-f]{64}\/o\/0{16}$/);
    p.queue.a = [];
    await p.apply('b', { type: 'disconnected' });
    p.ep.a.events.length = 0;
    await p.reload('a');
    await p.driver('a').replay();
    const unsent = p.ep.a.events.filter((e) => e.type === 'htlc_unsent');
    assert.equal(unsent.length, 1);
    assert.equal(unsent[0]!.type === 'htlc_unsent' && unsent[0]!.htlc.amountMsat, AMOUNT);
    await p.reconnect();
    // the id is free again: the next add reuses it, and the channel carries on
    const next = await p.add('a', AMOUNT);
    assert.equal(next.send[0]?.type === 128 && next.send[0].id, 0n);
    await p.settle();
    assert.equal(p.state('b').localCommit.htlcs.length, 1);
    p.checkConsistent();
  });

  it('two resolutions cut together come back in the order they were asked for, persisted when re-applied', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 0n });
    await p.add('a', AMOUNT);
    await p.add('a', AMOUNT);
    await p.settle();
    const [h0, h1] = p.settleable('b');
    assert.ok(h0 !== undefined && h1 !== undefined);
    await p.fail('b', h1.id);
    await p.fulfill('b', h0.id);
    await p.cut();
    assert.deepEqual(
      p.state('b').pendingResolutions?.map((e) => [e.kind, e.htlcId]),
      [
        ['fail', h1.id],
        ['fulfill', h0.id],
      ],
    );
    const from = p.trace.length;
    await p.reconnect();
    const resent = p.trace.slice(from).filter((t) => t.from === 'b' && (t.type === 130 || t.type === 131));
    assert.deepEqual(
      resent.map((t) => t.type),
      [131, 130],
    );
    // the re-applied updates were persisted before they left: in the log, no longer queued
    const onDisk = (await loadChannels(p.ep.b.store))[0]!;
    assert.equal(onDisk.pendingResolutions, undefined);
    assert.deepEqual(
      onDisk.ourLog.entries.slice(-2).map((e) => e.kind),
      ['fail', 'fulfill'],
    );
    // lost on the wire once more and b restarts: the store alone brings them back, in order
    p.queue.b = [];
    await p.apply('a', { type: 'disconnected' });
    await p.reload('b');
    assert.deepEqual(
      p.state('b').pendingResolutions?.map((e) => e.kind),
      ['fail', 'fulfill'],
    );
    await p.reconnect();
    await p.settle();
    for (const side of ['a', 'b'] as const) assert.equal(p.state(side).localCommit.htlcs.length, 0);
    assert.equal(p.balances('b').ours, AMOUNT);
    p.checkConsistent();
  });

  it('a queued resolution is kept, not applied, while the reestablish fails', async () => {
    const { p, id } = await committedHtlc();
    await p.fulfill('b', id);
    await p.cut();
    await p.apply('b', { type: 'connected' });
    p.queue.b = [];
    // a channel_reestablish that does not match (a claims a commitment b never signed)
    const bad = {
      type: 136 as const,
      channelId: p.state('b').channelId,
      nextCommitmentNumber: 99n,
      nextRevocationNumber: 0n,
      yourLastPerCommitmentSecret: new Uint8Array(32),
      myCurrentPerCommitmentPoint: p.state('a').remoteCurrentPoint,
    };
    const r = await p.apply('b', { type: 'message', msg: bad });
    assert.equal(r.failure?.code, 'ERR_SYNC');
    assert.ok(!r.send.some((m) => m.type === 130), 'no update_fulfill_htlc before a good reestablish');
    assert.equal(p.state('b').pendingResolutions?.length, 1);
  });
});

describe('our resolutions during a cooperative close', () => {
  const SCRIPT_A = p2wpkh(new Uint8Array(33).fill(2));

  for (const restart of [false, true]) {
    it(`a fulfill cut during shutdown is sent again${afterRestart(restart)}, the HTLC clears and the close completes`, async () => {
      const { p, id } = await committedHtlc();
      assert.equal((await p.apply('a', { type: 'shutdown', scriptPubKey: SCRIPT_A, feeratePerKw: 1000 })).failure, undefined);
      await p.deliverAll();
      assert.equal(p.state('a').phase, 'shutdown');
      assert.equal(p.state('b').phase, 'shutdown');
      const r = await p.fulfill('b', id);
      assert.equal(r.failure, undefined);
      assert.equal(withoutParts(r.writes).length, 1);
      if (restart) {
        p.queue.b = [];
        await p.apply('a', { type: 'disconnected' });
        await p.reload('b');
      } else {
        await p.cut();
      }
      assert.equal(p.state('b').pendingResolutions?.length, 1);
      const from = p.trace.length;
      await p.reconnect();
      const after = p.trace
        .slice(from)
        .filter((t) => t.from === 'b')
        .map((t) => t.type);
      assert.ok(after.includes(38) && after.includes(130), `b re-sends its shutdown and the fulfill (${after.join(',')})`);
      assert.ok(after.indexOf(38) < after.indexOf(130), 'shutdown first, then the re-applied update');
      await p.settle();
      await p.deliverAll();
      assert.equal(p.state('a').phase, 'closed');
      assert.equal(p.state('b').phase, 'closed');
      const e = p.ep.a.events.find((x) => x.type === 'closing_tx');
      assert.ok(e !== undefined && e.type === 'closing_tx');
      const outs = new Map(parseTx(e.tx).outputs.map((o) => [bytesToHex(o.scriptPubKey), o.valueSat]));
      // b was pushed 100 000 sat and received the HTLC's 7 000 sat (b's script is its default shutdown script)
      const sb = p.state('b');
      assert.equal(outs.get(bytesToHex(sb.shutdown!.localScript!)), 107_000n);
      assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
    });

    const heldByFulfill =
      `our shutdown held back by our unsigned fulfill goes out once the` +
      ` re-sent fulfill is signed${afterRestart(restart)}; the close completes`;
    it(heldByFulfill, async () => {
      const { p, id } = await committedHtlc();
      const before = startBalances(p);
      await p.fulfill('b', id); // unsigned when a's shutdown arrives: b owes its shutdown until it signs
      p.queue.b = [];
      assert.equal((await p.apply('a', { type: 'shutdown', scriptPubKey: SCRIPT_A, feeratePerKw: 1000 })).failure, undefined);
      await p.deliver('a');
      assert.equal(p.state('b').shutdown?.sentShutdown, false, 'b waits for its fulfill to be signed');
      if (restart) {
        p.queue.a = [];
        await p.apply('a', { type: 'disconnected' });
        await p.reload('b');
      } else {
        await p.cut();
      }
      assert.equal(p.state('b').pendingResolutions?.length, 1);
      const from = p.trace.length;
      await p.reconnect();
      assert.equal(p.state('b').shutdown?.sentShutdown, false, 'the re-sent fulfill is unsigned: the shutdown still waits');
      await p.settle();
      await p.deliverAll();
      const fromB = p.trace
        .slice(from)
        .filter((t) => t.from === 'b')
        .map((t) => t.type);
      assert.ok(
        fromB.indexOf(130) < fromB.indexOf(132) && fromB.indexOf(132) < fromB.indexOf(38),
        `fulfill, its signature, then shutdown (${fromB.join(',')})`,
      );
      assert.equal(p.state('a').phase, 'closed');
      assert.equal(p.state('b').phase, 'closed');
      assert.equal(p.balances('b').ours, before.b + AMOUNT);
      assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
    });

    const heldByAdd =
      `our shutdown held back by an unsigned add the disconnect reversed is` +
      ` sent right after the reestablish${afterRestart(restart)}; the close completes`;
    it(heldByAdd, async () => {
      const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
      assert.equal((await p.add('a', AMOUNT)).failure, undefined);
      p.queue.a = []; // the add never reached b
      assert.equal((await p.apply('b', { type: 'shutdown', scriptPubKey: SCRIPT_A, feeratePerKw: 1000 })).failure, undefined);
      await p.deliver('b');
      assert.equal(p.state('a').shutdown?.sentShutdown, false, 'a holds its shutdown back: its add is unsigned');
      if (restart) {
        p.queue.a = [];
        await p.apply('b', { type: 'disconnected' });
        await p.reload('a');
        await p.driver('a').replay();
      } else {
        await p.cut();
      }
      assert.equal(p.ep.a.events.filter((e) => e.type === 'htlc_unsent').length, 1, 'the add is reported unsent');
      const from = p.trace.length;
      await p.reconnect();
      // nothing of a's is left to sign, so no signature would ever release the shutdown: the reestablish sends it
      assert.ok(
        p.trace.slice(from).some((t) => t.from === 'a' && t.type === 38),
        'a sent its shutdown after the reestablish',
      );
      const onDisk = (await loadChannels(p.ep.a.store))[0]!;
      assert.equal(onDisk.shutdown?.sentShutdown, true, 'persisted with it');
      await p.settle();
      await p.deliverAll();
      assert.equal(p.state('a').phase, 'closed');
      assert.equal(p.state('b').phase, 'closed');
      assert.equal(bytesToHex(p.state('a').shutdown!.closingTx!), bytesToHex(p.state('b').shutdown!.closingTx!));
      assert.equal(p.balances('b').ours, 100_000_000n, 'the unsent add moved nothing');
      assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
    });
  }
});
