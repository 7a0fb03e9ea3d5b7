/**
 * BOLT 11 invoices: every example of the spec (valid and invalid) and the
 * extra invalid ones eclair's suite carries, reader rules one by one on
 * invoices built here, the bech32 layer, the payer helpers, and property tests
 * (random and mutated strings throw only Bolt11Error; whatever decodes
 * re-serializes to itself).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  BECH32_CHARSET,
  Bech32Error,
  bech32Decode,
  bech32Encode,
  bytesToWords,
  decodeSegwitAddress,
  encodeSegwitAddress,
  wordsToBytes,
} from '../../wire/bech32.js';
import {
  BOLT11_NETWORKS,
  Bolt11Error,
  type Bolt11ErrorCode,
  type Bolt11Invoice,
  type Bolt11InvoiceContent,
  type Bolt11TaggedField,
  DEFAULT_EXPIRY_SECONDS,
  DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
  type DecodeInvoiceOptions,
  type HopHint,
  decodeInvoice,
  descriptionHashMatches,
  encodeInvoice,
  fallbackAddress,
  formatAmount,
  invoiceExpiresAt,
  invoiceFeatures,
  invoiceFields,
  invoiceSigningData,
  isAmpInvoice,
  isInvoiceExpired,
  requiresAmp,
  requiresMpp,
  requiresPaymentSecret,
  requiresVarOnion,
  serializeSignedInvoice,
  supportsMpp,
  supportsPaymentSecret,
  supportsVarOnion,
  tagLetter,
} from '../../wire/bolt11.js';
import { bytesToHex, concatBytes, hexToBytes } from '../../wire/bytes.js';
import { CURVE_ORDER, publicKeyFromPrivate, secp, sha256 } from '../../wire/crypto.js';
import { FeatureVector } from '../../wire/features.js';

// ---------------------------------------------------------------- fixture

interface VectorHop {
  pubkey: string;
  short_channel_id: string;
  short_channel_id_hex: string;
  fee_base_msat: number;
  fee_proportional_millionths: number;
  cltv_expiry_delta: number;
}

interface ValidVector {
  title: string;
  invoice: string;
  payee_pubkey: string;
  breakdown_text: string | null;
  decoded: {
    network: string;
    hrp: string;
    currency_prefix: string;
    amount_msat: number | null;
    timestamp: number;
    payment_hash: string;
    payment_secret: string;
    description: string | null;
    description_hash: string | null;
    expiry: number | null;
    min_final_cltv_expiry_delta: number | null;
    fallbacks: { version: number; type: string; program_hex: string; address: string }[];
    route_hints: VectorHop[][];
    features: { bits: number[]; word_count: number; words: string };
    metadata: string | null;
    payee_pubkey_n_field: string | null;
    ignored_fields: { tag: string; data_length: number; reason: string }[];
    signature: string;
    recovery_flag: number;
    signing_data: string;
    signing_hash: string;
    signature_is_high_s: boolean;
  };
}

interface InvalidVector {
  reason: string;
  invoice: string;
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/bolt11-invoices.json', import.meta.url), 'utf8')) as {
  signing_privkey: string;
  signing_pubkey: string;
  default_payment_secret: string;
  valid: ValidVector[];
  invalid: InvalidVector[];
  supplementary_invalid_from_eclair: { invoices: InvalidVector[] };
};

const PRIV = hexToBytes(fixture.signing_privkey);
const PUB = hexToBytes(fixture.signing_pubkey);
const OTHER_PRIV = new Uint8Array(32).fill(7);
const HALF_ORDER = CURVE_ORDER >> 1n;

function expectBolt11(f: () => unknown, code: Bolt11ErrorCode, what = ''): Bolt11Error {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof Bolt11Error, `${what}: expected a Bolt11Error, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected ${code}, nothing was thrown`);
}

function scidText(scid: bigint): string {
  return `${scid >> 40n}x${(scid >> 16n) & 0xffffffn}x${scid & 0xffffn}`;
}

function sValue(sig: Uint8Array): bigint {
  return BigInt('0x' + bytesToHex(sig.subarray(32)));
}

/** Fields whose values are taken from the vector's JSON, in the order the invoice has them (skipped ones as decoded). */
function fieldsFromVector(v: ValidVector, order: readonly Bolt11TaggedField[]): Bolt11TaggedField[] {
  const d = v.decoded;
  let fallback = 0;
  let route = 0;
  return order.map((f): Bolt11TaggedField => {
    switch (f.type) {
      case 'payment_hash':
        return { type: 'payment_hash', value: hexToBytes(d.payment_hash) };
      case 'payment_secret':
        return { type: 'payment_secret', value: hexToBytes(d.payment_secret) };
      case 'description':
        return { type: 'description', value: d.description! };
      case 'description_hash':
        return { type: 'description_hash', value: hexToBytes(d.description_hash!) };
      case 'payee':
        return { type: 'payee', value: hexToBytes(d.payee_pubkey_n_field!) };
      case 'expiry':
        return { type: 'expiry', value: d.expiry! };
      case 'min_final_cltv_expiry_delta':
        return { type: 'min_final_cltv_expiry_delta', value: d.min_final_cltv_expiry_delta! };
      case 'fallback': {
        const fb = d.fallbacks[fallback++]!;
        return { type: 'fallback', value: { version: fb.version, program: hexToBytes(fb.program_hex) } };
      }
      case 'route_hint':
        return {
          type: 'route_hint',
          value: d.route_hints[route++]!.map((h): HopHint => ({
            nodeId: hexToBytes(h.pubkey),
            shortChannelId: BigInt('0x' + h.short_channel_id_hex),
            feeBaseMsat: h.fee_base_msat,
            feeProportionalMillionths: h.fee_proportional_millionths,
            cltvExpiryDelta: h.cltv_expiry_delta,
          })),
        };
      case 'features':
        return { type: 'features', value: FeatureVector.fromBits(d.features.bits).encode() };
      case 'metadata':
        return { type: 'metadata', value: hexToBytes(d.metadata!) };
      case 'skipped':
        return f;
    }
  });
}

const NETWORK_BY_PREFIX = new Map(Object.keys(BOLT11_NETWORKS).map((k) => ['ln' + k, k]));

// ---------------------------------------------------------------- valid examples

