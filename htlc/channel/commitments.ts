/**
 * Commitment views and their signatures (BOLT 2 "Normal Operation" over the
 * BOLT 3 builders).
 *
 * `nextView` is lnd's fetchCommitmentView reduced to its core: take the
 * chain's latest commitment and apply the log entries between its counters
 * and the new ones — adds first (they move value from a balance into an
 * HTLC), fee updates, then fulfills and fails (they move an HTLC's value to
 * the side that wins it). Everything here is pure and describes commitments
 * from OUR point of view; `buildLocal` / `buildRemote` turn a view into the
 * holder's BOLT 3 commitment transaction.
 */
import {
  buildCommitment,
  buildHtlcTxs,
  commitmentSighash,
  finalizeCommitment,
  finalizeHtlcTx,
  isHtlcTrimmed,
  openerCommitmentCostSat,
  signCommitment,
  signHtlcTx,
  untrimmedHtlcs,
  htlcSighashes,
  type Commitment,
  type CommitmentHtlc,
  type CommitmentKeys,
  type CommitmentParams,
} from '../bolt3/index.js';
import { commitmentPrivkey, localCommitmentKeys, ourPoint, ourSecret, remoteCommitmentKeys } from './keys.js';
import { bytesToHex } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import type { ChannelHtlc, ChannelState, CommitmentState, ChannelSecrets, LogEntry, SignJob, UpdateLog } from './types.js';
import { ChannelError } from './types.js';

/** Entries of `log` with absolute index in [from, to). */
export function logSlice(log: UpdateLog, from: number, to: number): LogEntry[] {
  const start = Math.max(from - log.base, 0);
  const end = Math.max(to - log.base, 0);
  return log.entries.slice(start, end);
}

export function logEnd(log: UpdateLog): number {
  return log.base + log.entries.length;
}

/**
 * The commitment after `prev` that includes our log up to `ourTo` and theirs
 * up to `theirTo` (exclusive absolute indices), at `height`.
 */
export function nextView(
  prev: CommitmentState,
  ourLog: UpdateLog,
  theirLog: UpdateLog,
  ourTo: number,
  theirTo: number,
  height: bigint,
): CommitmentState {
  const ours = logSlice(ourLog, prev.ourLogIndex, ourTo);
  const theirs = logSlice(theirLog, prev.theirLogIndex, theirTo);
  let ourBal = prev.ourBalanceMsat;
  let theirBal = prev.theirBalanceMsat;
  let fee = prev.feeratePerKw;
  const htlcs: ChannelHtlc[] = prev.htlcs.slice();
  for (const e of ours) {
    if (e.kind === 'add') {
      htlcs.push({ offered: true, id: e.htlcId, amountMsat: e.amountMsat, paymentHash: e.paymentHash, cltvExpiry: e.cltvExpiry });
      ourBal -= e.amountMsat;
    } else if (e.kind === 'fee') fee = e.feeratePerKw;
  }
  for (const e of theirs) {
    if (e.kind === 'add') {
      htlcs.push({ offered: false, id: e.htlcId, amountMsat: e.amountMsat, paymentHash: e.paymentHash, cltvExpiry: e.cltvExpiry });
      theirBal -= e.amountMsat;
    } else if (e.kind === 'fee') fee = e.feeratePerKw;
  }
  const remove = (offered: boolean, id: bigint): ChannelHtlc => {
    const i = htlcs.findIndex((h) => h.offered === offered && h.id === id);
    if (i < 0) throw new ChannelError('ERR_UNKNOWN_HTLC', `no ${offered ? 'offered' : 'received'} htlc ${id} in the commitment`);
    return htlcs.splice(i, 1)[0]!;
  };
  // our removals settle HTLCs they offered; theirs settle ours
  for (const e of ours) {
    if (e.kind === 'fulfill') ourBal += remove(false, e.htlcId).amountMsat;
    else if (e.kind === 'fail' || e.kind === 'fail_malformed') theirBal += remove(false, e.htlcId).amountMsat;
  }
  for (const e of theirs) {
    if (e.kind === 'fulfill') theirBal += remove(true, e.htlcId).amountMsat;
    else if (e.kind === 'fail' || e.kind === 'fail_malformed') ourBal += remove(true, e.htlcId).amountMsat;
  }
  return {
    height,
    ourLogIndex: Math.max(ourTo, prev.ourLogIndex),
    theirLogIndex: Math.max(theirTo, prev.theirLogIndex),
    ourBalanceMsat: ourBal,
    theirBalanceMsat: theirBal,
    feeratePerKw: fee,
    htlcs,
  };
}

