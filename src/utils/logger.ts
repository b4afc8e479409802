/**
 * Human-facing messages go to stderr so that stdout stays clean for --json output and for
 * results (tables, file paths) that scripts pipe on.
 */
import { errColors as pc } from './colors.js';

const write = (line: string): void => {
  process.stderr.write(line + '\n');
};

export const logger = {
  info: (msg: string): void => write(msg),
  plain: (msg: string): void => write(msg),
  success: (msg: string): void => write(pc.green(msg)),
  warn: (msg: string): void => write(pc.yellow(`warning: ${msg}`)),
  error: (msg: string): void => write(pc.red(`error: ${msg}`)),
  hint: (msg: string): void => write(pc.dim(`hint: ${msg}`)),
  step: (msg: string): void => write(pc.cyan(`> ${msg}`)),
};

/** Writes a result to stdout: JSON for machines, text for people. */
export function emit(result: unknown, opts: { json?: boolean }, text: () => string): void {
  if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(text() + '\n');
}
