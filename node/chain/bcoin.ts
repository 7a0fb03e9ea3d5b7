/**
 * A typed facade over bcoin 1.0.2 (CommonJS, untyped): the shapes of exactly
 * the parts ampnode uses, nothing more. In bcoin 1.0.2 hashes are hex strings
 * in internal byte order (`tx.hash('hex')`); `txid()`/`rhash()` give the
 * reversed display form. Amounts are JS numbers of satoshis.
 *
 * bcoin's own regtest uses address prefixes of its own (`rb1…`). Its magic,
 * genesis, ports aside, are those of Bitcoin Core and btcd, so this module
 * switches bcoin's regtest addresses and key prefixes to theirs (`bcrt1…`),
 * the only form lnd accepts, once, when first loaded.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface BScript {
  toRaw(): Buffer;
  isWitnessPubkeyhash(): boolean;
  isWitnessScripthash(): boolean;
  isUnspendable(): boolean;
}
export interface BScriptClass {
  fromRaw(data: Uint8Array): BScript;
  fromAddress(address: BAddress | string): BScript;
}

export interface BAddress {
  toString(network?: string): string;
  getHash(enc: 'hex'): string;
  isWitnessPubkeyhash(): boolean;
  isWitnessScripthash(): boolean;
  version: number;
}
export interface BAddressClass {
  fromString(address: string, network?: string): BAddress;
  fromScript(script: BScript): BAddress | null;
}

export interface BOutpoint {
  hash: string;
  index: number;
}
export interface BInput {
  prevout: BOutpoint;
}
export interface BOutput {
  value: number;
  script: BScript;
  isDust(rate?: number): boolean;
  getAddress(): BAddress | null;
}

export interface BTX {
  hash(enc: 'hex'): string;
  txid(): string;
  inputs: BInput[];
  outputs: BOutput[];
  toRaw(): Buffer;
  isCoinbase(): boolean;
  getVirtualSize(): number;
  getWeight(): number;
  /** Every input's script against the coins in `view`. */
  verify(view: BCoinView): boolean;
}
export interface BCoinView {
  addCoin(coin: BCoin): unknown;
}
export interface BTXClass {
  fromRaw(data: Uint8Array): BTX;
}

export interface BCoin {
  hash: string;
  index: number;
  value: number;
}
export interface BCoinClass {
  fromOptions(options: {
    version?: number;
    height: number;
    value: number;
    script: BScript;
    coinbase: boolean;
    hash: string;
    index: number;
  }): BCoin;
}

export interface BKeyRing {
  witness: boolean;
  getAddress(enc?: undefined, network?: string): BAddress;
  getProgram(): BScript;
  getPublicKey(): Buffer;
}
export interface BKeyRingClass {
  fromPrivate(key: Uint8Array, compress?: boolean): BKeyRing;
}

export interface BHDPrivateKey {
  privateKey: Buffer;
  publicKey: Buffer;
  derive(index: number, hardened?: boolean): BHDPrivateKey;
}
export interface BHDPrivateKeyClass {
  fromSeed(seed: Uint8Array): BHDPrivateKey;
}

export interface BCoinSelector {
  chosen: BCoin[];
  fee: number;
  change: number;
}
export interface BMTX {
  inputs: BInput[];
  outputs: BOutput[];
  view: BCoinView;
  /** Adds an input spending `coin` (and the coin to `view`). */
  addCoin(coin: BCoin): BInput;
  changeIndex: number;
  addOutput(script: BScript | BAddress, value: number): BOutput;
  fund(
    coins: BCoin[],
    options: { rate: number; changeAddress: BAddress; height?: number; depth?: number; subtractFee?: boolean | number },
  ): Promise<BCoinSelector>;
  sortMembers(): void;
  sign(rings: BKeyRing[]): number;
  isSigned(): boolean;
  verify(): boolean;
  getFee(): number;
  toTX(): BTX;
}
export interface BMTXClass {
  new (): BMTX;
  fromTX(tx: BTX): BMTX;
}

export interface BBlock {
  hash(enc: 'hex'): string;
  txs: BTX[];
  toRaw(): Buffer;
}
export interface BBlockClass {
  fromRaw(data: Uint8Array): BBlock;
}

export interface BChainEntry {
  hash: string;
  height: number;
  prevBlock: string;
}

export interface BDeploymentState {
  hasWitness(): boolean;
}

export interface BChain {
  tip: BChainEntry;
  height: number;
  state: BDeploymentState;
  getHash(height: number): Promise<string | null>;
  getEntry(hashOrHeight: string | number): Promise<BChainEntry | null>;
  getBlock(hash: string): Promise<BBlock | null>;
  isMainChain(entry: BChainEntry): Promise<boolean>;
  add(block: BBlock): Promise<BChainEntry | null>;
  invalidate(hash: string): Promise<void>;
  getCoin(hash: string, index: number): Promise<BCoin | null>;
}

export interface BMempool {
  tip: string;
  addTX(tx: BTX): Promise<unknown[] | null>;
  getTX(hash: string): BTX | null;
  has(hash: string): boolean;
}

export interface BMiner {
  mineBlock(tip: BChainEntry | null, address: BAddress): Promise<BBlock>;
}

