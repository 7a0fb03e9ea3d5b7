import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commitmentFeeSat, commitmentWeight } from '../../htlc/bolt3/fees.js';
import {
  commitFeeUpdate,
  maxCommitFeeratePerKw,
  MIN_FEERATE_PER_KW,
  proposedFeeratePerKw,
  shouldAdjustCommitFee,
} from '../../htlc/channel/fee.js';
import { Pair } from './channel-harness.js';

describe('opener commitment fee policy (update_fee)', () => {
  it('moves only on a change of 10 % or more, or up from below the relay floor', () => {
    assert.equal(shouldAdjustCommitFee(1000, 1000), false);
    assert.equal(shouldAdjustCommitFee(1099, 1000), false);
    assert.equal(shouldAdjustCommitFee(1100, 1000), true);
    assert.equal(shouldAdjustCommitFee(901, 1000), false);
    assert.equal(shouldAdjustCommitFee(900, 1000), true);
    // below the floor any rise counts
    assert.equal(shouldAdjustCommitFee(252, 250), true);
    assert.equal(shouldAdjustCommitFee(250, 252), false);
  });

  it('follows the estimate as opener, never as acceptor, and counts an update_fee already sent', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', feeratePerKw: 2500 });
    assert.equal(commitFeeUpdate(p.state('a'), 2600), null);
    assert.equal(commitFeeUpdate(p.state('a'), 3000), 3000);
    assert.equal(commitFeeUpdate(p.state('a'), 1000), 1000);
    assert.equal(commitFeeUpdate(p.state('a'), 100), MIN_FEERATE_PER_KW, 'never below the relay floor');
    assert.equal(commitFeeUpdate(p.state('b'), 9000), null, 'the acceptor never sends update_fee');
    // once 3000 is proposed (not yet signed), 3100 is within 10 % of it
    assert.equal((await p.apply('a', { type: 'update_fee', feeratePerKw: 3000 })).failure, undefined);
    assert.equal(proposedFeeratePerKw(p.state('a')), 3000);
    assert.equal(p.state('a').localCommit.feeratePerKw, 2500);
    assert.equal(commitFeeUpdate(p.state('a'), 3100), null);
    await p.settle();
    assert.equal(p.state('b').localCommit.feeratePerKw, 3000);
    assert.equal(commitFeeUpdate(p.state('a'), 3000), null);
  });

  it('anchor channels are capped at 2 500 sat/kw; every channel at half of our balance', async () => {
    const anchors = await Pair.opened({ channelType: 'anchors_zero_fee_htlc', opener: 'a', feeratePerKw: 253 });
    assert.equal(commitFeeUpdate(anchors.state('a'), 50_000), 2500);
    assert.equal(commitFeeUpdate(anchors.state('a'), 2000), 2000);

    // 30 000 sat channel, 2 HTLCs: half the balance buys this feerate and no more
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', fundingSat: 30_000n, feeratePerKw: 253 });
    await p.add('a', 5_000_000n);
    await p.add('a', 5_000_000n);
    await p.settle();
    const s = p.state('a');
    const max = maxCommitFeeratePerKw(s, 0.5);
    const balanceSat = s.remoteCommit.ourBalanceMsat / 1000n;
    assert.ok(commitmentFeeSat('static_remotekey', max, 2) <= balanceSat / 2n);
    assert.ok(commitmentFeeSat('static_remotekey', max + 2, 2) > balanceSat / 2n);
    assert.equal(commitmentWeight('static_remotekey', 2), 724 + 2 * 172);
    assert.equal(commitFeeUpdate(s, 1_000_000), max);
    // and the channel takes it: the state machine's own affordability check agrees
    assert.equal((await p.apply('a', { type: 'update_fee', feeratePerKw: max })).failure, undefined);
    await p.settle();
    assert.equal(p.state('b').localCommit.feeratePerKw, max);
  });

  it('no update_fee once shutdown was sent or received (the peer may already be past its last update)', async () => {
    for (const closer of ['a', 'b'] as const) {
      const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 300_000_000n });
      await p.add('a', 20_000_000n);
      await p.settle();
      assert.equal((await p.apply(closer, { type: 'shutdown', feeratePerKw: 2500 })).failure, undefined);
      await p.deliverAll();
      assert.ok(p.state('a').shutdown !== undefined);
      const r = await p.apply('a', { type: 'update_fee', feeratePerKw: 3000 });
      assert.equal(r.failure?.code, 'ERR_SHUTDOWN', `shutdown by ${closer}`);
      assert.equal(r.send.length, 0);
      assert.equal(commitFeeUpdate(p.state('a'), 9000), null, 'the policy proposes nothing either');
      // the close goes through: the HTLC settles, then closing_signed
      await p.fulfill('b', 0n);
      await p.settle();
      await p.deliverAll();
      assert.equal(p.state('a').phase, 'closed');
      assert.equal(p.state('b').phase, 'closed');
    }
  });

  it('an update_fee a disconnect cut before it was signed is forgotten by both sides and proposed again', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', feeratePerKw: 2500 });
    assert.equal((await p.apply('a', { type: 'update_fee', feeratePerKw: 5000 })).failure, undefined);
    await p.deliverAll();
    await p.cut();
    await p.reconnect();
    assert.equal(proposedFeeratePerKw(p.state('a')), 2500);
    const again = commitFeeUpdate(p.state('a'), 5000);
    assert.equal(again, 5000);
    assert.equal((await p.apply('a', { type: 'update_fee', feeratePerKw: again })).failure, undefined);
    await p.settle();
    assert.equal(p.state('a').localCommit.feeratePerKw, 5000);
    assert.equal(p.state('b').localCommit.feeratePerKw, 5000);
    p.checkConserved();
  });
});
