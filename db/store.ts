/**
 * Persistence on abstract-level: classic-level on disk, memory-level in
 * tests. This layer knows bytes and keys, not Lightning types.
 *
 * Rules every user relies on:
 * - `batch` is atomic: all of its writes land or none do;
 * - a write that resolved is durable (classic-level syncs when `sync` is set);
 * - `get` of an absent key returns `undefined` (never throws NotFound);
 * - keys are byte strings; iteration is in byte order.
 */
import type { AbstractLevel } from 'abstract-level';
import { AmpnodeError } from '../wire/errors.js';

export class StoreError extends AmpnodeError<'ERR_STORE_CLOSED' | 'ERR_STORE_IO'> {}

export type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** The narrow store interface other layers declare they need. */
export interface KvStore {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  del(key: Uint8Array): Promise<void>;
  batch(ops: readonly BatchOp[]): Promise<void>;
  /** All entries whose key starts with `prefix`, in key order. */
  entries(prefix: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]>;
  /** A view of this store in which every key is prefixed with `prefix`. */
  sublevel(prefix: string): KvStore;
  close(): Promise<void>;
}

type Db = AbstractLevel<string | Uint8Array | Buffer, Uint8Array, Uint8Array>;

function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

function cat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Write options of a store on disk: every write synced before it resolves. */
const SYNCED = Object.freeze({ sync: true });

class LevelStore implements KvStore {
  constructor(
    private readonly db: Db,
    private readonly prefix: Uint8Array,
    private readonly owner: boolean,
    /**
     * SYNCED on disk; none in memory, where there is nothing to sync (and abstract-level copies an options object
     * into every operation of a batch, which costs several times the write itself).
     */
    private readonly writeOptions: typeof SYNCED | undefined,
  ) {}

  private k(key: Uint8Array): Uint8Array {
    return this.prefix.length === 0 ? key : cat(this.prefix, key);
  }

  private async io<T>(what: string, f: () => Promise<T>): Promise<T> {
    if (this.db.status !== 'open') throw new StoreError('ERR_STORE_CLOSED', `${what}: store is ${this.db.status}`);
    try {
      return await f();
    } catch (e) {
      throw new StoreError('ERR_STORE_IO', `${what}: ${(e as Error).message}`, { cause: e });
    }
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const v = await this.io('get', () => this.db.get(this.k(key)));
    return v === undefined ? undefined : new Uint8Array(v);
  }
  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.io('put', () => this.db.put(this.k(key), value, this.writeOptions as never));
  }
  del(key: Uint8Array): Promise<void> {
    return this.io('del', () => this.db.del(this.k(key), this.writeOptions as never));
  }
  batch(ops: readonly BatchOp[]): Promise<void> {
    const mapped = ops.map((op) =>
      op.type === 'put' ? { type: 'put' as const, key: this.k(op.key), value: op.value } : { type: 'del' as const, key: this.k(op.key) },
    );
    return this.io('batch', () => this.db.batch(mapped, this.writeOptions as never));
  }
  async *entries(prefix: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]> {
    const full = this.k(prefix);
    const end = prefixEnd(full);
    const range = end === undefined ? { gte: full } : { gte: full, lt: end };
    const strip = this.prefix.length;
    for await (const [key, value] of this.db.iterator(range)) {
      yield [new Uint8Array(key).subarray(strip), new Uint8Array(value)];
    }
  }
  sublevel(prefix: string): KvStore {
    const p = new TextEncoder().encode(`${prefix}\x00`);
    return new LevelStore(this.db, cat(this.prefix, p), false, this.writeOptions);
  }
  async close(): Promise<void> {
    if (this.owner && this.db.status === 'open') await this.db.close();
  }
}

/** A store on disk under `path` (classic-level / LevelDB). */
export async function openDiskStore(path: string): Promise<KvStore> {
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return new LevelStore(db as unknown as Db, new Uint8Array(0), true, SYNCED);
}

/** An in-memory store (memory-level), for tests and the memory-only demo. */
export async function openMemoryStore(): Promise<KvStore> {
  const { MemoryLevel } = await import('memory-level');
  // stored as the views we hand it (no copy into a Buffer per write)
  const db = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view', storeEncoding: 'view' });
  await db.open();
  return new LevelStore(db as unknown as Db, new Uint8Array(0), true, undefined);
}
