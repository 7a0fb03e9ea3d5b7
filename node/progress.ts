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

/** Waits for `work`, showing `text` and the seconds elapsed on `stream` if it is an interactive terminal. */
export async function withProgress<T>(stream: ProgressStream | undefined, text: string, work: Promise<T>): Promise<T> {
  if (!interactive(stream)) return work;
  const t0 = Date.now();
  const spinner = yoctoSpinner({ text, stream: stream as NodeJS.WriteStream }).start();
  const tick = setInterval(() => (spinner.text = `${text} (${Math.round((Date.now() - t0) / 1000)} s)`), 1000);
  tick.unref();
  try {
    return await work;
  } finally {
    clearInterval(tick);
    spinner.clear();
    spinner.stop();
  }
}
