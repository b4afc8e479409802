"""SimpleK: expansion, then one plain Conv1d condensing the H*N chart tokens to N."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import ManifoldKey, to_charts
from .folded_ops import FoldedKeyTensors
from .registry import register_key


@register_key('simplek', label='SimpleK', display_order=30, table1=(44, 7.6),
              literal='mkey_det.bench.literal:LiteralSimpleK')
class SimpleKey(ManifoldKey):
    """SimpleK: ``(B', N, C) -> (B', N, C)``.

    ``k: Linear(C, H*C)``, ``gamma: (H*C,)`` (the base class's), chart-major ``(B', H*N, C)``, then
    ``condense: Conv1d(H*N, N, 1)`` (no groups) gives N rows of width C (no ``spatial``, no
    ``to_out``). Parameters: ``H C^2 + H C + H N^2``.

    Folded: ``Lambda_h = condense[:, h*N:(h+1)*N]``, ``M_h = diag(gamma_h) k_h``. ``'fast'``
    uses it (same cost as the paper order).
    """

    def _init_layers(self) -> None:
        h, n = self.num_charts, self.num_tokens
        self.condense = nn.Conv1d(h * n, n, kernel_size=1, bias=False)

    def forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        e = self.k(x) * self.gamma                                # (B', N, H*C)
        return self.condense(to_charts(e, self.num_charts))      # (B', N, C)

    def fold(self) -> FoldedKeyTensors:
        h, n = self.num_charts, self.num_tokens
        token_mix = self.condense.weight.view(n, h, n).transpose(0, 1)
        return FoldedKeyTensors(token_mix, self._expansion_charts())

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """k = [W_k + eps_h] (zero-sum), gamma = 1, condense = [I/H ... I/H]."""
        self._expansion_from_linear(weight, chart_noise, generator, gamma=1.0)
        h, n = self.num_charts, self.num_tokens
        self.condense.weight.copy_((torch.eye(n) / h).repeat(1, h).unsqueeze(-1))
