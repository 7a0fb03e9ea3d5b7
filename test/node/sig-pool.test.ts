/**
 * The sig pool with its threads: signatures are exactly the inline ones (RFC 6979), a batch with one bad signature
 * anywhere (in the thread's share or in this thread's) is refused, malformed jobs are refused without a crash, a
 * thread that dies with requests outstanding has them done inline, and the nodes of a process share one pool.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Worker } from 'node:worker_threads';
import { WorkerSigPool, acquireSigPool } from '../../node/sig-pool.js';
import { publicKeyFromPrivate, randomBytes, randomPrivateKey, secp, sha256 } from '../../wire/crypto.js';

const priv = randomPrivateKey();
const pub = publicKeyFromPrivate(priv);
const signJobs = (n: number) => Array.from({ length: n }, () => ({ digest: sha256(randomBytes(32)), priv }));

describe('sig pool', () => {
  for (const threads of [1, 2])
    it(`signs as this thread does and checks every signature of a batch (${threads} thread${threads > 1 ? 's' : ''})`, async () => {
      const pool = new WorkerSigPool(threads);
      try {
        assert.equal(pool.size, threads);
        for (const n of [1, 9, 50]) {
          const jobs = signJobs(n);
          const sigs = await pool.sign(jobs);
          assert.deepEqual(
            sigs.map((s) => Buffer.from(s).toString('hex')),
            jobs.map((j) => Buffer.from(secp.sign(j.digest, j.priv)).toString('hex')),
          );
          const checks = jobs.map((j, i) => ({ sig: sigs[i]!, digest: j.digest, pub }));
          assert.equal(await pool.verify(checks), true, `${n} good signatures`);
          for (const bad of new Set([0, Math.floor(n / 2), n - 1])) {
            const wrong = checks.map((c, i) => (i === bad ? { ...c, digest: sha256(c.digest) } : c));
            assert.equal(await pool.verify(wrong), false, `bad signature at ${bad} of ${n}`);
          }
          const short = checks.map((c, i) => (i === 0 ? { ...c, sig: c.sig.subarray(0, 63) } : c));
          assert.equal(await pool.verify(short), false, 'a 63-byte signature');
        }
        assert.equal(pool.size, threads, 'the threads are still there');
      } finally {
        await pool.close();
      }
    });

  it('a batch is spread over every thread, a share to each, while this thread does the last', async () => {
    const pool = new WorkerSigPool(2);
    try {
      const threads = (pool as unknown as { threads: { pending: Map<number, unknown> }[] }).threads;
      const jobs = signJobs(30);
      const made = pool.sign(jobs); // the requests are posted before the inline share is done
      assert.deepEqual(
        threads.map((t) => t.pending.size),
        [1, 1],
      );
      assert.deepEqual(
        await made,
        jobs.map((j) => secp.sign(j.digest, j.priv)),
      );
      assert.deepEqual(
        threads.map((t) => t.pending.size),
        [0, 0],
      );
    } finally {
      await pool.close();
    }
  });

  it('a thread that dies with requests outstanding: they are done inline, and so is every later batch', async () => {
    const pool = new WorkerSigPool(1);
    const jobs = signJobs(40);
    const pending = pool.sign(jobs);
    const threads = (pool as unknown as { threads: { worker: Worker }[] }).threads;
    await threads[0]!.worker.terminate();
    const sigs = await pending;
    assert.deepEqual(
      sigs,
      jobs.map((j) => secp.sign(j.digest, j.priv)),
    );
    assert.equal(pool.size, 0);
    const later = signJobs(10);
    assert.deepEqual(
      await pool.sign(later),
      later.map((j) => secp.sign(j.digest, j.priv)),
    );
    await pool.close();
  });

  it('the nodes of a process share one pool, which ends with the last that holds it', async () => {
    assert.equal(acquireSigPool(0), undefined, 'no threads asked: no pool');
    const a = acquireSigPool(1)!;
    const b = acquireSigPool(1)!;
    assert.equal(a.pool, b.pool);
    await a.release();
    await a.release(); // twice: counted once
    assert.equal(b.pool.size, 1, 'still held by b');
    await b.release();
    assert.equal(b.pool.size, 0, 'closed with its last holder');
    const c = acquireSigPool(1)!;
    assert.notEqual(c.pool, a.pool, 'a new pool after the last release');
    await c.release();
  });
});
