/** `npm start`'s AMP demo, run as a test: every payment settles, each of the first three over both paths. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../node/log.js';
import { runAmpDemo } from './amp-demo.js';

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
