/**
 * Networks this node can run on, and their BOLT `chain_hash`.
 *
 * BOLT 0 defines `chain_hash` as the genesis block hash in the byte order the
 * hash function produces (Bitcoin's internal order), NOT the reversed form
 * bitcoin-cli displays: mainnet's is 6fe28c0a…00000000. Regtest's displayed
 * genesis hash 0f9188f1…466e2206 is therefore 06226e46…f188910f on the wire
 * (test/node/node.test.ts recomputes it from the regtest genesis header).
 *
 * Only regtest today: the embedded chain backend and the interop setup are
 * regtest-only.
 */
import { hexToBytes } from '../wire/bytes.js';

export type Network = 'regtest';

export const NETWORKS: Record<Network, { chainHash: Uint8Array; defaultPort: number }> = {
  regtest: {
    chainHash: hexToBytes('06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f'),
    defaultPort: 9735,
  },
};

export function isNetwork(s: string): s is Network {
  return Object.hasOwn(NETWORKS, s);
}
