/**
 * BOLT 2 channels against a real lnd on btcd's regtest chain, the ampnode
 * daemon following that chain over P2P (`--chain p2p --chain-peer`) and
 * driven through its local JSON API (`--api`).
 *
 *   1. lnd opens to ampnode with --channel_type tweakless (public) and with
 *      --channel_type anchors (private); ampnode opens one (anchors, with a
 *      push) to lnd. Each becomes active on both sides.
 *      ampnode then raises the commitment feerate of its channel with
 *      update_fee, and lnd lists the new feerate.
 *   2. lncli disconnect + connect, then an ampnode restart from its data
 *      directory, each end in a clean channel_reestablish: lnd lists every
 *      channel active and has nothing waiting to close or force-closing.
 *      Both again with an HTLC in flight (ampnode paying a hold invoice of
 *      lnd's, held at lnd): the HTLC is on both commitments after the
 *      reestablish, lnd settles it, the payment completes at ampnode, and no
 *      channel is closed.
 *   3. Cooperative closes: lnd closes one of its channels, ampnode closes the
 *      other lnd-opened one and its own. The closing transactions confirm on
 *      btcd's chain, pay each side what its channel balance said (minus the
 *      closing fee for the opener), and both wallets see those amounts.
 *   4. Force closes: lnd force-closes an anchors channel it opened and
 *      ampnode sweeps its to_remote; ampnode force-closes a static_remotekey
 *      channel it opened, btcd mines the commitment, lnd reports a remote
 *      force close, and ampnode sweeps its to_local once lnd's CSV delay passed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { BUILD_TIMEOUT_MS, Interop, ensureBinaries, waitFor, type Ampnode, type Btcd, type Lnd } from './harness.js';
import { LndPair, type AmpChannel, type LndChannel } from './lnd-pair.js';

const h = new Interop('channels');
let btcd: Btcd;
let lnd: Lnd;
let amp: Ampnode;

let p: LndPair;
const api = <T = any>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 90_000): Promise<T> =>
  p.api<T>(method, path, body, timeoutMs);
const ampSynced = (): Promise<void> => p.ampSynced();
const mine = (n: number): Promise<void> => p.mine(n);
const inMempool = (txid: string): Promise<void> => p.inMempool(txid);
const ampChannels = (): Promise<AmpChannel[]> => p.ampChannels();
const ampChannel = (point: string): Promise<AmpChannel | undefined> => p.ampChannel(point);
const lndChannel = (point: string): Promise<LndChannel | undefined> => p.lndChannel(point);
const allActive = (points: string[], what: string): Promise<void> => p.allActive(points, what);
const lndOpens = (channelType: 'tweakless' | 'anchors', amountSat: number, extra: string[] = []): Promise<string> =>
  p.lndOpens(channelType, amountSat, extra);

/** lnd has nothing waiting to close or force-closing (the sign of a failed reestablish). */
async function noCloses(): Promise<void> {
  const p = await lnd.cli<Record<string, unknown[] | undefined>>(['pendingchannels']);
  assert.deepEqual(p['waiting_close_channels'] ?? [], [], 'lnd has channels waiting to close');
  assert.deepEqual(p['pending_force_closing_channels'] ?? [], [], 'lnd is force-closing');
}

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    btcd = await h.startBtcd();
    lnd = await h.startLnd(btcd, { name: 'lnd' });
    amp = await h.startAmpnode({ name: 'amp', chain: { p2p: btcd }, api: true, extraArgs: ['--log-level', 'debug'] });
    p = new LndPair(btcd, lnd, amp);
    await ampSynced();
    await p.fund(3);
    await lnd.cli(['connect', amp.uri], 30_000);
  },
  { timeout: BUILD_TIMEOUT_MS + 300_000 },
);
after(() => h.close());

let tweakless = '';
let anchors = '';
let ours = '';

