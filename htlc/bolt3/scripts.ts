/**
 * BOLT 3 output scripts: funding 2-of-2, to_local, to_remote, anchors, offered
 * and received HTLCs (with the `1 OP_CHECKSEQUENCEVERIFY OP_DROP` of
 * option_anchors), and the P2WSH / P2WPKH wrappers. Written byte by byte with
 * the minimal pushes Bitcoin Core, lnd and bcoin's Script produce (a test
 * compares them with bcoin's compiler); each function returns the raw script
 * bytes. They are built for every output of every commitment, so no script
 * objects are made on the way.
 */
import * as nodeCrypto from 'node:crypto';
import { compareBytes, equalBytes } from '../../wire/bytes.js';
import { hash160, sha256 } from '../../wire/crypto.js';
import { opcodes as op } from './btc.js';
import { memoBytes } from './memo.js';
import { Bolt3Error } from './errors.js';
import type { ChannelType } from './types.js';

function pub33(p: Uint8Array, what: string): Uint8Array {
  if (p.length !== 33) throw new Bolt3Error('ERR_BAD_PARAMS', `${what} must be a 33-byte compressed public key`);
  return p;
}

/**
 * Raw script bytes with Bitcoin's minimal push rules, as bcoin's Script
 * compiles them: data of 1-75 bytes is pushed with a length byte (every push
 * here is 20, 32 or 33 bytes), small integers 0-16 are OP_0/OP_1-OP_16 and
 * larger ones a minimal little-endian script number.
 */