/** The remote's next commitment: all our updates, theirs that we acked (those in our current commitment). */
export function nextRemoteView(s: ChannelState): CommitmentState {
  const prev = s.remoteNextCommit ?? s.remoteCommit;
  return nextView(prev, s.ourLog, s.theirLog, logEnd(s.ourLog), s.localCommit.theirLogIndex, prev.height + 1n);
}

/** Our next commitment: all their updates, ours that they acked (those in their current commitment). */
export function nextLocalView(s: ChannelState): CommitmentState {
  return nextView(s.localCommit, s.ourLog, s.theirLog, s.remoteCommit.ourLogIndex, logEnd(s.theirLog), s.localCommit.height + 1n);
}

function bolt3Htlcs(v: CommitmentState, holderIsUs: boolean): CommitmentHtlc[] {
  return v.htlcs.map((h) => ({
    id: h.id,
    direction: h.offered === holderIsUs ? 'offered' : 'received',
    amountMsat: h.amountMsat,
    cltvExpiry: h.cltvExpiry,
    paymentHash: h.paymentHash,
  }));
}

function fundingOutpoint(s: ChannelState): { txid: Uint8Array; outputIndex: number } {
  if (s.fundingTxid === undefined || s.fundingOutputIndex === undefined)
    throw new ChannelError('ERR_NOT_READY', 'funding outpoint not known yet');
  return { txid: s.fundingTxid, outputIndex: s.fundingOutputIndex };
}

/** The opener's and acceptor's payment basepoints (what the obscured commitment number is derived from). */
export function paymentBasepoints(s: ChannelState): { openerPaymentBasepoint: Uint8Array; acceptorPaymentBasepoint: Uint8Array } {
  const l = s.local.pubkeys.paymentBasepoint;
  const r = s.remote.pubkeys.paymentBasepoint;
  return s.opener === 'local'
    ? { openerPaymentBasepoint: l, acceptorPaymentBasepoint: r }
    : { openerPaymentBasepoint: r, acceptorPaymentBasepoint: l };
}

/** Our commitment transaction for view `v`, with its keys (`localKeys`). */
export function localCommitmentParams(s: ChannelState, v: CommitmentState, keys: CommitmentKeys): CommitmentParams {
  return {
    channelType: s.channelType,
    fundingOutpoint: fundingOutpoint(s),
    fundingSat: s.fundingSat,
    localFundingPubkey: s.local.pubkeys.fundingPubkey,
    remoteFundingPubkey: s.remote.pubkeys.fundingPubkey,
    opener: s.opener,
    commitmentNumber: v.height,
    ...paymentBasepoints(s),
    toSelfDelay: s.remote.config.toSelfDelay,
    dustLimitSat: s.local.config.dustLimitSat,
    feeratePerKw: v.feeratePerKw,
    toLocalMsat: v.ourBalanceMsat,
    toRemoteMsat: v.theirBalanceMsat,
    keys,
    htlcs: bolt3Htlcs(v, true),
  };
}

/** The remote's commitment transaction for view `v`, with its keys (`remoteCommitmentKeys`). */
export function remoteCommitmentParams(s: ChannelState, v: CommitmentState, keys: CommitmentKeys): CommitmentParams {
  return {
    channelType: s.channelType,
    fundingOutpoint: fundingOutpoint(s),
    fundingSat: s.fundingSat,
    localFundingPubkey: s.remote.pubkeys.fundingPubkey,
    remoteFundingPubkey: s.local.pubkeys.fundingPubkey,
    opener: s.opener === 'local' ? 'remote' : 'local',
    commitmentNumber: v.height,
    ...paymentBasepoints(s),
    toSelfDelay: s.local.config.toSelfDelay,
    dustLimitSat: s.remote.config.dustLimitSat,
    feeratePerKw: v.feeratePerKw,
    toLocalMsat: v.theirBalanceMsat,
    toRemoteMsat: v.ourBalanceMsat,
    keys,
    htlcs: bolt3Htlcs(v, false),
  };
}

