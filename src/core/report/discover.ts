/** Finds run directories under the paths the user gave. */
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';

/** mmengine's per-launch folder name: `time.strftime('%Y%m%d_%H%M%S')`. */
export const SESSION_DIR_RE = /^\d{8}_\d{6}$/;

const ACCEPTED =
  'give a run directory (holding mkey-run.json, or a config .py with <timestamp>/ log folders) or a folder that holds runs';

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Timestamp folders of a run, sorted in time order. */
export function sessionDirs(runDir: string): string[] {
  return listDir(runDir)
    .filter((n) => SESSION_DIR_RE.test(n) && isDir(join(runDir, n)))
    .sort();
}

/** A run directory holds mkey-det's own files, or mmengine's timestamp folders. */
export function isRunDir(dir: string): boolean {
  if (existsSync(join(dir, 'mkey-run.json')) || existsSync(join(dir, 'mkey-events.jsonl'))) return true;
  return sessionDirs(dir).length > 0;
}

const SKIP = new Set(['node_modules', '__pycache__', 'vis_data']);

function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Each folder is visited once by its real path: a symlink loop or a second link to a run cannot
 * count the same run twice (which would skew a seed group's mean and std). */
function walk(dir: string, depth: number, out: string[], seen: Set<string>): void {
  const real = realPath(dir);
  if (seen.has(real)) return;
  seen.add(real);
  if (isRunDir(dir)) {
    out.push(dir);
    return;
  }
  if (depth === 0) return;
  for (const name of listDir(dir).sort()) {
    if (name.startsWith('.') || SKIP.has(name)) continue;
    const child = join(dir, name);
    if (isDir(child)) walk(child, depth - 1, out, seen);
  }
}

/**
 * Run directories named by `paths` (each a run or a folder of runs, searched up to `maxDepth`
 * levels). Throws BadInputError (exit 2) for a missing path, a file, or a path without runs.
 */
export function discoverRuns(paths: string[], maxDepth = 4): string[] {
  if (paths.length === 0) throw new BadInputError('no path given: ' + ACCEPTED);
  const found: string[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    const abs = resolve(p);
    if (!existsSync(abs)) throw new BadInputError(`no such path ${JSON.stringify(p)}: ${ACCEPTED}`);
    if (!isDir(abs)) throw new BadInputError(`${JSON.stringify(p)} is a file, not a directory: ${ACCEPTED}`);
    const before = found.length;
    const known = seen.has(realPath(abs));
    walk(abs, maxDepth, found, seen);
    if (found.length === before && !known) throw new BadInputError(`no runs found in ${JSON.stringify(p)}: ${ACCEPTED}`);
  }
  return [...new Set(found)];
}
