/**
 * Force closes with an HTLC in flight against a real lnd, each resolved on btcd's chain (BOLT 5). ampnode runs in this
 * process through the package entry (createNode, following btcd over P2P, its control API on loopback for the force
 * close), since two of the cases need a hold invoice of ampnode's. Each case opens its own anchors channel from ampnode
 * to lnd (with a push, so either side can pay), the only open channel between the two while it runs.
 *
 *   1. ampnode pays lnd's hold invoice and force-closes with the HTLC held at lnd: after the HTLC's cltv_expiry ampnode's
 *      HTLC-timeout transaction confirms and, to_self_delay later, its output is swept; ampnode's payment fails, lnd's
 *      invoice is never settled, and ampnode's wallet gets its balance and the HTLC back less the fees.
 *   2. lnd pays ampnode's hold invoice, ampnode force-closes and then settles with the preimage: its HTLC-success
 *      transaction confirms, lnd's payment succeeds with the preimage read from the chain.
 *   3. lnd force-closes (a) with ampnode's HTLC held at lnd: ampnode takes it back from lnd's commitment after the
 *      expiry; (b) with lnd's HTLC held at ampnode: ampnode claims it from lnd's commitment with the preimage and lnd's
 *      payment succeeds.
 *   Both sides' balances are checked: ampnode's wallet, lnd's closed channel (settled balance, HTLC resolutions).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before } from 'node:test';
import pino from 'pino';
import { createLogger, createNode, type AmpNode, type BcoinChainBackend } from '../../node/index.js';
import { BUILD_TIMEOUT_MS, Interop, embeddedChainSteps, ensureBinaries, freePort, waitFor, type Btcd, type Lnd } from './harness.js';
import { btcdLndAndChain, type LndChannel } from './lnd-pair.js';

const h = new Interop('force-close-htlcs');
let btcd: Btcd;
let lnd: Lnd;
let chain: BcoinChainBackend;
let amp: AmpNode;
let apiUrl = '';
const token = randomBytes(32).toString('hex');
const HTLC_SAT = 50_000n;
/** The final CLTV delta of every invoice here: lnd's smallest. */
const FINAL_CLTV = 18;

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

interface Sweep {
  point: string;
  txid: string;
  output: string;
  valueSat: bigint;
}
const sweeps: Sweep[] = [];

interface PendingHtlc {
  incoming: boolean;
  amount: string;
  expiration_height: number;
  hash_lock: string;
}
type LndChan = LndChannel & { pending_htlcs?: PendingHtlc[] };

interface LndClosed {
  channel_point: string;
  close_type: string;
  closing_tx_hash: string;
  settled_balance: string;
  time_locked_balance: string;
  resolutions?: { resolution_type: string; outcome: string; amount_sat: string; sweep_txid: string }[];
}

const { synced, mine } = embeddedChainSteps(
  () => btcd,
  () => amp,
  () => [lnd],
);

async function inMempool(txid: string): Promise<void> {
  await waitFor(async () => (await btcd.rpc<string[]>('getrawmempool')).includes(txid), {
    timeoutMs: 30_000,
    what: `${txid} in btcd's mempool`,
  });
}

async function confirmed(txid: string): Promise<boolean> {
  const tx = await btcd.rpc<{ confirmations?: number }>('getrawtransaction', [txid, 1]);
  return (tx.confirmations ?? 0) >= 1;
}

async function lndChannel(point: string): Promise<LndChan | undefined> {
  return ((await lnd.cli<{ channels?: LndChan[] }>(['listchannels'])).channels ?? []).find((c) => c.channel_point === point);
}

/** ampnode's wallet: confirmed and unconfirmed together. */
function walletSat(): bigint {
  const b = amp.balances().onChain;
  return b.confirmedSat + b.unconfirmedSat;
}

/** The sweep of `output` ampnode broadcast for the channel `point`, once there is one; then it is in btcd's mempool. */
async function swept(point: string, output: string): Promise<Sweep> {
  const s = await waitFor(() => sweeps.find((x) => x.point === point && x.output === output), {
    timeoutMs: 60_000,
    what: `ampnode's ${output} sweep of ${point}`,
  });
  await inMempool(s.txid);
  return s;
}