h.test(
  'lnd opens a tweakless and an anchors channel to ampnode; both active on both sides',
  async () => {
    tweakless = await lndOpens('tweakless', 500_000);
    anchors = await lndOpens('anchors', 400_000, ['--private']);
    const t = (await lndChannel(tweakless))!;
    const a = (await lndChannel(anchors))!;
    assert.equal(t.commitment_type, 'STATIC_REMOTE_KEY');
    assert.equal(a.commitment_type, 'ANCHORS');
    assert.equal((await ampChannel(tweakless))!.channelType, 'static_remotekey');
    assert.equal((await ampChannel(anchors))!.channelType, 'anchors_zero_fee_htlc');
    // both sides agree on the balances: lnd holds everything minus its commitment fee and, with anchors,
    // its own anchor (330 sat; ampnode has no output yet, so no anchor of its own: BOLT 3)
    for (const [point, anchorsSat] of [
      [tweakless, 0],
      [anchors, 330],
    ] as const) {
      const l = (await lndChannel(point))!;
      const c = (await ampChannel(point))!;
      assert.equal(c.opener, 'remote');
      assert.equal(c.localBalanceMsat, '0');
      assert.equal(BigInt(c.remoteBalanceMsat) / 1000n, BigInt(l.local_balance) + BigInt(l.commit_fee) + BigInt(anchorsSat));
    }
    await noCloses();
  },
  { timeoutMs: 240_000 },
);

h.test(
  'ampnode opens an anchors channel (with a push) to lnd; active on both sides',
  async () => {
    const info = await api<AmpChannel>('POST', '/v1/channels/open', { nodeId: lnd.nodeId, fundingSat: '300000', pushMsat: '50000000' });
    assert.equal(info.state, 'awaiting_ready');
    assert.equal(info.channelType, 'anchors_zero_fee_htlc', 'lnd signals 23, so anchors by default');
    ours = info.fundingOutpoint!;
    await inMempool(ours.split(':')[0]!); // relayed by ampnode's chain backend over P2P
    await mine(1); // lnd asks for 1 (--bitcoin.defaultchanconfs=1)
    await allActive([ours], 'ampnode-opened channel active');
    const l = (await lndChannel(ours))!;
    assert.equal(l.initiator, false);
    assert.equal(l.local_balance, '50000', 'lnd got the push');
    assert.equal(l.commitment_type, 'ANCHORS');
    await noCloses();
  },
  { timeoutMs: 180_000 },
);

h.test(
  'ampnode, the opener, changes the commitment feerate (update_fee); lnd signs and lists the new feerate',
  async () => {
    const before = (await ampChannel(ours))!;
    assert.equal(Number((await lndChannel(ours))!.fee_per_kw), before.feeratePerKw);
    const target = before.feeratePerKw + Math.floor(before.feeratePerKw / 2);
    const r = await api<{ feeratePerKw: number | null }>('POST', '/v1/channels/updatefee', {
      channelId: before.channelId,
      feeratePerKw: target,
    });
    assert.equal(r.feeratePerKw, target);
    await waitFor(
      async () => Number((await lndChannel(ours))?.fee_per_kw) === target && (await ampChannel(ours))?.feeratePerKw === target,
      {
        timeoutMs: 30_000,
        what: `lnd and ampnode at ${target} sat/kw`,
      },
    );
    // the acceptor side may not: lnd opened `tweakless`
    const theirs = (await ampChannel(tweakless))!;
    await assert.rejects(
      api('POST', '/v1/channels/updatefee', { channelId: theirs.channelId, feeratePerKw: target }),
      /ERR_CHANNEL_REFUSED|opener/,
    );
    await allActive([tweakless, anchors, ours], 'every channel still active');
    await noCloses();
    assert.equal(
      amp.logs().filter((l) => l.msg === 'channel failure' || l.msg === 'channel failed').length,
      0,
      'no channel failures at ampnode',
    );
  },
  { timeoutMs: 90_000 },
);

h.test(
  'lncli disconnect + connect ends in a clean channel_reestablish',
  async () => {
    const before = amp.logs().filter((l) => l.msg === 'disconnected').length;
    await lnd.cli(['disconnect', amp.nodeId]);
    await waitFor(async () => (await lnd.peer(amp.nodeId)) === undefined, { timeoutMs: 20_000, what: 'lnd dropping ampnode' });
    await waitFor(() => amp.logs().filter((l) => l.msg === 'disconnected').length > before, {
      timeoutMs: 20_000,
      what: 'ampnode seeing the disconnect',
    });
    await waitFor(async () => (await ampChannels()).every((c) => !c.active), { timeoutMs: 20_000, what: 'channels inactive at ampnode' });
    await lnd.cli(['connect', amp.uri], 30_000);
    await allActive([tweakless, anchors, ours], 'all channels active again');
    await noCloses();
    assert.equal(
      amp.logs().filter((l) => l.msg === 'channel failure' || l.msg === 'channel failed').length,
      0,
      'no channel failures at ampnode',
    );
  },
  { timeoutMs: 120_000 },
);

