/**
 * The BOLT 2 channel state machine: `step(ctx, state, input) → StepResult`.
 *
 * Normal operation is lnd's four verbs over the two update logs:
 *   sign            — SignNextCommitment: sign the remote's next commitment
 *   commitment_signed — ReceiveNewCommitment + RevokeCurrentCommitment: check the
 *                     peer's signatures on our next commitment and revoke the old one
 *   revoke_and_ack  — ReceiveRevocation: the remote's old commitment is dead;
 *                     updates that are now in both chains are handed on as events
 * with update_* messages appending to the logs after the BOLT 2 checks.
 *
 * The HTLC exchange (A adds, both sign and revoke):
 *
 *     A                                      B
 *     update_add_htlc  ───────────────────▶        A's log: add#n
 *     commitment_signed ──────────────────▶        B's next commitment has the HTLC
 *                      ◀─────────────────── revoke_and_ack   (B's old one revoked)
 *                      ◀─────────────────── commitment_signed (A's next has it)
 *     revoke_and_ack   ───────────────────▶        irrevocably committed: B forwards
 *
 * A failure caused by the peer returns the state unchanged with `failure`
 * set; the caller sends the BOLT 1 `error` or `warning` it names.
 */
import { equalBytes } from '../../wire/bytes.js';
import { secp, sha256 } from '../../wire/crypto.js';
import { AmpnodeError } from '../../wire/errors.js';
import type {
  ChannelMessage,
  ChannelReestablish,
  CommitmentSigned,
  RevokeAndAck,
  UpdateAddHtlc,
  UpdateFailHtlc,
  UpdateFailMalformedHtlc,
  UpdateFee,
  UpdateFulfillHtlc,
} from '../../wire/channel-messages.js';
import { channelIdOf } from '../../wire/channel-messages.js';
import { RevocationStore, perCommitmentPoint, secretIndexForCommitment } from '../bolt3/index.js';
import { failWith, ok } from './result.js';
import { onionDeletes, revokedHtlcsWrite } from './codec.js';
import {
  dustExposureMsat,
  logEnd,
  logSlice,
  nextLocalView,
  nextRemoteView,
  nextView,
  openerCostMsat,
  remoteSignJobs,
  signRemote,
  verifyLocal,
} from './commitments.js';
import { ourPoint, ourSecret } from './keys.js';
import {
  ChannelError,
  type AddEntry,
  type ResolutionEntry,
  type ChannelErrorCode,
  type ChannelEvent,
  type ChannelInput,
  type ChannelState,
  type CommitmentState,
  type LogEntry,
  type OutboxEvent,
  type SignJob,
  type StepContext,
  type StepResult,
  type UpdateLog,
  withAttribution,
} from './types.js';
import * as establish from './establish.js';
import * as close from './close.js';
import { MIN_FEERATE_PER_KW } from './fee.js';

const MAX_CLTV_EXPIRY = 500_000_000;

const peerError = (s: ChannelState, code: ChannelErrorCode, message: string) => failWith(s, 'error', code, message);
const localReject = (s: ChannelState, code: ChannelErrorCode, message: string) => failWith(s, 'local', code, message);

// ---------------------------------------------------------------- log helpers

function append(log: UpdateLog, e: LogEntry): UpdateLog {
  return { ...log, entries: [...log.entries, e], nextHtlcId: e.kind === 'add' ? log.nextHtlcId + 1n : log.nextHtlcId };
}

/** Drops log entries both chains include: they live on in the commitments. */
function compact(s: ChannelState): ChannelState {
  const ourMin = Math.min(s.localCommit.ourLogIndex, s.remoteCommit.ourLogIndex);
  const theirMin = Math.min(s.localCommit.theirLogIndex, s.remoteCommit.theirLogIndex);
  const cut = (log: UpdateLog, to: number): UpdateLog =>
    to <= log.base ? log : { base: to, entries: log.entries.slice(to - log.base), nextHtlcId: log.nextHtlcId };
  return { ...s, ourLog: cut(s.ourLog, ourMin), theirLog: cut(s.theirLog, theirMin) };
}

const NO_ONION = new Uint8Array(0);

/**
 * The log with the onions of its adds in [from, to) replaced by an empty array. An add's onion is kept only while a
 * reconnection may have to send the add again (ours) or until it is handed on irrevocably committed (theirs); with
 * many HTLCs in flight it would otherwise be most of every state write (1366 bytes per add).
 */
function dropOnions(log: UpdateLog, from: number, to: number): { log: UpdateLog; dropped: bigint[] } {
  const lo = Math.max(from - log.base, 0);
  const hi = Math.min(to - log.base, log.entries.length);
  let entries: LogEntry[] | undefined;
  const dropped: bigint[] = [];
  for (let i = lo; i < hi; i++) {
    const e = log.entries[i]!;
    if (e.kind !== 'add' || e.onionRoutingPacket.length === 0) continue;
    entries ??= log.entries.slice();
    entries[i] = { ...e, onionRoutingPacket: NO_ONION };
    dropped.push(e.htlcId);
  }
  return { log: entries === undefined ? log : { ...log, entries }, dropped };
}

/** Is an add of `log` removed by an entry of the other log (pending or committed)? */
function removalPending(otherLog: UpdateLog, htlcId: bigint): boolean {
  return otherLog.entries.some((e) => (e.kind === 'fulfill' || e.kind === 'fail' || e.kind === 'fail_malformed') && e.htlcId === htlcId);
}

function findHtlc(v: CommitmentState, offered: boolean, id: bigint) {
  return v.htlcs.find((h) => h.offered === offered && h.id === id);
}

// ---------------------------------------------------------------- checks

/**
 * BOLT 2 limits on the HTLCs `sender` offers in view `v`: count, value in
 * flight, the sender's reserve and (for the opener) the commitment fee.
 */
