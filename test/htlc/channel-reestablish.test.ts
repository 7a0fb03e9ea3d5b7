/**
 * Disconnects (and restarts from the store) at every step of the HTLC
 * dance, followed by channel_reestablish: whatever was lost is retransmitted
 * in the right order or forgotten on both sides alike, and the payment then
 * completes with exact balances. Also: the reestablish numbers themselves,
 * and the data-loss / bad-secret answers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pair, type Side } from './channel-harness.js';
import { ourSecret } from '../../htlc/channel/keys.js';
import type { ChannelReestablish } from '../../wire/channel-messages.js';
import { ATTRIBUTION_DATA_LENGTH } from '../../onion/index.js';
import { bytesToHex } from '../../wire/bytes.js';
import { randomBytes } from '../../wire/crypto.js';

type Action = { do: 'add' | 'sign' | 'fulfill' | 'deliver'; side: Side };

const AMOUNT = 7_000_000n;

/** a pays b: add, both sign/revoke, b fulfills, both sign/revoke. */
const DANCE: Action[] = [
  { do: 'add', side: 'a' },
  { do: 'sign', side: 'a' },
  { do: 'deliver', side: 'a' }, // update_add_htlc
  { do: 'deliver', side: 'a' }, // commitment_signed → b revokes
  { do: 'sign', side: 'b' },
  { do: 'deliver', side: 'b' }, // revoke_and_ack
  { do: 'deliver', side: 'b' }, // commitment_signed → a revokes
  { do: 'deliver', side: 'a' }, // revoke_and_ack → b may settle
  { do: 'fulfill', side: 'b' },
  { do: 'sign', side: 'b' },
  { do: 'deliver', side: 'b' }, // update_fulfill_htlc
  { do: 'deliver', side: 'b' }, // commitment_signed → a revokes
  { do: 'sign', side: 'a' },
  { do: 'deliver', side: 'a' }, // revoke_and_ack
  { do: 'deliver', side: 'a' }, // commitment_signed → b revokes
  { do: 'deliver', side: 'b' }, // revoke_and_ack → a learns it is fulfilled
];

/** The same with both sides signing at once (commitment_signed crossing). */
const CROSSING: Action[] = [
  { do: 'add', side: 'a' },
  { do: 'sign', side: 'a' },
  { do: 'deliver', side: 'a' }, // add
  { do: 'deliver', side: 'a' }, // commitment_signed → b: raa
  { do: 'sign', side: 'b' }, // b: commitment_signed
  { do: 'add', side: 'a' },
  { do: 'deliver', side: 'b' }, // raa
  { do: 'sign', side: 'a' }, // a signs again (its second add) while b's commitment_signed is in flight
  { do: 'deliver', side: 'b' }, // commitment_signed → a: raa
  { do: 'deliver', side: 'a' }, // add #2
  { do: 'deliver', side: 'a' }, // commitment_signed → b: raa
  { do: 'deliver', side: 'a' }, // raa
  { do: 'deliver', side: 'b' }, // raa
];

async function runTo(p: Pair, script: Action[], n: number): Promise<void> {
  for (const a of script.slice(0, n)) {
    if (a.do === 'add') assert.equal((await p.add(a.side, AMOUNT)).failure, undefined);
    else if (a.do === 'sign') assert.equal((await p.apply(a.side, { type: 'sign' })).failure, undefined);
    else if (a.do === 'fulfill') assert.equal((await p.fulfill(a.side, 0n)).failure, undefined);
    else await p.deliver(a.side);
    p.checkConserved();
  }
}

/** After a reconnect: re-offer forgotten adds, settle, fulfill what is left, settle; then check the outcome. */
async function complete(p: Pair, htlcs: number): Promise<void> {
  // adds forgotten by the disconnect (or never persisted before a restart) are offered again, with the same ids
  for (let id = p.state('a').ourLog.nextHtlcId; id < BigInt(htlcs); id++) assert.equal((await p.add('a', AMOUNT)).failure, undefined);
  await p.settle();
  for (const h of p.settleable('b')) assert.equal((await p.fulfill('b', h.id)).failure, undefined);
  await p.settle();
  p.checkConsistent();
  assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
  assert.equal(p.state('a').localCommit.htlcs.length, 0);
  const bStart = p.opener === 'a' ? 100_000_000n : 900_000_000n;
  assert.equal(p.balances('b').ours, bStart + BigInt(htlcs) * AMOUNT);
  assert.equal(p.balances('a').theirs, bStart + BigInt(htlcs) * AMOUNT);
  // the channel keeps working
  assert.equal((await p.add('b', 1_000_000n)).failure, undefined);
  await p.settle();
  p.checkConsistent();
}

