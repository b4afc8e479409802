"""mmpretrain's Swin Transformer V2 whose attention keys are manifold keys (the third host).

:class:`SwinTransformerV2MKey` is ``mmpretrain.models.backbones.SwinTransformerV2`` (registered in
``mmpretrain.registry.MODELS``) where every block's window attention ``WindowMSAV2`` is a
:class:`ManifoldKeyWindowMSAV2`: the same key modules as the Swin-T and ViT hosts (one
implementation, three hosts), in a :class:`~.window_msa.ManifoldQKV` (``[q | key(x) | v]``).

What differs from the Swin-T host is the attention around the key (SwinV2, and the paper's
section 5: 256 px images, window 8, so ``N = 64`` tokens per window):

* **scaled cosine attention**: ``q`` and ``k`` are L2-normalised per head and the logits scaled by
  a learnt ``exp(logit_scale)`` (clamped at 100), instead of ``q k^T / sqrt(d)``;
* **log-spaced continuous position bias**: ``16 * sigmoid(cpb_mlp(log-spaced coordinates))``
  instead of a table;
* the fused ``qkv`` has no bias; ``q_bias`` and ``v_bias`` are separate parameters (the key has
  none, as in the stock model). Here ``qkv.q`` and ``qkv.v`` are ``Linear(C, C, bias=False)`` and
  ``q_bias`` / ``v_bias`` stay where SwinV2 has them.

Because the key is normalised per token, context broadcasting is no longer a softmax no-op: Eq. 4
adds one vector per window to every token's key, which shifts each logit row by a constant under
dot-product attention (Swin-T, ViT), but changes the direction of each key by a different amount
under cosine attention (:func:`cb_attention_effect` measures both; docs/PRETRAIN.md).

This module imports mmpretrain; ``mkey_det.models.backbones`` imports it only where mmpretrain is
installed.
"""
from __future__ import annotations

import inspect
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import SwinTransformerV2
from mmpretrain.models.utils import WindowMSAV2
from mmpretrain.registry import MODELS

from ..keys import build_key, key_spec, manifold_key_types
from ..keys.start import is_fresh_init
from .key_host import SwinKeyHost, check_key_args
from .window_msa import ManifoldKeyAttention, ManifoldQKV, take_over

_SWINV2_SIGNATURE = inspect.signature(SwinTransformerV2.__init__)


