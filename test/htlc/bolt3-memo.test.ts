import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { memoBytes } from '../../htlc/bolt3/memo.js';

describe('bolt3 memo', () => {
  it('computes once per unchanged input and again after the input array is written to', () => {
    let calls = 0;
    const f = memoBytes((a: Uint8Array, b: Uint8Array) => {
      calls++;
      return a[0]! + b[0]!;
    });
    const a = Uint8Array.of(1);
    const b = Uint8Array.of(2);
    assert.equal(f(a, b), 3);
    assert.equal(f(a, b), 3);
    assert.equal(calls, 1);
    a[0] = 10; // same identity, new content: never a stale result
    assert.equal(f(a, b), 12);
    assert.equal(calls, 2);
    b[0] = 20; // the second argument is checked too
    assert.equal(f(a, b), 30);
    assert.equal(calls, 3);
    assert.equal(f(Uint8Array.of(10), b), 30); // equal content under another identity is simply computed
    assert.equal(calls, 4);
  });
});
