"""A literal transcription of the paper's Algorithm 1 (and of the other three key variants).

Written from the paper's text (section 4, Algorithm 1, Eqs. 2-5; see docs/BENCH.md), *independently
of* ``mkey_det.models.keys``: nothing is imported from there. It is the yardstick of the
``module`` suite: our key modules must compute the same function (outputs and parameter
gradients) and should be faster.

Every module maps window tokens ``x: (B', N, C) -> (B', N, C)``:

* expansion (Eq. 2): ``x = gamma * k(x)``, ``k = nn.Linear(C, H*C, bias=False)``,
  ``gamma`` in R^(H*C)
* to charts: ``b n (h c) -> b (h n) c`` (chart-major), written with view/permute instead of einops
* spatial (Eq. 3): ``nn.Conv1d(H*N, H*N, kernel_size=1, groups=H, bias=False)``
* CB (Eq. 4; KUA, VanillaK): ``0.5 * (K + gamma2 * mean over the H*N rows of K)``, gamma2 in R^C
* back: ``b (h n) c -> b n (h c)``
* aggregation: ``nn.Linear(H*C, C, bias=False)`` (SpatialK, KUA) or the mean over the H charts
  (VanillaK, Eq. 5); SimpleK condenses with one ``nn.Conv1d(H*N, N, 1, bias=False)`` instead.

Which transcription belongs to which key variant: each variant names its transcription in the key
registry (``literal='module:Class'`` of ``register_key``); :func:`.module.literal_class` imports
that class and registers it here (:func:`register_literal`). A transcription is an ``nn.Module``
``Class(dim, num_tokens, num_charts)`` with ``key_type`` and ``param_names`` (its parameter
names, the same as the key's) class attributes; a variant defined outside this file (a plugin, a
test's toy variant) keeps its transcription next to it.
"""
from __future__ import annotations

import torch
import torch.nn as nn

#: variant name -> literal module class (filled by :func:`register_literal`)
LITERAL_KEYS: dict = {}
#: variant name -> parameter names of its literal module; ours carry the same names (checked when
#: copying, :func:`copy_weights`)
PARAM_NAMES: dict = {}


def register_literal(cls, key_type=None):
    """Register the literal transcription ``cls`` under ``key_type`` (default ``cls.key_type``);
    returns ``cls``. Registering another class under a taken name is refused."""
    name = key_type or cls.key_type
    names = tuple(getattr(cls, 'param_names', ()))
    if not names:
        raise ValueError(f'literal transcription {cls.__name__} has no param_names')
    if LITERAL_KEYS.get(name, cls) is not cls:
        raise ValueError(f'a literal transcription of {name!r} is already registered '
                         f'({LITERAL_KEYS[name].__name__})')
    LITERAL_KEYS[name] = cls
    PARAM_NAMES[name] = names
    return cls


_register = register_literal


def rearrange_to_charts(x: torch.Tensor, h: int) -> torch.Tensor:
    """``b n (h c) -> b (h n) c``."""
    b, n, hc = x.shape
    c = hc // h
    return x.view(b, n, h, c).permute(0, 2, 1, 3).reshape(b, h * n, c)


def rearrange_from_charts(x: torch.Tensor, h: int) -> torch.Tensor:
    """``b (h n) c -> b n (h c)``."""
    b, hn, c = x.shape
    n = hn // h
    return x.view(b, h, n, c).permute(0, 2, 1, 3).reshape(b, n, h * c)


