/**
 * The chain backend on bcoin: one bcoin FullNode (in memory or on disk) that
 * either IS the regtest chain (embedded: it mines its own blocks) or follows a
 * regtest network over P2P (btcd or Bitcoin Core; magic and genesis are the
 * same). It implements the channel layer's `ChainSource` (htlc/chain.ts) and
 * feeds the wallet full blocks and mempool transactions.
 *
 * Shape: bcoin reports chain changes in several ways (connect, disconnect,
 * reorganize, and a bare `reset` after invalidateblock). Rather than trusting
 * each, the backend keeps its own list of the blocks it has delivered and,
 * after any change, reconciles it with bcoin's best chain: it walks back to the
 * fork point (one `disconnected` per block) and forward to the tip (one
 * `connected` per block). All deliveries run on one serial queue, and each
 * listener's promise is awaited, so every consumer sees the same ordered
 * history and can persist before the next event.
 */
import {
  ChainError,
  FEERATE_PER_KW_FLOOR,
  type BlockEpoch,
  type BlockEvent,
  type ChainSource,
  type ConfirmationEvent,
  type ConfirmationRequest,
  type Listener,
  type SpendEvent,
  type SpendRequest,
  type WatchHandle,
} from '../../htlc/chain.js';
import { NETWORK, bcoin, buf, bytesToHash, hashToBytes, toBytes, type BBlock, type BFullNode, type BTX } from './bcoin.js';

/** How the backend gets its chain. */
export type ChainMode = 'embedded' | 'p2p';

export interface ChainBackendOptions {
  /** `embedded` (default): a regtest chain of our own. `p2p`: follow the regtest network of `chainPeer`. */
  chain?: ChainMode;
  /** `HOST:PORT` of the regtest node to follow (btcd or bitcoind P2P port); required for `p2p`. */
  chainPeer?: string;
  /**
   * Embedded only: serve the chain over P2P on this loopback `HOST:PORT` (port 0 is refused: followers need to know it),
   * so that other nodes (`chain: 'p2p'`) follow it as they would btcd: several daemons on one regtest chain, no btcd.
   */
  chainListen?: string;
  /** Keep the chain on disk under this directory (the daemon passes `<datadir>/chain`); absent: in memory. */
  chainDir?: string;
  /** Feerate used when the chain has no estimate (regtest usually has none). Default 2500 sat/kw (10 sat/vB). */
  fallbackFeeratePerKw?: number;
  /** Receives errors thrown by listeners and by bcoin in the background; default: ignored. */
  onError?: (err: Error) => void;
}

/** An output on chain and whether it is unspent (BcoinChainBackend.outputAt). */
export interface FundingOutputInfo {
  scriptPubKey: Uint8Array;
  valueSat: bigint;
  spent: boolean;
  /** The transaction's hash in bcoin's internal form, for isUnspent. */
  txHashHex: string;
}

/** The wallet's view of chain progress: full blocks in order, and mempool transactions. */
export interface ChainFollower {
  blockConnected(height: number, hash: string, block: BBlock): Promise<void> | void;
  blockDisconnected(height: number, hash: string): Promise<void> | void;
  mempoolTx(tx: BTX): Promise<void> | void;
}

interface Known {
  height: number;
  hash: string;
}

interface ConfPosition {
  height: number;
  hash: string;
  txIndex: number;
  tx: Uint8Array;
}

interface ConfWatch {
  numConfs: number;
  listener: Listener<ConfirmationEvent>;
  position: ConfPosition | null;
  reportedConfs: number;
  reportedHash: string | null;
  confirmedSent: boolean;
  cancelled: boolean;
}

interface SpendFound {
  key: string; // spending txid + block hash
  spendingTx: Uint8Array;
  spendingTxid: string;
  inputIndex: number;
  height: number;
  hash: string;
}

interface SpendWatch {
  listener: Listener<SpendEvent>;
  spend: SpendFound | null;
  reported: string | null;
  cancelled: boolean;
}

/** How many delivered blocks are remembered to find a fork point (deeper reorgs restart from the oldest). */
const KNOWN_DEPTH = 2016;

