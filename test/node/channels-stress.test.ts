/**
 * The channel manager under load, at the node level: two ampnode Nodes in one
 * process over real loopback TCP, one embedded regtest chain, stores on disk
 * in temporary data directories. Two channels, one each way (Alice → Bob
 * static_remotekey, Bob → Alice anchors); 500 HTLCs added, fulfilled (with the
 * right preimage) and failed in seeded random interleavings from both sides at
 * once, so that commitment_signed crosses; the connection cut in the middle
 * of every step of the dance (before and after each of update_add_htlc,
 * update_fulfill_htlc, update_fail_htlc, commitment_signed, revoke_and_ack,
 * from each side, and of update_fee from each opener, which proposes random
 * feerates along the way), through the node API `disconnect` of either side, with
 * reconnection by an explicit connect or by the persistent-peer redial; one
 * restart of Alice from her data directory in the middle of a dance (she
 * "dies" while handling the HTLC events of a revoke_and_ack: the store takes
 * no more writes, the unhandled events are lost with the process, and the
 * restarted manager must hand them out again).
 *
 * Every fulfill and fail is asked for once: a call that returned means the
 * channel took (and persisted) it, so the HTLC must end fulfilled or failed
 * as asked without a second call, whatever cut or restart reverses the update
 * on the wire (the channel sends it again after channel_reestablish). Only a
 * call that Alice's death cut off before the channel persisted it (the caller
 * died with it) is asked again, and is counted.
 *
 * After every batch, once everything is signed, both nodes are checked:
 * funds conserved in every commitment (local + remote + in flight =
 * capacity), both views mirrored, every HTLC either pending on both
 * commitments or resolved exactly once (never lost, never invented), the
 * balances equal to a model of the payments, and each node's own commitment
 * transaction carrying exactly the balances less the opener's fee and anchors.
 * Finally each side closes one channel cooperatively and each wallet receives
 * its off-chain balance less the closing fee when it opened the channel.
 *
 * The seed is printed; AMPNODE_STRESS_SEED=<n> replays one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openDiskStore } from '../../db/store.js';
import { isHtlcTrimmed, commitmentFeeSat, ANCHOR_OUTPUT_SAT } from '../../htlc/bolt3/fees.js';
import { logEnd, signedLocalCommitment } from '../../htlc/channel/commitments.js';
import { deriveChannelSecrets } from '../../htlc/channel/keys.js';
import type { ChannelState } from '../../htlc/channel/types.js';
import { bcoin } from '../../node/chain/bcoin.js';
import type { BcoinChainBackend } from '../../node/chain/index.js';
import { withChannelFeatures } from '../../node/channels/features.js';
import { ChannelManager, type ChannelInfo } from '../../node/channels/manager.js';
import { FEATURE_TABLE } from '../../node/features.js';
import { createLogger } from '../../node/log.js';
import { PeerManager } from '../../node/peer-manager.js';
import type { Peer } from '../../node/peer.js';
import { Wallet } from '../../node/wallet/wallet.js';
import { bytesToHex } from '../../wire/bytes.js';
import { sha256 } from '../../wire/crypto.js';
import { ELSEWHERE } from './chain-fixture.js';
import { TestNode, newTestChain, until, fundNodes } from './channels-fixture.js';

const TOTAL_HTLCS = 500;
const PER_ROUND = 20;
const SEED =
  process.env['AMPNODE_STRESS_SEED'] !== undefined
    ? Number(process.env['AMPNODE_STRESS_SEED']) >>> 0
    : (Date.now() ^ (process.pid << 8)) >>> 0;

/** mulberry32: small, seedable, good enough to pick interleavings. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Who = 'alice' | 'bob';
type Chan = 'ab' | 'ba';

/** A node whose manager takes listeners before it starts (replayed events), on a fixed port after its first start, redialling fast. */
class StressNode extends TestNode {
  listenPort = 0;
  /** Inside start(): events now are replays of a previous run. */
  starting = false;
  /** Called with each new manager (and node) before anything starts. */
  onStart: ((n: StressNode) => void) | undefined;

  override async start(): Promise<void> {
    this.store = await openDiskStore(join(this.dir!, 'db'));
    this.wallet = await Wallet.open({ chain: this.chain, store: this.store, seed: this.walletSeed });
    const logger = createLogger({ level: (process.env['AMPNODE_TEST_LOG'] as 'debug' | undefined) ?? 'silent' }).child({
      node: this.spec.name,
    });
    this.node = new PeerManager({
      nodeKey: this.nodeKey,
      listen: `127.0.0.1:${this.listenPort}`,
      features: withChannelFeatures(FEATURE_TABLE),
      logger,
      pingIntervalMs: 0,
      reconnectInitialDelayMs: 20,
      reconnectMaxDelayMs: 200,
    });
    this.manager = new ChannelManager({
      node: this.node,
      store: this.store,
      chain: this.chain,
      wallet: this.wallet,
      seed: this.channelSeed,
      logger,
      policy: { timeoutMs: 30_000, minimumDepth: 1 },
      htlcMode: 'manual',
    });
    this.onStart?.(this);
    this.starting = true;
    await this.manager.start();
    await this.node.start();
    this.starting = false;
    this.listenPort = this.port;
  }

