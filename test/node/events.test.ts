/**
 * The persisted event queue on its own (node/events.ts): order, acknowledgement, redelivery after a reopen, the
 * memory window over a longer queue, deduplication against each source's cursor or marker, and the states a kill
 * between a source's write and the queue's leaves behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openMemoryStore, type KvStore } from '../../db/store.js';
import type { SettleEvent } from '../../htlc/invoices/index.js';
import type { PaymentRecord } from '../../htlc/router/payments.js';
import type { ChannelInfo } from '../../node/channels/manager.js';
import { channelKindsOf, EventQueue, WINDOW } from '../../node/events.js';

function settle(n: bigint, setId?: number): SettleEvent {
  return {
    settleIndex: n,
    paymentAddr: new Uint8Array(32).fill(7),
    paymentHash: new Uint8Array(32).fill(Number(n % 250n)),
    kind: setId === undefined ? 'regular' : 'amp',
    amountMsat: 1000n * n,
    ...(setId !== undefined ? { setId: new Uint8Array(32).fill(setId) } : {}),
    customRecords: [{ type: 65537n, value: new Uint8Array([1, 2, 3]) }],
  };
}

function payment(creationIndex: bigint, status: PaymentRecord['status']): PaymentRecord {
  const id = new Uint8Array(32).fill(Number(creationIndex));
  return {
    id,
    creationIndex,
    kind: 'bolt11',
    target: new Uint8Array(33),
    amountMsat: 5000n,
    paymentHash: id,
    request: {},
    feeLimitMsat: 100n,
    createdAt: 0,
    status,
    ...(status === 'failed' ? { failureReason: 'no_route' as const, failureDetail: 'none' } : {}),
    ...(status === 'succeeded' ? { preimage: new Uint8Array(32).fill(9) } : {}),
    attempts:
      status === 'succeeded'
        ? [
            {
              attemptId: 1n,
              amountMsat: 5000n,
              totalAmountMsat: 5012n,
              paymentHash: id,
              route: { totalAmountMsat: 5012n, totalTimeLock: 100, hops: [] },
              status: 'settled',
            },
          ]
        : [],
  } as PaymentRecord;
}

function channel(state: ChannelInfo['state'], extra: Partial<ChannelInfo> = {}): ChannelInfo {
  return {
    channelId: 'ab'.repeat(32),
    temporaryChannelId: 'cd'.repeat(32),
    peer: '02'.padEnd(66, '1'),
    keyIndex: 0,
    opener: 'local',
    channelType: 'anchors' as ChannelInfo['channelType'],
    capacitySat: 100_000n,
    localBalanceMsat: 0n,
    remoteBalanceMsat: 0n,
    pendingHtlcs: 0,
    toSelfDelay: 144,
    feeratePerKw: 253,
    state,
    active: false,
    ...extra,
  };
}

async function drain(q: EventQueue): Promise<string[]> {
  const seen: string[] = [];
  for (let e = q.nextEvent(); e !== undefined; e = q.nextEvent()) {
    seen.push(`${e.eventId}:${e.type}`);
    await q.eventHandled(e.eventId);
  }
  return seen;
}

async function reopen(store: KvStore): Promise<EventQueue> {
  const q = new EventQueue(store);
  await q.load();
  return q;
}

test('events keep their order and types (bigints, hex) and stay until acknowledged, across a reopen', async () => {
  const store = await openMemoryStore();
  const q = await reopen(store);
  assert.equal(q.nextEvent(), undefined);
  await q.onSettled(settle(1n));
  await q.onSettled(settle(2n, 5));
  await q.onPaymentEnded(payment(1n, 'succeeded'));
  const head = q.nextEvent();
  assert.ok(head !== undefined && head.type === 'payment_received');
  assert.equal(head.eventId, 0n);
  assert.equal(head.amountMsat, 1000n);
  assert.deepEqual(head.customRecords, [{ type: 65537n, valueHex: '010203' }]);
  assert.equal(q.pending, 3);
  await q.eventHandled(0n);
  await q.close();

  const again = await reopen(store);
  assert.equal(again.pending, 2);
  const first = again.nextEvent();
  assert.ok(first !== undefined && first.type === 'payment_received');
  assert.equal(first.eventId, 1n);
  assert.equal(first.setId, '05'.repeat(32));
  await again.eventHandled();
  const paid = again.nextEvent();
  assert.ok(paid !== undefined && paid.type === 'payment_succeeded');
  assert.equal(paid.feeMsat, 12n);
  assert.equal(paid.preimage, '09'.repeat(32));
  await again.eventHandled();
  assert.equal(again.nextEvent(), undefined);
  assert.equal(again.pending, 0);
  // ids are never reused after a reopen
  await again.onSettled(settle(3n));
  assert.equal((await reopen(store)).nextEvent()?.eventId, 3n);
});

test('eventHandled refuses an empty queue and an id that is not the head', async () => {
  const q = await reopen(await openMemoryStore());
  await assert.rejects(q.eventHandled(), { code: 'ERR_EVENT_NOT_PENDING' });
  await q.onSettled(settle(1n));
  await q.onSettled(settle(2n));
  await assert.rejects(q.eventHandled(1n), { code: 'ERR_EVENT_NOT_PENDING' });
  assert.equal(q.nextEvent()?.eventId, 0n, 'nothing was acknowledged');
  await q.eventHandled(0n);
  assert.equal(q.nextEvent()?.eventId, 1n);
});

test('a queue longer than the memory window is delivered whole, in order, and reloads from disk', async () => {
  const store = await openMemoryStore();
  const q = await reopen(store);
  const n = WINDOW * 3 + 5;
  for (let i = 1; i <= n; i++) await q.onSettled(settle(BigInt(i)));
  assert.equal(q.pending, n);
  const half = [];
  for (let i = 0; i < WINDOW + 3; i++) {
    half.push(q.nextEvent()!.eventId);
    await q.eventHandled();
  }
  await q.close();
  const again = await reopen(store);
  const rest = await drain(again);
  const ids = [...half.map(Number), ...rest.map((s) => Number(s.split(':')[0]))];
  assert.deepEqual(
    ids,
    Array.from({ length: n }, (_, i) => i),
  );
});

test('waitNextEvent resolves when an event is queued, and rejects when the queue closes', async () => {
  const q = await reopen(await openMemoryStore());
  const waiting = q.waitNextEvent();
  await q.onSettled(settle(1n));
  assert.equal((await waiting).eventId, 0n);
  await q.eventHandled();
  const never = q.waitNextEvent();
  await q.close();
  await assert.rejects(never, { code: 'ERR_NODE_NOT_STARTED' });
});

test('settles at or below the cursor are not queued twice (the registry replays from the cursor at start)', async () => {
  const store = await openMemoryStore();
  const q = await reopen(store);
  await q.onSettled(settle(1n));
  await q.onSettled(settle(2n));
  assert.equal(await q.settleCursor(), 2n);
  await q.close();
  const again = await reopen(store);
  for (const i of [1n, 2n, 3n]) await again.onSettled(settle(i)); // a replay from an older cursor, then a new one
  assert.deepEqual(await drain(again), ['0:payment_received', '1:payment_received', '2:payment_received']);
});

test('payments: the live event and the reconcile at start queue each ended payment once; the floor rises', async () => {
  const store = await openMemoryStore();
  const q = await reopen(store);
  await q.onPaymentEnded(payment(1n, 'succeeded')); // live
  await q.onPaymentEnded(payment(1n, 'succeeded')); // a second report of the same end
  await q.onPaymentEnded(payment(2n, 'in_flight')); // not ended: nothing
  // killed after payment 3's record was written, before its event: the reconcile finds it
  await q.reconcilePayments([payment(1n, 'succeeded'), payment(2n, 'in_flight'), payment(3n, 'failed')]);
  assert.equal(await q.paymentFloor(), 2n, 'payment 2 is in flight: the floor stops at it');
  await q.reconcilePayments([payment(1n, 'succeeded'), payment(2n, 'failed'), payment(3n, 'failed')]);
  assert.equal(await q.paymentFloor(), 4n);
  const seen = [];
  for (let e = q.nextEvent(); e !== undefined; e = q.nextEvent()) {
    seen.push(`${e.type}:${'paymentId' in e ? e.paymentId.slice(0, 2) : ''}`);
    await q.eventHandled();
  }
  assert.deepEqual(seen, ['payment_succeeded:01', 'payment_failed:03', 'payment_failed:02']);
  // below the floor: already queued, never again
  await q.onPaymentEnded(payment(1n, 'succeeded'));
  await q.reconcilePayments([payment(3n, 'failed')]);
  assert.equal(q.nextEvent(), undefined);
});

test('channels: each kind once per channel; the reconcile queues what a state has earned and was missed', async () => {
  assert.deepEqual(channelKindsOf(channel('awaiting_funding_signed')), []);
  assert.deepEqual(channelKindsOf(channel('awaiting_ready', { fundingOutpoint: 'aa:0' })), ['pending']);
  assert.deepEqual(channelKindsOf(channel('normal', { fundingOutpoint: 'aa:0', shortChannelId: '1x1x0' })), ['pending', 'ready']);
  assert.deepEqual(channelKindsOf(channel('closed', { fundingOutpoint: 'aa:0', shortChannelId: '1x1x0', closingTxid: 'bb' })), [
    'pending',
    'ready',
    'closed',
  ]);
  assert.deepEqual(channelKindsOf(channel('closed')), ['closed'], 'an opening abandoned before funding');

  const q = await reopen(await openMemoryStore());
  const pending = channel('awaiting_ready', { fundingOutpoint: 'aa:0' });
  await q.onChannel('pending', pending);
  // killed before channel_ready reached the queue: the reconcile at start queues it, and pending not again
  const open = channel('normal', { fundingOutpoint: 'aa:0', shortChannelId: '1x1x0' });
  await q.reconcileChannels([open]);
  await q.onChannel('ready', open);
  await q.onChannel('closed', open, { cooperative: false, txid: 'cc'.repeat(32) });
  await q.onChannel('closed', open, { cooperative: true });
  const seen = [];
  for (let e = q.nextEvent(); e !== undefined; e = q.nextEvent()) {
    seen.push(e);
    await q.eventHandled();
  }
  assert.deepEqual(
    seen.map((e) => e.type),
    ['channel_pending', 'channel_ready', 'channel_closed'],
  );
  const closed = seen[2]!;
  assert.ok(closed.type === 'channel_closed');
  assert.equal(closed.cooperative, false);
  assert.equal(closed.closingTxid, 'cc'.repeat(32));
});