function outpointKey(hash: string, index: number): string {
  return `${hash}:${index}`;
}

/** Followers an embedded chain serves at most (`chainListen`): a regtest network of a few local nodes. */
export const CHAIN_LISTEN_MAX_INBOUND = 16;

function listenAddress(s: string): { host: string; port: number } {
  const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new ChainError(
      'ERR_CHAIN_CONFIG',
      `chainListen must be a loopback HOST:PORT with a port in [1, 65535], got ${JSON.stringify(s)}`,
    );
  return { host: m[1] === 'localhost' ? '127.0.0.1' : m[1] === '[::1]' ? '::1' : m[1]!, port: Number(m[2]) };
}

function parsePeer(peer: string): string {
  const m = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(peer);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new ChainError('ERR_CHAIN_CONFIG', `chainPeer must be HOST:PORT, got ${JSON.stringify(peer)}`);
  }
  return peer;
}

export class BcoinChainBackend implements ChainSource {
  readonly mode: ChainMode;
  readonly node: BFullNode;
  private readonly fallbackFeeratePerKw: number;
  private readonly onError: (err: Error) => void;
  private known: Known[] = [];
  private queue: Promise<void> = Promise.resolve();
  private reconcilePending = false;
  private opened = false;
  private closed = false;
  /** Embedded, serving followers over P2P (`chainListen`). */
  private listening = false;
  private readonly blockListeners = new Set<Listener<BlockEvent>>();
  private readonly followers = new Set<ChainFollower>();
  private readonly confWatches = new Map<string, Set<ConfWatch>>();
  private readonly spendWatches = new Map<string, Set<SpendWatch>>();

  constructor(options: ChainBackendOptions = {}) {
    this.mode = options.chain ?? 'embedded';
    if (this.mode !== 'embedded' && this.mode !== 'p2p') {
      throw new ChainError('ERR_CHAIN_CONFIG', `chain must be 'embedded' or 'p2p', got ${JSON.stringify(options.chain)}`);
    }
    const fee = options.fallbackFeeratePerKw ?? 2500;
    if (!Number.isSafeInteger(fee) || fee < FEERATE_PER_KW_FLOOR) {
      throw new ChainError('ERR_CHAIN_CONFIG', `fallbackFeeratePerKw must be an integer ≥ ${FEERATE_PER_KW_FLOOR}`);
    }
    this.fallbackFeeratePerKw = fee;
    this.onError = options.onError ?? (() => {});
    const memory = options.chainDir === undefined;
    const base = {
      network: NETWORK,
      memory,
      ...(memory ? {} : { prefix: options.chainDir }),
      logLevel: 'none',
      workers: false,
      indexTX: true,
      listen: false,
      checkpoints: false,
      persistentMempool: false,
      // bcoin always opens its HTTP API; on a fixed port (48332) two chains on one host collide. Nothing uses it.
      httpHost: '127.0.0.1',
      httpPort: 0,
    } as const;
    if (this.mode === 'p2p') {
      if (options.chainPeer === undefined) throw new ChainError('ERR_CHAIN_CONFIG', `chain 'p2p' needs chainPeer (HOST:PORT)`);
      if (options.chainListen !== undefined) throw new ChainError('ERR_CHAIN_CONFIG', `chainListen is only for the embedded chain`);
      const peer = parsePeer(options.chainPeer);
      this.node = new bcoin.FullNode({ ...base, only: [peer], nodes: [peer], seeds: [], maxOutbound: 1 });
    } else {
      if (options.chainPeer !== undefined) throw new ChainError('ERR_CHAIN_CONFIG', `chainPeer is only for chain 'p2p'`);
      if (options.chainListen === undefined) {
        // No peers at all: `only` set to nothing reachable is not needed since we never call connect().
        this.node = new bcoin.FullNode({ ...base, seeds: [] });
      } else {
        const at = listenAddress(options.chainListen);
        this.listening = true;
        this.node = new bcoin.FullNode({
          ...base,
          seeds: [],
          nodes: [],
          listen: true,
          host: at.host,
          port: at.port,
          publicHost: at.host,
          publicPort: at.port,
          maxOutbound: 1, // bcoin wants one; with no seeds and no nodes it has no one to dial
          maxInbound: CHAIN_LISTEN_MAX_INBOUND,
        });
      }
    }
    this.node.on('error', (err) => {
      // Without peers bcoin's pool complains after a rewind (`invalidateblock`); nothing to act on.
      if (this.mode === 'embedded' && /Pool is not connected/.test(err.message)) return;
      this.onError(err);
    });
  }

