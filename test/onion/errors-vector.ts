/**
 * The BOLT 4 "Returning Errors" vector (test/fixtures/bolt04-errors.json) as the failure and attribution tests read
 * it: its fields, the five hops' shared secrets from its session key, and the failure the last hop returns.
 */
import { readFileSync } from 'node:fs';
import { hexToBytes } from '../../wire/bytes.js';
import { deriveSharedSecrets, type FailureMessage } from '../../onion/index.js';

export interface ErrorsVector {
  parameters: {
    session_key: string;
    failure_source_node: number;
    htlc_msat: number;
    height: number;
    failure_message_tlv: { type: number; value: string };
    hops: { index: number; pubkey: string; htlc_hold_time: number }[];
  };
  creation: { encoded_failure_message: string; shared_secret: string; payload: string; um_key: string; raw_error_packet: string };
  forwarding: { node: number; shared_secret: string; ammag_key: string; stream: string; error_packet: string; attribution_data: string }[];
  success_attribution_data: { node: number; attribution_data: string }[];
  legacy_onion_error_test: {
    generate: { session_key: string; failure_message: string; hops: { pubkey: string; hop_shared_secret: string; ammag_key: string }[] };
    errorpacket: string;
  };
}

export const errorsVector = JSON.parse(readFileSync(new URL('../fixtures/bolt04-errors.json', import.meta.url), 'utf8')) as ErrorsVector;

const p = errorsVector.parameters;

/** The shared secret of each hop, hop 0 first. */
export const vectorSecrets = deriveSharedSecrets(
  p.hops.map((h) => hexToBytes(h.pubkey)),
  hexToBytes(p.session_key),
);

/** What the erring node (the last hop) returns: incorrect_or_unknown_payment_details with a 300-byte TLV. */
export const vectorFailure: FailureMessage = {
  name: 'incorrect_or_unknown_payment_details',
  htlcMsat: BigInt(p.htlc_msat),
  height: p.height,
  tlvs: [{ type: BigInt(p.failure_message_tlv.type), value: hexToBytes(p.failure_message_tlv.value) }],
};

/** The vector's failure_len + pad_len. */
export const VECTOR_PADDED_LENGTH = 1024;
