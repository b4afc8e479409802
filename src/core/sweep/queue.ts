/**
 * The local queue: a sweep's cells one after another, each a normal run of the CLI itself
 * (`node bin/mkey-det.js train ...`, the command line a Slurm script runs), so supervision, events,
 * the run record and `--resume` are those of any run. Ctrl-C is forwarded once to the running
 * cell (it stops at the next iteration and records `interrupted`), then the sweep records and
 * ends; started again it skips completed cells and resumes the interrupted one.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { guardedArgs } from '../../python/launch-guard.js';
import { ExitCode } from '../../utils/errors.js';
import { logger } from '../../utils/logger.js';
import { packageRoot } from '../../utils/paths.js';
import { readRunRecord } from '../run/run-dir.js';
import { cellRunStatus, nextAction, writeSweepRecord, type Attempt, type CellRecord, type SweepRecord } from './state.js';

/** The CLI's entry point: what every cell runs. */
export const CLI_ENTRY = join(packageRoot, 'bin', 'mkey-det.js');

/** The command line of a cell: `node <checkout>/bin/mkey-det.js <task command> ... [--resume | --force]`. */
export function cellCommand(cell: CellRecord, flags: string[] = []): string[] {
  return [process.execPath, CLI_ENTRY, ...cell.args, ...flags];
}

export type CellOutcomeKind = 'skipped' | 'busy' | 'blocked' | 'ran' | 'resumed' | 'restarted' | 'not reached';

export interface CellOutcome {
  name: string;
  workDir: string;
  /** What the sweep did with the cell this time. */
  outcome: CellOutcomeKind;
  /** The run's status afterwards (its `mkey-run.json`). */
  status: string;
  exitCode?: number;
  message?: string;
  seconds?: number;
}

export interface QueueResult {
  cells: CellOutcome[];
  interrupted: boolean;
  /** Whether a cell failed (or was blocked). */
  failed: boolean;
}

/** The last `error: ...` line of a cell's terminal output (what the cell CLI said when it failed). */
function lastErrorLine(text: string): string | undefined {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('error: '))
    .at(-1)
    ?.slice('error: '.length);
}

/**
 * Runs one cell: the CLI under the launch guard (python_shim/mkey_det/cli/launch_guard.py: the cell
 * ends when this sweep dies, even by SIGKILL), in its own process group so that a terminal's
 * Ctrl-C reaches only the sweep, which forwards exactly one signal. Its output goes to stderr and
 * to `<sweep-dir>/logs/<cell>.log`.
 */
function runCell(
  python: string,
  argv: string[],
  cwd: string,
  logPath: string,
  onChild: (kill: ((sig: NodeJS.Signals) => void) | undefined) => void,
): Promise<{ exitCode: number; tail: string }> {
  const log = createWriteStream(logPath, { flags: 'a' });
  log.write(`$ ${argv.join(' ')}\n`);
  const child = spawn(python, guardedArgs(argv), {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const take = (d: Buffer) => {
    process.stderr.write(d);
    log.write(d);
    tail = (tail + d.toString()).slice(-20_000);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  onChild((sig) => child.kill(sig));
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      process.off('exit', killOnExit);
      onChild(undefined);
      log.end();
      resolve({ exitCode: code ?? (signal === 'SIGINT' ? ExitCode.interrupted : 1), tail });
    });
  });
}

/**
 * Runs the queue: every cell not completed, in order. `save` is called after each change (the
 * record on disk always says where the sweep stands). A failed cell is recorded and the rest go
 * on, unless `failFast`.
 */
export async function runQueue(rec: SweepRecord, ctx: { sweepDir: string; python: string; failFast: boolean }): Promise<QueueResult> {
  const save = () => writeSweepRecord(ctx.sweepDir, rec);
  const logs = join(ctx.sweepDir, 'logs');
  mkdirSync(logs, { recursive: true });
  let interrupted = false;
  let signals = 0;
  let killCell: ((sig: NodeJS.Signals) => void) | undefined;
  const onSignal = (sig: NodeJS.Signals) => () => {
    signals++;
    interrupted = true;
    if (killCell) {
      // the cell stops at its next iteration (a second signal: at once) and records `interrupted`
      logger.warn(`${sig} received: ${signals > 1 ? 'stopping the running cell now' : 'stopping the running cell at its next iteration, then the sweep (Ctrl-C again to stop the cell now)'}`);
      killCell(sig === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
    } else logger.warn(`${sig} received: the sweep stops before its next cell`);
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  const outcomes: CellOutcome[] = [];
  let failed = false;
  rec.state = 'running';
  save();
  try {
    for (const [i, cell] of rec.cells.entries()) {
      const tag = `[${i + 1}/${rec.cells.length}] ${cell.name}`;
      if (interrupted || (failed && ctx.failFast)) {
        outcomes.push({ name: cell.name, workDir: cell.workDir, outcome: 'not reached', status: cellRunStatus(cell.workDir) });
        continue;
      }
      const next = nextAction(cell);
      if (next.do !== 'run') {
        const outcome = next.do === 'skip' ? 'skipped' : next.do;
        if (next.do === 'blocked') failed = true;
        logger.info(`${tag}: ${outcome} (${next.why})`);
        outcomes.push({ name: cell.name, workDir: cell.workDir, outcome, status: cellRunStatus(cell.workDir), ...(next.do !== 'skip' ? { message: next.why } : {}) });
        continue;
      }
      const argv = cellCommand(cell, next.flags);
      logger.step(`${tag}: ${next.action === 'ran' ? 'running' : next.action === 'resumed' ? 'resuming' : 'starting over (--force)'}: mkey-det ${[...cell.args, ...next.flags].join(' ')}`);
      const attempt: Attempt = { action: next.action, started: new Date().toISOString() };
      cell.attempts.push(attempt);
      save();
      const t0 = Date.now();
      const { exitCode, tail } = await runCell(ctx.python, argv, rec.cwd, join(logs, `${cell.name}.log`), (k) => (killCell = k));
      const status = cellRunStatus(cell.workDir);
      // an interrupted cell's own hint (its `train --resume` line) is not the way on: the sweep is
      const message =
        exitCode === 0 || exitCode === ExitCode.interrupted ? undefined : lastErrorLine(tail) ?? readRunRecord(cell.workDir)?.message ?? `exited with code ${exitCode}`;
      Object.assign(attempt, { finished: new Date().toISOString(), exitCode, status, ...(message ? { message } : {}) });
      save();
      const outcome: CellOutcome = {
        name: cell.name,
        workDir: cell.workDir,
        outcome: next.action,
        status,
        exitCode,
        ...(message ? { message } : {}),
        seconds: (Date.now() - t0) / 1000,
      };
      outcomes.push(outcome);
      if (exitCode === ExitCode.interrupted || interrupted) {
        interrupted = true;
        logger.warn(`${tag}: interrupted (${status})`);
      } else if (exitCode !== 0) {
        failed = true;
        logger.warn(`${tag}: failed (${message})${ctx.failFast ? '; --fail-fast: the sweep stops' : '; the sweep goes on with the next cell'}`);
      } else logger.success(`${tag}: ${status}`);
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  rec.state = interrupted ? 'interrupted' : failed ? 'failed' : outcomes.every((o) => o.status === 'completed') ? 'completed' : 'incomplete';
  save();
  return { cells: outcomes, interrupted, failed };
}
