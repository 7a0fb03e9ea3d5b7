/**
 * BOLT 4 onion routing and lnd-compatible AMP derivation. Pure functions over
 * bytes; imports only wire/.
 *
 * API
 * ---
 * Packets (packet.ts)
 *   buildOnion(hops: { pubkey, payload }[], sessionKey, associatedData)
 *       → { packet (1366 bytes), sharedSecrets[] }
 *     `payload` is the hop's TLV stream WITHOUT its BigSize length; use
 *     encodeHopPayload to make it. Throws ArgumentError if the payloads do
 *     not fit in 1300 bytes or a key is invalid.
 *   peelOnion(packet, nodePriv, associatedData = the payment hash)
 *       → { kind: 'forward', payload, payloadBytes, nextPacket, sharedSecret }
 *       | { kind: 'final',   payload, payloadBytes, sharedSecret }
 *     The final hop is recognised by an all-zero next HMAC. Throws:
 *     - OnionError code ERR_ONION_VERSION / ERR_ONION_KEY / ERR_ONION_HMAC,
 *       sharedSecret null, failure = invalid_onion_version / _key / _hmac
 *       with sha256OfOnion → send update_fail_malformed_htlc
 *       (failureCode(err.failure), err.failure.sha256OfOnion);
 *     - OnionError code ERR_ONION_PAYLOAD, sharedSecret set, failure =
 *       invalid_onion_payload {tlvType, offset} → send update_fail_htlc with
 *       createFailurePacket(err.sharedSecret, err.failure);
 *     - ArgumentError if the packet is not 1366 bytes.
 *   deriveSharedSecrets(pubkeys, sessionKey), deriveHopKeys, generateKey,
 *   sha256OfOnion.
 *
 * Hop payloads (payload.ts)
 *   encodeHopPayload(p) → bytes; decodeHopPayload(bytes, { isFinal }) →
 *   HopPayload (validated with lnd's rules; OnionError ERR_ONION_PAYLOAD).
 *   Route-blinding types 10, 12, 18 are refused as unknown even types.
 *
 * Failures (failure.ts, failurePacket.ts)
 *   FailureCode (every BOLT 4 code), FailureMessage (typed, by `name`),
 *   failureCode(f), encodeFailureMessage / decodeFailureMessage,
 *   channelUpdateBody (strips lnd's optional 0x0102 type prefix).
 *   createFailurePacket(sharedSecret, failure, { paddedLength? = 256 })
 *       at the erring node;
 *   wrapFailurePacket(sharedSecret, packet) at each hop back;
 *   unwrapFailure(packet, sharedSecrets) at the origin →
 *       { kind: 'failure', hopIndex, failure } | { kind: 'malformed', hopIndex, reason }
 *       | { kind: 'unreadable' }.
 *
 * Attribution data (attribution.ts): 920 bytes beside update_fail_htlc's
 * reason, and in update_fulfill_htlc
 *   createAttributableFailure(sharedSecret, failure, holdTimeMs) →
 *       { reason, attributionData } at the erring node;
 *   wrapAttributableFailure(sharedSecret, reason, downstream?, holdTimeMs)
 *       → the same, at each hop back (none from downstream: start from zeros);
 *   addAttribution(sharedSecret, downstream?, holdTimeMs) for a fulfill, at
 *       the final node and at each hop back;
 *   readAttribution(data, sharedSecrets, packet?) at the origin →
 *       { holdTimesMs, lastVerifiedHop };
 *   unwrapAttributedFailure(packet, data?, sharedSecrets): unwrapFailure's
 *       answer plus `attribution`; an unreadable packet gets the `hopIndex`
 *       the attribution data blames.
 *
 * AMP (amp.ts)
 *   deriveChild(root, share, index), childPreimage, reconstructRoot,
 *   reconstructChildren, validateAmpSet(htlcs) → { valid, root, children } |
 *   { valid: false, htlcIndex, reason }; Sharer (split/merge/zero/child);
 *   AmpShards (sender bookkeeping: next(index, {last}) / fail(child)).
 */
export * from './errors.js';
export * from './failure.js';
export * from './failurePacket.js';
export * from './attribution.js';
export * from './packet.js';
export * from './payload.js';
export * from './amp.js';
