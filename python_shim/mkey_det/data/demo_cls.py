"""A small synthetic image-classification dataset (one coloured shape per image), for `mkey-det pretrain`.

The dataset is generated on first use and cached, in the ImageNet-style folder layout that
mmpretrain's ``CustomDataset`` reads with ``data_prefix`` and ``with_label=True`` (one sub-folder
per class; the class index is the folder's rank in sorted order, which is the order of
:data:`CLS_CLASSES`)::

    root/train/<class>/0000.png ...
    root/val/<class>/0000.png ...
    root/.mkey-demo.json          (manifest, written last)

Classes are shape x colour family: 5 shapes (:data:`SHAPES`) in a warm (red/orange/yellow) or a
cool (cyan/blue) colour, 10 classes in all, equally many images each. Every image shows one dominant
shape (45-80% of the image side, roughly upright: turned by up to 15 degrees) on the detection
demo's backgrounds (gradient, soft blotches, distractor lines, pixel noise: :mod:`mkey_det.data.demo`),
plus up to two small distractor shapes of any shape, colour and orientation, so that neither the mean
colour nor "some triangle somewhere" gives the class away; the class is the big shape's form and
colour. The colour family alone is learnt quickly (20% accuracy, chance is 10%); the shape takes a few
hundred steps (a 4-layer CNN from scratch, batch 32 at 64 px: ~25% after 200 steps, ~80% after 500).

Generation is deterministic: the same seed and :class:`ClsDemoSpec` give byte-identical files (each
image has its own ``numpy`` generator seeded from ``(seed, split, class, index)``). It is also
atomic: files are written into a temporary sibling folder that is renamed into place only when
complete, under the same lock as the detection demo (:mod:`.demo_cache`, shared by both), so an
interrupted run never looks like a finished dataset. A cache made by another generator version, seed or spec is regenerated, and the
summary says why (``reason``).

This module imports only numpy and OpenCV (never mmpretrain), so it is quick to import.

Run it directly: ``python -m mkey_det.data.demo_cls --out DIR [--seed N] [--force]`` prints a JSON
summary.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .demo import _PNG_PARAMS, _add_noise, _background, _fill_colour, _local_mean, _place, _polygon
# MANIFEST_NAME and read_manifest stay importable from here (public names of this module)
from .demo_cache import MANIFEST_NAME, DemoGenerator, read_manifest, require, script_main

#: Bump when the generator's output changes for the same seed and spec (invalidates caches; the
#: TS side caches under ``demo-cls-v<GENERATOR_VERSION>``).
GENERATOR_VERSION = 1

GENERATOR_NAME = 'mkey_det.data.demo_cls'

SHAPES: tuple[str, ...] = ('circle', 'cross', 'square', 'star', 'triangle')
#: Colour families of the dominant shape, as OpenCV hue ranges (0..180, wrapping): warm is
#: red/orange/yellow, cool is cyan/blue. Green and purple hues only appear on distractors.
FAMILIES: dict[str, tuple[int, int]] = {'cool': (90, 130), 'warm': (-10, 28)}

#: Class names ``<shape>_<family>``, sorted: the order (and so the label index) in which
#: mmpretrain's CustomDataset finds the class folders.
CLS_CLASSES: tuple[str, ...] = tuple(sorted(f'{s}_{f}' for s in SHAPES for f in FAMILIES))

SPLITS: tuple[str, ...] = ('train', 'val')

# a star's inner vertices sit at this fraction of its outer radius
_STAR_INNER = 0.45
# a cross's arm half-width, as a fraction of its arm length
_CROSS_WIDTH = 0.3


@dataclass(frozen=True)
class ClsDemoSpec:
    """Every size/count knob of the classification demo. ``DEFAULT_CLS_SPEC`` is what
    ``mkey-det pretrain --data demo`` uses (the demo recipe trains at 64 px, DEMO_PRETRAIN in
    src/core/pretrain/experiment.ts)."""

    #: images are square: image_size x image_size pixels
    image_size: int = 64
    num_train_per_class: int = 40
    num_val_per_class: int = 10
    #: diameter of the dominant shape's circumscribed circle, as a fraction of image_size
    min_scale: float = 0.45
    max_scale: float = 0.8
    max_distractors: int = 2
    #: diameter of a distractor shape, as a fraction of image_size
    min_distractor_scale: float = 0.12
    max_distractor_scale: float = 0.22
    #: the dominant shape stands upright (triangle and star point up, square and cross axis-aligned),
    #: turned by up to this many degrees either way (180: any orientation); distractors turn freely
    max_rotation_deg: float = 15.0
    #: placement attempts per distractor before it is dropped (shapes never overlap)
    placement_tries: int = 20
    circle_vertices: int = 24
    #: std of the Gaussian pixel noise added last
    noise_std: float = 6.0
    max_distractor_lines: int = 3

    def __post_init__(self) -> None:
        require(
            self,
            (self.image_size >= 24, 'image_size must be >= 24'),
            (self.num_train_per_class >= 1 and self.num_val_per_class >= 1, 'num_train_per_class and num_val_per_class must be >= 1'),
            (0.1 <= self.min_scale <= self.max_scale <= 0.9, 'need 0.1 <= min_scale <= max_scale <= 0.9'),
            (self.max_distractors >= 0, 'max_distractors must be >= 0'),
            (0.02 <= self.min_distractor_scale <= self.max_distractor_scale <= 0.5,
             'need 0.02 <= min_distractor_scale <= max_distractor_scale <= 0.5'),
            (0.0 <= self.max_rotation_deg <= 180.0, 'max_rotation_deg must be in [0, 180]'),
            (self.placement_tries >= 1, 'placement_tries must be >= 1'),
            (self.circle_vertices >= 8, 'circle_vertices must be >= 8'),
            (self.noise_std >= 0 and self.max_distractor_lines >= 0, 'noise_std and max_distractor_lines must be >= 0'),
        )


#: The defaults used by ``mkey-det pretrain --data demo`` (tune sizes and counts here).
DEFAULT_CLS_SPEC = ClsDemoSpec()


# --------------------------------------------------------------------------------------------------
# drawing


def _shape_polygon(shape: str, cx: float, cy: float, r: float, theta0: float, spec: ClsDemoSpec) -> np.ndarray:
    """Integer vertices (k x 2, int32) of ``shape`` inscribed in the circle (cx, cy, r)."""
    if shape in ('circle', 'triangle', 'square'):
        return _polygon(shape, cx, cy, r, theta0, spec)  # type: ignore[arg-type]  # duck-typed spec
    if shape == 'star':
        k = np.arange(10, dtype=np.float64)
        radii = np.where(k % 2 == 0, r, r * _STAR_INNER)
        angles = theta0 + math.pi * k / 5.0
        local = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    elif shape == 'cross':
        a = r / math.sqrt(1.0 + _CROSS_WIDTH**2)  # arm length: the arm corners lie on the circle
        w = _CROSS_WIDTH * a
        local = np.array(
            [(w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w), (-w, -a)],
            dtype=np.float64,
        )
        c, s = math.cos(theta0), math.sin(theta0)
        local = local @ np.array([[c, s], [-s, c]], dtype=np.float64)
    else:
        raise ValueError(f'unknown shape {shape!r}')
    pts = np.clip(np.rint(local + np.array([cx, cy])), 0, spec.image_size - 1)
    return pts.astype(np.int32)


def _family_colour(rng: np.random.Generator, family: str, bg_mean: np.ndarray) -> tuple[int, int, int]:
    """A saturated BGR colour of ``family`` that stands out from ``bg_mean`` as well as it can."""
    lo, hi = FAMILIES[family]
    best: tuple[float, np.ndarray] | None = None
    for _ in range(20):
        hue = int(rng.integers(lo, hi + 1)) % 180
        hsv = np.array([[[hue, rng.integers(150, 256), rng.integers(150, 256)]]], dtype=np.uint8)
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        dist = float(np.linalg.norm(bgr - bg_mean))
        if dist >= 90.0:
            best = (dist, bgr)
            break
        if best is None or dist > best[0]:
            best = (dist, bgr)
    assert best is not None
    bgr = best[1]
    return (int(bgr[0]), int(bgr[1]), int(bgr[2]))


# angle of the first vertex that makes each shape stand upright (image y points down)
_UPRIGHT = {'circle': 0.0, 'cross': 0.0, 'square': math.pi / 4.0, 'star': -math.pi / 2.0, 'triangle': -math.pi / 2.0}


def _theta(rng: np.random.Generator, shape: str, max_rotation_deg: float = 180.0) -> float:
    """First-vertex angle of ``shape``: upright, turned by a uniform angle within +-max_rotation_deg."""
    if shape == 'circle':
        return 0.0
    turn = math.radians(max_rotation_deg)
    return _UPRIGHT[shape] + float(rng.uniform(-turn, turn))


def _render_image(rng: np.random.Generator, shape: str, family: str, spec: ClsDemoSpec) -> np.ndarray:
    """One image (uint8 BGR) whose dominant object is a ``family``-coloured ``shape``."""
    n = spec.image_size
    img = _background(rng, spec)  # type: ignore[arg-type]  # duck-typed spec (image_size, max_distractor_lines)
    # the dominant shape
    r = float(rng.uniform(spec.min_scale, spec.max_scale)) * n / 2.0
    cx = float(rng.uniform(r + 1.0, n - 2.0 - r))
    cy = float(rng.uniform(r + 1.0, n - 2.0 - r))
    pts = _shape_polygon(shape, cx, cy, r, _theta(rng, shape, spec.max_rotation_deg), spec)
    colour = _family_colour(rng, family, _local_mean(img, pts))
    cv2.fillPoly(img, [pts.reshape(-1, 1, 2)], colour, lineType=cv2.LINE_AA)
    # small distractors of any shape and colour, never touching the dominant shape or each other
    placed = [(cx, cy, r)]
    for _ in range(int(rng.integers(0, spec.max_distractors + 1))):
        d_shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
        dr = float(rng.uniform(spec.min_distractor_scale, spec.max_distractor_scale)) * n / 2.0
        spot = _place(rng, dr, n, placed, spec.placement_tries, gap=2.0)
        if spot is None:
            continue
        placed.append(spot)
        d_pts = _shape_polygon(d_shape, spot[0], spot[1], dr, _theta(rng, d_shape), spec)
        cv2.fillPoly(img, [d_pts.reshape(-1, 1, 2)], _fill_colour(rng, _local_mean(img, d_pts)), lineType=cv2.LINE_AA)
    return _add_noise(rng, img, spec.noise_std)


# --------------------------------------------------------------------------------------------------
# writing


def _write_dataset(out: Path, seed: int, spec: ClsDemoSpec) -> dict[str, Any]:
    """Writes both splits into ``out``; returns this generator's manifest field (``counts``)."""
    counts: dict[str, dict[str, int]] = {}
    for split_index, (split, per_class) in enumerate(zip(SPLITS, (spec.num_train_per_class, spec.num_val_per_class))):
        counts[split] = {}
        for class_index, name in enumerate(CLS_CLASSES):
            shape, family = name.rsplit('_', 1)
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng(np.random.SeedSequence([seed, split_index, class_index, i]))
                path = folder / f'{i:04d}.png'
                if not cv2.imwrite(str(path), _render_image(rng, shape, family, spec), _PNG_PARAMS):
                    raise OSError(f'cv2.imwrite failed for {path}')
            counts[split][name] = per_class
    return {'counts': counts}