describe('BOLT 11 valid examples', () => {
  it('the fixture holds the examples the spec lists', () => {
    assert.equal(fixture.valid.length, 16);
    assert.equal(fixture.invalid.length, 10);
    assert.equal(fixture.supplementary_invalid_from_eclair.invoices.length, 5);
    assert.equal(bytesToHex(publicKeyFromPrivate(PRIV)), fixture.signing_pubkey);
  });

  for (const v of fixture.valid) {
    describe(v.title, () => {
      const d = v.decoded;
      const inv = decodeInvoice(v.invoice);

      it('decodes every field as the vector says', () => {
        assert.equal(inv.hrp, d.hrp);
        assert.equal(inv.network, NETWORK_BY_PREFIX.get(d.currency_prefix));
        assert.equal(BOLT11_NETWORKS[inv.network].name, d.network);
        assert.equal(inv.amountMsat, d.amount_msat === null ? undefined : BigInt(d.amount_msat));
        assert.equal(inv.timestamp, d.timestamp);
        assert.equal(bytesToHex(inv.paymentHash), d.payment_hash);
        assert.equal(bytesToHex(inv.paymentSecret), d.payment_secret);
        assert.equal(inv.description, d.description ?? undefined);
        assert.equal(inv.descriptionHash && bytesToHex(inv.descriptionHash), d.description_hash ?? undefined);
        assert.equal(inv.expirySeconds, d.expiry ?? DEFAULT_EXPIRY_SECONDS);
        assert.equal(
          inv.fields.some((f) => f.type === 'expiry'),
          d.expiry !== null,
        );
        assert.equal(inv.minFinalCltvExpiryDelta, d.min_final_cltv_expiry_delta ?? DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA);
        assert.equal(
          inv.fields.some((f) => f.type === 'min_final_cltv_expiry_delta'),
          d.min_final_cltv_expiry_delta !== null,
        );
        assert.deepEqual(
          inv.fallbacks.map((f) => ({ version: f.version, program_hex: bytesToHex(f.program), address: f.address })),
          d.fallbacks.map((f) => ({ version: f.version, program_hex: f.program_hex, address: f.address })),
        );
        for (const f of inv.fallbacks) assert.equal(fallbackAddress(inv.network, f), f.address);
        assert.deepEqual(
          inv.routeHints.map((r) =>
            r.map((h) => ({
              pubkey: bytesToHex(h.nodeId),
              short_channel_id: scidText(h.shortChannelId),
              short_channel_id_hex: h.shortChannelId.toString(16).padStart(16, '0'),
              fee_base_msat: h.feeBaseMsat,
              fee_proportional_millionths: h.feeProportionalMillionths,
              cltv_expiry_delta: h.cltvExpiryDelta,
            })),
          ),
          d.route_hints,
        );
        assert.deepEqual(invoiceFeatures(inv).bits(), d.features.bits);
        assert.equal(inv.metadata && bytesToHex(inv.metadata), d.metadata ?? undefined);
        assert.equal(inv.payeeNodeKey && bytesToHex(inv.payeeNodeKey), d.payee_pubkey_n_field ?? undefined);
        assert.deepEqual(
          inv.fields.flatMap((f) => (f.type === 'skipped' ? [{ tag: tagLetter(f.tag), data_length: f.words.length }] : [])),
          d.ignored_fields.map((f) => ({ tag: f.tag, data_length: f.data_length })),
        );
      });

      it('carries the features field in the words the vector shows', () => {
        const field = inv.fields.find((f) => f.type === 'features');
        assert.ok(field !== undefined);
        const words = [...serializeSignedInvoice({ ...inv, fields: [field] })].slice(inv.hrp.length + 1 + 7 + 3, -104 - 6);
        assert.equal(words.join(''), d.features.words);
        assert.equal(words.length, d.features.word_count);
      });

      it('has the vector signature, signing data and hash, and the payee it must yield', () => {
        assert.equal(bytesToHex(inv.signature), d.signature);
        assert.equal(inv.recoveryId, d.recovery_flag);
        assert.equal(bytesToHex(invoiceSigningData(inv)), d.signing_data);
        assert.equal(bytesToHex(inv.signingHash), d.signing_hash);
        assert.equal(bytesToHex(sha256(invoiceSigningData(inv))), d.signing_hash);
        assert.equal(sValue(inv.signature) > HALF_ORDER, d.signature_is_high_s);
        assert.equal(bytesToHex(inv.payee), v.payee_pubkey);
        if (!d.signature_is_high_s) assert.equal(bytesToHex(inv.payee), fixture.signing_pubkey);
      });

      it('re-serializes exactly with its own signature', () => {
        const upper = v.invoice === v.invoice.toUpperCase();
        assert.equal(serializeSignedInvoice(inv, { upperCase: upper }), v.invoice);
      });

      it('re-encodes from the vector fields and signing_privkey (RFC 6979) to the vector string', () => {
        const upper = v.invoice === v.invoice.toUpperCase();
        const content: Bolt11InvoiceContent = {
          network: NETWORK_BY_PREFIX.get(d.currency_prefix) as Bolt11Invoice['network'],
          amountMsat: d.amount_msat === null ? undefined : BigInt(d.amount_msat),
          timestamp: d.timestamp,
          fields: fieldsFromVector(v, inv.fields),
        };
        const out = encodeInvoice(content, PRIV, { upperCase: upper });
        if (!d.signature_is_high_s) {
          assert.equal(out, v.invoice);
          return;
        }
        // Signing gives the low-S signature: the same invoice as its low-S twin, s replaced by n - s.
        const again = decodeInvoice(out);
        assert.equal(bytesToHex(again.signature.subarray(0, 32)), d.signature.slice(0, 64));
        assert.equal(sValue(again.signature), CURVE_ORDER - sValue(inv.signature));
        assert.equal(again.recoveryId, inv.recoveryId); // the example kept the recovery id of its low-S form
        assert.equal(bytesToHex(again.payee), fixture.signing_pubkey);
        const twin = fixture.valid.find((w) => w !== v && w.decoded.signing_data === d.signing_data);
        assert.ok(twin !== undefined);
        assert.equal(out, twin.invoice);
      });
    });
  }

  it('the high-S example recovers the key its recovery id gives, not the signer (as libsecp256k1 and eclair do)', () => {
    const v = fixture.valid.find((w) => w.decoded.signature_is_high_s)!;
    const inv = decodeInvoice(v.invoice);
    assert.notEqual(bytesToHex(inv.payee), fixture.signing_pubkey);
    assert.equal(bytesToHex(inv.payee), v.payee_pubkey);
    // the recovered key verifies the low-S form of the signature
    const low = concatBytes(
      inv.signature.subarray(0, 32),
      hexToBytes((CURVE_ORDER - sValue(inv.signature)).toString(16).padStart(64, '0')),
    );
    assert.ok(secp.verify(low, inv.signingHash, inv.payee));
  });

  it('the description hash example commits to the description given in its breakdown', () => {
    const v = fixture.valid.find((w) => w.decoded.description_hash !== null && w.breakdown_text !== null)!;
    const text = /SHA256 of '([^']+)'/.exec(v.breakdown_text!)![1]!;
    const inv = decodeInvoice(v.invoice);
    assert.ok(descriptionHashMatches(inv, text));
    assert.ok(descriptionHashMatches(inv, new TextEncoder().encode(text)));
    assert.ok(!descriptionHashMatches(inv, text + ' '));
    assert.ok(!descriptionHashMatches(decodeInvoice(fixture.valid[0]!.invoice), text));
  });

  it('fails the skipped wrong-length p/h/s/n fields when asked to follow the newer reader rule', () => {
    const v = fixture.valid.find((w) => w.decoded.ignored_fields.some((f) => f.tag === 'p'))!;
    const e = expectBolt11(() => decodeInvoice(v.invoice, { rejectWrongLengthFields: true }), 'ERR_BOLT11_FIELD_LENGTH');
    assert.match(e.message, /field p has data_length 51/);
    for (const w of fixture.valid) if (w !== v) decodeInvoice(w.invoice, { rejectWrongLengthFields: true });
  });

  it('checks the expected network', () => {
    const v = fixture.valid.find((w) => w.decoded.currency_prefix === 'lntb')!;
    assert.equal(decodeInvoice(v.invoice, { network: 'tb' }).network, 'tb');
    expectBolt11(() => decodeInvoice(v.invoice, { network: 'bc' }), 'ERR_BOLT11_NETWORK');
    expectBolt11(() => decodeInvoice(fixture.valid[0]!.invoice, { network: 'bcrt' }), 'ERR_BOLT11_NETWORK');
  });
});

