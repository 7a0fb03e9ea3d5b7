/**
 * BOLT 3 output scripts: funding 2-of-2, to_local, to_remote, anchors, offered
 * and received HTLCs (with the `1 OP_CHECKSEQUENCEVERIFY OP_DROP` of
 * option_anchors), and the P2WSH / P2WPKH wrappers. Built with bcoin's Script
 * so pushes are minimal exactly as Bitcoin Core and lnd encode them; each
 * function returns the raw script bytes.
 */
import { createHash } from 'node:crypto';
import { compareBytes } from '../../wire/bytes.js';
import { hash160, sha256 } from '../../wire/crypto.js';
import { Script, opcodes as op, buf, u8, type BScript } from './btc.js';
import { Bolt3Error } from './errors.js';
import type { ChannelType } from './types.js';

function pub33(p: Uint8Array, what: string): Buffer {
  if (p.length !== 33) throw new Bolt3Error('ERR_BAD_PARAMS', `${what} must be a 33-byte compressed public key`);
  return buf(p);
}

function build(f: (s: BScript) => void): Uint8Array {
  const s = new Script();
  f(s);
  s.compile();
  return u8(s.toRaw());
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

function ripemd160(data: Uint8Array): Buffer {
  return createHash('ripemd160').update(data).digest();
}

/** `2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG` with the keys in ascending byte order. */
export function fundingWitnessScript(pubA: Uint8Array, pubB: Uint8Array): Uint8Array {
  const a = pub33(pubA, 'funding pubkey');
  const b = pub33(pubB, 'funding pubkey');
  const [first, second] = compareBytes(a, b) <= 0 ? [a, b] : [b, a];
  return build((s) => s.pushOp(OP.OP_2).pushData(first).pushData(second).pushOp(OP.OP_2).pushOp(OP.CHECKMULTISIG));
}

/** `OP_0 <SHA256(witnessScript)>` */
export function p2wsh(witnessScript: Uint8Array): Uint8Array {
  return build((s) => s.pushOp(OP.OP_0).pushData(buf(sha256(witnessScript))));
}

/** `OP_0 <HASH160(pubkey)>` */
export function p2wpkh(pubkey: Uint8Array): Uint8Array {
  return build((s) => s.pushOp(OP.OP_0).pushData(buf(hash160(pub33(pubkey, 'pubkey')))));
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
  return build((s) =>
    s
      .pushOp(OP.IF)
      .pushData(rev)
      .pushOp(OP.ELSE)
      .pushInt(toSelfDelay)
      .pushOp(OP.CSV)
      .pushOp(OP.DROP)
      .pushData(delayed)
      .pushOp(OP.ENDIF)
      .pushOp(OP.CHECKSIG),
  );
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
  const ws = build((s) => s.pushData(key).pushOp(OP.CHECKSIGVERIFY).pushOp(OP.OP_1).pushOp(OP.CSV));
  return { scriptPubKey: p2wsh(ws), witnessScript: ws };
}

/** Anchor: `<funding_pubkey> OP_CHECKSIG OP_IFDUP OP_NOTIF OP_16 OP_CHECKSEQUENCEVERIFY OP_ENDIF` */
export function anchorWitnessScript(fundingPubkey: Uint8Array): Uint8Array {
  const key = pub33(fundingPubkey, 'funding pubkey');
  return build((s) =>
    s.pushData(key).pushOp(OP.CHECKSIG).pushOp(OP.IFDUP).pushOp(OP.NOTIF).pushOp(OP.OP_16).pushOp(OP.CSV).pushOp(OP.ENDIF),
  );
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
  const revHash = buf(hash160(pub33(revocationPubkey, 'revocation pubkey')));
  const local = pub33(localHtlcPubkey, 'local htlc pubkey');
  const remote = pub33(remoteHtlcPubkey, 'remote htlc pubkey');
  return build((s) => {
    s.pushOp(OP.DUP).pushOp(OP.HASH160).pushData(revHash).pushOp(OP.EQUAL);
    s.pushOp(OP.IF).pushOp(OP.CHECKSIG);
    s.pushOp(OP.ELSE).pushData(remote).pushOp(OP.SWAP).pushOp(OP.SIZE).pushInt(32).pushOp(OP.EQUAL);
    s.pushOp(OP.NOTIF).pushOp(OP.DROP).pushOp(OP.OP_2).pushOp(OP.SWAP).pushData(local).pushOp(OP.OP_2).pushOp(OP.CHECKMULTISIG);
    s.pushOp(OP.ELSE).pushOp(OP.HASH160).pushData(ripemd160(paymentHash)).pushOp(OP.EQUALVERIFY).pushOp(OP.CHECKSIG);
    s.pushOp(OP.ENDIF);
    if (channelType === 'anchors_zero_fee_htlc') s.pushOp(OP.OP_1).pushOp(OP.CSV).pushOp(OP.DROP);
    s.pushOp(OP.ENDIF);
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
  const revHash = buf(hash160(pub33(revocationPubkey, 'revocation pubkey')));
  const local = pub33(localHtlcPubkey, 'local htlc pubkey');
  const remote = pub33(remoteHtlcPubkey, 'remote htlc pubkey');
  return build((s) => {
    s.pushOp(OP.DUP).pushOp(OP.HASH160).pushData(revHash).pushOp(OP.EQUAL);
    s.pushOp(OP.IF).pushOp(OP.CHECKSIG);
    s.pushOp(OP.ELSE).pushData(remote).pushOp(OP.SWAP).pushOp(OP.SIZE).pushInt(32).pushOp(OP.EQUAL);
    s.pushOp(OP.IF).pushOp(OP.HASH160).pushData(ripemd160(paymentHash)).pushOp(OP.EQUALVERIFY);
    s.pushOp(OP.OP_2).pushOp(OP.SWAP).pushData(local).pushOp(OP.OP_2).pushOp(OP.CHECKMULTISIG);
    s.pushOp(OP.ELSE).pushOp(OP.DROP).pushInt(cltvExpiry).pushOp(OP.CLTV).pushOp(OP.DROP).pushOp(OP.CHECKSIG);
    s.pushOp(OP.ENDIF);
    if (channelType === 'anchors_zero_fee_htlc') s.pushOp(OP.OP_1).pushOp(OP.CSV).pushOp(OP.DROP);
    s.pushOp(OP.ENDIF);
  });
}
