import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  channelKey,
  decodeState,
  encodeState,
  loadChannel,
  loadChannels,
  loadRevokedHtlcs,
  PartsOnDisk,
  pruneRevokedHtlcs,
  revokedHeights,
  stateWrite,
  stateWrites,
  writesLanded,
} from '../../htlc/channel/codec.js';
import { encodeRecord, isRecord } from '../../db/record.js';
import { openMemoryStore, type BatchOp } from '../../db/store.js';
import { ChannelError, type ChannelState, type LogEntry } from '../../htlc/channel/types.js';
import { Pair, withoutParts } from './channel-harness.js';

/** How earlier versions wrote a channel record: JSON with bigints as {"$n"} and byte strings as {"$b"} (base64). */
function legacyJson(s: ChannelState): Uint8Array {
  const tag = (v: unknown): unknown => {
    if (typeof v === 'bigint') return { $n: v.toString() };
    if (v instanceof Uint8Array) return { $b: Buffer.from(v).toString('base64') };
    if (Array.isArray(v)) return v.map(tag);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = tag(x);
      return out;
    }
    return v;
  };
  return new TextEncoder().encode(JSON.stringify(tag(s)));
}

async function midDance(): Promise<Pair> {
  const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 300_000_000n });
  await p.add('a', 9_000_000n);
  await p.add('b', 8_000_000n);
  await p.settle();
  await p.add('a', 7_000_000n);
  await p.apply('a', { type: 'sign' });
  return p;
}

describe('channel records', () => {
  it('are written in the binary record format and read back exactly', async () => {
    const p = await midDance();
    for (const side of ['a', 'b'] as const) {
      const s = p.state(side);
      const w = stateWrite(s);
      assert.equal(w.type, 'put');
      const bytes = encodeState(s);
      assert.ok(isRecord(bytes));
      assert.deepStrictEqual(decodeState(bytes), s);
      // onion packets in the logs are why the binary form matters: no base64 inflation
      assert.ok(bytes.length < legacyJson(s).length);
    }
  });

  it('written as JSON by earlier versions are still read, to the same state', async () => {
    const p = await midDance();
    for (const side of ['a', 'b'] as const) {
      const s = p.state(side);
      assert.deepStrictEqual(decodeState(legacyJson(s)), s);
    }
  });

  it('written after every step read back as that step left the channel, the parts it shares with earlier steps included', async () => {
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 300_000_000n });
    const EMBEDDED_PARTS = ['local', 'remote', 'localCommit', 'remoteCommit', 'remoteNextCommit', 'sentCommitSig'] as const;
    const seen: { side: 'a' | 'b'; s: ChannelState }[] = [];
    const check = async (): Promise<void> => {
      for (const side of ['a', 'b'] as const) {
        const s = p.state(side);
        // the record on disk (its outbox may still hold events the driver has handed on since: not compared)
        const onDisk = (await loadChannel(p.ep[side].store, s.channelId))!;
        for (const part of EMBEDDED_PARTS) assert.deepStrictEqual(onDisk[part], s[part], part);
        // the record's logs: the entries as they are, adds without their onions (kept apart)
        const record = decodeState((await p.ep[side].store.get(channelKey(s.channelId)))!);
        const lean = (e: LogEntry): LogEntry => (e.kind === 'add' ? { ...e, onionRoutingPacket: new Uint8Array(0) } : e);
        for (const log of ['ourLog', 'theirLog'] as const) assert.deepStrictEqual(record[log].entries, s[log].entries.map(lean), log);
        // and no commitment in it: they are under keys of their own
        assert.equal(record.localCommit, undefined);
        seen.push({ side, s });
      }
    };
    await p.add('a', 9_000_000n);
    await check();
    await p.add('b', 8_000_000n);
    await check();
    await p.apply('a', { type: 'sign' });
    await check();
    await p.settle();
    await check();
    // a state of an earlier step still encodes to itself after later steps reused its parts
    for (const { s } of seen) {
      const store = await openMemoryStore();
      await store.batch(stateWrites(s));
      const back = (await loadChannel(store, s.channelId))!;
      assert.deepStrictEqual(back.localCommit, s.localCommit);
      assert.deepStrictEqual(back.remoteCommit, s.remoteCommit);
    }
    const [loaded] = await loadChannels(p.ep.a.store);
    assert.deepStrictEqual({ ...loaded!, outbox: undefined }, { ...p.state('a'), outbox: undefined });
  });

  it('that are neither form are refused with a typed error', () => {
    assert.throws(
      () => decodeState(new Uint8Array([1, 2, 3])),
      (e) => e instanceof ChannelError && e.code === 'ERR_BAD_PARAMETERS',
    );
    // a record of the right form and version but without its logs
    assert.throws(
      () => decodeState(encodeRecord({ version: 1, channelId: new Uint8Array(32) })),
      (e) => e instanceof ChannelError && e.code === 'ERR_BAD_PARAMETERS' && /logs/.test(e.message),
    );
  });

  it('revocation log: a commitment the peer revokes with HTLCs in it is kept with them, in the state’s own batch', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 300_000_000n });
    const id = p.state('a').channelId;
    assert.deepEqual(await revokedHeights(p.ep.a.store, id), []);
    await p.add('a', 9_000_000n);
    await p.settle();
    const withHtlc = p.state('a').remoteCommit;
    assert.equal(withHtlc.htlcs.length, 1);
    await p.add('b', 8_000_000n);
    await p.settle();
    // a revoked the commitments before; the one with a's HTLC in it is logged with that HTLC
    const heights = await revokedHeights(p.ep.a.store, id);
    assert.ok(heights.includes(withHtlc.height), `logged: ${heights.join(', ')}`);
    const logged = await loadRevokedHtlcs(p.ep.a.store, id, withHtlc.height);
    assert.deepStrictEqual(logged, withHtlc.htlcs);
    // nothing for a commitment without HTLCs (the first one) or not revoked (the current one)
    assert.deepEqual(await loadRevokedHtlcs(p.ep.a.store, id, 0n), []);
    assert.ok(!heights.includes(p.state('a').remoteCommit.height));
    // the log never gets in the way of loading channels
    assert.equal((await loadChannels(p.ep.a.store)).length, 1);
    // pruned when no revoked commitment can reach the chain any more
    assert.equal(await pruneRevokedHtlcs(p.ep.a.store, id), heights.length);
    assert.deepEqual(await revokedHeights(p.ep.a.store, id), []);
  });
  it('with long logs (runs of 16 entries written as one value) read back entry for entry, from any log base', async () => {
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 300_000_000n });
    const lean = (e: LogEntry): LogEntry => (e.kind === 'add' ? { ...e, onionRoutingPacket: new Uint8Array(0) } : e);
    const bases = new Set<number>();
    for (const adds of [21, 37, 5]) {
      for (let i = 0; i < adds; i++) await p.add(i % 3 === 0 ? 'b' : 'a', 1_000_000n + BigInt(i));
      for (const side of ['a', 'b'] as const) {
        const s = p.state(side);
        const record = decodeState((await p.ep[side].store.get(channelKey(s.channelId)))!);
        for (const log of ['ourLog', 'theirLog'] as const) {
          assert.deepStrictEqual(record[log].entries, s[log].entries.map(lean), `${side} ${log}`);
          assert.equal(record[log].base, s[log].base);
          bases.add(s[log].base % 16);
        }
      }
      await p.settle();
    }
    assert.ok(
      [...bases].some((b) => b !== 0),
      'a log base that is not a multiple of 16 was met',
    );
    await p.apply('b', { type: 'disconnected' });
    await p.reload('a');
    await p.reconnect();
    await p.add('a', 2_000_000n);
    await p.settle();
    p.checkConsistent();
  });
});

