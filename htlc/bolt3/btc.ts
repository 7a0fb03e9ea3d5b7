/**
 * The part of bcoin (1.0.x) this layer uses, with narrow TypeScript types.
 *
 * bcoin ships CommonJS without type declarations, so it is loaded through
 * `createRequire` (only the primitives and script modules, not the whole
 * node) and described by the small interfaces below. Transactions, scripts,
 * outpoints and BIP 143 signature hashes all come from bcoin; signing itself
 * goes through wire/crypto.ts.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A bcoin script opcode list. */
export interface BScript {
  pushOp(op: number): BScript;
  pushData(data: Buffer): BScript;
  pushInt(n: number): BScript;
  compile(): BScript;
  toRaw(): Buffer;
}

export interface BOutpoint {
  /** Internal-order hex txid. */
  hash: string;
  index: number;
}

export interface BWitness {
  items: Buffer[];
  toRaw(): Buffer;
}

export interface BInput {
  prevout: BOutpoint;
  script: BScript;
  witness: BWitness;
  sequence: number;
}

export interface BOutput {
  value: number;
  script: BScript;
}

/** A bcoin transaction (TX or MTX). */
export interface Tx {
  version: number;
  locktime: number;
  inputs: BInput[];
  outputs: BOutput[];
  /** Serialization with witness data when any input has some. */
  toRaw(): Buffer;
  /** Reversed (RPC-order) hex txid. */
  txid(): string;
  /** Internal-order txid: a Buffer, or hex with 'hex'. */
  hash(): Buffer;
  hash(enc: 'hex'): string;
  clone(): Tx;
  refresh(): void;
  getWeight(): number;
  signatureHash(index: number, prev: BScript, value: number, type: number, version: 0 | 1): Buffer;
}

export interface MTXClass {
  new (): Tx & {
    addOutpoint(o: BOutpoint): BInput;
    addOutput(script: BScript, value: number): BOutput;
    toTX(): Tx;
  };
}

interface ScriptClass {
  new (): BScript;
  fromRaw(raw: Buffer): BScript;
}

interface WitnessClass {
  fromItems(items: Buffer[]): BWitness;
}

interface OutpointClass {
  new (hash: string, index: number): BOutpoint;
}

interface TXClass {
  fromRaw(raw: Buffer): Tx;
}

export const MTX = require('bcoin/lib/primitives/mtx') as MTXClass;
export const TX = require('bcoin/lib/primitives/tx') as TXClass;
export const Script = require('bcoin/lib/script/script') as ScriptClass;
export const Witness = require('bcoin/lib/script/witness') as WitnessClass;
export const Outpoint = require('bcoin/lib/primitives/outpoint') as OutpointClass;

const common = require('bcoin/lib/script/common') as {
  opcodes: Record<string, number>;
  hashType: { ALL: number; NONE: number; SINGLE: number; ANYONECANPAY: number };
};

/** Script opcodes by name (`OP_CHECKSIG`, ...). */
export const opcodes = common.opcodes;
/** SIGHASH type constants. */
export const hashType = common.hashType;

/** Segwit v0 (BIP 143) sighash version. */
export const SIGHASH_SEGWIT_V0 = 1 as const;

export function buf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
