/**
 * A sig pool thread (node/sig-pool.ts): makes or checks the batch of ECDSA signatures each request packs, with the
 * same secp256k1 backend as the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { secp } from '../wire/crypto.js';
import { SIGN_JOB_BYTES, VERIFY_JOB_BYTES, type SigRequest, type SigResponse } from './sig-pool-protocol.js';

function answer(r: SigRequest): SigResponse {
  const b = new Uint8Array(r.buf);
  if (r.kind === 'sign') {
    const n = b.length / SIGN_JOB_BYTES;
    const out = new Uint8Array(n * 64);
    for (let i = 0; i < n; i++) {
      const o = i * SIGN_JOB_BYTES;
      out.set(secp.sign(b.subarray(o, o + 32), b.subarray(o + 32, o + 64)), i * 64);
    }
    b.fill(0); // the private keys
    return { id: r.id, buf: out.buffer };
  }
  const n = b.length / VERIFY_JOB_BYTES;
  for (let i = 0; i < n; i++) {
    const o = i * VERIFY_JOB_BYTES;
    if (!secp.verify(b.subarray(o, o + 64), b.subarray(o + 64, o + 96), b.subarray(o + 96, o + 129))) return { id: r.id, ok: false };
  }
  return { id: r.id, ok: true };
}

parentPort?.on('message', (r: SigRequest) => {
  let res: SigResponse;
  try {
    res = answer(r);
  } catch (err) {
    res = { id: r.id, error: (err as Error).message };
  }
  parentPort!.postMessage(res, res.buf === undefined ? [] : [res.buf]);
});
