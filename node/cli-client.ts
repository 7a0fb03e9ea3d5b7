/**
 * `ampnode cli <verb>`: lncli's daily verbs against a running daemon's local API, JSON on stdout. The daemon is
 * found by `--api HOST:PORT` (default 127.0.0.1:9835) and its token read from `--datadir DIR` (DIR/api_token).
 * Any failure — a daemon not running, a refused request, bad input — is one line on stderr and exit code 1
 * (`--debug` adds the details).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { withProgress, type ProgressStream } from './progress.js';

export const DEFAULT_API = '127.0.0.1:9835';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Where a spinner shows long waits (payments, channel openings and closes): only an interactive terminal gets one. */
  progress?: ProgressStream;
}

class CliError extends Error {}

interface Global {
  datadir?: string;
  api: string;
  debug?: boolean;
}

async function call(g: Global, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<unknown> {
  if (g.datadir === undefined) throw new CliError("--datadir is required (the daemon's data directory, for its api_token)");
  let token: string;
  try {
    token = readFileSync(join(g.datadir, 'api_token'), 'utf8').trim();
  } catch {
    throw new CliError(`no api_token in ${g.datadir}: is it the daemon's data directory, started with --api?`);
  }
  let res: Response;
  try {
    res = await fetch(`http://${g.api}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}),
      signal: AbortSignal.timeout(10 * 60_000),
    });
  } catch (e) {
    const why = (e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message;
    throw new CliError(`cannot reach the daemon at ${g.api} (${why}): is it running with --api ${g.api}?`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`the daemon answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string } }).error;
    throw new CliError(`${e?.code ?? `HTTP ${res.status}`}: ${(e?.message ?? text).replace(/^ERR_[A-Z0-9_]+: /, '')}`);
  }
  return json;
}

const sat = (v: string): string => {
  if (!/^\d{1,16}$/.test(v)) throw new CliError(`"${v}" is not an amount in sat`);
  return v;
};
const msatOf = (v: string): string => String(BigInt(sat(v)) * 1000n);

