/**
 * BOLT 3 fee arithmetic, trimming at its edges, anchor presence, output order
 * ties, obscured commitment numbers and the cooperative closing transaction.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareBytes } from '../../wire/bytes.js';
import { secp, sha256 } from '../../wire/crypto.js';
import {
  ANCHOR_OUTPUT_SAT,
  buildClosingTx,
  buildCommitment,
  buildHtlcTxs,
  closingTxWeight,
  commitmentFeeSat,
  commitmentWeight,
  finalizeClosingTx,
  finalizeCommitment,
  fundingWitnessScript,
  htlcSuccessFeeSat,
  htlcTimeoutFeeSat,
  htlcTrimThresholdSat,
  isHtlcTrimmed,
  obscuringFactor,
  openerCommitmentCostSat,
  p2wpkh,
  p2wsh,
  signCommitment,
  untrimmedHtlcs,
  verifyCommitmentSig,
  type ChannelType,
  type CommitmentHtlc,
  type CommitmentParams,
  type Tx,
} from '../../htlc/bolt3/index.js';

const bScript = createRequire(import.meta.url)('bcoin/lib/script/script') as { fromRaw(b: Buffer): unknown };
function scriptVerifies(tx: Tx, prevScriptPubKey: Uint8Array, prevValueSat: bigint): boolean {
  const t = tx as Tx & { verifyInput(i: number, coin: { value: number; script: unknown }): boolean };
  return t.verifyInput(0, { value: Number(prevValueSat), script: bScript.fromRaw(Buffer.from(prevScriptPubKey)) });
}

const key = (n: number): Uint8Array => {
  const k = new Uint8Array(32);
  k[31] = n;
  return k;
};
const pub = (n: number): Uint8Array => secp.publicKeyCreate(key(n));

const localFundingPriv = key(1);
const remoteFundingPriv = key(2);

function params(over: Partial<CommitmentParams> = {}): CommitmentParams {
  return {
    channelType: 'static_remotekey',
    fundingOutpoint: { txid: new Uint8Array(32).fill(7), outputIndex: 1 },
    fundingSat: 1_000_000n,
    localFundingPubkey: pub(1),
    remoteFundingPubkey: pub(2),
    opener: 'local',
    commitmentNumber: 0n,
    openerPaymentBasepoint: pub(3),
    acceptorPaymentBasepoint: pub(4),
    toSelfDelay: 144,
    dustLimitSat: 546n,
    feeratePerKw: 1000,
    toLocalMsat: 600_000_000n,
    toRemoteMsat: 400_000_000n,
    keys: {
      revocationPubkey: pub(5),
      localDelayedPubkey: pub(6),
      localHtlcPubkey: pub(7),
      remoteHtlcPubkey: pub(8),
      remotePaymentPubkey: pub(4),
    },
    htlcs: [],
    ...over,
  };
}

function htlc(id: number, direction: 'offered' | 'received', amountMsat: bigint, cltvExpiry = 500, hashByte = id): CommitmentHtlc {
  return { id: BigInt(id), direction, amountMsat, cltvExpiry, paymentHash: sha256(new Uint8Array([hashByte])) };
}

/** Move an HTLC's amount out of the local balance so the totals still add up. */
function withHtlcs(p: CommitmentParams, htlcs: CommitmentHtlc[]): CommitmentParams {
  const sum = htlcs.reduce((s, h) => s + h.amountMsat, 0n);
  return { ...p, htlcs, toLocalMsat: p.toLocalMsat - sum };
}

describe('BOLT 3 fee formulas', () => {
  it('commitment weights and fees', () => {
    assert.equal(commitmentWeight('static_remotekey', 0), 724);
    assert.equal(commitmentWeight('anchors_zero_fee_htlc', 0), 1124);
    assert.equal(commitmentWeight('static_remotekey', 3), 724 + 3 * 172);
    assert.equal(commitmentFeeSat('static_remotekey', 15000, 0), 10860n);
    assert.equal(commitmentFeeSat('static_remotekey', 253, 1), 226n); // 253 × 896 / 1000 = 226.688, rounded down
    assert.equal(commitmentFeeSat('anchors_zero_fee_htlc', 253, 2), 371n); // 253 × 1468 / 1000 = 371.404
    assert.equal(openerCommitmentCostSat('anchors_zero_fee_htlc', 253, 2), 371n + 2n * ANCHOR_OUTPUT_SAT);
    assert.equal(openerCommitmentCostSat('static_remotekey', 253, 2), commitmentFeeSat('static_remotekey', 253, 2));
    assert.equal(htlcTimeoutFeeSat('static_remotekey', 1000), 663n);
    assert.equal(htlcSuccessFeeSat('static_remotekey', 1000), 703n);
    assert.equal(htlcTimeoutFeeSat('static_remotekey', 999), 662n);
    assert.equal(htlcTimeoutFeeSat('anchors_zero_fee_htlc', 50000), 0n);
    assert.equal(htlcSuccessFeeSat('anchors_zero_fee_htlc', 50000), 0n);
    assert.throws(() => commitmentFeeSat('static_remotekey', -1, 0), { code: 'ERR_BAD_PARAMS' });
    assert.throws(() => commitmentFeeSat('static_remotekey', 1.5, 0), { code: 'ERR_BAD_PARAMS' });
  });

  it('obscuring factor is the low 48 bits of SHA256(opener ‖ acceptor)', () => {
    const h = sha256(new Uint8Array([...pub(3), ...pub(4)]));
    const expect = BigInt('0x' + Buffer.from(h.subarray(26)).toString('hex'));
    assert.equal(obscuringFactor(pub(3), pub(4)), expect);
    assert.notEqual(obscuringFactor(pub(4), pub(3)), expect);
  });
});

