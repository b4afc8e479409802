"""The class token's attention per head of one ViT block over the image (the paper's Fig. 2, for
ViT): mmpretrain's ``VisionTransformer`` and :class:`~mkey_det.models.backbones.VisionTransformerMKey`.

What is shown is what the block computes. mmpretrain's ``MultiheadAttention`` computes its
softmax inside one fused call, ``attn.scaled_dot_product_attention(q, k, v)`` (torch's
``F.scaled_dot_product_attention``, or mmpretrain's Python version when ``qk_scale`` is set), so
there is no softmax module to hook. That call is wrapped for one forward pass instead: it
receives ``q``, ``k``, ``v`` as the block made them (its fused ``qkv`` Linear, or the
``ManifoldQKV`` of a manifold key in whichever ``key_order``), still returns the block's own
output, and the same function applied to the one-hot values ``v = I_N`` gives ``P @ I = P``,
the probabilities with its own scale, mask and dtype.

For block ``layer`` with ``heads`` heads and ``N = extra + gh * gw`` tokens (the class token
first, then any other extra token, then the patches row by row; ``gh x gw`` patches of
``stride`` pixels, 14 x 14 of 16 px at 224 px), with ``P[h, i, j]`` the probability that token
``i`` gives token ``j``:

``class map`` (per head)
    the class token's row without its own column, ``P[h, 0, extra:]``, as the ``gh x gw`` patch
    grid; it sums to ``1 - self`` (less any other extra token's share).

Numbers per head: ``entropy`` of the whole class-token row (nats over the N keys; ``log N`` is
uniform), ``max`` of the map and its cell, ``self`` (``P[h, 0, 0]``, the class token's
attention to itself) and ``patch_share`` (the map's sum).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch

from .attention import MapRows, _Captured, _grid, check_one_image, layer_index, run_until_captured

#: the grid of a ViT: one row block per model, the class token's map per head
VIT_ROWS = (MapRows('class token', 'class_maps'), )


def is_vit(backbone) -> bool:
    """Whether ``backbone`` is mmpretrain's ``VisionTransformer`` (or a subclass, ours included)."""
    try:
        from mmpretrain.models.backbones import VisionTransformer
    except ImportError:  # mmpretrain not installed: no ViT to draw
        return False
    return isinstance(backbone, VisionTransformer)


def pick_layer(backbone, layer: Optional[int]) -> int:
    """Block ``layer`` of ``backbone.layers`` (0-based; None: the last); ValueError when out of
    range or when the ViT has no class token."""
    if getattr(backbone, 'cls_token', None) is None:
        raise ValueError(f'{type(backbone).__name__} has no class token (with_cls_token=False): '
                         'analyze attention draws the class token\'s attention of a ViT')
    return layer_index(layer, len(backbone.layers), "the ViT's blocks")


@dataclass
class TokenAttention:
    """The attention probabilities of one ViT block on one image."""
    probs: torch.Tensor    # (heads, N, N), float64
    grid: Tuple[int, int]  # patch grid (gh, gw)
    extra: int             # tokens before the patches (the class token first)
    layer: int
    layers: int
    stride: int            # input pixels per patch

    @property
    def heads(self) -> int:
        return int(self.probs.shape[0])


@torch.no_grad()
def token_attention(backbone, image: torch.Tensor, layer: Optional[int] = None,
                    stop: bool = True) -> TokenAttention:
    """Run ``backbone`` on ``image: (1, 3, H, W)`` up to block ``layer`` (None: the last) and
    return its attention probabilities as computed (see the module docstring). ``stop``: end
    the forward pass at that block's attention (False: run the whole backbone)."""
    check_one_image(image, 'token_attention')
    index = pick_layer(backbone, layer)
    attn = backbone.layers[index].attn
    if not callable(getattr(attn, 'scaled_dot_product_attention', None)):
        raise ValueError(f'block {index} ({type(attn).__name__}) has no scaled_dot_product_attention '
                         "to capture: not mmpretrain's MultiheadAttention")
    own = attn.__dict__.get('scaled_dot_product_attention')  # mmpretrain sets it per instance
    compute = attn.scaled_dot_product_attention
    seen: Dict[str, Any] = {}

    def capture(q, k, v, *args, **kwargs):
        n = k.shape[-2]
        one_hot = torch.eye(n, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], n, n)
        seen['probs'] = compute(q, k, one_hot.contiguous(), *args, **kwargs)
        if stop:
            raise _Captured
        return compute(q, k, v, *args, **kwargs)

    handle = backbone.patch_embed.register_forward_hook(
        lambda _m, _i, out: seen.update(grid=tuple(int(s) for s in out[1])))
    def remove_hooks() -> None:
        handle.remove()
        if own is None:
            del attn.scaled_dot_product_attention
        else:
            attn.scaled_dot_product_attention = own

    attn.scaled_dot_product_attention = capture
    run_until_captured(backbone, image, seen, remove_hooks, f'block {index} did not run its attention')
    probs = seen['probs'][0].double()  # (heads, N, N)
    grid = seen['grid']
    extra = int(probs.shape[-1]) - grid[0] * grid[1]
    conv = backbone.patch_embed.projection
    stride = int(conv.stride[0]) if hasattr(conv, 'stride') else int(image.shape[-2]) // grid[0]
    return TokenAttention(probs=probs, grid=grid, extra=extra, layer=index,
                          layers=len(backbone.layers), stride=stride)


def class_maps(ta: TokenAttention) -> torch.Tensor:
    """``(heads, gh * gw)``: the class token's attention to every patch."""
    return ta.probs[:, 0, ta.extra:]


def _head_stats(ta: TokenAttention, maps: torch.Tensor) -> List[Dict[str, Any]]:
    gw = ta.grid[1]
    out = []
    for h in range(ta.heads):
        row = ta.probs[h, 0]
        top = int(maps[h].argmax())
        out.append(dict(
            head=h, entropy=float(-(row * row.clamp_min(1e-300).log()).sum()),
            max=float(maps[h, top]), max_cell=[top // gw, top % gw], self=float(row[0]),
            patch_share=float(maps[h].sum())))
    return out


def analyse_tokens(ta: TokenAttention) -> Dict[str, Any]:
    """JSON-ready result of one ViT block on one image: layer, per-head numbers and maps."""
    maps = class_maps(ta)
    return dict(
        backbone='vit', layer=ta.layer, layers=ta.layers, heads=ta.heads, grid=list(ta.grid),
        stride=ta.stride, tokens=int(ta.probs.shape[-1]), extra_tokens=ta.extra,
        head_stats=_head_stats(ta, maps), class_maps=[_grid(m, ta.grid) for m in maps])
