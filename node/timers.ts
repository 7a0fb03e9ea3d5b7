/**
 * Timers for the parts of htlc/ that need them (the invoice registry's hold timers, the payments' timeouts): unref'd,
 * so that a pending one never keeps the process up. htlc/ creates no timers of its own; node/ hands these in.
 */
import type { Timers } from '../htlc/switch/interfaces.js';

export const UNREF_TIMERS: Timers = {
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms).unref(),
  clearTimeout: (h: unknown): void => clearTimeout(h as NodeJS.Timeout),
};
