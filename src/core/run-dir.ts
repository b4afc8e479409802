/**
 * A run directory (`--work-dir`): its status file, its events file, and the rule that a directory
 * holding a run is never overwritten without `--resume` or `--force`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadInputError } from '../utils/errors.js';

export const RUN_FILE = 'mkey-run.json';
export const EVENTS_FILE = 'mkey-events.jsonl';
export const CONFIG_FILE = 'config.py';

export type RunStatus = 'running' | 'completed' | 'failed' | 'interrupted';

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
  return readdirSync(dir).some((f) => f === RUN_FILE || f === EVENTS_FILE || f === 'last_checkpoint' || f.endsWith('.pth'));
}

/**
 * Prepares the work dir for a new run or a resumed one. Without `resume` or `force`, a dir that
 * holds a run is refused; with `force`, mkey-det's and mmengine's outputs are removed first.
 */
export function prepareWorkDir(dir: string, opts: { resume: boolean; force: boolean }): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new BadInputError(`--work-dir ${JSON.stringify(dir)} exists and is not a directory`);
  }
  const has = holdsRun(dir);
  if (opts.resume) {
    if (!existsSync(join(dir, 'last_checkpoint'))) {
      throw new BadInputError(
        `--resume: ${JSON.stringify(dir)} has no checkpoint to resume from (no last_checkpoint file)`,
        'start a new run without --resume',
      );
    }
    return;
  }
  if (has && !opts.force) {
    throw new BadInputError(
      `--work-dir ${JSON.stringify(dir)} already holds a run; refusing to overwrite it`,
      'add --resume to continue it, --force to start over (deletes its checkpoints and logs), or pick another --work-dir',
    );
  }
  if (has && opts.force) {
    for (const f of readdirSync(dir)) {
      if (f === RUN_FILE || f === EVENTS_FILE || f === 'last_checkpoint' || f.endsWith('.pth') || /^\d{8}_\d{6}$/.test(f)) {
        rmSync(join(dir, f), { recursive: true, force: true });
      }
    }
  }
  mkdirSync(dir, { recursive: true });
}

export interface RunEvent {
  event: 'start' | 'iter' | 'val' | 'test' | 'checkpoint' | 'end' | 'error';
  time: string;
  [key: string]: unknown;
}

/**
 * Incremental reader of the events file: `poll()` returns the complete lines appended since the
 * last call (a half-written last line waits for the next poll).
 */
export class EventTail {
  private offset = 0;
  private rest = '';
  constructor(private readonly path: string) {}

  poll(): RunEvent[] {
    if (!existsSync(this.path)) return [];
    const buf = readFileSync(this.path);
    if (buf.length <= this.offset) return [];
    const chunk = this.rest + buf.subarray(this.offset).toString('utf8');
    this.offset = buf.length;
    const lines = chunk.split('\n');
    this.rest = lines.pop() ?? '';
    const events: RunEvent[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line) as RunEvent);
      } catch {
        /* a corrupt line is skipped; the report command flags such lines */
      }
    }
    return events;
  }
}
