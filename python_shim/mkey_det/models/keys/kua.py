"""KUA: SpatialK with context broadcasting (CB, paper Eq. 4) right after the spatial mixing."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .base import CBModeMixin, context_broadcast
from .folded_ops import FoldedKeyTensors, main_term, pool_tokens, stack_charts
from .registry import register_key
from .spatialk import FOLD_RATIO, SpatialKey


@register_key('kua', label='KUA', display_order=20, table1=(61, 10.4),
              literal='mkey_det.bench.literal:LiteralKUA', fold_when_cheaper=True)
class KUAKey(CBModeMixin, SpatialKey):
    """KUA: ``(B', N, C) -> (B', N, C)``; SpatialK plus ``gamma2: (C,)`` and
    ``K = 0.5 * (K + gamma2 * mean over all H*N rows of K)`` after ``spatial``.

    Parameters: ``2 H C^2 + H C + H N^2 + C``.

    Folded: ``M_h = 0.5 to_out_h diag(gamma_h) k_h``; CB term ``c_h = colsum(spatial_h)/(H N)``,
    ``G_h = 0.5 (sum_h' to_out_h') diag(gamma2) diag(gamma_h) k_h``. ``'fast'`` folds only the
    main term (the CB term goes through the per-window pooled vector, ``H C^2`` per window).

    Note: the CB term is the same vector for all N tokens of a window (the mean runs over all
    H*N rows, Eq. 4). Inside attention it adds ``q_i . cb`` to a whole row of logits, which
    softmax ignores: in a Swin block ``gamma2`` changes nothing and receives a zero gradient
    (up to rounding); KUA then acts as SpatialK with ``to_out`` halved.

    ``cb_mode`` (:data:`~.base.CB_MODES`; the above is the default ``'eq4'``):

    * ``'per_location'``: ``K[h, n] = 0.5 (K[h, n] + gamma2 * mean_h' K[h', n])``. Folded
      exactly into the main term, ``M_h = 0.5 to_out_h E_h + 0.5/H W_sum diag(gamma2) E_h``
      (``E_h = diag(gamma_h) k_h``, ``W_sum = sum_h to_out_h``), no CB term; ``'fast'`` folds as
      SpatialK does (when ``T > FOLD_RATIO * C``). It changes attention, but the added term is
      a linear map of the chart sum, which ``to_out`` can represent: the same function class
      as SpatialK, another parametrisation.
    * ``'none'``: no CB and no ``gamma2`` (``2 H C^2 + H C + H N^2`` parameters), no 0.5
      factor: SpatialK's function (``to_out`` starts at ``I/H``).
    """

    @property
    def _main_scale(self) -> float:
        """0.5 with CB (both forms halve ``K``), 1 without."""
        return 1.0 if self._cb_mode == 'none' else 0.5

    def _build_cb(self) -> None:
        if self._cb_mode == 'none':
            self.register_parameter('gamma2', None)
        else:
            self.gamma2 = nn.Parameter(torch.zeros(self.dim))

    def _cb(self, k: torch.Tensor) -> torch.Tensor:
        if self._cb_mode == 'eq4':
            return context_broadcast(k, self.gamma2)
        return context_broadcast(k, self.gamma2, self._cb_mode, self.num_charts)

    def _cb_pool(self) -> torch.Tensor:
        """``c_h = spatial_h^T 1 / (H N)``: ``(H, N)``."""
        return self._token_mix().sum(dim=1) / (self.num_charts * self.num_tokens)

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[1] <= FOLD_RATIO * self.dim:
            return self.forward_paper(x)
        return self.forward_folded(x)

    def forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        if self._cb_mode != 'eq4':  # everything is in the main term
            return main_term(self._token_mix(), self.fold().weight, x)
        main = self.fold(with_cb_weight=False)
        out = main_term(main.token_mix, main.weight, x)
        # mean of the H*N chart rows after spatial: (B', C)
        m = pool_tokens(main.cb_pool, x) @ stack_charts(self._expansion_charts())
        w_sum = self._to_out_charts().sum(dim=0)  # (C, C)
        cb = (0.5 * m * self.gamma2) @ w_sum.t()
        return out + cb.unsqueeze(1)

    def fold(self, with_cb_weight: bool = True) -> FoldedKeyTensors:
        t = super().fold()
        if self._cb_mode == 'none':
            return t
        if self._cb_mode == 'per_location':
            w_sum = self._to_out_charts().sum(dim=0)                    # (C, C)
            left = (0.5 / self.num_charts) * w_sum * self.gamma2        # W_sum diag(gamma2) / 2H
            t.weight = t.weight + torch.matmul(left, self._expansion_charts())
            return t
        t.cb_pool = self._cb_pool()
        if with_cb_weight:
            w_sum = self._to_out_charts().sum(dim=0)                    # (C, C)
            left = 0.5 * w_sum * self.gamma2                            # W_sum diag(gamma2)
            t.cb_weight = torch.matmul(left, self._expansion_charts())  # (H, C, C)
        return t

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """SpatialK's start with ``gamma2 = 0`` and ``to_out = [2I/H ... 2I/H]`` (``[I/H ...]``
        for ``cb_mode='none'``)."""
        super().init_from_linear(weight, chart_noise, generator)
        if self.gamma2 is not None:
            self.gamma2.zero_()

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, cb_mode={self._cb_mode!r}'
