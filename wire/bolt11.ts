/**
 * BOLT 11 payment requests: decode with every reader rule, verify the
 * signature (against `n`, or by public-key recovery), and encode and sign.
 *
 * A decoded invoice is a plain object. Besides the interpreted values it keeps
 * every tagged field in the order it appeared (fields the reader must skip
 * included, as raw 5-bit words), its hrp and its signature, so that
 * `serializeSignedInvoice(decodeInvoice(s))` gives back `s` (lower-cased) for
 * every string the decoder accepts.
 *
 * Reader rules, in the order they are checked:
 *  1. bech32 with the bech32 (not bech32m) checksum, no length limit;
 *  2. hrp: `ln`, a currency prefix we know, an optional amount (positive, no
 *     leading zero, optional multiplier m/u/n/p, `p` amounts a multiple of 10,
 *     at most 2^64 − 1 msat), and the currency the caller expects, if any;
 *  3. a data part that holds the timestamp and the signature;
 *  4. tagged fields: unknown tags and `f` fields of an unknown version are
 *     skipped; `p`/`h`/`s` fields whose length is not 52 and `n` fields whose
 *     length is not 53 are skipped too (as the spec's example "fields which
 *     must be ignored" requires) unless `rejectWrongLengthFields` asks for the
 *     newer rule that fails them; `x`, `c` and `9` must be minimal (and `c`
 *     at most 2^32 − 1, `x` at most 2^53 − 1); fields
 *     holding bytes must have zero padding shorter than one word; `r` holds
 *     one or more hops of valid public keys; `f` of a known version holds a
 *     valid program; `d` is valid UTF-8; for a field that may appear once the
 *     first occurrence counts;
 *  5. `p` and `s` present, and exactly one of `d` / `h`;
 *  6. features: no unknown even bit, every known dependency set;
 *  7. signature: recovery id 0..3; with `n`, a low-S signature valid for `n`;
 *     without, public-key recovery (high-S accepted, recovered as written).
 */
import { AmpnodeError } from './errors.js';
import {
  BECH32_CHARSET,
  Bech32Error,
  bech32Decode,
  bech32Encode,
  bytesToWords,
  encodeSegwitAddress,
  MAX_WITNESS_VERSION,
  witnessProgramProblem,
  wordsToBytes,
  wordsToBytesPadded,
} from './bech32.js';
import { Reader, Writer, bytesToHex, concatBytes, equalBytes } from './bytes.js';
import { CURVE_ORDER, normalizeSignature, secp, sha256 } from './crypto.js';
import { Feature, FeatureVector, unknownRequiredBits, validateFeatureDependencies } from './features.js';

export type Bolt11ErrorCode =
  | 'ERR_BOLT11_BECH32' // not a well-formed bech32 string (characters, case, separator); `cause` has the detail
  | 'ERR_BOLT11_CHECKSUM' // the bech32 checksum does not verify
  | 'ERR_BOLT11_PREFIX' // the hrp is not `ln` followed by a currency prefix we know
  | 'ERR_BOLT11_NETWORK' // a currency other than the one the caller expects
  | 'ERR_BOLT11_AMOUNT' // malformed amount, unknown multiplier, sub-millisatoshi precision, zero, too large
  | 'ERR_BOLT11_TOO_SHORT' // the data part cannot hold a timestamp and a signature
  | 'ERR_BOLT11_FIELD' // a tagged field that does not parse (truncated, bad padding, bad value)
  | 'ERR_BOLT11_FIELD_LENGTH' // p/h/s/n of the wrong length, when asked to fail on those
  | 'ERR_BOLT11_NON_MINIMAL' // x, c or 9 beginning with a zero word
  | 'ERR_BOLT11_MISSING_FIELD' // no p, no s, or neither d nor h
  | 'ERR_BOLT11_CONFLICTING_FIELDS' // both d and h
  | 'ERR_BOLT11_FEATURES' // an unknown even feature bit, or a feature without its dependencies
  | 'ERR_BOLT11_SIGNATURE' // bad recovery id, not recoverable, or not valid for `n`
  | 'ERR_BOLT11_HIGH_S' // a high-S signature where `n` is given
  | 'ERR_BOLT11_INVALID_ARGUMENT'; // encoder input that cannot be written

export class Bolt11Error extends AmpnodeError<Bolt11ErrorCode> {}

function fail(code: Bolt11ErrorCode, message: string, cause?: unknown): never {
  throw new Bolt11Error(code, message, cause === undefined ? undefined : { cause });
}

// ---------------------------------------------------------------- constants

/** Tagged-field types (5-bit values), BOLT 11 "Tagged Fields". */
export const Bolt11Tag = {
  PaymentHash: 1, // p
  RouteHint: 3, // r
  Features: 5, // 9
  Expiry: 6, // x
  Fallback: 9, // f
  Description: 13, // d
  PaymentSecret: 16, // s
  PayeeNodeKey: 19, // n
  DescriptionHash: 23, // h
  MinFinalCltvExpiryDelta: 24, // c
  Metadata: 27, // m
} as const;

/** The bech32 character of a tag (`p` for 1, ...). */
export function tagLetter(tag: number): string {
  return BECH32_CHARSET[tag] ?? '?';
}

