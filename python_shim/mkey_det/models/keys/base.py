"""Shared contract of the manifold keys: argument checks, chart rearranges, order switch.

Every key maps window tokens ``x: (B', N, C) -> (B', N, C)`` with ``B' = batch * windows`` and
``N = window_size ** 2``. The manifold keys (paper section 4) first expand ``x`` into ``H``
charts of width ``C`` (``k = Linear(C, H*C, bias=False)``, ``gamma`` in R^(H*C), both created
by :class:`ManifoldKey` itself), laid out chart-major as ``(B', H*N, C)`` so that a ``Conv1d``
with ``groups=H`` mixes the tokens of each chart separately.

All the paths are linear in ``x``, so each variant can be *folded* into per-chart ``C x C``
matrices and ``N x N`` token-mixing matrices (see ``folded_ops.py``). Two computation orders
exist, ``forward_paper`` and ``forward_folded``, and three ways to choose (``order``):

``'paper'``
    the literal order of Algorithm 1 (expansion, rearrange, spatial, [CB], aggregation).
``'fast'``
    the same function computed from the folded weights (autograd runs through the weight
    products, so parameter gradients are the same as well). Only chooses the folded product
    where it is cheaper in FLOPs (see each variant's ``forward_fast``: SpatialK / KUA fold when
    ``T > FOLD_RATIO * C``), a rule that holds on a CPU.
``'auto'``
    per call shape, whichever of the two was measured faster on the device in use (timed once
    per shape, cached process-wide: :mod:`.order_autotune`). On a GPU the FLOPs rule can pick the
    slower order (docs/BENCH.md, "GPU fast paths").

A variant is a subclass of :class:`ManifoldKey` registered with
:func:`~.registry.register_key` (see ``docs/ARCHITECTURE.md``, "Adding a key variant").
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from ...switch import Switch
from ...utils import set_on_modules
from .folded_ops import FoldedKeyTensors, folded_forward
from .order_autotune import choose_order

#: ``order`` of a manifold key: see the module docstring
KEY_ORDERS = ('paper', 'fast', 'auto')


def check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not bool) >= ``minimum``; else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f'{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})')
    return value


def check_order(order) -> str:
    """Return ``order`` if it is one of :data:`KEY_ORDERS`; else raise ValueError."""
    if order not in KEY_ORDERS:
        raise ValueError(f'order must be one of {KEY_ORDERS}, got {order!r}')
    return order


def check_noise(chart_noise) -> float:
    """Return ``chart_noise`` as float if it is a finite number >= 0; else raise ValueError."""
    if isinstance(chart_noise, bool) or not isinstance(chart_noise, (int, float)) \
            or not math.isfinite(chart_noise) or chart_noise < 0:
        raise ValueError(f'chart_noise must be a finite number >= 0, got {chart_noise!r}')
    return float(chart_noise)


def to_charts(x: torch.Tensor, num_charts: int) -> torch.Tensor:
    """Chart-major rearrange ``b n (h c) -> b (h n) c``: (B', N, H*C) -> (B', H*N, C)."""
    b, n, hc = x.shape
    c = hc // num_charts
    return x.reshape(b, n, num_charts, c).transpose(1, 2).reshape(b, num_charts * n, c)


def from_charts(x: torch.Tensor, num_charts: int) -> torch.Tensor:
    """Inverse of :func:`to_charts` ``b (h n) c -> b n (h c)``: (B', H*N, C) -> (B', N, H*C)."""
    b, hn, c = x.shape
    n = hn // num_charts
    return x.reshape(b, num_charts, n, c).transpose(1, 2).reshape(b, n, num_charts * c)


#: The forms of context broadcasting (CB) that KUA and VanillaK take (``cb_mode``):
#:
#: ``'eq4'`` (default)
#:     the paper's Eq. 4: ``K = 0.5 * (K + gamma2 * mean over all H*N rows of K)``. The mean is
#:     one vector per window, added to every token's key: inside softmax attention it shifts a
#:     whole row of logits by ``q_i . v``, which softmax ignores (attention unchanged,
#:     ``gamma2`` gets a zero gradient).
#: ``'per_location'``
#:     the reading of the paper's prose ("the spatial interactions among different charts at a
#:     given spatial location"): ``K[h, n] = 0.5 * (K[h, n] + gamma2 * mean over the H charts
#:     of K[:, n])``, a different vector at every token, so it changes attention.
#: ``'none'``
#:     no CB (the paper's Table 2 "VanillaK without CB"): ``K`` as the spatial mixing leaves
#:     it, no 0.5 factor, and no ``gamma2`` parameter at all (the key has ``C`` parameters
#:     fewer; its state dict has no ``gamma2``).
CB_MODES = ('eq4', 'per_location', 'none')


def check_cb_mode(cb_mode) -> str:
    """Return ``cb_mode`` if it is one of :data:`CB_MODES`; else raise ValueError."""
    if cb_mode not in CB_MODES:
        raise ValueError(f'cb_mode must be one of {CB_MODES}, got {cb_mode!r}')
    return cb_mode


def context_broadcast(k: torch.Tensor, gamma2: Optional[torch.Tensor], mode: str = 'eq4',
                      num_charts: Optional[int] = None) -> torch.Tensor:
    """CB on chart-major keys ``k: (B', H*N, C)`` -> ``(B', H*N, C)``; ``gamma2: (C,)``.

    ``mode`` (:data:`CB_MODES`): ``'eq4'`` (paper Eq. 4) ``0.5 * (K + gamma2 * mean over all
    H*N rows of K)``; ``'per_location'`` ``0.5 * (K + gamma2 * mean over the H charts at each
    token)`` (needs ``num_charts``); ``'none'``: ``k`` itself (``gamma2`` unused, may be None).
    """
    if mode == 'eq4':
        return 0.5 * (k + gamma2 * k.mean(dim=1, keepdim=True))
    if mode == 'none':
        return k
    if mode != 'per_location':
        check_cb_mode(mode)
    if num_charts is None:
        raise ValueError("context_broadcast: mode 'per_location' needs num_charts")
    b, hn, c = k.shape
    charts = k.view(b, num_charts, hn // num_charts, c)
    return (0.5 * (charts + gamma2 * charts.mean(dim=1, keepdim=True))).view(b, hn, c)


class CBModeMixin:
    """``cb_mode`` of the keys with CB (KUA, VanillaK; see :data:`CB_MODES`).

    Put before the key's base class (``class KUAKey(CBModeMixin, SpatialKey)``): its
    ``__init__`` takes the base's arguments plus ``cb_mode`` and stores it *before* the base
    ``__init__`` creates the layers (``gamma2`` exists unless the mode is ``'none'``). ``'eq4'`` and
    ``'per_location'`` have the same parameters, so the attribute can be switched between them
    on a built key (same weights, the other function: e.g. to look at what per-location CB would
    do with trained weights); ``'none'`` has no ``gamma2`` and another scale of the main term,
    so it is fixed at construction.
    """

    _cb_mode = 'eq4'

    def __init__(self, dim: int, num_tokens: int, num_charts: int = 8, order: str = 'fast',
                 chart_noise: float = 0.1, cb_mode: str = 'eq4'):
        self._cb_mode = check_cb_mode(cb_mode)  # read by _init_layers: gamma2 or not
        super().__init__(dim, num_tokens, num_charts, order=order, chart_noise=chart_noise)

    @property
    def cb_mode(self) -> str:
        """``'eq4'``, ``'per_location'`` or ``'none'``; assignable between the first two."""
        return self._cb_mode

    @cb_mode.setter
    def cb_mode(self, value: str) -> None:
        check_cb_mode(value)
        if value != self._cb_mode and 'none' in (value, self._cb_mode):
            raise ValueError(f"cb_mode {self._cb_mode!r} -> {value!r}: 'none' has no gamma2 and "
                             "another scale of the main term; choose it when building the key "
                             "(only 'eq4' <-> 'per_location' switch on a built key)")
        self._cb_mode = value


def set_cb_mode(module: nn.Module, cb_mode: str) -> int:
    """Set ``cb_mode`` (``'eq4'`` | ``'per_location'``) on every key with CB inside ``module``
    (itself included). Returns the number of keys changed (ValueError for a key built with
    ``'none'``, or when asked for ``'none'``: see :class:`CBModeMixin`)."""
    check_cb_mode(cb_mode)
    return set_on_modules(module, CBModeMixin, 'cb_mode', cb_mode)


def chart_weights(weight: torch.Tensor, num_charts: int, chart_noise: float,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-chart copies of a linear key ``W_k: (C, C)`` with a zero-sum perturbation.

    Returns ``(H, C, C)``: chart ``h`` is ``W_k + eps_h`` with ``eps_h`` drawn from
    ``N(0, (chart_noise * std(W_k))^2)`` and centred over the charts, so ``sum_h eps_h = 0``
    (``eps = 0`` for one chart). The charts differ, their mean is ``W_k``.
    """
    w = weight.detach()
    if num_charts == 1 or chart_noise == 0:
        return w.unsqueeze(0).repeat(num_charts, 1, 1)
    scale = float(w.float().std()) if w.numel() > 1 else 0.0
    scale = (scale if scale > 0 else 0.02) * chart_noise
    eps = torch.randn((num_charts, ) + tuple(w.shape), generator=generator).mul_(scale)
    eps = eps.sub_(eps.mean(dim=0, keepdim=True)).to(device=w.device, dtype=w.dtype)
    return eps.add_(w)


