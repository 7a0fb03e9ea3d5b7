/**
 * BOLT 3 Appendix C (option_static_remotekey) and Appendix F (option_anchors,
 * zero-fee HTLC transactions): every commitment transaction and every HTLC
 * transaction rebuilt from the spec inputs, signed with both sides' keys and
 * compared byte for byte with the spec's fully signed hex. Keys are derived
 * from the basepoints and the per-commitment point, not copied.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { secp, sha256, signatureFromDER, signatureToDER } from '../../wire/crypto.js';
import {
  buildCommitment,
  buildHtlcTxs,
  commitmentSighash,
  deriveCommitmentKeys,
  derivePrivkey,
  deriveRevocationPubkey,
  finalizeCommitment,
  finalizeHtlcTx,
  fundingWitnessScript,
  htlcSighashes,
  obscuringFactor,
  p2wpkh,
  p2wsh,
  signCommitment,
  signHtlcTx,
  txidFromHex,
  verifyCommitmentSig,
  verifyHtlcSig,
  type ChannelType,
  type Commitment,
  type CommitmentHtlc,
  type CommitmentParams,
  type HtlcTx,
  type Tx,
} from '../../htlc/bolt3/index.js';
import { fixture, type HtlcVector } from './bolt3-fixture.js';

const bScript = createRequire(import.meta.url)('bcoin/lib/script/script') as { fromRaw(b: Buffer): unknown };

/** Run bcoin's script interpreter (standard flags: segwit, CSV, CLTV, low-S, ...) on input 0. */
function scriptVerifies(tx: Tx, prevScriptPubKey: Uint8Array, prevValueSat: bigint): boolean {
  const t = tx as Tx & { verifyInput(i: number, coin: { value: number; script: unknown }): boolean };
  return t.verifyInput(0, { value: Number(prevValueSat), script: bScript.fromRaw(Buffer.from(prevScriptPubKey)) });
}

const C = fixture.commitment_static_remotekey;
const K = C.keys;
const X = C.internal_from_html_comment;
const h = (s: string | undefined): Uint8Array => hexToBytes(s!);

const pcPoint = h(X['local_per_commitment_point']);
const keys = deriveCommitmentKeys({
  perCommitmentPoint: pcPoint,
  localDelayedPaymentBasepoint: h(X['local_delayed_payment_basepoint']),
  localHtlcBasepoint: h(K['local_htlc_basepoint']),
  remoteHtlcBasepoint: h(K['remote_htlc_basepoint']),
  remoteRevocationBasepoint: h(X['remote_revocation_basepoint']),
  remotePaymentBasepoint: h(K['remote_payment_basepoint']),
});
const localFundingPriv = h(K['local_funding_privkey']);
const remoteFundingPriv = h(X['remote_funding_privkey']);
const localHtlcPriv = derivePrivkey(h(X['local_payment_basepoint_secret']), pcPoint);
const remoteHtlcPriv = derivePrivkey(h(X['remote_payment_basepoint_secret']), pcPoint);

const preimages = new Map<bigint, Uint8Array>();
const allHtlcs: CommitmentHtlc[] = C.htlcs.map((v: HtlcVector) => {
  const preimage = hexToBytes(v.payment_preimage);
  preimages.set(BigInt(v.id), preimage);
  return {
    id: BigInt(v.id),
    direction: v.type_in_local_commitment,
    amountMsat: BigInt(v.amount_msat),
    cltvExpiry: v.expiry,
    paymentHash: sha256(preimage),
  };
});

/** Which of the Appendix C HTLCs a test uses (the spec says so in prose). */
function htlcsFor(name: string, useTestHtlcs: boolean): CommitmentHtlc[] {
  if (!useTestHtlcs) return [];
  if (name.includes('same amount and preimage')) return allHtlcs.filter((x) => [1n, 5n, 6n].includes(x.id));
  return allHtlcs.filter((x) => x.id <= 4n);
}