export interface BTXMeta {
  tx: BTX;
  height: number;
  block: string | null;
  index: number;
}

/** A peer of the pool (a linked list): outbound or not, the height its version message announced. */
export interface BPoolPeer {
  outbound: boolean;
  height: number;
  next: BPoolPeer | null;
}

export interface BPool {
  broadcast(item: BTX): Promise<unknown>;
  peers: { size(): number; head(): BPoolPeer | null };
}

export interface BFees {
  estimateFee(target: number, smart: boolean): number;
}

export interface BFullNodeOptions {
  network: 'regtest';
  memory: boolean;
  prefix?: string;
  logLevel: 'none' | 'error' | 'warning' | 'info' | 'debug';
  workers: boolean;
  indexTX: boolean;
  listen: boolean;
  only?: string[];
  nodes?: string[];
  seeds?: string[];
  checkpoints?: boolean;
  maxOutbound?: number;
  persistentMempool?: boolean;
  port?: number;
  /** Where the pool listens (with `listen`), and the address it tells peers. */
  host?: string;
  publicHost?: string;
  publicPort?: number;
  maxInbound?: number;
  httpHost?: string;
  httpPort?: number;
}

export interface BFullNode {
  chain: BChain;
  mempool: BMempool;
  miner: BMiner;
  pool: BPool;
  fees: BFees;
  ensure(): Promise<void>;
  open(): Promise<void>;
  close(): Promise<void>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  startSync(): void;
  getMeta(hash: string): Promise<BTXMeta | null>;
  getCoin(hash: string, index: number): Promise<BCoin | null>;
  on(event: 'connect' | 'disconnect', listener: (entry: BChainEntry, block: BBlock) => void): void;
  on(event: 'reset' | 'reorganize', listener: (tip: BChainEntry) => void): void;
  on(event: 'tx', listener: (tx: BTX) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
}
export interface BFullNodeClass {
  new (options: BFullNodeOptions): BFullNode;
}

interface BNetworkPrefixes {
  addressPrefix: {
    pubkeyhash: number;
    scripthash: number;
    witnesspubkeyhash: number;
    witnessscripthash: number;
    bech32: string;
  };
  keyPrefix: {
    privkey: number;
    xpubkey: number;
    xprivkey: number;
    xpubkey58: string;
    xprivkey58: string;
    coinType: number;
  };
}

export interface Bcoin {
  FullNode: BFullNodeClass;
  TX: BTXClass;
  MTX: BMTXClass;
  Block: BBlockClass;
  Coin: BCoinClass;
  Script: BScriptClass;
  Address: BAddressClass;
  KeyRing: BKeyRingClass;
  HDPrivateKey: BHDPrivateKeyClass;
  networks: { regtest: BNetworkPrefixes };
  Network: { get(type: 'regtest'): BNetworkPrefixes };
  consensus: { COINBASE_MATURITY: number };
  policy: { MIN_RELAY: number };
}

export const bcoin = require('bcoin') as Bcoin;

/** The network name bcoin knows our chain by. */
export const NETWORK = 'regtest';

// Bitcoin Core / btcd regtest address and key prefixes (chaincfg.RegressionNetParams).
const coreRegtest: BNetworkPrefixes = {
  addressPrefix: { pubkeyhash: 0x6f, scripthash: 0xc4, witnesspubkeyhash: 0x03, witnessscripthash: 0x28, bech32: 'bcrt' },
  keyPrefix: { privkey: 0xef, xpubkey: 0x043587cf, xprivkey: 0x04358394, xpubkey58: 'tpub', xprivkey58: 'tprv', coinType: 1 },
};
for (const net of [bcoin.networks.regtest, bcoin.Network.get('regtest')]) {
  Object.assign(net.addressPrefix, coreRegtest.addressPrefix);
  Object.assign(net.keyPrefix, coreRegtest.keyPrefix);
}

// bcoin 1.0.2's readers accept only Node Buffers; the facade above promises Uint8Array input.
const asBuffer = (d: unknown): unknown =>
  d instanceof Uint8Array && !Buffer.isBuffer(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : d;
for (const cls of [bcoin.TX, bcoin.Block, bcoin.Script] as unknown as { fromRaw(d: unknown, enc?: unknown): unknown }[]) {
  const fromRaw = cls.fromRaw.bind(cls);
  cls.fromRaw = (d: unknown, enc?: unknown) => fromRaw(asBuffer(d), enc);
}
{
  const hd = bcoin.HDPrivateKey as unknown as { fromSeed(seed: unknown, network?: unknown): unknown };
  const fromSeed = hd.fromSeed.bind(hd);
  hd.fromSeed = (seed: unknown, network?: unknown) => fromSeed(asBuffer(seed), network);
}

/** Internal-order hex (bcoin's hash form) → bytes. */
export function hashToBytes(hash: string): Uint8Array {
  return new Uint8Array(Buffer.from(hash, 'hex'));
}

/** Bytes in internal order → bcoin's hash form. */
export function bytesToHash(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** A Buffer view of bytes (bcoin asserts Buffer.isBuffer on its inputs); no copy. */
export function buf(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A copy of a Buffer as a plain Uint8Array (never aliasing bcoin's memory). */
export function toBytes(buf: Buffer): Uint8Array {
  return new Uint8Array(buf);
}
