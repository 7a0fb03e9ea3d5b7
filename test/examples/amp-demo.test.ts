/** `npm start`'s AMP demo, run as a test: every payment settles, each of the first three over both paths. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../node/log.js';
import { processOutput, runAmpDemo, summary, type AmpDemoReport } from './amp-demo.js';

describe('the AMP demo (npm start)', () => {
  it(
    'four nodes: a reusable AMP invoice paid three times over both paths, two deposits, one spontaneous AMP payment',
    { timeout: 120_000 },
    async () => {
      const lines: string[] = [];
      const report = await runAmpDemo(createLogger({ level: 'silent' }), (l) => lines.push(l));
      assert.equal(report.payments.length, 6);
      assert.equal(new Set(report.payments.map((p) => p.setId)).size, 6, 'six distinct set_ids');
      for (const p of report.payments.slice(0, 3)) {
        assert.ok(p.shards >= 3, `${p.label}: ${p.shards} shards`);
        assert.deepEqual(p.paths, ['A→B→D', 'A→C→D'], `${p.label} went over both paths`);
      }
      assert.equal(report.balances.D, 725_000n);
      for (const p of report.payments)
        assert.ok(
          lines.some((l) => l.includes(p.setId)),
          `the summary names set_id ${p.setId}`,
        );
    },
  );
});

describe('the AMP demo output', () => {
  const report: AmpDemoReport = {
    payments: [
      { label: 'A pays it (1)', setId: 'ab'.repeat(32), shards: 3, paths: ['A→B→D', 'A→C→D'], amountSat: 150_000n, ms: 311 },
      { label: 'B pays D spontaneously (AMP)', setId: 'cd'.repeat(32), shards: 1, paths: ['B→D'], amountSat: 70_000n, ms: 9 },
    ],
    balances: { A: 1n, B: 2n, C: 3n, D: 220_000n },
  };

  it('the summary: one aligned row per payment ending in its set_id, then the balances', () => {
    const lines = summary(report, 5_300);
    assert.equal(lines[1], 'summary: 2 AMP payments in 4 shards, every set_id settled once, 5.3 s in all');
    const rows = lines.slice(2, 5);
    assert.match(rows[0]!, /^ {2}payment +amount \(sat\) +shards +paths +time \(ms\) +set_id$/);
    assert.ok(rows[1]!.endsWith('ab'.repeat(32)) && rows[2]!.endsWith('cd'.repeat(32)));
    // right-aligned numbers: the amounts end in the same column
    assert.equal(rows[1]!.indexOf('150000') + 6, rows[2]!.indexOf('70000') + 5);
    assert.equal(rows[1]!.indexOf('A→B→D, A→C→D'), rows[2]!.indexOf('B→D'));
    assert.equal(lines.at(-1), 'channel balances (sat): A 1, B 2, C 3, D 220000');
  });

  it('a spinner only on an interactive terminal: not under CI, not TERM=dumb, not a pipe', () => {
    const fake = (isTTY: boolean): NodeJS.WriteStream => ({ isTTY, write: () => true }) as unknown as NodeJS.WriteStream;
    assert.ok(processOutput(fake(true), { TERM: 'xterm' }).terminal !== undefined);
    assert.equal(processOutput(fake(true), { TERM: 'xterm', CI: '1' }).terminal, undefined);
    assert.equal(processOutput(fake(true), { TERM: 'dumb' }).terminal, undefined);
    assert.equal(processOutput(fake(false), { TERM: 'xterm' }).terminal, undefined);
  });
});