function paramsFor(
  channelType: ChannelType,
  name: string,
  useTestHtlcs: boolean,
  toLocalMsat: number,
  toRemoteMsat: number,
  feeratePerKw: number,
  dustLimitSat: number,
): CommitmentParams {
  const htlcs = htlcsFor(name, useTestHtlcs);
  // the spec's balances exclude the HTLCs in flight: together they are the funding amount
  const total = BigInt(toLocalMsat) + BigInt(toRemoteMsat) + htlcs.reduce((s, x) => s + x.amountMsat, 0n);
  assert.equal(total, BigInt(C.params.funding_amount_satoshi) * 1000n, 'HTLC set matches the balances');
  return {
    channelType,
    fundingOutpoint: { txid: txidFromHex(C.params.funding_tx_id), outputIndex: C.params.funding_output_index },
    fundingSat: BigInt(C.params.funding_amount_satoshi),
    localFundingPubkey: h(K['local_funding_pubkey']),
    remoteFundingPubkey: h(K['remote_funding_pubkey']),
    opener: 'local',
    commitmentNumber: BigInt(C.params.commitment_number),
    openerPaymentBasepoint: h(K['local_payment_basepoint']),
    acceptorPaymentBasepoint: h(K['remote_payment_basepoint']),
    toSelfDelay: C.params.local_delay,
    dustLimitSat: BigInt(dustLimitSat),
    feeratePerKw,
    toLocalMsat: BigInt(toLocalMsat),
    toRemoteMsat: BigInt(toRemoteMsat),
    keys,
    htlcs,
  };
}

const der = (sig64: Uint8Array): string => bytesToHex(signatureToDER(sig64));

/** Sign and verify the commitment with both funding keys; return the fully signed hex. */
function signBoth(c: Commitment, expectRemoteDer: string, expectLocalDer?: string): string {
  const fundingSat = c.params.fundingSat;
  const localSig = signCommitment(c.tx, localFundingPriv, c.fundingWitnessScript, fundingSat);
  const remoteSig = signCommitment(c.tx, remoteFundingPriv, c.fundingWitnessScript, fundingSat);
  assert.equal(der(remoteSig), expectRemoteDer, 'remote commitment signature');
  if (expectLocalDer !== undefined) assert.equal(der(localSig), expectLocalDer, 'local commitment signature');
  // the digest computed from the Commitment alone signs to the same signatures
  assert.equal(
    der(secp.sign(commitmentSighash(c), remoteFundingPriv)),
    expectRemoteDer,
    'remote commitment signature from commitmentSighash',
  );
  assert.deepEqual(secp.sign(commitmentSighash(c), localFundingPriv), localSig);
  const remoteFromSpec = signatureFromDER(hexToBytes(expectRemoteDer));
  assert.ok(verifyCommitmentSig(c.tx, remoteFromSpec, c.params.remoteFundingPubkey, c.fundingWitnessScript, fundingSat));
  assert.ok(verifyCommitmentSig(c.tx, localSig, c.params.localFundingPubkey, c.fundingWitnessScript, fundingSat));
  assert.ok(!verifyCommitmentSig(c.tx, remoteFromSpec, c.params.localFundingPubkey, c.fundingWitnessScript, fundingSat));
  assert.ok(!verifyCommitmentSig(c.tx, remoteFromSpec, c.params.remoteFundingPubkey, c.fundingWitnessScript, fundingSat - 1n));
  const signed = finalizeCommitment(c, localSig, remoteSig);
  assert.ok(scriptVerifies(signed, p2wsh(c.fundingWitnessScript), fundingSat), 'commitment witness satisfies the funding script');
  assert.ok(!scriptVerifies(signed, p2wsh(c.fundingWitnessScript), fundingSat + 1n), 'a different funding amount breaks the signatures');
  assert.equal(c.tx.inputs[0]!.witness.items.length, 0, 'the unsigned commitment is left unsigned');
  return bytesToHex(signed.toRaw());
}

/** Sign an HTLC tx as both sides, check the remote signature, return the fully signed hex. */
function signHtlc(t: HtlcTx, expectRemoteDer: string, expectLocalDer?: string): string {
  const remoteSig = signHtlcTx(t, remoteHtlcPriv, 'counterparty');
  const localSig = signHtlcTx(t, localHtlcPriv, 'holder');
  assert.equal(der(remoteSig), expectRemoteDer, 'remote HTLC signature');
  if (expectLocalDer !== undefined) assert.equal(der(localSig), expectLocalDer, 'local HTLC signature');
  const remoteFromSpec = signatureFromDER(hexToBytes(expectRemoteDer));
  assert.ok(verifyHtlcSig(t, remoteFromSpec, keys.remoteHtlcPubkey, 'counterparty'));
  assert.ok(verifyHtlcSig(t, localSig, keys.localHtlcPubkey, 'holder'));
  assert.ok(!verifyHtlcSig(t, remoteFromSpec, keys.localHtlcPubkey, 'counterparty'));
  const preimage = t.kind === 'htlc_success' ? preimages.get(t.htlc.id) : undefined;
  const signed = finalizeHtlcTx(t, remoteSig, localSig, preimage);
  assert.ok(scriptVerifies(signed, p2wsh(t.inputWitnessScript), t.inputValueSat), 'HTLC tx witness satisfies the HTLC script');
  return bytesToHex(signed.toRaw());
}

