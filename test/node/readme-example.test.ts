/**
 * The README's embedding example compiles against the package entry as written (its `'ampnode'` import pointed at
 * node/index.ts), under the project's strict compiler settings, and a wrong use of the same API does not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;

function example(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Embedding it'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'the Embedding section has a TypeScript example');
  return m[1]!.replace(/from 'ampnode'/g, "from '../../node/index.js'");
}

function typecheck(dir: string, source: string): { ok: boolean; out: string } {
  writeFileSync(join(dir, 'example.ts'), source);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { noEmit: true, rootDir: '../..' }, include: ['example.ts'] }),
  );
  const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

test('the README embedding example type-checks; a misuse of it does not', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(root, 'test', 'readme-'));
  try {
    const src = example();
    const good = typecheck(dir, `${src}\nexport {};\n`);
    assert.ok(good.ok, good.out);
    const bad = typecheck(dir, `${src.replace("e.type === 'channel_ready'", "e.type === 'channel_opened'")}\nexport {};\n`);
    assert.ok(!bad.ok, 'an event type that does not exist is refused');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
