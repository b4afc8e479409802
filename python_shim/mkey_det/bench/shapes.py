"""Swin-T's attention shapes at an input size: per stage C, windows and tokens.

mmdet's Swin: ``PatchEmbed`` (stride 4) pads the image to a multiple of 4, each ``PatchMerging``
pads to even sizes, and ``ShiftWindowMSA`` pads every stage's map to a multiple of the window
(7) before partitioning: ``windows = ceil(h / 7) * ceil(w / 7)`` per image, ``N = 49`` tokens per
window, ``B' = batch * windows`` rows go through the key, ``T = B' * N`` tokens.
"""
from __future__ import annotations

import math
from typing import Dict, List

#: Swin-T: embed 96, depths 2-2-6-2, window 7.
SWIN_T_DIMS = (96, 192, 384, 768)
SWIN_T_DEPTHS = (2, 2, 6, 2)
WINDOW = 7
PATCH = 4


def stage_shapes(height: int, width: int, batch: int = 1, dims=SWIN_T_DIMS,
                 depths=SWIN_T_DEPTHS, window: int = WINDOW) -> List[Dict[str, int]]:
    """One dict per stage: ``stage, dim (C), blocks, map (h, w), windows (per image),
    batch_windows (B'), tokens_per_window (N), tokens (T = B' N)``."""
    h, w = math.ceil(height / PATCH), math.ceil(width / PATCH)
    out = []
    for i, (c, d) in enumerate(zip(dims, depths)):
        if i > 0:
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        win = math.ceil(h / window) * math.ceil(w / window)
        n = window * window
        out.append(dict(stage=i + 1, dim=c, blocks=d, map=[h, w], windows=win,
                        batch_windows=batch * win, tokens_per_window=n,
                        tokens=batch * win * n))
    return out
