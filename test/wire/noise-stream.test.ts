/**
 * BOLT 8 over streams: handshake and bulk traffic over loopback TCP,
 * fragmented and coalesced delivery through an in-memory pair, back-pressure,
 * and every way a peer can misbehave (garbage, bad MAC, bad version, short
 * act, silence) ending in one typed close reason.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { randomPrivateKey, secp } from '../../wire/crypto.js';
import { AmpnodeError, ArgumentError } from '../../wire/errors.js';
import { initiatorActOne, initiatorActTwo, MAX_MESSAGE_SIZE, NoiseError, responderActOne, type NoiseErrorCode } from '../../wire/noise.js';
import { noiseAccept, noiseConnect, type NoiseConnection, type SetTimer } from '../../wire/noise-stream.js';

// ------------------------------------------------------------------ utilities

const TEST_TIMEOUT_MS = 20_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One end of an in-memory stream pair. Writes are gathered and delivered to
 * the other end on the next turn, re-cut by `cut` (so frames are both split
 * and coalesced across chunk boundaries).
 */
class MemEnd extends Duplex {
  peer!: MemEnd;
  private pending: Buffer[] = [];
  private scheduled = false;
  constructor(private readonly cut: (left: number) => number) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pending.push(chunk);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    cb();
  }
  private flush(): void {
    this.scheduled = false;
    let all = Buffer.concat(this.pending);
    this.pending = [];
    while (all.length > 0 && !this.peer.destroyed) {
      const n = Math.max(1, Math.min(all.length, this.cut(all.length)));
      this.peer.push(all.subarray(0, n));
      all = all.subarray(n);
    }
  }
  override _final(cb: (err?: Error | null) => void): void {
    setImmediate(() => {
      this.flush();
      if (!this.peer.destroyed) this.peer.push(null);
      cb();
    });
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    setImmediate(() => {
      if (!this.peer.destroyed) this.peer.destroy();
    });
    cb(err);
  }
}

function memPair(cut: (left: number) => number): [MemEnd, MemEnd] {
  const a = new MemEnd(cut);
  const b = new MemEnd(cut);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

function keys(): { priv: Uint8Array; pub: Uint8Array } {
  const priv = randomPrivateKey();
  return { priv, pub: secp.publicKeyCreate(priv) };
}

async function expectNoiseRejection(p: Promise<unknown>, codes: NoiseErrorCode[], act?: number): Promise<NoiseError> {
  const err = await withTimeout(
    p.then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    ),
    5000,
    'rejection',
  );
  assert.ok(err instanceof NoiseError, `expected NoiseError, got ${String(err)}`);
  assert.ok(codes.includes(err.code), `expected one of ${codes.join(',')}, got ${err.code}: ${err.message}`);
  if (act !== undefined) assert.equal(err.act, act);
  return err;
}

function closeReason(conn: NoiseConnection): Promise<AmpnodeError | undefined> {
  return withTimeout(
    once(conn, 'close').then(([r]) => r as AmpnodeError | undefined),
    5000,
    'close',
  );
}

/** Connected pair over loopback TCP. */
async function tcpPair(
  server: net.Server,
  serverKey: { priv: Uint8Array; pub: Uint8Array },
  clientKey: { priv: Uint8Array },
): Promise<[NoiseConnection, NoiseConnection]> {
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection').then(([s]) => noiseAccept(s as net.Socket, { localStaticPriv: serverKey.priv }));
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  const client = noiseConnect(sock, { localStaticPriv: clientKey.priv, remoteStaticPub: serverKey.pub });
  return withTimeout(Promise.all([client, accepted]), 5000, 'handshake');
}

/** Sends all messages, honouring back-pressure. */
async function sendAll(conn: NoiseConnection, msgs: Uint8Array[]): Promise<number> {
  let blocked = 0;
  for (const m of msgs) {
    if (!conn.send(m)) {
      blocked++;
      await withTimeout(conn.drained(), 10_000, 'drain');
    }
  }
  return blocked;
}

