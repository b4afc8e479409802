/**
 * A run directory (`--work-dir`): its status file, its events file, and the rule that a directory
 * holding a run is never overwritten without `--resume` or `--force`.
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { logger } from '../../utils/logger.js';
import { processAlive, processStart, takeLockFile } from '../../utils/folder-lock.js';
import { describePath } from '../dataset.js';
import { EVENTS_FILE } from './events.js';

export const RUN_FILE = 'mkey-run.json';
export const CONFIG_FILE = 'config.py';
/** Held while a run is live: who supervises it and which process trains (see `acquireRunLock`). */
export const LOCK_FILE = 'mkey-run.lock';

/** `lost`: the file says `running` but no process of the run is alive (its supervisor was killed). */
export type RunStatus = 'running' | 'completed' | 'failed' | 'interrupted' | 'lost';

export interface RunRecord {
  status: RunStatus;
  experiment: Record<string, unknown>;
  command: string[];
  started: string;
  finished?: string;
  message?: string;
  /** Final metrics (mmengine names, 0-1 scale) when the run evaluated. */
  metrics?: Record<string, number | null>;
  pid?: number;
  /**
   * The CLI that supervises the run, its start time and host: with the lock gone (its release ran,
   * the status write after it failed) they still tell a `running` record whose supervisor died.
   */
  supervisor?: { pid: number; start: string | null; host: string };
  /** sha256 of the config.py as the run left it (mmengine's dump of what it ran): a config edited afterwards is told apart. */
  configSha256?: string;
}

/** sha256 (hex) of a file's bytes. */
export function fileSha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * For commands that build a model from a run's config.py (`infer`, `analyze`, `test`): a line
 * when that file is not the one the run recorded at launch. The file is Python and will run; an
 * edit after training (or a file swapped in a folder someone sent) should not pass unnoticed.
 * Undefined when it matches, or when there is nothing to compare (no record, no digest).
 */
export function configChangedWarning(runOrCheckpoint: string): string | undefined {
  let dir = resolve(runOrCheckpoint);
  if (existsSync(dir) && statSync(dir).isFile()) dir = dirname(dir);
  const recorded = readRunRecord(dir)?.configSha256;
  const config = join(dir, CONFIG_FILE);
  if (!recorded || !existsSync(config) || !statSync(config).isFile()) return undefined;
  if (fileSha256(config) === recorded) return undefined;
  return `${config} is not the config this run recorded at launch (its sha256 differs): it is Python that runs now; check what changed before trusting the result`;
}

export function readRunRecord(workDir: string): RunRecord | undefined {
  const p = join(workDir, RUN_FILE);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as RunRecord;
  } catch {
    return undefined;
  }
}

/** Writes the status file atomically (write then rename) so a reader never sees half a file. */
export function writeRunRecord(workDir: string, record: RunRecord): void {
  const p = join(workDir, RUN_FILE);
  writeFileSync(p + '.tmp', JSON.stringify(record, null, 2) + '\n');
  renameSync(p + '.tmp', p);
}

/** Whether `dir` already holds (part of) a run: ours or a plain MMDetection one. */
export function holdsRun(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((f) => f === RUN_FILE || f === EVENTS_FILE || f === LOCK_FILE || f === 'last_checkpoint' || f.endsWith('.pth'));
}

export interface RunLock {
  /** The mkey-det CLI that supervises the run. */
  supervisor: number;
  /** The process that trains (MMDetection's tools/train.py, torchrun or srun), once started. */
  trainer?: number;
  /** Start times of those processes (src/utils/folder-lock.ts `processStart`): a pid reused by another process is no holder. */
  supervisorStart?: string | null;
  trainerStart?: string | null;
  host: string;
  started: string;
}

export function readRunLock(dir: string): RunLock | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, LOCK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  return parseRunLock(text);
}

function parseRunLock(text: string | undefined): RunLock | undefined {
  try {
    return JSON.parse(text ?? '') as RunLock;
  } catch {
    return undefined;
  }
}

/**
 * The live process of the run in `dir`, if any: its lock names a supervisor or trainer that is
 * still alive on this host. A lock from another host counts as live (this host cannot tell).
 */
export function liveRunProcess(dir: string): { pid: number; lock: RunLock } | undefined {
  return liveProcessOf(readRunLock(dir));
}

function liveProcessOf(lock: RunLock | undefined): { pid: number; lock: RunLock } | undefined {
  if (!lock) return undefined;
  if (lock.host !== hostname()) return { pid: lock.trainer ?? lock.supervisor, lock };
  for (const [pid, start] of [[lock.trainer, lock.trainerStart], [lock.supervisor, lock.supervisorStart]] as const) {
    if (processAlive(pid, start ?? null)) return { pid: pid!, lock };
  }
  return undefined;
}

