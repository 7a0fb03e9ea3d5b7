/**
 * The payment engine's middle (lnd's htlcswitch): one link per channel, the
 * switch that forwards between them and hands HTLCs for us to the final-hop
 * handler, and the persisted circuit map that carries every settle and fail
 * back across restarts.
 */
export * from './interfaces.js';
export * from './circuit-map.js';
export * from './policy.js';
export * from './link.js';
export * from './switch.js';