  /** Open the chain database; in `p2p` mode also start following the peer. */
  async open(): Promise<void> {
    if (this.opened) return;
    await this.node.ensure(); // bcoin does not create its data directory itself (no-op in memory)
    await this.node.open();
    this.opened = true;
    const tip = this.node.chain.tip;
    this.known = [{ height: tip.height, hash: tip.hash }];
    const kick = (): void => this.scheduleReconcile();
    this.node.on('connect', kick);
    this.node.on('disconnect', kick);
    this.node.on('reset', kick);
    this.node.on('reorganize', kick);
    this.node.on('tx', (tx) => {
      this.enqueue(async () => {
        for (const f of [...this.followers]) await this.call(() => f.mempoolTx(tx));
      });
    });
    if (this.mode === 'p2p') {
      await this.node.connect();
      this.node.startSync();
    } else if (this.listening) {
      await this.node.connect(); // opens the pool: it listens, and dials no one (no seeds, no nodes)
    }
  }

  async close(): Promise<void> {
    if (this.closed || !this.opened) {
      this.closed = true;
      return;
    }
    this.closed = true;
    await this.queue;
    if (this.mode === 'p2p' || this.listening) await this.node.disconnect();
    await this.node.close();
  }

  /** Resolves once every chain change seen so far has been delivered to all listeners. */
  async synced(): Promise<void> {
    for (;;) {
      await this.queue;
      const top = this.top();
      if (this.closed || (top.hash === this.node.chain.tip.hash && !this.reconcilePending)) return;
      this.scheduleReconcile();
    }
  }

  /**
   * Whether this node is caught up: every block of the chain delivered to the listeners and, following a peer
   * (`p2p`), at least one outbound peer connected whose announced height we have reached.
   */
  isSynced(): boolean {
    if (this.closed || !this.opened) return false;
    const tip = this.node.chain.tip;
    if (this.top().hash !== tip.hash || this.reconcilePending) return false;
    if (this.mode !== 'p2p') return true;
    let best = -1;
    for (let peer = this.node.pool.peers.head(); peer; peer = peer.next) if (peer.outbound) best = Math.max(best, peer.height);
    return best >= 0 && tip.height >= best;
  }

  /** Run `fn` on the delivery queue: no chain event is delivered while it runs. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue(async () => {
        try {
          resolve(await fn());
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  /** Add a follower (the wallet). Call inside `exclusive` after catching up to `tip()`. */
  follow(follower: ChainFollower): WatchHandle {
    this.followers.add(follower);
    return { cancel: () => void this.followers.delete(follower) };
  }

  // ---- ChainSource ----

  tip(): BlockEpoch {
    const top = this.top();
    return { height: top.height, hash: hashToBytes(top.hash) };
  }

  onBlock(listener: Listener<BlockEvent>): WatchHandle {
    this.blockListeners.add(listener);
    return { cancel: () => void this.blockListeners.delete(listener) };
  }