def _identity(seed: int, spec: ClsDemoSpec) -> dict[str, Any]:
    """What the manifest of this generator's dataset for ``seed`` and ``spec`` records."""
    return {'generator': GENERATOR_NAME, 'version': GENERATOR_VERSION, 'seed': seed, 'spec': dataclasses.asdict(spec),
            'classes': list(CLS_CLASSES)}


def _summary(root: Path, manifest: dict[str, Any], reason: str | None) -> dict[str, Any]:
    counts = manifest['counts']
    return {
        'root': str(root),
        'train_dir': str(root / 'train'),
        'val_dir': str(root / 'val'),
        'classes': list(manifest['classes']),
        'num_train': sum(counts['train'].values()),
        'num_val': sum(counts['val'].values()),
        'counts': {split: dict(counts[split]) for split in SPLITS},
        'image_size': manifest['spec']['image_size'],
        'seed': manifest['seed'],
        'version': manifest['version'],
        'generated': reason is not None,
        #: why it was generated (None when an intact cache was reused)
        'reason': reason,
    }


GENERATOR = DemoGenerator(_identity, DEFAULT_CLS_SPEC, ('counts',), _write_dataset)
#: ``ensure_demo_cls_dataset(root, seed=0, spec=None, force=False)`` (``reason``: why it was
#: generated), ``generate_demo_cls_dataset(root, seed=0, spec=None)``: :meth:`.DemoGenerator.entry_points`
ensure_demo_cls_dataset, generate_demo_cls_dataset = GENERATOR.entry_points(
    __name__, 'demo_cls_dataset', _summary,
    '{root, train_dir, val_dir, classes, num_train, num_val, counts, image_size, seed, version, generated, reason}')


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, 'mkey_det.data.demo_cls', __doc__.split('\n')[0], ensure_demo_cls_dataset, DEFAULT_CLS_SPEC,
                       ('num_train_per_class', 'num_val_per_class', 'image_size'))


if __name__ == '__main__':
    sys.exit(main())