class ScriptWriter {
  private readonly buf = SCRATCH;
  private pos = 0;
  op(o: number): this {
    this.buf[this.pos++] = o;
    return this;
  }
  data(d: Uint8Array): this {
    if (d.length < 1 || d.length > 75) throw new Error('script push of unsupported length');
    this.buf[this.pos++] = d.length;
    this.buf.set(d, this.pos);
    this.pos += d.length;
    return this;
  }
  int(n: number): this {
    if (n === 0) return this.op(OP.OP_0);
    if (n >= 1 && n <= 16) return this.op(OP.OP_1 + n - 1);
    // positive script number: little-endian magnitude, plus a 0x00 byte when the top bit is set
    const start = this.pos++;
    let v = n;
    while (v > 0) {
      this.buf[this.pos++] = v & 0xff;
      v = Math.floor(v / 256);
    }
    if ((this.buf[this.pos - 1]! & 0x80) !== 0) this.buf[this.pos++] = 0;
    this.buf[start] = this.pos - start - 1;
    return this;
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** Scripts are built one at a time into this buffer and copied out (the longest is 140 bytes). */
const SCRATCH = new Uint8Array(160);

function build(f: (s: ScriptWriter) => void): Uint8Array {
  const s = new ScriptWriter();
  f(s);
  return s.done();
}

function O(name: string): number {
  const v = op[name];
  if (v === undefined) throw new Error(`unknown opcode ${name}`);
  return v;
}

const OP = {
  DUP: O('OP_DUP'),
  HASH160: O('OP_HASH160'),
  EQUAL: O('OP_EQUAL'),
  EQUALVERIFY: O('OP_EQUALVERIFY'),
  IF: O('OP_IF'),
  NOTIF: O('OP_NOTIF'),
  ELSE: O('OP_ELSE'),
  ENDIF: O('OP_ENDIF'),
  CHECKSIG: O('OP_CHECKSIG'),
  CHECKSIGVERIFY: O('OP_CHECKSIGVERIFY'),
  CHECKMULTISIG: O('OP_CHECKMULTISIG'),
  SWAP: O('OP_SWAP'),
  SIZE: O('OP_SIZE'),
  DROP: O('OP_DROP'),
  IFDUP: O('OP_IFDUP'),
  CSV: O('OP_CHECKSEQUENCEVERIFY'),
  CLTV: O('OP_CHECKLOCKTIMEVERIFY'),
  OP_0: O('OP_0'),
  OP_1: O('OP_1'),
  OP_2: O('OP_2'),
  OP_16: O('OP_16'),
};

const hashOneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;

function ripemd160(data: Uint8Array): Uint8Array {
  if (hashOneShot !== undefined) return hashOneShot('ripemd160', data, 'buffer');
  return nodeCrypto.createHash('ripemd160').update(data).digest();
}

/** RIPEMD-160 of a payment hash: every commitment that holds the HTLC needs it again. */
const paymentHash160 = memoBytes(ripemd160);

/** `2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG` with the keys in ascending byte order. */
export function fundingWitnessScript(pubA: Uint8Array, pubB: Uint8Array): Uint8Array {
  const a = pub33(pubA, 'funding pubkey');
  const b = pub33(pubB, 'funding pubkey');
  const [first, second] = compareBytes(a, b) <= 0 ? [a, b] : [b, a];
  return build((s) => s.op(OP.OP_2).data(first).data(second).op(OP.OP_2).op(OP.CHECKMULTISIG));
}

/** `OP_0 <SHA256(witnessScript)>` */
export function p2wsh(witnessScript: Uint8Array): Uint8Array {
  return build((s) => s.op(OP.OP_0).data(sha256(witnessScript)));
}

/** `OP_0 <HASH160(pubkey)>` */
export function p2wpkh(pubkey: Uint8Array): Uint8Array {
  return build((s) => s.op(OP.OP_0).data(hash160(pub33(pubkey, 'pubkey'))));
}

/**
 * to_local (and the output of every HTLC-success / HTLC-timeout tx):
 * `OP_IF <revocationpubkey> OP_ELSE <to_self_delay> OP_CSV OP_DROP <local_delayedpubkey> OP_ENDIF OP_CHECKSIG`
 */
export function toLocalWitnessScript(revocationPubkey: Uint8Array, toSelfDelay: number, localDelayedPubkey: Uint8Array): Uint8Array {
  if (!Number.isInteger(toSelfDelay) || toSelfDelay < 0 || toSelfDelay > 0xffff)
    throw new Bolt3Error('ERR_BAD_PARAMS', `to_self_delay ${toSelfDelay} is not a 16-bit value`);
  const rev = pub33(revocationPubkey, 'revocation pubkey');
  const delayed = pub33(localDelayedPubkey, 'delayed pubkey');
  return build((s) => s.op(OP.IF).data(rev).op(OP.ELSE).int(toSelfDelay).op(OP.CSV).op(OP.DROP).data(delayed).op(OP.ENDIF).op(OP.CHECKSIG));
}

/**
 * to_remote: P2WPKH of the remote's payment basepoint for static_remotekey;
 * P2WSH of `<remotepubkey> OP_CHECKSIGVERIFY 1 OP_CHECKSEQUENCEVERIFY` with anchors.
 */
export function toRemoteOutput(
  channelType: ChannelType,
  remotePaymentPubkey: Uint8Array,
): { scriptPubKey: Uint8Array; witnessScript: Uint8Array | null } {
  if (channelType === 'static_remotekey') return { scriptPubKey: p2wpkh(remotePaymentPubkey), witnessScript: null };
  const key = pub33(remotePaymentPubkey, 'remote payment pubkey');
  const ws = build((s) => s.data(key).op(OP.CHECKSIGVERIFY).op(OP.OP_1).op(OP.CSV));
  return { scriptPubKey: p2wsh(ws), witnessScript: ws };
}

/** Anchor: `<funding_pubkey> OP_CHECKSIG OP_IFDUP OP_NOTIF OP_16 OP_CHECKSEQUENCEVERIFY OP_ENDIF` */
export function anchorWitnessScript(fundingPubkey: Uint8Array): Uint8Array {
  const key = pub33(fundingPubkey, 'funding pubkey');
  return build((s) => s.data(key).op(OP.CHECKSIG).op(OP.IFDUP).op(OP.NOTIF).op(OP.OP_16).op(OP.CSV).op(OP.ENDIF));
}

/** HASH160 of the revocation pubkey, kept for the last key asked (all HTLC scripts of a commitment share it). */
let lastRevocation: { key: Uint8Array; hash: Uint8Array } | undefined;

function revocationHash(revocationPubkey: Uint8Array): Uint8Array {
  const key = pub33(revocationPubkey, 'revocation pubkey');
  if (lastRevocation === undefined || !equalBytes(lastRevocation.key, key)) lastRevocation = { key: key.slice(), hash: hash160(key) };
  return lastRevocation.hash;
}

function checkHash(paymentHash: Uint8Array): void {
  if (paymentHash.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', 'payment hash must be 32 bytes');
}

/** Offered HTLC output script (the holder offered it: the remote claims with the preimage). */
export function offeredHtlcWitnessScript(
  channelType: ChannelType,
  revocationPubkey: Uint8Array,
  localHtlcPubkey: Uint8Array,
  remoteHtlcPubkey: Uint8Array,
  paymentHash: Uint8Array,
): Uint8Array {
  checkHash(paymentHash);
  const revHash = revocationHash(revocationPubkey);
  const local = pub33(localHtlcPubkey, 'local htlc pubkey');
  const remote = pub33(remoteHtlcPubkey, 'remote htlc pubkey');
  return build((s) => {
    s.op(OP.DUP).op(OP.HASH160).data(revHash).op(OP.EQUAL);
    s.op(OP.IF).op(OP.CHECKSIG);
    s.op(OP.ELSE).data(remote).op(OP.SWAP).op(OP.SIZE).int(32).op(OP.EQUAL);
    s.op(OP.NOTIF).op(OP.DROP).op(OP.OP_2).op(OP.SWAP).data(local).op(OP.OP_2).op(OP.CHECKMULTISIG);
    s.op(OP.ELSE).op(OP.HASH160).data(paymentHash160(paymentHash)).op(OP.EQUALVERIFY).op(OP.CHECKSIG);
    s.op(OP.ENDIF);
    if (channelType === 'anchors_zero_fee_htlc') s.op(OP.OP_1).op(OP.CSV).op(OP.DROP);
    s.op(OP.ENDIF);
  });
}

/** Received HTLC output script (the remote offered it: the holder claims with the preimage). */
export function receivedHtlcWitnessScript(
  channelType: ChannelType,
  revocationPubkey: Uint8Array,
  localHtlcPubkey: Uint8Array,
  remoteHtlcPubkey: Uint8Array,
  paymentHash: Uint8Array,
  cltvExpiry: number,
): Uint8Array {
  checkHash(paymentHash);
  if (!Number.isInteger(cltvExpiry) || cltvExpiry < 0 || cltvExpiry > 0xffffffff)
    throw new Bolt3Error('ERR_BAD_PARAMS', `cltv_expiry ${cltvExpiry} is not a 32-bit value`);
  const revHash = revocationHash(revocationPubkey);
  const local = pub33(localHtlcPubkey, 'local htlc pubkey');
  const remote = pub33(remoteHtlcPubkey, 'remote htlc pubkey');
  return build((s) => {
    s.op(OP.DUP).op(OP.HASH160).data(revHash).op(OP.EQUAL);
    s.op(OP.IF).op(OP.CHECKSIG);
    s.op(OP.ELSE).data(remote).op(OP.SWAP).op(OP.SIZE).int(32).op(OP.EQUAL);
    s.op(OP.IF).op(OP.HASH160).data(paymentHash160(paymentHash)).op(OP.EQUALVERIFY);
    s.op(OP.OP_2).op(OP.SWAP).data(local).op(OP.OP_2).op(OP.CHECKMULTISIG);
    s.op(OP.ELSE).op(OP.DROP).int(cltvExpiry).op(OP.CLTV).op(OP.DROP).op(OP.CHECKSIG);
    s.op(OP.ENDIF);
    if (channelType === 'anchors_zero_fee_htlc') s.op(OP.OP_1).op(OP.CSV).op(OP.DROP);
    s.op(OP.ENDIF);
  });
}
