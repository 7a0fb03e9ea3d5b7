/**
 * BOLT 2 cooperative close with legacy `closing_signed` fee negotiation.
 *
 *     shutdown ◀───────────────▶ shutdown       (no new HTLCs from here on)
 *     ... the remaining HTLCs are fulfilled or failed through the usual dance ...
 *     closing_signed(fee) ───────▶               the opener offers first
 *                 ◀───────────── closing_signed  (same fee: agreed; else a counter-offer)
 *
 * Each side accepts an offer within ±30 % of its own ideal fee (feerate ×
 * closing tx weight), as lnd does, and otherwise answers with the midpoint of
 * its last offer and the peer's, so the two converge. Delivery scripts are
 * P2WPKH, P2WSH or P2TR (lnd refuses P2PKH/P2SH); a non-empty upfront
 * shutdown script binds the side that announced it. Both sides build the
 * closing tx with the larger of the two dust limits, so they sign the same tx.
 */
import { equalBytes } from '../../wire/bytes.js';
import type { ClosingSigned, Shutdown } from '../../wire/channel-messages.js';
import {
  buildClosingTx,
  closingTxWeight,
  finalizeClosingTx,
  fundingWitnessScript,
  signCommitment,
  verifyCommitmentSig,
  type ClosingTx,
} from '../bolt3/index.js';
import { logEnd } from './commitments.js';
import { failWith, ok } from './result.js';
import type { ChannelState, ShutdownState, StepContext, StepResult } from './types.js';

/** P2WPKH, P2WSH or P2TR. */
export function isValidShutdownScript(s: Uint8Array): boolean {
  if (s.length === 22 && s[0] === 0x00 && s[1] === 0x14) return true;
  if (s.length === 34 && s[0] === 0x00 && s[1] === 0x20) return true;
  if (s.length === 34 && s[0] === 0x51 && s[1] === 0x20) return true;
  return false;
}

function clean(s: ChannelState): boolean {
  return (
    s.remoteNextCommit === undefined &&
    s.localCommit.htlcs.length === 0 &&
    s.remoteCommit.htlcs.length === 0 &&
    logEnd(s.ourLog) === s.localCommit.ourLogIndex &&
    logEnd(s.ourLog) === s.remoteCommit.ourLogIndex &&
    logEnd(s.theirLog) === s.localCommit.theirLogIndex &&
    logEnd(s.theirLog) === s.remoteCommit.theirLogIndex
  );
}

function idealFeeSat(sh: ShutdownState, feeratePerKw: number): bigint {
  return (BigInt(feeratePerKw) * BigInt(closingTxWeight(sh.localScript ?? null, sh.remoteScript ?? null))) / 1000n;
}

function closingTx(s: ChannelState, feeSat: bigint): ClosingTx {
  const sh = s.shutdown!;
  return buildClosingTx({
    fundingOutpoint: { txid: s.fundingTxid!, outputIndex: s.fundingOutputIndex! },
    fundingSat: s.fundingSat,
    localMsat: s.localCommit.ourBalanceMsat,
    remoteMsat: s.localCommit.theirBalanceMsat,
    localScriptPubKey: sh.localScript!,
    remoteScriptPubKey: sh.remoteScript!,
    opener: s.opener,
    feeSat,
    dustLimitSat: s.local.config.dustLimitSat > s.remote.config.dustLimitSat ? s.local.config.dustLimitSat : s.remote.config.dustLimitSat,
  });
}

function fws(s: ChannelState): Uint8Array {
  return fundingWitnessScript(s.local.pubkeys.fundingPubkey, s.remote.pubkeys.fundingPubkey);
}

function offer(ctx: StepContext, s: ChannelState, feeSat: bigint): ClosingSigned {
  const c = closingTx(s, feeSat);
  return {
    type: 39,
    channelId: s.channelId,
    feeSatoshis: feeSat,
    signature: signCommitment(c.tx, ctx.secrets.fundingPriv, fws(s), s.fundingSat),
  };
}

/** After any step in the shutdown phase: once no HTLC or update is left, start fee negotiation (the opener offers). */
export function afterUpdate(ctx: StepContext, r: StepResult): StepResult {
  const s = r.state;
  const sh = s.shutdown;
  if (s.phase !== 'shutdown' || sh === undefined || !sh.sentShutdown || !sh.receivedShutdown || !clean(s)) return r;
  let next: ChannelState = { ...s, phase: 'negotiating' };
  const send = [...r.send];
  if (s.opener === 'local') {
    const fee = idealFeeSat(sh, sh.feeratePerKw ?? s.localCommit.feeratePerKw);
    send.push(offer(ctx, next, fee));
    next = { ...next, shutdown: { ...sh, lastSentFeeSat: fee } };
  }
  return ok(next, send, true, r.events);
}

