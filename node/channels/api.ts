/**
 * The daemon's local control API: JSON over HTTP on a loopback address, for
 * scripts and tests to drive a running node (connect, open and close
 * channels, wallet addresses, sending coins). It binds loopback only.
 *
 * Every request must pass, in this order (and nothing is done otherwise):
 *   - `Host` is the address bound (`127.0.0.1:PORT`, `[::1]:PORT`) or
 *     `localhost:PORT` (what a browser on a DNS-rebound name sends is
 *     neither) → else 403 ERR_API_FORBIDDEN;
 *   - no `Origin` header at all (browsers send one on cross-site requests;
 *     scripts and the CLI never need it) → else 403 ERR_API_FORBIDDEN;
 *   - `Authorization: Bearer <token>` with the node's token (DATADIR/api_token,
 *     64 hex characters, created on the first start; `readApiToken(datadir)`
 *     in node/datadir.ts reads it), compared in constant time → else 401
 *     ERR_API_UNAUTHORIZED (with `WWW-Authenticate: Bearer`);
 *   - a known path (else 404 ERR_API_NOT_FOUND) with its method (else 405
 *     ERR_API_METHOD_NOT_ALLOWED with `Allow`; HEAD and OPTIONS included);
 *   - POST: `Content-Type: application/json` (charset, if given, utf-8), also
 *     with an empty body → else 415 ERR_API_UNSUPPORTED_MEDIA_TYPE; a body of
 *     at most 64 KiB → else 413 ERR_API_TOO_LARGE (the body is read to its end
 *     first, up to 4 MiB, so the client sees the status rather than a reset),
 *     holding a JSON object (or nothing) → else 400.
 *
 * Amounts are decimal strings (64-bit values do not survive JSON numbers;
 * safe-integer numbers are accepted too). Errors are
 * `{"error":{"code","message"}}`; the status comes from the error's code in
 * ERROR_STATUS below — 400 a malformed or invalid request, 404 a thing that
 * does not exist, 409 a request the node's state refuses (funds, peer not
 * connected, channel state), 422 a well-formed request the remote side or the
 * network turned down (connection refused, handshake failed, opening
 * refused), 503 a node stopping, 504 a bounded wait that ran out; every other
 * error is our own fault: 500. Messages quote at most 100 characters of any
 * input and are at most 400 characters long.
 *
 *   GET  /v1/info                 node id, listen address, chain mode and heights
 *   GET  /v1/peers
 *   POST /v1/peers/connect        {"uri":"PUBKEY@HOST:PORT","persistent"?:bool}
 *   POST /v1/peers/disconnect     {"nodeId"}
 *   GET  /v1/wallet/balance
 *   POST /v1/wallet/newaddress    → {"address"}
 *   POST /v1/wallet/send          {"address","amountSat"} → {"txid","feeSat","tx"}
 *   GET  /v1/channels
 *   POST /v1/channels/open        {"nodeId","fundingSat","channelType"?,"pushMsat"?,"feeratePerKw"?}  (returns once pending)
 *   POST /v1/channels/close       {"channelId","feeratePerKw"?}  (returns once the closing tx is signed and broadcast)
 *   POST /v1/channels/policy      {"channelId"?,"baseFeeMsat"?,"feeRatePpm"?,"cltvExpiryDelta"?,"htlcMinimumMsat"?,"htlcMaximumMsat"?}
 *                                 (one channel, or every open one without channelId; returns the channels changed)
 *   POST /v1/channels/updatefee   {"channelId","feeratePerKw"?}  (opener only; without a feerate the chain's estimate by
 *                                 the fee policy; {"feeratePerKw": null} when unchanged)
 *   POST /v1/channels/forceclose  {"channelId"}  (broadcasts our commitment; returns {"txid"})
 *   POST /v1/invoices             {"amountMsat"?,"amp"?,"memo"?,"expirySeconds"?} → the invoice and its BOLT 11
 *                                 "paymentRequest" (AMP: reusable; no amount: any)
 *   POST /v1/invoices/list        {"afterAddIndex"?,"limit"?(≤ 1000)} → {"invoices"}
 *   POST /v1/invoices/lookup      exactly one of {"paymentHash"}, {"paymentAddr"} (with its settled AMP sets), {"setId"}
 *   POST /v1/invoices/decode      {"paymentRequest"} → the decoded BOLT 11 invoice
 *   POST /v1/payments/pay         {"paymentRequest","amountMsat"?,"feeLimitMsat"?,"maxShardMsat"?,"timeoutMs"?}
 *                                 (returns once the payment ended; AMP when the invoice says so)
 *   POST /v1/payments/send        {"dest","amountMsat","kind"?: amp|keysend,"feeLimitMsat"?,"maxShardMsat"?,"timeoutMs"?}
 *                                 (spontaneous; returns once ended)
 *   POST /v1/payments/list        {"afterCreationIndex"?,"limit"?}   POST /v1/payments/lookup {"id"}
 *   POST /v1/chain/generate       {"blocks"(≤ 10000),"address"?}  (embedded chain only; without an address, to a new wallet address)
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AmpnodeError, ArgumentError } from '../../wire/errors.js';
import { formatHostPort, parseHostPort, parseNodeAddress, parseNodeId } from '../config.js';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import type { ChannelType } from '../../htlc/channel/types.js';
import { parseAddress } from '../wallet/wallet.js';
import type { BcoinChainBackend } from '../chain/index.js';
import type { PeerManager } from '../peer-manager.js';
import type { Wallet } from '../wallet/wallet.js';
import type { InvoiceRegistry } from '../../htlc/invoices/index.js';
import type { ChannelManager, PolicyUpdate } from './manager.js';
import type { PaymentService } from './payments.js';
import type { GossipGraph } from '../../htlc/gossip/index.js';
import { aliasText } from '../../wire/gossip.js';

/** What the API's verbs act on (the embedding facade, AmpNode, is one). */
export interface ApiServices {
  readonly node: PeerManager;
  readonly chain: BcoinChainBackend;
  readonly wallet: Wallet;
  readonly manager: ChannelManager;
  readonly invoices: InvoiceRegistry;
  readonly payments: PaymentService;
  /** The public graph from gossip (absent: GET /v1/graph answers empty). */
  readonly gossip?: { readonly graph: GossipGraph };
}
import { paymentRequest } from './payreq.js';
import { decodeInvoice } from '../../wire/bolt11.js';

