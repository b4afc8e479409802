"""Minor page faults and time of a training step, Swin-T and SpatialK (the train suite's workload).

    .venv/bin/python benchmarks/explore/step_page_faults.py [rounds]
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 .venv/bin/python benchmarks/explore/step_page_faults.py
    THP_MEM_ALLOC_ENABLE=1 .venv/bin/python benchmarks/explore/step_page_faults.py

One process builds both detectors (2 x 384^2, 8 charts), then alternates their steps (same
weights, batch and seed every step) and prints, per variant, (seconds, minor faults) of every
step after the first round, as one JSON line tagged with $PROBE_TAG. The allocator settings are
read by glibc / PyTorch at process start, so compare them in alternating processes
(docs/BENCH.md, "Why the heap setting did not pay").
"""
import sys, tempfile, time, resource, json, os, torch
sys.stdout = sys.stderr
from mkey_det.bench import train
from mkey_det.bench.train_worker import build_detector, make_batch, seed_everything
from mmengine.optim import build_optim_wrapper
tmp = tempfile.mkdtemp(prefix='mkey-faults-')
ms = {}
for name, kt in (('swin-t', 'linear'), ('spatialk', 'spatialk')):
    cfg = train.write_config(f'{tmp}/{name}.py', kt)
    b = build_detector(cfg, torch.device('cpu'))
    b['ow'] = build_optim_wrapper(b['model'], b['optim_cfg'])
    ms[name] = b
data = make_batch(2, 384, ms['swin-t']['num_classes'])
res = {n: [] for n in ms}
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
for r in range(rounds + 1):
    for n in (list(ms) if r % 2 == 0 else list(ms)[::-1]):
        b = ms[n]
        b['model'].load_state_dict(b['init_state']); seed_everything(0)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter(); b['model'].train_step(data, b['ow']); dt = time.perf_counter() - t0
        fl = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        if r: res[n].append((dt, fl))
tag = os.environ.get('PROBE_TAG', '?')
print(json.dumps(dict(tag=tag, res=res)), file=sys.__stdout__)
