/**
 * BOLT 8 transport: the Noise_XK_secp256k1_ChaChaPoly_SHA256 handshake and
 * the encrypted, length-prefixed message framing that follows it.
 *
 * The handshake is a set of pure steps, one per act and role, each taking
 * the previous state and the peer's bytes and returning the next state and
 * the bytes to send. Nothing here reads a socket or starts a timer, so the
 * same code runs over TCP, in-memory pipes and the spec's test vectors
 * (which fix the ephemeral key, hence `ephemeralPriv`). A failed step throws
 * a `NoiseError` naming the act; the caller must then drop the connection.
 *
 *   initiator: initiatorActOne → (act 1 out) … (act 2 in) → initiatorActTwo → (act 3 out), done
 *   responder: (act 1 in) → responderActOne → (act 2 out) … (act 3 in) → responderActThree, done
 *
 * After the handshake a `NoiseTransport` holds one key, chaining key and
 * nonce per direction. Each message is sent as
 *   encrypt(u16be length) ‖ tag (18 bytes) ‖ encrypt(body) ‖ tag,
 * each part using the next nonce, and a direction's key is rotated
 * (ck, k = HKDF(ck, k)) once its nonce reaches 1000.
 *
 * The transport is the hot path, so it calls node:crypto directly: one
 * output buffer per frame, reused nonce buffers, no associated data (BOLT 8
 * uses an empty AD after the handshake). A node:crypto cipher object is
 * single-use for AEAD modes, so each part gets a fresh one, exactly as the
 * raw primitive needs.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { equalBytes } from './bytes.js';
import { CryptoError, randomPrivateKey, secp, sha256 } from './crypto.js';
import { AmpnodeError, ArgumentError } from './errors.js';
import { hkdf2, sha256Concat } from './noise-hash.js';

export { hkdf2 } from './noise-hash.js';

export type NoiseErrorCode =
  | 'ERR_NOISE_BAD_VERSION' // an act whose version byte is not 0
  | 'ERR_NOISE_BAD_PUBKEY' // an act carrying a key that is not a valid compressed point
  | 'ERR_NOISE_BAD_TAG' // a Poly1305 tag that does not verify (handshake or transport)
  | 'ERR_NOISE_BAD_LENGTH' // an act or frame part of the wrong size (short read)
  | 'ERR_NOISE_MESSAGE_TOO_LONG' // a plaintext over 65535 bytes given to send
  | 'ERR_NOISE_HANDSHAKE_TIMEOUT' // the handshake did not finish in time
  | 'ERR_NOISE_CLOSED' // the connection is closed, or closed while in use
  | 'ERR_NOISE_BAD_STATE'; // a step used out of order (a caller bug)

export class NoiseError extends AmpnodeError<NoiseErrorCode> {
  /** The handshake act (1, 2 or 3) the error belongs to, when it belongs to one. */
  readonly act: 1 | 2 | 3 | undefined;
  constructor(code: NoiseErrorCode, message: string, options?: { act?: 1 | 2 | 3; cause?: unknown }) {
    super(code, options?.act !== undefined ? `act ${options.act}: ${message}` : message, options);
    this.act = options?.act;
  }
}

export const ACT_ONE_SIZE = 50;
export const ACT_TWO_SIZE = 50;
export const ACT_THREE_SIZE = 66;
/** Largest plaintext one transport message may carry. */
export const MAX_MESSAGE_SIZE = 65535;
/** Encrypted length prefix plus its tag. */
export const HEADER_SIZE = 18;
export const TAG_SIZE = 16;
/** A direction's key is rotated when its nonce reaches this value. */
export const KEY_ROTATION_INTERVAL = 1000;

const PROTOCOL_NAME = new TextEncoder().encode('Noise_XK_secp256k1_ChaChaPoly_SHA256');
const PROLOGUE = new TextEncoder().encode('lightning');
const EMPTY = new Uint8Array(0);
const NONCE_0 = new Uint8Array(12);
const NONCE_1 = (() => {
  const n = new Uint8Array(12);
  n[4] = 1;
  return n;
})();

// h and ck before any key is mixed in; the same for every handshake.
const CK_INIT = sha256(PROTOCOL_NAME);
const H_INIT = sha256Concat(CK_INIT, PROLOGUE);

// ------------------------------------------------------------- handshake AEAD

// The handshake's ChaCha20-Poly1305 operations: three with an empty
// plaintext (a bare tag over h) and one over a 33-byte key. Each issues only
// the node:crypto calls it needs (no update() on empty input, no output
// copies). Measured against @noble/ciphers on these sizes, node:crypto's
// per-call set-up still costs less than noble's whole computation.

