/**
 * BOLT 4 attribution data: every value of the spec's vector (bolt04-errors.json: the erring node's packet and
 * attribution data, each forwarding node's, each success entry, and the legacy vector inside it), the origin's walk
 * over them, tampering at each hop, and bad lengths.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { ArgumentError } from '../../wire/errors.js';
import { randomBytes } from '../../wire/crypto.js';
import { errorsVector, vectorFailure, vectorSecrets, VECTOR_PADDED_LENGTH } from './errors-vector.js';
import {
  addAttribution,
  ATTRIBUTION_DATA_LENGTH,
  HOLD_TIMES_LENGTH as ATTRIBUTION_HOLD_TIMES,
  createAttributableFailure,
  createFailurePacket,
  decodeFailureMessage,
  deriveSharedSecrets,
  generateKey,
  holdTimeUnits,
  HOLD_TIME_UNIT_MS,
  readAttribution,
  unwrapAttributedFailure,
  unwrapFailure,
  wrapAttributableFailure,
  wrapFailurePacket,
  type FailureMessage,
} from '../../onion/index.js';

const v = errorsVector;
const p = v.parameters;
const secrets = vectorSecrets;
/** The vector lists hold times in the order the failure travels: htlc_hold_time[0] is the erring node's (node 4). */
const holdMs = (node: number): number => p.hops[p.hops.length - 1 - node]!.htlc_hold_time * HOLD_TIME_UNIT_MS;
const failure = vectorFailure;
const paddedLength = VECTOR_PADDED_LENGTH;
const expectedHoldTimesMs = p.hops.map((_, node) => holdMs(node));

describe('attribution data: the BOLT 4 failure vector', () => {
  it('the vector has what the tests below walk', () => {
    assert.equal(v.forwarding.length, p.hops.length);
    assert.equal(v.success_attribution_data.length, p.hops.length);
    assert.deepEqual(expectedHoldTimesMs, [500, 400, 300, 200, 100]);
    for (const f of v.forwarding) assert.equal(f.attribution_data.length, 2 * ATTRIBUTION_DATA_LENGTH);
  });

  it('creation at node 4: the raw packet, the packet it sends and its attribution data', () => {
    const src = p.failure_source_node;
    assert.equal(bytesToHex(secrets[src]!), v.creation.shared_secret);
    assert.equal(bytesToHex(generateKey('um', secrets[src]!)), v.creation.um_key);
    const out = createAttributableFailure(secrets[src]!, failure, holdMs(src), { paddedLength });
    assert.equal(bytesToHex(wrapFailurePacket(secrets[src]!, out.reason)), v.creation.raw_error_packet);
    assert.equal(v.forwarding[0]!.node, src);
    assert.equal(bytesToHex(out.reason), v.forwarding[0]!.error_packet);
    assert.equal(bytesToHex(out.attributionData), v.forwarding[0]!.attribution_data);
    // the legacy packet is unchanged by attribution
    assert.equal(bytesToHex(out.reason), bytesToHex(createFailurePacket(secrets[src]!, failure, { paddedLength })));
  });

  for (let step = 1; step < v.forwarding.length; step++) {
    const f = v.forwarding[step]!;
    it(`forwarding at node ${f.node}: packet and attribution data leaving it`, () => {
      const prev = v.forwarding[step - 1]!;
      const ss = secrets[f.node]!;
      assert.equal(bytesToHex(ss), f.shared_secret);
      const out = wrapAttributableFailure(ss, hexToBytes(prev.error_packet), hexToBytes(prev.attribution_data), holdMs(f.node));
      assert.equal(bytesToHex(out.reason), f.error_packet);
      assert.equal(bytesToHex(out.attributionData), f.attribution_data);
    });
  }

  it('the whole way back from node 4, computed, equals every entry', () => {
    let cur = createAttributableFailure(secrets[4]!, failure, holdMs(4), { paddedLength });
    for (const [step, f] of v.forwarding.entries()) {
      if (step > 0) cur = wrapAttributableFailure(secrets[f.node]!, cur.reason, cur.attributionData, holdMs(f.node));
      assert.equal(bytesToHex(cur.reason), f.error_packet, `packet leaving node ${f.node}`);
      assert.equal(bytesToHex(cur.attributionData), f.attribution_data, `attribution leaving node ${f.node}`);
    }
  });

  it('the origin: node 4 failed, every hold time verified', () => {
    const last = v.forwarding[v.forwarding.length - 1]!;
    const out = unwrapAttributedFailure(hexToBytes(last.error_packet), hexToBytes(last.attribution_data), secrets);
    assert.deepEqual(out, {
      kind: 'failure',
      hopIndex: 4,
      failure,
      attribution: { holdTimesMs: expectedHoldTimesMs, lastVerifiedHop: 4 },
    });
    assert.deepEqual(readAttribution(hexToBytes(last.attribution_data), secrets, hexToBytes(last.error_packet)), {
      holdTimesMs: expectedHoldTimesMs,
      lastVerifiedHop: 4,
    });
  });

  it('the origin: the attribution data each intermediate node sent verifies for the hops up to that node', () => {
    // what node k sent is what the origin would get on a route ending there, with the hops before k peeled
    for (const f of v.forwarding) {
      const route = secrets.slice(f.node);
      // the packet as node f.node sent it, seen by an origin whose first hop is f.node
      const got = readAttribution(hexToBytes(f.attribution_data), route, hexToBytes(f.error_packet));
      assert.deepEqual(got.holdTimesMs, expectedHoldTimesMs.slice(f.node), `from node ${f.node}`);
      assert.equal(got.lastVerifiedHop, route.length - 1);
    }
  });

  it('without attribution data the answer is unwrapFailure’s', () => {
    const last = v.forwarding[v.forwarding.length - 1]!;
    assert.deepEqual(unwrapAttributedFailure(hexToBytes(last.error_packet), undefined, secrets), {
      kind: 'failure',
      hopIndex: 4,
      failure,
    });
  });
});

