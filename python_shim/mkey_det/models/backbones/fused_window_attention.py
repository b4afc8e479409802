"""Swin's window attention computed by one fused kernel: ``attn_impl='sdpa'``.

mmdet's ``WindowMSA.forward`` materialises the ``(B', heads, N, N)`` logits, adds the relative
position bias, adds the shift mask (``-100`` between the regions of a shifted window), runs
softmax and multiplies by ``v``: four kernels and two ``(B', heads, N, N)`` tensors kept for
backward. ``attn_impl='sdpa'`` computes the same attention with
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient / math kernel,
torch picks per device and dtype): the relative position bias and the shift mask are added into
**one additive float mask** (``bias + mask``, the same numbers mmdet adds), the scale is the
module's own qk scale (``msa.scale``, ``qk_scale`` or ``head_dim ** -0.5``), and the projection
is the module's. Same function; outputs and gradients agree with the eager form to float
rounding (the tests: 1e-5 relative, outputs and every parameter gradient).

Attention dropout (``attn_drop_rate``, 0 in every Swin recipe here): ``dropout_p`` is the module's
rate while training and 0 in eval, as in the eager form; the dropped entries are drawn by the
fused kernel, so with a non-zero rate the two forms agree in distribution, not sample by sample.

The option (:data:`ATTN_IMPLS`) is validated once, by :func:`check_attn_impl`; the modules that
carry it (:class:`WindowAttentionImplMixin`) dispatch on it in ``forward``, and ``'eager'`` calls
mmdet's ``WindowMSA.forward`` itself (the stock model is bit-identical). :func:`set_attn_impl`
switches every window attention inside a module, mmdet's stock ``WindowMSA`` of the linear-key
blocks included (see there).

Under autocast the combined mask is cast to the query's dtype (``scaled_dot_product_attention``
takes a float mask only in the query's dtype); the eager form adds the float32 bias to the
half-precision logits, so bf16 / fp16 runs of the two forms differ by that rounding. On a GPU
torch chooses the kernel: with an arbitrary additive mask that is the memory-efficient one
(fp32 / fp16 / bf16), or the math one where the memory-efficient kernel does not apply.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.backbones.swin import WindowMSA

from ...switch import Switch
from ...utils import set_on_modules

#: ``'eager'`` (mmdet's ``WindowMSA.forward``, the default) or ``'sdpa'`` (one fused kernel).
ATTN_IMPLS = ('eager', 'sdpa')


def check_attn_impl(attn_impl) -> str:
    """Return ``attn_impl`` if it is one of :data:`ATTN_IMPLS`; else raise ValueError."""
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
    return attn_impl


def relative_position_bias(msa: WindowMSA) -> torch.Tensor:
    """The module's relative position bias ``(heads, N, N)``, as ``WindowMSA.forward`` builds it."""
    n = msa.window_size[0] * msa.window_size[1]
    bias = msa.relative_position_bias_table[msa.relative_position_index.view(-1)]
    return bias.view(n, n, -1).permute(2, 0, 1)


def window_attention_mask(msa: WindowMSA, num_windows_total: int,
                          mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The one additive mask of :func:`sdpa_window_attention`: relative position bias plus the
    shift mask. ``(1, heads, N, N)`` without a shift mask (broadcast over the windows), else
    ``(B', heads, N, N)``: ``mask`` is ``(nW, N, N)`` for the ``nW`` windows of one image and the
    windows of ``B'`` are image-major (``ShiftWindowMSA``'s ``window_partition``)."""
    bias = relative_position_bias(msa).unsqueeze(0)                 # (1, heads, N, N)
    if mask is None:
        return bias
    nw = mask.shape[0]
    combined = bias + mask.unsqueeze(1)                             # (nW, heads, N, N)
    return combined.repeat(num_windows_total // nw, 1, 1, 1)        # (B', heads, N, N)


def sdpa_window_attention(msa: WindowMSA, x: torch.Tensor,
                          mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``WindowMSA.forward(x, mask)`` computed with ``F.scaled_dot_product_attention``.

    ``x: (B', N, C)`` windows, ``mask: (nW, N, N)`` or None (as ``WindowMSA.forward``); works for
    any ``msa`` laid out as mmdet's (``qkv`` giving ``[q | k | v]``, ``num_heads``, ``scale``,
    ``relative_position_bias_table`` / ``_index``, ``attn_drop``, ``proj``, ``proj_drop``), so for
    the linear key and :class:`~.window_msa.ManifoldKeyWindowMSA` alike.
    """
    b, n, c = x.shape
    heads = msa.num_heads
    qkv = msa.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]                                # (B', heads, N, d)
    attn_mask = window_attention_mask(msa, b, mask).to(q.dtype)
    dropout_p = msa.attn_drop.p if msa.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                         scale=msa.scale)
    out = out.transpose(1, 2).reshape(b, n, c)
    return msa.proj_drop(msa.proj(out))


class WindowAttentionImplMixin:
    """``attn_impl`` on a window attention: put before ``WindowMSA`` in the bases.

    ``forward`` runs mmdet's ``WindowMSA.forward`` for ``'eager'`` (untouched) and
    :func:`sdpa_window_attention` for ``'sdpa'``. Adds no parameter or buffer: the state dict is
    ``WindowMSA``'s.
    """

    attn_impl = Switch(check_attn_impl, 'eager', "``'eager'`` or ``'sdpa'``; assignable.")

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self._attn_impl == 'sdpa':
            return sdpa_window_attention(self, x, mask)
        return super().forward(x, mask)


class ImplWindowMSA(WindowAttentionImplMixin, WindowMSA):
    """mmdet's ``WindowMSA`` (the linear key) with ``attn_impl``; same state dict."""


def set_attn_impl(module: nn.Module, attn_impl: str) -> int:
    """Set ``attn_impl`` on every window attention inside ``module`` (itself included); returns
    the number set.

    A stock mmdet ``WindowMSA`` (the linear-key blocks) that is asked for ``'sdpa'`` becomes an
    :class:`ImplWindowMSA` in place (its class is reassigned: the same object, parameters, buffers
    and state dict, so an optimizer that holds them is unaffected); with ``'eager'`` a stock one is
    left as it is. A module that already carries ``attn_impl`` (:class:`WindowAttentionImplMixin`,
    e.g. :class:`~.window_msa.ManifoldKeyWindowMSA`) only gets the attribute.
    """
    check_attn_impl(attn_impl)
    stock = [m for m in module.modules() if type(m) is WindowMSA]
    if attn_impl != 'eager':
        for m in stock:
            m.__class__ = ImplWindowMSA
        stock = []
    return len(stock) + set_on_modules(module, WindowAttentionImplMixin, 'attn_impl', attn_impl)
