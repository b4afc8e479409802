/**
 * One error type for everything the user should read as a single line, and one handler that
 * turns any thrown value into that line plus an exit code scripts can trust.
 */
import { logger } from './logger.js';

/** Exit codes of every command. */
export const ExitCode = {
  ok: 0,
  /** The work itself failed (training diverged, parity check failed, Python raised). */
  failure: 1,
  /** The user's input was rejected before any work started. */
  badInput: 2,
  /** The environment is not set up (no venv, missing ops, wrong versions). */
  environment: 3,
  /** Stopped by Ctrl-C / SIGTERM (128 + SIGINT). */
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class MkeyError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint: string | undefined;
  /** Extra detail (e.g. a Python traceback) shown only with --verbose or in --json output. */
  readonly detail: string | undefined;

  constructor(message: string, opts: { exitCode?: ExitCodeValue; hint?: string; detail?: string } = {}) {
    super(message);
    this.name = 'MkeyError';
    this.exitCode = opts.exitCode ?? ExitCode.failure;
    this.hint = opts.hint;
    this.detail = opts.detail;
  }
}

/** A value the user typed was rejected: names the value and what is accepted. */
export class BadInputError extends MkeyError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.badInput, hint });
    this.name = 'BadInputError';
  }
}

/** Prints one line (and an optional hint) for `err`, then exits with its code. */
export function handleError(err: unknown, opts: { json?: boolean; verbose?: boolean } = {}): never {
  const e =
    err instanceof MkeyError
      ? err
      : new MkeyError(err instanceof Error ? err.message || String(err.stack ?? err) : String(err), {
          detail: err instanceof Error ? err.stack : undefined,
        });
  if (opts.json) {
    process.stdout.write(
      JSON.stringify({ ok: false, error: { message: e.message, hint: e.hint, exitCode: e.exitCode, detail: e.detail } }) + '\n',
    );
  } else {
    logger.error(e.message.split('\n')[0] ?? e.message);
    if (e.hint) logger.hint(e.hint);
    if (opts.verbose && e.detail) logger.plain(e.detail);
  }
  process.exit(e.exitCode);
}

/**
 * A user value as it appears in a one-line message: the first `max` characters, then
 * `… (N characters)`, so that a 100 KB option value or annotation field does not flood the
 * terminal (or a log collector's line limit) and the error line stays readable.
 */
export function abbreviate(text: string, max = 80): string {
  if (text.length <= max) return text;
  let head = text.slice(0, max);
  // do not cut a surrogate pair in half (it would print as a replacement character)
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  return `${head}… (${text.length} characters)`;
}

/**
 * A user value JSON-quoted for a message (so spaces, quotes and newlines stay visible on one line),
 * shortened like `abbreviate`: `"abc…" (100000 characters)`.
 */
export function quoteValue(value: unknown, max = 80): string {
  if (typeof value === 'string') {
    if (value.length <= max) return JSON.stringify(value);
    const short = abbreviate(value, max);
    const cut = short.lastIndexOf('… (');
    return `${JSON.stringify(short.slice(0, cut + 1))}${short.slice(cut + 1)}`;
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return abbreviate(text, max);
}
