"""Real photographs for parity checks, and MMDetection's input preprocessing.

Parity is checked on photographs shipped with matplotlib (``mpl-data/sample_data``), so no
download is needed: ``grace_hopper.jpg`` (600 x 512 photo) and ``Minduka_Present_Blue_Pack.png``
(128 x 128 photo with alpha).

:func:`preprocess` does what MMDetection's ``DetDataPreprocessor`` does for the Swin configs
(``mean=[123.675, 116.28, 103.53]``, ``std=[58.395, 57.12, 57.375]``, ``bgr_to_rgb=True``,
``pad_size_divisor=32``): images are read BGR (``cv2.IMREAD_COLOR``, as mmcv does), converted to
RGB, converted to float32, normalised ``(x - mean) / std``, then padded bottom/right with zeros
(after normalisation) to a multiple of ``pad_divisor``. Parity checks use ``pad_divisor=None``
and an exact ``size`` instead, so that sizes such as 333 x 517 reach the backbone unpadded and
exercise its own padding.
"""
from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ['MEAN', 'STD', 'SAMPLE_IMAGES', 'sample_image_paths', 'read_image', 'preprocess',
           'image_batch']

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
#: matplotlib's sample photographs used for parity (in this order).
SAMPLE_IMAGES = ('grace_hopper.jpg', 'Minduka_Present_Blue_Pack.png')


def sample_image_paths() -> List[str]:
    """Absolute paths of :data:`SAMPLE_IMAGES` (they ship with matplotlib)."""
    import matplotlib.cbook as cbook
    paths = []
    for name in SAMPLE_IMAGES:
        path = str(cbook.get_sample_data(name, asfileobj=False))
        if not os.path.isfile(path):
            raise FileNotFoundError(f'matplotlib sample image missing: {path}')
        paths.append(path)
    return paths


def read_image(path: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR, as mmcv's ``imread`` / mmdet's ``LoadImageFromFile`` give it."""
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot read image {path!r}')
    return img


def preprocess(img_bgr: np.ndarray, size: Optional[Tuple[int, int]] = None,
               pad_divisor: Optional[int] = 32) -> torch.Tensor:
    """``(1, 3, H', W')`` float32 network input from a BGR uint8 image.

    ``size=(H, W)``: first resize to exactly that size (bilinear, ``cv2.INTER_LINEAR`` as
    mmcv's ``imresize``). ``pad_divisor``: zero-pad bottom/right after normalisation to a
    multiple of it (None: no padding).
    """
    import cv2
    if size is not None:
        h, w = int(size[0]), int(size[1])
        if img_bgr.shape[:2] != (h, w):
            img_bgr = cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(np.ascontiguousarray(img_bgr)).permute(2, 0, 1)
    x = x[[2, 1, 0], ...].float()  # bgr_to_rgb, then float (mmengine's order)
    mean = torch.tensor(MEAN).view(-1, 1, 1)
    std = torch.tensor(STD).view(-1, 1, 1)
    x = (x - mean) / std
    if pad_divisor:
        h, w = x.shape[1:]
        ph = math.ceil(h / pad_divisor) * pad_divisor - h
        pw = math.ceil(w / pad_divisor) * pad_divisor - w
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), value=0.0)
    return x.unsqueeze(0).contiguous()


def image_batch(size: Tuple[int, int], batch: int = 1,
                paths: Optional[Sequence[str]] = None) -> Tuple[torch.Tensor, List[str]]:
    """``(batch, 3, H, W)``: the sample photographs (cycled) resized to ``size``, normalised,
    unpadded. Returns the tensor and the image file names used."""
    paths = list(paths) if paths else sample_image_paths()
    used = [paths[i % len(paths)] for i in range(batch)]
    x = torch.cat([preprocess(read_image(p), size=size, pad_divisor=None) for p in used])
    return x, [os.path.basename(p) for p in used]