  /**
   * As if the process died: the store takes no more writes from this moment,
   * listeners hear nothing more (events not yet emitted are lost), the
   * connections drop; then everything is torn down.
   */
  async crash(): Promise<void> {
    const closing = this.store.close();
    this.manager.removeAllListeners();
    await this.node.stop();
    await this.manager.stop().catch(() => undefined);
    await this.wallet.close().catch(() => undefined);
    await closing;
  }
}

interface Htlc {
  n: number;
  chan: Chan;
  from: Who;
  to: Who;
  amountMsat: bigint;
  preimage: Uint8Array;
  hash: string;
  /**
   * adding: addHtlc under way; sent: it returned the id; refused: it threw; unsent: htlc_unsent (dropped
   * before it was signed); forgotten: offered by a node that died before persisting it (its caller died too).
   */
  status: 'adding' | 'sent' | 'refused' | 'unsent' | 'forgotten';
  id?: bigint;
  incoming: boolean;
  /** A resolution asked of the receiver and not known to be lost. */
  resolving?: 'fulfill' | 'fail';
  /**
   * The fulfillHtlc / failHtlc call: under way, or taken (it returned: the channel persisted the resolution and
   * must end the HTLC by itself). A call the receiver's death cut off stays 'asked' with an older `resolvingLife`.
   */
  resolution?: 'asked' | 'taken';
  /** Alice's life (see `aliceLife`) the resolution was asked in. */
  resolvingLife?: number;
  outcome?: 'fulfilled' | 'failed';
  /** Restart generation the add was issued in. */
  gen: number;
  /** Restart generation when the outcome was reported (a restart may report it again). */
  outcomeGen?: number;
  plan: 'fulfill' | 'fail';
}

