/**
 * The on-chain wallet: BIP32 keys from one seed, BIP84 P2WPKH addresses
 * (m/84'/1'/0'/{0 receive, 1 change}/i, coin type 1 as on every test
 * network), UTXOs followed block by block through the chain backend, coin
 * selection and signing by bcoin's MTX, and the funding primitive of the
 * channel layer: a signed transaction paying a 2-of-2 P2WSH that is kept (its
 * inputs locked) until the channel layer says publish or abandon.
 *
 * Shape: the wallet keeps its own transactions (txid → raw tx, block) and
 * derives the UTXO set from them, so a reorg only has to move transactions
 * between "in block B" and "unconfirmed" (coinbases of a lost block vanish);
 * conflicts confirmed by someone else evict our unconfirmed spends. State is
 * written to the store (a `wallet` sublevel) in one batch per change, together
 * with the last synced block; on open the wallet walks back over blocks that
 * left the best chain and rescans forward from there.
 *
 * Units: amounts are `bigint` satoshis (`…Sat`); wallet feerates are sat/vB
 * (`satPerVbyte`); Lightning feerates are sat/kw (`feeratePerKw`).
 */
import type { KvStore, BatchOp } from '../../db/store.js';
import { ChainError, FEERATE_PER_KW_FLOOR } from '../../htlc/chain.js';
import type { BcoinChainBackend, ChainFollower } from '../chain/backend.js';
import {
  NETWORK,
  bcoin,
  buf,
  bytesToHash,
  hashToBytes,
  toBytes,
  type BAddress,
  type BBlock,
  type BCoin,
  type BHDPrivateKey,
  type BKeyRing,
  type BMTX,
  type BScript,
  type BTX,
} from '../chain/bcoin.js';
import { WalletError } from './errors.js';
import { loadOrCreateSeed } from './seed.js';

export interface WalletOptions {
  chain: BcoinChainBackend;
  /** The node's store; the wallet keeps its records under `sublevel('wallet')`. */
  store: KvStore;
  /** The seed itself (16–64 bytes), e.g. in tests. Exactly one of `seed` / `seedPath`. */
  seed?: Uint8Array;
  /** A seed file (hex, mode 0600), created on first use. */
  seedPath?: string;
  /** Unused addresses watched past the last used one on each branch. Default 20. */
  lookahead?: number;
  /** For a wallet without saved state: the first height to scan. Default: 0, or the tip for a newly created seed. */
  rescanFrom?: number;
}

export interface WalletAddress {
  address: string;
  /** The P2WPKH scriptPubKey (22 bytes: OP_0 <20-byte key hash>). */
  script: Uint8Array;
}

export interface WalletBalance {
  /** Spendable now: confirmed, mature, not locked. */
  confirmedSat: bigint;
  /** Ours but not yet in a block (received, or change of our own unconfirmed spends). */
  unconfirmedSat: bigint;
  /** Inputs of funding transactions built but not yet published or abandoned. */
  lockedSat: bigint;
  /** Coinbase outputs with fewer than 100 confirmations. */
  immatureSat: bigint;
}

export interface WalletUtxo {
  txid: Uint8Array;
  outputIndex: number;
  valueSat: bigint;
  script: Uint8Array;
  /** -1 while unconfirmed. */
  height: number;
  coinbase: boolean;
  locked: boolean;
}

export interface SpendOptions {
  /** Feerate in sat/vB; default: the chain's estimate for 6 blocks. */
  satPerVbyte?: number;
  /** Confirmations a coin needs to be spent (0 allows our own unconfirmed outputs). Default 1. */
  minConfs?: number;
}

export interface FundingRequest {
  /** The funding output's scriptPubKey: P2WSH, `OP_0 <32-byte SHA256(witness script)>`. */
  script: Uint8Array;
  amountSat: bigint;
  /** Feerate in sat/kw; default: the chain's estimate for 6 blocks. */
  feeratePerKw?: number;
  minConfs?: number;
}

export interface PendingFunding {
  /** 32 bytes, internal order: the key for `publishFunding` / `abandonFunding`. */
  txid: Uint8Array;
  /** The signed transaction (with witnesses). */
  tx: Uint8Array;
  /** Index of the P2WSH funding output in `tx`. */
  outputIndex: number;
  amountSat: bigint;
  feeSat: bigint;
}

export interface SentTransaction {
  txid: Uint8Array;
  tx: Uint8Array;
  feeSat: bigint;
}

export interface WalletTransaction {
  txid: Uint8Array;
  tx: Uint8Array;
  /** -1 while unconfirmed. */
  height: number;
  /** Received minus spent by this wallet, in satoshis. */
  netSat: bigint;
}

