/**
 * The embedding API as an app uses it (`node/index.ts` only): two nodes on one embedded regtest chain, a channel, a
 * reusable AMP invoice paid twice, then every read an app makes (payments, invoices, balances, status, peers), a
 * cooperative close, a disconnect, and stop() twice.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createChainBackend, createNode, silentLogger, type AmpNode, type BcoinChainBackend } from '../../node/index.js';
import { until } from './embedded-fixture.js';

const ELSEWHERE = 'bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5';
const SAT = 1000n;
const dir = mkdtempSync(join(tmpdir(), 'ampnode-library-'));
let chain: BcoinChainBackend | undefined;
const nodes: AmpNode[] = [];

after(async () => {
  for (const n of nodes) await n.stop();
  await chain?.close();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'two embedded nodes: a channel, an AMP invoice paid twice, the reads an app makes, a close, stop twice',
  { timeout: 120_000 },
  async () => {
    chain = await createChainBackend();
    const mine = async (n: number, address = ELSEWHERE): Promise<void> => {
      await chain!.generateToAddress(n, address);
      await chain!.synced();
    };
    const opts = { chain, logger: silentLogger(), policy: { minimumDepth: 1, timeoutMs: 60_000 } };
    const a = await createNode({ ...opts, datadir: join(dir, 'a') });
    const b = await createNode({ ...opts, datadir: join(dir, 'b') });
    nodes.push(a, b);
    await mine(2, await a.newAddress());
    await mine(432 - chain.tip().height);
    assert.ok(a.balances().onChain.confirmedSat > 0n, 'A holds mature coinbases');
    assert.equal(b.balances().onChain.confirmedSat, 0n);

    await a.connect(b.uri);
    assert.deepEqual(
      a.listPeers().map((p) => p.nodeId),
      [b.nodeId],
    );
    const ch = await a.openChannel(b.nodeId, 400_000n);
    await mine(1);
    await until(() => a.channels().some((c) => c.channelId === ch.channelId && c.active), 'the channel active');
    await until(() => b.routingChannels().some((c) => c.peerPolicy !== undefined), "A's channel_update at B");

    const { invoice, paymentRequest } = await b.addInvoice({ amp: true, memo: 'library api' });
    const paid = [];
    for (const amountSat of [30_000n, 45_000n]) {
      const p = await a.payInvoice(paymentRequest, { amountMsat: amountSat * SAT, maxShardMsat: 15_000n * SAT });
      assert.equal(p.status, 'succeeded', `${p.failureReason ?? ''} ${p.failureDetail ?? ''}`);
      paid.push(p);
    }
    const listed = await a.listPayments();
    assert.deepEqual(
      listed.map((p) => Buffer.from(p.id).toString('hex')),
      paid.map((p) => Buffer.from(p.id).toString('hex')),
    );
    assert.equal((await a.lookupPayment(paid[1]!.id))?.amountMsat, 45_000n * SAT);
    assert.equal(await a.lookupPayment(new Uint8Array(32)), undefined);

    const invoices = await b.listInvoices();
    assert.equal(invoices.length, 1);
    assert.equal(
      Buffer.from((await b.lookupInvoiceByHash(invoices[0]!.paymentHash))!.paymentAddr).toString('hex'),
      Buffer.from(invoice.paymentAddr).toString('hex'),
    );
    const withSets = await b.lookupInvoice(invoice.paymentAddr);
    assert.deepEqual(withSets?.sets?.map((s) => s.amountPaidMsat).sort(), [30_000n * SAT, 45_000n * SAT]);

    await until(() => b.balances().channelsMsat === 75_000n * SAT, "B's channel balance holding both payments");
    // A's side: the capacity less both payments, less the commitment fee the opener pays
    const aMsat = a.balances().channelsMsat;
    assert.equal(aMsat, a.channels()[0]!.localBalanceMsat);
    assert.ok(aMsat <= 325_000n * SAT && aMsat > 315_000n * SAT, `A holds ${aMsat} msat`);

    const st = a.status();
    assert.equal(st.running, true);
    assert.equal(st.nodeId, a.nodeId);
    assert.equal(st.chainTip.height, chain.tip().height);
    assert.match(st.chainTip.hashHex, /^[0-9a-f]{64}$/);
    assert.equal(st.peers, 1);
    assert.equal(st.channels, 1);

    const changed = await a.updateChannelPolicy({ channelId: ch.channelId, feeRatePpm: 250n });
    assert.equal(changed[0]?.policy?.feeRatePpm, 250n);
    assert.equal(a.channels()[0]!.policy?.feeRatePpm, 250n);
    await assert.rejects(
      a.updateChannelPolicy({ cltvExpiryDelta: 5 }),
      (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_POLICY',
    );

    const closing = await a.closeChannel(ch.channelId);
    assert.ok(closing.closingTxid !== undefined);
    assert.equal(a.disconnect(b.nodeId), true);
    await until(() => a.listPeers().length === 0, 'the peer gone');
    assert.equal(a.disconnect(b.nodeId), false, 'a disconnect once it is gone finds no peer');

    await a.stop();
    await a.stop(); // harmless
    assert.equal(a.status().running, false);
  },
);
