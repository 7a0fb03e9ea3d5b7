/**
 * The feature bits this node puts in its `init` (BOLT 1, BOLT 9) and the even
 * bits it tolerates from a peer — in ONE table, one row per feature pair,
 * each row saying which layer of ours backs it. A layer that lands flips its
 * row from `no` to `optional` (or `required`); nothing else needs to change.
 *
 * Two separate questions per row:
 * - `advertise`: what we claim. We claim only what is implemented end to end;
 *   a bit whose layer does not exist yet stays `no`.
 * - `assumed`: BOLT 9 marks the pair ASSUMED (every current node implements it
 *   and may require it). A peer that REQUIRES such a bit (lnd requires 0, 8,
 *   12 and 14) is accepted, because our layers are designed only in the form
 *   those bits demand (TLV onions, static_remotekey commitments, payment
 *   secrets, the extra channel_reestablish fields). Without this, we could not
 *   stay connected to lnd at all. Any other even bit we do not advertise is
 *   "unknown required" and the connection is refused (BOLT 1).
 *
 * What lnd (v0.19) checks of OUR init, in `peer/brontide.go` handleInitMsg:
 * 1. no even bit lnd does not know (we only ever set bits from this table,
 *    all of which lnd knows);
 * 2. every dependency holds (15→9, 17→15, 23→13, 31→15, ...): enforced on our
 *    own vector at start-up by `localFeatures()`;
 * 3. bit 0 or 1 (data_loss_protect) is set, else "data loss protection
 *    required" and a disconnect. This is why bit 1 is advertised today.
 * lnd does not check `networks` and does not require 9/13/15 in init.
 */
import { ArgumentError } from '../wire/errors.js';
import { Feature, FeatureVector, featureName, validateFeatureDependencies } from '../wire/features.js';

export type Advertise = 'no' | 'optional' | 'required';

export interface FeatureRow {
  /** Even bit of the pair. */
  readonly pair: number;
  readonly advertise: Advertise;
  /** BOLT 9 lists the pair as ASSUMED: a peer may require it and we still connect. */
  readonly assumed: boolean;
  /** Which layer of ours backs the bit (and what it must do before the row may be flipped). */
  readonly backedBy: string;
}

export const FEATURE_TABLE: readonly FeatureRow[] = [
  {
    pair: Feature.DataLossProtect, // 0/1
    advertise: 'optional',
    assumed: true,
    backedBy:
      'htlc/ channel layer: channel_reestablish with your_last_per_commitment_secret and my_current_per_commitment_point ' +
      '(mandatory fields in BOLT 2 today). Advertised already: lnd drops any peer without 0/1, and with no channels yet ' +
      'no channel_reestablish is ever sent, so nothing can be broken by the claim.',
  },
  {
    pair: Feature.VarOnionOptin, // 8/9
    advertise: 'no',
    assumed: true,
    backedBy: 'onion/ (BOLT 4 TLV hop payloads) wired into the node: flip once payments are forwarded/received',
  },
  {
    pair: Feature.StaticRemoteKey, // 12/13
    advertise: 'no',
    assumed: true,
    backedBy: 'htlc/ BOLT 3 commitments with a static to_remote key: flip once channels can be opened',
  },
  {
    pair: Feature.PaymentSecret, // 14/15 (needs 8/9)
    advertise: 'no',
    assumed: true,
    backedBy: 'htlc/ invoice registry checking payment_secret in the final hop payload',
  },
  {
    pair: Feature.BasicMpp, // 16/17 (needs 14/15)
    advertise: 'no',
    assumed: false,
    backedBy: 'htlc/ MPP reassembly (total_msat, mpp_timeout)',
  },
  {
    pair: Feature.Amp, // 30/31 (lnd: needs 14/15)
    advertise: 'no',
    assumed: false,
    backedBy: 'htlc/ AMP reassembly (set_id, child_index, share reconstruction)',
  },
  {
    pair: Feature.ChannelType, // 44/45
    advertise: 'no',
    assumed: false,
    backedBy: 'htlc/ channel opening that sends and echoes channel_type',
  },
];

/**
 * Our `init` feature vector, from a table (the default one unless a caller
 * supplies another). Throws ArgumentError if the vector breaks a BOLT 9
 * dependency — a node must never send a vector lnd would reject.
 */
export function localFeatures(table: readonly FeatureRow[] = FEATURE_TABLE): FeatureVector {
  const bits: number[] = [];
  for (const r of table) {
    if (r.pair % 2 !== 0) throw new ArgumentError(`feature table row ${r.pair} must name the even bit of its pair`);
    if (r.advertise === 'optional') bits.push(r.pair + 1);
    else if (r.advertise === 'required') bits.push(r.pair);
  }
  const fv = FeatureVector.fromBits(bits);
  const broken = validateFeatureDependencies(fv);
  if (broken !== null) throw new ArgumentError(`our own feature table is inconsistent: ${broken}`);
  return fv;
}

/**
 * Whether we understand a peer's REQUIRED (even) bit: we advertise the pair,
 * or BOLT 9 marks it ASSUMED.
 */
export function knowsRequiredBit(bit: number, table: readonly FeatureRow[] = FEATURE_TABLE): boolean {
  const r = table.find((x) => x.pair === (bit & ~1));
  return r !== undefined && (r.assumed || r.advertise !== 'no');
}

/** The set of known bits (both of each pair) in the form `unknownRequiredBits` takes. */
export function knownFeatureBits(table: readonly FeatureRow[] = FEATURE_TABLE): Set<number> {
  const out = new Set<number>();
  for (const r of table) {
    if (r.assumed || r.advertise !== 'no') {
      out.add(r.pair);
      out.add(r.pair + 1);
    }
  }
  return out;
}

/** `[{bit, name}]` for logs and listPeers. */
export function describeFeatures(fv: FeatureVector): { bit: number; name: string }[] {
  return fv.bits().map((bit) => ({ bit, name: featureName(bit) }));
}
