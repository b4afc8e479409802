"""The ``train`` suite's timing pass: every variant in one process, timed in interleaved rounds.

    python -m mkey_det.bench.train_interleaved --configs swin-t=A.py,swin-t-spatialk=B.py
        [--baseline swin-t] [--batch-sizes 2] [--precisions fp32] [--size 384]
        [--warmup 2] [--steps 10] [--device cpu|cuda] [--seed 0]

Why one process and rounds: variants timed one after the other, each in its own process, meet
different phases of a shared machine, so a slow phase lands on one variant only (the design this
replaced, and its figures: docs/BENCH.md, "train"). Here every detector is built first
(:func:`.train_worker.build_detector`), and each (batch, precision) pair runs ``warmup + steps``
rounds in which every variant takes one full training step (``model.train_step``: data
preprocessor, forward with losses, backward, gradient clipping, optimizer step) on the same
synthetic batch, from the same initial weights (restored before every step, off the clock: the
work of a step depends on the weights) and with the same random seed, so that a variant does the
same work in every round; the order alternates (forward in even rounds, reversed in odd ones) so no
variant always runs right after another. The ``warmup`` rounds (untimed) cover the allocator's
first growth, lazily created optimizer state and, on CUDA, cuDNN/cuBLAS autotuning. The ratio to
the baseline is the geometric mean of the per-round ratios (the highest and lowest 10% dropped),
with a bootstrap interval over the rounds (:func:`.common.ratio_spread`: both timings of a round
stay paired).

Peak memory is *not* measured here (all detectors are resident at once): the suite measures it
in its own pass, one fresh process per variant (:mod:`.train_worker`).

Prints ``{"kind": "round", "line"}`` after every round (progress) and one JSON line per (variant,
pair) (``{"kind": "row", ...}``) as each pair finishes; a step
that fails (e.g. CUDA out of memory) drops that variant from the rest of the pair (its row has
``error``) and the others go on.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from typing import Any, Dict, List

import torch

from .train_worker import (PRECISIONS, _free, amp_dtype, amp_optim_wrapper_cfg, seed_everything,
                           build_detector, cuda_device, line_writer, make_batch, parse_list,
                           step_error)


def parse_configs(text: str) -> Dict[str, str]:
    """``'a=x.py,b=y.py'`` -> ``{'a': 'x.py', 'b': 'y.py'}`` (order kept); ValueError if malformed."""
    out: Dict[str, str] = {}
    for item in parse_list(text):
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--configs item {item!r}: expected name=config.py')
        out[name] = path
    return out


def time_pair(models: Dict[str, Dict[str, Any]], baseline: str, batch: int, precision: str,
              args, device: torch.device, on_round=None) -> Dict[str, Dict[str, Any]]:
    """Interleaved rounds of one (batch, precision) pair; the row of every variant.
    ``on_round(line)`` hears about every finished round (one line for people watching)."""
    from mmengine.optim import build_optim_wrapper
    from .common import ratio_spread, stats, synchronize
    names = list(models)
    rows: Dict[str, Dict[str, Any]] = {n: dict(batch=batch, precision=precision, size=args.size,
                                               warmup=args.warmup, steps=args.steps)
                                       for n in names}
    wrappers: Dict[str, Any] = {}
    times: Dict[str, List[float]] = {n: [] for n in names}
    warm: Dict[str, List[float]] = {n: [] for n in names}
    losses: Dict[str, List[float]] = {n: [] for n in names}
    active = list(names)
    for n in names:
        m = models[n]
        m['model'].load_state_dict(m['init_state'])
        m['model'].zero_grad(set_to_none=True)
        m['model'].train()
        try:
            wrappers[n] = build_optim_wrapper(
                m['model'], amp_optim_wrapper_cfg(m['optim_cfg'], precision))
        except Exception as exc:  # noqa: BLE001 - that variant only
            rows[n]['error'] = step_error(exc)
            active.remove(n)
    num_classes = next(iter(models.values()))['num_classes']
    # one batch, made before the clock runs, the same for every variant and round (CPU tensors,
    # as a data loader gives them; the data preprocessor moves them inside the step)
    data = make_batch(batch, args.size, num_classes, seed=args.seed)
    _free(device)
    for r in range(args.warmup + args.steps):
        for n in (active if r % 2 == 0 else active[::-1])[:]:
            try:
                # every step starts from the initial weights: the work of a step depends on them
                # (how many proposals pass NMS and the sampler, how many masks are targets), and
                # training on a fixed batch from scratch drifts (the losses rose 10-100x within
                # 12 steps), so without this the variants' workloads would drift apart
                models[n]['model'].load_state_dict(models[n]['init_state'])
                # and the same random draws (the RoI sampler's): with the same weights, batch and
                # draws a variant's step does the same work in every round, so what varies
                # between rounds is the machine, not the workload
                seed_everything(args.seed)
                synchronize(device)
                t0 = time.perf_counter()
                log_vars = models[n]['model'].train_step(data, wrappers[n])
                synchronize(device)
                dt = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - one variant must not end the others
                rows[n].update(error=step_error(exc), steps_done=len(warm[n]) + len(times[n]),
                               losses=losses[n])
                active.remove(n)
                wrappers.pop(n, None)
                models[n]['model'].zero_grad(set_to_none=True)
                _free(device)
                continue
            losses[n].append(float(log_vars['loss']))
            (times[n] if r >= args.warmup else warm[n]).append(dt)
            print(f'b{batch} {precision} round {r + 1}/{args.warmup + args.steps} {n}: '
                  f'{dt:.3f} s, loss {losses[n][-1]:.4f}', file=sys.stderr)
        if on_round is not None:
            kind = 'warm-up' if r < args.warmup else 'timed'
            steps = ', '.join(f'{n} {(times[n] or warm[n])[-1]:.2f} s' for n in active
                              if times[n] or warm[n])
            on_round(f'b{batch} {precision} round {r + 1}/{args.warmup + args.steps} ({kind}): '
                     f'{steps}')
    for n in active:
        st = stats(times[n])
        rows[n].update(step_s=st, warmup_s=warm[n], losses=losses[n],
                       losses_finite=all(math.isfinite(v) for v in losses[n]),
                       images_per_s=batch / st['median'] if st['median'] else None)
        if baseline in active:
            rows[n]['time_ratio'] = ratio_spread(times[baseline], times[n])
    for n in names:
        w = wrappers.get(n)
        rows[n].update(optim_wrapper=type(w).__name__ if w is not None else None,
                       amp_dtype=amp_dtype(precision),
                       optimizer=type(w.optimizer).__name__ if w is not None else None)
        models[n]['model'].zero_grad(set_to_none=True)
    del wrappers, data
    _free(device)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', required=True, help='comma list of name=config.py')
    p.add_argument('--baseline', default=None, help='the name the ratios divide by (default: the first)')
    p.add_argument('--batch-sizes', default='2', help='comma list of batch sizes (in this order)')
    p.add_argument('--precisions', default='fp32', help='comma list of fp32, fp16, bf16')
    p.add_argument('--size', type=int, default=384)
    p.add_argument('--warmup', type=int, default=2, help='untimed rounds')
    p.add_argument('--steps', type=int, default=10, help='timed rounds')
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    try:
        configs = parse_configs(args.configs)
    except ValueError as exc:
        p.error(str(exc))
    batch_sizes = parse_list(args.batch_sizes, int)
    precisions = parse_list(args.precisions)
    if not configs or any(v not in PRECISIONS for v in precisions) or not precisions \
            or not batch_sizes or min(batch_sizes) < 1 or args.steps < 1 or args.warmup < 0:
        p.error('bad --configs, --batch-sizes, --precisions, --steps or --warmup')
    baseline = args.baseline or next(iter(configs))
    if baseline not in configs:
        p.error(f'--baseline {baseline!r} is not one of --configs')
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # library prints must not reach the protocol lines
        emit = line_writer(out)
        device = cuda_device(torch.device(args.device))
        models = {n: build_detector(c, device, args.seed) for n, c in configs.items()}
        for batch in batch_sizes:
            for precision in precisions:
                rows = time_pair(models, baseline, batch, precision, args, device,
                                 lambda line: emit(dict(kind='round', line=line)))
                for n, row in rows.items():
                    emit(dict(models[n]['common'], kind='row', variant=n,
                              timing='interleaved', **row))
        return 0


if __name__ == '__main__':
    sys.exit(main())
