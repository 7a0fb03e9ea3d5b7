/**
 * BOLT 1 setup and control messages: `init` (16), `error` (17), `warning` (1),
 * `ping` (18) and `pong` (19), plus BOLT 7 address descriptors for `init`'s
 * `remote_addr`.
 *
 * Bytes after a message's known fields are its `extension` (BOLT 1, "Lightning
 * Message Format"). `init` defines a TLV stream (`init_tlvs`), so there the
 * trailing bytes must form a valid stream: a truncated stream, bad ordering or
 * an unknown even record fails the decode (BOLT 1 Appendix C). `error`,
 * `warning`, `ping` and `pong` define no TLV records; their trailing bytes are
 * ignored, which BOLT 1 allows ("MAY ignore the `extension`") and which is
 * what lnd does for these four messages.
 *
 * Feature fields stay raw bytes here; `FeatureVector.decode` gives them meaning.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { Reader, Writer } from './bytes.js';
import { ArgumentError, DecodeError } from './errors.js';
import type { MessageCodec } from './message.js';
import { decodeTlvStream, encodeTlvRecords, type TlvFieldCodec, type TlvRecord, type TlvRegistry } from './tlv.js';

export interface InitMessage {
  type: 16;
  globalFeatures: Uint8Array;
  features: Uint8Array;
  /** TLV 1: chain hashes (32 bytes each) the sender cares about. */
  networks?: Uint8Array[];
  /** TLV 3: one BOLT 7 address descriptor, raw; see `parseAddressDescriptor`. */
  remoteAddr?: Uint8Array;
  /** Unknown odd records of `init_tlvs`, kept to be re-sent unchanged. */
  unknownTlvs: TlvRecord[];
}

export interface ErrorMessage {
  type: 17;
  channelId: Uint8Array;
  data: Uint8Array;
}

export interface WarningMessage {
  type: 1;
  channelId: Uint8Array;
  data: Uint8Array;
}

export interface PingMessage {
  type: 18;
  numPongBytes: number;
  ignored: Uint8Array;
}

export interface PongMessage {
  type: 19;
  ignored: Uint8Array;
}

export type SetupMessage = InitMessage | ErrorMessage | WarningMessage | PingMessage | PongMessage;

/** A ping asking for this many pong bytes or more must be ignored (BOLT 1). */
export const PING_NO_REPLY_THRESHOLD = 65532;

// ---------------------------------------------------------------- init

const CHAIN_HASH_LENGTH = 32;

const networksCodec: TlvFieldCodec<Uint8Array[]> = {
  decode(value) {
    if (value.length % CHAIN_HASH_LENGTH !== 0)
      throw new DecodeError('ERR_TLV_LENGTH', `init networks: ${value.length} bytes is not a whole number of chain hashes`);
    const out: Uint8Array[] = [];
    for (let i = 0; i < value.length; i += CHAIN_HASH_LENGTH) out.push(value.slice(i, i + CHAIN_HASH_LENGTH));
    return out;
  },
  encode(chains) {
    const w = new Writer(chains.length * CHAIN_HASH_LENGTH);
    for (const c of chains) {
      if (c.length !== CHAIN_HASH_LENGTH) throw new ArgumentError(`chain hash must be 32 bytes, got ${c.length}`);
      w.bytes(c);
    }
    return w.finish();
  },
};

const rawCodec: TlvFieldCodec<Uint8Array> = {
  decode: (value) => value.slice(),
  encode: (value) => value,
};

const INIT_TLV_NETWORKS = 1n;
const INIT_TLV_REMOTE_ADDR = 3n;

/** The `init_tlvs` namespace. */
export const initTlvRegistry: TlvRegistry = new Map<bigint, TlvFieldCodec<unknown>>([
  [INIT_TLV_NETWORKS, networksCodec as TlvFieldCodec<unknown>],
  [INIT_TLV_REMOTE_ADDR, rawCodec as TlvFieldCodec<unknown>],
]);