def fresh_linear_key(dim: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A freshly initialised linear key weight ``(C, C)``: trunc normal std .02 (as Swin)."""
    return nn.init.trunc_normal_(torch.empty(dim, dim), std=0.02, generator=generator)


class ManifoldKey(nn.Module):
    """Base of the manifold keys: ``(B', N, C) -> (B', N, C)``.

    Args:
        dim: C, the block width (also the width of every chart).
        num_tokens: N, the tokens of one attention window (``window_size ** 2`` in Swin).
        num_charts: H >= 1.
        order: ``'paper'`` (Algorithm 1 order), ``'fast'`` (folded where cheaper, same
            function) or ``'auto'`` (the faster of the two per call shape, measured).
        chart_noise: relative std of the zero-sum chart perturbation used by
            :meth:`init_from_linear` (see :func:`chart_weights`).

    The contract between this class and a variant (a subclass):

    * ``__init__`` (here, not in the subclass) checks the arguments, creates the expansion
      shared by every variant, in this order (parameter order, state-dict names and the RNG
      draws of their default initialisation are part of the checkpoint format):

      - ``self.k = nn.Linear(C, H*C, bias=False)``: the H chart projections ``k_h`` stacked,
        chart-major (rows ``h*C:(h+1)*C`` are chart ``h``);
      - ``self.gamma = nn.Parameter(torch.ones(H*C))``: the per-chart channel scale;

      then calls :meth:`_init_layers` (the variant creates its own modules there, e.g.
      ``spatial``, ``to_out``), then :meth:`reset_parameters` (a function-preserving start from
      a fresh linear key).
    * the variant implements :meth:`forward_paper` (Algorithm 1's order), :meth:`fold` (its
      :class:`~.folded_ops.FoldedKeyTensors`; the default :meth:`forward_folded` applies them,
      and the default :meth:`forward_fast` is :meth:`forward_folded`) and
      :meth:`init_from_linear` (usually :meth:`_expansion_from_linear` plus its own modules).
    * helpers on ``k`` and ``gamma``: :meth:`_expansion_from_linear`, :meth:`_expansion_charts`.
    * it registers itself with :func:`~.registry.register_key` (type name, paper label, ...).
    """

    key_type = 'base'
    order = Switch(check_order, 'fast', "``'paper'``, ``'fast'`` or ``'auto'``; assignable.")

    def __init__(self, dim: int, num_tokens: int, num_charts: int = 8, order: str = 'fast',
                 chart_noise: float = 0.1):
        super().__init__()
        self.dim = check_int('dim', dim)
        self.num_tokens = check_int('num_tokens', num_tokens)
        self.num_charts = check_int('num_charts', num_charts)
        self.order = order
        self.chart_noise = check_noise(chart_noise)
        h, c = self.num_charts, self.dim
        self.k = nn.Linear(c, h * c, bias=False)
        self.gamma = nn.Parameter(torch.ones(h * c))
        self._init_layers()
        self.reset_parameters()

    def _init_layers(self) -> None:
        """Create the variant's own modules (after ``k`` and ``gamma``, before
        :meth:`reset_parameters`). Default: none."""

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_tokens or x.shape[2] != self.dim:
            raise ValueError(
                f'{type(self).__name__} expects (B\', N={self.num_tokens}, C={self.dim}) '
                f'input, got {tuple(x.shape)}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B', N, C) -> (B', N, C)`` in the selected order."""
        self._check_input(x)
        if self._order == 'paper':
            return self.forward_paper(x)
        if self._order == 'auto':
            choice = choose_order(self, x)
            if choice == 'paper':
                return self.forward_paper(x)
            if choice == 'folded':
                return self.forward_folded(x)
        return self.forward_fast(x)

    def forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        """The folded order, always (what ``'fast'`` runs where it folds)."""
        return folded_forward(x, self.fold())

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """``'fast'``: the folded order (variants that fold only where it saves FLOPs override
        this with their rule)."""
        return self.forward_folded(x)

    def fold(self) -> FoldedKeyTensors:
        """The folded tensors (:class:`~.folded_ops.FoldedKeyTensors`), differentiable."""
        raise NotImplementedError

    @torch.no_grad()
    def init_from_linear(self, weight: torch.Tensor, chart_noise: Optional[float] = None,
                         generator: Optional[torch.Generator] = None) -> None:
        """Function-preserving start: afterwards ``self(x) == x @ weight.T`` (up to float
        rounding). ``weight: (C, C)``, the linear key ``W_k`` (its bias is dropped: adding
        ``q . b_k`` to a whole row of logits does not change softmax attention)."""
        raise NotImplementedError

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Start from a freshly initialised linear key (trunc normal std .02, as Swin)."""
        self.init_from_linear(fresh_linear_key(self.dim, generator), generator=generator)

    def _check_linear_weight(self, weight: torch.Tensor) -> None:
        if tuple(weight.shape) != (self.dim, self.dim):
            raise ValueError(f'linear key weight must have shape ({self.dim}, {self.dim}), '
                             f'got {tuple(weight.shape)}')

    def _expansion_from_linear(self, weight, chart_noise, generator, gamma: float) -> None:
        """k = [W_k + eps_h]_h (zero-sum eps), gamma = constant."""
        self._check_linear_weight(weight)
        noise = self.chart_noise if chart_noise is None else check_noise(chart_noise)
        charts = chart_weights(weight, self.num_charts, noise, generator)
        self.k.weight.copy_(charts.reshape(self.num_charts * self.dim, self.dim))
        self.gamma.fill_(gamma)

    def _expansion_charts(self) -> torch.Tensor:
        """``diag(gamma_h) @ W_k_h`` for every chart: ``(H, C, C)`` (output x input)."""
        h, c = self.num_charts, self.dim
        return self.gamma.view(h, c, 1) * self.k.weight.view(h, c, c)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_tokens={self.num_tokens}, num_charts={self.num_charts}, '
                f'order={self._order!r}')


def identity_token_mix(num_charts: int, num_tokens: int) -> torch.Tensor:
    """``(H*N, N, 1)`` grouped Conv1d weight whose every chart block is the identity."""
    eye = torch.eye(num_tokens)
    return eye.repeat(num_charts, 1).unsqueeze(-1)