class _LiteralBase(nn.Module):
    key_type = 'base'

    def __init__(self, dim: int, num_tokens: int, num_charts: int):
        super().__init__()
        self.dim, self.num_tokens, self.num_charts = dim, num_tokens, num_charts
        self.k = nn.Linear(dim, num_charts * dim, bias=False)
        self.gamma = nn.Parameter(torch.ones(num_charts * dim))

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 2: ``(B', N, C) -> (B', N, H*C)``."""
        return self.k(x) * self.gamma


@_register
class LiteralSpatialK(_LiteralBase):
    """Algorithm 1: expansion, to charts, grouped Conv1d, back, ``Linear(H*C, C)``."""
    key_type = 'spatialk'
    param_names = ('k.weight', 'gamma', 'spatial.weight', 'to_out.weight')
    use_cb = False

    def __init__(self, dim: int, num_tokens: int, num_charts: int):
        super().__init__(dim, num_tokens, num_charts)
        hn = num_charts * num_tokens
        self.spatial = nn.Conv1d(hn, hn, kernel_size=1, groups=num_charts, bias=False)
        if self.use_cb:
            self.gamma2 = nn.Parameter(torch.zeros(dim))
        self.to_out = nn.Linear(num_charts * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.num_charts
        x = self.expand(x)                          # (B', N, H*C)
        x = rearrange_to_charts(x, h)               # (B', H*N, C)
        x = self.spatial(x)                         # (B', H*N, C)
        if self.use_cb:
            x = 0.5 * (x + self.gamma2 * x.mean(dim=1, keepdim=True))
        x = rearrange_from_charts(x, h)             # (B', N, H*C)
        return self.to_out(x)                       # (B', N, C)


@_register
class LiteralKUA(LiteralSpatialK):
    """SpatialK with CB right after the spatial mixing."""
    key_type = 'kua'
    param_names = ('k.weight', 'gamma', 'spatial.weight', 'gamma2', 'to_out.weight')
    use_cb = True


@_register
class LiteralSimpleK(_LiteralBase):
    """Expansion, to charts, one plain ``Conv1d(H*N, N, 1)`` down to N rows of width C."""
    key_type = 'simplek'
    param_names = ('k.weight', 'gamma', 'condense.weight')

    def __init__(self, dim: int, num_tokens: int, num_charts: int):
        super().__init__(dim, num_tokens, num_charts)
        self.condense = nn.Conv1d(num_charts * num_tokens, num_tokens, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange_to_charts(self.expand(x), self.num_charts)   # (B', H*N, C)
        return self.condense(x)                                     # (B', N, C)


@_register
class LiteralVanillaK(_LiteralBase):
    """Expansion, to charts, grouped Conv1d, CB, back, mean over the H charts (Eq. 5)."""
    key_type = 'vanillak'
    param_names = ('k.weight', 'gamma', 'spatial.weight', 'gamma2')

    def __init__(self, dim: int, num_tokens: int, num_charts: int):
        super().__init__(dim, num_tokens, num_charts)
        hn = num_charts * num_tokens
        self.spatial = nn.Conv1d(hn, hn, kernel_size=1, groups=num_charts, bias=False)
        self.gamma2 = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.num_charts
        x = rearrange_to_charts(self.expand(x), h)                  # (B', H*N, C)
        x = self.spatial(x)
        x = 0.5 * (x + self.gamma2 * x.mean(dim=1, keepdim=True))   # CB
        x = rearrange_from_charts(x, h)                             # (B', N, H*C)
        b, n, hc = x.shape
        return x.view(b, n, h, hc // h).mean(dim=2)                 # (B', N, C)


def build_literal(key_type: str, dim: int, num_tokens: int, num_charts: int) -> nn.Module:
    """The literal module of ``key_type`` (``'spatialk' | 'kua' | 'simplek' | 'vanillak'``, or a
    transcription registered with :func:`register_literal`)."""
    if key_type not in LITERAL_KEYS:
        raise ValueError(f'no literal transcription of {key_type!r} '
                         f'(known: {", ".join(sorted(LITERAL_KEYS))})')
    return LITERAL_KEYS[key_type](dim, num_tokens, num_charts)


@torch.no_grad()
def copy_weights(src: nn.Module, dst: nn.Module, key_type: str) -> None:
    """Copy the parameters of ``src`` (one of our key modules) into ``dst`` (its literal
    transcription) by name, checking that both hold exactly the expected parameters."""
    names = PARAM_NAMES[key_type]
    src_p, dst_p = dict(src.named_parameters()), dict(dst.named_parameters())
    for label, params in (('ours', src_p), ('literal', dst_p)):
        if set(params) != set(names):
            raise ValueError(f'{key_type}: {label} parameters {sorted(params)} != {sorted(names)}')
    for name in names:
        if src_p[name].shape != dst_p[name].shape:
            raise ValueError(f'{key_type}.{name}: shape {tuple(src_p[name].shape)} vs '
                             f'{tuple(dst_p[name].shape)}')
        dst_p[name].copy_(src_p[name])
