/**
 * Gossip with real lnd (BOLT 7): ampnode — lnd1 — lnd2, every channel public, on btcd's chain.
 *   - ampnode learns lnd1–lnd2 and lnd2's node announcement from gossip alone (its describegraph);
 *   - lnd1 and lnd2 list ampnode's channel and its node announcement (describegraph, getnodeinfo);
 *   - ampnode pays lnd2's AMP invoice and sends lnd2 spontaneous AMP, with no route hint: over lnd1, by the graph;
 *   - lnd2 pays ampnode's invoice (which carries no hint: the channel is announced) through lnd1;
 *   - policy changes: ampnode's (POST /v1/channels/policy) reaches lnd2 by gossip; after lnd1's `updatechanpolicy`
 *     ampnode pays lnd2 at lnd1's new fee.
 * lnd's trickle delay is cut to 1 s so that its gossip goes out within the test's waits.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { BUILD_TIMEOUT_MS, Interop, ensureBinaries, waitFor, type Ampnode, type Btcd, type Lnd } from './harness.js';
import { LndPair } from './lnd-pair.js';

const h = new Interop('gossip');
let btcd: Btcd;
let lnd1: Lnd;
let lnd2: Lnd;
let amp: Ampnode;
let p: LndPair;
let ampChan = ''; // ampnode–lnd1, "HxTxO"
let lndChan = ''; // lnd1–lnd2, lnd's numeric chan_id

interface Graph {
  nodes: { nodeId: string; alias?: string }[];
  channels: { shortChannelId: string; node1: string; node2: string; capacitySat: string; node1Policy?: unknown; node2Policy?: unknown }[];
}
interface LndEdge {
  channel_id: string;
  chan_point: string;
  node1_pub: string;
  node2_pub: string;
}

const GOSSIP_ARGS = ['--trickledelay=1000'];

/** lnd's numeric short_channel_id as ampnode writes it (block x tx x output). */
function scidText(chanId: string): string {
  const v = BigInt(chanId);
  return `${v >> 40n}x${(v >> 16n) & 0xffffffn}x${v & 0xffffn}`;
}

async function lndEdges(lnd: Lnd): Promise<LndEdge[]> {
  return (await lnd.cli<{ edges?: LndEdge[] }>(['describegraph'])).edges ?? [];
}

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    btcd = await h.startBtcd();
    lnd1 = await h.startLnd(btcd, { name: 'lnd1', extraArgs: GOSSIP_ARGS });
    lnd2 = await h.startLnd(btcd, { name: 'lnd2', extraArgs: [...GOSSIP_ARGS, '--accept-amp'] });
    amp = await h.startAmpnode({ name: 'amp', chain: { p2p: btcd }, api: true, extraArgs: ['--log-level', 'debug', '--accept-amp'] });
    p = new LndPair(btcd, lnd1, amp);
    await p.ampSynced();
    await p.fund(2);
    await lnd2.waitSynced();
    await lnd1.cli(['connect', `${lnd2.nodeId}@${lnd2.p2pHost}`], 30_000);
    await lnd1.cli(['connect', amp.uri], 30_000);

    // lnd1 → lnd2, public, half pushed to lnd2 so that lnd2 can pay; ampnode → lnd1, public, a third pushed to lnd1
    const open12 = await lnd1.cli<{ funding_txid: string }>([
      'openchannel',
      '--node_key',
      lnd2.nodeId,
      '--local_amt',
      '1000000',
      '--push_amt',
      '500000',
    ]);
    await p.inMempool(open12.funding_txid);
    const opened = await p.api<{ channelId: string }>('POST', '/v1/channels/open', {
      nodeId: lnd1.nodeId,
      fundingSat: '1000000',
      pushMsat: '300000000',
      announce: true,
    });
    await waitFor(async () => (await p.ampChannels()).some((c) => c.channelId === opened.channelId && c.fundingOutpoint !== undefined), {
      timeoutMs: 30_000,
      what: "ampnode's funding broadcast",
    });
    const point = (await p.ampChannels()).find((c) => c.channelId === opened.channelId)!.fundingOutpoint!;
    await p.inMempool(point.split(':')[0]!);
    await p.mine(3);
    await lnd2.waitSynced();
    await p.allActive([point], 'ampnode–lnd1 active');
    // BOLT 7: announcement_signatures at 6 confirmations
    await p.mine(4);
    await lnd2.waitSynced();
    ampChan = (await p.ampChannel(point))!.shortChannelId!;
    const edge = await waitFor(async () => (await lndEdges(lnd1)).find((e) => e.node2_pub === lnd2.nodeId || e.node1_pub === lnd2.nodeId), {
      timeoutMs: 60_000,
      what: 'lnd1–lnd2 in lnd1 graph',
    });
    lndChan = edge.channel_id;
  },
  { timeout: BUILD_TIMEOUT_MS + 600_000 },
);
after(() => h.close());

