/**
 * `npm run fuzz -- [target ...] [--seconds N] [--seed S]`: a longer fuzz campaign on demand over the decoders a
 * peer's bytes reach (targets.ts; all when none is named). Prints one JSON line per target:
 * {"target","inputs","seconds","findings"} and each finding (input as hex, the untyped error); exits 1 if any.
 */
import { campaign } from './campaign.js';
import { TARGETS } from './targets.js';

const args = process.argv.slice(2).filter((a) => a !== '--');
let seconds = 60;
let seed = Date.now() >>> 0;
const names: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--seconds' || a === '--seed') {
    const v = Number(args[++i]);
    if (!Number.isFinite(v) || v <= 0) {
      console.error(`${a} needs a positive number`);
      process.exit(2);
    }
    if (a === '--seconds') seconds = v;
    else seed = v;
  } else names.push(a);
}
const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
if (unknown.length > 0) {
  console.error(`unknown fuzz target(s) ${unknown.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
let found = 0;
for (const t of TARGETS.filter((t) => names.length === 0 || names.includes(t.name))) {
  const r = campaign(t, { seconds, seed });
  found += r.findings.length;
  console.log(
    JSON.stringify({ target: r.target, inputs: r.inputs, seconds: Math.round(r.seconds * 10) / 10, seed, findings: r.findings.length }),
  );
  for (const f of r.findings) console.log(JSON.stringify({ target: r.target, ...f }));
}
process.exit(found > 0 ? 1 : 0);