const MAX_BODY = 64 * 1024;
/** A body over MAX_BODY is still read (and dropped) up to this, so that the 413 reaches the client. */
const MAX_DRAIN = 4 * 1024 * 1024;
const MAX_BLOCKS = 10_000;
/** Longest invoice expiry taken: one year. */
const MAX_EXPIRY_SECONDS = 365 * 24 * 3600;
/** Most invoices one listing returns. */
const MAX_LIST = 1000;
/** Longest payment timeout taken: ten minutes. */
const MAX_PAYMENT_TIMEOUT_MS = 600_000;
const MAX_ECHO = 100;
const MAX_MESSAGE = 400;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

type ApiErrorCode =
  | 'ERR_API_BAD_REQUEST'
  | 'ERR_API_UNAUTHORIZED'
  | 'ERR_API_FORBIDDEN'
  | 'ERR_API_NOT_FOUND'
  | 'ERR_API_METHOD_NOT_ALLOWED'
  | 'ERR_API_TOO_LARGE'
  | 'ERR_API_UNSUPPORTED_MEDIA_TYPE';

class ApiError extends AmpnodeError<ApiErrorCode> {
  constructor(
    code: ApiErrorCode,
    message: string,
    /** Extra response headers (Allow, WWW-Authenticate). */
    readonly headers: OutgoingHttpHeaders = {},
  ) {
    super(code, message);
  }
}

/**
 * The one table from a typed error's code to its HTTP status. Codes not
 * listed (broken invariants, storage and chain faults, a transaction the
 * chain refused to relay) are ours: 500.
 */
