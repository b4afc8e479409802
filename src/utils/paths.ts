/** Where the project's own files and its Python environment live. */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository (or installed package) root: the folder holding package.json. */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('mkey-det: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
})();

export const pythonShimDir = join(packageRoot, 'python_shim');
export const configsDir = join(packageRoot, 'configs');
export const setupScript = join(packageRoot, 'scripts', 'setup-python.sh');

/**
 * The Python interpreter every command uses: `MKEY_PYTHON` if set, else the project's `.venv`.
 * Returned even when missing: callers check it (see `checkInterpreter`) to give a clear message.
 */
export function pythonInterpreter(): { path: string; source: 'MKEY_PYTHON' | '.venv' } {
  const fromEnv = process.env.MKEY_PYTHON;
  if (fromEnv && fromEnv.trim() !== '') return { path: resolve(fromEnv), source: 'MKEY_PYTHON' };
  return { path: join(packageRoot, '.venv', 'bin', 'python'), source: '.venv' };
}

/** A path as a person types it from here: relative when it lies below the working directory, else absolute. */
export function displayPath(p: string): string {
  const rel = relative(process.cwd(), resolve(p));
  if (rel === '') return '.';
  return rel.startsWith('..') || isAbsolute(rel) ? resolve(p) : rel;
}

/**
 * `s` as one word of a POSIX shell command line: unchanged when it holds only characters no shell
 * treats specially, else in single quotes (a `'` written as `'\''`). For the commands the CLI
 * prints to be pasted: a path holding `$(...)`, spaces or quotes must stay one literal argument.
 */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `displayPath(p)` as one shell word. */
export function shellPath(p: string): string {
  return shellWord(displayPath(p));
}
