/**
 * One writer per output folder: a lock file created atomically (O_EXCL) holding the writer's pid
 * and that process's start time. A lock whose process is gone, or whose pid now belongs to another
 * process (the same pid, another start time: pids are reused), is stale and taken over.
 */
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BadInputError } from './errors.js';

interface LockBody {
  pid: number;
  /** The process's start time in clock ticks after boot (/proc/<pid>/stat field 22); null off Linux. */
  start: string | null;
  command: string;
}

/** Start time of `pid` (Linux), null where /proc is not there or the process is gone. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Whether the process `pid` that started at `start` (processStart's value when it was recorded)
 * still runs: a live pid with another start time is another process that got the number. A null
 * `start` (a record of an older version, or no /proc) lets the pid alone decide.
 */
export function processAlive(pid: number | undefined, start: string | null = null): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: alive, another user's
  }
  if (start === null) return true;
  const now = processStart(pid);
  return now === null || now === start;
}

/**
 * Creates the lock file `path` holding `text`, whole, unless it exists (false then). The text goes
 * to a file of this process's own first and is hard-linked to `path` (link(2) fails on an existing
 * name): a lock created empty and written after (open with O_EXCL, then write) could be read empty
 * by a second writer in between, taken for stale and removed, and both went on writing. Where links
 * are not supported, the O_EXCL create.
 */
function createLockFile(path: string, text: string): boolean {
  const own = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(own, text);
  try {
    linkSync(own, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  } finally {
    rmSync(own, { force: true });
  }
  try {
    writeFileSync(path, text, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function parseLockBody(text: string | undefined): LockBody | undefined {
  try {
    const held = JSON.parse(text ?? '') as LockBody;
    return typeof held?.pid === 'number' ? held : undefined;
  } catch {
    return undefined; // not a lock of this version (createLockFile never shows a partial one): stale
  }
}

/** The lock body in `text` when the process it names still runs. */
function liveLockBody(text: string | undefined): LockBody | undefined {
  const held = parseLockBody(text);
  return held && processAlive(held.pid, held.start ?? null) ? held : undefined;
}

/**
 * Replaces the lock `path`, found stale with the text `stale`, by `text`; false when another
 * command replaced it first. Under a second lock, `<path>.takeover`: two commands that read the
 * same stale lock would otherwise both remove "it", the second removing the first's new lock.
 */
function replaceStaleLock(path: string, stale: string, text: string): boolean {
  const takeover = `${path}.takeover`;
  const mine: LockBody = { pid: process.pid, start: processStart(process.pid), command: 'a lock takeover' };
  for (let waited = 0; !createLockFile(takeover, JSON.stringify(mine)); waited += 10) {
    // its holder killed in the microseconds it holds it: gone for good, so removed
    if (!liveLockBody(readOrUndefined(takeover))) rmSync(takeover, { force: true });
    else if (waited >= 2000) return false;
    else sleepMs(10); // another command is replacing it right now: the caller then reads its lock
  }
  try {
    const now = readOrUndefined(path);
    if (now !== undefined && now !== stale) return false; // replaced since it was read
    rmSync(path, { force: true });
    return createLockFile(path, text);
  } finally {
    rmSync(takeover, { force: true });
  }
}

/**
 * Creates the lock file `path` holding `text` for this process. When a lock is there, `live` says
 * whether its holder still runs: then `{ heldBy }` (its text, for the caller's refusal naming it);
 * a stale one is replaced (replaceStaleLock). `{ heldBy: undefined }` when others kept taking it.
 */
export function takeLockFile(path: string, text: string, live: (held: string) => boolean): { taken: true } | { taken: false; heldBy: string | undefined } {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createLockFile(path, text)) return { taken: true };
    const held = readOrUndefined(path);
    if (held === undefined) continue; // released in between
    if (live(held)) return { taken: false, heldBy: held };
    if (replaceStaleLock(path, held, text)) return { taken: true };
  }
  return { taken: false, heldBy: readOrUndefined(path) };
}

/**
 * Takes `<dir>/<name>` for `command` (e.g. "mkey-det infer"); returns the release function.
 * Refused (exit 2) while another live process holds it, naming that process.
 */
export function acquireFolderLock(dir: string, name: string, command: string, shown = dir): () => void {
  const path = join(dir, name);
  const body: LockBody = { pid: process.pid, start: processStart(process.pid), command };
  const got = takeLockFile(path, JSON.stringify(body) + '\n', (text) => liveLockBody(text) !== undefined);
  if (got.taken) return () => rmSync(path, { force: true });
  const held = parseLockBody(got.heldBy);
  if (held) throw new BadInputError(`${shown} is being written by ${held.command} (pid ${held.pid}); refusing a second writer`, 'wait for it to finish, or choose another folder');
  throw new BadInputError(`${shown}: could not take ${name} (another writer keeps taking it)`);
}

/** An output folder held by this command (lockOutFolder). */
export interface LockedFolder {
  release: () => void;
  /**
   * The command failed: when lockOutFolder made the folder, removes what the command wrote there
   * (whatever is new since it took the folder), releases the lock, and removes the folders it made
   * that are then empty. What another writer had put there before stays, and with it the folder.
   */
  removeIfMade: () => void;
}

/**
 * An output folder for one writer (infer, analyze, report): made when missing, locked with
 * acquireFolderLock, then `recheck` run under the lock: the check made before (nothing of the
 * user's replaced without --force) once more, since a second command started at the same moment
 * saw the folder as this one did, and the first may have written into it since. When the lock or
 * the recheck refuses, the folder is left as it was: removed when made here and still empty, kept
 * when the other writer has written into it (two reports started together into a new folder: the
 * one that made it and lost once removed it with the winner's plots in it). A command that fails
 * under the lock removes only what it wrote (`removeIfMade`): a writer that finished before it
 * may have left files of other names there, or in a sibling folder under the one made here.
 */
export function lockOutFolder(dir: string, name: string, command: string, shown: string, recheck?: () => void): LockedFolder {
  const made = existsSync(dir) ? undefined : mkdirSync(dir, { recursive: true });
  // The folders made here, while empty: one another writer has written into since (the lock's
  // holder, or one that finished first: the recheck's refusal) is that writer's and stays.
  const removeMadeFoldersIfEmpty = (): void => {
    if (!made) return;
    // the folders made here, innermost first (mkdir -p made them from `made` down to `dir`)
    for (let d = resolve(dir); ; d = dirname(d)) {
      try {
        rmdirSync(d);
      } catch {
        return; // not empty: another writer's files
      }
      if (d === resolve(made) || dirname(d) === d) return;
    }
  };
  let unlock: () => void;
  try {
    unlock = acquireFolderLock(dir, name, command, shown);
  } catch (err) {
    removeMadeFoldersIfEmpty();
    throw err;
  }
  // once only: after it, the lock file may be the next writer's
  let held = true;
  const release = (): void => {
    if (held) unlock();
    held = false;
  };
  try {
    recheck?.();
  } catch (err) {
    release();
    removeMadeFoldersIfEmpty();
    throw err;
  }
  // what a folder made here holds as this command starts writing (the lock file among it): not its
  // own (a folder that was there is never removed, so its listing is not needed)
  const before = made ? new Set(readdirSync(dir)) : undefined;
  const removeIfMade = (): void => {
    if (!before) return;
    for (const entry of readdirSync(dir)) if (!before.has(entry)) rmSync(join(dir, entry), { recursive: true, force: true });
    release();
    removeMadeFoldersIfEmpty();
  };
  return { release, removeIfMade };
}
