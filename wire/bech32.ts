/**
 * Bech32 and bech32m (BIP 173, BIP 350) strings, 5-bit word regrouping, and
 * segwit addresses.
 *
 * The string codec takes a length limit: segwit addresses keep BIP 173's 90
 * characters, BOLT 11 invoices pass `Infinity` (they are often longer).
 * Every failure is a `Bech32Error` with a code; nothing else is thrown for a
 * string input.
 */
import { AmpnodeError } from './errors.js';

export type Bech32ErrorCode =
  | 'ERR_BECH32_CHARS' // a character outside the charset, or outside printable ASCII in the hrp
  | 'ERR_BECH32_MIXED_CASE' // upper and lower case letters in one string
  | 'ERR_BECH32_SEPARATOR' // no '1', an empty hrp, or fewer than 6 characters after the last '1'
  | 'ERR_BECH32_LENGTH' // longer than the limit the caller set
  | 'ERR_BECH32_CHECKSUM' // the checksum does not verify for the expected variant
  | 'ERR_BECH32_PADDING'; // leftover bits when regrouping words into bytes

export class Bech32Error extends AmpnodeError<Bech32ErrorCode> {}

export type Bech32Variant = 'bech32' | 'bech32m';

/** The 32 characters, indexed by word value. */
export const BECH32_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

/** BIP 173's limit for addresses. */
export const BECH32_ADDRESS_MAX_LENGTH = 90;

/** Number of checksum words at the end of the data part. */
export const BECH32_CHECKSUM_WORDS = 6;

const SEPARATOR = '1';
const BECH32_CONST = 1;
const BECH32M_CONST = 0x2bc830a3;
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
const WORD_MASK = 0x1f;
const HRP_MIN_CHAR = 33;
const HRP_MAX_CHAR = 126;

const CHAR_TO_WORD: ReadonlyMap<string, number> = new Map([...BECH32_CHARSET].map((c, i) => [c, i]));

function variantConst(v: Bech32Variant): number {
  return v === 'bech32' ? BECH32_CONST : BECH32M_CONST;
}

function polymodStep(chk: number, value: number): number {
  const top = chk >>> 25;
  let c = ((chk & 0x1ffffff) << 5) ^ value;
  for (let i = 0; i < GENERATORS.length; i++) if ((top >>> i) & 1) c ^= GENERATORS[i]!;
  return c >>> 0;
}

function hrpChecksumState(hrp: string): number {
  let chk = 1;
  for (let i = 0; i < hrp.length; i++) chk = polymodStep(chk, hrp.charCodeAt(i) >> 5);
  chk = polymodStep(chk, 0);
  for (let i = 0; i < hrp.length; i++) chk = polymodStep(chk, hrp.charCodeAt(i) & WORD_MASK);
  return chk;
}

function checksumWords(hrp: string, words: ArrayLike<number>, variant: Bech32Variant): number[] {
  let chk = hrpChecksumState(hrp);
  for (let i = 0; i < words.length; i++) chk = polymodStep(chk, words[i]!);
  for (let i = 0; i < BECH32_CHECKSUM_WORDS; i++) chk = polymodStep(chk, 0);
  chk = (chk ^ variantConst(variant)) >>> 0;
  const out: number[] = [];
  for (let i = 0; i < BECH32_CHECKSUM_WORDS; i++) out.push((chk >>> (5 * (BECH32_CHECKSUM_WORDS - 1 - i))) & WORD_MASK);
  return out;
}

export interface Bech32Decoded {
  /** Lower-case human-readable part. */
  hrp: string;
  /** Data words (values 0..31), checksum removed. */
  words: Uint8Array;
}

/**
 * Decode a bech32 or bech32m string. `maxLength` is BIP 173's 90 unless given
 * (`Infinity` lifts it). The string must be all lower or all upper case; the
 * hrp comes back lower case.
 */