describe('attribution data: the BOLT 4 success vector', () => {
  it('every node’s entry, from the final node back', () => {
    let cur: Uint8Array | undefined;
    for (const s of v.success_attribution_data) {
      cur = addAttribution(secrets[s.node]!, cur, holdMs(s.node));
      assert.equal(bytesToHex(cur), s.attribution_data, `node ${s.node}`);
    }
    assert.deepEqual(
      v.success_attribution_data.map((s) => s.node),
      [4, 3, 2, 1, 0],
    );
  });

  for (let step = 1; step < 5; step++) {
    it(`entry ${step} from entry ${step - 1} alone`, () => {
      const prev = v.success_attribution_data[step - 1]!;
      const s = v.success_attribution_data[step]!;
      assert.equal(bytesToHex(addAttribution(secrets[s.node]!, hexToBytes(prev.attribution_data), holdMs(s.node))), s.attribution_data);
    });
  }

  it('the origin reads every hold time', () => {
    const last = v.success_attribution_data[v.success_attribution_data.length - 1]!;
    assert.deepEqual(readAttribution(hexToBytes(last.attribution_data), secrets), { holdTimesMs: expectedHoldTimesMs, lastVerifiedHop: 4 });
  });

  it('a success entry does not verify as a failure’s and the reverse', () => {
    const ok = v.success_attribution_data[4]!.attribution_data;
    const fail = v.forwarding[4]!;
    assert.equal(readAttribution(hexToBytes(ok), secrets, hexToBytes(fail.error_packet)).lastVerifiedHop, -1);
    assert.equal(readAttribution(hexToBytes(fail.attribution_data), secrets).lastVerifiedHop, -1);
  });
});

