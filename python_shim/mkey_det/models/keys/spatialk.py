"""SpatialK (paper Algorithm 1): expansion, per-chart token mixing, linear aggregation."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import ManifoldKey, from_charts, identity_token_mix, to_charts
from .folded_ops import FoldedKeyTensors, folded_forward
from .registry import register_key

#: ``'fast'`` folds SpatialK / KUA weights when a call has more than ``FOLD_RATIO * C`` tokens.
FOLD_RATIO = 2


@register_key('spatialk', label='SpatialK', display_order=10, table1=(61, 10.4),
              literal='mkey_det.bench.literal:LiteralSpatialK', fold_when_cheaper=True)
class SpatialKey(ManifoldKey):
    """SpatialK: ``(B', N, C) -> (B', N, C)``.

    ``k: Linear(C, H*C)`` and ``gamma: (H*C,)`` (the base class's) expand to ``(B', N, H*C)``;
    rearranged chart-major to ``(B', H*N, C)``; ``spatial: Conv1d(H*N, H*N, 1, groups=H)`` mixes
    the N tokens of each chart; back to ``(B', N, H*C)``; ``to_out: Linear(H*C, C)`` aggregates.
    Parameters: ``2 H C^2 + H C + H N^2``.

    Folded (``fold``): ``M_h = to_out_h @ diag(gamma_h) @ k_h`` and ``Lambda_h = spatial_h``.
    With ``T = B' * N`` tokens, the paper order costs ``2 H C^2 T`` multiply-adds forward
    (``6 H C^2 T`` with backward), the folded one ``H C^2 T + H C^3`` (``3 H C^2 T + 3 H C^3``):
    ``'fast'`` folds when ``T > FOLD_RATIO * C`` (``FOLD_RATIO = 2``: a clear saving, not the
    break-even ``T = C``), else runs the paper order. Both give the same function.
    """

    #: 0.5 for the CB variant (KUA), which halves the main term.
    _main_scale = 1.0

    def _init_layers(self) -> None:
        h, c, n = self.num_charts, self.dim, self.num_tokens
        self.spatial = nn.Conv1d(h * n, h * n, kernel_size=1, groups=h, bias=False)
        self._build_cb()
        self.to_out = nn.Linear(h * c, c, bias=False)

    def _build_cb(self) -> None:
        """Hook for KUA (adds ``gamma2``)."""

    def _cb(self, k: torch.Tensor) -> torch.Tensor:
        """Hook for KUA: CB after spatial, ``(B', H*N, C) -> (B', H*N, C)``."""
        return k

    def forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        h = self.num_charts
        e = self.k(x) * self.gamma            # (B', N, H*C)
        e = self.spatial(to_charts(e, h))     # (B', H*N, C)
        e = self._cb(e)
        return self.to_out(from_charts(e, h))  # (B', N, C)

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[1] <= FOLD_RATIO * self.dim:
            return self.forward_paper(x)
        return self.forward_folded(x)

    def forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        return folded_forward(x, self.fold(with_cb_weight=False))

    def _to_out_charts(self) -> torch.Tensor:
        """``to_out`` split per chart: ``(H, C_out, C_in)``."""
        h, c = self.num_charts, self.dim
        return self.to_out.weight.view(c, h, c).transpose(0, 1)

    def _token_mix(self) -> torch.Tensor:
        h, n = self.num_charts, self.num_tokens
        return self.spatial.weight.view(h, n, n)

    def fold(self, with_cb_weight: bool = True) -> FoldedKeyTensors:
        """``token_mix = spatial_h``, ``weight = s * to_out_h @ diag(gamma_h) @ k_h``."""
        weight = torch.bmm(self._to_out_charts(), self._expansion_charts())
        if self._main_scale != 1.0:
            weight = weight * self._main_scale
        return FoldedKeyTensors(self._token_mix(), weight)

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """k = [W_k + eps_h] (zero-sum), gamma = 1, spatial = I, to_out = [I/H ... I/H]/s."""
        self._expansion_from_linear(weight, chart_noise, generator, gamma=1.0)
        self.spatial.weight.copy_(identity_token_mix(self.num_charts, self.num_tokens))
        h, c = self.num_charts, self.dim
        eye = torch.eye(c) / (h * self._main_scale)
        self.to_out.weight.copy_(eye.repeat(1, h))
