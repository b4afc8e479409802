"""A whole training step with the folded key's previous main-term order and the current one.

    .venv/bin/python benchmarks/explore/main_term_step_ab.py [spatialk|simplek|vanillak] [rounds]

One process builds the variant's detector as the train suite does (2 x 384^2, 8 charts, same
weights, batch and seed every step); rounds alternate the two orders, swapping
``folded_ops.main_term`` at run time (``before``: see main_term_order.py). Run from the
repository root. Prints the step times and their medians as one JSON line. (KUA calls
``main_term`` from its own module, which this swap does not reach.)
"""
import sys, tempfile, time, json, torch, statistics as st
sys.stdout = sys.stderr
sys.path.insert(0, 'benchmarks/explore')
from main_term_order import before
from mkey_det.models.keys import folded_ops
from mkey_det.bench import train
from mkey_det.bench.train_worker import build_detector, make_batch, seed_everything
from mmengine.optim import build_optim_wrapper
current = folded_ops.main_term
def old(token_mix, weight, x):
    return before(x, folded_ops.FoldedKeyTensors(token_mix, weight))
variant = sys.argv[1]; rounds = int(sys.argv[2])
tmp = tempfile.mkdtemp()
b = build_detector(train.write_config(f'{tmp}/v.py', variant), torch.device('cpu'))
ow = build_optim_wrapper(b['model'], b['optim_cfg']); data = make_batch(2, 384, b['num_classes'])
res = {'before': [], 'after': []}
for r in range(rounds + 1):
    for name in (('before', 'after') if r % 2 == 0 else ('after', 'before')):
        folded_ops.main_term = old if name == 'before' else current
        b['model'].load_state_dict(b['init_state']); seed_everything(0)
        t0 = time.perf_counter(); b['model'].train_step(data, ow); dt = time.perf_counter() - t0
        if r: res[name].append(round(dt, 3))
med = {k: st.median(v) for k, v in res.items()}
print(json.dumps(dict(variant=variant, res=res, median=med, after_over_before=med['after'] / med['before'])), file=sys.__stdout__)
