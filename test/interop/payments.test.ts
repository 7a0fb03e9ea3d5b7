/**
 * Payments from a real lnd to the ampnode daemon (lnd v0.19 on btcd's regtest chain, ampnode following that chain
 * over P2P, driven through its local API), over a channel lnd opened:
 *   - keysend (ampnode runs --accept-keysend): lnd reports the payment succeeded with the preimage it chose, and
 *     ampnode's registry holds a settled spontaneous invoice of that hash and amount;
 *   - spontaneous AMP split by lnd into several shards (--max_shard_size_sat; ampnode runs --accept-amp): lnd reports
 *     success, and ampnode's lookup by the set_id lnd used shows one settled set with every shard and the amount;
 *   - ampnode's BOLT 11 invoice (from its API) paid by lnd in one part and in several (MPP);
 *   - ampnode's reusable AMP invoice paid by lnd twice in several shards: two settled sets under one payment_addr;
 *   - the same kind of invoice paid by lnd with an outside payment_addr (`sendpayment --pay_req --amp --pay_addr`):
 *     ampnode (--accept-amp) settles it as a spontaneous AMP set under that payment_addr, found by it and by set_id
 *     through ampcli, and the invoice lnd decoded stays unpaid;
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { BUILD_TIMEOUT_MS, Interop, ensureBinaries, waitFor, type Ampnode, type Btcd, type Lnd } from './harness.js';
import { LndPair } from './lnd-pair.js';

const h = new Interop('payments');
let btcd: Btcd;
let lnd: Lnd;
let amp: Ampnode;
let p: LndPair;

interface LndHop {
  pub_key: string;
  amt_to_forward_msat: string;
  amp_record?: { root_share: string; set_id: string; child_index: number };
}
interface LndPayment {
  payment_hash: string;
  payment_preimage: string;
  value_msat: string;
  status: string;
  failure_reason: string;
  htlcs: { status: string; route: { hops: LndHop[] } }[];
}

interface AmpInvoice {
  state: string;
  kind: string;
  amountPaidMsat: string;
  spontaneous?: boolean;
}
interface AmpSetView {
  setId: string;
  state: string;
  amountPaidMsat: string;
  htlcs: { amountMsat: string; childIndex?: number }[];
}

/**
 * `lncli sendpayment` to ampnode's node id, waiting for the final state (JSON). lnd lists a new channel active a
 * moment before its link may carry HTLCs; until then a payment fails at once with insufficient_balance, nothing
 * sent: such a payment is tried again, for at most 30 s.
 */
async function sendToAmp(amountSat: number, extra: string[]): Promise<LndPayment> {
  const r = await waitFor(
    async () => {
      try {
        return {
          paid: await lnd.cli<LndPayment>(
            ['sendpayment', '--json', '--dest', amp.nodeId, '--amt', String(amountSat), '--timeout', '60s', ...extra],
            120_000,
          ),
        };
      } catch (e) {
        const payments = (await lnd.cli<{ payments?: LndPayment[] }>(['listpayments', '--include_incomplete'])).payments ?? [];
        const last = payments.at(-1);
        if (last !== undefined && last.failure_reason === 'FAILURE_REASON_INSUFFICIENT_BALANCE' && (last.htlcs ?? []).length === 0)
          return undefined;
        return { error: new Error(`${(e as Error).message}; lnd's payment: ${JSON.stringify(last)}`) };
      }
    },
    { timeoutMs: 30_000, intervalMs: 1_000, what: `lnd's payment of ${amountSat} sat to ampnode` },
  );
  if ('error' in r) throw r.error;
  return r.paid;
}

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    btcd = await h.startBtcd();
    lnd = await h.startLnd(btcd, { name: 'lnd' });
    amp = await h.startAmpnode({
      name: 'amp',
      chain: { p2p: btcd },
      api: true,
      extraArgs: ['--log-level', 'debug', '--accept-keysend', '--accept-amp'],
    });
    p = new LndPair(btcd, lnd, amp);
    await p.ampSynced();
    await p.fund(1);
    await lnd.cli(['connect', amp.uri], 30_000);
    const point = await p.lndOpens('anchors', 1_000_000);
    // lnd routes over its own channels through its graph: wait until the new one is in it
    await waitFor(
      async () =>
        ((await lnd.cli<{ edges?: { chan_point: string }[] }>(['describegraph', '--include_unannounced'])).edges ?? []).some(
          (e) => e.chan_point === point,
        ),
      {
        timeoutMs: 30_000,
        what: `channel ${point} in lnd's graph`,
      },
    );
  },
  { timeout: BUILD_TIMEOUT_MS + 300_000 },
);
after(() => h.close());