class ManifoldKeyWindowMSAV2(ManifoldKeyAttention, WindowMSAV2):
    """mmpretrain ``WindowMSAV2`` whose key is a manifold key.

    Input ``(B', N, C)`` with ``N = window_size[0] * window_size[1]``, output ``(B', N, C)``;
    ``mask`` as in ``WindowMSAV2``. Args as ``WindowMSAV2`` plus ``key_type`` (a registered
    manifold key type), ``num_charts``, ``key_order``, ``chart_noise`` and ``key_kwargs`` (see
    :func:`~mkey_det.models.keys.build_key`). ``qkv`` is a :class:`~.window_msa.ManifoldQKV`
    without biases; ``q_bias`` / ``v_bias`` are SwinV2's. The attention after ``qkv`` (cosine
    similarity, ``logit_scale``, continuous position bias, mask, softmax, projection) is
    mmpretrain's, line for line (:meth:`attend`).
    """

    def __init__(self, embed_dims: int, window_size, num_heads: int, key_type: str = 'spatialk',
                 num_charts: int = 8, key_order: str = 'fast', chart_noise: float = 0.1,
                 key_kwargs: Optional[dict] = None, qkv_bias: bool = True, **kwargs):
        if not key_spec(key_type).manifold:
            accepted = ', '.join(repr(t) for t in manifold_key_types())
            raise ValueError(f"key_type {key_type!r} is mmpretrain's WindowMSAV2 itself; "
                             f'ManifoldKeyWindowMSAV2 accepts {accepted}')
        super().__init__(embed_dims, window_size, num_heads, qkv_bias=qkv_bias, **kwargs)
        n = int(self.window_size[0]) * int(self.window_size[1])
        key = build_key(key_type, embed_dims, n, num_charts, order=key_order,
                        chart_noise=chart_noise, key_kwargs=key_kwargs)
        self.qkv = ManifoldQKV(embed_dims, key, bias=False)  # SwinV2's qkv has no bias either
        self.key_type = key_type

    @classmethod
    def from_window_msa(cls, msa: WindowMSAV2, key_type: str, num_charts: int = 8,
                        key_order: str = 'fast', chart_noise: float = 0.1,
                        key_kwargs: Optional[dict] = None,
                        generator: Optional[torch.Generator] = None) -> 'ManifoldKeyWindowMSAV2':
        """Build from a stock ``WindowMSAV2``: its position-bias MLP, ``logit_scale``, biases,
        projection and dropouts reused (same modules and parameters), q/v copied from its
        ``qkv`` and the key started function-preservingly from its linear key."""
        new = cls(msa.embed_dims, msa.window_size, msa.num_heads, key_type=key_type,
                  num_charts=num_charts, key_order=key_order, chart_noise=chart_noise,
                  key_kwargs=key_kwargs, qkv_bias=msa.q_bias is not None,
                  cpb_mlp_hidden_dims=msa.cpb_mlp[0].out_features)
        new = take_over(new, msa, ('cpb_mlp', 'logit_scale', 'q_bias', 'v_bias', 'attn_drop', 'proj',
                                   'proj_drop', 'relative_coords_table', 'relative_position_index',
                                   'init_cfg'))
        new.init_from_qkv(msa.qkv.weight, None, generator=generator)
        return new

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``(B', N, C) -> (B', N, 3C)``: ``[q + q_bias | key(x) | v + v_bias]`` (as stock's
        ``F.linear(x, qkv.weight, cat(q_bias, 0, v_bias))``)."""
        qkv = self.qkv(x)
        if self.q_bias is not None:
            qkv = qkv + torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        return qkv

    def attention(self, qkv: torch.Tensor, mask: Optional[torch.Tensor] = None
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        """mmpretrain's ``WindowMSAV2.forward`` after the projection: ``qkv: (B', N, 3C)`` ->
        ``(attention probabilities (B', heads, N, N) before dropout, v (B', heads, N, C/heads))``."""
        B_, N, C3 = qkv.shape
        C = C3 // 3
        qkv = qkv.reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # cosine attention
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1))
        logit_scale = torch.clamp(self.logit_scale, max=np.log(1. / 0.01)).exp()
        attn = attn * logit_scale
        relative_position_bias_table = self.cpb_mlp(
            self.relative_coords_table).view(-1, self.num_heads)
        relative_position_bias = relative_position_bias_table[
            self.relative_position_index.view(-1)].view(
                self.window_size[0] * self.window_size[1],
                self.window_size[0] * self.window_size[1], -1)
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()
        relative_position_bias = 16 * torch.sigmoid(relative_position_bias)
        attn = attn + relative_position_bias.unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        return self.softmax(attn), v

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B_, N, C = x.shape
        attn, v = self.attention(self.project(x), mask)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        x = self.proj(x)
        return self.proj_drop(x)


def _check_window_size(window_size) -> None:
    """``window_size`` as mmpretrain takes it: an int >= 1 or one per stage (4 of them). Anything
    else (0, -3, a string) ended in a bare ``AssertionError`` deep in the stock model; a ValueError
    here is one line naming the value (exit 2 from the CLI)."""
    sizes = list(window_size) if isinstance(window_size, (list, tuple)) else [window_size]
    ok = len(sizes) == 4 if isinstance(window_size, (list, tuple)) else True
    ok = ok and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in sizes)
    if not ok:
        raise ValueError(f'window_size {window_size!r}: accepted: a whole number >= 1, or 4 of them '
                         '(one per stage), e.g. 8 or [16, 16, 16, 8]')


@MODELS.register_module()
class SwinTransformerV2MKey(SwinKeyHost, SwinTransformerV2):
    """mmpretrain's ``SwinTransformerV2`` with the key of every block's attention replaced.

    Takes every argument of ``mmpretrain.models.backbones.SwinTransformerV2`` (same names,
    defaults, outputs: a tuple of ``(B, C_i, H_i, W_i)`` maps for ``out_indices``; the defaults
    are SwinV2-T at 256 px with window 8, the paper's section 5), plus:

    Args:
        key_type: a registered key type: ``'linear'`` (the stock model, bit for bit, same state
            dict) or a manifold key (``'spatialk'``, ``'kua'``, ``'simplek'``, ``'vanillak'``,
            or a plugin's).
        num_charts: H, an int >= 1 (8 in the paper).
        key_order: ``'paper'``, ``'fast'`` or ``'auto'`` (see
            :mod:`mkey_det.models.keys.base`); switch later with :meth:`set_key_order`.
        chart_noise: relative std of the zero-sum perturbation between the charts when a key
            is started from a linear key.
        key_kwargs: the key variant's own options, e.g. ``dict(cb_mode='none')``.

    Every window attention is built for ``N = window_size ** 2`` tokens; a feature map smaller
    than the window needs ``pad_small_map=True`` (as the stock model asserts). At construction
    each key starts function-preservingly from its block's freshly built linear key; on a fresh
    ``init_weights`` it restarts from the linear key the host's initialisation drew
    (:func:`~mkey_det.models.keys.start.restart_from_host_init`).

    ``train``, ``named_blocks``, ``manifold_attentions``, :meth:`set_key_order` and
    :meth:`restart_keys`: :class:`~.key_host.SwinKeyHost`.
    """

    _manifold_msa = ManifoldKeyWindowMSAV2

    def __init__(self, *args, key_type: str = 'linear', num_charts: int = 8,
                 key_order: str = 'fast', chart_noise: float = 0.1,
                 key_kwargs: Optional[dict] = None, **kwargs):
        spec, kwargs_key = check_key_args(key_type, num_charts, key_order, chart_noise, key_kwargs)
        bound = _SWINV2_SIGNATURE.bind(None, *args, **kwargs)  # TypeError on unknown args
        _check_window_size(bound.arguments.get('window_size', 8))
        super().__init__(*args, **kwargs)
        self.key_type = key_type
        self.num_charts = num_charts
        self.chart_noise = float(chart_noise)
        self.key_kwargs = kwargs_key
        if spec.manifold:
            self._replace_keys(key_type, num_charts, key_order, chart_noise, kwargs_key)

    def init_weights(self) -> None:
        """mmpretrain's ``init_weights``, then, on a fresh init (no ``Pretrained`` init_cfg, first
        call), every key restarts from the linear key the host's initialisation drew."""
        fresh = is_fresh_init(self)
        super().init_weights()
        if fresh:
            self.restart_keys()

    def extra_repr(self) -> str:
        return f'key_type={self.key_type!r}, num_charts={self.num_charts}'


@torch.no_grad()
def cb_attention_effect(dim: int = 96, num_heads: int = 3, window: int = 8,
                        num_charts: int = 8, windows: int = 16, gamma2_std: float = 1.0,
                        seed: int = 0) -> Dict[str, float]:
    """How much Eq. 4's context broadcasting changes the attention maps, per host attention.

    One VanillaK key (``cb_mode='eq4'``) with ``gamma2 = 0`` and the same key with a random
    ``gamma2 ~ N(0, gamma2_std^2)``, on ``windows`` random windows of ``window ** 2`` tokens; the
    attention probabilities of the two (before dropout) compared as
    ``||A(gamma2) - A(0)||_F / ||A(0)||_F`` for:

    * ``'dot'``: Swin-T's / ViT's scaled dot-product attention (``q k^T / sqrt(d)``), where the
      broadcast vector shifts each logit row by a constant (softmax ignores it: float rounding);
    * ``'cosine'``: SwinV2's scaled cosine attention (this module), where it does not.

    Returns ``dict(dot=..., cosine=...)`` (relative differences) and the settings.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    msa = ManifoldKeyWindowMSAV2(dim, (window, window), num_heads, key_type='vanillak',
                                 num_charts=num_charts, key_order='paper',
                                 key_kwargs=dict(cb_mode='eq4')).eval()
    x = torch.randn(windows, window * window, dim, generator=g)
    key = msa.key
    gamma2 = torch.randn(key.gamma2.shape, generator=g) * gamma2_std

    def maps(g2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        key.gamma2.copy_(g2)
        qkv = msa.project(x)
        cos, _ = msa.attention(qkv)
        b, n, c3 = qkv.shape
        c = c3 // 3
        q, k, _ = qkv.reshape(b, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
        dot = ((q * (c // num_heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        return dot, cos

    dot0, cos0 = maps(torch.zeros_like(gamma2))
    dot1, cos1 = maps(gamma2)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    return dict(dot=rel(dot1, dot0), cosine=rel(cos1, cos0), dim=dim, num_heads=num_heads,
                window=window, num_charts=num_charts, windows=windows, gamma2_std=gamma2_std,
                seed=seed)


__all__ = ['SwinTransformerV2MKey', 'ManifoldKeyWindowMSAV2', 'cb_attention_effect']
