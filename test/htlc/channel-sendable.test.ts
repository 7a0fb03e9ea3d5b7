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
      it(`${channelType}, ${side === 'a' ? 'opener' : 'acceptor'}: an add of exactly the amount is taken, one msat more is refused`, async () => {
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