describe(`channel manager stress: 500 HTLCs over TCP with cuts and a restart (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  let chain: BcoinChainBackend;
  let alice: StressNode;
  let bob: StressNode;
  const ids: Record<Chan, string> = { ab: '', ba: '' };
  const nodes = (): Record<Who, StressNode> => ({ alice, bob });
  const htlcs: Htlc[] = [];
  const byHash = new Map<string, Htlc>();
  /** Balances right after the opening (push included), per channel, per side. */
  const initial: Record<Chan, Record<Who, bigint>> = { ab: { alice: 0n, bob: 0n }, ba: { alice: 0n, bob: 0n } };
  let generation = 0;
  /** Bumped the moment Alice dies (before her restart): a call made in an earlier life died with her process. */
  let aliceLife = 0;
  const stats = {
    feeUpdates: 0,
    feeRefused: 0,
    crashForgotten: 0,
    replayedUnsent: 0,
    replayedEvents: 0,
    crossings: 0,
    cuts: 0,
    diedUnpersisted: 0,
    refused: 0,
    unsent: 0,
    replayedOutcomes: 0,
    rounds: 0,
    restarts: 0,
    resolutionsTaken: 0,
    inFlightAtCut: 0,
  };
  /** update_fulfill_htlc / update_fail_htlc attempts per HTLC (sender:channel:id); more than one: the channel sent it again. */
  const resolutionSends = new Map<string, number>();
  const errors: string[] = [];
  const fail = (m: string): void => void errors.push(m);

  // ---- cut points: every step of the dance, both senders, before and after the message leaves
  const DANCE = [128, 130, 131, 132, 133, 134] as const;
  const cutPoints: { sender: Who; type: number; mode: 'before' | 'after' }[] = [];
  for (const type of DANCE)
    for (const sender of ['alice', 'bob'] as const) for (const mode of ['before', 'after'] as const) cutPoints.push({ sender, type, mode });
  const cutHit = new Set<number>();
  let trap: { point: number; skip: number; restart: boolean; by: Who } | undefined;
  let cutInfo: { by: Who; restart: boolean } | undefined;
  let restarting: Promise<void> | undefined;

  const mine = async (n: number): Promise<void> => {
    await chain.generateToAddress(n, ELSEWHERE);
    await chain.synced();
  };

  function chanOf(cidHex: string): Chan | undefined {
    return cidHex === ids.ab ? 'ab' : cidHex === ids.ba ? 'ba' : undefined;
  }

  function live(chan: Chan, from: Who, id: bigint): Htlc | undefined {
    return htlcs.find((h) => h.chan === chan && h.from === from && h.status === 'sent' && h.id === id && h.outcome === undefined);
  }

  /** The model follows each manager's events; attached before every start (events a restart replays included). */
  function listen(me: Who, m: ChannelManager): void {
    m.on('htlc_incoming', (cid, x) => {
      const h = byHash.get(bytesToHex(x.paymentHash));
      if (h === undefined || chanOf(cid) !== h.chan || h.to !== me) return fail(`${me}: htlc_incoming for an unknown HTLC ${cid} ${x.id}`);
      if (h.status === 'refused' || h.status === 'unsent') return fail(`${me}: HTLC #${h.n} arrived although its add was ${h.status}`);
      if (h.id !== undefined && h.id !== x.id) return fail(`${me}: HTLC #${h.n} arrived as id ${x.id}, offered as ${h.id}`);
      if (x.amountMsat !== h.amountMsat) return fail(`${me}: HTLC #${h.n} arrived with ${x.amountMsat} msat, offered ${h.amountMsat}`);
      if (h.outcome !== undefined && h.outcomeGen === generation) return fail(`${me}: HTLC #${h.n} arrived after it was resolved`);
      if (nodes()[me].starting) stats.replayedEvents++;
      h.incoming = true;
      maybeCrashOnEvent(me);
    });
    const resolved = (kind: 'fulfilled' | 'failed', cid: string, id: bigint, preimage?: Uint8Array): void => {
      const chan = chanOf(cid);
      if (chan === undefined) return fail(`${me}: ${kind} on an unknown channel`);
      const h = live(chan, me, id);
      if (h === undefined) {
        // at-least-once delivery: only a restart may report an outcome again, and only the same one
        const prev = htlcs.find(
          (x) => x.chan === chan && x.from === me && x.id === id && x.outcome !== undefined && x.outcomeGen !== generation,
        );
        if (prev !== undefined && prev.outcome === kind) {
          stats.replayedOutcomes++;
          return;
        }
        return fail(`${me}: ${kind} for ${chan} id ${id}, which is not in flight`);
      }
      if (kind === 'fulfilled' && bytesToHex(sha256(preimage!)) !== h.hash) return fail(`HTLC #${h.n} fulfilled with a wrong preimage`);
      if (!h.incoming) return fail(`HTLC #${h.n} ${kind} before the receiver reported it`);
      if (h.resolving === undefined && h.outcome === undefined) return fail(`HTLC #${h.n} ${kind} though nobody resolved it`);
      if (h.resolving !== undefined && h.resolving !== (kind === 'fulfilled' ? 'fulfill' : 'fail'))
        return fail(`HTLC #${h.n} ${kind}, asked to ${h.resolving}`);
      if (nodes()[me].starting) stats.replayedEvents++;
      h.outcome = kind;
      h.outcomeGen = generation;
      maybeCrashOnEvent(me);
    };
    m.on('htlc_fulfilled', (cid, id, p) => resolved('fulfilled', cid, id, p));
    m.on('htlc_failed', (cid, id) => resolved('failed', cid, id));
    m.on('htlc_unsent', (cid, x) => {
      const h = byHash.get(bytesToHex(x.paymentHash));
      if (h === undefined || h.from !== me || chanOf(cid) !== h.chan) return fail(`${me}: htlc_unsent for an unknown HTLC`);
      if (h.incoming || h.outcome !== undefined) return fail(`HTLC #${h.n} reported unsent after the peer had it`);
      if (h.status === 'unsent') return; // the restart reports what the disconnect before it reported
      if (nodes()[me].starting) stats.replayedUnsent++;
      h.status = 'unsent';
      stats.unsent++;
    });
  }

  /** Alice dies now (store closed, listeners gone, connections dropped) and starts again from her data directory. */
  function crashAlice(): void {
    cutInfo = { by: 'alice', restart: true };
    aliceLife++;
    countInFlight();
    restarting = (async () => {
      stats.restarts++;
      await alice.crash();
      generation++;
      await alice.start();
    })();
  }

  /** Resolutions the channels took whose outcome is not known yet when a cut or the restart happens. */
  function countInFlight(): void {
    stats.inFlightAtCut += htlcs.filter((h) => h.resolution === 'taken' && h.outcome === undefined).length;
  }

  /** Armed: Alice dies while handling the first HTLC event of a revoke_and_ack (the others of it are not handled yet). */
  let crashOnEvent = false;
  function maybeCrashOnEvent(me: Who): void {
    if (me !== 'alice' || !crashOnEvent) return;
    crashOnEvent = false;
    crashAlice();
  }

  /** Wraps the peer's sender to count crossings and to cut the connection at the armed point. */
  function instrument(me: StressNode, who: Who): void {
    me.node.on('peer_connected', (info) => {
      const p = me.node.peer(info.nodeId) as Peer | undefined;
      if (p === undefined) return;
      const send = p.sendRaw.bind(p);
      p.sendRaw = (bytes: Uint8Array): boolean => {
        const type = (bytes[0]! << 8) | bytes[1]!;
        if (type === 130 || type === 131) {
          const key = `${who}:${bytesToHex(bytes.subarray(2, 34))}:${bytesToHex(bytes.subarray(34, 42))}`;
          resolutionSends.set(key, (resolutionSends.get(key) ?? 0) + 1);
        }
        if (type === 132) {
          const cid = bytesToHex(bytes.subarray(2, 34));
          const other = who === 'alice' ? bob : alice;
          const s = other.manager.channel(cid) !== undefined ? other.manager.channelState(cid) : undefined;
          if (s?.remoteNextCommit !== undefined) stats.crossings++; // the other side's commitment_signed is out too
        }
        const t = trap;
        const cp = t === undefined ? undefined : cutPoints[t.point]!;
        if (t === undefined || cp === undefined || cp.sender !== who || cp.type !== type || t.skip-- > 0) return send(bytes);
        trap = undefined;
        cutHit.add(t.point);
        stats.cuts++;
        const ok = cp.mode === 'after' ? send(bytes) : false;
        cutInfo = { by: t.by, restart: t.restart };
        if (t.restart) crashAlice();
        else {
          countInFlight();
          const { alice: a, bob: b } = nodes();
          if (t.by === 'alice') a.node.disconnect(b.id);
          else b.node.disconnect(a.id);
        }
        return ok;
      };
    });
  }

  function state(who: Who, chan: Chan): ChannelState {
    return nodes()[who].manager.channelState(ids[chan]);
  }

  function settledChannel(chan: Chan): boolean {
    for (const who of ['alice', 'bob'] as const) {
      const s = state(who, chan);
      if (!s.reestablished || s.remoteNextCommit !== undefined) return false;
      if (logEnd(s.ourLog) !== s.remoteCommit.ourLogIndex || s.localCommit.ourLogIndex !== s.remoteCommit.ourLogIndex) return false;
      if (logEnd(s.theirLog) !== s.localCommit.theirLogIndex || s.remoteCommit.theirLogIndex !== s.localCommit.theirLogIndex) return false;
    }
    const a = state('alice', chan);
    const b = state('bob', chan);
    return a.localCommit.height === b.remoteCommit.height && b.localCommit.height === a.remoteCommit.height;
  }

  function quiet(): boolean {
    return (
      alice.node.peer(bob.id) !== undefined &&
      bob.node.peer(alice.id) !== undefined &&
      [alice, bob].every((n) => n.manager.listChannels().every((c) => c.active)) &&
      settledChannel('ab') &&
      settledChannel('ba')
    );
  }

  async function quiesce(what: string): Promise<void> {
    await until(quiet, `${what}: both channels active and every update signed and revoked (seed ${SEED})`);
    await new Promise((r) => setImmediate(r)); // events are emitted in microtasks after each step
  }

  /** Reconnects after a cut: explicit connect when Alice forgot Bob as a persistent peer, her redial otherwise. */
  async function reconnect(): Promise<void> {
    const c = cutInfo;
    cutInfo = undefined;
    if (c === undefined) return;
    if (c.restart) {
      await restarting;
      restarting = undefined;
      await alice.node.connect(bob.id, '127.0.0.1', bob.listenPort, { persistent: true });
      return;
    }
    if (c.by === 'alice') {
      await until(() => alice.node.peer(bob.id) === undefined && bob.node.peer(alice.id) === undefined, 'both sides disconnected');
      await alice.node.connect(bob.id, '127.0.0.1', bob.listenPort, { persistent: true });
    }
    // Bob cut: Alice still holds him as a persistent peer and redials on her own
  }

  /** Every check of a quiescent pair of channels. */
  function checkInvariants(where: string): void {
    assert.deepEqual(errors, [], `${where}: model violations (seed ${SEED})`);
    for (const chan of ['ab', 'ba'] as const) {
      const a = state('alice', chan);
      const b = state('bob', chan);
      const capMsat = a.fundingSat * 1000n;
      // funds conserved in every commitment both sides hold: local + remote + in flight = capacity
      for (const [who, s] of [
        ['alice', a],
        ['bob', b],
      ] as const)
        for (const c of [s.localCommit, s.remoteCommit]) {
          const inFlight = c.htlcs.reduce((x, h) => x + h.amountMsat, 0n);
          assert.equal(
            c.ourBalanceMsat + c.theirBalanceMsat + inFlight,
            capMsat,
            `${where} ${chan} ${who}: funds not conserved at height ${c.height}`,
          );
        }
      // both nodes agree
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        assert.equal(x.localCommit.height, y.remoteCommit.height);
        assert.equal(x.localCommit.feeratePerKw, y.remoteCommit.feeratePerKw, `${where} ${chan}: feerates differ between the nodes`);
        assert.equal(x.localCommit.ourBalanceMsat, y.remoteCommit.theirBalanceMsat, `${where} ${chan}: balances differ between the nodes`);
        assert.equal(x.localCommit.theirBalanceMsat, y.remoteCommit.ourBalanceMsat);
        const key = (h: { offered: boolean; id: bigint; amountMsat: bigint }, flip: boolean): string =>
          `${h.offered !== flip}:${h.id}:${h.amountMsat}`;
        assert.deepEqual(
          x.localCommit.htlcs.map((h) => key(h, false)).sort(),
          y.remoteCommit.htlcs.map((h) => key(h, true)).sort(),
          `${where} ${chan}: HTLC sets differ`,
        );
      }
      assert.equal(a.localCommit.ourBalanceMsat, b.localCommit.theirBalanceMsat);

      // the model: every HTLC pending on both commitments or resolved; none invented
      const opener: Who = chan === 'ab' ? 'alice' : 'bob';
      const acceptor: Who = chan === 'ab' ? 'bob' : 'alice';
      const expected: Record<Who, bigint> = { ...initial[chan] };
      const pendingIds = new Set<string>();
      for (const h of htlcs) {
        if (h.chan !== chan || h.status !== 'sent') continue;
        const senderState = h.from === 'alice' ? a : b;
        const receiverState = h.from === 'alice' ? b : a;
        const inSender = senderState.localCommit.htlcs.some((x) => x.offered && x.id === h.id);
        const inReceiver = receiverState.localCommit.htlcs.some((x) => !x.offered && x.id === h.id);
        if (h.outcome !== undefined) {
          assert.ok(!inSender && !inReceiver, `${where}: HTLC #${h.n} ${h.outcome} but still committed`);
          if (h.outcome === 'fulfilled') {
            expected[h.from] -= h.amountMsat;
            expected[h.to] += h.amountMsat;
          }
          continue;
        }
        if (!inSender && !inReceiver && !h.incoming && h.from === 'alice' && h.gen < generation) {
          // Alice died after addHtlc returned and before anything persisted the add: it never reached Bob, and a
          // caller in the same process would have died with it (a switch reconciles its circuits at start)
          h.status = 'forgotten';
          stats.crashForgotten++;
          continue;
        }
        assert.ok(
          inSender && inReceiver,
          `${where}: HTLC #${h.n} (${chan} ${h.from} id ${h.id}) lost: neither resolved nor committed on both sides (sender ${inSender}, receiver ${inReceiver})`,
        );
        assert.ok(h.incoming, `${where}: HTLC #${h.n} committed at ${h.to} but never reported as incoming`);
        expected[h.from] -= h.amountMsat;
        pendingIds.add(`${h.from}:${h.id}`);
        if (h.resolving !== undefined) {
          // a resolution the channel took is seen through by the channel itself, across cuts and the restart: the
          // only one that may still be missing is one whose call Alice's death cut off before the channel persisted
          // it (its caller died with the process); that one is asked again, and counted
          const died = h.resolution === 'asked' && h.to === 'alice' && h.resolvingLife !== aliceLife;
          assert.ok(
            died,
            `${where}: HTLC #${h.n} (${chan} ${h.from} id ${h.id}): its ${h.resolving} was ${h.resolution === 'taken' ? 'taken by the channel' : 'asked'} but the HTLC is still committed on both sides`,
          );
          h.resolving = undefined;
          h.resolution = undefined;
          stats.diedUnpersisted++;
        }
      }
      const committed = a.localCommit.htlcs.map((x) => `${x.offered ? 'alice' : 'bob'}:${x.id}`);
      assert.deepEqual(committed.sort(), [...pendingIds].sort(), `${where} ${chan}: committed HTLCs the model does not know`);
      assert.equal(a.localCommit.ourBalanceMsat, expected.alice, `${where} ${chan}: Alice's balance is not what the payments make it`);
      assert.equal(b.localCommit.ourBalanceMsat, expected.bob, `${where} ${chan}: Bob's balance is not what the payments make it`);

      // each node's own commitment transaction: balances less the opener's fee and anchors, untrimmed HTLCs, anchors
      for (const who of ['alice', 'bob'] as const) {
        const s = who === 'alice' ? a : b;
        const n = nodes()[who];
        const raw = signedLocalCommitment(s, deriveChannelSecrets(n.channelSeed, s.keyIndex));
        const tx = bcoin.TX.fromRaw(Buffer.from(raw));
        const got = tx.outputs.map((o) => BigInt(o.value)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        const c = s.localCommit;
        const dust = s.local.config.dustLimitSat;
        const untrimmed = c.htlcs.filter(
          (h) => !isHtlcTrimmed(s.channelType, h.offered ? 'offered' : 'received', h.amountMsat, c.feeratePerKw, dust),
        );
        const anchors = s.channelType === 'anchors_zero_fee_htlc';
        const costMsat =
          (commitmentFeeSat(s.channelType, c.feeratePerKw, untrimmed.length) + (anchors ? 2n * ANCHOR_OUTPUT_SAT : 0n)) * 1000n;
        const sub = (x: bigint): bigint => (x > costMsat ? x - costMsat : 0n);
        const toLocal = (who === opener ? sub(c.ourBalanceMsat) : c.ourBalanceMsat) / 1000n;
        const toRemote = (who === acceptor && opener !== who ? sub(c.theirBalanceMsat) : c.theirBalanceMsat) / 1000n;
        const want: bigint[] = untrimmed.map((h) => h.amountMsat / 1000n);
        if (toLocal >= dust) want.push(toLocal);
        if (toRemote >= dust) want.push(toRemote);
        if (anchors && (toLocal >= dust || untrimmed.length > 0)) want.push(ANCHOR_OUTPUT_SAT);
        if (anchors && (toRemote >= dust || untrimmed.length > 0)) want.push(ANCHOR_OUTPUT_SAT);
        want.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        assert.deepEqual(got, want, `${where} ${chan} ${who}: commitment outputs`);
        const feeSat = s.fundingSat - got.reduce((x, y) => x + y, 0n);
        assert.ok(
          feeSat >= costMsat / 1000n - (anchors ? 2n * ANCHOR_OUTPUT_SAT : 0n),
          `${where}: commitment fee ${feeSat} below the BOLT 3 fee`,
        );
      }
    }
  }

  function newHtlc(chan: Chan, from: Who): Htlc {
    const n = htlcs.length;
    const preimage = sha256(new TextEncoder().encode(`${SEED}/${n}/${rnd()}`));
    // a third below the dust limits (trimmed), the rest up to 3 000 sat
    const amountMsat = rnd() < 0.3 ? BigInt(1_000 + Math.floor(rnd() * 300_000)) : BigInt(400_000 + Math.floor(rnd() * 2_600_000));
    const h: Htlc = {
      n,
      chan,
      from,
      to: from === 'alice' ? 'bob' : 'alice',
      amountMsat,
      preimage,
      hash: bytesToHex(sha256(preimage)),
      status: 'adding',
      gen: generation,
      incoming: false,
      plan: rnd() < 0.6 ? 'fulfill' : 'fail',
    };
    htlcs.push(h);
    byHash.set(h.hash, h);
    return h;
  }

  /** Starts one operation now; the promise settles when the manager call does. */
  function addOp(h: Htlc): Promise<void> {
    const from = nodes()[h.from];
    return from.manager
      .addHtlc(ids[h.chan], {
        amountMsat: h.amountMsat,
        paymentHash: Buffer.from(h.hash, 'hex'),
        cltvExpiry: chain.tip().height + 100 + h.n,
      })
      .then(
        (id) => {
          if (h.status === 'unsent') return; // dropped by a cut before this call even returned
          h.status = 'sent';
          h.id = id;
        },
        () => {
          if (h.status === 'adding') {
            h.status = 'refused';
            stats.refused++;
          }
        },
      );
  }

  /** The opener proposes a random commitment feerate (update_fee); refused when the channel is not active at that moment. */
  function feeOp(chan: Chan): Promise<void> {
    const opener = nodes()[chan === 'ab' ? 'alice' : 'bob'];
    const feeratePerKw = 253 + Math.floor(rnd() * 4_750);
    return opener.manager.updateChannelFee(ids[chan], feeratePerKw).then(
      () => void stats.feeUpdates++,
      () => void stats.feeRefused++,
    );
  }

  /** Asks the receiver to fulfill or fail, once: it must be taken (queued if the peer is away), never refused. */
  function resolveOp(h: Htlc): Promise<void> {
    const to = nodes()[h.to];
    const life = aliceLife;
    const died = (): boolean => h.to === 'alice' && aliceLife !== life;
    h.resolving = h.plan;
    h.resolution = 'asked';
    h.resolvingLife = life;
    const p =
      h.plan === 'fulfill'
        ? to.manager.fulfillHtlc(ids[h.chan], h.id!, h.preimage)
        : to.manager.failHtlc(ids[h.chan], h.id!, new TextEncoder().encode(`no #${h.n}`));
    return p.then(
      () => {
        if (died()) return; // returned into a dead process: nobody heard it
        h.resolution = 'taken';
        stats.resolutionsTaken++;
      },
      (e: unknown) => {
        if (died()) return; // the store closed under it: the check after quiescence finds out whether it was persisted
        fail(`HTLC #${h.n}: ${h.plan} of an irrevocably committed HTLC refused: ${(e as Error).message}`);
      },
    );
  }

  before(async () => {
    chain = await newTestChain();
    alice = new StressNode({ name: 'alice', disk: true }, chain);
    bob = new StressNode({ name: 'bob', disk: true }, chain);
    alice.onStart = (n) => {
      listen('alice', n.manager);
      instrument(n, 'alice');
    };
    bob.onStart = (n) => {
      listen('bob', n.manager);
      instrument(n, 'bob');
    };
    await alice.start();
    await bob.start();
    await fundNodes(chain, [alice, bob]);
    await alice.node.connect(bob.id, '127.0.0.1', bob.listenPort, { persistent: true });
  });

  after(async () => {
    await alice?.stop().catch(() => undefined);
    await bob?.stop().catch(() => undefined);
    await chain?.close();
    alice?.cleanup();
    bob?.cleanup();
  });

  const T = { timeout: 120_000 };
  let walletAfterOpen: Record<Who, bigint>;

  it('opens a channel each way (static_remotekey by Alice, anchors by Bob), both with a push', T, async (t) => {
    t.diagnostic(`seed ${SEED} (set AMPNODE_STRESS_SEED to replay)`);
    console.log(`channels-stress seed ${SEED}`);
    const [ab, ba] = await Promise.all([
      alice.manager.openChannel(bob.id, 1_000_000n, { channelType: 'static_remotekey', pushMsat: 300_000_000n }),
      bob.manager.openChannel(alice.id, 800_000n, { channelType: 'anchors_zero_fee_htlc', pushMsat: 300_000_000n }),
    ]);
    ids.ab = ab.channelId;
    ids.ba = ba.channelId;
    await mine(1);
    await until(
      () =>
        [alice, bob].every(
          (n) => n.manager.listChannels().length === 2 && n.manager.listChannels().every((c) => c.state === 'normal' && c.active),
        ),
      'both channels ready',
    );
    for (const chan of ['ab', 'ba'] as const)
      for (const who of ['alice', 'bob'] as const) initial[chan][who] = nodes()[who].manager.channel(ids[chan])!.localBalanceMsat;
    assert.equal(initial.ab.bob, 300_000_000n);
    assert.equal(initial.ba.alice, 300_000_000n);
    walletAfterOpen = { alice: alice.walletTotalSat(), bob: bob.walletTotalSat() };
    checkInvariants('after opening');
  });

  it(
    `${TOTAL_HTLCS} HTLCs from both sides in random interleavings, cut mid-dance at every step, one restart; checked after every batch`,
    T,
    async (t) => {
      const started = Date.now();
      const sent = (): number => htlcs.filter((h) => h.status === 'sent').length;
      let nextCut = 0;
      let restartDone = false;
      let restartAt = '';
      const missing = (): number => cutPoints.length - cutHit.size;
      for (let round = 0; ; round++) {
        stats.rounds = round + 1;
        assert.ok(round < 200, `no convergence after 200 rounds (seed ${SEED})`);
        const pending = htlcs.filter((h) => h.status === 'sent' && h.outcome === undefined);
        // at least TOTAL_HTLCS, and more until every step of the dance was cut once
        const remaining = Math.max(TOTAL_HTLCS - sent(), missing() > 0 ? PER_ROUND : 0);
        if (remaining <= 0 && pending.length === 0) break;

        // arm a cut every round: the one restart once a third of the HTLCs are through, else the next cut point
        if (!restartDone && sent() >= TOTAL_HTLCS / 3) {
          // Alice dies while handling the HTLC events a revoke_and_ack made irrevocable: the events after the first
          // are never handled by that run, and the restart must hand them out again
          restartAt = 'alice died handling an HTLC event';
          crashOnEvent = true;
          trap = undefined;
        } else {
          trap = { point: nextCut % cutPoints.length, skip: Math.floor(rnd() * 2), restart: false, by: rnd() < 0.5 ? 'alice' : 'bob' };
        }

        // this round's operations, issued from both nodes in the same tick
        const ops: (() => Promise<void>)[] = [];
        const adds = Math.min(remaining, PER_ROUND);
        for (let i = 0; i < adds; i++) {
          const h = newHtlc(rnd() < 0.5 ? 'ab' : 'ba', rnd() < 0.5 ? 'alice' : 'bob');
          ops.push(() => addOp(h));
        }
        const ready = pending.filter((h) => h.incoming && h.resolving === undefined);
        for (const h of ready) if (remaining <= 0 || rnd() < 0.75) ops.push(() => resolveOp(h));
        for (const chan of ['ab', 'ba'] as const) if (rnd() < 0.35) ops.push(() => feeOp(chan));
        for (let i = ops.length - 1; i > 0; i--) {
          const j = Math.floor(rnd() * (i + 1));
          [ops[i], ops[j]] = [ops[j]!, ops[i]!];
        }
        await Promise.all(ops.map((op) => op()));

        // the dance goes on after the calls return: wait until it is over or the trap fired
        await until(() => cutInfo !== undefined || quiet(), `round ${round}: dance over or cut (seed ${SEED})`);
        trap = undefined; // not fired: its message did not occur this round, the same point is armed next round
        crashOnEvent = false;
        if (cutInfo !== undefined) {
          if (cutInfo.restart) restartDone = true;
          else nextCut++;
          await reconnect();
        }
        await quiesce(`round ${round}`);
        for (const h of htlcs) assert.notEqual(h.status, 'adding', `HTLC #${h.n}: addHtlc never settled`);
        checkInvariants(`round ${round}`);
      }
      const outcomes = { fulfilled: 0, failed: 0 };
      for (const h of htlcs) if (h.status === 'sent') outcomes[h.outcome!]++;
      assert.equal(outcomes.fulfilled + outcomes.failed, sent());
      assert.ok(sent() >= TOTAL_HTLCS);
      assert.ok(outcomes.fulfilled > 0 && outcomes.failed > 0);
      assert.equal(stats.restarts, 1);
      assert.ok(stats.crossings > 0, 'commitment_signed never crossed');
      assert.ok(stats.feeUpdates > 0, 'no update_fee went through');
      const missed = cutPoints.filter((_c, i) => !cutHit.has(i)).map((c) => `${c.sender}:${c.type}:${c.mode}`);
      assert.deepEqual(missed, [], 'every step of the dance was cut');
      // every resolution asked for ended as asked, once, with no second call (asked again only after a death, counted above)
      let cutOffButPersisted = 0;
      for (const h of htlcs) {
        if (h.status !== 'sent') continue;
        assert.equal(h.outcome, h.plan === 'fulfill' ? 'fulfilled' : 'failed', `HTLC #${h.n} ended ${h.outcome}, asked to ${h.plan}`);
        if (h.resolution === 'taken') continue;
        // the call died with Alice, yet the channel had persisted it and finished it by itself
        assert.ok(h.to === 'alice' && h.resolvingLife! < aliceLife, `HTLC #${h.n}: its ${h.plan} call never returned`);
        cutOffButPersisted++;
      }
      assert.equal(stats.resolutionsTaken + cutOffButPersisted, sent(), 'one resolution call taken per HTLC');
      const resent = [...resolutionSends.values()].filter((n) => n > 1).length;
      const ms = Date.now() - started;
      const line = `seed ${SEED}: ${sent()} HTLCs (${outcomes.fulfilled} fulfilled, ${outcomes.failed} failed) in ${stats.rounds} rounds, ${stats.cuts} cuts, ${stats.restarts} restart (${restartAt}), ${stats.crossings} crossed commitment_signed, ${stats.feeUpdates} update_fee (${stats.feeRefused} refused), ${stats.refused} adds refused while disconnected, ${stats.unsent} unsent, ${stats.crashForgotten} forgotten by the crash, ${stats.resolutionsTaken} resolutions taken (${stats.inFlightAtCut} in flight at a cut or the restart, ${resent} sent again by the channel, none asked twice; ${cutOffButPersisted + stats.diedUnpersisted} cut off by the death: ${cutOffButPersisted} persisted and finished by the channel, ${stats.diedUnpersisted} asked again), ${stats.replayedOutcomes} outcomes reported twice, ${stats.replayedEvents} events and ${stats.replayedUnsent} htlc_unsent replayed by the restart, ${ms} ms`;
      t.diagnostic(line);
      console.log(line);
    },
  );

  it('cooperative close initiated by each side; each wallet receives its off-chain balance less the fee it paid as opener', T, async () => {
    const before = { alice: alice.walletTotalSat(), bob: bob.walletTotalSat() };
    const expected = { alice: 0n, bob: 0n };
    // the seed picks whether each opener or each acceptor starts the close
    const closers: [StressNode, Chan][] =
      SEED % 2 === 0
        ? [
            [alice, 'ab'],
            [bob, 'ba'],
          ]
        : [
            [bob, 'ab'],
            [alice, 'ba'],
          ];
    const spent: string[] = [];
    const onSpent = (_i: ChannelInfo, txid: string, coop: boolean): void => void (coop && spent.push(txid));
    alice.manager.on('funding_spent', onSpent);
    for (const [closer, chan] of closers) {
      const id = ids[chan];
      const offChain = { alice: alice.manager.channel(id)!.localBalanceMsat, bob: bob.manager.channel(id)!.localBalanceMsat };
      assert.equal(offChain.alice + offChain.bob, alice.manager.channel(id)!.capacitySat * 1000n, 'no HTLC left in flight');
      const info = await closer.manager.closeChannel(id);
      const other = closer === alice ? bob : alice;
      await until(() => other.manager.channel(id)!.state === 'closed', 'the other side agreed');
      const tx = bcoin.TX.fromRaw(Buffer.from(closer.manager.channelState(id).shutdown!.closingTx!));
      const outSat = tx.outputs.reduce((a, o) => a + BigInt(o.value), 0n);
      // BOLT 3: the opener's output pays fee_satoshis; each output is rounded down to whole satoshis, so the
      // sub-satoshi remainders of the two balances (at most 1 sat together) go to the miner as well
      const feeSat = offChain.alice / 1000n + offChain.bob / 1000n - outSat;
      const sh = closer.manager.channelState(id).shutdown!;
      assert.ok(
        feeSat > 0n && feeSat < 5_000n && (feeSat === sh.lastSentFeeSat || feeSat === sh.lastReceivedFeeSat),
        `closing fee ${feeSat} is the negotiated one`,
      );
      assert.ok(info.capacitySat - outSat - feeSat <= 1n);
      const opener: Who = chan === 'ab' ? 'alice' : 'bob';
      for (const who of ['alice', 'bob'] as const) {
        const sat = offChain[who] / 1000n - (who === opener ? feeSat : 0n);
        expected[who] += sat;
        const w = nodes()[who].wallet;
        assert.ok(
          tx.outputs.some((o) => BigInt(o.value) === sat && w.isMine(new Uint8Array(o.script.toRaw()))),
          `${who} output of ${sat} sat in the close of ${chan}; outputs ${tx.outputs.map((o) => `${o.value}${w.isMine(new Uint8Array(o.script.toRaw())) ? ' (mine)' : ''}`).join(', ')}; fee ${feeSat}`,
        );
      }
    }
    await mine(1);
    await until(() => spent.length === 2, 'both funding outputs spent by the cooperative closes');
    await until(() => [alice, bob].every((n) => n.wallet.syncedHeight() === chain.tip().height), 'wallets synced to the tip');
    alice.manager.off('funding_spent', onSpent);
    assert.equal(alice.walletTotalSat() - before.alice, expected.alice, `Alice's wallet (seed ${SEED})`);
    assert.equal(bob.walletTotalSat() - before.bob, expected.bob, `Bob's wallet (seed ${SEED})`);
    assert.equal(before.alice, walletAfterOpen.alice, 'nothing moved on chain during the HTLC traffic');
    for (const n of [alice, bob]) for (const c of n.manager.listChannels()) assert.equal(c.state, 'closed');
  });
});
