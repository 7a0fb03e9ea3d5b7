/**
 * The chain backend following btcd over P2P (`chain: 'p2p'`): ampnode's
 * wallet receives coins paid on btcd's chain (relayed from btcd's mempool,
 * then confirmed in a btcd block), and a transaction ampnode's wallet sends is
 * relayed to btcd and mined by it; the confirmation watch hears of it.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { openMemoryStore } from '../../db/store.js';
import type { ConfirmationEvent } from '../../htlc/chain.js';
import { createChainBackend, type BcoinChainBackend } from '../../node/chain/index.js';
import { Wallet } from '../../node/wallet/wallet.js';
import { BUILD_TIMEOUT_MS, ensureBinaries, Interop, waitFor, type Btcd } from './harness.js';

const h = new Interop('chain-btcd');

before(() => ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS }), { timeout: BUILD_TIMEOUT_MS + 60_000 });
after(() => h.close());

h.test(
  "ampnode follows btcd: its wallet receives btcd's coins and its transaction is mined by btcd",
  async () => {
    const btcd: Btcd = await h.startBtcd();
    const btcdHeight = await btcd.height();
    let chain: BcoinChainBackend | undefined;
    let wallet: Wallet | undefined;
    try {
      chain = await createChainBackend({ chain: 'p2p', chainPeer: btcd.p2pHost });
      const c = chain;
      await waitFor(() => c.tip().height === btcdHeight, { timeoutMs: 60_000, what: `bcoin syncing to btcd's height ${btcdHeight}` });
      assert.ok(c.segwitActive());
      wallet = await Wallet.open({ chain: c, store: await openMemoryStore(), seed: new Uint8Array(32).fill(0x42) });
      const w = wallet;

      // btcd → ampnode: seen unconfirmed (tx relay), then confirmed (block relay).
      const { address } = await w.newAddress();
      const paid = await btcd.sendToAddress(address, 100_000_000);
      await waitFor(() => w.balance().unconfirmedSat === 100_000_000n, { timeoutMs: 30_000, what: 'the payment in our mempool' });
      await btcd.generate(1);
      await waitFor(() => w.balance().confirmedSat === 100_000_000n, { timeoutMs: 30_000, what: 'the payment confirmed' });
      assert.equal(Buffer.from(w.transactions()[0]!.txid).reverse().toString('hex'), paid);

      // ampnode → btcd: relayed to btcd's mempool, mined by btcd, watched to 2 confirmations.
      const sent = await w.sendToAddress(btcd.miner.address, 40_000_000n);
      const txid = Buffer.from(sent.txid).reverse().toString('hex');
      const events: ConfirmationEvent['type'][] = [];
      c.watchConfirmations({ txid: sent.txid, numConfs: 2 }, (e) => void events.push(e.type));
      await waitFor(async () => (await btcd.rpc<string[]>('getrawmempool')).includes(txid), {
        timeoutMs: 30_000,
        what: 'our transaction in btcd mempool',
      });
      await btcd.generate(2);
      await waitFor(() => events.includes('confirmed'), { timeoutMs: 30_000, what: 'two confirmations from btcd blocks' });
      assert.deepEqual(events, ['update', 'confirmed']);
      const info = await btcd.rpc<{ confirmations: number }>('getrawtransaction', [txid, 1]);
      assert.equal(info.confirmations, 2);
      assert.equal(w.balance().unconfirmedSat, 0n);
      assert.equal(w.balance().confirmedSat, 100_000_000n - 40_000_000n - sent.feeSat);
    } finally {
      await wallet?.close();
      await chain?.close();
    }
  },
  { timeoutMs: 240_000 },
);