describe('commitments stored apart from the channel record', () => {
  const keysOf = (ws: readonly BatchOp[]): string[] => ws.map((w) => new TextDecoder().decode(w.key).replace(/[0-9a-f]{64}/, 'ID'));

  it('are left out of the writes of a store that holds them, and written again after a batch that failed', async () => {
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 300_000_000n });
    const onDisk = new PartsOnDisk();
    const s0 = p.state('a');
    const first = onDisk.needed(stateWrites(s0));
    assert.deepEqual(keysOf(first), ['channel/ID', 'chanpart/ID/localCommit', 'chanpart/ID/remoteCommit'], 'a new store: every part');
    onDisk.landed(first);
    assert.deepEqual(keysOf(onDisk.needed(stateWrites(s0))), ['channel/ID'], 'the same parts again: the record alone');
    await p.add('a', 9_000_000n);
    // an add: no part changed (its onion, stored by a's driver already, is not written again either)
    assert.deepEqual(keysOf(onDisk.needed(stateWrites(p.state('a')))), ['channel/ID'], 'an add');
    await p.apply('a', { type: 'sign' });
    const signed = onDisk.needed(stateWrites(p.state('a')));
    assert.deepEqual(keysOf(signed), ['channel/ID', 'chanpart/ID/remoteNextCommit', 'chanpart/ID/sentCommitSig']);
    // that batch failed: not landed, so the parts are still needed; once landed, not
    assert.deepEqual(keysOf(onDisk.needed(stateWrites(p.state('a')))), keysOf(signed));
    onDisk.landed(signed);
    assert.deepEqual(keysOf(onDisk.needed(stateWrites(p.state('a')))), ['channel/ID']);
    await p.settle();
    // the remote's next commitment became its current one: written under that name, though its bytes are on disk
    const after = keysOf(onDisk.needed(stateWrites(p.state('a'))));
    assert.ok(after.includes('chanpart/ID/remoteCommit') && after.includes('chanpart/ID/localCommit'), after.join(', '));
  });

  it('are read back on restart, and a record whose part is missing is refused with a typed error', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 300_000_000n });
    await p.add('a', 9_000_000n);
    await p.apply('a', { type: 'sign' });
    const before = p.state('a');
    p.queue.a = []; // the commitment_signed never reached b, then a's process died
    await p.apply('b', { type: 'disconnected' });
    await p.reload('a');
    assert.deepStrictEqual(p.state('a').remoteNextCommit, before.remoteNextCommit);
    assert.deepStrictEqual(p.state('a').sentCommitSig, before.sentCommitSig);
    assert.deepStrictEqual(p.state('a').localCommit, before.localCommit);
    await p.reconnect(); // sent again from what the store holds
    await p.settle();
    assert.equal(p.state('b').localCommit.htlcs.length, 1);
    p.checkConsistent();
    // a store holding the record but not a part it names
    const store = await openMemoryStore();
    await store.batch(withoutParts(stateWrites(p.state('a'))));
    await assert.rejects(
      () => loadChannels(store),
      (e) => e instanceof ChannelError && e.code === 'ERR_BAD_PARAMETERS' && /localCommit/.test(e.message),
    );
  });
});

