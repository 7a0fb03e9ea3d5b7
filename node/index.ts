/**
 * The package's entry point (`import { createNode } from 'ampnode'`): what an app needs to embed a node, and the
 * types of what it hands back. Everything else is internal and may change.
 */
export { createNode, AmpNode, NODE_DEFAULTS, type CreateNodeOptions, type OwnChainOptions } from './builder.js';
export { createChainBackend, BcoinChainBackend, type ChainBackendOptions, type ChainMode } from './chain/index.js';
export { createLogger, isLogLevel, silentLogger, type Logger, type LoggerOptions, type LogLevel } from './log.js';
export type {
  ChannelInfo,
  CloseChannelOptions,
  OpenChannelOptions,
  PolicyUpdate,
  RoutingChannel,
  ChannelPolicyConfig,
} from './channels/manager.js';
export type { PayInvoiceOptions, SendSpontaneousOptions } from './channels/payments.js';
export type { AddInvoiceRequest, AmpSet, Invoice, RegistryConfig, SettleEvent } from '../htlc/invoices/index.js';
export type { PaymentConfig, PaymentEvent, PaymentRecord } from '../htlc/router/payments.js';
export { AmpnodeError, DecodeError, ArgumentError } from '../wire/errors.js';
export { NodeError, PeerError } from './errors.js';
export { decodeInvoice, Bolt11Error, type Bolt11Invoice } from '../wire/bolt11.js';
export type { PeerInfo } from './peer-manager.js';
export type { WalletBalance } from './wallet/wallet.js';
export { interactive, withProgress, type ProgressStream } from './progress.js';
export type {
  NodeEvent,
  NodeEventBody,
  PaymentReceivedEvent,
  PaymentSucceededEvent,
  PaymentFailedEvent,
  ChannelPendingEvent,
  ChannelReadyEvent,
  ChannelClosedEvent,
} from './events.js';