const COINBASE_MATURITY = bcoin.consensus.COINBASE_MATURITY;
const MAX_MONEY_SAT = 21_000_000n * 100_000_000n;
const MIN_RELAY_PER_KVB = bcoin.policy.MIN_RELAY;
/** sat/vB above which a feerate is surely a unit mistake. */
const MAX_SAT_PER_VBYTE = 10_000;
const RECENT_BLOCKS = 144;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface KeyInfo {
  branch: 0 | 1;
  index: number;
  ring: BKeyRing;
}

interface WTx {
  hash: string;
  tx: BTX;
  raw: Uint8Array;
  height: number;
  block: string | null;
  seq: number;
}

interface Funding {
  hash: string;
  raw: Uint8Array;
  outputIndex: number;
  amountSat: bigint;
  feeSat: bigint;
  inputs: string[];
}

interface Meta {
  v: 1;
  fingerprint: string;
  next: [number, number];
  height: number;
  /** [height, hash] of the last RECENT_BLOCKS blocks processed, ascending. */
  recent: [number, string][];
  seq: number;
}

interface Credit {
  hash: string;
  index: number;
  value: number;
  script: BScript;
  scriptHex: string;
  height: number;
  coinbase: boolean;
}

const K_META = enc.encode('m');
const P_TX = 't';
const P_FUND = 'f';

function key(prefix: string, id: string): Uint8Array {
  return enc.encode(prefix + id);
}