h.test(
  'ampnode learns lnd1–lnd2 and lnd2 from gossip alone; lnd1 and lnd2 learn ampnode and its channel',
  async () => {
    const graph = await waitFor(
      async () => {
        const g = await p.api<Graph>('GET', '/v1/graph');
        const c = g.channels.find((x) => x.shortChannelId === scidText(lndChan));
        return c !== undefined &&
          c.node1Policy !== undefined &&
          c.node2Policy !== undefined &&
          g.nodes.some((n) => n.nodeId === lnd2.nodeId && n.alias !== undefined)
          ? g
          : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 1_000, what: 'lnd1–lnd2 with both policies and lnd2 announced in ampnode graph' },
    );
    const c = graph.channels.find((x) => x.shortChannelId === scidText(lndChan))!;
    assert.equal(c.capacitySat, '1000000');
    assert.deepEqual([c.node1, c.node2].sort(), [lnd1.nodeId, lnd2.nodeId].sort());
    assert.ok(
      graph.channels.some((x) => x.shortChannelId === ampChan),
      "ampnode's own channel is in its graph",
    );

    for (const lnd of [lnd1, lnd2]) {
      await waitFor(async () => (await lndEdges(lnd)).find((e) => scidText(e.channel_id) === ampChan), {
        timeoutMs: 150_000,
        intervalMs: 1_000,
        what: `ampnode's channel in ${lnd.name}'s graph`,
      });
      const info = await waitFor(
        async () => {
          try {
            const r = await lnd.cli<{ node: { pub_key: string; alias: string; last_update: number } }>([
              'getnodeinfo',
              '--pub_key',
              amp.nodeId,
            ]);
            return r.node.last_update > 0 ? r : undefined;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 150_000, intervalMs: 1_000, what: `ampnode's node announcement at ${lnd.name}` },
      );
      assert.equal(info.node.pub_key, amp.nodeId);
      assert.ok(info.node.alias.length > 0);
    }
  },
  { timeoutMs: 400_000 },
);

h.test(
  "ampnode pays lnd2's AMP invoice and sends it spontaneous AMP, by the graph alone (no route hint)",
  async () => {
    const inv = await lnd2.cli<{ payment_request: string }>(['addinvoice', '--amp', '--amt', '20000']);
    const decoded = await p.api<{ routeHints?: unknown[] }>('POST', '/v1/invoices/decode', { paymentRequest: inv.payment_request });
    assert.equal((decoded.routeHints ?? []).length, 0, "lnd2's invoice over a public channel carries no hint");
    const paid = await p.api<{ status: string; failureDetail?: string; attempts: { status: string; route: { hops: unknown[] } }[] }>(
      'POST',
      '/v1/payments/pay',
      { paymentRequest: inv.payment_request },
      120_000,
    );
    assert.equal(paid.status, 'succeeded', paid.failureDetail);
    assert.ok(paid.attempts.filter((a) => a.status === 'settled').every((a) => a.route.hops.length === 2));
    const sent = await p.api<{ status: string; failureDetail?: string }>(
      'POST',
      '/v1/payments/send',
      { dest: lnd2.nodeId, amountMsat: '15000000', kind: 'amp' },
      120_000,
    );
    assert.equal(sent.status, 'succeeded', sent.failureDetail);
    const invoices = (await lnd2.cli<{ invoices: { state: string; amt_paid_sat: string; is_amp: boolean }[] }>(['listinvoices'])).invoices;
    const settled = invoices.filter((i) => i.state === 'SETTLED').map((i) => i.amt_paid_sat);
    assert.ok(settled.includes('20000') && settled.includes('15000'), `lnd2's settled invoices: ${settled.join(', ')}`);
  },
  { timeoutMs: 300_000 },
);

h.test(
  "lnd2 pays ampnode's invoice through lnd1, found by the graph (the invoice carries no hint)",
  async () => {
    const inv = await p.api<{ paymentRequest: string; paymentHash: string }>('POST', '/v1/invoices', { amountMsat: '12000000' });
    const decoded = await lnd2.cli<{ route_hints?: unknown[] }>(['decodepayreq', inv.paymentRequest]);
    assert.equal((decoded.route_hints ?? []).length, 0);
    const paid = await waitFor(
      async () => {
        const r = await lnd2
          .cli<{ status: string; failure_reason: string }>(
            ['payinvoice', '--json', '--force', '--timeout', '60s', inv.paymentRequest],
            120_000,
          )
          .catch(() => undefined);
        return r?.status === 'SUCCEEDED' ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 3_000, what: "lnd2's payment to ampnode" },
    );
    assert.equal(paid.status, 'SUCCEEDED');
    const settled = await p.api<{ state: string; amountPaidMsat: string }>('POST', '/v1/invoices/lookup', { paymentHash: inv.paymentHash });
    assert.equal(settled.state, 'settled');
    assert.equal(settled.amountPaidMsat, '12000000');
  },
  { timeoutMs: 300_000 },
);

interface LndChanInfo {
  node1_pub: string;
  node2_pub: string;
  chan_point: string;
  node1_policy?: { fee_base_msat: string; fee_rate_milli_msat: string; time_lock_delta: number };
  node2_policy?: { fee_base_msat: string; fee_rate_milli_msat: string; time_lock_delta: number };
}

/** The policy `node` announces for `chanId` (lnd's numeric id) as `lnd` has it. */
async function policyAt(lnd: Lnd, chanId: string, node: string): Promise<LndChanInfo['node1_policy']> {
  const info = await lnd.cli<LndChanInfo>(['getchaninfo', '--chan_id', chanId]);
  return info.node1_pub === node ? info.node1_policy : info.node2_policy;
}

h.test(
  'policy changes both ways: ampnode updatechanpolicy reaches lnd2 by gossip; lnd1 raises its fee and ampnode pays lnd2 at it',
  async () => {
    const [block, tx, out] = ampChan.split('x').map(BigInt) as [bigint, bigint, bigint];
    const ampChanId = String((block << 40n) | (tx << 16n) | out);
    const changed = await p.api<{ policy: { baseFeeMsat: string } }[]>('POST', '/v1/channels/policy', {
      baseFeeMsat: '4321',
      feeRatePpm: '77',
      cltvExpiryDelta: 60,
    });
    assert.deepEqual(
      changed.map((c) => c.policy.baseFeeMsat),
      ['4321'],
    );
    const seen = await waitFor(
      async () => {
        const pol = await policyAt(lnd2, ampChanId, amp.nodeId).catch(() => undefined);
        return pol?.fee_base_msat === '4321' ? pol : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 1_000, what: "ampnode's new policy at lnd2" },
    );
    assert.equal(seen!.fee_rate_milli_msat, '77');
    assert.equal(seen!.time_lock_delta, 60);

    // lnd1 raises its fee on lnd1–lnd2; ampnode's next payment to lnd2 pays the new fee (learnt by gossip or from the
    // fee_insufficient failure's channel_update, whichever comes first)
    const info = await lnd1.cli<LndChanInfo>(['getchaninfo', '--chan_id', lndChan]);
    await lnd1.cli([
      'updatechanpolicy',
      '--base_fee_msat',
      '9000',
      '--fee_rate_ppm',
      '900',
      '--time_lock_delta',
      '80',
      '--chan_point',
      info.chan_point,
    ]);
    const amountMsat = 25_000_000n;
    const sent = await p.api<{
      status: string;
      failureDetail?: string;
      attempts: { status: string; route: { totalAmountMsat: string; hops: { amountToForwardMsat: string }[] } }[];
    }>('POST', '/v1/payments/send', { dest: lnd2.nodeId, amountMsat: String(amountMsat), kind: 'amp' }, 120_000);
    assert.equal(sent.status, 'succeeded', sent.failureDetail);
    for (const a of sent.attempts.filter((x) => x.status === 'settled')) {
      const shard = BigInt(a.route.hops.at(-1)!.amountToForwardMsat);
      assert.equal(BigInt(a.route.totalAmountMsat) - shard, 9000n + (shard * 900n) / 1_000_000n, "lnd1's new fee");
    }
  },
  { timeoutMs: 400_000 },
);