const LN_PREFIX = 'ln';
const WORD_BITS = 5;
const TIMESTAMP_WORDS = 7;
const SIGNATURE_WORDS = 104; // 520 bits: 64-byte r‖s and a recovery id byte
const COMPACT_SIGNATURE_BYTES = 64;
const MAX_RECOVERY_ID = 3;
const TAG_HEADER_WORDS = 3; // type, then data_length in two words
const MAX_FIELD_WORDS = 1023; // data_length is 10 bits
const HASH_WORDS = 52; // 256 bits, padded
const PUBKEY_WORDS = 53; // 264 bits, padded
const HASH_BYTES = 32;
const PUBKEY_BYTES = 33;
const ROUTE_HINT_HOP_BYTES = 33 + 8 + 4 + 4 + 2;
const MAX_TIMESTAMP = 2 ** (TIMESTAMP_WORDS * WORD_BITS) - 1;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const U64_MAX = (1n << 64n) - 1n;
const HALF_CURVE_ORDER = CURVE_ORDER >> 1n;
/** The longest amount text we parse: 2^64 − 1 msat spelled in pico-bitcoin has 21 digits. */
const MAX_AMOUNT_DIGITS = 21;

/** Defaults when `x` / `c` are absent. */
export const DEFAULT_EXPIRY_SECONDS = 3600;
export const DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA = 18;

/** Largest `c` we accept: a CLTV value is a u32 in the protocol. */
export const MAX_MIN_FINAL_CLTV_EXPIRY_DELTA = U32_MAX;
/** Largest `x` we accept: seconds as a safe JavaScript integer. */
export const MAX_EXPIRY_SECONDS = Number.MAX_SAFE_INTEGER;

/** Fallback `version` values besides witness versions 0..16. */
export const FALLBACK_P2PKH_VERSION = 17;
export const FALLBACK_P2SH_VERSION = 18;
const HASH160_BYTES = 20;

/**
 * Feature pairs a decoder understands unless told otherwise: what a payer
 * needs to know to pay (BOLT 9's `9` context, plus lnd's AMP).
 */
export const BOLT11_KNOWN_FEATURES: readonly number[] = [
  Feature.VarOnionOptin,
  Feature.PaymentSecret,
  Feature.BasicMpp,
  Feature.Amp,
  Feature.PaymentMetadata,
];

// ---------------------------------------------------------------- networks

export type Bolt11Network = 'bc' | 'tb' | 'tbs' | 'bcrt' | 'sb';

export interface Bolt11NetworkParams {
  readonly name: string;
  /** hrp of segwit addresses. */
  readonly segwitHrp: string;
  /** base58check version bytes. */
  readonly p2pkhVersion: number;
  readonly p2shVersion: number;
}

/** Currency prefixes (after `ln`): BIP 173's, `tbs` for signet (BOLT 11), `sb` for simnet (lnd). */
export const BOLT11_NETWORKS: Readonly<Record<Bolt11Network, Bolt11NetworkParams>> = {
  bc: { name: 'bitcoin mainnet', segwitHrp: 'bc', p2pkhVersion: 0x00, p2shVersion: 0x05 },
  tb: { name: 'bitcoin testnet', segwitHrp: 'tb', p2pkhVersion: 0x6f, p2shVersion: 0xc4 },
  tbs: { name: 'bitcoin signet', segwitHrp: 'tb', p2pkhVersion: 0x6f, p2shVersion: 0xc4 },
  bcrt: { name: 'bitcoin regtest', segwitHrp: 'bcrt', p2pkhVersion: 0x6f, p2shVersion: 0xc4 },
  sb: { name: 'bitcoin simnet', segwitHrp: 'sb', p2pkhVersion: 0x3f, p2shVersion: 0x7b },
};

function isNetwork(s: string): s is Bolt11Network {
  return Object.prototype.hasOwnProperty.call(BOLT11_NETWORKS, s);
}

// ---------------------------------------------------------------- amounts

const MSAT_PER_BTC = 100_000_000_000n;
/** msat per unit for each multiplier; `p` (0.1 msat) is handled apart. */
const MULTIPLIER_MSAT: ReadonlyArray<readonly [string, bigint]> = [
  ['', MSAT_PER_BTC],
  ['m', MSAT_PER_BTC / 1_000n],
  ['u', MSAT_PER_BTC / 1_000_000n],
  ['n', MSAT_PER_BTC / 1_000_000_000n],
];
const PICO_MULTIPLIER = 'p';
const PICO_PER_MSAT = 10n;

function parseAmount(s: string): bigint {
  const m = /^([0-9]+)([a-z]?)$/.exec(s);
  if (m === null) fail('ERR_BOLT11_AMOUNT', `'${s}' is not a decimal amount with an optional multiplier`);
  const digits = m[1]!;
  const mult = m[2]!;
  if (digits[0] === '0') fail('ERR_BOLT11_AMOUNT', `'${s}': the amount must be positive, without leading zeros`);
  if (digits.length > MAX_AMOUNT_DIGITS) fail('ERR_BOLT11_AMOUNT', `'${s}': amount too large`);
  const n = BigInt(digits);
  let msat: bigint;
  if (mult === PICO_MULTIPLIER) {
    if (n % PICO_PER_MSAT !== 0n) fail('ERR_BOLT11_AMOUNT', `'${s}': sub-millisatoshi precision`);
    msat = n / PICO_PER_MSAT;
  } else {
    const unit = MULTIPLIER_MSAT.find(([k]) => k === mult);
    if (unit === undefined) fail('ERR_BOLT11_AMOUNT', `'${mult}' is not a multiplier`);
    msat = n * unit[1];
  }
  if (msat > U64_MAX) fail('ERR_BOLT11_AMOUNT', `'${s}': more than 2^64 - 1 msat`);
  return msat;
}