function receive(conn: NoiseConnection, count: number): Promise<Uint8Array[]> {
  return withTimeout(
    new Promise<Uint8Array[]>((resolve, reject) => {
      const got: Uint8Array[] = [];
      conn.on('message', (m) => {
        got.push(m);
        if (got.length === count) resolve(got);
      });
      conn.on('close', (r) => reject(r ?? new Error('closed')));
    }),
    TEST_TIMEOUT_MS,
    `${count} messages`,
  );
}

const digest = (m: Uint8Array): string => createHash('sha256').update(m).digest('hex');

// ------------------------------------------------------------------ loopback TCP

describe('noise over loopback TCP', () => {
  let server: net.Server;
  const serverKey = keys();
  const clientKey = keys();

  before(async () => {
    server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('handshake exposes both static keys', async () => {
    const [c, s] = await tcpPair(server, serverKey, clientKey);
    assert.deepEqual(c.remoteStaticPub, serverKey.pub);
    assert.deepEqual(s.remoteStaticPub, secp.publicKeyCreate(clientKey.priv));
    assert.deepEqual(c.localStaticPub, s.remoteStaticPub);
    assert.deepEqual(s.localStaticPub, serverKey.pub);
    const closed = closeReason(s);
    const localClosed = closeReason(c);
    c.close();
    assert.equal(await localClosed, undefined);
    const r = await closed;
    assert.ok(r instanceof NoiseError && r.code === 'ERR_NOISE_CLOSED');
    assert.throws(
      () => c.send(Uint8Array.of(1)),
      (e: unknown) => e instanceof NoiseError && e.code === 'ERR_NOISE_CLOSED',
    );
    await assert.rejects(c.drained(), (e: unknown) => e instanceof NoiseError && e.code === 'ERR_NOISE_CLOSED');
  });

  it('2000 messages of random sizes 0..65535 each way arrive intact and in order', async () => {
    const [c, s] = await tcpPair(server, serverKey, clientKey);
    const rnd = prng(42);
    const make = (): Uint8Array[] =>
      Array.from({ length: 2000 }, (_, i) => {
        const size = i === 0 ? 0 : i === 1 ? MAX_MESSAGE_SIZE : Math.floor(rnd() * (MAX_MESSAGE_SIZE + 1));
        return new Uint8Array(randomBytes(size));
      });
    const up = make();
    const down = make();
    const upDigests = up.map(digest);
    const downDigests = down.map(digest);
    const gotUp = receive(s, up.length);
    const gotDown = receive(c, down.length);
    await Promise.all([sendAll(c, up), sendAll(s, down)]);
    const [u, d] = await Promise.all([gotUp, gotDown]);
    assert.deepEqual(u.map(digest), upDigests);
    assert.deepEqual(d.map(digest), downDigests);
    c.close();
    await closeReason(s);
  });

  it('send() reports back-pressure and drained() resolves once the reader catches up', async () => {
    const [c, s] = await tcpPair(server, serverKey, clientKey);
    // nobody listens on s yet, so it does not read: the client's buffers fill
    const msg = new Uint8Array(MAX_MESSAGE_SIZE).fill(7);
    let sent = 0;
    let full = false;
    while (!full && sent < 2000) {
      full = !c.send(msg);
      sent++;
    }
    assert.ok(full, 'send() returned false before 2000 × 64 KiB were queued');
    const got = receive(s, sent);
    await withTimeout(c.drained(), 10_000, 'drain');
    assert.equal((await got).length, sent);
    c.close();
    await closeReason(s);
  });

  it('a message over 65535 bytes is refused with a typed error; the connection stays usable', async () => {
    const [c, s] = await tcpPair(server, serverKey, clientKey);
    assert.throws(
      () => c.send(new Uint8Array(MAX_MESSAGE_SIZE + 1)),
      (e: unknown) => e instanceof NoiseError && e.code === 'ERR_NOISE_MESSAGE_TOO_LONG',
    );
    const got = receive(s, 1);
    c.send(Uint8Array.of(1, 2, 3));
    assert.deepEqual((await got)[0], Uint8Array.of(1, 2, 3));
    c.close();
    await closeReason(s);
  });

  it('a silent peer: both sides time out with ERR_NOISE_HANDSHAKE_TIMEOUT and drop the socket', async () => {
    const port = (server.address() as net.AddressInfo).port;
    // responder side: the client connects and says nothing
    const acc = once(server, 'connection').then(([s]) =>
      noiseAccept(s as net.Socket, { localStaticPriv: serverKey.priv, handshakeTimeoutMs: 200 }),
    );
    const silent = net.connect(port, '127.0.0.1');
    const silentClosed = once(silent, 'close');
    await expectNoiseRejection(acc, ['ERR_NOISE_HANDSHAKE_TIMEOUT']);
    await withTimeout(silentClosed, 5000, 'socket close');

    // initiator side: the server accepts and says nothing
    const quiet = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.resume(); // read (and ignore) so that the client's hang-up is seen
    });
    quiet.listen(0, '127.0.0.1');
    await once(quiet, 'listening');
    const sock = net.connect((quiet.address() as net.AddressInfo).port, '127.0.0.1');
    await once(sock, 'connect');
    const conn = noiseConnect(sock, { localStaticPriv: clientKey.priv, remoteStaticPub: serverKey.pub, handshakeTimeoutMs: 200 });
    await expectNoiseRejection(conn, ['ERR_NOISE_HANDSHAKE_TIMEOUT']);
    assert.ok(sock.destroyed);
    await new Promise<void>((r) => quiet.close(() => r()));
  });

  it('an act 1 with a wrong version is refused (ERR_NOISE_BAD_VERSION, act 1)', async () => {
    const port = (server.address() as net.AddressInfo).port;
    const acc = once(server, 'connection').then(([s]) => noiseAccept(s as net.Socket, { localStaticPriv: serverKey.priv }));
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => {});
    const act = initiatorActOne({ localStaticPriv: clientKey.priv, remoteStaticPub: serverKey.pub }).actOne;
    act[0] = 1;
    raw.write(act);
    await expectNoiseRejection(acc, ['ERR_NOISE_BAD_VERSION'], 1);
    await withTimeout(once(raw, 'close'), 5000, 'raw close');
  });

  it('garbage after the handshake and a bad MAC close with ERR_NOISE_BAD_TAG', async () => {
    const port = (server.address() as net.AddressInfo).port;
    for (const mode of ['garbage', 'bad-body-mac'] as const) {
      const acc = once(server, 'connection').then(([s]) => noiseAccept(s as net.Socket, { localStaticPriv: serverKey.priv }));
      const raw = net.connect(port, '127.0.0.1');
      raw.on('error', () => {});
      // do the initiator's half by hand so we can then misbehave
      const one = initiatorActOne({ localStaticPriv: clientKey.priv, remoteStaticPub: serverKey.pub });
      raw.write(one.actOne);
      const [actTwo] = (await withTimeout(once(raw, 'data'), 5000, 'act 2')) as [Buffer];
      const done = initiatorActTwo(one.state, actTwo);
      raw.write(done.actThree);
      const conn = await withTimeout(acc, 5000, 'accept');
      const messages: Uint8Array[] = [];
      conn.on('message', (m) => messages.push(m));
      const closed = closeReason(conn);
      raw.write(done.transport.encrypt(Uint8Array.of(0, 18, 1))); // one good message first
      if (mode === 'garbage') {
        raw.write(randomBytes(100));
      } else {
        const f = done.transport.encrypt(Uint8Array.of(5, 5, 5, 5));
        f[f.length - 1]! ^= 0x80;
        raw.write(f);
      }
      const r = await closed;
      assert.ok(r instanceof NoiseError, String(r));
      assert.equal(r.code, 'ERR_NOISE_BAD_TAG');
      assert.deepEqual(messages, [Uint8Array.of(0, 18, 1)]);
      assert.equal(conn.closeReason, r);
      await withTimeout(once(raw, 'close'), 5000, 'raw close');
    }
  });
});