function checkSenderLimits(
  s: ChannelState,
  v: CommitmentState,
  senderIsUs: boolean,
  strict: boolean,
): { code: ChannelErrorCode; message: string } | null {
  const limits = senderIsUs ? s.remote.config : s.local.config;
  const offered = v.htlcs.filter((h) => h.offered === senderIsUs);
  if (offered.length > limits.maxAcceptedHtlcs)
    return { code: 'ERR_HTLC_LIMIT', message: `${offered.length} HTLCs offered, max_accepted_htlcs is ${limits.maxAcceptedHtlcs}` };
  const inFlight = offered.reduce((a, h) => a + h.amountMsat, 0n);
  if (inFlight > limits.maxHtlcValueInFlightMsat)
    return {
      code: 'ERR_HTLC_LIMIT',
      message: `${inFlight} msat in flight, max_htlc_value_in_flight_msat is ${limits.maxHtlcValueInFlightMsat}`,
    };
  const senderBal = senderIsUs ? v.ourBalanceMsat : v.theirBalanceMsat;
  const otherBal = senderIsUs ? v.theirBalanceMsat : v.ourBalanceMsat;
  const senderIsOpener = (s.opener === 'local') === senderIsUs;
  // the sender checks against the dearer of the two commitments (each with its holder's trimming), and of ours with
  // a zero dust limit on top; the receiver against its own next commitment
  const cost = strict ? openerCostAllHtlcs(s, v) : openerCostMsat(s, v, true);
  const reserveMsat = limits.channelReserveSat * 1000n;
  if (senderIsOpener) {
    if (senderBal < cost + reserveMsat)
      return {
        code: 'ERR_CANNOT_AFFORD',
        message: `opener balance ${senderBal} msat cannot pay fee ${cost} msat and reserve ${reserveMsat} msat`,
      };
  } else {
    if (senderBal < reserveMsat)
      return { code: 'ERR_CANNOT_AFFORD', message: `balance ${senderBal} msat below the reserve ${reserveMsat} msat` };
    // lnd fails the channel when an HTLC makes the opener's fee push it below its reserve: never offer one that would
    const openerReserveMsat = (senderIsUs ? s.local.config.channelReserveSat : s.remote.config.channelReserveSat) * 1000n;
    if (strict && otherBal < cost + openerReserveMsat)
      return { code: 'ERR_CANNOT_AFFORD', message: `the opener could not pay the commitment fee ${cost} msat above its reserve` };
  }
  return null;
}

function openerCostAllHtlcs(s: ChannelState, v: CommitmentState): bigint {
  // A zero dust limit on our commitment is not enough: an HTLC the peer offered is trimmed on ours below the
  // HTLC-success fee even then, while on theirs (offered, timeout fee, their dust limit) it can stay an output.
  // So: the larger of our commitment at a zero dust limit and theirs as it will be.
  const asIfUntrimmed = { ...s, local: { ...s.local, config: { ...s.local.config, dustLimitSat: 0n } } };
  const ours = openerCostMsat(asIfUntrimmed, v, true);
  const theirs = openerCostMsat(s, v, false);
  return ours > theirs ? ours : theirs;
}

function canUpdate(s: ChannelState): boolean {
  return (s.phase === 'normal' || s.phase === 'shutdown') && s.reestablished;
}

// ---------------------------------------------------------------- local updates

/**
 * The largest amount one more HTLC of ours could carry now (the peer's reserve, the opener's commitment fee with
 * that HTLC, max_accepted_htlcs and max_htlc_value_in_flight all counted; the dust exposure cap is not), or 0n when
 * none fits or the channel cannot take an add. What the router treats as this channel's local balance.
 */
export function maxSendableMsat(s: ChannelState): bigint {
  // a state is never changed in place, so its answer holds as long as it is the channel's state: the router asks
  // for every channel on every search
  const known = sendable.get(s);
  if (known !== undefined) return known;
  const v = searchSendable(s);
  sendable.set(s, v);
  return v;
}

const sendable = new WeakMap<ChannelState, bigint>();

