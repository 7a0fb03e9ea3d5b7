/**
 * The wallet seed on disk: 32 random bytes as hex in a file created with mode
 * 0600 (never rewritten once created). Everything else the wallet knows is
 * derived from it (BIP32) or kept in the store.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hmacSha256 } from '../../wire/crypto.js';
import { WalletError } from './errors.js';

export const SEED_LENGTH = 32;

const CHANNEL_SEED_LABEL = new TextEncoder().encode('ampnode/channel-seed');

/** The seed of every channel key, derived from the wallet seed (so one file backs every key the node holds besides its identity). */
export function channelSeedOf(walletSeed: Uint8Array): Uint8Array {
  return hmacSha256(walletSeed, CHANNEL_SEED_LABEL);
}

/** Read the seed at `path`, or create one there if the file does not exist. */
export async function loadOrCreateSeed(path: string): Promise<{ seed: Uint8Array; created: boolean }> {
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new WalletError('ERR_SEED', `cannot read seed file: ${(e as Error).message}`, { cause: e });
    }
  }
  if (text !== undefined) return { seed: parseSeed(text), created: false };
  const seed = new Uint8Array(randomBytes(SEED_LENGTH));
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    // 'wx': never overwrite a seed that appeared meanwhile.
    await writeFile(path, `${Buffer.from(seed).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSeed(path);
    throw new WalletError('ERR_SEED', `cannot write seed file: ${(e as Error).message}`, { cause: e });
  }
  return { seed, created: true };
}

function parseSeed(text: string): Uint8Array {
  const hex = text.trim();
  if (!/^[0-9a-f]+$/i.test(hex) || hex.length !== SEED_LENGTH * 2) {
    throw new WalletError('ERR_SEED', `seed file must hold ${SEED_LENGTH} bytes as hex`);
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