export interface Signatures {
  signature: Uint8Array;
  htlcSignatures: Uint8Array[];
}

/** The signatures our commitment_signed for the remote's commitment `v` needs: the commitment's first, then one per HTLC. */
export function remoteSignJobs(s: ChannelState, secrets: ChannelSecrets, v: CommitmentState, point: Uint8Array): SignJob[] {
  const k = remoteCommitmentKeys(secrets, s.local.pubkeys, s.remote.pubkeys, point);
  const c = buildCommitment(remoteCommitmentParams(s, v, k.keys));
  const jobs: SignJob[] = [{ digest: commitmentSighash(c), priv: secrets.fundingPriv }];
  if (c.htlcOutputs.length === 0) return jobs;
  const ourHtlcPriv = k.ourHtlcPriv;
  for (const digest of htlcSighashes(c, 'counterparty')) jobs.push({ digest, priv: ourHtlcPriv });
  return jobs;
}

/** Our signatures for the remote's commitment `v` (their per-commitment point `point`). */
export function signRemote(s: ChannelState, secrets: ChannelSecrets, v: CommitmentState, point: Uint8Array): Signatures {
  const sigs = remoteSignJobs(s, secrets, v, point).map((j) => secp.sign(j.digest, j.priv));
  return { signature: sigs[0]!, htlcSignatures: sigs.slice(1) };
}

/** Our commitment `v` as a BOLT 3 transaction. */
export function buildLocal(s: ChannelState, secrets: ChannelSecrets, v: CommitmentState): Commitment {
  const keys = localCommitmentKeys(secrets, s.local.pubkeys, s.remote.pubkeys, ourSecret(secrets, v.height), ourPoint(secrets, v.height));
  return buildCommitment(localCommitmentParams(s, v, keys));
}

/** Checks the peer's signatures on our commitment `v`; returns the failing part or null. */
export function verifyLocal(
  s: ChannelState,
  secrets: ChannelSecrets,
  v: CommitmentState,
  sigs: Signatures,
  verify: (sig64: Uint8Array, digest32: Uint8Array, pub: Uint8Array) => boolean = (sig, digest, pub) => secp.verify(sig, digest, pub),
): 'commitment' | 'htlc_count' | 'htlc' | null {
  const c = buildLocal(s, secrets, v);
  if (!verify(sigs.signature, commitmentSighash(c), s.remote.pubkeys.fundingPubkey)) return 'commitment';
  if (sigs.htlcSignatures.length !== c.htlcOutputs.length) return 'htlc_count';
  if (c.htlcOutputs.length === 0) return null;
  const digests = htlcSighashes(c, 'counterparty');
  const key = c.params.keys.remoteHtlcPubkey;
  for (let i = 0; i < digests.length; i++) if (!verify(sigs.htlcSignatures[i]!, digests[i]!, key)) return 'htlc';
  return null;
}

/** HTLC outputs a commitment for `v` would carry (for counting signatures). */
export function untrimmedCount(s: ChannelState, v: CommitmentState, holderIsUs: boolean): number {
  const dust = holderIsUs ? s.local.config.dustLimitSat : s.remote.config.dustLimitSat;
  return untrimmedHtlcs(s.channelType, bolt3Htlcs(v, holderIsUs), v.feeratePerKw, dust).length;
}

