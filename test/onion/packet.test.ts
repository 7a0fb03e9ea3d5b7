/**
 * BOLT 4 onion construction and peeling against the spec vectors
 * (bolt04-onion-test.json, bolt04-onion.json), BADONION outcomes, and
 * property tests: random or corrupted packets only ever give typed errors.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, hexToBytes, Reader } from '../../wire/bytes.js';
import { ArgumentError } from '../../wire/errors.js';
import { publicKeyFromPrivate, randomPrivateKey, sha256 } from '../../wire/crypto.js';
import {
  buildOnion,
  deriveSharedSecrets,
  encodeHopPayload,
  failureCode,
  FailureCode,
  OnionError,
  ONION_PACKET_LENGTH,
  peelOnion,
  type HopPayloadInput,
} from '../../onion/index.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));

interface SpecHop {
  pubkey: string;
  payload: string;
}
const verbatim = fixture('bolt04-onion-test.json') as {
  generate: { session_key: string; associated_data: string; hops: SpecHop[] };
  onion: string;
  decode: string[];
};
const reshaped = fixture('bolt04-onion.json') as {
  session_key: string;
  associated_data: string;
  hops: (SpecHop & { privkey: string })[];
  onion: string;
};

/** The spec's payloads carry their BigSize length; buildOnion takes the bare TLV. */
function stripLength(withLen: Uint8Array): Uint8Array {
  const r = new Reader(withLen);
  const n = Number(r.bigSize());
  const body = r.view(n);
  r.end();
  return body;
}

function checkVector(sessionKey: string, ad: string, hops: { pubkey: string; payload: string; privkey: string }[], onion: string) {
  const built = buildOnion(
    hops.map((h) => ({ pubkey: hexToBytes(h.pubkey), payload: stripLength(hexToBytes(h.payload)) })),
    hexToBytes(sessionKey),
    hexToBytes(ad),
  );
  assert.equal(bytesToHex(built.packet), onion);
  assert.equal(built.sharedSecrets.length, hops.length);

  let packet = hexToBytes(onion);
  for (let i = 0; i < hops.length; i++) {
    const hop = hops[i]!;
    const res = peelOnion(packet, hexToBytes(hop.privkey), hexToBytes(ad));
    assert.equal(bytesToHex(res.sharedSecret), bytesToHex(built.sharedSecrets[i]!), `hop ${i} shared secret`);
    assert.equal(bytesToHex(res.payloadBytes), bytesToHex(stripLength(hexToBytes(hop.payload))), `hop ${i} payload`);
    if (i < hops.length - 1) {
      assert.equal(res.kind, 'forward', `hop ${i} forwards`);
      if (res.kind !== 'forward') return;
      assert.equal(res.nextPacket.length, ONION_PACKET_LENGTH);
      assert.equal(res.payload.shortChannelId, BigInt(i + 1), `hop ${i} short_channel_id`);
      packet = res.nextPacket;
    } else {
      assert.equal(res.kind, 'final', 'last hop is final');
      assert.equal(res.payload.shortChannelId, undefined);
      assert.ok(res.payload.mpp, 'final payload carries payment_data');
    }
  }
}

describe('BOLT 4 onion vectors', () => {
  it('bolt04-onion-test.json: build byte for byte, peel at every hop', () => {
    const g = verbatim.generate;
    assert.equal(verbatim.decode.length, g.hops.length);
    checkVector(
      g.session_key,
      g.associated_data,
      g.hops.map((h, i) => ({ ...h, privkey: verbatim.decode[i]! })),
      verbatim.onion,
    );
  });

  it('bolt04-onion.json: build byte for byte, peel at every hop', () => {
    for (const h of reshaped.hops) assert.equal(bytesToHex(publicKeyFromPrivate(hexToBytes(h.privkey))), h.pubkey);
    checkVector(reshaped.session_key, reshaped.associated_data, reshaped.hops, reshaped.onion);
  });

  it('vector payloads decode to the expected fields', () => {
    const ad = hexToBytes(reshaped.associated_data);
    const first = peelOnion(hexToBytes(reshaped.onion), hexToBytes(reshaped.hops[0]!.privkey), ad);
    assert.equal(first.payload.amountToForwardMsat, 15000n);
    assert.equal(first.payload.outgoingCltvValue, 1500);
    assert.equal(first.payload.shortChannelId, 1n);
  });

  it('deriveSharedSecrets equals the secrets buildOnion reports', () => {
    const pubs = reshaped.hops.map((h) => hexToBytes(h.pubkey));
    const built = buildOnion(
      reshaped.hops.map((h) => ({ pubkey: hexToBytes(h.pubkey), payload: stripLength(hexToBytes(h.payload)) })),
      hexToBytes(reshaped.session_key),
      hexToBytes(reshaped.associated_data),
    );
    assert.deepEqual(deriveSharedSecrets(pubs, hexToBytes(reshaped.session_key)).map(bytesToHex), built.sharedSecrets.map(bytesToHex));
  });
});

