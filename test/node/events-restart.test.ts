/**
 * The persisted event queue through the package entry: two embedded nodes, a channel, AMP and BOLT 11 payments.
 * The payee leaves some events unacknowledged and restarts: it gets exactly those again, with the same ids, in
 * order. Then both nodes are put back, after a payment, into the state a kill between two writes leaves (the
 * invoice registry or the payment store wrote the payment's end, the queue not yet its event): the event comes after
 * the restart, once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openDiskStore } from '../../db/store.js';
import {
  createChainBackend,
  createNode,
  silentLogger,
  type AmpNode,
  type BcoinChainBackend,
  type CreateNodeOptions,
  type NodeEvent,
} from '../../node/index.js';
import { until } from './embedded-fixture.js';

const ELSEWHERE = 'bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5';
const SAT = 1000n;
const dir = mkdtempSync(join(tmpdir(), 'ampnode-events-'));
let chain: BcoinChainBackend | undefined;
const running = new Set<AmpNode>();

after(async () => {
  for (const n of running) await n.stop();
  await chain?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The queue's records as they are on disk (the node stopped: LevelDB allows one owner). */
async function snapshotQueue(datadir: string): Promise<[Uint8Array, Uint8Array][]> {
  const store = await openDiskStore(join(datadir, 'db'));
  const out: [Uint8Array, Uint8Array][] = [];
  for await (const kv of store.sublevel('events').entries(new Uint8Array(0))) out.push(kv);
  await store.close();
  return out;
}

async function restoreQueue(datadir: string, records: [Uint8Array, Uint8Array][]): Promise<void> {
  const store = await openDiskStore(join(datadir, 'db'));
  const events = store.sublevel('events');
  const now: Uint8Array[] = [];
  for await (const [k] of events.entries(new Uint8Array(0))) now.push(k);
  await events.batch([
    ...now.map((key) => ({ type: 'del' as const, key })),
    ...records.map(([key, value]) => ({ type: 'put' as const, key, value })),
  ]);
  await store.close();
}

const label = (e: NodeEvent): string =>
  e.type === 'payment_received'
    ? `${e.type}:${e.kind}:${e.amountMsat / SAT}`
    : e.type === 'payment_succeeded'
      ? `${e.type}:${e.amountMsat / SAT}`
      : e.type;