// ------------------------------------------------------------------ in-memory pairs

async function memHandshake(cut: (left: number) => number): Promise<[NoiseConnection, NoiseConnection]> {
  const serverKey = keys();
  const [a, b] = memPair(cut);
  return withTimeout(
    Promise.all([
      noiseConnect(a, { localStaticPriv: randomPrivateKey(), remoteStaticPub: serverKey.pub }),
      noiseAccept(b, { localStaticPriv: serverKey.priv }),
    ]),
    5000,
    'handshake',
  );
}

describe('noise framing over fragmented streams', () => {
  it('one byte at a time', async () => {
    const [c, s] = await memHandshake(() => 1);
    const rnd = prng(7);
    const msgs = Array.from({ length: 60 }, (_, i) => new Uint8Array(randomBytes(i === 0 ? 0 : Math.floor(rnd() * 1500))));
    msgs.push(new Uint8Array(randomBytes(MAX_MESSAGE_SIZE)));
    const got = receive(s, msgs.length);
    await sendAll(c, msgs);
    assert.deepEqual(await got, msgs);
    c.close();
    await closeReason(s);
  });

  it('random chunking, many messages per chunk, both directions', async () => {
    const rnd = prng(99);
    const [c, s] = await memHandshake((left) => 1 + Math.floor(rnd() * Math.min(left, 70_000)));
    const make = (n: number): Uint8Array[] =>
      Array.from({ length: n }, () => new Uint8Array(randomBytes(Math.floor(rnd() * (rnd() < 0.9 ? 64 : 65536)))));
    const up = make(800);
    const down = make(800);
    const gotUp = receive(s, up.length);
    const gotDown = receive(c, down.length);
    await Promise.all([sendAll(c, up), sendAll(s, down)]);
    assert.deepEqual(await gotUp, up);
    assert.deepEqual(await gotDown, down);
    c.close();
    await closeReason(s);
  });

  it('messages sent right behind act 3 wait for the first listener', async () => {
    const serverKey = keys();
    const [a, b] = memPair((left) => left); // act 3 and the first messages arrive in one chunk
    const accepting = noiseAccept(b, { localStaticPriv: serverKey.priv });
    const c = await withTimeout(noiseConnect(a, { localStaticPriv: randomPrivateKey(), remoteStaticPub: serverKey.pub }), 5000, 'connect');
    c.send(Uint8Array.of(1));
    c.send(Uint8Array.of(2));
    const s = await withTimeout(accepting, 5000, 'accept');
    await new Promise((r) => setTimeout(r, 20)); // a listener attached late still gets everything
    const got = await receive(s, 2);
    assert.deepEqual(got, [Uint8Array.of(1), Uint8Array.of(2)]);
    // pause/resume and a listener removed mid-stream lose nothing either
    s.removeAllListeners('message');
    c.send(Uint8Array.of(3));
    await new Promise((r) => setTimeout(r, 20));
    s.pause();
    const later: Uint8Array[] = [];
    s.on('message', (m) => later.push(m));
    c.send(Uint8Array.of(4));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(later.length, 0);
    s.resume();
    await withTimeout(
      new Promise<void>((r) => {
        const check = (): void => (later.length === 2 ? r() : void setTimeout(check, 5));
        check();
      }),
      5000,
      'resume',
    );
    assert.deepEqual(later, [Uint8Array.of(3), Uint8Array.of(4)]);
    c.close();
    await closeReason(s);
  });

  it('a peer that hangs up mid-act gives ERR_NOISE_BAD_LENGTH; before any byte, ERR_NOISE_CLOSED', async () => {
    const serverKey = keys();
    {
      const [a, b] = memPair((l) => l);
      const acc = noiseAccept(b, { localStaticPriv: serverKey.priv });
      const act = initiatorActOne({ localStaticPriv: randomPrivateKey(), remoteStaticPub: serverKey.pub }).actOne;
      a.end(act.subarray(0, 49));
      await expectNoiseRejection(acc, ['ERR_NOISE_BAD_LENGTH'], 1);
    }
    {
      const [a, b] = memPair((l) => l);
      const acc = noiseAccept(b, { localStaticPriv: serverKey.priv });
      a.end();
      await expectNoiseRejection(acc, ['ERR_NOISE_CLOSED'], 1);
    }
    {
      // the initiator whose responder answers with a short act 2
      const [a, b] = memPair((l) => l);
      const conn = noiseConnect(a, { localStaticPriv: randomPrivateKey(), remoteStaticPub: serverKey.pub });
      const [act1] = (await once(b, 'data')) as [Buffer];
      const two = responderActOne({ localStaticPriv: serverKey.priv }, act1).actTwo;
      b.end(two.subarray(0, 30));
      await expectNoiseRejection(conn, ['ERR_NOISE_BAD_LENGTH'], 2);
    }
  });

  it('the handshake timer is injectable', async () => {
    let fire: (() => void) | undefined;
    let cancelled = 0;
    const setTimer: SetTimer = (ms, fn) => {
      assert.equal(ms, 1234);
      fire = fn;
      return () => void cancelled++;
    };
    const serverKey = keys();
    const [, b] = memPair((l) => l);
    const acc = noiseAccept(b, { localStaticPriv: serverKey.priv, handshakeTimeoutMs: 1234, setTimer });
    assert.ok(fire);
    fire();
    await expectNoiseRejection(acc, ['ERR_NOISE_HANDSHAKE_TIMEOUT']);
    assert.ok(b.destroyed);
    // a completed handshake cancels its timer
    const [x, y] = memPair((l) => l);
    cancelled = 0;
    await withTimeout(
      Promise.all([
        noiseConnect(x, { localStaticPriv: randomPrivateKey(), remoteStaticPub: serverKey.pub, handshakeTimeoutMs: 1234, setTimer }),
        noiseAccept(y, { localStaticPriv: serverKey.priv, handshakeTimeoutMs: 1234, setTimer }),
      ]),
      5000,
      'handshake',
    );
    assert.equal(cancelled, 2);
  });

  it('bad keys are argument errors; an already-destroyed socket is ERR_NOISE_CLOSED', async () => {
    const [a, b] = memPair((l) => l);
    await assert.rejects(noiseAccept(b, { localStaticPriv: new Uint8Array(32) }), ArgumentError);
    await assert.rejects(noiseConnect(a, { localStaticPriv: randomPrivateKey(), remoteStaticPub: new Uint8Array(33) }), ArgumentError);
    a.destroy();
    await expectNoiseRejection(noiseConnect(a, { localStaticPriv: randomPrivateKey(), remoteStaticPub: keys().pub }), ['ERR_NOISE_CLOSED']);
  });

  it('property: random bytes from a peer only ever end in a NoiseError', async () => {
    const serverKey = keys();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 120 }), { maxLength: 4 }),
        fc.boolean(),
        async (chunks, afterHandshake) => {
          const [a, b] = memPair((l) => l);
          if (!afterHandshake) {
            const acc = noiseAccept(b, { localStaticPriv: serverKey.priv });
            for (const c of chunks) a.write(c);
            a.end();
            await expectNoiseRejection(acc, [
              'ERR_NOISE_BAD_LENGTH',
              'ERR_NOISE_BAD_VERSION',
              'ERR_NOISE_BAD_PUBKEY',
              'ERR_NOISE_BAD_TAG',
              'ERR_NOISE_CLOSED',
            ]);
            return;
          }
          const acc = noiseAccept(b, { localStaticPriv: serverKey.priv });
          const one = initiatorActOne({ localStaticPriv: randomPrivateKey(), remoteStaticPub: serverKey.pub });
          a.write(one.actOne);
          const [act2] = (await withTimeout(once(a, 'data'), 5000, 'act 2')) as [Buffer];
          a.write(initiatorActTwo(one.state, act2).actThree);
          const conn = await withTimeout(acc, 5000, 'accept');
          conn.on('message', () => assert.fail('random bytes decrypted to a message'));
          const closed = closeReason(conn);
          for (const c of chunks) a.write(c);
          a.end();
          const r = await closed;
          assert.ok(r instanceof NoiseError);
          assert.ok(['ERR_NOISE_BAD_TAG', 'ERR_NOISE_CLOSED'].includes(r.code), r.code);
        },
      ),
      { numRuns: 60 },
    );
  });
});