describe('peelOnion BADONION outcomes', () => {
  const onion = hexToBytes(reshaped.onion);
  const priv = hexToBytes(reshaped.hops[0]!.privkey);
  const ad = hexToBytes(reshaped.associated_data);

  function expectBadOnion(packet: Uint8Array, code: string, name: keyof typeof FailureCode, adUsed = ad) {
    assert.throws(
      () => peelOnion(packet, priv, adUsed),
      (e: unknown) => {
        assert.ok(e instanceof OnionError);
        assert.equal(e.code, code);
        assert.equal(e.sharedSecret, null);
        assert.equal(e.failure.name, name);
        assert.equal(failureCode(e.failure), FailureCode[name]);
        assert.ok((failureCode(e.failure) & 0x8000) !== 0, 'BADONION flag');
        assert.ok('sha256OfOnion' in e.failure);
        assert.equal(bytesToHex(e.failure.sha256OfOnion), bytesToHex(sha256(packet)));
        return true;
      },
    );
  }

  it('version ≠ 0 → invalid_onion_version (0xc004)', () => {
    const p = onion.slice();
    p[0] = 1;
    expectBadOnion(p, 'ERR_ONION_VERSION', 'invalid_onion_version');
    assert.equal(FailureCode.invalid_onion_version, 0xc004);
  });

  it('invalid ephemeral key → invalid_onion_key (0xc006)', () => {
    const p = onion.slice();
    p[1] = 0x04; // not a compressed prefix
    expectBadOnion(p, 'ERR_ONION_KEY', 'invalid_onion_key');
    const q = onion.slice();
    q.fill(0xff, 2, 34); // x ≥ field prime: not on the curve
    expectBadOnion(q, 'ERR_ONION_KEY', 'invalid_onion_key');
  });

  it('bad HMAC, tampered payloads or wrong associated data → invalid_onion_hmac (0xc005)', () => {
    const p = onion.slice();
    p[ONION_PACKET_LENGTH - 1]! ^= 1;
    expectBadOnion(p, 'ERR_ONION_HMAC', 'invalid_onion_hmac');
    const q = onion.slice();
    q[100]! ^= 0x80;
    expectBadOnion(q, 'ERR_ONION_HMAC', 'invalid_onion_hmac');
    expectBadOnion(onion, 'ERR_ONION_HMAC', 'invalid_onion_hmac', new Uint8Array(32));
  });

  it('a packet that is not 1366 bytes is an ArgumentError', () => {
    assert.throws(() => peelOnion(onion.subarray(0, 1365), priv, ad), ArgumentError);
  });
});

describe('peelOnion payload failures carry the shared secret', () => {
  it('an intermediate payload without short_channel_id → invalid_onion_payload naming 6', () => {
    const nodes = [randomPrivateKey(), randomPrivateKey()];
    const ad = new Uint8Array(32).fill(7);
    const bad = encodeHopPayload({ amountToForwardMsat: 1000n, outgoingCltvValue: 500 }); // no 6
    const fin = encodeHopPayload({ amountToForwardMsat: 1000n, outgoingCltvValue: 500 });
    const { packet, sharedSecrets } = buildOnion(
      [
        { pubkey: publicKeyFromPrivate(nodes[0]!), payload: bad },
        { pubkey: publicKeyFromPrivate(nodes[1]!), payload: fin },
      ],
      randomPrivateKey(),
      ad,
    );
    assert.throws(
      () => peelOnion(packet, nodes[0]!, ad),
      (e: unknown) => {
        assert.ok(e instanceof OnionError);
        assert.equal(e.code, 'ERR_ONION_PAYLOAD');
        assert.equal(bytesToHex(e.sharedSecret!), bytesToHex(sharedSecrets[0]!));
        assert.deepEqual(e.failure, { name: 'invalid_onion_payload', tlvType: 6n, offset: 0 });
        return true;
      },
    );
  });
});