async function api<T>(path: string, body: unknown): Promise<T> {
  const r = await fetch(`${apiUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = (await r.json()) as T;
  assert.equal(r.status, 200, JSON.stringify(j));
  return j;
}

/** ampnode opens an anchors channel to lnd, pushing lnd 150 000 sat; returns its point once usable both ways. */
async function openChannel(): Promise<{ point: string; channelId: string }> {
  const info = await amp.openChannel(lnd.nodeId, 400_000n, { pushMsat: 150_000_000n });
  const point = info.fundingOutpoint!;
  await inMempool(point.split(':')[0]!);
  await mine(1);
  await waitFor(async () => amp.channels().find((c) => c.fundingOutpoint === point)?.active === true && (await lndChannel(point))?.active, {
    timeoutMs: 60_000,
    what: `${point} active on both sides`,
  });
  const channelId = amp.channels().find((c) => c.fundingOutpoint === point)!.channelId;
  await waitFor(() => amp.routingChannels().some((c) => c.channelId === channelId && c.peerPolicy !== undefined), {
    timeoutMs: 30_000,
    what: "lnd's channel_update at ampnode",
  });
  await waitFor(
    async () =>
      ((await lnd.cli<{ edges?: { chan_point: string }[] }>(['describegraph', '--include_unannounced'])).edges ?? []).some(
        (e) => e.chan_point === point,
      ),
    { timeoutMs: 30_000, what: "the channel in lnd's graph" },
  );
  return { point, channelId };
}

/** The one HTLC on the channel at lnd, once it is locked in. */
async function lndHtlc(point: string): Promise<PendingHtlc> {
  return waitFor(async () => ((await lndChannel(point))?.pending_htlcs ?? [])[0], {
    timeoutMs: 60_000,
    what: `the HTLC on ${point} at lnd`,
  });
}

/** A hold invoice of lnd's: it accepts the HTLC and keeps it until settled or cancelled. */
async function lndHoldInvoice(): Promise<{ hash: string; payReq: string }> {
  const hash = sha256(randomBytes(32)).toString('hex');
  const r = await lnd.cli<{ payment_request: string }>([
    'addholdinvoice',
    hash,
    '--amt',
    String(HTLC_SAT),
    '--cltv_expiry_delta',
    String(FINAL_CLTV),
  ]);
  return { hash, payReq: r.payment_request };
}

/** A hold invoice of ampnode's, lnd paying it in the background; resolves once ampnode holds the HTLC. */
async function lndPaysHoldInvoice(): Promise<{ preimage: Buffer; paying: Promise<{ status: string; payment_preimage: string }> }> {
  const preimage = randomBytes(32);
  const paymentHash = sha256(preimage);
  const { paymentRequest } = await amp.addInvoice({ paymentHash, amountMsat: HTLC_SAT * 1000n, minFinalCltvExpiryDelta: FINAL_CLTV });
  const paying = lnd.cli<{ status: string; payment_preimage: string }>(
    ['payinvoice', '--json', '--force', '--pay_req', paymentRequest, '--timeout', '60s'],
    300_000,
  );
  paying.catch(() => undefined); // awaited by the caller
  await waitFor(async () => (await amp.lookupInvoiceByHash(paymentHash))?.state === 'accepted', {
    timeoutMs: 60_000,
    what: 'the HTLC held at ampnode',
  });
  return { preimage, paying };
}

/** lnd's record of the closed channel, once every output of it is resolved. */
async function lndClosed(point: string): Promise<LndClosed> {
  return waitFor(
    async () => ((await lnd.cli<{ channels?: LndClosed[] }>(['closedchannels'])).channels ?? []).find((c) => c.channel_point === point),
    { timeoutMs: 90_000, what: `lnd listing ${point} as closed` },
  );
}

/** What lnd's closed channel says of one of its outputs (the HTLC, its own balance). */
function resolution(c: LndClosed, type: string): { outcome: string; amount_sat: string } | undefined {
  const r = (c.resolutions ?? []).find((x) => x.resolution_type === type);
  return r === undefined ? undefined : { outcome: r.outcome, amount_sat: r.amount_sat };
}

/** Mines up to the height at which a transaction locked to `height` may be mined in the next block. */
/** ampnode force-closes `channelId` through its API; returns its commitment's txid once that confirmed. */
async function ampForceCloses(channelId: string): Promise<string> {
  const { txid } = await api<{ txid: string }>('/v1/channels/forceclose', { channelId });
  await inMempool(txid);
  await mine(1);
  assert.ok(await confirmed(txid), 'our commitment confirmed');
  return txid;
}

/** lnd force-closes the channel at `point`; once its commitment confirms, ampnode sweeps its to_remote output. */
async function lndForceCloses(point: string): Promise<{ fc: { closing_txid: string }; toRemote: Sweep }> {
  const [fundingTxid, index] = point.split(':') as [string, string];
  const fc = await lnd.cli<{ closing_txid: string }>(
    ['closechannel', '--force', '--funding_txid', fundingTxid, '--output_index', index],
    60_000,
  );
  await inMempool(fc.closing_txid);
  await mine(1);
  return { fc, toRemote: await swept(point, 'to_remote') };
}

/** Our claim of the HTLC after its expiry (locked to it: none two blocks before), confirmed. */
async function timedOutAtExpiry(point: string, expiry: number): Promise<Sweep> {
  await mineTo(expiry - 2);
  assert.equal(
    sweeps.find((s) => s.point === point && s.output === 'htlc_timeout'),
    undefined,
    'no HTLC timeout before the expiry',
  );
  await mineTo(expiry);
  const timeout = await swept(point, 'htlc_timeout');
  await mine(1);
  assert.ok(await confirmed(timeout.txid), 'the HTLC taken back on chain');
  return timeout;
}

/**
 * After the second-stage transaction's to_self_delay: its output and our to_local are swept and confirmed, and the
 * wallet holds our balance plus the HTLC (less fees) over what it had `before` the close.
 */
async function homeAfterDelay(point: string, localBalanceMsat: bigint, before: bigint): Promise<void> {
  const delayed = await swept(point, 'htlc_delayed');
  await mine(1);
  assert.ok(await confirmed(delayed.txid));
  const toLocal = sweeps.find((s) => s.point === point && s.output === 'to_local');
  assert.ok(toLocal !== undefined, 'to_local swept too');
  await waitFor(async () => confirmed(toLocal.txid), { timeoutMs: 10_000, what: 'the to_local sweep confirmed' });
  assert.ok(delayed.valueSat > HTLC_SAT - 3_000n && delayed.valueSat < HTLC_SAT, `the HTLC's output swept: ${delayed.valueSat} sat`);
  await waitFor(() => amp.balances().onChain.unconfirmedSat === 0n, { timeoutMs: 30_000, what: 'ampnode wallet settled' });
  const got = walletSat() - before;
  const expected = localBalanceMsat / 1000n + HTLC_SAT;
  assert.ok(got > expected - 20_000n && got < expected, `ampnode got ${got} sat of ${expected}`);
}

async function mineTo(height: number): Promise<void> {
  const now = await btcd.height();
  if (now < height) await mine(height - now);
}

before(
  async () => {
    await ensureBinaries({ timeoutMs: BUILD_TIMEOUT_MS });
    ({ btcd, lnd, chain } = await btcdLndAndChain(h));
    const port = await freePort();
    amp = await createNode({
      datadir: h.subdir('amp'),
      chain,
      logger: createLogger({ level: 'debug', destination: pino.destination({ dest: join(h.dir, 'amp.log'), sync: true }) }),
      policy: { minimumDepth: 1 },
      api: { listen: `127.0.0.1:${port}`, token },
    });
    apiUrl = `http://127.0.0.1:${port}`;
    h.onClose(() => amp.stop());
    amp.manager.on('sweep_broadcast', (c, txid, output, valueSat) =>
      sweeps.push({ point: c.fundingOutpoint ?? '', txid, output, valueSat }),
    );
    await synced();
    // several coins: each open takes one, and the second-stage transactions of anchors channels take fee inputs
    for (let i = 0; i < 6; i++) await btcd.sendToAddress(await amp.newAddress(), 50_000_000);
    await mine(1);
    await waitFor(() => amp.balances().onChain.confirmedSat === 300_000_000n, { timeoutMs: 30_000, what: 'ampnode funded' });
    await amp.connect(`${lnd.nodeId}@${lnd.p2pHost}`);
    await waitFor(async () => (await lnd.peer(amp.nodeId)) !== undefined, { timeoutMs: 30_000, what: 'lnd connected to ampnode' });
  },
  { timeout: BUILD_TIMEOUT_MS + 300_000 },
);
after(() => h.close());

h.test(
  'ampnode force-closes with its HTLC held at lnd: its HTLC-timeout transaction takes the HTLC back after the expiry; the payment fails',
  async () => {
    const { point, channelId } = await openChannel();
    const inv = await lndHoldInvoice();
    const paying = amp.payInvoice(inv.payReq);
    paying.catch(() => undefined);
    const htlc = await lndHtlc(point);
    assert.equal(htlc.incoming, true);
    assert.equal((await lnd.cli<{ state: string }>(['lookupinvoice', inv.hash])).state, 'ACCEPTED');
    const ours = amp.channels().find((c) => c.fundingOutpoint === point)!;
    const before = walletSat();
    const txid = await ampForceCloses(channelId);
    // the HTLC-timeout transaction is locked to the HTLC's cltv_expiry
    await timedOutAtExpiry(point, htlc.expiration_height);
    const paid = await paying;
    assert.equal(paid.status, 'failed');
    // its output waits to_self_delay (lnd's defaultremotedelay) before it reaches the wallet
    await mine(ours.toSelfDelay - 1);
    await homeAfterDelay(point, ours.localBalanceMsat, before);
    const closed = await lndClosed(point);
    assert.equal(closed.close_type, 'REMOTE_FORCE_CLOSE');
    assert.equal(closed.closing_tx_hash, txid);
    assert.equal(BigInt(closed.settled_balance), ours.remoteBalanceMsat / 1000n, 'lnd got its balance and not the HTLC');
    assert.notEqual((await lnd.cli<{ state: string }>(['lookupinvoice', inv.hash])).state, 'SETTLED');
    // lnd, without the preimage, gives the HTLC up once ampnode has taken it back; its own balance it swept
    assert.deepEqual(resolution(closed, 'INCOMING_HTLC'), { outcome: 'ABANDONED', amount_sat: String(HTLC_SAT) });
    assert.deepEqual(resolution(closed, 'COMMIT'), { outcome: 'CLAIMED', amount_sat: closed.settled_balance });
  },
  { timeoutMs: 240_000 },
);

h.test(
  "ampnode force-closes with lnd's HTLC held at it, then settles: its HTLC-success transaction claims it; lnd's payment succeeds",
  async () => {
    const { point, channelId } = await openChannel();
    const { preimage, paying } = await lndPaysHoldInvoice();
    const htlc = await lndHtlc(point);
    assert.equal(htlc.incoming, false);
    const ours = amp.channels().find((c) => c.fundingOutpoint === point)!;
    const before = walletSat();
    const txid = await ampForceCloses(channelId);
    assert.ok((await btcd.height()) < htlc.expiration_height - 1, 'well before the expiry');
    await amp.invoices.settleHold(preimage);
    const success = await swept(point, 'htlc_success');
    await mine(1);
    assert.ok(await confirmed(success.txid), 'the HTLC-success transaction confirmed');
    const paid = await paying;
    assert.equal(paid.status, 'SUCCEEDED');
    assert.equal(paid.payment_preimage, preimage.toString('hex'), 'lnd read the preimage from the chain');
    assert.equal((await amp.lookupInvoiceByHash(sha256(preimage)))?.state, 'settled');
    await mineTo((await btcd.height()) + ours.toSelfDelay - 1);
    await homeAfterDelay(point, ours.localBalanceMsat, before);
    const closed = await lndClosed(point);
    assert.equal(closed.close_type, 'REMOTE_FORCE_CLOSE');
    assert.equal(closed.closing_tx_hash, txid);
    assert.equal(BigInt(closed.settled_balance), ours.remoteBalanceMsat / 1000n, 'lnd paid the HTLC (out of its balance already)');
    assert.equal(resolution(closed, 'OUTGOING_HTLC')?.outcome, 'CLAIMED');
    assert.deepEqual(resolution(closed, 'COMMIT'), { outcome: 'CLAIMED', amount_sat: closed.settled_balance });
  },
  { timeoutMs: 240_000 },
);

h.test(
  "lnd force-closes with ampnode's HTLC held at lnd: ampnode takes it back from lnd's commitment after the expiry",
  async () => {
    const { point } = await openChannel();
    const inv = await lndHoldInvoice();
    const paying = amp.payInvoice(inv.payReq);
    paying.catch(() => undefined);
    const htlc = await lndHtlc(point);
    assert.equal(htlc.incoming, true);
    const ours = amp.channels().find((c) => c.fundingOutpoint === point)!;
    const before = walletSat();
    const { fc, toRemote } = await lndForceCloses(point);
    await mine(1);
    assert.ok(await confirmed(toRemote.txid), 'our to_remote swept at once (anchors: one block)');
    const timeout = await timedOutAtExpiry(point, htlc.expiration_height);
    const paid = await paying;
    assert.equal(paid.status, 'failed');
    assert.ok(timeout.valueSat > HTLC_SAT - 3_000n && timeout.valueSat < HTLC_SAT, `HTLC back: ${timeout.valueSat} sat`);
    await waitFor(() => amp.balances().onChain.unconfirmedSat === 0n, { timeoutMs: 30_000, what: 'ampnode wallet settled' });
    const got = walletSat() - before;
    // lnd's commitment: our to_remote is all our balance (lnd's commitment fee and anchors come out of the opener, us)
    const expected = ours.localBalanceMsat / 1000n + HTLC_SAT;
    assert.ok(got > expected - 20_000n && got < expected, `ampnode got ${got} sat of ${expected}`);
    // lnd's to_local waits the CSV delay ampnode asks of it (144): lnd still lists the close as pending, its balance there
    const pending = await lnd.cli<{ pending_force_closing_channels?: { channel: { channel_point: string } }[] }>(['pendingchannels']);
    assert.ok(
      pending.pending_force_closing_channels?.some((c) => c.channel.channel_point === point),
      'lnd waiting for its to_local delay',
    );
    const commit = await btcd.rpc<{ vout: { value: number }[] }>('getrawtransaction', [fc.closing_txid, 1]);
    const outs = commit.vout.map((o) => BigInt(Math.round(o.value * 1e8)));
    assert.ok(outs.includes(ours.remoteBalanceMsat / 1000n), `lnd's to_local in ${JSON.stringify(outs.map(String))}`);
    assert.notEqual((await lnd.cli<{ state: string }>(['lookupinvoice', inv.hash])).state, 'SETTLED');
  },
  { timeoutMs: 240_000 },
);

h.test(
  "lnd force-closes with its HTLC held at ampnode: ampnode claims it from lnd's commitment with the preimage; lnd's payment succeeds",
  async () => {
    const { point } = await openChannel();
    const { preimage, paying } = await lndPaysHoldInvoice();
    const htlc = await lndHtlc(point);
    assert.equal(htlc.incoming, false);
    const ours = amp.channels().find((c) => c.fundingOutpoint === point)!;
    const before = walletSat();
    const { fc, toRemote } = await lndForceCloses(point);
    await amp.invoices.settleHold(preimage);
    const success = await swept(point, 'htlc_success');
    await mine(1);
    assert.ok(await confirmed(toRemote.txid), 'our to_remote swept');
    assert.ok(await confirmed(success.txid), 'the HTLC claimed from their commitment with the preimage');
    const paid = await paying;
    assert.equal(paid.status, 'SUCCEEDED');
    assert.equal(paid.payment_preimage, preimage.toString('hex'), 'lnd read the preimage from the chain');
    assert.ok(success.valueSat > HTLC_SAT - 3_000n && success.valueSat < HTLC_SAT, `HTLC claimed: ${success.valueSat} sat`);
    await waitFor(() => amp.balances().onChain.unconfirmedSat === 0n, { timeoutMs: 30_000, what: 'ampnode wallet settled' });
    const got = walletSat() - before;
    const expected = ours.localBalanceMsat / 1000n + HTLC_SAT;
    assert.ok(got > expected - 20_000n && got < expected, `ampnode got ${got} sat of ${expected}`);
    // lnd's to_local waits its CSV delay (ampnode's policy asks 144 of it): settled once the delay and its sweep are done
    const pending = await lnd.cli<{ pending_force_closing_channels?: { channel: { channel_point: string }; limbo_balance: string }[] }>([
      'pendingchannels',
    ]);
    const mineLeft = pending.pending_force_closing_channels?.find((c) => c.channel.channel_point === point);
    assert.ok(mineLeft !== undefined, 'lnd waiting for its to_local delay');
    const commit = await btcd.rpc<{ vout: { value: number }[] }>('getrawtransaction', [fc.closing_txid, 1]);
    const outs = commit.vout.map((o) => BigInt(Math.round(o.value * 1e8)));
    assert.ok(outs.includes(ours.remoteBalanceMsat / 1000n - HTLC_SAT), `lnd's to_local in ${JSON.stringify(outs.map(String))}`);
  },
  { timeoutMs: 240_000 },
);