export function startShutdown(ctx: StepContext, s: ChannelState, script: Uint8Array | undefined, feeratePerKw: number): StepResult {
  if (s.phase !== 'normal' && !(s.phase === 'shutdown' && s.shutdown?.sentShutdown !== true))
    return failWith(s, 'local', 'ERR_SHUTDOWN', `cannot shut down in phase ${s.phase}`);
  const upfront = s.local.upfrontShutdownScript;
  const localScript = script ?? (upfront.length > 0 ? upfront : ctx.shutdownScript);
  if (localScript === undefined || !isValidShutdownScript(localScript))
    return failWith(s, 'local', 'ERR_SHUTDOWN', 'no valid P2WPKH/P2WSH/P2TR delivery script');
  if (upfront.length > 0 && !equalBytes(upfront, localScript))
    return failWith(s, 'local', 'ERR_SHUTDOWN', 'delivery script differs from our upfront_shutdown_script');
  if (logEnd(s.ourLog) !== (s.remoteNextCommit ?? s.remoteCommit).ourLogIndex)
    return failWith(s, 'local', 'ERR_SHUTDOWN', 'sign our pending updates before shutdown');
  const sh: ShutdownState = { ...(s.shutdown ?? { receivedShutdown: false }), localScript, sentShutdown: true, feeratePerKw };
  const next: ChannelState = { ...s, phase: 'shutdown', shutdown: sh };
  const msg: Shutdown = { type: 38, channelId: s.channelId, scriptpubkey: localScript };
  return afterUpdate(ctx, ok(next, [msg], true));
}

export function receiveShutdown(ctx: StepContext, s: ChannelState, m: Shutdown): StepResult {
  if (s.phase !== 'normal' && s.phase !== 'shutdown') {
    if (
      s.shutdown?.receivedShutdown === true &&
      s.shutdown.remoteScript !== undefined &&
      equalBytes(s.shutdown.remoteScript, m.scriptpubkey)
    )
      return ok(s); // retransmission
    return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', `shutdown in phase ${s.phase}`);
  }
  if (s.shutdown?.receivedShutdown === true) {
    if (s.shutdown.remoteScript !== undefined && equalBytes(s.shutdown.remoteScript, m.scriptpubkey)) return ok(s);
    return failWith(s, 'error', 'ERR_SHUTDOWN', 'second shutdown with another script');
  }
  if (!isValidShutdownScript(m.scriptpubkey)) return failWith(s, 'warning', 'ERR_SHUTDOWN', 'delivery script is not P2WPKH, P2WSH or P2TR');
  const upfront = s.remote.upfrontShutdownScript;
  if (upfront.length > 0 && !equalBytes(upfront, m.scriptpubkey))
    return failWith(s, 'error', 'ERR_SHUTDOWN', 'delivery script differs from the upfront_shutdown_script');
  // their unsigned updates are still allowed to be signed; the BOLT forbids shutdown with updates pending on our commitment
  let next: ChannelState = {
    ...s,
    phase: 'shutdown',
    shutdown: { ...(s.shutdown ?? { sentShutdown: false }), remoteScript: m.scriptpubkey, receivedShutdown: true },
  };
  const send: Shutdown[] = [];
  // BOLT 2: our own shutdown waits until every update we sent is in a commitment_signed (see `shutdownAfterSign`)
  const unsigned = logEnd(s.ourLog) !== (s.remoteNextCommit ?? s.remoteCommit).ourLogIndex;
  if (next.shutdown!.sentShutdown !== true && !unsigned) {
    const upfrontLocal = s.local.upfrontShutdownScript;
    const localScript = upfrontLocal.length > 0 ? upfrontLocal : ctx.shutdownScript;
    if (localScript === undefined || !isValidShutdownScript(localScript))
      return failWith(s, 'local', 'ERR_SHUTDOWN', 'no delivery script configured to answer shutdown');
    next = { ...next, shutdown: { ...next.shutdown!, localScript, sentShutdown: true } };
    send.push({ type: 38, channelId: s.channelId, scriptpubkey: localScript });
  }
  return afterUpdate(ctx, ok(next, send, true));
}

