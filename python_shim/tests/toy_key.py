"""A toy sixth key variant, defined outside ``mkey_det``: what adding a variant takes.

``ToyK``: expansion (the base class's ``k`` and ``gamma``), a per-chart diagonal scale ``scale``
in R^(H*C), then the mean over the H charts (no token mixing). Linear in ``x``, so it folds:
``Lambda_h = I``, ``M_h = diag(scale_h) diag(gamma_h) k_h / H``. Parameters: ``H C^2 + 2 H C``.

Importing this module registers ``'toyk'`` in the key registry (and nothing else changes):
``build_key('toyk', ...)``, ``SwinTransformerMKey(key_type='toyk')``, the bench's literal
comparison (:class:`LiteralToyK`, named by ``literal=``) and the manifest generator
(``python -m mkey_det.models.keys.manifest --import python_shim/tests/toy_key.py``) pick it up.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from mkey_det.models.keys import ManifoldKey, register_key
from mkey_det.models.keys.folded_ops import FoldedKeyTensors


@register_key('toyk', label='ToyK', display_order=100, literal='toy_key:LiteralToyK')
class ToyKey(ManifoldKey):
    """ToyK: ``(B', N, C) -> (B', N, C)``, ``mean_h scale_h * gamma_h * (k_h x)``."""

    def _init_layers(self) -> None:
        self.scale = nn.Parameter(torch.ones(self.num_charts * self.dim))

    def forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        e = self.k(x) * self.gamma * self.scale                    # (B', N, H*C)
        return e.view(b, n, self.num_charts, c).mean(dim=2)        # (B', N, C)

    def fold(self) -> FoldedKeyTensors:
        h, n = self.num_charts, self.num_tokens
        eye = torch.eye(n, dtype=self.k.weight.dtype, device=self.k.weight.device)
        weight = self.scale.view(h, self.dim, 1) * self._expansion_charts() / h
        return FoldedKeyTensors(eye.repeat(h, 1, 1), weight)

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """k = [W_k + eps_h] (zero-sum), gamma = 1, scale = 1: the mean of the charts is W_k."""
        self._expansion_from_linear(weight, chart_noise, generator, gamma=1.0)
        self.scale.fill_(1.0)


class LiteralToyK(nn.Module):
    """Independent transcription of ToyK (the bench's yardstick; nothing from ``ToyKey``)."""
    key_type = 'toyk'
    param_names = ('k.weight', 'gamma', 'scale')

    def __init__(self, dim: int, num_tokens: int, num_charts: int):
        super().__init__()
        self.num_charts = num_charts
        self.k = nn.Linear(dim, num_charts * dim, bias=False)
        self.gamma = nn.Parameter(torch.ones(num_charts * dim))
        self.scale = nn.Parameter(torch.ones(num_charts * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        charts = (self.scale * self.gamma * self.k(x)).chunk(self.num_charts, dim=-1)
        return torch.stack(charts, dim=0).mean(dim=0)
