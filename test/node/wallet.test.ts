/**
 * The on-chain wallet on an embedded in-memory regtest chain: coinbase
 * maturity, payments between wallets, the funding primitive (build, lock,
 * publish, abandon), bad input, reorgs.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import { bcoin } from '../../node/chain/bcoin.js';
import { Wallet } from '../../node/wallet/wallet.js';
import { WalletError } from '../../node/wallet/errors.js';
import { ELSEWHERE, SEGWIT_HEIGHT, fundWallet, hex, newChain, newWallet } from './chain-fixture.js';
import { MTX, Outpoint, Script, TX, Witness, buf } from '../../htlc/bolt3/btc.js';
import { p2wsh } from '../../htlc/bolt3/index.js';

const COIN = 100_000_000n;
/** A P2WSH scriptPubKey (what a 2-of-2 funding output looks like). */
const P2WSH = new Uint8Array([0x00, 0x20, ...new Uint8Array(32).fill(0xab)]);

function isWalletError(code: string) {
  return (e: unknown): boolean => e instanceof WalletError && e.code === code;
}

describe('wallet (embedded regtest)', () => {
  let chain: BcoinChainBackend;
  let alice: Wallet;
  let bob: Wallet;

  before(async () => {
    chain = await newChain();
    alice = (await newWallet(chain, 11)).wallet;
    bob = (await newWallet(chain, 12)).wallet;
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await chain?.close();
  });

  it('hands out fresh BIP84 regtest addresses and recognises its scripts', async () => {
    const a = await bob.newAddress();
    const b = await bob.newAddress();
    const c = await bob.newChangeAddress();
    assert.notEqual(a.address, b.address);
    assert.match(a.address, /^bcrt1q[0-9a-z]{38}$/);
    assert.equal(a.script.length, 22);
    assert.equal(a.script[0], 0x00);
    assert.equal(a.script[1], 0x14);
    assert.ok(bob.isMine(a.script) && bob.isMine(c.script));
    assert.ok(!alice.isMine(a.script));
    // Deterministic from the seed: another wallet on the same seed gives the same first address.
    const { wallet: twin } = await newWallet(chain, 12);
    assert.equal((await twin.newAddress()).address, a.address);
    await twin.close();
  });

  it('matures coinbase outputs at exactly 100 confirmations', async () => {
    const { address } = await alice.newAddress();
    await chain.generateToAddress(1, address);
    const minedAt = chain.tip().height;
    const reward = alice.balance().immatureSat;
    assert.equal(reward, 50n * COIN); // regtest halves every 150 blocks
    assert.deepEqual(alice.balance(), { confirmedSat: 0n, unconfirmedSat: 0n, lockedSat: 0n, immatureSat: reward });
    await chain.generateToAddress(98, ELSEWHERE);
    assert.equal(chain.tip().height - minedAt + 1, 99);
    assert.equal(alice.balance().confirmedSat, 0n);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.deepEqual(alice.balance(), { confirmedSat: 50n * COIN, unconfirmedSat: 0n, lockedSat: 0n, immatureSat: 0n });
    await fundWallet(chain, alice, 4); // past segwit activation, more coins
    assert.ok(chain.tip().height >= SEGWIT_HEIGHT);
    const b = alice.balance();
    assert.equal(b.immatureSat, 0n);
    assert.ok(b.confirmedSat > 50n * COIN + 4n * 12n * COIN);
  });

  it('sends to another wallet: unconfirmed, then confirmed, fee at the requested rate', async () => {
    const before = alice.balance();
    const { address } = await bob.newAddress();
    const sent = await alice.sendToAddress(address, 2n * COIN, { satPerVbyte: 5 });
    await chain.synced();
    const tx = bcoin.TX.fromRaw(Buffer.from(sent.tx));
    const vsize = tx.getVirtualSize();
    assert.ok(sent.feeSat >= BigInt((vsize - 2) * 5) && sent.feeSat <= BigInt((vsize + 2) * 5), `fee ${sent.feeSat} for ${vsize} vB`);
    assert.equal(bob.balance().unconfirmedSat, 2n * COIN);
    assert.equal(bob.balance().confirmedSat, 0n);
    const a = alice.balance();
    assert.equal(a.confirmedSat + a.unconfirmedSat, before.confirmedSat - 2n * COIN - sent.feeSat);
    assert.ok(chain.node.mempool.has(tx.hash('hex')));
    await chain.generateToAddress(1, ELSEWHERE);
    assert.deepEqual(bob.balance(), { confirmedSat: 2n * COIN, unconfirmedSat: 0n, lockedSat: 0n, immatureSat: 0n });
    assert.equal(alice.balance().confirmedSat, before.confirmedSat - 2n * COIN - sent.feeSat);
    const hist = bob.transactions();
    assert.equal(hist.length, 1);
    assert.equal(hex(hist[0]!.txid), hex(sent.txid));
    assert.equal(hist[0]!.netSat, 2n * COIN);
    assert.equal(hist[0]!.height, chain.tip().height);
    // Bob spends on: his coin is selected, his change comes back to him.
    const back = await bob.sendToAddress((await alice.newAddress()).address, COIN / 2n);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.equal(bob.balance().confirmedSat, 2n * COIN - COIN / 2n - back.feeSat);
  });

  it('builds a funding transaction without broadcasting it, locks its inputs, publishes on request', async () => {
    const before = alice.balance();
    const f = await alice.createFunding({ script: P2WSH, amountSat: 1_000_000n, feeratePerKw: 2500 });
    const tx = bcoin.TX.fromRaw(Buffer.from(f.tx));
    assert.equal(hex(f.txid), tx.hash('hex'));
    assert.equal(hex(tx.outputs[f.outputIndex]!.script.toRaw()), hex(P2WSH));
    assert.equal(tx.outputs[f.outputIndex]!.value, 1_000_000);
    // Signed (witnesses present) and at the feerate: fee / weight × 1000 ≈ 2500 sat/kw.
    const perKw = (Number(f.feeSat) * 1000) / tx.getWeight();
    assert.ok(perKw >= 2400 && perKw < 2700, `feerate ${perKw} sat/kw`);
    await chain.synced();
    assert.ok(!chain.node.mempool.has(tx.hash('hex')), 'not broadcast');
    const locked = alice.balance();
    assert.ok(locked.lockedSat > 0n);
    assert.equal(locked.confirmedSat + locked.lockedSat, before.confirmedSat);
    assert.equal(alice.pendingFundings().length, 1);
    // Locked coins are not selected again: a second funding uses other coins.
    const g = await alice.createFunding({ script: P2WSH, amountSat: 2_000_000n });
    const inputsOf = (raw: Uint8Array) => bcoin.TX.fromRaw(Buffer.from(raw)).inputs.map((i) => `${i.prevout.hash}:${i.prevout.index}`);
    assert.equal(inputsOf(f.tx).filter((x) => inputsOf(g.tx).includes(x)).length, 0);
    // Abandon releases the lock.
    await alice.abandonFunding(g.txid);
    assert.equal(alice.balance().lockedSat, locked.lockedSat);
    await assert.rejects(alice.publishFunding(g.txid), isWalletError('ERR_UNKNOWN_FUNDING'));
    // Publish: broadcast, then confirmed; the lock becomes a spend.
    await alice.publishFunding(f.txid);
    assert.ok(chain.node.mempool.has(tx.hash('hex')));
    assert.equal(alice.balance().lockedSat, 0n);
    assert.equal(alice.pendingFundings().length, 0);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.equal(alice.balance().confirmedSat, before.confirmedSat - 1_000_000n - f.feeSat);
  });

  it('pays the fee of a transaction that has none of its own (an anchor second stage), keeping its input and output in place', async () => {
    // a coin anyone can spend with the witness script OP_1, our stand-in for an HTLC output
    const witnessScript = Uint8Array.of(0x51);
    const spk = p2wsh(witnessScript);
    const address = bcoin.Address.fromScript(bcoin.Script.fromRaw(Buffer.from(spk)))!.toString('regtest');
    const paid = await bob.sendToAddress(address, 400_000n);
    await chain.generateToAddress(1, ELSEWHERE);
    const funding = bcoin.TX.fromRaw(Buffer.from(paid.tx));
    const index = funding.outputs.findIndex((o) => hex(o.script.toRaw()) === hex(spk));
    // the fee-less template: all of the coin to output 0
    const mtx = new MTX();
    mtx.version = 2;
    mtx.addOutpoint(new Outpoint(funding.hash('hex'), index)).sequence = 1;
    mtx.addOutput(Script.fromRaw(buf(P2WSH)), 400_000);
    const template = new Uint8Array((mtx as unknown as { toTX(): { toRaw(): Buffer } }).toTX().toRaw());
    const sign0 = (funded: Uint8Array): Uint8Array => {
      const t = TX.fromRaw(buf(funded));
      t.inputs[0]!.witness = Witness.fromItems([buf(witnessScript)]);
      (t as unknown as { refresh(): void }).refresh();
      return new Uint8Array(t.toRaw());
    };
    const req = {
      tx: template,
      weight: 4 * 94 + 5 /* its witness: marker, flag, one item of one byte */,
      feeratePerKw: 2_500,
      foreignCoins: [{ valueSat: 400_000n, scriptPubKey: spk }],
    };
    const before = alice.balance().confirmedSat;
    // what comes back must be the funded transaction, signed
    await assert.rejects(alice.payFeeAndBroadcast({ ...req, complete: (f) => f }), isWalletError('ERR_BROADCAST'));
    await assert.rejects(
      alice.payFeeAndBroadcast({ ...req, complete: (f) => sign0(f).map((x, i, a) => (i === a.length - 5 ? x ^ 1 : x)) }),
      isWalletError('ERR_BROADCAST'),
    );
    await assert.rejects(alice.payFeeAndBroadcast({ ...req, feeratePerKw: 0, complete: sign0 }), isWalletError('ERR_INVALID_FEERATE'));
    const { wallet: empty } = await newWallet(chain, 99);
    await assert.rejects(empty.payFeeAndBroadcast({ ...req, complete: sign0 }), isWalletError('ERR_INSUFFICIENT_FUNDS'));
    await empty.close();
    assert.equal(alice.balance().confirmedSat, before, 'nothing spent by the refusals');

    const sent = await alice.payFeeAndBroadcast({ ...req, complete: sign0 });
    const tx = bcoin.TX.fromRaw(Buffer.from(sent.tx));
    assert.ok(chain.node.mempool.has(tx.hash('hex')));
    assert.equal(tx.inputs[0]!.prevout.hash, funding.hash('hex'));
    assert.equal(tx.outputs[0]!.value, 400_000);
    assert.ok(tx.inputs.length >= 2 && tx.outputs.length === 2, 'our coin and our change after them');
    assert.ok(alice.isMine(new Uint8Array(tx.outputs[1]!.script.toRaw())));
    const perKw = (Number(sent.feeSat) * 1000) / tx.getWeight();
    assert.ok(perKw >= 2_500 && perKw < 2_700, `feerate ${perKw} sat/kw`);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.equal(alice.balance().confirmedSat, before - sent.feeSat, 'the wallet paid exactly the fee');
  });

  it('refuses bad input with typed errors, broadcasting nothing and changing nothing', async () => {
    await chain.synced();
    const before = alice.balance();
    const utxos = alice.listUnspent().length;
    const mempool = () => [...(chain.node.mempool as unknown as { map: Map<string, unknown> }).map.keys()].length;
    const m0 = mempool();
    const { address } = await bob.newAddress();
    await assert.rejects(alice.sendToAddress(address, 21_000_001n * COIN), isWalletError('ERR_INVALID_AMOUNT'));
    await assert.rejects(alice.sendToAddress(address, 20_000n * COIN), isWalletError('ERR_INSUFFICIENT_FUNDS'));
    await assert.rejects(alice.sendToAddress(address, 293n), isWalletError('ERR_DUST')); // P2WPKH dust limit is 294
    await assert.rejects(alice.sendToAddress(address, 0n), isWalletError('ERR_INVALID_AMOUNT'));
    await assert.rejects(alice.sendToAddress(address, -5n), isWalletError('ERR_INVALID_AMOUNT'));
    await assert.rejects(alice.sendToAddress('bcrt1qnotanaddress', 10_000n), isWalletError('ERR_INVALID_ADDRESS'));
    await assert.rejects(alice.sendToAddress('', 10_000n), isWalletError('ERR_INVALID_ADDRESS'));
    await assert.rejects(
      alice.sendToAddress(address.slice(0, -1) + (address.endsWith('q') ? 'p' : 'q'), 10_000n),
      isWalletError('ERR_INVALID_ADDRESS'),
    );
    // Mainnet and testnet addresses (BIP173 examples).
    await assert.rejects(alice.sendToAddress('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 10_000n), isWalletError('ERR_WRONG_NETWORK'));
    await assert.rejects(alice.sendToAddress('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 10_000n), isWalletError('ERR_WRONG_NETWORK'));
    await assert.rejects(alice.sendToAddress('1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2', 10_000n), isWalletError('ERR_WRONG_NETWORK'));
    await assert.rejects(alice.sendToAddress(address, 10_000n, { satPerVbyte: 0.5 }), isWalletError('ERR_INVALID_FEERATE'));
    await assert.rejects(alice.createFunding({ script: P2WSH.subarray(0, 22), amountSat: 100_000n }), isWalletError('ERR_INVALID_SCRIPT'));
    await assert.rejects(
      alice.createFunding({ script: bob.listUnspent()[0]!.script, amountSat: 100_000n }),
      isWalletError('ERR_INVALID_SCRIPT'),
    );
    await assert.rejects(alice.createFunding({ script: P2WSH, amountSat: 329n }), isWalletError('ERR_DUST')); // P2WSH dust limit is 330
    await assert.rejects(alice.createFunding({ script: P2WSH, amountSat: 20_000n * COIN }), isWalletError('ERR_INSUFFICIENT_FUNDS'));
    await assert.rejects(
      alice.createFunding({ script: P2WSH, amountSat: 100_000n, feeratePerKw: 100 }),
      isWalletError('ERR_INVALID_FEERATE'),
    );
    await assert.rejects(alice.publishFunding(new Uint8Array(32)), isWalletError('ERR_UNKNOWN_FUNDING'));
    await assert.rejects(alice.abandonFunding(new Uint8Array(3)), isWalletError('ERR_UNKNOWN_FUNDING'));
    await chain.synced();
    assert.deepEqual(alice.balance(), before);
    assert.equal(alice.listUnspent().length, utxos);
    assert.equal(alice.pendingFundings().length, 0);
    assert.equal(mempool(), m0);
    // The limits themselves are fine.
    await alice.sendToAddress(address, 294n);
    await alice.createFunding({ script: P2WSH, amountSat: 330n }).then((f) => alice.abandonFunding(f.txid));
    await chain.generateToAddress(1, ELSEWHERE);
  });

  it('follows reorgs: a lost coinbase disappears, a lost payment goes back to unconfirmed and is mined again', async () => {
    const carol = (await newWallet(chain, 13)).wallet;
    try {
      const { address } = await carol.newAddress();
      const [cbBlock] = await chain.generateToAddress(1, address);
      assert.ok(carol.balance().immatureSat > 0n);
      const sent = await alice.sendToAddress((await carol.newAddress()).address, 3n * COIN);
      await chain.generateToAddress(1, ELSEWHERE);
      assert.equal(carol.balance().confirmedSat, 3n * COIN);
      // Drop both blocks: the coinbase is gone, the payment is unconfirmed again.
      await chain.invalidateBlock(cbBlock!);
      assert.deepEqual(carol.balance(), { confirmedSat: 0n, unconfirmedSat: 3n * COIN, lockedSat: 0n, immatureSat: 0n });
      assert.ok(chain.node.mempool.has(bcoin.TX.fromRaw(Buffer.from(sent.tx)).hash('hex')), 'put back in the mempool');
      await chain.generateToAddress(2, ELSEWHERE);
      assert.deepEqual(carol.balance(), { confirmedSat: 3n * COIN, unconfirmedSat: 0n, lockedSat: 0n, immatureSat: 0n });
      assert.equal(carol.transactions().length, 1);
    } finally {
      await carol.close();
    }
  });

  it('evicts an unconfirmed spend that a confirmed conflicting transaction replaced', async () => {
    const dave = (await newWallet(chain, 14)).wallet;
    try {
      await alice.sendToAddress((await dave.newAddress()).address, COIN);
      await chain.generateToAddress(1, ELSEWHERE);
      // Dave spends his only coin; the network loses that transaction (evicted from the mempool).
      const lost = await dave.sendToAddress(ELSEWHERE, COIN / 2n);
      const pool = chain.node.mempool as unknown as { getEntry(h: string): unknown; evictEntry(e: unknown): void };
      pool.evictEntry(pool.getEntry(hex(lost.txid)));
      assert.equal(dave.transactions().length, 2);
      // A second copy of Dave's wallet, restored from the seed, never saw it and spends the same coin elsewhere.
      const { wallet: restored } = await newWallet(chain, 14);
      const winner = await restored.sendToAddress(ELSEWHERE, COIN / 4n);
      await restored.close();
      await chain.generateToAddress(1, ELSEWHERE);
      // Dave's own spend is gone, the confirmed one is his history now.
      const txids = dave.transactions().map((t) => hex(t.txid));
      assert.ok(!txids.includes(hex(lost.txid)));
      assert.ok(txids.includes(hex(winner.txid)));
      assert.equal(dave.balance().confirmedSat, COIN - COIN / 4n - winner.feeSat);
      assert.equal(dave.balance().unconfirmedSat, 0n);
    } finally {
      await dave.close();
    }
  });

  it('drops chain events that arrive after close(), with its store already closed, without an error', async () => {
    const { wallet: erin, store } = await newWallet(chain, 15);
    const { address } = await erin.newAddress();
    await erin.close();
    await store.close();
    // a payment to Erin, delivered late as the backend would if it was mid-delivery when she closed
    const sent = await alice.sendToAddress(address, COIN / 10n);
    const tx = bcoin.TX.fromRaw(Buffer.from(sent.tx));
    await erin.mempoolTx(tx);
    await chain.generateToAddress(1, ELSEWHERE);
    const height = chain.tip().height;
    const hash = await chain.getHash(height);
    const block = hash === null ? null : await chain.getBlock(hash);
    assert.ok(hash !== null && block !== null);
    await erin.blockConnected(height, hash, block);
    await erin.blockDisconnected(height, hash);
    assert.equal(erin.balance().unconfirmedSat + erin.balance().confirmedSat, 0n);
  });
});
