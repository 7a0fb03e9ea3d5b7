/**
 * Shared by the tests of embedded nodes (createNode): a bounded poll, and a node as the daemon runs it (a chain of
 * its own in the datadir, the control API on a free loopback port).
 */
import { createNode, type AmpNode } from '../../node/builder.js';
import { createLogger } from '../../node/log.js';

/** Polls `pred` every 20 ms until it holds; throws naming `what` after `ms`. */
export async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A silent node on its own embedded chain under `datadir`, with the control API listening; `api` is its address. */
export async function apiNode(datadir: string): Promise<{ amp: AmpNode; api: string }> {
  const amp = await createNode({
    datadir,
    chain: { mode: 'embedded' },
    logger: createLogger({ level: 'silent' }),
    pingIntervalMs: 0,
    api: { listen: '127.0.0.1:0' },
  });
  return { amp, api: amp.api!.address! };
}
