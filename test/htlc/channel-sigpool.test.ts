/**
 * A channel driver with a sig pool: the commitment_signed it sends carries the pool's signatures, the one it receives
 * is checked by the pool, and a bad signature is refused exactly as without a pool (same code, state untouched,
 * nothing written or sent). The pool here signs on this thread and records what it was asked; the real one, with its
 * threads, is tested in test/node/sig-pool.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pair } from './channel-harness.js';
import { secp, sha256 } from '../../wire/crypto.js';
import type { CommitmentSigned } from '../../wire/channel-messages.js';
import type { ChannelErrorCode, SigPool, SignJob, VerifyJob } from '../../htlc/channel/types.js';

class RecordingPool implements SigPool {
  signed: Uint8Array[][] = [];
  verified: VerifyJob[][] = [];
  /** Sign the hash of each digest instead: signatures that differ from the ones a step would make inline. */
  wrong = false;
  constructor(readonly minBatch: number) {}
  async sign(jobs: SignJob[]): Promise<Uint8Array[]> {
    const sigs = jobs.map((j) => secp.sign(this.wrong ? sha256(j.digest) : j.digest, j.priv));
    this.signed.push(sigs);
    return sigs;
  }
  async verify(jobs: VerifyJob[]): Promise<boolean> {
    this.verified.push(jobs);
    return jobs.every((j) => secp.verify(j.sig, j.digest, j.pub));
  }
}

async function pooledPair(minBatch: number): Promise<{ p: Pair; pools: Record<'a' | 'b', RecordingPool> }> {
  const p = await Pair.create();
  const pools = { a: new RecordingPool(minBatch), b: new RecordingPool(minBatch) };
  p.ep.a.sigPool = pools.a;
  p.ep.b.sigPool = pools.b;
  await p.open({ channelType: 'anchors_zero_fee_htlc', opener: 'a' });
  await p.confirm();
  return { p, pools };
}

const flip = (b: Uint8Array): Uint8Array => {
  const c = b.slice();
  c[40] = c[40]! ^ 1;
  return c;
};

describe('channel: commitments signed and checked by a sig pool', () => {
  it('the commitment_signed sent carries the pool signatures; the peer checks them in its pool and revokes', async () => {
    const { p, pools } = await pooledPair(2);
    for (let i = 0; i < 5; i++) await p.add('a', 2_000_000n + BigInt(i));
    await p.apply('a', { type: 'sign' });
    const cs = p.queue.a.find((m) => m.type === 132) as CommitmentSigned;
    assert.equal(cs.htlcSignatures.length, 5);
    assert.equal(pools.a.signed.length, 1);
    assert.deepEqual([cs.signature, ...cs.htlcSignatures], pools.a.signed[0]);
    await p.deliverAll();
    assert.equal(pools.b.verified.length >= 1, true);
    assert.deepEqual(
      pools.b.verified[0]!.map((j) => j.sig),
      [cs.signature, ...cs.htlcSignatures],
    );
    assert.equal(p.state('b').localCommit.remoteHtlcSigs.length, 5);
    assert.equal(p.state('a').remoteNextCommit, undefined, 'a got its revocation');
    // b fulfills all five: the removals are signed and checked through the pools too
    await p.settle();
    for (const h of p.settleable('b')) await p.fulfill('b', h.id);
    await p.settle();
    assert.equal(p.state('a').localCommit.htlcs.length, 0);
    assert.ok(pools.b.signed.length >= 1, 'b signed in its pool');
  });

  it('a bad signature is refused as without a pool: same code, state untouched, nothing sent or written', async () => {
    const { p, pools } = await pooledPair(2);
    await p.add('a', 5_000_000n);
    await p.add('a', 6_000_000n);
    await p.apply('a', { type: 'sign' });
    await p.deliver('a'); // the two adds
    await p.deliver('a');
    const cs = p.queue.a.shift() as CommitmentSigned;
    assert.equal(cs.type, 132);
    const refused = async (msg: CommitmentSigned, code: ChannelErrorCode): Promise<void> => {
      const before = p.state('b');
      const opsBefore = p.ep.b.ops.length;
      const r = await p.apply('b', { type: 'message', msg });
      assert.equal(r.failure?.code, code, r.failure?.message);
      assert.equal(p.state('b'), before, 'state changed');
      assert.equal(p.ep.b.ops.length, opsBefore, 'something was written or sent');
    };
    const asked = pools.b.verified.length;
    await refused({ ...cs, htlcSignatures: [cs.htlcSignatures[0]!, flip(cs.htlcSignatures[1]!)] }, 'ERR_BAD_HTLC_SIGNATURES');
    assert.equal(pools.b.verified.length, asked + 1, 'the pool checked it');
    await refused({ ...cs, signature: flip(cs.signature) }, 'ERR_BAD_SIGNATURE');
    // a bad commitment signature with a wrong count: the commitment's is named, as inline
    await refused({ ...cs, signature: flip(cs.signature), htlcSignatures: [cs.htlcSignatures[0]!] }, 'ERR_BAD_SIGNATURE');
    await refused({ ...cs, htlcSignatures: [cs.htlcSignatures[0]!] }, 'ERR_BAD_HTLC_SIGNATURES');
    const ok = await p.apply('b', { type: 'message', msg: cs });
    assert.equal(ok.failure, undefined);
    assert.equal(ok.send[0]?.type, 133);
  });

  it("the signatures sent are the pool's: wrong ones from the pool go out, and the peer refuses them", async () => {
    const { p, pools } = await pooledPair(2);
    pools.a.wrong = true;
    for (let i = 0; i < 3; i++) await p.add('a', 2_000_000n + BigInt(i));
    await p.apply('a', { type: 'sign' });
    const cs = p.queue.a.find((m) => m.type === 132) as CommitmentSigned;
    assert.deepEqual([cs.signature, ...cs.htlcSignatures], pools.a.signed[0]);
    await p.deliver('a');
    await p.deliver('a');
    await p.deliver('a');
    const r = await p.apply('b', { type: 'message', msg: p.queue.a.shift()! });
    assert.equal(r.failure?.code, 'ERR_BAD_SIGNATURE');
  });

  it('batches below the pool minimum are signed and checked inline', async () => {
    const { p, pools } = await pooledPair(10);
    await p.add('a', 5_000_000n);
    await p.apply('a', { type: 'sign' });
    await p.deliverAll();
    assert.equal(pools.a.signed.length + pools.b.signed.length, 0);
    assert.equal(pools.a.verified.length + pools.b.verified.length, 0);
    assert.equal(p.state('b').localCommit.remoteHtlcSigs.length, 1);
  });
});