/** A hold invoice of lnd's (`addholdinvoice`) and its preimage; lnd accepts HTLCs for it and keeps them until settled. */
async function holdInvoice(amountSat: number): Promise<{ preimage: string; hash: string; payReq: string }> {
  const preimage = randomBytes(32);
  const hash = createHash('sha256').update(preimage).digest('hex');
  const r = await lnd.cli<{ payment_request: string }>(['addholdinvoice', hash, '--amt', String(amountSat)]);
  return { preimage: preimage.toString('hex'), hash, payReq: r.payment_request };
}

async function lndHtlcs(point: string): Promise<number> {
  return (((await lndChannel(point)) as (LndChannel & { pending_htlcs?: unknown[] }) | undefined)?.pending_htlcs ?? []).length;
}

/** lnd's invoice of `hash` ACCEPTED (the HTLC locked in on both commitments, held) and the HTLC on `point` at lnd. */
async function held(hash: string, point: string): Promise<void> {
  await waitFor(
    async () => (await lnd.cli<{ state: string }>(['lookupinvoice', hash])).state === 'ACCEPTED' && (await lndHtlcs(point)) === 1,
    {
      timeoutMs: 60_000,
      what: `lnd holding the HTLC of ${hash}`,
    },
  );
}

interface PaymentView {
  status: string;
  paymentHash?: string;
  preimage?: string;
  failureReason?: string;
  failureDetail?: string;
}

h.test(
  "lncli disconnect + connect with an HTLC in flight (ampnode paying lnd's hold invoice): both reestablish, the payment completes",
  async () => {
    const inv = await holdInvoice(25_000);
    const before = BigInt((await ampChannel(ours))!.localBalanceMsat);
    const paying = api<PaymentView>('POST', '/v1/payments/pay', { paymentRequest: inv.payReq }, 240_000);
    paying.catch(() => undefined); // awaited below
    await held(inv.hash, ours);
    const disconnects = amp.logs().filter((l) => l.msg === 'disconnected').length;
    await lnd.cli(['disconnect', amp.nodeId]);
    await waitFor(async () => (await lnd.peer(amp.nodeId)) === undefined, { timeoutMs: 20_000, what: 'lnd dropping ampnode' });
    await waitFor(() => amp.logs().filter((l) => l.msg === 'disconnected').length > disconnects, {
      timeoutMs: 20_000,
      what: 'ampnode seeing the disconnect',
    });
    await lnd.cli(['connect', amp.uri], 30_000);
    await allActive([tweakless, anchors, ours], 'all channels active again with the HTLC in flight');
    assert.equal(await lndHtlcs(ours), 1, 'the HTLC survived the reestablish at lnd');
    assert.equal((await ampChannel(ours))!.localBalanceMsat, String(before - 25_000_000n), 'and at ampnode');
    await lnd.cli(['settleinvoice', inv.preimage]);
    const paid = await paying;
    assert.equal(paid.status, 'succeeded', `${paid.failureReason}: ${paid.failureDetail}`);
    assert.equal(paid.preimage, inv.preimage);
    assert.equal((await lnd.cli<{ state: string }>(['lookupinvoice', inv.hash])).state, 'SETTLED');
    await waitFor(async () => (await lndHtlcs(ours)) === 0, { timeoutMs: 30_000, what: 'the HTLC resolved at lnd' });
    await noCloses();
    assert.equal(
      amp.logs().filter((l) => l.msg === 'channel failure' || l.msg === 'channel failed').length,
      0,
      'no channel failures at ampnode',
    );
  },
  { timeoutMs: 300_000 },
);

h.test(
  'an ampnode restart from its data directory ends in a clean channel_reestablish',
  async () => {
    const balances = (await ampChannels()).map((c) => [c.fundingOutpoint, c.localBalanceMsat]);
    amp = await amp.restart();
    p.amp = amp;
    await ampSynced();
    await api('POST', '/v1/peers/connect', { uri: `${lnd.nodeId}@${lnd.p2pHost}`, persistent: true }, 30_000);
    await allActive([tweakless, anchors, ours], 'all channels active after the restart');
    assert.deepEqual(
      (await ampChannels()).map((c) => [c.fundingOutpoint, c.localBalanceMsat]),
      balances,
      'channels reloaded with the same balances',
    );
    await noCloses();
    assert.equal(
      amp.logs().filter((l) => l.msg === 'channel failure' || l.msg === 'channel failed').length,
      0,
      'no channel failures at ampnode',
    );
  },
  { timeoutMs: 180_000 },
);

