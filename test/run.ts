/**
 * Test entry point: `npm test` (unit + in-process multi-node tests) and
 * `npm run test:interop` (against real lnd/btcd). Finds the test files and
 * hands them to node's own test runner, whose closing summary CI reads.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const which = process.argv[2] ?? 'unit';
const filters = process.argv.slice(3);

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const testDir = join(root, 'test');
let files = walk(testDir).filter((f) => {
  const interop = relative(testDir, f).startsWith('interop');
  return which === 'interop' ? interop : !interop;
});
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error(`no test files for "${which}" ${filters.join(' ')}`);
  process.exit(1);
}

// Every test is bounded: a test that outlives the timeout fails. The whole run
// is bounded too: a file whose handles kept its process alive after its tests
// ended would hold the run past `runLimitMs`, which then fails it. (Not
// --test-force-exit: under load it has ended runs before the last file had
// reported all of its tests, which then went uncounted.)
const timeoutMs = which === 'interop' ? 30 * 60_000 : 180_000;
const runLimitMs = which === 'interop' ? 75 * 60_000 : 20 * 60_000;
const args = [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  `--test-concurrency=${which === 'interop' ? 1 : 2}`,
  `--test-timeout=${timeoutMs}`,
];
const r = spawnSync(process.execPath, [...args, ...files.map((f) => relative(root, f))], {
  cwd: root,
  stdio: 'inherit',
  timeout: runLimitMs,
  killSignal: 'SIGKILL',
});
if (r.signal !== null) {
  console.error(`test run ended by ${r.signal} after ${runLimitMs / 60_000} minutes: something kept a test process alive`);
  process.exit(1);
}
process.exit(r.status ?? 1);
