/** Typed errors of the BOLT 3 transaction layer. */
import { AmpnodeError } from '../../wire/errors.js';

export type Bolt3ErrorCode =
  /** a secret given to the revocation store does not derive the secrets it already holds */
  | 'ERR_SHACHAIN_MISMATCH'
  /** a secret given to the revocation store out of order (indices must go down one by one) */
  | 'ERR_SHACHAIN_ORDER'
  /** a per-commitment index or commitment number outside 0 … 2^48-1 */
  | 'ERR_COMMITMENT_INDEX'
  /** encoded revocation-store bytes that do not parse */
  | 'ERR_SHACHAIN_ENCODING'
  /** parameters that cannot make a valid transaction (balances exceed funding, bad key length, ...) */
  | 'ERR_BAD_PARAMS'
  /** a signature of the wrong length or encoding */
  | 'ERR_BAD_SIGNATURE'
  /** an output worth less than the fee of spending it (plus the dust limit) */
  | 'ERR_DUST';

export class Bolt3Error extends AmpnodeError<Bolt3ErrorCode> {}