for (const [name, script, htlcs] of [
  ['add/fulfill dance', DANCE, 1],
  ['crossing commitment_signed', CROSSING, 2],
] as const) {
  describe(`reestablish: cut at every step of the ${name}`, () => {
    for (let n = 0; n <= script.length; n++) {
      it(`cut after step ${n}, then reestablish`, async () => {
        const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 100_000_000n });
        await runTo(p, script, n);
        await p.cut();
        await p.reconnect();
        await complete(p, htlcs);
      });
      for (const restarted of ['a', 'b'] as const) {
        it(`cut after step ${n}, ${restarted} restarts from its store, then reestablish`, async () => {
          // b opens and pushes 100 000 sat to a
          const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'b', pushMsat: 100_000_000n });
          await runTo(p, script, n);
          await p.cut();
          await p.reload(restarted);
          await p.reconnect();
          await complete(p, htlcs);
        });
      }
    }
  });
}

describe('reestablish: retransmission', () => {
  it('re-sends lost updates then commitment_signed, and a lost revoke_and_ack, in the order first sent', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
    await runTo(p, CROSSING, 9); // a has queued: update_add_htlc #1, commitment_signed, then revoke_and_ack
    assert.deepEqual(
      p.queue.a.map((m) => m.type),
      [128, 132, 133],
    );
    await p.cut();
    await p.apply('a', { type: 'connected' });
    await p.apply('b', { type: 'connected' });
    await p.deliver('b'); // b's channel_reestablish reaches a
    assert.deepEqual(
      p.queue.a.map((m) => m.type),
      [136, 128, 132, 133],
    );
    const add = p.queue.a[1]!;
    assert.equal(add.type === 128 && add.id, 1n);
    await p.deliverAll();
    await complete(p, 2);
  });

  it('re-sends revoke_and_ack before commitment_signed when that was the order', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
    await runTo(p, DANCE, 7); // a revoked (raa queued); now a adds and signs
    await p.add('a', AMOUNT);
    await p.apply('a', { type: 'sign' });
    assert.deepEqual(
      p.queue.a.map((m) => m.type),
      [133, 128, 132],
    );
    await p.cut();
    await p.apply('a', { type: 'connected' });
    await p.apply('b', { type: 'connected' });
    await p.deliver('b');
    assert.deepEqual(
      p.queue.a.map((m) => m.type),
      [136, 133, 128, 132],
    );
    await p.deliverAll();
    await p.settle();
    for (const h of p.settleable('b')) await p.fulfill('b', h.id);
    await p.settle();
    p.checkConsistent();
    assert.equal(p.balances('b').ours, 100_000_000n + 2n * AMOUNT);
  });
});

describe('reestablish: attribution data', () => {
  for (const kind of ['fail', 'fulfill'] as const) {
    it(`an update_${kind === 'fail' ? 'fail' : 'fulfill'}_htlc lost with a restart is sent again with its attribution data`, async () => {
      const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
      await p.add('a', AMOUNT);
      await p.settle();
      const [h] = p.settleable('b');
      assert.ok(h !== undefined);
      const attributionData = randomBytes(ATTRIBUTION_DATA_LENGTH);
      await p.apply(
        'b',
        kind === 'fail'
          ? { type: 'fail_htlc', id: h.id, reason: new Uint8Array([1, 2, 3]), attributionData }
          : { type: 'fulfill_htlc', id: h.id, paymentPreimage: p.preimages.get(bytesToHex(h.paymentHash))!, attributionData },
      );
      await p.apply('b', { type: 'sign' });
      // the update and its commitment_signed never reach a; b restarts from its store
      await p.cut();
      await p.reload('b');
      await p.apply('a', { type: 'connected' });
      await p.apply('b', { type: 'connected' });
      await p.deliver('a'); // a's channel_reestablish reaches b, which sends again what a lacks
      const again = p.queue.b.find((m) => m.type === (kind === 'fail' ? 131 : 130));
      assert.ok(again !== undefined && (again.type === 130 || again.type === 131), 'the update is sent again');
      assert.deepEqual(again.attributionData, attributionData);
      await p.deliverAll();
      await p.settle();
      const ev = p.ep.a.events.find((e) => e.type === (kind === 'fail' ? 'htlc_failed' : 'htlc_fulfilled'));
      assert.ok(ev !== undefined && (ev.type === 'htlc_failed' || ev.type === 'htlc_fulfilled'));
      assert.deepEqual(ev.attributionData, attributionData, 'a hands the attribution data on with the event');
      p.checkConsistent();
    });
  }
});

