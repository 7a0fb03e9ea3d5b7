/**
 * BOLT 3 output scripts written byte by byte against the same scripts compiled
 * by bcoin's Script (the minimal-push rules Bitcoin Core enforces), over the
 * whole range of the numbers they embed: to_self_delay (16 bits) and
 * cltv_expiry (32 bits) across every script-number length boundary.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { bytesToHex } from '../../wire/bytes.js';
import { hash160, randomBytes, secp, sha256 } from '../../wire/crypto.js';
import {
  anchorWitnessScript,
  fundingWitnessScript,
  offeredHtlcWitnessScript,
  p2wpkh,
  p2wsh,
  receivedHtlcWitnessScript,
  toLocalWitnessScript,
  toRemoteOutput,
  type ChannelType,
} from '../../htlc/bolt3/index.js';

interface BScript {
  pushOp(op: number): BScript;
  pushData(d: Buffer): BScript;
  pushInt(n: number): BScript;
  compile(): BScript;
  toRaw(): Buffer;
}
const req = createRequire(import.meta.url);
const Script = req('bcoin/lib/script/script') as { new (): BScript };
const op = (req('bcoin/lib/script/common') as { opcodes: Record<string, number> }).opcodes;
const O = (name: string): number => op[name]!;
const B = (b: Uint8Array): Buffer => Buffer.from(b);
const ripemd = (b: Uint8Array): Buffer => req('node:crypto').createHash('ripemd160').update(b).digest() as Buffer;

function bcoin(f: (s: BScript) => void): string {
  const s = new Script();
  f(s);
  s.compile();
  return s.toRaw().toString('hex');
}

const key = (): Uint8Array => secp.publicKeyCreate(randomBytes(32));
const numbers = [
  0, 1, 15, 16, 17, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 8388607, 8388608, 499_999_999, 0x7fffffff, 0x80000000, 0xfffffffe,
  0xffffffff,
];

describe('BOLT 3 scripts match bcoin-compiled scripts', () => {
  it('to_local for every to_self_delay length boundary', () => {
    const rev = key();
    const delayed = key();
    for (const d of numbers.filter((n) => n <= 0xffff)) {
      const want = bcoin((s) =>
        s
          .pushOp(O('OP_IF'))
          .pushData(B(rev))
          .pushOp(O('OP_ELSE'))
          .pushInt(d)
          .pushOp(O('OP_CHECKSEQUENCEVERIFY'))
          .pushOp(O('OP_DROP'))
          .pushData(B(delayed))
          .pushOp(O('OP_ENDIF'))
          .pushOp(O('OP_CHECKSIG')),
      );
      assert.equal(bytesToHex(toLocalWitnessScript(rev, d, delayed)), want, `to_self_delay ${d}`);
    }
    assert.throws(() => toLocalWitnessScript(rev, 0x10000, delayed));
  });

  for (const type of ['static_remotekey', 'anchors_zero_fee_htlc'] as ChannelType[]) {
    it(`offered and received HTLC scripts (${type}) for every cltv_expiry length boundary`, () => {
      const rev = key();
      const local = key();
      const remote = key();
      const hash = sha256(randomBytes(32));
      const csv = (s: BScript): void => {
        if (type === 'anchors_zero_fee_htlc') s.pushOp(O('OP_1')).pushOp(O('OP_CHECKSEQUENCEVERIFY')).pushOp(O('OP_DROP'));
      };
      const offered = bcoin((s) => {
        s.pushOp(O('OP_DUP'))
          .pushOp(O('OP_HASH160'))
          .pushData(B(hash160(rev)))
          .pushOp(O('OP_EQUAL'));
        s.pushOp(O('OP_IF')).pushOp(O('OP_CHECKSIG'));
        s.pushOp(O('OP_ELSE')).pushData(B(remote)).pushOp(O('OP_SWAP')).pushOp(O('OP_SIZE')).pushInt(32).pushOp(O('OP_EQUAL'));
        s.pushOp(O('OP_NOTIF'))
          .pushOp(O('OP_DROP'))
          .pushOp(O('OP_2'))
          .pushOp(O('OP_SWAP'))
          .pushData(B(local))
          .pushOp(O('OP_2'))
          .pushOp(O('OP_CHECKMULTISIG'));
        s.pushOp(O('OP_ELSE')).pushOp(O('OP_HASH160')).pushData(ripemd(hash)).pushOp(O('OP_EQUALVERIFY')).pushOp(O('OP_CHECKSIG'));
        s.pushOp(O('OP_ENDIF'));
        csv(s);
        s.pushOp(O('OP_ENDIF'));
      });
      assert.equal(bytesToHex(offeredHtlcWitnessScript(type, rev, local, remote, hash)), offered);
      for (const cltv of numbers) {
        const received = bcoin((s) => {
          s.pushOp(O('OP_DUP'))
            .pushOp(O('OP_HASH160'))
            .pushData(B(hash160(rev)))
            .pushOp(O('OP_EQUAL'));
          s.pushOp(O('OP_IF')).pushOp(O('OP_CHECKSIG'));
          s.pushOp(O('OP_ELSE')).pushData(B(remote)).pushOp(O('OP_SWAP')).pushOp(O('OP_SIZE')).pushInt(32).pushOp(O('OP_EQUAL'));
          s.pushOp(O('OP_IF')).pushOp(O('OP_HASH160')).pushData(ripemd(hash)).pushOp(O('OP_EQUALVERIFY'));
          s.pushOp(O('OP_2')).pushOp(O('OP_SWAP')).pushData(B(local)).pushOp(O('OP_2')).pushOp(O('OP_CHECKMULTISIG'));
          s.pushOp(O('OP_ELSE'))
            .pushOp(O('OP_DROP'))
            .pushInt(cltv)
            .pushOp(O('OP_CHECKLOCKTIMEVERIFY'))
            .pushOp(O('OP_DROP'))
            .pushOp(O('OP_CHECKSIG'));
          s.pushOp(O('OP_ENDIF'));
          csv(s);
          s.pushOp(O('OP_ENDIF'));
        });
        assert.equal(bytesToHex(receivedHtlcWitnessScript(type, rev, local, remote, hash, cltv)), received, `cltv_expiry ${cltv}`);
      }
    });
  }

  it('funding, anchor, to_remote, P2WSH and P2WPKH', () => {
    const a = key();
    const b = key();
    const [x, y] = Buffer.compare(B(a), B(b)) <= 0 ? [a, b] : [b, a];
    assert.equal(
      bytesToHex(fundingWitnessScript(a, b)),
      bcoin((s) => s.pushOp(O('OP_2')).pushData(B(x)).pushData(B(y)).pushOp(O('OP_2')).pushOp(O('OP_CHECKMULTISIG'))),
    );
    assert.equal(bytesToHex(fundingWitnessScript(b, a)), bytesToHex(fundingWitnessScript(a, b)));
    assert.equal(
      bytesToHex(anchorWitnessScript(a)),
      bcoin((s) =>
        s
          .pushData(B(a))
          .pushOp(O('OP_CHECKSIG'))
          .pushOp(O('OP_IFDUP'))
          .pushOp(O('OP_NOTIF'))
          .pushOp(O('OP_16'))
          .pushOp(O('OP_CHECKSEQUENCEVERIFY'))
          .pushOp(O('OP_ENDIF')),
      ),
    );
    const ws = anchorWitnessScript(a);
    assert.equal(
      bytesToHex(p2wsh(ws)),
      bcoin((s) => s.pushOp(O('OP_0')).pushData(B(sha256(ws)))),
    );
    assert.equal(
      bytesToHex(p2wpkh(a)),
      bcoin((s) => s.pushOp(O('OP_0')).pushData(B(hash160(a)))),
    );
    const anchored = toRemoteOutput('anchors_zero_fee_htlc', a);
    assert.equal(
      bytesToHex(anchored.witnessScript!),
      bcoin((s) => s.pushData(B(a)).pushOp(O('OP_CHECKSIGVERIFY')).pushOp(O('OP_1')).pushOp(O('OP_CHECKSEQUENCEVERIFY'))),
    );
    assert.equal(bytesToHex(anchored.scriptPubKey), bytesToHex(p2wsh(anchored.witnessScript!)));
    assert.deepEqual(toRemoteOutput('static_remotekey', a), { scriptPubKey: p2wpkh(a), witnessScript: null });
  });
});
