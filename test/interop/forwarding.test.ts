/**
 * Forwarding with two real lnds (lnd1, lnd2) and the ampnode daemon on one btcd chain, every payment found through the
 * route hint of an lnd2 invoice over an unannounced channel, made from the hop's channel_update as lnd2 keeps it
 * (lnd's own `addinvoice --private` hints only through peers that are nodes of the public graph, and ampnode does not
 * announce channels):
 *   1. ampnode → lnd1 → lnd2: ampnode (ampcli payinvoice) pays lnd2's BOLT 11 invoice and AMP invoice through lnd1's
 *      hint (private channels lnd1–ampnode and lnd1–lnd2, both opened by lnd1); lnd2 shows both settled and ampnode paid lnd1's
 *      fee on top of each amount.
 *   2. lnd1 → ampnode → lnd2: once ampnode has opened a channel to lnd2, lnd2's hint names ampnode with the
 *      policy of the channel_update ampnode sent it; lnd1 pays a BOLT 11 and an AMP invoice (several shards) of lnd2 with its
 *      channel to ampnode as first hop; lnd1 sees them settled, lnd2 received them, and ampnode's two channels moved
 *      by exactly the amounts and its forwarding fee (1000 msat + 1 ppm per HTLC, its default policy).
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { BUILD_TIMEOUT_MS, Interop, ensureBinaries, waitFor, type Ampnode, type Btcd, type Lnd } from './harness.js';
import { LndPair, type AmpChannel } from './lnd-pair.js';

const h = new Interop('forwarding');
let btcd: Btcd;
let lnd1: Lnd;
let lnd2: Lnd;
let amp: Ampnode;
let p: LndPair;
/** lnd1's channel to ampnode, and its chan_id (lnd's numeric short_channel_id). */
let lnd1Amp = '';
let lnd1AmpChanId = '';
let lnd1Lnd2 = '';
let ampLnd2 = '';

const BASE_FEE_MSAT = 1000n;
const FEE_PPM = 1n;
const feeOf = (amountMsat: bigint): bigint => BASE_FEE_MSAT + (amountMsat * FEE_PPM) / 1_000_000n;

interface HopHint {
  node_id: string;
  chan_id: string;
  fee_base_msat: number;
  fee_proportional_millionths: number;
  cltv_expiry_delta: number;
}
interface LndPayment {
  status: string;
  failure_reason: string;
  value_msat: string;
  fee_msat: string;
  htlcs: { status: string; route: { total_fees_msat: string; total_amt_msat: string; hops: { pub_key: string; chan_id: string }[] } }[];
}
interface AmpPaymentView {
  status: string;
  kind: string;
  failureReason?: string;
  failureDetail?: string;
  attempts: { status: string; amountMsat: string; totalAmountMsat: string; route: { hops: { pubkey: string }[] }; failure?: unknown }[];
}

/** lnd2's invoice hints (lncli decodepayreq). */
async function hintsOf(payReq: string): Promise<HopHint[][]> {
  const d = await lnd2.cli<{ route_hints?: { hop_hints: HopHint[] }[] }>(['decodepayreq', payReq]);
  return (d.route_hints ?? []).map((r) => r.hop_hints);
}

/** lnd's numeric short_channel_id of a channel (REST: a decimal string). */
async function chanIdOf(lnd: Lnd, point: string): Promise<string> {
  const c = ((await lnd.rest<{ channels?: { channel_point: string; chan_id: string }[] }>('GET', '/v1/channels')).channels ?? []).find(
    (x) => x.channel_point === point,
  );
  assert.ok(c !== undefined && /^[0-9]+$/.test(c.chan_id), `${lnd.name} lists ${point}: ${JSON.stringify(c)}`);
  return c.chan_id;
}

interface LndPolicy {
  fee_base_msat: string;
  fee_rate_milli_msat: string;
  time_lock_delta: number;
}

/**
 * An invoice of lnd2's with one route hint: `via`'s policy on its channel `point` to lnd2, as lnd2 keeps it from the
 * channel_update `via` sent it (getchaninfo). The hint is given to AddInvoice (REST `route_hints`): lnd's own hint
 * selection (`addinvoice --private`) takes only channels whose peer is a node of the public graph.
 */
