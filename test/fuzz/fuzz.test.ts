/**
 * The fuzz campaign itself: each target takes a bounded number of inputs with only typed answers, and the campaign
 * reports a finding when a target throws something untyped (so a real one would not go unseen).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { campaign } from './campaign.js';
import { TARGETS, typedOnly } from './targets.js';

describe('fuzz campaign', () => {
  for (const t of TARGETS) {
    it(`${t.name}: 2 000 inputs, only typed answers`, () => {
      const r = campaign(t, { inputs: 2000, seed: 12345 });
      assert.equal(r.inputs, 2000);
      assert.deepEqual(r.findings, []);
    });
  }

  it('an untyped throw is a finding, with its input', () => {
    const broken = {
      name: 'broken',
      seeds: [Uint8Array.of(1, 2, 3)],
      run: (b: Uint8Array) =>
        typedOnly(() => {
          if (b.length > 2 && b[0] === 1) throw new TypeError('boom');
        }),
    };
    const r = campaign(broken, { inputs: 500, seed: 7 });
    assert.ok(r.findings.length > 0);
    assert.equal(r.findings[0]!.inputHex.slice(0, 2), '01');
    assert.match(r.findings[0]!.error, /TypeError: boom/);
  });
});