h.test(
  "an ampnode restart with an HTLC in flight (lnd's hold invoice): reestablish on both sides, the payment completes from the datadir",
  async () => {
    const inv = await holdInvoice(15_000);
    const paying = api<PaymentView>('POST', '/v1/payments/pay', { paymentRequest: inv.payReq }, 240_000);
    paying.catch(() => undefined); // the daemon stops before it answers
    await held(inv.hash, ours);
    amp = await amp.restart();
    p.amp = amp;
    await ampSynced();
    await api('POST', '/v1/peers/connect', { uri: `${lnd.nodeId}@${lnd.p2pHost}`, persistent: true }, 30_000);
    await allActive([tweakless, anchors, ours], 'all channels active after the restart with the HTLC in flight');
    assert.equal(await lndHtlcs(ours), 1, 'the HTLC survived the restart');
    await lnd.cli(['settleinvoice', inv.preimage]);
    const paid = await waitFor(
      async () => {
        const list = (await api<{ payments: PaymentView[] }>('POST', '/v1/payments/list', {})).payments;
        return list.find((x) => x.paymentHash === inv.hash && x.status !== 'in_flight');
      },
      { timeoutMs: 60_000, what: 'the payment ended at ampnode' },
    );
    assert.equal(paid.status, 'succeeded', `${paid.failureReason}: ${paid.failureDetail}`);
    assert.equal(paid.preimage, inv.preimage);
    await waitFor(async () => (await lndHtlcs(ours)) === 0, { timeoutMs: 30_000, what: 'the HTLC resolved at lnd' });
    await noCloses();
    assert.equal(
      amp.logs().filter((l) => l.msg === 'channel failure' || l.msg === 'channel failed').length,
      0,
      'no channel failures at ampnode',
    );
  },
  { timeoutMs: 300_000 },
);

interface RawTx {
  txid: string;
  confirmations?: number;
  vout: { value: number; n: number; scriptPubKey: { address?: string; addresses?: string[] } }[];
}

