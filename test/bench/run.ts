/**
 * `npm run bench [-- suite ...]`: runs the named suites (when none is named,
 * all but those that run only when named: `interop`, which needs lnd and btcd).
 * A suite is a module `test/bench/<suite>.bench.ts` exporting
 * `run(): Promise<void>`, which prints its JSON lines through `emit`.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .sort();
const wanted = process.argv.slice(2).filter((a) => a !== '--');
for (const w of wanted) {
  if (!all.includes(w)) {
    console.error(`unknown bench suite "${w}"; suites: ${all.join(', ')}`);
    process.exit(2);
  }
}
const ONLY_WHEN_NAMED = new Set(['interop']);
for (const suite of wanted.length > 0 ? wanted : all.filter((s) => !ONLY_WHEN_NAMED.has(s))) {
  const mod = (await import(`./${suite}.bench.ts`)) as { run: () => Promise<void> };
  await mod.run();
}
