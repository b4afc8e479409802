/** Options of every command that launches a supervised training run (`train`, `pretrain`). */
import type { Command } from 'commander';
import { z } from 'zod';
import { experimentFields } from '../core/experiment.js';
import type { LaunchOptions, RunResult } from '../core/run/run.js';
import { ProgressView, resultText } from './progress.js';
import { errColors as pc } from '../utils/colors.js';
import { BadInputError, ExitCode, MkeyError } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { intOption } from '../utils/options.js';

export function addLaunchOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--gpus <n>', 'processes (GPUs) per node; 0 = one process on whatever device torch sees', '0')
    .option('--nproc-per-node <n>', "CPU processes per node through torchrun and gloo, no GPU needed: a multi-GPU recipe tried on a laptop, or a CPU cluster (use --gpus for GPUs)", '0')
    .option('--nnodes <n>', 'nodes in a multi-node run', '1')
    .option('--node-rank <n>', 'rank of this node', '0')
    .option('--master-addr <host>', 'address of node 0', '127.0.0.1')
    .option('--master-port <port>', 'port on node 0', '29500')
    .option('--launcher <name>', 'none | pytorch (torchrun) | slurm (srun)', 'none')
    .option('--resume', 'continue the run in --work-dir from its last checkpoint', false)
    .option('--force', 'start over in a --work-dir that already holds a run (deletes its checkpoints and logs)', false)
    .option('--json', 'print events as JSON lines and the result as one JSON object', false)
    .option('--verbose', `also stream ${what}'s own log (always kept in <work-dir>/mkey-train.log)`, false);
}

export const launchOptionsSchema = z.object({
  workDir: z.string().optional(),
  gpus: intOption('--gpus', 0, 1024),
  nprocPerNode: intOption('--nproc-per-node', 0, 1024),
  nnodes: intOption('--nnodes', 1, 100_000),
  nodeRank: intOption('--node-rank', 0, 100_000),
  masterAddr: z.string().regex(/^[A-Za-z0-9.\-:]+$/, 'a host name or IP address'),
  masterPort: intOption('--master-port', 1, 65_535),
  launcher: experimentFields.launcher,
  resume: z.boolean().default(false),
  force: z.boolean().default(false),
  json: z.boolean().default(false),
  verbose: z.boolean().default(false),
});
export type LaunchCliOptions = z.infer<typeof launchOptionsSchema>;

/** A node's rank names one of the job's nodes: 0 .. --nnodes - 1 (another would wait for a job that never forms). */
function checkNodeRank(opts: { nnodes: number; nodeRank: number }): void {
  if (opts.nodeRank >= opts.nnodes) {
    throw new BadInputError(
      `--node-rank ${opts.nodeRank} is not a node of --nnodes ${opts.nnodes}: accepted 0..${opts.nnodes - 1}`,
      'number the nodes 0, 1, ... with node 0 on --master-addr',
    );
  }
}

/** `--gpus` and `--nproc-per-node` name two kinds of processes: one of them at a time. */
export function checkProcessKind(opts: { gpus: number; nprocPerNode: number }): void {
  if (opts.gpus > 0 && opts.nprocPerNode > 0) {
    throw new BadInputError(
      `--gpus ${opts.gpus} and --nproc-per-node ${opts.nprocPerNode} cannot be combined: --gpus starts GPU processes (NCCL), --nproc-per-node CPU processes (gloo)`,
      'give --gpus N on a GPU machine, --nproc-per-node N without GPUs',
    );
  }
}

/** The longest timeout taken from the environment: a week (torchrun reads the number with int(), so 1e+99 would fail after the launch). */
const MAX_ENV_TIMEOUT_S = 7 * 24 * 3600;

/** A whole number of seconds 1..a week from the environment, else undefined (the default applies). */
function positiveIntFromEnv(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_ENV_TIMEOUT_S) {
    throw new BadInputError(`${name}=${JSON.stringify(raw)}: expected a whole number of seconds 1..${MAX_ENV_TIMEOUT_S} (a week)`);
  }
  return n;
}

/**
 * `MKEY_DIST_TIMEOUT_S` is read by each CPU worker (cpu_worker.py), which can only fall back to its
 * default: a value it cannot use is refused here, before anything is launched or written.
 */
export function checkDistTimeoutEnv(): void {
  positiveIntFromEnv('MKEY_DIST_TIMEOUT_S');
}

/** The launch part of a request, from parsed options and the run directory chosen. */
export function launchOptionsFrom(opts: LaunchCliOptions, workDir: string): LaunchOptions {
  checkProcessKind(opts);
  checkNodeRank(opts);
  checkDistTimeoutEnv();
  return {
    workDir,
    topology: {
      launcher: opts.launcher,
      gpus: opts.gpus,
      cpuProcs: opts.nprocPerNode,
      nnodes: opts.nnodes,
      nodeRank: opts.nodeRank,
      masterAddr: opts.masterAddr,
      masterPort: opts.masterPort,
      rendezvousTimeoutS: positiveIntFromEnv('MKEY_RENDEZVOUS_TIMEOUT_S'),
    },
    resume: opts.resume,
    force: opts.force,
    observer: new ProgressView(opts.json ? 'json' : process.stderr.isTTY ? 'bar' : 'lines', logger.info),
    verbose: opts.verbose,
  };
}

/**
 * The end of a supervised run: a failure is thrown (one error line, exit 1), otherwise the result
 * (text or the JSON object), exit 130 when interrupted, and the next commands to run.
 */
export function finishRun(result: RunResult, opts: { json: boolean }, what: string, next: string[]): void {
  if (result.status === 'failed') throw new MkeyError(`${what} failed: ${result.message}`, { hint: `full log: ${result.workDir}/mkey-train.log` });
  emit({ ok: result.status === 'completed', ...result }, opts, () => resultText(result, what));
  if (result.status === 'interrupted') {
    if (!opts.json) logger.warn(result.message ?? 'interrupted');
    process.exitCode = ExitCode.interrupted;
  } else if (!opts.json) {
    logger.success(pc.bold('done'));
    for (const line of next) logger.info(line);
  }
}
