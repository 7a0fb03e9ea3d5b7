/**
 * `ampnode start`'s settings from the command line, the environment and the config file, in that order of
 * precedence; every bad file refused with its typed code before anything starts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildProgram, type StartOptions } from '../../node/cli.js';
import { ConfigError, envName, parseBoolean, parseConfigText } from '../../node/config-file.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function datadir(conf?: string): string {
  const d = mkdtempSync(join(tmpdir(), 'ampnode-conf-'));
  dirs.push(d);
  if (conf !== undefined) writeFileSync(join(d, 'ampnode.conf'), conf);
  return d;
}

const PEER_A = '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798@127.0.0.1:9735'; // G
const PEER_B = '02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5@127.0.0.1:9736'; // 2G

/** What `start` would run with, for these arguments and this environment. */
async function resolve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<StartOptions> {
  let got: StartOptions | undefined;
  const program = buildProgram({
    env,
    start: async (o) => {
      got = o;
    },
  });
  program.exitOverride();
  program.commands.forEach((c) => c.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined }));
  await program.parseAsync(['node', 'ampnode', 'start', ...args]);
  assert.ok(got !== undefined);
  return got;
}

async function refused(args: string[], code: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  try {
    await resolve(args, env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail('expected the configuration to be refused');
}

test('the text format: comments, sections, bare keys, spaces around =, CRLF', () => {
  const e = parseConfigText('# c\r\n; c\n[Application Options]\n accept-amp \nlisten = 127.0.0.1:1\r\nconnect=x\nconnect=y\n');
  assert.deepEqual(
    e.map((x) => [x.key, x.value, x.line]),
    [
      ['accept-amp', undefined, 4],
      ['listen', '127.0.0.1:1', 5],
      ['connect', 'x', 6],
      ['connect', 'y', 7],
    ],
  );
  assert.throws(() => parseConfigText('listen 127.0.0.1:1'), { code: 'ERR_CONFIG_SYNTAX' });
  assert.throws(() => parseConfigText('Listen=1'), { code: 'ERR_CONFIG_SYNTAX' });
  assert.throws(() => parseConfigText('a=1\n'.repeat(1025)), { code: 'ERR_CONFIG_SYNTAX' });
  for (const t of ['1', 'TRUE', 'yes', 'on']) assert.equal(parseBoolean(t, 'x'), true);
  for (const f of ['0', 'false', 'No', 'off']) assert.equal(parseBoolean(f, 'x'), false);
  assert.equal(parseBoolean(undefined, 'x'), true);
  assert.throws(() => parseBoolean('maybe', 'x'), { code: 'ERR_CONFIG_VALUE' });
  assert.equal(envName('accept-amp'), 'AMPNODE_ACCEPT_AMP');
});

test('no file, no environment: the defaults (accept-amp and accept-keysend off, as lnd)', async () => {
  const o = await resolve(['--datadir', datadir()]);
  assert.equal(o.acceptAmp, false);
  assert.equal(o.acceptKeysend, false);
  assert.equal(o.listen, '127.0.0.1:9735');
  assert.equal(o.chain, 'embedded');
  assert.deepEqual(o.connect, []);
});

test('DATADIR/ampnode.conf is read; a repeatable key repeats; the command line wins over the file', async () => {
  const d = datadir(`accept-amp\naccept-keysend=false\nlisten=127.0.0.1:19735\nchain=none\nconnect=${PEER_A}\nconnect=${PEER_B}\n`);
  const o = await resolve(['--datadir', d]);
  assert.equal(o.acceptAmp, true);
  assert.equal(o.acceptKeysend, false);
  assert.equal(o.listen, '127.0.0.1:19735');
  assert.equal(o.chain, 'none');
  assert.deepEqual(o.connect, [PEER_A, PEER_B]);
  const o2 = await resolve(['--datadir', d, '--listen', '127.0.0.1:29735', '--connect', PEER_B, '--chain', 'embedded']);
  assert.equal(o2.listen, '127.0.0.1:29735');
  assert.deepEqual(o2.connect, [PEER_B]);
  assert.equal(o2.chain, 'embedded');
  assert.equal(o2.acceptAmp, true, 'what the command line does not set still comes from the file');
});

test('the environment wins over the file and loses to the command line; AMPNODE_DATADIR locates the datadir', async () => {
  const d = datadir('accept-amp=1\nlisten=127.0.0.1:19735\n');
  const o = await resolve([], {
    AMPNODE_DATADIR: d,
    AMPNODE_ACCEPT_AMP: '0',
    AMPNODE_LISTEN: '127.0.0.1:39735',
    AMPNODE_CONNECT: `${PEER_A},${PEER_B}`,
  });
  assert.equal(o.datadir, d);
  assert.equal(o.acceptAmp, false, 'AMPNODE_ACCEPT_AMP=0 is false, not "set"');
  assert.equal(o.listen, '127.0.0.1:39735');
  assert.deepEqual(o.connect, [PEER_A, PEER_B]);
  const o2 = await resolve(['--datadir', d, '--listen', '127.0.0.1:49735'], { AMPNODE_LISTEN: '127.0.0.1:39735' });
  assert.equal(o2.listen, '127.0.0.1:49735');
  await refused(['--datadir', d], 'ERR_CONFIG_VALUE', { AMPNODE_ACCEPT_KEYSEND: 'sometimes' });
});

test('--config names another file; one that cannot be read is refused', async () => {
  const d = datadir('accept-amp\n');
  const other = join(datadir(), 'other.conf');
  writeFileSync(other, 'accept-keysend=yes\n');
  const o = await resolve(['--datadir', d, '--config', other]);
  assert.equal(o.acceptKeysend, true);
  assert.equal(o.acceptAmp, false, 'DATADIR/ampnode.conf is not read when --config names a file');
  await refused(['--datadir', d, '--config', join(d, 'missing.conf')], 'ERR_CONFIG_UNREADABLE');
});

test('bad files are refused with the line and the key, before anything starts', async () => {
  const e = await refused(['--datadir', datadir('listen=127.0.0.1:1\nacept-amp=1\n')], 'ERR_CONFIG_UNKNOWN_KEY');
  assert.match(e.message, /:2: unknown key "acept-amp"/);
  await refused(['--datadir', datadir('listen=nowhere\n')], 'ERR_CONFIG_VALUE');
  await refused(['--datadir', datadir('chain=electrum\n')], 'ERR_CONFIG_VALUE');
  await refused(['--datadir', datadir('listen=127.0.0.1:1\nlisten=127.0.0.1:2\n')], 'ERR_CONFIG_VALUE');
  await refused(['--datadir', datadir('connect=not-a-node\n')], 'ERR_CONFIG_VALUE');
  await refused(['--datadir', datadir('datadir=/elsewhere\n')], 'ERR_CONFIG_NOT_ALLOWED');
  await refused(['--datadir', datadir('accept-amp=perhaps\n')], 'ERR_CONFIG_VALUE');
  await refused(['--datadir', datadir('listen\n')], 'ERR_CONFIG_VALUE');
  await refused(['--datadir', datadir('= 1\n')], 'ERR_CONFIG_SYNTAX');
});

test('no datadir from any source: the usual commander error', async () => {
  await assert.rejects(resolve([]), /required option '--datadir <dir>' not specified/);
});
