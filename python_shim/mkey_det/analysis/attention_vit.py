"""The class token's attention per head of a ViT over the image (the paper's Fig. 2, for ViT):
mmpretrain's ``VisionTransformer`` and :class:`~mkey_det.models.backbones.VisionTransformerMKey`.

Two methods. ``'rollout'`` (:func:`joint_attention`, the default of ``analyze attention``; Fig. 2
draws "the joint attention for each head"): attention rollout (Abnar & Zuidema 2020) through
every block up to the chosen one, the earlier blocks' heads averaged and the chosen block kept
per head (:func:`rollout` defines it). ``'block'`` (:func:`token_attention`): one block's own
probabilities. Both read the probabilities as below.

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
``i`` gives token ``j`` (with ``'rollout'``: the joint attention ``J[h, i, j]`` instead):

``class map`` (per head)
    the class token's row without its own column, ``P[h, 0, extra:]``, as the ``gh x gw`` patch
    grid; it sums to ``1 - self`` (less any other extra token's share).

Numbers per head: ``entropy`` of the whole class-token row (nats over the N keys; ``log N`` is
uniform), ``max`` of the map and its cell, ``self`` (``P[h, 0, 0]``, the class token's
attention to itself) and ``patch_share`` (the map's sum).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
    #: 'block': ``probs`` are block ``layer``'s own; 'rollout': the joint attention of blocks
    #: 0..``layer`` per head (:func:`rollout`)
    method: str = 'block'

    @property
    def heads(self) -> int:
        return int(self.probs.shape[0])


def _capture(backbone, image: torch.Tensor, indices: Sequence[int], stop: bool
             ) -> Tuple[Dict[int, torch.Tensor], Tuple[int, int], int]:
    """One forward pass of ``backbone`` on ``image``, the attention probabilities of the blocks
    ``indices`` captured (see the module docstring): ``({block: (heads, N, N) float64}, patch
    grid, stride)``. ``stop``: end the pass at the last of them (False: run it all)."""
    check_one_image(image, 'token_attention')
    last = max(indices)
    seen: Dict[str, Any] = {}
    probs: Dict[int, torch.Tensor] = {}
    restore = []

    def wrap(index: int, attn) -> None:
        if not callable(getattr(attn, 'scaled_dot_product_attention', None)):
            raise ValueError(f'block {index} ({type(attn).__name__}) has no '
                             "scaled_dot_product_attention to capture: not mmpretrain's "
                             'MultiheadAttention')
        own = attn.__dict__.get('scaled_dot_product_attention')  # mmpretrain sets it per instance
        compute = attn.scaled_dot_product_attention

        def capture(q, k, v, *args, **kwargs):
            n = k.shape[-2]
            one_hot = torch.eye(n, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], n, n)
            probs[index] = compute(q, k, one_hot.contiguous(), *args, **kwargs)[0].double()
            if index == last:
                seen['probs'] = True
                if stop:
                    raise _Captured
            return compute(q, k, v, *args, **kwargs)

        def undo() -> None:
            if own is None:
                del attn.scaled_dot_product_attention
            else:
                attn.scaled_dot_product_attention = own

        attn.scaled_dot_product_attention = capture
        restore.append(undo)

    handle = backbone.patch_embed.register_forward_hook(
        lambda _m, _i, out: seen.update(grid=tuple(int(s) for s in out[1])))

    def remove_hooks() -> None:
        handle.remove()
        for undo in restore:
            undo()

    try:
        for index in sorted(set(indices)):
            wrap(index, backbone.layers[index].attn)
    except Exception:
        remove_hooks()
        raise
    run_until_captured(backbone, image, seen, remove_hooks,
                       f'block {last} did not run its attention')
    missing = sorted(set(indices) - set(probs))
    if missing:
        raise RuntimeError(f'blocks {missing} did not run their attention')
    grid = seen['grid']
    conv = backbone.patch_embed.projection
    stride = int(conv.stride[0]) if hasattr(conv, 'stride') else int(image.shape[-2]) // grid[0]
    return probs, grid, stride


@torch.no_grad()
def token_attention(backbone, image: torch.Tensor, layer: Optional[int] = None,
                    stop: bool = True) -> TokenAttention:
    """Run ``backbone`` on ``image: (1, 3, H, W)`` up to block ``layer`` (None: the last) and
    return its attention probabilities as computed (see the module docstring). ``stop``: end
    the forward pass at that block's attention (False: run the whole backbone)."""
    check_one_image(image, 'token_attention')
    index = pick_layer(backbone, layer)
    probs, grid, stride = _capture(backbone, image, [index], stop)
    p = probs[index]  # (heads, N, N)
    extra = int(p.shape[-1]) - grid[0] * grid[1]
    return TokenAttention(probs=p, grid=grid, extra=extra, layer=index,
                          layers=len(backbone.layers), stride=stride)