/** The shortest amount text for `amountMsat`: the largest multiplier that keeps it whole. */
export function formatAmount(amountMsat: bigint): string {
  if (typeof amountMsat !== 'bigint' || amountMsat <= 0n || amountMsat > U64_MAX)
    fail('ERR_BOLT11_INVALID_ARGUMENT', `amountMsat must be in [1, 2^64 - 1], got ${String(amountMsat)}`);
  for (const [mult, unit] of MULTIPLIER_MSAT) if (amountMsat % unit === 0n) return `${amountMsat / unit}${mult}`;
  return `${amountMsat * PICO_PER_MSAT}${PICO_MULTIPLIER}`;
}

interface ParsedHrp {
  network: Bolt11Network;
  amountMsat: bigint | undefined;
}

function parseHrp(hrp: string): ParsedHrp {
  if (!hrp.startsWith(LN_PREFIX)) fail('ERR_BOLT11_PREFIX', `hrp '${hrp}' does not start with '${LN_PREFIX}'`);
  const rest = hrp.slice(LN_PREFIX.length);
  const m = /^([a-z]*)(.*)$/.exec(rest)!;
  const currency = m[1]!;
  if (!isNetwork(currency)) fail('ERR_BOLT11_PREFIX', `unknown currency prefix '${currency}'`);
  const amountText = m[2]!;
  return { network: currency, amountMsat: amountText === '' ? undefined : parseAmount(amountText) };
}

// ---------------------------------------------------------------- types

export interface HopHint {
  /** Node at the start of the channel. */
  nodeId: Uint8Array;
  shortChannelId: bigint;
  feeBaseMsat: number;
  feeProportionalMillionths: number;
  cltvExpiryDelta: number;
}

/** `version` 0..16: witness version and program; 17: P2PKH hash; 18: P2SH hash. */
export interface FallbackAddress {
  version: number;
  program: Uint8Array;
}

export type Bolt11TaggedField =
  | { type: 'payment_hash'; value: Uint8Array }
  | { type: 'payment_secret'; value: Uint8Array }
  | { type: 'description'; value: string }
  | { type: 'description_hash'; value: Uint8Array }
  | { type: 'payee'; value: Uint8Array }
  | { type: 'expiry'; value: number }
  | { type: 'min_final_cltv_expiry_delta'; value: number }
  | { type: 'fallback'; value: FallbackAddress }
  | { type: 'route_hint'; value: HopHint[] }
  /** Feature bits in `FeatureVector` byte form (big-endian, minimal). */
  | { type: 'features'; value: Uint8Array }
  | { type: 'metadata'; value: Uint8Array }
  /** A field the reader skipped (or any raw field to write): its tag and data words. */
  | { type: 'skipped'; tag: number; words: Uint8Array; reason: string };

/** What an invoice says, before it is signed. */
export interface Bolt11InvoiceContent {
  network: Bolt11Network;
  amountMsat?: bigint | undefined;
  /** Seconds since 1970 (35 bits). */
  timestamp: number;
  /** Tagged fields in the order they are written. */
  fields: readonly Bolt11TaggedField[];
  /** An exact hrp to write (one the amount could be spelled in otherwise); must agree with network and amount. */
  hrp?: string | undefined;
}

export interface Bolt11SignedContent extends Bolt11InvoiceContent {
  /** Compact r‖s. */
  signature: Uint8Array;
  recoveryId: number;
}

export interface Bolt11Invoice extends Bolt11SignedContent {
  hrp: string;
  amountMsat: bigint | undefined;
  fields: Bolt11TaggedField[];
  paymentHash: Uint8Array;
  paymentSecret: Uint8Array;
  description: string | undefined;
  descriptionHash: Uint8Array | undefined;
  /** The `n` field, when present. */
  payeeNodeKey: Uint8Array | undefined;
  /** `x`, or the default 3600. */
  expirySeconds: number;
  /** `c`, or the default 18. */
  minFinalCltvExpiryDelta: number;
  fallbacks: Array<FallbackAddress & { address: string }>;
  routeHints: HopHint[][];
  /** `9` in `FeatureVector` byte form; empty when absent. */
  features: Uint8Array;
  metadata: Uint8Array | undefined;
  /** The payee: `n`, or the key recovered from the signature. */
  payee: Uint8Array;
  /** SHA-256 of the signed bytes. */
  signingHash: Uint8Array;
}

export interface DecodeInvoiceOptions {
  /** Refuse invoices for any other currency (`ERR_BOLT11_NETWORK`). */
  network?: Bolt11Network;
  /** Feature pairs (either bit) we understand; default `BOLT11_KNOWN_FEATURES`. */
  knownFeatures?: Iterable<number>;
  /**
   * Fail (`ERR_BOLT11_FIELD_LENGTH`) on `p`/`h`/`s`/`n` of the wrong length, as
   * the reader requirements say since 2025, instead of skipping them as the
   * spec's examples still show.
   */
  rejectWrongLengthFields?: boolean;
}

// ---------------------------------------------------------------- 5-bit integers

function wordsToUint(words: Uint8Array, max: number, what: string): number {
  if (words.length > 0 && words[0] === 0) fail('ERR_BOLT11_NON_MINIMAL', `${what} begins with a zero word`);
  let v = 0;
  for (const w of words) {
    v = v * 32 + w;
    if (v > max) fail('ERR_BOLT11_FIELD', `${what} exceeds ${max}`);
  }
  return v;
}

function uintToWords(v: number, what: string, max: number = Number.MAX_SAFE_INTEGER): Uint8Array {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) fail('ERR_BOLT11_INVALID_ARGUMENT', `${what} out of range: ${v}`);
  const out: number[] = [];
  while (v > 0) {
    out.unshift(v % 32);
    v = Math.floor(v / 32);
  }
  return Uint8Array.from(out);
}

