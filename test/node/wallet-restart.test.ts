/**
 * The wallet's state survives a restart: a disk store and a seed file in a
 * temporary directory, closed and reopened while the (in-memory) chain moves
 * on and reorganises underneath.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDiskStore, type KvStore } from '../../db/store.js';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import { Wallet } from '../../node/wallet/wallet.js';
import { WalletError } from '../../node/wallet/errors.js';
import { ELSEWHERE, fundWallet, hex, newChain } from './chain-fixture.js';

const P2WSH = new Uint8Array([0x00, 0x20, ...new Uint8Array(32).fill(0xcd)]);

describe('wallet restart (disk store)', () => {
  let dir: string;
  let chain: BcoinChainBackend;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ampnode-wallet-'));
    chain = await newChain();
  });
  after(async () => {
    await chain?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function open(): Promise<{ wallet: Wallet; store: KvStore }> {
    const store = await openDiskStore(join(dir, 'db'));
    const wallet = await Wallet.open({ chain, store, seedPath: join(dir, 'seed') });
    return { wallet, store };
  }

  it('keeps coins, locks, pending fundings and address indexes; rescans what it missed, including a reorg', async () => {
    let { wallet, store } = await open();
    const seedMode = (await stat(join(dir, 'seed'))).mode & 0o777;
    assert.equal(seedMode, 0o600);
    const seedText = await readFile(join(dir, 'seed'), 'utf8');
    await fundWallet(chain, wallet, 3);
    const issued = [(await wallet.newAddress()).address, (await wallet.newAddress()).address];
    const funding = await wallet.createFunding({ script: P2WSH, amountSat: 5_000_000n });
    const sent = await wallet.sendToAddress(ELSEWHERE, 1_000_000n);
    await chain.generateToAddress(1, ELSEWHERE);
    const balance = wallet.balance();
    const utxos = wallet
      .listUnspent()
      .map((u) => `${hex(u.txid)}:${u.outputIndex}:${u.valueSat}:${u.height}:${u.locked}`)
      .sort();
    const history = wallet.transactions().map((t) => `${hex(t.txid)}:${t.height}:${t.netSat}`);
    assert.ok(balance.lockedSat > 0n && balance.confirmedSat > 0n);
    await wallet.close();
    await store.close();

    // Restart with nothing changed.
    ({ wallet, store } = await open());
    assert.equal(await readFile(join(dir, 'seed'), 'utf8'), seedText, 'the seed file is reused, not rewritten');
    assert.deepEqual(wallet.balance(), balance);
    assert.deepEqual(
      wallet
        .listUnspent()
        .map((u) => `${hex(u.txid)}:${u.outputIndex}:${u.valueSat}:${u.height}:${u.locked}`)
        .sort(),
      utxos,
    );
    assert.deepEqual(
      wallet.transactions().map((t) => `${hex(t.txid)}:${t.height}:${t.netSat}`),
      history,
    );
    assert.equal(wallet.pendingFundings().length, 1);
    const fresh = (await wallet.newAddress()).address;
    assert.ok(!issued.includes(fresh), 'address index persisted');
    await wallet.close();
    await store.close();

    // While it is down: coins arrive, and the block holding our payment is reorganised away.
    const sentHeight = Number(history.find((h) => h.startsWith(hex(sent.txid)))!.split(':')[1]);
    await chain.generateToAddress(2, fresh);
    await chain.invalidateBlock(Buffer.from((await chain.getHash(sentHeight))!, 'hex'));
    // (the rewind dropped the payment from the mempool too; nobody rebroadcast it while the wallet was closed)
    assert.ok(!chain.node.mempool.has(hex(sent.txid)));
    ({ wallet, store } = await open());
    assert.equal(wallet.syncedHeight(), chain.tip().height);
    const t = wallet.transactions().find((x) => hex(x.txid) === hex(sent.txid))!;
    assert.equal(t.height, -1, 'the payment is unconfirmed again');
    assert.equal(wallet.listUnspent().filter((u) => u.coinbase && u.height > sentHeight).length, 0, 'coinbases of lost blocks are gone');
    assert.ok(chain.node.mempool.has(hex(sent.txid)), 'rebroadcast on open');
    assert.ok(wallet.balance().confirmedSat > 0n);
    // The pending funding survived both restarts and can still be published.
    assert.equal(wallet.pendingFundings().length, 1);
    await wallet.publishFunding(funding.txid);
    await chain.generateToAddress(1, ELSEWHERE);
    assert.equal(wallet.balance().lockedSat, 0n);
    assert.ok(
      wallet.transactions().every((x) => x.height >= 0),
      'everything confirmed, the payment again',
    );
    await wallet.close();
    await store.close();
  });

  it('refuses a malformed seed file and a store of another seed', async () => {
    const bad = join(dir, 'bad-seed');
    await writeFile(bad, 'not hex\n', { mode: 0o600 });
    const store = await openDiskStore(join(dir, 'db'));
    try {
      await assert.rejects(Wallet.open({ chain, store, seedPath: bad }), (e: unknown) => e instanceof WalletError && e.code === 'ERR_SEED');
      await assert.rejects(
        Wallet.open({ chain, store, seed: new Uint8Array(32).fill(9) }),
        (e: unknown) => e instanceof WalletError && e.code === 'ERR_SEED',
      );
    } finally {
      await store.close();
    }
  });
});
