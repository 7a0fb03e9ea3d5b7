/**
 * What the channel signs must be valid Bitcoin: our signed current
 * commitment (with HTLCs on it) and the cooperative closing transaction are
 * run through bcoin's script interpreter against the funding output, and
 * each side's second-stage HTLC transactions (with the peer's stored HTLC
 * signatures) against its commitment's HTLC outputs, with the standard
 * verification flags (segwit, strict DER, low S, ...).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Pair, type Side } from './channel-harness.js';
import { fundingScriptPubKey } from '../../htlc/channel/establish.js';
import { signedHtlcTxs, signedLocalCommitment } from '../../htlc/channel/commitments.js';
import { p2wpkh } from '../../htlc/bolt3/index.js';

const require = createRequire(import.meta.url);
const TX = require('bcoin/lib/primitives/tx') as {
  fromRaw(b: Buffer): { verifyInput(i: number, coin: unknown): boolean; inputs: unknown[] };
};
const Output = require('bcoin/lib/primitives/output') as { fromScript(script: unknown, value: number): unknown };
const Script = require('bcoin/lib/script/script') as { fromRaw(b: Buffer): unknown };

function spendsFunding(p: Pair, side: Side, raw: Uint8Array): boolean {
  const s = p.state(side);
  const tx = TX.fromRaw(Buffer.from(raw));
  return tx.verifyInput(0, Output.fromScript(Script.fromRaw(Buffer.from(fundingScriptPubKey(s))), Number(s.fundingSat)));
}

for (const channelType of ['static_remotekey', 'anchors_zero_fee_htlc'] as const) {
  describe(`signed transactions are valid (${channelType})`, () => {
    it('the current commitment of each side, with HTLCs, and the closing tx', async () => {
      const p = await Pair.opened({ channelType, opener: 'b', pushMsat: 400_000_000n });
      await p.add('a', 30_000_000n);
      await p.add('b', 40_000_000n);
      await p.add('b', 200_000n); // trimmed
      await p.settle();
      for (const side of ['a', 'b'] as const) {
        const raw = signedLocalCommitment(p.state(side), p.ep[side].secrets);
        assert.ok(spendsFunding(p, side, raw), `${side}'s commitment does not verify`);
        // a corrupted signature must not verify (the check is real)
        const bad = raw.slice();
        const at = bad.length - 120;
        bad[at] = bad[at]! ^ 0x01;
        assert.equal(spendsFunding(p, side, bad), false);
      }
      // the second-stage HTLC transactions of each side spend its commitment's HTLC outputs validly
      for (const side of ['a', 'b'] as const) {
        const commitment = TX.fromRaw(Buffer.from(signedLocalCommitment(p.state(side), p.ep[side].secrets))) as unknown as {
          outputs: unknown[];
        };
        const htlcTxs = signedHtlcTxs(p.state(side), p.ep[side].secrets, new Map([...p.preimages].map(([k, v]) => [k, v])));
        assert.equal(htlcTxs.length, 2); // the 200 000 msat HTLC is trimmed
        for (const h of htlcTxs) {
          assert.ok(h.tx !== undefined);
          const tx = TX.fromRaw(Buffer.from(h.tx));
          assert.ok(tx.verifyInput(0, commitment.outputs[h.commitmentOutputIndex]), `${side}: ${h.kind} does not verify`);
        }
        assert.deepEqual(htlcTxs.map((h) => h.kind).sort(), ['htlc_success', 'htlc_timeout']);
        // without preimages the success transaction waits
        assert.equal(signedHtlcTxs(p.state(side), p.ep[side].secrets).filter((h) => h.tx === undefined).length, 1);
      }
      for (const side of ['a', 'b'] as const) for (const h of p.settleable(side)) await p.fail(side, h.id);
      await p.settle();
      await p.apply('a', { type: 'shutdown', scriptPubKey: p2wpkh(new Uint8Array(33).fill(3)), feeratePerKw: 1000 });
      await p.deliverAll();
      const closing = p.ep.a.events.find((e) => e.type === 'closing_tx');
      assert.ok(closing?.type === 'closing_tx');
      assert.ok(spendsFunding(p, 'a', closing.tx));
    });
  });
}
