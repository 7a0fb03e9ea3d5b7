/**
 * One channel's link (lnd: htlcswitch/link.go): between the channel driver
 * and the switch.
 *
 * - Inbound: every HTLC the peer offered that became irrevocable is peeled
 *   here and handed to the switch, and every resolution of an HTLC we offered
 *   (the early preimage, the irrevocable fulfill or fail, an add a disconnect
 *   dropped) goes to the switch too. The channel's driver awaits these calls
 *   and drops the event from its outbox only after they return, and the
 *   switch returns only after it has written what it was given.
 * - Outbound: the switch's adds, settles and fails go through `addHtlc` and
 *   `resolve`.
 * - Commitment batching: local updates are signed `delayMs` after the first
 *   pending one, or at once when `maxPending` are pending; after the peer's
 *   revoke_and_ack, commitment_signed or channel_reestablish whatever is
 *   pending is signed at once. Nothing is signed while an add's keystone is
 *   still being written (an add the peer holds a signature for must be in the
 *   circuit map).
 */
import { withAttribution, type ChannelEvent, type ChannelInput } from '../channel/types.js';
import { compareBytes, Writer } from '../../wire/bytes.js';
import { commitmentSignedCodec } from '../../wire/channel-messages.js';
import {
  CHANNEL_FLAG_DIRECTION,
  CHANNEL_UPDATE_MESSAGE_TYPE,
  channelUpdateDigest,
  encodeChannelUpdate,
  MESSAGE_FLAG_MUST_BE_ONE,
  type ChannelUpdate,
} from '../../wire/gossip.js';
import { OnionError, failureCode, peelOnion, sha256OfOnion, type FailureMessage, type HopPayload } from '../../onion/index.js';
import type { Resolution } from './circuit-map.js';
import type { BatchConfig, ForwardingPolicy, LinkChannel, NodeSigner, Timers } from './interfaces.js';

/** What peeling an incoming HTLC's onion gave. */
export type PeelOutcome =
  | { kind: 'forward'; payload: HopPayload; nextPacket: Uint8Array; sharedSecret: Uint8Array }
  | { kind: 'final'; payload: HopPayload; payloadBytes: Uint8Array; sharedSecret: Uint8Array }
  /** invalid_onion_payload (or another failure we can encrypt): answered with update_fail_htlc. */
  | { kind: 'fail'; failure: FailureMessage; sharedSecret: Uint8Array }
  /** Bad version, key or HMAC: answered with update_fail_malformed_htlc. */
  | { kind: 'malformed'; failureCode: number; sha256OfOnion: Uint8Array };

/** An HTLC the peer offered, as the link hands it to the switch. */
export interface IncomingAdd {
  htlcId: bigint;
  amountMsat: bigint;
  paymentHash: Uint8Array;
  cltvExpiry: number;
}

/** The switch, as a link sees it. */
export interface LinkSwitch {
  onIncoming(link: ChannelLink, add: IncomingAdd, peel: PeelOutcome): Promise<void>;
  /** `attributionData`: what the peer sent with its update_fulfill_htlc, if anything. */
  onOutgoingSettle(
    channelId: string,
    htlcId: bigint,
    preimage: Uint8Array,
    how: 'early' | 'irrevocable' | 'chain',
    attributionData?: Uint8Array,
  ): Promise<void>;
  onOutgoingFail(
    channelId: string,
    htlcId: bigint,
    f: { reason?: Uint8Array; attributionData?: Uint8Array; failureCode?: number; sha256OfOnion?: Uint8Array; onChain?: boolean },
  ): Promise<void>;
  onOutgoingUnsent(channelId: string, htlcId: bigint): Promise<void>;
}

export interface LinkOptions {
  channel: LinkChannel;
  signer: NodeSigner;
  chainHash: Uint8Array;
  policy: ForwardingPolicy;
  batch: BatchConfig;
  timers: Timers;
  /** Where HTLC events go; undefined: the link only signs (HTLCs are handled by the caller). */
  switch?: LinkSwitch;
  now?: () => number;
  log?: (level: 'debug' | 'info' | 'warn', obj: object, msg: string) => void;
}

export type AddRequest = { amountMsat: bigint; paymentHash: Uint8Array; cltvExpiry: number; onionRoutingPacket: Uint8Array };

export class ChannelLink {
  policy: ForwardingPolicy;
  /** commitment_signed messages this link sent (a counter for tests and benchmarks). */
  commitSigsSent = 0;
  /** HTLC signatures those commitment_signed carried (one per untrimmed HTLC of the commitment signed). */
  htlcSigsSent = 0;
  private pendingUpdates = 0;
  private keystonesPending = 0;
  private signWanted = false;
  private timer: unknown;
  private signing: Promise<void> | undefined;
  private cachedUpdate: { key: string; bytes: Uint8Array; timestamp: number } | undefined;

  constructor(private readonly o: LinkOptions) {
    this.policy = o.policy;
  }

