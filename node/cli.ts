#!/usr/bin/env node
/**
 * The `ampnode` command (commander).
 *
 *   ampnode start --datadir DIR --listen HOST:PORT [--network regtest]
 *                 [--connect PUBKEY@HOST:PORT]... [--log-level info]
 *                 [--chain embedded|p2p|none] [--chain-peer HOST:PORT] [--api HOST:PORT]
 *   ampnode demo [amp|channels] [--log-level warn]   (amp: the AMP demo of `npm start`; channels: the two-node demo)
 *
 * `start` runs the daemon. Its stdout carries exactly one line, printed once
 * the listener is bound, for scripts to read:
 *   {"event":"listening","nodeId":"<66 hex>","address":"HOST:PORT"}
 * Everything else (JSON log lines) goes to stderr. SIGINT or SIGTERM stop
 * it cleanly (listener closed, peers disconnected) with exit code 0; a
 * failure to start exits 1.
 *
 * Before it opens anything, `start` refuses an empty datadir, sets the
 * process umask to 077 (what LevelDB and bcoin create is then 0600/0700),
 * makes the datadir 0700 and takes its lock, DATADIR/ampnode.pid: a second
 * daemon on the same datadir exits 1 with "datadir in use by pid N"
 * (node/datadir.ts). The lock goes when the process exits.
 *
 * Runs as TypeScript (`node --import tsx node/cli.ts`) or compiled
 * (`dist/node/cli.js`, the package's bin).
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './cli-client.js';
import { fileURLToPath } from 'node:url';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { NodeError } from './errors.js';
import { AmpnodeError } from '../wire/errors.js';
import { DEFAULTS, parseHostPort, parseNodeAddress } from './config.js';
import { checkDatadirPath, lockDatadir, narrowDatadirTree, prepareDatadir, type DatadirLock } from './datadir.js';
import { runDemo } from './demo.js';
import { createLogger, isLogLevel, LOG_LEVELS, type Logger, type LogLevel } from './log.js';
import type { PeerManager } from './peer-manager.js';
import { createNode, createPeerOnlyNode, type AmpNode } from './builder.js';
import { CONFIG_FILE_MAX_BYTES, ConfigError, envName, parseBoolean, parseConfigText, type ConfigEntry } from './config-file.js';

function collect(value: string, previous: string[]): string[] {
  try {
    parseNodeAddress(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return [...previous, value];
}

function hostPortArg(value: string): string {
  try {
    parseHostPort(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return value;
}

function datadirArg(value: string): string {
  try {
    return checkDatadirPath(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^ERR_\w+: /, ''));
  }
}

function logLevelOption(def: LogLevel): Option {
  return new Option('--log-level <level>', 'log level (stderr)').choices(LOG_LEVELS).default(def);
}

interface StartOptions {
  datadir: string;
  listen: string;
  network: 'regtest';
  connect: string[];
  logLevel: string;
  chain: 'embedded' | 'p2p' | 'none';
  chainPeer?: string;
  chainListen?: string;
  api?: string;
  acceptKeysend: boolean;
  acceptAmp: boolean;
  /** The config file read (node/config-file.ts). */
  config?: string;
}

