/**
 * Python workers: the one way to run Python work that is long, may crash, or must run where the
 * bridge cannot start. The bridge (bridge.ts, entries.ts) is for calls: short, in one Python
 * process that imports `mkey_det`. A worker is a child process of its own:
 *
 * - started as `python -m <module> ...args` with python_shim/ on PYTHONPATH, or as
 *   `python <script> ...args` for a module that must run when the `mkey_det` package itself cannot
 *   be imported (the doctor, which diagnoses exactly that);
 * - speaking JSON lines on stdout, one object per line:
 *   - `{"event": "result", "result": <value>}`: what it returns, once, at the end; checked
 *     against the caller's zod schema (a mismatch is one error naming the worker and the field);
 *   - `{"event": "error", "message": "...", "exit_code": N}`: it refused (exit_code 2: the user's
 *     input, a BadInputError) or failed;
 *   - any other `{"event": ...}`: progress, handed to `onEvent` as it arrives;
 *   - lines that are no JSON object (a library printing) are kept for the failure message;
 * - its stderr (warnings, tracebacks) written to `logPath`, or kept in memory, and its tail shown
 *   when it fails without saying why.
 *
 * Users: `mkey-det doctor` (python_shim/mkey_det/cli/doctor.py, by file path), the bench suites
 * (`python -m mkey_det.bench`, python_shim/mkey_det/bench/common.py writes its lines) and `infer`
 * (`python -m mkey_det.cli.infer`: one `image` event per image, src/core/infer/infer.ts).
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { delimiter } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type { z } from 'zod';
import { BadInputError, ExitCode, MkeyError, type ExitCodeValue } from '../utils/errors.js';
import { pythonShimDir } from '../utils/paths.js';
import { QUIET_PYTHON_WARNINGS } from './bridge.js';
import { checkReply } from './reply.js';

/** A progress line of a worker (any event but `result` and `error`). */
export type WorkerEvent = { event: string } & Record<string, unknown>;

export interface WorkerRequest<S extends z.ZodType> {
  python: string;
  /** `python -m module` (the usual), or a script run by path (see above). */
  run: { module: string } | { script: string };
  args?: string[];
  /** Names the worker in errors: `bench suite train`, `doctor.py`. */
  label: string;
  /** The schema of its `result`. */
  result: S;
  /** Killed (SIGTERM) after this long; undefined: no limit. */
  timeoutMs?: number;
  /** Added to the environment (PYTHONPATH, PYTHONUNBUFFERED and PYTHONWARNINGS are set here). */
  env?: Record<string, string>;
  /** Where its stderr goes; undefined: kept in memory for the failure message. */
  logPath?: string;
  onEvent?: (event: WorkerEvent) => void;
  /** Called once with a function that stops the worker (Ctrl-C handling). */
  onChild?: (stop: () => void) => void;
}

/** The worker could not run, or ended without a result (`notFound`: no interpreter at that path). */
export class WorkerError extends MkeyError {
  readonly notFound: boolean;
  /** The last lines it wrote to stderr (or its log). */
  readonly stderrTail: string;
  constructor(message: string, opts: { notFound?: boolean; stderrTail?: string; hint?: string; exitCode?: ExitCodeValue }) {
    super(message, { exitCode: opts.exitCode ?? ExitCode.failure, hint: opts.hint, detail: opts.stderrTail || undefined });
    this.name = 'WorkerError';
    this.notFound = opts.notFound ?? false;
    this.stderrTail = opts.stderrTail ?? '';
  }
}

const tail = (text: string, lines: number): string => text.trimEnd().split('\n').slice(-lines).join('\n');

/** Runs a worker to its `result` (see the module comment); throws when it reports or meets a failure. */
export async function runWorker<S extends z.ZodType>(req: WorkerRequest<S>): Promise<z.output<S>> {
  const target = 'module' in req.run ? ['-m', req.run.module] : [req.run.script];
  const log = req.logPath ? createWriteStream(req.logPath, { flags: 'w' }) : undefined;
  let stderr = '';
  const child = execa(req.python, [...target, ...(req.args ?? [])], {
    cwd: pythonShimDir,
    env: {
      PYTHONUNBUFFERED: '1',
      PYTHONWARNINGS: process.env.PYTHONWARNINGS ?? QUIET_PYTHON_WARNINGS,
      PYTHONPATH: [pythonShimDir, process.env.PYTHONPATH].filter(Boolean).join(delimiter),
      ...req.env,
    },
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    ...(req.timeoutMs !== undefined ? { timeout: req.timeoutMs } : {}),
  });
  req.onChild?.(() => child.kill('SIGTERM'));
  if (log) child.stderr?.pipe(log);
  else child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));

  let result: { value: unknown } | undefined;
  let failure: { message: string; exit_code: number } | undefined;
  const stray: string[] = [];
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (raw) => {
      const text = raw.trim();
      if (!text) return;
      let line: unknown;
      try {
        line = JSON.parse(text);
      } catch {
        line = undefined;
      }
      if (typeof line !== 'object' || line === null || typeof (line as { event?: unknown }).event !== 'string') {
        stray.push(text);
        return;
      }
      const msg = line as WorkerEvent;
      if (msg.event === 'result') result = { value: msg.result };
      else if (msg.event === 'error') failure = { message: String(msg.message), exit_code: Number(msg.exit_code) };
      else req.onEvent?.(msg);
    });
  }
  const res = await child;
  if (log) await new Promise<void>((resolve) => log.end(resolve));
  const stderrTail = (lines: number): string =>
    req.logPath ? (existsSync(req.logPath) ? tail(readFileSync(req.logPath, 'utf8'), lines) : '') : tail(stderr, lines);
  const hint = req.logPath ? `its log: ${req.logPath}` : undefined;

  if ((res as { code?: string }).code === 'ENOENT') {
    throw new WorkerError(`Python interpreter not found: ${req.python}`, { notFound: true, exitCode: ExitCode.environment });
  }
  if (failure) {
    if (failure.exit_code === ExitCode.badInput) throw new BadInputError(failure.message);
    throw new WorkerError(`${req.label} failed: ${failure.message}`, { stderrTail: stderrTail(30), hint });
  }
  if (res.timedOut) throw new WorkerError(`${req.label} did not finish within ${req.timeoutMs! / 1000} s (stopped)`, { stderrTail: stderrTail(30), hint });
  if (res.signal) {
    // SIGINT/SIGTERM: stopped (Ctrl-C, onChild's stop); anything else ended it (SIGSEGV, SIGKILL)
    const stopped = res.signal === 'SIGINT' || res.signal === 'SIGTERM';
    throw new WorkerError(`${req.label} ${stopped ? 'stopped' : 'was killed'} (${res.signal})`, {
      exitCode: stopped ? ExitCode.interrupted : ExitCode.failure,
      stderrTail: stderrTail(30),
      hint,
    });
  }
  if (res.exitCode !== 0 || !result) {
    const last = stderrTail(1) || stray.slice(-1)[0] || 'no output';
    throw new WorkerError(`${req.label} failed (exit ${String(res.exitCode)}): ${last}`, { stderrTail: stderrTail(30), hint });
  }
  return checkReply(req.result, result.value, req.label);
}