h.test(
  'cooperative closes initiated by each side confirm on btcd with the amounts both wallets expect',
  async () => {
    const ampBefore = BigInt((await api<{ confirmedSat: string }>('GET', '/v1/wallet/balance')).confirmedSat);
    const lndWallet = async (): Promise<{ confirmed: bigint; unconfirmed: bigint }> => {
      const b = await lnd.cli<{ confirmed_balance: string; unconfirmed_balance: string }>(['walletbalance']);
      return { confirmed: BigInt(b.confirmed_balance), unconfirmed: BigInt(b.unconfirmed_balance) };
    };
    const lndBefore = await lndWallet();
    assert.equal(lndBefore.unconfirmed, 0n);
    const expectations: { point: string; ampSat: bigint; lndSatPreFee: bigint; ampOpener: boolean }[] = [];
    for (const point of [tweakless, anchors, ours]) {
      const c = (await ampChannel(point))!;
      expectations.push({
        point,
        ampSat: BigInt(c.localBalanceMsat) / 1000n,
        lndSatPreFee: BigInt(c.remoteBalanceMsat) / 1000n,
        ampOpener: c.opener === 'local',
      });
    }

    // lnd closes a channel it opened; ampnode closes the other lnd-opened one and its own
    await lnd.cli(['closechannel', '--funding_txid', tweakless.split(':')[0]!, '--output_index', tweakless.split(':')[1]!], 60_000);
    for (const point of [anchors, ours]) {
      const c = (await ampChannel(point))!;
      const closed = await api<AmpChannel>('POST', '/v1/channels/close', { channelId: c.channelId });
      assert.equal(closed.state, 'closed');
      assert.ok(closed.closingTxid);
    }
    await waitFor(async () => (await ampChannels()).every((c) => c.state === 'closed' && c.closingTxid !== undefined), {
      timeoutMs: 60_000,
      what: 'all closes agreed at ampnode',
    });
    await waitFor(
      async () => ((await lnd.cli<{ waiting_close_channels?: unknown[] }>(['pendingchannels'])).waiting_close_channels ?? []).length === 3,
      {
        timeoutMs: 30_000,
        what: 'lnd waiting for the three closing txs',
      },
    );
    for (const c of await ampChannels()) await inMempool(c.closingTxid!);
    await mine(1);
    const closed = await waitFor(
      async () => {
        const r =
          (
            await lnd.cli<{ channels?: { channel_point: string; closing_tx_hash: string; settled_balance: string; close_type: string }[] }>(
              ['closedchannels'],
            )
          ).channels ?? [];
        return r.length === 3 ? r : undefined;
      },
      { timeoutMs: 60_000, what: 'lnd listing three closed channels' },
    );

    let ampGot = 0n;
    let lndGot = 0n;
    const ampAddrs = new Set<string>();
    for (const e of expectations) {
      const c = (await ampChannel(e.point))!;
      const l = closed.find((x) => x.channel_point === e.point)!;
      assert.equal(l.close_type, 'COOPERATIVE_CLOSE');
      assert.equal(l.closing_tx_hash, c.closingTxid, 'both sides name the same closing tx');
      const tx = await btcd.rpc<RawTx>('getrawtransaction', [c.closingTxid, 1]);
      assert.ok((tx.confirmations ?? 0) >= 1, 'closing tx confirmed on btcd');
      const outs = tx.vout.map((o) => BigInt(Math.round(o.value * 1e8)));
      const feeSat = BigInt(c.capacitySat) - outs.reduce((a, b) => a + b, 0n);
      assert.ok(feeSat > 0n && feeSat < 10_000n, `closing fee ${feeSat}`);
      const ampOut = e.ampOpener ? e.ampSat - feeSat : e.ampSat;
      const lndOut = e.ampOpener ? e.lndSatPreFee : e.lndSatPreFee - feeSat;
      assert.equal(BigInt(l.settled_balance), lndOut, `lnd settled balance for ${e.point}`);
      lndGot += lndOut;
      if (ampOut > 0n) {
        assert.ok(outs.includes(ampOut), `ampnode output ${ampOut} in ${JSON.stringify(outs.map(String))}`);
        ampGot += ampOut;
        const o = tx.vout.find((v) => BigInt(Math.round(v.value * 1e8)) === ampOut)!;
        for (const a of [o.scriptPubKey.address, ...(o.scriptPubKey.addresses ?? [])]) if (a !== undefined) ampAddrs.add(a);
      } else {
        assert.equal(outs.length, 1, 'only lnd is paid');
      }
    }
    assert.ok(ampGot > 0n);
    await waitFor(
      async () => BigInt((await api<{ confirmedSat: string }>('GET', '/v1/wallet/balance')).confirmedSat) === ampBefore + ampGot,
      {
        timeoutMs: 30_000,
        what: `ampnode wallet up by ${ampGot} sat`,
      },
    );
    await waitFor(async () => (await lndWallet()).confirmed === lndBefore.confirmed + lndGot, {
      timeoutMs: 30_000,
      what: `lnd wallet up by ${lndGot} sat`,
    });
  },
  { timeoutMs: 240_000 },
);

