/**
 * The little the channel machine reads from a raw transaction: its txid and
 * one output (funding checks). Parsing comes from bcoin.
 */
import { createRequire } from 'node:module';
import { ChannelError } from './types.js';

const require = createRequire(import.meta.url);

interface BTx {
  hash(): Buffer;
  outputs: { value: number; script: { toRaw(): Buffer } }[];
}
const TX = require('bcoin/lib/primitives/tx') as { fromRaw(raw: Buffer): BTx };

export interface ParsedTx {
  /** Internal byte order. */
  txid: Uint8Array;
  outputs: { valueSat: bigint; scriptPubKey: Uint8Array }[];
}

export function parseTx(raw: Uint8Array): ParsedTx {
  let tx: BTx;
  try {
    tx = TX.fromRaw(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
  } catch (e) {
    throw new ChannelError('ERR_BAD_PARAMETERS', `not a transaction: ${(e as Error).message}`);
  }
  return {
    txid: new Uint8Array(tx.hash()),
    outputs: tx.outputs.map((o) => ({ valueSat: BigInt(o.value), scriptPubKey: new Uint8Array(o.script.toRaw()) })),
  };
}
