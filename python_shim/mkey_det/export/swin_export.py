"""Export-time rewrite of mmdet's Swin so that a traced graph is correct at every input size.

Tracing (``torch.onnx.export(dynamo=False)``, ``torch.jit.trace``) records tensor operations and
bakes every Python decision in at the traced size. Stock mmdet Swin has three such places:

* ``ShiftWindowMSA.forward`` pads with ``F.pad`` and slices back only under
  ``if pad_r > 0 or pad_b``; ``window_reverse`` computes the batch with
  ``int(windows.shape[0] / (H * W / ws / ws))`` (baked: a model traced at batch 1 gives wrong
  numbers at batch 2); the shift mask is built with Python slices and a loop.
* ``AdaptivePadding`` (``PatchEmbed`` and ``PatchMerging``) pads only ``if pad_h > 0 or
  pad_w > 0``.
* ``PatchMerging`` uses ``nn.Unfold`` (``im2col``), whose legacy ONNX symbolic needs static sizes.

:func:`prepare_for_export` returns a *copy* of the backbone whose patch embedding, patch
merging and shifted-window attention modules are replaced by the modules below. They hold the
original submodules (``projection``, ``norm``, ``reduction``, ``w_msa``: same parameters, so the
manifold keys and their folded form export as they are) and compute the same function with
size-generic operations, as MMDeploy's rewrite does: the pad amounts are computed from the
traced shapes (``(ws - W % ws) % ws``) and ``F.pad`` always runs (a zero pad is a no-op), the
result is always sliced back to ``[:H, :W]``, the batch comes from the input's shape, and the
shift mask is built from ``arange`` comparisons. Eager outputs equal the stock model's exactly
(same operations in the same order on the same values).
"""
from __future__ import annotations

import copy
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.utils import to_2tuple

__all__ = ['prepare_for_export', 'ExportPatchEmbed', 'ExportPatchMerging',
           'ExportShiftWindowMSA', 'rewritten_modules']


def _pad_amount(size, step: int):
    """``(step - size % step) % step``: zero when ``size`` is a multiple of ``step``; works on
    Python ints and on the 0-dim tensors that shapes are while tracing."""
    return (step - size % step) % step


def _check_corner(adap_padding: nn.Module, kernel: Tuple[int, int], stride: Tuple[int, int],
                  where: str) -> None:
    if adap_padding is None:
        return
    if tuple(adap_padding.padding) != ('corner', 'corner') and adap_padding.padding != 'corner':
        raise NotImplementedError(f'{where}: only padding="corner" is supported for export, '
                                  f'got {adap_padding.padding!r}')
    if tuple(adap_padding.dilation) != (1, 1):
        raise NotImplementedError(f'{where}: only dilation 1 is supported for export')
    if tuple(kernel) != tuple(stride):
        raise NotImplementedError(f'{where}: only kernel_size == stride is supported for export, '
                                  f'got kernel {tuple(kernel)} stride {tuple(stride)}')


class ExportPatchEmbed(nn.Module):
    """mmdet ``PatchEmbed`` (Conv2d, ``padding='corner'``, kernel == stride) with an always-on
    bottom/right pad: ``(B, C, H, W) -> ((B, H'*W', D), (H', W'))``."""

    def __init__(self, patch_embed: nn.Module):
        super().__init__()
        proj = patch_embed.projection
        if not isinstance(proj, nn.Conv2d):
            raise NotImplementedError('PatchEmbed export supports conv_type="Conv2d" only')
        self.stride = to_2tuple(proj.stride)
        ap = patch_embed.adap_padding
        _check_corner(ap, proj.kernel_size, proj.stride, 'PatchEmbed')
        if ap is None and tuple(proj.kernel_size) != tuple(proj.stride):
            raise NotImplementedError('PatchEmbed export needs kernel_size == stride')
        self.adaptive = ap is not None
        self.projection = proj
        self.norm = patch_embed.norm

    def forward(self, x: torch.Tensor):
        if self.adaptive:
            h, w = x.shape[-2], x.shape[-1]
            x = F.pad(x, [0, _pad_amount(w, self.stride[1]), 0, _pad_amount(h, self.stride[0])])
        x = self.projection(x)
        out_size = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, out_size


class ExportPatchMerging(nn.Module):
    """mmdet ``PatchMerging`` (kernel == stride, no padding in the unfold) with the pad always
    on and ``nn.Unfold`` written as a reshape (space-to-depth in Unfold's channel order
    ``c * kh * kw + i * kw + j``): ``(B, H*W, C) -> ((B, H'*W', C_out), (H', W'))``."""

    def __init__(self, merging: nn.Module):
        super().__init__()
        s = merging.sampler
        k, st = to_2tuple(s.kernel_size), to_2tuple(s.stride)
        if to_2tuple(s.padding) != (0, 0) or to_2tuple(s.dilation) != (1, 1) or k != st:
            raise NotImplementedError('PatchMerging export supports kernel_size == stride, '
                                      'padding 0, dilation 1')
        _check_corner(merging.adap_padding, k, st, 'PatchMerging')
        self.kernel = k
        self.adaptive = merging.adap_padding is not None
        self.norm = merging.norm
        self.reduction = merging.reduction

    def forward(self, x: torch.Tensor, input_size):
        B, L, C = x.shape
        H, W = input_size
        kh, kw = self.kernel
        x = x.view(B, H, W, C).permute([0, 3, 1, 2])  # B, C, H, W
        if self.adaptive:
            x = F.pad(x, [0, _pad_amount(W, kw), 0, _pad_amount(H, kh)])
        Hp, Wp = x.shape[-2], x.shape[-1]
        out_h, out_w = Hp // kh, Wp // kw
        x = x.reshape(B, C, out_h, kh, out_w, kw).permute(0, 1, 3, 5, 2, 4)
        x = x.reshape(B, C * kh * kw, out_h * out_w).transpose(1, 2)  # B, H'*W', 4C
        x = self.norm(x) if self.norm is not None else x
        x = self.reduction(x)
        return x, (out_h, out_w)


