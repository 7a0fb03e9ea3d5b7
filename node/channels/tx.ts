/** Small transaction helpers the channel manager and the chain arbitrator share. */
import { bytesToHex } from '../../wire/bytes.js';
import { bcoin, hashToBytes } from '../chain/bcoin.js';

/** A txid in the usual display (reversed) order. */
export function displayHex(internal: Uint8Array): string {
  return bytesToHex(internal.slice().reverse());
}

/** bcoin reads only Node Buffers. */
export function buf(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Internal-order txid of a raw transaction. */
export function txidOf(raw: Uint8Array): Uint8Array {
  return hashToBytes(bcoin.TX.fromRaw(buf(raw)).hash('hex'));
}
