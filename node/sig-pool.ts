/**
 * The sig pool (lnd's sigpool): threads that make and check the ECDSA signatures of big commitments, so that one
 * commitment_signed with a hundred HTLC signatures no longer stops every other channel of the node, and a second core
 * does the work. A batch is cut into equal parts, in order: one per thread, the last done inline meanwhile. A thread
 * that dies has its requests done inline and is not replaced; with none left every batch is done inline. One pool
 * is shared by every node of a process (`acquireSigPool` / `release`); it ends with the last node that holds it.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SigPool, SignJob, VerifyJob } from '../htlc/channel/types.js';
import { secp } from '../wire/crypto.js';
import { SIGN_JOB_BYTES, VERIFY_JOB_BYTES, type SigRequest, type SigResponse } from './sig-pool-protocol.js';

/** Below this many signatures a batch is done inline: a round trip to a thread costs about one signature. */
export const SIG_POOL_MIN_BATCH = 8;

/** One fewer thread than the machine has cores, at most 4; none on one core. */
export function defaultSigWorkers(): number {
  return Math.min(4, availableParallelism() - 1);
}

interface Pending {
  kind: 'sign' | 'verify';
  jobs: SignJob[] | VerifyJob[];
  resolve(v: Uint8Array[] | boolean): void;
  reject(e: Error): void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
}

function signInline(jobs: SignJob[]): Uint8Array[] {
  return jobs.map((j) => secp.sign(j.digest, j.priv));
}

function verifyInline(jobs: VerifyJob[]): boolean {
  return jobs.every((j) => secp.verify(j.sig, j.digest, j.pub));
}

export class WorkerSigPool implements SigPool {
  readonly minBatch: number;
  private readonly threads: Thread[] = [];
  private nextId = 1;

  constructor(
    workers: number,
    private readonly o: { minBatch?: number; onError?: (err: Error) => void } = {},
  ) {
    this.minBatch = o.minBatch ?? SIG_POOL_MIN_BATCH;
    for (let i = 0; i < workers; i++) {
      const worker = startWorker();
      worker.unref();
      const t: Thread = { worker, pending: new Map() };
      worker.on('message', (r: SigResponse) => this.answered(t, r));
      worker.on('error', (err: Error) => (this.o.onError?.(err), this.lost(t)));
      worker.on('exit', () => this.lost(t));
      this.threads.push(t);
    }
  }

  get size(): number {
    return this.threads.length;
  }

  async sign(jobs: SignJob[]): Promise<Uint8Array[]> {
    const { away, here } = this.split(jobs);
    const made = away.map(([t, part]) => {
      const b = new Uint8Array(part.length * SIGN_JOB_BYTES);
      part.forEach((j, i) => (b.set(j.digest, i * SIGN_JOB_BYTES), b.set(j.priv, i * SIGN_JOB_BYTES + 32)));
      return this.post(t, 'sign', part, b) as Promise<Uint8Array[]>;
    });
    const inline = signInline(here);
    return [...(await Promise.all(made)).flat(), ...inline];
  }

  async verify(jobs: VerifyJob[]): Promise<boolean> {
    if (jobs.some((j) => j.sig.length !== 64 || j.digest.length !== 32 || j.pub.length !== 33)) return false;
    const { away, here } = this.split(jobs);
    const checked = away.map(([t, part]) => {
      const b = new Uint8Array(part.length * VERIFY_JOB_BYTES);
      part.forEach((j, i) => {
        const o = i * VERIFY_JOB_BYTES;
        b.set(j.sig, o);
        b.set(j.digest, o + 64);
        b.set(j.pub, o + 96);
      });
      return this.post(t, 'verify', part, b) as Promise<boolean>;
    });
    const inline = verifyInline(here);
    return (await Promise.all(checked)).every(Boolean) && inline;
  }

  /** The jobs in equal parts, in order: one part per thread, and the last for this thread to do meanwhile. */
  private split<T>(jobs: T[]): { away: [Thread, T[]][]; here: T[] } {
    const n = this.threads.length;
    const part = Math.floor(jobs.length / (n + 1));
    if (part === 0) return { away: [], here: jobs };
    const away = this.threads.map((t, i): [Thread, T[]] => [t, jobs.slice(i * part, (i + 1) * part)]);
    return { away, here: jobs.slice(n * part) };
  }

  /** Ends the threads; requests outstanding are done inline. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
    for (const t of threads) this.drain(t);
  }

  private post(t: Thread, kind: 'sign' | 'verify', jobs: SignJob[] | VerifyJob[], b: Uint8Array): Promise<Uint8Array[] | boolean> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (t.pending.size === 0) t.worker.ref(); // a request outstanding keeps the process up
      t.pending.set(id, { kind, jobs, resolve, reject });
      const req: SigRequest = { id, kind, buf: b.buffer as ArrayBuffer };
      t.worker.postMessage(req, [req.buf]);
    });
  }

  private answered(t: Thread, r: SigResponse): void {
    const p = t.pending.get(r.id);
    if (p === undefined) return;
    this.settled(t, r.id);
    if (r.error !== undefined) p.reject(new Error(`sig pool: ${r.error}`));
    else if (p.kind === 'verify') p.resolve(r.ok === true);
    else {
      const out = new Uint8Array(r.buf!);
      p.resolve(p.jobs.map((_, i) => out.subarray(i * 64, i * 64 + 64)));
    }
  }

  private settled(t: Thread, id: number): void {
    t.pending.delete(id);
    if (t.pending.size === 0) t.worker.unref();
  }

  private lost(t: Thread): void {
    const i = this.threads.indexOf(t);
    if (i >= 0) this.threads.splice(i, 1);
    this.drain(t);
  }

  private drain(t: Thread): void {
    for (const [id, p] of [...t.pending]) {
      this.settled(t, id);
      try {
        p.resolve(p.kind === 'sign' ? signInline(p.jobs as SignJob[]) : verifyInline(p.jobs as VerifyJob[]));
      } catch (err) {
        p.reject(err as Error);
      }
    }
  }
}

/** A thread running node/sig-worker; from the TypeScript sources, it first registers tsx (this process's loader). */
function startWorker(): Worker {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const file = new URL(`./sig-worker${ext}`, import.meta.url);
  if (ext === '.js') return new Worker(file);
  const loader = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(loader)}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); })`;
  return new Worker(boot, { eval: true });
}

let shared: { pool: WorkerSigPool; holders: number } | undefined;

/** The process's pool (made with `workers` threads by its first holder); undefined when `workers` is 0. */
export function acquireSigPool(
  workers = defaultSigWorkers(),
  onError?: (err: Error) => void,
): { pool: WorkerSigPool; release(): Promise<void> } | undefined {
  if (workers <= 0) return undefined;
  shared ??= { pool: new WorkerSigPool(workers, onError !== undefined ? { onError } : {}), holders: 0 };
  const held = shared;
  held.holders++;
  let released = false;
  return {
    pool: held.pool,
    release: async () => {
      if (released) return;
      released = true;
      if (--held.holders > 0) return;
      if (shared === held) shared = undefined;
      await held.pool.close();
    },
  };
}
