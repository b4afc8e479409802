"""mmpretrain's Vision Transformer whose attention keys are manifold keys (classification half).

:class:`VisionTransformerMKey` is ``mmpretrain.models.backbones.VisionTransformer`` (registered in
``mmpretrain.registry.MODELS``) where every block's ``attn.qkv = Linear(C, 3C)`` is a
:class:`~.window_msa.ManifoldQKV` (the same module the Swin host uses: one implementation, two
hosts). The key sees all N tokens of the image at once: ``N = patches + class token`` (197 at
224 px with 16 px patches), so its token mixing is ``N x N`` per chart and the model is fixed to
its ``img_size``.

mmpretrain's ``MultiheadAttention.forward`` reshapes the fused output ``(B, N, 3C)`` as
``(B, N, 3, heads, C / heads)`` and takes index 0, 1, 2 as q, k, v: the channel blocks
``[0, C)``, ``[C, 2C)``, ``[2C, 3C)``, which is :class:`ManifoldQKV`'s ``[q | k | v]`` layout
(checked by the tests: a key started from the block's linear key gives the stock output).

This module imports mmpretrain; ``mkey_det.models.backbones`` imports it only where mmpretrain is
installed.
"""
from __future__ import annotations

import inspect
from typing import Any, Iterator, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import MultiheadAttention
from mmpretrain.registry import MODELS

from ..keys import build_key, key_spec, manifold_key_types
from ..keys.base import check_int
from ..keys.start import is_fresh_init
from .key_host import KeyHost, check_key_args
from .window_msa import ManifoldKeyAttention, ManifoldQKV, take_over

_VIT_SIGNATURE = inspect.signature(VisionTransformer.__init__)


