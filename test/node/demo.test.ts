/**
 * `ampnode demo`: every step of the end-to-end run succeeds in-process, the
 * numbers it reports add up (off-chain balances → on-chain wallets, minus
 * the funding and closing fees), a failing step stops the run with exit code
 * 1 and cleans up, and the CLI entry point prints the same run and exits 0.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_STEPS, runDemoSteps, type DemoStep } from '../../node/demo.js';
import { createLogger } from '../../node/log.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const T = { timeout: 60_000 };
const silent = createLogger({ level: 'silent' });

describe('ampnode demo', () => {
  it('runs every step in-process; the balances add up', T, async () => {
    const lines: string[] = [];
    const r = await runDemoSteps(silent, (l) => lines.push(l));
    assert.equal(r.exitCode, 0, lines.join('\n'));
    assert.equal(r.completed, DEMO_STEPS.length);
    assert.ok(!lines.some((l) => l.includes('FAILED')), lines.join('\n'));
    DEMO_STEPS.forEach((s, i) =>
      assert.ok(
        lines.some((l) => l.startsWith(`${i + 1}. ${s.title} (`)),
        `step ${i + 1} printed with its duration`,
      ),
    );
    assert.match(lines.at(-1)!, new RegExp(`^done: ${DEMO_STEPS.length} of ${DEMO_STEPS.length} steps ok`));
    assert.ok(lines.some((l) => l.includes('no invoice/payment layer yet')));

    const rep = r.report;
    assert.equal(rep.pings, 100);
    assert.equal(rep.channelType, 'anchors_zero_fee_htlc');
    assert.equal(rep.capacitySat, 1_000_000n);
    assert.equal(rep.minimumDepth, 3);
    assert.match(rep.shortChannelId ?? '', /^\d+x\d+x\d+$/);
    assert.deepEqual(rep.reestablished, { alice: 1, bob: 1, heightsKept: true });

    // HTLC outcomes per direction: 16 + 1 fulfilled and 4 failed alice→bob, 6 fulfilled and 2 failed bob→alice
    const htlcs = rep.htlcs!;
    const sum = (dir: string, k: 'fulfilled' | 'failed'): number => htlcs.filter((h) => h.direction === dir).reduce((a, h) => a + h[k], 0);
    assert.equal(sum('alice→bob', 'fulfilled'), 17);
    assert.equal(sum('alice→bob', 'failed'), 4);
    assert.equal(sum('bob→alice', 'fulfilled'), 6);
    assert.equal(sum('bob→alice', 'failed'), 2);
    // amounts: 5 000 + 1 000·i sat for i < 16, plus 10 000 sat in flight across the reconnect; 3 000 + 500·i sat back for i < 6
    const toBobSat = Array.from({ length: 16 }, (_, i) => 5_000n + 1_000n * BigInt(i)).reduce((a, b) => a + b) + 10_000n;
    const toAliceSat = Array.from({ length: 6 }, (_, i) => 3_000n + 500n * BigInt(i)).reduce((a, b) => a + b);
    const moved = (dir: string): bigint => htlcs.filter((h) => h.direction === dir).reduce((a, h) => a + h.movedMsat, 0n);
    assert.equal(moved('alice→bob'), toBobSat * 1000n);
    assert.equal(moved('bob→alice'), toAliceSat * 1000n);

    // off-chain at the close: bob holds exactly what moved to him; the two sides sum to the capacity
    const off = rep.closeBalancesMsat!;
    assert.equal(off.bob, (toBobSat - toAliceSat) * 1000n);
    assert.equal(off.alice + off.bob, 1_000_000n * 1000n);

    // on chain: each wallet gained its off-chain balance; the opener paid the closing fee
    const fundingFee = rep.fundingFeeSat!;
    const closingFee = rep.closingFeeSat!;
    assert.ok(fundingFee > 0n && closingFee > 0n);
    const start = rep.walletStartSat!;
    const beforeClose = rep.walletBeforeCloseSat!;
    const final = rep.walletFinalSat!;
    assert.equal(start.bob, 0n);
    assert.equal(beforeClose.alice, start.alice - 1_000_000n - fundingFee);
    assert.equal(beforeClose.bob, 0n);
    assert.equal(final.alice, beforeClose.alice + off.alice / 1000n - closingFee);
    assert.equal(final.bob, off.bob / 1000n);
    assert.equal(start.alice + start.bob, final.alice + final.bob + fundingFee + closingFee);
  });

  it('a failing step ends the run with exit code 1, a clear message, and cleans up', T, async () => {
    let dir = '';
    const steps: DemoStep[] = [
      DEMO_STEPS[0]!,
      {
        title: 'a step that breaks',
        async run(ctx) {
          dir = ctx.dir;
          assert.ok(existsSync(dir));
          throw new Error('broken on purpose');
        },
      },
      {
        title: 'never reached',
        async run() {
          throw new Error('ran after a failure');
        },
      },
    ];
    const lines: string[] = [];
    const r = await runDemoSteps(silent, (l) => lines.push(l), steps);
    assert.equal(r.exitCode, 1);
    assert.equal(r.completed, 1);
    assert.match(
      lines.find((l) => l.startsWith('2. '))!,
      /^2\. a step that breaks: FAILED after \d+ ms: broken on purpose$/,
    );
    assert.ok(!lines.some((l) => l.includes('never reached') || l.startsWith('done:')));
    assert.ok(!existsSync(dir), 'the scratch directory is removed');
  });

  it('`ampnode demo channels` (the CLI) prints the run and exits 0', T, () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'demo', 'channels'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 50_000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const out = r.stdout.trim().split('\n');
    assert.equal(out[0], 'ampnode demo — regtest, two nodes on loopback, one embedded chain');
    assert.match(out.at(-1)!, new RegExp(`^done: ${DEMO_STEPS.length} of ${DEMO_STEPS.length} steps ok`));
    assert.ok(out.some((l) => /alice: wallet .* on chain$/.test(l)));
  });
});
