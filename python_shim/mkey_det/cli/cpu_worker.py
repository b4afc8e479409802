"""One worker of a multi-process run on CPUs: what torchrun starts instead of the toolbox's script.

    python -m torch.distributed.run --nproc_per_node N .../mkey_det/cli/cpu_worker.py \\
        TOOLS/train.py CONFIG --work-dir DIR --launcher pytorch --cfg-options ...

It makes the path that eight GPUs take (torchrun, DDP, evaluation gathered over ranks) run on
processes without GPUs, through gloo:

* mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``, which a CPU-only torch does
  not have. The gloo process group is set up here first; mmengine's Runner then finds it set up
  and skips its own.
* The collective timeout is ``MKEY_DIST_TIMEOUT_S`` seconds (default ``DEFAULT_TIMEOUT_S``), not
  torch's 30 minutes: a collective a peer never joins fails within it instead of hanging the job.
* The worker gets SIGTERM when its torchrun agent dies (``PR_SET_PDEATHSIG``), so no worker
  outlives a killed agent.
* After the tool ends normally the process group is destroyed, before the interpreter shuts down:
  gloo's worker threads can still hold work objects with tensors, and their destruction during
  interpreter finalisation takes the GIL and aborts the process (SIGABRT), which turned a finished
  run into a failed one (seen once in ``test/distributed.test.ts``; the mechanism is described in
  pytorch/pytorch#179291). A tool that fails leaves the group as it is: its launcher stops the job.

The caller adds ``model_wrapper_cfg`` without ``device_ids`` (DDP on CPU modules) to the command
line; nothing here changes a GPU run, which starts the toolbox's script directly.
"""
from __future__ import annotations

import datetime
import os
import runpy
import sys

from mkey_det.cli.launch_guard import set_parent_death_signal

#: Seconds a collective waits for its peers before it fails (torch's default is 30 minutes).
DEFAULT_TIMEOUT_S = 120
#: The longest accepted (a week, as the CLI's check of MKEY_DIST_TIMEOUT_S): a larger one overflows timedelta.
MAX_TIMEOUT_S = 7 * 24 * 3600


def collective_timeout_s() -> int:
    """``MKEY_DIST_TIMEOUT_S`` as whole seconds 1..a week, else the default (the CLI refuses
    other values before a launch; a worker started otherwise must still not die of one)."""
    raw = os.environ.get('MKEY_DIST_TIMEOUT_S', '')
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if 1 <= value <= MAX_TIMEOUT_S else DEFAULT_TIMEOUT_S


def slurm_environment(env: dict[str, str]) -> dict[str, str]:
    """torch's ``env://`` variables of a task that srun started (as mmengine's ``_init_dist_slurm``
    derives them): rank and world from SLURM_PROCID / SLURM_NTASKS, the master from the first host
    of SLURM_NODELIST (``scontrol show hostnames``) unless MASTER_ADDR is set."""
    if 'RANK' in env or 'SLURM_PROCID' not in env:
        return {}
    derived = {'RANK': env['SLURM_PROCID'], 'WORLD_SIZE': env['SLURM_NTASKS'],
               'LOCAL_RANK': env.get('SLURM_LOCALID', '0'), 'MASTER_PORT': env.get('MASTER_PORT', '29500')}
    if 'MASTER_ADDR' not in env:
        import subprocess

        hosts = subprocess.run(['scontrol', 'show', 'hostnames', env['SLURM_NODELIST']],
                               capture_output=True, text=True, check=True).stdout.split()
        derived['MASTER_ADDR'] = hosts[0]
    return derived


def init_gloo() -> None:
    """The default process group over gloo, from torchrun's environment (RANK, WORLD_SIZE, ...) or
    srun's (SLURM_PROCID, ...)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.update(slurm_environment(dict(os.environ)))
    dist.init_process_group(
        backend='gloo',
        init_method='env://',
        timeout=datetime.timedelta(seconds=collective_timeout_s()),
    )


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit('usage: cpu_worker.py SCRIPT [ARGS...]')
    set_parent_death_signal()
    init_gloo()
    script = argv[0]
    sys.argv = [script, *argv[1:]]
    # As if Python had started the script itself: its folder first on the path, not this one's.
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name='__main__')
    destroy_gloo()


def destroy_gloo() -> None:
    """Destroys the default process group if it is still set up (a no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1:])