async function hintedInvoice(
  via: string,
  point: string,
  body: Record<string, unknown>,
): Promise<{ r_hash: string; payment_request: string }> {
  const chanId = await chanIdOf(lnd2, point);
  const policy = await waitFor(
    async () => {
      const c = await lnd2.rest<{ node1_pub: string; node1_policy?: LndPolicy; node2_policy?: LndPolicy }>(
        'GET',
        `/v1/graph/edge/${chanId}`,
      );
      return c.node1_pub === via ? c.node1_policy : c.node2_policy;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: `${via.slice(0, 16)}…'s channel_update for ${point} at lnd2` },
  );
  const hint = {
    node_id: via,
    chan_id: chanId,
    fee_base_msat: Number(policy.fee_base_msat),
    fee_proportional_millionths: Number(policy.fee_rate_milli_msat),
    cltv_expiry_delta: policy.time_lock_delta,
  };
  const r = await lnd2.rest<{ r_hash: string; payment_request: string }>('POST', '/v1/invoices', {
    ...body,
    route_hints: [{ hop_hints: [hint] }],
  });
  const hints = await hintsOf(r.payment_request);
  assert.deepEqual(
    hints.map((hops) => hops.map((x) => [x.node_id, x.chan_id])),
    [[[via, chanId]]],
    'the invoice carries the hint',
  );
  return { r_hash: Buffer.from(r.r_hash, 'base64').toString('hex'), payment_request: r.payment_request };
}

async function ampChan(point: string): Promise<AmpChannel> {
  const c = await p.ampChannel(point);
  assert.ok(c !== undefined, `ampnode lists ${point}`);
  return c;
}

/** `lncli payinvoice` from lnd1 with its channel to ampnode as first hop; the final payment. */
async function lnd1Pays(payReq: string, extra: string[]): Promise<LndPayment> {
  return waitFor(
    async () => {
      try {
        return await lnd1.cli<LndPayment>(
          ['payinvoice', '--json', '--force', '--pay_req', payReq, '--outgoing_chan_id', lnd1AmpChanId, '--timeout', '60s', ...extra],
          120_000,
        );
      } catch (e) {
        // lnd lists a new channel active a moment before its link may carry HTLCs: insufficient_balance at once
        const last = ((await lnd1.cli<{ payments?: LndPayment[] }>(['listpayments', '--include_incomplete'])).payments ?? []).at(-1);
        if (last?.failure_reason === 'FAILURE_REASON_INSUFFICIENT_BALANCE' && (last.htlcs ?? []).length === 0) return undefined;
        throw new Error(`${(e as Error).message}; lnd1's payment: ${JSON.stringify(last)}`, { cause: e });
      }
    },
    { timeoutMs: 30_000, intervalMs: 1_000, what: "lnd1's payment through ampnode" },
  );
}

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    btcd = await h.startBtcd();
    lnd1 = await h.startLnd(btcd, { name: 'lnd1' });
    lnd2 = await h.startLnd(btcd, { name: 'lnd2' });
    amp = await h.startAmpnode({ name: 'amp', chain: { p2p: btcd }, api: true, extraArgs: ['--log-level', 'debug'] });
    p = new LndPair(btcd, lnd1, amp);
    await p.ampSynced();
    await p.fund(2);
    await lnd1.cli(['connect', amp.uri], 30_000);
    lnd1Amp = await p.lndOpens('anchors', 1_000_000, ['--private', '--push_amt', '300000']);
    lnd1AmpChanId = await chanIdOf(lnd1, lnd1Amp);
    await lnd1.cli(['connect', `${lnd2.nodeId}@${lnd2.p2pHost}`], 30_000);
    const r = await lnd1.cli<{ funding_txid: string }>([
      'openchannel',
      '--node_key',
      lnd2.nodeId,
      '--local_amt',
      '1000000',
      '--private',
      '--channel_type',
      'anchors',
    ]);
    await p.inMempool(r.funding_txid);
    await p.mine(1);
    await lnd2.waitSynced();
    await waitFor(
      async () => {
        const c = ((await lnd2.cli<{ channels?: { channel_point: string; active: boolean }[] }>(['listchannels'])).channels ?? []).find(
          (x) => x.channel_point.startsWith(`${r.funding_txid}:`),
        );
        if (c?.active !== true) return false;
        lnd1Lnd2 = c.channel_point;
        return true;
      },
      { timeoutMs: 60_000, what: 'lnd1–lnd2 active' },
    );
  },
  { timeout: BUILD_TIMEOUT_MS + 300_000 },
);
after(() => h.close());

