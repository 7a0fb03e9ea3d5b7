/**
 * BOLT 3 fee and trimming arithmetic ("Fee Calculation", "Trimmed Outputs").
 *
 * Weights are the spec's fixed figures (they assume 73-byte signatures), so both
 * peers compute identical fees. With option_anchors_zero_fee_htlc_tx the
 * second-stage HTLC transactions carry no fee, so an HTLC is trimmed only
 * against the dust limit; without it, the HTLC transaction's fee is added to
 * the threshold.
 */
import { sha256Parts } from '../../wire/crypto.js';
import { Bolt3Error } from './errors.js';
import type { ChannelType, CommitmentHtlc, HtlcDirection } from './types.js';

/** Value of each anchor output. */
export const ANCHOR_OUTPUT_SAT = 330n;
/** Weight each untrimmed HTLC output adds to a commitment. */
export const HTLC_OUTPUT_WEIGHT = 172;

const BASE_WEIGHT: Record<ChannelType, number> = { static_remotekey: 724, anchors_zero_fee_htlc: 1124 };
const HTLC_TIMEOUT_WEIGHT: Record<ChannelType, number> = { static_remotekey: 663, anchors_zero_fee_htlc: 666 };
const HTLC_SUCCESS_WEIGHT: Record<ChannelType, number> = { static_remotekey: 703, anchors_zero_fee_htlc: 706 };

function checkFeerate(feeratePerKw: number): void {
  if (!Number.isInteger(feeratePerKw) || feeratePerKw < 0 || feeratePerKw > 0xffffffff)
    throw new Bolt3Error('ERR_BAD_PARAMS', `feerate_per_kw ${feeratePerKw} is not a 32-bit value`);
}

function feeFor(feeratePerKw: number, weight: number): bigint {
  checkFeerate(feeratePerKw);
  return (BigInt(feeratePerKw) * BigInt(weight)) / 1000n;
}

/** Weight of a commitment without HTLC outputs: 724, or 1124 with anchors. */
export function commitmentBaseWeight(channelType: ChannelType): number {
  return BASE_WEIGHT[channelType];
}

export function commitmentWeight(channelType: ChannelType, numUntrimmedHtlcs: number): number {
  return BASE_WEIGHT[channelType] + HTLC_OUTPUT_WEIGHT * numUntrimmedHtlcs;
}

/** The commitment fee (BOLT 3 base fee), rounded down. Anchors are not included. */
export function commitmentFeeSat(channelType: ChannelType, feeratePerKw: number, numUntrimmedHtlcs: number): bigint {
  return feeFor(feeratePerKw, commitmentWeight(channelType, numUntrimmedHtlcs));
}

/** What the opener's balance must cover: the commitment fee plus, with anchors, both anchor outputs. */
export function openerCommitmentCostSat(channelType: ChannelType, feeratePerKw: number, numUntrimmedHtlcs: number): bigint {
  const anchors = channelType === 'anchors_zero_fee_htlc' ? 2n * ANCHOR_OUTPUT_SAT : 0n;
  return commitmentFeeSat(channelType, feeratePerKw, numUntrimmedHtlcs) + anchors;
}

/** Weight of an HTLC-timeout / HTLC-success transaction as BOLT 3 counts it (one input with its witness, one output). */
export function htlcTxWeight(channelType: ChannelType, kind: 'htlc_timeout' | 'htlc_success'): number {
  return kind === 'htlc_timeout' ? HTLC_TIMEOUT_WEIGHT[channelType] : HTLC_SUCCESS_WEIGHT[channelType];
}

/** Fee of an HTLC-timeout tx: 663 × feerate / 1000, or 0 with zero-fee anchors. */
export function htlcTimeoutFeeSat(channelType: ChannelType, feeratePerKw: number): bigint {
  if (channelType === 'anchors_zero_fee_htlc') return 0n;
  return feeFor(feeratePerKw, HTLC_TIMEOUT_WEIGHT[channelType]);
}

/** Fee of an HTLC-success tx: 703 × feerate / 1000, or 0 with zero-fee anchors. */
export function htlcSuccessFeeSat(channelType: ChannelType, feeratePerKw: number): bigint {
  if (channelType === 'anchors_zero_fee_htlc') return 0n;
  return feeFor(feeratePerKw, HTLC_SUCCESS_WEIGHT[channelType]);
}

/**
 * The smallest HTLC amount (whole satoshis) that gets an output on a commitment
 * whose holder has `dustLimitSat`: offered HTLCs are spent by HTLC-timeout,
 * received ones by HTLC-success.
 */
export function htlcTrimThresholdSat(
  channelType: ChannelType,
  direction: HtlcDirection,
  feeratePerKw: number,
  dustLimitSat: bigint,
): bigint {
  const fee = direction === 'offered' ? htlcTimeoutFeeSat(channelType, feeratePerKw) : htlcSuccessFeeSat(channelType, feeratePerKw);
  return dustLimitSat + fee;
}

/** True when the HTLC is left out of the commitment (its amount, rounded down to satoshis, is below the threshold). */
export function isHtlcTrimmed(
  channelType: ChannelType,
  direction: HtlcDirection,
  amountMsat: bigint,
  feeratePerKw: number,
  dustLimitSat: bigint,
): boolean {
  return amountMsat / 1000n < htlcTrimThresholdSat(channelType, direction, feeratePerKw, dustLimitSat);
}

/** The HTLCs that get outputs on the commitment, in the given order. */
export function untrimmedHtlcs<H extends CommitmentHtlc>(
  channelType: ChannelType,
  htlcs: readonly H[],
  feeratePerKw: number,
  dustLimitSat: bigint,
): H[] {
  return htlcs.filter((h) => !isHtlcTrimmed(channelType, h.direction, h.amountMsat, feeratePerKw, dustLimitSat));
}

/** The lower 48 bits of SHA256(opener payment_basepoint ‖ acceptor payment_basepoint). */
export function obscuringFactor(openerPaymentBasepoint: Uint8Array, acceptorPaymentBasepoint: Uint8Array): bigint {
  const h = sha256Parts(openerPaymentBasepoint, acceptorPaymentBasepoint);
  let v = 0n;
  for (let i = 26; i < 32; i++) v = (v << 8n) | BigInt(h[i]!);
  return v;
}
