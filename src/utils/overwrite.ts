/**
 * The one rule for output files: a command replaces a file the user already has only when asked
 * (`--force`), and says so before it starts any work. Used by every command that writes files
 * (config, report, bench, export, analyze); run directories have their own rule (run-dir.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { BadInputError } from './errors.js';
import { displayPath } from './paths.js';

const shown = (p: string): string => JSON.stringify(displayPath(p));

/**
 * Throws a one-line `BadInputError` when one of `files` exists and is not a regular file (never
 * replaced, even with `force`), or exists at all and `force` is false.
 */
export function refuseOverwrite(files: readonly string[], opts: { force: boolean; hint?: string }): void {
  for (const f of files) {
    if (existsSync(f) && !statSync(f).isFile()) throw new BadInputError(`${shown(f)} exists and is not a regular file (a directory?); give a file name`);
  }
  if (opts.force) return;
  const taken = files.filter((f) => existsSync(f)).map(shown);
  if (taken.length === 0) return;
  const list = taken.length > 2 ? `${taken.slice(0, 2).join(', ')} and ${taken.length - 2} more` : taken.join(' and ');
  const one = taken.length === 1;
  throw new BadInputError(`${list} already ${one ? 'exists' : 'exist'}; refusing to overwrite ${one ? 'it' : 'them'}`, opts.hint ?? 'add --force or choose another --out');
}
