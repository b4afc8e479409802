"""Per-op CPU profile of the train suite's step: Swin-T vs a variant (2 x 384^2, 8 charts).

    .venv/bin/python benchmarks/explore/profile_train_step.py [spatialk|kua|simplek|vanillak] [size]

Each model as the suite builds it (mkey_det.bench.train.write_config); every step from the initial
weights with seed 0, as the suite's timing pass does; 2 warm-up steps, 2 profiled
(torch.profiler, CPU, top ops by self time), 3 timed. Output: benchmarks/results/profile-*/.
"""
import sys, tempfile, time, torch
sys.stdout = sys.stderr
from mkey_det.bench import train
from mkey_det.bench.train_worker import build_detector, make_batch
from mmengine.optim import build_optim_wrapper
variant = sys.argv[1] if len(sys.argv) > 1 else 'spatialk'
size = int(sys.argv[2]) if len(sys.argv) > 2 else 384
tmp = tempfile.mkdtemp(prefix='mkey-profile-')
for name, kt in (('swin-t', 'linear'), (variant, variant)):
    cfg = train.write_config(f'{tmp}/{name}.py', kt)
    b = build_detector(cfg, torch.device('cpu'))
    ow = build_optim_wrapper(b['model'], b['optim_cfg'])
    data = make_batch(2, size, b['num_classes'])
    def step():
        b['model'].load_state_dict(b['init_state']); torch.manual_seed(0)
        b['model'].train_step(data, ow)
    for _ in range(2):
        step()
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step()
    print(f'==== {name}', file=sys.__stdout__)
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=18), file=sys.__stdout__)
    ts = []
    for _ in range(3):
        b['model'].load_state_dict(b['init_state']); torch.manual_seed(0)
        t0 = time.perf_counter(); b['model'].train_step(data, ow); ts.append(time.perf_counter() - t0)
    print(name, 'steps', ts, file=sys.__stdout__)
    del b, ow