  watchConfirmations(request: ConfirmationRequest, listener: Listener<ConfirmationEvent>): WatchHandle {
    if (request.txid.length !== 32) throw new ChainError('ERR_CHAIN_CONFIG', 'txid must be 32 bytes');
    if (!Number.isSafeInteger(request.numConfs) || request.numConfs < 1) {
      throw new ChainError('ERR_CHAIN_CONFIG', 'numConfs must be an integer ≥ 1');
    }
    const txid = bytesToHash(request.txid);
    const w: ConfWatch = {
      numConfs: request.numConfs,
      listener,
      position: null,
      reportedConfs: 0,
      reportedHash: null,
      confirmedSent: false,
      cancelled: false,
    };
    let set = this.confWatches.get(txid);
    if (!set) this.confWatches.set(txid, (set = new Set()));
    set.add(w);
    this.enqueue(async () => {
      if (w.cancelled) return;
      const meta = await this.node.getMeta(txid);
      const top = this.top();
      if (meta && meta.block !== null && meta.height >= 0 && meta.height <= top.height) {
        const ours = this.knownHash(meta.height);
        const onBest = ours === undefined ? (await this.node.chain.getHash(meta.height)) === meta.block : ours === meta.block;
        if (onBest) {
          w.position = { height: meta.height, hash: meta.block, txIndex: meta.index, tx: toBytes(meta.tx.toRaw()) };
        }
      }
      await this.evaluateConf(w);
    });
    return {
      cancel: () => {
        w.cancelled = true;
        set.delete(w);
        if (set.size === 0 && this.confWatches.get(txid) === set) this.confWatches.delete(txid);
      },
    };
  }

  watchSpend(request: SpendRequest, listener: Listener<SpendEvent>): WatchHandle {
    const { txid, outputIndex } = request.outpoint;
    if (txid.length !== 32) throw new ChainError('ERR_CHAIN_CONFIG', 'outpoint txid must be 32 bytes');
    if (!Number.isSafeInteger(outputIndex) || outputIndex < 0) throw new ChainError('ERR_CHAIN_CONFIG', 'bad output index');
    const hash = bytesToHash(txid);
    const key = outpointKey(hash, outputIndex);
    const w: SpendWatch = { listener, spend: null, reported: null, cancelled: false };
    let set = this.spendWatches.get(key);
    if (!set) this.spendWatches.set(key, (set = new Set()));
    set.add(w);
    this.enqueue(async () => {
      if (w.cancelled) return;
      // Already spent before we were asked? The chain's coin set says whether
      // it is still unspent; otherwise look for the spend from the output's block.
      if (await this.node.chain.getCoin(hash, outputIndex)) return;
      let from = request.heightHint;
      if (from === undefined) {
        const meta = await this.node.getMeta(hash);
        if (!meta || meta.height < 0) return;
        from = meta.height;
      }
      const top = this.top();
      for (let h = Math.max(0, from); h <= top.height && !w.cancelled; h++) {
        const bhash = await this.node.chain.getHash(h);
        const block = bhash === null ? null : await this.node.chain.getBlock(bhash);
        if (bhash === null || block === null) break;
        const found = findSpend(block, hash, outputIndex, h, bhash);
        if (found) {
          w.spend = found;
          await this.evaluateSpend(w);
          return;
        }
      }
    });
    return {
      cancel: () => {
        w.cancelled = true;
        set.delete(w);
        if (set.size === 0 && this.spendWatches.get(key) === set) this.spendWatches.delete(key);
      },
    };
  }

  async broadcast(raw: Uint8Array): Promise<void> {
    if (this.closed) throw new ChainError('ERR_CHAIN_CLOSED', 'chain backend is closed');
    let tx: BTX;
    try {
      tx = bcoin.TX.fromRaw(buf(raw));
    } catch (e) {
      throw new ChainError('ERR_INVALID_TX', `not a transaction: ${(e as Error).message}`, { cause: e });
    }
    let missing: unknown[] | null;
    try {
      missing = await this.node.mempool.addTX(tx);
    } catch (e) {
      const reason = (e as { reason?: string }).reason;
      if (reason === 'txn-already-in-mempool') return;
      throw new ChainError('ERR_BROADCAST_REJECTED', `${tx.txid()}: ${reason ?? (e as Error).message}`, { cause: e });
    }
    if (missing) throw new ChainError('ERR_BROADCAST_REJECTED', `${tx.txid()}: missing inputs`);
  }

