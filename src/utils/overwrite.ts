/**
 * The one rule for output files: a command replaces a file the user already has only when asked
 * (`--force`), and says so before it starts any work. Used by every command that writes files
 * (config, report, bench, export, analyze); run directories have their own rule (run-dir.ts).
 *
 * A symbolic link at an output name counts as a file there (also one pointing nowhere), and
 * `--force` replaces the link itself, never the file it points to: written through, a plot name
 * linked to a user's own picture elsewhere would have overwritten that picture.
 */
import { lstatSync, readlinkSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { BadInputError } from './errors.js';
import { logger } from './logger.js';
import { displayPath } from './paths.js';

const shown = (p: string): string => JSON.stringify(displayPath(p));

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Throws a one-line `BadInputError` when one of `files` exists and is not a regular file or a
 * symbolic link to one (never replaced, even with `force`), or exists at all and `force` is false. With
 * `force`, a symbolic link among them is removed now (the link; its target is left as it is), so
 * that the command writes a new file of its own under that name.
 */
export function refuseOverwrite(files: readonly string[], opts: { force: boolean; hint?: string }): void {
  const found = files.map((f) => ({ f, st: lstatOrUndefined(f) }));
  for (const { f, st } of found) {
    // a link counts by what it points to here: one to a directory is no file name either
    if (st && !st.isFile() && !(st.isSymbolicLink() && !isDirectory(f))) throw new BadInputError(`${shown(f)} exists and is not a regular file (a directory?); give a file name`);
  }
  const taken = found.filter(({ st }) => st !== undefined);
  if (taken.length === 0) return;
  if (opts.force) {
    for (const { f, st } of taken) {
      if (!st!.isSymbolicLink()) continue;
      const target = readlinkOrUndefined(f);
      unlinkSync(f);
      logger.warn(`--force: ${shown(f)} was a symbolic link${target ? ` to ${JSON.stringify(target)}` : ''}; replaced the link with a file of its own (its target is left as it was)`);
    }
    return;
  }
  const names = taken.map(({ f }) => shown(f));
  const list = names.length > 2 ? `${names.slice(0, 2).join(', ')} and ${names.length - 2} more` : names.join(' and ');
  const one = names.length === 1;
  throw new BadInputError(`${list} already ${one ? 'exists' : 'exist'}; refusing to overwrite ${one ? 'it' : 'them'}`, opts.hint ?? 'add --force or choose another --out');
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false; // a link pointing nowhere
  }
}

function readlinkOrUndefined(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}
