/**
 * BOLT 1 setup/control messages and the message table: the spec's `init`
 * extension examples (Appendix C), hand-built byte layouts, the odd/even rule
 * for unknown types, BOLT 7 address descriptors, round trips of random
 * messages, and random bytes into every decoder.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, concatBytes, hexToBytes } from '../../wire/bytes.js';
import { AmpnodeError, ArgumentError, DecodeError } from '../../wire/errors.js';
import { FeatureVector } from '../../wire/features.js';
import { MessageType, decodeMessage, encodeMessage, messageCodec, messageName, type Message } from '../../wire/messages.js';
import {
  encodeAddressDescriptor,
  errorCodec,
  formatAddress,
  initCodec,
  ipAddressDescriptor,
  parseAddressDescriptor,
  pingCodec,
  pongCodec,
  setupMessageCodecs,
  warningCodec,
  type InitMessage,
} from '../../wire/setup-messages.js';

interface Vectors {
  init_message_extension: {
    base_init_message: string;
    valid: { message: string; description: string }[];
    invalid: { message: string; description: string }[];
  };
}
const V = JSON.parse(readFileSync(new URL('../fixtures/bolt01-tlv.json', import.meta.url), 'utf8')) as Vectors;

const code = (c: string) => (e: unknown) => {
  assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};

const REGTEST_GENESIS = hexToBytes('06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f');

describe('init extension (BOLT 1 Appendix C)', () => {
  const ext = V.init_message_extension;
  it('base message is an empty init', () => {
    const d = decodeMessage(hexToBytes(ext.base_init_message));
    assert.equal(d.kind, 'message');
    assert.deepEqual(d.kind === 'message' && d.message, {
      type: 16,
      globalFeatures: new Uint8Array(),
      features: new Uint8Array(),
      unknownTlvs: [],
    });
  });
  for (const t of ext.valid)
    it(`valid: ${t.description}`, () => {
      const d = decodeMessage(hexToBytes(t.message));
      assert.ok(d.kind === 'message' && d.message.type === MessageType.Init);
      const m = d.message as InitMessage;
      assert.ok(m.unknownTlvs.every((r) => r.type % 2n === 1n));
      // The extension is kept and re-sent unchanged.
      assert.equal(bytesToHex(encodeMessage(m)), t.message);
    });
  it('the two odd records are kept with their values', () => {
    const d = decodeMessage(hexToBytes(ext.valid[1]!.message));
    const m = (d.kind === 'message' ? d.message : null) as InitMessage;
    assert.deepEqual(m.unknownTlvs, [
      { type: 0xc9n, value: hexToBytes('2a') },
      { type: 0xcbn, value: hexToBytes('04') },
    ]);
  });
  const expected = ['ERR_TRUNCATED', 'ERR_TLV_UNKNOWN_EVEN', 'ERR_TLV_ORDER'];
  ext.invalid.forEach((t, i) =>
    it(`invalid: ${t.description}`, () => {
      assert.throws(() => decodeMessage(hexToBytes(t.message)), code(expected[i]!));
    }),
  );
});

describe('init', () => {
  it('encodes features, networks and remote_addr as BOLT 1 lays them out', () => {
    const m: InitMessage = {
      type: 16,
      globalFeatures: FeatureVector.fromBits([8, 12]).encode(),
      features: FeatureVector.fromBits([0, 9, 15]).encode(),
      networks: [REGTEST_GENESIS],
      remoteAddr: ipAddressDescriptor('127.0.0.1', 9735),
      unknownTlvs: [{ type: 5n, value: hexToBytes('ff') }],
    };
    const bytes = encodeMessage(m);
    assert.equal(
      bytesToHex(bytes),
      '0010' + '0002' + '1100' + '0002' + '8201' + '0120' + bytesToHex(REGTEST_GENESIS) + '0307' + '017f0000012607' + '0501ff',
    );
    const d = decodeMessage(bytes);
    assert.deepEqual(d, { kind: 'message', message: m });
  });
  it('networks must be whole chain hashes', () => {
    assert.throws(() => initCodec.decode(hexToBytes('00000000' + '0101aa')), code('ERR_TLV_LENGTH'));
    assert.deepEqual(initCodec.decode(hexToBytes('00000000' + '0100')).networks, []);
  });
  it('truncated feature fields fail', () => {
    assert.throws(() => initCodec.decode(hexToBytes('0002aa')), code('ERR_TRUNCATED'));
    assert.throws(() => initCodec.decode(hexToBytes('00000003aabb')), code('ERR_TRUNCATED'));
  });
  it('refuses to encode known or even types as unknownTlvs', () => {
    const base: InitMessage = { type: 16, globalFeatures: new Uint8Array(), features: new Uint8Array(), unknownTlvs: [] };
    assert.throws(() => initCodec.encode({ ...base, unknownTlvs: [{ type: 3n, value: new Uint8Array() }] }), ArgumentError);
    assert.throws(() => initCodec.encode({ ...base, unknownTlvs: [{ type: 4n, value: new Uint8Array() }] }), ArgumentError);
  });
});

describe('error, warning, ping, pong', () => {
  const cid = hexToBytes('11'.repeat(32));
  it('error and warning: channel_id, u16 length, data', () => {
    const data = new TextEncoder().encode('boom');
    assert.equal(bytesToHex(encodeMessage({ type: 17, channelId: cid, data })), '0011' + '11'.repeat(32) + '0004' + '626f6f6d');
    assert.equal(bytesToHex(encodeMessage({ type: 1, channelId: cid, data })), '0001' + '11'.repeat(32) + '0004' + '626f6f6d');
    assert.deepEqual(errorCodec.decode(concatBytes(cid, hexToBytes('0000'))), { type: 17, channelId: cid, data: new Uint8Array() });
    assert.throws(() => warningCodec.decode(concatBytes(cid, hexToBytes('0005aa'))), code('ERR_TRUNCATED'));
    assert.throws(() => errorCodec.decode(cid.subarray(0, 31)), code('ERR_TRUNCATED'));
    assert.throws(() => errorCodec.encode({ type: 17, channelId: cid.subarray(1), data }), ArgumentError);
  });
  it('ping and pong', () => {
    assert.equal(bytesToHex(encodeMessage({ type: 18, numPongBytes: 4, ignored: new Uint8Array(3) })), '0012' + '0004' + '0003' + '000000');
    assert.equal(bytesToHex(encodeMessage({ type: 19, ignored: new Uint8Array(2) })), '0013' + '0002' + '0000');
    // num_pong_bytes ≥ 65532 is legal on the wire (the receiver just does not answer).
    assert.deepEqual(pingCodec.decode(hexToBytes('ffff0000')), { type: 18, numPongBytes: 65535, ignored: new Uint8Array() });
    assert.throws(() => pingCodec.decode(hexToBytes('0001')), code('ERR_TRUNCATED'));
    assert.throws(() => pongCodec.decode(hexToBytes('0002aa')), code('ERR_TRUNCATED'));
    assert.throws(() => pingCodec.encode({ type: 18, numPongBytes: 70000, ignored: new Uint8Array() }), ArgumentError);
  });
  it('trailing bytes after error/warning/ping/pong (an extension with no defined records) are ignored', () => {
    for (const tail of ['', '02', 'ca012a', 'fd']) {
      assert.deepEqual(errorCodec.decode(concatBytes(cid, hexToBytes('0001aa' + tail))), {
        type: 17,
        channelId: cid,
        data: hexToBytes('aa'),
      });
      assert.deepEqual(pingCodec.decode(hexToBytes('00010000' + tail)), { type: 18, numPongBytes: 1, ignored: new Uint8Array() });
      assert.deepEqual(pongCodec.decode(hexToBytes('0000' + tail)), { type: 19, ignored: new Uint8Array() });
    }
  });
  it('decoded bytes are copies, not views of the input', () => {
    const input = hexToBytes('0013000201' + '02');
    const d = decodeMessage(input);
    input[5] = 0xee;
    assert.ok(d.kind === 'message' && d.message.type === 19);
    assert.equal(bytesToHex((d.message as { ignored: Uint8Array }).ignored), '0102');
  });
});

describe('message table', () => {
  it('types, names and codecs', () => {
    assert.deepEqual(MessageType, { Warning: 1, Init: 16, Error: 17, Ping: 18, Pong: 19 });
    for (const c of setupMessageCodecs) {
      assert.equal(messageCodec(c.type), c);
      assert.equal(messageName(c.type), c.name);
    }
    assert.equal(messageName(16), 'init');
    assert.equal(messageName(128), 'update_add_htlc');
    assert.equal(messageName(32769), 'unknown_32769');
  });
  it('unknown odd types are returned for the caller to ignore; unknown even types fail', () => {
    assert.deepEqual(decodeMessage(hexToBytes('8001abcd')), { kind: 'unknown_odd', type: 0x8001, payload: hexToBytes('abcd') });
    assert.deepEqual(decodeMessage(hexToBytes('0003')), { kind: 'unknown_odd', type: 3, payload: new Uint8Array() });
    assert.throws(() => decodeMessage(hexToBytes('8000abcd')), code('ERR_UNKNOWN_EVEN_MESSAGE'));
    assert.throws(() => decodeMessage(hexToBytes('0000')), code('ERR_UNKNOWN_EVEN_MESSAGE'));
  });
  it('fewer than two bytes is ERR_TRUNCATED', () => {
    assert.throws(() => decodeMessage(new Uint8Array()), code('ERR_TRUNCATED'));
    assert.throws(() => decodeMessage(hexToBytes('00')), code('ERR_TRUNCATED'));
  });
  it('encoding a type without a codec is a caller error', () => {
    assert.throws(() => encodeMessage({ type: 99 } as unknown as Message), ArgumentError);
  });
});

describe('BOLT 7 address descriptors', () => {
  const cases: [string, string, string][] = [
    ['ipv4', '01c0a80001' + '2607', '192.168.0.1:9735'],
    ['ipv6', '02' + '20010db8000000000000000000000001' + '2607', '[2001:db8::1]:9735'],
    ['ipv6 no run', '02' + '00010002000300040005000600070008' + '0001', '[1:2:3:4:5:6:7:8]:1'],
    ['ipv6 loopback', '02' + '00000000000000000000000000000001' + '2607', '[::1]:9735'],
    ['torv3', '04' + 'ab'.repeat(35) + '2607', 'vov2xk5lvov2xk5lvov2xk5lvov2xk5lvov2xk5lvov2xk5lvov2xk5l.onion:9735'],
    ['dns', '05' + '0b' + Buffer.from('example.com').toString('hex') + '2607', 'example.com:9735'],
  ];
  for (const [name, hex, text] of cases)
    it(`${name}: ${text}`, () => {
      const a = parseAddressDescriptor(hexToBytes(hex));
      assert.equal(formatAddress(a), text);
      assert.equal(bytesToHex(encodeAddressDescriptor(a)), hex);
    });
  it('from a socket address', () => {
    assert.equal(bytesToHex(ipAddressDescriptor('::ffff:10.0.0.1', 1)), '010a0000010001');
    assert.equal(bytesToHex(ipAddressDescriptor('fe80::1:2', 2)), '02fe800000000000000000000000010002' + '0002');
    assert.equal(bytesToHex(ipAddressDescriptor('::ffff:1.2.3.4', 3)), '01010203040003');
    assert.throws(() => ipAddressDescriptor('example.com', 1), ArgumentError);
  });
  it('rejects bad descriptors', () => {
    for (const hex of ['', '01c0a800012607ff', '01c0a80001', '03' + '00'.repeat(12), '06', '0501202607', '05020000'])
      assert.throws(
        () => parseAddressDescriptor(hexToBytes(hex)),
        (e: unknown) => e instanceof DecodeError,
      );
  });
  it('round-trips random IPv4/IPv6 addresses', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 0xffff }), (host, port) => {
        const d = ipAddressDescriptor(host, port);
        const a = parseAddressDescriptor(d);
        assert.equal(a.kind === 'ipv4' || a.kind === 'ipv6' ? a.port : -1, port);
        assert.equal(bytesToHex(encodeAddressDescriptor(a)), bytesToHex(d));
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------- properties

const bytesArb = (max: number) => fc.uint8Array({ maxLength: max });
const u16 = fc.integer({ min: 0, max: 0xffff });
const oddTlvs = fc
  .uniqueArray(
    fc.bigInt({ min: 2n, max: 1n << 40n }).map((t) => t | 1n),
    { maxLength: 3 },
  )
  .map((ts) => ts.filter((t) => t !== 3n).sort((a, b) => (a < b ? -1 : 1)))
  .chain((ts) => fc.tuple(...ts.map((type) => bytesArb(20).map((value) => ({ type, value })))));

const plain = <T extends object>(a: fc.Arbitrary<T>): fc.Arbitrary<T> => a.map((r) => ({ ...r }));

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc
    .record({
      globalFeatures: bytesArb(20),
      features: bytesArb(300),
      networks: fc.option(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 3 }), { nil: undefined }),
      remoteAddr: fc.option(bytesArb(40), { nil: undefined }),
      unknownTlvs: oddTlvs,
    })
    .map((r): Message => {
      const m: InitMessage = { type: 16, globalFeatures: r.globalFeatures, features: r.features, unknownTlvs: r.unknownTlvs };
      if (r.networks !== undefined) m.networks = r.networks;
      if (r.remoteAddr !== undefined) m.remoteAddr = r.remoteAddr;
      return m;
    }),
  plain(fc.record({ type: fc.constant(17 as const), channelId: fc.uint8Array({ minLength: 32, maxLength: 32 }), data: bytesArb(200) })),
  plain(fc.record({ type: fc.constant(1 as const), channelId: fc.uint8Array({ minLength: 32, maxLength: 32 }), data: bytesArb(200) })),
  plain(fc.record({ type: fc.constant(18 as const), numPongBytes: u16, ignored: bytesArb(200) })),
  plain(fc.record({ type: fc.constant(19 as const), ignored: bytesArb(200) })),
);

describe('message properties', () => {
  it('every message round-trips through encodeMessage / decodeMessage', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const bytes = encodeMessage(m);
        assert.deepEqual(decodeMessage(bytes), { kind: 'message', message: m });
        assert.equal(bytesToHex(encodeMessage((decodeMessage(bytes) as { message: Message }).message)), bytesToHex(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it('random bytes into every decoder: a message, unknown_odd, or an AmpnodeError — nothing else', () => {
    const typed = fc
      .tuple(fc.constantFrom(1, 16, 17, 18, 19, 0x8001, 0x8000), bytesArb(80))
      .map(([t, p]) => concatBytes(hexToBytes(t.toString(16).padStart(4, '0')), p));
    fc.assert(
      fc.property(
        fc.oneof(
          bytesArb(80),
          typed,
          messageArb.map((m) => encodeMessage(m).subarray(0, 60)),
        ),
        (bytes) => {
          const attempts: (() => unknown)[] = [() => decodeMessage(bytes), ...setupMessageCodecs.map((c) => () => c.decode(bytes))];
          for (const f of attempts) {
            try {
              const out = f();
              assert.ok(out !== undefined && out !== null && typeof out === 'object');
            } catch (e) {
              assert.ok(e instanceof AmpnodeError, `not an AmpnodeError: ${String(e)}`);
            }
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('an empty DNS hostname is refused when parsed, as when encoded (found by the property below)', () => {
    assert.throws(
      () => parseAddressDescriptor(Uint8Array.from([5, 0, 0, 0])),
      (e) => e instanceof DecodeError && e.code === 'ERR_INVALID_VALUE',
    );
    const one = parseAddressDescriptor(Uint8Array.from([5, 1, 0x61, 0x26, 0x07]));
    assert.deepEqual(one, { kind: 'dns', hostname: 'a', port: 9735 });
  });

  it('random bytes into the address and feature parsers', () => {
    fc.assert(
      fc.property(bytesArb(60), (bytes) => {
        try {
          const a = parseAddressDescriptor(bytes);
          assert.equal(bytesToHex(encodeAddressDescriptor(a)), bytesToHex(bytes));
        } catch (e) {
          assert.ok(e instanceof DecodeError, String(e));
        }
        assert.ok(
          FeatureVector.decode(bytes)
            .bits()
            .every((b) => b >= 0),
        );
      }),
      { numRuns: 2000 },
    );
  });
});