  async estimateFeeratePerKw(confTarget: number): Promise<number> {
    const perKvB = this.node.fees.estimateFee(Math.max(1, Math.floor(confTarget)), true);
    if (!perKvB || perKvB <= 0) return this.fallbackFeeratePerKw;
    return Math.max(FEERATE_PER_KW_FLOOR, Math.floor(perKvB / 4));
  }

  // ---- for the wallet and tests ----

  /** Hash of the best-chain block at `height` as bcoin sees it (may be ahead of `tip()`). */
  async getHash(height: number): Promise<string | null> {
    return this.node.chain.getHash(height);
  }

  async getBlock(hash: string): Promise<BBlock | null> {
    return this.node.chain.getBlock(hash);
  }

  /**
   * The output a short_channel_id points at (block height, transaction index, output index) on the best chain, and
   * whether it is still unspent; undefined when there is no such block, transaction or output. For gossip: a channel
   * announcement's funding output.
   */
  async outputAt(blockHeight: number, txIndex: number, outputIndex: number): Promise<FundingOutputInfo | undefined> {
    const hash = await this.node.chain.getHash(blockHeight);
    if (hash === null) return undefined;
    const block = await this.node.chain.getBlock(hash);
    const tx = block?.txs[txIndex];
    const out = tx?.outputs[outputIndex];
    if (tx === undefined || out === undefined) return undefined;
    const hashHex = tx.hash('hex');
    const coin = await this.node.chain.getCoin(hashHex, outputIndex);
    return { scriptPubKey: new Uint8Array(out.script.toRaw()), valueSat: BigInt(out.value), spent: coin === null, txHashHex: hashHex };
  }

  /** Whether an output (`txHashHex` as outputAt gives it) is in the chain's coin set: unspent. */
  async isUnspent(txHashHex: string, outputIndex: number): Promise<boolean> {
    return (await this.node.chain.getCoin(txHashHex, outputIndex)) !== null;
  }

  /** Whether segwit is active for the next block (bcoin and btcd regtest: from height 432). */
  segwitActive(): boolean {
    return this.node.chain.state.hasWitness();
  }

  // ---- mining and chain surgery (embedded chain; tests and the demo) ----

