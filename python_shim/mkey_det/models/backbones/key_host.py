"""What the backbones hosting manifold keys share: mmdet's Swin-T (:mod:`.swin_mkey`), mmpretrain's
SwinV2 (:mod:`.swinv2_mkey`) and ViT (:mod:`.vit_mkey`).

:func:`check_key_args` checks the key arguments every host takes. :class:`KeyHost` is what a host
does with its keys, whatever its blocks: swap every block's attention for a manifold-key one
(:meth:`KeyHost._replace_keys`), list those (:meth:`KeyHost.manifold_attentions`), restart the keys
from the host's initialisation and switch their order. It defines no name the stock classes have,
so it may stand before or after the stock class among a host's bases. A host says where its blocks are
(``named_blocks``), where a block holds its attention (``_attention_at``) and how the manifold-key
attention is built from the stock one (``_manifold_attention``). :class:`SwinKeyHost` says it once
for both Swin hosts: blocks at ``stages.i.blocks.j``, window attention at ``block.attn.w_msa``, built
``from_window_msa`` by the host's ``_manifold_msa``; listed first, it also makes ``train`` return
``self``.
"""
from __future__ import annotations

from functools import reduce
from typing import Any, Iterator, Optional, Tuple

import torch
import torch.nn as nn

from ..keys import key_spec, set_key_order
from ..keys.base import check_int, check_noise, check_order
from ..keys.builder import check_key_kwargs
from ..keys.registry import KeySpec
from ..keys.start import restart_from_host_init
from .window_msa import ManifoldKeyAttention


def check_key_args(key_type: str, num_charts: int, key_order: str, chart_noise: float,
                   key_kwargs: Optional[dict]) -> Tuple[KeySpec, dict]:
    """The registered key type's spec and its checked ``key_kwargs`` (ValueError naming a bad value)."""
    spec = key_spec(key_type)
    check_int('num_charts', num_charts)
    check_order(key_order)
    check_noise(chart_noise)
    return spec, check_key_kwargs(key_type, key_kwargs)


class KeyHost:
    """A base of the host besides the stock class (``class VisionTransformerMKey(VisionTransformer,
    KeyHost)``)."""

    #: attribute names from a block to its attention (``('attn',)``: ``block.attn``)
    _attention_at: Tuple[str, ...]

    def named_blocks(self) -> Iterator[Tuple[str, nn.Module]]:
        """``(state-dict prefix, block)`` for every block."""
        raise NotImplementedError

    def _manifold_attention(self, stock: nn.Module, key_type: str, num_charts: int,
                            **key: Any) -> ManifoldKeyAttention:
        """The manifold-key attention replacing the block's ``stock`` attention, its key started
        from the stock linear key (``key``: ``key_order``, ``chart_noise``, ``key_kwargs``)."""
        raise NotImplementedError

    def _freeze_again(self) -> None:
        """After the swap: the frozen stages frozen again (their modules were replaced)."""
        self._freeze_stages()

    def _replace_keys(self, key_type: str, num_charts: int, key_order: str, chart_noise: float,
                      key_kwargs: dict) -> None:
        """Every block's attention as ``_manifold_attention`` of it; then :meth:`_freeze_again`."""
        *path, name = self._attention_at
        for _, block in self.named_blocks():
            holder = reduce(getattr, path, block)
            setattr(holder, name, self._manifold_attention(
                getattr(holder, name), key_type, num_charts, key_order=key_order,
                chart_noise=chart_noise, key_kwargs=key_kwargs))
        self._freeze_again()

    def manifold_attentions(self) -> Iterator[Tuple[str, ManifoldKeyAttention]]:
        """``(state-dict prefix of the attention, module)`` for every manifold-key attention."""
        at = '.'.join(self._attention_at)
        for name, block in self.named_blocks():
            attn = reduce(getattr, self._attention_at, block)
            if isinstance(attn, ManifoldKeyAttention):
                yield f'{name}.{at}', attn

    def restart_keys(self, generator: Optional[torch.Generator] = None) -> int:
        """Start every manifold key function-preservingly from the linear key the host
        initialised (:func:`~mkey_det.models.keys.start.restart_from_host_init`); returns how
        many keys."""
        return restart_from_host_init(self, generator)

    def set_key_order(self, order: str) -> int:
        """Switch every key to ``'paper'``, ``'fast'`` or ``'auto'``; returns how many."""
        return set_key_order(self, order)


class SwinKeyHost(KeyHost):
    """Put before a Swin host's stock class (``class SwinTransformerMKey(SwinKeyHost,
    SwinTransformer)``): its window attention built ``from_window_msa`` by the host's
    ``_manifold_msa``."""

    #: the host's manifold-key window attention
    _manifold_msa: type
    _attention_at = ('attn', 'w_msa')

    def train(self, mode: bool = True):
        """As the stock class's (frozen stages stay in eval mode), but returns ``self`` like
        ``nn.Module.train`` so that ``model.eval()`` chains."""
        super().train(mode)
        return self

    def named_blocks(self) -> Iterator[Tuple[str, nn.Module]]:
        """``('stages.i.blocks.j', block)`` for every block."""
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                yield f'stages.{i}.blocks.{j}', block

    def _manifold_attention(self, stock: nn.Module, key_type: str, num_charts: int,
                            **key: Any) -> ManifoldKeyAttention:
        return self._manifold_msa.from_window_msa(stock, key_type, num_charts, **key)


__all__ = ['KeyHost', 'SwinKeyHost', 'check_key_args']
