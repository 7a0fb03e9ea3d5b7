/**
 * The daemon's configuration file, in lnd's `lnd.conf` shape: one `key=value` per line, keys the long flag names of
 * `ampnode start` without their dashes (`listen=127.0.0.1:9735`, `accept-amp=true`), a repeatable flag repeated
 * (`connect=…` on several lines), `#` and `;` start comments, `[Section]` headers are allowed and ignored, a boolean
 * key alone means true. Read from `--config FILE`, or DATADIR/ampnode.conf when that exists.
 *
 * Precedence, per setting: a flag on the command line, then the environment (`AMPNODE_` and the flag's name in capitals
 * with `_` for `-`: `AMPNODE_ACCEPT_AMP=1`), then the file, then the default. A key the daemon does not know, a value
 * that does not parse, a boolean that is not one of 1/0/true/false/yes/no/on/off: a `ConfigError` naming the file, the
 * line and the key, and the daemon does not start.
 */
import { AmpnodeError } from '../wire/errors.js';

export type ConfigErrorCode =
  | 'ERR_CONFIG_SYNTAX' // a line that is neither key=value, a comment, a section nor a bare key
  | 'ERR_CONFIG_UNKNOWN_KEY' // a key that names no flag of the command
  | 'ERR_CONFIG_VALUE' // a value its flag refuses (bad address, unknown choice, not a boolean)
  | 'ERR_CONFIG_NOT_ALLOWED' // a key that cannot come from a file (the datadir, which locates the file)
  | 'ERR_CONFIG_UNREADABLE'; // the file named by --config cannot be read

export class ConfigError extends AmpnodeError<ConfigErrorCode> {}

export interface ConfigEntry {
  key: string;
  /** undefined for a bare key (a boolean set to true). */
  value: string | undefined;
  line: number;
}

/** Bounds on what a config file may hold: it is read before anything else and from a path a user names. */
export const CONFIG_FILE_MAX_BYTES = 256 * 1024;
export const CONFIG_FILE_MAX_ENTRIES = 1024;

/** The entries of a config file's text, in order; syntax only (keys and values are checked against the command). */
export function parseConfigText(text: string, source = 'config file'): ConfigEntry[] {
  if (text.length > CONFIG_FILE_MAX_BYTES)
    throw new ConfigError('ERR_CONFIG_SYNTAX', `${source}: larger than ${CONFIG_FILE_MAX_BYTES} bytes`);
  const out: ConfigEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (/^\[[^\]]*\]$/.test(line)) continue;
    const m = /^([a-z][a-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (m === null) throw new ConfigError('ERR_CONFIG_SYNTAX', `${source}:${i + 1}: expected key=value, got "${line.slice(0, 80)}"`);
    if (out.length === CONFIG_FILE_MAX_ENTRIES)
      throw new ConfigError('ERR_CONFIG_SYNTAX', `${source}: more than ${CONFIG_FILE_MAX_ENTRIES} entries`);
    out.push({ key: m[1]!, value: m[2] === undefined ? undefined : m[2].trim(), line: i + 1 });
  }
  return out;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** A boolean setting's text; undefined (a bare key) is true. */
export function parseBoolean(value: string | undefined, where: string): boolean {
  if (value === undefined) return true;
  const v = value.toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new ConfigError('ERR_CONFIG_VALUE', `${where}: "${value}" is not a boolean (1/0, true/false, yes/no, on/off)`);
}

/** The environment variable of a flag: `accept-amp` → `AMPNODE_ACCEPT_AMP`. */
export function envName(flag: string): string {
  return `AMPNODE_${flag.toUpperCase().replace(/-/g, '_')}`;
}
