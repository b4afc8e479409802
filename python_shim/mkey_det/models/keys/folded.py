"""Folded keys: the whole key path as per-chart C x C matrices and N x N token mixings.

The folded form and its product live in :mod:`.folded_ops` (re-exported here); this module adds
:class:`FoldedKey` (a module computed from folded tensors only), :func:`fold_key` and
:func:`fold_backbone`. Imports go one way: ``folded_ops <- base <- folded``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import ManifoldKey
from .folded_ops import (FoldedKeyTensors, folded_forward, main_term, pool_tokens,
                         stack_charts)

__all__ = ['FoldedKey', 'FoldedKeyTensors', 'fold_key', 'fold_backbone', 'folded_forward',
           'main_term', 'pool_tokens', 'stack_charts']


class FoldedKey(nn.Module):
    """A key computed from folded tensors only: ``(B', N, C) -> (B', N, C)``.

    Same function as the key it was folded from (:func:`fold_key`). Parameters: ``H N^2 + H C^2``
    (SpatialK, SimpleK, and KUA / VanillaK with ``cb_mode`` ``'per_location'`` or ``'none'``,
    whose CB is inside ``M_h`` or absent: always fewer than the key), ``+ H N + C`` (VanillaK
    with Eq. 4's CB: fewer when ``N < C``), ``+ H N + H C^2`` (KUA with Eq. 4's CB: fewer when
    ``N < C + C/H``). In Swin-T (N = 49,
    C >= 96) every folded key is smaller; SpatialK drops from ``2 H C^2 + H C + H N^2``.
    """

    def __init__(self, token_mix: torch.Tensor, weight: torch.Tensor,
                 cb_pool: Optional[torch.Tensor] = None,
                 cb_weight: Optional[torch.Tensor] = None,
                 cb_scale: Optional[torch.Tensor] = None):
        super().__init__()
        if token_mix.dim() != 3 or token_mix.shape[1] != token_mix.shape[2]:
            raise ValueError(f'token_mix must be (H, N, N), got {tuple(token_mix.shape)}')
        h, n = token_mix.shape[:2]
        if weight.dim() != 3 or weight.shape[0] != h or weight.shape[1] != weight.shape[2]:
            raise ValueError(f'weight must be (H={h}, C, C), got {tuple(weight.shape)}')
        c = weight.shape[1]
        if cb_pool is None and (cb_weight is not None or cb_scale is not None):
            raise ValueError('cb_weight/cb_scale need cb_pool')
        if cb_pool is not None and tuple(cb_pool.shape) != (h, n):
            raise ValueError(f'cb_pool must be ({h}, {n}), got {tuple(cb_pool.shape)}')
        if cb_weight is not None and tuple(cb_weight.shape) != (h, c, c):
            raise ValueError(f'cb_weight must be ({h}, {c}, {c}), got {tuple(cb_weight.shape)}')
        if cb_scale is not None and tuple(cb_scale.shape) != (c, ):
            raise ValueError(f'cb_scale must be ({c},), got {tuple(cb_scale.shape)}')
        self.num_charts, self.num_tokens, self.dim = h, n, c

        def param(t):
            return None if t is None else nn.Parameter(t.detach().clone())

        self.token_mix = param(token_mix)
        self.weight = param(weight)
        self.cb_pool = param(cb_pool)
        self.cb_weight = param(cb_weight)
        self.cb_scale = param(cb_scale)

    @classmethod
    def from_key(cls, key: nn.Module, drop_cb: bool = False) -> 'FoldedKey':
        """Fold a key module (any registered key type, see :mod:`.registry`); ``drop_cb``:
        leave out the CB term (see :func:`fold_backbone`)."""
        t = fold_key(key)
        if drop_cb:
            return cls(t.token_mix, t.weight)
        return cls(t.token_mix, t.weight, t.cb_pool, t.cb_weight, t.cb_scale)

    def tensors(self) -> FoldedKeyTensors:
        return FoldedKeyTensors(self.token_mix, self.weight, self.cb_pool, self.cb_weight,
                                self.cb_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.num_tokens or x.shape[2] != self.dim:
            raise ValueError(f"FoldedKey expects (B', N={self.num_tokens}, C={self.dim}) "
                             f'input, got {tuple(x.shape)}')
        return folded_forward(x, self.tensors())

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_tokens={self.num_tokens}, num_charts={self.num_charts}, '
                f'cb={self.cb_pool is not None}')


def fold_key(module: nn.Module) -> FoldedKeyTensors:
    """Folded tensors of a key module, detached (for export and :class:`FoldedKey`).

    Accepts the manifold keys, :class:`~.linear.LinearKey` and :class:`FoldedKey`.
    """
    if not hasattr(module, 'fold') and not isinstance(module, FoldedKey):
        raise ValueError(f'fold_key: {type(module).__name__} is not a key module')
    with torch.no_grad():
        t = module.tensors() if isinstance(module, FoldedKey) else module.fold()
        return t.detach()


def fold_backbone(model: nn.Module, drop_cb: bool = False) -> nn.Module:
    """Replace, in place, every manifold key inside ``model`` by its :class:`FoldedKey`.

    Returns ``model``. The outputs stay the same up to float rounding.

    ``drop_cb=True`` also leaves out the CB term of KUA / VanillaK. That term is one vector per
    window added to every token's key (the mean runs over all H*N rows), so it shifts each row
    of attention logits by a constant, which softmax ignores: attention outputs are unchanged
    (the keys themselves are not), at ``H C^2`` fewer parameters per block. Only Eq. 4's
    window-constant term (``cb_mode='eq4'``, the folded ``cb_pool``) is dropped: the
    per-location CB (``cb_mode='per_location'``) is part of the folded ``M_h`` and stays, as it
    changes attention.
    """
    if isinstance(model, ManifoldKey):
        raise ValueError('fold_backbone: pass a model that contains keys (use FoldedKey.from_key '
                         'for a single key)')
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, ManifoldKey)]
    for name, key in targets:
        parent_name, _, attr = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        folded = FoldedKey.from_key(key, drop_cb=drop_cb).to(device=key.k.weight.device)
        setattr(parent, attr, folded)
    return model