/** The verbs, on a program that reports through `io` and never exits the process itself. */
export function buildCli(io: Io, name = 'cli'): Command {
  const p = new Command(name)
    .description("lncli's daily verbs against a running daemon (JSON output)")
    .option('--datadir <dir>', "the daemon's data directory (its api_token is read from there)")
    .option('--api <host:port>', "the daemon's --api address", DEFAULT_API)
    .option('--debug', 'print the details of a failure')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  const g = (): Global => p.opts<Global>();
  const print = (v: unknown): void => io.out(JSON.stringify(v, null, 2));
  /** A call that may take long (a payment, an opening): a spinner meanwhile on an interactive terminal. */
  const waiting = (text: string, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<unknown> =>
    withProgress(io.progress, text, call(g(), method, path, body));
  const verb = (name: string, description: string): Command => p.command(name).description(description).exitOverride();

  verb('getinfo', 'node id, address, chain and heights').action(async () => print(await call(g(), 'GET', '/v1/info')));
  verb('connect', 'connect to a peer')
    .argument('<pubkey@host:port>')
    .action(async (uri: string) => print(await call(g(), 'POST', '/v1/peers/connect', { uri, persistent: true })));
  verb('disconnect', 'disconnect a peer')
    .argument('<pubkey>')
    .action(async (nodeId: string) => print(await call(g(), 'POST', '/v1/peers/disconnect', { nodeId })));
  verb('listpeers', 'connected peers').action(async () => print(await call(g(), 'GET', '/v1/peers')));
  verb('newaddress', 'a new wallet address').action(async () => print(await call(g(), 'POST', '/v1/wallet/newaddress')));
  verb('walletbalance', 'on-chain balance').action(async () => print(await call(g(), 'GET', '/v1/wallet/balance')));
  verb('channelbalance', 'what our channels hold').action(async () => {
    const chans = (await call(g(), 'GET', '/v1/channels')) as { localBalanceMsat: string; remoteBalanceMsat: string; active: boolean }[];
    const sum = (f: (c: (typeof chans)[number]) => string): string => String(chans.reduce((s, c) => s + BigInt(f(c)), 0n));
    print({ localBalanceMsat: sum((c) => c.localBalanceMsat), remoteBalanceMsat: sum((c) => c.remoteBalanceMsat), channels: chans.length });
  });
  verb('openchannel', 'open a channel to a connected peer')
    .argument('<pubkey>')
    .argument('<amount_sat>')
    .option('--push_amt <sat>', 'sat given to the peer')
    .option('--public', 'announce the channel to the network (BOLT 7, after 6 confirmations); default: unannounced')
    .action(async (nodeId: string, amount: string, o: { push_amt?: string; public?: boolean }) =>
      print(
        await waiting('opening the channel (until the funding transaction is signed by both and broadcast)', 'POST', '/v1/channels/open', {
          nodeId,
          fundingSat: sat(amount),
          ...(o.push_amt !== undefined ? { pushMsat: msatOf(o.push_amt) } : {}),
          ...(o.public === true ? { announce: true } : {}),
        }),
      ),
    );
  verb('listchannels', 'our channels').action(async () => print(await call(g(), 'GET', '/v1/channels')));
  verb('describegraph', 'the public channel graph learnt from gossip').action(async () => print(await call(g(), 'GET', '/v1/graph')));
  verb('pendingchannels', 'channels not yet open or being closed').action(async () =>
    print(((await call(g(), 'GET', '/v1/channels')) as { state: string }[]).filter((c) => c.state !== 'normal')),
  );
  verb('closechannel', 'close a channel cooperatively (--force: broadcast our commitment)')
    .argument('<channel_id>')
    .option('--force')
    .action(async (channelId: string, o: { force?: boolean }) =>
      print(
        await waiting('closing the channel', 'POST', o.force === true ? '/v1/channels/forceclose' : '/v1/channels/close', { channelId }),
      ),
    );
  verb('updatechanpolicy', 'our forwarding policy on one channel (--chan_id) or on all (lncli: updatechanpolicy)')
    .option('--chan_id <channel_id>', 'the channel (default: every open channel)')
    .option('--base_fee_msat <msat>', 'base fee per HTLC forwarded')
    .option('--fee_rate_ppm <ppm>', 'proportional fee, millionths of the amount forwarded')
    .option('--time_lock_delta <blocks>', 'cltv_expiry_delta (at least 18)')
    .option('--min_htlc_msat <msat>', 'smallest HTLC forwarded')
    .option('--max_htlc_msat <msat>', 'largest HTLC forwarded')
    .action(
      async (o: {
        chan_id?: string;
        base_fee_msat?: string;
        fee_rate_ppm?: string;
        time_lock_delta?: string;
        min_htlc_msat?: string;
        max_htlc_msat?: string;
      }) => {
        const count = (v: string, what: string): string => {
          if (!/^\d{1,20}$/.test(v)) throw new CliError(`${what} "${v}" is not a whole number`);
          return v;
        };
        const body = {
          ...(o.chan_id !== undefined ? { channelId: o.chan_id } : {}),
          ...(o.base_fee_msat !== undefined ? { baseFeeMsat: count(o.base_fee_msat, '--base_fee_msat') } : {}),
          ...(o.fee_rate_ppm !== undefined ? { feeRatePpm: count(o.fee_rate_ppm, '--fee_rate_ppm') } : {}),
          ...(o.time_lock_delta !== undefined ? { cltvExpiryDelta: Number(count(o.time_lock_delta, '--time_lock_delta')) } : {}),
          ...(o.min_htlc_msat !== undefined ? { htlcMinimumMsat: count(o.min_htlc_msat, '--min_htlc_msat') } : {}),
          ...(o.max_htlc_msat !== undefined ? { htlcMaximumMsat: count(o.max_htlc_msat, '--max_htlc_msat') } : {}),
        };
        if (Object.keys(body).filter((k) => k !== 'channelId').length === 0)
          throw new CliError(
            'nothing to change: give --base_fee_msat, --fee_rate_ppm, --time_lock_delta, --min_htlc_msat or --max_htlc_msat',
          );
        print(await call(g(), 'POST', '/v1/channels/policy', body));
      },
    );
  verb('addinvoice', 'a new invoice (--amp: reusable AMP)')
    .option('--amt <sat>', 'amount (none: any)')
    .option('--amp', 'a reusable AMP invoice')
    .option('--memo <text>')
    .option('--expiry <seconds>')
    .action(async (o: { amt?: string; amp?: boolean; memo?: string; expiry?: string }) =>
      print(
        await call(g(), 'POST', '/v1/invoices', {
          ...(o.amt !== undefined ? { amountMsat: msatOf(o.amt) } : {}),
          ...(o.amp === true ? { amp: true } : {}),
          ...(o.memo !== undefined ? { memo: o.memo } : {}),
          ...(o.expiry !== undefined ? { expirySeconds: Number(sat(o.expiry)) } : {}),
        }),
      ),
    );
  verb('lookupinvoice', 'an invoice by payment hash, or --payment_addr, or an AMP set by --set_id')
    .argument('[payment_hash]')
    .option('--payment_addr <hex>')
    .option('--set_id <hex>')
    .action(async (hash: string | undefined, o: { payment_addr?: string; set_id?: string }) =>
      print(
        await call(
          g(),
          'POST',
          '/v1/invoices/lookup',
          hash !== undefined ? { paymentHash: hash } : o.payment_addr !== undefined ? { paymentAddr: o.payment_addr } : { setId: o.set_id },
        ),
      ),
    );
  verb('listinvoices', 'invoices in the order they were added').action(async () => print(await call(g(), 'POST', '/v1/invoices/list', {})));
  verb('decodepayreq', 'decode a BOLT 11 payment request')
    .argument('<pay_req>')
    .action(async (r: string) => print(await call(g(), 'POST', '/v1/invoices/decode', { paymentRequest: r })));
  verb('payinvoice', 'pay a BOLT 11 invoice (AMP when the invoice says so)')
    .argument('<pay_req>')
    .option('--amt <sat>', 'for an invoice without an amount')
    .option('--max_shard_size_sat <sat>')
    .action(async (r: string, o: { amt?: string; max_shard_size_sat?: string }) =>
      print(
        await waiting('paying the invoice', 'POST', '/v1/payments/pay', {
          paymentRequest: r,
          ...(o.amt !== undefined ? { amountMsat: msatOf(o.amt) } : {}),
          ...(o.max_shard_size_sat !== undefined ? { maxShardMsat: msatOf(o.max_shard_size_sat) } : {}),
        }),
      ),
    );
  verb('sendpayment', 'a spontaneous payment to a node: --amp (default) or --keysend')
    .requiredOption('--dest <pubkey>')
    .requiredOption('--amt <sat>')
    .option('--amp')
    .option('--keysend')
    .option('--max_shard_size_sat <sat>')
    .action(async (o: { dest: string; amt: string; amp?: boolean; keysend?: boolean; max_shard_size_sat?: string }) => {
      if (o.amp === true && o.keysend === true) throw new CliError('--amp or --keysend, not both');
      print(
        await waiting(`sending ${o.amt} sat to ${o.dest.slice(0, 16)}…`, 'POST', '/v1/payments/send', {
          dest: o.dest,
          amountMsat: msatOf(o.amt),
          kind: o.keysend === true ? 'keysend' : 'amp',
          ...(o.max_shard_size_sat !== undefined ? { maxShardMsat: msatOf(o.max_shard_size_sat) } : {}),
        }),
      );
    });
  verb('listpayments', 'our payments in the order they were made').action(async () =>
    print(await call(g(), 'POST', '/v1/payments/list', {})),
  );
  verb('generate', 'mine blocks (embedded chain only)')
    .argument('<blocks>')
    .action(async (n: string) => print(await call(g(), 'POST', '/v1/chain/generate', { blocks: Number(sat(n)) })));
  return p;
}

/** Runs one CLI invocation (`args` after `cli`); resolves with the exit code. */
export async function runCli(args: string[], io: Io, name = 'cli'): Promise<number> {
  const program = buildCli(io, name);
  try {
    await program.parseAsync(args, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 1; // commander printed its own line
    io.err(`${name === 'cli' ? 'ampnode cli' : name}: ${e instanceof Error ? e.message : String(e)}`);
    if (program.opts<Global>().debug === true && e instanceof Error && e.stack !== undefined) io.err(e.stack);
    return 1;
  }
}