export const ERROR_STATUS: Readonly<Record<string, number>> = {
  // the request itself (this file)
  ERR_API_BAD_REQUEST: 400,
  ERR_API_UNAUTHORIZED: 401,
  ERR_API_FORBIDDEN: 403,
  ERR_API_NOT_FOUND: 404,
  ERR_API_METHOD_NOT_ALLOWED: 405,
  ERR_API_TOO_LARGE: 413,
  ERR_API_UNSUPPORTED_MEDIA_TYPE: 415,
  // PaymentError (htlc/router/payments.ts) and Bolt11Error (wire/bolt11.ts): what the caller asked to pay
  ERR_PAYMENT_ARGUMENT: 400,
  ERR_INVOICE_EXPIRED: 400,
  ERR_PAYMENT_IN_FLIGHT: 409,
  ERR_ALREADY_PAID: 409,
  ERR_UNKNOWN_PAYMENT: 404,
  ERR_PAYMENTS_STOPPED: 503,
  ERR_BOLT11_BECH32: 400,
  ERR_BOLT11_CHECKSUM: 400,
  ERR_BOLT11_PREFIX: 400,
  ERR_BOLT11_NETWORK: 400,
  ERR_BOLT11_AMOUNT: 400,
  ERR_BOLT11_TOO_SHORT: 400,
  ERR_BOLT11_FIELD: 400,
  ERR_BOLT11_FIELD_LENGTH: 400,
  ERR_BOLT11_NON_MINIMAL: 400,
  ERR_BOLT11_MISSING_FIELD: 400,
  ERR_BOLT11_CONFLICTING_FIELDS: 400,
  ERR_BOLT11_FEATURES: 400,
  ERR_BOLT11_SIGNATURE: 400,
  ERR_BOLT11_HIGH_S: 400,
  // ArgumentError (wire/errors.ts); NodeError ERR_NODE_CONFIG: a bad node id, HOST:PORT or URI (node/config.ts)
  ERR_INVALID_ARGUMENT: 400,
  ERR_NODE_CONFIG: 400,
  // WalletError (node/wallet/errors.ts)
  ERR_INVALID_ADDRESS: 400,
  ERR_WRONG_NETWORK: 400,
  ERR_INVALID_AMOUNT: 400, // zero, or more than the money supply
  ERR_DUST: 400,
  ERR_INVALID_FEERATE: 400,
  ERR_INSUFFICIENT_FUNDS: 409,
  ERR_UNKNOWN_FUNDING: 404,
  ERR_WALLET_CLOSED: 503,
  // ChannelManagerError (node/channels/manager.ts) and the channel state machine's ChannelError (htlc/channel/types.ts)
  ERR_UNKNOWN_CHANNEL: 404,
  ERR_NOT_CONNECTED: 409, // also NodeError: no such peer
  ERR_CHANNEL_REFUSED: 409,
  ERR_CANNOT_AFFORD: 409,
  ERR_BAD_PARAMETERS: 400, // our own opening parameters (funding below the minimum, push above the funding)
  ERR_CHANNEL_TYPE: 400,
  ERR_OPEN_FAILED: 422, // the peer refused the channel or went away
  ERR_TIMEOUT: 504,
  ERR_INVALID_POLICY: 400,
  ERR_MANAGER_STOPPED: 503,
  // NodeError (node/errors.ts), PeerError and NoiseError (wire/noise.ts) while connecting to a peer
  ERR_CONNECT_FAILED: 422, // connection refused, unreachable, timed out
  ERR_NOISE_BAD_VERSION: 422,
  ERR_NOISE_BAD_PUBKEY: 422,
  ERR_NOISE_BAD_TAG: 422, // typically: the node id given is not the key of the node at that address
  ERR_NOISE_BAD_LENGTH: 422,
  ERR_NOISE_HANDSHAKE_TIMEOUT: 422,
  ERR_NOISE_CLOSED: 422,
  ERR_PEER_INIT_TIMEOUT: 422,
  ERR_PEER_FIRST_NOT_INIT: 422,
  ERR_PEER_UNKNOWN_REQUIRED_FEATURE: 422,
  ERR_PEER_FEATURE_DEPENDENCY: 422,
  ERR_PEER_NETWORK_MISMATCH: 422,
  ERR_PEER_REMOTE_ERROR: 422,
  ERR_PEER_REPLACED: 409,
  ERR_PEER_DISCONNECT_REQUESTED: 409,
  ERR_TOO_MANY_CONNECTIONS: 409,
  ERR_PEER_NODE_STOPPING: 503,
  ERR_NODE_NOT_STARTED: 503,
  // ChainError (htlc/chain.ts)
  ERR_CHAIN_UNSUPPORTED: 409, // mining while following a peer
  ERR_CHAIN_CLOSED: 503,
};

