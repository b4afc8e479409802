/**
 * A sweep on Slurm: one `sbatch` script per cell, each running the cell's own command line (the
 * one the local queue runs, `--launcher slurm` inside the job: `mkey-det train` starts its tasks
 * with srun), submitted with `sbatch --parsable`; the job ids go into `sweep.json`, and
 * `sweep --status` asks `squeue` which of them still wait or run.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ExitCode, MkeyError } from '../../utils/errors.js';
import { shellWord } from '../../utils/paths.js';
import { onPath } from '../run/supervise.js';
import type { CellLaunch } from './matrix.js';
import { cellCommand } from './queue.js';
import type { CellRecord, SweepRecord } from './state.js';

/**
 * `--slurm-args` as separate sbatch options: split at spaces, single and double quotes keep a
 * value whole (`--slurm-args "--partition=gpu --comment='two words'"`).
 */
export function splitSlurmArgs(raw: string): string[] {
  const words: string[] = [];
  let current: string | undefined;
  let quote: string | undefined;
  for (const c of raw) {
    if (quote) {
      if (c === quote) quote = undefined;
      else current = (current ?? '') + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      current = current ?? '';
    } else if (/\s/.test(c)) {
      if (current !== undefined) words.push(current);
      current = undefined;
    } else current = (current ?? '') + c;
  }
  if (quote) throw new MkeyError(`--slurm-args ${JSON.stringify(raw)}: a quote is not closed`, { exitCode: ExitCode.badInput });
  if (current !== undefined) words.push(current);
  const stray = words.find((w) => !w.startsWith('-'));
  if (stray !== undefined) {
    throw new MkeyError(`--slurm-args ${JSON.stringify(raw)}: ${JSON.stringify(stray)} is not an sbatch option (expected options such as --partition=gpu --time=48:00:00)`, {
      exitCode: ExitCode.badInput,
    });
  }
  return words;
}

/** The `#SBATCH` resources of a cell: its nodes, one task per GPU (or CPU process), the GPUs. */
export function cellResources(launch: CellLaunch): string[] {
  const perNode = Math.max(1, launch.gpus > 0 ? launch.gpus : launch.nprocPerNode);
  return [`--nodes=${launch.nnodes}`, `--ntasks-per-node=${perNode}`, ...(launch.gpus > 0 ? [`--gres=gpu:${launch.gpus}`] : [])];
}

/** The sbatch script of one cell (its command line decided now: `--resume` / `--force` as the local queue would add them). */
export function cellScript(rec: SweepRecord, cell: CellRecord, launch: CellLaunch, slurmArgs: string[], flags: string[], sweepDir: string): string {
  const out = join(sweepDir, 'slurm', `${cell.name}-%j.out`);
  const sbatch = [`--job-name=${cell.name}`, ...cellResources(launch), `--output=${out}`, ...slurmArgs];
  return [
    '#!/bin/bash',
    ...sbatch.map((o) => `#SBATCH ${o}`),
    `# mkey-det sweep ${rec.name}, cell ${cell.name}: written by \`mkey-det sweep --launcher slurm --submit\`;`,
    '# the same command line the local queue runs (mkey-det starts the tasks with srun inside this job).',
    'set -eu',
    '# jobs that share a node must not share torch\'s rendezvous port (29500 by default): one per job id',
    'export MASTER_PORT="${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 20000))}"',
    `cd ${shellWord(rec.cwd)}`,
    `exec ${cellCommand(cell, flags).map(shellWord).join(' ')}`,
    '',
  ].join('\n');
}

/** Writes a cell's script under `<sweep-dir>/slurm/`; returns its path. */
export function writeCellScript(sweepDir: string, cell: CellRecord, text: string): string {
  const dir = join(sweepDir, 'slurm');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${cell.name}.sbatch`);
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

/** Refuses `--submit` where Slurm's `sbatch` is not on PATH (exit 3, one line). */
export function requireSbatch(): void {
  if (!onPath('sbatch')) {
    throw new MkeyError('--submit: sbatch is not on PATH (Slurm is not installed here, or its module is not loaded)', {
      exitCode: ExitCode.environment,
      hint: 'submit from a Slurm login node, or run the queue here without --submit',
    });
  }
}

/** `sbatch --parsable SCRIPT` -> the job id (`1234`, or `1234;cluster` on a federation: the id part). */
export async function submitScript(script: string, cwd: string): Promise<string> {
  const res = await execa('sbatch', ['--parsable', script], { cwd, reject: false });
  const out = String(res.stdout ?? '').trim();
  const id = /^(\d+(?:_\d+)?)(;\S+)?$/.exec(out.split('\n').at(-1) ?? '')?.[1];
  if (res.exitCode !== 0 || !id) {
    const why = String(res.stderr ?? '').trim().split('\n').at(-1) || out || `exit ${res.exitCode}`;
    throw new MkeyError(`sbatch ${script} failed: ${why}`);
  }
  return id;
}

/**
 * The queue states of `jobIds` from `squeue` (`PENDING`, `RUNNING`, ...): a job squeue no longer
 * lists has ended (or was never known). Undefined when squeue is not here.
 */
export async function squeueStates(jobIds: string[]): Promise<Map<string, string> | undefined> {
  if (!onPath('squeue')) return undefined;
  const states = new Map<string, string>();
  if (jobIds.length === 0) return states;
  const res = await execa('squeue', ['--noheader', '--format=%i %T', `--jobs=${jobIds.join(',')}`], { reject: false });
  // squeue refuses a list whose jobs have all left the queue ("Invalid job id specified"): none is queued
  if (res.exitCode !== 0) return states;
  for (const line of String(res.stdout ?? '').split('\n')) {
    const [id, state] = line.trim().split(/\s+/);
    if (id && state) states.set(id, state);
  }
  return states;
}
