/**
 * The daemon's local control API: JSON over HTTP on a loopback address, for
 * scripts and tests to drive a running node (connect, open and close
 * channels, wallet addresses). No authentication, so it refuses to bind
 * anything but loopback. Amounts are decimal strings (64-bit values do not
 * survive JSON numbers); errors are `{"error":{"code","message"}}` with a 4xx
 * status for bad requests and 500 otherwise.
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
 *   POST /v1/channels/updatefee   {"channelId","feeratePerKw"?}  (opener only; without a feerate the chain's estimate by the fee policy; {"feeratePerKw": null} when unchanged)
 *   POST /v1/channels/forceclose  {"channelId"}  (broadcasts our commitment; returns {"txid"})
 *   POST /v1/chain/generate       {"blocks","address"?}  (embedded chain only)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AmpnodeError, ArgumentError } from '../../wire/errors.js';
import { formatHostPort, parseHostPort, parseNodeAddress, parseNodeId } from '../config.js';
import { bytesToHex } from '../../wire/bytes.js';
import type { ChannelType } from '../../htlc/channel/types.js';
import type { ChannelServices } from './services.js';

const MAX_BODY = 64 * 1024;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

class ApiError extends AmpnodeError<'ERR_API_BAD_REQUEST' | 'ERR_API_NOT_FOUND'> {}

type Json = Record<string, unknown>;

function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? bytesToHex(x) : x));
}

function str(body: Json, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v.length === 0) throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be a non-empty string`);
  return v;
}

function amount(body: Json, key: string, optional = false): bigint | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  if ((typeof v !== 'string' && typeof v !== 'number') || !/^\d+$/.test(String(v))) throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be a non-negative integer (string)`);
  return BigInt(v);
}

function int(body: Json, key: string, optional = false): number | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ApiError('ERR_API_BAD_REQUEST', `"${key}" must be a non-negative integer`);
  return v;
}

export class ControlApi {
  private server: Server | undefined;
  /** `HOST:PORT` bound, once listening. */
  address: string | undefined;

  constructor(private readonly s: ChannelServices) {}

  /** Binds `HOST:PORT` (loopback only; port 0: any); resolves with the bound address. */
  listen(spec: string): Promise<string> {
    const { host, port } = parseHostPort(spec);
    if (!LOOPBACK.has(host)) throw new ArgumentError(`the control API binds loopback only, not ${host}`);
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const a = server.address() as AddressInfo;
        this.address = formatHostPort(a.address, a.port);
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

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, v: unknown): void => {
      const text = jsonText(v);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const body = req.method === 'POST' ? await readBody(req) : {};
      reply(200, await this.route(req.method ?? 'GET', (req.url ?? '/').split('?')[0]!, body));
    } catch (e) {
      const code = e instanceof AmpnodeError ? e.code : 'ERR_INTERNAL';
      const status =
        code === 'ERR_API_NOT_FOUND' || code === 'ERR_UNKNOWN_CHANNEL'
          ? 404
          : e instanceof ApiError || e instanceof ArgumentError || code === 'ERR_NODE_CONFIG'
            ? 400
            : code === 'ERR_NOT_CONNECTED' || code === 'ERR_CHANNEL_REFUSED'
              ? 409
              : 500;
      reply(status, { error: { code, message: (e as Error).message } });
    }
  }

  private async route(method: string, path: string, b: Json): Promise<unknown> {
    const { node, chain, wallet, manager } = this.s;
    const key = `${method} ${path}`;
    switch (key) {
      case 'GET /v1/info':
        return {
          nodeId: node.nodeIdHex,
          listen: node.listenAddress,
          network: node.config.network,
          chain: chain.mode,
          blockHeight: chain.tip().height,
          walletHeight: wallet.syncedHeight(),
          peers: node.listPeers().length,
          channels: manager.listChannels().length,
        };
      case 'GET /v1/peers':
        return node.listPeers();
      case 'POST /v1/peers/connect': {
        const { nodeId, host, port } = parseNodeAddress(str(b, 'uri'));
        return node.connect(nodeId, host, port, { persistent: b['persistent'] === true });
      }
      case 'POST /v1/peers/disconnect':
        return { disconnected: node.disconnect(bytesToHex(parseNodeId(str(b, 'nodeId')))) };
      case 'GET /v1/wallet/balance':
        return wallet.balance();
      case 'POST /v1/wallet/newaddress':
        return { address: (await wallet.newAddress()).address };
      case 'POST /v1/wallet/send': {
        const sent = await wallet.sendToAddress(str(b, 'address'), amount(b, 'amountSat')!);
        return { txid: bytesToHex(sent.txid.slice().reverse()), feeSat: sent.feeSat, tx: bytesToHex(sent.tx) };
      }
      case 'GET /v1/channels':
        return manager.listChannels();
      case 'POST /v1/channels/open': {
        const type = b['channelType'];
        if (type !== undefined && type !== 'static_remotekey' && type !== 'anchors_zero_fee_htlc')
          throw new ApiError('ERR_API_BAD_REQUEST', '"channelType" must be static_remotekey or anchors_zero_fee_htlc');
        const pushMsat = amount(b, 'pushMsat', true);
        const feeratePerKw = int(b, 'feeratePerKw', true);
        return manager.openChannel(bytesToHex(parseNodeId(str(b, 'nodeId'))), amount(b, 'fundingSat')!, {
          ...(type !== undefined ? { channelType: type as ChannelType } : {}),
          ...(pushMsat !== undefined ? { pushMsat } : {}),
          ...(feeratePerKw !== undefined ? { feeratePerKw } : {}),
        });
      }
      case 'POST /v1/channels/close': {
        const feeratePerKw = int(b, 'feeratePerKw', true);
        return manager.closeChannel(str(b, 'channelId'), feeratePerKw !== undefined ? { feeratePerKw } : {});
      }
      case 'POST /v1/channels/forceclose': {
        return { txid: await manager.forceCloseChannel(str(b, 'channelId')) };
      }
      case 'POST /v1/channels/updatefee': {
        const feeratePerKw = int(b, 'feeratePerKw', true);
        return { feeratePerKw: await manager.updateChannelFee(str(b, 'channelId'), feeratePerKw) };
      }
      case 'POST /v1/chain/generate': {
        const address = typeof b['address'] === 'string' ? b['address'] : (await wallet.newAddress()).address;
        const hashes = await chain.generateToAddress(int(b, 'blocks')!, address);
        return { blocks: hashes.map((h) => bytesToHex(h.slice().reverse())), height: chain.tip().height };
      }
      default:
        throw new ApiError('ERR_API_NOT_FOUND', `no route ${key}`);
    }
  }
}

function readBody(req: IncomingMessage): Promise<Json> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ApiError('ERR_API_BAD_REQUEST', 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        const v = JSON.parse(text) as unknown;
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
        resolve(v as Json);
      } catch (e) {
        reject(new ApiError('ERR_API_BAD_REQUEST', `body is not a JSON object: ${(e as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}