class ManifoldKeyMultiheadAttention(ManifoldKeyAttention, MultiheadAttention):
    """mmpretrain ``MultiheadAttention`` whose ``qkv`` is a :class:`ManifoldQKV`.

    Input ``(B, N, C)`` with ``N = num_tokens`` (all tokens, class token included), output
    ``(B, N, C)``: mmpretrain's own ``forward`` (head split, scaled dot-product attention,
    projection, layer scale, drop path) runs unchanged on ``qkv``'s ``(B, N, 3C)``. Args as
    ``MultiheadAttention`` plus ``num_tokens`` (N), ``key_type`` (a registered manifold key type,
    :func:`~mkey_det.models.keys.manifold_key_types`), ``num_charts``, ``key_order``,
    ``chart_noise`` and ``key_kwargs`` (see :func:`~mkey_det.models.keys.build_key`). The key has no bias (softmax
    ignores it); q and v keep ``qkv_bias``. Same interface as
    :class:`~.window_msa.ManifoldKeyWindowMSA` (:class:`~.window_msa.ManifoldKeyAttention`: ``key``,
    :meth:`init_from_qkv`), so :func:`~.pretrained.load_pretrained` serves both hosts.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_tokens: int,
                 key_type: str = 'spatialk', num_charts: int = 8, key_order: str = 'fast',
                 chart_noise: float = 0.1, key_kwargs: Optional[Mapping] = None,
                 qkv_bias: bool = True, input_dims: Optional[int] = None, **kwargs):
        if not key_spec(key_type).manifold:
            raise ValueError(f"key_type {key_type!r} is mmpretrain's MultiheadAttention itself; "
                             f'ManifoldKeyMultiheadAttention accepts {manifold_key_types()}')
        if input_dims not in (None, embed_dims):
            raise ValueError(f'a manifold key maps C -> C: input_dims must equal embed_dims '
                             f'{embed_dims}, got {input_dims!r}')
        super().__init__(embed_dims, num_heads, qkv_bias=qkv_bias, **kwargs)
        key = build_key(key_type, embed_dims, num_tokens, num_charts, order=key_order,
                             chart_noise=chart_noise, key_kwargs=key_kwargs)
        self.qkv = ManifoldQKV(embed_dims, key, bias=qkv_bias)  # replaces Linear(C, 3C) in place
        self.num_tokens = num_tokens
        self.key_type = key_type

    @classmethod
    def from_attention(cls, attn: MultiheadAttention, num_tokens: int, key_type: str,
                       num_charts: int = 8, key_order: str = 'fast', chart_noise: float = 0.1,
                       key_kwargs: Optional[Mapping] = None,
                       generator: Optional[torch.Generator] = None
                       ) -> 'ManifoldKeyMultiheadAttention':
        """Build from a stock ``MultiheadAttention``: its projection, drop path, layer scale and
        attention function reused (same modules), q/v copied from its ``qkv`` and the key
        started function-preservingly from its linear key (:meth:`init_from_qkv`)."""
        new = cls(attn.embed_dims, attn.num_heads, num_tokens, key_type=key_type,
                  num_charts=num_charts, key_order=key_order, chart_noise=chart_noise,
                  key_kwargs=key_kwargs, qkv_bias=attn.qkv.bias is not None,
                  input_dims=attn.input_dims, attn_drop=attn.attn_drop,
                  proj_drop=attn.proj_drop.p, proj_bias=attn.proj.bias is not None,
                  v_shortcut=attn.v_shortcut)
        new = take_over(new, attn, ('proj', 'proj_drop', 'out_drop', 'gamma1',
                                    'scaled_dot_product_attention', 'init_cfg'))
        new.init_from_qkv(attn.qkv.weight, attn.qkv.bias, generator=generator)
        return new


@MODELS.register_module()
class VisionTransformerMKey(VisionTransformer, KeyHost):
    """mmpretrain's ``VisionTransformer`` with the key of every block's attention replaced.

    Takes every argument of ``mmpretrain.models.backbones.VisionTransformer`` (same names,
    defaults and outputs: a tuple with one tensor per ``out_indices``, shaped by ``out_type``:
    ``'cls_token'`` ``(B, C)``, ``'featmap'`` ``(B, C, H/p, W/p)``, ``'avg_featmap'`` ``(B, C)``,
    ``'raw'`` ``(B, N, C)``), plus:

    Args:
        key_type: a registered key type (:mod:`mkey_det.models.keys.registry`): ``'linear'``
            (the stock model, bit for bit, same state dict) or a manifold key (``'spatialk'``,
            ``'kua'``, ``'simplek'``, ``'vanillak'``, or a plugin's).
        num_charts: H, an int >= 1 (8 in the paper's Table 1; Table 2 also uses 4).
        key_order: ``'paper'`` (Algorithm 1 order), ``'fast'`` (folded where cheaper, same
            function and gradients) or ``'auto'`` (the faster of the two per call shape,
            measured: :mod:`mkey_det.models.keys.order_autotune`); switch later with
            :meth:`set_key_order`.
        chart_noise: relative std of the zero-sum perturbation between the charts when a key
            is started from a linear key.
        key_kwargs: extra arguments of the key (None: none), passed to ``build_key`` or the key
            class (:func:`~mkey_det.models.keys.build_key`), e.g. a variant option of a key class.

    Each manifold key is built for ``N = patch_resolution[0] * patch_resolution[1] + (1 if
    with_cls_token else 0)`` tokens (197 for 224 px, patch 16, class token): the model then
    accepts only images whose patch grid is ``patch_resolution`` (ValueError otherwise; the stock
    model interpolates its position embedding instead). Query and value keep the projections of
    ``qkv`` with ``qkv_bias`` (``layers.i.attn.qkv.q`` / ``.v``); the key
    (``layers.i.attn.qkv.key``) has none. At construction each key starts function-preservingly
    from its block's freshly built linear key (so with the same seed the model computes what
    the stock model computes); ``init_weights`` of a fresh model restarts it from the linear key
    the host's initialisation drew (:meth:`init_weights`). A stock state dict
    (``layers.i.attn.qkv.weight/bias``) loads too (``load_state_dict`` or
    ``init_cfg=dict(type='Pretrained', ...)``): q/v are copied and the key started from its
    ``W_k``.

    ``manifold_attentions``, :meth:`set_key_order` and :meth:`restart_keys`:
    :class:`~.key_host.KeyHost` (a base after mmpretrain's class, which stays the first).
    """

    _attention_at = ('attn',)

    def __init__(self, *args, key_type: str = 'linear', num_charts: int = 8,
                 key_order: str = 'fast', chart_noise: float = 0.1,
                 key_kwargs: Optional[Mapping] = None, **kwargs):
        spec, kwargs_key = check_key_args(key_type, num_charts, key_order, chart_noise, key_kwargs)
        bound = _VIT_SIGNATURE.bind(None, *args, **kwargs)  # TypeError on unknown args
        bound.apply_defaults()
        _check_vit_args(bound.arguments)
        super().__init__(*args, **kwargs)
        self.key_type = key_type
        self.num_charts = num_charts
        self.chart_noise = float(chart_noise)
        self.key_kwargs = kwargs_key
        self.num_tokens = self._token_count()
        if spec.manifold:
            self._replace_keys(key_type, num_charts, key_order, chart_noise, kwargs_key)
            self._register_load_state_dict_pre_hook(self._qkv_from_linear)

    def _manifold_attention(self, stock: MultiheadAttention, key_type: str, num_charts: int,
                            **key: Any) -> 'ManifoldKeyMultiheadAttention':
        return ManifoldKeyMultiheadAttention.from_attention(stock, self.num_tokens, key_type,
                                                            num_charts, **key)

    def _freeze_again(self) -> None:
        """As mmpretrain's ``__init__``: ``_freeze_stages`` only for ``frozen_stages > 0`` (it
        freezes the patch and position embeddings even at 0)."""
        if self.frozen_stages > 0:
            self._freeze_stages()

    def _token_count(self) -> int:
        """N, the tokens every attention sees: patches + extra (class) tokens; checked against
        the position embedding (ValueError naming both)."""
        res = self.patch_resolution
        if res is None or len(res) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in res):
            raise ValueError(f'a manifold key needs a fixed token count: img_size '
                             f'{self.img_size} gives patch_resolution {res!r}')
        n = res[0] * res[1] + self.num_extra_tokens
        if self.pos_embed.shape[1] != n:
            raise ValueError(f'token count {n} (patch_resolution {tuple(res)}, '
                             f'{self.num_extra_tokens} extra token(s)) does not match pos_embed '
                             f'with {self.pos_embed.shape[1]} tokens')
        return n

    def _patch_grid(self, height: int, width: int) -> Optional[Tuple[int, int]]:
        """The patch grid ``patch_embed`` makes of a ``height x width`` image (as mmcv's
        ``PatchEmbed`` computes ``init_out_size``); None for a projection it does not know."""
        pe = self.patch_embed
        conv = pe.projection
        if not isinstance(conv, nn.Conv2d) or isinstance(conv.padding, str):
            return None
        if pe.adaptive_padding is not None:
            ph, pw = pe.adaptive_padding.get_pad_shape((height, width))
            height, width = height + ph, width + pw
        out = []
        for size, i in ((height, 0), (width, 1)):
            out.append((size + 2 * conv.padding[i] - conv.dilation[i] *
                        (conv.kernel_size[i] - 1) - 1) // conv.stride[i] + 1)
        return tuple(out)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(B, 3, H, W)`` -> tuple of outputs per ``out_indices`` (see the class docstring).
        With a manifold key the image must give ``patch_resolution`` patches (ValueError)."""
        if key_spec(self.key_type).manifold:
            grid = self._patch_grid(int(x.shape[-2]), int(x.shape[-1]))
            if grid is not None and tuple(grid) != tuple(self.patch_resolution):
                raise ValueError(
                    f'{type(self).__name__} with key_type={self.key_type!r} is fixed to '
                    f'{self.num_tokens} tokens (img_size {self.img_size}, patch grid '
                    f'{tuple(self.patch_resolution)}); an image of {tuple(x.shape[-2:])} gives '
                    f'a {tuple(grid)} patch grid')
        return super().forward(x)

    def train(self, mode: bool = True) -> 'VisionTransformerMKey':
        """As mmpretrain's (keeps frozen stages in eval mode), but returns ``self`` like
        ``nn.Module.train`` so that ``model.eval()`` chains."""
        super().train(mode)
        return self

    def named_blocks(self) -> Iterator[Tuple[str, nn.Module]]:
        """``('layers.i', TransformerEncoderLayer)`` for every block."""
        for i, layer in enumerate(self.layers):
            yield f'layers.{i}', layer

    def init_weights(self) -> None:
        """mmpretrain's ``init_weights``, then, on a fresh init, every key restarts from the
        linear key the host initialised (:meth:`restart_keys`). The host's initialisers reach
        inside the keys: a classifier's ``init_cfg`` (the DeiT configs' ``TruncNormal`` on every
        ``Linear``) runs before this method and redraws the charts independently and
        ``to_out``; this backbone's own ``init_cfg`` may do the same. Not restarted: with
        ``init_cfg=dict(type='Pretrained', ...)`` (loaded through ``load_state_dict``; a stock
        checkpoint is converted, see :meth:`_qkv_from_linear`), and on a second call (mmengine
        initialises a module once)."""
        fresh = is_fresh_init(self)
        super().init_weights()
        if fresh:
            self.restart_keys()

    @torch.no_grad()
    def _qkv_from_linear(self, state_dict, prefix, *args, **kwargs) -> None:
        """``load_state_dict`` pre-hook: a stock fused ``layers.i.attn.qkv.weight`` (and bias) in
        ``state_dict`` becomes this model's q, v and a key started from its ``W_k`` (the key
        tensors are written into ``state_dict``, so a strict load succeeds)."""
        for name, attn in self.manifold_attentions():
            p = f'{prefix}{name}.qkv.'
            if p + 'weight' not in state_dict:
                continue
            w = state_dict.pop(p + 'weight')
            b = state_dict.pop(p + 'bias', None)
            ref = attn.qkv.q.weight
            if b is None or attn.qkv.q.bias is None:
                b = None if attn.qkv.q.bias is None else torch.cat(
                    [attn.qkv.q.bias, torch.zeros_like(attn.qkv.q.bias), attn.qkv.v.bias])
            attn.init_from_qkv(w.to(ref), None if b is None else b.to(ref))
            for k, v in attn.qkv.state_dict().items():
                state_dict[p + k] = v.detach().clone()

    def extra_repr(self) -> str:
        return (f'key_type={self.key_type!r}, num_charts={self.num_charts}, '
                f'num_tokens={self.num_tokens}')


def _check_vit_args(cfg: dict) -> None:
    """Validate the ViT arguments the keys depend on (ValueError naming the value)."""
    out_type, with_cls = cfg['out_type'], cfg['with_cls_token']
    if out_type not in VisionTransformer.OUT_TYPES:
        raise ValueError(f'out_type must be one of {sorted(VisionTransformer.OUT_TYPES)}, got '
                         f'{out_type!r}')
    if not isinstance(with_cls, bool):
        raise ValueError(f'with_cls_token must be a bool, got {with_cls!r}')
    if out_type == 'cls_token' and not with_cls:
        raise ValueError(f"out_type='cls_token' needs with_cls_token=True, got "
                         f'with_cls_token={with_cls!r}')
    arch = cfg['arch']
    if isinstance(arch, str):
        if arch.lower() not in VisionTransformer.arch_zoo:
            raise ValueError(f'arch must be one of {sorted(VisionTransformer.arch_zoo)} or a '
                             f'dict, got {arch!r}')
        arch = VisionTransformer.arch_zoo[arch.lower()]
    elif not isinstance(arch, Mapping):
        raise ValueError(f'arch must be a str or a dict, got {arch!r}')
    c, heads = arch.get('embed_dims'), arch.get('num_heads')
    check_int('embed_dims', c)
    check_int('num_heads', heads)
    if c % heads:
        raise ValueError(f'embed_dims {c} is not divisible by num_heads {heads}')
    size = cfg['img_size']
    sizes = size if isinstance(size, (tuple, list)) else (size, size)
    if len(sizes) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                              for v in sizes):
        raise ValueError(f'img_size must be an int >= 1 or a pair of them (the manifold key '
                         f'is built for the token count it gives), got {size!r}')


__all__ = ['VisionTransformerMKey', 'ManifoldKeyMultiheadAttention']
