/**
 * Atomic Multi-Path payments: share splitting and child derivation, as lnd
 * does it (amp/sharer.go, amp/child.go). The draft BOLT was never merged; lnd
 * is the reference.
 *
 *   child_preimage = SHA256(root ‖ share ‖ BE32(child_index))
 *   child_hash     = SHA256(child_preimage)        (the HTLC's payment_hash)
 *   root           = XOR of the shares of every HTLC in the set
 *
 * Sender: a `Sharer` holds the root and the "current" share (initially the
 * root). `split()` gives [left, right] with a random left and right =
 * current ⊕ left; `merge(share)` XORs a failed shard's share back in; the
 * live shares always XOR to the root. `AmpShards` wraps that bookkeeping
 * for a payment (lnd's shard tracker).
 *
 * Receiver: `validateAmpSet` XORs the shares of a complete set, derives
 * every child and requires child_hash == payment_hash for every HTLC; one
 * mismatch fails the whole set. Each HTLC settles with its own preimage.
 *
 * Immutable values: every operation returns new arrays, nothing is shared.
 */
import { equalBytes } from '../wire/bytes.js';
import { AmpnodeError, ArgumentError } from '../wire/errors.js';
import { randomBytes, sha256 } from '../wire/crypto.js';

export class AmpError extends AmpnodeError<'ERR_AMP_ZERO_SHARE'> {}

export const SHARE_LENGTH = 32;

export interface AmpChild {
  share: Uint8Array;
  childIndex: number;
  preimage: Uint8Array;
  /** The HTLC's payment hash. */
  hash: Uint8Array;
}

function need32(b: Uint8Array, what: string): void {
  if (b.length !== SHARE_LENGTH) throw new ArgumentError(`${what} must be 32 bytes, got ${b.length}`);
}

function needIndex(i: number): void {
  if (!Number.isInteger(i) || i < 0 || i > 0xffffffff) throw new ArgumentError(`child_index must be a u32, got ${i}`);
}

