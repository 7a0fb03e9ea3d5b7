/**
 * Shared setup for the chain and wallet tests: an in-memory embedded regtest
 * chain, wallets on in-memory stores, and a chain mined past segwit
 * activation (height 432 on regtest, as on btcd) with coins for a wallet.
 */
import { createChainBackend, type BcoinChainBackend } from '../../node/chain/index.js';
import { Wallet } from '../../node/wallet/wallet.js';
import { openMemoryStore, type KvStore } from '../../db/store.js';

/** Height at which segwit is active on regtest (BIP9, window 144). */
export const SEGWIT_HEIGHT = 432;
/** A regtest address nobody here owns (P2WPKH of key 0x01…01), to mine blocks "elsewhere". */
export const ELSEWHERE = 'bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5';

export async function newChain(): Promise<BcoinChainBackend> {
  return createChainBackend({
    onError: (e) => {
      throw e;
    },
  });
}

export async function newWallet(chain: BcoinChainBackend, seedByte: number, store?: KvStore): Promise<{ wallet: Wallet; store: KvStore }> {
  const s = store ?? (await openMemoryStore());
  const wallet = await Wallet.open({ chain, store: s, seed: new Uint8Array(32).fill(seedByte) });
  return { wallet, store: s };
}

/** Mine `coinbases` blocks to `wallet`, then blocks elsewhere up to segwit activation (+ maturity). */
export async function fundWallet(chain: BcoinChainBackend, wallet: Wallet, coinbases: number): Promise<void> {
  const { address } = await wallet.newAddress();
  await chain.generateToAddress(coinbases, address);
  const rest = Math.max(SEGWIT_HEIGHT - chain.tip().height, 100);
  await chain.generateToAddress(rest, ELSEWHERE);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
