"""The folded form of a key: its tensors (:class:`FoldedKeyTensors`) and how they are applied.

Every key variant is linear in its input ``x: (B', N, C)``, so it equals

    out = sum_h  Lambda_h @ x @ M_h^T                                  (main term)
        + 1_N (x) [ sum_h (c_h^T @ x) @ G_h^T ] * r                    (CB term, KUA/VanillaK)

with ``Lambda_h: (N, N)`` (token mixing of chart h), ``M_h: (C, C)`` (output x input),
``c_h: (N,)`` (pooling of chart h), ``G_h: (C, C)`` (``G_h = M_h`` when not given) and
``r: (C,)`` (elementwise scale, 1 when not given). ``1_N (x)`` broadcasts one row to the N
tokens. The CB term (paper Eq. 4) is linear too: the mean over all H*N rows of
``K_h = Lambda_h E_h`` is ``sum_h (u_h / (H N))^T E_h`` with ``u_h = Lambda_h^T 1`` (column sums),
so ``c_h = u_h / (H N)``; the variants' ``fold()`` work out ``M_h``, ``G_h`` and ``r``.
The other CB forms (``cb_mode``, :data:`~.base.CB_MODES`) need no CB term: the per-location
mean over the charts at token ``n`` is ``sum_h (Lambda_h x)_n M'_h^T / H``, with the same token
mixing as the main term, so it folds into ``M_h`` (``cb_pool`` None); ``'none'`` has no CB.
Every mode folds exactly (``'fast'`` equals the paper order up to float rounding).

This module depends on torch only: :mod:`.base` (``ManifoldKey.forward_fast``) and the variants
use it, and :mod:`.folded` (:class:`~.folded.FoldedKey`, :func:`~.folded.fold_backbone`) builds
on both, so no two key modules import each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


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


def main_term(token_mix: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_h Lambda_h @ x @ M_h^T``: (H, N, N), (H, C_out, C_in), (B', N, C_in) -> (B', N, C_out).

    Order (why): the channel maps first, all charts in one GEMM on ``x`` as it is laid out,
    ``y = x @ [M_1; ...; M_H]^T`` of shape (B', N, H*C_out), whose (token, chart) rows are
    contiguous; then the token mixing contracts (n, h) as one index, ``L[m, (n, h)] =
    Lambda_h[m, n]``, one batched GEMM per window against the shared L. No (B', N, H*C) tensor
    is re-laid out, forward or backward: a chart-major layout would cost a copy of it each way
    for the same multiply-adds (the measurement: docs/BENCH.md, "Measurement notes moved out of
    the code").
    """
    b, n, c_in = x.shape
    h, c_out, _ = weight.shape
    y = x.reshape(b * n, c_in) @ weight.reshape(h * c_out, c_in).t()  # (B'*N, H*C_out)
    mixing = token_mix.permute(1, 2, 0).reshape(n, n * h)              # (N, N*H)
    return torch.bmm(mixing.expand(b, n, n * h), y.view(b, n * h, c_out))


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
    out = main_term(t.token_mix, t.weight, x)
    if t.cb_pool is not None:
        cb_w = t.weight if t.cb_weight is None else t.cb_weight
        cb = pool_tokens(t.cb_pool, x) @ stack_charts(cb_w)  # (B', C)
        if t.cb_scale is not None:
            cb = cb * t.cb_scale
        out = out + cb.unsqueeze(1)
    return out
