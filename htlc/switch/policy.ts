/**
 * The checks an HTLC to forward goes through (BOLT 4 "Requirements" of a
 * forwarding node, with lnd's order: amount, fee, expiry). Pure: the switch
 * supplies the outgoing channel's policy, our channel_update for it and the
 * tip height; the result is null (forward) or the failure to send back.
 */
import type { FailureMessage } from '../../onion/index.js';
import type { ForwardingPolicy, SwitchConfig } from './interfaces.js';

export interface ForwardCheck {
  incomingAmountMsat: bigint;
  incomingCltvExpiry: number;
  outgoingAmountMsat: bigint;
  outgoingCltvExpiry: number;
  height: number;
  policy: ForwardingPolicy;
  /** The outgoing channel's capacity (the htlc_maximum_msat when the policy sets none). */
  capacityMsat: bigint;
  config: SwitchConfig;
  /** Our channel_update for the outgoing channel (with the 2-byte type, as lnd sends it). */
  channelUpdate: () => Uint8Array;
}

/** The fee our policy asks for forwarding `amountMsat`: base + amount · ppm / 1 000 000. */
export function forwardingFeeMsat(policy: ForwardingPolicy, amountMsat: bigint): bigint {
  return policy.baseFeeMsat + (amountMsat * policy.feeRatePpm) / 1_000_000n;
}

export function checkForward(c: ForwardCheck): FailureMessage | null {
  const { policy, config } = c;
  if (c.outgoingAmountMsat < policy.htlcMinimumMsat)
    return { name: 'amount_below_minimum', htlcMsat: c.outgoingAmountMsat, channelUpdate: c.channelUpdate() };
  const max = policy.htlcMaximumMsat ?? c.capacityMsat;
  if (c.outgoingAmountMsat > max) return { name: 'temporary_channel_failure', channelUpdate: c.channelUpdate() };
  const fee = forwardingFeeMsat(policy, c.outgoingAmountMsat);
  if (c.incomingAmountMsat < c.outgoingAmountMsat || c.incomingAmountMsat - c.outgoingAmountMsat < fee)
    return { name: 'fee_insufficient', htlcMsat: c.incomingAmountMsat, channelUpdate: c.channelUpdate() };
  // the incoming HTLC must leave us time to go to chain for it, the outgoing one time to come back
  if (c.incomingCltvExpiry <= c.height + config.incomingBroadcastDelta)
    return { name: 'expiry_too_soon', channelUpdate: c.channelUpdate() };
  if (c.outgoingCltvExpiry <= c.height + config.outgoingCltvRejectDelta)
    return { name: 'expiry_too_soon', channelUpdate: c.channelUpdate() };
  if (c.outgoingCltvExpiry > c.height + config.maxCltvExpiryDelta) return { name: 'expiry_too_far' };
  if (c.incomingCltvExpiry < c.outgoingCltvExpiry + policy.cltvExpiryDelta)
    return { name: 'incorrect_cltv_expiry', cltvExpiry: c.incomingCltvExpiry, channelUpdate: c.channelUpdate() };
  return null;
}
