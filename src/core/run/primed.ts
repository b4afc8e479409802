/**
 * A one-process launch whose preflight runs in the process that then runs the tool
 * (python_shim/mkey_det/cli/primed.py): one import of torch, MMDetection and mmpretrain per launch
 * instead of two (a bridge session for the check, the tool's own process for the run).
 *
 * The process starts before anything is written: it checks the config, answers with one
 * `MKEY-PREFLIGHT` line, and waits. The CLI then writes the run directory and hands it the tool's
 * command line (`start`), or ends it without running anything (`cancel`), so a refused launch
 * still leaves nothing written. Its output before `start` is kept and goes to the log first.
 */
import { join } from 'node:path';
import { ExitCode, MkeyError } from '../../utils/errors.js';
import { pythonShimDir } from '../../utils/paths.js';
import { fromEnvelope, processEnding, stopPythonOnSignal } from '../../python/bridge.js';
import { ENTRIES } from '../../python/entries.js';
import { checkReply } from '../../python/reply.js';
import type { LaunchPlan } from './launch.js';
import type { Preflight } from './preflight.js';
import { preflightRefusal } from './preflight.js';
import { logOutput, spawnGuarded } from './supervise.js';

const MARKER = 'MKEY-PREFLIGHT ';
/**
 * Run by file path, as the tool itself is: `-m` would put the current folder first on sys.path
 * while torch and MMDetection are imported, where a user's `numpy.py` would be taken for numpy.
 */
const primedScript = join(pythonShimDir, 'mkey_det', 'cli', 'primed.py');

export interface PrimedTool {
  /** The preflight's reply; rejects with the refusal (exit 2) or the failure, as the bridge's preflight does. */
  preflight: Promise<Preflight>;
  /** Runs a one-process plan's tool in the checked process; its output is logged from the start. */
  start(plan: LaunchPlan, logPath: string, flags: 'a' | 'w', verbose: boolean): { child: ReturnType<typeof spawnGuarded>; closeLog: () => Promise<void> };
  /** Ends the process without running anything (the launch was refused). Does nothing once started. */
  cancel(): void;
}

/** Starts the checking process for `configPath` (and `checkpoint`); see the module's comment. */
export function primeTool(python: string, configPath: string, gpus: number, checkpoint?: string): PrimedTool {
  const child = spawnGuarded(
    python,
    [python, '-u', primedScript, '--config', configPath, '--gpus', String(gpus), ...(checkpoint ? ['--checkpoint', checkpoint] : [])],
    'pipe',
  );
  let earlier = ''; // the output before `start`, less the reply line
  let partial = '';
  let state: 'checking' | 'checked' | 'started' | 'cancelled' = 'checking';

  // Until the tool starts, a Ctrl-C or SIGTERM ends the process at once: nothing of it needs saving.
  const onSignal = (signal: NodeJS.Signals) => stopPythonOnSignal(signal, child);
  const quietSignals = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let collect: (d: Buffer) => void = () => undefined;
  const preflight = new Promise<Preflight>((resolve, reject) => {
    collect = (d: Buffer) => {
      if (state !== 'checking') {
        if (state === 'checked') {
          earlier += partial + d.toString();
          partial = '';
        }
        return;
      }
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        // stdout and stderr share one stream: a stderr line left open (no newline yet) can come first
        const at = state === 'checking' ? line.indexOf(MARKER) : -1;
        if (at >= 0) {
          state = 'checked';
          if (at > 0) earlier += `${line.slice(0, at)}\n`;
          try {
            resolve(fromReply(line.slice(at + MARKER.length)));
          } catch (err) {
            reject(err);
          }
        } else earlier += `${line}\n`;
      }
    };
    child.all!.on('data', collect);
    void child.then((res) => {
      if (state !== 'checking') return;
      state = 'cancelled';
      quietSignals();
      const how = processEnding(res.exitCode, res.signal);
      const last = (earlier + partial).trim().split('\n').filter(Boolean).at(-1);
      reject(new MkeyError(`the Python process checking the run (pid ${child.pid}) ${how}${last && !res.signal ? `: ${last}` : ''}`, {
        exitCode: ExitCode.failure,
        detail: (earlier + partial).slice(-4000),
      }));
    });
  });
  preflight.catch(() => undefined); // awaited by the caller; a rejection nobody awaits is no crash

  return {
    preflight,
    start(plan, logPath, flags, verbose) {
      if (state !== 'checked') throw new MkeyError(`the checked process cannot start the tool (it is ${state})`);
      // `python -u SCRIPT ARGS...`: the process is that python, started with -u; it runs SCRIPT ARGS...
      if (plan.launcher !== 'none' || plan.command !== python || plan.args[0] !== '-u') {
        throw new MkeyError(`a primed process runs a one-process plan only (this one: ${plan.launcher}, ${plan.command} ${plan.args[0] ?? ''})`);
      }
      state = 'started';
      quietSignals();
      child.all!.off('data', collect);
      const closeLog = logOutput(child, logPath, flags, verbose, earlier + partial);
      child.stdin!.on('error', () => undefined); // gone already (killed): superviseChild reports how it ended
      child.stdin!.end(`${JSON.stringify(plan.args.slice(1))}\n`);
      return { child, closeLog };
    },
    cancel() {
      if (state === 'started' || state === 'cancelled') return;
      state = 'cancelled';
      quietSignals();
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(); // end of input: it exits without running anything
    },
  };
}

/** The reply line's envelope as the preflight's value, or its refusal. */
function fromReply(json: string): Preflight {
  let value: unknown;
  try {
    value = fromEnvelope(json);
  } catch (err) {
    throw preflightRefusal(err);
  }
  return checkReply(ENTRIES['runs.preflight'].reply, value, 'Python entry runs.preflight') as Preflight;
}