  get channel(): LinkChannel {
    return this.o.channel;
  }

  get channelId(): string {
    return this.o.channel.channelId;
  }

  // ---------------------------------------------------------------- from the channel

  /** Called by the channel driver for each event (awaited: the outbox keeps the event until this returns). */
  async onChannelEvent(e: ChannelEvent): Promise<void> {
    const sw = this.o.switch;
    if (sw === undefined) return;
    switch (e.type) {
      case 'htlc_incoming': {
        const h = e.htlc;
        const peel = this.peel(h.onionRoutingPacket, h.paymentHash, h.blindingPoint);
        await sw.onIncoming(
          this,
          { htlcId: h.htlcId, amountMsat: h.amountMsat, paymentHash: h.paymentHash, cltvExpiry: h.cltvExpiry },
          peel,
        );
        return;
      }
      case 'preimage_received':
        await sw.onOutgoingSettle(this.channelId, e.id, e.paymentPreimage, 'early', e.attributionData);
        return;
      case 'htlc_fulfilled':
        await sw.onOutgoingSettle(this.channelId, e.id, e.paymentPreimage, 'irrevocable', e.attributionData);
        return;
      case 'htlc_failed':
        await sw.onOutgoingFail(this.channelId, e.id, {
          ...(e.reason !== undefined ? { reason: e.reason } : {}),
          ...withAttribution(e.attributionData),
          ...(e.failureCode !== undefined ? { failureCode: e.failureCode } : {}),
          ...(e.sha256OfOnion !== undefined ? { sha256OfOnion: e.sha256OfOnion } : {}),
        });
        return;
      case 'htlc_unsent':
        await sw.onOutgoingUnsent(this.channelId, e.htlc.htlcId);
        return;
      default:
        return;
    }
  }

  /** BOLT 4 at an intermediate or final node: peel, or say which failure the HTLC gets. */
  peel(packet: Uint8Array, paymentHash: Uint8Array, blindingPoint?: Uint8Array): PeelOutcome {
    if (blindingPoint !== undefined)
      // route blinding is not supported: the HTLC cannot be read, and BOLT 4 answers a blinded HTLC this way
      return { kind: 'malformed', failureCode: 0x8000 | 0x4000 | 24, sha256OfOnion: sha256OfOnion(packet) };
    try {
      const p = peelOnion(packet, this.o.signer.privateKey, paymentHash);
      if (p.kind === 'forward') return { kind: 'forward', payload: p.payload, nextPacket: p.nextPacket, sharedSecret: p.sharedSecret };
      return { kind: 'final', payload: p.payload, payloadBytes: p.payloadBytes, sharedSecret: p.sharedSecret };
    } catch (e) {
      if (e instanceof OnionError) {
        if (e.code === 'ERR_ONION_PAYLOAD' && e.sharedSecret !== null)
          return { kind: 'fail', failure: e.failure, sharedSecret: e.sharedSecret };
        const f = e.failure;
        return {
          kind: 'malformed',
          failureCode: failureCode(f),
          sha256OfOnion: 'sha256OfOnion' in f ? f.sha256OfOnion : sha256OfOnion(packet),
        };
      }
      // a packet of the wrong length cannot come from the channel (the codec fixes it); treat it as unreadable
      return { kind: 'malformed', failureCode: 0x8000 | 0x4000 | 5, sha256OfOnion: sha256OfOnion(packet) };
    }
  }

  // ---------------------------------------------------------------- from the switch

