/**
 * Feature bit vectors: BOLT 1 byte order, BOLT 9 names and dependencies, the
 * lnd-specific bits, and the 253-byte feature field lnd v0.19 sends in `init`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { ArgumentError } from '../../wire/errors.js';
import {
  FEATURE_DEPENDENCIES,
  Feature,
  FeatureVector,
  MAX_FEATURE_BIT,
  featureName,
  unknownRequiredBits,
  validateFeatureDependencies,
} from '../../wire/features.js';

describe('FeatureVector encoding (BOLT 1: big-endian, bit 0 = lowest bit of the last byte)', () => {
  it('places bits as the spec numbers them', () => {
    assert.equal(bytesToHex(FeatureVector.fromBits([0]).encode()), '01');
    assert.equal(bytesToHex(FeatureVector.fromBits([1]).encode()), '02');
    assert.equal(bytesToHex(FeatureVector.fromBits([7]).encode()), '80');
    assert.equal(bytesToHex(FeatureVector.fromBits([8]).encode()), '0100');
    assert.equal(bytesToHex(FeatureVector.fromBits([9, 13, 15]).encode()), 'a200');
    assert.equal(bytesToHex(FeatureVector.fromBits([]).encode()), '');
    assert.deepEqual(FeatureVector.decode(hexToBytes('2202')).bits(), [1, 9, 13]);
  });

  it('decodes padded fields and re-encodes them minimally', () => {
    const fv = FeatureVector.decode(hexToBytes('0000000100'));
    assert.deepEqual(fv.bits(), [8]);
    assert.equal(bytesToHex(fv.encode()), '0100');
    assert.equal(bytesToHex(fv.encodePadded(4)), '00000100');
    assert.ok(FeatureVector.decode(new Uint8Array(40)).isEmpty());
  });

  it('has / supports / requires', () => {
    const fv = FeatureVector.fromBits([0, 9, 17]);
    assert.ok(fv.has(0) && !fv.has(1) && fv.has(9) && !fv.has(8) && !fv.has(5000));
    assert.ok(fv.supports(0) && fv.supports(1) && fv.supports(8) && fv.supports(9) && fv.supports(16));
    assert.ok(!fv.supports(14) && !fv.supports(15));
    assert.ok(fv.requires(0) && fv.requires(1) && !fv.requires(8) && !fv.requires(16));
  });

  it('with / without / merge return new vectors and leave the original alone', () => {
    const a = FeatureVector.fromBits([1, 9]);
    const b = a.with(15).with(2023);
    assert.deepEqual(a.bits(), [1, 9]);
    assert.deepEqual(b.bits(), [1, 9, 15, 2023]);
    assert.equal(b.encode().length, 253);
    const c = b.without(2023);
    assert.deepEqual(c.bits(), [1, 9, 15]);
    assert.equal(c.encode().length, 2, 'shrinks back to minimal length');
    assert.deepEqual(
      FeatureVector.fromBits([8, 12])
        .merge(FeatureVector.fromBits([0, 300]))
        .bits(),
      [0, 8, 12, 300],
    );
    assert.ok(a.without(30).equals(a));
    assert.throws(() => a.with(-1), ArgumentError);
    assert.throws(() => FeatureVector.fromBits([MAX_FEATURE_BIT + 1]), ArgumentError);
    assert.throws(() => FeatureVector.fromBits([1.5]), ArgumentError);
  });

  it('properties: bits, merge and round trips over vectors of any length', () => {
    const bitsArb = fc.uniqueArray(fc.integer({ min: 0, max: 4000 }), { maxLength: 40 });
    fc.assert(
      fc.property(bitsArb, bitsArb, (x, y) => {
        const a = FeatureVector.fromBits(x);
        const b = FeatureVector.fromBits(y);
        assert.deepEqual(
          a.bits(),
          [...x].sort((p, q) => p - q),
        );
        assert.ok(FeatureVector.decode(a.encode()).equals(a));
        const enc = a.encode();
        assert.ok(enc.length === 0 || enc[0] !== 0, 'minimal');
        assert.deepEqual(
          a.merge(b).bits(),
          [...new Set([...x, ...y])].sort((p, q) => p - q),
        );
        for (const bit of y) {
          assert.ok(a.with(bit).has(bit));
          assert.ok(!a.without(bit).has(bit));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('BOLT 9 / lnd names', () => {
  const expected: [number, string][] = [
    [0, 'option_data_loss_protect'],
    [3, 'initial_routing_sync'],
    [4, 'option_upfront_shutdown_script'],
    [7, 'gossip_queries'],
    [8, 'var_onion_optin'],
    [11, 'gossip_queries_ex'],
    [13, 'option_static_remotekey'],
    [14, 'payment_secret'],
    [17, 'basic_mpp'],
    [19, 'option_support_large_channel'],
    [21, 'option_anchor_outputs'],
    [23, 'option_anchors_zero_fee_htlc_tx'],
    [25, 'option_route_blinding'],
    [27, 'option_shutdown_anysegwit'],
    [29, 'option_dual_fund'],
    [31, 'amp'],
    [35, 'option_quiesce'],
    [39, 'option_onion_messages'],
    [45, 'option_channel_type'],
    [47, 'option_scid_alias'],
    [49, 'option_payment_metadata'],
    [51, 'option_zeroconf'],
    [55, 'keysend'],
    [2023, 'script-enforced-lease'],
  ];
  for (const [bit, name] of expected)
    it(`${bit} is ${name} (both bits of its pair)`, () => {
      assert.equal(featureName(bit), name);
      if (bit !== 3) assert.equal(featureName(bit ^ 1), name);
    });
  it('unassigned bits are unknown', () => {
    assert.equal(featureName(2), 'unknown_2');
    assert.equal(featureName(100), 'unknown_100');
  });
});

describe('validateFeatureDependencies', () => {
  const required: [number, number][] = [
    [15, 9],
    [17, 15],
    [21, 13],
    [23, 13],
    [25, 9],
    [31, 15],
    [51, 47],
    [55, 9],
    [61, 27],
    [2023, 45],
    [2023, 23],
  ];
  for (const [bit, dep] of required) {
    it(`${bit} (${featureName(bit)}) needs ${dep} (${featureName(dep)})`, () => {
      const others = (FEATURE_DEPENDENCIES.get(bit & ~1) ?? []).filter((d) => d !== (dep & ~1)).map((d) => d + 1);
      const full = FeatureVector.fromBits([bit, dep, ...others]);
      // Transitive dependencies of the dependencies too.
      let closed = full;
      for (let i = 0; i < 4; i++)
        for (const b of closed.bits())
          for (const d of FEATURE_DEPENDENCIES.get(b & ~1) ?? []) if (!closed.supports(d)) closed = closed.with(d + 1);
      assert.equal(validateFeatureDependencies(closed), null);
      for (const missing of [
        closed.without(dep),
        closed
          .without(dep)
          .with(dep & ~1)
          .without(dep & ~1),
      ]) {
        const reason = validateFeatureDependencies(missing);
        assert.ok(reason !== null && reason.includes(`bit ${bit}`) && reason.includes(`${dep & ~1} or ${dep | 1}`), String(reason));
      }
      // A required dependent bit needs its dependency just the same; a required dependency satisfies it.
      assert.notEqual(
        validateFeatureDependencies(
          closed
            .without(bit)
            .with(bit & ~1)
            .without(dep),
        ),
        null,
      );
      assert.equal(validateFeatureDependencies(closed.without(dep).with(dep & ~1)), null);
    });
  }
  it('empty and dependency-free vectors pass', () => {
    assert.equal(validateFeatureDependencies(FeatureVector.empty), null);
    assert.equal(validateFeatureDependencies(FeatureVector.fromBits([0, 5, 7, 11, 19])), null);
  });
});

describe('unknownRequiredBits', () => {
  it('lists even bits whose pair we do not know', () => {
    const fv = FeatureVector.fromBits([0, 8, 9, 41, 100, 101, 2022]);
    assert.deepEqual(unknownRequiredBits(fv, new Set([0, 9])), [100, 2022]);
    assert.deepEqual(unknownRequiredBits(fv, new Set([1, 8, 101, 2023])), []);
    assert.deepEqual(unknownRequiredBits(fv, FeatureVector.fromBits([1, 9, 2023])), [100]);
    assert.deepEqual(unknownRequiredBits(FeatureVector.fromBits([41, 103]), new Set<number>()), [], 'odd bits are never a problem');
  });
});

describe("lnd's init feature field", () => {
  // lnd v0.19: required 0, 8, 12, 14; optional 5, 7, 17, 23, 25, 27, 31, 45, 2023.
  const bits = [0, 5, 7, 8, 12, 14, 17, 23, 25, 27, 31, 45, 2023];
  const field = new Uint8Array(253);
  field[0] = 0x80; // bit 2023 = bit 7 of byte 0 (2023 = 252 * 8 + 7)
  field.set(hexToBytes('20008a8251a1'), 253 - 6); // bits 45 | - | 31,27,25 | 23,17 | 14,12,8 | 7,5,0

  it('is 253 bytes and has the expected layout', () => {
    assert.equal(bytesToHex(FeatureVector.fromBits(bits).encode()), bytesToHex(field));
  });

  it('parses, merges with the legacy global field, and validates', () => {
    const features = FeatureVector.decode(field);
    const global = FeatureVector.decode(hexToBytes('1100')); // bits 8 and 12
    const all = features.merge(global);
    assert.deepEqual(all.bits(), bits);
    assert.equal(validateFeatureDependencies(all), null);
    for (const p of [Feature.DataLossProtect, Feature.VarOnionOptin, Feature.StaticRemoteKey, Feature.PaymentSecret])
      assert.ok(all.requires(p));
    for (const p of [
      Feature.UpfrontShutdownScript,
      Feature.GossipQueries,
      Feature.BasicMpp,
      Feature.AnchorsZeroFeeHtlcTx,
      Feature.RouteBlinding,
      Feature.ShutdownAnySegwit,
      Feature.Amp,
      Feature.ChannelType,
      Feature.ScriptEnforcedLease,
    ])
      assert.ok(all.supports(p) && !all.requires(p));
    const known = new Set(Object.values(Feature));
    assert.deepEqual(unknownRequiredBits(all, known), []);
    // A node that knows only the BOLT 9 basics still accepts it: lnd's even bits are all basic.
    assert.deepEqual(unknownRequiredBits(all, new Set([0, 8, 12, 14])), []);
  });
});
