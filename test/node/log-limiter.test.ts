/**
 * The network log's rate limiter at volume: 100 000 refused connections from
 * 100 000 addresses, spread over several windows, cost a bounded number of
 * lines (the real-socket version, with 5 000 refusals through a node, is in
 * peer-limits.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, LogRateLimiter, type LogWindowStats } from '../../node/log.js';
import { LogCapture } from './peer-helpers.js';

describe('LogRateLimiter at volume', () => {
  it('100 000 refused connections from 100 000 addresses over 4 windows write at most 4 × (burst + 1) lines', async () => {
    const capture = new LogCapture();
    const log = createLogger({ level: 'debug', destination: capture });
    const burst = 10;
    const limiter = new LogRateLimiter({ log, intervalMs: 150, burst, timer: true }).kind('refused', {
      level: 'warn',
      always: true,
      message: (s) =>
        `refused ${s.count} incoming connections from ${s.addresses}${s.addressesTruncated ? '+' : ''} addresses in the last ${s.seconds} s`,
    });
    const total = 100_000;
    const windows = 4;
    for (let w = 0; w < windows; w++) {
      for (let i = 0; i < total / windows; i++) {
        const n = w * (total / windows) + i;
        const address = `10.${(n >> 16) & 0xff}.${(n >> 8) & 0xff}.${n & 0xff}:9735`;
        limiter.note('refused', log, 'debug', { address, code: 'ERR_TOO_MANY_PEERS' }, 'incoming connection refused', {
          address,
          code: 'ERR_TOO_MANY_PEERS',
        });
      }
      await sleep(250); // the window ends; its timer writes the summary
    }
    limiter.close();
    await sleep(20);
    const one = capture.lines.filter((l) => l.msg === 'incoming connection refused');
    const summaries = capture.lines.filter((l) => l.summary !== undefined).map((l) => l.summary as LogWindowStats);
    assert.equal(one.length, windows * burst, 'the first `burst` of each window are written one by one');
    assert.equal(summaries.length, windows, 'one summary per window');
    assert.equal(
      summaries.reduce((a, s) => a + s.count, 0),
      total,
      'every refusal is counted',
    );
    assert.equal(
      summaries.reduce((a, s) => a + s.suppressed, 0),
      total - windows * burst,
    );
    for (const s of summaries) {
      assert.equal(s.addresses, 10_000, 'distinct addresses are tracked up to 10 000 per window');
      assert.equal(s.addressesTruncated, true);
      assert.deepEqual(s.codes, { ERR_TOO_MANY_PEERS: total / windows });
      assert.equal(s.top.length, 3);
    }
    assert.ok(capture.lines.length <= windows * (burst + 1), `${capture.lines.length} lines`);
    assert.match(
      String(capture.lines.find((l) => l.summary !== undefined)!.msg),
      /^refused 25000 incoming connections from 10000\+ addresses in the last \d+ s$/,
    );
  });
});