describe('BOLT 3 trimming thresholds at the edges', () => {
  const cases: { type: ChannelType; dir: 'offered' | 'received'; threshold: bigint }[] = [
    { type: 'static_remotekey', dir: 'offered', threshold: 546n + 663n },
    { type: 'static_remotekey', dir: 'received', threshold: 546n + 703n },
    { type: 'anchors_zero_fee_htlc', dir: 'offered', threshold: 546n },
    { type: 'anchors_zero_fee_htlc', dir: 'received', threshold: 546n },
  ];
  for (const { type, dir, threshold } of cases) {
    it(`${type} ${dir}: kept at ${threshold} sat, trimmed one msat below`, () => {
      assert.equal(htlcTrimThresholdSat(type, dir, 1000, 546n), threshold);
      const atMsat = threshold * 1000n;
      assert.equal(isHtlcTrimmed(type, dir, atMsat, 1000, 546n), false);
      assert.equal(isHtlcTrimmed(type, dir, atMsat - 1n, 1000, 546n), true);
      assert.equal(isHtlcTrimmed(type, dir, atMsat + 999n, 1000, 546n), false);

      const kept = buildCommitment(withHtlcs(params({ channelType: type }), [htlc(1, dir, atMsat)]));
      assert.equal(kept.htlcOutputs.length, 1);
      assert.equal(kept.htlcOutputs[0]!.valueSat, threshold);
      assert.equal(kept.trimmedHtlcs.length, 0);

      const trimmed = buildCommitment(withHtlcs(params({ channelType: type }), [htlc(1, dir, atMsat - 1n)]));
      assert.equal(trimmed.htlcOutputs.length, 0);
      assert.deepEqual(
        trimmed.trimmedHtlcs.map((h) => h.id),
        [1n],
      );
      // the trimmed HTLC's value goes to fees, and the fee counts no HTLC output
      assert.equal(trimmed.baseFeeSat, commitmentFeeSat(type, 1000, 0));
      const outSum = trimmed.outputs.reduce((s, o) => s + o.valueSat, 0n);
      assert.equal(outSum + trimmed.feeSat, 1_000_000n);
      assert.ok(trimmed.feeSat >= trimmed.baseFeeSat + threshold - 1n);
    });
  }

  it('untrimmedHtlcs filters per direction', () => {
    const hs = [htlc(1, 'offered', 1_209_000n), htlc(2, 'received', 1_209_000n), htlc(3, 'received', 1_249_000n)];
    assert.deepEqual(
      untrimmedHtlcs('static_remotekey', hs, 1000, 546n).map((h) => h.id),
      [1n, 3n],
    );
    assert.deepEqual(
      untrimmedHtlcs('anchors_zero_fee_htlc', hs, 1000, 546n).map((h) => h.id),
      [1n, 2n, 3n],
    );
  });

  it('balances below the dust limit are trimmed after the fee', () => {
    const fee = commitmentFeeSat('static_remotekey', 1000, 0);
    // opener keeps exactly dust + fee: to_local survives at the dust limit
    let c = buildCommitment(params({ toLocalMsat: (546n + fee) * 1000n, toRemoteMsat: 1_000_000_000n - (546n + fee) * 1000n }));
    assert.equal(c.outputs.find((o) => o.kind === 'to_local')?.valueSat, 546n);
    c = buildCommitment(params({ toLocalMsat: (546n + fee) * 1000n - 1n, toRemoteMsat: 1_000_000_000n - (546n + fee) * 1000n + 1n }));
    assert.equal(
      c.outputs.find((o) => o.kind === 'to_local'),
      undefined,
    );
    // the non-opener's balance is compared without any fee
    c = buildCommitment(params({ toLocalMsat: 1_000_000_000n - 545_999n, toRemoteMsat: 545_999n }));
    assert.equal(
      c.outputs.find((o) => o.kind === 'to_remote'),
      undefined,
    );
  });
});