async function startDaemon(opts: StartOptions): Promise<void> {
  const level = isLogLevel(opts.logLevel) ? opts.logLevel : 'info';
  const log = createLogger({ level });
  installCrashHandlers(log);
  // The datadir first, before anything opens a file: files and directories we (and LevelDB, bcoin) create
  // are for this user only; the datadir is made 0700; one daemon per datadir, in every chain mode.
  process.umask(0o077);
  let lock: DatadirLock;
  try {
    prepareDatadir(checkDatadirPath(opts.datadir), log);
    lock = lockDatadir(opts.datadir);
  } catch (e) {
    log.fatal({ err: e, code: e instanceof AmpnodeError ? e.code : undefined }, 'could not start');
    process.exit(1);
  }
  // every exit from here on (a clean stop, a failed start, a crash) gives the datadir up
  process.on('exit', () => lock.release());
  try {
    narrowDatadirTree(opts.datadir, log); // what an older version left readable by others
  } catch (e) {
    log.warn({ err: e }, 'could not narrow the permissions of the files in the datadir');
  }
  // The node as the embedding API builds it (node/builder.ts: chain, store, wallet, invoices, channels, payments,
  // peers, the local API); `--chain none` runs the peer layer alone.
  let amp: AmpNode | undefined;
  let peersOnly: PeerManager | undefined;

  // Signal handlers go in before anything starts: a SIGTERM that arrives right after the "listening"
  // line (or during start-up) must still stop the node cleanly, never kill it mid-way.
  let stopping = false;
  let startup: Promise<void> = Promise.resolve();
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    startup
      .catch(() => undefined)
      .then(() => amp?.stop())
      .then(() => peersOnly?.stop())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error({ err: e }, 'error while stopping');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  startup = (async () => {
    if (opts.chain === 'none') {
      const peers = createPeerOnlyNode({ datadir: opts.datadir, listen: opts.listen, network: opts.network, logger: log });
      peersOnly = peers;
      await peers.start();
      return;
    }
    amp = await createNode({
      datadir: opts.datadir,
      chain: {
        mode: opts.chain === 'p2p' ? 'p2p' : 'embedded',
        ...(opts.chainPeer !== undefined ? { chainPeer: opts.chainPeer } : {}),
        ...(opts.chainListen !== undefined ? { chainListen: opts.chainListen } : {}),
      },
      listen: opts.listen,
      network: opts.network,
      logger: log,
      ...(opts.api !== undefined ? { api: { listen: opts.api } } : {}),
      invoices: { acceptKeysend: opts.acceptKeysend, acceptAmp: opts.acceptAmp },
    });
  })();
  try {
    await startup;
  } catch (e) {
    log.fatal({ err: e, code: e instanceof AmpnodeError ? e.code : undefined }, 'could not start');
    await amp?.stop().catch(() => undefined);
    await peersOnly?.stop().catch(() => undefined);
    process.exitCode = 1;
    if (!stopping) process.exit(1);
    return;
  }
  if (stopping) return; // a signal came during start-up; shutdown() takes it from here
  const node = amp?.node ?? peersOnly!;
  process.stdout.write(`${JSON.stringify({ event: 'listening', nodeId: node.nodeIdHex, address: node.listenAddress })}\n`);

  for (const target of opts.connect) {
    const { nodeId, host, port } = parseNodeAddress(target);
    node.connect(nodeId, host, port, { persistent: true }).catch((e: unknown) => {
      // retried with backoff by the node; the first failure is only reported
      log.warn(
        { peer: target, code: e instanceof AmpnodeError ? e.code : undefined, reason: (e as Error).message },
        'could not connect yet; will retry',
      );
    });
  }
}

function installCrashHandlers(log: Logger): void {
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log.fatal({ err: e }, 'unhandled rejection');
    process.exit(1);
  });
}

/** Where `buildProgram` takes the environment from and what `start` runs (tests swap both). */
export interface ProgramHooks {
  env?: NodeJS.ProcessEnv;
  start?: (opts: StartOptions) => Promise<void>;
}

export type { StartOptions };

/** Settings that cannot come from the environment's generic rule or the file: they locate the file. */
const NOT_FROM_FILE = new Set(['datadir', 'config', 'help']);

/**
 * Fills the settings the command line left at their defaults from the environment, then from the config file
 * (node/config-file.ts has the format and the precedence). Runs before `start`'s action.
 */
