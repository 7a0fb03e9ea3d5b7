/** The messages between node/sig-pool.ts and its threads (node/sig-worker.ts). */

/** A sign job packed: digest (32) ‖ private key (32). */
export const SIGN_JOB_BYTES = 64;
/** A verify job packed: compact signature (64) ‖ digest (32) ‖ compressed public key (33). */
export const VERIFY_JOB_BYTES = 129;

export interface SigRequest {
  id: number;
  kind: 'sign' | 'verify';
  buf: ArrayBuffer;
}

/** sign: `buf` holds 64 bytes per job; verify: `ok`; either may carry `error` instead. */
export interface SigResponse {
  id: number;
  buf?: ArrayBuffer;
  ok?: boolean;
  error?: string;
}
