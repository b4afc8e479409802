"""DDP wraps every manifold key correctly: 2 processes x 4 images give the gradients of 1 process x
8 images (real torchrun, gloo, CPU), in Swin-T as the detector has it and in the pretrain classifiers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name('ddp_gradients_worker.py')
TOLERANCE = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_give_the_one_process_gradients(tmp_path):
    out = tmp_path / 'ddp.json'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
           str(WORKER), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['world_size'] == 2 and report['images'] == 8
    cases = report['cases']
    assert len(cases) == 10
    for name, case in cases.items():
        print(f"{name}: relative gradient error {case['relative_error']:.2e} over {case['parameters']} tensors")
        assert case['same_names'], name
        assert case['unused'] == [], (name, case['unused'])
        assert case['parameters'] > 10, name
        assert case['relative_error'] <= TOLERANCE, (name, case['relative_error'])
