/**
 * Feature bit vectors (BOLT 1 `init`, BOLT 9 assignments, lnd's own bits).
 *
 * On the wire a feature field is a big-endian byte string whose bit 0 is the
 * least significant bit of the LAST byte. Bits come in pairs: the even bit
 * means "required", the odd bit "supported". A `FeatureVector` keeps its
 * minimal byte form and is never mutated; `with`/`without`/`merge` return new
 * vectors. Fields of any length work (lnd's `init` carries bit 2023, so its
 * field is 253 bytes).
 *
 * Names are BOLT 9's where BOLT 9 assigns the bit, lnd's otherwise (AMP 30/31,
 * keysend 54/55, script-enforced-lease 2022/2023, ...), because lnd is the
 * peer we must interoperate with.
 */
import { ArgumentError, DecodeError } from './errors.js';

/** The largest bit a u16-length feature field can hold. */
export const MAX_FEATURE_BIT = 0xffff * 8 - 1;

/** Pair bases (the even, "required" bit) of the features we name. */
export const Feature = {
  DataLossProtect: 0,
  InitialRoutingSync: 2, // only the odd bit 3 is assigned
  UpfrontShutdownScript: 4,
  GossipQueries: 6,
  VarOnionOptin: 8,
  GossipQueriesEx: 10,
  StaticRemoteKey: 12,
  PaymentSecret: 14,
  BasicMpp: 16,
  LargeChannel: 18,
  AnchorOutputs: 20,
  AnchorsZeroFeeHtlcTx: 22,
  RouteBlinding: 24,
  ShutdownAnySegwit: 26,
  DualFund: 28,
  Amp: 30,
  Quiesce: 34,
  AttributionData: 36,
  OnionMessages: 38,
  ProvideStorage: 42,
  ChannelType: 44,
  ScidAlias: 46,
  PaymentMetadata: 48,
  Zeroconf: 50,
  Keysend: 54,
  SimpleClose: 60,
  Splice: 62,
  SimpleTaprootChans: 80,
  RbfCoopCloseStaging: 160,
  SimpleTaprootChansStaging: 180,
  ExperimentalEndorsement: 260,
  Bolt11BlindedPaths: 262,
  ScriptEnforcedLease: 2022,
} as const;

const NAMES = new Map<number, string>([
  [0, 'option_data_loss_protect'],
  [2, 'initial_routing_sync'],
  [4, 'option_upfront_shutdown_script'],
  [6, 'gossip_queries'],
  [8, 'var_onion_optin'],
  [10, 'gossip_queries_ex'],
  [12, 'option_static_remotekey'],
  [14, 'payment_secret'],
  [16, 'basic_mpp'],
  [18, 'option_support_large_channel'],
  [20, 'option_anchor_outputs'],
  [22, 'option_anchors_zero_fee_htlc_tx'],
  [24, 'option_route_blinding'],
  [26, 'option_shutdown_anysegwit'],
  [28, 'option_dual_fund'],
  [30, 'amp'],
  [34, 'option_quiesce'],
  [36, 'option_attribution_data'],
  [38, 'option_onion_messages'],
  [42, 'option_provide_storage'],
  [44, 'option_channel_type'],
  [46, 'option_scid_alias'],
  [48, 'option_payment_metadata'],
  [50, 'option_zeroconf'],
  [54, 'keysend'],
  [60, 'option_simple_close'],
  [62, 'option_splice'],
  [80, 'simple-taproot-chans'],
  [160, 'rbf-coop-close-x'],
  [180, 'simple-taproot-chans-x'],
  [260, 'endorsement-x'],
  [262, 'bolt-11-blinded-paths'],
  [2022, 'script-enforced-lease'],
]);

/** Name of a feature bit (either bit of its pair); `unknown_<bit>` when unassigned. */
export function featureName(bit: number): string {
  if (bit === 2) return `unknown_${bit}`; // initial_routing_sync only ever had its odd bit
  return NAMES.get(bit & ~1) ?? `unknown_${bit}`;
}

function checkBit(bit: number): void {
  if (!Number.isInteger(bit) || bit < 0 || bit > MAX_FEATURE_BIT) throw new ArgumentError(`not a feature bit: ${bit}`);
}

const EMPTY = new Uint8Array(0);

export class FeatureVector {
  /** Minimal big-endian bytes (no leading zero byte). */
  private readonly raw: Uint8Array;

  private constructor(minimal: Uint8Array) {
    this.raw = minimal;
  }

  static readonly empty = new FeatureVector(EMPTY);

  /** Reads a feature field of any length; leading zero bytes are accepted (BOLT 1 says SHOULD be minimal). */
  static decode(bytes: Uint8Array): FeatureVector {
    if (!(bytes instanceof Uint8Array)) throw new DecodeError('ERR_INVALID_VALUE', 'feature field is not bytes');
    if (bytes.length > 0xffff) throw new DecodeError('ERR_INVALID_VALUE', `feature field of ${bytes.length} bytes exceeds a u16 length`);
    let i = 0;
    while (i < bytes.length && bytes[i] === 0) i++;
    return new FeatureVector(bytes.slice(i));
  }

  static fromBits(bits: Iterable<number>): FeatureVector {
    let max = -1;
    const list = [...bits];
    for (const b of list) {
      checkBit(b);
      if (b > max) max = b;
    }
    const len = max < 0 ? 0 : (max >> 3) + 1;
    const out = new Uint8Array(len);
    for (const b of list) out[len - 1 - (b >> 3)]! |= 1 << (b & 7);
    return new FeatureVector(out);
  }

