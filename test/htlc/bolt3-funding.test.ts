/**
 * BOLT 3 Appendix B: the funding transaction, rebuilt with bcoin from the
 * spec's inputs (regtest block 1's coinbase, the two funding pubkeys, the
 * feerate) and signed with wire/crypto, then compared byte for byte.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { hash160, secp, signatureToDER } from '../../wire/crypto.js';
import { fundingWitnessScript, p2wpkh, p2wsh, txidFromHex } from '../../htlc/bolt3/index.js';
import { fixture } from './bolt3-fixture.js';

const require = createRequire(import.meta.url);

const bcoin = {
  Block: require('bcoin/lib/primitives/block') as any,
  TX: require('bcoin/lib/primitives/tx') as any,
  MTX: require('bcoin/lib/primitives/mtx') as any,
  Outpoint: require('bcoin/lib/primitives/outpoint') as any,
  Script: require('bcoin/lib/script/script') as any,
  KeyRing: require('bcoin/lib/primitives/keyring') as any,
};

const F = fixture.funding_tx as Record<string, any>;

describe('BOLT 3 Appendix B: funding transaction', () => {
  const priv = hexToBytes(F['block1_coinbase_privkey']);
  const pub = secp.publicKeyCreate(priv);

  it('block 1 builds on the regtest genesis block and pays its coinbase to the spec key', () => {
    const genesis = bcoin.Block.fromRaw(Buffer.from(F['block0_genesis'], 'hex'));
    const block1 = bcoin.Block.fromRaw(Buffer.from(F['block1'], 'hex'));
    assert.equal(block1.prevBlock, genesis.hash('hex'));
    assert.equal(block1.merkleRoot, block1.createMerkleRoot('hex'));
    const coinbase = block1.txs[0];
    assert.equal(coinbase.toRaw().toString('hex'), F['block1_coinbase_tx']);
    assert.equal(coinbase.txid(), F['input_txid']);
    assert.equal(coinbase.outputs[F['input_index']].value, F['input_satoshis']);
    assert.equal(coinbase.outputs[0].script.getPubkeyhash().toString('hex'), bytesToHex(hash160(pub)));
    assert.equal(F['block1_coinbase_privkey_spec_form'], F['block1_coinbase_privkey'] + '01');
    const ring = bcoin.KeyRing.fromSecret(F['block1_coinbase_privkey_base58'], 'testnet');
    assert.equal(ring.getPrivateKey('hex'), F['block1_coinbase_privkey']);
    assert.equal(ring.getAddress('string', 'testnet'), F['block1_coinbase_address_base58']);
    assert.ok((F['spec_comments'] as string[]).includes(`txid: ${F['funding_txid']}`));
  });

  it('funding tx matches byte for byte', () => {
    const script = fundingWitnessScript(hexToBytes(F['local_funding_pubkey']), hexToBytes(F['remote_funding_pubkey']));
    assert.equal(bytesToHex(script), F['funding_witness_script']);
    const coinbase = bcoin.TX.fromRaw(Buffer.from(F['block1_coinbase_tx'], 'hex'));
    const prevScript = coinbase.outputs[F['input_index']].script;

    const mtx = new bcoin.MTX();
    mtx.version = 2;
    mtx.locktime = 0;
    const input = mtx.addOutpoint(new bcoin.Outpoint(bytesToHex(txidFromHex(F['input_txid'])), F['input_index']));
    input.sequence = 0xffffffff;
    mtx.addOutput(bcoin.Script.fromRaw(Buffer.from(p2wsh(script))), F['funding_satoshis']);
    mtx.addOutput(bcoin.Script.fromRaw(Buffer.from(p2wpkh(pub))), F['change_satoshis']);

    const digest = mtx.signatureHash(0, prevScript, F['input_satoshis'], bcoin.Script.hashType.ALL, 0);
    const sig = Buffer.concat([signatureToDER(secp.sign(digest, priv)), Buffer.from([bcoin.Script.hashType.ALL])]);
    input.script = new bcoin.Script().pushData(sig).pushData(Buffer.from(pub)).compile();
    const tx = mtx.toTX();

    assert.equal(tx.toRaw().toString('hex'), F['funding_tx']);
    assert.equal(tx.txid(), F['funding_txid']);
    assert.equal(tx.outputs[F['funding_output_index']].value, F['funding_satoshis']);
    // the change is what is left after a fee of feerate × weight / 1000
    const fee = Math.floor((F['feerate_per_kw'] * tx.getWeight()) / 1000);
    assert.equal(F['input_satoshis'] - F['funding_satoshis'] - fee, F['change_satoshis']);
    // and the signature verifies under bcoin's own script interpreter
    assert.ok(tx.verifyInput(0, { value: F['input_satoshis'], script: prevScript }));
  });
});