describe('events survive a crash', () => {
  it('an HTLC fulfilled while the process dies is handed out again after the restart', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
    await runTo(p, DANCE, 13); // a has revoked and signed; b's revoke_and_ack is next
    await p.deliver('a'); // a's revoke_and_ack
    await p.deliver('a'); // a's commitment_signed → b revokes
    p.ep.a.crashOn = 'htlc_fulfilled';
    await assert.rejects(p.deliver('b')); // a persists, then dies handling the event
    assert.ok(!p.ep.a.events.some((e) => e.type === 'htlc_fulfilled'));
    p.ep.a.crashOn = undefined;
    await p.cut();
    await p.reload('a');
    // the HTLC is gone from the commitments and the logs: only the outbox remembers the preimage
    assert.equal(p.state('a').localCommit.htlcs.length, 0);
    await p.driver('a').replay();
    const ev = p.ep.a.events.find((e) => e.type === 'htlc_fulfilled');
    assert.ok(ev?.type === 'htlc_fulfilled' && ev.id === 0n);
    assert.equal(p.state('a').outbox, undefined);
    await p.reconnect();
    p.checkConsistent();
  });

  it('adds forgotten by a restart are reported as unsent', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
    await runTo(p, DANCE, 4); // b revoked; a has not received it
    await p.add('a', AMOUNT); // a second add, never signed
    await p.deliver('b'); // a takes b's revoke_and_ack and persists (the unsigned add is in the record)
    const st = p.state('a');
    assert.equal(
      st.ourLog.base + st.ourLog.entries.length - (st.remoteNextCommit ?? st.remoteCommit).ourLogIndex,
      1,
      'one unsigned update',
    );
    await p.cut();
    p.ep.a.events = []; // the process dies here: what the old instance reported is gone
    await p.reload('a');
    await p.driver('a').replay();
    const unsent = p.ep.a.events.filter((e) => e.type === 'htlc_unsent');
    assert.equal(unsent.length, 1);
    assert.ok(unsent[0]?.type === 'htlc_unsent' && unsent[0].htlc.htlcId === 1n);
    await p.reconnect();
    await complete(p, 2);
  });

  it('an incoming HTLC (with its onion) is handed out again after a crash', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 100_000_000n });
    p.ep.b.crashOn = 'htlc_incoming';
    await runTo(p, DANCE, 7);
    await assert.rejects(p.deliver('a')); // a's revoke_and_ack: b persists, then dies
    p.ep.b.crashOn = undefined;
    await p.reload('b');
    await p.driver('b').replay();
    const ev = p.ep.b.events.find((e) => e.type === 'htlc_incoming');
    assert.ok(ev?.type === 'htlc_incoming' && ev.htlc.onionRoutingPacket.length === 1366 && ev.htlc.amountMsat === AMOUNT);
  });
});

describe('reestablish: numbers and proofs', () => {
  it('sends next_commitment_number, next_revocation_number and the last secret as lnd expects', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    await p.cut();
    await p.apply('a', { type: 'connected' });
    const first = p.queue.a[0] as ChannelReestablish;
    assert.equal(first.type, 136);
    assert.equal(first.nextCommitmentNumber, 1n);
    assert.equal(first.nextRevocationNumber, 0n);
    assert.deepEqual(first.yourLastPerCommitmentSecret, new Uint8Array(32));
    await p.apply('b', { type: 'connected' });
    await p.deliverAll();
    // both at commitment 0: channel_ready was re-sent, and harmlessly accepted
    assert.deepEqual([...p.ep.a.failures, ...p.ep.b.failures], []);
    await p.add('a', 1_000_000n);
    await p.settle();
    await p.cut();
    await p.apply('a', { type: 'connected' });
    const m = p.queue.a[0] as ChannelReestablish;
    assert.equal(m.nextCommitmentNumber, 2n);
    assert.equal(m.nextRevocationNumber, 1n);
    assert.deepEqual(m.yourLastPerCommitmentSecret, ourSecret(p.ep.b.secrets, 0n));
  });

  it('answers a wrong your_last_per_commitment_secret with an error, state unchanged', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    await p.add('a', 1_000_000n);
    await p.settle();
    await p.cut();
    await p.apply('a', { type: 'connected' });
    await p.apply('b', { type: 'connected' });
    const m = p.queue.a.shift() as ChannelReestablish;
    const before = p.state('b');
    const r = await p.apply('b', { type: 'message', msg: { ...m, yourLastPerCommitmentSecret: new Uint8Array(32).fill(9) } });
    assert.equal(r.failure?.code, 'ERR_SYNC');
    assert.equal(r.failure?.level, 'error');
    assert.equal(p.state('b'), before);
  });

  it('detects that it lost state when the peer proves a newer revocation', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    const stale = p.state('b');
    await p.add('a', 1_000_000n);
    await p.settle();
    await p.add('a', 1_000_000n);
    await p.settle();
    await p.cut();
    // b comes back with an old copy of its state
    p.ep.b.driver = (await import('../../htlc/channel/driver.js')).ChannelDriver.restore(p.adapters('b'), stale);
    await p.apply('a', { type: 'connected' });
    await p.apply('b', { type: 'connected' });
    const r = await p.deliver('a');
    assert.equal(r.failure?.code, 'ERR_DATA_LOSS');
    assert.ok(r.events.some((e) => e.type === 'data_loss'));
  });

  it('refuses channel messages before channel_reestablish', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    await p.cut();
    const r = await p.apply('b', { type: 'message', msg: { type: 134, channelId: p.state('b').channelId, feeratePerKw: 3000 } });
    assert.equal(r.failure?.code, 'ERR_SYNC');
  });
});
