/**
 * How a training or evaluation process is started: one Python process, torchrun for several
 * processes (and nodes), or Slurm's srun. Pure: returns the command line, runs nothing.
 */
import type { Launcher } from '../experiment.js';

export interface LaunchTopology {
  launcher: Launcher;
  /** Processes (GPUs) per node; 0 or 1 = a single process. */
  gpus: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
}

export interface LaunchPlan {
  command: string;
  args: string[];
  /** The launcher actually used (`none` becomes `pytorch` for several processes). */
  launcher: Launcher;
  /** Processes in the whole job. */
  worldSize: number;
}

export const DEFAULT_TOPOLOGY: LaunchTopology = {
  launcher: 'none',
  gpus: 0,
  nnodes: 1,
  nodeRank: 0,
  masterAddr: '127.0.0.1',
  masterPort: 29500,
};

/**
 * @param python interpreter path
 * @param script MMDetection's tools/train.py or tools/test.py
 * @param scriptArgs arguments of the script (config, --work-dir, ...), without --launcher
 */
export function planLaunch(python: string, script: string, scriptArgs: string[], topo: LaunchTopology): LaunchPlan {
  const procsPerNode = Math.max(1, topo.gpus);
  const worldSize = procsPerNode * topo.nnodes;
  const launcher: Launcher = topo.launcher === 'none' && worldSize > 1 ? 'pytorch' : topo.launcher;
  if (launcher === 'none') {
    return { command: python, args: ['-u', script, ...scriptArgs, '--launcher', 'none'], launcher, worldSize: 1 };
  }
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
        script,
        ...scriptArgs,
        '--launcher',
        'pytorch',
      ],
      launcher,
      worldSize,
    };
  }
  // Slurm: one task per GPU, as MMDetection's tools/slurm_train.sh does.
  return {
    command: 'srun',
    args: [
      `--ntasks=${worldSize}`,
      `--ntasks-per-node=${procsPerNode}`,
      ...(topo.gpus > 0 ? [`--gres=gpu:${procsPerNode}`] : []),
      '--kill-on-bad-exit=1',
      python,
      '-u',
      script,
      ...scriptArgs,
      '--launcher',
      'slurm',
    ],
    launcher,
    worldSize,
  };
}
