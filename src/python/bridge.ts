/**
 * The Python bridge: short calls (config validation, model build, counting, export) into the
 * `mkey_det.cli.bridge` module through pythonia. Code calls an entry with `call(bridge,
 * 'entry.name', args)` of entries.ts, which checks the arguments and the reply against the
 * entry's schemas; `PythonBridge.call` below is the untyped transport under it. Long or
 * crash-prone work runs in worker processes instead (worker.ts; training and evaluation:
 * src/core/run/launch.ts).
 *
 * pythonia is imported lazily so commands that need no Python never start one. Every call returns
 * a JSON string built on the Python side (`{ok, value}` or `{ok:false, error:{type,message,traceback}}`),
 * which keeps NaN/inf and unserialisable values from crashing Node.
 */
import { BadInputError, ExitCode, MkeyError } from '../utils/errors.js';
import { logger } from '../utils/logger.js';
import type { ChildProcess } from 'node:child_process';
import { checkInterpreter } from './interpreter.js';

export interface BridgeCallOptions {
  /** Milliseconds before the call is abandoned (the Python side keeps running until the bridge closes). */
  timeoutMs?: number;
}

export interface PythonBridge {
  /** The transport: no check of the reply (use `call` of entries.ts, which has the schemas). */
  call<T = unknown>(entry: string, args?: Record<string, unknown>, opts?: BridgeCallOptions): Promise<T>;
  close(): Promise<void>;
}

/** Raised when Python raised: carries the Python exception type, message and traceback. */
export class PythonError extends MkeyError {
  readonly pythonType: string;
  readonly traceback: string;
  constructor(type: string, message: string, traceback: string) {
    super(`${type}: ${message}`, { exitCode: ExitCode.failure, detail: traceback });
    this.name = 'PythonError';
    this.pythonType = type;
    this.traceback = traceback;
  }
}

/**
 * `err` as the user's mistake (exit 2, the Python message without its type) when Python raised one
 * of `types`: the Python side raises those for input it refuses (a checkpoint that does not fit, a
 * folder that is no run); anything else is returned unchanged. `hint` may add a hint per message.
 */
export function asBadInput(err: unknown, types: readonly string[] = ['ValueError'], hint?: (message: string) => string | undefined): unknown {
  if (!(err instanceof PythonError) || !types.includes(err.pythonType)) return err;
  const message = err.message.slice(err.pythonType.length + 2); // without "<Type>: "
  return new BadInputError(message, hint?.(message));
}

type PythoniaModule = typeof import('pythonia');
type Envelope = { ok: true; value: unknown } | { ok: false; error: { type: string; message: string; traceback: string } };

/** The value of a reply envelope built by python_shim/mkey_det/cli/bridge.py's `call`; a PythonError when Python raised. */
export function fromEnvelope(json: string): unknown {
  const env = JSON.parse(json) as Envelope;
  if (!env.ok) throw new PythonError(env.error.type, env.error.message, env.error.traceback);
  return env.value;
}

let active: { mod: PythoniaModule; entry: any; refs: number; died: Promise<never> } | undefined;

const DEFAULT_TIMEOUT_MS = 600_000;
/** mmengine and mmcv import pkg_resources, which warns on every start; that line helps no user. */
export const QUIET_PYTHON_WARNINGS = 'ignore:pkg_resources is deprecated:UserWarning';

// Node does not exit while the bridge holds its Python child, so while one runs a signal must take
// it down too. Installed only while the bridge is open: long runs supervise their own children.
/** The pythonia module once imported (its Python may still be starting while `active` is unset). */
let loaded: PythoniaModule | undefined;

const onSignal = (signal: NodeJS.Signals): void => {
  const mod = active?.mod ?? loaded;
  const proc = mod ? bridgeProcess(mod) : undefined;
  shutdownBridge();
  // pythonia's exit is a message the Python side reads only after the call in flight (seconds of
  // model building): end it now, nothing of it needs saving.
  stopPythonOnSignal(signal, proc ?? undefined);
};

/**
 * A Ctrl-C or SIGTERM while a Python process works for this CLI (before any training runs): ends it
 * at once (nothing of it needs saving), says so in one line, exits 130. The bridge and a one-process
 * launch's check (src/core/run/primed.ts) both stop this way.
 */
export function stopPythonOnSignal(signal: NodeJS.Signals, proc: Pick<ChildProcess, 'pid' | 'exitCode' | 'signalCode' | 'kill'> | undefined): never {
  if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  logger.warn(`${signal}: stopped${proc?.pid ? ` (the Python side, pid ${proc.pid}, ended)` : ''}`);
  process.exit(ExitCode.interrupted);
}

