/**
 * maxSendableMsat: the largest HTLC the channel takes from us now. An add of exactly that amount is accepted and
 * one msat more is refused, as opener and as acceptor, with other HTLCs in flight, and 0 when nothing fits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maxSendableMsat } from '../../htlc/channel/machine.js';
import { Pair } from './channel-harness.js';

describe('maxSendableMsat', () => {
  for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
    for (const side of ['a', 'b'] as const) {
      const title =
        `${channelType}, ${side === 'a' ? 'opener' : 'acceptor'}: an add of` + ` exactly the amount is taken, one msat more is refused`;
      it(title, async () => {
        const p = await Pair.opened({ channelType, opener: 'a', pushMsat: 400_000_000n });
        const max = maxSendableMsat(p.state(side));
        const balance = p.state(side).localCommit.ourBalanceMsat;
        assert.ok(max > 0n && max < balance, `${side}: ${max} of ${balance}`);
        const over = await p.add(side, max + 1n);
        assert.equal(over.failure?.code, 'ERR_CANNOT_AFFORD', `${side}: one msat more is refused`);
        const exact = await p.add(side, max);
        assert.equal(exact.failure, undefined, `${side}: ${exact.failure?.message}`);
        await p.settle();
        assert.ok(maxSendableMsat(p.state(side)) < max / 100n, 'what is left is a small fraction');
        p.checkConsistent();
      });
    }
  }

  it('is exact where the largest HTLC is near the dust limit too (trimmed on one commitment or both)', async () => {
    // the acceptor's balance a little above its reserve (1 % of 1 000 000 sat): what it can send is near the trim
    // thresholds, where the fee does not grow with the amount as it does above them
    let checked = 0;
    for (const aboveReserveSat of [50n, 200n, 400n, 600n, 800n, 1_200n, 2_000n, 5_000n, 50_000n]) {
      for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
        const p = await Pair.opened({ channelType, opener: 'a', pushMsat: (10_000n + aboveReserveSat) * 1000n });
        const max = maxSendableMsat(p.state('b'));
        if (max === 0n) {
          assert.equal((await p.add('b', 1000n)).failure?.code !== undefined, true, `${aboveReserveSat}: nothing fits`);
          continue;
        }
        const over = await p.add('b', max + 1n);
        assert.notEqual(over.failure, undefined, `${channelType} +${aboveReserveSat} sat: ${max + 1n} msat is refused`);
        const exact = await p.add('b', max);
        assert.equal(exact.failure, undefined, `${channelType} +${aboveReserveSat} sat: ${exact.failure?.message}`);
        checked++;
      }
    }
    assert.ok(checked >= 12, `${checked} cases had something to send`);
  });

  it('is exact for the opener whose balance barely covers its reserve and the commitment fee', async () => {
    // the opener keeps its reserve (10 000 sat) plus a little: the fee an HTLC output adds decides what fits
    let checked = 0;
    for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
      for (let keepSat = 10_000n; keepSat <= 16_000n; keepSat += 250n) {
        const p = await Pair.opened({ channelType, opener: 'a', pushMsat: (1_000_000n - keepSat) * 1000n });
        const max = maxSendableMsat(p.state('a'));
        if (max === 0n) {
          assert.notEqual((await p.add('a', 1000n)).failure, undefined, `${channelType} keep ${keepSat}: nothing fits`);
          continue;
        }
        assert.notEqual((await p.add('a', max + 1n)).failure, undefined, `${channelType} keep ${keepSat}: ${max + 1n} is refused`);
        const exact = await p.add('a', max);
        assert.equal(exact.failure, undefined, `${channelType} keep ${keepSat}: ${exact.failure?.message}`);
        checked++;
      }
    }
    assert.ok(checked >= 10, `${checked} cases had something to send`);
  });

  it('counts the HTLCs in flight and is 0 before the channel is usable and after shutdown', async () => {
    const p = await Pair.opened({ channelType: 'static_remotekey', opener: 'a', pushMsat: 0n });
    assert.equal(maxSendableMsat(p.state('b')), 0n, 'b has no balance');
    const first = maxSendableMsat(p.state('a'));
    await p.add('a', 100_000_000n);
    const after = maxSendableMsat(p.state('a'));
    assert.ok(after < first - 100_000_000n, 'the HTLC and its fee are no longer sendable');
    await p.apply('b', { type: 'disconnected' });
    await p.apply('a', { type: 'disconnected' });
    assert.equal(maxSendableMsat(p.state('a')), 0n, 'not reestablished');
  });
});