class ExportShiftWindowMSA(nn.Module):
    """mmdet ``ShiftWindowMSA`` written size-generically: ``(B, H*W, C), (H, W) -> (B, H*W, C)``.

    Holds the original ``w_msa`` (a stock ``WindowMSA`` or a ``ManifoldKeyWindowMSA``, folded or
    not) and ``drop``.
    """

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.window_size = int(attn.window_size)
        self.shift_size = int(attn.shift_size)
        self.w_msa = attn.w_msa
        self.drop = attn.drop

    def _labels(self, n, device):
        """Region label along one axis of the shift mask: 0 before the last window, 1 in the
        last window before the shift, 2 in the last ``shift_size`` positions (mmdet's slices
        ``(0, -ws)``, ``(-ws, -shift)``, ``(-shift, None)``)."""
        idx = torch.arange(n, device=device)
        return (idx >= n - self.window_size).to(torch.float32) + \
            (idx >= n - self.shift_size).to(torch.float32)

    def _partition(self, x: torch.Tensor, B, Hp, Wp, C) -> torch.Tensor:
        ws = self.window_size
        x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5).contiguous()
        return x.view(-1, ws * ws, C)

    def forward(self, query: torch.Tensor, hw_shape) -> torch.Tensor:
        B, L, C = query.shape
        H, W = hw_shape
        ws = self.window_size
        x = query.view(B, H, W, C)
        x = F.pad(x, (0, 0, 0, _pad_amount(W, ws), 0, _pad_amount(H, ws)))
        Hp, Wp = x.shape[1], x.shape[2]

        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            # mmdet: cnt = 3 * (row region) + (column region), regions from its three slices
            img_mask = 3.0 * self._labels(Hp, x.device).view(-1, 1) + \
                self._labels(Wp, x.device).view(1, -1)
            mask_windows = self._partition(img_mask.view(1, Hp, Wp, 1), 1, Hp, Wp, 1)
            mask_windows = mask_windows.view(-1, ws * ws)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(
                attn_mask == 0, float(0.0))
        else:
            attn_mask = None

        windows = self._partition(x, B, Hp, Wp, C)          # (nW*B, ws*ws, C)
        attn_windows = self.w_msa(windows, mask=attn_mask)  # (nW*B, ws*ws, C)
        # window_reverse with the batch taken from the input, not recomputed
        x = attn_windows.view(B, Hp // ws, Wp // ws, ws, ws, C)
        x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, C)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x[:, :H, :W, :].contiguous()
        x = x.view(B, H * W, C)
        return self.drop(x)


def rewritten_modules(model: nn.Module) -> dict:
    """Counts of the modules :func:`prepare_for_export` replaced (for reports and tests)."""
    counts = {'patch_embed': 0, 'patch_merging': 0, 'shift_window_msa': 0}
    for m in model.modules():
        if isinstance(m, ExportPatchEmbed):
            counts['patch_embed'] += 1
        elif isinstance(m, ExportPatchMerging):
            counts['patch_merging'] += 1
        elif isinstance(m, ExportShiftWindowMSA):
            counts['shift_window_msa'] += 1
    return counts


def prepare_for_export(backbone: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of an mmdet ``SwinTransformer`` / ``SwinTransformerMKey`` (in eval mode) whose
    padding, patch merging and window attention are size-generic (see the module docstring).

    The parameters are shared with ``backbone`` only when ``inplace=True``. Raises
    ``NotImplementedError`` for settings the rewrite does not cover (absolute position
    embedding, which has a fixed size; non-corner padding; overlapping patches).
    """
    from mmdet.models.backbones.swin import ShiftWindowMSA
    from mmdet.models.layers.transformer.utils import PatchEmbed, PatchMerging

    if getattr(backbone, 'use_abs_pos_embed', False):
        raise NotImplementedError('use_abs_pos_embed=True has a fixed-size position embedding; '
                                  'a size-generic export is not possible')
    model = backbone if inplace else copy.deepcopy(backbone)
    model.eval()
    targets = []
    for name, m in model.named_modules():
        if isinstance(m, ShiftWindowMSA):
            targets.append((name, ExportShiftWindowMSA))
        elif isinstance(m, PatchEmbed):
            targets.append((name, ExportPatchEmbed))
        elif isinstance(m, PatchMerging):
            targets.append((name, ExportPatchMerging))
    if not any(cls is ExportShiftWindowMSA for _, cls in targets):
        raise ValueError(f'prepare_for_export: {type(backbone).__name__} has no mmdet '
                         'ShiftWindowMSA module (expected an mmdet SwinTransformer)')
    for name, cls in targets:
        parent_name, _, attr = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, cls(getattr(parent, attr)))
    return model