/** Feature words: bit 0 is the lowest bit of the last word. */
function wordsToFeatures(words: Uint8Array): Uint8Array {
  if (words.length > 0 && words[0] === 0) fail('ERR_BOLT11_NON_MINIMAL', 'features (9) begin with a zero word');
  const bits: number[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const base = (words.length - 1 - i) * WORD_BITS;
    for (let j = 0; j < WORD_BITS; j++) if (w & (1 << j)) bits.push(base + j);
  }
  return FeatureVector.fromBits(bits).encode();
}

function featuresToWords(bytes: Uint8Array): Uint8Array {
  const bits = FeatureVector.decode(bytes).bits();
  if (bits.length === 0) return new Uint8Array(0);
  const n = Math.floor(bits[bits.length - 1]! / WORD_BITS) + 1;
  const out = new Uint8Array(n);
  for (const b of bits) out[n - 1 - Math.floor(b / WORD_BITS)]! |= 1 << (b % WORD_BITS);
  return out;
}

// ---------------------------------------------------------------- field codecs

function fieldBytes(tag: number, words: Uint8Array): Uint8Array {
  try {
    return wordsToBytes(words);
  } catch (e) {
    if (e instanceof Bech32Error) fail('ERR_BOLT11_FIELD', `field ${tagLetter(tag)}: ${e.message}`, e);
    throw e;
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch (e) {
    return fail('ERR_BOLT11_FIELD', 'description (d) is not valid UTF-8', e);
  }
}

function isValidPubkey(b: Uint8Array): boolean {
  return b.length === PUBKEY_BYTES && (b[0] === 2 || b[0] === 3) && secp.isPublicKey(b);
}

function decodeRouteHint(bytes: Uint8Array): HopHint[] {
  if (bytes.length === 0 || bytes.length % ROUTE_HINT_HOP_BYTES !== 0)
    fail('ERR_BOLT11_FIELD', `route hint (r) of ${bytes.length} bytes is not one or more ${ROUTE_HINT_HOP_BYTES}-byte hops`);
  const r = new Reader(bytes);
  const hops: HopHint[] = [];
  while (r.remaining > 0) {
    const nodeId = r.bytes(PUBKEY_BYTES);
    if (!isValidPubkey(nodeId)) fail('ERR_BOLT11_FIELD', `route hint (r) hop ${hops.length}: invalid public key`);
    hops.push({
      nodeId,
      shortChannelId: r.u64(),
      feeBaseMsat: r.u32(),
      feeProportionalMillionths: r.u32(),
      cltvExpiryDelta: r.u16(),
    });
  }
  return hops;
}

function encodeRouteHint(hops: readonly HopHint[]): Uint8Array {
  if (hops.length === 0) fail('ERR_BOLT11_INVALID_ARGUMENT', 'a route hint needs at least one hop');
  const w = new Writer(hops.length * ROUTE_HINT_HOP_BYTES);
  for (const h of hops) {
    if (!isValidPubkey(h.nodeId)) fail('ERR_BOLT11_INVALID_ARGUMENT', 'route hint hop: invalid node id');
    const inRange =
      typeof h.shortChannelId === 'bigint' &&
      h.shortChannelId >= 0n &&
      h.shortChannelId <= U64_MAX &&
      isUint(h.feeBaseMsat, U32_MAX) &&
      isUint(h.feeProportionalMillionths, U32_MAX) &&
      isUint(h.cltvExpiryDelta, U16_MAX);
    if (!inRange) fail('ERR_BOLT11_INVALID_ARGUMENT', 'route hint hop: a value out of range');
    w.bytes(h.nodeId).u64(h.shortChannelId).u32(h.feeBaseMsat).u32(h.feeProportionalMillionths).u16(h.cltvExpiryDelta);
  }
  return w.finish();
}

function isUint(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

/** null when a known-version fallback is well formed; else why not. */
function fallbackProblem(f: FallbackAddress): string | null {
  if (f.version === FALLBACK_P2PKH_VERSION || f.version === FALLBACK_P2SH_VERSION)
    return f.program.length === HASH160_BYTES ? null : `hash of ${f.program.length} bytes (${HASH160_BYTES} expected)`;
  return witnessProgramProblem(f.version, f.program);
}

function isKnownFallbackVersion(v: number): boolean {
  return v <= MAX_WITNESS_VERSION || v === FALLBACK_P2PKH_VERSION || v === FALLBACK_P2SH_VERSION;
}

function skipped(tag: number, words: Uint8Array, reason: string): Bolt11TaggedField {
  return { type: 'skipped', tag, words: words.slice(), reason };
}

function decodeField(tag: number, words: Uint8Array, opts: DecodeInvoiceOptions): Bolt11TaggedField {
  const fixedLength = (expected: number): boolean => {
    if (words.length === expected) return true;
    if (opts.rejectWrongLengthFields === true)
      fail('ERR_BOLT11_FIELD_LENGTH', `field ${tagLetter(tag)} has data_length ${words.length}, ${expected} required`);
    return false;
  };
  const wrongLength = `data_length ${words.length}`;
  switch (tag) {
    case Bolt11Tag.PaymentHash:
      return fixedLength(HASH_WORDS) ? { type: 'payment_hash', value: fieldBytes(tag, words) } : skipped(tag, words, wrongLength);
    case Bolt11Tag.PaymentSecret:
      return fixedLength(HASH_WORDS) ? { type: 'payment_secret', value: fieldBytes(tag, words) } : skipped(tag, words, wrongLength);
    case Bolt11Tag.DescriptionHash:
      return fixedLength(HASH_WORDS) ? { type: 'description_hash', value: fieldBytes(tag, words) } : skipped(tag, words, wrongLength);
    case Bolt11Tag.PayeeNodeKey: {
      if (!fixedLength(PUBKEY_WORDS)) return skipped(tag, words, wrongLength);
      const key = fieldBytes(tag, words);
      if (!isValidPubkey(key)) fail('ERR_BOLT11_FIELD', 'payee (n) is not a valid public key');
      return { type: 'payee', value: key };
    }
    case Bolt11Tag.Description:
      return { type: 'description', value: decodeUtf8(fieldBytes(tag, words)) };
    case Bolt11Tag.Expiry:
      return { type: 'expiry', value: wordsToUint(words, MAX_EXPIRY_SECONDS, 'expiry (x)') };
    case Bolt11Tag.MinFinalCltvExpiryDelta:
      return {
        type: 'min_final_cltv_expiry_delta',
        value: wordsToUint(words, MAX_MIN_FINAL_CLTV_EXPIRY_DELTA, 'min_final_cltv_expiry_delta (c)'),
      };
    case Bolt11Tag.Fallback: {
      if (words.length === 0) fail('ERR_BOLT11_FIELD', 'fallback (f) without a version');
      const version = words[0]!;
      if (!isKnownFallbackVersion(version)) return skipped(tag, words, `fallback version ${version}`);
      const f: FallbackAddress = { version, program: fieldBytes(tag, words.subarray(1)) };
      const problem = fallbackProblem(f);
      if (problem !== null) fail('ERR_BOLT11_FIELD', `fallback (f) version ${version}: ${problem}`);
      return { type: 'fallback', value: f };
    }
    case Bolt11Tag.RouteHint:
      return { type: 'route_hint', value: decodeRouteHint(fieldBytes(tag, words)) };
    case Bolt11Tag.Features:
      return { type: 'features', value: wordsToFeatures(words) };
    case Bolt11Tag.Metadata:
      return { type: 'metadata', value: fieldBytes(tag, words) };
    default:
      return skipped(tag, words, 'unknown tag');
  }
}

function needBytes(v: unknown, length: number | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || (length !== undefined && v.length !== length))
    fail('ERR_BOLT11_INVALID_ARGUMENT', `${what} must be ${length === undefined ? '' : `${length} `}bytes`);
  return v;
}

/** [tag, data words] of one field. */
function encodeField(f: Bolt11TaggedField): [number, Uint8Array] {
  switch (f.type) {
    case 'payment_hash':
      return [Bolt11Tag.PaymentHash, bytesToWords(needBytes(f.value, HASH_BYTES, 'payment_hash'))];
    case 'payment_secret':
      return [Bolt11Tag.PaymentSecret, bytesToWords(needBytes(f.value, HASH_BYTES, 'payment_secret'))];
    case 'description_hash':
      return [Bolt11Tag.DescriptionHash, bytesToWords(needBytes(f.value, HASH_BYTES, 'description_hash'))];
    case 'payee':
      if (!isValidPubkey(needBytes(f.value, PUBKEY_BYTES, 'payee'))) fail('ERR_BOLT11_INVALID_ARGUMENT', 'payee: invalid public key');
      return [Bolt11Tag.PayeeNodeKey, bytesToWords(f.value)];
    case 'description':
      if (typeof f.value !== 'string') fail('ERR_BOLT11_INVALID_ARGUMENT', 'description must be a string');
      if (LONE_SURROGATE.test(f.value)) fail('ERR_BOLT11_INVALID_ARGUMENT', 'description has a lone surrogate (not encodable as UTF-8)');
      return [Bolt11Tag.Description, bytesToWords(utf8Encoder.encode(f.value))];
    case 'expiry':
      return [Bolt11Tag.Expiry, uintToWords(f.value, 'expiry', MAX_EXPIRY_SECONDS)];
    case 'min_final_cltv_expiry_delta':
      return [Bolt11Tag.MinFinalCltvExpiryDelta, uintToWords(f.value, 'min_final_cltv_expiry_delta', MAX_MIN_FINAL_CLTV_EXPIRY_DELTA)];
    case 'fallback': {
      const fb = f.value;
      needBytes(fb.program, undefined, 'fallback program');
      if (!isUint(fb.version, 31) || !isKnownFallbackVersion(fb.version))
        fail('ERR_BOLT11_INVALID_ARGUMENT', `fallback version ${fb.version} (write other versions as a skipped field)`);
      const problem = fallbackProblem(fb);
      if (problem !== null) fail('ERR_BOLT11_INVALID_ARGUMENT', `fallback: ${problem}`);
      return [Bolt11Tag.Fallback, concatBytes(Uint8Array.of(fb.version), bytesToWords(fb.program))];
    }
    case 'route_hint':
      return [Bolt11Tag.RouteHint, bytesToWords(encodeRouteHint(f.value))];
    case 'features':
      return [Bolt11Tag.Features, featuresToWords(needBytes(f.value, undefined, 'features'))];
    case 'metadata':
      return [Bolt11Tag.Metadata, bytesToWords(needBytes(f.value, undefined, 'metadata'))];
    case 'skipped': {
      if (!isUint(f.tag, 31)) fail('ERR_BOLT11_INVALID_ARGUMENT', `tag ${f.tag} is not 5 bits`);
      const words = needBytes(f.words, undefined, 'skipped field words');
      if (words.some((w) => w > 31)) fail('ERR_BOLT11_INVALID_ARGUMENT', 'skipped field words must be 5-bit values');
      return [f.tag, words];
    }
    default:
      return fail('ERR_BOLT11_INVALID_ARGUMENT', `unknown field type ${(f as { type: unknown }).type as string}`);
  }
}

// ---------------------------------------------------------------- data part

function checkTimestamp(t: number): void {
  if (!isUint(t, MAX_TIMESTAMP)) fail('ERR_BOLT11_INVALID_ARGUMENT', `timestamp out of range: ${t}`);
}

function resolveHrp(c: Bolt11InvoiceContent): string {
  if (!isNetwork(c.network)) fail('ERR_BOLT11_INVALID_ARGUMENT', `unknown network '${String(c.network)}'`);
  const amount = c.amountMsat ?? undefined;
  if (c.hrp === undefined) return LN_PREFIX + c.network + (amount === undefined ? '' : formatAmount(amount));
  let parsed: ParsedHrp;
  try {
    parsed = parseHrp(c.hrp);
  } catch (e) {
    return fail('ERR_BOLT11_INVALID_ARGUMENT', `hrp '${c.hrp}': ${(e as Error).message}`, e);
  }
  if (parsed.network !== c.network || parsed.amountMsat !== amount)
    fail('ERR_BOLT11_INVALID_ARGUMENT', `hrp '${c.hrp}' does not say network ${c.network} and amount ${String(amount)}`);
  return c.hrp;
}

/** Timestamp and tagged fields as 5-bit words (the signed data part). */
function dataWords(c: Bolt11InvoiceContent): Uint8Array {
  checkTimestamp(c.timestamp);
  const parts: Uint8Array[] = [uintWordsFixed(c.timestamp, TIMESTAMP_WORDS)];
  if (!Array.isArray(c.fields)) fail('ERR_BOLT11_INVALID_ARGUMENT', 'fields must be an array');
  for (const f of c.fields) {
    const [tag, words] = encodeField(f);
    if (words.length > MAX_FIELD_WORDS)
      fail('ERR_BOLT11_INVALID_ARGUMENT', `field ${tagLetter(tag)} has ${words.length} words, at most ${MAX_FIELD_WORDS} fit`);
    parts.push(Uint8Array.of(tag, words.length >> WORD_BITS, words.length & 31), words);
  }
  return concatBytes(...parts);
}

function uintWordsFixed(v: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = v % 32;
    v = Math.floor(v / 32);
  }
  return out;
}

