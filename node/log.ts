/**
 * Logging: structured JSON lines (pino) on stderr, so that stdout stays free
 * for the daemon's one machine-readable line. Subsystems and peers get child
 * loggers (`{sub:'peer', peer:'02ab…'}`) so that one peer's story can be
 * filtered out of a busy log, the way lnd tags its lines by subsystem.
 *
 * Writes are synchronous: a daemon that exits right after logging why must
 * not lose that line.
 */
import pino from 'pino';
import { ArgumentError } from '../wire/errors.js';

export type Logger = pino.Logger;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default stderr (fd 2). Tests may pass a stream to capture lines. */
  destination?: pino.DestinationStream;
}

/** The root logger of one node (or one process). */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  if (!isLogLevel(level)) throw new ArgumentError(`unknown log level "${String(level)}"; use one of ${LOG_LEVELS.join(', ')}`);
  const dest = opts.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err, reason: pino.stdSerializers.err },
    },
    dest,
  );
}

/** A logger that drops everything (embedding without logs, quiet tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Child logger for a subsystem (`node`, `server`, `peer`, `chain`, ...). */
export function subsystemLogger(parent: Logger, sub: string, bindings: Record<string, unknown> = {}): Logger {
  return parent.child({ sub, ...bindings });
}

/** Child logger for one peer, tagged with its node id (hex). */
export function peerLogger(parent: Logger, nodeIdHex: string): Logger {
  return parent.child({ sub: 'peer', peer: nodeIdHex });
}
