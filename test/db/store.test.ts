/**
 * The store's rules (db/store.ts) on both backends: many writers at once through the store and its sublevels all land,
 * the last write asked for wins, prefixes keep sublevels apart, an absent key reads as undefined, and a closed store
 * refuses every call with a typed error.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDiskStore, openMemoryStore, StoreError, type KvStore } from '../../db/store.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

type Op = { type: 'put'; key: Uint8Array; value: Uint8Array };

const put = (k: string, v: string): Op => ({ type: 'put', key: enc(k), value: enc(v) });

async function eachBackend(fn: (s: KvStore) => Promise<void>): Promise<void> {
  const mem = await openMemoryStore();
  try {
    await fn(mem);
  } finally {
    await mem.close();
  }
  const dir = mkdtempSync(join(tmpdir(), 'ampnode-store-'));
  const disk = await openDiskStore(join(dir, 'db'));
  try {
    await fn(disk);
  } finally {
    await disk.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('store: the rules on both backends', () => {
  it('many writers at once, through the store and its sublevels: every write lands, the last asked wins, prefixes apart', async () => {
    await eachBackend(async (store) => {
      const subA = store.sublevel('a');
      const subB = store.sublevel('b');
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) {
        const target = [store, subA, subB][i % 3]!;
        writes.push(target.batch([put('same', String(i)), put(`k${i}`, String(i))]));
        if (i % 50 === 0) writes.push(target.put(enc('single'), enc(String(i))));
      }
      writes.push(subA.del(enc('k0')));
      await Promise.all(writes);
      assert.equal(dec(await store.get(enc('same'))), '297');
      assert.equal(dec(await subA.get(enc('same'))), '298');
      assert.equal(dec(await subB.get(enc('same'))), '299');
      assert.equal(dec(await subA.get(enc('k0'))), undefined, 'deleted after it was written');
      assert.equal(dec(await store.get(enc('k0'))), '0');
      assert.equal(dec(await subB.get(enc('single'))), '200');
      let n = 0;
      for await (const [k] of subB.entries(enc('k'))) {
        assert.ok(dec(k)!.startsWith('k'));
        n++;
      }
      assert.equal(n, 100);
      assert.equal(await store.get(enc('missing')), undefined);
    });
  });

  it('after close every call fails as closed', async () => {
    await eachBackend(async (store) => {
      const sub = store.sublevel('x');
      await store.close();
      await assert.rejects(sub.put(enc('k'), enc('v')), (e: unknown) => e instanceof StoreError && e.code === 'ERR_STORE_CLOSED');
      await assert.rejects(store.batch([put('k', 'v')]), (e: unknown) => e instanceof StoreError && e.code === 'ERR_STORE_CLOSED');
    });
  });
});
