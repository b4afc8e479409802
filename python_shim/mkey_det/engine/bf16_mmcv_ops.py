"""mmcv ops under bf16 autocast: mmcv 2.1.0 has no bfloat16 kernels for RoIAlign and (on CPU) nms.

Under ``AmpOptimWrapper(dtype='bfloat16')`` (``mkey-det train --amp bf16``) the RPN's boxes and
scores and the FPN features that Mask R-CNN's RoI extractors read are bfloat16, and mmcv 2.1.0's
kernels are instantiated for float32/float64/float16 only: training stops at the first step with
``"roi_align_forward_cuda_kernel" not implemented for 'BFloat16'`` (seen on an H100, 2026-11-26;
on CPU ``nms`` fails first with ``expected scalar type Float but found BFloat16``).
``allow_bf16_mmcv_ops`` gives bf16 inputs of those two ops a float32 detour (cast in, the op in
float32 with autocast off, RoIAlign's output cast back, gradients flowing through the casts);
every other dtype runs mmcv's code exactly as before. Importing ``mkey_det`` applies it.
"""
from __future__ import annotations

import torch

_applied = False


def _has_bf16(*tensors) -> bool:
    return any(isinstance(t, torch.Tensor) and t.dtype is torch.bfloat16 for t in tensors)


def allow_bf16_mmcv_ops() -> None:
    """Wraps ``mmcv.ops.RoIAlign.forward`` and ``mmcv.ops.nms.NMSop.forward`` once; idempotent."""
    global _applied
    if _applied:
        return
    from mmcv.ops import RoIAlign
    from mmcv.ops.nms import NMSop

    roi_align_forward = RoIAlign.forward

    def roi_align_bf16(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:  # noqa: A002
        """(N, C, H, W) features, (K, 5) rois -> (K, C, h, w) in the features' dtype."""
        if not _has_bf16(input, rois):
            return roi_align_forward(self, input, rois)
        with torch.autocast(device_type=input.device.type, enabled=False):
            out = roi_align_forward(self, input.float(), rois.float())
        return out.to(input.dtype)

    nms_forward = NMSop.forward

    def nms_bf16(ctx, bboxes, scores, *args):
        """(K, 4) boxes, (K,) scores -> kept indices (int), as mmcv's NMSop."""
        if _has_bf16(bboxes, scores):
            bboxes, scores = bboxes.float(), scores.float()
        return nms_forward(ctx, bboxes, scores, *args)

    roi_align_bf16.__doc__ = roi_align_forward.__doc__ or roi_align_bf16.__doc__
    RoIAlign.forward = roi_align_bf16
    NMSop.forward = staticmethod(nms_bf16)
    _applied = True
