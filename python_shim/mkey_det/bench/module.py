"""``module`` suite: our key modules against the literal transcription of Algorithm 1.

For every variant (8 charts; the registered manifold keys that name a transcription,
``literal=`` in :func:`~mkey_det.models.keys.register_key`) and every Swin-T stage's shapes
(``C``, ``N = 49``, ``B'`` windows of that stage, padding included, see :mod:`.shapes`) at the
chosen input settings, one forward + backward (input and parameter gradients) of

* ``literal``: :mod:`.literal` (independent transcription of the paper),
* ``ours``: ``mkey_det.models.keys`` in order ``'fast'`` (what training uses): SpatialK/KUA (the
  registry's ``fold_when_cheaper`` variants) fold their weights when ``T > FOLD_RATIO * C``, else
  run the paper order; SimpleK/VanillaK always run the folded form (same FLOPs as the paper order),
* ``ours_fold_always`` (``fold_when_cheaper`` variants where ``ours`` does not fold): the folded
  path forced by setting ``FOLD_RATIO = 0`` for the call (a runtime switch, the source is
  untouched): what a smaller ``FOLD_RATIO`` would give.

Weights are random (seeded), copied from ours into the literal module, so both compute the same
function; the outputs and all gradients are compared (``max|ours - literal| / max|literal|``)
before anything is timed. The cost model (multiply-adds, forward + backward, ``T = B' N``):

* SpatialK/KUA paper order ``6 H C^2 T + 3 H N C T``; folded ``3 H C^2 T + 3 H C^3 + 3 H N C T``
* SimpleK/VanillaK, either order: ``3 H C^2 T + 3 H N C T``
"""
from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..models.keys import KEYS
from . import literal as _literal
from .common import Emitter, Plan, compare, rel_diff
from .literal import copy_weights
from .shapes import stage_shapes

#: the manifold keys with a literal transcription (registry ``literal=``), in display order
VARIANTS = tuple(s.key_type for s in KEYS.manifold_specs() if s.literal)
CHARTS = 8
#: --quick: 4 charts at 224x224, batch 1 (a smoke run: every code path, a quarter of the work)
QUICK_CHARTS = 4
#: largest accepted max|ours - literal| / max|literal| (float32), outputs and gradients
TOLERANCE = 1e-4

#: (label, height, width, batch)
FULL_SETTINGS = (('224x224 b8', 224, 224, 8), ('800x1216 b1', 800, 1216, 1),
                 ('800x1216 b2', 800, 1216, 2))
QUICK_SETTINGS = (('224x224 b1', 224, 224, 1), )


def _fold_ratio() -> Optional[float]:
    try:
        from ..models.keys import spatialk
        return float(spatialk.FOLD_RATIO)
    except (ImportError, AttributeError):
        return None


def _folds_when_cheaper(key_type: str) -> bool:
    return key_type in KEYS and KEYS.get(key_type).fold_when_cheaper


@contextlib.contextmanager
def fold_ratio_override(value: float):
    """Temporarily set ``FOLD_RATIO`` in the modules of the ``fold_when_cheaper`` variants
    (SpatialK, KUA; runtime only)."""
    modules = {}
    for spec in KEYS.specs():
        mod = sys.modules.get(spec.module)
        if spec.fold_when_cheaper and mod is not None and hasattr(mod, 'FOLD_RATIO'):
            modules.setdefault(spec.module, mod)
    saved = [(mod, mod.FOLD_RATIO) for mod in modules.values()]
    for mod, _ in saved:
        mod.FOLD_RATIO = value
    try:
        yield
    finally:
        for mod, old in saved:
            mod.FOLD_RATIO = old


def literal_class(key_type: str) -> type:
    """The literal transcription of ``key_type``: the class its registry entry names
    (``literal='module:Class'``), imported and registered in :mod:`.literal` on first use.
    ValueError ('no literal transcription') when there is none."""
    if key_type in _literal.LITERAL_KEYS:
        return _literal.LITERAL_KEYS[key_type]
    ref = KEYS.get(key_type).literal if key_type in KEYS else None
    if not ref:
        raise ValueError(f'no literal transcription of {key_type!r} (known: '
                         f'{", ".join(s.key_type for s in KEYS.specs() if s.literal)})')
    module_name, _, attr = ref.partition(':')
    cls = getattr(importlib.import_module(module_name), attr)
    return _literal.register_literal(cls, key_type)


