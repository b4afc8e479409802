"""Folded keys: the whole key path as per-chart C x C matrices and N x N token mixings.

Every key variant is linear in its input ``x: (B', N, C)``, so it equals

    out = sum_h  Lambda_h @ x @ M_h^T                                  (main term)
        + 1_N (x) [ sum_h (c_h^T @ x) @ G_h^T ] * r                    (CB term, KUA/VanillaK)

with ``Lambda_h: (N, N)`` (token mixing of chart h), ``M_h: (C, C)`` (output x input),
``c_h: (N,)`` (pooling of chart h), ``G_h: (C, C)`` (``G_h = M_h`` when not given) and
``r: (C,)`` (elementwise scale, 1 when not given). ``1_N (x)`` broadcasts one row to the N
tokens. The CB term (paper Eq. 4) is linear too: the mean over all H*N rows of
``K_h = Lambda_h E_h`` is ``sum_h (u_h / (H N))^T E_h`` with ``u_h = Lambda_h^T 1`` (column sums),
so ``c_h = u_h / (H N)``; the variants' ``fold()`` work out ``M_h``, ``G_h`` and ``r``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from .base import ManifoldKey


@dataclass
class FoldedKeyTensors:
    """Folded form of a key (shapes for H charts, N tokens, width C).

    Attributes:
        token_mix: ``(H, N, N)``, Lambda_h.
        weight: ``(H, C, C)``, M_h (output x input).
        cb_pool: ``(H, N)`` or None, c_h.
        cb_weight: ``(H, C, C)`` or None, G_h (None: use ``weight``).
        cb_scale: ``(C,)`` or None, r.
    """
    token_mix: torch.Tensor
    weight: torch.Tensor
    cb_pool: Optional[torch.Tensor] = None
    cb_weight: Optional[torch.Tensor] = None
    cb_scale: Optional[torch.Tensor] = None

    def detach(self) -> 'FoldedKeyTensors':
        """Detached copies (for export / :class:`FoldedKey`)."""
        return FoldedKeyTensors(*[None if t is None else t.detach().clone() for t in (
            self.token_mix, self.weight, self.cb_pool, self.cb_weight, self.cb_scale)])


def mix_tokens(token_mix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-chart token mixing ``Lambda_h @ x``: (H, N, N), (B', N, C) -> (B', N, H*C)."""
    b, n, c = x.shape
    h = token_mix.shape[0]
    return torch.einsum('hmn,bnc->bmhc', token_mix, x).reshape(b, n, h * c)


def stack_charts(weight: torch.Tensor) -> torch.Tensor:
    """``(H, C_out, C_in) -> (H*C_in, C_out)``, so that ``y @ stacked = sum_h y_h @ W_h^T``."""
    h, c_out, c_in = weight.shape
    return weight.transpose(1, 2).reshape(h * c_in, c_out)


def pool_tokens(cb_pool: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-chart token pooling ``c_h^T @ x``: (H, N), (B', N, C) -> (B', H*C)."""
    b, _, c = x.shape
    return torch.einsum('hn,bnc->bhc', cb_pool, x).reshape(b, cb_pool.shape[0] * c)


def folded_forward(x: torch.Tensor, t: FoldedKeyTensors) -> torch.Tensor:
    """Apply folded tensors: ``x: (B', N, C) -> (B', N, C)`` (see the module docstring)."""
    out = mix_tokens(t.token_mix, x) @ stack_charts(t.weight)
    if t.cb_pool is not None:
        cb_w = t.weight if t.cb_weight is None else t.cb_weight
        cb = pool_tokens(t.cb_pool, x) @ stack_charts(cb_w)  # (B', C)
        if t.cb_scale is not None:
            cb = cb * t.cb_scale
        out = out + cb.unsqueeze(1)
    return out


class FoldedKey(nn.Module):
    """A key computed from folded tensors only: ``(B', N, C) -> (B', N, C)``.

    Same function as the key it was folded from (:func:`fold_key`). Parameters: ``H N^2 + H C^2``
    (SpatialK, SimpleK: always fewer than the key), ``+ H N + C`` (VanillaK: fewer when
    ``N < C``), ``+ H N + H C^2`` (KUA: fewer when ``N < C + C/H``). In Swin-T (N = 49,
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
        """Fold a key module (any of :data:`~.builder.KEY_TYPES`); ``drop_cb``: leave out the
        CB term (see :func:`fold_backbone`)."""
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
    (the keys themselves are not), at ``H C^2`` fewer parameters per block.
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