h.test(
  "ampnode pays lnd2's BOLT 11 and AMP invoices through lnd1's route hint; lnd2 settles both, ampnode pays lnd1's fee",
  async () => {
    const before = BigInt((await ampChan(lnd1Amp)).localBalanceMsat);
    const bolt11 = await hintedInvoice(lnd1.nodeId, lnd1Lnd2, { value: '21000', memo: 'via lnd1' });
    const hint = (await hintsOf(bolt11.payment_request)).find((hops) => hops[0]!.node_id === lnd1.nodeId)![0]!;
    const paid = await amp.cli<AmpPaymentView>(['payinvoice', bolt11.payment_request]);
    assert.equal(paid.status, 'succeeded', `${paid.failureReason}: ${paid.failureDetail} ${JSON.stringify(paid.attempts)}`);
    const lnd1Fee = (a: bigint): bigint => BigInt(hint.fee_base_msat) + (a * BigInt(hint.fee_proportional_millionths)) / 1_000_000n;
    for (const a of paid.attempts.filter((x) => x.status === 'settled')) {
      assert.deepEqual(
        a.route.hops.map((x) => x.pubkey),
        [lnd1.nodeId, lnd2.nodeId],
      );
      assert.equal(BigInt(a.totalAmountMsat) - BigInt(a.amountMsat), lnd1Fee(BigInt(a.amountMsat)), "lnd1's fee from its hint");
    }
    const looked = await lnd2.cli<{ state: string; amt_paid_sat: string }>(['lookupinvoice', bolt11.r_hash]);
    assert.equal(looked.state, 'SETTLED');
    assert.equal(looked.amt_paid_sat, '21000');

    const ampInv = await hintedInvoice(lnd1.nodeId, lnd1Lnd2, { is_amp: true, memo: 'amp via lnd1' });
    const paidAmp = await amp.cli<AmpPaymentView>(['payinvoice', ampInv.payment_request, '--amt', '18000', '--max_shard_size_sat', '6000']);
    assert.equal(paidAmp.status, 'succeeded', `${paidAmp.failureReason}: ${paidAmp.failureDetail} ${JSON.stringify(paidAmp.attempts)}`);
    assert.equal(paidAmp.kind, 'amp');
    const shards = paidAmp.attempts.filter((x) => x.status === 'settled');
    assert.ok(shards.length >= 2, `${shards.length} shards`);
    const lookedAmp = await lnd2.cli<{ amt_paid_sat: string; is_amp: boolean }>(['lookupinvoice', ampInv.r_hash]);
    assert.equal(lookedAmp.is_amp, true);
    assert.equal(lookedAmp.amt_paid_sat, '18000');

    const spent = [...paid.attempts, ...paidAmp.attempts]
      .filter((x) => x.status === 'settled')
      .reduce((s, x) => s + BigInt(x.totalAmountMsat), 0n);
    const fees = spent - 39_000_000n;
    assert.equal(
      fees,
      [...paid.attempts, ...shards].filter((x) => x.status === 'settled').reduce((s, x) => s + lnd1Fee(BigInt(x.amountMsat)), 0n),
    );
    await waitFor(async () => BigInt((await ampChan(lnd1Amp)).localBalanceMsat) === before - spent, {
      timeoutMs: 30_000,
      what: `ampnode's balance with lnd1 down by ${spent} msat`,
    });
  },
  { timeoutMs: 240_000 },
);

