/** Ending a child started with `detached: true` (its own process group) together with what it started. */

/** SIGKILL to every process in the group led by `pid`; nothing when none is left. */
export function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* the group is empty */
  }
}