h.test(
  'lnd keysends to ampnode: settled on both sides, with the preimage lnd chose',
  async () => {
    const paid = await sendToAmp(12_345, ['--keysend']);
    assert.equal(paid.status, 'SUCCEEDED', `lnd: ${paid.failure_reason}`);
    assert.equal(paid.value_msat, '12345000');
    const inv = await p.api<AmpInvoice & { preimage: string }>('POST', '/v1/invoices/lookup', { paymentHash: paid.payment_hash });
    assert.equal(inv.state, 'settled');
    assert.equal(inv.kind, 'keysend');
    assert.equal(inv.spontaneous, true);
    assert.equal(inv.amountPaidMsat, '12345000');
    assert.equal(inv.preimage, paid.payment_preimage);
  },
  { timeoutMs: 180_000 },
);

h.test(
  'lnd sends spontaneous AMP to ampnode in several shards: one settled set, found by its set_id',
  async () => {
    const paid = await sendToAmp(50_000, ['--amp', '--max_shard_size_sat', '15000']);
    assert.equal(paid.status, 'SUCCEEDED', `lnd: ${paid.failure_reason}`);
    const shards = paid.htlcs.filter((x) => x.status === 'SUCCEEDED');
    assert.ok(shards.length >= 4, `${shards.length} shards settled (50 000 sat in shards of at most 15 000)`);
    const records = shards.map((x) => x.route.hops.at(-1)!.amp_record!);
    const setIds = new Set(records.map((r) => r.set_id));
    assert.equal(setIds.size, 1, 'every shard of one payment carries the same set_id');
    const [setIdB64] = [...setIds];
    // lncli prints bytes fields as hex
    const setId = /^[0-9a-f]{64}$/.test(setIdB64!) ? setIdB64! : Buffer.from(setIdB64!, 'base64').toString('hex');
    const set = await p.api<AmpSetView>('POST', '/v1/invoices/lookup', { setId });
    assert.equal(set.state, 'settled');
    assert.equal(set.amountPaidMsat, '50000000');
    assert.equal(set.htlcs.length, shards.length);
    assert.deepEqual(
      set.htlcs.map((x) => x.childIndex).sort((a, b) => a! - b!),
      records.map((r) => r.child_index).sort((a, b) => a - b),
      'the child indexes lnd used',
    );
    const sum = set.htlcs.reduce((a, x) => a + BigInt(x.amountMsat), 0n);
    assert.equal(sum, 50_000_000n);
  },
  { timeoutMs: 180_000 },
);

/** `lncli payinvoice` of one of ampnode's invoices; the final payment (JSON), or lnd's record of it in the error. */
async function payInvoice(payReq: string, extra: string[]): Promise<LndPayment> {
  try {
    return await lnd.cli<LndPayment>(['payinvoice', '--json', '--force', '--pay_req', payReq, '--timeout', '60s', ...extra], 120_000);
  } catch (e) {
    const last = ((await lnd.cli<{ payments?: LndPayment[] }>(['listpayments', '--include_incomplete'])).payments ?? []).at(-1);
    throw new Error(`${(e as Error).message}; lnd's payment: ${JSON.stringify(last)}`, { cause: e });
  }
}

interface AmpInvoiceView {
  paymentHash: string;
  paymentAddr: string;
  paymentRequest: string;
  kind: string;
}

