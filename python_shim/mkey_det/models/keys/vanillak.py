"""VanillaK: expansion, per-chart token mixing, CB, then the mean over the charts (Eq. 5)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import ManifoldKey, context_broadcast, identity_token_mix, to_charts
from .folded_ops import FoldedKeyTensors
from .registry import register_key


@register_key('vanillak', label='VanillaK', display_order=40, table1=(44, 7.6),
              literal='mkey_det.bench.literal:LiteralVanillaK')
class VanillaKey(ManifoldKey):
    """VanillaK: ``(B', N, C) -> (B', N, C)``.

    ``k: Linear(C, H*C)``, ``gamma: (H*C,)`` (the base class's), chart-major ``(B', H*N, C)``,
    ``spatial: Conv1d(H*N, H*N, 1, groups=H)``, CB with ``gamma2: (C,)``, then the mean over the
    H charts (no ``to_out``). Parameters: ``H C^2 + H C + H N^2 + C``.

    Folded: ``M_h = 0.5/H diag(gamma_h) k_h``, ``Lambda_h = spatial_h``,
    ``c_h = colsum(spatial_h) / (H N)``, ``G_h = M_h`` and ``r = H gamma2``. ``'fast'`` uses it
    (same cost as the paper order: nothing to save without ``to_out``).

    Note: as in KUA, the CB term is one vector per window, added to every token's key; softmax
    attention ignores it, so inside a Swin block ``gamma2`` has no effect and a zero gradient.
    """

    def _init_layers(self) -> None:
        h, c, n = self.num_charts, self.dim, self.num_tokens
        self.spatial = nn.Conv1d(h * n, h * n, kernel_size=1, groups=h, bias=False)
        self.gamma2 = nn.Parameter(torch.zeros(c))

    def forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_charts
        e = self.k(x) * self.gamma                                # (B', N, H*C)
        e = context_broadcast(self.spatial(to_charts(e, h)), self.gamma2)  # (B', H*N, C)
        return e.view(b, h, n, c).mean(dim=1)                     # (B', N, C)

    def fold(self) -> FoldedKeyTensors:
        h, n = self.num_charts, self.num_tokens
        token_mix = self.spatial.weight.view(h, n, n)
        weight = self._expansion_charts() * (0.5 / h)
        return FoldedKeyTensors(token_mix, weight, cb_pool=token_mix.sum(dim=1) / (h * n),
                                cb_scale=self.gamma2 * h)

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """k = [W_k + eps_h] (zero-sum), gamma = 2, spatial = I, gamma2 = 0."""
        self._expansion_from_linear(weight, chart_noise, generator, gamma=2.0)
        self.spatial.weight.copy_(identity_token_mix(self.num_charts, self.num_tokens))
        self.gamma2.zero_()