  /**
   * Offers an HTLC. `onAssigned` runs once the channel has taken the add (and persisted it) with the HTLC's id, before
   * any commitment covering it can be signed: the switch writes the keystone there.
   */
  async addHtlc(req: AddRequest, onAssigned: (htlcId: bigint) => Promise<void>): Promise<{ htlcId: bigint } | { refused: string }> {
    if (!this.o.channel.canAdd()) return { refused: 'channel not active' };
    this.keystonesPending++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.keystonesPending--;
      if (this.keystonesPending === 0 && this.signWanted) void this.signNow();
    };
    try {
      const r = await this.o.channel.apply({ type: 'add_htlc', ...req });
      if (r.failure !== undefined) return { refused: `${r.failure.code}: ${r.failure.message}` };
      const add = r.send.find((m) => m.type === 128);
      if (add === undefined || add.type !== 128) return { refused: 'no update_add_htlc produced' };
      await onAssigned(add.id);
      this.updateAdded();
      release();
      return { htlcId: add.id };
    } finally {
      release();
    }
  }

  /**
   * Answers an HTLC the peer offered. 'done' when the channel has durably taken the answer, or the HTLC is no longer
   * open (the same answer went through before); 'retry' when the channel refused for now.
   */
  async resolve(htlcId: bigint, res: Resolution): Promise<'done' | 'retry'> {
    const ch = this.o.channel;
    if (res.kind === 'local') return 'done'; // only our own attempts end this way
    if (ch.failed() && res.kind !== 'settle') return 'done'; // nothing to sign any more; the HTLC times out on chain
    const input: ChannelInput =
      res.kind === 'settle'
        ? { type: 'fulfill_htlc', id: htlcId, paymentPreimage: res.preimage, ...withAttribution(res.attributionData) }
        : res.kind === 'fail'
          ? { type: 'fail_htlc', id: htlcId, reason: res.reason, ...withAttribution(res.attributionData) }
          : { type: 'fail_malformed_htlc', id: htlcId, sha256OfOnion: res.sha256OfOnion, failureCode: res.failureCode };
    const r = await ch.apply(input);
    if (r.failure !== undefined) {
      if (!ch.incomingOpen(htlcId)) return 'done';
      this.o.log?.(
        'warn',
        { channelId: this.channelId, htlcId: String(htlcId), code: r.failure.code, reason: r.failure.message },
        'resolution refused; kept',
      );
      return 'retry';
    }
    if (ch.failed()) {
      if (res.kind === 'settle') await ch.preimageLearnt(htlcId);
      return 'done';
    }
    this.updateAdded();
    return 'done';
  }

  // ---------------------------------------------------------------- signing

  private updateAdded(): void {
    this.pendingUpdates++;
    if (this.pendingUpdates >= this.o.batch.maxPending || this.o.batch.delayMs <= 0) {
      void this.signNow();
      return;
    }
    if (this.timer === undefined)
      this.timer = this.o.timers.setTimeout(() => {
        this.timer = undefined;
        void this.signNow();
      }, this.o.batch.delayMs);
  }

  /** The peer's revoke_and_ack / commitment_signed / channel_reestablish was applied: sign what is pending. */
  afterPeerUpdate(): Promise<void> {
    return this.signNow();
  }

  /** Signs now if anything is pending and nothing holds signing back. */
  signNow(): Promise<void> {
    if (this.timer !== undefined) {
      this.o.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.keystonesPending > 0) {
      this.signWanted = true;
      return Promise.resolve();
    }
    this.signWanted = false;
    const run = (this.signing ?? Promise.resolve()).then(async () => {
      if (this.o.channel.failed()) return;
      const r = await this.o.channel.apply({ type: 'sign' });
      if (r.failure === undefined) {
        this.commitSigsSent++;
        for (const m of r.send) if (m.type === commitmentSignedCodec.type) this.htlcSigsSent += m.htlcSignatures.length;
        this.pendingUpdates = 0;
        return;
      }
      const c = r.failure.code;
      if (c === 'ERR_NOTHING_TO_SIGN') this.pendingUpdates = 0;
      else if (c !== 'ERR_AWAITING_REVOCATION' && c !== 'ERR_NOT_READY')
        this.o.log?.('warn', { channelId: this.channelId, code: c, reason: r.failure.message }, 'sign refused');
    });
    this.signing = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  // ---------------------------------------------------------------- channel_update

  /** Our signed channel_update for this channel (with lnd's 2-byte type prefix), for failures that carry one. */
  channelUpdate(disabled = false): Uint8Array {
    const scid = this.o.channel.shortChannelId() ?? 0n;
    const p = this.policy;
    const max = p.htlcMaximumMsat ?? this.o.channel.capacityMsat();
    const key = `${scid}/${p.baseFeeMsat}/${p.feeRatePpm}/${p.cltvExpiryDelta}/${p.htlcMinimumMsat}/${max}/${disabled}`;
    if (this.cachedUpdate?.key === key) return this.cachedUpdate.bytes;
    const direction = compareBytes(this.o.signer.nodeId, this.o.channel.peerNodeId()) < 0 ? 0 : CHANNEL_FLAG_DIRECTION;
    const u: ChannelUpdate = {
      signature: new Uint8Array(64),
      chainHash: this.o.chainHash,
      shortChannelId: scid,
      // BOLT 7: a node takes only a newer update, so each new one is at least a second after the last
      timestamp: Math.max(Math.floor((this.o.now?.() ?? Date.now()) / 1000), (this.cachedUpdate?.timestamp ?? 0) + 1),
      messageFlags: MESSAGE_FLAG_MUST_BE_ONE,
      channelFlags: direction | (disabled ? 2 : 0),
      cltvExpiryDelta: p.cltvExpiryDelta,
      htlcMinimumMsat: p.htlcMinimumMsat,
      feeBaseMsat: Number(p.baseFeeMsat),
      feeProportionalMillionths: Number(p.feeRatePpm),
      htlcMaximumMsat: max,
    };
    u.signature = this.o.signer.signDigest(channelUpdateDigest(u));
    const bytes = new Writer(140).u16(CHANNEL_UPDATE_MESSAGE_TYPE).bytes(encodeChannelUpdate(u)).finish();
    this.cachedUpdate = { key, bytes, timestamp: u.timestamp };
    return bytes;
  }
}