describe('BOLT 3 commitment construction details', () => {
  it('the remote opener pays the fee and the anchors', () => {
    const c = buildCommitment(params({ channelType: 'anchors_zero_fee_htlc', opener: 'remote' }));
    const fee = commitmentFeeSat('anchors_zero_fee_htlc', 1000, 0);
    assert.equal(c.outputs.find((o) => o.kind === 'to_local')?.valueSat, 600_000n);
    assert.equal(c.outputs.find((o) => o.kind === 'to_remote')?.valueSat, 400_000n - fee - 660n);
    assert.equal(c.feeSat, fee);
    assert.equal(c.outputs.filter((o) => o.kind.endsWith('anchor')).length, 2);
  });

  it('anchors appear only for a side with an output, or for both when HTLCs are untrimmed', () => {
    const noRemote = buildCommitment(params({ channelType: 'anchors_zero_fee_htlc', toLocalMsat: 1_000_000_000n, toRemoteMsat: 0n }));
    assert.deepEqual(noRemote.outputs.map((o) => o.kind).sort(), ['local_anchor', 'to_local']);
    const onlyHtlc = buildCommitment({
      ...params({ channelType: 'anchors_zero_fee_htlc', toLocalMsat: 500_000n, toRemoteMsat: 0n }),
      htlcs: [htlc(9, 'received', 999_500_000n)],
    });
    assert.deepEqual(onlyHtlc.outputs.map((o) => o.kind).sort(), ['local_anchor', 'received_htlc', 'remote_anchor']);
    const trimmedOnly = buildCommitment({
      ...params({ channelType: 'anchors_zero_fee_htlc', toLocalMsat: 999_500_000n, toRemoteMsat: 0n }),
      htlcs: [htlc(9, 'received', 500_000n)],
    });
    assert.deepEqual(trimmedOnly.outputs.map((o) => o.kind).sort(), ['local_anchor', 'to_local']);
  });

  it('sorts equal amount and script by cltv_expiry, whatever the input order', () => {
    const a = htlc(1, 'offered', 5_000_000n, 700, 9);
    const b = htlc(2, 'offered', 5_000_400n, 600, 9); // same satoshis, same hash: identical offered scripts
    const c = buildCommitment(withHtlcs(params(), [a, b]));
    const d = buildCommitment(withHtlcs(params(), [b, a]));
    assert.deepEqual(
      c.htlcOutputs.map((o) => o.htlc!.cltvExpiry),
      [600, 700],
    );
    assert.equal(c.tx.toRaw().toString('hex'), d.tx.toRaw().toString('hex'));
    assert.deepEqual(
      buildHtlcTxs(c).map((t) => t.tx.locktime),
      [600, 700],
    );
    for (let i = 1; i < c.outputs.length; i++) {
      const p = c.outputs[i - 1]!;
      const q = c.outputs[i]!;
      assert.ok(p.valueSat < q.valueSat || (p.valueSat === q.valueSat && compareBytes(p.scriptPubKey, q.scriptPubKey) <= 0));
    }
  });

  it('puts the obscured commitment number in locktime and sequence', () => {
    const n = 0x123456789abcn;
    const c = buildCommitment(params({ commitmentNumber: n }));
    const obscured = n ^ obscuringFactor(pub(3), pub(4));
    assert.equal(c.obscuredCommitmentNumber, obscured);
    assert.equal(c.tx.locktime, Number((0x20n << 24n) | (obscured & 0xffffffn)));
    assert.equal(c.tx.inputs[0]!.sequence, Number((0x80n << 24n) | (obscured >> 24n)));
    assert.equal(c.tx.version, 2);
    assert.throws(() => buildCommitment(params({ commitmentNumber: 1n << 48n })), { code: 'ERR_BAD_PARAMS' });
  });

  it('rejects balances beyond the funding amount and malformed inputs', () => {
    assert.throws(() => buildCommitment(params({ toLocalMsat: 600_000_001n })), { code: 'ERR_BAD_PARAMS' });
    assert.throws(() => buildCommitment(params({ toLocalMsat: -1n })), { code: 'ERR_BAD_PARAMS' });
    assert.throws(() => buildCommitment(params({ fundingOutpoint: { txid: new Uint8Array(31), outputIndex: 0 } })), {
      code: 'ERR_BAD_PARAMS',
    });
    assert.throws(
      () =>
        buildCommitment({
          ...params(),
          htlcs: [{ ...htlc(1, 'offered', 1_000_000n), paymentHash: new Uint8Array(31) }],
          toLocalMsat: 599_000_000n,
        }),
      {
        code: 'ERR_BAD_PARAMS',
      },
    );
  });

  it('random HTLC sets: amounts add up, signatures verify, weight stays within the formula', () => {
    const arbHtlc = fc.record({
      dir: fc.constantFrom<'offered' | 'received'>('offered', 'received'),
      amountMsat: fc.bigInt({ min: 1n, max: 3_000_000n }),
      cltv: fc.integer({ min: 1, max: 1000 }),
      hash: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.constantFrom<ChannelType>('static_remotekey', 'anchors_zero_fee_htlc'),
        fc.array(arbHtlc, { maxLength: 8 }),
        fc.integer({ min: 253, max: 5000 }),
        (type, hs, feerate) => {
          const htlcs = hs.map((x, i) => htlc(i, x.dir, x.amountMsat, x.cltv, x.hash));
          const p = withHtlcs(params({ channelType: type, feeratePerKw: feerate }), htlcs);
          const c = buildCommitment(p);
          const outSum = c.outputs.reduce((s, o) => s + o.valueSat, 0n);
          assert.equal(outSum + c.feeSat, p.fundingSat);
          assert.equal(c.htlcOutputs.length + c.trimmedHtlcs.length, htlcs.length);
          assert.equal(c.baseFeeSat, commitmentFeeSat(type, feerate, c.htlcOutputs.length));
          const ls = signCommitment(c.tx, localFundingPriv, c.fundingWitnessScript, p.fundingSat);
          const rs = signCommitment(c.tx, remoteFundingPriv, c.fundingWitnessScript, p.fundingSat);
          assert.ok(verifyCommitmentSig(c.tx, rs, pub(2), c.fundingWitnessScript, p.fundingSat));
          const signed = finalizeCommitment(c, ls, rs);
          assert.ok(signed.getWeight() <= commitmentWeight(type, c.htlcOutputs.length));
          assert.equal(buildHtlcTxs(c).length, c.htlcOutputs.length);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('BOLT 3 closing transaction', () => {
  const fundingScript = fundingWitnessScript(pub(1), pub(2));
  const base = {
    fundingOutpoint: { txid: new Uint8Array(32).fill(3), outputIndex: 0 },
    fundingSat: 1_000_000n,
    localMsat: 700_000_500n,
    remoteMsat: 299_999_500n,
    localScriptPubKey: p2wpkh(pub(10)),
    remoteScriptPubKey: p2wsh(new Uint8Array([0x51])),
    opener: 'local' as const,
    feeSat: 500n,
    dustLimitSat: 546n,
  };

  it('subtracts the fee from the opener, sorts by BIP 69 and signs like a commitment', () => {
    const c = buildClosingTx(base);
    assert.deepEqual(
      c.outputs.map((o) => [o.party, o.valueSat]),
      [
        ['remote', 299_999n],
        ['local', 699_500n],
      ],
    );
    assert.equal(c.feeSat, 501n); // 500 requested + the sub-satoshi remainders
    assert.equal(c.tx.version, 2);
    assert.equal(c.tx.locktime, 0);
    assert.equal(c.tx.inputs[0]!.sequence, 0xffffffff);
    const ls = signCommitment(c.tx, localFundingPriv, fundingScript, base.fundingSat);
    const rs = signCommitment(c.tx, remoteFundingPriv, fundingScript, base.fundingSat);
    assert.ok(verifyCommitmentSig(c.tx, ls, pub(1), fundingScript, base.fundingSat));
    const signed = finalizeClosingTx(c, fundingScript, pub(1), ls, pub(2), rs);
    assert.ok(scriptVerifies(signed, p2wsh(fundingScript), base.fundingSat));
    assert.ok(signed.getWeight() <= closingTxWeight(base.localScriptPubKey, base.remoteScriptPubKey));
    assert.ok(closingTxWeight(base.localScriptPubKey, base.remoteScriptPubKey) - signed.getWeight() <= 4);
  });

  it('orders equal amounts by script and drops dust', () => {
    const eq = buildClosingTx({ ...base, localMsat: 500_000_000n, remoteMsat: 499_999_000n, feeSat: 1n });
    assert.deepEqual(
      eq.outputs.map((o) => o.party),
      ['local', 'remote'],
    ); // 0014… sorts before 0020…
    const dust = buildClosingTx({ ...base, localMsat: 999_500_000n, remoteMsat: 500_000n, opener: 'remote', feeSat: 0n });
    assert.deepEqual(
      dust.outputs.map((o) => o.party),
      ['local'],
    );
    assert.equal(dust.feeSat, 500n);
    assert.equal(closingTxWeight(base.localScriptPubKey, null) < closingTxWeight(base.localScriptPubKey, base.remoteScriptPubKey), true);
  });

  it('refuses a fee the opener cannot pay', () => {
    assert.throws(() => buildClosingTx({ ...base, opener: 'remote', feeSat: 300_000n }), { code: 'ERR_BAD_PARAMS' });
    assert.throws(() => buildClosingTx({ ...base, localMsat: base.localMsat + 1000n }), { code: 'ERR_BAD_PARAMS' });
  });
});