/** Value of HTLCs trimmed to dust on the commitment of `holderIsUs ? us : them`. */
export function dustExposureMsat(s: ChannelState, v: CommitmentState, holderIsUs: boolean): bigint {
  const dust = holderIsUs ? s.local.config.dustLimitSat : s.remote.config.dustLimitSat;
  let sum = 0n;
  for (const h of bolt3Htlcs(v, holderIsUs))
    if (isHtlcTrimmed(s.channelType, h.direction, h.amountMsat, v.feeratePerKw, dust)) sum += h.amountMsat;
  return sum;
}

/** What the opener's balance must cover on the commitment of `holderIsUs ? us : them`: fee and anchors, in msat. */
export function openerCostMsat(s: ChannelState, v: CommitmentState, holderIsUs: boolean): bigint {
  return openerCommitmentCostSat(s.channelType, v.feeratePerKw, untrimmedCount(s, v, holderIsUs)) * 1000n;
}

/**
 * Our current commitment, signed by both sides: what we would broadcast to
 * close unilaterally. (Spending its outputs afterwards is not done here.)
 */
export function signedLocalCommitment(s: ChannelState, secrets: ChannelSecrets): Uint8Array {
  const c = buildLocal(s, secrets, s.localCommit);
  const ours = signCommitment(c.tx, secrets.fundingPriv, c.fundingWitnessScript, s.fundingSat);
  const raw = finalizeCommitment(c, ours, s.localCommit.remoteSig).toRaw();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength).slice();
}

/** A second-stage transaction of our current commitment, signed by both sides (or waiting for its preimage). */
export interface SignedHtlcTx {
  kind: 'htlc_timeout' | 'htlc_success';
  htlc: CommitmentHtlc;
  commitmentOutputIndex: number;
  /** Raw signed transaction; absent for an HTLC-success whose preimage is not known yet. */
  tx?: Uint8Array;
}

/**
 * The HTLC-timeout / HTLC-success transactions of our current commitment,
 * with the peer's stored HTLC signatures and ours. `preimages` (payment hash
 * hex → preimage) completes the HTLC-success ones we can claim.
 */
export function signedHtlcTxs(
  s: ChannelState,
  secrets: ChannelSecrets,
  preimages: ReadonlyMap<string, Uint8Array> = new Map(),
): SignedHtlcTx[] {
  const c = buildLocal(s, secrets, s.localCommit);
  const txs = buildHtlcTxs(c);
  if (txs.length !== s.localCommit.remoteHtlcSigs.length)
    throw new ChannelError('ERR_BAD_HTLC_SIGNATURES', 'stored HTLC signatures do not match the commitment');
  const ourHtlcPriv = commitmentPrivkey(secrets.htlcBaseSecret, s.local.pubkeys.htlcBasepoint, ourPoint(secrets, s.localCommit.height));
  return txs.map((h, i) => {
    const base = { kind: h.kind, htlc: h.htlc, commitmentOutputIndex: h.commitmentOutputIndex };
    const preimage = h.kind === 'htlc_success' ? preimages.get(bytesToHex(h.htlc.paymentHash)) : undefined;
    if (h.kind === 'htlc_success' && preimage === undefined) return base;
    const raw = finalizeHtlcTx(h, s.localCommit.remoteHtlcSigs[i]!, signHtlcTx(h, ourHtlcPriv, 'holder'), preimage).toRaw();
    return { ...base, tx: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength).slice() };
  });
}

/**
 * Dust exposure of the channel as things stand (every update either side sent
 * included): the value of HTLCs trimmed on our next commitment and on the
 * remote's. lnd fails incoming HTLCs back once either passes its cap
 * (500 000 sat by default); a link can do the same with this.
 */
export function currentDustExposure(s: ChannelState): { localMsat: bigint; remoteMsat: bigint } {
  const local = nextView(s.localCommit, s.ourLog, s.theirLog, logEnd(s.ourLog), logEnd(s.theirLog), s.localCommit.height + 1n);
  const remote = nextView(s.remoteNextCommit ?? s.remoteCommit, s.ourLog, s.theirLog, logEnd(s.ourLog), logEnd(s.theirLog), 0n);
  return { localMsat: dustExposureMsat(s, local, true), remoteMsat: dustExposureMsat(s, remote, false) };
}
