/**
 * The switch's and the payment lifecycle's stored values: written as db/record.ts records, read back field for field
 * (bigints, byte strings, nested resolutions); values an earlier version wrote as JSON still load. The switch's running
 * sums of what it is about to add per channel agree with a recount after every change.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { openMemoryStore } from '../../db/store.js';
import { RecordTable } from '../../htlc/switch/switch.js';
import { isRecord } from '../../db/record.js';
import {
  decodeStored,
  encodeJson,
  encodeStored,
  loadCircuits,
  putKeystone,
  putNextAttempt,
  putRecord,
  putResult,
  readResult,
  recordKey,
  type HtlcRecord,
} from '../../htlc/switch/circuit-map.js';

const rec = (htlcId: bigint): HtlcRecord => ({
  key: { channelId: 'ab'.repeat(32), htlcId },
  state: 'resolving',
  amountMsat: 18_446_744_073_709_551_615n,
  cltvExpiry: 800_123,
  paymentHash: new Uint8Array(32).fill(7),
  sharedSecret: new Uint8Array(32).fill(9),
  hop: {
    kind: 'forward',
    outgoingScid: (700_000n << 40n) | (3n << 16n) | 1n,
    amountMsat: 1000n,
    cltvExpiry: 800_043,
    nextOnion: new Uint8Array(1366).fill(3),
  },
  out: { channelId: 'cd'.repeat(32), htlcId: 5n, cltvExpiry: 800_043 },
  resolution: { kind: 'malformed', failureCode: 0x8000 | 0x4000 | 5, sha256OfOnion: new Uint8Array(32).fill(1) },
  arrivedAt: 1_796_584_578_834,
});

test('records round-trip through the store, as records; JSON from an earlier version still loads', async () => {
  const store = await openMemoryStore();
  const a = rec(1n);
  const b = rec(2n);
  const put = putRecord(a);
  assert.ok(put.type === 'put' && isRecord(put.value), 'written as a record');
  assert.ok(put.type === 'put' && put.value.length < encodeJson(a).length * 0.6, 'well under the bytes of JSON');
  await store.batch([
    put,
    { type: 'put', key: recordKey(b.key), value: encodeJson(b) }, // an earlier version's write
    putKeystone({ channelId: 'cd'.repeat(32), htlcId: 5n }, a.key),
    putNextAttempt(42n),
    putResult({ attemptId: 41n, status: 'settled', preimage: new Uint8Array(32).fill(4) } as never),
  ]);
  const loaded = await loadCircuits(store);
  assert.deepEqual(
    loaded.records.sort((x, y) => Number(x.key.htlcId - y.key.htlcId)),
    [a, b],
  );
  assert.deepEqual(loaded.keystones, [[{ channelId: 'cd'.repeat(32), htlcId: 5n }, a.key]]);
  assert.equal(loaded.nextAttempt, 42n);
  assert.deepEqual(await readResult(store, 41n), { attemptId: 41n, status: 'settled', preimage: new Uint8Array(32).fill(4) });
  assert.deepEqual(decodeStored(encodeStored({ n: -5n, z: 0, s: 'x', l: [1n, new Uint8Array([1])] })), {
    n: -5n,
    z: 0,
    s: 'x',
    l: [1n, new Uint8Array([1])],
  });
  await store.close();
});

test('the forwarding sums by short_channel_id follow every set and delete of the records (against a recount)', () => {
  const states = ['received', 'forwarding', 'forwarded', 'held', 'resolving'] as const;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          del: fc.boolean(),
          key: fc.integer({ min: 0, max: 7 }),
          state: fc.constantFrom(...states),
          scid: fc.integer({ min: 1, max: 3 }),
          amount: fc.bigInt({ min: 1n, max: 10_000n }),
          final: fc.boolean(),
        }),
        { maxLength: 60 },
      ),
      (ops) => {
        const t = new RecordTable();
        for (const o of ops) {
          const k = String(o.key);
          if (o.del) t.delete(k);
          else {
            const r = rec(BigInt(o.key));
            t.set(k, {
              ...r,
              state: o.state,
              hop: o.final
                ? { kind: 'final', payloadBytes: new Uint8Array(1) }
                : { kind: 'forward', outgoingScid: BigInt(o.scid), amountMsat: o.amount, cltvExpiry: 1, nextOnion: new Uint8Array(1) },
            });
          }
          const recount = new Map<bigint, bigint>();
          for (const r of t.values())
            if (r.state === 'forwarding' && r.hop.kind === 'forward')
              recount.set(r.hop.outgoingScid, (recount.get(r.hop.outgoingScid) ?? 0n) + r.hop.amountMsat);
          assert.deepEqual(new Map([...t.forwardingMsat].sort()), new Map([...recount].sort()));
        }
        t.clear();
        assert.equal(t.forwardingMsat.size, 0);
      },
    ),
    { numRuns: 200 },
  );
});
