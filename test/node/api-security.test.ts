/**
 * The local API's gate and its error statuses, in process on loopback: the
 * bearer token (missing, wrong, another node's → 401, and nothing done),
 * Host and Origin (→ 403), Content-Type on POST (→ 415), bodies over 64 KiB
 * (→ 413 that the client actually reads), HEAD and wrong methods (→ 405
 * with Allow), and user mistakes as 4xx with typed codes and short
 * messages instead of 500.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlApi, errorStatus, ERROR_STATUS } from '../../node/channels/api.js';
import type { AmpNode } from '../../node/builder.js';
import { loadOrCreateApiToken, readApiToken } from '../../node/datadir.js';
import { NodeError } from '../../node/errors.js';
import type { PeerManager } from '../../node/peer-manager.js';
import { WalletError } from '../../node/wallet/errors.js';
import { AmpnodeError, ArgumentError } from '../../wire/errors.js';
import { apiNode } from './embedded-fixture.js';

const T = { timeout: 90_000 };

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

interface Req {
  method?: string;
  path: string;
  /** Default: Host 127.0.0.1:PORT, the token, and application/json when there is a body. Null drops a header. */
  headers?: Record<string, string | null>;
  body?: string | Buffer;
  /** Send the body in pieces without a Content-Length (chunked). */
  chunked?: boolean;
  /** Send `Expect: 100-continue` and the body only once the server asks for it. */
  expectContinue?: boolean;
}