function hashToSign(hrp: string, words: Uint8Array): Uint8Array {
  return sha256(signingBytes(hrp, words));
}

function signingBytes(hrp: string, words: Uint8Array): Uint8Array {
  return concatBytes(utf8Encoder.encode(hrp), wordsToBytesPadded(words));
}

/** The bytes a signature covers: the hrp's UTF-8 and the data part (timestamp and fields) zero-padded to bytes. */
export function invoiceSigningData(c: Bolt11InvoiceContent): Uint8Array {
  return signingBytes(resolveHrp(c), dataWords(c));
}

// ---------------------------------------------------------------- decode

type ValueField = Exclude<Bolt11TaggedField, { type: 'skipped' }>;
type FieldValues = { [F in ValueField as F['type']]: F['value'] };

/** The value of the first field of `type` (the one a reader uses when a field appears more than once). */
function firstValue<K extends keyof FieldValues>(fields: readonly Bolt11TaggedField[], type: K): FieldValues[K] | undefined {
  for (const f of fields) if (f.type === type) return (f as ValueField).value as FieldValues[K];
  return undefined;
}

/**
 * Decode and verify a payment request. Throws only `Bolt11Error`.
 */
export function decodeInvoice(invoice: string, opts: DecodeInvoiceOptions = {}): Bolt11Invoice {
  if (typeof invoice !== 'string') fail('ERR_BOLT11_BECH32', 'invoice is not a string');
  let hrp: string;
  let words: Uint8Array;
  try {
    ({ hrp, words } = bech32Decode(invoice, 'bech32', Infinity));
  } catch (e) {
    if (!(e instanceof Bech32Error)) throw e;
    fail(e.code === 'ERR_BECH32_CHECKSUM' ? 'ERR_BOLT11_CHECKSUM' : 'ERR_BOLT11_BECH32', e.message, e);
  }
  const { network, amountMsat } = parseHrp(hrp);
  if (opts.network !== undefined && opts.network !== network)
    fail('ERR_BOLT11_NETWORK', `invoice for ${BOLT11_NETWORKS[network].name}, expected ${BOLT11_NETWORKS[opts.network].name}`);
  if (words.length < TIMESTAMP_WORDS + SIGNATURE_WORDS)
    fail('ERR_BOLT11_TOO_SHORT', `data part of ${words.length} words cannot hold a timestamp and a signature`);

  let timestamp = 0;
  for (let i = 0; i < TIMESTAMP_WORDS; i++) timestamp = timestamp * 32 + words[i]!;

  const end = words.length - SIGNATURE_WORDS;
  const fields: Bolt11TaggedField[] = [];
  for (let pos = TIMESTAMP_WORDS; pos < end;) {
    if (end - pos < TAG_HEADER_WORDS) fail('ERR_BOLT11_FIELD', `truncated tagged field header at word ${pos}`);
    const tag = words[pos]!;
    const len = words[pos + 1]! * 32 + words[pos + 2]!;
    pos += TAG_HEADER_WORDS;
    if (len > end - pos) fail('ERR_BOLT11_FIELD', `field ${tagLetter(tag)} of ${len} words overruns the data part`);
    fields.push(decodeField(tag, words.subarray(pos, pos + len), opts));
    pos += len;
  }

  const first = <K extends keyof FieldValues>(type: K) => firstValue(fields, type);
  const paymentHash = first('payment_hash');
  const paymentSecret = first('payment_secret');
  const description = first('description');
  const descriptionHash = first('description_hash');
  if (paymentHash === undefined) fail('ERR_BOLT11_MISSING_FIELD', 'no payment hash (p)');
  if (paymentSecret === undefined) fail('ERR_BOLT11_MISSING_FIELD', 'no payment secret (s)');
  if (description === undefined && descriptionHash === undefined)
    fail('ERR_BOLT11_MISSING_FIELD', 'neither a description (d) nor a description hash (h)');
  if (description !== undefined && descriptionHash !== undefined)
    fail('ERR_BOLT11_CONFLICTING_FIELDS', 'both a description (d) and a description hash (h)');

  const features = first('features') ?? new Uint8Array(0);
  const fv = FeatureVector.decode(features);
  const unknownEven = unknownRequiredBits(fv, new Set(opts.knownFeatures ?? BOLT11_KNOWN_FEATURES));
  if (unknownEven.length > 0) fail('ERR_BOLT11_FEATURES', `unknown required feature bit(s) ${unknownEven.join(', ')}`);
  const missingDeps = validateFeatureDependencies(fv);
  if (missingDeps !== null) fail('ERR_BOLT11_FEATURES', missingDeps);

  const sigBytes = wordsToBytes(words.subarray(end));
  const signature = sigBytes.slice(0, COMPACT_SIGNATURE_BYTES);
  const recoveryId = sigBytes[COMPACT_SIGNATURE_BYTES]!;
  if (recoveryId > MAX_RECOVERY_ID) fail('ERR_BOLT11_SIGNATURE', `recovery id ${recoveryId} is not in 0..${MAX_RECOVERY_ID}`);
  const signingHash = hashToSign(hrp, words.subarray(0, end));
  const payeeNodeKey = first('payee');
  let payee: Uint8Array;
  if (payeeNodeKey !== undefined) {
    if (!secp.verify(signature, signingHash, payeeNodeKey)) {
      if (isHighS(signature) && secp.verify(normalizeSignature(signature), signingHash, payeeNodeKey))
        fail('ERR_BOLT11_HIGH_S', 'the signature is valid for the payee (n) but not low-S');
      fail('ERR_BOLT11_SIGNATURE', 'the signature is not valid for the payee (n)');
    }
    payee = payeeNodeKey;
  } else {
    const recovered = secp.recover(signature, recoveryId, signingHash);
    if (recovered === null) fail('ERR_BOLT11_SIGNATURE', 'no public key recovers from the signature');
    payee = recovered;
  }

  const network0 = BOLT11_NETWORKS[network];
  return {
    network,
    hrp,
    amountMsat,
    timestamp,
    fields,
    paymentHash,
    paymentSecret,
    description,
    descriptionHash,
    payeeNodeKey,
    expirySeconds: first('expiry') ?? DEFAULT_EXPIRY_SECONDS,
    minFinalCltvExpiryDelta: first('min_final_cltv_expiry_delta') ?? DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    fallbacks: fields.flatMap((f) => (f.type === 'fallback' ? [{ ...f.value, address: renderFallback(network0, f.value) }] : [])),
    routeHints: fields.flatMap((f) => (f.type === 'route_hint' ? [f.value] : [])),
    features,
    metadata: first('metadata'),
    signature,
    recoveryId,
    payee,
    signingHash,
  };
}

