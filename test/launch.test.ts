import { describe, expect, it } from 'vitest';
import { DEFAULT_TOPOLOGY, planLaunch } from '../src/core/run/launch.js';

const py = '/venv/bin/python';
const script = '/mmdet/.mim/tools/train.py';
const args = ['cfg.py', '--work-dir', 'wd'];

describe('planLaunch', () => {
  it('runs one plain process by default', () => {
    const plan = planLaunch(py, script, args, DEFAULT_TOPOLOGY);
    expect(plan).toEqual({ command: py, args: ['-u', script, ...args, '--launcher', 'none'], launcher: 'none', worldSize: 1 });
  });

  it('uses torchrun for several GPUs, even when --launcher none was given', () => {
    const plan = planLaunch(py, script, args, { ...DEFAULT_TOPOLOGY, gpus: 4 });
    expect(plan.launcher).toBe('pytorch');
    expect(plan.worldSize).toBe(4);
    expect(plan.args.slice(0, 2)).toEqual(['-m', 'torch.distributed.run']);
    expect(plan.args).toContain('--nproc_per_node=4');
    expect(plan.args.slice(-2)).toEqual(['--launcher', 'pytorch']);
  });

  it('passes the multi-node topology to torchrun', () => {
    const plan = planLaunch(py, script, args, {
      launcher: 'pytorch', gpus: 8, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 29555,
    });
    expect(plan.worldSize).toBe(16);
    expect(plan.args).toEqual(expect.arrayContaining(['--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.1', '--master_port=29555', '--nproc_per_node=8']));
  });

  it('uses srun with one task per GPU for slurm', () => {
    const plan = planLaunch(py, script, args, { ...DEFAULT_TOPOLOGY, launcher: 'slurm', gpus: 8, nnodes: 2 });
    expect(plan.command).toBe('srun');
    expect(plan.args.slice(0, 4)).toEqual(['--ntasks=16', '--ntasks-per-node=8', '--gres=gpu:8', '--kill-on-bad-exit=1']);
    expect(plan.args.slice(-2)).toEqual(['--launcher', 'slurm']);
  });
});
