/**
 * The shape every BOLT message codec shares. Messages are plain typed
 * objects with a numeric `type`; each family of messages (setup/control,
 * channel, ...) lives in its own file exporting `MessageCodec`s, and
 * `wire/messages.ts` assembles the one table by type.
 *
 * Every message may end with a TLV extension stream; unknown odd records in
 * it are kept in `extensionUnknown` (when a codec supports it) so they can
 * be re-sent unchanged.
 */
export interface MessageCodec<M extends { type: number }> {
  readonly type: M['type'];
  readonly name: string;
  /** Decodes the payload after the 2-byte type. Throws DecodeError on bad bytes. */
  decode(payload: Uint8Array): M;
  /** Encodes the payload after the 2-byte type. */
  encode(msg: M): Uint8Array;
}