function isHighS(sig: Uint8Array): boolean {
  return BigInt('0x' + bytesToHex(sig.subarray(32))) > HALF_CURVE_ORDER;
}

// ---------------------------------------------------------------- encode

export interface EncodeInvoiceOptions extends DecodeInvoiceOptions {
  /** Write the string in upper case (shorter QR codes); the default is lower case. */
  upperCase?: boolean;
}

/**
 * Write an invoice with the signature it carries, without checking it (see
 * `encodeInvoice` for a checked, signed one).
 */
export function serializeSignedInvoice(c: Bolt11SignedContent, opts: { upperCase?: boolean } = {}): string {
  const hrp = resolveHrp(c);
  const data = dataWords(c);
  needBytes(c.signature, COMPACT_SIGNATURE_BYTES, 'signature');
  if (!isUint(c.recoveryId, MAX_RECOVERY_ID)) fail('ERR_BOLT11_INVALID_ARGUMENT', `recovery id ${c.recoveryId}`);
  const sigWords = bytesToWords(concatBytes(c.signature, Uint8Array.of(c.recoveryId)));
  const s = bech32Encode(hrp, concatBytes(data, sigWords), 'bech32', Infinity);
  return opts.upperCase === true ? s.toUpperCase() : s;
}

/**
 * Sign (RFC 6979, low-S) and write an invoice, fields in the order given. The
 * result is decoded again with `opts` before it is returned, so an invoice
 * breaking a reader rule (no `p`, both `d` and `h`, an `n` other than the
 * signer, an unknown even feature, ...) fails here with the reader's code.
 * A private key that is not one is the crypto layer's `ERR_INVALID_PRIVKEY`.
 */
