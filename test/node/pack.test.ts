/**
 * The package as a user gets it: `npm pack` (its prepack builds the sources), the tarball unpacked as
 * node_modules/ampnode of a fresh app (the app's other node_modules linked to this checkout's, so nothing is fetched),
 * then the app imports it from JavaScript and starts a node on an embedded chain, a TypeScript app type-checks
 * against the shipped declarations, and both bins answer --help.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const T = { timeout: 170_000 };
let dir = '';
let app = '';
let files: string[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ampnode-pack-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const info = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  files = info[0]!.files.map((f) => f.path);
  app = join(dir, 'app');
  const mods = join(app, 'node_modules');
  mkdirSync(join(mods, 'ampnode'), { recursive: true });
  execFileSync('tar', ['-xzf', join(dir, info[0]!.filename), '-C', join(mods, 'ampnode'), '--strip-components=1']);
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name === '.bin' || name.startsWith('.')) continue;
    symlinkSync(join(root, 'node_modules', name), join(mods, name));
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('the tarball holds the compiled sources and their declarations, not the tests or source maps', T, () => {
  assert.ok(files.includes('dist/node/index.js'));
  assert.ok(files.includes('dist/node/index.d.ts'));
  assert.ok(files.includes('dist/node/cli.js') && files.includes('dist/node/ampcli.js'));
  assert.ok(files.includes('dist/wire/bolt11.js') && files.includes('dist/htlc/invoices/registry.js'));
  // of the tests, only the AMP demo (an example app of the public API, run by `ampnode demo`)
  assert.deepEqual(files.filter((f) => f.startsWith('dist/test/')).sort(), [
    'dist/test/examples/amp-demo.d.ts',
    'dist/test/examples/amp-demo.js',
  ]);
  assert.equal(files.filter((f) => f.endsWith('.map')).length, 0);
  assert.equal(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).length, 0);
});

test('a JavaScript app imports ampnode, starts a node on an embedded regtest chain and stops it', T, () => {
  writeFileSync(
    join(app, 'main.mjs'),
    `import { createNode, createChainBackend, silentLogger, AmpnodeError, decodeInvoice } from 'ampnode';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const chain = await createChainBackend();
const node = await createNode({ datadir: mkdtempSync(join(tmpdir(), 'ampnode-app-')), chain, logger: silentLogger() });
const { paymentRequest } = await node.addInvoice({ amountMsat: 21000n, memo: 'packed' });
const inv = decodeInvoice(paymentRequest);
let typed = false;
try { decodeInvoice('lnbcrt1nope'); } catch (e) { typed = e instanceof AmpnodeError && typeof e.code === 'string'; }
console.log(JSON.stringify({ nodeId: node.nodeId, payee: Buffer.from(inv.payee).toString('hex'), amount: String(inv.amountMsat), typed }));
await node.stop();
await chain.close();
`,
  );
  const r = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { nodeId: string; payee: string; amount: string; typed: boolean };
  assert.match(out.nodeId, /^0[23][0-9a-f]{64}$/);
  assert.equal(out.payee, out.nodeId);
  assert.equal(out.amount, '21000');
  assert.equal(out.typed, true);
});

test('a TypeScript app type-checks against the shipped declarations (and a wrong use does not)', T, () => {
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: [],
      },
    }),
  );
  const good = `import { createNode, type AmpNode, type PaymentRecord } from 'ampnode';
export async function pay(n: AmpNode, req: string): Promise<bigint> {
  const p: PaymentRecord = await n.payInvoice(req);
  return p.amountMsat;
}
export const make: typeof createNode = createNode;
`;
  writeFileSync(join(app, 'good.ts'), good);
  writeFileSync(join(app, 'bad.ts'), `import { createNode } from 'ampnode';\nexport const n: number = createNode;\n`);
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const ok = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--types', 'node'], { cwd: app, encoding: 'utf8' });
  assert.equal(ok.status, 2, 'bad.ts must not type-check');
  assert.match(ok.stdout, /bad\.ts/);
  assert.doesNotMatch(ok.stdout, /good\.ts/, ok.stdout);
});

test('the installed ampnode bin runs the AMP demo: six payments settled, exit 0', T, () => {
  const r = spawnSync(process.execPath, [join(app, 'node_modules', 'ampnode', 'dist', 'node', 'cli.js'), 'demo'], {
    cwd: app,
    encoding: 'utf8',
    timeout: 150_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /summary: 6 AMP payments in \d+ shards, every set_id settled once/);
});

test('both bins answer --help', T, () => {
  for (const bin of ['cli.js', 'ampcli.js']) {
    const r = spawnSync(process.execPath, [join(app, 'node_modules', 'ampnode', 'dist', 'node', bin), '--help'], {
      cwd: app,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: (ampnode|ampcli)/);
  }
  assert.ok(readFileSync(join(app, 'node_modules', 'ampnode', 'dist', 'node', 'ampcli.js'), 'utf8').startsWith('#!/usr/bin/env node'));
});