/** HTTP status of an error thrown while serving a request (see ERROR_STATUS). */
export function errorStatus(e: unknown): number {
  return e instanceof AmpnodeError ? (ERROR_STATUS[e.code] ?? 500) : 500;
}

type Json = Record<string, unknown>;

function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? bytesToHex(x) : x));
}

/** At most `n` characters of something a client sent, for an error message. */
function clip(s: string, n = MAX_ECHO): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function str(body: Json, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v.length === 0) throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be a non-empty string`);
  return v;
}

function amount(body: Json, key: string, optional = false): bigint | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  const ok = typeof v === 'string' ? /^\d{1,20}$/.test(v) : typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!ok) throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be a non-negative integer (a decimal string)`);
  const n = BigInt(v as string | number);
  if (n >= 1n << 64n) throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" is too large`);
  return n;
}

function int(body: Json, key: string, optional = false, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max)
    throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be an integer from 0 to ${max}`);
  return v;
}

function bool(body: Json, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be true or false`);
  return v;
}

/** A byte string of exactly `length` bytes given as hex; `optional`: absent is undefined. */
function hexBytes(body: Json, key: string, length: number, optional = false): Uint8Array | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(v))
    throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be ${length} bytes in hex`);
  return hexToBytes(v.toLowerCase());
}

const MAX_MEMO = 639; // BOLT 11: a `d` field carries at most 639 bytes

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export interface ControlApiOptions {
  /**
   * The bearer token every request must carry (`Authorization: Bearer <token>`).
   * The daemon's is DATADIR/api_token (node/datadir.ts); at least 32 characters, no whitespace.
   */
  token: string;
}

interface Route {
  method: 'GET' | 'POST';
  run: (body: Json) => unknown;
}

/** The public graph as lncli describegraph shows it: nodes with their alias, channels with both directions' policy. */
function describeGraph(g: GossipGraph | undefined): Json {
  if (g === undefined) return { nodes: [], channels: [] };
  const nodes = [...g.nodes()].map((id) => {
    const a = g.nodeAnnouncement(id);
    return { nodeId: id, ...(a !== undefined ? { alias: aliasText(a.alias), lastUpdate: a.timestamp } : {}) };
  });
  const channels = g.shortChannelIds().map((scid) => {
    const c = g.channel(scid)!;
    const policy = (i: 0 | 1): Json | undefined => {
      const u = c.updates[i];
      return u === undefined
        ? undefined
        : {
            feeBaseMsat: u.feeBaseMsat,
            feeRatePpm: u.feeProportionalMillionths,
            cltvExpiryDelta: u.cltvExpiryDelta,
            lastUpdate: u.timestamp,
          };
    };
    return {
      shortChannelId: `${scid >> 40n}x${(scid >> 16n) & 0xffffffn}x${scid & 0xffffn}`,
      node1: c.nodeId1,
      node2: c.nodeId2,
      capacitySat: c.capacitySat.toString(),
      ...(policy(0) !== undefined ? { node1Policy: policy(0) } : {}),
      ...(policy(1) !== undefined ? { node2Policy: policy(1) } : {}),
    };
  });
  return { nodes, channels };
}

export class ControlApi {
  private server: Server | undefined;
  /** `HOST:PORT` bound, once listening. */
  address: string | undefined;
  /** Host header values accepted (lowercase), once listening. */
  private hosts = new Set<string>();
  private readonly tokenHash: Buffer;
  private readonly routes: ReadonlyMap<string, Route>;

  constructor(
    private readonly s: ApiServices,
    opts: ControlApiOptions,
  ) {
    if (typeof opts?.token !== 'string' || opts.token.length < 32 || /\s/.test(opts.token))
      throw new ArgumentError('the control API needs a token of at least 32 characters without whitespace');
    this.tokenHash = sha256(opts.token);
    this.routes = this.table();
  }

  /** Binds `HOST:PORT` (loopback only; port 0: any); resolves with the bound address. */
  listen(spec: string): Promise<string> {
    const { host, port } = parseHostPort(spec);
    if (!LOOPBACK.has(host)) throw new ArgumentError(`the control API binds loopback only, not ${clip(host)}`);
    const server = createServer((req, res) => void this.handle(req, res));
    // `Expect: 100-continue`: the checks run before the client is told to send its body
    server.on('checkContinue', (req, res) => void this.handle(req, res, true));
    server.requestTimeout = 60_000; // the whole request (headers and body) must arrive within this
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const a = server.address() as AddressInfo;
        this.address = formatHostPort(a.address, a.port);
        this.hosts = new Set([this.address.toLowerCase(), `localhost:${a.port}`]);
        if (a.port === 80) for (const h of [...this.hosts]) this.hosts.add(h.slice(0, h.lastIndexOf(':')));
        resolve(this.address);
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return Promise.resolve();
    return new Promise((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectsContinue = false): Promise<void> {
    let closeAfter = false;
    let continued = false;
    const reply = (status: number, v: unknown, headers: OutgoingHttpHeaders = {}): void => {
      if (res.headersSent) return;
      // a client waiting for `100 Continue` that did not get it may or may not send its body: do not read it as the next request
      if (expectsContinue && !continued) closeAfter = true;
      const text = jsonText(v);
      res.writeHead(status, {
        ...headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        ...(closeAfter ? { connection: 'close' } : {}),
      });
      res.end(text);
    };
    try {
      this.checkCaller(req);
      const path = (req.url ?? '/').split('?')[0]!;
      const route = this.routes.get(path);
      if (route === undefined) throw new ApiError('ERR_API_NOT_FOUND', `no route ${clip(path)}`);
      if (req.method !== route.method)
        throw new ApiError('ERR_API_METHOD_NOT_ALLOWED', `${clip(req.method ?? '')} ${clip(path)}: use ${route.method}`, {
          allow: route.method,
        });
      let body: Json = {};
      if (route.method === 'POST') {
        checkContentType(req);
        const declared = Number(req.headers['content-length'] ?? 0);
        // too large by its own account: answered at once when the client waits for 100 Continue or the body is past draining
        if (declared > MAX_BODY && (expectsContinue || declared > MAX_DRAIN)) {
          closeAfter = true;
          throw tooLarge();
        }
        if (expectsContinue) {
          res.writeContinue();
          continued = true;
        }
        body = await readBody(req, () => (closeAfter = true));
      }
      reply(200, await route.run(body));
    } catch (e) {
      const status = errorStatus(e);
      const code = e instanceof AmpnodeError ? e.code : 'ERR_INTERNAL';
      if (status === 413) closeAfter = true;
      reply(
        status,
        { error: { code, message: clip((e as Error).message ?? String(e), MAX_MESSAGE) } },
        e instanceof ApiError ? e.headers : {},
      );
    }
  }

  /** Host, Origin and the bearer token (see the top of this file). */
  private checkCaller(req: IncomingMessage): void {
    const host = req.headers.host;
    if (host === undefined || !this.hosts.has(host.toLowerCase()))
      throw new ApiError('ERR_API_FORBIDDEN', `Host "${clip(host ?? '')}" is not this API's address`);
    if (req.headers.origin !== undefined)
      throw new ApiError('ERR_API_FORBIDDEN', 'requests with an Origin header (from a browser page) are refused');
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    // both sides hashed: the comparison takes the same time whatever the length or content of the guess
    if (m === null || !timingSafeEqual(sha256(m[1]!), this.tokenHash))
      throw new ApiError(
        'ERR_API_UNAUTHORIZED',
        'a valid "Authorization: Bearer <token>" header is required (the token is in DATADIR/api_token)',
        { 'www-authenticate': 'Bearer realm="ampnode"' },
      );
  }

  private table(): ReadonlyMap<string, Route> {
    const { node, chain, wallet, manager, invoices, payments } = this.s;
    const get = (run: Route['run']): Route => ({ method: 'GET', run });
    const post = (run: Route['run']): Route => ({ method: 'POST', run });
    return new Map<string, Route>([
      [
        '/v1/info',
        get(() => ({
          nodeId: node.nodeIdHex,
          listen: node.listenAddress,
          network: node.config.network,
          chain: chain.mode,
          blockHeight: chain.tip().height,
          walletHeight: wallet.syncedHeight(),
          syncedToChain: chain.isSynced() && wallet.syncedHeight() === chain.tip().height,
          peers: node.listPeers().length,
          channels: manager.listChannels().length,
        })),
      ],
      ['/v1/peers', get(() => node.listPeers())],
      [
        '/v1/peers/connect',
        post((b) => {
          const { nodeId, host, port } = parseNodeAddress(str(b, 'uri'));
          return node.connect(nodeId, host, port, { persistent: bool(b, 'persistent') === true });
        }),
      ],
      ['/v1/peers/disconnect', post((b) => ({ disconnected: node.disconnect(bytesToHex(parseNodeId(str(b, 'nodeId')))) }))],
      ['/v1/wallet/balance', get(() => wallet.balance())],
      ['/v1/wallet/newaddress', post(async () => ({ address: (await wallet.newAddress()).address }))],
      [
        '/v1/wallet/send',
        post(async (b) => {
          const sent = await wallet.sendToAddress(str(b, 'address'), amount(b, 'amountSat')!);
          return { txid: bytesToHex(sent.txid.slice().reverse()), feeSat: sent.feeSat, tx: bytesToHex(sent.tx) };
        }),
      ],
      ['/v1/channels', get(() => manager.listChannels())],
      ['/v1/graph', get(() => describeGraph(this.s.gossip?.graph))],
      [
        '/v1/channels/open',
        post((b) => {
          const type = b['channelType'];
          if (type !== undefined && type !== 'static_remotekey' && type !== 'anchors_zero_fee_htlc')
            throw new ApiError('ERR_API_BAD_REQUEST', '"channelType" must be static_remotekey or anchors_zero_fee_htlc');
          const pushMsat = amount(b, 'pushMsat', true);
          const feeratePerKw = int(b, 'feeratePerKw', true);
          return manager.openChannel(bytesToHex(parseNodeId(str(b, 'nodeId'))), amount(b, 'fundingSat')!, {
            ...(type !== undefined ? { channelType: type as ChannelType } : {}),
            ...(pushMsat !== undefined ? { pushMsat } : {}),
            ...(feeratePerKw !== undefined ? { feeratePerKw } : {}),
            ...(bool(b, 'announce') === true ? { announce: true } : {}),
          });
        }),
      ],
      [
        '/v1/channels/close',
        post((b) => {
          const feeratePerKw = int(b, 'feeratePerKw', true);
          return manager.closeChannel(str(b, 'channelId'), feeratePerKw !== undefined ? { feeratePerKw } : {});
        }),
      ],
      ['/v1/channels/forceclose', post(async (b) => ({ txid: await manager.forceCloseChannel(str(b, 'channelId')) }))],
      [
        '/v1/channels/policy',
        post((b) => {
          const change: PolicyUpdate = {};
          const base = amount(b, 'baseFeeMsat', true);
          const rate = amount(b, 'feeRatePpm', true);
          const delta = int(b, 'cltvExpiryDelta', true, 0xffff);
          const min = amount(b, 'htlcMinimumMsat', true);
          const max = amount(b, 'htlcMaximumMsat', true);
          if (base !== undefined) change.baseFeeMsat = base;
          if (rate !== undefined) change.feeRatePpm = rate;
          if (delta !== undefined) change.cltvExpiryDelta = delta;
          if (min !== undefined) change.htlcMinimumMsat = min;
          if (max !== undefined) change.htlcMaximumMsat = max;
          if (Object.keys(change).length === 0)
            throw new ApiError('ERR_API_BAD_REQUEST', 'nothing to change: give at least one policy field');
          const id = b['channelId'];
          return manager.updateChannelPolicy(id === undefined ? undefined : str(b, 'channelId'), change);
        }),
      ],
      [
        '/v1/channels/updatefee',
        post(async (b) => {
          const feeratePerKw = int(b, 'feeratePerKw', true);
          return { feeratePerKw: await manager.updateChannelFee(str(b, 'channelId'), feeratePerKw) };
        }),
      ],
      [
        '/v1/invoices',
        post(async (b) => {
          const memo = b['memo'];
          if (memo !== undefined && (typeof memo !== 'string' || Buffer.byteLength(memo) > MAX_MEMO))
            throw new ApiError('ERR_API_BAD_REQUEST', `"memo" must be a string of at most ${MAX_MEMO} bytes`);
          const amountMsat = amount(b, 'amountMsat', true);
          const expirySeconds = int(b, 'expirySeconds', true, MAX_EXPIRY_SECONDS);
          const amp = bool(b, 'amp');
          const inv = await invoices.addInvoice({
            ...(amountMsat !== undefined ? { amountMsat } : {}),
            ...(memo !== undefined ? { memo } : {}),
            ...(expirySeconds !== undefined ? { expirySeconds } : {}),
            ...(amp !== undefined ? { amp } : {}),
          });
          return { ...inv, paymentRequest: paymentRequest(inv, node.identityKey(), 'bcrt', manager.routingChannels()) };
        }),
      ],
      [
        '/v1/invoices/list',
        post(async (b) => {
          const after = amount(b, 'afterAddIndex', true);
          const limit = int(b, 'limit', true, MAX_LIST);
          return {
            invoices: await invoices.listInvoices({
              ...(after !== undefined ? { afterAddIndex: after } : {}),
              ...(limit !== undefined ? { limit } : {}),
            }),
          };
        }),
      ],
      [
        '/v1/invoices/lookup',
        post(async (b) => {
          const hash = hexBytes(b, 'paymentHash', 32, true);
          const addr = hexBytes(b, 'paymentAddr', 32, true);
          const setId = hexBytes(b, 'setId', 32, true);
          if ([hash, addr, setId].filter((x) => x !== undefined).length !== 1)
            throw new ApiError('ERR_API_BAD_REQUEST', 'give exactly one of "paymentHash", "paymentAddr", "setId"');
          const found =
            hash !== undefined
              ? await invoices.lookupByHash(hash)
              : addr !== undefined
                ? await invoices.lookupByAddr(addr, { withSets: true })
                : await invoices.lookupSet(setId!);
          if (found === undefined) throw new ApiError('ERR_API_NOT_FOUND', 'no such invoice or set');
          return found;
        }),
      ],
      ['/v1/invoices/decode', post((b) => decodeInvoice(str(b, 'paymentRequest'), { network: 'bcrt' }))],
      [
        '/v1/payments/pay',
        post((b) => {
          const amountMsat = amount(b, 'amountMsat', true);
          const feeLimitMsat = amount(b, 'feeLimitMsat', true);
          const maxShardMsat = amount(b, 'maxShardMsat', true);
          const timeoutMs = int(b, 'timeoutMs', true, MAX_PAYMENT_TIMEOUT_MS);
          return payments.payInvoice(str(b, 'paymentRequest'), {
            ...(amountMsat !== undefined ? { amountMsat } : {}),
            ...(feeLimitMsat !== undefined ? { feeLimitMsat } : {}),
            ...(maxShardMsat !== undefined ? { maxShardMsat } : {}),
            ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          });
        }),
      ],
      [
        '/v1/payments/send',
        post((b) => {
          const kind = b['kind'] ?? 'amp';
          if (kind !== 'amp' && kind !== 'keysend') throw new ApiError('ERR_API_BAD_REQUEST', '"kind" must be amp or keysend');
          const feeLimitMsat = amount(b, 'feeLimitMsat', true);
          const maxShardMsat = amount(b, 'maxShardMsat', true);
          const timeoutMs = int(b, 'timeoutMs', true, MAX_PAYMENT_TIMEOUT_MS);
          return payments.sendSpontaneous({
            dest: parseNodeId(str(b, 'dest')),
            amountMsat: amount(b, 'amountMsat')!,
            kind,
            ...(feeLimitMsat !== undefined ? { feeLimitMsat } : {}),
            ...(maxShardMsat !== undefined ? { maxShardMsat } : {}),
            ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          });
        }),
      ],
      [
        '/v1/payments/list',
        post(async (b) => {
          const after = amount(b, 'afterCreationIndex', true);
          const limit = int(b, 'limit', true, MAX_LIST);
          return {
            payments: await payments.list({
              ...(after !== undefined ? { afterCreationIndex: after } : {}),
              ...(limit !== undefined ? { limit } : {}),
            }),
          };
        }),
      ],
      [
        '/v1/payments/lookup',
        post(async (b) => {
          const found = await payments.lookup(hexBytes(b, 'id', 32)!);
          if (found === undefined) throw new ApiError('ERR_API_NOT_FOUND', 'no such payment');
          return found;
        }),
      ],
      [
        '/v1/chain/generate',
        post(async (b) => {
          const blocks = int(b, 'blocks', false, MAX_BLOCKS)!;
          let address: string;
          if (b['address'] === undefined) {
            address = (await wallet.newAddress()).address;
          } else {
            address = str(b, 'address');
            parseAddress(address); // a typed WalletError (400) for what is not a regtest address
          }
          const hashes = await chain.generateToAddress(blocks, address);
          return { blocks: hashes.map((h) => bytesToHex(h.slice().reverse())), height: chain.tip().height };
        }),
      ],
    ]);
  }
}

