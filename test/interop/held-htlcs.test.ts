/**
 * HTLCs held at the receiving end, against a real lnd on btcd's regtest chain. ampnode runs in this process through
 * the package entry (createNode, following btcd over P2P), since the first two need what no user sets: the payment
 * lifecycle's test-only hook that withholds a shard, and a receiver hold time of a few seconds.
 *
 *   1. ampnode pays lnd's AMP invoice in three shards and the hook withholds the last one before its HTLC is added:
 *      lnd holds the two it got for its 120 s and fails both with mpp_timeout; ampnode's payment ends failed (timeout,
 *      the last shard's failure mpp_timeout), lnd's invoice has nothing paid, and both ends of the channel hold what
 *      they held before.
 *   2. lnd sends ampnode two shards of one AMP set by sendtoroute (a one-hop route from lnd's buildroute, its final
 *      hop given an MPP record whose total is three shards' worth and an AMP record; buildroute itself refuses a
 *      payment_addr for a node it has no announced features of): ampnode holds them for its hold time (5 s here)
 *      and fails both with mpp_timeout, well before lnd's 120 s; nothing is paid on ampnode's invoice and the
 *      channel balances are as before.
 *   3. lnd pays a hold invoice of ampnode's; with the HTLC held at ampnode, lncli disconnect + connect: both ends
 *      reestablish with the HTLC on the channel, ampnode settles it, lnd's payment succeeds with the preimage, and
 *      lnd closes nothing.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before } from 'node:test';
import pino from 'pino';
import { createLogger, createNode, type AmpNode, type BcoinChainBackend, type PaymentRecord } from '../../node/index.js';
import { BUILD_TIMEOUT_MS, Interop, embeddedChainSteps, ensureBinaries, waitFor, type Btcd, type Lnd } from './harness.js';
import { btcdLndAndChain, type LndChannel } from './lnd-pair.js';

const h = new Interop('held-htlcs');
let btcd: Btcd;
let lnd: Lnd;
let chain: BcoinChainBackend;
let amp: AmpNode;
let point = '';
/** Whether the hook withholds the shard that would complete a set (only during the first scenario). */
let withholding = false;
const HOLD_MS = 5_000;
const LND_HOLD_MS = 120_000;

const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');
const hexOf = (s: string): string => (/^[0-9a-f]*$/.test(s) ? s : Buffer.from(s, 'base64').toString('hex'));
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

const { synced, mine } = embeddedChainSteps(
  () => btcd,
  () => amp,
  () => [lnd],
);

async function lndChannel(): Promise<LndChannel> {
  const c = ((await lnd.cli<{ channels?: LndChannel[] }>(['listchannels'])).channels ?? []).find((x) => x.channel_point === point);
  assert.ok(c !== undefined, `lnd lists ${point}`);
  return c;
}

/** ampnode's local balance (msat) and lnd's (sat) on the channel. */
async function balances(): Promise<string> {
  const ours = amp.channels().find((c) => c.fundingOutpoint === point);
  assert.ok(ours !== undefined);
  return `ampnode ${ours.localBalanceMsat} msat, lnd ${(await lndChannel()).local_balance} sat`;
}

/** No HTLC left on the channel at either end (both sides have resolved every shard). */
async function noHtlcs(): Promise<void> {
  await waitFor(async () => (((await lndChannel()) as LndChannel & { pending_htlcs?: unknown[] }).pending_htlcs ?? []).length === 0, {
    timeoutMs: 30_000,
    what: 'no HTLC pending at lnd',
  });
}

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    ({ btcd, lnd, chain } = await btcdLndAndChain(h));
    amp = await createNode({
      datadir: h.subdir('amp'),
      chain,
      logger: createLogger({ level: 'debug', destination: pino.destination({ dest: join(h.dir, 'amp.log'), sync: true }) }),
      policy: { minimumDepth: 1 },
      invoices: { acceptAmp: true, mppTimeoutMs: HOLD_MS },
      payments: { maxAttempts: 12, withholdAttempt: (_p, _a, last) => withholding && last },
    });
    h.onClose(() => amp.stop());
    await synced();
    const addr = (await lnd.cli<{ address: string }>(['newaddress', 'p2wkh'])).address;
    await btcd.sendToAddress(addr, 200_000_000);
    await mine(1);
    await waitFor(async () => Number((await lnd.cli<{ confirmed_balance: string }>(['walletbalance'])).confirmed_balance) > 0, {
      timeoutMs: 30_000,
      what: 'lnd funded',
    });
    await lnd.cli(['connect', amp.uri], 30_000);
    const r = await lnd.cli<{ funding_txid: string }>([
      'openchannel',
      '--node_key',
      amp.nodeId,
      '--local_amt',
      '1000000',
      '--push_amt',
      '400000',
      '--channel_type',
      'anchors',
    ]);
    await waitFor(async () => (await btcd.rpc<string[]>('getrawmempool')).includes(r.funding_txid), {
      timeoutMs: 30_000,
      what: 'the funding transaction in the mempool',
    });
    await mine(1);
    await waitFor(
      async () => {
        const c = amp.channels().find((x) => x.fundingOutpoint?.startsWith(`${r.funding_txid}:`) === true);
        if (c === undefined || !c.active) return false;
        point = c.fundingOutpoint!;
        return (await lndChannel()).active;
      },
      { timeoutMs: 60_000, what: 'the channel active on both sides' },
    );
    await waitFor(
      async () =>
        ((await lnd.cli<{ edges?: { chan_point: string }[] }>(['describegraph', '--include_unannounced'])).edges ?? []).some(
          (e) => e.chan_point === point,
        ),
      { timeoutMs: 30_000, what: "the channel in lnd's graph" },
    );
    await waitFor(() => amp.routingChannels().some((c) => c.peerPolicy !== undefined), {
      timeoutMs: 30_000,
      what: "lnd's channel_update at ampnode",
    });
  },
  { timeout: BUILD_TIMEOUT_MS + 300_000 },
);
after(() => h.close());