describe('local API: authentication, request checks, error statuses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ampnode-apisec-'));
  const otherDir = mkdtempSync(join(tmpdir(), 'ampnode-apisec-other-'));
  let node: PeerManager;
  let services: AmpNode;
  let port: number;
  let token: string;

  function call(r: Req): Promise<Reply> {
    const headers: Record<string, string> = { host: `127.0.0.1:${port}`, authorization: `Bearer ${token}` };
    if (r.body !== undefined || (r.method ?? 'GET') === 'POST') headers['content-type'] = 'application/json';
    if (r.body !== undefined && !r.chunked) headers['content-length'] = String(Buffer.byteLength(r.body));
    if (r.expectContinue) headers['expect'] = '100-continue';
    for (const [k, v] of Object.entries(r.headers ?? {})) {
      if (v === null) delete headers[k.toLowerCase()];
      else headers[k.toLowerCase()] = v;
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method: r.method ?? 'GET', path: r.path, headers, setHost: false, timeout: 20_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text === '' ? undefined : JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      if (r.expectContinue) {
        req.on('continue', () => req.end(r.body));
        req.flushHeaders();
        return;
      }
      if (r.chunked && r.body !== undefined) {
        const b = Buffer.from(r.body);
        for (let i = 0; i < b.length; i += 16 * 1024) req.write(b.subarray(i, i + 16 * 1024));
        req.end();
        return;
      }
      req.end(r.body);
    });
  }

  const post = (path: string, body: unknown, headers: Record<string, string | null> = {}): Promise<Reply> =>
    call({ method: 'POST', path, body: JSON.stringify(body), headers });
  const balance = async (): Promise<unknown> => {
    const r = await call({ path: '/v1/wallet/balance' });
    assert.equal(r.status, 200, r.text);
    return r.json;
  };

  let ownAddress: string;

  before(async () => {
    services = (await apiNode(dir)).amp;
    node = services.node;
    port = Number(services.api!.address!.split(':').pop());
    token = readApiToken(dir);
    ownAddress = (await post('/v1/wallet/newaddress', {})).json.address;
  });
  after(async () => {
    await node?.stop().catch(() => undefined);
    await services?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    rmSync(otherDir, { recursive: true, force: true });
  });

  it('creates DATADIR/api_token: 32 random bytes as hex, mode 0600', () => {
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal(statSync(join(dir, 'api_token')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, 'api_token'), 'utf8').trim(), token);
    assert.throws(
      () => readApiToken(otherDir),
      (e: AmpnodeError) => e.code === 'ERR_API_TOKEN',
    );
    assert.throws(() => new ControlApi(services, { token: 'short' }), ArgumentError);
  });

  it("without the token, with a wrong one or with another node's: 401, and nothing is sent", T, async () => {
    await post('/v1/chain/generate', { blocks: 440 }); // segwit active (432) and coins mature, so that a send could succeed
    const before = await balance();
    const otherToken = loadOrCreateApiToken(otherDir).token;
    assert.notEqual(otherToken, token);
    const send = { address: ownAddress, amountSat: '100000000' };
    const attempts: Record<string, string | null>[] = [
      { authorization: null },
      { authorization: `Bearer ${randomBytes(32).toString('hex')}` },
      { authorization: `Bearer ${otherToken}` },
      { authorization: `Bearer ${token.slice(0, 63)}` },
      { authorization: `Bearer ${token}0` },
      { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` },
      { authorization: token },
      { authorization: 'Bearer ' },
    ];
    for (const headers of attempts) {
      const r = await post('/v1/wallet/send', send, headers);
      assert.equal(r.status, 401, `${JSON.stringify(headers)}: ${r.text}`);
      assert.equal(r.json.error.code, 'ERR_API_UNAUTHORIZED');
      assert.match(String(r.headers['www-authenticate']), /^Bearer/);
      assert.ok(!r.text.includes(token), 'the token is never echoed');
    }
    const get = await call({ path: '/v1/info', headers: { authorization: null } });
    assert.equal(get.status, 401);
    assert.deepEqual(await balance(), before, 'no transaction was made');
    // the same request with the token goes through (the refusals above were the gate, not the request)
    const ok = await post('/v1/wallet/send', send, { authorization: `bearer ${token}` });
    assert.equal(ok.status, 200, ok.text);
    assert.match(ok.json.txid, /^[0-9a-f]{64}$/);
    assert.notDeepEqual(await balance(), before);
  });

  it('a Host that is not the bound address: 403; localhost:PORT is accepted', T, async () => {
    const before = await balance();
    for (const host of [
      'evil.example',
      `evil.example:${port}`,
      `127.0.0.1:${port + 1}`,
      `127.0.0.2:${port}`,
      `localhost.evil.example:${port}`,
      '127.0.0.1',
    ]) {
      const r = await post('/v1/wallet/send', { address: ownAddress, amountSat: '1000000' }, { host });
      assert.equal(r.status, 403, `${host}: ${r.text}`);
      assert.equal(r.json.error.code, 'ERR_API_FORBIDDEN');
    }
    assert.deepEqual(await balance(), before);
    assert.equal((await call({ path: '/v1/info', headers: { host: `localhost:${port}` } })).status, 200);
    assert.equal((await call({ path: '/v1/info', headers: { host: `LOCALHOST:${port}` } })).status, 200);
  });

  it('any Origin header: 403, token or not', T, async () => {
    const before = await balance();
    for (const origin of [`http://127.0.0.1:${port}`, 'http://evil.example', 'null', '']) {
      const r = await post('/v1/wallet/send', { address: ownAddress, amountSat: '1000000' }, { origin });
      assert.equal(r.status, 403, `${origin}: ${r.text}`);
      assert.equal(r.json.error.code, 'ERR_API_FORBIDDEN');
    }
    assert.equal((await call({ path: '/v1/info', headers: { origin: 'http://evil.example' } })).status, 403);
    assert.deepEqual(await balance(), before);
  });

  it('POST without Content-Type: application/json: 415, and nothing is sent', T, async () => {
    const before = await balance();
    const body = JSON.stringify({ address: ownAddress, amountSat: '1000000' });
    for (const type of [
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=latin1',
      null,
    ]) {
      const r = await call({ method: 'POST', path: '/v1/wallet/send', body, headers: { 'content-type': type } });
      assert.equal(r.status, 415, `${type}: ${r.text}`);
      assert.equal(r.json.error.code, 'ERR_API_UNSUPPORTED_MEDIA_TYPE');
    }
    // also with no body at all
    assert.equal((await call({ method: 'POST', path: '/v1/wallet/newaddress', headers: { 'content-type': null } })).status, 415);
    assert.deepEqual(await balance(), before);
    const ok = await call({
      method: 'POST',
      path: '/v1/wallet/newaddress',
      body: '',
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
    });
    assert.equal(ok.status, 200, ok.text);
  });

  it(
    'a body over 64 KiB: 413 that the client reads (Content-Length, chunked, Expect: 100-continue); the API keeps serving',
    T,
    async () => {
      const big = JSON.stringify({ address: ownAddress, amountSat: '1000', pad: 'x'.repeat(100 * 1024) });
      const sized = await call({ method: 'POST', path: '/v1/wallet/send', body: big });
      assert.equal(sized.status, 413, sized.text);
      assert.equal(sized.json.error.code, 'ERR_API_TOO_LARGE');
      const chunked = await call({ method: 'POST', path: '/v1/wallet/send', body: 'x'.repeat(300 * 1024), chunked: true });
      assert.equal(chunked.status, 413, chunked.text);
      const cont = await call({ method: 'POST', path: '/v1/wallet/send', body: big, expectContinue: true });
      assert.equal(cont.status, 413, cont.text);
      // fetch sees it too
      const res = await fetch(`http://127.0.0.1:${port}/v1/wallet/send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: big,
        signal: AbortSignal.timeout(20_000),
      });
      assert.equal(res.status, 413);
      assert.equal(((await res.json()) as any).error.code, 'ERR_API_TOO_LARGE');
      // exactly 64 KiB is fine (and then a 400 for what it holds, not a 413)
      const edge = JSON.stringify({ pad: 'y'.repeat(64 * 1024 - 10) });
      assert.equal(Buffer.byteLength(edge), 64 * 1024);
      const atLimit = await call({ method: 'POST', path: '/v1/wallet/send', body: edge });
      assert.equal(atLimit.status, 400, atLimit.text);
      assert.equal((await call({ path: '/v1/info' })).status, 200);
    },
  );

  it('HEAD, OPTIONS and a wrong method on a known path: 405 with Allow; an unknown path: 404', T, async () => {
    const head = await call({ method: 'HEAD', path: '/v1/info' });
    assert.equal(head.status, 405);
    assert.equal(head.headers['allow'], 'GET');
    const options = await call({ method: 'OPTIONS', path: '/v1/wallet/send' });
    assert.equal(options.status, 405);
    assert.equal(options.headers['allow'], 'POST');
    const get = await call({ path: '/v1/wallet/send' });
    assert.equal(get.status, 405);
    assert.equal(get.json.error.code, 'ERR_API_METHOD_NOT_ALLOWED');
    assert.equal(get.headers['allow'], 'POST');
    const postInfo = await post('/v1/info', {});
    assert.equal(postInfo.status, 405);
    assert.equal(postInfo.headers['allow'], 'GET');
    const missing = await call({ path: '/v1/nothing' });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'ERR_API_NOT_FOUND');
    // and without the token, not even that
    assert.equal((await call({ method: 'HEAD', path: '/v1/info', headers: { authorization: null } })).status, 401);
    assert.equal((await call({ path: '/v1/nothing', headers: { authorization: null } })).status, 401);
  });

  it('user mistakes get 4xx with their typed codes, never 500', T, async () => {
    const free = await closedPort();
    const mainnet = 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4';
    const cases: [string, unknown, number, string][] = [
      ['/v1/wallet/send', { address: 'not-an-address', amountSat: '1000' }, 400, 'ERR_INVALID_ADDRESS'],
      ['/v1/wallet/send', { address: mainnet, amountSat: '100000' }, 400, 'ERR_WRONG_NETWORK'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: '100' }, 400, 'ERR_DUST'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: '0' }, 400, 'ERR_INVALID_AMOUNT'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: '2100000000000001' }, 400, 'ERR_INVALID_AMOUNT'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: '99999999999999999999999' }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: 1e300 }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: '-1' }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/wallet/send', { address: ownAddress, amountSat: '2000000000000000' }, 409, 'ERR_INSUFFICIENT_FUNDS'],
      ['/v1/wallet/send', { address: 5, amountSat: '1000' }, 400, 'ERR_API_BAD_REQUEST'],
      [
        '/v1/peers/connect',
        { uri: `${node.nodeIdHex.replace(/^0[23]/, (p) => (p === '02' ? '03' : '02'))}@127.0.0.1:${free}` },
        422,
        'ERR_CONNECT_FAILED',
      ],
      ['/v1/peers/connect', { uri: 'nonsense' }, 400, 'ERR_NODE_CONFIG'],
      ['/v1/peers/connect', { uri: `${node.nodeIdHex}@127.0.0.1:${free}`, persistent: 'yes' }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/chain/generate', { blocks: 1, address: 'not-an-address' }, 400, 'ERR_INVALID_ADDRESS'],
      ['/v1/chain/generate', { blocks: 1, address: mainnet }, 400, 'ERR_WRONG_NETWORK'],
      ['/v1/chain/generate', { blocks: 1, address: 42 }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/chain/generate', { blocks: 1, address: null }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/chain/generate', { blocks: 1, address: ['x'] }, 400, 'ERR_API_BAD_REQUEST'],
      ['/v1/chain/generate', { blocks: 1_000_000 }, 400, 'ERR_API_BAD_REQUEST'],
      [
        '/v1/channels/open',
        { nodeId: node.nodeIdHex.replace(/^0[23]/, (p) => (p === '02' ? '03' : '02')), fundingSat: '100000' },
        409,
        'ERR_NOT_CONNECTED',
      ],
    ];
    const height = (await call({ path: '/v1/info' })).json.blockHeight;
    for (const [path, body, status, code] of cases) {
      const r = await post(path, body);
      assert.equal(r.status, status, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error.code, code, `${path} ${JSON.stringify(body)}: ${r.text}`);
    }
    assert.equal((await call({ path: '/v1/info' })).json.blockHeight, height, 'no block was mined to a bad address');
    const bad = await call({ method: 'POST', path: '/v1/wallet/send', body: '[1,2]' });
    assert.equal(bad.status, 400);
  });

  it('error messages quote at most 100 characters of the input', T, async () => {
    const long = 'q'.repeat(5000);
    const probes: Reply[] = [
      await post('/v1/wallet/send', { address: long, amountSat: '1000' }),
      await post('/v1/wallet/send', { address: `bcrt1${long}`, amountSat: '1000' }),
      await post('/v1/peers/connect', { uri: long }),
      await post('/v1/peers/connect', { uri: `${node.nodeIdHex}@${long}:1` }),
      await post('/v1/peers/disconnect', { nodeId: long }),
      await post('/v1/chain/generate', { blocks: 1, address: long }),
      await call({ method: 'POST', path: '/v1/wallet/send', body: `{"address":"${long}` }),
      await call({ path: `/v1/${long}` }),
      await call({ path: '/v1/info', headers: { host: `${long}:${port}` } }),
    ];
    for (const r of probes) {
      assert.ok(r.status >= 400 && r.status < 500, r.text.slice(0, 300));
      const message = String(r.json.error.message);
      assert.ok(message.length <= 400, `${message.length} characters: ${message.slice(0, 200)}`);
      assert.ok(!message.includes('q'.repeat(101)), message.slice(0, 300));
    }
  });

  it('one table maps each typed code to its status; anything else is 500', () => {
    assert.equal(errorStatus(new WalletError('ERR_INSUFFICIENT_FUNDS', 'x')), 409);
    assert.equal(errorStatus(new WalletError('ERR_WRONG_NETWORK', 'x')), 400);
    assert.equal(errorStatus(new NodeError('ERR_CONNECT_FAILED', 'x')), 422);
    assert.equal(errorStatus(new NodeError('ERR_NOT_CONNECTED', 'x')), 409);
    assert.equal(errorStatus(new ArgumentError('x')), 400);
    assert.equal(errorStatus(new WalletError('ERR_BROADCAST', 'x')), 500);
    assert.equal(errorStatus(new WalletError('ERR_SEED', 'x')), 500);
    assert.equal(errorStatus(new Error('x')), 500);
    assert.equal(errorStatus('a string'), 500);
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      assert.match(code, /^ERR_[A-Z0-9_]+$/);
      assert.ok(status >= 400 && status < 600 && status !== 500, code);
    }
  });
});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}
