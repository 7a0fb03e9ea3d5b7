/**
 * Typed errors of the onion layer (BOLT 4).
 *
 * A processing node that cannot use an incoming onion must answer with a
 * specific BOLT 4 failure. `OnionError` carries that failure so the caller
 * can answer without re-deriving anything:
 * - `sharedSecret === null` (BADONION cases: bad version, key or HMAC):
 *   answer with `update_fail_malformed_htlc` carrying `failure.code` and
 *   `failure.sha256OfOnion` — no shared secret can be trusted, so nothing
 *   can be encrypted back;
 * - `sharedSecret` set (the HMAC verified but the hop payload is invalid):
 *   answer with `update_fail_htlc` whose reason is
 *   `createFailurePacket(sharedSecret, failure)`.
 */
import { AmpnodeError } from '../wire/errors.js';
import type { FailureMessage } from './failure.js';

export type OnionErrorCode =
  | 'ERR_ONION_VERSION' // version byte is not 0
  | 'ERR_ONION_KEY' // ephemeral public key is not a valid point
  | 'ERR_ONION_HMAC' // HMAC over hop_payloads ‖ associated data does not match
  | 'ERR_ONION_PAYLOAD'; // the decrypted hop payload breaks a BOLT 4 rule

export class OnionError extends AmpnodeError<OnionErrorCode> {
  /** The failure to send back to the previous hop. */
  readonly failure: FailureMessage;
  /** The hop's shared secret when the failure can be encrypted back; null for BADONION failures. */
  readonly sharedSecret: Uint8Array | null;
  constructor(
    code: OnionErrorCode,
    message: string,
    failure: FailureMessage,
    sharedSecret: Uint8Array | null = null,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.failure = failure;
    this.sharedSecret = sharedSecret;
  }
}
