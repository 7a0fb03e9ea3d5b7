/**
 * Benchmark helpers. Every case prints one JSON line:
 *   {"suite","case","unit","value","bound","ratio"}
 * where `bound` is the cost of the raw primitives the case needs, measured
 * in the same run, and ratio = value / bound. Only ratios from one run mean
 * anything on a shared machine.
 */
export interface BenchResult {
  suite: string;
  case: string;
  unit: string;
  value: number;
  bound: number;
  ratio: number;
}

/** Runs `fn` repeatedly for about `ms` milliseconds (after a warm-up); returns operations per second. */
export function opsPerSecond(fn: () => void, ms = 1000, warmupMs = 200): number {
  const warmEnd = performance.now() + warmupMs;
  while (performance.now() < warmEnd) fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  const end = start + ms;
  while (now < end) {
    for (let i = 0; i < 16; i++) fn();
    n += 16;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

/** Same as opsPerSecond for async work. */
export async function opsPerSecondAsync(fn: () => Promise<void>, ms = 1000, warmupMs = 200): Promise<number> {
  const warmEnd = performance.now() + warmupMs;
  while (performance.now() < warmEnd) await fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now < start + ms) {
    await fn();
    n++;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

/**
 * Measures value and bound interleaved (value, bound, value, bound, ...)
 * `rounds` times and keeps the best of each, so that load from other
 * processes hits both sides alike.
 */
export function compare(valueFn: () => void, boundFn: () => void, rounds = 3, ms = 400): { value: number; bound: number } {
  let value = 0;
  let bound = 0;
  for (let i = 0; i < rounds; i++) {
    value = Math.max(value, opsPerSecond(valueFn, ms, i === 0 ? 200 : 50));
    bound = Math.max(bound, opsPerSecond(boundFn, ms, i === 0 ? 200 : 50));
  }
  return { value, bound };
}

export function emit(suite: string, caseName: string, unit: string, value: number, bound: number): BenchResult {
  const r: BenchResult = { suite, case: caseName, unit, value: round(value), bound: round(bound), ratio: round(value / bound, 4) };
  process.stdout.write(JSON.stringify(r) + '\n');
  return r;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
