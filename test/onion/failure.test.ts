/**
 * BOLT 4 failure messages and return packets: the legacy vector
 * (bolt04-onion-error-test.json and the same data inside
 * bolt04-errors.json), the non-attribution half of the newer
 * vector (failure TLV extension, 1024-byte padding), typed codecs of every
 * code, and fuzzing of the origin's unwrap.
 */
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { DecodeError } from '../../wire/errors.js';
import { randomBytes } from '../../wire/crypto.js';
import { errorsVector, vectorFailure, vectorSecrets, VECTOR_PADDED_LENGTH } from './errors-vector.js';
import {
  channelUpdateBody,
  createFailurePacket,
  decodeFailureMessage,
  deriveSharedSecrets,
  encodeFailureMessage,
  encodeFailurePayload,
  failureCode,
  FailureCode,
  generateCipherStream,
  generateKey,
  unwrapFailure,
  wrapFailurePacket,
  type FailureMessage,
} from '../../onion/index.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));

interface LegacyVector {
  generate: {
    session_key: string;
    failure_message: string;
    hops: { pubkey: string; hop_shared_secret: string; ammag_key: string; um_key?: string; payload?: string }[];
  };
  errorpacket: string;
}

function checkLegacy(v: LegacyVector) {
  const g = v.generate;
  const secrets = deriveSharedSecrets(
    g.hops.map((h) => hexToBytes(h.pubkey)),
    hexToBytes(g.session_key),
  );
  g.hops.forEach((h, i) => {
    assert.equal(bytesToHex(secrets[i]!), h.hop_shared_secret, `hop ${i} shared secret`);
    assert.equal(bytesToHex(generateKey('ammag', secrets[i]!)), h.ammag_key, `hop ${i} ammag`);
    if (h.um_key !== undefined) assert.equal(bytesToHex(generateKey('um', secrets[i]!)), h.um_key);
  });
  const source = g.hops.length - 1;
  const failure = decodeFailureMessage(hexToBytes(g.failure_message));
  assert.deepEqual(failure, { name: 'temporary_node_failure' });
  assert.equal(bytesToHex(encodeFailurePayload(failure)), g.hops[source]!.payload);
  let packet = createFailurePacket(secrets[source]!, failure);
  for (let i = source - 1; i >= 0; i--) packet = wrapFailurePacket(secrets[i]!, packet);
  assert.equal(bytesToHex(packet), v.errorpacket);
  assert.deepEqual(unwrapFailure(hexToBytes(v.errorpacket), secrets), { kind: 'failure', hopIndex: source, failure });
}

describe('legacy error vector', () => {
  it('bolt04-onion-error-test.json: create at hop 4, wrap at every hop, unwrap at the origin', () => {
    checkLegacy(fixture('bolt04-onion-error-test.json') as LegacyVector);
  });
  it('bolt04-errors.json legacy_onion_error_test: same', () => {
    checkLegacy(fixture('bolt04-errors.json').legacy_onion_error_test as LegacyVector);
  });
});

describe('error vector with failure TLV extension (non-attribution part)', () => {
  const v = errorsVector;
  const p = v.parameters;
  const secrets = vectorSecrets;
  const failure = vectorFailure;
  const paddedLength = VECTOR_PADDED_LENGTH;

  it('creation: failure message, payload, um key, raw packet', () => {
    const src = secrets[p.failure_source_node]!;
    assert.equal(bytesToHex(src), v.creation.shared_secret);
    assert.equal(bytesToHex(generateKey('um', src)), v.creation.um_key);
    const msg = encodeFailureMessage(failure);
    // the vector's "encoded_failure_message" runs on into pad_len ‖ pad
    assert.ok(v.creation.encoded_failure_message.startsWith(bytesToHex(msg)));
    assert.deepEqual(decodeFailureMessage(msg), failure);
    const payload = encodeFailurePayload(failure, paddedLength);
    assert.equal(bytesToHex(payload), v.creation.payload);
    assert.ok(v.creation.encoded_failure_message.endsWith(bytesToHex(payload.subarray(2 + msg.length))));
    // un-obfuscating the created packet with the same ammag stream gives the raw packet
    const created = createFailurePacket(src, failure, { paddedLength });
    assert.equal(bytesToHex(wrapFailurePacket(src, created)), v.creation.raw_error_packet);
  });

  it('forwarding: keys, streams and the packet leaving every node; the origin names node 4', () => {
    let packet = createFailurePacket(secrets[p.failure_source_node]!, failure, { paddedLength });
    for (const [step, f] of v.forwarding.entries()) {
      const ss = secrets[f.node]!;
      assert.equal(bytesToHex(ss), f.shared_secret);
      assert.equal(bytesToHex(generateKey('ammag', ss)), f.ammag_key);
      assert.equal(bytesToHex(generateCipherStream(generateKey('ammag', ss), f.stream.length / 2)), f.stream);
      if (step > 0) packet = wrapFailurePacket(ss, packet);
      assert.equal(bytesToHex(packet), f.error_packet, `packet leaving node ${f.node}`);
    }
    const last = v.forwarding[v.forwarding.length - 1]!;
    assert.deepEqual(unwrapFailure(hexToBytes(last.error_packet), secrets), {
      kind: 'failure',
      hopIndex: p.failure_source_node,
      failure,
    });
  });
});

