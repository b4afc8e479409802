/** Finding and checking the Python interpreter before anything starts it. */
import { accessSync, constants } from 'node:fs';
import { execa } from 'execa';
import { ExitCode, MkeyError } from '../utils/errors.js';
import { pythonInterpreter } from '../utils/paths.js';

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
  const probe = await execa(path, ['-c', 'import sys; print(sys.version_info[0])'], { reject: false, timeout: 30_000 });
  if (probe.exitCode !== 0 || probe.stdout.trim() !== '3') {
    throw new MkeyError(`Python interpreter ${path} (from ${source}) does not run Python 3`, {
      exitCode: ExitCode.environment,
      hint: setupHint,
      detail: probe.stderr,
    });
  }
  return path;
}