export function bech32Decode(str: string, variant: Bech32Variant, maxLength: number = BECH32_ADDRESS_MAX_LENGTH): Bech32Decoded {
  if (typeof str !== 'string') throw new Bech32Error('ERR_BECH32_CHARS', 'not a string');
  if (str.length > maxLength) throw new Bech32Error('ERR_BECH32_LENGTH', `${str.length} characters exceed the limit of ${maxLength}`);
  let hasLower = false;
  let hasUpper = false;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c < HRP_MIN_CHAR || c > HRP_MAX_CHAR) throw new Bech32Error('ERR_BECH32_CHARS', `character code ${c} at position ${i}`);
    if (c >= 0x61 && c <= 0x7a) hasLower = true;
    else if (c >= 0x41 && c <= 0x5a) hasUpper = true;
  }
  if (hasLower && hasUpper) throw new Bech32Error('ERR_BECH32_MIXED_CASE', 'mixed upper and lower case');
  const lower = str.toLowerCase();
  const sep = lower.lastIndexOf(SEPARATOR);
  if (sep < 0) throw new Bech32Error('ERR_BECH32_SEPARATOR', 'no separator');
  if (sep === 0) throw new Bech32Error('ERR_BECH32_SEPARATOR', 'empty human-readable part');
  if (lower.length - sep - 1 < BECH32_CHECKSUM_WORDS) throw new Bech32Error('ERR_BECH32_SEPARATOR', 'data part shorter than the checksum');
  const hrp = lower.slice(0, sep);
  const all = new Uint8Array(lower.length - sep - 1);
  for (let i = 0; i < all.length; i++) {
    const ch = lower[sep + 1 + i]!;
    const w = CHAR_TO_WORD.get(ch);
    if (w === undefined) throw new Bech32Error('ERR_BECH32_CHARS', `'${ch}' is not a bech32 character (position ${sep + 1 + i})`);
    all[i] = w;
  }
  let chk = hrpChecksumState(hrp);
  for (let i = 0; i < all.length; i++) chk = polymodStep(chk, all[i]!);
  if (chk !== variantConst(variant) >>> 0) throw new Bech32Error('ERR_BECH32_CHECKSUM', `invalid ${variant} checksum`);
  return { hrp, words: all.subarray(0, all.length - BECH32_CHECKSUM_WORDS) };
}

/** Encode lower-case bech32/bech32m; `maxLength` as in `bech32Decode`. Bad arguments are `Bech32Error`s. */
export function bech32Encode(
  hrp: string,
  words: ArrayLike<number>,
  variant: Bech32Variant,
  maxLength: number = BECH32_ADDRESS_MAX_LENGTH,
): string {
  if (hrp.length === 0) throw new Bech32Error('ERR_BECH32_SEPARATOR', 'empty human-readable part');
  for (let i = 0; i < hrp.length; i++) {
    const c = hrp.charCodeAt(i);
    if (c < HRP_MIN_CHAR || c > HRP_MAX_CHAR || (c >= 0x41 && c <= 0x5a))
      throw new Bech32Error('ERR_BECH32_CHARS', `hrp character code ${c} (the hrp must be lower-case printable ASCII)`);
  }
  let out = hrp + SEPARATOR;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!Number.isInteger(w) || w < 0 || w > WORD_MASK) throw new Bech32Error('ERR_BECH32_CHARS', `word ${w} at index ${i} is not 5 bits`);
    out += BECH32_CHARSET[w];
  }
  for (const w of checksumWords(hrp, words, variant)) out += BECH32_CHARSET[w];
  if (out.length > maxLength) throw new Bech32Error('ERR_BECH32_LENGTH', `${out.length} characters exceed the limit of ${maxLength}`);
  return out;
}

/** Bytes to 5-bit words, the last word zero-padded. */
export function bytesToWords(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil((bytes.length * 8) / 5));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[j++] = (acc >>> bits) & WORD_MASK;
    }
  }
  if (bits > 0) out[j] = (acc << (5 - bits)) & WORD_MASK;
  return out;
}

/**
 * 5-bit words to bytes. Strict (BIP 173's rule): the bits left over must be
 * fewer than 5 and all zero, else `ERR_BECH32_PADDING`.
 */