// ---------------------------------------------------------------- invalid examples

/** The code each invalid example must be refused with, by its spec heading or eclair's comment. */
const EXPECTED_CODES = new Map<string, Bolt11ErrorCode>([
  ['Same, but adding invalid unknown feature 100', 'ERR_BOLT11_FEATURES'],
  ['Bech32 checksum is invalid.', 'ERR_BOLT11_CHECKSUM'],
  ['Malformed bech32 string (no 1)', 'ERR_BOLT11_BECH32'],
  ['Malformed bech32 string (mixed case)', 'ERR_BOLT11_BECH32'],
  ['Signature is not recoverable.', 'ERR_BOLT11_SIGNATURE'],
  ['String is too short.', 'ERR_BOLT11_TOO_SHORT'],
  ['Invalid multiplier', 'ERR_BOLT11_AMOUNT'],
  ['Invalid sub-millisatoshi precision.', 'ERR_BOLT11_AMOUNT'],
  ['Missing required `s` field.', 'ERR_BOLT11_MISSING_FIELD'],
  ["Non canonical signature (high-S) with 'n' field defined", 'ERR_BOLT11_HIGH_S'],
  // eclair's extra cases
  ['Missing payment secret.', 'ERR_BOLT11_MISSING_FIELD'],
  ['Invalid signature public key recovery id.', 'ERR_BOLT11_FIELD'], // its `n` is not a point
  ['Empty routing hint field.', 'ERR_BOLT11_FIELD'],
  ['Invalid min_final_expiry_delta_blocks.', 'ERR_BOLT11_FIELD'],
  ['Invalid fallback address.', 'ERR_BOLT11_FIELD'],
]);

/** What the error's cause or message must also show, where one code covers several rules. */
const EXPECTED_DETAIL = new Map<string, RegExp>([
  ['Malformed bech32 string (no 1)', /ERR_BECH32_SEPARATOR/],
  ['Malformed bech32 string (mixed case)', /ERR_BECH32_MIXED_CASE/],
  ['Signature is not recoverable.', /no public key recovers/],
  ['Invalid multiplier', /'x' is not a multiplier/],
  ['Invalid sub-millisatoshi precision.', /sub-millisatoshi/],
  ['Missing required `s` field.', /payment secret/],
  ['Missing payment secret.', /payment secret/],
  ['Same, but adding invalid unknown feature 100', /feature bit\(s\) 100/],
  ['Invalid signature public key recovery id.', /payee \(n\) is not a valid public key/],
  ['Empty routing hint field.', /route hint \(r\) of 0 bytes/],
  ['Invalid min_final_expiry_delta_blocks.', /min_final_cltv_expiry_delta \(c\) exceeds/],
  ['Invalid fallback address.', /fallback \(f\) version \d+: witness program of 0 bytes/],
]);

/** Re-encode a decodable-looking string's words with a fresh checksum (to reach rules past the checksum). */
function rechecksum(hrp: string, words: Uint8Array): string {
  return bech32Encode(hrp, words, 'bech32', Infinity);
}

describe('BOLT 11 invalid examples', () => {
  const all = [...fixture.invalid, ...fixture.supplementary_invalid_from_eclair.invoices];

  it('every example has an expected code', () => {
    assert.deepEqual(new Set(all.map((v) => v.reason)), new Set(EXPECTED_CODES.keys()));
  });

  for (const v of all) {
    it(`${v.reason} → ${EXPECTED_CODES.get(v.reason)}`, () => {
      const e = expectBolt11(() => decodeInvoice(v.invoice), EXPECTED_CODES.get(v.reason)!, v.reason);
      const detail = EXPECTED_DETAIL.get(v.reason);
      if (detail !== undefined) assert.match(e.message, detail);
    });
  }

  it('the high-S example with n is refused only for high-S: its low-S form is valid for n', () => {
    const v = fixture.invalid.find((w) => EXPECTED_CODES.get(w.reason) === 'ERR_BOLT11_HIGH_S')!;
    const { hrp, words } = bech32Decode(v.invoice, 'bech32', Infinity);
    const end = words.length - 104;
    const sig = wordsToBytes(words.subarray(end));
    assert.ok(sValue(sig.subarray(0, 64)) > HALF_ORDER);
    const lowS = hexToBytes((CURVE_ORDER - sValue(sig.subarray(0, 64))).toString(16).padStart(64, '0'));
    const fixed = concatBytes(words.subarray(0, end), bytesToWords(concatBytes(sig.subarray(0, 32), lowS, sig.subarray(64))));
    const inv = decodeInvoice(rechecksum(hrp, fixed));
    assert.equal(bytesToHex(inv.payee), fixture.signing_pubkey);
    assert.equal(bytesToHex(inv.payeeNodeKey!), fixture.signing_pubkey);
  });

  it('the unknown-feature example is refused only for bit 100: a reader knowing it accepts the invoice', () => {
    const v = fixture.invalid.find((w) => EXPECTED_CODES.get(w.reason) === 'ERR_BOLT11_FEATURES')!;
    const inv = decodeInvoice(v.invoice, { knownFeatures: [8, 14, 100] });
    const twin = fixture.valid.find((w) => w.decoded.features.bits.includes(99))!;
    assert.deepEqual(invoiceFeatures(inv).bits(), [...twin.decoded.features.bits, 100]);
    assert.equal(bytesToHex(inv.payee), fixture.signing_pubkey);
  });

  it('the too-short example is refused before its checksum-valid words are read', () => {
    const v = fixture.invalid.find((w) => EXPECTED_CODES.get(w.reason) === 'ERR_BOLT11_TOO_SHORT')!;
    assert.ok(bech32Decode(v.invoice, 'bech32', Infinity).words.length < 7 + 104);
  });
});

// ---------------------------------------------------------------- reader rules on invoices built here

const HASH = new Uint8Array(32).fill(0xab);
const SECRET = hexToBytes(fixture.default_payment_secret);
const T0 = 1_700_000_000;

function baseFields(extra: Bolt11TaggedField[] = []): Bolt11TaggedField[] {
  return [
    { type: 'payment_hash', value: HASH },
    { type: 'description', value: 'test' },
    { type: 'payment_secret', value: SECRET },
    { type: 'features', value: FeatureVector.fromBits([8, 14]).encode() },
    ...extra,
  ];
}

/** Sign any content (rules broken or not) and write it; the decoder then judges it. */
function signRaw(c: Bolt11InvoiceContent, priv: Uint8Array = PRIV): string {
  const { signature, recoveryId } = secp.signRecoverable(sha256(invoiceSigningData(c)), priv);
  return serializeSignedInvoice({ ...c, signature, recoveryId });
}

function raw(tag: number, words: number[]): Bolt11TaggedField {
  return { type: 'skipped', tag, words: Uint8Array.from(words), reason: 'test' };
}

