/**
 * A sweep's folder (`--sweep-dir`): `sweep.json` (the matrix, its cells, their run directories,
 * states and Slurm job ids, every attempt), `sweep.lock` while a sweep runs or submits its queue,
 * the cells' terminal logs under `logs/`, the Slurm scripts under `slurm/`, and the report.
 * A cell's own truth is its run directory's `mkey-run.json`: the sweep reads it, never guesses.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { checkpointFileProblem, effectiveStatus, holdsRun, lastCheckpoint, liveRunProcess, readRunRecord, type RunStatus } from '../run/run-dir.js';
import type { SweepCell, SweepSpec } from './matrix.js';

export const SWEEP_FILE = 'sweep.json';
export const SWEEP_LOCK = 'sweep.lock';

/** How the sweep started a cell's run (or handed it to Slurm). */
export type AttemptAction = 'ran' | 'resumed' | 'restarted' | 'submitted';

export interface Attempt {
  action: AttemptAction;
  started: string;
  finished?: string;
  /** The cell command's exit code (local queue). */
  exitCode?: number;
  /** The run's status after the attempt (its `mkey-run.json`). */
  status?: RunStatus | 'not started';
  message?: string;
  jobId?: string;
}

export interface CellRecord extends SweepCell {
  /** Slurm job id of the last submission. */
  jobId?: string;
  /** The sbatch script of the last submission. */
  script?: string;
  attempts: Attempt[];
}

/** `incomplete`: the queue ended with cells left that another process was running. */
export type SweepState = 'planned' | 'running' | 'interrupted' | 'completed' | 'failed' | 'incomplete' | 'submitted';

export interface SweepRecord {
  version: 1;
  name: string;
  /** The folder the cells' command lines run in (relative paths in the options are relative to it). */
  cwd: string;
  spec: SweepSpec;
  /** `--vary` / `--charts` values that gave no cell of their own. */
  collapsed: string[];
  state: SweepState;
  created: string;
  updated: string;
  cells: CellRecord[];
  report?: { md: string; html: string };
}

export function readSweepRecord(sweepDir: string): SweepRecord | undefined {
  const p = join(sweepDir, SWEEP_FILE);
  if (!existsSync(p)) return undefined;
  try {
    const rec = JSON.parse(readFileSync(p, 'utf8')) as SweepRecord;
    if (rec.version !== 1 || !Array.isArray(rec.cells)) throw new Error('not a sweep record of this version');
    return rec;
  } catch (err) {
    throw new BadInputError(`${p} is not a readable sweep record (${(err as Error).message})`, 'choose another --sweep-dir, or remove that file');
  }
}

/** Writes `sweep.json` atomically (write, then rename): a reader never sees half a file. */
export function writeSweepRecord(sweepDir: string, rec: SweepRecord): void {
  mkdirSync(sweepDir, { recursive: true });
  rec.updated = new Date().toISOString();
  const p = join(sweepDir, SWEEP_FILE);
  writeFileSync(p + '.tmp', JSON.stringify(rec, null, 2) + '\n');
  renameSync(p + '.tmp', p);
}

/** A cell's run as its folder says: `not started` without a run record, else the record's status (`lost` when nobody runs it any more). */
export function cellRunStatus(workDir: string): RunStatus | 'not started' {
  return effectiveStatus(workDir, readRunRecord(workDir)) ?? 'not started';
}

/** What the queue does with a cell now. */
export type CellPlanAction =
  | { do: 'skip'; why: string }
  | { do: 'busy'; why: string }
  | { do: 'blocked'; why: string }
  | { do: 'run'; action: Exclude<AttemptAction, 'submitted'>; flags: string[] };

/**
 * The rule that makes a sweep restartable: a completed cell is skipped; a cell whose run left a
 * usable checkpoint (interrupted, lost, failed) is resumed with `--resume`; a cell this sweep
 * started before that has no checkpoint starts over with `--force`; a folder holding a run this
 * sweep never started is not the sweep's to overwrite (blocked, said so); a live run is left alone.
 */
export function nextAction(cell: CellRecord): CellPlanAction {
  const status = cellRunStatus(cell.workDir);
  if (status === 'completed') return { do: 'skip', why: 'completed' };
  const live = liveRunProcess(cell.workDir);
  if (live) return { do: 'busy', why: `a live run (pid ${live.pid} on ${live.lock.host}) holds it` };
  if (!holdsRun(cell.workDir)) return { do: 'run', action: 'ran', flags: [] };
  const ckpt = lastCheckpoint(cell.workDir);
  if (ckpt && checkpointFileProblem(ckpt) === undefined) return { do: 'run', action: 'resumed', flags: ['--resume'] };
  if (cell.attempts.length > 0) return { do: 'run', action: 'restarted', flags: ['--force'] };
  return {
    do: 'blocked',
    why: `${cell.workDir} holds a ${status} run this sweep did not start, without a checkpoint to resume`,
  };
}
