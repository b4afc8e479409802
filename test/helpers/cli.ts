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

/** The interpreter the CLI uses in tests. */
export const testPython = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');

/** Whether a process is alive (signal 0). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A tiny COCO-layout dataset (4 train, 3 val images of 128x128) from the demo generator. Three val
 * images, so that every class has a val annotation with the default seed: otherwise the dataset
 * check's warning about a class without one comes before the line a test looks at.
 */
export async function makeTinyDataset(out: string): Promise<string> {
  await execa(testPython, ['-m', 'mkey_det.data.demo', '--out', out, '--num-train', '4', '--num-val', '3', '--image-size', '128']);
  return out;
}