function tooLarge(): ApiError {
  return new ApiError('ERR_API_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
}

function checkContentType(req: IncomingMessage): void {
  const [type, ...params] = (req.headers['content-type'] ?? '').split(';').map((p) => p.trim().toLowerCase());
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (type !== 'application/json' || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8'))
    throw new ApiError('ERR_API_UNSUPPORTED_MEDIA_TYPE', 'POST bodies must be sent as "Content-Type: application/json"');
}

/**
 * The request body as a JSON object ({} when empty). Over MAX_BODY: the rest
 * is read and dropped until the request ends (up to MAX_DRAIN, then
 * `giveUp` is called and reading stops), and ERR_API_TOO_LARGE follows.
 */
function readBody(req: IncomingMessage, giveUp: () => void): Promise<Json> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) {
        chunks.push(c);
        return;
      }
      chunks.length = 0;
      if (size > MAX_DRAIN) {
        // past this bound the client is not stopped by waiting: answer now and close
        giveUp();
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge());
      }
    });
    req.on('end', () => {
      if (size > MAX_BODY) return reject(tooLarge());
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      let v: unknown;
      try {
        v = JSON.parse(text) as unknown;
      } catch {
        return reject(new ApiError('ERR_API_BAD_REQUEST', 'the body is not valid JSON'));
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        return reject(new ApiError('ERR_API_BAD_REQUEST', 'the body must be a JSON object'));
      resolve(v as Json);
    });
    req.on('error', reject);
  });
}
