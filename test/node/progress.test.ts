/**
 * The spinner of long CLI waits: nothing at all unless the stream is an interactive terminal (scripts see the same
 * bytes as before), the work's value or failure passed through unchanged, the spinner gone when the wait ends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interactive, withProgress, type ProgressStream } from '../../node/progress.js';

class FakeStream implements ProgressStream {
  written = '';
  cleared = 0;
  columns = 80;
  constructor(readonly isTTY: boolean) {}
  write(chunk: string): boolean {
    this.written += chunk;
    return true;
  }
  cursorTo(): boolean {
    return true;
  }
  moveCursor(): boolean {
    return true;
  }
  clearLine(): boolean {
    this.cleared++;
    return true;
  }
}

test('interactive: a TTY, not TERM=dumb, not under CI', () => {
  assert.equal(interactive(new FakeStream(true), {}), true);
  assert.equal(interactive(new FakeStream(false), {}), false);
  assert.equal(interactive(undefined, {}), false);
  assert.equal(interactive(new FakeStream(true), { TERM: 'dumb' }), false);
  assert.equal(interactive(new FakeStream(true), { CI: '1' }), false);
});

test('not a terminal: nothing written; the value and the failure come through', async () => {
  const s = new FakeStream(false);
  assert.equal(await withProgress(s, 'paying', new Promise((r) => setTimeout(() => r(42), 30))), 42);
  await assert.rejects(withProgress(s, 'paying', Promise.reject(new Error('no route'))), /no route/);
  assert.equal(s.written, '');
});

test(
  'a terminal: the text is shown while waiting and cleared at the end',
  { skip: 'CI' in process.env ? 'yocto-spinner never draws while CI is set (its own rule, and ours)' : false },
  async () => {
    const s = new FakeStream(true);
    const v = await withProgress(s, 'opening the channel', new Promise((r) => setTimeout(() => r('ok'), 150)));
    assert.equal(v, 'ok');
    assert.match(s.written, /opening the channel/);
    assert.ok(s.cleared > 0, 'the spinner line is cleared');
    const before = s.written.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(s.written.length, before, 'nothing drawn after the wait ended');
    await assert.rejects(withProgress(s, 'paying', Promise.reject(new Error('no route'))), /no route/);
  },
);

test(
  'a terminal with a result line: the spinner ends in done(result), or in "text: failed", and that line stays',
  { skip: 'CI' in process.env ? 'yocto-spinner never draws while CI is set (its own rule, and ours)' : false },
  async () => {
    const s = new FakeStream(true);
    const v = await withProgress(s, 'mining', new Promise<number>((r) => setTimeout(() => r(432), 50)), (h) => `mined to height ${h}`);
    assert.equal(v, 432);
    assert.match(s.written, /mined to height 432\n/);
    await assert.rejects(
      withProgress(s, 'paying', Promise.reject(new Error('no route')), () => 'never'),
      /no route/,
    );
    assert.match(s.written, /paying: failed\n/);
    assert.doesNotMatch(s.written, /never/);
  },
);
