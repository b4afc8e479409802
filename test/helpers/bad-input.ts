/** Expectations shared by the tests of every input check: a BadInputError, exit code 2, one line. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { BadInputError } from '../../src/utils/errors.js';

/** Awaits `pending` expecting a one-line BadInputError with exit code 2; returns its message. */
export async function badInputMessage(pending: Promise<unknown>): Promise<string> {
  const err = await pending.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BadInputError);
  const e = err as BadInputError;
  expect(e.exitCode).toBe(2);
  expect(e.message).not.toContain('\n');
  return e.message;
}

/**
 * The cache-folder refusals every embedded demo dataset shares (src/core/dataset-paths.ts), before
 * Python starts: `$MKEY_CACHE_DIR` that is a file, and a file where the dataset's folder `dirname`
 * goes under a `cacheDir` option. `what` names the dataset in the message. Sets MKEY_CACHE_DIR (the
 * caller's afterEach restores it).
 */
export async function expectCacheFolderRefusals(
  resolveDemo: (opts: { cacheDir?: string }) => Promise<unknown>,
  tmp: string,
  dirname: string,
  what: string,
): Promise<void> {
  const file = join(tmp, 'cache-file');
  writeFileSync(file, 'x');
  process.env.MKEY_CACHE_DIR = file;
  expect(await badInputMessage(resolveDemo({}))).toBe(`MKEY_CACHE_DIR ${file} is a regular file, not a directory (the ${what} is cached there)`);
  const cache = join(tmp, 'cache-with-file');
  mkdirSync(cache);
  writeFileSync(join(cache, dirname), 'x');
  expect(await badInputMessage(resolveDemo({ cacheDir: cache }))).toBe(
    `${join(cache, dirname)} is a regular file, not a directory (the ${what} is cached there, under cache folder ${cache})`,
  );
}
