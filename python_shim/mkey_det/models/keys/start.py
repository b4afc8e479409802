"""The start of the manifold keys inside a host model, after the host's own initialisation.

A host (``SwinTransformerMKey``, ``VisionTransformerMKey``, and the classifiers and detectors
built around them) initialises its weights in ``init_weights``: mmdet's Swin draws every
``nn.Linear`` from a trunc normal (std .02); mmpretrain's classifiers apply their ``init_cfg``
(``TruncNormal`` on every ``Linear``) to the whole model before the backbone's own
``init_weights``. Those initialisers reach inside the keys too, and redraw the expansion ``k``
(the H charts independently) and ``to_out`` (no longer ``I/H``): the key is then no linear key
of any kind, and its charts no perturbations of one another.

The rule, for every host: after the host's own initialisation of a fresh model (never after
weights were loaded), each manifold key restarts function-preservingly
(:meth:`~.base.ManifoldKey.init_from_linear`) from the linear key the host initialised,
:func:`host_linear_key`: the first chart's block of ``k``, ``C`` rows of a ``Linear`` the host's
initialiser drew. For the hosts' initialisers (i.i.d. entries with a fixed std, or a scale set by
``fan_in = C``) that block is distributed as the key block of the stock fused ``qkv`` the host
would have initialised, so the model starts as the stock model with the same recipe would, with
the key's own structure at its start (charts ``W_k + eps_h``, token mixing the identity,
``to_out = I/H``). If the host's initialisation left the key as built, the first chart is the
built start's (``W_k + eps_0``) and the restart keeps its scale.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import ManifoldKey


def host_linear_key(key: ManifoldKey) -> torch.Tensor:
    """The linear key ``W_k: (C, C)`` the host initialised: the first chart of ``key.k``."""
    return key.k.weight[:key.dim].detach().clone()


@torch.no_grad()
def restart_from_host_init(module: nn.Module,
                           generator: Optional[torch.Generator] = None) -> int:
    """Start every manifold key in ``module`` (itself included) function-preservingly from the
    linear key its host initialised (:func:`host_linear_key`); returns how many keys.

    Call it once, right after the host's own initialisation of a fresh model, never after
    loading weights: it discards what the keys hold beyond that first chart.
    """
    keys = [m for m in module.modules() if isinstance(m, ManifoldKey)]
    for key in keys:
        key.init_from_linear(host_linear_key(key), generator=generator)
    return len(keys)


def chart_spread(key: ManifoldKey) -> float:
    """How far the charts of ``key.k`` are from one another, relative to their common part:
    the std across the H charts (population std per entry, pooled as a root mean square over
    the ``C x C`` entries) divided by the std of the charts' mean.

    A function-preserving start with ``chart_noise`` s gives about ``s * sqrt((H - 1) / H)``
    (0.094 for 0.1 and 8 charts); H independently drawn charts give about ``sqrt(H - 1)``
    (2.65 for 8): the mean of H independent draws has ``1 / sqrt(H)`` of their std.
    """
    h, c = key.num_charts, key.dim
    charts = key.k.weight.detach().float().view(h, c, c)
    across = charts.var(dim=0, unbiased=False).mean().sqrt()
    return float(across / charts.mean(dim=0).std())


def is_fresh_init(backbone) -> bool:
    """Whether the coming ``init_weights()`` of an mmengine ``BaseModule`` host initialises it
    afresh: its first call (mmengine initialises a module once) and no ``Pretrained`` init_cfg
    (weights loaded are never restarted). Asked before the host's own ``init_weights`` runs."""
    cfgs = backbone.init_cfg if isinstance(backbone.init_cfg, list) else [backbone.init_cfg]
    pretrained = any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)
    return not backbone.is_init and not pretrained


__all__ = ['host_linear_key', 'restart_from_host_init', 'chart_spread', 'is_fresh_init']

