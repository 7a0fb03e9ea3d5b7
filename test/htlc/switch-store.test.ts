/**
 * The switch's and the payment lifecycle's stored values: written as db/record.ts records, read back field for field
 * (bigints, byte strings, nested resolutions); values an earlier version wrote as JSON still load.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openMemoryStore } from '../../db/store.js';
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
