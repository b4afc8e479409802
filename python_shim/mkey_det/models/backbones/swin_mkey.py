"""Swin Transformer backbone whose attention keys are manifold keys (registered in mmdet)."""
from __future__ import annotations

import inspect
from typing import Optional, Tuple

import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmdet.registry import MODELS

from ..keys import KEY_TYPES
from ..keys.base import check_int
from .fused_window_attention import check_attn_impl, set_attn_impl
from .key_host import SwinKeyHost, check_key_args
from .window_msa import ManifoldKeyWindowMSA

_SWIN_SIGNATURE = inspect.signature(SwinTransformer.__init__)


@MODELS.register_module()
class SwinTransformerMKey(SwinKeyHost, SwinTransformer):
    """mmdet's ``SwinTransformer`` with the key of every block's attention replaced.

    Takes every argument of ``mmdet.models.backbones.SwinTransformer`` (same names, defaults
    and outputs, as a tuple: ``(B, C_i, H_i, W_i)`` maps for ``out_indices``), plus:

    Args:
        key_type: a registered key type (:mod:`mkey_det.models.keys.registry`):
            ``'linear'`` (the stock model, bit for bit, same state dict) or a manifold key
            (``'spatialk'``, ``'kua'``, ``'simplek'``, ``'vanillak'``, or a plugin's).
        num_charts: H, an int >= 1 (8 in the paper).
        key_order: ``'paper'`` (Algorithm 1 order), ``'fast'`` (folded where it saves FLOPs,
            same function and gradients) or ``'auto'`` (the faster of the two per call shape,
            measured once on the device in use: :mod:`mkey_det.models.keys.order_autotune`);
            switch later with :meth:`set_key_order`.
        attn_impl: the window attention of every block (linear key or manifold key):
            ``'eager'`` (mmdet's ``WindowMSA.forward``, the stock model bit for bit) or
            ``'sdpa'`` (the same attention through ``F.scaled_dot_product_attention``, the
            relative position bias and shift mask as one additive mask:
            :mod:`.fused_window_attention`); switch later with :meth:`set_attn_impl`. The state
            dict is the same either way.
        chart_noise: relative std of the zero-sum perturbation between the charts when a key
            is started from a linear key.
        key_kwargs: the key variant's own options, e.g. ``dict(cb_mode='per_location')`` for
            KUA / VanillaK (:func:`~mkey_det.models.keys.build_key`).

    Query and value keep Swin's projections with bias (``...attn.w_msa.qkv.q`` / ``.v``); the
    key (``...attn.w_msa.qkv.key``) has none (softmax ignores a key bias). Relative position
    bias, shift masks and padding are mmdet's. Without a checkpoint (``init_cfg=None``),
    ``init_weights`` starts each key function-preservingly from the linear key Swin's own init
    drew (:meth:`restart_keys`); with ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` see
    :func:`~mkey_det.models.backbones.load_pretrained`.

    ``train``, ``named_blocks``, ``manifold_attentions``, :meth:`set_key_order` and
    :meth:`restart_keys`: :class:`~.key_host.SwinKeyHost`.
    """

    _manifold_msa = ManifoldKeyWindowMSA

    def __init__(self, *args, key_type: str = 'linear', num_charts: int = 8,
                 key_order: str = 'fast', chart_noise: float = 0.1,
                 key_kwargs: Optional[dict] = None, attn_impl: str = 'eager', **kwargs):
        check_attn_impl(attn_impl)
        spec, key_kwargs = check_key_args(key_type, num_charts, key_order, chart_noise, key_kwargs)
        bound = _SWIN_SIGNATURE.bind(None, *args, **kwargs)  # TypeError on unknown args
        bound.apply_defaults()
        cfg = bound.arguments
        _check_swin_args(cfg)
        super().__init__(*args, **kwargs)
        self.key_type = key_type
        self.num_charts = num_charts
        self.chart_noise = float(chart_noise)
        if spec.manifold:
            self._replace_keys(key_type, num_charts, key_order, chart_noise, key_kwargs)
        self.attn_impl = 'eager'
        if attn_impl != 'eager':
            self.set_attn_impl(attn_impl)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(B, 3, H, W)`` -> one ``(B, C_i, H_i, W_i)`` map per ``out_indices``, as mmdet's, but
        as a tuple: mmdet's necks take either, mmpretrain's (``GlobalAveragePooling``) only a tuple,
        so the same backbone serves detection and ``mkey-det pretrain``."""
        return tuple(super().forward(x))

    def set_attn_impl(self, attn_impl: str) -> int:
        """Switch every block's window attention to ``'eager'`` or ``'sdpa'``
        (:func:`~.fused_window_attention.set_attn_impl`); returns the number switched."""
        n = set_attn_impl(self, attn_impl)
        self.attn_impl = attn_impl
        return n

    def init_weights(self) -> None:
        """No ``init_cfg``: mmdet's Swin init (trunc normal std .02 on every ``Linear``, the keys'
        included), then every key restarts from the linear key that init drew
        (:meth:`restart_keys`).
        ``init_cfg=dict(type='Pretrained', checkpoint=..., [strict=False])``: :func:`load_pretrained`
        (strict by default: every tensor but the per-output norms must come from the checkpoint);
        the keys are the checkpoint's or started from its linear keys, never restarted."""
        if self.init_cfg is None:
            super().init_weights()
            self.restart_keys()
            return
        cfg = dict(self.init_cfg)
        if cfg.get('type') != 'Pretrained' or 'checkpoint' not in cfg:
            raise ValueError(f'{type(self).__name__} supports init_cfg=None or '
                             f"dict(type='Pretrained', checkpoint=PATH), got {self.init_cfg!r}")
        from .pretrained import load_pretrained
        # The layout is detected from the keys (official or mmdet), whatever convert_weights says:
        # the stock config sets it for official files, and forcing the conversion on an
        # mmdet-layout file would rename its tensors away from the model.
        load_pretrained(self, cfg['checkpoint'], convert=None, strict=bool(cfg.get('strict', True)))

    def extra_repr(self) -> str:
        return (f'key_type={self.key_type!r}, num_charts={self.num_charts}, '
                f'attn_impl={self.attn_impl!r}')


def _check_swin_args(cfg: dict) -> None:
    """Validate the Swin arguments the keys depend on (ValueError naming the value)."""
    ws = cfg['window_size']
    if isinstance(ws, bool) or not isinstance(ws, int) or ws < 1:
        raise ValueError(f'window_size must be an int >= 1 (the spatial mixing is fixed to '
                         f'window_size**2 tokens), got {ws!r}')
    check_int('embed_dims', cfg['embed_dims'])
    depths, heads = tuple(cfg['depths']), tuple(cfg['num_heads'])
    if len(depths) != len(heads):
        raise ValueError(f'depths {depths} and num_heads {heads} must have the same length')
    for i, h in enumerate(heads):
        width = cfg['embed_dims'] * 2**i
        check_int(f'num_heads[{i}]', h)
        if width % h:
            raise ValueError(f'stage {i} width {width} is not divisible by num_heads[{i}]={h}')


__all__ = ['SwinTransformerMKey', 'KEY_TYPES']
