/**
 * Bad input from a peer: each gets the BOLT 2 answer (error or warning,
 * named by code) and leaves the channel state exactly as it was — the same
 * object, nothing written, nothing sent. Also the establishment checks
 * (lnd's parameter ranges, channel_type negotiation).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN_HASH, Pair, defaultConfig } from './channel-harness.js';
import { randomBytes, sha256 } from '../../wire/crypto.js';
import type { ChannelMessage, CommitmentSigned, OpenChannel, RevokeAndAck, UpdateAddHtlc } from '../../wire/channel-messages.js';
import { acceptChannel, channelTypeBytes, openChannel } from '../../htlc/channel/establish.js';
import { deriveChannelSecrets } from '../../htlc/channel/keys.js';
import { DEFAULT_POLICY, type ChannelErrorCode, type StepResult } from '../../htlc/channel/types.js';
import { step } from '../../htlc/channel/machine.js';
import { currentDustExposure } from '../../htlc/channel/commitments.js';

async function refused(p: Pair, msg: ChannelMessage, code: ChannelErrorCode, level: 'error' | 'warning' = 'error'): Promise<StepResult> {
  const before = p.state('b');
  const r = await p.apply('b', { type: 'message', msg });
  assert.equal(r.failure?.code, code, r.failure?.message);
  assert.equal(r.failure?.level, level);
  assert.equal(p.state('b'), before, 'state changed');
  assert.equal(r.writes.length + r.send.length, 0);
  assert.equal(p.ep.b.failures.at(-1)?.code, code, 'failure not handed to the peer layer');
  return r;
}

function addMsg(p: Pair, over: Partial<UpdateAddHtlc> = {}): UpdateAddHtlc {
  return {
    type: 128,
    channelId: p.state('b').channelId,
    id: p.state('b').theirLog.nextHtlcId,
    amountMsat: 1_000_000n,
    paymentHash: sha256(new Uint8Array(32)),
    cltvExpiry: 700_000,
    onionRoutingPacket: new Uint8Array(1366),
    ...over,
  };
}

describe('channel: bad input from the peer', () => {
  it('bad commitment signature, bad or missing HTLC signatures', async () => {
    const p = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a' });
    await p.add('a', 5_000_000n);
    await p.apply('a', { type: 'sign' });
    await p.deliver('a');
    const cs = p.queue.a.shift() as CommitmentSigned;
    assert.equal(cs.type, 132);
    assert.equal(cs.htlcSignatures.length, 1);
    const flip = (b: Uint8Array) => {
      const c = b.slice();
      c[40] = c[40]! ^ 1;
      return c;
    };
    await refused(p, { ...cs, signature: flip(cs.signature) }, 'ERR_BAD_SIGNATURE');
    await refused(p, { ...cs, htlcSignatures: [flip(cs.htlcSignatures[0]!)] }, 'ERR_BAD_HTLC_SIGNATURES');
    await refused(p, { ...cs, htlcSignatures: [] }, 'ERR_BAD_HTLC_SIGNATURES');
    // the genuine one still works afterwards
    const ok = await p.apply('b', { type: 'message', msg: cs });
    assert.equal(ok.failure, undefined);
    assert.equal(ok.send[0]?.type, 133);
  });

  it('revoke_and_ack with a wrong secret, or when nothing awaits revocation', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'b' });
    await p.add('b', 5_000_000n);
    await p.apply('b', { type: 'sign' });
    await p.deliverAll(); // a revokes; its revoke_and_ack is delivered, so b expects nothing now
    assert.equal(p.state('b').remoteNextCommit, undefined);
    const fake: RevokeAndAck = {
      type: 133,
      channelId: p.state('b').channelId,
      perCommitmentSecret: randomBytes(32),
      nextPerCommitmentPoint: p.state('b').remoteCurrentPoint,
    };
    await refused(p, fake, 'ERR_UNEXPECTED_MESSAGE');
    await p.add('b', 1_000_000n);
    await p.apply('b', { type: 'sign' });
    await p.deliver('b');
    await p.deliver('b');
    const real = p.queue.a.shift() as RevokeAndAck;
    await refused(p, { ...real, perCommitmentSecret: randomBytes(32) }, 'ERR_BAD_REVOCATION');
    assert.equal((await p.apply('b', { type: 'message', msg: real })).failure, undefined);
  });

  it('HTLCs over the limits: minimum, count, value in flight, affordability, id order, expiry', async () => {
    const p = await Pair.opened({
      channelType: 'static_remotekey',
      opener: 'a',
      pushMsat: 0n,
      config: { htlcMinimumMsat: 1000n, maxAcceptedHtlcs: 5, maxHtlcValueInFlightMsat: 50_000_000n },
    });
    await refused(p, addMsg(p, { amountMsat: 999n }), 'ERR_HTLC_AMOUNT');
    await refused(p, addMsg(p, { amountMsat: 0n }), 'ERR_HTLC_AMOUNT');
    await refused(p, addMsg(p, { id: 7n }), 'ERR_UNEXPECTED_MESSAGE');
    await refused(p, addMsg(p, { cltvExpiry: 500_000_000 }), 'ERR_HTLC_AMOUNT');
    await refused(p, addMsg(p, { amountMsat: 60_000_000n }), 'ERR_HTLC_LIMIT');
    for (let i = 0; i < 5; i++) assert.equal((await p.apply('b', { type: 'message', msg: addMsg(p) })).failure, undefined);
    await refused(p, addMsg(p), 'ERR_HTLC_LIMIT');
    // our own side refuses to go over the peer's limits before anything is sent
    const local = await p.add('a', 999n);
    assert.equal(local.failure?.code, 'ERR_HTLC_AMOUNT');
    assert.equal(local.failure?.level, 'local');
    assert.equal(p.queue.a.length, 0);
    // b has nothing: it cannot afford an HTLC to a
    const q = await Pair.opened({ channelType: 'static_remotekey', opener: 'b', pushMsat: 0n });
    const toA = await q.add('a', 1_000_000n);
    assert.equal(toA.failure?.code, 'ERR_CANNOT_AFFORD');
    const qb = q.state('b');
    const r = await q.apply('b', { type: 'message', msg: { ...addMsg(q), channelId: qb.channelId } });
    assert.equal(r.failure?.code, 'ERR_CANNOT_AFFORD');
    assert.equal(q.state('b'), qb);
  });

  it('does not offer an HTLC whose added fee would push the opener below its reserve', async () => {
    // b opens and keeps its reserve (10 000 sat) + the fee without HTLCs (1 810 sat at 2 500 sat/kw) + 200 sat
    const p = await Pair.opened({
      channelType: 'static_remotekey',
      opener: 'b',
      feeratePerKw: 2500,
      pushMsat: (1_000_000n - 12_010n) * 1000n,
    });
    const r = await p.add('a', 50_000_000n); // one more output: +430 sat of fee for b
    assert.equal(r.failure?.code, 'ERR_CANNOT_AFFORD');
    assert.equal(r.failure?.level, 'local');
    // a trimmed HTLC adds no output, so no fee
    assert.equal((await p.add('a', 300_000n)).failure, undefined);
  });

  it('as opener, never offers an HTLC the peer cannot take on its own commitment (an HTLC trimmed on ours but not on theirs)', async () => {
    // at 10 000 sat/kw a 7 000 sat HTLC offered by b is trimmed on a's commitment (below the HTLC-success fee, 7 030 sat)
    // but stays an output on b's (above b's dust limit plus the HTLC-timeout fee, 354 + 6 630 sat): b's commitment costs
    // the opener one output more than a's
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', feeratePerKw: 10_000, pushMsat: 500_000_000n });
    assert.equal((await p.add('b', 7_000_000n)).failure, undefined);
    await p.settle();
    const ctx = { secrets: p.ep.a.secrets, policy: DEFAULT_POLICY };
    const offers = (amountMsat: bigint) =>
      step(ctx, p.state('a'), {
        type: 'add_htlc',
        amountMsat,
        paymentHash: sha256(randomBytes(32)),
        cltvExpiry: 700_000,
        onionRoutingPacket: new Uint8Array(1366),
      }).failure === undefined;
    let lo = 1_000_000n;
    let hi = 600_000_000n;
    while (hi - lo > 1000n) {
      const mid = (lo + hi) / 2n;
      if (offers(mid)) lo = mid;
      else hi = mid;
    }
    // the largest add a makes is one b takes
    assert.equal((await p.add('a', lo)).failure, undefined);
    const answer = await p.deliver('a');
    assert.equal(answer.failure, undefined, answer.failure?.message);
    await p.settle();
    p.checkConserved();
  });

  it('fulfill with a wrong preimage, removal of an unknown HTLC', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'b' });
    await p.add('b', 5_000_000n);
    await p.settle();
    const channelId = p.state('b').channelId;
    await refused(p, { type: 130, channelId, id: 0n, paymentPreimage: randomBytes(32) }, 'ERR_UNKNOWN_HTLC');
    await refused(p, { type: 131, channelId, id: 9n, reason: new Uint8Array(0) }, 'ERR_UNKNOWN_HTLC');
    await refused(p, { type: 135, channelId, id: 0n, sha256OfOnion: new Uint8Array(32), failureCode: 0x1234 }, 'ERR_UNKNOWN_HTLC');
    // a fulfill for an HTLC that is not yet irrevocably committed
    await p.add('b', 1_000_000n);
    await p.apply('b', { type: 'sign' });
    await refused(p, { type: 130, channelId, id: 1n, paymentPreimage: randomBytes(32) }, 'ERR_UNKNOWN_HTLC');
  });

  it('update_fee from the non-opener, unknown channel id, open_channel on an open channel', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'b' });
    const channelId = p.state('b').channelId;
    await refused(p, { type: 134, channelId, feeratePerKw: 5000 }, 'ERR_FEE');
    await refused(p, { type: 134, channelId: randomBytes(32), feeratePerKw: 5000 }, 'ERR_UNKNOWN_CHANNEL');
    await refused(p, { ...addMsg(p), channelId: randomBytes(32) }, 'ERR_UNKNOWN_CHANNEL');
    const q = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    // a (the opener) may change the fee; b checks it and includes it
    assert.equal((await q.apply('a', { type: 'update_fee', feeratePerKw: 4000 })).failure, undefined);
    await q.settle();
    assert.equal(q.state('b').localCommit.feeratePerKw, 4000);
    assert.equal(q.state('a').remoteCommit.feeratePerKw, 4000);
    const local = await q.apply('b', { type: 'update_fee', feeratePerKw: 4000 });
    assert.equal(local.failure?.code, 'ERR_FEE');
  });

  it('channel_reestablish with a wrong commitment number', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    await p.add('a', 1_000_000n);
    await p.settle();
    await p.cut();
    await p.apply('a', { type: 'connected' });
    const m = p.queue.a.shift()!;
    assert.equal(m.type, 136);
    if (m.type !== 136) return;
    await refused(p, { ...m, nextCommitmentNumber: m.nextCommitmentNumber + 5n }, 'ERR_SYNC');
  });
});

describe('dust exposure', () => {
  it('refuses our own add once trimmed HTLCs would exceed the cap', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 200_000_000n });
    const ctx = { secrets: p.ep.a.secrets, policy: { maxDustExposureMsat: 1_500_000n } };
    const add = (amountMsat: bigint) => ({
      type: 'add_htlc' as const,
      amountMsat,
      paymentHash: sha256(randomBytes(32)),
      cltvExpiry: 700_000,
      onionRoutingPacket: new Uint8Array(1366),
    });
    const first = step(ctx, p.state('a'), add(900_000n));
    assert.equal(first.failure, undefined);
    const second = step(ctx, first.state, add(900_000n));
    assert.equal(second.failure?.code, 'ERR_DUST_EXPOSURE');
    assert.equal(second.failure?.level, 'local');
    // a non-dust HTLC does not count
    const big = step(ctx, first.state, add(50_000_000n));
    assert.equal(big.failure, undefined);
    // lnd's default: 500 000 sat
    assert.equal(DEFAULT_POLICY.maxDustExposureMsat, 500_000_000n);
    // the exposure a link checks incoming HTLCs against
    await p.add('b', 700_000n);
    await p.add('b', 50_000_000n);
    await p.settle();
    assert.deepEqual(currentDustExposure(p.state('a')), { localMsat: 700_000n, remoteMsat: 700_000n });
  });
});

describe('channel registry', () => {
  it('routes by channel id, answers unknown channel ids with an error, hands open_channel back', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a' });
    const { ChannelRegistry } = await import('../../htlc/channel/registry.js');
    const reg = new ChannelRegistry();
    reg.add(p.driver('b'));
    const before = p.state('b');
    const unknown = await reg.receive({ type: 134, channelId: randomBytes(32), feeratePerKw: 3000 });
    assert.equal(unknown.kind, 'unknown_channel');
    assert.equal(unknown.kind === 'unknown_channel' && unknown.failure.code, 'ERR_UNKNOWN_CHANNEL');
    assert.equal(p.state('b'), before);
    const fee = await reg.receive({ type: 134, channelId: before.channelId, feeratePerKw: 3000 });
    assert.equal(fee.kind === 'handled' && fee.result.failure, undefined);
    assert.equal(p.state('b').theirLog.entries.length, 1);
    const open = await reg.receive({
      ...(openChannel(
        { secrets: deriveChannelSecrets(randomBytes(32), 0), policy: DEFAULT_POLICY },
        {
          temporaryChannelId: randomBytes(32),
          chainHash: CHAIN_HASH,
          keyIndex: 0,
          fundingSat: 100_000n,
          pushMsat: 0n,
          feeratePerKw: 253,
          channelType: 'static_remotekey',
          config: defaultConfig(100_000n),
          channelFlags: 0,
        },
      ).send[0] as OpenChannel),
    });
    assert.equal(open.kind, 'open_channel');
  });
});

describe('channel establishment checks', () => {
  const ctxA = { secrets: deriveChannelSecrets(new Uint8Array(32).fill(1), 0), policy: DEFAULT_POLICY };
  const ctxB = { secrets: deriveChannelSecrets(new Uint8Array(32).fill(2), 0), policy: DEFAULT_POLICY };
  const open = (over: Partial<OpenChannel> = {}): OpenChannel => {
    const r = openChannel(ctxA, {
      temporaryChannelId: new Uint8Array(32).fill(9),
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      fundingSat: 1_000_000n,
      pushMsat: 0n,
      feeratePerKw: 2500,
      channelType: 'anchors_zero_fee_htlc',
      config: defaultConfig(1_000_000n),
      channelFlags: 0,
    });
    return { ...(r.send[0] as OpenChannel), ...over };
  };
  const accept = (m: OpenChannel) =>
    acceptChannel(ctxB, m, { chainHash: CHAIN_HASH, keyIndex: 0, config: defaultConfig(1_000_000n), minimumDepth: 3 });

  it('accepts a good open_channel and echoes its channel_type', () => {
    const r = accept(open());
    assert.ok(r.state !== undefined);
    const acc = r.send[0]!;
    assert.equal(acc.type, 33);
    assert.deepEqual(acc.type === 33 && acc.channelType, channelTypeBytes('anchors_zero_fee_htlc'));
    assert.equal(acc.type === 33 && acc.upfrontShutdownScript?.length, 0);
  });

  const cases: [string, Partial<OpenChannel>, ChannelErrorCode][] = [
    ['no channel_type', { channelType: undefined }, 'ERR_CHANNEL_TYPE'],
    ['an unknown channel_type', { channelType: new Uint8Array([0x10, 0x10, 0x00]) }, 'ERR_CHANNEL_TYPE'],
    ['funding below 20 000 sat', { fundingSatoshis: 19_999n }, 'ERR_BAD_PARAMETERS'],
    ['funding above 16 777 215 sat', { fundingSatoshis: 16_777_216n }, 'ERR_BAD_PARAMETERS'],
    ['dust limit 353', { dustLimitSatoshis: 353n }, 'ERR_BAD_PARAMETERS'],
    ['dust limit 1063', { dustLimitSatoshis: 1063n, channelReserveSatoshis: 10_000n }, 'ERR_BAD_PARAMETERS'],
    ['reserve over 20 %', { channelReserveSatoshis: 200_001n }, 'ERR_BAD_PARAMETERS'],
    ['reserve below the dust limit', { channelReserveSatoshis: 353n }, 'ERR_BAD_PARAMETERS'],
    ['max_accepted_htlcs 4', { maxAcceptedHtlcs: 4 }, 'ERR_BAD_PARAMETERS'],
    ['max_accepted_htlcs 484', { maxAcceptedHtlcs: 484 }, 'ERR_BAD_PARAMETERS'],
    ['to_self_delay 2017', { toSelfDelay: 2017 }, 'ERR_BAD_PARAMETERS'],
    ['push above the funding', { pushMsat: 1_000_000_001n }, 'ERR_BAD_PARAMETERS'],
    ['another chain', { chainHash: new Uint8Array(32) }, 'ERR_BAD_PARAMETERS'],
    ['a bad funding key', { fundingPubkey: new Uint8Array(33).fill(5) }, 'ERR_BAD_PARAMETERS'],
    ['feerate below 253', { feeratePerKw: 252 }, 'ERR_BAD_PARAMETERS'],
    [
      'a P2PKH upfront_shutdown_script',
      { upfrontShutdownScript: new Uint8Array([0x76, 0xa9, 0x14, ...new Uint8Array(20), 0x88, 0xac]) },
      'ERR_BAD_PARAMETERS',
    ],
  ];
  for (const [name, over, code] of cases) {
    it(`refuses open_channel with ${name}`, () => {
      const r = accept(open(over));
      assert.equal(r.state, undefined);
      assert.equal(r.failure?.code, code, r.failure?.message);
      assert.equal(r.failure?.level, 'error');
    });
  }

  it('the opener refuses an accept_channel that does not echo channel_type', () => {
    const o = openChannel(ctxA, {
      temporaryChannelId: new Uint8Array(32).fill(9),
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      fundingSat: 1_000_000n,
      pushMsat: 0n,
      feeratePerKw: 2500,
      channelType: 'anchors_zero_fee_htlc',
      config: defaultConfig(1_000_000n),
      channelFlags: 0,
    });
    const r = accept(o.send[0] as OpenChannel);
    assert.ok(r.state !== undefined);
    const acc = r.send[0]!;
    assert.equal(acc.type, 33);
    if (acc.type !== 33) return;
    const bad = step(ctxA, o.state, { type: 'message', msg: { ...acc, channelType: channelTypeBytes('static_remotekey') } });
    assert.equal(bad.failure?.code, 'ERR_CHANNEL_TYPE');
    assert.equal(bad.state, o.state);
    const slow = step(ctxA, o.state, { type: 'message', msg: { ...acc, toSelfDelay: 5000 } });
    assert.equal(slow.failure?.code, 'ERR_BAD_PARAMETERS');
    const good = step(ctxA, o.state, { type: 'message', msg: acc });
    assert.equal(good.failure, undefined);
    assert.equal(good.events[0]?.type, 'funding_needed');
  });

  it('refuses a bad funding_created signature (acceptor) and a bad funding_signed (opener): nothing broadcast', async () => {
    const p = await Pair.create();
    // drive the open by hand to tamper with funding_created
    const { ChannelDriver } = await import('../../htlc/channel/driver.js');
    p.ep.a.driver = await ChannelDriver.open(p.adapters('a'), {
      temporaryChannelId: randomBytes(32),
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      fundingSat: 500_000n,
      pushMsat: 0n,
      feeratePerKw: 2500,
      channelType: 'static_remotekey',
      config: defaultConfig(500_000n),
      channelFlags: 0,
    });
    const o = p.queue.a.shift() as OpenChannel;
    p.ep.b.driver = (await ChannelDriver.accept(p.adapters('b'), o, {
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      config: defaultConfig(500_000n),
      minimumDepth: 1,
    }))!;
    await p.deliver('b');
    const fc = p.queue.a.shift()!;
    assert.equal(fc.type, 34);
    if (fc.type !== 34) return;
    const before = p.state('b');
    const r = await p.apply('b', { type: 'message', msg: { ...fc, signature: randomBytes(64) } });
    assert.equal(r.failure?.code, 'ERR_BAD_SIGNATURE');
    assert.equal(p.state('b'), before);
    await p.apply('b', { type: 'message', msg: fc });
    const fs = p.queue.b.shift()!;
    assert.equal(fs.type, 35);
    if (fs.type !== 35) return;
    const r2 = await p.apply('a', { type: 'message', msg: { ...fs, signature: randomBytes(64) } });
    assert.equal(r2.failure?.code, 'ERR_BAD_SIGNATURE');
    assert.equal(p.ep.a.wallet.broadcasts.length, 0);
    await p.apply('a', { type: 'message', msg: fs });
    assert.equal(p.ep.a.wallet.broadcasts.length, 1);
  });

  it('releases the funding tx when the connection drops before funding_signed', async () => {
    const p = await Pair.create();
    const { ChannelDriver } = await import('../../htlc/channel/driver.js');
    p.ep.a.driver = await ChannelDriver.open(p.adapters('a'), {
      temporaryChannelId: randomBytes(32),
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      fundingSat: 500_000n,
      pushMsat: 0n,
      feeratePerKw: 2500,
      channelType: 'static_remotekey',
      config: defaultConfig(500_000n),
      channelFlags: 0,
    });
    const o = p.queue.a.shift() as OpenChannel;
    p.ep.b.driver = (await ChannelDriver.accept(p.adapters('b'), o, {
      chainHash: CHAIN_HASH,
      keyIndex: 0,
      config: defaultConfig(500_000n),
      minimumDepth: 1,
    }))!;
    await p.deliver('b'); // accept_channel → funding_created queued
    await p.cut();
    assert.equal(p.state('a').phase, 'closed');
    assert.equal(p.ep.a.wallet.released.length, 1);
    assert.equal(p.ep.a.wallet.broadcasts.length, 0);
  });
});