const AEAD = 'chacha20-poly1305';
const AEAD_OPTS = { authTagLength: 16 } as const;
const AAD_EMPTY_PT = { plaintextLength: 0 } as const;

/** The tag of an empty plaintext under (key, nonce) with associated data `ad`. */
function sealEmpty(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array): Buffer {
  const c = createCipheriv(AEAD, key, nonce, AEAD_OPTS);
  c.setAAD(ad, AAD_EMPTY_PT);
  c.final();
  return c.getAuthTag();
}

/** Encrypts `pt` into `out` at `off` as ciphertext ‖ tag. */
function sealInto(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, pt: Uint8Array, out: Uint8Array, off: number): void {
  const c = createCipheriv(AEAD, key, nonce, AEAD_OPTS);
  c.setAAD(ad, { plaintextLength: pt.length });
  out.set(c.update(pt), off);
  c.final();
  out.set(c.getAuthTag(), off + pt.length);
}

/** Whether `tag` is the tag of an empty plaintext under (key, nonce, ad). */
function openEmpty(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, tag: Uint8Array): boolean {
  const d = createDecipheriv(AEAD, key, nonce, AEAD_OPTS);
  d.setAAD(ad, AAD_EMPTY_PT);
  d.setAuthTag(tag);
  try {
    d.final();
    return true;
  } catch {
    return false;
  }
}

/** Decrypts ciphertext ‖ tag; null when the tag does not verify. */
function open(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ct: Uint8Array): Uint8Array | null {
  const n = ct.length - TAG_SIZE;
  const d = createDecipheriv(AEAD, key, nonce, AEAD_OPTS);
  d.setAAD(ad, { plaintextLength: n });
  d.setAuthTag(ct.subarray(n));
  const p = d.update(ct.subarray(0, n));
  try {
    d.final();
  } catch {
    return null;
  }
  return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
}

// ------------------------------------------------------------- static key cache

interface StaticKey {
  priv: Uint8Array;
  pub: Uint8Array;
  /** h after mixing this key as the responder's static key. */
  hResponder: Uint8Array;
}

// A node accepts every connection with the same static key; deriving its
// public key (a point multiplication) once instead of per handshake matters.
const staticKeys = new WeakMap<Uint8Array, StaticKey>();

function staticKey(priv: Uint8Array): StaticKey {
  const hit = staticKeys.get(priv);
  if (hit !== undefined && equalBytes(hit.priv, priv)) return hit;
  if (!secp.isPrivateKey(priv)) throw new ArgumentError('local static key is not a valid secp256k1 private key');
  const copy = Uint8Array.from(priv);
  const pub = secp.publicKeyCreate(copy);
  const k: StaticKey = { priv: copy, pub, hResponder: sha256Concat(H_INIT, pub) };
  staticKeys.set(priv, k);
  return k;
}

function ephemeral(priv: Uint8Array | undefined): { priv: Uint8Array; pub: Uint8Array } {
  if (priv === undefined) priv = randomPrivateKey();
  else if (!secp.isPrivateKey(priv)) throw new ArgumentError('ephemeral key is not a valid secp256k1 private key');
  return { priv, pub: secp.publicKeyCreate(priv) };
}

/** ECDH with a key from the wire; an invalid point is the peer's fault. */
function ecdhRemote(pub: Uint8Array, priv: Uint8Array, act: 1 | 2 | 3): Uint8Array {
  if (pub[0] !== 2 && pub[0] !== 3) throw new NoiseError('ERR_NOISE_BAD_PUBKEY', 'key is not a compressed point', { act });
  try {
    return secp.ecdh(pub, priv);
  } catch (e) {
    if (e instanceof CryptoError) throw new NoiseError('ERR_NOISE_BAD_PUBKEY', 'key is not on the curve', { act, cause: e });
    throw e;
  }
}

function checkAct(act: Uint8Array, size: number, n: 1 | 2 | 3): void {
  if (act.length !== size) throw new NoiseError('ERR_NOISE_BAD_LENGTH', `expected ${size} bytes, got ${act.length}`, { act: n });
  if (act[0] !== 0) throw new NoiseError('ERR_NOISE_BAD_VERSION', `unknown handshake version ${act[0]}`, { act: n });
}

// ------------------------------------------------------------- handshake

/** What a finished handshake yields, on either side. */
export interface HandshakeResult {
  transport: NoiseTransport;
  localStaticPub: Uint8Array;
  remoteStaticPub: Uint8Array;
}

