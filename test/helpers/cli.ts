/** Runs the built CLI (`bin/mkey-det.js` -> dist/) as a user would, capturing output and exit code. */
import { execa, type Options } from 'execa';
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
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
  // The same generator with the same arguments made the shared run's dataset (test/helpers/shared-run.ts):
  // a copy of it spares a Python start that imports the whole stack (`-m` imports the mkey_det package).
  const made = generatedTinyDataset();
  if (made) {
    cpSync(made, out, { recursive: true });
    return out;
  }
  await execa(testPython, ['-m', 'mkey_det.data.demo', ...TINY_DATASET_ARGS, '--out', out]);
  return out;
}

export const TINY_DATASET_ARGS = ['--num-train', '4', '--num-val', '3', '--image-size', '128'];

/** The shared run's dataset when this is a test with one generated (see shared-run.ts), else undefined. */
function generatedTinyDataset(): string | undefined {
  let data: string;
  try {
    data = inject('sharedRun').data;
  } catch {
    return undefined; // not inside a test file (vitest's globalSetup itself)
  }
  return existsSync(join(data, 'annotations', 'instances_val2017.json')) ? data : undefined;
}
