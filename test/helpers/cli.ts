/** Runs the built CLI (`bin/mkey-det.js` -> dist/) as a user would, capturing output and exit code. */
import { execa, type Options } from 'execa';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const cliPath = join(repoRoot, 'bin', 'mkey-det.js');

export async function runCli(args: string[], opts: Options = {}) {
  const res = await execa('node', [cliPath, ...args], { reject: false, cwd: repoRoot, ...opts });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? '') };
}
