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

// ------------------------------------------------------------------ rate-limited lines

/** The levels a line can be written at. */
export type LineLevel = Exclude<LogLevel, 'silent'>;

/** What one window of one kind of line saw; handed to a kind's summary. */
export interface LogWindowStats {
  kind: string;
  /** Events noted in the window, written one by one or not. */
  count: number;
  /** Events only counted (past the window's burst). */
  suppressed: number;
  /** Length of the window so far, in whole seconds (at least 1). */
  seconds: number;
  /** Distinct `address` values noted (counting stops at 10 000: see `addressesTruncated`). */
  addresses: number;
  addressesTruncated: boolean;
  /** Events per `code`. */
  codes: Record<string, number>;
  /** The three addresses with the most events. */
  top: { address: string; count: number }[];
}

export interface LogKindOptions {
  /** Level of the summary line; default info. */
  level?: LineLevel;
  /** Write a summary for every window that saw an event, not only for windows where lines were left out. */
  always?: boolean;
  /** The summary's message; default "<kind>: N events in the last S s, K of them not logged one by one". */
  message?: (s: LogWindowStats) => string;
}

export interface LogRateLimiterOptions {
  /** Where summaries go. */
  log: Logger;
  /** Window length. */
  intervalMs: number;
  /** Lines of one kind written one by one per window; later ones in the window are only counted. */
  burst: number;
  /**
   * With a timer (unref'd), a window's summary is written when it ends. Without one, at the next
   * event of that kind after it ended, or at `flush()` — for per-peer limiters, flushed when the peer closes.
   */
  timer?: boolean;
}

const MAX_TRACKED_ADDRESSES = 10_000;

interface LogWindow {
  start: number;
  count: number;
  suppressed: number;
  addresses: Map<string, number>;
  addressesTruncated: boolean;
  codes: Record<string, number>;
}

/**
 * Keeps lines that the network can trigger (refused connections, failed
 * handshakes, a peer's warnings) from flooding the log: per kind of line and
 * window, the first `burst` are written, the rest only counted, and one
 * summary line per window says how many there were, from how many addresses,
 * with which codes. A flood thus costs a bounded number of lines per window
 * whatever its rate.
 */
export class LogRateLimiter {
  private readonly opts: LogRateLimiterOptions;
  private readonly kinds = new Map<string, LogKindOptions>();
  private readonly windows = new Map<string, LogWindow>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: LogRateLimiterOptions) {
    if (!(opts.intervalMs > 0) || !Number.isInteger(opts.burst) || opts.burst < 0)
      throw new ArgumentError('intervalMs must be positive and burst a non-negative integer');
    this.opts = opts;
  }

  /** Sets how the summaries of one kind of line look. */
  kind(name: string, opts: LogKindOptions): this {
    this.kinds.set(name, opts);
    return this;
  }

  /**
   * Notes one event of `kind`: written as `msg` with `fields` on `log` at `level` while the window's
   * burst lasts, counted either way. `address` and `code` feed the summary.
   */
  note(
    kind: string,
    log: Logger,
    level: LineLevel,
    fields: Record<string, unknown>,
    msg: string,
    meta: { address?: string | undefined; code?: string | undefined } = {},
  ): void {
    const now = performance.now();
    let w = this.windows.get(kind);
    if (w !== undefined && now - w.start >= this.opts.intervalMs) {
      this.summarize(kind, w, now);
      this.windows.delete(kind);
      w = undefined;
    }
    if (w === undefined) {
      w = { start: now, count: 0, suppressed: 0, addresses: new Map(), addressesTruncated: false, codes: {} };
      this.windows.set(kind, w);
      this.arm();
    }
    w.count++;
    if (meta.address !== undefined) {
      const n = w.addresses.get(meta.address);
      if (n !== undefined) w.addresses.set(meta.address, n + 1);
      else if (w.addresses.size < MAX_TRACKED_ADDRESSES) w.addresses.set(meta.address, 1);
      else w.addressesTruncated = true;
    }
    if (meta.code !== undefined) w.codes[meta.code] = (w.codes[meta.code] ?? 0) + 1;
    if (w.count <= this.opts.burst) log[level](fields, msg);
    else w.suppressed++;
  }

  /** Writes the summaries of the windows open now and starts afresh. */
  flush(): void {
    const now = performance.now();
    for (const [kind, w] of this.windows) this.summarize(kind, w, now);
    this.windows.clear();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** flush(), and no timer from now on. */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private arm(): void {
    if (this.opts.timer !== true || this.closed || this.timer !== undefined) return;
    let first = Infinity;
    for (const w of this.windows.values()) first = Math.min(first, w.start);
    if (first === Infinity) return;
    const delay = Math.max(0, Math.ceil(first + this.opts.intervalMs - performance.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = performance.now();
      for (const [kind, w] of this.windows) {
        if (now - w.start < this.opts.intervalMs) continue;
        this.summarize(kind, w, now);
        this.windows.delete(kind);
      }
      this.arm();
    }, delay);
    this.timer.unref();
  }

  private summarize(kind: string, w: LogWindow, now: number): void {
    const k = this.kinds.get(kind) ?? {};
    if (w.count === 0 || (k.always !== true && w.suppressed === 0)) return;
    const stats: LogWindowStats = {
      kind,
      count: w.count,
      suppressed: w.suppressed,
      seconds: Math.max(1, Math.round(Math.min(now - w.start, this.opts.intervalMs) / 1000)),
      addresses: w.addresses.size,
      addressesTruncated: w.addressesTruncated,
      codes: w.codes,
      top: [...w.addresses.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([address, count]) => ({ address, count })),
    };
    const msg =
      k.message?.(stats) ?? `${kind}: ${stats.count} in the last ${stats.seconds} s, ${stats.suppressed} of them not logged one by one`;
    this.opts.log[k.level ?? 'info']({ summary: stats }, msg);
  }
}
