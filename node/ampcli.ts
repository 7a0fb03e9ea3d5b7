#!/usr/bin/env node
/**
 * The `ampcli` command: the same verbs as `ampnode cli` (node/cli-client.ts), under a name of its own as lncli is
 * to lnd. `ampcli --datadir DIR getinfo`; exit code 0 on success, 1 with one line on stderr otherwise.
 */
import { runCli } from './cli-client.js';

runCli(
  process.argv.slice(2),
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`), progress: process.stderr },
  'ampcli',
).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`ampcli: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
