"""The stock linear key, under the same contract as the manifold keys."""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import check_int
from .folded_ops import FoldedKeyTensors
from .registry import register_key


@register_key('linear', label='Linear', uses_charts=False, display_order=0, table1=(28, 4.6))
class LinearKey(nn.Module):
    """``k = Linear(C, C)``: ``(B', N, C) -> (B', N, C)``; per-token, no token mixing.

    Inside :class:`~mkey_det.models.backbones.SwinTransformerMKey`, ``key_type='linear'`` keeps
    Swin's fused ``qkv`` instead; this module serves the factory's uniform contract.
    """

    def __init__(self, dim: int, num_tokens: int, bias: bool = False):
        super().__init__()
        self.dim = check_int('dim', dim)
        self.num_tokens = check_int('num_tokens', num_tokens)
        self.num_charts = 1
        self.k = nn.Linear(dim, dim, bias=bias)
        nn.init.trunc_normal_(self.k.weight, std=0.02)
        if bias:
            nn.init.zeros_(self.k.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k(x)

    def fold(self) -> FoldedKeyTensors:
        """One chart, identity token mixing, ``M = W_k`` (a bias is not representable and is
        dropped: it does not change softmax attention)."""
        eye = torch.eye(self.num_tokens, dtype=self.k.weight.dtype,
                        device=self.k.weight.device)
        return FoldedKeyTensors(eye.unsqueeze(0), self.k.weight.unsqueeze(0))