export function wordsToBytes(words: ArrayLike<number>): Uint8Array {
  const { out, acc, bits } = packWords(words, Math.floor((words.length * 5) / 8));
  if (bits >= 5) throw new Bech32Error('ERR_BECH32_PADDING', `${bits} bits left over (a whole unused word)`);
  if ((acc & ((1 << bits) - 1)) !== 0) throw new Bech32Error('ERR_BECH32_PADDING', 'non-zero padding bits');
  return out;
}

/** 5-bit words to bytes, zero-padding the end to a byte boundary (as BOLT 11 signs its data part). */
export function wordsToBytesPadded(words: ArrayLike<number>): Uint8Array {
  const { out, acc, bits, written } = packWords(words, Math.ceil((words.length * 5) / 8));
  if (bits > 0) out[written] = (acc << (8 - bits)) & 0xff;
  return out;
}

/** Packs 5-bit words into `length` bytes, whole bytes only; returns what is left over (`bits` bits of `acc`). */
function packWords(words: ArrayLike<number>, length: number): { out: Uint8Array; acc: number; bits: number; written: number } {
  const out = new Uint8Array(length);
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < words.length; i++) {
    acc = ((acc << 5) | (words[i]! & WORD_MASK)) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >>> bits) & 0xff;
    }
  }
  return { out, acc, bits, written: j };
}

// ---------------------------------------------------------------- segwit addresses

export const MAX_WITNESS_VERSION = 16;
export const MIN_WITNESS_PROGRAM_BYTES = 2;
export const MAX_WITNESS_PROGRAM_BYTES = 40;
const WITNESS_V0_PROGRAM_BYTES = [20, 32];

/** null when `program` is a valid witness program for `version` (BIP 141); else the reason. */
export function witnessProgramProblem(version: number, program: Uint8Array): string | null {
  if (!Number.isInteger(version) || version < 0 || version > MAX_WITNESS_VERSION) return `witness version ${version}`;
  if (program.length < MIN_WITNESS_PROGRAM_BYTES || program.length > MAX_WITNESS_PROGRAM_BYTES)
    return `witness program of ${program.length} bytes`;
  if (version === 0 && !WITNESS_V0_PROGRAM_BYTES.includes(program.length))
    return `witness v0 program of ${program.length} bytes (20 or 32 expected)`;
  return null;
}

/** A segwit address: bech32 for version 0, bech32m for 1..16 (BIP 350). */
export function encodeSegwitAddress(hrp: string, version: number, program: Uint8Array): string {
  const problem = witnessProgramProblem(version, program);
  if (problem !== null) throw new Bech32Error('ERR_BECH32_CHARS', `not a segwit output: ${problem}`);
  const words = new Uint8Array(1 + Math.ceil((program.length * 8) / 5));
  words[0] = version;
  words.set(bytesToWords(program), 1);
  return bech32Encode(hrp, words, version === 0 ? 'bech32' : 'bech32m');
}

/** Decode a segwit address whose hrp must be `hrp`. */
export function decodeSegwitAddress(hrp: string, address: string): { version: number; program: Uint8Array } {
  // the first data character is the witness version, which picks the checksum variant
  const first = address.charAt(address.lastIndexOf(SEPARATOR) + 1).toLowerCase();
  const d = bech32Decode(address, CHAR_TO_WORD.get(first) === 0 ? 'bech32' : 'bech32m');
  if (d.hrp !== hrp) throw new Bech32Error('ERR_BECH32_SEPARATOR', `hrp '${d.hrp}', expected '${hrp}'`);
  if (d.words.length < 1) throw new Bech32Error('ERR_BECH32_LENGTH', 'no witness version');
  const version = d.words[0]!;
  const program = wordsToBytes(d.words.subarray(1));
  const problem = witnessProgramProblem(version, program);
  if (problem !== null) throw new Bech32Error('ERR_BECH32_LENGTH', problem);
  return { version, program };
}
