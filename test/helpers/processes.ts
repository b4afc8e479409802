/** The process tree of a CLI under test, read from /proc (Linux): who is alive, which worker is which rank. */
import { readdirSync, readFileSync } from 'node:fs';
import { pidAlive } from './cli.js';

/** Parent pid of every live process. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ...", comm may hold spaces and parentheses
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.set(Number(name), ppid);
    } catch {
      // ended while being read
    }
  }
  return out;
}

/** Every live descendant of `pid` (children, grandchildren, ...). */
export function descendants(pid: number): number[] {
  const byParent = parents();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [child, parent] of byParent) {
      if (parent === p) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** A process's command line, its arguments joined by spaces ('' once it has ended). */
export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** A process's environment variable, or undefined (gone, or not set). */
export function envOf(pid: number, name: string): string | undefined {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return env.find((kv) => kv.startsWith(`${name}=`))?.slice(name.length + 1);
  } catch {
    return undefined;
  }
}

/**
 * The training workers under `pid` (processes torchrun or srun started with a RANK), by rank; not
 * their own children (DataLoader workers inherit RANK and the command line).
 */
export function workersByRank(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  const byParent = parents();
  const candidates = new Set<number>();
  for (const p of descendants(pid)) {
    const rank = envOf(p, 'RANK') ?? envOf(p, 'SLURM_PROCID');
    const cmd = (() => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (rank !== undefined && cmd.includes('cpu_worker.py')) candidates.add(p);
  }
  for (const p of candidates) {
    if (!candidates.has(byParent.get(p) ?? -1)) out.set(Number(envOf(p, 'RANK') ?? envOf(p, 'SLURM_PROCID')), p);
  }
  return out;
}

/** Waits until none of `pids` is alive; returns the seconds it took, or throws after `timeoutMs`. */
export async function waitAllGone(pids: number[], timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (pids.some(pidAlive)) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`still alive after ${timeoutMs / 1000} s: ${pids.filter(pidAlive).join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return (Date.now() - t0) / 1000;
}

/** Polls until no process is left in the process group `pgid` (reaped ones included); throws after `timeoutMs`. */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const gone = () => {
    try {
      process.kill(-pgid, 0);
      return undefined;
    } catch {
      return true;
    }
  };
  await waitFor(gone, timeoutMs, `the end of every process in group ${pgid}`);
}

/** Waits for `check` to return a value (polling); throws after `timeoutMs` with `what`. */
export async function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