def residual_attention(probs: torch.Tensor) -> torch.Tensor:
    """``A_hat = 0.5 * A + 0.5 * I`` with its rows renormalised to sum to 1 (Abnar & Zuidema
    2020: the residual connection as attention to oneself); ``probs: (..., N, N)``."""
    eye = torch.eye(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    a = 0.5 * probs + 0.5 * eye
    return a / a.sum(-1, keepdim=True)


def rollout(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The joint attention per head of the last of ``probs`` (the attention probabilities of
    blocks 0..L, each ``(heads, N, N)``, in depth order), attention rollout (Abnar & Zuidema
    2020) with the last block kept per head::

        A_hat(P) = rows-normalised(0.5 * P + 0.5 * I)
        R        = A_hat(mean_h P_{L-1}[h]) @ ... @ A_hat(mean_h P_0[h])   (R = I when L = 0)
        J[h]     = A_hat(P_L[h]) @ R

    ``J[h, i, j]``: how much of token ``i``'s output at block ``L``, head ``h``, flows from
    input token ``j`` through the attention of every block, the residual path included. Rows
    sum to 1. The mean over the heads of ``J`` is the classic rollout (all blocks averaged):
    ``J`` is linear in ``P_L[h]``. Returns ``(heads, N, N)``, float64."""
    if not len(probs):
        raise ValueError('rollout needs the attention of at least one block')
    n = probs[0].shape[-1]
    r = torch.eye(n, dtype=torch.float64, device=probs[0].device)
    for p in probs[:-1]:
        r = residual_attention(p.double().mean(0)) @ r
    return residual_attention(probs[-1].double()) @ r


@torch.no_grad()
def joint_attention(backbone, image: torch.Tensor, layer: Optional[int] = None) -> TokenAttention:
    """:func:`rollout` of blocks ``0..layer`` (None: the last) of ``backbone`` on ``image``, the
    probabilities of every block captured in one forward pass as :func:`token_attention` does;
    a :class:`TokenAttention` whose ``probs`` are the joint attention ``J`` per head."""
    check_one_image(image, 'joint_attention')
    index = pick_layer(backbone, layer)
    probs, grid, stride = _capture(backbone, image, list(range(index + 1)), stop=True)
    joint = rollout([probs[i] for i in range(index + 1)])
    extra = int(joint.shape[-1]) - grid[0] * grid[1]
    return TokenAttention(probs=joint, grid=grid, extra=extra, layer=index,
                          layers=len(backbone.layers), stride=stride, method='rollout')


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
    """JSON-ready result of one ViT block (or the joint attention up to it) on one image:
    method, layer, per-head numbers and maps."""
    maps = class_maps(ta)
    return dict(
        backbone='vit', method=ta.method, layer=ta.layer, layers=ta.layers, heads=ta.heads,
        grid=list(ta.grid),
        stride=ta.stride, tokens=int(ta.probs.shape[-1]), extra_tokens=ta.extra,
        head_stats=_head_stats(ta, maps), class_maps=[_grid(m, ta.grid) for m in maps])
