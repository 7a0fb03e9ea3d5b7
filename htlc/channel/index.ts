/**
 * The BOLT 2 channel state machine: public API.
 *
 *   step(ctx, state, input) → { state, send, writes, events, failure? }   pure transitions
 *   openChannel / acceptChannel                                          establishment entry points
 *   ChannelDriver                                                         persist → send → emit, with a KvStore and a FundingWallet
 *   loadChannels / stateWrite                                             persistence records
 *   deriveChannelSecrets / channelPubkeys                                 per-channel keys from a node seed
 */
export * from './types.js';
export { step, disconnect, reestablishMessage, incomingOpen, maxSendableMsat } from './machine.js';
export {
  openChannel,
  acceptChannel,
  channelTypeBytes,
  parseChannelType,
  fundingScriptPubKey,
  LIMITS,
  type OpenParams,
  type AcceptParams,
  type AcceptResult,
} from './establish.js';
export { isValidShutdownScript } from './close.js';
export { ChannelDriver, shortChannelId, type ChannelAdapters } from './driver.js';
export { ChannelRegistry, type RouteResult } from './registry.js';
export { loadChannels, stateWrite, stateWrites, encodeState, decodeState, channelKey, onionKey } from './codec.js';
export { deriveChannelSecrets, channelPubkeys, ourPoint, ourSecret } from './keys.js';
export {
  nextLocalView,
  nextRemoteView,
  signRemote,
  verifyLocal,
  untrimmedCount,
  buildLocal,
  signedLocalCommitment,
  signedHtlcTxs,
  currentDustExposure,
  type SignedHtlcTx,
} from './commitments.js';
export {
  commitFeeUpdate,
  shouldAdjustCommitFee,
  maxCommitFeeratePerKw,
  proposedFeeratePerKw,
  MIN_FEERATE_PER_KW,
  DEFAULT_COMMIT_FEE_POLICY,
  type CommitFeePolicy,
} from './fee.js';
export type { FundingWallet } from './wallet.js';