/** How a process ended, for a one-line error: `was killed by SIGKILL (out of memory, or by hand)`, `exited with code 1`. */
export function processEnding(code: number | null | undefined, signal: string | null | undefined): string {
  return signal ? `was killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory, or by hand)' : ''}` : `exited with code ${code}`;
}

/** Ends the Python process behind the bridge, if one runs. Safe to call more than once. */
/** Python processes this module ended itself (their exit is no failure). */
const endedHere = new WeakSet<ChildProcess>();
// pythonia's child process: its CommonJS exports (the ESM namespace's default) carry `com.proc`
const bridgeProcess = (mod: PythoniaModule): ChildProcess | null | undefined => {
  const cjs = ((mod as unknown as { default?: unknown }).default ?? mod) as { com?: { proc?: ChildProcess | null } };
  return cjs.com?.proc;
};

export function shutdownBridge(): void {
  if (!active) return;
  const proc = bridgeProcess(active.mod);
  if (proc) endedHere.add(proc);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  try {
    active.mod.python.exit();
  } catch {
    /* already gone */
  }
  active = undefined;
}

/**
 * Rejects when the Python process behind the bridge ends while the bridge is open (killed for
 * memory, SIGKILL): pythonia alone would leave every pending call waiting for ever.
 */
function watchPython(mod: PythoniaModule): Promise<never> {
  const proc = bridgeProcess(mod);
  const died = new Promise<never>((_, reject) => {
    proc?.once('exit', (code, signal) => {
      if (endedHere.has(proc)) return; // ended by shutdownBridge
      reject(new MkeyError(`the Python process (pid ${proc.pid}) ${processEnding(code, signal)}`, { exitCode: ExitCode.failure }));
    });
  });
  died.catch(() => undefined); // a rejection nobody awaits is no crash
  return died;
}

/** Starts (or reuses) the Python side and returns a handle; `close()` ends it when the last user closes. */
export async function openBridge(): Promise<PythonBridge> {
  if (!active) {
    const py = await checkInterpreter();
    process.env.PYTHON_BIN = py;
    process.env.PYTHONUNBUFFERED = '1';
    process.env.PYTHONWARNINGS ??= QUIET_PYTHON_WARNINGS;
    process.env.OMP_WAIT_POLICY ??= 'PASSIVE'; // see spawnLogged in src/core/run/supervise.ts
    process.env.REQ_TIMEOUT ??= String(DEFAULT_TIMEOUT_MS);
    const mod = (await import('pythonia')) as PythoniaModule;
    loaded = mod;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let entry: any;
    // python() (re)starts the process first thing: watch the one it started
    const importing = mod.python('mkey_det.cli.bridge');
    const died = watchPython(mod);
    try {
      entry = await Promise.race([importing, died]);
    } catch (err) {
      if (err instanceof MkeyError) throw err; // the Python process ended
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      mod.python.exit();
      const text = err instanceof Error ? err.stack || err.message : String(err);
      const missing = /No module named '([^']+)'/.exec(text);
      throw new MkeyError(
        missing ? `Python cannot import ${missing[1]} (interpreter ${py})` : `Python bridge failed to start (interpreter ${py})`,
        { exitCode: ExitCode.environment, hint: 'run `npm run setup`', detail: text },
      );
    }
    active = { mod, entry, refs: 0, died };
  }
  const session = active;
  session.refs += 1;
  let closed = false;
  return {
    async call<T>(name: string, args: Record<string, unknown> = {}, opts: BridgeCallOptions = {}): Promise<T> {
      if (closed) throw new MkeyError('Python bridge already closed');
      const raw: unknown = await Promise.race([
        session.entry.call$(name, JSON.stringify(args), {
          $timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        }).catch((err: unknown) => {
          const text = err instanceof Error ? err.stack || err.message : String(err);
          const timedOut = /didn't respond in time|timed out/i.test(text);
          throw new MkeyError(timedOut ? `Python call ${name} timed out` : `Python call ${name} failed in the bridge`, {
            detail: text,
          });
        }),
        session.died.catch((err: MkeyError) => {
          throw new MkeyError(`${err.message} during ${name}`, { exitCode: err.exitCode });
        }),
      ]);
      return fromEnvelope(String(raw)) as T;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      session.refs -= 1;
      if (session.refs === 0 && active === session) shutdownBridge();
    },
  };
}

/** Runs `fn` with a bridge and always closes it. */
export async function withBridge<T>(fn: (bridge: PythonBridge) => Promise<T>): Promise<T> {
  const bridge = await openBridge();
  try {
    return await fn(bridge);
  } finally {
    await bridge.close();
  }
}