export function receiveClosingSigned(ctx: StepContext, s: ChannelState, m: ClosingSigned): StepResult {
  if (s.phase !== 'negotiating' || s.shutdown === undefined)
    return failWith(s, 'warning', 'ERR_UNEXPECTED_MESSAGE', `closing_signed in phase ${s.phase}`);
  const sh = s.shutdown;
  let c: ClosingTx;
  try {
    c = closingTx(s, m.feeSatoshis);
  } catch (e) {
    return failWith(s, 'error', 'ERR_CLOSING', `fee ${m.feeSatoshis} sat impossible: ${(e as Error).message}`);
  }
  if (!verifyCommitmentSig(c.tx, m.signature, s.remote.pubkeys.fundingPubkey, fws(s), s.fundingSat))
    return failWith(s, 'error', 'ERR_BAD_SIGNATURE', 'bad closing_signed signature');
  const finish = (feeSat: bigint, ourSig: Uint8Array, send: ClosingSigned[]): StepResult => {
    const tx = finalizeClosingTx(c, fws(s), s.local.pubkeys.fundingPubkey, ourSig, s.remote.pubkeys.fundingPubkey, m.signature).toRaw();
    const raw = new Uint8Array(tx.buffer, tx.byteOffset, tx.byteLength).slice();
    const next: ChannelState = {
      ...s,
      phase: 'closed',
      shutdown: { ...sh, lastReceivedFeeSat: m.feeSatoshis, closingTx: raw, ...(send.length > 0 ? { lastSentFeeSat: feeSat } : {}) },
    };
    return ok(next, send, true, [{ type: 'closing_tx', tx: raw, feeSat }, { type: 'channel_closed' }]);
  };
  if (sh.lastSentFeeSat === m.feeSatoshis)
    return finish(m.feeSatoshis, signCommitment(c.tx, ctx.secrets.fundingPriv, fws(s), s.fundingSat), []);
  const ideal = idealFeeSat(sh, sh.feeratePerKw ?? s.localCommit.feeratePerKw);
  const base = sh.lastSentFeeSat ?? ideal;
  const acceptable = m.feeSatoshis * 10n >= ideal * 7n && m.feeSatoshis * 10n <= ideal * 13n;
  let counter = (base + m.feeSatoshis) / 2n;
  if (acceptable || counter === m.feeSatoshis || counter === base) counter = m.feeSatoshis;
  if (counter === m.feeSatoshis) {
    const ours = offer(ctx, s, counter);
    return finish(counter, ours.signature, [ours]);
  }
  const msg = offer(ctx, s, counter);
  return ok({ ...s, shutdown: { ...sh, lastSentFeeSat: counter, lastReceivedFeeSat: m.feeSatoshis } }, [msg], true);
}

/** After a reconnection during fee negotiation, the opener offers again (BOLT 2: negotiation restarts). */
export function resumeOffer(ctx: StepContext, s: ChannelState): ClosingSigned | undefined {
  const sh = s.shutdown;
  if (s.phase !== 'negotiating' || sh === undefined || s.opener !== 'local') return undefined;
  return offer(ctx, s, sh.lastSentFeeSat ?? idealFeeSat(sh, sh.feeratePerKw ?? s.localCommit.feeratePerKw));
}

/**
 * After channel_reestablish: the shutdown we owe the peer when none of our
 * updates waits for a signature any more. The updates that held it back may
 * have been reversed by the disconnect (an unsigned add or fee update), and
 * then no signature would ever release it. With updates of ours unsigned (our
 * fulfills and fails sent again) it still waits for `shutdownAfterSign`.
 */
export function shutdownOwedAfterReestablish(ctx: StepContext, s: ChannelState): { state: ChannelState; msg?: Shutdown } {
  if (logEnd(s.ourLog) !== (s.remoteNextCommit ?? s.remoteCommit).ourLogIndex) return { state: s };
  return shutdownAfterSign(ctx, s);
}

/** After we signed: the shutdown we owe the peer, if it was waiting for our updates to be signed. */
export function shutdownAfterSign(ctx: StepContext, s: ChannelState): { state: ChannelState; msg?: Shutdown } {
  const sh = s.shutdown;
  if (sh === undefined || !sh.receivedShutdown || sh.sentShutdown) return { state: s };
  const upfront = s.local.upfrontShutdownScript;
  const localScript = upfront.length > 0 ? upfront : ctx.shutdownScript;
  if (localScript === undefined || !isValidShutdownScript(localScript)) return { state: s };
  return {
    state: { ...s, shutdown: { ...sh, localScript, sentShutdown: true } },
    msg: { type: 38, channelId: s.channelId, scriptpubkey: localScript },
  };
}
