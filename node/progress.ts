/**
 * Progress on a terminal while something long runs (a payment, a channel opening): a spinner with the elapsed time
 * (yocto-spinner) when the stream is an interactive terminal, nothing at all otherwise, so that scripts reading
 * stdout and stderr see exactly what they saw before. The spinner is cleared when the wait ends, whichever way.
 */
import yoctoSpinner from 'yocto-spinner';

export interface ProgressStream {
  isTTY?: boolean;
  write(chunk: string): boolean;
}

/** An interactive terminal: a TTY, not `TERM=dumb`, not under CI. */
export function interactive(stream: ProgressStream | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream !== undefined && stream.isTTY === true && env['TERM'] !== 'dumb' && !('CI' in env);
}

/**
 * Waits for `work`, showing `text` and the seconds elapsed on `stream` if it is an interactive terminal. With `done`,
 * the spinner ends in a success line `done(result)` (or `text: failed`) that stays; without, it is cleared.
 */
export async function withProgress<T>(
  stream: ProgressStream | undefined,
  text: string,
  work: Promise<T>,
  done?: (result: T) => string,
): Promise<T> {
  if (!interactive(stream)) return work;
  const t0 = Date.now();
  const spinner = yoctoSpinner({ text, stream: stream as NodeJS.WriteStream }).start();
  const tick = setInterval(() => (spinner.text = `${text} (${Math.round((Date.now() - t0) / 1000)} s)`), 1000);
  tick.unref();
  let result: { value: T } | undefined;
  try {
    result = { value: await work };
    return result.value;
  } finally {
    clearInterval(tick);
    if (done === undefined) {
      spinner.clear();
      spinner.stop();
    } else if (result !== undefined) spinner.success(done(result.value));
    else spinner.error(`${text}: failed`);
  }
}
