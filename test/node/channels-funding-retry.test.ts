/**
 * A funding transaction the chain refuses at first: the opening still completes as lnd's does (the channel is signed
 * by both and persisted before the broadcast), and the transaction goes out again on every block until the chain
 * takes it; the channel then confirms and becomes usable on both sides. The refusal here is a real one: P2WPKH coins
 * spent before segwit activates on regtest (height 432) are "no-witness-yet" to bcoin's mempool.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import { ELSEWHERE, SEGWIT_HEIGHT } from './chain-fixture.js';
import { TestNode, mineElsewhere, newTestChain, teardown, until } from './channels-fixture.js';

let chain: BcoinChainBackend | undefined;
let alice: TestNode | undefined;
let bob: TestNode | undefined;
after(() => teardown(chain, [alice, bob]));

it('a refused funding transaction is published again on each block until taken; the channel then opens', { timeout: 120_000 }, async () => {
  chain = await newTestChain();
  alice = new TestNode({ name: 'alice', policy: { minimumDepth: 3 } }, chain);
  bob = new TestNode({ name: 'bob', policy: { minimumDepth: 3 } }, chain);
  await alice.start();
  await bob.start();
  // mature coins for alice, well before segwit activation
  await chain.generateToAddress(2, (await alice.wallet.newAddress()).address);
  await chain.generateToAddress(150, ELSEWHERE);
  await chain.synced();
  assert.ok(chain.tip().height < SEGWIT_HEIGHT - 10);

  await alice.connect(bob);
  const info = await alice.manager.openChannel(bob.id, 500_000n);
  assert.equal(info.state, 'awaiting_ready', 'the opening completes: signed by both and persisted');
  const fundingTxid = info.fundingOutpoint!.split(':')[0]!;
  const internal = Buffer.from(fundingTxid, 'hex').reverse().toString('hex'); // bcoin's byte order
  const inMempool = (): boolean => chain!.node.mempool.has(internal);
  assert.equal(inMempool(), false, 'refused before segwit');
  assert.equal(alice.wallet.pendingFundings().length, 1, 'its inputs stay locked for it');

  // a few blocks below activation: refused again each time, the channel still waiting
  await mineElsewhere(chain, 5);
  assert.equal(inMempool(), false);
  assert.equal(alice.manager.listChannels()[0]!.state, 'awaiting_ready');

  // up to activation: one of the retries is taken
  await mineElsewhere(chain, SEGWIT_HEIGHT - chain.tip().height);
  for (let i = 0; i < 3 && !inMempool(); i++) await mineElsewhere(chain, 1);
  await until(inMempool, 'the funding transaction in the mempool', 10_000);
  await mineElsewhere(chain, 3);
  await until(
    () => alice!.manager.listChannels()[0]?.active === true && bob!.manager.listChannels()[0]?.active === true,
    'the channel active on both sides',
  );
  const active = alice.manager.listChannels()[0]!;
  assert.equal(active.fundingOutpoint, info.fundingOutpoint);
  assert.equal(alice.wallet.pendingFundings().length, 0, 'the funding left the pending list once published');
});