def build_literal(key_type: str, dim: int, num_tokens: int, num_charts: int) -> nn.Module:
    """The literal module of ``key_type`` (see :func:`literal_class`)."""
    return literal_class(key_type)(dim, num_tokens, num_charts)


def ours_path(key_type: str, tokens: int, dim: int) -> str:
    """Which computation ``order='fast'`` runs for ``T`` tokens of width ``C``."""
    if _folds_when_cheaper(key_type):
        ratio = _fold_ratio()
        if ratio is None:
            return 'unknown'
        return 'folded' if tokens > ratio * dim else 'paper'
    return 'folded'


def cost_model(key_type: str, tokens: int, dim: int, n: int = 49,
               h: int = CHARTS) -> Dict[str, Any]:
    """Multiply-adds (forward + backward) of the paper order and of the folded order."""
    t, c = tokens, dim
    mix = 3 * h * n * c * t
    if _folds_when_cheaper(key_type):
        paper = 6 * h * c * c * t + mix
        folded = 3 * h * c * c * t + 3 * h * c**3 + mix
    else:
        paper = folded = 3 * h * c * c * t + mix
    return dict(paper_macs=paper, folded_macs=folded, predicted_fold_speedup=paper / folded,
                fold_breakeven_tokens=(c if _folds_when_cheaper(key_type) else None))


@torch.no_grad()
def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter so that token mixing, gamma and gamma2 are not at their
    identity start (a check on identity weights would prove little)."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        std = float(p.float().std()) if p.numel() > 1 else 0.0
        p.add_(torch.randn(p.shape, generator=g).to(p) * max(std, 0.02) * 0.5)
    return module


def build_pair(key_type: str, dim: int, num_tokens: int, num_charts: int = CHARTS,
               seed: int = 0, device: Optional[torch.device] = None) -> Tuple[nn.Module, nn.Module]:
    """(ours in order 'fast', literal) with the same random weights."""
    from ..models.keys import build_key
    torch.manual_seed(seed)
    ours = randomize_(build_key(key_type, dim, num_tokens, num_charts, order='fast'), seed)
    literal = build_literal(key_type, dim, num_tokens, num_charts)
    copy_weights(ours, literal, key_type)
    if device is not None:
        ours, literal = ours.to(device), literal.to(device)
    return ours, literal