export const initCodec: MessageCodec<InitMessage> = {
  type: 16,
  name: 'init',
  decode(payload) {
    const r = new Reader(payload);
    const globalFeatures = r.bytes(r.u16('init gflen'), 'init globalfeatures');
    const features = r.bytes(r.u16('init flen'), 'init features');
    const tlvs = decodeTlvStream(r.rest(), initTlvRegistry);
    const msg: InitMessage = { type: 16, globalFeatures, features, unknownTlvs: tlvs.unknown };
    const networks = tlvs.known.get(INIT_TLV_NETWORKS);
    if (networks !== undefined) msg.networks = networks as Uint8Array[];
    const remoteAddr = tlvs.known.get(INIT_TLV_REMOTE_ADDR);
    if (remoteAddr !== undefined) msg.remoteAddr = remoteAddr as Uint8Array;
    return msg;
  },
  encode(m) {
    const records: TlvRecord[] = [...m.unknownTlvs];
    for (const rec of m.unknownTlvs)
      if (rec.type % 2n === 0n || rec.type === INIT_TLV_NETWORKS || rec.type === INIT_TLV_REMOTE_ADDR)
        throw new ArgumentError(`init unknownTlvs may hold only unknown odd types, not ${rec.type}`);
    if (m.networks !== undefined) records.push({ type: INIT_TLV_NETWORKS, value: networksCodec.encode(m.networks) });
    if (m.remoteAddr !== undefined) records.push({ type: INIT_TLV_REMOTE_ADDR, value: m.remoteAddr });
    const tlv = encodeTlvRecords(records);
    const w = new Writer(4 + m.globalFeatures.length + m.features.length + tlv.length);
    w.u16(m.globalFeatures.length).bytes(m.globalFeatures);
    w.u16(m.features.length).bytes(m.features);
    return w.bytes(tlv).finish();
  },
};

// ---------------------------------------------------------------- error / warning

function channelTextCodec<T extends 17 | 1>(type: T, name: string): MessageCodec<{ type: T; channelId: Uint8Array; data: Uint8Array }> {
  return {
    type,
    name,
    decode(payload) {
      const r = new Reader(payload);
      const channelId = r.bytes(32, `${name} channel_id`);
      const data = r.bytes(r.u16(`${name} len`), `${name} data`);
      return { type, channelId, data }; // trailing bytes: an extension with no defined records, ignored
    },
    encode(m) {
      if (m.channelId.length !== 32) throw new ArgumentError(`${name} channel_id must be 32 bytes`);
      return new Writer(34 + m.data.length).bytes(m.channelId).u16(m.data.length).bytes(m.data).finish();
    },
  };
}

export const errorCodec: MessageCodec<ErrorMessage> = channelTextCodec(17, 'error');
export const warningCodec: MessageCodec<WarningMessage> = channelTextCodec(1, 'warning');

// ---------------------------------------------------------------- ping / pong

export const pingCodec: MessageCodec<PingMessage> = {
  type: 18,
  name: 'ping',
  decode(payload) {
    const r = new Reader(payload);
    const numPongBytes = r.u16('ping num_pong_bytes');
    const ignored = r.bytes(r.u16('ping byteslen'), 'ping ignored');
    return { type: 18, numPongBytes, ignored };
  },
  encode(m) {
    return new Writer(4 + m.ignored.length).u16(m.numPongBytes).u16(m.ignored.length).bytes(m.ignored).finish();
  },
};

export const pongCodec: MessageCodec<PongMessage> = {
  type: 19,
  name: 'pong',
  decode(payload) {
    const r = new Reader(payload);
    const ignored = r.bytes(r.u16('pong byteslen'), 'pong ignored');
    return { type: 19, ignored };
  },
  encode(m) {
    return new Writer(2 + m.ignored.length).u16(m.ignored.length).bytes(m.ignored).finish();
  },
};

export const setupMessageCodecs = [initCodec, errorCodec, warningCodec, pingCodec, pongCodec] as const;

// ---------------------------------------------------------------- BOLT 7 address descriptors

export type NetAddress =
  | { kind: 'ipv4'; host: string; port: number }
  | { kind: 'ipv6'; host: string; port: number }
  | { kind: 'torv3'; onion: Uint8Array; port: number }
  | { kind: 'dns'; hostname: string; port: number };

/**
 * Parses exactly one address descriptor (type 1 ipv4, 2 ipv6, 4 torv3,
 * 5 DNS hostname). Type 3 (torv2) is deprecated and, like any other type,
 * rejected with ERR_INVALID_VALUE.
 */