function content(fields: Bolt11TaggedField[], amountMsat?: bigint): Bolt11InvoiceContent {
  return { network: 'bc', amountMsat, timestamp: T0, fields };
}

describe('BOLT 11 reader rules', () => {
  it('accepts what the encoder writes and reads every field back', () => {
    const other = publicKeyFromPrivate(OTHER_PRIV);
    const hop: HopHint = {
      nodeId: other,
      shortChannelId: (700_000n << 40n) | (12n << 16n) | 1n,
      feeBaseMsat: 1000,
      feeProportionalMillionths: 1,
      cltvExpiryDelta: 80,
    };
    const fields = invoiceFields({
      paymentHash: HASH,
      paymentSecret: SECRET,
      description: 'ナンセンス 1杯 \u{1F600}',
      expirySeconds: 86_400,
      minFinalCltvExpiryDelta: 40,
      payeeNodeKey: PUB,
      fallbacks: [
        { version: 0, program: new Uint8Array(20).fill(1) },
        { version: 1, program: new Uint8Array(32).fill(2) },
        { version: 17, program: new Uint8Array(20).fill(3) },
      ],
      routeHints: [[hop, { ...hop, cltvExpiryDelta: 0xffff }], [hop]],
      features: FeatureVector.fromBits([9, 15, 17, 31]),
      metadata: Uint8Array.of(1, 2, 3),
    });
    const s = encodeInvoice({ network: 'bcrt', amountMsat: 1n, timestamp: T0, fields }, PRIV);
    assert.ok(s.startsWith('lnbcrt10p1'));
    const inv = decodeInvoice(s);
    assert.equal(inv.amountMsat, 1n);
    assert.equal(inv.description, 'ナンセンス 1杯 \u{1F600}');
    assert.equal(inv.expirySeconds, 86_400);
    assert.equal(inv.minFinalCltvExpiryDelta, 40);
    assert.equal(bytesToHex(inv.payee), fixture.signing_pubkey);
    assert.deepEqual(inv.routeHints, [[hop, { ...hop, cltvExpiryDelta: 0xffff }], [hop]]);
    assert.match(inv.fallbacks[0]!.address, /^bcrt1q/);
    assert.match(inv.fallbacks[1]!.address, /^bcrt1p/);
    assert.match(inv.fallbacks[2]!.address, /^[mn]/); // P2PKH on the test networks
    assert.deepEqual(decodeSegwitAddress('bcrt', inv.fallbacks[1]!.address), { version: 1, program: new Uint8Array(32).fill(2) });
    assert.deepEqual([...inv.metadata!], [1, 2, 3]);
    assert.deepEqual(
      inv.fields.map((f) => f.type),
      fields.map((f) => f.type),
    );
    assert.equal(serializeSignedInvoice(inv), s);
    assert.equal(encodeInvoice({ network: 'bcrt', amountMsat: 1n, timestamp: T0, fields }, PRIV, { upperCase: true }), s.toUpperCase());
  });

  it('an invoice much longer than 90 characters (bech32 has no limit here)', () => {
    const long = 'x'.repeat(639); // 1023 words, the largest field
    const s = encodeInvoice(content(baseFields().map((f) => (f.type === 'description' ? { ...f, value: long } : f))), PRIV);
    assert.ok(s.length > 1200);
    assert.equal(decodeInvoice(s).description, long);
    expectBolt11(
      () => encodeInvoice(content(baseFields().map((f) => (f.type === 'description' ? { ...f, value: long + 'x' } : f))), PRIV),
      'ERR_BOLT11_INVALID_ARGUMENT',
    );
  });

  it('bech32 format errors', () => {
    const good = fixture.valid[0]!.invoice;
    const e1 = expectBolt11(() => decodeInvoice(good.slice(0, 20) + 'b' + good.slice(21)), 'ERR_BOLT11_BECH32');
    assert.equal((e1.cause as Bech32Error).code, 'ERR_BECH32_CHARS');
    expectBolt11(() => decodeInvoice(good.slice(0, 20) + 'é' + good.slice(21)), 'ERR_BOLT11_BECH32');
    expectBolt11(() => decodeInvoice(good.slice(0, 20) + ' ' + good.slice(21)), 'ERR_BOLT11_BECH32');
    expectBolt11(() => decodeInvoice('1' + good), 'ERR_BOLT11_CHECKSUM');
    expectBolt11(() => decodeInvoice(good.slice(0, good.length - 1) + (good.endsWith('q') ? 'p' : 'q')), 'ERR_BOLT11_CHECKSUM');
    expectBolt11(() => decodeInvoice(''), 'ERR_BOLT11_BECH32');
    expectBolt11(() => decodeInvoice('lnbc1qqqqq'), 'ERR_BOLT11_BECH32');
    expectBolt11(() => decodeInvoice(42 as unknown as string), 'ERR_BOLT11_BECH32');
    // bech32m checksum over the same words
    const { hrp, words } = bech32Decode(good, 'bech32', Infinity);
    expectBolt11(() => decodeInvoice(bech32Encode(hrp, words, 'bech32m', Infinity)), 'ERR_BOLT11_CHECKSUM');
  });

  it('prefixes and networks', () => {
    for (const network of Object.keys(BOLT11_NETWORKS) as Bolt11Invoice['network'][]) {
      const s = encodeInvoice({ network, timestamp: T0, fields: baseFields(), amountMsat: 1000n }, PRIV);
      assert.ok(s.startsWith(`ln${network}10n1`), s);
      assert.equal(decodeInvoice(s).network, network);
    }
    const words = bech32Decode(fixture.valid[0]!.invoice, 'bech32', Infinity).words;
    expectBolt11(() => decodeInvoice(rechecksum('lnxy', words)), 'ERR_BOLT11_PREFIX');
    expectBolt11(() => decodeInvoice(rechecksum('lxbc', words)), 'ERR_BOLT11_PREFIX');
    expectBolt11(() => decodeInvoice(rechecksum('bc', words)), 'ERR_BOLT11_PREFIX');
    expectBolt11(() => decodeInvoice(rechecksum('lnbcm', words)), 'ERR_BOLT11_PREFIX');
  });

  it('amounts: multipliers, p precision, leading zeros, zero, limits, shortest form', () => {
    const words = bech32Decode(fixture.valid[0]!.invoice, 'bech32', Infinity).words;
    const amountCode = (a: string) => {
      try {
        decodeInvoice(rechecksum('lnbc' + a, words));
        return 'ok';
      } catch (e) {
        return (e as Bolt11Error).code;
      }
    };
    // the signature does not cover these hrps: a parsed amount shows as a signature mismatch... or recovers
    // another key; what matters is which amounts get past the hrp rules
    for (const a of ['1', '10p', '2500u', '1m', '9n', '184467440737095516150p']) assert.notEqual(amountCode(a), 'ERR_BOLT11_AMOUNT', a);
    for (const a of ['1p', '0', '0m', '01u', '2500x', '25mm', '1mu', '1.5m', '184467440737095516160p', '999999999999'])
      assert.equal(amountCode(a), 'ERR_BOLT11_AMOUNT', a);
    const cases: [bigint, string][] = [
      [100_000_000_000n, '1'],
      [250_000_000n, '2500u'],
      [2_000_000_000n, '20m'],
      [967_878_534n, '9678785340p'],
      [1n, '10p'],
      [100n, '1n'],
      [(1n << 64n) - 1n, '184467440737095516150p'],
    ];
    for (const [msat, text] of cases) {
      assert.equal(formatAmount(msat), text);
      const s = encodeInvoice(content(baseFields(), msat), PRIV);
      assert.equal(decodeInvoice(s).amountMsat, msat);
      assert.ok(s.startsWith(`lnbc${text}1`));
    }
    expectBolt11(() => formatAmount(0n), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(() => formatAmount(1n << 64n), 'ERR_BOLT11_INVALID_ARGUMENT');
    // a longer spelling than the shortest decodes, and re-serializes in that spelling
    const spelled = signRaw({ ...content(baseFields(), 250_000_000n), hrp: 'lnbc2500000n' });
    const inv = decodeInvoice(spelled);
    assert.equal(inv.amountMsat, 250_000_000n);
    assert.equal(serializeSignedInvoice(inv), spelled);
    expectBolt11(() => signRaw({ ...content(baseFields(), 1n), hrp: 'lnbc2500000n' }), 'ERR_BOLT11_INVALID_ARGUMENT');
  });

  it('too short: timestamp and signature need 111 words', () => {
    const s = encodeInvoice(content(baseFields()), PRIV);
    const { hrp, words } = bech32Decode(s, 'bech32', Infinity);
    expectBolt11(() => decodeInvoice(rechecksum(hrp, words.subarray(0, 110))), 'ERR_BOLT11_TOO_SHORT');
    // 111 words: a timestamp and a signature only, hence no p
    expectBolt11(
      () => decodeInvoice(rechecksum(hrp, concatBytes(words.subarray(0, 7), words.subarray(words.length - 104)))),
      'ERR_BOLT11_MISSING_FIELD',
    );
  });

  it('mandatory fields: p, s, and exactly one of d / h', () => {
    const without = (t: Bolt11TaggedField['type']) => baseFields().filter((f) => f.type !== t);
    expectBolt11(() => decodeInvoice(signRaw(content(without('payment_hash')))), 'ERR_BOLT11_MISSING_FIELD');
    expectBolt11(() => decodeInvoice(signRaw(content(without('payment_secret')))), 'ERR_BOLT11_MISSING_FIELD');
    expectBolt11(() => decodeInvoice(signRaw(content(without('description')))), 'ERR_BOLT11_MISSING_FIELD');
    expectBolt11(
      () => decodeInvoice(signRaw(content(baseFields([{ type: 'description_hash', value: HASH }])))),
      'ERR_BOLT11_CONFLICTING_FIELDS',
    );
    // the encoder refuses the same invoices, with the reader's codes
    expectBolt11(() => encodeInvoice(content(without('payment_secret')), PRIV), 'ERR_BOLT11_MISSING_FIELD');
    // a wrong-length p does not count as a p
    expectBolt11(
      () => decodeInvoice(signRaw(content([raw(1, Array(51).fill(0)), ...without('payment_hash')]))),
      'ERR_BOLT11_MISSING_FIELD',
    );
    const h = decodeInvoice(signRaw(content([...without('description'), { type: 'description_hash', value: HASH }])));
    assert.equal(h.description, undefined);
    assert.deepEqual(h.descriptionHash, HASH);
  });

  it('the first p, s, d, x, c, 9 counts when one appears twice', () => {
    const hash2 = new Uint8Array(32).fill(0xcd);
    const fields = baseFields([
      { type: 'payment_hash', value: hash2 },
      { type: 'expiry', value: 10 },
      { type: 'expiry', value: 20 },
      { type: 'description', value: 'second' },
      { type: 'min_final_cltv_expiry_delta', value: 144 },
      { type: 'min_final_cltv_expiry_delta', value: 9 },
    ]);
    const inv = decodeInvoice(encodeInvoice(content(fields), PRIV));
    assert.deepEqual(inv.paymentHash, HASH);
    assert.equal(inv.description, 'test');
    assert.equal(inv.expirySeconds, 10);
    assert.equal(inv.minFinalCltvExpiryDelta, 144);
  });

  it('non-minimal x, c and 9 are refused; empty x and c are zero', () => {
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(6, [0, 1])])))), 'ERR_BOLT11_NON_MINIMAL');
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(24, [0, 18])])))), 'ERR_BOLT11_NON_MINIMAL');
    const feat = baseFields().filter((f) => f.type !== 'features');
    expectBolt11(() => decodeInvoice(signRaw(content([...feat, raw(5, [0, 16, 8, 0])]))), 'ERR_BOLT11_NON_MINIMAL');
    const inv = decodeInvoice(
      encodeInvoice(
        content(
          baseFields([
            { type: 'expiry', value: 0 },
            { type: 'min_final_cltv_expiry_delta', value: 0 },
          ]),
        ),
        PRIV,
      ),
    );
    assert.equal(inv.expirySeconds, 0);
    assert.equal(inv.minFinalCltvExpiryDelta, 0);
    assert.equal(decodeInvoice(signRaw(content([...feat, raw(5, [])]))).features.length, 0);
  });

  it('limits on x and c', () => {
    const max = decodeInvoice(encodeInvoice(content(baseFields([{ type: 'min_final_cltv_expiry_delta', value: 0xffffffff }])), PRIV));
    assert.equal(max.minFinalCltvExpiryDelta, 0xffffffff);
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(24, [4, 0, 0, 0, 0, 0, 0])])))), 'ERR_BOLT11_FIELD'); // 2^32
    const bigX = decodeInvoice(encodeInvoice(content(baseFields([{ type: 'expiry', value: Number.MAX_SAFE_INTEGER }])), PRIV));
    assert.equal(bigX.expirySeconds, Number.MAX_SAFE_INTEGER);
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(6, [1, ...Array(11).fill(0)])])))), 'ERR_BOLT11_FIELD'); // 2^55
  });

  it('byte fields need zero padding of less than a word', () => {
    const hashWords = [...bytesToWords(HASH)];
    hashWords[51] = hashWords[51]! | 1; // one of the 4 padding bits
    const noP = baseFields().filter((f) => f.type !== 'payment_hash');
    expectBolt11(() => decodeInvoice(signRaw(content([raw(1, hashWords), ...noP]))), 'ERR_BOLT11_FIELD');
    const noD = baseFields().filter((f) => f.type !== 'description');
    expectBolt11(() => decodeInvoice(signRaw(content([raw(13, [1]), ...noD]))), 'ERR_BOLT11_FIELD'); // 5 bits: a whole unused word
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(27, [0, 1])])))), 'ERR_BOLT11_FIELD'); // m with a padding bit set
  });

  it('d must be UTF-8', () => {
    const noD = baseFields().filter((f) => f.type !== 'description');
    const e = expectBolt11(
      () => decodeInvoice(signRaw(content([raw(13, [...bytesToWords(Uint8Array.of(0x66, 0xff, 0x66))]), ...noD]))),
      'ERR_BOLT11_FIELD',
    );
    assert.match(e.message, /UTF-8/);
    expectBolt11(() => encodeInvoice(content([{ type: 'description', value: 'a\uD800b' }, ...noD]), PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    // a byte-order mark is kept, so the field re-encodes to the same words
    const bom = decodeInvoice(encodeInvoice(content([{ type: 'description', value: '\uFEFFx' }, ...noD]), PRIV));
    assert.equal(bom.description, '\uFEFFx');
  });

  it('truncated and overrunning fields', () => {
    const s = encodeInvoice(content(baseFields()), PRIV);
    const { hrp, words } = bech32Decode(s, 'bech32', Infinity);
    const sig = words.subarray(words.length - 104);
    const body = words.subarray(0, words.length - 104);
    expectBolt11(() => decodeInvoice(rechecksum(hrp, concatBytes(body, Uint8Array.of(1, 0), sig))), 'ERR_BOLT11_FIELD');
    expectBolt11(() => decodeInvoice(rechecksum(hrp, concatBytes(body, Uint8Array.of(1, 1, 20), sig))), 'ERR_BOLT11_FIELD');
  });

  it('r: one or more hops of valid keys, 51 bytes each', () => {
    const hop: HopHint = { nodeId: PUB, shortChannelId: 1n, feeBaseMsat: 2, feeProportionalMillionths: 3, cltvExpiryDelta: 4 };
    const good = encodeInvoice(content(baseFields([{ type: 'route_hint', value: [hop] }])), PRIV);
    assert.deepEqual(decodeInvoice(good).routeHints, [[hop]]);
    const hopBytes = concatBytes(PUB, new Uint8Array(18));
    const badKey = concatBytes(Uint8Array.of(4), new Uint8Array(50));
    expectBolt11(
      () => decodeInvoice(signRaw(content(baseFields([raw(3, [...bytesToWords(hopBytes.subarray(0, 50))])])))),
      'ERR_BOLT11_FIELD',
    );
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(3, [...bytesToWords(badKey)])])))), 'ERR_BOLT11_FIELD');
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(3, [])])))), 'ERR_BOLT11_FIELD');
    expectBolt11(() => encodeInvoice(content(baseFields([{ type: 'route_hint', value: [] }])), PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(
      () => encodeInvoice(content(baseFields([{ type: 'route_hint', value: [{ ...hop, cltvExpiryDelta: 0x10000 }] }])), PRIV),
      'ERR_BOLT11_INVALID_ARGUMENT',
    );
  });

  it('f: unknown versions skipped, known versions need a valid program', () => {
    const withF = (version: number, program: Uint8Array) => signRaw(content(baseFields([raw(9, [version, ...bytesToWords(program)])])));
    const skippedInv = decodeInvoice(withF(19, new Uint8Array(20)));
    assert.equal(skippedInv.fallbacks.length, 0);
    assert.equal(skippedInv.fields.filter((f) => f.type === 'skipped').length, 1);
    assert.equal(decodeInvoice(withF(31, new Uint8Array(3))).fallbacks.length, 0);
    assert.equal(decodeInvoice(withF(16, new Uint8Array(2))).fallbacks[0]!.version, 16);
    for (const [v, n] of [
      [17, 19],
      [18, 21],
      [0, 21],
      [0, 31],
      [1, 1],
      [2, 41],
    ] as const)
      expectBolt11(() => decodeInvoice(withF(v, new Uint8Array(n))), 'ERR_BOLT11_FIELD', `version ${v}, ${n} bytes`);
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(9, [])])))), 'ERR_BOLT11_FIELD');
    expectBolt11(() => fallbackAddress('bc', { version: 19, program: new Uint8Array(20) }), 'ERR_BOLT11_INVALID_ARGUMENT');
  });

  it('n: must be a point; the signature must verify against it, low-S', () => {
    const other = publicKeyFromPrivate(OTHER_PRIV);
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([{ type: 'payee', value: other }])))), 'ERR_BOLT11_SIGNATURE');
    expectBolt11(() => encodeInvoice(content(baseFields([{ type: 'payee', value: other }])), PRIV), 'ERR_BOLT11_SIGNATURE');
    const ok = decodeInvoice(signRaw(content(baseFields([{ type: 'payee', value: other }])), OTHER_PRIV));
    assert.deepEqual(ok.payee, other);
    const notPoint = concatBytes(Uint8Array.of(2), new Uint8Array(32).fill(0xff));
    expectBolt11(() => decodeInvoice(signRaw(content(baseFields([raw(19, [...bytesToWords(notPoint)])])))), 'ERR_BOLT11_FIELD');
    // n of the wrong length is skipped: the key is then recovered
    const skippedN = decodeInvoice(signRaw(content(baseFields([raw(19, [...bytesToWords(other)].slice(0, 52))]))));
    assert.equal(skippedN.payeeNodeKey, undefined);
    assert.deepEqual(skippedN.payee, PUB);
  });

  it('signature: recovery id 0..3, and a tampered invoice does not verify or recovers another key', () => {
    const s = encodeInvoice(content(baseFields()), PRIV);
    const { hrp, words } = bech32Decode(s, 'bech32', Infinity);
    const sigBytes = wordsToBytes(words.subarray(words.length - 104));
    const withRecid = (r: number) =>
      rechecksum(
        hrp,
        concatBytes(words.subarray(0, words.length - 104), bytesToWords(concatBytes(sigBytes.subarray(0, 64), Uint8Array.of(r)))),
      );
    for (let r = 0; r < 4; r++) {
      try {
        const inv = decodeInvoice(withRecid(r));
        assert.equal(bytesToHex(inv.payee) === fixture.signing_pubkey, r === sigBytes[64]);
      } catch (e) {
        assert.notEqual(r, sigBytes[64]);
        assert.ok(e instanceof Bolt11Error && e.code === 'ERR_BOLT11_SIGNATURE'); // ids 2, 3 rarely recover
      }
    }
    for (const r of [4, 5, 255]) expectBolt11(() => decodeInvoice(withRecid(r)), 'ERR_BOLT11_SIGNATURE');
    // the same signature over another amount: recovery yields a key other than the signer's
    const tampered = decodeInvoice(rechecksum('lnbc1m', words));
    assert.notEqual(bytesToHex(tampered.payee), fixture.signing_pubkey);
    // with n present the same tampering is refused
    const withN = encodeInvoice(content(baseFields([{ type: 'payee', value: PUB }])), PRIV);
    const wn = bech32Decode(withN, 'bech32', Infinity);
    expectBolt11(() => decodeInvoice(rechecksum('lnbc1m', wn.words)), 'ERR_BOLT11_SIGNATURE');
    // r = 0 cannot be recovered
    const zeroR = rechecksum(
      hrp,
      concatBytes(words.subarray(0, words.length - 104), bytesToWords(concatBytes(new Uint8Array(32), sigBytes.subarray(32)))),
    );
    expectBolt11(() => decodeInvoice(zeroR), 'ERR_BOLT11_SIGNATURE');
  });

  it('features: unknown even bits fail, unknown odd bits pass, dependencies are checked', () => {
    const withFeatures = (bits: number[]) =>
      signRaw(
        content([...baseFields().filter((f) => f.type !== 'features'), { type: 'features', value: FeatureVector.fromBits(bits).encode() }]),
      );
    assert.deepEqual(invoiceFeatures(decodeInvoice(withFeatures([8, 14, 99, 101]))).bits(), [8, 14, 99, 101]);
    expectBolt11(() => decodeInvoice(withFeatures([8, 14, 102])), 'ERR_BOLT11_FEATURES');
    expectBolt11(() => decodeInvoice(withFeatures([8, 14, 24])), 'ERR_BOLT11_FEATURES'); // route blinding: not known by default
    assert.ok(decodeInvoice(withFeatures([8, 14, 24]), { knownFeatures: [8, 14, 24] }));
    expectBolt11(() => decodeInvoice(withFeatures([8, 17])), 'ERR_BOLT11_FEATURES'); // basic_mpp without payment_secret
    expectBolt11(() => decodeInvoice(withFeatures([9, 31])), 'ERR_BOLT11_FEATURES'); // amp without payment_secret
    expectBolt11(() => decodeInvoice(withFeatures([15])), 'ERR_BOLT11_FEATURES'); // payment_secret without var_onion_optin
    assert.ok(decodeInvoice(withFeatures([9, 15, 17, 30, 48])));
  });

  it('encoder argument checks', () => {
    expectBolt11(() => encodeInvoice({ ...content(baseFields()), timestamp: 2 ** 35 }, PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(() => encodeInvoice({ ...content(baseFields()), timestamp: -1 }, PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(() => encodeInvoice({ ...content(baseFields()), network: 'xx' as 'bc' }, PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(
      () => encodeInvoice(content(baseFields([{ type: 'payment_hash', value: new Uint8Array(31) }])), PRIV),
      'ERR_BOLT11_INVALID_ARGUMENT',
    );
    expectBolt11(() => encodeInvoice(content(baseFields([{ type: 'expiry', value: -1 }])), PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(() => encodeInvoice(content(baseFields([{ type: 'expiry', value: 1.5 }])), PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(() => encodeInvoice(content(baseFields([raw(32, [])])), PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(() => encodeInvoice(content(baseFields([raw(2, [32])])), PRIV), 'ERR_BOLT11_INVALID_ARGUMENT');
    expectBolt11(
      () => encodeInvoice(content(baseFields([{ type: 'fallback', value: { version: 20, program: new Uint8Array(20) } }])), PRIV),
      'ERR_BOLT11_INVALID_ARGUMENT',
    );
    expectBolt11(
      () => serializeSignedInvoice({ ...content(baseFields()), signature: new Uint8Array(64), recoveryId: 4 }),
      'ERR_BOLT11_INVALID_ARGUMENT',
    );
  });
});

// ---------------------------------------------------------------- payer helpers

describe('BOLT 11 payer helpers', () => {
  const withBits = (bits: number[]) =>
    decodeInvoice(
      encodeInvoice(
        content([...baseFields().filter((f) => f.type !== 'features'), { type: 'features', value: FeatureVector.fromBits(bits).encode() }]),
        PRIV,
      ),
    );

  it('AMP, MPP, payment_secret and var_onion bits', () => {
    const amp = withBits([9, 15, 17, 31]);
    assert.ok(isAmpInvoice(amp) && !requiresAmp(amp));
    assert.ok(supportsMpp(amp) && !requiresMpp(amp));
    assert.ok(supportsPaymentSecret(amp) && !requiresPaymentSecret(amp));
    assert.ok(supportsVarOnion(amp) && !requiresVarOnion(amp));
    const strict = withBits([8, 14, 16, 30]);
    assert.ok(
      isAmpInvoice(strict) && requiresAmp(strict) && requiresMpp(strict) && requiresPaymentSecret(strict) && requiresVarOnion(strict),
    );
    const plain = decodeInvoice(fixture.valid[0]!.invoice);
    assert.ok(!isAmpInvoice(plain) && !supportsMpp(plain) && !requiresMpp(plain));
    assert.ok(requiresPaymentSecret(plain) && requiresVarOnion(plain));
  });

  it('expiry', () => {
    const v = fixture.valid.find((w) => w.decoded.expiry === 60)!;
    const inv = decodeInvoice(v.invoice);
    assert.equal(invoiceExpiresAt(inv), v.decoded.timestamp + 60);
    assert.ok(!isInvoiceExpired(inv, v.decoded.timestamp + 60));
    assert.ok(isInvoiceExpired(inv, v.decoded.timestamp + 61));
    assert.equal(invoiceExpiresAt(decodeInvoice(fixture.valid[0]!.invoice)), fixture.valid[0]!.decoded.timestamp + DEFAULT_EXPIRY_SECONDS);
  });
});

// ---------------------------------------------------------------- bech32 layer

describe('bech32 / bech32m', () => {
  it('segwit addresses of the fallback examples round-trip (bech32 for v0, bech32m for v1)', () => {
    const addrs = fixture.valid.flatMap((v) => v.decoded.fallbacks).filter((f) => f.version <= 16);
    assert.ok(addrs.length >= 3);
    for (const f of addrs) {
      const d = decodeSegwitAddress('bc', f.address);
      assert.equal(d.version, f.version);
      assert.equal(bytesToHex(d.program), f.program_hex);
      assert.equal(encodeSegwitAddress('bc', f.version, hexToBytes(f.program_hex)), f.address);
    }
    const v0 = addrs.find((f) => f.version === 0)!;
    const { words } = bech32Decode(v0.address, 'bech32');
    // v0 written with bech32m, v1 written with bech32: both refused
    assert.throws(
      () => decodeSegwitAddress('bc', bech32Encode('bc', words, 'bech32m')),
      (e: unknown) => e instanceof Bech32Error && e.code === 'ERR_BECH32_CHECKSUM',
    );
    const v1 = addrs.find((f) => f.version === 1)!;
    const w1 = bech32Decode(v1.address, 'bech32m').words;
    assert.throws(
      () => decodeSegwitAddress('bc', bech32Encode('bc', w1, 'bech32')),
      (e: unknown) => e instanceof Bech32Error && e.code === 'ERR_BECH32_CHECKSUM',
    );
    assert.throws(
      () => decodeSegwitAddress('tb', v0.address),
      (e: unknown) => e instanceof Bech32Error,
    );
  });

  it('the 90-character limit applies unless lifted', () => {
    const long = fixture.valid[0]!.invoice;
    assert.ok(long.length > 90);
    assert.throws(
      () => bech32Decode(long, 'bech32'),
      (e: unknown) => e instanceof Bech32Error && e.code === 'ERR_BECH32_LENGTH',
    );
    assert.equal(bech32Decode(long, 'bech32', Infinity).hrp, 'lnbc');
  });

  it('word regrouping is strict about padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
        assert.deepEqual(wordsToBytes(bytesToWords(b)), b);
      }),
    );
    assert.throws(
      () => wordsToBytes([1]),
      (e: unknown) => e instanceof Bech32Error && e.code === 'ERR_BECH32_PADDING',
    );
    assert.throws(
      () => wordsToBytes([0, 1]),
      (e: unknown) => e instanceof Bech32Error && e.code === 'ERR_BECH32_PADDING',
    );
    assert.deepEqual([...wordsToBytes([0, 0])], [0]);
  });
});

// ---------------------------------------------------------------- properties

function decodesOrTypedError(s: string, opts?: DecodeInvoiceOptions): Bolt11Invoice | undefined {
  try {
    return decodeInvoice(s, opts);
  } catch (e) {
    if (e instanceof Bolt11Error) return undefined;
    throw e;
  }
}

describe('BOLT 11 properties', () => {
  const seeds = fixture.valid.map((v) => v.invoice);
  const charset = fc.constantFrom(...BECH32_CHARSET);

  it('random strings throw only Bolt11Error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc.string({ unit: fc.constantFrom(...'lnbc1qpzry9x8gf2tvdw0s3jn54khce6mua7lLNBC') }),
        ),
        (s) => {
          decodesOrTypedError(s);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('mutated valid invoices throw only Bolt11Error, and whatever decodes re-serializes to itself', () => {
    const mutation = fc.record({
      seed: fc.constantFrom(...seeds),
      kind: fc.constantFrom('replace', 'insert', 'delete', 'case', 'truncate'),
      at: fc.nat(),
      ch: charset,
    });
    fc.assert(
      fc.property(mutation, ({ seed, kind, at, ch }) => {
        const i = at % seed.length;
        const s =
          kind === 'replace'
            ? seed.slice(0, i) + ch + seed.slice(i + 1)
            : kind === 'insert'
              ? seed.slice(0, i) + ch + seed.slice(i)
              : kind === 'delete'
                ? seed.slice(0, i) + seed.slice(i + 1)
                : kind === 'case'
                  ? seed.slice(0, i) +
                    (seed[i] === seed[i]!.toLowerCase() ? seed[i]!.toUpperCase() : seed[i]!.toLowerCase()) +
                    seed.slice(i + 1)
                  : seed.slice(0, i);
        const inv = decodesOrTypedError(s);
        if (inv !== undefined) assert.equal(serializeSignedInvoice(inv), s.toLowerCase());
      }),
      { numRuns: 400 },
    );
  });

  it('mutated data words with a recomputed checksum (past the checksum, into fields and signature) throw only Bolt11Error', () => {
    const decoded = seeds.map((s) => bech32Decode(s, 'bech32', Infinity));
    const mutation = fc.record({
      seed: fc.nat({ max: decoded.length - 1 }),
      edits: fc.array(
        fc.record({ at: fc.nat(), word: fc.integer({ min: 0, max: 31 }), kind: fc.constantFrom('set', 'insert', 'delete') }),
        { minLength: 1, maxLength: 4 },
      ),
      hrp: fc.option(fc.constantFrom('lnbc', 'lntb', 'lnbcrt', 'lnbc1', 'lnbc10p', 'lnbc1p', 'ln', 'lnbc0u', 'lnsb25m'), {
        nil: undefined,
      }),
    });
    let decodedCount = 0;
    fc.assert(
      fc.property(mutation, ({ seed, edits, hrp }) => {
        const base = decoded[seed]!;
        const w = [...base.words];
        for (const e of edits) {
          const i = e.at % (w.length + 1);
          if (e.kind === 'set' && i < w.length) w[i] = e.word;
          else if (e.kind === 'insert') w.splice(i, 0, e.word);
          else w.splice(i, 1);
        }
        const s = rechecksum(hrp ?? base.hrp, Uint8Array.from(w));
        const inv = decodesOrTypedError(s);
        if (inv !== undefined) {
          decodedCount++;
          assert.equal(serializeSignedInvoice(inv), s);
        }
      }),
      { numRuns: 600 },
    );
    assert.ok(decodedCount > 0, 'some mutations (e.g. in the signature) still decode');
  });

  it('random well-formed invoices encode, decode to the same values, and re-encode identically', () => {
    const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
    const params = fc.record({
      network: fc.constantFrom('bc', 'tb', 'tbs', 'bcrt', 'sb') as fc.Arbitrary<Bolt11Invoice['network']>,
      amountMsat: fc.option(fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }), { nil: undefined }),
      timestamp: fc.integer({ min: 0, max: 2 ** 35 - 1 }),
      paymentHash: bytes(32),
      paymentSecret: bytes(32),
      description: fc.option(fc.string({ unit: 'grapheme', maxLength: 40 }), { nil: undefined }),
      expirySeconds: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
      minFinalCltvExpiryDelta: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
      metadata: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
      mpp: fc.boolean(),
      amp: fc.boolean(),
      withN: fc.boolean(),
      hops: fc.array(
        fc.record({
          scid: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          fee: fc.nat(),
          ppm: fc.nat(),
          cltv: fc.integer({ min: 0, max: 0xffff }),
        }),
        { maxLength: 3 },
      ),
      fallback: fc.option(fc.record({ version: fc.constantFrom(0, 1, 17, 18), program: bytes(20) }), { nil: undefined }),
    });
    fc.assert(
      fc.property(params, (p) => {
        const bits = [9, 15, ...(p.mpp ? [17] : []), ...(p.amp ? [31] : [])];
        const fields = invoiceFields({
          paymentHash: p.paymentHash,
          paymentSecret: p.paymentSecret,
          ...(p.description === undefined ? { descriptionHash: sha256(p.paymentHash) } : { description: p.description }),
          ...(p.expirySeconds === undefined ? {} : { expirySeconds: p.expirySeconds }),
          ...(p.minFinalCltvExpiryDelta === undefined ? {} : { minFinalCltvExpiryDelta: p.minFinalCltvExpiryDelta }),
          ...(p.metadata === undefined ? {} : { metadata: p.metadata }),
          ...(p.withN ? { payeeNodeKey: PUB } : {}),
          ...(p.fallback === undefined
            ? {}
            : {
                fallbacks: [
                  {
                    version: p.fallback.version,
                    program: p.fallback.version === 1 ? concatBytes(p.fallback.program, new Uint8Array(12)) : p.fallback.program,
                  },
                ],
              }),
          routeHints:
            p.hops.length === 0
              ? []
              : [
                  p.hops.map((h) => ({
                    nodeId: PUB,
                    shortChannelId: h.scid,
                    feeBaseMsat: h.fee,
                    feeProportionalMillionths: h.ppm,
                    cltvExpiryDelta: h.cltv,
                  })),
                ],
          features: FeatureVector.fromBits(bits),
        });
        const c: Bolt11InvoiceContent = { network: p.network, amountMsat: p.amountMsat, timestamp: p.timestamp, fields };
        const s = encodeInvoice(c, PRIV);
        const inv = decodeInvoice(s, { network: p.network });
        assert.equal(inv.amountMsat, p.amountMsat);
        assert.equal(inv.timestamp, p.timestamp);
        assert.deepEqual(inv.paymentHash, p.paymentHash);
        assert.deepEqual(inv.paymentSecret, p.paymentSecret);
        assert.equal(inv.description, p.description);
        assert.equal(inv.expirySeconds, p.expirySeconds ?? DEFAULT_EXPIRY_SECONDS);
        assert.equal(inv.minFinalCltvExpiryDelta, p.minFinalCltvExpiryDelta ?? DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA);
        assert.deepEqual(inv.metadata, p.metadata);
        assert.equal(inv.routeHints.length, p.hops.length === 0 ? 0 : 1);
        assert.equal(isAmpInvoice(inv), p.amp);
        assert.equal(supportsMpp(inv), p.mpp);
        assert.deepEqual(inv.payee, PUB);
        assert.deepEqual(inv.fields, fields);
        assert.equal(encodeInvoice(inv, PRIV), s);
      }),
      { numRuns: 150 },
    );
  });
});