export function encodeInvoice(c: Bolt11InvoiceContent, privKey: Uint8Array, opts: EncodeInvoiceOptions = {}): string {
  const hrp = resolveHrp(c);
  const data = dataWords(c);
  const { signature, recoveryId } = secp.signRecoverable(hashToSign(hrp, data), privKey);
  const s = serializeSignedInvoice({ ...c, hrp, signature, recoveryId }, opts);
  decodeInvoice(s, opts);
  return s;
}

/** What a payee usually puts in an invoice; `invoiceFields` turns it into an ordered field list. */
export interface InvoiceParams {
  paymentHash: Uint8Array;
  paymentSecret: Uint8Array;
  description?: string;
  descriptionHash?: Uint8Array;
  expirySeconds?: number;
  minFinalCltvExpiryDelta?: number;
  /** Write `n` (otherwise the payer recovers the key from the signature). */
  payeeNodeKey?: Uint8Array;
  fallbacks?: FallbackAddress[];
  routeHints?: HopHint[][];
  features?: FeatureVector;
  metadata?: Uint8Array;
}

/** Tagged fields in the order p, d|h, x, c, n, f*, r*, 9, s, m (absent ones left out; empty features omitted). */
export function invoiceFields(params: InvoiceParams): Bolt11TaggedField[] {
  const p = params;
  const out: Bolt11TaggedField[] = [{ type: 'payment_hash', value: p.paymentHash }];
  if (p.description !== undefined) out.push({ type: 'description', value: p.description });
  if (p.descriptionHash !== undefined) out.push({ type: 'description_hash', value: p.descriptionHash });
  if (p.expirySeconds !== undefined) out.push({ type: 'expiry', value: p.expirySeconds });
  if (p.minFinalCltvExpiryDelta !== undefined) out.push({ type: 'min_final_cltv_expiry_delta', value: p.minFinalCltvExpiryDelta });
  if (p.payeeNodeKey !== undefined) out.push({ type: 'payee', value: p.payeeNodeKey });
  for (const f of p.fallbacks ?? []) out.push({ type: 'fallback', value: f });
  for (const r of p.routeHints ?? []) out.push({ type: 'route_hint', value: r });
  if (p.features !== undefined && !p.features.isEmpty()) out.push({ type: 'features', value: p.features.encode() });
  out.push({ type: 'payment_secret', value: p.paymentSecret });
  if (p.metadata !== undefined) out.push({ type: 'metadata', value: p.metadata });
  return out;
}

