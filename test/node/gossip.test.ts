/**
 * Gossip between embedded nodes (node/gossip.ts over real connections): A–B and B–C opened as public channels on
 * one embedded chain. After 6 confirmations each pair exchanges announcement_signatures, B announces both channels,
 * and A learns B–C, C and B's node announcements from gossip alone; A then pays C spontaneously (AMP) with no route
 * hint, over B. B raises its fee on B–C: A hears the new update by gossip and pays it at the first attempt. The graph
 * survives a restart of A. A private channel is never announced.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createChainBackend, createNode, silentLogger, type AmpNode, type BcoinChainBackend } from '../../node/index.js';
import { makeShortChannelId } from '../../wire/gossip.js';
import { until } from './embedded-fixture.js';

const ELSEWHERE = 'bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5';
const dir = mkdtempSync(join(tmpdir(), 'ampnode-gossip-'));
let chain: BcoinChainBackend | undefined;
const running = new Set<AmpNode>();

after(async () => {
  for (const n of running) await n.stop();
  await chain?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('public channels announced by both ends, learnt by gossip alone, and paid over', { timeout: 240_000 }, async () => {
  chain = await createChainBackend();
  const mine = async (n: number, address = ELSEWHERE): Promise<void> => {
    await chain!.generateToAddress(n, address);
    await chain!.synced();
  };
  const start = async (name: string): Promise<AmpNode> => {
    const n = await createNode({
      datadir: join(dir, name),
      chain: chain!,
      logger: silentLogger(),
      policy: { minimumDepth: 1, timeoutMs: 60_000 },
      invoices: { acceptAmp: true },
      gossip: { alias: `node-${name}`, chanDisableTimeoutMs: 300 },
    });
    running.add(n);
    return n;
  };
  let a = await start('a');
  const b = await start('b');
  const c = await start('c');
  await mine(1, await a.newAddress());
  await mine(1, await b.newAddress());
  await mine(432 - chain.tip().height);
  await a.connect(b.uri);
  await b.connect(c.uri);
  await c.connect(a.uri); // a private channel C–A below: never announced
  // B holds its own announcements back until the peer's has reached it: the race in which the other end announces
  // first, after which B's channel_update and node_announcement must still go out
  const announceOwn = b.gossip.announceChannel.bind(b.gossip);
  b.gossip.announceChannel = async (ann, ours, theirs) => {
    await until(() => b.gossip.graph.channel(ann.shortChannelId) !== undefined, "the peer's announcement at B first");
    return announceOwn(ann, ours, theirs);
  };
  const ab = await a.openChannel(b.nodeId, 500_000n, { announce: true });
  const bc = await b.openChannel(c.nodeId, 400_000n, { announce: true });
  await mine(1);
  const ca = await a.openChannel(c.nodeId, 100_000n, { pushMsat: 0n });
  await mine(1);
  const active = (n: AmpNode, id: string): boolean => n.channels().some((x) => x.channelId === id && x.active);
  await until(() => active(a, ab.channelId) && active(b, bc.channelId) && active(a, ca.channelId), 'the channels active');
  const scidOf = (n: AmpNode, id: string): bigint => {
    const [h, t, o] = n
      .channels()
      .find((x) => x.channelId === id)!
      .shortChannelId!.split('x')
      .map(Number) as [number, number, number];
    return makeShortChannelId(h, t, o);
  };
  const abScid = scidOf(a, ab.channelId);
  const bcScid = scidOf(b, bc.channelId);
  const caScid = scidOf(a, ca.channelId);

  assert.equal(a.gossip.graph.channel(bcScid), undefined, 'nothing is announced before 6 confirmations');
  await mine(5);
  // both ends hold each announcement once they exchanged announcement_signatures
  await until(() => b.gossip.graph.channel(abScid) !== undefined && b.gossip.graph.channel(bcScid) !== undefined, 'B announced both');
  await until(
    () => a.gossip.graph.channel(abScid) !== undefined && c.gossip.graph.channel(bcScid) !== undefined,
    'A and C announced theirs',
  );
  // the relay's minute, at once
  await until(async () => {
    for (const n of [a, b, c]) await n.gossip.flushRelay();
    return a.gossip.graph.channel(bcScid) !== undefined && a.gossip.graph.nodeAnnouncement(c.nodeId) !== undefined;
  }, 'A learnt B–C and C from gossip');
  assert.equal(a.gossip.graph.channel(caScid), undefined, 'the private channel is not in the graph');
  assert.equal(b.gossip.graph.channel(caScid), undefined);
  const bcAtA = a.gossip.graph.channel(bcScid)!;
  assert.equal(bcAtA.capacitySat, 400_000n);
  await until(async () => {
    for (const n of [a, b, c]) await n.gossip.flushRelay();
    const bc = a.gossip.graph.channel(bcScid)!;
    return bc.updates[0] !== undefined && bc.updates[1] !== undefined && a.gossip.graph.nodeAnnouncement(b.nodeId) !== undefined;
  }, "both ends' updates for B–C and B's node announcement at A (B announced after C)");
  const edgesToC = [...a.gossip.graph.edgesTo(c.nodeId)].map((e) => e.shortChannelId);
  assert.deepEqual(edgesToC, [bcScid]);
  const aliasC = a.gossip.graph.nodeAnnouncement(c.nodeId)!.alias;
  assert.equal(Buffer.from(aliasC).toString('utf8').replace(/\0+$/, ''), 'node-c');

  // A pays C over B with nothing but the graph (spontaneous AMP: no invoice, no route hint); C–A is too small
  const paid = await a.sendSpontaneous({ kind: 'amp', dest: Buffer.from(c.nodeId, 'hex'), amountMsat: 150_000_000n });
  assert.equal(paid.status, 'succeeded', paid.failureDetail);
  assert.ok(
    paid.attempts.filter((x) => x.status === 'settled').every((x) => x.route.hops.length === 2),
    'every shard went over B',
  );

  // B raises its fee on B–C: the new update reaches A by gossip, and A's next payment over B pays it
  const bIsNode1 = b.nodeId < c.nodeId;
  const bDirection = bIsNode1 ? 0 : 1;
  await b.updateChannelPolicy({ channelId: bc.channelId, baseFeeMsat: 7_000n, feeRatePpm: 300n });
  await until(async () => {
    await b.gossip.flushRelay();
    return a.gossip.graph.channel(bcScid)?.updates[bDirection]?.feeBaseMsat === 7_000;
  }, "B's new policy for B–C at A");
  const dearer = await a.sendSpontaneous({ kind: 'amp', dest: Buffer.from(c.nodeId, 'hex'), amountMsat: 10_000_000n });
  assert.equal(dearer.status, 'succeeded', dearer.failureDetail);
  for (const x of dearer.attempts) {
    const shardMsat = x.route.hops.at(-1)!.amountToForwardMsat;
    assert.equal(x.status, 'settled', 'no attempt at the old fee');
    assert.equal(x.route.hops.length, 2);
    assert.equal(x.route.totalAmountMsat - shardMsat, 7_000n + (shardMsat * 300n) / 1_000_000n, 'paid over B at its new fee');
  }

  // C goes away: B announces B–C disabled once chanDisableTimeoutMs passed, A hears of it and routes no more over it
  const bcUpdateBefore = [...b.gossip.graph.channel(bcScid)!.updates];
  await c.stop();
  running.delete(c);
  await until(async () => {
    await b.gossip.flushRelay();
    const u = a.gossip.graph.channel(bcScid)?.updates[bDirection];
    return u !== undefined && (u.channelFlags & 2) !== 0;
  }, "B's disabling update for B–C at A");
  assert.ok(bcUpdateBefore[bDirection] !== undefined && (bcUpdateBefore[bDirection]!.channelFlags & 2) === 0, 'it was enabled before');
  assert.ok(
    [...a.gossip.graph.edgesTo(c.nodeId)].every((e) => e.policy.disabled === true),
    'the router sees B–C disabled',
  );

  // B closes B–C on chain (C is gone: B's commitment): once the funding output is spent, pruning drops it
  await b.manager.forceCloseChannel(bc.channelId); // resolves once the commitment is broadcast
  await b.gossip.prune();
  assert.ok(b.gossip.graph.channel(bcScid) !== undefined, 'unconfirmed: the funding output is still unspent');
  await mine(1);
  await b.gossip.prune();
  assert.equal(b.gossip.graph.channel(bcScid), undefined, 'a spent channel is pruned');
  assert.ok(b.gossip.graph.channel(abScid) !== undefined, 'an unspent one stays');

  // the graph is persisted: A restarted knows B–C before any peer speaks to it
  await a.stop();
  running.delete(a);
  a = await start('a');
  assert.ok(a.gossip.graph.channel(bcScid) !== undefined);
  assert.ok(a.gossip.graph.nodeAnnouncement(c.nodeId) !== undefined);
});