describe('failure codes and codecs', () => {
  it('codes match BOLT 4 / lnd', () => {
    const expect: Record<string, number> = {
      temporary_node_failure: 0x2002,
      permanent_node_failure: 0x6002,
      required_node_feature_missing: 0x6003,
      invalid_onion_version: 0xc004,
      invalid_onion_hmac: 0xc005,
      invalid_onion_key: 0xc006,
      temporary_channel_failure: 0x1007,
      permanent_channel_failure: 0x4008,
      required_channel_feature_missing: 0x4009,
      unknown_next_peer: 0x400a,
      amount_below_minimum: 0x100b,
      fee_insufficient: 0x100c,
      incorrect_cltv_expiry: 0x100d,
      expiry_too_soon: 0x100e,
      incorrect_or_unknown_payment_details: 0x400f,
      incorrect_payment_amount: 0x4010,
      final_expiry_too_soon: 17,
      final_incorrect_cltv_expiry: 18,
      final_incorrect_htlc_amount: 19,
      channel_disabled: 0x1014,
      expiry_too_far: 21,
      invalid_onion_payload: 0x4016,
      mpp_timeout: 23,
      invalid_onion_blinding: 0xc018,
      invalid_realm: 0x4001,
    };
    assert.deepEqual({ ...FailureCode }, expect);
  });

  const cu = hexToBytes('0102' + 'ab'.repeat(130));
  const samples: [FailureMessage, string][] = [
    [{ name: 'temporary_node_failure' }, '2002'],
    [{ name: 'mpp_timeout' }, '0017'],
    [{ name: 'expiry_too_far' }, '0015'],
    [{ name: 'invalid_onion_hmac', sha256OfOnion: new Uint8Array(32).fill(1) }, 'c005' + '01'.repeat(32)],
    [{ name: 'invalid_onion_blinding', sha256OfOnion: new Uint8Array(32).fill(2) }, 'c018' + '02'.repeat(32)],
    [{ name: 'temporary_channel_failure', channelUpdate: new Uint8Array(0) }, '10070000'],
    [{ name: 'temporary_channel_failure', channelUpdate: cu }, '1007' + '0084' + bytesToHex(cu)],
    [{ name: 'amount_below_minimum', htlcMsat: 1000n, channelUpdate: cu }, '100b' + '00000000000003e8' + '0084' + bytesToHex(cu)],
    [{ name: 'fee_insufficient', htlcMsat: 7n, channelUpdate: cu.subarray(2) }, '100c' + '0000000000000007' + '0082' + 'ab'.repeat(130)],
    [{ name: 'incorrect_cltv_expiry', cltvExpiry: 500, channelUpdate: cu }, '100d' + '000001f4' + '0084' + bytesToHex(cu)],
    [{ name: 'expiry_too_soon', channelUpdate: cu }, '100e' + '0084' + bytesToHex(cu)],
    [{ name: 'channel_disabled', disabledFlags: 0, channelUpdate: cu }, '1014' + '0000' + '0084' + bytesToHex(cu)],
    [{ name: 'incorrect_or_unknown_payment_details', htlcMsat: 100n, height: 800000 }, '400f' + '0000000000000064' + '000c3500'],
    [{ name: 'final_incorrect_cltv_expiry', cltvExpiry: 144 }, '0012' + '00000090'],
    [{ name: 'final_incorrect_htlc_amount', incomingHtlcAmtMsat: 99n }, '0013' + '0000000000000063'],
    [{ name: 'invalid_onion_payload', tlvType: 5482373484n, offset: 3 }, '4016' + 'ff0000000146c6616c' + '0003'],
    [{ name: 'unknown', code: 0x2019, data: hexToBytes('0102') }, '20190102'],
    [{ name: 'unknown_next_peer', tlvs: [{ type: 1n, value: hexToBytes('aa') }] }, '400a' + '0101aa'],
  ];

  it('encodes and decodes every shape', () => {
    for (const [f, hex] of samples) {
      assert.equal(bytesToHex(encodeFailureMessage(f)), hex, f.name);
      assert.deepEqual(decodeFailureMessage(hexToBytes(hex)), f, f.name);
    }
  });

  it("strips lnd's optional channel_update type prefix", () => {
    assert.equal(bytesToHex(channelUpdateBody(cu)), 'ab'.repeat(130));
    assert.equal(bytesToHex(channelUpdateBody(cu.subarray(2))), 'ab'.repeat(130));
  });

  it('incorrect_or_unknown_payment_details without its later fields decodes as zeros (old senders)', () => {
    assert.deepEqual(decodeFailureMessage(hexToBytes('400f')), { name: 'incorrect_or_unknown_payment_details', htlcMsat: 0n, height: 0 });
  });

  it('malformed failure messages are DecodeErrors', () => {
    for (const hex of ['', '10', '1007', '100700ff00', 'c005' + '00'.repeat(31), '400a' + '0201aa0101bb', '0012000000']) {
      assert.throws(() => decodeFailureMessage(hexToBytes(hex)), DecodeError, hex);
    }
  });
});

