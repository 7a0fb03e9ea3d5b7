/**
 * The channel's per-commitment key derivation (which uses our private keys
 * where it can) must give exactly bolt3.deriveCommitmentKeys' keys, for our
 * commitments and for the peer's; and the HTLC private key must match the
 * HTLC pubkey the peer's commitment carries.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, secp } from '../../wire/crypto.js';
import { deriveCommitmentKeys, derivePrivkey, perCommitmentPoint } from '../../htlc/bolt3/index.js';
import {
  channelPubkeys,
  deriveChannelSecrets,
  localCommitmentKeys,
  ourPoint,
  ourSecret,
  remoteCommitmentKeys,
} from '../../htlc/channel/keys.js';

describe('channel keys', () => {
  it('agree with bolt3.deriveCommitmentKeys on both commitments', () => {
    for (let i = 0; i < 20; i++) {
      const us = deriveChannelSecrets(randomBytes(32), i);
      const them = deriveChannelSecrets(randomBytes(32), i);
      const ours = channelPubkeys(us);
      const theirs = channelPubkeys(them);
      const n = BigInt(i * 7919);
      const secret = ourSecret(us, n);
      const point = ourPoint(us, n);
      assert.deepEqual(point, perCommitmentPoint(secret));
      assert.deepEqual(
        localCommitmentKeys(us, ours, theirs, secret, point),
        deriveCommitmentKeys({
          perCommitmentPoint: point,
          localDelayedPaymentBasepoint: ours.delayedPaymentBasepoint,
          localHtlcBasepoint: ours.htlcBasepoint,
          remoteHtlcBasepoint: theirs.htlcBasepoint,
          remoteRevocationBasepoint: theirs.revocationBasepoint,
          remotePaymentBasepoint: theirs.paymentBasepoint,
        }),
      );
      const theirPoint = ourPoint(them, n + 1n);
      const r = remoteCommitmentKeys(us, ours, theirs, theirPoint);
      assert.deepEqual(
        r.keys,
        deriveCommitmentKeys({
          perCommitmentPoint: theirPoint,
          localDelayedPaymentBasepoint: theirs.delayedPaymentBasepoint,
          localHtlcBasepoint: theirs.htlcBasepoint,
          remoteHtlcBasepoint: ours.htlcBasepoint,
          remoteRevocationBasepoint: ours.revocationBasepoint,
          remotePaymentBasepoint: ours.paymentBasepoint,
        }),
      );
      assert.deepEqual(r.ourHtlcPriv, derivePrivkey(us.htlcBaseSecret, theirPoint));
      assert.deepEqual(secp.publicKeyCreate(r.ourHtlcPriv), r.keys.remoteHtlcPubkey);
    }
  });

  it('derives distinct, stable secrets per key index', () => {
    const seed = randomBytes(32);
    const a = deriveChannelSecrets(seed, 1);
    assert.deepEqual(deriveChannelSecrets(seed, 1), a);
    assert.notDeepEqual(deriveChannelSecrets(seed, 2).fundingPriv, a.fundingPriv);
    assert.notDeepEqual(a.fundingPriv, a.htlcBaseSecret);
  });
});