  /** Minimal big-endian encoding (a copy). */
  encode(): Uint8Array {
    return this.raw.slice();
  }

  /** Encoding padded with leading zeros to at least `length` bytes. */
  encodePadded(length: number): Uint8Array {
    if (length <= this.raw.length) return this.encode();
    const out = new Uint8Array(length);
    out.set(this.raw, length - this.raw.length);
    return out;
  }

  /** Exactly this bit is set. */
  has(bit: number): boolean {
    if (!Number.isInteger(bit) || bit < 0) return false;
    const idx = this.raw.length - 1 - (bit >> 3);
    if (idx < 0) return false;
    return (this.raw[idx]! & (1 << (bit & 7))) !== 0;
  }

  /** Either bit of the pair is set (`pairBase` may be either bit of the pair). */
  supports(pairBase: number): boolean {
    const even = pairBase & ~1;
    return this.has(even) || this.has(even + 1);
  }

  /** The even ("required") bit of the pair is set. */
  requires(pairBase: number): boolean {
    return this.has(pairBase & ~1);
  }

  /** Set bits, ascending. */
  bits(): number[] {
    const out: number[] = [];
    const n = this.raw.length;
    for (let i = n - 1; i >= 0; i--) {
      const byte = this.raw[i]!;
      if (byte === 0) continue;
      const base = (n - 1 - i) * 8;
      for (let j = 0; j < 8; j++) if (byte & (1 << j)) out.push(base + j);
    }
    return out;
  }

  isEmpty(): boolean {
    return this.raw.length === 0;
  }

  /** Bitwise OR (BOLT 1: `globalfeatures` and `features` are combined this way). */
  merge(other: FeatureVector): FeatureVector {
    const a = this.raw;
    const b = other.raw;
    const len = Math.max(a.length, b.length);
    const out = new Uint8Array(len);
    out.set(a, len - a.length);
    for (let i = 0; i < b.length; i++) out[len - b.length + i]! |= b[i]!;
    return new FeatureVector(out);
  }

  with(bit: number): FeatureVector {
    checkBit(bit);
    if (this.has(bit)) return this;
    return this.merge(FeatureVector.fromBits([bit]));
  }

  without(bit: number): FeatureVector {
    checkBit(bit);
    if (!this.has(bit)) return this;
    const out = this.raw.slice();
    out[out.length - 1 - (bit >> 3)]! &= ~(1 << (bit & 7));
    return FeatureVector.decode(out);
  }

  equals(other: FeatureVector): boolean {
    const a = this.raw;
    const b = other.raw;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  toString(): string {
    return this.bits()
      .map((b) => `${b}:${featureName(b)}`)
      .join(',');
  }
}

/**
 * Dependencies by pair base: a set feature (either bit) needs each listed
 * feature set too (either bit). BOLT 9's "Dependencies" column, past and
 * present (15→9, 17→15, 21→13, 23→13, 25→9, 51→47, 61→27), plus the ones lnd
 * enforces for its own bits (31→15, 55→9, 2023→23+45). `gossip_queries_ex →
 * gossip_queries` (11→7) is left out: BOLT 9 dropped it once gossip_queries
 * became assumed, and lnd never checked it.
 */
export const FEATURE_DEPENDENCIES: ReadonlyMap<number, readonly number[]> = new Map<number, readonly number[]>([
  [Feature.PaymentSecret, [Feature.VarOnionOptin]],
  [Feature.BasicMpp, [Feature.PaymentSecret]],
  [Feature.AnchorOutputs, [Feature.StaticRemoteKey]],
  [Feature.AnchorsZeroFeeHtlcTx, [Feature.StaticRemoteKey]],
  [Feature.RouteBlinding, [Feature.VarOnionOptin]],
  [Feature.Amp, [Feature.PaymentSecret]],
  [Feature.Zeroconf, [Feature.ScidAlias]],
  [Feature.Keysend, [Feature.VarOnionOptin]],
  [Feature.SimpleClose, [Feature.ShutdownAnySegwit]],
  [Feature.ScriptEnforcedLease, [Feature.ChannelType, Feature.AnchorsZeroFeeHtlcTx]],
]);

/** null when every set feature has its dependencies; else a reason naming the bits. */
export function validateFeatureDependencies(fv: FeatureVector): string | null {
  const missing: string[] = [];
  for (const [base, deps] of FEATURE_DEPENDENCIES) {
    if (!fv.supports(base)) continue;
    const setBit = fv.has(base) ? base : base + 1;
    for (const dep of deps) {
      if (!fv.supports(dep)) missing.push(`${featureName(base)} (bit ${setBit}) needs ${featureName(dep)} (bit ${dep} or ${dep + 1})`);
    }
  }
  return missing.length === 0 ? null : `missing feature dependency: ${missing.join('; ')}`;
}

/**
 * Even bits set in `fv` that we do not know. A bit counts as known when its
 * pair is known: `known` may list either bit of a pair, or be a vector of our
 * own features (where we usually set only the odd bit).
 */
export function unknownRequiredBits(fv: FeatureVector, known: ReadonlySet<number> | FeatureVector): number[] {
  const isKnown = known instanceof FeatureVector ? (b: number) => known.supports(b) : (b: number) => known.has(b) || known.has(b + 1);
  return fv.bits().filter((b) => b % 2 === 0 && !isKnown(b));
}