def fwd_bwd(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """One forward + backward (gradients of ``x`` and of the parameters); returns the output."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    out = module(x)
    out.backward(grad)
    return out.detach()


def check_equal(ours: nn.Module, literal: nn.Module, x: torch.Tensor,
                grad: torch.Tensor) -> Dict[str, Any]:
    """Output, input-gradient and per-parameter gradient differences (relative to literal)."""
    out_o = fwd_bwd(ours, x, grad)
    gx_o = x.grad.detach().clone()
    g_o = {n: p.grad.detach().clone() for n, p in ours.named_parameters()}
    out_l = fwd_bwd(literal, x, grad)
    gx_l = x.grad.detach().clone()
    g_l = {n: p.grad.detach().clone() for n, p in literal.named_parameters()}
    param = {n: rel_diff(g_o[n], g_l[n]) for n in g_l}
    worst_grad = max([rel_diff(gx_o, gx_l)] + list(param.values()))
    out = rel_diff(out_o, out_l)
    return dict(output=out, input_grad=rel_diff(gx_o, gx_l), param_grads=param,
                max_grad=worst_grad, max=max(out, worst_grad),
                passed=bool(out <= TOLERANCE and worst_grad <= TOLERANCE), tolerance=TOLERANCE)


def measure_one(key_type: str, dim: int, batch_windows: int, num_tokens: int,
                device: torch.device, plan: Plan, seed: int = 0,
                charts: int = CHARTS) -> Dict[str, Any]:
    ours, literal = build_pair(key_type, dim, num_tokens, num_charts=charts, seed=seed,
                               device=device)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch_windows, num_tokens, dim, generator=g).to(device).requires_grad_(True)
    grad = torch.randn(batch_windows, num_tokens, dim, generator=g).to(device)
    check = check_equal(ours, literal, x, grad)
    tokens = batch_windows * num_tokens
    path = ours_path(key_type, tokens, dim)
    impls = {'literal': lambda: fwd_bwd(literal, x, grad), 'ours': lambda: fwd_bwd(ours, x, grad)}
    if _folds_when_cheaper(key_type) and path == 'paper':
        def forced():
            with fold_ratio_override(0):
                return fwd_bwd(ours, x, grad)
        impls['ours_fold_always'] = forced
        with fold_ratio_override(0):
            check['fold_always'] = check_equal(ours, literal, x, grad)
            check['passed'] = check['passed'] and check['fold_always']['passed']
    timing = compare(impls, device, plan, baseline='literal')
    model = cost_model(key_type, tokens, dim, num_tokens, charts)
    macs = dict(literal=model['paper_macs'],
                ours=model['folded_macs'] if path == 'folded' else model['paper_macs'],
                ours_fold_always=model['folded_macs'])
    gflops = {n: 2 * macs[n] / timing['times'][n]['median'] / 1e9 for n in timing['times']}
    return dict(check=check, timing=timing, ours_path=path, cost_model=model,
                macs={n: macs[n] for n in timing['times']}, gflops=gflops)


def run(emitter: Emitter, device: torch.device, quick: bool = False) -> Dict[str, Any]:
    settings = QUICK_SETTINGS if quick else FULL_SETTINGS
    charts = QUICK_CHARTS if quick else CHARTS
    # the correctness check runs every implementation once: that is the warm-up
    plan = Plan(warmup=0, min_repeats=2, max_repeats=3, budget_s=0.3) if quick else \
        Plan(warmup=0, min_repeats=3, max_repeats=10, budget_s=5.0)
    jobs = [(label, h, w, b, st, v) for label, h, w, b in settings
            for st in stage_shapes(h, w, b) for v in VARIANTS]
    emitter.start(str(device), quick, len(jobs), dict(
        settings=[dict(label=s[0], height=s[1], width=s[2], batch=s[3]) for s in settings],
        variants=list(VARIANTS), charts=charts, timing=plan.describe(),
        fold_ratio=_fold_ratio(), tolerance=TOLERANCE))
    rows: List[Dict[str, Any]] = []
    for label, h, w, b, st, v in jobs:
        m = measure_one(v, st['dim'], st['batch_windows'], st['tokens_per_window'], device, plan,
                        charts=charts)
        r = m['timing']['ratios']
        times = m['timing']['times']
        line = (f'{label} stage {st["stage"]} (C={st["dim"]}, B\'={st["batch_windows"]}, '
                f'T={st["tokens"]}) {v}: literal {times["literal"]["median"] * 1e3:.1f} ms, '
                f'ours {times["ours"]["median"] * 1e3:.1f} ms [{m["ours_path"]}] '
                f'-> {r["ours"]["median_ratio"]:.2f}x')
        if 'ours_fold_always' in r:
            line += f' (fold always {r["ours_fold_always"]["median_ratio"]:.2f}x)'
        line += f'; max rel diff {m["check"]["max"]:.1e}'
        line += '' if m['check']['passed'] else ' FAILED'
        row = dict(setting=label, height=h, width=w, batch=b, stage=st['stage'], dim=st['dim'],
                   batch_windows=st['batch_windows'], tokens=st['tokens'],
                   tokens_per_window=st['tokens_per_window'], variant=v, charts=charts, **m)
        rows.append(emitter.measure(f'{label}/stage{st["stage"]}/{v}', line, row))
    passed = all(r['check']['passed'] for r in rows)
    return dict(rows=rows, passed=passed, target=target_verdict(rows), fold_ratio=_fold_ratio(),
                charts=charts,
                tolerance=TOLERANCE, timing=plan.describe())


#: the issue's target: ours >= 1.5x the literal transcription at detection size, every stage
TARGET_SPEEDUP = 1.5


def target_verdict(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per (setting, stage, variant) at detection size: measured ratio, cost-model bound."""
    cells = []
    for r in rows:
        if r['height'] < 800:
            continue
        model = r['cost_model']
        forced = r['timing']['ratios'].get('ours_fold_always', {})
        cells.append(dict(setting=r['setting'], stage=r['stage'], variant=r['variant'],
                          measured=r['timing']['ratios']['ours']['median_ratio'],
                          fold_always=forced.get('median_ratio'),
                          flop_bound=model['predicted_fold_speedup'],
                          met=r['timing']['ratios']['ours']['median_ratio'] >= TARGET_SPEEDUP))
    return dict(target=TARGET_SPEEDUP, cells=cells,
                met_everywhere=bool(cells) and all(c['met'] for c in cells))
