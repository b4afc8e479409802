"""VanillaK: expansion, per-chart token mixing, CB, then the mean over the charts (Eq. 5)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import (CBModeMixin, ManifoldKey, context_broadcast, identity_token_mix,
                   to_charts)
from .folded_ops import FoldedKeyTensors
from .registry import register_key


@register_key('vanillak', label='VanillaK', display_order=40, table1=(44, 7.6),
              literal='mkey_det.bench.literal:LiteralVanillaK')
class VanillaKey(CBModeMixin, ManifoldKey):
    """VanillaK: ``(B', N, C) -> (B', N, C)``.

    ``k: Linear(C, H*C)``, ``gamma: (H*C,)`` (the base class's), chart-major ``(B', H*N, C)``,
    ``spatial: Conv1d(H*N, H*N, 1, groups=H)``, CB with ``gamma2: (C,)``, then the mean over the
    H charts (no ``to_out``). Parameters: ``H C^2 + H C + H N^2 + C``.

    Folded: ``M_h = 0.5/H diag(gamma_h) k_h``, ``Lambda_h = spatial_h``,
    ``c_h = colsum(spatial_h) / (H N)``, ``G_h = M_h`` and ``r = H gamma2``. ``'fast'`` uses it
    (same cost as the paper order: nothing to save without ``to_out``).

    Note: as in KUA, the CB term is one vector per window, added to every token's key; softmax
    attention ignores it, so inside a Swin block ``gamma2`` has no effect and a zero gradient.

    ``cb_mode`` (:data:`~.base.CB_MODES`; the above is the default ``'eq4'``):

    * ``'per_location'``: ``K[h, n] = 0.5 (K[h, n] + gamma2 * mean_h' K[h', n])``; followed by
      the mean over the charts this is ``0.5 (1 + gamma2) * mean_h K[h]``, a per-channel scale
      of the key: it changes attention. Folded exactly: ``M_h = 0.5/H diag(1 + gamma2)
      diag(gamma_h) k_h``, no CB term. (``gamma`` can absorb the scale: the same function
      class as ``'none'``, another parametrisation.)
    * ``'none'``: no CB, no ``gamma2`` (``H C^2 + H C + H N^2`` parameters: Table 2's "VanillaK
      without CB"), no 0.5 factor: ``M_h = 1/H diag(gamma_h) k_h``; starts with ``gamma = 1``.
    """

    def _init_layers(self) -> None:
        h, c, n = self.num_charts, self.dim, self.num_tokens
        self.spatial = nn.Conv1d(h * n, h * n, kernel_size=1, groups=h, bias=False)
        if self._cb_mode == 'none':
            self.register_parameter('gamma2', None)
        else:
            self.gamma2 = nn.Parameter(torch.zeros(c))

    def forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_charts
        e = self.k(x) * self.gamma                                # (B', N, H*C)
        if self._cb_mode == 'eq4':
            e = context_broadcast(self.spatial(to_charts(e, h)), self.gamma2)  # (B', H*N, C)
        else:
            e = context_broadcast(self.spatial(to_charts(e, h)), self.gamma2, self._cb_mode, h)
        return e.view(b, h, n, c).mean(dim=1)                     # (B', N, C)

    def fold(self) -> FoldedKeyTensors:
        h, n = self.num_charts, self.num_tokens
        token_mix = self.spatial.weight.view(h, n, n)
        if self._cb_mode == 'none':
            return FoldedKeyTensors(token_mix, self._expansion_charts() / h)
        if self._cb_mode == 'per_location':
            scale = (1 + self.gamma2).view(1, self.dim, 1) * (0.5 / h)  # diag(1 + gamma2) / 2H
            return FoldedKeyTensors(token_mix, self._expansion_charts() * scale)
        weight = self._expansion_charts() * (0.5 / h)
        return FoldedKeyTensors(token_mix, weight, cb_pool=token_mix.sum(dim=1) / (h * n),
                                cb_scale=self.gamma2 * h)

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """k = [W_k + eps_h] (zero-sum), gamma = 2 (1 for ``cb_mode='none'``), spatial = I,
        gamma2 = 0."""
        self._expansion_from_linear(weight, chart_noise, generator,
                                    gamma=1.0 if self._cb_mode == 'none' else 2.0)
        self.spatial.weight.copy_(identity_token_mix(self.num_charts, self.num_tokens))
        if self.gamma2 is not None:
            self.gamma2.zero_()

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, cb_mode={self._cb_mode!r}'