h.test(
  "lnd pays ampnode's BOLT 11 invoices, in one part and in several",
  async () => {
    for (const [amountSat, extra] of [
      [21_000, []],
      [36_000, ['--max_shard_size_sat', '10000']],
    ] as const) {
      const inv = await p.api<AmpInvoiceView>('POST', '/v1/invoices', {
        amountMsat: String(amountSat * 1000),
        memo: `interop ${amountSat}`,
      });
      const decoded = await lnd.cli<{
        destination: string;
        num_satoshis: string;
        payment_hash: string;
        features: Record<string, { name: string }>;
      }>(['decodepayreq', inv.paymentRequest]);
      assert.equal(decoded.destination, amp.nodeId);
      assert.equal(decoded.num_satoshis, String(amountSat));
      assert.equal(decoded.payment_hash, inv.paymentHash);
      const paid = await payInvoice(inv.paymentRequest, [...extra]);
      assert.equal(paid.status, 'SUCCEEDED', `lnd: ${paid.failure_reason}`);
      const parts = paid.htlcs.filter((x) => x.status === 'SUCCEEDED').length;
      if (extra.length > 0) assert.ok(parts >= 4, `${parts} parts`);
      else assert.equal(parts, 1);
      const got = await p.api<AmpInvoice>('POST', '/v1/invoices/lookup', { paymentHash: inv.paymentHash });
      assert.equal(got.state, 'settled');
      assert.equal(got.amountPaidMsat, String(amountSat * 1000));
    }
  },
  { timeoutMs: 240_000 },
);

h.test(
  "lnd pays ampnode's reusable AMP invoice twice, each time in several shards: two settled sets",
  async () => {
    const inv = await p.api<AmpInvoiceView>('POST', '/v1/invoices', { amp: true, memo: 'tips' });
    assert.equal(inv.kind, 'amp');
    const decoded = await lnd.cli<{ features: Record<string, { name: string }> }>(['decodepayreq', inv.paymentRequest]);
    assert.ok(
      Object.values(decoded.features).some((f) => f.name === 'amp'),
      `lnd sees AMP: ${JSON.stringify(decoded.features)}`,
    );
    const amounts = [20_000, 27_000];
    for (const amountSat of amounts) {
      const paid = await payInvoice(inv.paymentRequest, ['--amp', '--amt', String(amountSat), '--max_shard_size_sat', '8000']);
      assert.equal(paid.status, 'SUCCEEDED', `lnd: ${paid.failure_reason}`);
      assert.ok(paid.htlcs.filter((x) => x.status === 'SUCCEEDED').length >= 3);
    }
    const got = await p.api<AmpInvoice & { sets?: AmpSetView[] }>('POST', '/v1/invoices/lookup', { paymentAddr: inv.paymentAddr });
    assert.equal(got.amountPaidMsat, String((amounts[0]! + amounts[1]!) * 1000));
    const sets = got.sets ?? [];
    assert.equal(sets.length, 2);
    assert.deepEqual(sets.map((x) => x.amountPaidMsat).sort(), amounts.map((a) => String(a * 1000)).sort());
    assert.ok(sets.every((x) => x.state === 'settled' && x.htlcs.length >= 3));
    assert.notEqual(sets[0]!.setId, sets[1]!.setId);
    for (const set of sets) {
      const one = await p.api<AmpSetView>('POST', '/v1/invoices/lookup', { setId: set.setId });
      assert.equal(one.amountPaidMsat, set.amountPaidMsat);
    }
  },
  { timeoutMs: 240_000 },
);