describe('return packets', () => {
  const secrets = Array.from({ length: 5 }, () => randomBytes(32));

  it('round trip for every hop, every failure shape, padded to 256', () => {
    const shapes: FailureMessage[] = [
      { name: 'mpp_timeout' },
      { name: 'final_incorrect_cltv_expiry', cltvExpiry: 9 },
      { name: 'incorrect_or_unknown_payment_details', htlcMsat: 5n, height: 100 },
      { name: 'fee_insufficient', htlcMsat: 7n, channelUpdate: new Uint8Array(136).fill(3) },
      { name: 'invalid_onion_payload', tlvType: 14n, offset: 0 },
    ];
    for (const f of shapes) {
      for (let src = 0; src < secrets.length; src++) {
        let pkt = createFailurePacket(secrets[src]!, f);
        assert.equal(pkt.length, 32 + 2 + 2 + 256);
        for (let i = src - 1; i >= 0; i--) pkt = wrapFailurePacket(secrets[i]!, pkt);
        assert.deepEqual(unwrapFailure(pkt, secrets), { kind: 'failure', hopIndex: src, failure: f });
      }
    }
  });

  it('a corrupted packet is unreadable; a hop that authenticates garbage is named as malformed', () => {
    const pkt = createFailurePacket(secrets[2]!, { name: 'temporary_node_failure' });
    const wrapped = wrapFailurePacket(secrets[1]!, wrapFailurePacket(secrets[0]!, pkt));
    const bad = wrapped.slice();
    bad[40]! ^= 1;
    assert.deepEqual(unwrapFailure(bad, secrets), { kind: 'unreadable' });
    assert.deepEqual(unwrapFailure(wrapped, secrets.slice(0, 2)), { kind: 'unreadable' });
    // hop 1 builds a well-authenticated packet whose failure_len overruns
    const um = generateKey('um', secrets[1]!);
    const body = new Uint8Array(260);
    body[0] = 0xff;
    const mac = new Uint8Array(32);
    mac.set(nodeCrypto.createHmac('sha256', um).update(body).digest());
    const raw = new Uint8Array([...mac, ...body]);
    const obf = wrapFailurePacket(secrets[0]!, wrapFailurePacket(secrets[1]!, raw));
    const out = unwrapFailure(obf, secrets);
    assert.equal(out.kind, 'malformed');
    if (out.kind === 'malformed') assert.equal(out.hopIndex, 1);
  });

  it('random packets never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        const out = unwrapFailure(b, secrets);
        assert.ok(['failure', 'malformed', 'unreadable'].includes(out.kind));
      }),
      { numRuns: 300 },
    );
  });

  it('failure codes reported by a hop keep their flags', () => {
    const f: FailureMessage = { name: 'unknown', code: 0x8001, data: new Uint8Array(0) };
    const out = unwrapFailure(createFailurePacket(secrets[0]!, f), secrets);
    assert.equal(out.kind, 'failure');
    if (out.kind === 'failure') assert.equal(failureCode(out.failure), 0x8001);
  });
});