export interface InitiatorOptions {
  localStaticPriv: Uint8Array;
  /** The node we are connecting to; we must know it beforehand (XK). */
  remoteStaticPub: Uint8Array;
  /** Fixed ephemeral key, for test vectors only; random when absent. */
  ephemeralPriv?: Uint8Array;
}

/** Initiator state after sending act 1, waiting for act 2. */
export interface InitiatorAwaitingActTwo {
  readonly role: 'initiator';
  readonly s: StaticKey;
  readonly rs: Uint8Array;
  readonly ePriv: Uint8Array;
  readonly h: Uint8Array;
  readonly ck: Uint8Array;
}

export function initiatorActOne(opts: InitiatorOptions): { state: InitiatorAwaitingActTwo; actOne: Uint8Array } {
  const s = staticKey(opts.localStaticPriv);
  const rs = opts.remoteStaticPub;
  if (rs.length !== 33 || !secp.isPublicKey(rs)) throw new ArgumentError('remote static key is not a valid compressed public key');
  const e = ephemeral(opts.ephemeralPriv);
  let h = sha256Concat(H_INIT, rs);
  h = sha256Concat(h, e.pub);
  const [ck, tempK1] = hkdf2(CK_INIT, secp.ecdh(rs, e.priv));
  const c = sealEmpty(tempK1, NONCE_0, h);
  h = sha256Concat(h, c);
  const actOne = new Uint8Array(ACT_ONE_SIZE);
  actOne.set(e.pub, 1);
  actOne.set(c, 34);
  return { state: { role: 'initiator', s, rs: Uint8Array.from(rs), ePriv: e.priv, h, ck }, actOne };
}

/** Reads act 2 and produces act 3; the handshake is then complete. */
export function initiatorActTwo(state: InitiatorAwaitingActTwo, actTwo: Uint8Array): HandshakeResult & { actThree: Uint8Array } {
  checkAct(actTwo, ACT_TWO_SIZE, 2);
  const re = actTwo.subarray(1, 34);
  const c = actTwo.subarray(34, 50);
  let h = sha256Concat(state.h, re);
  const ee = ecdhRemote(re, state.ePriv, 2);
  let ck: Uint8Array;
  let tempK2: Uint8Array;
  [ck, tempK2] = hkdf2(state.ck, ee);
  if (!openEmpty(tempK2, NONCE_0, h, c)) throw new NoiseError('ERR_NOISE_BAD_TAG', 'MAC does not verify', { act: 2 });
  h = sha256Concat(h, c);
  // act 3
  const actThree = new Uint8Array(ACT_THREE_SIZE);
  const cs = actThree.subarray(1, 50);
  sealInto(tempK2, NONCE_1, h, state.s.pub, actThree, 1);
  h = sha256Concat(h, cs);
  let tempK3: Uint8Array;
  [ck, tempK3] = hkdf2(ck, secp.ecdh(re, state.s.priv));
  actThree.set(sealEmpty(tempK3, NONCE_0, h), 50);
  const [sk, rk] = hkdf2(ck, EMPTY);
  return { actThree, transport: new NoiseTransport(sk, rk, ck), localStaticPub: state.s.pub, remoteStaticPub: state.rs };
}

export interface ResponderOptions {
  localStaticPriv: Uint8Array;
  /** Fixed ephemeral key, for test vectors only; random when absent. */
  ephemeralPriv?: Uint8Array;
}

/** Responder state after sending act 2, waiting for act 3. */
export interface ResponderAwaitingActThree {
  readonly role: 'responder';
  readonly s: StaticKey;
  readonly ePriv: Uint8Array;
  readonly h: Uint8Array;
  readonly ck: Uint8Array;
  readonly tempK2: Uint8Array;
}

/** Reads act 1 and produces act 2. */
export function responderActOne(opts: ResponderOptions, actOne: Uint8Array): { state: ResponderAwaitingActThree; actTwo: Uint8Array } {
  const s = staticKey(opts.localStaticPriv);
  checkAct(actOne, ACT_ONE_SIZE, 1);
  const re = actOne.subarray(1, 34);
  const c = actOne.subarray(34, 50);
  let h = sha256Concat(s.hResponder, re);
  const es = ecdhRemote(re, s.priv, 1);
  let ck: Uint8Array;
  let tempK1: Uint8Array;
  [ck, tempK1] = hkdf2(CK_INIT, es);
  if (!openEmpty(tempK1, NONCE_0, h, c)) throw new NoiseError('ERR_NOISE_BAD_TAG', 'MAC does not verify', { act: 1 });
  h = sha256Concat(h, c);
  // act 2
  const e = ephemeral(opts.ephemeralPriv);
  h = sha256Concat(h, e.pub);
  let tempK2: Uint8Array;
  [ck, tempK2] = hkdf2(ck, secp.ecdh(re, e.priv));
  const c2 = sealEmpty(tempK2, NONCE_0, h);
  h = sha256Concat(h, c2);
  const actTwo = new Uint8Array(ACT_TWO_SIZE);
  actTwo.set(e.pub, 1);
  actTwo.set(c2, 34);
  return { state: { role: 'responder', s, ePriv: e.priv, h, ck, tempK2 }, actTwo };
}

