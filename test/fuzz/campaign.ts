/**
 * A fuzz campaign: random inputs and mutations of a target's seeds (bit flips, byte overwrites, truncation,
 * extension, splices of two inputs), for a number of seconds or of inputs. Inputs that gave a typed answer are kept
 * as further seeds while the corpus is small, so mutations reach deeper than the seeds alone.
 */
import { randomBytes } from 'node:crypto';
import type { FuzzTarget } from './targets.js';

export interface Finding {
  inputHex: string;
  error: string;
}

export interface CampaignResult {
  target: string;
  inputs: number;
  seconds: number;
  findings: Finding[];
}

const MAX_CORPUS = 256;
const MAX_INPUT = 4096;

/** A small deterministic generator (xorshift32) so that a run can be repeated from its seed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function mutate(input: Uint8Array, other: Uint8Array, next: () => number): Uint8Array {
  const b = Uint8Array.from(input);
  switch (next() % 6) {
    case 0: // random bytes
      return randomBytes(next() % 512);
    case 1: // bit flips
      for (let i = 1 + (next() % 4); i > 0 && b.length > 0; i--) b[next() % b.length]! ^= 1 << (next() % 8);
      return b;
    case 2: // bytes overwritten with edge values
      for (let i = 1 + (next() % 4); i > 0 && b.length > 0; i--) b[next() % b.length] = [0, 0xff, 0xfd, 0xfe, 0x7f, 0x80][next() % 6]!;
      return b;
    case 3: // truncated
      return b.subarray(0, b.length === 0 ? 0 : next() % b.length);
    case 4: {
      // extended
      const extra = randomBytes(1 + (next() % 64));
      const out = new Uint8Array(Math.min(MAX_INPUT, b.length + extra.length));
      out.set(b.subarray(0, out.length));
      out.set(extra.subarray(0, out.length - Math.min(b.length, out.length)), Math.min(b.length, out.length));
      return out;
    }
    default: {
      // splice: a prefix of one, a suffix of the other
      const cut = b.length === 0 ? 0 : next() % b.length;
      const from = other.length === 0 ? 0 : next() % other.length;
      const out = new Uint8Array(Math.min(MAX_INPUT, cut + other.length - from));
      out.set(b.subarray(0, Math.min(cut, out.length)));
      out.set(other.subarray(from, from + out.length - Math.min(cut, out.length)), Math.min(cut, out.length));
      return out;
    }
  }
}

export function campaign(
  target: FuzzTarget,
  opts: { seconds?: number; inputs?: number; seed?: number; maxFindings?: number },
): CampaignResult {
  const next = rng(opts.seed ?? Date.now());
  const corpus: Uint8Array[] = target.seeds.length > 0 ? [...target.seeds] : [new Uint8Array(0)];
  const findings: Finding[] = [];
  const maxFindings = opts.maxFindings ?? 10;
  const start = performance.now();
  const deadline = opts.seconds === undefined ? Infinity : start + opts.seconds * 1000;
  const limit = opts.inputs ?? Infinity;
  let n = 0;
  const tryOne = (input: Uint8Array): void => {
    n++;
    try {
      target.run(input);
      if (corpus.length < MAX_CORPUS && next() % 16 === 0) corpus.push(input);
    } catch (e) {
      if (findings.length < maxFindings)
        findings.push({ inputHex: Buffer.from(input).toString('hex'), error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  };
  for (const s of corpus.slice()) tryOne(s);
  while (n < limit && (n % 64 !== 0 || performance.now() < deadline)) {
    const a = corpus[next() % corpus.length]!;
    const b = corpus[next() % corpus.length]!;
    tryOne(mutate(a, b, next));
  }
  return { target: target.name, inputs: n, seconds: (performance.now() - start) / 1000, findings };
}
