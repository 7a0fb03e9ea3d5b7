/**
 * BOLT 3 closing transaction (cooperative close, legacy `closing_signed`):
 * version 2, locktime 0, the funding input with sequence 0xFFFFFFFF, at most two
 * outputs in BIP 69 order. The fee comes out of the opener's output and any
 * output below the dust limit is left out (its value goes to fees).
 */
import { bytesToHex, compareBytes } from '../../wire/bytes.js';
import { MTX, Outpoint, Script, buf } from './btc.js';
import { Bolt3Error } from './errors.js';
import type { ClosingOutput, ClosingParams, ClosingTx } from './types.js';

export function buildClosingTx(p: ClosingParams): ClosingTx {
  if (p.fundingOutpoint.txid.length !== 32) throw new Bolt3Error('ERR_BAD_PARAMS', 'funding txid must be 32 bytes');
  if (p.localMsat < 0n || p.remoteMsat < 0n || p.feeSat < 0n) throw new Bolt3Error('ERR_BAD_PARAMS', 'negative amount');
  if (p.localMsat + p.remoteMsat > p.fundingSat * 1000n) throw new Bolt3Error('ERR_BAD_PARAMS', 'balances exceed the funding amount');
  let localSat = p.localMsat / 1000n;
  let remoteSat = p.remoteMsat / 1000n;
  if (p.opener === 'local') localSat -= p.feeSat;
  else remoteSat -= p.feeSat;
  if (localSat < 0n || remoteSat < 0n) throw new Bolt3Error('ERR_BAD_PARAMS', 'the opener cannot pay the closing fee');

  const drafts: Omit<ClosingOutput, 'index'>[] = [];
  if (localSat >= p.dustLimitSat && localSat > 0n) drafts.push({ party: 'local', valueSat: localSat, scriptPubKey: p.localScriptPubKey });
  if (remoteSat >= p.dustLimitSat && remoteSat > 0n)
    drafts.push({ party: 'remote', valueSat: remoteSat, scriptPubKey: p.remoteScriptPubKey });
  drafts.sort((a, b) => (a.valueSat !== b.valueSat ? (a.valueSat < b.valueSat ? -1 : 1) : compareBytes(a.scriptPubKey, b.scriptPubKey)));

  const mtx = new MTX();
  mtx.version = 2;
  mtx.locktime = 0;
  const input = mtx.addOutpoint(new Outpoint(bytesToHex(p.fundingOutpoint.txid), p.fundingOutpoint.outputIndex));
  input.sequence = 0xffffffff;
  let sum = 0n;
  for (const d of drafts) {
    mtx.addOutput(Script.fromRaw(buf(d.scriptPubKey)), Number(d.valueSat));
    sum += d.valueSat;
  }
  const tx = mtx.toTX();
  return { tx, txid: tx.txid(), outputs: drafts.map((d, index) => ({ index, ...d })), feeSat: p.fundingSat - sum };
}

/** Size in bytes of a script's length prefix plus the script. */
function varScriptSize(s: Uint8Array): number {
  return (s.length < 0xfd ? 1 : 3) + s.length;
}

/**
 * Weight of the signed closing transaction with the given outputs (null = no
 * output), assuming 73-byte DER signatures (an upper bound) and the 71-byte
 * 2-of-2 witness script. Fee = feeratePerKw × weight / 1000.
 */
export function closingTxWeight(localScriptPubKey: Uint8Array | null, remoteScriptPubKey: Uint8Array | null): number {
  // version 4 + input count 1 + input (36 outpoint + 1 empty scriptSig + 4 sequence) + output count 1 + locktime 4
  let base = 4 + 1 + 41 + 1 + 4;
  for (const s of [localScriptPubKey, remoteScriptPubKey]) if (s !== null) base += 8 + varScriptSize(s);
  // marker+flag 2, item count 1, empty 1, two (1 + 73) signatures, (1 + 71) script
  const witness = 2 + 1 + 1 + 2 * 74 + 72;
  return base * 4 + witness;
}
