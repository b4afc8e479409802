"""``order='auto'``: each call shape runs the computation order measured fastest on its device.

A manifold key computes one function in two exact orders (:mod:`.base`): the paper's
(Algorithm 1: expansion, rearrange, token mixing, aggregation) and the folded one (per-chart
``C x C`` products, :mod:`.folded_ops`). ``'fast'`` picks by a fixed rule, fold when the call has
more than ``FOLD_RATIO * C`` tokens (``T > 2C``, SpatialK / KUA): a FLOPs rule that holds on a CPU.
On a GPU the cost is not the FLOPs, and the folded order can be the slower one where the rule
folds (measured: docs/BENCH.md, "GPU fast paths"). ``'auto'`` measures instead:

* the first time a call shape is seen, a :class:`AutoOrderKey` (key type and ``cb_mode``, H, N,
  C, tokens ``T = B' * N``, compute dtype (the autocast dtype under autocast), device, and whether
  the call records gradients), both orders are timed on that very input by
  :func:`time_key_path`: forward, plus backward (``torch.autograd.grad`` into throw-away tensors,
  so no ``.grad`` is touched) when the call records gradients; ``AUTO_ORDER_WARMUP`` untimed runs
  then the median of ``AUTO_ORDER_REPS`` timed ones, CUDA synchronised around each;
* the faster is cached in one process-wide table (:func:`auto_order_table` to inspect it,
  :func:`clear_auto_order_table` to measure again), shared by every key of the process: the blocks
  of a stage have the same shape, so a stage is measured once per input size;
* later calls of that shape look the choice up. The result is the same function either way (the
  orders are exact; they differ by float rounding, as ``'paper'`` and ``'fast'`` do).

Costs and limits: the measurement runs the key ``2 * (warmup + reps)`` times (with backward when
training) once per new shape, and briefly holds a second copy of the key's activations; a
training run with multi-scale inputs measures once per new padded size. Ranks of a distributed
run measure on their own and may choose differently (same function; DDP reduces gradients that
agree to rounding). Under ``torch.jit`` tracing or ``torch.compile`` nothing is measured: a shape
already in the table uses its choice, another the ``'fast'`` rule.

Depends on torch only (:mod:`.base` imports it; it imports no key module).
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

#: the two computation orders ``'auto'`` chooses between (``'folded'``: always the folded form,
#: whatever the ``'fast'`` rule would say)
AUTO_CHOICES = ('paper', 'folded')
#: untimed runs of each order before timing (cuBLAS / cuDNN heuristics, allocator)
AUTO_ORDER_WARMUP = 1
#: timed runs of each order; their median decides
AUTO_ORDER_REPS = 3


@dataclass(frozen=True)
class AutoOrderKey:
    """What the choice depends on: one entry of the table per distinct value."""
    key_type: str
    cb_mode: Optional[str]
    num_charts: int
    num_tokens: int
    dim: int
    tokens: int
    dtype: str
    device: str
    grad: bool


@dataclass(frozen=True)
class AutoOrderEntry:
    """The measured seconds of each order (median per call) and the choice."""
    choice: str
    seconds: Dict[str, float]


_TABLE: Dict[AutoOrderKey, AutoOrderEntry] = {}
_LOCK = threading.Lock()


def auto_order_table() -> Dict[AutoOrderKey, AutoOrderEntry]:
    """A copy of the process-wide table: call shape -> measured seconds and choice."""
    with _LOCK:
        return dict(_TABLE)


def clear_auto_order_table() -> int:
    """Forget every choice (the next call of each shape measures again); returns how many."""
    with _LOCK:
        n = len(_TABLE)
        _TABLE.clear()
        return n


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the key computes in: autocast's for the input's device type, else ``x``'s."""
    device_type = x.device.type
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except (TypeError, RuntimeError, AttributeError):  # older torch / unsupported device type
        pass
    return x.dtype


def _records_grad(key: nn.Module, x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or any(
        p.requires_grad for p in key.parameters()))


def auto_order_key(key: nn.Module, x: torch.Tensor) -> AutoOrderKey:
    """The table key of a call ``key(x)`` (``x: (B', N, C)``)."""
    return AutoOrderKey(
        key_type=str(getattr(type(key), 'key_type', type(key).__name__)),
        cb_mode=getattr(key, 'cb_mode', None), num_charts=int(key.num_charts),
        num_tokens=int(x.shape[1]), dim=int(x.shape[2]), tokens=int(x.shape[0] * x.shape[1]),
        dtype=str(_compute_dtype(x)).replace('torch.', ''), device=str(x.device),
        grad=_records_grad(key, x))


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_key_path(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  params: Sequence[torch.Tensor], backward: bool,
                  reps: int = AUTO_ORDER_REPS, warmup: int = AUTO_ORDER_WARMUP) -> float:
    """Median seconds of ``fn(x)`` (plus its backward into ``params`` and ``x`` when ``backward``)
    over ``reps`` runs after ``warmup`` untimed ones; CUDA is synchronised around every run.
    Gradients are returned by ``torch.autograd.grad`` and dropped: no ``.grad`` changes."""
    times: List[float] = []
    for i in range(warmup + reps):
        _synchronize(x.device)
        start = time.perf_counter()
        if backward:
            xi = x.detach().requires_grad_(x.requires_grad)
            with torch.enable_grad():
                out = fn(xi)
                inputs = list(params) + ([xi] if x.requires_grad else [])
                torch.autograd.grad(out, inputs, grad_outputs=torch.ones_like(out),
                                    allow_unused=True)
        else:
            with torch.no_grad():
                fn(x.detach())
        _synchronize(x.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _not_measurable() -> bool:
    """Tracing or compiling: a timed side computation would be recorded or cannot run."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    compiler = getattr(torch, 'compiler', None)
    return bool(compiler is not None and getattr(compiler, 'is_compiling', lambda: False)())


def choose_order(key: nn.Module, x: torch.Tensor) -> Optional[str]:
    """``'paper'`` or ``'folded'`` for the call ``key(x)``: from the table, else measured now
    (``key.forward_paper`` against ``key.forward_folded``, ties to ``'paper'``) and stored. None
    while tracing / compiling a shape not in the table (the caller applies the ``'fast'`` rule)."""
    k = auto_order_key(key, x)
    with _LOCK:
        entry = _TABLE.get(k)
    if entry is not None:
        return entry.choice
    if _not_measurable():
        return None
    params = [p for p in key.parameters() if p.requires_grad] if k.grad else []
    backward = k.grad and (bool(params) or x.requires_grad)
    seconds = {
        'paper': time_key_path(key.forward_paper, x, params, backward),
        'folded': time_key_path(key.forward_folded, x, params, backward),
    }
    choice = 'folded' if seconds['folded'] < seconds['paper'] else 'paper'
    with _LOCK:
        entry = _TABLE.setdefault(k, AutoOrderEntry(choice, seconds))
    return entry.choice


__all__ = [
    'AUTO_CHOICES', 'AUTO_ORDER_REPS', 'AUTO_ORDER_WARMUP', 'AutoOrderKey', 'AutoOrderEntry',
    'auto_order_key', 'auto_order_table', 'clear_auto_order_table', 'choose_order',
    'time_key_path'
]