/**
 * What a run's status really is: a status file that says `running` while no process named by its
 * lock is alive (the CLI was killed hard, the machine rebooted) reads `lost`. Without a lock file
 * (runs of older versions, copied folders) nothing can be told and the file's word stands.
 */
export function effectiveStatus<S extends string>(
  dir: string,
  record: { status?: S; supervisor?: RunRecord['supervisor'] } | undefined,
): S | 'lost' | undefined {
  if (!record) return undefined;
  if (record.status !== 'running') return record.status;
  if (readRunLock(dir)) return liveRunProcess(dir) ? record.status : 'lost';
  // No lock, yet `running`: the lock was released but the final status could not be written (a
  // full disk). The record's own supervisor tells, on the host that ran it.
  const sup = record.supervisor;
  if (sup && sup.host === hostname() && !processAlive(sup.pid, sup.start)) return 'lost';
  return record.status;
}

/**
 * Why nothing can be written into `dir` (or into the nearest folder above it that exists, where it
 * would be made), or undefined: a read-only file system, no permission, a file in the way. Probed
 * by making and removing a scratch folder, which answers on every file system.
 */
export function unwritableProblem(dir: string): string | undefined {
  let at = resolve(dir);
  while (!existsSync(at)) {
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  if (!statSync(at).isDirectory()) return `${at} is not a directory`;
  try {
    rmSync(mkdtempSync(join(at, '.mkey-write-probe-')), { recursive: true, force: true });
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${at} is not writable (${e.code ?? e.message})`;
  }
}

function refuseLiveRun(dir: string, live = liveRunProcess(dir)): void {
  if (live) {
    throw new BadInputError(
      `--work-dir ${JSON.stringify(dir)} holds a live run (pid ${live.pid} on ${live.lock.host}, started ${live.lock.started})`,
      'wait for it, stop it (Ctrl-C in its terminal, or kill -TERM the pid), or pick another --work-dir',
    );
  }
}

/**
 * Takes the work dir's run lock (takeLockFile): of two commands started together exactly one gets
 * it, and a stale lock (no live process) is replaced. Returns the functions that record the
 * trainer's pid and release the lock.
 */
export function acquireRunLock(dir: string): { setTrainer: (pid: number | undefined) => void; release: () => void } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const lock: RunLock = { supervisor: process.pid, supervisorStart: processStart(process.pid), host: hostname(), started: new Date().toISOString() };
  const got = takeLockFile(path, JSON.stringify(lock) + '\n', (held) => liveProcessOf(parseRunLock(held)) !== undefined);
  if (!got.taken) {
    refuseLiveRun(dir, liveProcessOf(parseRunLock(got.heldBy))); // one line naming its pid
    throw new BadInputError(`--work-dir ${JSON.stringify(dir)}: other commands kept taking its run lock (${LOCK_FILE})`, 'run one command per --work-dir');
  }
  const write = () => {
    writeFileSync(path + '.tmp', JSON.stringify(lock) + '\n');
    renameSync(path + '.tmp', path);
  };
  return {
    setTrainer: (pid) => {
      lock.trainer = pid;
      lock.trainerStart = pid ? processStart(pid) : null;
      write();
    },
    release: () => {
      const current = readRunLock(dir);
      if (current?.supervisor === process.pid) rmSync(path, { force: true });
    },
  };
}

/**
 * Why `path` cannot be a checkpoint to resume from, or undefined: missing, not a regular file, or
 * not a complete zip archive (torch.save's format: its end-of-central-directory record is in the
 * last 64 KiB; a file cut short by a full disk or a kill has none). Read from the end, no Python.
 */
export function checkpointFileProblem(path: string): string | undefined {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) return 'is not a regular file';
    size = st.size;
  } catch {
    return 'does not exist';
  }
  const tail = Math.min(size, 65_557);
  const buf = Buffer.alloc(tail);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, tail, size - tail);
  } finally {
    closeSync(fd);
  }
  return buf.includes(Buffer.from([0x50, 0x4b, 0x05, 0x06])) ? undefined : `is not a complete checkpoint (${size} bytes, cut short?)`;
}

/**
 * Checks, without changing anything, that `dir` may receive a new run (or resume one): refuses a
 * dir holding a run without `resume`/`force`, a live run in any case, and `resume` without a
 * checkpoint. Runs before anything is written.
 */
export function checkWorkDir(dir: string, opts: { resume: boolean; force: boolean }): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new BadInputError(`--work-dir ${JSON.stringify(dir)} exists and is not a directory`);
  }
  refuseLiveRun(dir);
  if (opts.resume) {
    if (!existsSync(join(dir, 'last_checkpoint'))) {
      throw new BadInputError(
        `--resume: ${JSON.stringify(dir)} has no checkpoint to resume from (no last_checkpoint file)`,
        'start a new run without --resume',
      );
    }
    const ckpt = lastCheckpoint(dir);
    const problem = ckpt ? checkpointFileProblem(ckpt) : 'is empty';
    if (problem) {
      throw new BadInputError(
        `--resume: the checkpoint ${join(dir, 'last_checkpoint')} names, ${JSON.stringify(ckpt ?? '')}, ${problem}`,
        'resume from an earlier checkpoint by writing its path into last_checkpoint, or start over with --force',
      );
    }
    return;
  }
  if (holdsRun(dir) && !opts.force) {
    throw new BadInputError(
      `--work-dir ${JSON.stringify(dir)} already holds a run; refusing to overwrite it`,
      'add --resume to continue it, --force to start over (deletes its checkpoints and logs), or pick another --work-dir',
    );
  }
}

/** Checkpoints mmengine's CheckpointHook writes at the top of a work dir (`save_best` included). */
const CHECKPOINT_NAME = /^(epoch|iter)_\d+\.pth$|^best_[\w.-]+\.pth$/;
/** A session folder of mmengine's Runner: named by its start time. */
const SESSION_NAME = /^\d{8}_\d{6}$/;

/** Whether `dir` (named like a session) holds exactly what mmengine writes there: `<name>.log` and `vis_data/`. */
function isRunSession(dir: string, name: string): boolean {
  try {
    return statSync(dir).isDirectory() && readdirSync(dir).every((f) => f === `${name}.log` || f === 'vis_data');
  } catch {
    return false;
  }
}

/**
 * Prepares the work dir for a new run or a resumed one, after `checkWorkDir` passed and the lock is
 * held: with `force`, the previous run's outputs are removed: mkey-det's own files, mmengine's
 * checkpoints (by their names) and session folders (only those holding nothing but mmengine's
 * log and vis_data/). Never a file in `keep` (what the user handed in: `--pretrained`, `--config`)
 * and never anything else a person put there (a `my_weights.pth`, a folder of photos).
 */
export function prepareWorkDir(dir: string, opts: { resume: boolean; force: boolean; keep?: string[] }): void {
  if (!opts.resume && opts.force && existsSync(dir)) {
    const keep = new Set((opts.keep ?? []).map((p) => resolve(p)));
    for (const f of readdirSync(dir)) {
      const path = join(dir, f);
      if (keep.has(resolve(path))) continue;
      const ours = f === RUN_FILE || f === EVENTS_FILE || f === 'last_checkpoint' || CHECKPOINT_NAME.test(f) || (SESSION_NAME.test(f) && isRunSession(path, f));
      if (ours) rmSync(path, { recursive: true, force: true });
    }
  }
  mkdirSync(dir, { recursive: true });
}

/**
 * Checks a path that names a run (a directory) or a checkpoint (a file) before anything opens it;
 * returns which. Missing, or a FIFO / device / broken link: one line with `hint`, exit 2.
 */
export function checkRunOrCheckpoint(path: string, hint: string): 'dir' | 'file' {
  const info = describePath(path, JSON.stringify(path));
  if (!info) throw new BadInputError(`${JSON.stringify(path)} does not exist`, hint);
  if (info.kind === 'other') throw new BadInputError(`${JSON.stringify(path)} is ${info.what}, not a run directory or a checkpoint file`, hint);
  // every command that builds a model from a run passes here: say when its config.py was changed
  const changed = configChangedWarning(path);
  if (changed) logger.warn(changed);
  return info.kind;
}

/**
 * The checkpoint a finished run hands on: its best-top-1 one when the run kept one (`save_best`,
 * a `pretrain` run: the paper reports the model with the best top-1), else the one
 * `last_checkpoint` names. Undefined when the directory holds neither.
 */
export function handoffCheckpoint(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const best = readdirSync(dir)
    .filter((f) => /^best_.*\.pth$/.test(f))
    .sort((a, b) => statSync(join(dir, b)).mtimeMs - statSync(join(dir, a)).mtimeMs);
  return best.length > 0 ? join(dir, best[0]!) : lastCheckpoint(dir);
}

/** The checkpoint mmengine's `last_checkpoint` file names in a run directory, if any. */
export function lastCheckpoint(workDir: string): string | undefined {
  const p = join(workDir, 'last_checkpoint');
  if (!existsSync(p)) return undefined;
  return readFileSync(p, 'utf8').trim() || undefined;
}