h.test(
  "lnd1 pays lnd2's BOLT 11 and AMP invoices through ampnode (route hint of ampnode's channel to lnd2): settled, ampnode earns its fee",
  async () => {
    await amp.cli(['connect', `${lnd2.nodeId}@${lnd2.p2pHost}`], 30_000);
    const opened = await amp.cli<AmpChannel>(['openchannel', lnd2.nodeId, '500000']);
    ampLnd2 = opened.fundingOutpoint!;
    await p.inMempool(ampLnd2.split(':')[0]!);
    await p.mine(1);
    await lnd2.waitSynced();
    await waitFor(
      async () =>
        (await ampChan(ampLnd2)).active &&
        ((await lnd2.cli<{ channels?: { channel_point: string; active: boolean }[] }>(['listchannels'])).channels ?? []).some(
          (x) => x.channel_point === ampLnd2 && x.active,
        ),
      { timeoutMs: 60_000, what: 'ampnode–lnd2 active on both sides' },
    );
    const inBefore = BigInt((await ampChan(lnd1Amp)).localBalanceMsat);
    const outBefore = BigInt((await ampChan(ampLnd2)).localBalanceMsat);

    const bolt11 = await hintedInvoice(amp.nodeId, ampLnd2, { value: '30000', memo: 'via ampnode' });
    const hint = (await hintsOf(bolt11.payment_request)).find((hops) => hops[0]!.node_id === amp.nodeId)![0]!;
    assert.equal(BigInt(hint.fee_base_msat), BASE_FEE_MSAT, "ampnode's policy as lnd2 got it from ampnode's channel_update");
    assert.equal(BigInt(hint.fee_proportional_millionths), FEE_PPM);
    assert.equal(hint.cltv_expiry_delta, 80);
    const paid = await lnd1Pays(bolt11.payment_request, ['--last_hop', amp.nodeId]);
    assert.equal(paid.status, 'SUCCEEDED', `lnd1: ${paid.failure_reason}`);
    assert.equal(BigInt(paid.fee_msat), feeOf(30_000_000n), "lnd1 paid ampnode's fee");
    for (const x of paid.htlcs.filter((y) => y.status === 'SUCCEEDED'))
      assert.deepEqual(
        x.route.hops.map((y) => y.pub_key),
        [amp.nodeId, lnd2.nodeId],
      );
    assert.equal((await lnd2.cli<{ state: string }>(['lookupinvoice', bolt11.r_hash])).state, 'SETTLED');

    const ampInv = await hintedInvoice(amp.nodeId, ampLnd2, { is_amp: true, memo: 'amp via ampnode' });
    const paidAmp = await lnd1Pays(ampInv.payment_request, [
      '--last_hop',
      amp.nodeId,
      '--amp',
      '--amt',
      '24000',
      '--max_shard_size_sat',
      '10000',
    ]);
    assert.equal(paidAmp.status, 'SUCCEEDED', `lnd1: ${paidAmp.failure_reason}`);
    const shards = paidAmp.htlcs.filter((x) => x.status === 'SUCCEEDED');
    assert.ok(shards.length >= 3, `${shards.length} shards`);
    const ampFees = shards.reduce((s, x) => s + BigInt(x.route.total_fees_msat), 0n);
    assert.equal(
      ampFees,
      shards.reduce((s, x) => s + feeOf(BigInt(x.route.total_amt_msat) - BigInt(x.route.total_fees_msat)), 0n),
      "each shard paid ampnode's fee on its amount",
    );
    const lookedAmp = await lnd2.cli<{ amt_paid_sat: string }>(['lookupinvoice', ampInv.r_hash]);
    assert.equal(lookedAmp.amt_paid_sat, '24000');

    // ampnode took amount + fee on lnd1's channel and passed the amount on to lnd2: it kept the fees
    const forwardedMsat = 30_000_000n + 24_000_000n;
    const earnedMsat = BigInt(paid.fee_msat) + ampFees;
    await waitFor(
      async () =>
        BigInt((await ampChan(lnd1Amp)).localBalanceMsat) === inBefore + forwardedMsat + earnedMsat &&
        BigInt((await ampChan(ampLnd2)).localBalanceMsat) === outBefore - forwardedMsat,
      { timeoutMs: 30_000, what: `ampnode's channels moved by ${forwardedMsat} msat, ${earnedMsat} msat earned` },
    );
  },
  { timeoutMs: 300_000 },
);
