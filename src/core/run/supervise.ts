/**
 * Child-process supervision shared by `train` and `test`: start MMDetection's tool under the
 * launch guard with its output logged, feed its events to the progress view, forward Ctrl-C /
 * SIGTERM once (stop at the next iteration) and twice (stop now), and read the one line that
 * says why it failed.
 */
import { accessSync, constants, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { QUIET_PYTHON_WARNINGS } from '../../python/bridge.js';
import { guardedArgs } from '../../python/launch-guard.js';
import { ExitCode } from '../../utils/errors.js';
import { logger } from '../../utils/logger.js';
import { killProcessGroup } from '../../utils/process-group.js';
import { defaultCacheDir } from '../dataset-paths.js';
import type { EventTail, RunEvent, RunObserver } from './events.js';
import type { LaunchPlan } from './launch.js';

/** The environment a training or test process starts with (added to this process's own). */
export function toolEnv(): Record<string, string> {
  return {
    PYTHONUNBUFFERED: '1',
    PYTHONWARNINGS: process.env.PYTHONWARNINGS ?? QUIET_PYTHON_WARNINGS,
    // OpenMP threads that spin while waiting make every small op crawl as soon as another
    // process shares the cores (measured: a grouped Conv1d step 10 ms alone, 256 ms shared).
    OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE',
    // where the progress hook keeps backbone FLOP counts between runs (python_shim/mkey_det/analysis/flops_memo.py)
    MKEY_CACHE_DIR: defaultCacheDir(),
  };
}

/**
 * Starts `command` under the launch guard (it ends when this CLI dies, even by SIGKILL), in its
 * own process group: a terminal's Ctrl-C reaches only this CLI, which forwards exactly one signal
 * (the training stops at the next iteration; a second Ctrl-C stops it at once). Killed when this
 * CLI exits.
 */
export function spawnGuarded(python: string, command: string[], stdin: 'ignore' | 'pipe') {
  const child = execa(python, guardedArgs(command), { reject: false, all: true, buffer: false, env: toolEnv(), detached: true, stdin });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  // What the tool forked and left behind goes with it: a DataLoader worker of a trainer killed by
  // SIGKILL (the OOM killer) can hang in its own exit for ever, holding the output pipe, so the
  // child would never count as ended and this CLI would wait for ever. The process group is the
  // tool's own (detached), so this reaches nothing else.
  child.once('exit', () => killProcessGroup(child.pid));
  void child.finally(() => process.off('exit', killOnExit));
  return child;
}

/**
 * Writes the child's combined output to `logPath` (and to stderr with `verbose`), after `earlier`
 * (what it printed before the log could be opened); mmengine writes its own log too, this one also
 * catches crashes before it starts.
 */
export function logOutput(child: ResultPromise, logPath: string, flags: 'a' | 'w', verbose: boolean, earlier = '') {
  const log = createWriteStream(logPath, { flags });
  const write = (d: Buffer | string) => {
    log.write(d);
    if (verbose) process.stderr.write(d);
  };
  if (earlier) write(earlier);
  child.all?.on('data', write);
  return () => new Promise<void>((r) => log.end(r));
}

/** Starts a launch plan as a guarded child process whose combined output goes to `logPath`. */
export function spawnLogged(python: string, plan: LaunchPlan, logPath: string, flags: 'a' | 'w', verbose: boolean) {
  const child = spawnGuarded(python, [plan.command, ...plan.args], 'ignore');
  return { child, closeLog: logOutput(child, logPath, flags, verbose) };
}

/** Runs a child (training or testing), feeding its events to the view; handles Ctrl-C / SIGTERM. */
export async function superviseChild(
  child: ResultPromise,
  events: EventTail,
  view: RunObserver,
  onEvent: (e: RunEvent) => void,
): Promise<{ exitCode: number; interrupted: boolean; signal?: string }> {
  let interrupted = false;
  const forward = (sig: NodeJS.Signals) => () => {
    view.stop();
    logger.warn(
      interrupted
        ? `${sig} again: stopping now`
        : `${sig} received: stopping at the next iteration (checkpoints stay intact; press Ctrl-C again to stop now)`,
    );
    // torchrun forwards the signal to its workers; a plain Python process raises KeyboardInterrupt.
    const second = interrupted;
    interrupted = true;
    child.kill(sig === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
    if (!second) setTimeout(() => child.kill('SIGKILL'), 600_000).unref();
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const timer = setInterval(() => events.poll().forEach((e) => (onEvent(e), view.onEvent(e))), 500);
  try {
    const res = await child;
    return { exitCode: res.exitCode ?? (interrupted ? ExitCode.interrupted : 1), interrupted, ...(res.signal ? { signal: res.signal } : {}) };
  } finally {
    clearInterval(timer);
    events.poll().forEach((e) => (onEvent(e), view.onEvent(e)));
    view.stop();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/**
 * The worker that failed first in a multi-process run, from torchrun's "Root Cause" summary in the
 * log: `rank 1 (pid 4242) was killed by SIGKILL`, or `rank 1 (pid 4242) exited with code 1`.
 */
export function failedWorkerLine(logPath: string): string | undefined {
  if (!existsSync(logPath)) return undefined;
  const text = readFileSync(logPath, 'utf8');
  const at = text.lastIndexOf('Root Cause (first observed failure)');
  if (at < 0) return undefined;
  const block = text.slice(at, at + 2000);
  const rank = /rank\s*:\s*(\d+)/.exec(block)?.[1];
  const exit = /exitcode\s*:\s*(-?\d+)\s*\(pid:\s*(\d+)\)/.exec(block);
  if (rank === undefined || !exit) return undefined;
  const [, code, pid] = exit;
  const signal = /Signal \d+ \((SIG[A-Z0-9]+)\)/.exec(block)?.[1];
  if (signal) return `rank ${rank} (pid ${pid}) was killed by ${signal}; the other processes were stopped`;
  // torchrun prefixes each worker's output with its rank: that rank's last error says why
  const own = text.split('\n').filter((l) => l.startsWith(`[rank${rank}]:`)).map((l) => l.slice(`[rank${rank}]:`.length).trim());
  const why = own
    .filter((l) => ERROR_LINE.test(l))
    .at(-1)
    // gloo's own words: its source location and its sign-off are noise in one line
    ?.replace(/\[[^\]]*\.(cc|cpp|h):\d+\] /, '')
    .replace(/ Check the logs of the remote worker.*$/, '');
  return `rank ${rank} (pid ${pid}) exited with code ${code}${why ? `: ${why}` : ''}`;
}

/** The last line of a Python traceback: `ValueError: ...`, `torch.distributed.DistStoreError: ...`. */
const ERROR_LINE = /^[A-Za-z_.]*(Error|Exception|Interrupt)\b.*:?/;

/** The last line of a Python traceback in the child's log: what went wrong, in one line. */
export function lastErrorLine(logPath: string): string | undefined {
  if (!existsSync(logPath)) return undefined;
  const lines = readFileSync(logPath, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
  const idx = lines.map((l) => ERROR_LINE.test(l)).lastIndexOf(true);
  return idx >= 0 ? lines[idx] : lines.at(-1);
}

/** Whether `command` is an executable on PATH. */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
