"""``params`` suite: parameters and FLOPs of Swin-T and the key variants, next to Table 1.

Counted with :mod:`mkey_det.analysis` (mmengine's fvcore-derived ``FlopAnalyzer``: one
multiply-add = one FLOP, only matrix products and convolutions counted, as the paper's fvcore):

* ``paper``: Algorithm 1's order (what Table 1 counts),
* ``fast``: ``order='fast'`` (the training path; SpatialK/KUA fold when it pays off at that size),
* ``folded``: :func:`~mkey_det.models.keys.fold_backbone` (inference form: per-chart C x C and
  N x N matrices; fewer parameters).

Sizes: 224x224 with the ImageNet head (``num_classes=1000``, only the last stage's norm), as
Table 1 counts; 800x1216 (a COCO detection input) as the detection backbone (four outputs, no
head). Charts: 4 and 8. ``--quick``: 224x224 and 8 charts only, without the ``fast`` count.

Variants, labels and the Table 1 figures come from the key registry
(:mod:`mkey_det.models.keys.registry`).
"""
from __future__ import annotations

import time
from typing import Any, Dict, List

import torch

from ..models.keys import KEYS
from ..utils import quiet_mmengine
from .common import Emitter

#: every registered key type, in display order (the stock linear key first)
VARIANTS = KEYS.key_types()
#: (label, height, width, imagenet classes: 1000 = Table 1's classifier, 0 = detection backbone)
FULL_SIZES = (('224x224', 224, 224, 1000), ('800x1216', 800, 1216, 0))
QUICK_SIZES = (('224x224', 224, 224, 1000), )
FULL_CHARTS = (4, 8)
QUICK_CHARTS = (8, )

#: Table 1 columns (Swin-T, 8 charts, 224x224): params [M], FLOPs [G] (variants the paper lists)
TABLE1 = {s.key_type: s.table1 for s in KEYS.specs() if s.table1 is not None}
#: row labels as the paper prints them ('Swin-T', '+ SpatialK', ...)
LABELS = {s.key_type: s.backbone_label for s in KEYS.specs()}


def _quiet():
    """mmengine's and fvcore's analyzers log every op they skip; those are listed in the result instead."""
    return quiet_mmengine('fvcore')


def count_variant(key_type: str, charts: int, height: int, width: int,
                  num_classes: int, fast: bool = True) -> Dict[str, Any]:
    """``dict(paper=dict(params, flops), fast=..., folded=...)`` (``fast``/``folded`` are None
    for the linear key; ``fast`` also when not asked for) plus the seconds the counting took."""
    from ..analysis import build_swin_t, count_complexity
    from ..models.keys import fold_backbone, set_key_order
    t0 = time.perf_counter()
    model = build_swin_t(key_type, charts, 'paper', num_classes)
    with _quiet():
        paper = count_complexity(model, height, width)
        out: Dict[str, Any] = dict(paper=dict(params=paper['params'], flops=paper['flops'],
                                              skipped_ops=paper['skipped']))
        if not KEYS.get(key_type).manifold:
            out['fast'] = out['folded'] = None
        else:
            out['fast'] = None
            if fast:
                set_key_order(model, 'fast')
                c = count_complexity(model, height, width)
                out['fast'] = dict(params=c['params'], flops=c['flops'])
            folded_model = fold_backbone(model)  # in place: the model is not used again
            folded = count_complexity(folded_model, height, width)
            out['folded'] = dict(params=folded['params'], flops=folded['flops'])
    out['count_s'] = time.perf_counter() - t0
    return out


def run(emitter: Emitter, device: torch.device, quick: bool = False) -> Dict[str, Any]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    charts_list = QUICK_CHARTS if quick else FULL_CHARTS
    jobs = []
    for label, h, w, classes in sizes:
        for v in VARIANTS:
            for charts in (charts_list if KEYS.get(v).uses_charts else (None, )):
                jobs.append((label, h, w, classes, v, charts))
    emitter.start(str(device), quick, len(jobs), dict(
        sizes=[dict(label=s[0], height=s[1], width=s[2], imagenet_head=bool(s[3])) for s in sizes],
        variants=list(VARIANTS), charts=list(charts_list), fast_counted=not quick,
        convention='fvcore: 1 multiply-add = 1 FLOP; matmul/conv only'))
    rows: List[Dict[str, Any]] = []
    baseline: Dict[str, Dict[str, Any]] = {}
    for label, h, w, classes, v, charts in jobs:
        c = count_variant(v, charts or 8, h, w, classes, fast=not quick)
        manifold = KEYS.get(v).manifold
        if not manifold:
            baseline[label] = c
        base = baseline.get(label)
        ref = TABLE1.get(v) if (h, w) == (224, 224) and charts in (None, 8) else None
        row = dict(size=label, height=h, width=w, imagenet_head=bool(classes), variant=v,
                   label=LABELS.get(v, v), charts=charts, **c,
                   table1=dict(params_m=ref[0], flops_g=ref[1]) if ref else None)
        if base is not None:
            row['ratio_to_swin_t'] = dict(
                params=c['paper']['params'] / base['paper']['params'],
                flops_paper=c['paper']['flops'] / base['paper']['flops'],
                flops_fast=((c['fast'] or {}) if manifold else c['paper']).get('flops', 0)
                / base['paper']['flops'] or None,
                flops_folded=(c['folded'] or c['paper'])['flops'] / base['paper']['flops'])
        p, f = c['paper']['params'] / 1e6, c['paper']['flops'] / 1e9
        what = f'{LABELS.get(v, v)} ({charts} charts)' if charts else LABELS.get(v, v)
        line = f'{label} {what}: {p:.1f}M params, {f:.2f} GFLOPs paper'
        if c['fast']:
            line += f', {c["fast"]["flops"] / 1e9:.2f} fast'
        if c['folded']:
            line += (f', {c["folded"]["flops"] / 1e9:.2f} folded '
                     f'({c["folded"]["params"] / 1e6:.1f}M params)')
        if ref:
            line += f'; Table 1: {ref[0]}M / {ref[1]}G'
        rows.append(emitter.measure(f'{label}/{v}/{charts or "-"}', line, row))
    return dict(rows=rows, convention='fvcore (multiply-adds; matmul and convolutions only)',
                table1=TABLE1)
