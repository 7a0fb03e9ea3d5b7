/**
 * One lnd and one ampnode daemon on one btcd chain, with the waits the interop scenarios share: both synced after
 * mining, a transaction in btcd's mempool, channels listed on both sides, lnd opening a channel to ampnode.
 */
import assert from 'node:assert/strict';
import { createChainBackend, type BcoinChainBackend } from '../../node/index.js';
import { waitFor, type Ampnode, type Btcd, type Interop, type Lnd } from './harness.js';

/**
 * btcd, one lnd on it, and a chain backend following btcd over P2P for an ampnode embedded in this process (closed with
 * the harness).
 */
export async function btcdLndAndChain(h: Interop): Promise<{ btcd: Btcd; lnd: Lnd; chain: BcoinChainBackend }> {
  const btcd = await h.startBtcd();
  const lnd = await h.startLnd(btcd, { name: 'lnd' });
  const chain = await createChainBackend({ chain: 'p2p', chainPeer: btcd.p2pHost });
  h.onClose(() => chain.close());
  return { btcd, lnd, chain };
}

export interface AmpChannel {
  channelId: string;
  toSelfDelay: number;
  peer: string;
  opener: 'local' | 'remote';
  channelType: string;
  capacitySat: string;
  localBalanceMsat: string;
  remoteBalanceMsat: string;
  feeratePerKw: number;
  state: string;
  active: boolean;
  fundingOutpoint?: string;
  closingTxid?: string;
  shortChannelId?: string;
}

export interface LndChannel {
  active: boolean;
  remote_pubkey: string;
  channel_point: string;
  chan_id: string;
  capacity: string;
  local_balance: string;
  remote_balance: string;
  commit_fee: string;
  fee_per_kw: string;
  initiator: boolean;
  commitment_type: string;
  private: boolean;
}

export class LndPair {
  constructor(
    readonly btcd: Btcd,
    readonly lnd: Lnd,
    public amp: Ampnode,
  ) {}

  api<T = any>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 90_000): Promise<T> {
    return this.amp.api<T>(method, path, body, timeoutMs);
  }

  async ampSynced(): Promise<void> {
    const target = await this.btcd.height();
    await waitFor(
      async () => {
        const i = await this.api<{ blockHeight: number; walletHeight: number }>('GET', '/v1/info');
        return i.blockHeight === target && i.walletHeight === target;
      },
      { timeoutMs: 60_000, what: `ampnode synced to btcd height ${target}` },
    );
  }

  async mine(n: number): Promise<void> {
    await this.btcd.generate(n);
    await Promise.all([this.lnd.waitSynced(), this.ampSynced()]);
  }

  /** Mining before a transaction reached btcd would leave it out of the block. */
  async inMempool(txid: string): Promise<void> {
    await waitFor(async () => (await this.btcd.rpc<string[]>('getrawmempool')).includes(txid), {
      timeoutMs: 30_000,
      what: `${txid} in btcd's mempool`,
    });
  }

  ampChannels(): Promise<AmpChannel[]> {
    return this.api<AmpChannel[]>('GET', '/v1/channels');
  }
  async lndChannels(): Promise<LndChannel[]> {
    return (await this.lnd.cli<{ channels: LndChannel[] }>(['listchannels'])).channels ?? [];
  }
  async ampChannel(point: string): Promise<AmpChannel | undefined> {
    return (await this.ampChannels()).find((c) => c.fundingOutpoint === point);
  }
  async lndChannel(point: string): Promise<LndChannel | undefined> {
    return (await this.lndChannels()).find((c) => c.channel_point === point);
  }

  /** Every channel of `points` active on both sides. */
  async allActive(points: string[], what: string): Promise<void> {
    await waitFor(
      async () => {
        const l = await this.lndChannels();
        const a = await this.ampChannels();
        return points.every(
          (p) =>
            l.some((c) => c.channel_point === p && c.active) && a.some((c) => c.fundingOutpoint === p && c.active && c.state === 'normal'),
        );
      },
      { timeoutMs: 60_000, what },
    );
  }

  /** Coins for both: `lndCoins` × 2 BTC to lnd, 1 BTC to ampnode; returns once both wallets see them. */
  async fund(lndCoins = 3): Promise<void> {
    const lndAddr = (await this.lnd.cli<{ address: string }>(['newaddress', 'p2wkh'])).address;
    for (let i = 0; i < lndCoins; i++) await this.btcd.sendToAddress(lndAddr, 200_000_000);
    const ampAddr = (await this.api<{ address: string }>('POST', '/v1/wallet/newaddress')).address;
    await this.btcd.sendToAddress(ampAddr, 100_000_000);
    await this.mine(1);
    await waitFor(
      async () => BigInt((await this.api<{ confirmedSat: string }>('GET', '/v1/wallet/balance')).confirmedSat) === 100_000_000n,
      {
        timeoutMs: 30_000,
        what: 'ampnode wallet funded',
      },
    );
    await waitFor(
      async () =>
        Number((await this.lnd.cli<{ confirmed_balance: string }>(['walletbalance'])).confirmed_balance) >= lndCoins * 200_000_000,
      {
        timeoutMs: 30_000,
        what: 'lnd wallet funded',
      },
    );
  }

  /** lnd opens a channel to ampnode; returns its channel point once active on both sides. */
  async lndOpens(channelType: 'tweakless' | 'anchors', amountSat: number, extra: string[] = []): Promise<string> {
    const r = await this.lnd.cli<{ funding_txid: string }>([
      'openchannel',
      '--node_key',
      this.amp.nodeId,
      '--local_amt',
      String(amountSat),
      '--channel_type',
      channelType,
      ...extra,
    ]);
    const pending =
      (await this.lnd.cli<{ pending_open_channels?: { channel: { channel_point: string } }[] }>(['pendingchannels']))
        .pending_open_channels ?? [];
    const point = pending.map((p) => p.channel.channel_point).find((p) => p.startsWith(`${r.funding_txid}:`));
    assert.ok(point !== undefined, `lnd lists ${r.funding_txid} as pending`);
    await this.inMempool(r.funding_txid);
    await waitFor(async () => (await this.ampChannel(point))?.state === 'awaiting_ready', {
      timeoutMs: 30_000,
      what: `ampnode holding ${point} pending`,
    });
    await this.mine(3); // ampnode, the acceptor, asks for 3 confirmations
    await this.allActive([point], `${channelType} channel ${point} active on both sides`);
    return point;
  }
}