function searchSendable(s: ChannelState): bigint {
  if (s.shutdown !== undefined || s.phase !== 'normal' || !s.reestablished) return 0n;
  const viewWith = (amountMsat: bigint): CommitmentState => {
    const e: AddEntry = {
      kind: 'add',
      index: logEnd(s.ourLog),
      htlcId: s.ourLog.nextHtlcId,
      amountMsat,
      paymentHash: ZERO_HASH,
      cltvExpiry: 0,
      onionRoutingPacket: ZERO_ONION,
    };
    const ourLog = append(s.ourLog, e);
    return nextView(s.localCommit, ourLog, s.theirLog, logEnd(ourLog), s.localCommit.theirLogIndex, s.localCommit.height + 1n);
  };
  const fits = (amountMsat: bigint): boolean => checkSenderLimits(s, viewWith(amountMsat), true, true) === null;
  let lo = s.remote.config.htlcMinimumMsat > 1n ? s.remote.config.htlcMinimumMsat : 1n;
  const never = s.fundingSat * 1000n + 1n; // never fits
  // Nearly always the answer is an amount above every trim threshold: then the limits are linear in it once the
  // commitment fee with the HTLC as an output is known, and two checks confirm it. Otherwise (near dust) search.
  const guess = untrimmedSendable(s, viewWith(never), never);
  if (guess > lo && guess < never && fits(guess) && !fits(guess + 1n)) return guess;
  if (!fits(lo)) return 0n;
  let hi = never;
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * The largest amount that meets checkSenderLimits's limits on an HTLC of ours if the commitment fee were the one of
 * `v`, a view with one more HTLC of `probeMsat` (an amount above every trim threshold) offered by us.
 */
function untrimmedSendable(s: ChannelState, v: CommitmentState, probeMsat: bigint): bigint {
  const limits = s.remote.config;
  let inFlight = -probeMsat;
  for (const h of v.htlcs) if (h.offered) inFlight += h.amountMsat;
  const balanceMsat = v.ourBalanceMsat + probeMsat;
  let x = limits.maxHtlcValueInFlightMsat - inFlight;
  const reserveMsat = limits.channelReserveSat * 1000n;
  const room = s.opener === 'local' ? balanceMsat - openerCostAllHtlcs(s, v) - reserveMsat : balanceMsat - reserveMsat;
  if (room < x) x = room;
  return x;
}

const ZERO_HASH = new Uint8Array(32);
const ZERO_ONION = new Uint8Array(0);

function localAdd(ctx: StepContext, s: ChannelState, i: ChannelInput & { type: 'add_htlc' }): StepResult {
  if (s.shutdown !== undefined) return localReject(s, 'ERR_SHUTDOWN', 'channel is shutting down');
  if (s.phase !== 'normal' || !s.reestablished)
    return localReject(s, 'ERR_NOT_READY', `cannot add an HTLC in phase ${s.phase}${s.reestablished ? '' : ' (not reestablished)'}`);
  if (i.amountMsat <= 0n) return localReject(s, 'ERR_HTLC_AMOUNT', 'amount must be positive');
  if (i.amountMsat < s.remote.config.htlcMinimumMsat)
    return localReject(s, 'ERR_HTLC_AMOUNT', `amount below the peer's htlc_minimum_msat ${s.remote.config.htlcMinimumMsat}`);
  if (i.cltvExpiry >= MAX_CLTV_EXPIRY) return localReject(s, 'ERR_HTLC_AMOUNT', 'cltv_expiry must be a block height');
  if (i.paymentHash.length !== 32 || i.onionRoutingPacket.length !== 1366)
    return localReject(s, 'ERR_HTLC_AMOUNT', 'bad payment hash or onion length');
  const e: AddEntry = {
    kind: 'add',
    index: logEnd(s.ourLog),
    htlcId: s.ourLog.nextHtlcId,
    amountMsat: i.amountMsat,
    paymentHash: i.paymentHash,
    cltvExpiry: i.cltvExpiry,
    onionRoutingPacket: i.onionRoutingPacket.slice(), // our own copy: the caller may reuse its buffer
    ...(i.blindingPoint === undefined ? {} : { blindingPoint: i.blindingPoint }),
  };
  const ourLog = append(s.ourLog, e);
  const v = nextView(s.localCommit, ourLog, s.theirLog, logEnd(ourLog), s.localCommit.theirLogIndex, s.localCommit.height + 1n);
  const bad = checkSenderLimits(s, v, true, true);
  if (bad !== null) return localReject(s, bad.code, bad.message);
  // dust exposure on both commitments (the remote's next commitment includes everything we sent)
  const rv = nextView(s.remoteNextCommit ?? s.remoteCommit, ourLog, s.theirLog, logEnd(ourLog), logEnd(s.theirLog), 0n);
  for (const [view, holderIsUs] of [
    [v, true],
    [rv, false],
  ] as const) {
    const dust = dustExposureMsat(s, view, holderIsUs);
    if (dust > ctx.policy.maxDustExposureMsat)
      return localReject(s, 'ERR_DUST_EXPOSURE', `dust exposure ${dust} msat over ${ctx.policy.maxDustExposureMsat} msat`);
  }
  const msg: UpdateAddHtlc = {
    type: 128,
    channelId: s.channelId,
    id: e.htlcId,
    amountMsat: e.amountMsat,
    paymentHash: e.paymentHash,
    cltvExpiry: e.cltvExpiry,
    onionRoutingPacket: e.onionRoutingPacket,
    ...(e.blindingPoint === undefined ? {} : { blindingPoint: e.blindingPoint }),
  };
  // persisted: after a crash the add is known, so the restart reports it as unsent (htlc_unsent) instead of forgetting it
  return ok({ ...s, ourLog }, [msg], true);
}

/** An HTLC the peer offered that is irrevocably committed and not yet being removed (or queued for removal). */
function settleable(s: ChannelState, id: bigint): { amountMsat: bigint; paymentHash: Uint8Array } | string {
  const h = findHtlc(s.localCommit, false, id);
  if (h === undefined || findHtlc(s.remoteCommit, false, id) === undefined) return `no irrevocably committed incoming HTLC ${id}`;
  if (removalPending(s.ourLog, id) || (s.pendingResolutions ?? []).some((e) => e.htlcId === id))
    return `HTLC ${id} is already being removed`;
  return h;
}

/**
 * Fulfill / fail an HTLC the peer offered. Persisted before the update leaves
 * (a released preimage must survive a crash). While the peer is away (or the
 * channel not yet reestablished) the resolution is queued and sent right
 * after the next channel_reestablish.
 */
function localRemove(s: ChannelState, i: ChannelInput & { type: 'fulfill_htlc' | 'fail_htlc' | 'fail_malformed_htlc' }): StepResult {
  if (s.phase !== 'normal' && s.phase !== 'shutdown') return localReject(s, 'ERR_NOT_READY', `cannot update in phase ${s.phase}`);
  const h = settleable(s, i.id);
  if (typeof h === 'string') return localReject(s, 'ERR_UNKNOWN_HTLC', h);
  const index = logEnd(s.ourLog);
  let e: ResolutionEntry;
  if (i.type === 'fulfill_htlc') {
    if (i.paymentPreimage.length !== 32 || !equalBytes(sha256(i.paymentPreimage), h.paymentHash))
      return localReject(s, 'ERR_UNKNOWN_HTLC', 'preimage does not match the payment hash');
    e = { kind: 'fulfill', index, htlcId: i.id, paymentPreimage: i.paymentPreimage.slice(), ...withAttribution(i.attributionData) };
  } else if (i.type === 'fail_htlc') {
    e = { kind: 'fail', index, htlcId: i.id, reason: i.reason.slice(), ...withAttribution(i.attributionData) };
  } else {
    if ((i.failureCode & 0x8000) === 0) return localReject(s, 'ERR_UNKNOWN_HTLC', 'failure_code must have the BADONION bit');
    if (i.sha256OfOnion.length !== 32) return localReject(s, 'ERR_UNKNOWN_HTLC', 'sha256_of_onion must be 32 bytes');
    e = { kind: 'fail_malformed', index, htlcId: i.id, sha256OfOnion: i.sha256OfOnion.slice(), failureCode: i.failureCode };
  }
  if (!s.reestablished) return ok({ ...s, pendingResolutions: [...(s.pendingResolutions ?? []), e] }, [], true);
  return ok({ ...s, ourLog: append(s.ourLog, e) }, [updateMessage(s, e)], true);
}

/**
 * After channel_reestablish: appends the queued resolutions whose HTLC is
 * still irrevocably committed and not being removed, in the order they were
 * asked for, and returns their messages (sent after the retransmissions).
 * Others are dropped: nothing can remove an HTLC the peer offered but our own
 * update, so a queued resolution only finds its HTLC gone if the same
 * resolution already went through. Outside normal operation and shutdown the
 * queue is left as it is (no update may be sent there, and a channel that
 * reaches negotiation has no HTLC left to resolve).
 */
function sendPendingResolutions(s: ChannelState): { state: ChannelState; send: ChannelMessage[] } {
  const queued = s.pendingResolutions;
  if (queued === undefined || (s.phase !== 'normal' && s.phase !== 'shutdown')) return { state: s, send: [] };
  const { pendingResolutions: _q, ...rest } = s;
  let state: ChannelState = rest;
  const send: ChannelMessage[] = [];
  for (const q of queued) {
    if (typeof settleable(state, q.htlcId) === 'string') continue;
    const e: ResolutionEntry = { ...q, index: logEnd(state.ourLog) };
    state = { ...state, ourLog: append(state.ourLog, e) };
    send.push(updateMessage(state, e));
  }
  return { state, send };
}

function localFee(s: ChannelState, feeratePerKw: number): StepResult {
  if (!canUpdate(s)) return localReject(s, 'ERR_NOT_READY', `cannot update in phase ${s.phase}`);
  // once either side sent shutdown the peer may reach "no updates left" before our update_fee arrives (and it would
  // then fail the channel); lnd does not change the fee of a closing channel either
  if (s.shutdown !== undefined) return localReject(s, 'ERR_SHUTDOWN', 'no update_fee once shutdown has been sent or received');
  if (s.opener !== 'local') return localReject(s, 'ERR_FEE', 'only the opener sends update_fee');
  if (!Number.isInteger(feeratePerKw) || feeratePerKw < MIN_FEERATE_PER_KW || feeratePerKw > 0xffffffff)
    return localReject(s, 'ERR_FEE', `feerate ${feeratePerKw} out of range`);
  const ourLog = append(s.ourLog, { kind: 'fee', index: logEnd(s.ourLog), feeratePerKw });
  const v = nextView(s.localCommit, ourLog, s.theirLog, logEnd(ourLog), s.localCommit.theirLogIndex, 0n);
  const bad = checkSenderLimits(s, v, true, true);
  if (bad !== null) return localReject(s, 'ERR_FEE', `cannot afford feerate ${feeratePerKw}: ${bad.message}`);
  return ok({ ...s, ourLog }, [{ type: 134, channelId: s.channelId, feeratePerKw }]);
}

// ---------------------------------------------------------------- remote updates

function remoteAdd(s: ChannelState, m: UpdateAddHtlc): StepResult {
  if (s.shutdown?.receivedShutdown === true) return peerError(s, 'ERR_SHUTDOWN', 'update_add_htlc after shutdown');
  if (s.phase !== 'normal' && s.phase !== 'shutdown') return peerError(s, 'ERR_UNEXPECTED_MESSAGE', `update_add_htlc in phase ${s.phase}`);
  if (m.id !== s.theirLog.nextHtlcId)
    return peerError(s, 'ERR_UNEXPECTED_MESSAGE', `update_add_htlc id ${m.id}, expected ${s.theirLog.nextHtlcId}`);
  if (m.amountMsat === 0n || m.amountMsat < s.local.config.htlcMinimumMsat)
    return peerError(s, 'ERR_HTLC_AMOUNT', `amount_msat ${m.amountMsat} below htlc_minimum_msat ${s.local.config.htlcMinimumMsat}`);
  if (m.cltvExpiry >= MAX_CLTV_EXPIRY) return peerError(s, 'ERR_HTLC_AMOUNT', 'cltv_expiry is not a block height');
  const e: AddEntry = {
    kind: 'add',
    index: logEnd(s.theirLog),
    htlcId: m.id,
    amountMsat: m.amountMsat,
    paymentHash: m.paymentHash,
    cltvExpiry: m.cltvExpiry,
    onionRoutingPacket: m.onionRoutingPacket,
    ...(m.blindingPoint === undefined ? {} : { blindingPoint: m.blindingPoint }),
  };
  const theirLog = append(s.theirLog, e);
  const v = nextView(s.localCommit, s.ourLog, theirLog, s.remoteCommit.ourLogIndex, logEnd(theirLog), s.localCommit.height + 1n);
  const bad = checkSenderLimits(s, v, false, false);
  if (bad !== null) return peerError(s, bad.code, bad.message);
  return ok({ ...s, theirLog });
}

function remoteRemove(s: ChannelState, m: UpdateFulfillHtlc | UpdateFailHtlc | UpdateFailMalformedHtlc): StepResult {
  if (s.phase !== 'normal' && s.phase !== 'shutdown') return peerError(s, 'ERR_UNEXPECTED_MESSAGE', `HTLC removal in phase ${s.phase}`);
  const h = findHtlc(s.localCommit, true, m.id);
  if (h === undefined || findHtlc(s.remoteCommit, true, m.id) === undefined)
    return peerError(s, 'ERR_UNKNOWN_HTLC', `no committed HTLC ${m.id} offered by us`);
  if (removalPending(s.theirLog, m.id)) return peerError(s, 'ERR_UNKNOWN_HTLC', `HTLC ${m.id} removed twice`);
  const index = logEnd(s.theirLog);
  let e: LogEntry;
  if (m.type === 130) {
    if (!equalBytes(sha256(m.paymentPreimage), h.paymentHash)) return peerError(s, 'ERR_UNKNOWN_HTLC', `wrong preimage for HTLC ${m.id}`);
    e = { kind: 'fulfill', index, htlcId: m.id, paymentPreimage: m.paymentPreimage, ...withAttribution(m.attributionData) };
  } else if (m.type === 131) {
    e = { kind: 'fail', index, htlcId: m.id, reason: m.reason, ...withAttribution(m.attributionData) };
  } else {
    if ((m.failureCode & 0x8000) === 0) return peerError(s, 'ERR_UNKNOWN_HTLC', 'update_fail_malformed_htlc without the BADONION bit');
    e = { kind: 'fail_malformed', index, htlcId: m.id, sha256OfOnion: m.sha256OfOnion, failureCode: m.failureCode };
  }
  return ok(
    { ...s, theirLog: append(s.theirLog, e) },
    [],
    false,
    e.kind === 'fulfill'
      ? [{ type: 'preimage_received', id: e.htlcId, paymentPreimage: e.paymentPreimage, ...withAttribution(e.attributionData) }]
      : [],
  );
}

function remoteFee(s: ChannelState, m: UpdateFee): StepResult {
  if (s.phase !== 'normal' && s.phase !== 'shutdown') return peerError(s, 'ERR_UNEXPECTED_MESSAGE', `update_fee in phase ${s.phase}`);
  if (s.opener !== 'remote') return peerError(s, 'ERR_FEE', 'update_fee from the non-opener');
  if (m.feeratePerKw < MIN_FEERATE_PER_KW) return peerError(s, 'ERR_FEE', `feerate ${m.feeratePerKw} below ${MIN_FEERATE_PER_KW}`);
  const theirLog = append(s.theirLog, { kind: 'fee', index: logEnd(s.theirLog), feeratePerKw: m.feeratePerKw });
  const v = nextView(s.localCommit, s.ourLog, theirLog, s.remoteCommit.ourLogIndex, logEnd(theirLog), 0n);
  const bad = checkSenderLimits(s, v, false, false);
  if (bad !== null) return peerError(s, 'ERR_FEE', `opener cannot afford feerate ${m.feeratePerKw}: ${bad.message}`);
  return ok({ ...s, theirLog });
}

// ---------------------------------------------------------------- the dance

/** The signatures a `sign` step on `s` would make (commitment first), or undefined where it would refuse. */
export function nextSignJobs(ctx: StepContext, s: ChannelState): SignJob[] | undefined {
  if (!canUpdate(s) || s.remoteNextCommit !== undefined || s.remoteNextPoint === undefined) return undefined;
  const v = nextRemoteView(s);
  if (v.ourLogIndex === s.remoteCommit.ourLogIndex && v.theirLogIndex === s.remoteCommit.theirLogIndex) return undefined;
  return remoteSignJobs(s, ctx.secrets, v, s.remoteNextPoint);
}

function signNext(ctx: StepContext, s: ChannelState): StepResult {
  if (!canUpdate(s)) return localReject(s, 'ERR_NOT_READY', `cannot sign in phase ${s.phase}`);
  if (s.remoteNextCommit !== undefined) return localReject(s, 'ERR_AWAITING_REVOCATION', 'waiting for revoke_and_ack before signing again');
  if (s.remoteNextPoint === undefined) return localReject(s, 'ERR_NOT_READY', "no per-commitment point for the remote's next commitment");
  const v = nextRemoteView(s);
  if (v.ourLogIndex === s.remoteCommit.ourLogIndex && v.theirLogIndex === s.remoteCommit.theirLogIndex)
    return localReject(s, 'ERR_NOTHING_TO_SIGN', 'no updates to sign');
  const sigs = ctx.presigned?.state === s ? ctx.presigned : signRemote(s, ctx.secrets, v, s.remoteNextPoint);
  const msg: CommitmentSigned = { type: 132, channelId: s.channelId, signature: sigs.signature, htlcSignatures: sigs.htlcSignatures };
  const signed: ChannelState = { ...s, remoteNextCommit: v, sentCommitSig: msg, lastSentWasRevoke: false };
  const owed = close.shutdownAfterSign(ctx, signed);
  return ok(owed.state, owed.msg === undefined ? [msg] : [msg, owed.msg], true);
}

function receiveCommit(ctx: StepContext, s: ChannelState, m: CommitmentSigned): StepResult {
  if (s.phase !== 'normal' && s.phase !== 'shutdown')
    return peerError(s, 'ERR_UNEXPECTED_MESSAGE', `commitment_signed in phase ${s.phase}`);
  const v = nextLocalView(s);
  const bad = verifyLocal(s, ctx.secrets, v, m, ctx.verify);
  if (bad === 'commitment') return peerError(s, 'ERR_BAD_SIGNATURE', `bad signature for commitment ${v.height}`);
  if (bad === 'htlc_count') return peerError(s, 'ERR_BAD_HTLC_SIGNATURES', `wrong number of htlc_signatures (${m.htlcSignatures.length})`);
  if (bad === 'htlc') return peerError(s, 'ERR_BAD_HTLC_SIGNATURES', `bad HTLC signature for commitment ${v.height}`);
  const old = s.localCommit.height;
  const raa: RevokeAndAck = {
    type: 133,
    channelId: s.channelId,
    perCommitmentSecret: ourSecret(ctx.secrets, old),
    nextPerCommitmentPoint: ourPoint(ctx.secrets, old + 2n),
  };
  const next = compact({ ...s, localCommit: { ...v, remoteSig: m.signature, remoteHtlcSigs: m.htlcSignatures }, lastSentWasRevoke: true });
  const r = ok(next, [raa], true);
  return close.afterUpdate(ctx, r);
}

function receiveRevoke(ctx: StepContext, s: ChannelState, m: RevokeAndAck): StepResult {
  if (s.phase !== 'normal' && s.phase !== 'shutdown') return peerError(s, 'ERR_UNEXPECTED_MESSAGE', `revoke_and_ack in phase ${s.phase}`);
  const pending = s.remoteNextCommit;
  if (pending === undefined || s.remoteNextPoint === undefined)
    return peerError(s, 'ERR_UNEXPECTED_MESSAGE', 'revoke_and_ack without a commitment to revoke');
  if (!equalBytes(perCommitmentPoint(m.perCommitmentSecret), s.remoteCurrentPoint))
    return peerError(s, 'ERR_BAD_REVOCATION', `per_commitment_secret does not match commitment ${s.remoteCommit.height}`);
  if (!secp.isPublicKey(m.nextPerCommitmentPoint) || m.nextPerCommitmentPoint.length !== 33)
    return peerError(s, 'ERR_BAD_REVOCATION', 'next_per_commitment_point is not a point');
  const store = RevocationStore.decode(s.revocationStore);
  try {
    store.insert(secretIndexForCommitment(s.remoteCommit.height), m.perCommitmentSecret);
  } catch (e) {
    return peerError(s, 'ERR_BAD_REVOCATION', `per_commitment_secret rejected: ${(e as Error).message}`);
  }
  // their updates newly in both chains are irrevocably committed
  const events: ChannelEvent[] = [];
  for (const e of logSlice(s.theirLog, s.remoteCommit.theirLogIndex, pending.theirLogIndex)) {
    if (e.kind === 'add') events.push({ type: 'htlc_incoming', htlc: e });
    else if (e.kind === 'fulfill')
      events.push({ type: 'htlc_fulfilled', id: e.htlcId, paymentPreimage: e.paymentPreimage, ...withAttribution(e.attributionData) });
    else if (e.kind === 'fail') events.push({ type: 'htlc_failed', id: e.htlcId, reason: e.reason, ...withAttribution(e.attributionData) });
    else if (e.kind === 'fail_malformed')
      events.push({ type: 'htlc_failed', id: e.htlcId, sha256OfOnion: e.sha256OfOnion, failureCode: e.failureCode });
  }
  const { remoteNextCommit: _done, sentCommitSig: _sent, ...rest } = s;
  const ours = dropOnions(s.ourLog, s.remoteCommit.ourLogIndex, pending.ourLogIndex);
  const theirs = dropOnions(s.theirLog, s.remoteCommit.theirLogIndex, pending.theirLogIndex);
  const next = compact({
    ...rest,
    // the onions of the adds this revocation settles are needed no more: ours were received (no retransmission can
    // include them now), theirs travel on in the outbox events just made
    ourLog: ours.log,
    theirLog: theirs.log,
    remoteCommit: pending,
    remoteCurrentPoint: s.remoteNextPoint,
    remoteNextPoint: m.nextPerCommitmentPoint,
    revocationStore: store.encode(),
    ...(events.length > 0 || s.outbox !== undefined ? { outbox: [...(s.outbox ?? []), ...(events as OutboxEvent[])] } : {}),
  });
  const r0 = close.afterUpdate(ctx, ok(next, [], true, events));
  // the onions stored apart for those adds go in the same batch
  const r =
    ours.dropped.length + theirs.dropped.length === 0
      ? r0
      : {
          ...r0,
          writes: [...r0.writes, ...onionDeletes(s.channelId, 'o', ours.dropped), ...onionDeletes(s.channelId, 't', theirs.dropped)],
        };
  // the commitment just revoked: its HTLCs go to the revocation log, in the same batch
  return s.remoteCommit.htlcs.length === 0
    ? r
    : { ...r, writes: [...r.writes, revokedHtlcsWrite(s.channelId, s.remoteCommit.height, s.remoteCommit.htlcs)] };
}

// ---------------------------------------------------------------- reconnection

/** Forgets updates no commitment_signed covers (BOLT 2: reversed on reconnection). */
export function disconnect(s: ChannelState): StepResult {
  if (
    s.phase === 'awaiting_accept' ||
    s.phase === 'awaiting_funding_tx' ||
    s.phase === 'awaiting_funding_signed' ||
    s.phase === 'awaiting_funding_created'
  ) {
    const release: ChannelEvent[] = s.fundingTx !== undefined ? [{ type: 'release_funding', tx: s.fundingTx }] : [];
    return ok({ ...s, phase: 'closed', reestablished: false, sentReestablish: false }, [], false, [...release, { type: 'channel_closed' }]);
  }
  const ourKeep = (s.remoteNextCommit ?? s.remoteCommit).ourLogIndex;
  const theirKeep = s.localCommit.theirLogIndex;
  const truncate = (log: UpdateLog, keep: number): { log: UpdateLog; dropped: LogEntry[] } => {
    const at = Math.max(keep - log.base, 0);
    const dropped = log.entries.slice(at);
    const firstAdd = dropped.find((e): e is AddEntry => e.kind === 'add');
    return { log: { base: log.base, entries: log.entries.slice(0, at), nextHtlcId: firstAdd?.htlcId ?? log.nextHtlcId }, dropped };
  };
  const ours = truncate(s.ourLog, ourKeep);
  const theirs = truncate(s.theirLog, theirKeep);
  const events: ChannelEvent[] = ours.dropped
    .filter((e): e is AddEntry => e.kind === 'add')
    .map((htlc) => ({ type: 'htlc_unsent', htlc }) as const);
  // our reversed fulfills and fails go out again after the next channel_reestablish
  const reversed = ours.dropped.filter(
    (e): e is ResolutionEntry => e.kind === 'fulfill' || e.kind === 'fail' || e.kind === 'fail_malformed',
  );
  const queued = [...(s.pendingResolutions ?? []), ...reversed];
  const next: ChannelState = {
    ...s,
    ourLog: ours.log,
    theirLog: theirs.log,
    reestablished: false,
    sentReestablish: false,
    ...(queued.length > 0 ? { pendingResolutions: queued } : {}),
  };
  return ok(next, [], false, events);
}

export function reestablishMessage(ctx: StepContext, s: ChannelState): ChannelReestablish {
  let last: Uint8Array = new Uint8Array(32);
  if (s.remoteCommit.height > 0n) {
    const secret = RevocationStore.decode(s.revocationStore).get(secretIndexForCommitment(s.remoteCommit.height - 1n));
    if (secret === null) throw new ChannelError('ERR_SYNC', 'revocation store lacks the last secret');
    last = secret;
  }
  return {
    type: 136,
    channelId: s.channelId,
    nextCommitmentNumber: s.localCommit.height + 1n,
    nextRevocationNumber: s.remoteCommit.height,
    yourLastPerCommitmentSecret: last,
    myCurrentPerCommitmentPoint: ourPoint(ctx.secrets, s.localCommit.height),
  };
}

function connect(ctx: StepContext, s: ChannelState): StepResult {
  if (s.phase === 'closed' || s.sentReestablish) return ok(s);
  return ok({ ...s, sentReestablish: true }, [reestablishMessage(ctx, s)]);
}

function updateMessage(s: ChannelState, e: LogEntry): ChannelMessage {
  const channelId = s.channelId;
  switch (e.kind) {
    case 'add':
      return {
        type: 128,
        channelId,
        id: e.htlcId,
        amountMsat: e.amountMsat,
        paymentHash: e.paymentHash,
        cltvExpiry: e.cltvExpiry,
        onionRoutingPacket: e.onionRoutingPacket,
        ...(e.blindingPoint === undefined ? {} : { blindingPoint: e.blindingPoint }),
      };
    case 'fulfill':
      return { type: 130, channelId, id: e.htlcId, paymentPreimage: e.paymentPreimage, ...withAttribution(e.attributionData) };
    case 'fail':
      return { type: 131, channelId, id: e.htlcId, reason: e.reason, ...withAttribution(e.attributionData) };
    case 'fail_malformed':
      return { type: 135, channelId, id: e.htlcId, sha256OfOnion: e.sha256OfOnion, failureCode: e.failureCode };
    case 'fee':
      return { type: 134, channelId, feeratePerKw: e.feeratePerKw };
  }
}

function receiveReestablish(ctx: StepContext, s0: ChannelState, m: ChannelReestablish): StepResult {
  if (s0.reestablished) return failWith(s0, 'warning', 'ERR_SYNC', 'channel_reestablish twice on one connection');
  const send: ChannelMessage[] = [];
  let s = s0;
  if (!s.sentReestablish) {
    send.push(reestablishMessage(ctx, s));
    s = { ...s, sentReestablish: true };
  }
  const L = s.localCommit.height;
  const R = m.nextRevocationNumber;
  // their proof that we revoked commitment R-1 (or zeros before any revocation)
  if (R > L) {
    if (R > 0n && equalBytes(m.yourLastPerCommitmentSecret, ourSecret(ctx.secrets, R - 1n))) {
      return {
        ...failWith(s0, 'error', 'ERR_DATA_LOSS', `peer expects revocation ${R}, we are at ${L}: we lost state`),
        events: [{ type: 'data_loss', theirCurrentPoint: m.myCurrentPerCommitmentPoint }],
      };
    }
    return peerError(s0, 'ERR_SYNC', `next_revocation_number ${R} ahead of our commitment ${L} without proof`);
  }
  // (with next_revocation_number 0 there is no secret to prove; like lnd, whatever is sent is not checked)
  if (R > 0n && !equalBytes(m.yourLastPerCommitmentSecret, ourSecret(ctx.secrets, R - 1n)))
    return peerError(s0, 'ERR_SYNC', `your_last_per_commitment_secret is not our secret ${R - 1n}`);
  let resendRevoke = false;
  if (R + 1n === L) resendRevoke = true;
  else if (R !== L) return peerError(s0, 'ERR_SYNC', `next_revocation_number ${R} too far behind our commitment ${L}`);

  const N = m.nextCommitmentNumber;
  let resendCommit = false;
  const tip = s.remoteNextCommit;
  if (tip !== undefined) {
    if (N === tip.height) resendCommit = true;
    else if (N !== tip.height + 1n) return peerError(s0, 'ERR_SYNC', `next_commitment_number ${N}, our last signed is ${tip.height}`);
  } else if (N !== s.remoteCommit.height + 1n) {
    return peerError(s0, 'ERR_SYNC', `next_commitment_number ${N}, our last signed is ${s.remoteCommit.height}`);
  }

  if (N === 1n && L === 0n && s.sentChannelReady)
    send.push({ type: 36, channelId: s.channelId, secondPerCommitmentPoint: ourPoint(ctx.secrets, 1n) });
  const revoke = (): RevokeAndAck => ({
    type: 133,
    channelId: s.channelId,
    perCommitmentSecret: ourSecret(ctx.secrets, L - 1n),
    nextPerCommitmentPoint: ourPoint(ctx.secrets, L + 1n),
  });
  const commit = (): ChannelMessage[] => {
    if (tip === undefined || s.sentCommitSig === undefined) throw new ChannelError('ERR_SYNC', 'no commitment_signed to retransmit');
    return [...logSlice(s.ourLog, s.remoteCommit.ourLogIndex, tip.ourLogIndex).map((e) => updateMessage(s, e)), s.sentCommitSig];
  };
  if (resendRevoke && resendCommit) {
    if (s.lastSentWasRevoke) send.push(...commit(), revoke());
    else send.push(revoke(), ...commit());
  } else if (resendRevoke) send.push(revoke());
  else if (resendCommit) send.push(...commit());
  if (s.shutdown?.sentShutdown === true && s.shutdown.localScript !== undefined)
    send.push({ type: 38, channelId: s.channelId, scriptpubkey: s.shutdown.localScript });
  const offer = close.resumeOffer(ctx, s);
  if (offer !== undefined) send.push(offer);
  const resumed = sendPendingResolutions({ ...s, reestablished: true });
  send.push(...resumed.send);
  // persisted whenever the queue changed: the re-applied updates are in the log before they leave, and stale entries go
  const queueChanged = resumed.state.pendingResolutions !== s.pendingResolutions;
  const owed = close.shutdownOwedAfterReestablish(ctx, resumed.state);
  if (owed.msg === undefined) return ok(resumed.state, send, queueChanged, [{ type: 'channel_reestablished' }]);
  // our shutdown, held back by updates the disconnect reversed: sent now, and with no HTLC left the close goes on
  return close.afterUpdate(ctx, ok(owed.state, [...send, owed.msg], true, [{ type: 'channel_reestablished' }]));
}

// ---------------------------------------------------------------- dispatch

export function step(ctx: StepContext, s: ChannelState, input: ChannelInput): StepResult {
  try {
    return dispatch(ctx, s, input);
  } catch (e) {
    if (e instanceof ChannelError) return failWith(s, 'error', e.code, e.message);
    // a peer's bytes that no check above caught (an invalid scalar or point, an impossible transaction)
    if (e instanceof AmpnodeError && input.type === 'message') return failWith(s, 'error', 'ERR_INVALID_MESSAGE', e.message);
    throw e;
  }
}

function dispatch(ctx: StepContext, s: ChannelState, input: ChannelInput): StepResult {
  switch (input.type) {
    case 'add_htlc':
      return localAdd(ctx, s, input);
    case 'fulfill_htlc':
    case 'fail_htlc':
    case 'fail_malformed_htlc':
      return localRemove(s, input);
    case 'update_fee':
      return localFee(s, input.feeratePerKw);
    case 'sign':
      return signNext(ctx, s);
    case 'connected':
      return connect(ctx, s);
    case 'disconnected':
      return disconnect(s);
    case 'funding_tx':
      return establish.fundingTx(ctx, s, input.tx, input.outputIndex);
    case 'funding_depth':
      return establish.fundingDepth(ctx, s, input.depth, input.shortChannelId);
    case 'shutdown':
      return close.startShutdown(ctx, s, input.scriptPubKey, input.feeratePerKw);
    case 'events_handled': {
      const rest = (s.outbox ?? []).filter((e) => !input.events.includes(e));
      const { outbox: _handled, ...without } = s;
      return ok(rest.length > 0 ? { ...without, outbox: rest } : without);
    }
    case 'message':
      return receive(ctx, s, input.msg);
  }
}

function receive(ctx: StepContext, s: ChannelState, m: ChannelMessage): StepResult {
  const id = channelIdOf(m);
  if (
    !equalBytes(id, s.channelId) &&
    !(m.type === 33 && equalBytes(id, s.temporaryChannelId)) &&
    !(m.type === 34 && equalBytes(id, s.temporaryChannelId))
  )
    return peerError(s, 'ERR_UNKNOWN_CHANNEL', 'message for another channel');
  if (s.phase === 'closed') return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', 'channel is closed');
  if (m.type === 136) return receiveReestablish(ctx, s, m);
  const established = !(
    s.phase === 'awaiting_accept' ||
    s.phase === 'awaiting_funding_tx' ||
    s.phase === 'awaiting_funding_signed' ||
    s.phase === 'awaiting_funding_created'
  );
  if (established && !s.reestablished) return failWith(s, 'warning', 'ERR_SYNC', `${m.type} before channel_reestablish`);
  switch (m.type) {
    case 33:
      return establish.receiveAccept(ctx, s, m);
    case 34:
      return establish.receiveFundingCreated(ctx, s, m);
    case 35:
      return establish.receiveFundingSigned(ctx, s, m);
    case 36:
      return establish.receiveChannelReady(ctx, s, m);
    case 38:
      return close.receiveShutdown(ctx, s, m);
    case 39:
      return close.receiveClosingSigned(ctx, s, m);
    case 128:
      return remoteAdd(s, m);
    case 130:
    case 131:
    case 135:
      return remoteRemove(s, m);
    case 134:
      return remoteFee(s, m);
    case 132:
      return receiveCommit(ctx, s, m);
    case 133:
      return receiveRevoke(ctx, s, m);
    case 32:
      return peerError(s, 'ERR_UNEXPECTED_MESSAGE', 'open_channel for an existing channel');
  }
}

/** An HTLC the peer offered is irrevocably committed and no resolution of ours is pending or queued for it. */
export function incomingOpen(s: ChannelState, id: bigint): boolean {
  return typeof settleable(s, id) !== 'string';
}
