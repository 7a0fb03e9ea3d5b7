/**
 * Two daemons in temporary datadirs, driven only through `ampcli` (child processes both): A on an embedded regtest
 * chain it serves over P2P (`--chain-listen`), B following it (`--chain p2p`). A opens a channel to B, B adds a
 * reusable AMP invoice, A pays it, B is restarted, A pays it again; B's lookups by payment_addr and set_id show the two
 * sets; A closes the channel cooperatively and both see it closed. Wrong input gets one line and exit code 1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Daemon, freePort, ROOT, tempDir } from './daemon-process.js';

const T = { timeout: 170_000 };

interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

/** One `ampcli` invocation, as a user types it. */
function ampcli(datadir: string, api: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'node', 'ampcli.ts'), '--datadir', datadir, '--api', api, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

interface Side {
  dir: string;
  api: string;
  args: string[];
  daemon: Daemon;
  nodeId: string;
  listen: string;
}

/** ampcli's JSON, or a failure with what it printed. */
async function json<T = any>(s: Side, args: string[]): Promise<T> {
  const r = await ampcli(s.dir, s.api, args);
  assert.equal(r.code, 0, `ampcli ${args.join(' ')}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

async function startSide(dir: string, args: string[]): Promise<Side> {
  const daemon = Daemon.spawn(['start', '--datadir', dir, ...args]);
  const l = await daemon.listening();
  const api = args[args.indexOf('--api') + 1]!;
  return { dir, api, args, daemon, nodeId: l.nodeId, listen: l.address };
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const active = (s: Side) =>
  until(`an active channel on ${s.dir}`, async () => {
    const c = await json<{ active: boolean; channelId: string; localBalanceMsat: string }[]>(s, ['listchannels']);
    return c.length === 1 && c[0]!.active ? c[0]! : undefined;
  });

describe('two daemons driven through ampcli', () => {
  it('channel, a reusable AMP invoice paid twice around a restart of the payee, lookups by set_id, close', T, async () => {
    const [pa, pb, la, lb, chainPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const a = await startSide(tempDir(), [
      '--listen',
      `127.0.0.1:${la}`,
      '--api',
      `127.0.0.1:${pa}`,
      '--chain-listen',
      `127.0.0.1:${chainPort}`,
    ]);
    const bArgs = ['--listen', `127.0.0.1:${lb}`, '--api', `127.0.0.1:${pb}`, '--chain', 'p2p', '--chain-peer', `127.0.0.1:${chainPort}`];
    let b = await startSide(tempDir(), bArgs);
    try {
      await json(a, ['generate', '432']); // segwit activates at 432 on regtest (BIP9); the first coinbases are mature by then
      assert.equal((await json(b, ['getinfo'])).chain, 'p2p');
      await until("B at A's height", async () => ((await json(b, ['getinfo'])).blockHeight === 432 ? true : undefined));
      await until('B synced to the chain it follows', async () => ((await json(b, ['getinfo'])).syncedToChain === true ? true : undefined));
      await json(a, ['connect', `${b.nodeId}@${b.listen}`]);
      const opened = await json(a, ['openchannel', b.nodeId, '500000']);
      assert.equal(opened.capacitySat, '500000');
      const pending = await json<{ channelId: string }[]>(a, ['pendingchannels']);
      assert.deepEqual(
        pending.map((c) => c.channelId),
        [opened.channelId],
      );
      await json(a, ['generate', '6']);
      await active(a);
      await active(b);

      const inv = await json(b, ['addinvoice', '--amp']);
      assert.equal(inv.kind, 'amp');
      const pay1 = await json(a, ['payinvoice', inv.paymentRequest, '--amt', '30000', '--max_shard_size_sat', '10000']);
      assert.equal(pay1.status, 'succeeded', JSON.stringify(pay1));
      assert.ok(pay1.attempts.filter((x: { status: string }) => x.status === 'settled').length >= 3, 'paid in three shards or more');

      // the payee restarts between the two payments; A redials it and the channel comes back
      assert.equal(await b.daemon.stop(), 0);
      b = await startSide(b.dir, bArgs);
      await active(b);
      await active(a);
      const pay2 = await json(a, ['payinvoice', inv.paymentRequest, '--amt', '20000']);
      assert.equal(pay2.status, 'succeeded', JSON.stringify(pay2));
      assert.notEqual(pay2.setId, pay1.setId);

      // B's forwarding policy on the channel, changed through the CLI, as listchannels then shows it
      const policy = await json<{ channelId: string; policy: { baseFeeMsat: string; cltvExpiryDelta: number } }[]>(b, [
        'updatechanpolicy',
        '--chan_id',
        opened.channelId,
        '--base_fee_msat',
        '2500',
        '--time_lock_delta',
        '50',
      ]);
      assert.deepEqual(
        policy.map((c) => [c.channelId, c.policy.baseFeeMsat, c.policy.cltvExpiryDelta]),
        [[opened.channelId, '2500', 50]],
      );
      const listed = await json<{ policy: { baseFeeMsat: string } }[]>(b, ['listchannels']);
      assert.equal(listed[0]!.policy.baseFeeMsat, '2500');

      const looked = await json(b, ['lookupinvoice', '--payment_addr', inv.paymentAddr]);
      assert.equal(looked.state, 'open', 'a reusable AMP invoice stays open');
      assert.equal(looked.settledSets, 2);
      assert.equal(looked.amountPaidMsat, '50000000');
      for (const [p, msat] of [
        [pay1, '30000000'],
        [pay2, '20000000'],
      ] as const) {
        const set = await json(b, ['lookupinvoice', '--set_id', p.setId]);
        assert.equal(set.setId, p.setId);
        assert.equal(set.state, 'settled');
        assert.equal(set.amountPaidMsat, msat);
        assert.equal(set.paymentAddr, inv.paymentAddr);
        assert.equal(
          set.htlcs.reduce((t: bigint, h: { amountMsat: string }) => t + BigInt(h.amountMsat), 0n),
          BigInt(msat),
          'the set holds its own HTLCs only',
        );
      }
      const paid = (await json<{ payments: { status: string }[] }>(a, ['listpayments'])).payments;
      assert.deepEqual(
        paid.map((x) => x.status),
        ['succeeded', 'succeeded'],
      );
      assert.equal((await active(b)).localBalanceMsat, '50000000');

      // close cooperatively; both sides see it gone once the closing transaction confirms
      await json(a, ['closechannel', opened.channelId]);
      await until('the channel closed on both sides and the closing transaction confirmed', async () => {
        await json(a, ['generate', '1']);
        const [ca, cb] = await Promise.all([
          json<{ state: string; closingTxid?: string }[]>(a, ['listchannels']),
          json<{ state: string; closingTxid?: string }[]>(b, ['listchannels']),
        ]);
        const bal = await json<{ confirmedSat: string }>(b, ['walletbalance']);
        const closed = ca[0]?.state === 'closed' && cb[0]?.state === 'closed' && ca[0].closingTxid === cb[0].closingTxid;
        return closed && BigInt(bal.confirmedSat) > 0n ? true : undefined;
      });
      assert.equal(
        BigInt((await json<{ confirmedSat: string }>(b, ['walletbalance'])).confirmedSat),
        50_000n,
        "B's 50 000 sat in its wallet",
      );

      // wrong input: one line on stderr, exit 1, no stack trace
      for (const args of [['connect', 'nope@127.0.0.1:1'], ['payinvoice', 'lnbcrt1garbage'], ['frobnicate']]) {
        const r = await ampcli(a.dir, a.api, args);
        assert.equal(r.code, 1, args.join(' '));
        assert.equal(r.err.trim().split('\n').length, 1, r.err);
        assert.doesNotMatch(r.err, /\n\s+at /);
      }
    } finally {
      await b.daemon.stop();
      await a.daemon.stop();
    }
  });
});