  /** Mine `count` blocks paying their coinbase to `address`; resolves after every listener has heard of them. */
  async generateToAddress(count: number, address: string): Promise<Uint8Array[]> {
    this.requireEmbedded('mining');
    if (!Number.isSafeInteger(count) || count < 0) throw new ChainError('ERR_CHAIN_CONFIG', 'count must be an integer ≥ 0');
    let addr;
    try {
      addr = bcoin.Address.fromString(address, NETWORK);
    } catch (e) {
      throw new ChainError('ERR_CHAIN_CONFIG', `not a regtest address: ${address}`, { cause: e });
    }
    const hashes: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const block = await this.node.miner.mineBlock(this.node.chain.tip, addr);
      await this.node.chain.add(block);
      hashes.push(hashToBytes(block.hash('hex')));
    }
    await this.synced();
    return hashes;
  }

  /** Mark a best-chain block invalid (bitcoind's `invalidateblock`): the chain rewinds to its parent. */
  async invalidateBlock(hash: Uint8Array): Promise<void> {
    this.requireEmbedded('invalidateblock');
    await this.node.chain.invalidate(bytesToHash(hash));
    // bcoin 1.0.2 clears the mempool on a rewind but leaves its tip behind; the miner refuses to build on that.
    this.node.mempool.tip = this.node.chain.tip.hash;
    await this.synced();
  }

  /** Add a block from elsewhere (e.g. a second node's competing chain); returns whether it was accepted. */
  async submitBlock(raw: Uint8Array): Promise<void> {
    let block: BBlock;
    try {
      block = bcoin.Block.fromRaw(buf(raw));
    } catch (e) {
      throw new ChainError('ERR_INVALID_TX', `not a block: ${(e as Error).message}`, { cause: e });
    }
    try {
      await this.node.chain.add(block);
    } catch (e) {
      throw new ChainError(
        'ERR_BROADCAST_REJECTED',
        `block ${block.hash('hex')}: ${(e as { reason?: string }).reason ?? (e as Error).message}`,
        { cause: e },
      );
    }
    await this.synced();
  }

  /** The serialized best-chain block at `height`, or undefined. */
  async getRawBlock(height: number): Promise<Uint8Array | undefined> {
    const hash = await this.node.chain.getHash(height);
    const block = hash === null ? null : await this.node.chain.getBlock(hash);
    return block === null ? undefined : toBytes(block.toRaw());
  }

  private requireEmbedded(what: string): void {
    if (this.mode !== 'embedded') throw new ChainError('ERR_CHAIN_UNSUPPORTED', `${what} is only available on the embedded chain`);
  }

  // ---- internals ----

  private top(): Known {
    const top = this.known[this.known.length - 1];
    if (!top) throw new ChainError('ERR_CHAIN_CLOSED', 'chain backend is not open');
    return top;
  }

  /** The hash we delivered for `height`, `undefined` if older than we remember, `false` if above our tip. */
  private knownHash(height: number): string | undefined | false {
    const top = this.top();
    if (height > top.height) return false;
    const first = this.known[0]!;
    if (height < first.height) return undefined;
    return this.known[height - first.height]?.hash;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((e: unknown) => this.onError(e as Error));
  }

  private async call(fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.onError(e as Error);
    }
  }

  private scheduleReconcile(): void {
    if (this.reconcilePending || this.closed) return;
    this.reconcilePending = true;
    this.enqueue(async () => {
      this.reconcilePending = false;
      await this.reconcile();
    });
  }

  private async reconcile(): Promise<void> {
    const chain = this.node.chain;
    for (let rounds = 0; rounds < 1000 && !this.closed; rounds++) {
      if (this.top().hash === chain.tip.hash) return;
      // Walk back to a block that is still on bcoin's best chain.
      for (;;) {
        const top = this.top();
        if ((await chain.getHash(top.height)) === top.hash) break;
        this.known.pop();
        if (this.known.length === 0) {
          const entry = await chain.getEntry(top.hash);
          if (!entry) throw new ChainError('ERR_CHAIN_CLOSED', `lost block ${top.hash}`);
          this.known.push({ height: top.height - 1, hash: entry.prevBlock });
        }
        await this.deliverDisconnected(top.height, top.hash);
      }
      // Walk forward to bcoin's tip.
      for (;;) {
        const top = this.top();
        const next = top.height + 1;
        if (next > chain.height) break;
        const hash = await chain.getHash(next);
        const block = hash === null ? null : await chain.getBlock(hash);
        if (hash === null || block === null) break;
        const entry = await chain.getEntry(hash);
        if (!entry || entry.prevBlock !== top.hash) break; // the chain moved under us; go round again
        this.known.push({ height: next, hash });
        if (this.known.length > KNOWN_DEPTH) this.known.shift();
        await this.deliverConnected(next, hash, block);
      }
    }
  }

  private async deliverConnected(height: number, hash: string, block: BBlock): Promise<void> {
    for (const f of [...this.followers]) await this.call(() => f.blockConnected(height, hash, block));
    const ev: BlockEvent = { type: 'connected', height, hash: hashToBytes(hash) };
    for (const l of [...this.blockListeners]) await this.call(() => l(ev));
    const changedSpends: SpendWatch[] = [];
    block.txs.forEach((tx, txIndex) => {
      const watches = this.confWatches.get(tx.hash('hex'));
      if (watches) {
        const raw = toBytes(tx.toRaw());
        for (const w of watches) w.position = { height, hash, txIndex, tx: raw };
      }
      if (this.spendWatches.size === 0 || tx.isCoinbase()) return;
      for (const [inputIndex, input] of tx.inputs.entries()) {
        const watches = this.spendWatches.get(outpointKey(input.prevout.hash, input.prevout.index));
        if (!watches) continue;
        const spendingTxid = tx.hash('hex');
        const raw = toBytes(tx.toRaw());
        for (const w of watches) {
          w.spend = { key: `${spendingTxid}@${hash}`, spendingTx: raw, spendingTxid, inputIndex, height, hash };
          changedSpends.push(w);
        }
      }
    });
    await this.evaluateAllConfs();
    for (const w of changedSpends) await this.evaluateSpend(w);
  }

  private async deliverDisconnected(height: number, hash: string): Promise<void> {
    for (const f of [...this.followers]) await this.call(() => f.blockDisconnected(height, hash));
    const ev: BlockEvent = { type: 'disconnected', height, hash: hashToBytes(hash) };
    for (const l of [...this.blockListeners]) await this.call(() => l(ev));
    for (const set of this.confWatches.values()) {
      for (const w of set) if (w.position?.hash === hash) w.position = null;
    }
    await this.evaluateAllConfs();
    for (const set of [...this.spendWatches.values()]) {
      for (const w of [...set]) {
        if (w.spend?.hash === hash) {
          w.spend = null;
          await this.evaluateSpend(w);
        }
      }
    }
  }

  private async evaluateAllConfs(): Promise<void> {
    for (const set of [...this.confWatches.values()]) {
      for (const w of [...set]) await this.evaluateConf(w);
    }
  }

  private async evaluateConf(w: ConfWatch): Promise<void> {
    if (w.cancelled) return;
    const pos = w.position;
    const confs = pos === null ? 0 : this.top().height - pos.height + 1;
    const moved = w.reportedHash !== null && (pos === null || pos.hash !== w.reportedHash);
    if (moved) {
      // The block that held the transaction left the best chain.
      const wasConfirmed = w.confirmedSent;
      w.confirmedSent = false;
      w.reportedConfs = 0;
      w.reportedHash = null;
      await this.call(() => w.listener({ type: 'reorged', confirmations: 0, wasConfirmed }));
      if (w.cancelled) return;
    } else if (confs < w.reportedConfs) {
      const wasConfirmed = w.confirmedSent && confs < w.numConfs;
      if (wasConfirmed) w.confirmedSent = false;
      w.reportedConfs = confs;
      await this.call(() => w.listener({ type: 'reorged', confirmations: confs, wasConfirmed }));
      if (w.cancelled) return;
    }
    if (pos === null || confs === w.reportedConfs) {
      w.reportedConfs = confs;
      return;
    }
    const confirmation = { blockHeight: pos.height, blockHash: hashToBytes(pos.hash), txIndex: pos.txIndex, tx: pos.tx };
    w.reportedHash = pos.hash;
    w.reportedConfs = confs;
    if (confs >= w.numConfs) {
      if (w.confirmedSent) return;
      w.confirmedSent = true;
      await this.call(() => w.listener({ type: 'confirmed', confirmations: confs, confirmation }));
    } else {
      await this.call(() => w.listener({ type: 'update', confirmations: confs, confirmation }));
    }
  }

  private async evaluateSpend(w: SpendWatch): Promise<void> {
    if (w.cancelled) return;
    if (w.reported !== null && w.spend?.key !== w.reported) {
      w.reported = null;
      await this.call(() => w.listener({ type: 'reorged' }));
      if (w.cancelled) return;
    }
    const s = w.spend;
    if (s !== null && w.reported === null) {
      w.reported = s.key;
      await this.call(() =>
        w.listener({
          type: 'spent',
          detail: {
            spendingTx: s.spendingTx,
            spendingTxid: hashToBytes(s.spendingTxid),
            inputIndex: s.inputIndex,
            blockHeight: s.height,
            blockHash: hashToBytes(s.hash),
          },
        }),
      );
    }
  }
}

function findSpend(block: BBlock, hash: string, index: number, height: number, bhash: string): SpendFound | null {
  for (const tx of block.txs) {
    if (tx.isCoinbase()) continue;
    for (const [inputIndex, input] of tx.inputs.entries()) {
      if (input.prevout.hash === hash && input.prevout.index === index) {
        const spendingTxid = tx.hash('hex');
        return { key: `${spendingTxid}@${bhash}`, spendingTx: toBytes(tx.toRaw()), spendingTxid, inputIndex, height, hash: bhash };
      }
    }
  }
  return null;
}
