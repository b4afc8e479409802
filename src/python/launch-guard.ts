/**
 * The launch guard (python_shim/mkey_det/cli/launch_guard.py) in front of a command: the command
 * gets SIGTERM when this CLI dies, even by SIGKILL. Started by file path, not `python -m
 * mkey_det.cli.launch_guard`: `-m` imports the `mkey_det` package first, which imports torch,
 * MMDetection and mmpretrain (about 4.5 s of CPU on 2 cores) only to `exec` the command right after;
 * the script needs nothing but the standard library.
 */
import { join } from 'node:path';
import { pythonShimDir } from '../utils/paths.js';

export const launchGuardScript = join(pythonShimDir, 'mkey_det', 'cli', 'launch_guard.py');

/** The interpreter's arguments that run `command` under the guard of this process. */
export function guardedArgs(command: string[]): string[] {
  return [launchGuardScript, '--supervisor', String(process.pid), '--', ...command];
}