/** Reads act 3; the handshake is then complete and the initiator's static key known. */
export function responderActThree(state: ResponderAwaitingActThree, actThree: Uint8Array): HandshakeResult {
  checkAct(actThree, ACT_THREE_SIZE, 3);
  const cs = actThree.subarray(1, 50);
  const t = actThree.subarray(50, 66);
  const rs = open(state.tempK2, NONCE_1, state.h, cs);
  if (rs === null) throw new NoiseError('ERR_NOISE_BAD_TAG', 'MAC on the static key does not verify', { act: 3 });
  const h = sha256Concat(state.h, cs);
  const se = ecdhRemote(rs, state.ePriv, 3);
  const [ck1, tempK3] = hkdf2(state.ck, se);
  if (!openEmpty(tempK3, NONCE_0, h, t)) throw new NoiseError('ERR_NOISE_BAD_TAG', 'MAC does not verify', { act: 3 });
  const [rk, sk] = hkdf2(ck1, EMPTY);
  return { transport: new NoiseTransport(sk, rk, ck1), localStaticPub: state.s.pub, remoteStaticPub: Uint8Array.from(rs) };
}

// ------------------------------------------------------------- transport

/** The plaintext length prefix, rewritten for each frame (encryption copies it out at once). */
const LENGTH = Buffer.alloc(2);

/** One direction's cipher state. */
class CipherState {
  key: Buffer;
  ck: Uint8Array;
  n = 0;
  /** The current nonce: 4 zero bytes then the little-endian counter (always < 1000 here). */
  readonly nonce = Buffer.alloc(12);

  constructor(key: Uint8Array, ck: Uint8Array) {
    this.key = Buffer.from(key);
    this.ck = Uint8Array.from(ck);
  }

  /** Moves to the next nonce, rotating the key after nonce 999. */
  advance(): void {
    if (++this.n === KEY_ROTATION_INTERVAL) {
      const [ck, k] = hkdf2(this.ck, this.key);
      this.ck = ck;
      this.key = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
      this.n = 0;
    }
    this.nonce.writeUInt16LE(this.n, 4);
  }
}

/**
 * The encrypted channel after the handshake. `encrypt` turns one message
 * into one frame; the receiving side works in two steps because the body's
 * length is only known once the header is decrypted:
 * `decryptLength(18 bytes)` → n, then `decryptBody(n + 16 bytes)` → message.
 */
export class NoiseTransport {
  private readonly send: CipherState;
  private readonly recv: CipherState;
  private expectBody = false;

  constructor(sk: Uint8Array, rk: Uint8Array, ck: Uint8Array) {
    this.send = new CipherState(sk, ck);
    this.recv = new CipherState(rk, ck);
  }

  /**
   * Copies of the current keys, chaining keys and nonces of both directions.
   * For tests and diagnostics; never log or send these.
   */
  keyState(): { sk: Uint8Array; rk: Uint8Array; sck: Uint8Array; rck: Uint8Array; sn: number; rn: number } {
    const s = this.send;
    const r = this.recv;
    return {
      sk: Uint8Array.from(s.key),
      rk: Uint8Array.from(r.key),
      sck: Uint8Array.from(s.ck),
      rck: Uint8Array.from(r.ck),
      sn: s.n,
      rn: r.n,
    };
  }

  /** Bytes on the wire for a message of `length` bytes. */
  static frameSize(length: number): number {
    return HEADER_SIZE + length + TAG_SIZE;
  }