h.test(
  'ampnode withholds the last shard of an AMP payment to lnd: lnd fails the others with mpp_timeout after 120 s; the payment fails',
  async () => {
    const inv = await lnd.cli<{ r_hash: string; payment_request: string }>(['addinvoice', '--amp', '--memo', 'left short']);
    const before = await balances();
    withholding = true;
    const started = Date.now();
    let rec: PaymentRecord;
    try {
      rec = await amp.payInvoice(inv.payment_request, { amountMsat: 30_000_000n, maxShardMsat: 10_000_000n });
    } finally {
      withholding = false;
    }
    const tookMs = Date.now() - started;
    assert.equal(rec.status, 'failed');
    assert.equal(rec.kind, 'amp');
    const dropped = rec.attempts.filter((a) => a.failure?.reason.includes('withheld') === true);
    const sent = rec.attempts.filter((a) => !dropped.includes(a));
    assert.ok(dropped.length >= 1);
    assert.equal(sent.length, 2, JSON.stringify(rec.attempts.map((a) => [String(a.amountMsat), a.failure])));
    assert.ok(
      sent.every((a) => a.status === 'failed' && a.failure?.code === 'mpp_timeout' && a.failure.sourceIndex === 1),
      JSON.stringify(sent.map((a) => a.failure)),
    );
    assert.equal(rec.failureReason, 'timeout');
    assert.match(rec.failureDetail ?? '', /mpp_timeout/);
    assert.ok(tookMs >= LND_HOLD_MS - 5_000, `lnd held the shards for its 120 s (the payment took ${tookMs} ms)`);
    const looked = await lnd.cli<{ state: string; amt_paid_msat: string }>(['lookupinvoice', inv.r_hash]);
    assert.equal(looked.state, 'OPEN');
    assert.equal(looked.amt_paid_msat, '0');
    await noHtlcs();
    await waitFor(async () => (await balances()) === before, { timeoutMs: 30_000, what: `balances back to ${before}` });
  },
  { timeoutMs: 300_000 },
);

interface LndRoute {
  total_amt_msat: string;
  hops: {
    pub_key: string;
    amt_to_forward_msat: string;
    mpp_record?: { payment_addr: string; total_amt_msat: string };
    amp_record?: { root_share: string; set_id: string; child_index: number };
  }[];
}