function applyConfigSources(cmd: Command, env: NodeJS.ProcessEnv): void {
  if (cmd.getOptionValueSource('datadir') !== 'cli') {
    const d = env[envName('datadir')];
    if (d !== undefined && d !== '') cmd.setOptionValueWithSource('datadir', datadirArg(d), 'env');
  }
  const datadir = cmd.getOptionValue('datadir') as string | undefined;
  if (datadir === undefined) cmd.error("error: required option '--datadir <dir>' not specified");
  let file = cmd.getOptionValue('config') as string | undefined;
  if (file === undefined && env[envName('config')] !== undefined) file = env[envName('config')];
  const explicit = file !== undefined;
  file ??= join(datadir!, 'ampnode.conf');
  let entries: ConfigEntry[] = [];
  if (explicit || existsSync(file)) {
    let text: string;
    try {
      if (statSync(file).size > CONFIG_FILE_MAX_BYTES) throw new Error(`larger than ${CONFIG_FILE_MAX_BYTES} bytes`);
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_UNREADABLE', `cannot read the config file ${file}: ${(e as Error).message}`, { cause: e });
    }
    entries = parseConfigText(text, file);
  }
  const options = new Map(cmd.options.filter((o) => o.long !== undefined).map((o) => [o.long!.slice(2), o]));
  const fromFile = new Map<string, ConfigEntry[]>();
  for (const e of entries) {
    if (NOT_FROM_FILE.has(e.key))
      throw new ConfigError('ERR_CONFIG_NOT_ALLOWED', `${file}:${e.line}: "${e.key}" cannot be set in the config file`);
    const opt = options.get(e.key);
    if (opt === undefined)
      throw new ConfigError(
        'ERR_CONFIG_UNKNOWN_KEY',
        `${file}:${e.line}: unknown key "${e.key}" (a flag of \`ampnode start\`, without its dashes)`,
      );
    const list = fromFile.get(e.key) ?? [];
    if (list.length > 0 && !Array.isArray(opt.defaultValue))
      throw new ConfigError('ERR_CONFIG_VALUE', `${file}:${e.line}: "${e.key}" set again (first on line ${list[0]!.line})`);
    list.push(e);
    fromFile.set(e.key, list);
  }
  for (const [name, opt] of options) {
    if (NOT_FROM_FILE.has(name)) continue;
    const key = opt.attributeName();
    if (cmd.getOptionValueSource(key) === 'cli') continue;
    const envValue = env[envName(name)];
    const values: { value: string | undefined; where: string }[] =
      envValue !== undefined
        ? (Array.isArray(opt.defaultValue) ? envValue.split(',').filter((v) => v !== '') : [envValue]).map((v) => ({
            value: v,
            where: envName(name),
          }))
        : (fromFile.get(name) ?? []).map((e) => ({ value: e.value, where: `${file}:${e.line}` }));
    if (values.length === 0) continue;
    let v: unknown = opt.defaultValue;
    for (const { value, where } of values) {
      if (opt.isBoolean()) {
        v = parseBoolean(value, `${where}: ${name}`);
        continue;
      }
      if (value === undefined || value === '') throw new ConfigError('ERR_CONFIG_VALUE', `${where}: ${name} needs a value`);
      try {
        v = opt.parseArg !== undefined ? opt.parseArg(value, v) : value;
      } catch (e) {
        throw new ConfigError('ERR_CONFIG_VALUE', `${where}: ${name}: ${(e as Error).message}`, { cause: e });
      }
    }
    cmd.setOptionValueWithSource(key, v, envValue !== undefined ? 'env' : 'config');
  }
}

