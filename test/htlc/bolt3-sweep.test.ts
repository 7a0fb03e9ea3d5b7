/**
 * Sweeps of a unilateral close (to_local through its delayed branch, to_remote
 * of both channel types, HTLC outputs of their commitment by preimage and by
 * timeout): every signed witness runs through bcoin's script
 * interpreter (CSV included), the fee follows the weight, dust is refused.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { randomBytes, secp, sha256 } from '../../wire/crypto.js';
import { TX, buf } from '../../htlc/bolt3/btc.js';
import { Bolt3Error } from '../../htlc/bolt3/errors.js';
import {
  deriveRevocationPrivkey,
  deriveRevocationPubkey,
  p2wpkh,
  p2wsh,
  perCommitmentPoint,
  offeredHtlcWitnessScript,
  receivedHtlcWitnessScript,
  sweepHtlcTimeout,
  sweepHtlcWithPreimage,
  sweepRevokedHtlc,
  sweepRevokedToLocal,
  sweepToLocal,
  sweepToRemote,
  toLocalWitnessScript,
  toRemoteOutput,
  type SweepTx,
} from '../../htlc/bolt3/index.js';

const bScript = createRequire(import.meta.url)('bcoin/lib/script/script') as { fromRaw(b: Buffer): unknown };

function verifies(sweep: SweepTx, prevScriptPubKey: Uint8Array, prevValueSat: bigint): boolean {
  const t = TX.fromRaw(buf(sweep.tx)) as ReturnType<typeof TX.fromRaw> & {
    verifyInput(i: number, coin: { value: number; script: unknown }): boolean;
  };
  return t.verifyInput(0, { value: Number(prevValueSat), script: bScript.fromRaw(Buffer.from(prevScriptPubKey)) });
}

function key(): { priv: Uint8Array; pub: Uint8Array } {
  const priv = randomBytes(32);
  return { priv, pub: secp.publicKeyCreate(priv) };
}

const dest = p2wpkh(key().pub);
const input = (valueSat: bigint) => ({ txid: randomBytes(32), outputIndex: 1, valueSat });

describe('bolt3 sweeps', () => {
  it('to_local: delayed branch with sequence = to_self_delay, valid under the interpreter; fee = weight × feerate', () => {
    const delayed = key();
    const revocation = key();
    for (const delay of [1, 144, 2016]) {
      const ws = toLocalWitnessScript(revocation.pub, delay, delayed.pub);
      const sw = sweepToLocal(input(500_000n), ws, delay, delayed.priv, dest, 2500);
      const t = TX.fromRaw(buf(sw.tx));
      assert.equal(t.version, 2);
      assert.equal(t.inputs[0]!.sequence, delay);
      assert.equal(t.outputs.length, 1);
      assert.equal(BigInt(t.outputs[0]!.value), sw.valueSat);
      assert.equal(sw.valueSat + sw.feeSat, 500_000n);
      // the fee was computed with a 73-byte signature; the real one is at most that
      const weight = BigInt(t.getWeight());
      assert.ok(
        sw.feeSat >= (weight * 2500n) / 1000n && sw.feeSat <= ((weight + 8n) * 2500n) / 1000n + 1n,
        `fee ${sw.feeSat} for weight ${weight}`,
      );
      assert.ok(verifies(sw, p2wsh(ws), 500_000n), `delay ${delay}`);
      // the revocation key cannot take this path, and a wrong delayed key makes an invalid spend
      const wrong = sweepToLocal(input(500_000n), ws, delay, key().priv, dest, 2500);
      assert.equal(verifies(wrong, p2wsh(ws), 500_000n), false);
      // a sequence below the script's delay fails CSV
      if (delay > 1) {
        const early = sweepToLocal(input(500_000n), ws, delay - 1, delayed.priv, dest, 2500);
        assert.equal(verifies(early, p2wsh(ws), 500_000n), false);
      }
    }
  });

  it('to_remote: P2WPKH (static_remotekey) and the 1-block CSV script (anchors), valid under the interpreter', () => {
    const payment = key();
    for (const type of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
      const out = toRemoteOutput(type, payment.pub);
      const sw = sweepToRemote(input(123_456n), out.witnessScript, payment.priv, dest, 1000);
      assert.ok(verifies(sw, out.scriptPubKey, 123_456n), type);
      const t = TX.fromRaw(buf(sw.tx));
      assert.equal(t.inputs[0]!.sequence, type === 'anchors_zero_fee_htlc' ? 1 : 0xffffffff);
      assert.equal(verifies(sweepToRemote(input(123_456n), out.witnessScript, key().priv, dest, 1000), out.scriptPubKey, 123_456n), false);
    }
  });

  it('justice: a revoked to_local taken at once through the revocation branch with the derived revocation key', () => {
    const revocationBase = key();
    const perCommitmentSecret = randomBytes(32);
    const point = perCommitmentPoint(perCommitmentSecret);
    const revocationPub = deriveRevocationPubkey(revocationBase.pub, point);
    const ws = toLocalWitnessScript(revocationPub, 144, key().pub);
    const priv = deriveRevocationPrivkey(revocationBase.priv, perCommitmentSecret);
    assert.deepEqual(secp.publicKeyCreate(priv), revocationPub);
    const sw = sweepRevokedToLocal(input(300_000n), ws, priv, dest, 2500);
    assert.equal(TX.fromRaw(buf(sw.tx)).inputs[0]!.sequence, 0xffffffff, 'no delay on the revocation branch');
    assert.ok(verifies(sw, p2wsh(ws), 300_000n));
    // without the secret (any other key) the branch stays closed
    assert.equal(verifies(sweepRevokedToLocal(input(300_000n), ws, revocationBase.priv, dest, 2500), p2wsh(ws), 300_000n), false);
  });

  it('HTLC outputs of their commitment: theirs claimed with the preimage, ours taken back after cltv_expiry (both channel types)', () => {
    for (const type of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
      const anchors = type === 'anchors_zero_fee_htlc';
      const revocation = key();
      const theirHtlc = key();
      const ourHtlc = key();
      const preimage = randomBytes(32);
      const hash = sha256(preimage);
      // they offered it on their commitment: our HTLC key is the script's "remote" key
      const offered = offeredHtlcWitnessScript(type, revocation.pub, theirHtlc.pub, ourHtlc.pub, hash);
      const claim = sweepHtlcWithPreimage(input(70_000n), offered, anchors, ourHtlc.priv, preimage, dest, 2500);
      const ct = TX.fromRaw(buf(claim.tx));
      assert.equal(ct.inputs[0]!.sequence, anchors ? 1 : 0xffffffff);
      assert.equal(ct.locktime, 0);
      assert.equal(claim.valueSat + claim.feeSat, 70_000n);
      assert.ok(verifies(claim, p2wsh(offered), 70_000n), `${type}: claim with the preimage`);
      assert.equal(
        verifies(
          sweepHtlcWithPreimage(input(70_000n), offered, anchors, ourHtlc.priv, randomBytes(32), dest, 2500),
          p2wsh(offered),
          70_000n,
        ),
        false,
        'a wrong preimage',
      );
      assert.equal(
        verifies(sweepHtlcWithPreimage(input(70_000n), offered, anchors, theirHtlc.priv, preimage, dest, 2500), p2wsh(offered), 70_000n),
        false,
        'their key',
      );
      // we offered it: on their commitment it is a received HTLC, ours again once cltv_expiry passed
      const cltv = 800_123;
      const received = receivedHtlcWitnessScript(type, revocation.pub, theirHtlc.pub, ourHtlc.pub, hash, cltv);
      const back = sweepHtlcTimeout(input(90_000n), received, anchors, ourHtlc.priv, cltv, dest, 2500);
      const bt = TX.fromRaw(buf(back.tx));
      assert.equal(bt.locktime, cltv);
      assert.equal(bt.inputs[0]!.sequence, anchors ? 1 : 0xfffffffe);
      assert.ok(verifies(back, p2wsh(received), 90_000n), `${type}: timeout after cltv_expiry`);
      // a locktime below the expiry fails the script's CHECKLOCKTIMEVERIFY
      assert.equal(
        verifies(sweepHtlcTimeout(input(90_000n), received, anchors, ourHtlc.priv, cltv - 1, dest, 2500), p2wsh(received), 90_000n),
        false,
        'before the expiry',
      );
      assert.equal(
        verifies(sweepHtlcTimeout(input(90_000n), received, anchors, theirHtlc.priv, cltv, dest, 2500), p2wsh(received), 90_000n),
        false,
        'their key',
      );
    }
    assert.throws(
      () => sweepHtlcTimeout(input(90_000n), new Uint8Array(10), false, key().priv, 600_000_000, dest, 2500),
      (e) => e instanceof Bolt3Error && e.code === 'ERR_BAD_PARAMS',
    );
    assert.throws(
      () => sweepHtlcWithPreimage(input(90_000n), new Uint8Array(10), false, key().priv, new Uint8Array(31), dest, 2500),
      (e) => e instanceof Bolt3Error && e.code === 'ERR_BAD_PARAMS',
    );
  });

  it('justice on HTLC outputs: both scripts taken at once through the revocation branch, both channel types', () => {
    for (const type of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
      const revocationBase = key();
      const secret = randomBytes(32);
      const revocationPub = deriveRevocationPubkey(revocationBase.pub, perCommitmentPoint(secret));
      const priv = deriveRevocationPrivkey(revocationBase.priv, secret);
      const hash = sha256(randomBytes(32));
      for (const ws of [
        offeredHtlcWitnessScript(type, revocationPub, key().pub, key().pub, hash),
        receivedHtlcWitnessScript(type, revocationPub, key().pub, key().pub, hash, 800_500),
      ]) {
        const sw = sweepRevokedHtlc(input(50_000n), ws, priv, dest, 2500);
        const t = TX.fromRaw(buf(sw.tx));
        assert.equal(t.inputs[0]!.sequence, 0xffffffff, 'no delay on the revocation branch');
        assert.equal(t.locktime, 0);
        assert.ok(verifies(sw, p2wsh(ws), 50_000n), type);
        assert.equal(
          verifies(sweepRevokedHtlc(input(50_000n), ws, revocationBase.priv, dest, 2500), p2wsh(ws), 50_000n),
          false,
          'without the secret',
        );
      }
    }
  });

  it('refuses an output not worth sweeping, and bad parameters, with typed errors', () => {
    const payment = key();
    assert.throws(
      () => sweepToRemote(input(800n), null, payment.priv, dest, 2500),
      (e) => e instanceof Bolt3Error && e.code === 'ERR_DUST',
    );
    assert.throws(
      () => sweepToRemote(input(100_000n), null, payment.priv, dest, 0),
      (e) => e instanceof Bolt3Error && e.code === 'ERR_BAD_PARAMS',
    );
    assert.throws(
      () => sweepToRemote({ txid: new Uint8Array(31), outputIndex: 0, valueSat: 100_000n }, null, payment.priv, dest, 253),
      (e) => e instanceof Bolt3Error && e.code === 'ERR_BAD_PARAMS',
    );
    const d = key();
    assert.throws(
      () => sweepToLocal(input(100_000n), toLocalWitnessScript(key().pub, 144, d.pub), 70_000, d.priv, dest, 253),
      (e) => e instanceof Bolt3Error && e.code === 'ERR_BAD_PARAMS',
    );
  });
});
