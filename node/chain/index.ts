/**
 * The chain backend factory. Options (all optional):
 *
 * - `chain`: `'embedded'` (default) — a bcoin regtest full node in this
 *   process that mines its own blocks (`generateToAddress`), so nothing else
 *   is needed; `'p2p'` — the same full node following an existing regtest
 *   network over P2P (btcd as lnd uses it, or bitcoind): it downloads and
 *   validates that chain and relays our transactions to it.
 * - `chainPeer`: `'HOST:PORT'` of that regtest node's P2P listener (btcd
 *   `--listen`), required with `'p2p'`, refused otherwise.
 * - `chainDir`: keep the chain on disk there (the daemon passes
 *   `<datadir>/chain`); without it the chain lives in memory.
 * - `fallbackFeeratePerKw`: the feerate when the chain has no estimate
 *   (regtest normally has none). Default 2500 sat/kw = 10 sat/vB.
 * - `onError`: background errors (bcoin's own, listener exceptions).
 *
 * Daemon flags map one to one: `--chain embedded|p2p` → `chain`,
 * `--chain-peer HOST:PORT` → `chainPeer`.
 */
import { BcoinChainBackend, type ChainBackendOptions } from './backend.js';

export { BcoinChainBackend, type ChainBackendOptions, type ChainFollower, type ChainMode } from './backend.js';

/** Build and open a chain backend. `close()` it when done. */
export async function createChainBackend(options: ChainBackendOptions = {}): Promise<BcoinChainBackend> {
  const backend = new BcoinChainBackend(options);
  await backend.open();
  return backend;
}