function xor32(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(SHARE_LENGTH);
  for (let i = 0; i < SHARE_LENGTH; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

const scratch = new Uint8Array(68);
const scratchView = new DataView(scratch.buffer);

/** The child preimage alone: SHA256(root ‖ share ‖ BE32(index)). */
export function childPreimage(root: Uint8Array, share: Uint8Array, childIndex: number): Uint8Array {
  need32(root, 'root');
  need32(share, 'share');
  needIndex(childIndex);
  scratch.set(root, 0);
  scratch.set(share, 32);
  scratchView.setUint32(64, childIndex);
  return sha256(scratch);
}

/** Derives one child: preimage and payment hash for (root, share, index). */
export function deriveChild(root: Uint8Array, share: Uint8Array, childIndex: number): AmpChild {
  const preimage = childPreimage(root, share, childIndex);
  return { share: share.slice(), childIndex, preimage, hash: sha256(preimage) };
}

/** XOR of all shares. */
export function reconstructRoot(shares: readonly Uint8Array[]): Uint8Array {
  let root: Uint8Array = new Uint8Array(SHARE_LENGTH);
  for (const s of shares) {
    need32(s, 'share');
    root = xor32(root, s);
  }
  return root;
}

/** Receiver side: derive every child of a complete set from the shares alone. */
export function reconstructChildren(descs: readonly { share: Uint8Array; childIndex: number }[]): AmpChild[] {
  const root = reconstructRoot(descs.map((d) => d.share));
  return descs.map((d) => deriveChild(root, d.share, d.childIndex));
}

export interface AmpSetHtlc {
  share: Uint8Array;
  childIndex: number;
  paymentHash: Uint8Array;
}

export type AmpSetValidation =
  | { valid: true; root: Uint8Array; children: AmpChild[] }
  /** `htlcIndex`: the first HTLC (in the given order) whose derived hash differs. */
  | { valid: false; htlcIndex: number; reason: string };

/**
 * Validates a complete AMP set: every derived child_hash must equal its
 * HTLC's payment_hash. On success each HTLC settles with `children[i].preimage`.
 */
export function validateAmpSet(htlcs: readonly AmpSetHtlc[]): AmpSetValidation {
  if (htlcs.length === 0) return { valid: false, htlcIndex: -1, reason: 'empty set' };
  const root = reconstructRoot(htlcs.map((h) => h.share));
  const children: AmpChild[] = [];
  for (let i = 0; i < htlcs.length; i++) {
    const h = htlcs[i]!;
    const child = deriveChild(root, h.share, h.childIndex);
    if (h.paymentHash.length !== 32 || !equalBytes(child.hash, h.paymentHash))
      return { valid: false, htlcIndex: i, reason: `child ${h.childIndex}: derived hash does not match the HTLC's payment hash` };
    children.push(child);
  }
  return { valid: true, root, children };
}

/** lnd's SeedSharer: a root and the current share. Immutable. */
export class Sharer {
  private constructor(
    readonly root: Uint8Array,
    readonly share: Uint8Array,
  ) {}

  /** A sharer over a fresh random root. */
  static random(): Sharer {
    const root = randomBytes(SHARE_LENGTH);
    return new Sharer(root, root.slice());
  }

  /** A sharer whose current share is the root itself (e.g. after restoring a persisted root). */
  static fromRoot(root: Uint8Array): Sharer {
    need32(root, 'root');
    return new Sharer(root.slice(), root.slice());
  }

  /** A sharer with an explicit current share (restoring a payment in flight). */
  static withShare(root: Uint8Array, share: Uint8Array): Sharer {
    need32(root, 'root');
    need32(share, 'share');
    return new Sharer(root.slice(), share.slice());
  }

  isZero(): boolean {
    return this.share.every((b) => b === 0);
  }

  /** [left, right]: left's share is random, right's is current ⊕ left. */
  split(): [Sharer, Sharer] {
    if (this.isZero()) throw new AmpError('ERR_AMP_ZERO_SHARE', 'cannot split a zero share');
    const left = randomBytes(SHARE_LENGTH);
    return [new Sharer(this.root, left), new Sharer(this.root, xor32(this.share, left))];
  }

  /** XORs a failed shard's share back into the current share. */
  merge(failed: Uint8Array | AmpChild): Sharer {
    const s = failed instanceof Uint8Array ? failed : failed.share;
    need32(s, 'share');
    return new Sharer(this.root, xor32(this.share, s));
  }

  /** The same root with a zero current share (after the last shard took everything). */
  zero(): Sharer {
    return new Sharer(this.root, new Uint8Array(SHARE_LENGTH));
  }

  /** The child of the current share at `childIndex`. */
  child(childIndex: number): AmpChild {
    return deriveChild(this.root, this.share, childIndex);
  }
}

/** A fresh random child index (u32). */
export function randomChildIndex(): number {
  const b = randomBytes(4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
}

/**
 * Sender bookkeeping for one AMP payment (lnd's shard tracker): hands out
 * shards, takes failed ones back. The live shards' shares plus `remaining`
 * always XOR to the root.
 */
export class AmpShards {
  private current: Sharer;
  constructor(
    sharer: Sharer,
    readonly setId: Uint8Array,
  ) {
    need32(setId, 'set_id');
    this.current = sharer;
  }

  /** A new payment: random root and random set_id. */
  static random(): AmpShards {
    return new AmpShards(Sharer.random(), randomBytes(SHARE_LENGTH));
  }

  get root(): Uint8Array {
    return this.current.root;
  }

  /** The share not yet handed out. */
  get remaining(): Sharer {
    return this.current;
  }

  /**
   * The next shard. `last` hands out the whole remaining share (so the set
   * completes); otherwise the remaining share is split.
   */
  next(childIndex: number = randomChildIndex(), opts: { last: boolean } = { last: false }): AmpChild {
    if (opts.last) {
      if (this.current.isZero()) throw new AmpError('ERR_AMP_ZERO_SHARE', 'no share left to send');
      const child = this.current.child(childIndex);
      this.current = this.current.zero();
      return child;
    }
    const [left, right] = this.current.split();
    this.current = right;
    return left.child(childIndex);
  }

  /** A shard failed: its share goes back into the remaining share. */
  fail(child: AmpChild | Uint8Array): void {
    this.current = this.current.merge(child);
  }
}