describe('the legacy vector inside bolt04-errors.json', () => {
  it('create at hop 4, wrap back, unwrap: with attribution added on the way, the same packet and hop', () => {
    const g = v.legacy_onion_error_test.generate;
    const ss = deriveSharedSecrets(
      g.hops.map((h) => hexToBytes(h.pubkey)),
      hexToBytes(g.session_key),
    );
    g.hops.forEach((h, i) => {
      assert.equal(bytesToHex(ss[i]!), h.hop_shared_secret);
      assert.equal(bytesToHex(generateKey('ammag', ss[i]!)), h.ammag_key);
    });
    const f = decodeFailureMessage(hexToBytes(g.failure_message));
    let cur = createAttributableFailure(ss[4]!, f, 0);
    for (let i = 3; i >= 0; i--) cur = wrapAttributableFailure(ss[i]!, cur.reason, cur.attributionData, (i + 1) * 1000);
    assert.equal(bytesToHex(cur.reason), v.legacy_onion_error_test.errorpacket);
    assert.deepEqual(unwrapAttributedFailure(cur.reason, cur.attributionData, ss), {
      kind: 'failure',
      hopIndex: 4,
      failure: f,
      attribution: { holdTimesMs: [1000, 2000, 3000, 4000, 0], lastVerifiedHop: 4 },
    });
  });
});