describe('onion round trips and fuzzing', () => {
  const payloadArb = (isFinal: boolean) =>
    fc
      .record({
        amt: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        cltv: fc.integer({ min: 0, max: 0xffffffff }),
        scid: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        meta: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
      })
      .map((r): HopPayloadInput => ({
        amountToForwardMsat: r.amt,
        outgoingCltvValue: r.cltv,
        ...(isFinal ? {} : { shortChannelId: r.scid }),
        ...(r.meta === undefined ? {} : { paymentMetadata: r.meta }),
      }));

  it('random routes: every hop peels its own payload; the last is final', () => {
    const keys = Array.from({ length: 6 }, () => randomPrivateKey());
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 6 })
          .chain((n) => fc.tuple(fc.constant(n), fc.array(payloadArb(false), { minLength: n - 1, maxLength: n - 1 }), payloadArb(true))),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        ([n, mids, last], ad) => {
          const payloads = [...mids, last].map((p) => encodeHopPayload(p));
          const built = buildOnion(
            payloads.map((payload, i) => ({ pubkey: publicKeyFromPrivate(keys[i]!), payload })),
            randomPrivateKey(),
            ad,
          );
          let packet = built.packet;
          for (let i = 0; i < n; i++) {
            const res = peelOnion(packet, keys[i]!, ad);
            assert.equal(bytesToHex(res.payloadBytes), bytesToHex(payloads[i]!));
            assert.equal(bytesToHex(res.sharedSecret), bytesToHex(built.sharedSecrets[i]!));
            if (i === n - 1) assert.equal(res.kind, 'final');
            else {
              assert.equal(res.kind, 'forward');
              if (res.kind === 'forward') packet = res.nextPacket;
            }
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('random and corrupted packets only give typed errors', () => {
    const priv = hexToBytes(reshaped.hops[0]!.privkey);
    const ad = hexToBytes(reshaped.associated_data);
    const onion = hexToBytes(reshaped.onion);
    const typed = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof OnionError || e instanceof ArgumentError, `untyped error: ${String(e)}`);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1400 }), (bytes) => typed(() => peelOnion(bytes, priv, ad))),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: ONION_PACKET_LENGTH, maxLength: ONION_PACKET_LENGTH }), (bytes) => {
        bytes[0] = 0;
        bytes.set(onion.subarray(1, 34), 1); // a valid key so the HMAC check is reached
        typed(() => peelOnion(bytes, priv, ad));
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(fc.nat({ max: ONION_PACKET_LENGTH - 1 }), fc.integer({ min: 1, max: 255 }), (pos, flip) => {
        const p = onion.slice();
        p[pos]! ^= flip;
        assert.throws(() => peelOnion(p, priv, ad), OnionError); // any single change is caught
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.nat({ max: ONION_PACKET_LENGTH - 1 }), (n) => {
        assert.throws(() => peelOnion(onion.subarray(0, n), priv, ad), ArgumentError);
      }),
      { numRuns: 50 },
    );
  });

  it('buildOnion refuses payloads that do not fit in 1300 bytes', () => {
    const pub = publicKeyFromPrivate(randomPrivateKey());
    assert.throws(
      () => buildOnion([{ pubkey: pub, payload: new Uint8Array(1300 - 32 - 3 + 1) }], randomPrivateKey(), new Uint8Array(32)),
      ArgumentError,
    );
    // exactly full fits
    const full = buildOnion([{ pubkey: pub, payload: new Uint8Array(1300 - 32 - 3) }], randomPrivateKey(), new Uint8Array(32));
    assert.equal(full.packet.length, ONION_PACKET_LENGTH);
  });
});