h.test(
  "lnd's shards to ampnode held short of the total fail with mpp_timeout at ampnode's hold time",
  async () => {
    const { invoice } = await amp.addInvoice({ amp: true, memo: 'short from lnd' });
    const addrHex = Buffer.from(invoice.paymentAddr).toString('hex');
    const before = await balances();
    const shardMsat = 10_000_000n;
    const { route } = await lnd.rest<{ route: LndRoute }>('POST', '/v2/router/route', {
      amt_msat: String(shardMsat),
      hop_pubkeys: [b64(amp.nodeId)],
      final_cltv_delta: 83,
    });
    assert.equal(hexOf(route.hops.at(-1)!.pub_key), amp.nodeId);
    // two shards of a set of three: the MPP record claims the whole, the third never comes
    const root = randomBytes(32);
    const setId = randomBytes(32);
    const shards = [1, 2].map((childIndex) => {
      const share = randomBytes(32);
      const index = Buffer.alloc(4);
      index.writeUInt32BE(childIndex);
      const hash = sha256(sha256(Buffer.concat([root, share, index])));
      const hops = route.hops.map((x, i) =>
        i < route.hops.length - 1
          ? x
          : {
              ...x,
              mpp_record: { payment_addr: b64(addrHex), total_amt_msat: String(3n * shardMsat) },
              amp_record: { root_share: share.toString('base64'), set_id: setId.toString('base64'), child_index: childIndex },
            },
      );
      return { hash, route: { ...route, hops } };
    });
    const started = Date.now();
    const results = await Promise.all(
      shards.map((s) =>
        lnd.rest<{ status: string; failure?: { code: string; failure_source_index: number } }>(
          'POST',
          '/v2/router/route/send',
          { payment_hash: s.hash.toString('base64'), route: s.route },
          LND_HOLD_MS,
        ),
      ),
    );
    const tookMs = Date.now() - started;
    for (const r of results) {
      assert.equal(r.status, 'FAILED', JSON.stringify(r));
      assert.equal(r.failure?.code, 'MPP_TIMEOUT', JSON.stringify(r.failure));
      assert.equal(r.failure?.failure_source_index, 1, 'failed by ampnode, the final hop');
    }
    assert.ok(tookMs >= HOLD_MS - 500 && tookMs < LND_HOLD_MS / 2, `failed after ${tookMs} ms (ampnode holds for ${HOLD_MS} ms)`);
    const looked = await amp.lookupInvoice(invoice.paymentAddr);
    assert.equal(looked?.amountPaidMsat, 0n);
    assert.equal(await amp.lookupSet(setId).then((s) => s?.state === 'settled'), false, 'no set settled');
    await noHtlcs();
    await waitFor(async () => (await balances()) === before, { timeoutMs: 30_000, what: `balances back to ${before}` });
  },
  { timeoutMs: 180_000 },
);

h.test(
  "lncli disconnect + connect with lnd's HTLC held at ampnode (a hold invoice): reestablished on both sides, then settled",
  async () => {
    const preimage = randomBytes(32);
    const paymentHash = sha256(preimage);
    const { paymentRequest } = await amp.addInvoice({ paymentHash, amountMsat: 17_000_000n, memo: 'held' });
    const before = await balances();
    const paying = lnd.cli<{ status: string; payment_preimage: string; failure_reason: string }>(
      ['payinvoice', '--json', '--force', '--pay_req', paymentRequest, '--timeout', '60s'],
      240_000,
    );
    paying.catch(() => undefined); // awaited below
    await waitFor(async () => (await amp.lookupInvoiceByHash(paymentHash))?.state === 'accepted', {
      timeoutMs: 60_000,
      what: 'the HTLC held at ampnode',
    });
    await lnd.cli(['disconnect', amp.nodeId]);
    await waitFor(() => amp.listPeers().length === 0, { timeoutMs: 20_000, what: 'ampnode seeing the disconnect' });
    await waitFor(() => amp.channels().every((c) => !c.active), { timeoutMs: 20_000, what: 'the channel inactive at ampnode' });
    await waitFor(async () => (await lnd.peer(amp.nodeId)) === undefined, { timeoutMs: 20_000, what: 'lnd dropping ampnode' });
    await lnd.cli(['connect', amp.uri], 30_000);
    await waitFor(async () => amp.channels().every((c) => c.active) && (await lndChannel()).active, {
      timeoutMs: 60_000,
      what: 'the channel active again on both sides',
    });
    assert.equal(
      (((await lndChannel()) as LndChannel & { pending_htlcs?: unknown[] }).pending_htlcs ?? []).length,
      1,
      'the HTLC is still on',
    );
    assert.equal((await amp.lookupInvoiceByHash(paymentHash))?.state, 'accepted');
    await amp.invoices.settleHold(preimage);
    const paid = await paying;
    assert.equal(paid.status, 'SUCCEEDED', `lnd: ${paid.failure_reason}`);
    assert.equal(paid.payment_preimage, preimage.toString('hex'));
    assert.equal((await amp.lookupInvoiceByHash(paymentHash))?.state, 'settled');
    await noHtlcs();
    const pending = await lnd.cli<Record<string, unknown[] | undefined>>(['pendingchannels']);
    assert.deepEqual(pending['waiting_close_channels'] ?? [], [], 'lnd has channels waiting to close');
    assert.deepEqual(pending['pending_force_closing_channels'] ?? [], [], 'lnd is force-closing');
    assert.notEqual(await balances(), before, 'the payment moved the balances');
  },
  { timeoutMs: 240_000 },
);
