"""Per-op CPU profile of one demo training step (the config `mkey-det config --data demo` writes).

    node bin/mkey-det.js config --data demo --out /tmp/demo.py
    .venv/bin/python benchmarks/explore/profile_demo_step.py /tmp/demo.py [--steps 3] [--cfg-options k=v ...]

The runner is built from the config as `tools/train.py` builds it (the demo dataset, its batch of
8 real 64x64 images, AdamW, gradient clipping); 3 warm-up steps, then `--steps` profiled with
torch.profiler (CPU, top ops by self time), then the mean step time of `--steps` unprofiled
steps and the share of the step spent in each part of the detector's forward (backbone, neck,
RPN head, RoI head), timed with forward hooks.
"""
import argparse
import sys
import tempfile
import time
from collections import defaultdict

import torch

sys.stdout = sys.stderr  # mmengine logs to stdout; the tables below go to the real one
import mkey_det  # noqa: F401  (registers the plugin; makes torchvision importable)
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

parser = argparse.ArgumentParser()
parser.add_argument('config')
parser.add_argument('--steps', type=int, default=3)
parser.add_argument('--cfg-options', nargs='+', action=DictAction)
args = parser.parse_args()

cfg = Config.fromfile(args.config)
if args.cfg_options:
    cfg.merge_from_dict(args.cfg_options)
cfg.work_dir = tempfile.mkdtemp(prefix='mkey-demo-profile-')
cfg.default_hooks.logger.interval = 10_000
runner = Runner.from_cfg(cfg)
model = runner.model
model.train()
ow = runner.build_optim_wrapper(cfg.optim_wrapper)
loader = runner.build_dataloader(cfg.train_dataloader)
batches = [b for _, b in zip(range(args.steps * 2 + 3), iter(loader))]
torch.manual_seed(0)

part_time: dict[str, float] = defaultdict(float)
starts: dict[str, float] = {}
for name in ('backbone', 'neck', 'rpn_head', 'roi_head'):
    mod = getattr(model, name)
    mod.register_forward_pre_hook(lambda m, a, n=name: starts.__setitem__(n, time.perf_counter()))
    mod.register_forward_hook(lambda m, a, o, n=name: part_time.__setitem__(n, part_time[n] + time.perf_counter() - starts[n]))

it = iter(batches)
for _ in range(3):
    model.train_step(next(it), ow)

from torch.profiler import ProfilerActivity, profile  # noqa: E402

with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(args.steps):
        model.train_step(next(it), ow)
print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=20), file=sys.__stdout__)

part_time.clear()
t = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    model.train_step(next(it), ow)
    t.append(time.perf_counter() - t0)
step = sum(t) / len(t)
params = sum(p.numel() for p in model.parameters())
print(f'step {step:.2f} s (mean of {len(t)}: {", ".join(f"{x:.2f}" for x in t)}), {params / 1e6:.1f}M parameters', file=sys.__stdout__)
for name, s in part_time.items():
    print(f'  forward {name:9s} {s / len(t):.2f} s a step ({100 * s / len(t) / step:.0f}% of the step)', file=sys.__stdout__)
print(f'  the rest (losses, backward, AdamW) {step - sum(part_time.values()) / len(t):.2f} s', file=sys.__stdout__)
