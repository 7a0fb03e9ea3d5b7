/**
 * The node as the daemon runs it and its local JSON API, in process: store,
 * embedded chain and wallet on disk under a data directory, the control API
 * on loopback. Mining through the API funds the wallet; a restart from the
 * same directory finds the chain, the wallet and its coins again; bad
 * requests get typed errors with 4xx statuses.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, type AmpNode } from '../../node/builder.js';
import { createLogger } from '../../node/log.js';
import type { PeerManager } from '../../node/peer-manager.js';
import { readApiToken } from '../../node/datadir.js';

const T = { timeout: 60_000 };

interface Running {
  node: PeerManager;
  services: AmpNode;
  apiPort: number;
  token: string;
}

async function start(datadir: string): Promise<Running> {
  const log = createLogger({ level: 'silent' });
  const services = await createNode({
    datadir,
    chain: { mode: 'embedded' },
    logger: log,
    pingIntervalMs: 0,
    api: { listen: '127.0.0.1:0' },
  });
  const node = services.node;
  const address = services.api!.address!;
  return { node, services, apiPort: Number(address.split(':').pop()), token: readApiToken(datadir) };
}

async function stop(r: Running): Promise<void> {
  await r.node.stop();
  await r.services.stop();
}

async function call(r: Running, method: string, path: string, body?: string): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${r.token}` };
  if (method === 'POST') headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${r.apiPort}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: res.status, json: await res.json() };
}

describe('the node with its local API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ampnode-api-'));
  let r: Running;

  before(async () => {
    r = await start(dir);
  });
  after(async () => {
    if (r !== undefined) await stop(r).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports the node and its chain; mining to the wallet funds it', T, async () => {
    const info = await call(r, 'GET', '/v1/info');
    assert.equal(info.status, 200);
    assert.equal(info.json.nodeId, r.node.nodeIdHex);
    assert.equal(info.json.chain, 'embedded');
    assert.equal(info.json.blockHeight, 0);
    assert.equal(info.json.syncedToChain, true, 'an embedded chain of its own is always caught up');
    const gen = await call(r, 'POST', '/v1/chain/generate', JSON.stringify({ blocks: 101 }));
    assert.equal(gen.status, 200);
    assert.equal(gen.json.height, 101);
    assert.equal(gen.json.blocks.length, 101);
    const bal = await call(r, 'GET', '/v1/wallet/balance');
    assert.equal(bal.status, 200);
    // 101 coinbases of 50 BTC (the regtest subsidy halves only at 150); the oldest have matured
    assert.equal(BigInt(bal.json.confirmedSat) + BigInt(bal.json.immatureSat), 101n * 50n * 100_000_000n);
    assert.ok(BigInt(bal.json.confirmedSat) >= 50n * 100_000_000n);
    const addr = await call(r, 'POST', '/v1/wallet/newaddress');
    assert.match(addr.json.address, /^bcrt1q/);
    assert.deepEqual((await call(r, 'GET', '/v1/channels')).json, []);
    assert.deepEqual((await call(r, 'GET', '/v1/peers')).json, []);
  });

  it('answers bad requests with typed errors', T, async () => {
    const notFound = await call(r, 'GET', '/v1/nothing');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.json.error.code, 'ERR_API_NOT_FOUND');
    const badJson = await call(r, 'POST', '/v1/channels/open', '{not json');
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json.error.code, 'ERR_API_BAD_REQUEST');
    const badId = await call(r, 'POST', '/v1/channels/open', JSON.stringify({ nodeId: '02abcd', fundingSat: '100000' }));
    assert.equal(badId.status, 400);
    const badAmount = await call(r, 'POST', '/v1/channels/open', JSON.stringify({ nodeId: `02${'11'.repeat(32)}`, fundingSat: '-5' }));
    assert.equal(badAmount.status, 400);
    const badType = await call(
      r,
      'POST',
      '/v1/channels/open',
      JSON.stringify({ nodeId: `02${'11'.repeat(32)}`, fundingSat: '100000', channelType: 'legacy' }),
    );
    assert.equal(badType.status, 400);
    const notConnected = await call(
      r,
      'POST',
      '/v1/channels/open',
      JSON.stringify({ nodeId: r.node.nodeIdHex.replace(/^0[23]/, (p) => (p === '02' ? '03' : '02')), fundingSat: '100000' }),
    );
    assert.equal(notConnected.status, 409);
    assert.equal(notConnected.json.error.code, 'ERR_NOT_CONNECTED');
    const unknown = await call(r, 'POST', '/v1/channels/close', JSON.stringify({ channelId: '00'.repeat(32) }));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, 'ERR_UNKNOWN_CHANNEL');
    const unknownForce = await call(r, 'POST', '/v1/channels/forceclose', JSON.stringify({ channelId: '00'.repeat(32) }));
    assert.equal(unknownForce.status, 404);
    assert.equal(unknownForce.json.error.code, 'ERR_UNKNOWN_CHANNEL');
    const noId = await call(r, 'POST', '/v1/channels/forceclose', JSON.stringify({}));
    assert.equal(noId.status, 400);
    const unknownFee = await call(r, 'POST', '/v1/channels/updatefee', JSON.stringify({ channelId: '00'.repeat(32), feeratePerKw: 1000 }));
    assert.equal(unknownFee.status, 404);
    assert.equal(unknownFee.json.error.code, 'ERR_UNKNOWN_CHANNEL');
    const badFee = await call(r, 'POST', '/v1/channels/updatefee', JSON.stringify({ channelId: '00'.repeat(32), feeratePerKw: 'fast' }));
    assert.equal(badFee.status, 400);
  });

  it('a restart from the data directory finds the chain and the wallet again', T, async () => {
    const id = r.node.nodeIdHex;
    const before = (await call(r, 'GET', '/v1/wallet/balance')).json;
    await stop(r);
    r = await start(dir);
    assert.equal(r.node.nodeIdHex, id);
    const info = (await call(r, 'GET', '/v1/info')).json;
    assert.equal(info.blockHeight, 101);
    assert.equal(info.walletHeight, 101);
    assert.equal(info.syncedToChain, true);
    assert.deepEqual((await call(r, 'GET', '/v1/wallet/balance')).json, before);
  });
});