test(
  'unacknowledged events come again after a restart, and an event lost between two writes comes once',
  { timeout: 240_000 },
  async () => {
    chain = await createChainBackend();
    const mine = async (n: number, address = ELSEWHERE): Promise<void> => {
      await chain!.generateToAddress(n, address);
      await chain!.synced();
    };
    const opts: Omit<CreateNodeOptions, 'datadir'> = { chain, logger: silentLogger(), policy: { minimumDepth: 1, timeoutMs: 60_000 } };
    const start = async (name: string): Promise<AmpNode> => {
      const n = await createNode({ ...opts, datadir: join(dir, name) });
      running.add(n);
      return n;
    };
    const stop = async (n: AmpNode): Promise<void> => {
      await n.stop();
      running.delete(n);
    };
    const linked = async (a: AmpNode, b: AmpNode): Promise<void> => {
      if (!a.listPeers().some((p) => p.nodeId === b.nodeId)) await a.connect(b.uri);
      await until(() => a.channels().some((c) => c.active) && b.channels().some((c) => c.active), 'the channel active on both');
      await until(() => a.routingChannels().some((c) => c.peerPolicy !== undefined), "B's channel_update at A");
    };

    let a = await start('a');
    let b = await start('b');
    await mine(2, await a.newAddress());
    await mine(432 - chain.tip().height);
    await a.connect(b.uri);
    await a.openChannel(b.nodeId, 400_000n);
    await mine(1);
    await linked(a, b);
    assert.equal(b.status().synced, true);

    const amp = await b.addInvoice({ amp: true, memo: 'events' });
    const setIds: string[] = [];
    for (const amountSat of [30_000n, 20_000n]) {
      const p = await a.payInvoice(amp.paymentRequest, { amountMsat: amountSat * SAT, maxShardMsat: 12_000n * SAT });
      assert.equal(p.status, 'succeeded', p.failureDetail);
      setIds.push(Buffer.from(p.setId!).toString('hex'));
    }
    const plain = await b.addInvoice({ amountMsat: 7_000n * SAT });
    assert.equal((await a.payInvoice(plain.paymentRequest)).status, 'succeeded');

    const expectedB = [
      'channel_pending',
      'channel_ready',
      'payment_received:amp:30000',
      'payment_received:amp:20000',
      'payment_received:regular:7000',
    ];
    await until(() => b.pendingEvents() === expectedB.length, 'five events at B');
    // the iterator acknowledges an event when the loop asks for the next: leaving after the third leaves it waiting
    const seen: NodeEvent[] = [];
    for await (const e of b.events()) {
      seen.push(e);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen.map(label), expectedB.slice(0, 3));
    assert.deepEqual(
      seen.map((e) => e.eventId),
      [0n, 1n, 2n],
    );
    const firstSet = seen[2]!;
    assert.ok(firstSet.type === 'payment_received');
    assert.equal(firstSet.setId, setIds[0]);
    assert.equal(firstSet.paymentAddr, Buffer.from(amp.invoice.paymentAddr).toString('hex'));
    assert.equal(b.pendingEvents(), 3);

    await until(() => a.pendingEvents() === 5, 'five events at A');
    await a.eventHandled(0n); // channel_pending; A leaves the rest

    // a restart: exactly the unacknowledged events again, same ids, same order
    await stop(b);
    await stop(a);
    b = await start('b');
    a = await start('a');
    const again = [b.nextEvent()!];
    assert.equal(again[0]!.eventId, 2n);
    await b.eventHandled(2n);
    again.push(b.nextEvent()!);
    assert.deepEqual(again.map(label), expectedB.slice(2, 4));
    assert.equal(b.pendingEvents(), 2, 'the last two are still waiting');
    assert.deepEqual([a.nextEvent()?.type, a.pendingEvents()], ['channel_ready', 4]);

    // one more payment, then both nodes' queues put back to what they held before it: what a kill after the registry's
    // (B) and the payment store's (A) write, before the queue's, leaves on disk
    await stop(b);
    await stop(a);
    const queueA = await snapshotQueue(join(dir, 'a'));
    const queueB = await snapshotQueue(join(dir, 'b'));
    b = await start('b');
    a = await start('a');
    await linked(a, b);
    const late = await b.addInvoice({ amountMsat: 3_000n * SAT });
    assert.equal((await a.payInvoice(late.paymentRequest)).status, 'succeeded');
    await until(() => b.pendingEvents() === 3 && a.pendingEvents() === 5, 'the late payment queued at both');
    await stop(b);
    await stop(a);
    await restoreQueue(join(dir, 'a'), queueA);
    await restoreQueue(join(dir, 'b'), queueB);
    b = await start('b');
    a = await start('a');
    await until(() => b.pendingEvents() === 3 && a.pendingEvents() === 5, 'the reconciled queues');
    const restB: string[] = [];
    for (let e = b.nextEvent(); e !== undefined; e = b.nextEvent()) {
      restB.push(`${e.eventId}:${label(e)}`);
      await b.eventHandled(e.eventId);
    }
    assert.deepEqual(restB, ['3:payment_received:amp:20000', '4:payment_received:regular:7000', '5:payment_received:regular:3000']);
    const restA: string[] = [];
    for (let e = a.nextEvent(); e !== undefined; e = a.nextEvent()) {
      restA.push(label(e));
      await a.eventHandled();
    }
    assert.deepEqual(restA, [
      'channel_ready',
      'payment_succeeded:30000',
      'payment_succeeded:20000',
      'payment_succeeded:7000',
      'payment_succeeded:3000',
    ]);

    // all acknowledged: a restart delivers nothing; and a stopped node's iterator ends
    await stop(b);
    b = await start('b');
    assert.equal(b.nextEvent(), undefined);
    const loop = (async () => {
      let n = 0;
      for await (const _e of b.events()) n++;
      return n;
    })();
    await stop(b);
    assert.equal(await loop, 0);
    await stop(a);
  },
);
