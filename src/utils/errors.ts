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

/** The `error.code` of the JSON error object: the exit code's name, stable for scripts. */
export const ERROR_CODES: Record<ExitCodeValue, string> = {
  0: 'ok',
  1: 'failure',
  2: 'bad_input',
  3: 'environment',
  130: 'interrupted',
};

/** What every command prints on stdout under `--json` when it fails (one line, then it exits with `exitCode`). */
export interface JsonError {
  ok: false;
  error: {
    /** `bad_input`, `failure`, `environment` or `interrupted`: the name of `exitCode`. */
    code: string;
    exitCode: ExitCodeValue;
    /** One line naming the bad value and what is accepted (or what failed). */
    message: string;
    hint?: string;
    /** e.g. a Python traceback. */
    detail?: string;
    /** Structured facts of the failure (e.g. export's parity checks). */
    data?: Record<string, unknown>;
  };
}

export class MkeyError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint: string | undefined;
  /** Extra detail (e.g. a Python traceback) shown only with --verbose or in --json output. */
  readonly detail: string | undefined;
  /** Structured facts for `--json` (`error.data`); text output shows only the message. */
  readonly data: Record<string, unknown> | undefined;

  constructor(message: string, opts: { exitCode?: ExitCodeValue; hint?: string; detail?: string; data?: Record<string, unknown> } = {}) {
    super(message);
    this.name = 'MkeyError';
    this.exitCode = opts.exitCode ?? ExitCode.failure;
    this.hint = opts.hint;
    this.detail = opts.detail;
    this.data = opts.data;
  }
}

/** A value the user typed was rejected: names the value and what is accepted. */
export class BadInputError extends MkeyError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.badInput, hint });
    this.name = 'BadInputError';
  }
}

/** `err` as an MkeyError (anything else is an unexpected failure, exit 1, its stack as detail). */
function asMkeyError(err: unknown): MkeyError {
  if (err instanceof MkeyError) return err;
  return new MkeyError(err instanceof Error ? err.message || String(err.stack ?? err) : String(err), {
    detail: err instanceof Error ? err.stack : undefined,
  });
}

/** The JSON error object of `err` (see {@link JsonError}); undefined fields are left out. */
export function jsonError(err: unknown): JsonError {
  const e = asMkeyError(err);
  return {
    ok: false,
    error: {
      code: ERROR_CODES[e.exitCode],
      exitCode: e.exitCode,
      message: e.message,
      ...(e.hint !== undefined ? { hint: e.hint } : {}),
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
      ...(e.data !== undefined ? { data: e.data } : {}),
    },
  };
}

/**
 * The one error handler of every command: with `json`, the {@link JsonError} object on stdout;
 * else one line (and an optional hint) on stderr. Then exits with the error's code.
 */
export function handleError(err: unknown, opts: { json?: boolean; verbose?: boolean } = {}): never {
  const e = asMkeyError(err);
  if (opts.json) {
    process.stdout.write(JSON.stringify(jsonError(e)) + '\n');
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
