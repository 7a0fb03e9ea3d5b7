/**
 * BOLT 3 Appendix D (per-commitment secret generation and shachain storage)
 * and Appendix E (key derivation): every vector, plus persistence round trips
 * of the revocation store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesToHex, hexToBytes } from '../../wire/bytes.js';
import { secp } from '../../wire/crypto.js';
import {
  Bolt3Error,
  MAX_COMMITMENT_INDEX,
  RevocationStore,
  derivePrivkey,
  derivePubkey,
  deriveRevocationPrivkey,
  deriveRevocationPubkey,
  perCommitmentPoint,
  perCommitmentSecretFromSeed,
  secretIndexForCommitment,
  PerCommitmentSecrets,
} from '../../htlc/bolt3/index.js';
import { fixture } from './bolt3-fixture.js';

describe('BOLT 3 per-commitment secret generation (Appendix D)', () => {
  for (const v of fixture.per_commitment_secret_generation) {
    it(v.name, () => {
      const index = BigInt(v.index);
      assert.equal(index, BigInt(v.index_as_written));
      assert.equal(bytesToHex(perCommitmentSecretFromSeed(hexToBytes(v.seed), index)), v.output);
      assert.equal(bytesToHex(new PerCommitmentSecrets(hexToBytes(v.seed)).secret(index)), v.output, 'PerCommitmentSecrets');
    });
  }

  it('PerCommitmentSecrets gives the same secrets as generate_from_seed, in any order and across prefix boundaries', () => {
    const seed = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);
    const gen = new PerCommitmentSecrets(seed);
    const indices: bigint[] = [];
    for (let n = 0n; n < 40n; n++) indices.push(secretIndexForCommitment(n));
    for (let n = 65_530n; n < 65_540n; n++) indices.push(secretIndexForCommitment(n)); // crosses a 2^16 boundary
    indices.push(0n, 1n, 65_535n, 65_536n, MAX_COMMITMENT_INDEX, secretIndexForCommitment(3n), 0x123456789abcn);
    for (const i of indices) assert.equal(bytesToHex(gen.secret(i)), bytesToHex(perCommitmentSecretFromSeed(seed, i)), `index ${i}`);
    assert.throws(() => gen.secret(1n << 48n), { code: 'ERR_COMMITMENT_INDEX' });
    assert.throws(() => new PerCommitmentSecrets(new Uint8Array(31)), { code: 'ERR_BAD_PARAMS' });
  });

  it('maps commitment numbers to indices from 2^48-1 downward and rejects out-of-range indices', () => {
    assert.equal(secretIndexForCommitment(0n), MAX_COMMITMENT_INDEX);
    assert.equal(secretIndexForCommitment(42n), MAX_COMMITMENT_INDEX - 42n);
    assert.throws(() => perCommitmentSecretFromSeed(new Uint8Array(32), 1n << 48n), { code: 'ERR_COMMITMENT_INDEX' });
    assert.throws(() => secretIndexForCommitment(-1n), { code: 'ERR_COMMITMENT_INDEX' });
  });

  it('per-commitment point is the secret times G (Appendix C point)', () => {
    const internal = fixture.commitment_static_remotekey.internal_from_html_comment;
    const point = perCommitmentPoint(hexToBytes(internal['x_local_per_commitment_secret']!));
    assert.equal(bytesToHex(point), internal['local_per_commitment_point']);
  });
});

describe('BOLT 3 shachain storage (Appendix D)', () => {
  for (const v of fixture.shachain_storage) {
    it(v.name, () => {
      const store = new RevocationStore();
      const accepted: { index: bigint; secret: Uint8Array }[] = [];
      for (const step of v.steps) {
        const index = BigInt(step.index);
        const secret = hexToBytes(step.secret);
        if (step.expected === 'OK') {
          store.insert(index, secret);
          accepted.push({ index, secret });
        } else {
          const before = bytesToHex(store.encode());
          assert.throws(
            () => store.insert(index, secret),
            (e: unknown) => e instanceof Bolt3Error && e.code === 'ERR_SHACHAIN_MISMATCH',
          );
          assert.equal(bytesToHex(store.encode()), before, 'a refused secret leaves the store unchanged');
        }
        // every accepted secret stays retrievable, also after a persistence round trip
        const copy = RevocationStore.decode(store.encode());
        for (const a of accepted) {
          assert.equal(bytesToHex(store.get(a.index)!), bytesToHex(a.secret));
          assert.equal(bytesToHex(copy.get(a.index)!), bytesToHex(a.secret));
        }
        assert.equal(copy.nextIndex, store.nextIndex);
      }
    });
  }

  it('stores a long run compactly and derives every earlier secret', () => {
    const seed = hexToBytes('0f'.repeat(32));
    const store = new RevocationStore();
    const n = 300n;
    for (let i = 0n; i < n; i++) store.insert(MAX_COMMITMENT_INDEX - i, perCommitmentSecretFromSeed(seed, MAX_COMMITMENT_INDEX - i));
    assert.equal(store.count, n);
    assert.ok(store.encode().length <= 2 + 49 * 41);
    for (let i = 0n; i < n; i += 7n) {
      const index = MAX_COMMITMENT_INDEX - i;
      assert.equal(bytesToHex(store.get(index)!), bytesToHex(perCommitmentSecretFromSeed(seed, index)));
    }
    assert.equal(store.get(MAX_COMMITMENT_INDEX - n), null, 'a secret not yet revealed is unknown');
  });

  it('refuses secrets out of order and malformed encodings', () => {
    const seed = hexToBytes('01'.repeat(32));
    const store = new RevocationStore();
    store.insert(MAX_COMMITMENT_INDEX, perCommitmentSecretFromSeed(seed, MAX_COMMITMENT_INDEX));
    assert.throws(() => store.insert(MAX_COMMITMENT_INDEX - 2n, perCommitmentSecretFromSeed(seed, MAX_COMMITMENT_INDEX - 2n)), {
      code: 'ERR_SHACHAIN_ORDER',
    });
    assert.throws(() => store.insert(MAX_COMMITMENT_INDEX - 1n, new Uint8Array(31)), { code: 'ERR_BAD_PARAMS' });
    const enc = store.encode();
    assert.throws(() => RevocationStore.decode(enc.subarray(0, enc.length - 1)), { code: 'ERR_SHACHAIN_ENCODING' });
    assert.throws(() => RevocationStore.decode(new Uint8Array([...enc, 0])), { code: 'ERR_SHACHAIN_ENCODING' });
    const wrongBucket = enc.slice();
    wrongBucket[2] = 5; // index 2^48-1 belongs in bucket 0
    assert.throws(() => RevocationStore.decode(wrongBucket), { code: 'ERR_SHACHAIN_ENCODING' });
    assert.equal(RevocationStore.decode(new RevocationStore().encode()).nextIndex, null);
  });
});

describe('BOLT 3 key derivation (Appendix E)', () => {
  const kd = fixture.key_derivation;
  const baseSecret = hexToBytes(kd.base_secret);
  const basePoint = hexToBytes(kd.base_point);
  const pcSecret = hexToBytes(kd.per_commitment_secret);
  const pcPoint = hexToBytes(kd.per_commitment_point);

  it('inputs are consistent (points are the secrets times G)', () => {
    assert.equal(bytesToHex(secp.publicKeyCreate(baseSecret)), kd.base_point);
    assert.equal(bytesToHex(perCommitmentPoint(pcSecret)), kd.per_commitment_point);
  });

  for (const t of kd.tests) {
    it(t.name, () => {
      let out: Uint8Array;
      switch (t.output_name) {
        case 'localpubkey':
          out = derivePubkey(basePoint, pcPoint);
          break;
        case 'localprivkey':
          out = derivePrivkey(baseSecret, pcPoint);
          assert.equal(bytesToHex(secp.publicKeyCreate(out)), bytesToHex(derivePubkey(basePoint, pcPoint)));
          break;
        case 'revocationpubkey':
          out = deriveRevocationPubkey(basePoint, pcPoint);
          break;
        case 'revocationprivkey':
          out = deriveRevocationPrivkey(baseSecret, pcSecret);
          assert.equal(bytesToHex(secp.publicKeyCreate(out)), bytesToHex(deriveRevocationPubkey(basePoint, pcPoint)));
          break;
        default:
          throw new Error(`unknown output ${t.output_name}`);
      }
      assert.equal(bytesToHex(out), t.output);
    });
  }
});