// ---------------------------------------------------------------- fallback addresses

const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const BASE58_CHECKSUM_BYTES = 4;

function base58Check(version: number, payload: Uint8Array): string {
  const body = concatBytes(Uint8Array.of(version), payload);
  const full = concatBytes(body, sha256(sha256(body)).subarray(0, BASE58_CHECKSUM_BYTES));
  let n = BigInt('0x' + bytesToHex(full));
  let out = '';
  while (n > 0n) {
    out = BASE58_ALPHABET[Number(n % 58n)]! + out;
    n /= 58n;
  }
  for (let i = 0; i < full.length && full[i] === 0; i++) out = BASE58_ALPHABET[0] + out;
  return out;
}

function renderFallback(net: Bolt11NetworkParams, f: FallbackAddress): string {
  if (f.version === FALLBACK_P2PKH_VERSION) return base58Check(net.p2pkhVersion, f.program);
  if (f.version === FALLBACK_P2SH_VERSION) return base58Check(net.p2shVersion, f.program);
  return encodeSegwitAddress(net.segwitHrp, f.version, f.program);
}

/** The on-chain address of a well-formed fallback on `network`. */
export function fallbackAddress(network: Bolt11Network, f: FallbackAddress): string {
  if (!isNetwork(network)) fail('ERR_BOLT11_INVALID_ARGUMENT', `unknown network '${String(network)}'`);
  const problem = isKnownFallbackVersion(f.version) ? fallbackProblem(f) : `fallback version ${f.version}`;
  if (problem !== null) fail('ERR_BOLT11_INVALID_ARGUMENT', problem);
  return renderFallback(BOLT11_NETWORKS[network], f);
}

// ---------------------------------------------------------------- helpers for the payer

/** The invoice's feature bits. */
export function invoiceFeatures(inv: Pick<Bolt11Invoice, 'features'>): FeatureVector {
  return FeatureVector.decode(inv.features);
}

/** AMP offered (bit 30 or 31), as lnd marks AMP invoices. */
export function isAmpInvoice(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).supports(Feature.Amp);
}

export function requiresAmp(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).requires(Feature.Amp);
}

/** basic_mpp offered (bit 16 or 17): the payer MAY split; otherwise it MUST NOT. */
export function supportsMpp(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).supports(Feature.BasicMpp);
}

export function requiresMpp(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).requires(Feature.BasicMpp);
}

export function supportsPaymentSecret(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).supports(Feature.PaymentSecret);
}

export function requiresPaymentSecret(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).requires(Feature.PaymentSecret);
}

export function supportsVarOnion(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).supports(Feature.VarOnionOptin);
}

export function requiresVarOnion(inv: Pick<Bolt11Invoice, 'features'>): boolean {
  return invoiceFeatures(inv).requires(Feature.VarOnionOptin);
}

/** Seconds since 1970 after which the invoice should not be paid. */
export function invoiceExpiresAt(inv: Pick<Bolt11Invoice, 'timestamp' | 'expirySeconds'>): number {
  return inv.timestamp + inv.expirySeconds;
}

export function isInvoiceExpired(inv: Pick<Bolt11Invoice, 'timestamp' | 'expirySeconds'>, nowSeconds: number): boolean {
  return nowSeconds > invoiceExpiresAt(inv);
}

/** The reader's check of `h` against a description obtained elsewhere (false when the invoice has no `h`). */
export function descriptionHashMatches(inv: Pick<Bolt11Invoice, 'descriptionHash'>, description: string | Uint8Array): boolean {
  if (inv.descriptionHash === undefined) return false;
  const bytes = typeof description === 'string' ? utf8Encoder.encode(description) : description;
  return equalBytes(sha256(bytes), inv.descriptionHash);
}
