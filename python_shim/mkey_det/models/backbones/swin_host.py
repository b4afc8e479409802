"""What the two Swin hosts share (mmdet's Swin-T, :mod:`.swin_mkey`; mmpretrain's SwinV2,
:mod:`.swinv2_mkey`): the checks of the key arguments, blocks at ``stages.i.blocks.j`` with their
window attention at ``block.attn.w_msa``, and the key switches on them. Each host names its
manifold-key window attention (``_manifold_msa``, built ``from_window_msa`` of the stock one).
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

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


class SwinKeyHost:
    """Put before the host's base class (``class SwinTransformerMKey(SwinKeyHost, SwinTransformer)``)."""

    #: the host's manifold-key window attention
    _manifold_msa: type

    def _replace_keys(self, key_type: str, num_charts: int, key_order: str, chart_noise: float,
                      key_kwargs: dict) -> None:
        """Every block's window attention as ``_manifold_msa``, its key started from the block's
        linear key; then the frozen stages frozen again (their modules were replaced)."""
        for _, block in self.named_blocks():
            block.attn.w_msa = self._manifold_msa.from_window_msa(
                block.attn.w_msa, key_type, num_charts, key_order=key_order,
                chart_noise=chart_noise, key_kwargs=key_kwargs)
        self._freeze_stages()

    def train(self, mode: bool = True):
        """As the base class's (frozen stages stay in eval mode), but returns ``self`` like
        ``nn.Module.train`` so that ``model.eval()`` chains."""
        super().train(mode)
        return self

    def named_blocks(self) -> Iterator[Tuple[str, nn.Module]]:
        """``('stages.i.blocks.j', block)`` for every block."""
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                yield f'stages.{i}.blocks.{j}', block

    def manifold_attentions(self) -> Iterator[Tuple[str, ManifoldKeyAttention]]:
        """``(state-dict prefix of the attention, module)`` for every manifold-key attention."""
        for name, block in self.named_blocks():
            if isinstance(block.attn.w_msa, ManifoldKeyAttention):
                yield f'{name}.attn.w_msa', block.attn.w_msa

    def restart_keys(self, generator: Optional[torch.Generator] = None) -> int:
        """Start every manifold key function-preservingly from the linear key the host
        initialised (:func:`~mkey_det.models.keys.start.restart_from_host_init`); returns how
        many keys."""
        return restart_from_host_init(self, generator)

    def set_key_order(self, order: str) -> int:
        """Switch every key to ``'paper'``, ``'fast'`` or ``'auto'``; returns how many."""
        return set_key_order(self, order)


__all__ = ['SwinKeyHost', 'check_key_args']
