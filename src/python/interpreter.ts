/** Finding and checking the Python interpreter before anything starts it. */
import { accessSync, constants } from 'node:fs';
import { execa } from 'execa';
import { ExitCode, MkeyError } from '../utils/errors.js';
import { pythonInterpreter } from '../utils/paths.js';
import { killProcessGroup } from '../utils/process-group.js';

/** How long the interpreter may take to print its version (MKEY_PYTHON_PROBE_TIMEOUT_MS overrides). */
const PROBE_TIMEOUT_MS = 30_000;

export const setupHint = 'run `npm run setup` (creates .venv/), or set MKEY_PYTHON to an interpreter with the stack';

/**
 * Returns the interpreter path, or throws a one-line error if it does not exist or cannot run.
 * pythonia crashes Node with an uncatchable 'error' event on a missing binary, so this must run
 * before pythonia is imported.
 */
export async function checkInterpreter(): Promise<string> {
  const { path, source } = pythonInterpreter();
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new MkeyError(`Python interpreter not found: ${path} (from ${source})`, {
      exitCode: ExitCode.environment,
      hint: setupHint,
    });
  }
  // Its own process group, killed whole on timeout: a wrapper script that runs Python (or a hung
  // program) without `exec` leaves a grandchild holding the output pipe, and killing only the
  // wrapper would leave this waiting for the pipe to close for ever.
  const child = execa(path, ['-c', 'import sys; print(sys.version_info[0])'], { reject: false, detached: true, stdin: 'ignore' });
  const timeoutMs = Number(process.env.MKEY_PYTHON_PROBE_TIMEOUT_MS) || PROBE_TIMEOUT_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killProcessGroup(child.pid);
  }, timeoutMs);
  const probe = await child.finally(() => clearTimeout(timer));
  if (timedOut) {
    throw new MkeyError(`Python interpreter ${path} (from ${source}) did not answer within ${timeoutMs / 1000} s (it and its children were stopped)`, {
      exitCode: ExitCode.environment,
      hint: setupHint,
    });
  }
  if (probe.exitCode !== 0 || String(probe.stdout).trim() !== '3') {
    throw new MkeyError(`Python interpreter ${path} (from ${source}) does not run Python 3`, {
      exitCode: ExitCode.environment,
      hint: setupHint,
      detail: probe.stderr,
    });
  }
  return path;
}