h.test(
  "lnd pays ampnode's AMP invoice with an outside payment_addr: settled as a spontaneous AMP set under that payment_addr",
  async () => {
    const inv = await amp.cli<AmpInvoiceView>(['addinvoice', '--amp', '--memo', 'outside addr']);
    const outside = randomBytes(32).toString('hex');
    const paid = await lnd.cli<LndPayment>(
      [
        'sendpayment',
        '--json',
        '--force',
        '--pay_req',
        inv.paymentRequest,
        '--amp',
        '--pay_addr',
        outside,
        '--amt',
        '24000',
        '--max_shard_size_sat',
        '9000',
        '--timeout',
        '60s',
      ],
      120_000,
    );
    assert.equal(paid.status, 'SUCCEEDED', `lnd: ${paid.failure_reason}`);
    const shards = paid.htlcs.filter((x) => x.status === 'SUCCEEDED');
    assert.ok(shards.length >= 3, `${shards.length} shards`);
    const setIds = new Set(shards.map((x) => x.route.hops.at(-1)!.amp_record!.set_id));
    assert.equal(setIds.size, 1);
    const [raw] = [...setIds];
    const setId = /^[0-9a-f]{64}$/.test(raw!) ? raw! : Buffer.from(raw!, 'base64').toString('hex');
    // the payment_addr lnd put in every shard's MPP record is the outside one
    for (const x of shards) {
      const mpp = (x.route.hops.at(-1) as LndHop & { mpp_record?: { payment_addr: string } }).mpp_record!;
      const addr = /^[0-9a-f]{64}$/.test(mpp.payment_addr) ? mpp.payment_addr : Buffer.from(mpp.payment_addr, 'base64').toString('hex');
      assert.equal(addr, outside);
    }
    const spont = await amp.cli<AmpInvoice & { paymentAddr: string; sets?: AmpSetView[] }>(['lookupinvoice', '--payment_addr', outside]);
    assert.equal(spont.spontaneous, true, JSON.stringify(spont));
    assert.equal(spont.kind, 'amp');
    assert.equal(spont.paymentAddr, outside);
    assert.equal(spont.amountPaidMsat, '24000000');
    assert.deepEqual(
      (spont.sets ?? []).map((x) => [x.setId, x.state, x.amountPaidMsat, x.htlcs.length]),
      [[setId, 'settled', '24000000', shards.length]],
    );
    const set = await amp.cli<AmpSetView>(['lookupinvoice', '--set_id', setId]);
    assert.equal(set.state, 'settled');
    assert.equal(set.amountPaidMsat, '24000000');
    // the invoice lnd decoded was not paid: its own payment_addr has no set
    const own = await amp.cli<AmpInvoice & { sets?: AmpSetView[] }>(['lookupinvoice', '--payment_addr', inv.paymentAddr]);
    assert.equal(own.amountPaidMsat, '0');
    assert.deepEqual(own.sets ?? [], []);
  },
  { timeoutMs: 240_000 },
);

interface AmpPaymentView {
  status: string;
  kind: string;
  failureReason?: string;
  failureDetail?: string;
  setId?: string;
  preimage?: string;
  attempts: { status: string; amountMsat: string; failure?: unknown }[];
}

function settledParts(p: AmpPaymentView): number {
  return p.attempts.filter((a) => a.status === 'settled').length;
}

h.test(
  "ampnode pays lnd's BOLT 11 invoices, in one part and in three or more (MPP); lnd shows them settled",
  async () => {
    for (const [amountSat, maxShardSat] of [
      [15_000, undefined],
      [30_000, 10_000],
    ] as const) {
      const inv = await lnd.cli<{ r_hash: string; payment_request: string }>([
        'addinvoice',
        '--amt',
        String(amountSat),
        '--memo',
        `from ampnode ${amountSat}`,
      ]);
      const paid = await p.api<AmpPaymentView>('POST', '/v1/payments/pay', {
        paymentRequest: inv.payment_request,
        ...(maxShardSat !== undefined ? { maxShardMsat: String(maxShardSat * 1000) } : {}),
      });
      assert.equal(
        paid.status,
        'succeeded',
        `${paid.failureReason}: ${paid.failureDetail} ${JSON.stringify(paid.attempts.map((a) => a.failure))}`,
      );
      assert.equal(paid.kind, 'bolt11');
      if (maxShardSat !== undefined) assert.ok(settledParts(paid) >= 3, `${settledParts(paid)} parts`);
      else assert.equal(settledParts(paid), 1);
      const looked = await lnd.cli<{ state: string; amt_paid_sat: string; r_preimage: string }>(['lookupinvoice', inv.r_hash]);
      assert.equal(looked.state, 'SETTLED');
      assert.equal(looked.amt_paid_sat, String(amountSat));
      assert.equal(
        Buffer.from(looked.r_preimage, 'base64').toString('hex') === paid.preimage || looked.r_preimage === paid.preimage,
        true,
        "the preimage ampnode learnt is the invoice's",
      );
    }
  },
  { timeoutMs: 240_000 },
);

