/**
 * Memoization for pure functions of byte strings that a commitment build
 * repeats with the same inputs (per-channel constants such as the funding
 * script and the obscuring factor, and per-HTLC values such as the
 * RIPEMD-160 of a payment hash, which every commitment holding the HTLC
 * needs again).
 *
 * Entries are found by the identity of the first argument and then checked
 * byte for byte against private copies of all arguments, so a caller that
 * later writes into an array it passed can only cause a recomputation, never
 * a stale result. Entries live as long as that first array does.
 */
import { equalBytes } from '../../wire/bytes.js';

export function memoBytes<A extends Uint8Array[], R>(fn: (...args: A) => R): (...args: A) => R {
  const cache = new WeakMap<Uint8Array, { args: Uint8Array[]; result: R }>();
  return (...args: A): R => {
    const first = args[0];
    if (first === undefined) return fn(...args);
    const hit = cache.get(first);
    if (hit !== undefined && hit.args.length === args.length && hit.args.every((a, i) => equalBytes(a, args[i]!))) return hit.result;
    const result = fn(...args);
    cache.set(first, { args: args.map((a) => a.slice()), result });
    return result;
  };
}