describe('onions stored apart from the channel record', () => {
  const onionKeys = async (p: Pair, side: 'a' | 'b'): Promise<string[]> => {
    const out: string[] = [];
    for await (const [k] of p.ep[side].store.entries(new TextEncoder().encode('onion/'))) out.push(new TextDecoder().decode(k));
    return out;
  };

  it('are written once, left out of the record, put back on load, and deleted once the peer has revoked past them', async () => {
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', pushMsat: 0n });
    const r1 = await p.add('a', 9_000_000n);
    const r2 = await p.add('a', 8_000_000n);
    const onions = [r1, r2].map((r) => (r.send[0]!.type === 128 ? r.send[0]!.onionRoutingPacket : new Uint8Array()));
    assert.ok(onions.every((o) => o.length === 1366));
    // the second add's writes carry only its own onion: the first is already on disk
    assert.equal(r2.writes.filter((w) => new TextDecoder().decode(w.key).startsWith('onion/')).length, 1);
    assert.equal((await onionKeys(p, 'a')).length, 2);
    const record = decodeState((await p.ep.a.store.get(channelKey(p.state('a').channelId)))!);
    const adds = record.ourLog.entries.filter((e) => e.kind === 'add');
    assert.equal(adds.length, 2);
    assert.ok(
      adds.every((e) => e.kind === 'add' && e.onionRoutingPacket.length === 0),
      'the record holds no onion',
    );
    const [loaded] = await loadChannels(p.ep.a.store);
    assert.deepStrictEqual(loaded, p.state('a'), 'loading puts the onions back');
    await p.settle();
    assert.deepEqual(await onionKeys(p, 'a'), [], 'deleted with the revocation that made them unneeded');
    assert.deepEqual(await onionKeys(p, 'b'), []);
    p.checkConsistent();
  });

  it('an onion counts as written only once the batch that carried it is stored', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 0n });
    await p.add('a', 5_000_000n);
    const s = p.state('a');
    const { ourLog } = s;
    const add = ourLog.entries.find((e) => e.kind === 'add')!;
    // the same add with an onion of its own, as if the step that brought it had failed to write
    const copy = {
      ...s,
      ourLog: {
        ...ourLog,
        entries: ourLog.entries.map((e) =>
          e === add && e.kind === 'add' ? { ...e, onionRoutingPacket: e.onionRoutingPacket.slice() } : e,
        ),
      },
    };
    const onions = (w: ReturnType<typeof stateWrites>): number =>
      w.filter((op) => new TextDecoder().decode(op.key).startsWith('onion/')).length;
    assert.equal(onions(stateWrites(s)), 0, 'landed through the driver');
    const first = stateWrites(copy);
    assert.equal(onions(first), 1);
    assert.equal(onions(stateWrites(copy)), 1, 'a batch not (yet) stored is written whole again');
    writesLanded(first);
    assert.equal(onions(stateWrites(copy)), 0);
  });

  it('an add signed but not received is sent again after a restart with its onion', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 0n });
    const r = await p.add('a', 5_000_000n);
    const onion = r.send[0]!.type === 128 ? r.send[0]!.onionRoutingPacket : new Uint8Array();
    await p.apply('a', { type: 'sign' });
    p.queue.a = []; // neither the add nor the commitment_signed reach b
    await p.apply('b', { type: 'disconnected' });
    await p.reload('a');
    const before = p.trace.length;
    await p.reconnect();
    const resent = p.trace.slice(before).filter((t) => t.type === 128);
    assert.equal(resent.length, 1);
    await p.settle();
    assert.equal(p.state('b').localCommit.htlcs.length, 1);
    // b hands the HTLC on with the very onion a first sent
    const incoming = p.ep.b.events.filter((e) => e.type === 'htlc_incoming');
    assert.equal(incoming.length, 1);
    assert.deepEqual(incoming[0]!.type === 'htlc_incoming' && incoming[0]!.htlc.onionRoutingPacket, onion);
    assert.ok(
      onion.some((x) => x !== 0),
      'the onion is not all zeros',
    );
    p.checkConsistent();
  });
});
