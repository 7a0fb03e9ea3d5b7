/** Typed access to test/fixtures/bolt03-commitment.json (BOLT 3 Appendices B–F) for the bolt3 tests. */
import { readFileSync } from 'node:fs';

export interface HtlcVector {
  id: number;
  direction: string;
  amount_msat: number;
  expiry: number;
  payment_preimage: string;
  offered_by: 'local' | 'remote';
  type_in_local_commitment: 'offered' | 'received';
}

export interface StaticTest {
  name: string;
  to_local_msat: number;
  to_remote_msat: number;
  local_feerate_per_kw: number;
  base_fee_satoshi?: number;
  actual_fee_satoshi?: number;
  outputs_from_comments: {
    type: string;
    htlc_id?: number;
    amount_satoshi: number;
    witness_script?: string;
    p2wpkh_pubkey?: string;
  }[];
  remote_signature: string;
  local_signature: string;
  commit_tx: string;
  num_htlcs: number;
  htlc_txs: {
    output_index: number;
    type: 'htlc_success' | 'htlc_timeout';
    htlc_id: number;
    remote_htlc_signature: string;
    local_htlc_signature: string;
    tx: string;
  }[];
}

export interface AnchorTest {
  name: string;
  to_local_msat: number;
  to_remote_msat: number;
  local_dust_limit_satoshi: number;
  local_feerate_per_kw: number;
  use_test_htlcs: boolean;
  remote_signature: string;
  commit_tx: string;
  htlc_txs: { remote_htlc_signature: string; tx: string }[];
}

export interface Bolt3Fixture {
  funding_tx: Record<string, string | number | string[]>;
  commitment_static_remotekey: {
    params: {
      funding_tx_id: string;
      funding_output_index: number;
      funding_amount_satoshi: number;
      commitment_number: number;
      local_delay: number;
      local_dust_limit_satoshi: number;
    };
    htlcs: HtlcVector[];
    keys: Record<string, string>;
    internal_from_html_comment: Record<string, string>;
    tests: StaticTest[];
  };
  commitment_anchors: {
    intro_text: string;
    tests: AnchorTest[];
    appendix_f_verbatim: {
      Name: string;
      LocalBalance: number;
      RemoteBalance: number;
      DustLimitSatoshis: number;
      FeePerKw: number;
      UseTestHtlcs: boolean;
      HtlcDescs: { RemoteSigHex: string; ResolutionTxHex: string }[];
      ExpectedCommitmentTxHex: string;
      RemoteSigHex: string;
    }[];
  };
  per_commitment_secret_generation: { name: string; seed: string; index: number; index_as_written: string; output: string }[];
  shachain_storage: { name: string; steps: { index: number; secret: string; expected: 'OK' | 'ERROR' }[] }[];
  key_derivation: {
    base_secret: string;
    per_commitment_secret: string;
    base_point: string;
    per_commitment_point: string;
    tests: { name: string; output_name: string; output: string; inputs: string[]; trace: string[] }[];
  };
}

export const fixture = JSON.parse(readFileSync(new URL('../fixtures/bolt03-commitment.json', import.meta.url), 'utf8')) as Bolt3Fixture;