  /** Encrypts one message into one frame: header ‖ tag ‖ body ‖ tag, in one buffer. */
  encrypt(msg: Uint8Array): Buffer {
    const len = msg.length;
    if (len > MAX_MESSAGE_SIZE) throw new NoiseError('ERR_NOISE_MESSAGE_TOO_LONG', `message of ${len} bytes exceeds ${MAX_MESSAGE_SIZE}`);
    const s = this.send;
    const out = Buffer.allocUnsafe(HEADER_SIZE + len + TAG_SIZE);
    LENGTH[0] = len >>> 8;
    LENGTH[1] = len & 0xff;
    let c = createCipheriv(AEAD, s.key, s.nonce, AEAD_OPTS);
    out.set(c.update(LENGTH), 0);
    c.final();
    out.set(c.getAuthTag(), 2);
    s.advance();
    c = createCipheriv(AEAD, s.key, s.nonce, AEAD_OPTS);
    out.set(c.update(msg), HEADER_SIZE);
    c.final();
    out.set(c.getAuthTag(), HEADER_SIZE + len);
    s.advance();
    return out;
  }

  /**
   * Encrypts one message into the four pieces of its frame — encrypted
   * length (2), its tag (16), encrypted body, its tag (16) — without
   * copying the body again; write them in order (e.g. corked, one writev).
   */
  encryptParts(msg: Uint8Array): [Buffer, Buffer, Buffer, Buffer] {
    const len = msg.length;
    if (len > MAX_MESSAGE_SIZE) throw new NoiseError('ERR_NOISE_MESSAGE_TOO_LONG', `message of ${len} bytes exceeds ${MAX_MESSAGE_SIZE}`);
    const s = this.send;
    const lenBuf = Buffer.allocUnsafe(2);
    lenBuf[0] = len >>> 8;
    lenBuf[1] = len & 0xff;
    let c = createCipheriv(AEAD, s.key, s.nonce, AEAD_OPTS);
    const lenCt = c.update(lenBuf);
    c.final();
    const lenTag = c.getAuthTag();
    s.advance();
    c = createCipheriv(AEAD, s.key, s.nonce, AEAD_OPTS);
    const body = c.update(msg);
    c.final();
    const tag = c.getAuthTag();
    s.advance();
    return [lenCt, lenTag, body, tag];
  }

  /** Decrypts an 18-byte frame header; returns the body's plaintext length. */
  decryptLength(header: Uint8Array): number {
    if (this.expectBody) throw new NoiseError('ERR_NOISE_BAD_STATE', 'a message body is due, not a header');
    if (header.length !== HEADER_SIZE)
      throw new NoiseError('ERR_NOISE_BAD_LENGTH', `frame header must be ${HEADER_SIZE} bytes, got ${header.length}`);
    const r = this.recv;
    const d = createDecipheriv(AEAD, r.key, r.nonce, AEAD_OPTS);
    d.setAuthTag(header.subarray(2, HEADER_SIZE));
    const p = d.update(header.subarray(0, 2));
    try {
      d.final();
    } catch {
      throw new NoiseError('ERR_NOISE_BAD_TAG', 'MAC on the length header does not verify');
    }
    r.advance();
    this.expectBody = true;
    return (p[0]! << 8) | p[1]!;
  }

  /** Decrypts a message body with its tag (the length `decryptLength` gave, plus 16). */
  decryptBody(body: Uint8Array): Uint8Array {
    if (!this.expectBody) throw new NoiseError('ERR_NOISE_BAD_STATE', 'a frame header is due, not a body');
    if (body.length < TAG_SIZE)
      throw new NoiseError('ERR_NOISE_BAD_LENGTH', `message body of ${body.length} bytes is shorter than its tag`);
    const r = this.recv;
    const n = body.length - TAG_SIZE;
    const d = createDecipheriv(AEAD, r.key, r.nonce, AEAD_OPTS);
    d.setAuthTag(body.subarray(n));
    const p = d.update(body.subarray(0, n));
    try {
      d.final();
    } catch {
      throw new NoiseError('ERR_NOISE_BAD_TAG', 'MAC on the message body does not verify');
    }
    r.advance();
    this.expectBody = false;
    return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
  }

  /** Decrypts one whole frame (as `encrypt` made it); for tests and callers that already hold a full frame. */
  decrypt(frame: Uint8Array): Uint8Array {
    if (frame.length < HEADER_SIZE)
      throw new NoiseError('ERR_NOISE_BAD_LENGTH', `frame of ${frame.length} bytes is shorter than its header`);
    const n = this.decryptLength(frame.subarray(0, HEADER_SIZE));
    if (frame.length !== HEADER_SIZE + n + TAG_SIZE) {
      throw new NoiseError('ERR_NOISE_BAD_LENGTH', `frame of ${frame.length} bytes does not match its header length ${n}`);
    }
    return this.decryptBody(frame.subarray(HEADER_SIZE));
  }
}