h.test(
  'force closes each way: lnd force-closes and ampnode sweeps its to_remote; ampnode force-closes, btcd mines its commitment and ampnode sweeps its to_local after the delay',
  async () => {
    const ampBalance = async (): Promise<{ confirmed: bigint; unconfirmed: bigint }> => {
      const b = await api<{ confirmedSat: string; unconfirmedSat: string }>('GET', '/v1/wallet/balance');
      return { confirmed: BigInt(b.confirmedSat), unconfirmed: BigInt(b.unconfirmedSat) };
    };
    // 1. lnd opens an anchors channel with a push to us and force-closes it
    const theirs = await lndOpens('anchors', 400_000, ['--push_amt', '120000']);
    const ourShareSat = BigInt((await ampChannel(theirs))!.localBalanceMsat) / 1000n;
    assert.equal(ourShareSat, 120_000n);
    const before1 = await ampBalance();
    const fc = await lnd.cli<{ closing_txid: string }>(
      ['closechannel', '--force', '--funding_txid', theirs.split(':')[0]!, '--output_index', theirs.split(':')[1]!],
      60_000,
    );
    await inMempool(fc.closing_txid);
    await mine(1);
    // our to_remote (1-block CSV with anchors) is swept at once into a wallet address
    await waitFor(async () => (await ampBalance()).unconfirmed > 0n, { timeoutMs: 30_000, what: 'ampnode sweeping its to_remote' });
    const c1 = (await ampChannel(theirs))!;
    assert.equal(c1.active, false);
    await waitFor(async () => (await btcd.rpc<string[]>('getrawmempool')).length > 0, {
      timeoutMs: 30_000,
      what: 'the sweep relayed to btcd',
    });
    await mine(1);
    await waitFor(async () => (await ampBalance()).unconfirmed === 0n, { timeoutMs: 30_000, what: 'the sweep confirmed' });
    const got1 = (await ampBalance()).confirmed - before1.confirmed;
    assert.ok(got1 > ourShareSat - 2_000n && got1 < ourShareSat, `swept ${got1} sat of a ${ourShareSat} sat balance`);
    assert.equal((await ampBalance()).unconfirmed, 0n);

    // 2. we open a static_remotekey channel to lnd with a push, and force-close it
    const opened = await api<AmpChannel>('POST', '/v1/channels/open', {
      nodeId: lnd.nodeId,
      fundingSat: '250000',
      pushMsat: '40000000',
      channelType: 'static_remotekey',
    });
    const mine2 = opened.fundingOutpoint!;
    await inMempool(mine2.split(':')[0]!);
    await mine(1);
    await allActive([mine2], 'ampnode-opened static_remotekey channel active');
    const c2 = (await ampChannel(mine2))!;
    const before2 = await ampBalance();
    const { txid } = await api<{ txid: string }>('POST', '/v1/channels/forceclose', { channelId: c2.channelId });
    await inMempool(txid); // btcd accepted our commitment: both signatures valid under consensus rules
    await mine(1);
    const mined1 = await btcd.rpc<RawTx>('getrawtransaction', [txid, 1]);
    assert.ok((mined1.confirmations ?? 0) >= 1, 'our commitment confirmed on btcd');
    await waitFor(async () => (await lndChannel(mine2)) === undefined, {
      timeoutMs: 60_000,
      what: 'lnd dropping the channel from its open channels',
    });
    // the amounts: our to_local is our balance less the commitment fee (we opened; no anchors with static_remotekey)
    const commit = mined1;
    const outs = commit.vout.map((o) => BigInt(Math.round(o.value * 1e8)));
    const commitFee = 250_000n - outs.reduce((a, b) => a + b, 0n);
    const toLocal = 210_000n - commitFee;
    assert.ok(outs.includes(toLocal), `our to_local ${toLocal} in ${JSON.stringify(outs.map(String))}`);
    const total = async (): Promise<bigint> => {
      const b = await ampBalance();
      return b.confirmed + b.unconfirmed;
    };
    // our to_local waits for the CSV delay lnd asked of us (the harness runs lnd with --bitcoin.defaultremotedelay=4):
    // nothing one block before it, the sweep right after the block that completes it
    const delay = c2.toSelfDelay;
    assert.ok(delay >= 2 && delay <= 2016, `to_self_delay ${delay}`);
    await mine(delay - 2); // the commitment now has delay − 1 confirmations
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(await total(), before2.confirmed + before2.unconfirmed, 'no sweep before the delay');
    await mine(1);
    await waitFor(async () => (await total()) > before2.confirmed + before2.unconfirmed, {
      timeoutMs: 30_000,
      what: 'the to_local sweep after the delay',
    });
    await waitFor(async () => (await btcd.rpc<string[]>('getrawmempool')).length > 0, {
      timeoutMs: 30_000,
      what: 'the sweep relayed to btcd',
    });
    await mine(1);
    await waitFor(async () => (await ampBalance()).unconfirmed === 0n, { timeoutMs: 30_000, what: 'the sweep confirmed' });
    const got2 = (await ampBalance()).confirmed - before2.confirmed;
    assert.ok(got2 > toLocal - 2_000n && got2 < toLocal, `swept ${got2} sat of a ${toLocal} sat to_local`);
    // by now lnd has resolved its side too and files the channel as closed by us
    const closed = await waitFor(
      async () => {
        const r =
          (await lnd.cli<{ channels?: { channel_point: string; close_type: string; closing_tx_hash: string }[] }>(['closedchannels']))
            .channels ?? [];
        return r.find((x) => x.channel_point === mine2);
      },
      { timeoutMs: 60_000, what: 'lnd listing our force close among its closed channels' },
    );
    assert.equal(closed.close_type, 'REMOTE_FORCE_CLOSE');
    assert.equal(closed.closing_tx_hash, txid);
  },
  { timeoutMs: 600_000 },
);
