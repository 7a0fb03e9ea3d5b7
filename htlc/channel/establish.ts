/**
 * BOLT 2 channel establishment (v1, single-funded), both roles:
 *
 *     opener                                 acceptor
 *     open_channel      ──────────────────▶  checks lnd's parameter ranges, echoes channel_type
 *                       ◀────────────────── accept_channel
 *     (wallet builds the funding tx; not broadcast yet)
 *     funding_created   ──────────────────▶  verifies our commitment 0 sig, persists
 *                       ◀────────────────── funding_signed
 *     verify, persist, THEN broadcast the funding tx
 *     ... minimum_depth confirmations ...
 *     channel_ready     ◀─────────────────▶  channel_ready
 *
 * `channel_type` is always explicit: we send it, require the acceptor to echo
 * it byte for byte, and as acceptor refuse an open_channel without one or with
 * a type other than static_remotekey {12} or anchors zero-fee {12,22}.
 */
import { bytesToHex, equalBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import { ArgumentError } from '../../wire/errors.js';
import type { AcceptChannel, ChannelReady, FundingCreated, FundingSigned, OpenChannel } from '../../wire/channel-messages.js';
import { RevocationStore, fundingWitnessScript, openerCommitmentCostSat, p2wsh } from '../bolt3/index.js';
import { signRemote, verifyLocal } from './commitments.js';
import { channelPubkeys, ourPoint } from './keys.js';
import { failWith, ok } from './result.js';
import { parseTx } from './tx.js';
import { isValidShutdownScript } from './close.js';
import type {
  ChannelConfig,
  ChannelFailure,
  ChannelPubkeys,
  ChannelState,
  ChannelType,
  CommitmentState,
  StepContext,
  StepResult,
} from './types.js';

/** lnd's bounds (v0.19): see the interop notes. */
export const LIMITS = {
  minFundingSat: 20_000n,
  maxFundingSat: 16_777_215n,
  minDustLimitSat: 354n,
  maxDustLimitSat: 1062n,
  maxReserveFraction: 5n, // reserve ≤ funding / 5 (20 %)
  minMaxAcceptedHtlcs: 5,
  maxMaxAcceptedHtlcs: 483,
  maxToSelfDelay: 2016,
  maxMinimumDepth: 2016,
  minFeeratePerKw: 253,
};

// ---------------------------------------------------------------- channel_type

const TYPE_BITS: Record<ChannelType, number[]> = { static_remotekey: [12], anchors_zero_fee_htlc: [12, 22] };

export function channelTypeBytes(t: ChannelType): Uint8Array {
  const bits = TYPE_BITS[t];
  const len = Math.floor(Math.max(...bits) / 8) + 1;
  const out = new Uint8Array(len);
  for (const b of bits) out[len - 1 - Math.floor(b / 8)]! |= 1 << (b % 8);
  return out;
}

export function parseChannelType(bytes: Uint8Array): ChannelType | null {
  for (const t of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) if (equalBytes(bytes, channelTypeBytes(t))) return t;
  return null;
}

// ---------------------------------------------------------------- shared helpers

function pubkeysOf(m: OpenChannel | AcceptChannel): ChannelPubkeys {
  return {
    fundingPubkey: m.fundingPubkey,
    revocationBasepoint: m.revocationBasepoint,
    paymentBasepoint: m.paymentBasepoint,
    delayedPaymentBasepoint: m.delayedPaymentBasepoint,
    htlcBasepoint: m.htlcBasepoint,
  };
}

function configOf(m: OpenChannel | AcceptChannel): ChannelConfig {
  return {
    dustLimitSat: m.dustLimitSatoshis,
    maxHtlcValueInFlightMsat: m.maxHtlcValueInFlightMsat,
    channelReserveSat: m.channelReserveSatoshis,
    htlcMinimumMsat: m.htlcMinimumMsat,
    toSelfDelay: m.toSelfDelay,
    maxAcceptedHtlcs: m.maxAcceptedHtlcs,
  };
}

/** Checks of the peer's parameters shared by both roles; returns a reason or null. */
function checkPeerParams(m: OpenChannel | AcceptChannel, ours: ChannelConfig, fundingSat: bigint): string | null {
  for (const k of [
    'fundingPubkey',
    'revocationBasepoint',
    'paymentBasepoint',
    'delayedPaymentBasepoint',
    'htlcBasepoint',
    'firstPerCommitmentPoint',
  ] as const) {
    if (!secp.isPublicKey(m[k]) || m[k].length !== 33) return `${k} is not a valid point`;
  }
  if (m.dustLimitSatoshis < LIMITS.minDustLimitSat || m.dustLimitSatoshis > LIMITS.maxDustLimitSat)
    return `dust_limit_satoshis ${m.dustLimitSatoshis} outside ${LIMITS.minDustLimitSat}..${LIMITS.maxDustLimitSat}`;
  if (m.channelReserveSatoshis > fundingSat / LIMITS.maxReserveFraction)
    return `channel_reserve_satoshis ${m.channelReserveSatoshis} over 20% of the funding`;
  if (m.channelReserveSatoshis < m.dustLimitSatoshis || m.channelReserveSatoshis < ours.dustLimitSat)
    return 'channel_reserve_satoshis below a dust limit';
  if (ours.channelReserveSat < m.dustLimitSatoshis) return 'our channel reserve would be below their dust limit';
  if (m.maxAcceptedHtlcs < LIMITS.minMaxAcceptedHtlcs || m.maxAcceptedHtlcs > LIMITS.maxMaxAcceptedHtlcs)
    return `max_accepted_htlcs ${m.maxAcceptedHtlcs} outside 5..483`;
  if (m.toSelfDelay > LIMITS.maxToSelfDelay) return `to_self_delay ${m.toSelfDelay} over ${LIMITS.maxToSelfDelay}`;
  if (m.htlcMinimumMsat >= fundingSat * 1000n) return 'htlc_minimum_msat not below the channel capacity';
  if (m.maxHtlcValueInFlightMsat === 0n) return 'max_htlc_value_in_flight_msat is zero';
  if (m.upfrontShutdownScript !== undefined && m.upfrontShutdownScript.length > 0 && !isValidShutdownScript(m.upfrontShutdownScript))
    return 'upfront_shutdown_script is not P2WPKH, P2WSH or P2TR';
  return null;
}

function initialCommit(ourMsat: bigint, theirMsat: bigint, feeratePerKw: number): CommitmentState {
  return { height: 0n, ourLogIndex: 0, theirLogIndex: 0, ourBalanceMsat: ourMsat, theirBalanceMsat: theirMsat, feeratePerKw, htlcs: [] };
}

function channelIdFrom(txid: Uint8Array, outputIndex: number): Uint8Array {
  const id = txid.slice();
  id[30] = id[30]! ^ ((outputIndex >> 8) & 0xff);
  id[31] = id[31]! ^ (outputIndex & 0xff);
  return id;
}

export function fundingScriptPubKey(s: ChannelState): Uint8Array {
  return p2wsh(fundingWitnessScript(s.local.pubkeys.fundingPubkey, s.remote.pubkeys.fundingPubkey));
}

// ---------------------------------------------------------------- opener

export interface OpenParams {
  temporaryChannelId: Uint8Array;
  chainHash: Uint8Array;
  keyIndex: number;
  fundingSat: bigint;
  pushMsat: bigint;
  feeratePerKw: number;
  channelType: ChannelType;
  /** What we ask of the peer (and our own dust limit). */
  config: ChannelConfig;
  channelFlags: number;
  /** Empty: no upfront shutdown script (the TLV is still sent, as lnd does). */
  upfrontShutdownScript?: Uint8Array;
}

const PLACEHOLDER_CONFIG: ChannelConfig = {
  dustLimitSat: 0n,
  maxHtlcValueInFlightMsat: 0n,
  channelReserveSat: 0n,
  htlcMinimumMsat: 0n,
  toSelfDelay: 0,
  maxAcceptedHtlcs: 0,
};

/** The parts of a new channel's state that both roles start alike: empty logs, commitment 0 on both sides, no flags set. */
function freshChannel(c0: ReturnType<typeof initialCommit>) {
  return {
    ourLog: { base: 0, entries: [], nextHtlcId: 0n },
    theirLog: { base: 0, entries: [], nextHtlcId: 0n },
    localCommit: { ...c0, remoteSig: new Uint8Array(64), remoteHtlcSigs: [] },
    remoteCommit: c0,
    revocationStore: new RevocationStore().encode(),
    lastSentWasRevoke: false,
    fundingDepthReached: false,
    sentChannelReady: false,
    receivedChannelReady: false,
    reestablished: true,
    sentReestablish: true,
  } satisfies Partial<ChannelState>;
}

export function openChannel(ctx: StepContext, p: OpenParams): StepResult {
  if (p.fundingSat < LIMITS.minFundingSat || p.fundingSat > LIMITS.maxFundingSat)
    throw new ArgumentError(`fundingSat must be within ${LIMITS.minFundingSat}..${LIMITS.maxFundingSat}`);
  if (p.pushMsat < 0n || p.pushMsat > p.fundingSat * 1000n) throw new ArgumentError('pushMsat must be within 0..fundingSat·1000');
  if (p.config.dustLimitSat < LIMITS.minDustLimitSat || p.config.dustLimitSat > LIMITS.maxDustLimitSat)
    throw new ArgumentError('dustLimitSat must be within 354..1062');
  if (p.config.channelReserveSat < p.config.dustLimitSat || p.config.channelReserveSat > p.fundingSat / LIMITS.maxReserveFraction)
    throw new ArgumentError('channelReserveSat must be at least the dust limit and at most 20 % of the funding');
  if (p.config.maxAcceptedHtlcs < LIMITS.minMaxAcceptedHtlcs || p.config.maxAcceptedHtlcs > LIMITS.maxMaxAcceptedHtlcs)
    throw new ArgumentError('maxAcceptedHtlcs must be within 5..483');
  if (p.feeratePerKw < LIMITS.minFeeratePerKw) throw new ArgumentError('feeratePerKw must be at least 253');
  const pub = channelPubkeys(ctx.secrets);
  const upfront = p.upfrontShutdownScript ?? new Uint8Array(0);
  const fundingMsat = p.fundingSat * 1000n;
  const empty = initialCommit(fundingMsat - p.pushMsat, p.pushMsat, p.feeratePerKw);
  const state: ChannelState = {
    version: 1,
    phase: 'awaiting_accept',
    chainHash: p.chainHash,
    temporaryChannelId: p.temporaryChannelId,
    channelId: p.temporaryChannelId,
    opener: 'local',
    channelType: p.channelType,
    keyIndex: p.keyIndex,
    fundingSat: p.fundingSat,
    pushMsat: p.pushMsat,
    minimumDepth: 0,
    channelFlags: p.channelFlags,
    local: { config: p.config, pubkeys: pub, upfrontShutdownScript: upfront },
    remote: { config: PLACEHOLDER_CONFIG, pubkeys: pub, upfrontShutdownScript: new Uint8Array(0) },
    remoteCurrentPoint: pub.fundingPubkey,
    ...freshChannel(empty),
  };
  const msg: OpenChannel = {
    type: 32,
    chainHash: p.chainHash,
    temporaryChannelId: p.temporaryChannelId,
    fundingSatoshis: p.fundingSat,
    pushMsat: p.pushMsat,
    dustLimitSatoshis: p.config.dustLimitSat,
    maxHtlcValueInFlightMsat: p.config.maxHtlcValueInFlightMsat,
    channelReserveSatoshis: p.config.channelReserveSat,
    htlcMinimumMsat: p.config.htlcMinimumMsat,
    feeratePerKw: p.feeratePerKw,
    toSelfDelay: p.config.toSelfDelay,
    maxAcceptedHtlcs: p.config.maxAcceptedHtlcs,
    ...pub,
    firstPerCommitmentPoint: ourPoint(ctx.secrets, 0n),
    channelFlags: p.channelFlags,
    upfrontShutdownScript: upfront,
    channelType: channelTypeBytes(p.channelType),
  };
  return ok(state, [msg]);
}

export function receiveAccept(ctx: StepContext, s: ChannelState, m: AcceptChannel): StepResult {
  if (s.phase !== 'awaiting_accept') return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', `accept_channel in phase ${s.phase}`);
  if (m.channelType === undefined || !equalBytes(m.channelType, channelTypeBytes(s.channelType)))
    return failWith(s, 'error', 'ERR_CHANNEL_TYPE', 'accept_channel must echo our channel_type');
  const bad = checkPeerParams(m, s.local.config, s.fundingSat);
  if (bad !== null) return failWith(s, 'error', 'ERR_BAD_PARAMETERS', bad);
  if (m.minimumDepth > LIMITS.maxMinimumDepth)
    return failWith(s, 'error', 'ERR_BAD_PARAMETERS', `minimum_depth ${m.minimumDepth} too large`);
  const next: ChannelState = {
    ...s,
    phase: 'awaiting_funding_tx',
    minimumDepth: m.minimumDepth,
    remote: { config: configOf(m), pubkeys: pubkeysOf(m), upfrontShutdownScript: m.upfrontShutdownScript ?? new Uint8Array(0) },
    remoteCurrentPoint: m.firstPerCommitmentPoint,
  };
  void ctx;
  return ok(next, [], false, [
    { type: 'funding_needed', scriptPubKey: fundingScriptPubKey(next), amountSat: s.fundingSat, feeratePerKw: s.localCommit.feeratePerKw },
  ]);
}

export function fundingTx(ctx: StepContext, s: ChannelState, tx: Uint8Array, outputIndex: number): StepResult {
  if (s.phase !== 'awaiting_funding_tx') return failWith(s, 'local', 'ERR_UNEXPECTED_MESSAGE', `funding tx in phase ${s.phase}`);
  const parsed = parseTx(tx);
  const out = parsed.outputs[outputIndex];
  if (out === undefined || out.valueSat !== s.fundingSat || !equalBytes(out.scriptPubKey, fundingScriptPubKey(s)))
    return failWith(
      s,
      'local',
      'ERR_BAD_PARAMETERS',
      `funding tx output ${outputIndex} does not pay ${s.fundingSat} sat to the funding script`,
    );
  const funded: ChannelState = { ...s, fundingTxid: parsed.txid, fundingOutputIndex: outputIndex, fundingTx: tx };
  const sigs = signRemote(funded, ctx.secrets, funded.remoteCommit, s.remoteCurrentPoint);
  const msg: FundingCreated = {
    type: 34,
    temporaryChannelId: s.temporaryChannelId,
    fundingTxid: parsed.txid,
    fundingOutputIndex: outputIndex,
    signature: sigs.signature,
  };
  const next: ChannelState = { ...funded, phase: 'awaiting_funding_signed', channelId: channelIdFrom(parsed.txid, outputIndex) };
  return ok(next, [msg]);
}

export function receiveFundingSigned(ctx: StepContext, s: ChannelState, m: FundingSigned): StepResult {
  if (s.phase !== 'awaiting_funding_signed') return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', `funding_signed in phase ${s.phase}`);
  if (!equalBytes(m.channelId, s.channelId)) return failWith(s, 'error', 'ERR_UNKNOWN_CHANNEL', 'funding_signed for another channel id');
  const bad = verifyLocal(s, ctx.secrets, s.localCommit, { signature: m.signature, htlcSignatures: [] });
  if (bad !== null) return failWith(s, 'error', 'ERR_BAD_SIGNATURE', 'bad funding_signed signature');
  const next: ChannelState = { ...s, phase: 'awaiting_ready', localCommit: { ...s.localCommit, remoteSig: m.signature } };
  return ok(next, [], true, [
    { type: 'broadcast_funding', tx: s.fundingTx! },
    { type: 'watch_funding', txid: s.fundingTxid!, outputIndex: s.fundingOutputIndex!, minimumDepth: s.minimumDepth },
  ]);
}

// ---------------------------------------------------------------- acceptor

export interface AcceptParams {
  chainHash: Uint8Array;
  keyIndex: number;
  config: ChannelConfig;
  minimumDepth: number;
  upfrontShutdownScript?: Uint8Array;
}

export type AcceptResult = StepResult | { failure: ChannelFailure; state?: undefined };

/** Answers an open_channel: a new channel state and accept_channel, or a failure to report on the temporary id. */
export function acceptChannel(ctx: StepContext, m: OpenChannel, p: AcceptParams): AcceptResult {
  const refuse = (code: ChannelFailure['code'], message: string): AcceptResult => ({
    failure: { level: 'error', code, message, channelId: m.temporaryChannelId },
  });
  if (!equalBytes(m.chainHash, p.chainHash)) return refuse('ERR_BAD_PARAMETERS', `unknown chain ${bytesToHex(m.chainHash)}`);
  if (m.channelType === undefined) return refuse('ERR_CHANNEL_TYPE', 'open_channel without channel_type');
  const channelType = parseChannelType(m.channelType);
  if (channelType === null) return refuse('ERR_CHANNEL_TYPE', `unsupported channel_type ${bytesToHex(m.channelType)}`);
  if (m.fundingSatoshis < LIMITS.minFundingSat || m.fundingSatoshis > LIMITS.maxFundingSat)
    return refuse('ERR_BAD_PARAMETERS', `funding_satoshis ${m.fundingSatoshis} outside ${LIMITS.minFundingSat}..${LIMITS.maxFundingSat}`);
  if (m.pushMsat > m.fundingSatoshis * 1000n) return refuse('ERR_BAD_PARAMETERS', 'push_msat exceeds the funding');
  if (m.feeratePerKw < LIMITS.minFeeratePerKw)
    return refuse('ERR_BAD_PARAMETERS', `feerate_per_kw ${m.feeratePerKw} below ${LIMITS.minFeeratePerKw}`);
  // the reserve we ask for must not be below their dust limit (BOLT 2); raise it rather than refuse
  const config: ChannelConfig = {
    ...p.config,
    channelReserveSat: p.config.channelReserveSat < m.dustLimitSatoshis ? m.dustLimitSatoshis : p.config.channelReserveSat,
  };
  const bad = checkPeerParams(m, config, m.fundingSatoshis);
  if (bad !== null) return refuse('ERR_BAD_PARAMETERS', bad);
  const openerMsat = m.fundingSatoshis * 1000n - m.pushMsat;
  if (openerMsat < openerCommitmentCostSat(channelType, m.feeratePerKw, 0) * 1000n)
    return refuse('ERR_BAD_PARAMETERS', 'the opener cannot pay the first commitment fee');
  const pub = channelPubkeys(ctx.secrets);
  const upfront = p.upfrontShutdownScript ?? new Uint8Array(0);
  const c0 = initialCommit(m.pushMsat, openerMsat, m.feeratePerKw);
  const state: ChannelState = {
    version: 1,
    phase: 'awaiting_funding_created',
    chainHash: m.chainHash,
    temporaryChannelId: m.temporaryChannelId,
    channelId: m.temporaryChannelId,
    opener: 'remote',
    channelType,
    keyIndex: p.keyIndex,
    fundingSat: m.fundingSatoshis,
    pushMsat: m.pushMsat,
    minimumDepth: p.minimumDepth,
    channelFlags: m.channelFlags,
    local: { config, pubkeys: pub, upfrontShutdownScript: upfront },
    remote: { config: configOf(m), pubkeys: pubkeysOf(m), upfrontShutdownScript: m.upfrontShutdownScript ?? new Uint8Array(0) },
    remoteCurrentPoint: m.firstPerCommitmentPoint,
    ...freshChannel(c0),
  };
  const msg: AcceptChannel = {
    type: 33,
    temporaryChannelId: m.temporaryChannelId,
    dustLimitSatoshis: config.dustLimitSat,
    maxHtlcValueInFlightMsat: config.maxHtlcValueInFlightMsat,
    channelReserveSatoshis: config.channelReserveSat,
    htlcMinimumMsat: config.htlcMinimumMsat,
    minimumDepth: p.minimumDepth,
    toSelfDelay: p.config.toSelfDelay,
    maxAcceptedHtlcs: p.config.maxAcceptedHtlcs,
    ...pub,
    firstPerCommitmentPoint: ourPoint(ctx.secrets, 0n),
    upfrontShutdownScript: upfront,
    channelType: m.channelType,
  };
  return ok(state, [msg]);
}

export function receiveFundingCreated(ctx: StepContext, s: ChannelState, m: FundingCreated): StepResult {
  if (s.phase !== 'awaiting_funding_created')
    return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', `funding_created in phase ${s.phase}`);
  const funded: ChannelState = {
    ...s,
    fundingTxid: m.fundingTxid,
    fundingOutputIndex: m.fundingOutputIndex,
    channelId: channelIdFrom(m.fundingTxid, m.fundingOutputIndex),
  };
  const bad = verifyLocal(funded, ctx.secrets, funded.localCommit, { signature: m.signature, htlcSignatures: [] });
  if (bad !== null) return failWith(s, 'error', 'ERR_BAD_SIGNATURE', 'bad funding_created signature');
  const sigs = signRemote(funded, ctx.secrets, funded.remoteCommit, s.remoteCurrentPoint);
  const next: ChannelState = { ...funded, phase: 'awaiting_ready', localCommit: { ...funded.localCommit, remoteSig: m.signature } };
  const msg: FundingSigned = { type: 35, channelId: next.channelId, signature: sigs.signature };
  return ok(next, [msg], true, [
    { type: 'watch_funding', txid: m.fundingTxid, outputIndex: m.fundingOutputIndex, minimumDepth: s.minimumDepth },
  ]);
}

// ---------------------------------------------------------------- channel_ready

function maybeNormal(s: ChannelState): { state: ChannelState; ready: boolean } {
  if (s.phase === 'awaiting_ready' && s.sentChannelReady && s.receivedChannelReady)
    return { state: { ...s, phase: 'normal' }, ready: true };
  return { state: s, ready: false };
}

export function fundingDepth(ctx: StepContext, s: ChannelState, depth: number, shortChannelId?: bigint): StepResult {
  if (s.phase !== 'awaiting_ready' || s.sentChannelReady || depth < Math.max(s.minimumDepth, 1)) return ok(s);
  const readyMsg: ChannelReady = { type: 36, channelId: s.channelId, secondPerCommitmentPoint: ourPoint(ctx.secrets, 1n) };
  const r = maybeNormal({
    ...s,
    fundingDepthReached: true,
    sentChannelReady: true,
    ...(shortChannelId === undefined ? {} : { shortChannelId }),
  });
  const { fundingTx: _broadcast, ...rest } = r.state;
  return ok(rest, s.reestablished ? [readyMsg] : [], true, r.ready ? [{ type: 'channel_ready' }] : []);
}

export function receiveChannelReady(ctx: StepContext, s: ChannelState, m: ChannelReady): StepResult {
  void ctx;
  // a retransmission after a reconnection (or an alias update): nothing to do
  if (s.receivedChannelReady) return ok(s);
  if (s.phase !== 'awaiting_ready') return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', `channel_ready in phase ${s.phase}`);
  if (!secp.isPublicKey(m.secondPerCommitmentPoint))
    return failWith(s, 'error', 'ERR_BAD_PARAMETERS', 'second_per_commitment_point is not a point');
  const r = maybeNormal({ ...s, receivedChannelReady: true, remoteNextPoint: m.secondPerCommitmentPoint });
  return ok(r.state, [], true, r.ready ? [{ type: 'channel_ready' }] : []);
}