/** htlcSighashes (no transaction built) signs to the spec's remote HTLC signatures and to the same local ones as the HtlcTx path. */
function checkHtlcSighashes(c: Commitment, htlcTxs: HtlcTx[], vectors: readonly { remote_htlc_signature: string }[]): void {
  const remote = htlcSighashes(c, 'counterparty');
  const holder = htlcSighashes(c, 'holder');
  assert.equal(remote.length, vectors.length);
  assert.equal(holder.length, vectors.length);
  vectors.forEach((v, i) => {
    assert.equal(der(secp.sign(remote[i]!, remoteHtlcPriv)), v.remote_htlc_signature, `remote HTLC signature ${i} from htlcSighashes`);
    assert.deepEqual(
      secp.sign(holder[i]!, localHtlcPriv),
      signHtlcTx(htlcTxs[i]!, localHtlcPriv, 'holder'),
      `local HTLC signature ${i} from htlcSighashes`,
    );
  });
}

describe('BOLT 3 Appendix C inputs', () => {
  it('derived keys, scripts and obscuring factor match the spec', () => {
    assert.equal(bytesToHex(keys.localHtlcPubkey), K['local_htlcpubkey']);
    assert.equal(bytesToHex(keys.remoteHtlcPubkey), K['remote_htlcpubkey']);
    assert.equal(bytesToHex(keys.localDelayedPubkey), K['local_delayedpubkey']);
    assert.equal(bytesToHex(keys.revocationPubkey), K['local_revocation_pubkey']);
    assert.equal(
      bytesToHex(deriveRevocationPubkey(secp.publicKeyCreate(h(X['remote_revocation_basepoint_secret'])), pcPoint)),
      K['local_revocation_pubkey'],
    );
    assert.equal(bytesToHex(localHtlcPriv), K['local_privkey']);
    assert.equal(bytesToHex(remoteHtlcPriv), X['remote_privkey']);
    assert.equal(bytesToHex(derivePrivkey(h(X['local_delayed_payment_basepoint_secret']), pcPoint)), X['local_delayed_privkey']);
    assert.equal(bytesToHex(secp.publicKeyCreate(h(X['local_payment_basepoint_secret']))), K['local_payment_basepoint']);
    assert.equal(bytesToHex(secp.publicKeyCreate(h(X['remote_payment_basepoint_secret']))), K['remote_payment_basepoint']);
    assert.equal(bytesToHex(secp.publicKeyCreate(localFundingPriv)), K['local_funding_pubkey']);
    assert.equal(bytesToHex(secp.publicKeyCreate(remoteFundingPriv)), K['remote_funding_pubkey']);
    assert.equal(
      bytesToHex(fundingWitnessScript(h(K['remote_funding_pubkey']), h(K['local_funding_pubkey']))),
      K['funding_witness_script'],
    );
    const factor = obscuringFactor(h(K['local_payment_basepoint']), h(K['remote_payment_basepoint']));
    assert.equal(factor, BigInt('0x' + K['obscuring_factor']));
  });
});

