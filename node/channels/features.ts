/**
 * The feature rows the channel layer backs (BOLT 9): static_remotekey (12/13),
 * anchors_zero_fee_htlc_tx (22/23) and channel_type (44/45); and those the
 * payment layer on top of it backs: var_onion_optin (8/9: the links peel TLV
 * onions), payment_secret (14/15), basic_mpp (16/17) and AMP (30/31), which
 * the invoice registry checks and reassembles.
 *
 * The channel manager opens and accepts exactly the two channel types
 * {12} and {12,22}, always with an explicit `channel_type` (lnd sends one only
 * when both sides signal 45, and requires it echoed), so the three pairs are
 * advertised together, optional, or not at all. `withChannelFeatures` returns
 * a copy of a feature table with those rows set; the node's default table
 * takes the same values once the manager runs in the daemon.
 */
import { Feature } from '../../wire/features.js';
import type { FeatureRow } from '../features.js';

export const CHANNEL_FEATURE_ROWS: readonly FeatureRow[] = [
  {
    pair: Feature.StaticRemoteKey,
    advertise: 'optional',
    assumed: true,
    backedBy: 'node/channels + htlc/channel: static_remotekey commitments (channel type {12})',
  },
  {
    pair: Feature.AnchorsZeroFeeHtlcTx,
    advertise: 'optional',
    assumed: false,
    backedBy: 'node/channels + htlc/channel: anchors zero-fee-HTLC commitments (channel type {12,22})',
  },
  {
    pair: Feature.ChannelType,
    advertise: 'optional',
    assumed: false,
    backedBy: 'node/channels + htlc/channel: channel_type sent in open_channel and echoed in accept_channel',
  },
  {
    pair: Feature.VarOnionOptin,
    advertise: 'optional',
    assumed: true,
    backedBy: "htlc/switch: the link peels every committed HTLC's TLV onion and forwards or hands it to the final hop",
  },
  {
    pair: Feature.PaymentSecret,
    advertise: 'optional',
    assumed: true,
    backedBy: 'htlc/invoices: payment_addr checked against the invoice for MPP and AMP HTLCs',
  },
  {
    pair: Feature.BasicMpp,
    advertise: 'optional',
    assumed: false,
    backedBy: 'htlc/invoices: MPP sets reassembled up to total_msat, mpp_timeout after the hold time',
  },
  {
    pair: Feature.GossipQueries,
    advertise: 'optional',
    assumed: false,
    backedBy: 'node/gossip.ts + htlc/gossip: range and id queries at connect, the timestamp filter, answers to the peer',
  },
  {
    pair: Feature.Amp,
    advertise: 'optional',
    assumed: false,
    backedBy: 'htlc/invoices: AMP sets per set_id, child preimages checked, reusable invoices',
  },
];

/** `table` with the channel rows advertised (replaced where present, appended otherwise). */
export function withChannelFeatures(table: readonly FeatureRow[]): FeatureRow[] {
  const out = table.map((r) => CHANNEL_FEATURE_ROWS.find((c) => c.pair === r.pair) ?? r);
  for (const c of CHANNEL_FEATURE_ROWS) if (!out.some((r) => r.pair === c.pair)) out.push(c);
  return out;
}
