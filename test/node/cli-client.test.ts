/**
 * `ampnode cli`: the client verbs against an in-process daemon (createNode with the local API on a data
 * directory), JSON out; failures are one line and exit code 1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AmpNode } from '../../node/builder.js';
import { runCli } from '../../node/cli-client.js';
import type { PeerManager } from '../../node/peer-manager.js';
import { apiNode } from './embedded-fixture.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err };
}

describe('ampnode cli', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ampnode-cli-'));
  let node: PeerManager;
  let services: AmpNode;
  let api: string;

  before(async () => {
    services = (await apiNode(dir)).amp;
    node = services.node;
    api = services.api!.address!;
  });
  after(async () => {
    await node?.stop().catch(() => undefined);
    await services?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  const base = (): string[] => ['--datadir', dir, '--api', api];

  it(
    'getinfo, addinvoice --amp, decodepayreq, lookupinvoice --payment_addr, listinvoices: JSON from the daemon',
    { timeout: 60_000 },
    async () => {
      const info = await cli([...base(), 'getinfo']);
      assert.equal(info.code, 0, info.err.join('\n'));
      assert.equal(JSON.parse(info.out).nodeId, node.nodeIdHex);
      const added = await cli([...base(), 'addinvoice', '--amp', '--memo', 'tips']);
      assert.equal(added.code, 0, added.err.join('\n'));
      const inv = JSON.parse(added.out) as { paymentRequest: string; paymentAddr: string; kind: string };
      assert.equal(inv.kind, 'amp');
      const decoded = await cli([...base(), 'decodepayreq', inv.paymentRequest]);
      assert.equal(decoded.code, 0, decoded.err.join('\n'));
      const d = JSON.parse(decoded.out) as { description: string; payee: string; paymentSecret: string };
      assert.equal(d.description, 'tips');
      assert.equal(d.payee, node.nodeIdHex);
      assert.equal(d.paymentSecret, inv.paymentAddr);
      const looked = await cli([...base(), 'lookupinvoice', '--payment_addr', inv.paymentAddr]);
      assert.equal(looked.code, 0, looked.err.join('\n'));
      assert.equal(JSON.parse(looked.out).state, 'open');
      const listed = await cli([...base(), 'listinvoices']);
      assert.equal((JSON.parse(listed.out) as { invoices: unknown[] }).invoices.length, 1);
      const bal = await cli([...base(), 'channelbalance']);
      assert.deepEqual(JSON.parse(bal.out), { localBalanceMsat: '0', remoteBalanceMsat: '0', channels: 0 });
    },
  );

  it('wrong input, an unknown verb, no daemon, no token: one line, exit 1, no stack trace', async () => {
    const bad = await cli([...base(), 'decodepayreq', 'lnbcrt1notaninvoice']);
    assert.equal(bad.code, 1);
    assert.equal(bad.err.length, 1);
    assert.match(bad.err[0]!, /^ampnode cli: ERR_BOLT11_/);
    const amt = await cli([...base(), 'addinvoice', '--amt', '12x']);
    assert.equal(amt.code, 1);
    assert.match(amt.err[0]!, /not an amount in sat/);
    const pay = await cli([...base(), 'sendpayment', '--dest', '02'.padEnd(66, '0'), '--amt', '1000']);
    assert.equal(pay.code, 1);
    assert.equal(pay.err.length, 1);
    assert.match(pay.err[0]!, /ERR_/);
    const unknown = await cli([...base(), 'frobnicate']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err.join(' '), /unknown command 'frobnicate'/);
    const down = await cli(['--datadir', dir, '--api', '127.0.0.1:1', 'getinfo']);
    assert.equal(down.code, 1);
    assert.match(down.err[0]!, /cannot reach the daemon at 127\.0\.0\.1:1/);
    const noToken = await cli(['--datadir', tmpdir(), '--api', api, 'getinfo']);
    assert.equal(noToken.code, 1);
    assert.match(noToken.err[0]!, /no api_token/);
    const nothing = await cli([...base(), 'updatechanpolicy']);
    assert.equal(nothing.code, 1);
    assert.match(nothing.err[0]!, /nothing to change/);
    const delta = await cli([...base(), 'updatechanpolicy', '--time_lock_delta', 'soon']);
    assert.match(delta.err[0]!, /--time_lock_delta "soon" is not a whole number/);
    const noChan = await cli([...base(), 'updatechanpolicy', '--chan_id', '00'.repeat(32), '--fee_rate_ppm', '5']);
    assert.equal(noChan.code, 1);
    assert.match(noChan.err[0]!, /^ampnode cli: ERR_UNKNOWN_CHANNEL/);
    const none = await cli([...base(), 'updatechanpolicy', '--fee_rate_ppm', '5']);
    assert.equal(none.code, 0, none.err.join('\n'));
    assert.deepEqual(JSON.parse(none.out), [], 'no open channel to change');
    for (const r of [bad, amt, pay, down, noToken, nothing, delta, noChan])
      assert.ok(!r.err.join('\n').includes('    at '), 'no stack trace');
  });
});
