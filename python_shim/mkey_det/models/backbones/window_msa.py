"""Swin's window attention with the key computed by a manifold key module.

Composition, not a copy: :class:`ManifoldKeyWindowMSA` is mmdet's ``WindowMSA`` whose ``qkv``
is a :class:`ManifoldQKV`; mmdet's own ``forward`` (scale, relative position bias, shift mask,
softmax, projection) runs unchanged on its output (``attn_impl='eager'``, the default), or the
same attention as one fused kernel (``'sdpa'``, :mod:`.fused_window_attention`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmdet.models.backbones.swin import WindowMSA
from mmengine.utils import to_2tuple

from ..keys import build_key, key_spec, manifold_key_types
from .fused_window_attention import WindowAttentionImplMixin, check_attn_impl


def take_over(new: nn.Module, stock: nn.Module, names: Tuple[str, ...]) -> nn.Module:
    """``new`` (a manifold-key attention built to replace ``stock``) on ``stock``'s device and
    dtype, holding ``stock``'s own modules, parameters and buffers ``names``: the same objects, so
    nothing is copied, and assigning an existing name keeps the state-dict order."""
    w = stock.qkv.weight
    new = new.to(device=w.device, dtype=w.dtype)
    for name in names:
        setattr(new, name, getattr(stock, name))
    return new


class ManifoldQKV(nn.Module):
    """Query, key and value side by side: ``(B', N, C) -> (B', N, 3C)``.

    ``q = Linear(C, C, bias)`` and ``v = Linear(C, C, bias)`` (Swin's projections) and ``key``,
    any key module ``(B', N, C) -> (B', N, C)``. The output is laid out as Swin's fused ``qkv``
    (``[q | k | v]`` along channels), so ``WindowMSA.forward`` splits it into heads as usual.
    """

    def __init__(self, dim: int, key: nn.Module, bias: bool = True):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=bias)
        self.key = key
        self.v = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x), self.key(x), self.v(x)], dim=-1)


class ManifoldKeyAttention:
    """What the manifold-key attention of every host has (Swin-T's window attention, the ViT's
    multi-head attention, SwinV2's cosine window attention): ``embed_dims`` and ``qkv``, a
    :class:`ManifoldQKV`; the key, and the start from the fused ``qkv`` the host drew. Listed first
    among a host class's bases."""

    @property
    def key(self) -> nn.Module:
        """The key module ``(B', N, C) -> (B', N, C)``."""
        return self.qkv.key

    @torch.no_grad()
    def init_from_qkv(self, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                      chart_noise: Optional[float] = None,
                      generator: Optional[torch.Generator] = None) -> None:
        """Start from a fused ``qkv`` (``weight: (3C, C)``, ``bias: (3C,)``): q and v copied,
        the key started so that it equals ``x @ W_k.T`` (the key bias is dropped)."""
        c = self.embed_dims
        if tuple(weight.shape) != (3 * c, c):
            raise ValueError(f'qkv weight must have shape ({3 * c}, {c}), got '
                             f'{tuple(weight.shape)}')
        if bias is not None and tuple(bias.shape) != (3 * c, ):
            raise ValueError(f'qkv bias must have shape ({3 * c},), got {tuple(bias.shape)}')
        self.qkv.q.weight.copy_(weight[:c])
        self.qkv.v.weight.copy_(weight[2 * c:])
        if self.qkv.q.bias is not None:
            if bias is None:
                self.qkv.q.bias.zero_()
                self.qkv.v.bias.zero_()
            else:
                self.qkv.q.bias.copy_(bias[:c])
                self.qkv.v.bias.copy_(bias[2 * c:])
        self.key.init_from_linear(weight[c:2 * c], chart_noise=chart_noise, generator=generator)


class ManifoldKeyWindowMSA(ManifoldKeyAttention, WindowAttentionImplMixin, WindowMSA):
    """mmdet ``WindowMSA`` with ``qkv`` replaced by :class:`ManifoldQKV`.

    Input ``(B', N, C)`` with ``N = window_size**2``, output ``(B', N, C)``; ``mask`` as in
    ``WindowMSA``. Args as ``WindowMSA`` plus ``key_type`` (a registered manifold key type,
    :func:`~mkey_det.models.keys.manifold_key_types`), ``num_charts``, ``key_order`` and
    ``chart_noise``, ``key_kwargs`` (see :func:`~mkey_det.models.keys.build_key`), ``attn_impl``
    (``'eager'``: mmdet's forward; ``'sdpa'``: :mod:`.fused_window_attention`). The key has no
    bias: a key bias adds ``q . b_k`` to every logit of a row, which softmax ignores.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size, key_type: str = 'spatialk',
                 num_charts: int = 8, key_order: str = 'fast', chart_noise: float = 0.1,
                 key_kwargs: Optional[dict] = None, qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 attn_drop_rate: float = 0., proj_drop_rate: float = 0., init_cfg=None,
                 attn_impl: str = 'eager'):
        check_attn_impl(attn_impl)
        if not key_spec(key_type).manifold:
            accepted = ', '.join(repr(t) for t in manifold_key_types())
            raise ValueError(f"key_type {key_type!r} is mmdet's WindowMSA itself; "
                             f'ManifoldKeyWindowMSA accepts {accepted}')
        window_size = to_2tuple(window_size)
        super().__init__(embed_dims, num_heads, window_size, qkv_bias=qkv_bias,
                         qk_scale=qk_scale, attn_drop_rate=attn_drop_rate,
                         proj_drop_rate=proj_drop_rate, init_cfg=init_cfg)
        key = build_key(key_type, embed_dims, window_size[0] * window_size[1], num_charts,
                        order=key_order, chart_noise=chart_noise, key_kwargs=key_kwargs)
        self.qkv = ManifoldQKV(embed_dims, key, bias=qkv_bias)
        self.key_type = key_type
        self.attn_impl = attn_impl

    @classmethod
    def from_window_msa(cls, msa: WindowMSA, key_type: str, num_charts: int = 8,
                        key_order: str = 'fast', chart_noise: float = 0.1,
                        generator: Optional[torch.Generator] = None,
                        key_kwargs: Optional[dict] = None,
                        attn_impl: Optional[str] = None) -> 'ManifoldKeyWindowMSA':
        """Build from a stock ``WindowMSA``: same attention hyper-parameters, its relative
        position bias and projection copied, q/v from its ``qkv`` and the key started
        function-preservingly from its linear key (:meth:`init_from_qkv`). ``attn_impl``:
        None keeps ``msa``'s (``'eager'`` for a stock one)."""
        if attn_impl is None:
            attn_impl = getattr(msa, 'attn_impl', 'eager')
        new = cls(msa.embed_dims, msa.num_heads, msa.window_size, key_type=key_type,
                  num_charts=num_charts, key_order=key_order, chart_noise=chart_noise,
                  key_kwargs=key_kwargs, qkv_bias=msa.qkv.bias is not None, qk_scale=msa.scale,
                  attn_drop_rate=msa.attn_drop.p, proj_drop_rate=msa.proj_drop.p,
                  attn_impl=attn_impl)
        new = new.to(device=msa.qkv.weight.device, dtype=msa.qkv.weight.dtype)
        with torch.no_grad():
            new.relative_position_bias_table.copy_(msa.relative_position_bias_table)
            new.proj.load_state_dict(msa.proj.state_dict())
        new.init_from_qkv(msa.qkv.weight, msa.qkv.bias, generator=generator)
        return new
