"""The multi-process CPU worker (mkey_det/cli/cpu_worker.py) as torchrun starts it: one real gloo
rank (RANK=0, WORLD_SIZE=1 in the environment, as torchrun sets them) running a tool script."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mkey_det.cli.cpu_worker as cpu_worker

#: A tool that does one collective and, at interpreter exit, writes whether the group is still set up.
TOOL = '''
import atexit, json, sys
import torch
import torch.distributed as dist
t = torch.ones(3)
dist.all_reduce(t)
state = {'sum': t.tolist(), 'world': dist.get_world_size()}
def record():
    state['initialized_at_exit'] = dist.is_initialized()
    with open(sys.argv[1], 'w') as f:
        json.dump(state, f)
atexit.register(record)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_the_process_group_is_gone_before_the_interpreter_exits(tmp_path: Path):
    """gloo's threads must not meet interpreter shutdown with the group set up (SIGABRT there)."""
    tool, out = tmp_path / 'tool.py', tmp_path / 'state.json'
    tool.write_text(TOOL)
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()), OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, cpu_worker.__file__, str(tool), str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(out.read_text())
    assert state == {'sum': [1.0, 1.0, 1.0], 'world': 1, 'initialized_at_exit': False}