export function buildProgram(hooks: ProgramHooks = {}): Command {
  const env = hooks.env ?? process.env;
  const start = hooks.start ?? startDaemon;
  const program = new Command();
  program.name('ampnode').description('An embedded Lightning Network node (regtest)').showHelpAfterError();
  program
    .command('start')
    .description('run the node: listen for peers and connect to the given ones')
    .option('--datadir <dir>', 'data directory (the node key lives in DIR/node_key; made 0700; one daemon at a time; required)', datadirArg)
    .option('--config <file>', 'configuration file (key=value per line, keys the flags below; default DATADIR/ampnode.conf if it exists)')
    .option('--listen <host:port>', 'address to accept peers on (port 0: any free port)', hostPortArg, DEFAULTS.listen)
    .addOption(new Option('--network <network>', 'chain').choices(['regtest']).default('regtest'))
    .option('--connect <pubkey@host:port>', 'peer to connect to and keep connected (repeatable)', collect, [] as string[])
    .addOption(logLevelOption('info'))
    .addOption(
      new Option('--chain <mode>', 'chain backend: embedded regtest chain, p2p (follow --chain-peer), none (no channels)')
        .choices(['embedded', 'p2p', 'none'])
        .default('embedded'),
    )
    .option('--chain-peer <host:port>', 'regtest node to follow with --chain p2p (btcd/bitcoind P2P port)', hostPortArg)
    .option(
      '--chain-listen <host:port>',
      'with --chain embedded: serve the chain over P2P on this loopback address, for other daemons to follow with --chain p2p',
      hostPortArg,
    )
    .option('--api <host:port>', 'serve the local JSON control API on this loopback address (node/channels/api.ts)', hostPortArg)
    .option('--accept-keysend', "pay keysend HTLCs (spontaneous payments carrying their preimage), as lnd's accept-keysend", false)
    .option('--accept-amp', "pay AMP HTLCs that match no invoice (spontaneous AMP), as lnd's accept-amp", false)
    .addHelpText(
      'after',
      '\nEvery flag may also come from the environment (AMPNODE_ and the flag in capitals, e.g. AMPNODE_ACCEPT_AMP=1)\n' +
        'or the config file; the command line wins over the environment, which wins over the file.',
    )
    .hook('preAction', (cmd) => applyConfigSources(cmd, env))
    .action(async (opts: StartOptions) => start(opts));
  program.command('cli').description("lncli's daily verbs against a running daemon: `ampnode cli --datadir DIR --help`");
  program
    .command('demo')
    .description('a demo on the embedded regtest chain, nothing else needed; prints a summary, exits 0 when every check held')
    .addArgument(
      new Argument(
        '[which]',
        'amp: four nodes, a reusable AMP invoice paid three times over two paths, an account invoice, spontaneous AMP (as `npm start`); ' +
          'channels: two nodes, one channel from open to close (HTLCs both ways, reconnect, update_fee, a force close)',
      )
        .choices(['amp', 'channels'])
        .default('amp'),
    )
    .addOption(logLevelOption('warn'))
    .action(async (which: string, opts: { logLevel: string }) => {
      if (which === 'channels') {
        const log = createLogger({ level: isLogLevel(opts.logLevel) ? opts.logLevel : 'warn' });
        process.exitCode = await runDemo(log, (l) => process.stdout.write(`${l}\n`));
      } else {
        process.exitCode = await runAmpDemo(opts.logLevel);
      }
    });
  return program;
}

/**
 * The AMP demo is an example app of the public API and lives with the examples; it ships in the package beside the
 * node (`dist/test/examples/`), and is loaded only when asked for.
 */
async function runAmpDemo(logLevel: string): Promise<number> {
  const url = new URL('../test/examples/amp-demo.js', import.meta.url);
  let demo: { main(level: string): Promise<number> };
  try {
    demo = (await import(url.href)) as typeof demo;
  } catch (e) {
    throw new NodeError('ERR_NODE_CONFIG', `the AMP demo is not installed beside this node: ${(e as Error).message}`, { cause: e });
  }
  return demo.main(logLevel);
}

export async function main(argv: string[]): Promise<void> {
  if (argv[2] === 'cli') {
    // the client verbs have their own parser (node/cli-client.ts)
    process.exitCode = await runCli(argv.slice(3), {
      out: (l) => process.stdout.write(`${l}\n`),
      err: (l) => process.stderr.write(`${l}\n`),
      progress: process.stderr,
    });
    return;
  }
  await buildProgram().parseAsync(argv);
}

function invokedDirectly(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv).catch((e: unknown) => {
    process.stderr.write(`ampnode: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