h.test(
  "ampnode pays lnd's AMP invoice twice in several shards, detected from the invoice alone; lnd shows two settled sets",
  async () => {
    const inv = await lnd.cli<{ r_hash: string; payment_request: string; payment_addr: string }>([
      'addinvoice',
      '--amp',
      '--memo',
      'amp from ampnode',
    ]);
    const amounts = [12_000, 18_000];
    const setIds: string[] = [];
    for (const amountSat of amounts) {
      const paid = await p.api<AmpPaymentView>('POST', '/v1/payments/pay', {
        paymentRequest: inv.payment_request,
        amountMsat: String(amountSat * 1000),
        maxShardMsat: '5000000',
      });
      assert.equal(
        paid.status,
        'succeeded',
        `${paid.failureReason}: ${paid.failureDetail} ${JSON.stringify(paid.attempts.map((a) => a.failure))}`,
      );
      assert.equal(paid.kind, 'amp');
      assert.ok(settledParts(paid) >= 2, `${settledParts(paid)} shards`);
      setIds.push(paid.setId!);
    }
    const addr = /^[0-9a-f]{64}$/.test(inv.payment_addr) ? Buffer.from(inv.payment_addr, 'hex') : Buffer.from(inv.payment_addr, 'base64');
    const looked = await lnd.rest<{ amp_invoice_state?: Record<string, { state: string; amt_paid_msat: string }> }>(
      'GET',
      `/v2/invoices/lookup?payment_addr=${encodeURIComponent(addr.toString('base64'))}`,
    );
    const sets = looked.amp_invoice_state ?? {};
    assert.equal(Object.keys(sets).length, 2, JSON.stringify(looked));
    assert.deepEqual(Object.keys(sets).sort(), [...setIds].sort());
    assert.deepEqual(
      Object.values(sets)
        .map((s) => [s.state, s.amt_paid_msat])
        .sort(),
      amounts.map((a) => ['SETTLED', String(a * 1000)]).sort(),
    );
  },
  { timeoutMs: 240_000 },
);

h.test(
  'ampnode sends lnd spontaneous AMP in several shards, and keysend; lnd settles both',
  async () => {
    const before = ((await lnd.cli<{ invoices?: unknown[] }>(['listinvoices', '--max_invoices', '1000'])).invoices ?? []).length;
    const amp = await p.api<AmpPaymentView>('POST', '/v1/payments/send', {
      dest: lnd.nodeId,
      amountMsat: '14000000',
      kind: 'amp',
      maxShardMsat: '5000000',
    });
    assert.equal(
      amp.status,
      'succeeded',
      `${amp.failureReason}: ${amp.failureDetail} ${JSON.stringify(amp.attempts.map((a) => a.failure))}`,
    );
    assert.ok(settledParts(amp) >= 2);
    const ks = await p.api<AmpPaymentView>('POST', '/v1/payments/send', { dest: lnd.nodeId, amountMsat: '3000000', kind: 'keysend' });
    assert.equal(ks.status, 'succeeded', `${ks.failureReason}: ${ks.failureDetail} ${JSON.stringify(ks.attempts.map((a) => a.failure))}`);
    const invoices =
      (
        await lnd.cli<{ invoices?: { state: string; amt_paid_msat: string; is_keysend: boolean; is_amp: boolean }[] }>([
          'listinvoices',
          '--max_invoices',
          '1000',
        ])
      ).invoices ?? [];
    const fresh = invoices.slice(before);
    assert.ok(
      fresh.some((i) => i.is_amp && i.amt_paid_msat === '14000000'),
      JSON.stringify(fresh),
    );
    assert.ok(
      fresh.some((i) => i.is_keysend && i.state === 'SETTLED' && i.amt_paid_msat === '3000000'),
      JSON.stringify(fresh),
    );
  },
  { timeoutMs: 240_000 },
);
