/**
 * Self-test of the interop fixture against real btcd and lnd: btcd mines past BIP9 activation and pays
 * out of the miner's coinbases, two lnd nodes start, sync to btcd's tip and hold a connection with each
 * other, and blocks mined to an lnd address reach lnd.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { BUILD_TIMEOUT_MS, ensureBinaries, Interop, waitFor, type Btcd, type Lnd } from './harness.js';

const h = new Interop('harness');
let btcd: Btcd;
let alice: Lnd;
let bob: Lnd;

before(() => ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS }), { timeout: BUILD_TIMEOUT_MS + 60_000 });
after(() => h.close());

h.test('btcd starts on regtest with segwit active and a matured miner balance', async () => {
  btcd = await h.startBtcd();
  assert.equal(await btcd.height(), 500);
  const info = await btcd.rpc<{ chain: string; bip9_softforks?: Record<string, { status: string }>; softforks?: unknown }>(
    'getblockchaininfo',
  );
  assert.equal(info.chain, 'regtest');
  assert.equal(info.bip9_softforks?.['segwit']?.status, 'active', JSON.stringify(info.bip9_softforks));
  assert.equal(info.bip9_softforks?.['csv']?.status, 'active');
  assert.match(btcd.p2pHost, /^127\.0\.0\.1:\d+$/);
  assert.match(btcd.miner.address, /^bcrt1q/);
});

h.test('two lnd nodes start, sync and connect to each other', async () => {
  [alice, bob] = await Promise.all([h.startLnd(btcd, { name: 'alice' }), h.startLnd(btcd, { name: 'bob' })]);
  assert.match(alice.nodeId, /^0[23][0-9a-f]{64}$/);
  assert.notEqual(alice.nodeId, bob.nodeId);
  await alice.cli(['connect', `${bob.nodeId}@${bob.p2pHost}`]);
  const seen = await waitFor(async () => (await bob.peer(alice.nodeId)) && (await alice.peer(bob.nodeId)), {
    timeoutMs: 20_000,
    what: 'alice and bob listing each other',
  });
  // lnd's own init features, as its peer parsed them: data_loss_protect required, static_remotekey required.
  assert.equal(seen.features['0']?.is_required, true);
  assert.equal(seen.features['12']?.is_required, true);
  const fromBob = await bob.peer(alice.nodeId);
  assert.equal(fromBob?.inbound, true);
});

h.test('the miner pays an lnd address; lnd sees the confirmed output', async () => {
  const { address } = await alice.cli<{ address: string }>(['newaddress', 'p2wkh']);
  const txid = await btcd.sendToAddress(address, 5_000_000);
  await btcd.generate(1);
  const tx = await btcd.rpc<{ confirmations: number }>('getrawtransaction', [txid, 1]);
  assert.equal(tx.confirmations, 1);
  await alice.waitSynced();
  const bal = await waitFor(
    async () => {
      const b = await alice.cli<{ confirmed_balance: string }>(['walletbalance']);
      return b.confirmed_balance === '5000000' ? b : undefined;
    },
    { timeoutMs: 30_000, what: 'alice confirmed balance 5000000' },
  );
  assert.equal(bal.confirmed_balance, '5000000');
});

h.test(
  'generate(n, addr) mines blocks paying a given address, with mempool transactions',
  async () => {
    const { address } = await bob.cli<{ address: string }>(['newaddress', 'p2wkh']);
    const toAlice = await alice.cli<{ address: string }>(['newaddress', 'p2tr']);
    const txid = await btcd.sendToAddress(toAlice.address, 1_000_000);
    const before = await btcd.height();
    const hashes = await btcd.generate(2, address);
    assert.equal(await btcd.height(), before + 2);
    const first = await btcd.rpc<{ tx: string[] }>('getblock', [hashes[0], 1]);
    assert.ok(first.tx.includes(txid), 'the mempool transaction (witness data) went into the first block');
    for (const hash of hashes) {
      const blk = await btcd.rpc<{ tx: string[] }>('getblock', [hash, 1]);
      const cb = await btcd.rpc<{ vout: Array<{ scriptPubKey: { addresses?: string[]; address?: string } }> }>('getrawtransaction', [
        blk.tx[0],
        1,
      ]);
      const paid = cb.vout.flatMap((o) => o.scriptPubKey.addresses ?? (o.scriptPubKey.address ? [o.scriptPubKey.address] : []));
      assert.ok(paid.includes(address), `coinbase pays ${JSON.stringify(paid)}`);
    }
    await bob.waitSynced();
    await alice.waitSynced();
    const utxos = await alice.cli<{ utxos: Array<{ amount_sat: string | number; address: string }> }>(['listunspent']);
    assert.ok(
      utxos.utxos.some((u) => u.address === toAlice.address && String(u.amount_sat) === '1000000'),
      JSON.stringify(utxos),
    );
  },
  { timeoutMs: 300_000 },
);

h.test('disconnect and reconnect between two lnds', async () => {
  await alice.cli(['disconnect', bob.nodeId]);
  await waitFor(async () => !(await alice.peer(bob.nodeId)) && !(await bob.peer(alice.nodeId)), {
    timeoutMs: 20_000,
    what: 'peers gone after disconnect',
  });
  await bob.cli(['connect', `${alice.nodeId}@${alice.p2pHost}`]);
  await waitFor(async () => (await alice.peer(bob.nodeId)) && (await bob.peer(alice.nodeId)), {
    timeoutMs: 20_000,
    what: 'peers back after reconnect',
  });
});
