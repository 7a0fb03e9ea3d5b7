/** The invoice registry: the switch's final-hop handler (BOLT 11 invoices, hold invoices, keysend, AMP). */
export * from './types.js';
export * from './registry.js';