describe('BOLT 3 Appendix C: static_remotekey commitment and HTLC transactions', () => {
  for (const t of C.tests) {
    it(t.name, () => {
      const params = paramsFor(
        'static_remotekey',
        t.name,
        !t.name.startsWith('simple commitment tx with no HTLCs'),
        t.to_local_msat,
        t.to_remote_msat,
        t.local_feerate_per_kw,
        C.params.local_dust_limit_satoshi,
      );
      const c = buildCommitment(params);
      if (t.base_fee_satoshi !== undefined) assert.equal(c.baseFeeSat, BigInt(t.base_fee_satoshi), 'base fee');
      if (t.actual_fee_satoshi !== undefined) assert.equal(c.feeSat, BigInt(t.actual_fee_satoshi), 'actual fee');
      assert.equal(c.htlcOutputs.length, t.num_htlcs);
      assert.equal(c.obscuredCommitmentNumber, 42n ^ BigInt('0x' + K['obscuring_factor']));

      // every output the spec's comments describe is in the transaction
      for (const o of t.outputs_from_comments) {
        const spk = o.p2wpkh_pubkey !== undefined ? p2wpkh(hexToBytes(o.p2wpkh_pubkey)) : p2wsh(hexToBytes(o.witness_script!));
        // (two offered HTLCs may share amount and script: then the HTLC id tells them apart)
        const match = c.outputs.find(
          (x) =>
            bytesToHex(x.scriptPubKey) === bytesToHex(spk) &&
            x.valueSat === BigInt(o.amount_satoshi) &&
            (o.htlc_id === undefined || x.htlc?.id === BigInt(o.htlc_id)),
        );
        assert.ok(match !== undefined, `output ${o.type} ${o.amount_satoshi}`);
        const kind = { to_local: 'to_local', to_remote: 'to_remote', htlc_offered: 'offered_htlc', htlc_received: 'received_htlc' }[o.type];
        assert.equal(match.kind, kind);
        if (o.htlc_id !== undefined) assert.equal(match.htlc?.id, BigInt(o.htlc_id));
        if (o.witness_script !== undefined) assert.equal(bytesToHex(match.witnessScript!), o.witness_script);
      }

      assert.equal(signBoth(c, t.remote_signature, t.local_signature), t.commit_tx, 'signed commitment tx');

      const htlcTxs = buildHtlcTxs(c);
      assert.equal(htlcTxs.length, t.htlc_txs.length);
      checkHtlcSighashes(c, htlcTxs, t.htlc_txs);
      t.htlc_txs.forEach((v, i) => {
        const ht = htlcTxs[i]!;
        assert.equal(ht.commitmentOutputIndex, v.output_index);
        assert.equal(ht.kind, v.type);
        assert.equal(ht.htlc.id, BigInt(v.htlc_id));
        assert.equal(signHtlc(ht, v.remote_htlc_signature, v.local_htlc_signature), v.tx, `HTLC tx for output ${v.output_index}`);
      });
    });
  }
});

describe('BOLT 3 Appendix F: anchors (zero-fee HTLC) commitment and HTLC transactions', () => {
  const F = fixture.commitment_anchors;
  it("the JSON test list matches the spec's verbatim array", () => {
    assert.equal(F.tests.length, F.appendix_f_verbatim.length);
    assert.ok(F.intro_text.includes('to_local_msat'));
    F.tests.forEach((t, i) => {
      const v = F.appendix_f_verbatim[i]!;
      assert.equal(v.Name, t.name);
      assert.equal(v.LocalBalance, t.to_local_msat);
      assert.equal(v.RemoteBalance, t.to_remote_msat);
      assert.equal(v.DustLimitSatoshis, t.local_dust_limit_satoshi);
      assert.equal(v.FeePerKw, t.local_feerate_per_kw);
      assert.equal(v.UseTestHtlcs, t.use_test_htlcs);
      assert.equal(v.ExpectedCommitmentTxHex, t.commit_tx);
      assert.equal(v.RemoteSigHex, t.remote_signature);
      assert.deepEqual(
        v.HtlcDescs.map((d) => [d.RemoteSigHex, d.ResolutionTxHex]),
        t.htlc_txs.map((d) => [d.remote_htlc_signature, d.tx]),
      );
    });
  });

  for (const t of F.tests) {
    it(t.name, () => {
      const params = paramsFor(
        'anchors_zero_fee_htlc',
        t.name,
        t.use_test_htlcs,
        t.to_local_msat,
        t.to_remote_msat,
        t.local_feerate_per_kw,
        t.local_dust_limit_satoshi,
      );
      const c = buildCommitment(params);
      const anchors = c.outputs.filter((o) => o.kind === 'local_anchor' || o.kind === 'remote_anchor');
      for (const a of anchors) assert.equal(a.valueSat, 330n);
      assert.equal(signBoth(c, t.remote_signature), t.commit_tx, 'signed commitment tx');

      const htlcTxs = buildHtlcTxs(c);
      assert.equal(htlcTxs.length, t.htlc_txs.length);
      checkHtlcSighashes(c, htlcTxs, t.htlc_txs);
      t.htlc_txs.forEach((v, i) => {
        const ht = htlcTxs[i]!;
        assert.equal(ht.feeSat, 0n, 'zero-fee HTLC tx');
        assert.equal(ht.tx.inputs[0]!.sequence, 1);
        assert.equal(signHtlc(ht, v.remote_htlc_signature), v.tx, `HTLC tx ${i}`);
      });
    });
  }
});
