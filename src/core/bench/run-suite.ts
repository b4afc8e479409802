/**
 * Runs one Python benchmark suite (`python -m mkey_det.bench --suite S`) as a child process and
 * reads its JSON-lines protocol from stdout (see python_shim/mkey_det/bench/common.py): `start`,
 * one `measure` per measurement (handed to `onProgress`), then `result` or `error`. The child's
 * stderr (library warnings, tracebacks) goes to a log file that failures point to.
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { QUIET_PYTHON_WARNINGS } from '../../python/bridge.js';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { pythonShimDir } from '../../utils/paths.js';
import type { BenchDevice, BenchProgress, BenchSuite, SuiteResult, TrainOptions } from './types.js';

export interface SuiteRequest {
  python: string;
  suite: BenchSuite;
  device: BenchDevice;
  quick: boolean;
  /** torch intra-op threads (undefined: torch's default). */
  threads?: number;
  workDir: string;
  /** train suite: JSON file `{variant: config path}`. */
  configs?: string;
  /** train suite: what to run (unset values: the device's defaults, chosen by the Python side). */
  train?: TrainOptions;
  onProgress?: (p: BenchProgress) => void;
  /** Called once with a function that stops the child (Ctrl-C handling). */
  onChild?: (stop: () => void) => void;
}

type ProtocolLine =
  | { event: 'start'; suite: BenchSuite; total: number; plan: unknown }
  | { event: 'measure'; suite: BenchSuite; index: number; total: number; label: string; line: string }
  | { event: 'progress'; suite: BenchSuite; line: string }
  | { event: 'result'; suite: BenchSuite; result: SuiteResult }
  | { event: 'error'; suite: BenchSuite; message: string; exit_code: number };

function logTail(path: string, lines = 5): string {
  if (!existsSync(path)) return '';
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** The train suite's arguments of `python -m mkey_det.bench` (only what was given). */
export function trainArgs(t: TrainOptions): string[] {
  const args: string[] = [];
  if (t.variants?.length) args.push('--variants', t.variants.join(','));
  if (t.batchSizes?.length) args.push('--batch-sizes', t.batchSizes.join(','));
  if (t.precisions?.length) args.push('--precisions', t.precisions.join(','));
  if (t.size !== undefined) args.push('--size', String(t.size));
  if (t.steps !== undefined) args.push('--steps', String(t.steps));
  if (t.warmup !== undefined) args.push('--warmup', String(t.warmup));
  return args;
}

export async function runSuite(req: SuiteRequest): Promise<SuiteResult> {
  const logPath = join(req.workDir, `${req.suite}.log`);
  const log = createWriteStream(logPath, { flags: 'w' });
  const args = ['-m', 'mkey_det.bench', '--suite', req.suite, '--device', req.device, '--work-dir', req.workDir];
  if (req.quick) args.push('--quick');
  if (req.configs) args.push('--configs', req.configs);
  if (req.suite === 'train' && req.train) args.push(...trainArgs(req.train));
  const env: Record<string, string> = {
    PYTHONUNBUFFERED: '1',
    PYTHONWARNINGS: process.env.PYTHONWARNINGS ?? QUIET_PYTHON_WARNINGS,
    PYTHONPATH: [pythonShimDir, process.env.PYTHONPATH].filter(Boolean).join(delimiter),
  };
  if (req.threads !== undefined) {
    // torch reads these at start; onnxruntime-node gets the same count from the CLI.
    env.OMP_NUM_THREADS = String(req.threads);
    env.MKL_NUM_THREADS = String(req.threads);
  }
  const child = execa(req.python, args, {
    cwd: pythonShimDir,
    env,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  req.onChild?.(() => child.kill('SIGTERM'));
  child.stderr?.pipe(log);
  let result: SuiteResult | undefined;
  let failure: { message: string; exit_code: number } | undefined;
  const stray: string[] = [];
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (raw) => {
    const text = raw.trim();
    if (!text) return;
    let msg: ProtocolLine;
    try {
      msg = JSON.parse(text) as ProtocolLine;
    } catch {
      stray.push(text);
      return;
    }
    if (msg.event === 'measure') {
      req.onProgress?.({ suite: req.suite, index: msg.index, total: msg.total, label: msg.label, line: msg.line });
    } else if (msg.event === 'progress') {
      req.onProgress?.({ suite: req.suite, label: 'progress', line: msg.line });
    } else if (msg.event === 'result') {
      result = msg.result;
    } else if (msg.event === 'error') {
      failure = { message: msg.message, exit_code: msg.exit_code };
    }
  });
  const res = await child;
  await new Promise<void>((resolve) => log.end(resolve));
  if (failure) {
    if (failure.exit_code === ExitCode.badInput) throw new BadInputError(failure.message);
    throw new MkeyError(`bench suite ${req.suite} failed: ${failure.message}`, {
      hint: `the suite's log: ${logPath}`,
      detail: logTail(logPath, 30),
    });
  }
  if (res.isTerminated || res.signal) {
    throw new MkeyError(`bench suite ${req.suite} stopped (${res.signal ?? 'terminated'})`, { exitCode: ExitCode.interrupted });
  }
  if (res.exitCode !== 0 || !result) {
    const tail = logTail(logPath, 1) || stray.slice(-1)[0] || 'no output';
    throw new MkeyError(`bench suite ${req.suite} failed (exit ${String(res.exitCode)}): ${tail}`, {
      hint: `the suite's log: ${logPath}`,
      detail: logTail(logPath, 30),
    });
  }
  return result;
}
