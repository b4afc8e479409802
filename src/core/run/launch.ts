/**
 * How a training or evaluation process is started: one Python process, torchrun for several
 * processes (and nodes), or Slurm's srun; on GPUs (NCCL) or on CPUs (gloo). Pure: returns the
 * command line, runs nothing.
 */
import { join } from 'node:path';
import { pythonShimDir } from '../../utils/paths.js';
import type { Launcher } from '../experiment.js';

/** What torchrun or srun starts on each CPU process instead of the toolbox's script. */
export const CPU_WORKER = join(pythonShimDir, 'mkey_det', 'cli', 'cpu_worker.py');

export interface LaunchTopology {
  launcher: Launcher;
  /** GPU processes per node; 0 or 1 = a single process. */
  gpus: number;
  /**
   * CPU processes per node (`--nproc-per-node`), talking through gloo: the multi-GPU path run
   * without GPUs (a recipe tried on a laptop, CPU clusters). 0 or absent = not asked for.
   */
  cpuProcs?: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /**
   * Seconds the nodes of a multi-node job wait for each other before torchrun gives up (its static
   * rendezvous; torch's own default is 600 s). Absent = `RENDEZVOUS_TIMEOUT_S`.
   */
  rendezvousTimeoutS?: number;
}

/** How long the nodes of a multi-node torchrun job wait for each other by default. */
export const RENDEZVOUS_TIMEOUT_S = 300;

export interface LaunchPlan {
  command: string;
  args: string[];
  /** The launcher actually used (`none` becomes `pytorch` for several processes). */
  launcher: Launcher;
  /** Processes in the whole job. */
  worldSize: number;
}

/**
 * Config overrides of a run whose processes have no GPU: gloo instead of NCCL, and DDP wrapping
 * CPU modules, which takes no `device_ids` (mmengine's Runner passes `[LOCAL_RANK]` unless the
 * wrapper's config says otherwise).
 */
export const CPU_DIST_CFG_OPTIONS = [
  'env_cfg.dist_cfg.backend=gloo',
  'model_wrapper_cfg.type=MMDistributedDataParallel',
  'model_wrapper_cfg.device_ids=None',
  'model_wrapper_cfg.broadcast_buffers=False',
  'model_wrapper_cfg.find_unused_parameters=False',
];

/**
 * Whether the job's processes run on CPUs: asked for (`--nproc-per-node`), or a distributed launch
 * on a machine without CUDA devices. A run on GPUs never takes this path.
 */
export function runsOnCpus(topo: LaunchTopology, cudaDevices: number): boolean {
  if ((topo.cpuProcs ?? 0) > 0) return true;
  return cudaDevices === 0 && topo.gpus <= 1 && (topo.launcher !== 'none' || topo.nnodes > 1);
}

export const DEFAULT_TOPOLOGY: LaunchTopology = {
  launcher: 'none',
  gpus: 0,
  nnodes: 1,
  nodeRank: 0,
  masterAddr: '127.0.0.1',
  masterPort: 29500,
};

/** The CPU worker to put in front of the script when the job's processes run on CPUs, else undefined. */
export function cpuWorkerFor(topo: LaunchTopology, pre: { cuda_devices: number }): string | undefined {
  return runsOnCpus(topo, pre.cuda_devices) ? CPU_WORKER : undefined;
}

/** Processes on each node: the CPU processes asked for, else one per GPU, at least one. */
const procsPerNodeOf = (topo: LaunchTopology): number => Math.max(1, (topo.cpuProcs ?? 0) > 0 ? topo.cpuProcs! : topo.gpus);

/** Processes in the whole job. */
export const worldSizeOf = (topo: LaunchTopology): number => procsPerNodeOf(topo) * topo.nnodes;

/**
 * @param python interpreter path
 * @param script MMDetection's tools/train.py or tools/test.py
 * @param scriptArgs arguments of the script (config, --work-dir, ...), without --launcher
 * @param cpuWorker `CPU_WORKER` when the processes run on CPUs (see `runsOnCpus`)
 */
export function planLaunch(python: string, script: string, scriptArgs: string[], topo: LaunchTopology, cpuWorker?: string): LaunchPlan {
  const procsPerNode = procsPerNodeOf(topo);
  const worldSize = worldSizeOf(topo);
  const launcher: Launcher = topo.launcher === 'none' && worldSize > 1 ? 'pytorch' : topo.launcher;
  if (launcher === 'none') {
    return { command: python, args: ['-u', script, ...scriptArgs, '--launcher', 'none'], launcher, worldSize: 1 };
  }
  // On CPUs each worker sets up gloo before the script's mmengine would ask CUDA (mkey_det/cli/cpu_worker.py).
  const entry = cpuWorker !== undefined ? [cpuWorker, script, ...scriptArgs, '--cfg-options', ...CPU_DIST_CFG_OPTIONS] : [script, ...scriptArgs];
  if (launcher === 'pytorch') {
    return {
      command: python,
      args: [
        '-m',
        'torch.distributed.run',
        `--nnodes=${topo.nnodes}`,
        `--node_rank=${topo.nodeRank}`,
        `--master_addr=${topo.masterAddr}`,
        `--nproc_per_node=${procsPerNode}`,
        `--master_port=${topo.masterPort}`,
        ...(topo.nnodes > 1 ? [`--rdzv_conf=timeout=${topo.rendezvousTimeoutS ?? RENDEZVOUS_TIMEOUT_S}`] : []),
        ...entry,
        '--launcher',
        'pytorch',
      ],
      launcher,
      worldSize,
    };
  }
  // Slurm: one task per process (GPU), as MMDetection's tools/slurm_train.sh does.
  return {
    command: 'srun',
    args: [
      `--ntasks=${worldSize}`,
      `--ntasks-per-node=${procsPerNode}`,
      ...(topo.gpus > 0 ? [`--gres=gpu:${procsPerNode}`] : []),
      '--kill-on-bad-exit=1',
      python,
      '-u',
      ...entry,
      '--launcher',
      'slurm',
    ],
    launcher,
    worldSize,
  };
}
