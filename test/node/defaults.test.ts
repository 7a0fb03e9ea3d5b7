/**
 * The README's defaults table says what the code does: every entry of NODE_DEFAULTS appears in its group's row with
 * its value, and the table names nothing the code does not have.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NODE_DEFAULTS } from '../../node/index.js';

const show = (v: unknown): string =>
  typeof v === 'bigint'
    ? v.toString()
    : typeof v === 'string'
      ? v
      : v instanceof Uint8Array
        ? Buffer.from(v).toString('hex')
        : JSON.stringify(v);

test('the README defaults table matches NODE_DEFAULTS', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### Defaults');
  assert.ok(start >= 0, 'the README has a Defaults section');
  const rows = new Map<string, string>();
  for (const line of readme.slice(start).split('\n')) {
    const m = /^\| `(\w+)` \| [^|]+ \| (.+) \|$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!);
    else if (rows.size > 0 && !line.startsWith('|')) break;
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(NODE_DEFAULTS).sort());
  for (const [group, table] of Object.entries(NODE_DEFAULTS)) {
    const cells = rows.get(group)!.split(' · ');
    const listed = new Map(cells.map((c) => [/^`(\w+)`/.exec(c)?.[1] ?? c, c.replace(/^`\w+` /, '')]));
    assert.deepEqual([...listed.keys()].sort(), Object.keys(table).sort(), `the ${group} row names every setting, no more`);
    for (const [k, v] of Object.entries(table)) assert.equal(listed.get(k), show(v), `${group}.${k}`);
  }
});
