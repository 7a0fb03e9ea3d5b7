/**
 * Typed errors shared by every layer.
 *
 * Protocol outcomes (settle, fail, mpp_timeout) are values, never exceptions.
 * Everything else that can go wrong — bad bytes from a peer, a bad argument
 * from a user, a broken invariant — is an `AmpnodeError` with a stable
 * machine-readable `code`, so callers branch on `err.code`, not on text.
 */
export class AmpnodeError<C extends string = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Codes for malformed bytes met while decoding. */
export type DecodeErrorCode =
  | 'ERR_TRUNCATED' // fewer bytes than a field needs
  | 'ERR_NON_MINIMAL' // a BigSize or truncated integer not in its shortest form
  | 'ERR_TLV_ORDER' // TLV types not strictly increasing
  | 'ERR_TLV_UNKNOWN_EVEN' // an unknown even TLV type
  | 'ERR_TLV_LENGTH' // a TLV record's length does not fit its type
  | 'ERR_TRAILING_BYTES' // bytes left over where none may be
  | 'ERR_INVALID_VALUE' // a field holds a value its type forbids
  | 'ERR_UNKNOWN_EVEN_MESSAGE'; // a message type we do not know and may not ignore

export class DecodeError extends AmpnodeError<DecodeErrorCode> {}

/** Codes for bad arguments given by a caller (a user or another module). */
export class ArgumentError extends AmpnodeError<'ERR_INVALID_ARGUMENT'> {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message);
  }
}
