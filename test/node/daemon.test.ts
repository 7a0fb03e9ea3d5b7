/**
 * The daemon as a child process (`node --import tsx node/cli.ts start`):
 * the one JSON line on stdout, peers over --connect, reconnection after the
 * other side restarts, the node key kept across restarts, clean exit 0 on
 * SIGTERM/SIGINT, exit 1 on bad arguments.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import { Daemon, failAfter, ROOT, START_MS, tempDir } from './daemon-process.js';

describe('ampnode start (child processes)', () => {
  it('prints one listening line, peers via --connect, reconnects after a restart, keeps its key, exits 0 on SIGTERM', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const a = Daemon.spawn(['start', '--datadir', dirA, '--listen', '127.0.0.1:0', '--network', 'regtest']);
    const la = await a.listening();
    assert.notEqual(la.port, 0);

    // the key file: 0600, and the node id is its public key
    const keyFile = join(dirA, 'node_key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const key = hexToBytes(readFileSync(keyFile, 'utf8').trim());
    assert.equal(bytesToHex(secp.publicKeyCreate(key)), la.nodeId);

    const b = Daemon.spawn([
      'start',
      '--datadir',
      dirB,
      '--listen',
      '127.0.0.1:0',
      '--connect',
      `${la.nodeId}@${la.address}`,
      '--log-level',
      'debug',
    ]);
    const lb = await b.listening();
    await a.until(() => (a.connectedCount(lb.nodeId) > 0 ? true : undefined), 'A sees B');
    await b.until(() => (b.connectedCount(la.nodeId) > 0 ? true : undefined), 'B sees A');
    const seenByA = a.logs.find((l) => l['msg'] === 'peer connected' && l['peer'] === lb.nodeId)!;
    assert.equal(seenByA['inbound'], true);
    assert.equal(seenByA['sub'], 'node');

    // A goes away: exit 0, nothing on stdout but the one line; B notices
    assert.equal(await a.stop('SIGTERM'), 0);
    assert.equal(a.stdout.length, 1);
    await b.until(() => b.logs.find((l) => l['msg'] === 'peer disconnected' && l['peer'] === la.nodeId), 'B sees A go');

    // A comes back on the same port with the same key; B reconnects on its own
    const a2 = Daemon.spawn(['start', '--datadir', dirA, '--listen', `127.0.0.1:${la.port}`]);
    const la2 = await a2.listening();
    assert.equal(la2.nodeId, la.nodeId, 'node id survives a restart');
    assert.equal(la2.address, la.address);
    await b.until(() => (b.connectedCount(la.nodeId) > 1 ? true : undefined), 'B reconnects to A');
    await a2.until(() => (a2.connectedCount(lb.nodeId) > 0 ? true : undefined), 'restarted A sees B');
    assert.ok(b.logs.some((l) => l['msg'] === 'reconnect scheduled' && l['peer'] === la.nodeId));

    assert.equal(await b.stop('SIGINT'), 0);
    assert.equal(await a2.stop('SIGTERM'), 0);
    assert.equal(b.stdout.length, 1);
    assert.equal(a2.stdout.length, 1);
  });

  it('SIGTERM at once after the listening line still stops cleanly with exit 0', async () => {
    for (const chain of ['embedded', 'none']) {
      const d = Daemon.spawn(['start', '--datadir', tempDir(), '--listen', '127.0.0.1:0', '--chain', chain]);
      await d.listening();
      assert.equal(await d.stop('SIGTERM'), 0, d.tail());
      assert.ok(
        d.logs.some((l) => l['msg'] === 'stopping'),
        d.tail(),
      );
    }
  });

  it('bad arguments and a busy port exit 1 with nothing on stdout', async () => {
    const bad = Daemon.spawn(['start', '--datadir', tempDir(), '--listen', '127.0.0.1:0', '--connect', 'not-a-node']);
    assert.equal((await bad.exited).code, 1);
    assert.deepEqual(bad.stdout, []);
    assert.ok(
      bad.logs.some((l) => /PUBKEY@HOST:PORT/.test(String(l['text']))),
      bad.tail(),
    );

    const noDir = Daemon.spawn(['start', '--listen', '127.0.0.1:0']);
    assert.equal((await noDir.exited).code, 1);
    assert.deepEqual(noDir.stdout, []);

    const net = Daemon.spawn(['start', '--datadir', tempDir(), '--network', 'mainnet']);
    assert.equal((await net.exited).code, 1);
    assert.deepEqual(net.stdout, []);

    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const busy = Daemon.spawn(['start', '--datadir', tempDir(), '--listen', `127.0.0.1:${port}`, '--chain', 'none']);
      assert.equal((await busy.exited).code, 1);
      assert.deepEqual(busy.stdout, []);
      assert.ok(
        busy.logs.some((l) => l['msg'] === 'could not start' && /EADDRINUSE/.test(JSON.stringify(l))),
        busy.tail(),
      );
    } finally {
      server.close();
    }
  });

  it(
    'the datadir: an empty one touches nothing, a 0755 one ends 0700 with 0600 files, ' +
      'a second daemon on it exits 1 naming the pid of the first',
    async () => {
      // --datadir '' (run from an empty working directory): refused before anything is written
      const cwd = tempDir();
      const empty = spawn(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'node', 'cli.ts'), 'start', '--datadir', '', '--listen', '127.0.0.1:0'],
        { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
      );
      const emptyCode = await new Promise<number | null>((r) => empty.once('exit', (c) => r(c)));
      assert.equal(emptyCode, 1);
      assert.deepEqual(readdirSync(cwd), [], 'nothing created in the working directory');

      // a datadir the user made 0755: the daemon narrows it to 0700, and what it writes inside is 0600 / 0700
      const dir = tempDir();
      chmodSync(dir, 0o755);
      const first = Daemon.spawn(['start', '--datadir', dir, '--listen', '127.0.0.1:0']);
      await first.listening();
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      const walk = (d: string): string[] =>
        readdirSync(d).flatMap((n) => {
          const p = join(d, n);
          return statSync(p).isDirectory() ? [p, ...walk(p)] : [p];
        });
      const entries = walk(dir);
      assert.ok(entries.some((p) => p.endsWith('wallet_seed')) && entries.some((p) => p.includes(`${sep}db${sep}`)), entries.join(' '));
      for (const p of entries) {
        const mode = statSync(p).mode & 0o777;
        assert.equal(mode & 0o077, 0, `${p} is ${mode.toString(8)}: readable by others`);
      }

      // one daemon per datadir, in every chain mode
      for (const chain of ['embedded', 'none']) {
        const second = Daemon.spawn(['start', '--datadir', dir, '--listen', '127.0.0.1:0', '--chain', chain]);
        assert.equal((await second.exited).code, 1);
        assert.deepEqual(second.stdout, []);
        assert.ok(
          second.logs.some((l) => JSON.stringify(l).includes(`datadir in use by pid ${first.proc.pid}`)),
          second.tail(),
        );
      }
      assert.equal(await first.stop(), 0);
      // the lock went with the first daemon: a new one starts
      const again = Daemon.spawn(['start', '--datadir', dir, '--listen', '127.0.0.1:0', '--chain', 'none']);
      await again.listening();
      assert.equal(await again.stop(), 0);
    },
  );

  it('ampnode demo runs the AMP demo end to end, exits 0, and its summary names every set_id', async () => {
    const d = Daemon.spawn(['demo']);
    const { code } = await Promise.race([d.exited, failAfter(START_MS, () => `demo did not finish\n${d.tail()}`)]);
    assert.equal(code, 0, d.tail());
    const text = d.stdout.join('\n');
    const summary = /summary: (\d+) AMP payments in (\d+) shards/.exec(text);
    assert.ok(summary !== null, d.tail());
    assert.equal(summary[1], '6');
    const setIds = new Set(text.match(/\b[0-9a-f]{64}\b/g));
    const table = d.stdout.slice(d.stdout.findIndex((l) => l.startsWith('summary:')));
    assert.equal(table.filter((l) => /\b[0-9a-f]{64}$/.test(l)).length, 6, 'one summary row per payment, ending in its set_id');
    assert.ok(setIds.size >= 6);
    assert.ok(
      d.stdout.some((l) => /^channel balances \(sat\): A \d+, B \d+, C \d+, D 725000$/.test(l)),
      d.tail(),
    );
  });

  it('ampnode demo channels runs end to end and exits 0', async () => {
    const d = Daemon.spawn(['demo', 'channels']);
    const { code } = await Promise.race([d.exited, failAfter(START_MS, () => `demo did not finish\n${d.tail()}`)]);
    assert.equal(code, 0, d.tail());
    const done = /done: (\d+) of (\d+) steps ok/.exec(d.stdout.join('\n'));
    assert.ok(done !== null, d.tail());
    assert.equal(done[1], done[2]);
    assert.ok(d.stdout.some((l) => /\d+ pongs, .* every size checked/.test(l)));
  });
});
