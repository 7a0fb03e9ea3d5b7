/**
 * AMP share splitting and child derivation (lnd-compatible): fixed inputs,
 * and a sender → receiver property test with failed shards merged back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { ArgumentError } from '../../wire/errors.js';
import { sha256 } from '../../wire/crypto.js';
import {
  AmpError,
  AmpShards,
  childPreimage,
  decodeHopPayload,
  deriveChild,
  encodeHopPayload,
  reconstructChildren,
  reconstructRoot,
  Sharer,
  validateAmpSet,
  type AmpChild,
} from '../../onion/index.js';

const ROOT = hexToBytes('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');

describe('AMP child derivation, fixed inputs', () => {
  it('single shard (share = root, index 0)', () => {
    const c = deriveChild(ROOT, ROOT, 0);
    assert.equal(bytesToHex(c.preimage), '4a576a52ac31b40b9d39c5ce2eda6ff82426effa64009c8e2da4e33f050e720d');
    assert.equal(bytesToHex(c.hash), '8984a1959aae86a733aa7bf98fd1954b8d597a23ed540f6be5beb4368edf6a28');
    const v = validateAmpSet([{ share: ROOT, childIndex: 0, paymentHash: c.hash }]);
    assert.equal(v.valid, true);
    if (v.valid) assert.equal(bytesToHex(v.children[0]!.preimage), bytesToHex(c.preimage));
  });

  it('preimage = SHA256(root ‖ share ‖ BE32(index)), hash = SHA256(preimage)', () => {
    const share = new Uint8Array(32).fill(0xab);
    const idx = 0x01020304;
    const expected = sha256(new Uint8Array([...ROOT, ...share, 1, 2, 3, 4]));
    assert.equal(bytesToHex(childPreimage(ROOT, share, idx)), bytesToHex(expected));
    assert.equal(bytesToHex(deriveChild(ROOT, share, idx).hash), bytesToHex(sha256(expected)));
    // the index is always 4 bytes: 0 and 0xffffffff differ from each other and from a short form
    assert.notEqual(bytesToHex(childPreimage(ROOT, share, 0)), bytesToHex(sha256(new Uint8Array([...ROOT, ...share]))));
    assert.equal(
      bytesToHex(childPreimage(ROOT, share, 0xffffffff)),
      bytesToHex(sha256(new Uint8Array([...ROOT, ...share, 255, 255, 255, 255]))),
    );
  });

  it('two shards XOR to the root and both validate', () => {
    const a = new Uint8Array(32).fill(0x5a);
    const b = a.map((x, i) => x ^ ROOT[i]!);
    assert.equal(bytesToHex(reconstructRoot([a, b])), bytesToHex(ROOT));
    const kids = reconstructChildren([
      { share: a, childIndex: 7 },
      { share: b, childIndex: 9 },
    ]);
    assert.equal(bytesToHex(kids[0]!.hash), bytesToHex(deriveChild(ROOT, a, 7).hash));
    assert.equal(bytesToHex(kids[1]!.hash), bytesToHex(deriveChild(ROOT, b, 9).hash));
  });

  it('rejects bad inputs', () => {
    assert.throws(() => deriveChild(ROOT.subarray(1), ROOT, 0), ArgumentError);
    assert.throws(() => deriveChild(ROOT, ROOT, -1), ArgumentError);
    assert.throws(() => deriveChild(ROOT, ROOT, 2 ** 32), ArgumentError);
    assert.throws(() => Sharer.fromRoot(ROOT).zero().split(), AmpError);
    assert.deepEqual(validateAmpSet([]), { valid: false, htlcIndex: -1, reason: 'empty set' });
  });
});

describe('Sharer', () => {
  it('split keeps the XOR; merge takes a share back', () => {
    const s = Sharer.fromRoot(ROOT);
    const [l, r] = s.split();
    assert.equal(bytesToHex(reconstructRoot([l.share, r.share])), bytesToHex(ROOT));
    assert.equal(bytesToHex(r.merge(l.share).share), bytesToHex(ROOT));
    assert.equal(bytesToHex(l.root), bytesToHex(ROOT));
    assert.equal(l.child(3).hash.length, 32);
  });
});

describe('AMP sender → receiver round trip', () => {
  it('random splits, failed shards merged back: the settled set validates; a wrong share fails it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ fail: fc.boolean(), index: fc.nat({ max: 0xffffffff }) }), { minLength: 0, maxLength: 12 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat(),
        (plan, lastIndex, pick) => {
          const payment = AmpShards.random();
          const live: AmpChild[] = [];
          for (const step of plan) {
            const shard = payment.next(step.index);
            if (step.fail) payment.fail(shard);
            else live.push(shard);
          }
          live.push(payment.next(lastIndex, { last: true }));
          assert.ok(payment.remaining.isZero());

          // what the receiver sees: each shard's final-hop payload, decoded
          const received = live.map((c) => {
            const bytes = encodeHopPayload({
              amountToForwardMsat: 1000n,
              outgoingCltvValue: 500,
              mpp: { paymentAddr: new Uint8Array(32).fill(1), totalMsat: 1000n * BigInt(live.length) },
              amp: { share: c.share, setId: payment.setId, childIndex: c.childIndex },
            });
            const p = decodeHopPayload(bytes, { isFinal: true });
            assert.ok(p.amp);
            return { share: p.amp.share, childIndex: p.amp.childIndex, paymentHash: c.hash };
          });
          const v = validateAmpSet(received);
          assert.equal(v.valid, true);
          if (!v.valid) return;
          assert.equal(bytesToHex(v.root), bytesToHex(payment.root));
          v.children.forEach((ch, i) => assert.equal(bytesToHex(ch.preimage), bytesToHex(live[i]!.preimage)));

          // one wrong share fails the whole set
          const bad = received.map((h) => ({ ...h }));
          const k = pick % bad.length;
          const s = bad[k]!.share.slice();
          s[pick % 32]! ^= 1 << (pick % 8);
          bad[k]!.share = s;
          assert.equal(validateAmpSet(bad).valid, false);
          // a partial set cannot validate (unless it is the whole set)
          if (received.length > 1) assert.equal(validateAmpSet(received.slice(1)).valid, false);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('after the last shard nothing is left to send; a failed last shard can be resent', () => {
    const p = new AmpShards(Sharer.fromRoot(ROOT), new Uint8Array(32).fill(9));
    const last = p.next(1, { last: true });
    assert.throws(() => p.next(2, { last: true }), AmpError);
    p.fail(last);
    const again = p.next(2, { last: true });
    assert.equal(bytesToHex(again.share), bytesToHex(ROOT));
    assert.equal(bytesToHex(again.hash), bytesToHex(deriveChild(ROOT, ROOT, 2).hash));
  });
});