export function parseAddressDescriptor(bytes: Uint8Array): NetAddress {
  const r = new Reader(bytes);
  const kind = r.u8('address descriptor type');
  let out: NetAddress;
  switch (kind) {
    case 1: {
      const a = r.view(4, 'ipv4 address');
      out = { kind: 'ipv4', host: Array.from(a).join('.'), port: r.u16('port') };
      break;
    }
    case 2: {
      const a = r.view(16, 'ipv6 address');
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(((a[i]! << 8) | a[i + 1]!).toString(16));
      out = { kind: 'ipv6', host: compressIpv6(groups), port: r.u16('port') };
      break;
    }
    case 4:
      out = { kind: 'torv3', onion: r.bytes(35, 'torv3 address'), port: r.u16('port') };
      break;
    case 5: {
      const name = r.view(r.u8('hostname length'), 'hostname');
      if (name.length === 0) throw new DecodeError('ERR_INVALID_VALUE', 'DNS hostname is empty');
      for (const c of name) if (c < 0x21 || c > 0x7e) throw new DecodeError('ERR_INVALID_VALUE', 'DNS hostname must be printable ASCII');
      out = { kind: 'dns', hostname: Buffer.from(name).toString('latin1'), port: r.u16('port') };
      break;
    }
    default:
      throw new DecodeError('ERR_INVALID_VALUE', `unsupported address descriptor type ${kind}`);
  }
  r.end('address descriptor');
  return out;
}

function compressIpv6(groups: string[]): string {
  // RFC 5952: longest run (length >= 2) of zero groups becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** RFC 4648 base32, lower case, no padding (a v3 onion address is 35 bytes → 56 characters). */
function base32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let out = '';
  let acc = 0;
  let n = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    n += 8;
    while (n >= 5) {
      out += alphabet[(acc >> (n - 5)) & 31];
      n -= 5;
    }
    acc &= (1 << n) - 1;
  }
  if (n > 0) out += alphabet[(acc << (5 - n)) & 31];
  return out;
}

function ipv6Bytes(host: string): Uint8Array {
  let h = host.split('%')[0]!; // drop a zone index
  // An embedded dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    h = `${h.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = h.split('::');
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length > 1 && halves[1] !== '' ? halves[1]!.split(':') : [];
  const fill = halves.length > 1 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...new Array<string>(fill).fill('0'), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** Encodes an address descriptor. */
export function encodeAddressDescriptor(addr: NetAddress): Uint8Array {
  const port = addr.port;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new ArgumentError(`bad port ${port}`);
  const w = new Writer(40);
  switch (addr.kind) {
    case 'ipv4':
      if (!isIPv4(addr.host)) throw new ArgumentError(`not an IPv4 address: ${addr.host}`);
      w.u8(1).bytes(Uint8Array.from(addr.host.split('.').map(Number)));
      break;
    case 'ipv6':
      if (!isIPv6(addr.host)) throw new ArgumentError(`not an IPv6 address: ${addr.host}`);
      w.u8(2).bytes(ipv6Bytes(addr.host));
      break;
    case 'torv3':
      if (addr.onion.length !== 35) throw new ArgumentError('torv3 address must be 35 bytes');
      w.u8(4).bytes(addr.onion);
      break;
    case 'dns': {
      const name = Buffer.from(addr.hostname, 'latin1');
      if (name.length === 0 || name.length > 255 || name.some((c) => c < 0x21 || c > 0x7e))
        throw new ArgumentError(`bad DNS hostname: ${addr.hostname}`);
      w.u8(5).u8(name.length).bytes(name);
      break;
    }
  }
  return w.u16(port).finish();
}

/** `1.2.3.4:9735`, `[::1]:9735`, `host.example:9735`, `<hex>.onion:9735`. */
export function formatAddress(addr: NetAddress): string {
  switch (addr.kind) {
    case 'ipv4':
      return `${addr.host}:${addr.port}`;
    case 'ipv6':
      return `[${addr.host}]:${addr.port}`;
    case 'torv3':
      return `${base32(addr.onion)}.onion:${addr.port}`;
    case 'dns':
      return `${addr.hostname}:${addr.port}`;
  }
}

/** Address descriptor for an IP address and port, as `remote_addr` wants it (e.g. from a socket's remoteAddress). */
export function ipAddressDescriptor(host: string, port: number): Uint8Array {
  const h = host.startsWith('::ffff:') && isIPv4(host.slice(7)) ? host.slice(7) : host;
  if (isIPv4(h)) return encodeAddressDescriptor({ kind: 'ipv4', host: h, port });
  if (isIPv6(h)) return encodeAddressDescriptor({ kind: 'ipv6', host: h, port });
  throw new ArgumentError(`not an IP address: ${host}`);
}