function opKey(hash: string, index: number): string {
  return `${hash}:${index}`;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export class Wallet implements ChainFollower {
  private readonly chain: BcoinChainBackend;
  private readonly db: KvStore;
  private readonly account: BHDPrivateKey;
  private readonly branches: [BHDPrivateKey, BHDPrivateKey];
  private readonly lookahead: number;
  private readonly keys = new Map<string, KeyInfo>();
  private readonly derived: [number, number] = [0, 0];
  private readonly txs = new Map<string, WTx>();
  private readonly fundings = new Map<string, Funding>();
  private meta: Meta;
  private cache: { credits: Map<string, Credit>; spentBy: Map<string, string> } | null = null;
  private mutex: Promise<void> = Promise.resolve();
  private following: { cancel(): void } | null = null;
  private closed = false;

  private constructor(chain: BcoinChainBackend, db: KvStore, seed: Uint8Array, lookahead: number, meta: Meta) {
    this.chain = chain;
    this.db = db;
    const master = bcoin.HDPrivateKey.fromSeed(buf(seed));
    this.account = master.derive(84, true).derive(1, true).derive(0, true);
    this.branches = [this.account.derive(0), this.account.derive(1)];
    this.lookahead = lookahead;
    this.meta = meta;
  }

  /** Open (or create) the wallet, catch up with the chain, and start following it. */
  static async open(options: WalletOptions): Promise<Wallet> {
    if ((options.seed === undefined) === (options.seedPath === undefined)) {
      throw new WalletError('ERR_SEED', 'give exactly one of seed and seedPath');
    }
    let seed: Uint8Array;
    let created = false;
    if (options.seed !== undefined) {
      if (options.seed.length < 16 || options.seed.length > 64) throw new WalletError('ERR_SEED', 'seed must be 16–64 bytes');
      seed = options.seed;
    } else {
      ({ seed, created } = await loadOrCreateSeed(options.seedPath!));
    }
    const lookahead = options.lookahead ?? 20;
    if (!Number.isSafeInteger(lookahead) || lookahead < 1 || lookahead > 1000)
      throw new WalletError('ERR_SEED', 'lookahead must be 1…1000');
    const db = options.store.sublevel('wallet');
    const fingerprint = hex(bcoin.HDPrivateKey.fromSeed(buf(seed)).publicKey).slice(0, 16);
    const saved = await db.get(K_META);
    let meta: Meta;
    if (saved !== undefined) {
      meta = JSON.parse(dec.decode(saved)) as Meta;
      if (meta.fingerprint !== fingerprint) throw new WalletError('ERR_SEED', 'the store holds a wallet of another seed');
    } else {
      const tip = options.chain.tip().height;
      const from = options.rescanFrom ?? (created ? tip + 1 : 0);
      meta = { v: 1, fingerprint, next: [0, 0], height: Math.max(-1, Math.min(from, tip + 1) - 1), recent: [], seq: 0 };
    }
    const w = new Wallet(options.chain, db, seed, lookahead, meta);
    await w.load();
    await options.chain.exclusive(async () => {
      await w.catchUp();
      w.following = options.chain.follow(w);
      // Our unconfirmed transactions may have been lost while we were away (a rewind, a restart of the chain).
      await w.rebroadcast();
    });
    return w;
  }

  // ---- addresses ----

  /** A fresh receive address (never handed out before); coins sent to it are recognised. */
  async newAddress(): Promise<WalletAddress> {
    return this.locked(async () => this.issue(0));
  }

  /** A fresh change-branch address, e.g. for a channel's shutdown script. */
  async newChangeAddress(): Promise<WalletAddress> {
    return this.locked(async () => this.issue(1));
  }

  /** Whether `script` (a scriptPubKey) belongs to this wallet. */
  isMine(script: Uint8Array): boolean {
    return this.keys.has(hex(script));
  }

  // ---- balances and coins ----

  balance(): WalletBalance {
    const b: WalletBalance = { confirmedSat: 0n, unconfirmedSat: 0n, lockedSat: 0n, immatureSat: 0n };
    for (const u of this.utxos()) {
      const v = BigInt(u.value);
      if (this.isLocked(u)) b.lockedSat += v;
      else if (u.height < 0) b.unconfirmedSat += v;
      else if (!this.mature(u)) b.immatureSat += v;
      else b.confirmedSat += v;
    }
    return b;
  }

  listUnspent(): WalletUtxo[] {
    return this.utxos().map((u) => ({
      txid: hashToBytes(u.hash),
      outputIndex: u.index,
      valueSat: BigInt(u.value),
      script: toBytes(u.script.toRaw()),
      height: u.height,
      coinbase: u.coinbase,
      locked: this.isLocked(u),
    }));
  }

  /** Our transactions, oldest first. */
  transactions(): WalletTransaction[] {
    const { credits } = this.derive();
    return [...this.txs.values()]
      .sort((a, b) => a.seq - b.seq)
      .map((w) => {
        let net = 0n;
        w.tx.outputs.forEach((_, i) => {
          const c = credits.get(opKey(w.hash, i));
          if (c) net += BigInt(c.value);
        });
        for (const input of w.tx.inputs) {
          const c = credits.get(opKey(input.prevout.hash, input.prevout.index));
          if (c && !w.tx.isCoinbase()) net -= BigInt(c.value);
        }
        return { txid: hashToBytes(w.hash), tx: w.raw, height: w.height, netSat: net };
      });
  }

  /** The height of the last block the wallet has processed. */
  syncedHeight(): number {
    return this.meta.height;
  }

  // ---- spending ----

  /** Pay `amountSat` to `address`, sign, broadcast. Nothing changes if any step fails. */
  async sendToAddress(address: string, amountSat: bigint, options: SpendOptions = {}): Promise<SentTransaction> {
    const script = parseAddress(address);
    checkAmount(amountSat);
    return this.locked(async () => {
      const rate = await this.ratePerKvB(options.satPerVbyte === undefined ? undefined : satPerVbyteToPerKvB(options.satPerVbyte));
      const { mtx, changeUsed } = await this.build(script, amountSat, rate, options.minConfs ?? 1);
      const tx = mtx.toTX();
      try {
        await this.chain.broadcast(toBytes(tx.toRaw()));
      } catch (e) {
        throw new WalletError('ERR_BROADCAST', (e as Error).message, { cause: e });
      }
      const ops: BatchOp[] = [];
      if (changeUsed) this.bumpChange();
      this.addTx(tx, -1, null, ops);
      await this.commit(ops);
      return { txid: hashToBytes(tx.hash('hex')), tx: toBytes(tx.toRaw()), feeSat: BigInt(mtx.getFee()) };
    });
  }

  /**
   * Build and sign a transaction paying `amountSat` to the P2WSH `script`, and
   * keep it: nothing is broadcast, its inputs stay locked (across restarts)
   * until `publishFunding` or `abandonFunding`.
   */
  async createFunding(request: FundingRequest): Promise<PendingFunding> {
    const s = request.script;
    if (!(s instanceof Uint8Array) || s.length !== 34 || s[0] !== 0x00 || s[1] !== 0x20) {
      throw new WalletError('ERR_INVALID_SCRIPT', 'funding script must be P2WSH (OP_0 <32 bytes>)');
    }
    checkAmount(request.amountSat);
    const script = bcoin.Script.fromRaw(buf(s));
    return this.locked(async () => {
      const perKw = request.feeratePerKw;
      if (perKw !== undefined && (!Number.isFinite(perKw) || perKw < FEERATE_PER_KW_FLOOR || perKw > MAX_SAT_PER_VBYTE * 250)) {
        throw new WalletError('ERR_INVALID_FEERATE', `feeratePerKw ${perKw} is outside ${FEERATE_PER_KW_FLOOR}…${MAX_SAT_PER_VBYTE * 250}`);
      }
      const rate = await this.ratePerKvB(perKw === undefined ? undefined : Math.ceil(perKw * 4));
      const { mtx, changeUsed } = await this.build(script, request.amountSat, rate, request.minConfs ?? 1);
      const tx = mtx.toTX();
      const hash = tx.hash('hex');
      const outputIndex = tx.outputs.findIndex((o) => hex(o.script.toRaw()) === hex(s) && BigInt(o.value) === request.amountSat);
      const f: Funding = {
        hash,
        raw: toBytes(tx.toRaw()),
        outputIndex,
        amountSat: request.amountSat,
        feeSat: BigInt(mtx.getFee()),
        inputs: tx.inputs.map((i) => opKey(i.prevout.hash, i.prevout.index)),
      };
      const ops: BatchOp[] = [];
      if (changeUsed) this.bumpChange();
      this.fundings.set(hash, f);
      ops.push({ type: 'put', key: key(P_FUND, hash), value: encodeFunding(f) });
      await this.commit(ops);
      return { txid: hashToBytes(hash), tx: f.raw, outputIndex, amountSat: f.amountSat, feeSat: f.feeSat };
    });
  }

  /**
   * Pays the fee of a transaction that carries none of its own (the second-stage HTLC transaction of an anchor
   * channel): adds our confirmed coins and a change output so that the whole pays `feeratePerKw`, signs our
   * inputs, lets `complete` sign the inputs that are not ours (it gets the funded transaction and returns it
   * signed), checks every input against `foreignCoins`, broadcasts and records it. `weight` is the given
   * transaction's own weight, witnesses included. Its inputs and outputs keep their places (ours come after
   * them). Nothing changes if any step fails.
   */
  async payFeeAndBroadcast(req: {
    tx: Uint8Array;
    weight: number;
    feeratePerKw: number;
    foreignCoins: { valueSat: bigint; scriptPubKey: Uint8Array }[];
    complete(funded: Uint8Array): Uint8Array;
  }): Promise<SentTransaction> {
    const perKw = req.feeratePerKw;
    if (!Number.isFinite(perKw) || perKw < FEERATE_PER_KW_FLOOR || perKw > MAX_SAT_PER_VBYTE * 250) {
      throw new WalletError('ERR_INVALID_FEERATE', `feeratePerKw ${perKw} is outside ${FEERATE_PER_KW_FLOOR}…${MAX_SAT_PER_VBYTE * 250}`);
    }
    return this.locked(async () => {
      if (this.closed) throw new WalletError('ERR_WALLET_CLOSED', 'wallet is closed');
      const template = bcoin.TX.fromRaw(buf(req.tx));
      if (template.inputs.length !== req.foreignCoins.length)
        throw new WalletError('ERR_INVALID_SCRIPT', 'one coin per input of the transaction is needed');
      const foreignIn = req.foreignCoins.reduce((a, c) => a + c.valueSat, 0n);
      const outs = template.outputs.reduce((a: bigint, o: { value: number }) => a + BigInt(o.value), 0n);
      const coins = this.utxos()
        .filter((c) => !this.isLocked(c) && this.mature(c) && c.height >= 0)
        .sort((a, b) => b.value - a.value);
      const change = this.keyAt(1, this.meta.next[1]);
      // per P2WPKH input: 41 bytes × 4 + a witness of at most 109 bytes; the change output: 31 bytes × 4
      const IN_WEIGHT = 41 * 4 + 109;
      const CHANGE_WEIGHT = 31 * 4;
      let picked = 0;
      let ours = 0n;
      let feeSat = 0n;
      for (const c of coins) {
        picked++;
        ours += BigInt(c.value);
        const weight = BigInt(req.weight + picked * IN_WEIGHT + CHANGE_WEIGHT);
        feeSat = (weight * BigInt(Math.ceil(perKw)) + 999n) / 1000n;
        if (foreignIn + ours - outs - feeSat >= 546n) break;
      }
      const changeSat = foreignIn + ours - outs - feeSat;
      if (picked === 0 || changeSat < 546n)
        throw new WalletError('ERR_INSUFFICIENT_FUNDS', `cannot pay a fee of ${feeSat} sat from ${this.spendableSat([])} + ${ours} sat`);
      const mtx = bcoin.MTX.fromTX(template);
      template.inputs.forEach((input, i) => {
        const fc = req.foreignCoins[i]!;
        mtx.view.addCoin(
          bcoin.Coin.fromOptions({
            version: 2,
            height: -1,
            value: Number(fc.valueSat),
            script: bcoin.Script.fromRaw(buf(fc.scriptPubKey)),
            coinbase: false,
            hash: input.prevout.hash,
            index: input.prevout.index,
          }),
        );
      });
      const { credits } = this.derive();
      const rings: BKeyRing[] = [];
      for (const c of coins.slice(0, picked)) {
        mtx.addCoin(
          bcoin.Coin.fromOptions({
            version: 1,
            height: c.height,
            value: c.value,
            script: c.script,
            coinbase: c.coinbase,
            hash: c.hash,
            index: c.index,
          }),
        );
        const k = this.keys.get(credits.get(opKey(c.hash, c.index))!.scriptHex);
        if (!k) throw new WalletError('ERR_INSUFFICIENT_FUNDS', 'selected a coin without its key');
        rings.push(k.ring);
      }
      mtx.addOutput(change.ring.getProgram(), Number(changeSat));
      mtx.sign(rings);
      const done = bcoin.TX.fromRaw(buf(req.complete(toBytes(mtx.toTX().toRaw()))));
      // what came back is ours as we built it, with its other inputs signed
      if (done.hash('hex') !== mtx.toTX().hash('hex'))
        throw new WalletError('ERR_BROADCAST', 'the completed transaction is not the one funded');
      if (!done.verify(mtx.view)) throw new WalletError('ERR_BROADCAST', 'the completed transaction does not verify');
      try {
        await this.chain.broadcast(toBytes(done.toRaw()));
      } catch (e) {
        throw new WalletError('ERR_BROADCAST', (e as Error).message, { cause: e });
      }
      const ops: BatchOp[] = [];
      this.bumpChange();
      this.addTx(done, -1, null, ops);
      await this.commit(ops);
      return { txid: hashToBytes(done.hash('hex')), tx: toBytes(done.toRaw()), feeSat };
    });
  }

  /** Broadcast a pending funding transaction; its inputs are then spent by it. */
  async publishFunding(txid: Uint8Array): Promise<void> {
    return this.locked(async () => {
      const f = this.funding(txid);
      try {
        await this.chain.broadcast(f.raw);
      } catch (e) {
        throw new WalletError('ERR_BROADCAST', (e as Error).message, { cause: e });
      }
      const ops: BatchOp[] = [];
      this.fundings.delete(f.hash);
      ops.push({ type: 'del', key: key(P_FUND, f.hash) });
      this.addTx(bcoin.TX.fromRaw(buf(f.raw)), -1, null, ops);
      await this.commit(ops);
    });
  }

  /** Forget a pending funding transaction and unlock its inputs. */
  async abandonFunding(txid: Uint8Array): Promise<void> {
    return this.locked(async () => {
      const f = this.funding(txid);
      this.fundings.delete(f.hash);
      await this.commit([{ type: 'del', key: key(P_FUND, f.hash) }]);
    });
  }

  pendingFundings(): PendingFunding[] {
    return [...this.fundings.values()].map((f) => ({
      txid: hashToBytes(f.hash),
      tx: f.raw,
      outputIndex: f.outputIndex,
      amountSat: f.amountSat,
      feeSat: f.feeSat,
    }));
  }

  /** Stop following the chain. The store is the caller's to close. */
  async close(): Promise<void> {
    this.following?.cancel();
    this.following = null;
    await this.locked(async () => {
      this.closed = true;
    });
  }

  // ---- ChainFollower (called by the backend, in order) ----

  async blockConnected(height: number, hash: string, block: BBlock): Promise<void> {
    await this.locked(() => this.connect(height, hash, block));
  }

  async blockDisconnected(height: number, hash: string): Promise<void> {
    await this.locked(() => this.disconnect(height, hash));
    // Put our transactions of the lost block back in the mempool once the
    // backend has finished this round (after `invalidateblock` bcoin drops them).
    void this.chain.exclusive(() => this.rebroadcast()).catch(() => {});
  }

  async mempoolTx(tx: BTX): Promise<void> {
    await this.locked(async () => {
      // a transaction the backend delivers after close() is dropped (the store may be closed already)
      if (this.closed || this.txs.has(tx.hash('hex')) || !this.relevant(tx)) return;
      const ops: BatchOp[] = [];
      this.addTx(tx, -1, null, ops);
      await this.commit(ops);
    });
  }

  // ---- internals: chain following ----

  private async catchUp(): Promise<void> {
    // Walk back over blocks that are no longer on the best chain.
    for (;;) {
      const last = this.meta.recent[this.meta.recent.length - 1];
      if (!last || last[0] !== this.meta.height) break;
      if ((await this.chain.getHash(last[0])) === last[1]) break;
      await this.disconnect(last[0], last[1]);
    }
    const tip = this.chain.tip().height;
    for (let h = this.meta.height + 1; h <= tip; h++) {
      const hash = await this.chain.getHash(h);
      const block = hash === null ? null : await this.chain.getBlock(hash);
      if (hash === null || block === null) break;
      await this.connect(h, hash, block);
    }
  }

  private async connect(height: number, hash: string, block: BBlock): Promise<void> {
    if (this.closed) return;
    const recent = this.meta.recent;
    const have = recent.find(([h]) => h === height);
    if (have && have[1] === hash) return; // already processed
    // A block at a height we already hold: what we hold above it left the chain.
    for (let last = recent[recent.length - 1]; last && last[0] >= height; last = recent[recent.length - 1]) {
      await this.disconnect(last[0], last[1]);
    }
    const ops: BatchOp[] = [];
    for (const tx of block.txs) {
      const txHash = tx.hash('hex');
      // A confirmed spend of an outpoint our unconfirmed transaction spends evicts ours.
      if (!tx.isCoinbase()) {
        const spends = new Set(tx.inputs.map((i) => opKey(i.prevout.hash, i.prevout.index)));
        for (const w of [...this.txs.values()]) {
          if (w.hash === txHash || w.height !== -1) continue;
          if (w.tx.inputs.some((i) => spends.has(opKey(i.prevout.hash, i.prevout.index)))) this.removeTx(w.hash, ops);
        }
        for (const k of spends) {
          for (const f of this.fundings.values()) {
            if (f.hash !== txHash && f.inputs.includes(k)) {
              this.fundings.delete(f.hash);
              ops.push({ type: 'del', key: key(P_FUND, f.hash) });
            }
          }
        }
      }
      if (this.txs.has(txHash) || this.relevant(tx)) this.addTx(tx, height, hash, ops);
    }
    this.meta.height = height;
    recent.push([height, hash]);
    if (recent.length > RECENT_BLOCKS) recent.shift();
    await this.commit(ops);
  }

  private async disconnect(height: number, hash: string): Promise<void> {
    if (this.closed) return;
    const recent = this.meta.recent;
    const last = recent[recent.length - 1];
    if (!last || last[0] !== height || last[1] !== hash) return; // not a block we processed
    const ops: BatchOp[] = [];
    for (const w of [...this.txs.values()]) {
      if (w.block !== hash) continue;
      if (w.tx.isCoinbase()) this.removeTx(w.hash, ops);
      else {
        w.height = -1;
        w.block = null;
        ops.push({ type: 'put', key: key(P_TX, w.hash), value: encodeTx(w) });
      }
    }
    recent.pop();
    this.meta.height = height - 1;
    this.cache = null;
    await this.commit(ops);
  }

  private async rebroadcast(): Promise<void> {
    const pending = [...this.txs.values()].filter((w) => w.height === -1).sort((a, b) => a.seq - b.seq);
    for (const w of pending) {
      try {
        await this.chain.broadcast(w.raw);
      } catch (e) {
        if (!(e instanceof ChainError)) throw e;
      }
    }
  }

  private relevant(tx: BTX): boolean {
    for (const o of tx.outputs) if (this.keys.has(hex(o.script.toRaw()))) return true;
    if (tx.isCoinbase()) return false;
    const { credits } = this.derive();
    for (const i of tx.inputs) if (credits.has(opKey(i.prevout.hash, i.prevout.index))) return true;
    return false;
  }

  private addTx(tx: BTX, height: number, block: string | null, ops: BatchOp[]): void {
    const hash = tx.hash('hex');
    let w = this.txs.get(hash);
    if (w) {
      if (w.height === height && w.block === block) return;
      w.height = height;
      w.block = block;
    } else {
      w = { hash, tx, raw: toBytes(tx.toRaw()), height, block, seq: ++this.meta.seq };
      this.txs.set(hash, w);
    }
    ops.push({ type: 'put', key: key(P_TX, hash), value: encodeTx(w) });
    // Addresses used on-chain move the lookahead window forward.
    for (const o of tx.outputs) {
      const k = this.keys.get(hex(o.script.toRaw()));
      if (k && k.index >= this.meta.next[k.branch]) {
        this.meta.next[k.branch] = k.index + 1;
        this.extend(k.branch);
      }
    }
    this.cache = null;
  }

  /** Remove an unconfirmed (or lost coinbase) transaction and everything of ours spending it. */
  private removeTx(hash: string, ops: BatchOp[]): void {
    const w = this.txs.get(hash);
    if (!w) return;
    this.txs.delete(hash);
    ops.push({ type: 'del', key: key(P_TX, hash) });
    this.cache = null;
    for (const other of [...this.txs.values()]) {
      if (other.tx.inputs.some((i) => i.prevout.hash === hash)) this.removeTx(other.hash, ops);
    }
  }

  // ---- internals: state ----

  private derive(): { credits: Map<string, Credit>; spentBy: Map<string, string> } {
    if (this.cache) return this.cache;
    const credits = new Map<string, Credit>();
    const spentBy = new Map<string, string>();
    for (const w of this.txs.values()) {
      w.tx.outputs.forEach((o, index) => {
        const scriptHex = hex(o.script.toRaw());
        if (!this.keys.has(scriptHex)) return;
        credits.set(opKey(w.hash, index), {
          hash: w.hash,
          index,
          value: o.value,
          script: o.script,
          scriptHex,
          height: w.height,
          coinbase: w.tx.isCoinbase(),
        });
      });
      if (!w.tx.isCoinbase()) for (const i of w.tx.inputs) spentBy.set(opKey(i.prevout.hash, i.prevout.index), w.hash);
    }
    this.cache = { credits, spentBy };
    return this.cache;
  }

  private utxos(): Credit[] {
    const { credits, spentBy } = this.derive();
    return [...credits.entries()].filter(([k]) => !spentBy.has(k)).map(([, c]) => c);
  }

  private isLocked(c: Credit): boolean {
    const k = opKey(c.hash, c.index);
    for (const f of this.fundings.values()) if (f.inputs.includes(k)) return true;
    return false;
  }

  private mature(c: Credit): boolean {
    return !c.coinbase || (c.height >= 0 && this.meta.height - c.height + 1 >= COINBASE_MATURITY);
  }

  private funding(txid: Uint8Array): Funding {
    if (this.closed) throw new WalletError('ERR_WALLET_CLOSED', 'wallet is closed');
    const f = txid.length === 32 ? this.fundings.get(bytesToHash(txid)) : undefined;
    if (!f) throw new WalletError('ERR_UNKNOWN_FUNDING', `no pending funding ${txid.length === 32 ? hex(txid) : '(bad txid)'}`);
    return f;
  }

  private async ratePerKvB(given: number | undefined): Promise<number> {
    if (given !== undefined) return given;
    return (await this.chain.estimateFeeratePerKw(6)) * 4;
  }

  private async build(
    script: BScript,
    amountSat: bigint,
    ratePerKvB: number,
    minConfs: number,
  ): Promise<{ mtx: BMTX; changeUsed: boolean }> {
    if (this.closed) throw new WalletError('ERR_WALLET_CLOSED', 'wallet is closed');
    if (!Number.isSafeInteger(minConfs) || minConfs < 0) throw new WalletError('ERR_INVALID_AMOUNT', 'minConfs must be ≥ 0');
    const mtx = new bcoin.MTX();
    const out = mtx.addOutput(script, Number(amountSat));
    if (out.isDust(MIN_RELAY_PER_KVB)) throw new WalletError('ERR_DUST', `${amountSat} sat is below the dust limit of its script`);
    const tip = this.meta.height;
    const coins: BCoin[] = [];
    for (const c of this.utxos()) {
      if (this.isLocked(c) || !this.mature(c)) continue;
      const confs = c.height < 0 ? 0 : tip - c.height + 1;
      if (confs < minConfs) continue;
      if (c.height < 0 && !this.ownUnconfirmed(c)) continue;
      coins.push(
        bcoin.Coin.fromOptions({
          version: 1,
          height: c.height,
          value: c.value,
          script: c.script,
          coinbase: c.coinbase,
          hash: c.hash,
          index: c.index,
        }),
      );
    }
    const change = this.keyAt(1, this.meta.next[1]);
    try {
      await mtx.fund(coins, { rate: ratePerKvB, changeAddress: change.ring.getAddress(undefined, NETWORK), height: tip + 1, depth: -1 });
    } catch (e) {
      if ((e as { type?: string }).type === 'FundingError') {
        throw new WalletError(
          'ERR_INSUFFICIENT_FUNDS',
          `cannot pay ${amountSat} sat plus fee from ${this.spendableSat(coins)} sat spendable`,
        );
      }
      throw e;
    }
    mtx.sortMembers();
    const { credits } = this.derive();
    const rings: BKeyRing[] = [];
    for (const input of mtx.inputs) {
      const c = credits.get(opKey(input.prevout.hash, input.prevout.index));
      const k = c && this.keys.get(c.scriptHex);
      if (!k) throw new WalletError('ERR_INSUFFICIENT_FUNDS', 'selected a coin without its key');
      rings.push(k.ring);
    }
    mtx.sign(rings);
    if (!mtx.isSigned() || !mtx.verify()) throw new WalletError('ERR_BROADCAST', 'could not sign the transaction');
    const changeScript = hex(change.ring.getProgram().toRaw());
    const changeUsed = mtx.outputs.some((o) => hex(o.script.toRaw()) === changeScript);
    return { mtx, changeUsed };
  }

  private spendableSat(coins: BCoin[]): bigint {
    return coins.reduce((a, c) => a + BigInt(c.value), 0n);
  }

  /** An unconfirmed coin is spendable at 0 confirmations only if we made the transaction (our change). */
  private ownUnconfirmed(c: Credit): boolean {
    const w = this.txs.get(c.hash);
    if (!w) return false;
    const { credits } = this.derive();
    return w.tx.inputs.every((i) => credits.has(opKey(i.prevout.hash, i.prevout.index)));
  }

  /** The change key at `next[1]` was used: move past it (meta is written by commit()). */
  private bumpChange(): void {
    this.meta.next[1] += 1;
    this.extend(1);
  }

  private issue(branch: 0 | 1): Promise<WalletAddress> {
    if (this.closed) throw new WalletError('ERR_WALLET_CLOSED', 'wallet is closed');
    const k = this.keyAt(branch, this.meta.next[branch]);
    this.meta.next[branch] += 1;
    this.extend(branch);
    return this.commit([]).then(() => ({
      address: k.ring.getAddress(undefined, NETWORK).toString(NETWORK),
      script: toBytes(k.ring.getProgram().toRaw()),
    }));
  }

  private keyAt(branch: 0 | 1, index: number): KeyInfo {
    const ring = bcoin.KeyRing.fromPrivate(this.branches[branch].derive(index).privateKey, true);
    ring.witness = true;
    return { branch, index, ring };
  }

  /** Watch keys up to next + lookahead on a branch. */
  private extend(branch: 0 | 1): void {
    const want = this.meta.next[branch] + this.lookahead;
    while (this.derived[branch] < want) {
      const k = this.keyAt(branch, this.derived[branch]);
      this.keys.set(hex(k.ring.getProgram().toRaw()), k);
      this.derived[branch] += 1;
    }
  }

  private async load(): Promise<void> {
    this.extend(0);
    this.extend(1);
    for await (const [, v] of this.db.entries(enc.encode(P_TX))) {
      const w = decodeTx(v);
      this.txs.set(w.hash, w);
    }
    for await (const [, v] of this.db.entries(enc.encode(P_FUND))) {
      const f = decodeFunding(v);
      this.fundings.set(f.hash, f);
    }
  }

  private async commit(ops: BatchOp[]): Promise<void> {
    ops.push({ type: 'put', key: K_META, value: enc.encode(JSON.stringify(this.meta)) });
    await this.db.batch(ops);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.mutex.then(fn);
    this.mutex = run.then(
      () => {},
      () => {},
    );
    return run;
  }
}

// ---- helpers ----

/** Parse a regtest address into its scriptPubKey, with typed errors. */
export function parseAddress(address: string): BScript {
  if (typeof address !== 'string' || address.length === 0 || address.length > 100) {
    throw new WalletError('ERR_INVALID_ADDRESS', 'not an address');
  }
  let addr: BAddress;
  try {
    addr = bcoin.Address.fromString(address, NETWORK);
  } catch {
    let other = false;
    try {
      bcoin.Address.fromString(address);
      other = true;
    } catch {
      /* not an address of any network */
    }
    if (other) throw new WalletError('ERR_WRONG_NETWORK', `${address} is an address of another network`);
    throw new WalletError('ERR_INVALID_ADDRESS', `${JSON.stringify(address)} is not an address`);
  }
  return bcoin.Script.fromAddress(addr);
}

function checkAmount(amountSat: bigint): void {
  if (typeof amountSat !== 'bigint' || amountSat <= 0n || amountSat > MAX_MONEY_SAT) {
    throw new WalletError('ERR_INVALID_AMOUNT', `amount must be 1…${MAX_MONEY_SAT} sat`);
  }
}

function satPerVbyteToPerKvB(satPerVbyte: number): number {
  if (!Number.isFinite(satPerVbyte) || satPerVbyte < 1 || satPerVbyte > MAX_SAT_PER_VBYTE) {
    throw new WalletError('ERR_INVALID_FEERATE', `satPerVbyte ${satPerVbyte} is outside 1…${MAX_SAT_PER_VBYTE}`);
  }
  return Math.ceil(satPerVbyte * 1000);
}

function encodeTx(w: WTx): Uint8Array {
  return enc.encode(JSON.stringify({ raw: hex(w.raw), height: w.height, block: w.block, seq: w.seq }));
}

function decodeTx(v: Uint8Array): WTx {
  const o = JSON.parse(dec.decode(v)) as { raw: string; height: number; block: string | null; seq: number };
  const raw = new Uint8Array(Buffer.from(o.raw, 'hex'));
  const tx = bcoin.TX.fromRaw(buf(raw));
  return { hash: tx.hash('hex'), tx, raw, height: o.height, block: o.block, seq: o.seq };
}

function encodeFunding(f: Funding): Uint8Array {
  return enc.encode(
    JSON.stringify({ raw: hex(f.raw), outputIndex: f.outputIndex, amountSat: f.amountSat.toString(), feeSat: f.feeSat.toString() }),
  );
}

function decodeFunding(v: Uint8Array): Funding {
  const o = JSON.parse(dec.decode(v)) as { raw: string; outputIndex: number; amountSat: string; feeSat: string };
  const raw = new Uint8Array(Buffer.from(o.raw, 'hex'));
  const tx = bcoin.TX.fromRaw(buf(raw));
  return {
    hash: tx.hash('hex'),
    raw,
    outputIndex: o.outputIndex,
    amountSat: BigInt(o.amountSat),
    feeSat: BigInt(o.feeSat),
    inputs: tx.inputs.map((i) => opKey(i.prevout.hash, i.prevout.index)),
  };
}
