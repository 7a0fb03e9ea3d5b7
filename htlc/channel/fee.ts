/**
 * The opener's commitment feerate policy (update_fee), as lnd's link applies
 * it: follow the network's estimate, but only when it moved by 10 % or more
 * (or the channel sits below the relay floor), never above a share of our
 * balance, and for anchor channels never above a fixed cap (the anchors let
 * a commitment be bumped by CPFP, so it need not pay for fast confirmation
 * itself). Pure: the caller supplies the estimate and sends the update.
 */
import { commitmentWeight } from '../bolt3/fees.js';
import { untrimmedCount, nextRemoteView } from './commitments.js';
import type { ChannelState } from './types.js';

/** BOLT 2's floor for feerate_per_kw (what a relay accepts: 1 sat/vbyte less rounding). */
export const MIN_FEERATE_PER_KW = 253;

export interface CommitFeePolicy {
  /** Largest share of our balance the commitment fee may take (lnd: --max-channel-fee-allocation, 0.5). */
  maxFeeAllocation: number;
  /** Cap for anchor channels (lnd: --max-commit-fee-rate-anchors, 10 sat/vbyte = 2 500 sat/kw). */
  maxAnchorsFeeratePerKw: number;
}

export const DEFAULT_COMMIT_FEE_POLICY: CommitFeePolicy = {
  maxFeeAllocation: 0.5,
  maxAnchorsFeeratePerKw: 2_500,
};

/** The feerate the channel will have once every update we sent is signed (the newest update_fee, else the current one). */
export function proposedFeeratePerKw(s: ChannelState): number {
  return nextRemoteView(s).feeratePerKw;
}

/**
 * The highest feerate whose commitment fee stays within `maxFeeAllocation`
 * of our balance (with the HTLCs now in the peer's next commitment).
 */
export function maxCommitFeeratePerKw(s: ChannelState, maxFeeAllocation: number): number {
  const v = nextRemoteView(s);
  const weight = commitmentWeight(s.channelType, untrimmedCount(s, v, false));
  const budgetSat = Number(v.ourBalanceMsat / 1000n) * maxFeeAllocation;
  return Math.max(0, Math.floor((budgetSat * 1000) / weight));
}

/** lnd's rule: move only on a change of 10 % or more, or up from below the relay floor. */
export function shouldAdjustCommitFee(networkPerKw: number, channelPerKw: number, floorPerKw = MIN_FEERATE_PER_KW): boolean {
  if (networkPerKw > channelPerKw && channelPerKw < floorPerKw) return true;
  if (networkPerKw > channelPerKw) return networkPerKw >= channelPerKw + Math.floor(channelPerKw / 10);
  if (networkPerKw < channelPerKw) return networkPerKw <= channelPerKw - Math.floor(channelPerKw / 10);
  return false;
}

/**
 * The feerate an update_fee should carry given the network's estimate, or
 * null when the channel should keep its feerate (we are not the opener, the
 * channel takes no updates, or the change is too small).
 */
export function commitFeeUpdate(s: ChannelState, networkPerKw: number, policy: CommitFeePolicy = DEFAULT_COMMIT_FEE_POLICY): number | null {
  if (s.opener !== 'local' || s.phase !== 'normal') return null;
  let target = Math.max(MIN_FEERATE_PER_KW, Math.floor(networkPerKw));
  if (s.channelType === 'anchors_zero_fee_htlc') target = Math.min(target, policy.maxAnchorsFeeratePerKw);
  target = Math.max(MIN_FEERATE_PER_KW, Math.min(target, maxCommitFeeratePerKw(s, policy.maxFeeAllocation)));
  const current = proposedFeeratePerKw(s);
  return shouldAdjustCommitFee(target, current) ? target : null;
}
