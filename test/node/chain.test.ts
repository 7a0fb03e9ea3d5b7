/**
 * The bcoin chain backend on an embedded in-memory regtest chain: block
 * stream, confirmation and spend watches (including reorgs made by
 * invalidating blocks and by a competing node's longer chain), broadcast
 * errors, fee estimate, options.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { BlockEvent, ConfirmationEvent, SpendEvent } from '../../htlc/chain.js';
import { ChainError } from '../../htlc/chain.js';
import { BcoinChainBackend, createChainBackend } from '../../node/chain/index.js';
import type { Wallet } from '../../node/wallet/wallet.js';
import { bcoin } from '../../node/chain/bcoin.js';
import { ELSEWHERE, fundWallet, hex, newChain, newWallet } from './chain-fixture.js';

function brief(e: ConfirmationEvent): string {
  return e.type === 'reorged' ? `reorged:${e.confirmations}:${e.wasConfirmed}` : `${e.type}:${e.confirmations}`;
}

describe('chain backend (embedded regtest)', () => {
  let chain: BcoinChainBackend;
  let alice: Wallet;
  let bob: Wallet;

  before(async () => {
    chain = await newChain();
    alice = (await newWallet(chain, 1)).wallet;
    bob = (await newWallet(chain, 2)).wallet;
    await fundWallet(chain, alice, 5);
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await chain?.close();
  });

  it('streams blocks in order and keeps the tip', async () => {
    const events: BlockEvent[] = [];
    const h = chain.onBlock((e) => void events.push(e));
    const start = chain.tip().height;
    const hashes = await chain.generateToAddress(3, ELSEWHERE);
    h.cancel();
    await chain.generateToAddress(1, ELSEWHERE);
    assert.deepEqual(
      events.map((e) => [e.type, e.height, hex(e.hash)]),
      hashes.map((x, i) => ['connected', start + 1 + i, hex(x)]),
    );
    assert.equal(chain.tip().height, start + 4);
  });

  it('fires a confirmation watch at exactly N confirmations, and reports reorgs (invalidate, longer fork)', async () => {
    const { address } = await bob.newAddress();
    const sent = await alice.sendToAddress(address, 1_000_000n);
    const events: string[] = [];
    let confirmedAt = -1;
    chain.watchConfirmations({ txid: sent.txid, numConfs: 3 }, (e) => {
      events.push(brief(e));
      if (e.type === 'confirmed') {
        confirmedAt = chain.tip().height;
        assert.equal(hex(e.confirmation.tx), hex(sent.tx));
        assert.equal(e.confirmation.txIndex, 1);
      }
    });
    await chain.synced();
    assert.deepEqual(events, []);
    const [b1] = await chain.generateToAddress(1, ELSEWHERE);
    const minedAt = chain.tip().height;
    assert.deepEqual(events, ['update:1']);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.deepEqual(events, ['update:1', 'update:2']);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.deepEqual(events, ['update:1', 'update:2', 'confirmed:3']);
    assert.equal(confirmedAt, minedAt + 2);
    await chain.generateToAddress(1, ELSEWHERE); // 4 confirmations: nothing new
    assert.equal(events.length, 3);

    // Invalidate the tip: 4 → 3, still confirmed.
    await chain.invalidateBlock(chain.tip().hash);
    assert.deepEqual(events.slice(3), ['reorged:3:false']);
    // Invalidate the block above the tx's: two blocks go, one at a time (3 → 2 → 1); the confirmation no longer holds.
    const above = await chain.getHash(minedAt + 1);
    await chain.invalidateBlock(Buffer.from(above!, 'hex'));
    assert.deepEqual(events.slice(4), ['reorged:2:true', 'reorged:1:false']);
    // Invalidate the tx's own block: out of the chain.
    const disconnected: number[] = [];
    const h = chain.onBlock((e) => void (e.type === 'disconnected' && disconnected.push(e.height)));
    await chain.invalidateBlock(b1!);
    h.cancel();
    assert.deepEqual(disconnected, [minedAt]);
    assert.deepEqual(events.slice(6), ['reorged:0:false']);
    assert.equal(chain.tip().height, minedAt - 1);
    // A longer fork: the wallet put its transaction back in the mempool, so it is mined again.
    await chain.generateToAddress(4, ELSEWHERE);
    assert.deepEqual(events.slice(7), ['update:1', 'update:2', 'confirmed:3']);
    assert.equal(chain.tip().height, minedAt + 3);
  });

  it('reports a spend with its spending tx, and the spend undone by a reorg', async () => {
    const coin = alice.listUnspent().find((u) => !u.locked && u.height >= 0 && !u.coinbase) ?? alice.listUnspent()[0]!;
    const events: SpendEvent[] = [];
    chain.watchSpend({ outpoint: { txid: coin.txid, outputIndex: coin.outputIndex } }, (e) => void events.push(e));
    await chain.synced();
    assert.equal(events.length, 0);
    // Spend (to ourselves) everything the wallet has confirmed so the watched coin is surely an input.
    const { address } = await alice.newAddress();
    const all = alice.balance().confirmedSat;
    const sent = await alice.sendToAddress(address, all - 100_000n);
    await chain.synced();
    assert.equal(events.length, 0, 'a mempool spend is not reported');
    await chain.generateToAddress(1, ELSEWHERE);
    assert.equal(events.length, 1);
    const ev = events[0]!;
    assert.equal(ev.type, 'spent');
    if (ev.type !== 'spent') return;
    assert.equal(hex(ev.detail.spendingTxid), hex(sent.txid));
    assert.equal(hex(ev.detail.spendingTx), hex(sent.tx));
    assert.equal(ev.detail.blockHeight, chain.tip().height);
    assert.equal(hex(ev.detail.blockHash), hex(chain.tip().hash));
    const input = bcoin.TX.fromRaw(Buffer.from(sent.tx)).inputs[ev.detail.inputIndex]!;
    assert.equal(input.prevout.hash, hex(coin.txid));
    assert.equal(input.prevout.index, coin.outputIndex);

    await chain.invalidateBlock(chain.tip().hash);
    assert.deepEqual(events.slice(1), [{ type: 'reorged' }]);
    await chain.generateToAddress(2, ELSEWHERE);
    assert.equal(events.length, 3);
    assert.equal(events[2]!.type, 'spent');
  });

  it('finds confirmations and spends that happened before the watch', async () => {
    const { address } = await bob.newAddress();
    const sent = await alice.sendToAddress(address, 200_000n);
    await chain.generateToAddress(2, ELSEWHERE);
    const conf: string[] = [];
    chain.watchConfirmations({ txid: sent.txid, numConfs: 2 }, (e) => void conf.push(brief(e)));
    const conf6: string[] = [];
    chain.watchConfirmations({ txid: sent.txid, numConfs: 6 }, (e) => void conf6.push(brief(e)));
    // The spent outpoint is the first input of `sent`.
    const prev = bcoin.TX.fromRaw(Buffer.from(sent.tx)).inputs[0]!.prevout;
    const spends: SpendEvent[] = [];
    chain.watchSpend({ outpoint: { txid: Buffer.from(prev.hash, 'hex'), outputIndex: prev.index } }, (e) => void spends.push(e));
    await chain.synced();
    assert.deepEqual(conf, ['confirmed:2']);
    assert.deepEqual(conf6, ['update:2']);
    assert.equal(spends.length, 1);
    assert.equal(spends[0]!.type === 'spent' && hex(spends[0]!.detail.spendingTxid), hex(sent.txid));
  });

  it('stops calling back after cancel', async () => {
    const { address } = await bob.newAddress();
    const sent = await alice.sendToAddress(address, 300_000n);
    const events: string[] = [];
    const h = chain.watchConfirmations({ txid: sent.txid, numConfs: 2 }, (e) => void events.push(brief(e)));
    await chain.generateToAddress(1, ELSEWHERE);
    h.cancel();
    h.cancel();
    await chain.generateToAddress(2, ELSEWHERE);
    assert.deepEqual(events, ['update:1']);
  });

  it('follows a competing longer chain from a second node (a real reorganisation)', async () => {
    // A second node that copies our chain, then mines its own branch.
    const other = await createChainBackend();
    try {
      for (let h = 1; h <= chain.tip().height; h++) await other.submitBlock((await chain.getRawBlock(h))!);
      assert.equal(hex(other.tip().hash), hex(chain.tip().hash));
      const { address } = await bob.newAddress();
      const sent = await alice.sendToAddress(address, 400_000n);
      const events: string[] = [];
      chain.watchConfirmations({ txid: sent.txid, numConfs: 1 }, (e) => void events.push(brief(e)));
      const forkAt = chain.tip().height;
      await chain.generateToAddress(1, ELSEWHERE);
      assert.deepEqual(events, ['confirmed:1']);
      await other.generateToAddress(2, ELSEWHERE);
      const blockEvents: string[] = [];
      const h = chain.onBlock((e) => void blockEvents.push(`${e.type}:${e.height}`));
      for (let x = forkAt + 1; x <= forkAt + 2; x++) await chain.submitBlock((await other.getRawBlock(x))!);
      h.cancel();
      assert.deepEqual(blockEvents, [`disconnected:${forkAt + 1}`, `connected:${forkAt + 1}`, `connected:${forkAt + 2}`]);
      assert.deepEqual(events, ['confirmed:1', 'reorged:0:true']);
      assert.equal(hex(chain.tip().hash), hex(other.tip().hash));
      // bcoin put the transaction back in its mempool; the next block confirms it again.
      await chain.generateToAddress(1, ELSEWHERE);
      assert.deepEqual(events, ['confirmed:1', 'reorged:0:true', 'confirmed:1']);
    } finally {
      await other.close();
    }
  });

  it('refuses bad transactions with typed errors', async () => {
    await assert.rejects(
      chain.broadcast(new Uint8Array([1, 2, 3])),
      (e: unknown) => e instanceof ChainError && e.code === 'ERR_INVALID_TX',
    );
    // A transaction whose signatures no longer match.
    const { address } = await bob.newAddress();
    const sent = await alice.sendToAddress(address, 500_000n);
    await chain.generateToAddress(1, ELSEWHERE);
    const tx = bcoin.TX.fromRaw(Buffer.from(sent.tx));
    tx.outputs[0]!.value -= 1000;
    await assert.rejects(
      chain.broadcast(new Uint8Array(tx.toRaw())),
      (e: unknown) => e instanceof ChainError && e.code === 'ERR_BROADCAST_REJECTED',
    );
    // Re-broadcasting a mempool transaction is not an error.
    const again = await alice.sendToAddress(address, 600_000n);
    await chain.broadcast(again.tx);
  });

  it('estimates fees from the configured regtest fallback', async () => {
    assert.equal(await chain.estimateFeeratePerKw(6), 2500);
    const c = new BcoinChainBackend({ fallbackFeeratePerKw: 1000 });
    await c.open();
    try {
      assert.equal(await c.estimateFeeratePerKw(1), 1000);
    } finally {
      await c.close();
    }
  });

  it('validates options', () => {
    const bad = (f: () => unknown, code: string): void => assert.throws(f, (e: unknown) => e instanceof ChainError && e.code === code);
    bad(() => new BcoinChainBackend({ chain: 'p2p' }), 'ERR_CHAIN_CONFIG');
    bad(() => new BcoinChainBackend({ chain: 'p2p', chainPeer: 'localhost' }), 'ERR_CHAIN_CONFIG');
    bad(() => new BcoinChainBackend({ chain: 'embedded', chainPeer: '127.0.0.1:18444' }), 'ERR_CHAIN_CONFIG');
    bad(() => new BcoinChainBackend({ chain: 'regtest' as never }), 'ERR_CHAIN_CONFIG');
    bad(() => new BcoinChainBackend({ fallbackFeeratePerKw: 100 }), 'ERR_CHAIN_CONFIG');
    assert.equal(new BcoinChainBackend({ chain: 'p2p', chainPeer: '127.0.0.1:18444' }).mode, 'p2p');
  });

  it('serves an embedded chain to a follower over P2P (chainListen): it follows every block', async () => {
    const bad = (f: () => unknown): void => assert.throws(f, (e: unknown) => e instanceof ChainError && e.code === 'ERR_CHAIN_CONFIG');
    bad(() => new BcoinChainBackend({ chainListen: '0.0.0.0:18444' })); // loopback only
    bad(() => new BcoinChainBackend({ chainListen: '127.0.0.1:0' })); // followers need to know the port
    bad(() => new BcoinChainBackend({ chain: 'p2p', chainPeer: '127.0.0.1:18444', chainListen: '127.0.0.1:18445' }));
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const a = await createChainBackend({ chainListen: `127.0.0.1:${port}` });
    const b = await createChainBackend({ chain: 'p2p', chainPeer: `127.0.0.1:${port}` });
    try {
      const until = async (what: string, f: () => boolean): Promise<void> => {
        const deadline = Date.now() + 20_000;
        while (!f()) {
          if (Date.now() > deadline) assert.fail(`${what}: not within 20 s`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const hashes = await a.generateToAddress(3, ELSEWHERE);
      await until('the follower at height 3', () => b.tip().height === 3);
      assert.equal(hex(b.tip().hash), hex(a.tip().hash));
      assert.equal(hex(b.tip().hash), hex(hashes[2]!));
      await a.generateToAddress(2, ELSEWHERE);
      await until('the follower at height 5', () => b.tip().height === 5);
    } finally {
      await b.close();
      await a.close();
    }
  });

  it('keeps an on-disk chain across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ampnode-chain-'));
    try {
      let c = await createChainBackend({ chainDir: join(dir, 'chain') });
      const hashes = await c.generateToAddress(3, ELSEWHERE);
      await c.close();
      c = await createChainBackend({ chainDir: join(dir, 'chain') });
      assert.equal(c.tip().height, 3);
      assert.equal(hex(c.tip().hash), hex(hashes[2]!));
      await c.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses mining while following a peer', async () => {
    const c = new BcoinChainBackend({ chain: 'p2p', chainPeer: '127.0.0.1:1' });
    await assert.rejects(c.generateToAddress(1, ELSEWHERE), (e: unknown) => e instanceof ChainError && e.code === 'ERR_CHAIN_UNSUPPORTED');
  });
});
