/**
 * The settled-set filter: which set_ids may have settled, in a fixed amount of memory (a Bloom filter).
 *
 * The first shard of every new AMP set must learn whether its set_id settled before (a settled set is not paid
 * twice). Asking the store costs a read per set; this filter answers "certainly not" for nearly every new set in a
 * few nanoseconds, so only the rare "maybe" reads. It holds every set_id added since the registry started, and once
 * `loaded` (the registry reads the stored lists of sets in the background after it starts) every set_id the store
 * holds: until then its "no" means nothing and the registry reads.
 *
 * Memory is fixed (`bits`): as sets accumulate, false positives grow (with 2^24 bits and 4 probes, 0.2 % at 1 000 000
 * sets, 2 % at 2 000 000, 24 % at 5 000 000), each costing a store read, never a wrong answer. The probes mix the
 * set_id (which the sender chooses) with a random key of this filter, so a sender cannot aim its set_ids at bits
 * already set.
 */
import { randomBytes } from '../../wire/crypto.js';
import { InvoiceError } from './types.js';

/** Probes per set_id. */
const PROBES = 4;
const GOLDEN = 0x9e3779b1;

export class SettledSetFilter {
  private readonly words: Uint32Array;
  private readonly shift: number;
  private readonly key: Uint32Array;
  /** Every set_id the store held when the registry started has been added. */
  loaded = false;
  /** set_ids added. */
  count = 0;

  constructor(bits: number) {
    if (!Number.isInteger(Math.log2(bits)) || bits < 1024 || bits > 2 ** 32)
      throw new InvoiceError('ERR_INVOICE_ARGUMENT', `settled-set filter size must be a power of two from 2^10 to 2^32 bits, got ${bits}`);
    this.words = new Uint32Array(bits / 32);
    this.shift = 32 - Math.log2(bits);
    const k = randomBytes(4 * PROBES);
    this.key = new Uint32Array(k.buffer, k.byteOffset, PROBES);
  }

  /** Bit `p` of set_id `id`: its p-th little-endian word, keyed, multiplied by an odd constant, top bits. */
  private bit(id: Uint8Array, p: number): number {
    const at = 4 * p;
    const w = (id[at]! | (id[at + 1]! << 8) | (id[at + 2]! << 16) | (id[at + 3]! << 24)) ^ this.key[p]!;
    const x = Math.imul(w ^ (w >>> 15), GOLDEN);
    return this.shift === 0 ? x >>> 0 : x >>> this.shift;
  }

  add(setId: Uint8Array): void {
    for (let p = 0; p < PROBES; p++) {
      const b = this.bit(setId, p);
      this.words[b >>> 5]! |= 1 << (b & 31);
    }
    this.count++;
  }

  /** False: set_id `setId` certainly has not settled (once loaded). True: it may have. */
  mayHold(setId: Uint8Array): boolean {
    if (!this.loaded) return true;
    for (let p = 0; p < PROBES; p++) {
      const b = this.bit(setId, p);
      if ((this.words[b >>> 5]! & (1 << (b & 31))) === 0) return false;
    }
    return true;
  }
}