describe('attribution data: tampering and edge cases', () => {
  const route = Array.from({ length: 5 }, () => randomBytes(32));
  const f: FailureMessage = { name: 'temporary_node_failure' };

  /** A failure from `src` back to the origin; `mangle(i, pkt)` may change what hop i received before it acts. */
  function failBack(src: number, mangle?: (hop: number, p: { reason: Uint8Array; attributionData: Uint8Array }) => void) {
    const cur = createAttributableFailure(route[src]!, f, 100 * (src + 1));
    let out = cur;
    for (let i = src - 1; i >= 0; i--) {
      mangle?.(i, out);
      out = wrapAttributableFailure(route[i]!, out.reason, out.attributionData, 100 * (i + 1));
    }
    return out;
  }

  it('a failure from a middle hop: hold times for the hops up to it', () => {
    const out = failBack(2);
    assert.deepEqual(unwrapAttributedFailure(out.reason, out.attributionData, route), {
      kind: 'failure',
      hopIndex: 2,
      failure: f,
      attribution: { holdTimesMs: [100, 200, 300], lastVerifiedHop: 2 },
    });
  });

  for (let hop = 0; hop < 4; hop++) {
    it(`hop ${hop} flips a byte of the attribution data it received: hop ${hop + 1}'s HMAC is the one that breaks`, () => {
      // bytes the origin checks: the sender's hold time and its HMAC for its position (3 - hop)
      for (const at of [0, 3, ATTRIBUTION_HOLD_TIMES + (19 - (3 - hop)) * 4]) {
        const out = failBack(4, (i, pk) => {
          if (i === hop) pk.attributionData[at]! ^= 1;
        });
        const u = unwrapAttributedFailure(out.reason, out.attributionData, route);
        assert.equal(u.kind, 'failure');
        assert.equal(u.attribution?.lastVerifiedHop, hop, `byte ${at}`);
        assert.deepEqual(u.attribution?.holdTimesMs, [100, 200, 300, 400, 500].slice(0, hop + 1));
      }
    });

    it(`hop ${hop} flips a byte of the packet it received: unreadable, and the attribution names hop ${hop + 1}`, () => {
      const out = failBack(4, (i, pk) => {
        if (i === hop) pk.reason[40]! ^= 1;
      });
      assert.deepEqual(unwrapFailure(out.reason, route), { kind: 'unreadable' });
      const u = unwrapAttributedFailure(out.reason, out.attributionData, route);
      assert.equal(u.kind, 'unreadable');
      assert.equal(u.hopIndex, hop + 1);
      assert.equal(u.attribution?.lastVerifiedHop, hop);
    });
  }

  it('a hop that drops the attribution data: the hops before it still report, up to it', () => {
    const out = failBack(4, (i, pk) => {
      if (i === 1) pk.attributionData.fill(0);
    });
    const u = unwrapAttributedFailure(out.reason, out.attributionData, route);
    assert.equal(u.kind, 'failure');
    assert.deepEqual(u.attribution, { holdTimesMs: [100, 200], lastVerifiedHop: 1 });
    // a hop that received none starts from zeros: the same verification
    let cur = createAttributableFailure(route[4]!, f, 0);
    const reason3 = wrapFailurePacket(route[3]!, cur.reason);
    cur = wrapAttributableFailure(route[2]!, reason3, undefined, 300);
    cur = wrapAttributableFailure(route[1]!, cur.reason, cur.attributionData, 200);
    cur = wrapAttributableFailure(route[0]!, cur.reason, cur.attributionData, 100);
    const w = unwrapAttributedFailure(cur.reason, cur.attributionData, route);
    assert.equal(w.kind, 'failure');
    assert.deepEqual(w.attribution, { holdTimesMs: [100, 200, 300], lastVerifiedHop: 2 });
  });

  it('a corrupted success attribution names the hop whose HMAC broke', () => {
    for (let hop = 0; hop < 5; hop++) {
      let cur: Uint8Array | undefined;
      for (let i = 4; i >= 0; i--) {
        if (cur !== undefined && i === hop - 1) cur[0]! ^= 0x80;
        cur = addAttribution(route[i]!, cur, 100 * (i + 1));
      }
      if (hop === 0) cur![2]! ^= 1; // the first hop's own data, broken on its way to us
      const r = readAttribution(cur!, route);
      assert.equal(r.lastVerifiedHop, hop - 1, `hop ${hop}`);
      assert.deepEqual(r.holdTimesMs, [100, 200, 300, 400, 500].slice(0, hop));
    }
  });

  it('hold times: units of 100 ms, rounded down, clamped to a u32', () => {
    assert.equal(holdTimeUnits(0), 0);
    assert.equal(holdTimeUnits(99), 0);
    assert.equal(holdTimeUnits(100), 1);
    assert.equal(holdTimeUnits(12_345), 123);
    assert.equal(holdTimeUnits(-5), 0);
    assert.equal(holdTimeUnits(Number.NaN), 0);
    assert.equal(holdTimeUnits(1e15), 0xffffffff);
    const data = addAttribution(route[0]!, undefined, 1e15);
    assert.deepEqual(readAttribution(data, route.slice(0, 1)).holdTimesMs, [0xffffffff * 100]);
  });

  it('routes longer than 20 hops cannot be checked; an empty route reads nothing', () => {
    const long = Array.from({ length: 21 }, () => randomBytes(32));
    const data = addAttribution(long[20]!, undefined, 100);
    assert.deepEqual(readAttribution(data, long), { holdTimesMs: [], lastVerifiedHop: -1 });
    assert.deepEqual(readAttribution(data, []), { holdTimesMs: [], lastVerifiedHop: -1 });
    // 20 hops: every one verifies
    let cur: Uint8Array | undefined;
    for (let i = 19; i >= 0; i--) cur = addAttribution(long[i]!, cur, i * 100);
    const r = readAttribution(cur!, long.slice(0, 20));
    assert.equal(r.lastVerifiedHop, 19);
    assert.deepEqual(
      r.holdTimesMs,
      Array.from({ length: 20 }, (_, i) => i * 100),
    );
  });

  it('bad lengths are ArgumentErrors', () => {
    assert.throws(() => addAttribution(route[0]!, new Uint8Array(919), 0), ArgumentError);
    assert.throws(() => addAttribution(route[0]!, new Uint8Array(921), 0), ArgumentError);
    assert.throws(() => addAttribution(new Uint8Array(31), undefined, 0), ArgumentError);
    assert.throws(() => readAttribution(new Uint8Array(0), route), ArgumentError);
    assert.throws(() => wrapAttributableFailure(route[0]!, new Uint8Array(292), new Uint8Array(10), 0), ArgumentError);
    assert.throws(() => createAttributableFailure(new Uint8Array(0), f, 0), ArgumentError);
  });

  it('random attribution data and packets never throw at the origin', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 920, maxLength: 920 }), fc.uint8Array({ maxLength: 400 }), (data, pkt) => {
        const u = unwrapAttributedFailure(pkt, data, route);
        assert.ok(['failure', 'malformed', 'unreadable'].includes(u.kind));
        assert.ok(u.attribution !== undefined && u.attribution.lastVerifiedHop < route.length);
      }),
      { numRuns: 200 },
    );
  });
});
