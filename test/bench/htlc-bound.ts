/** The crypto bound the HTLC benches (switch, amp pay_e2e) share. */
import { randomBytes } from 'node:crypto';
import { buildOnion, encodeHopPayload, peelOnion } from '../../onion/index.js';
import { publicKeyFromPrivate, randomPrivateKey, secp, sha256 } from '../../wire/crypto.js';
import { opsPerSecond } from './harness.js';
import { acquireSigPool, defaultSigWorkers } from '../../node/sig-pool.js';
import type { SigPool } from '../../htlc/channel/types.js';

/**
 * The sig pool the nodes of an HTLC bench share, as createNode gives them: AMPNODE_SIG_WORKERS threads (default one
 * fewer than the cores, at most 4; 0: none, every signature on this thread).
 */
export function benchSigPool(): ReturnType<typeof acquireSigPool> {
  const env = process.env['AMPNODE_SIG_WORKERS'];
  return acquireSigPool(env === undefined ? defaultSigWorkers() : Number(env));
}

/** The diamond's node spec that hands every node the bench's sig pool. */
export function sigPoolSpec(sigs: ReturnType<typeof acquireSigPool>): { manager?: { sigPool: SigPool } } {
  return sigs === undefined ? {} : { manager: { sigPool: sigs.pool } };
}

/**
 * Seconds of this thread per HTLC for the crypto a two-hop HTLC cannot avoid: the sender builds a two-hop onion
 * (buildOnion), the intermediate hop peels it, the final hop peels its layer; and the cost of one ECDSA sign and one
 * verify, which the caller multiplies by the signatures it counted (each commitment_signed and each HTLC signature
 * it carries is signed by its sender and verified by its receiver).
 */
export function perHtlcPrimitiveSeconds(): { htlc: number; finalPeel: number; sign: number; verify: number } {
  const privB = randomPrivateKey();
  const privD = randomPrivateKey();
  const hops = [
    {
      pubkey: publicKeyFromPrivate(privB),
      payload: encodeHopPayload({ amountToForwardMsat: 1_000_000n, outgoingCltvValue: 500, shortChannelId: 1n }),
    },
    { pubkey: publicKeyFromPrivate(privD), payload: encodeHopPayload({ amountToForwardMsat: 1_000_000n, outgoingCltvValue: 500 }) },
  ];
  const ad = sha256(randomBytes(32));
  const sessionKey = randomPrivateKey();
  const built = buildOnion(hops, sessionKey, ad);
  const peeledB = peelOnion(built.packet, privB, ad);
  if (peeledB.kind !== 'forward') throw new Error('bench: B should forward');
  const nextPacket = peeledB.nextPacket;
  const build = 1 / opsPerSecond(() => buildOnion(hops, sessionKey, ad), 400);
  const peelB = 1 / opsPerSecond(() => peelOnion(built.packet, privB, ad), 400);
  const peelD = 1 / opsPerSecond(() => peelOnion(nextPacket, privD, ad), 400);
  const digest = sha256(randomBytes(32));
  const priv = randomPrivateKey();
  const pub = publicKeyFromPrivate(priv);
  const sig = secp.sign(digest, priv);
  const sign = 1 / opsPerSecond(() => secp.sign(digest, priv), 400);
  const verify = 1 / opsPerSecond(() => secp.verify(sig, digest, pub), 400);
  return { htlc: build + peelB + peelD, finalPeel: peelD, sign, verify };
}

export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
