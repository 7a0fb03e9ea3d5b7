/**
 * The BOLT 11 payment request of an invoice of ours, signed with the node key.
 *
 * Features as lnd writes them: a regular invoice var_onion (8, required), payment_secret (14, required) and
 * basic_mpp (17, optional); an AMP invoice 8, 14 and AMP (30, required) and no MPP bit, as lnd's AMP invoices have.
 * Route hints, as lnd writes them for unannounced channels: a payer outside them finds us only through hints, one per
 * usable unannounced channel whose peer told us its policy (its channel_update), the peer's fees and delta, most
 * inbound capacity first, at most MAX_ROUTE_HINTS. Announced channels are in the public graph and get no hint.
 */
import type { Invoice } from '../../htlc/invoices/index.js';
import { encodeInvoice, invoiceFields, type Bolt11Network, type HopHint } from '../../wire/bolt11.js';
import { hexToBytes } from '../../wire/bytes.js';
import { Feature, FeatureVector } from '../../wire/features.js';
import type { RoutingChannel } from './manager.js';

export const MAX_ROUTE_HINTS = 8;

const REGULAR_FEATURES = FeatureVector.fromBits([Feature.VarOnionOptin, Feature.PaymentSecret, Feature.BasicMpp + 1]);
const AMP_FEATURES = FeatureVector.fromBits([Feature.VarOnionOptin, Feature.PaymentSecret, Feature.Amp]);

/** Hints for the channels a payer can reach us through (see above). */
export function routeHints(channels: readonly RoutingChannel[]): HopHint[][] {
  return channels
    .filter((c) => c.active && !c.announced && c.peerPolicy !== undefined && !c.peerPolicy.disabled)
    .map((c) => ({ c, inboundMsat: c.capacitySat * 1000n - c.localBalanceMsat }))
    .sort((x, y) => (y.inboundMsat > x.inboundMsat ? 1 : y.inboundMsat < x.inboundMsat ? -1 : 0))
    .slice(0, MAX_ROUTE_HINTS)
    .map(({ c }) => [
      {
        nodeId: hexToBytes(c.peer),
        shortChannelId: c.shortChannelId,
        feeBaseMsat: Number(c.peerPolicy!.feeBaseMsat),
        feeProportionalMillionths: Number(c.peerPolicy!.feeProportionalMillionths),
        cltvExpiryDelta: c.peerPolicy!.cltvExpiryDelta,
      },
    ]);
}

export function paymentRequest(inv: Invoice, nodeKey: Uint8Array, network: Bolt11Network, channels: readonly RoutingChannel[]): string {
  const amp = inv.kind === 'amp';
  return encodeInvoice(
    {
      network,
      ...(inv.amountMsat > 0n ? { amountMsat: inv.amountMsat } : {}),
      timestamp: inv.createdAt,
      fields: invoiceFields({
        paymentHash: inv.paymentHash,
        paymentSecret: inv.paymentAddr,
        description: inv.memo ?? '',
        expirySeconds: inv.expirySeconds,
        minFinalCltvExpiryDelta: inv.minFinalCltvExpiryDelta,
        routeHints: routeHints(channels),
        features: amp ? AMP_FEATURES : REGULAR_FEATURES,
      }),
    },
    nodeKey,
  );
}
