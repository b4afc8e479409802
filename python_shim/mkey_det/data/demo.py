"""A small synthetic detection dataset (coloured shapes) in COCO layout, for demos and tests.

The dataset is generated on first use and cached::

    root/annotations/instances_train2017.json
    root/annotations/instances_val2017.json
    root/train2017/000000000001.png ...
    root/val2017/000000000001.png ...
    root/.mkey-demo.json          (manifest, written last)

Every image shows 1-3 filled shapes (:data:`DEMO_CLASSES`), each class in its own hue band by default
(:attr:`DemoSpec.class_hues`), on a varied background
(linear gradient, soft low-frequency blotches, a few distractor lines, pixel noise). Shapes never
overlap, so each polygon is exactly the visible object. Annotations carry COCO polygons (circles as
24-gons), a bbox equal to the polygon's extent, the polygon's area and ``iscrowd = 0``.

Generation is deterministic: the same seed and :class:`DemoSpec` give byte-identical files (each
image has its own ``numpy`` generator seeded from ``(seed, split, index)``). It is also atomic: files
are written into a temporary sibling folder that is renamed into place only when complete, under a
lock file, so an interrupted run never looks like a finished dataset (:mod:`.demo_cache`, shared with
the classification demo).

This module imports only numpy and OpenCV (never mmdet), so it is quick to import.

Run it directly: ``python -m mkey_det.data.demo --out DIR [--seed N] [--force]`` prints a JSON summary.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# MANIFEST_NAME and read_manifest stay importable from here (public names of this module)
from .demo_cache import MANIFEST_NAME, DemoGenerator, read_manifest, require, script_main

#: Bump when the generator's output changes for the same seed and spec (invalidates caches).
GENERATOR_VERSION = 2

GENERATOR_NAME = 'mkey_det.data.demo'

#: Category names, ids 1..K in this order.
DEMO_CLASSES: tuple[str, ...] = ('circle', 'triangle', 'square')

SPLITS: tuple[str, ...] = ('train2017', 'val2017')

# number of polygon vertices per class
_VERTICES = {'triangle': 3, 'square': 4}
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]


@dataclass(frozen=True)
class DemoSpec:
    """Every size/count knob of the demo dataset. ``DEFAULT_SPEC`` is what ``mkey-det --data demo`` uses."""

    #: images are square: image_size x image_size pixels
    # Sized so that `mkey-det train --data demo` (Swin-T + SpatialK from scratch, Mask R-CNN) learns
    # to box AP > 25 in about ten minutes on 2 CPU cores (docs/DEMO.md);
    # src/core/config/render.ts (DEMO_IMAGE_SIZE) matches.
    image_size: int = 64
    num_train: int = 128
    num_val: int = 16
    min_objects: int = 1
    max_objects: int = 3
    #: object extent in pixels (diameter of the circle each shape is inscribed in)
    min_side: int = 20
    max_side: int = 44
    circle_vertices: int = 24
    #: placement attempts per object before it is dropped (shapes never overlap)
    placement_tries: int = 40
    #: std of the Gaussian pixel noise added last
    noise_std: float = 4.0
    max_distractor_lines: int = 1
    #: each class drawn in its own hue band (circles red, triangles green, squares blue) instead of
    #: any hue: colour then tells the classes apart, so a detector from scratch learns in fewer steps
    class_hues: bool = True

    def __post_init__(self) -> None:
        require(
            self,
            (self.image_size >= 32, 'image_size must be >= 32'),
            (self.num_train >= 1 and self.num_val >= 1, 'num_train and num_val must be >= 1'),
            (1 <= self.min_objects <= self.max_objects, 'need 1 <= min_objects <= max_objects'),
            (4 <= self.min_side <= self.max_side, 'need 4 <= min_side <= max_side'),
            (self.max_side <= self.image_size - 4, 'max_side must be <= image_size - 4'),
            (self.circle_vertices >= 8, 'circle_vertices must be >= 8'),
            (self.placement_tries >= 1, 'placement_tries must be >= 1'),
            (self.noise_std >= 0 and self.max_distractor_lines >= 0, 'noise_std and max_distractor_lines must be >= 0'),
        )


#: The defaults used by ``mkey-det train --data demo`` (tune sizes and counts here).
DEFAULT_SPEC = DemoSpec()


# --------------------------------------------------------------------------------------------------
# drawing


def _background(rng: np.random.Generator, spec: DemoSpec) -> np.ndarray:
    """uint8 HxWx3 BGR background: gradient, optional soft blotches, distractor lines."""
    n = spec.image_size
    c0, c1 = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n - 1)
    t = xx * np.float32(math.cos(angle)) + yy * np.float32(math.sin(angle))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1.0 - t[..., None]) + c1[None, None, :] * t[..., None]
    if rng.random() < 0.5:  # low-frequency "cloudy" texture
        coarse = rng.normal(0.0, 1.0, size=(6, 6, 3)).astype(np.float32)
        amp = np.float32(rng.uniform(10.0, 35.0))
        img = img + cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC) * amp
    img = np.clip(np.rint(img), 0.0, 255.0).astype(np.uint8)
    for _ in range(int(rng.integers(0, spec.max_distractor_lines + 1))):
        p0 = tuple(int(v) for v in rng.integers(0, n, size=2))
        p1 = tuple(int(v) for v in rng.integers(0, n, size=2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        cv2.line(img, p0, p1, colour, thickness=int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    return img


#: OpenCV hue (0-180) at the centre of each class's band when ``DemoSpec.class_hues``
_CLASS_HUES = (0, 60, 120)


def _fill_colour(rng: np.random.Generator, bg_mean: np.ndarray, hue: int | None = None) -> tuple[int, int, int]:
    """A saturated colour that stands out from ``bg_mean`` (BGR), any hue or within 12 of ``hue``."""
    for _ in range(20):
        h = rng.integers(0, 180) if hue is None else (hue + rng.integers(-12, 13)) % 180
        hsv = np.array([[[h, rng.integers(110, 256), rng.integers(110, 256)]]], dtype=np.uint8)
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        if float(np.linalg.norm(bgr - bg_mean)) >= 90.0:
            return (int(bgr[0]), int(bgr[1]), int(bgr[2]))
    inv = np.rint(255.0 - bg_mean)
    return (int(inv[0]), int(inv[1]), int(inv[2]))


def _polygon(cls: str, cx: float, cy: float, r: float, theta0: float, spec: DemoSpec) -> np.ndarray:
    """Integer vertices (k x 2, int32) of the shape inscribed in the circle (cx, cy, r)."""
    k = _VERTICES.get(cls, spec.circle_vertices)
    angles = theta0 + 2.0 * math.pi * np.arange(k, dtype=np.float64) / k
    pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
    pts = np.clip(np.rint(pts), 0, spec.image_size - 1)
    return pts.astype(np.int32)


def _local_mean(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mean BGR colour (3,) of ``img`` over the bounding box of ``pts`` (k x 2)."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return img[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 3).astype(np.float32).mean(axis=0)


def _place(
    rng: np.random.Generator, r: float, n: int, placed: list[tuple[float, float, float]], tries: int, gap: float,
    min_r: float | None = None,
) -> tuple[float, float, float] | None:
    """``(cx, cy, r)``: a circle of radius ``r`` inside the n x n image, ``gap`` pixels clear of every
    ``placed`` circle, or None after ``tries`` draws. With ``min_r`` the radius shrinks by 3% (not
    below ``min_r``) after each failed draw, so that crowded images still get their objects."""
    for _ in range(tries):
        cx = float(rng.uniform(r + 1.0, n - 2.0 - r))
        cy = float(rng.uniform(r + 1.0, n - 2.0 - r))
        if all(math.hypot(cx - px, cy - py) >= r + pr + gap for px, py, pr in placed):
            return cx, cy, r
        if min_r is not None:
            r = max(min_r, r * 0.97)
    return None


def _add_noise(rng: np.random.Generator, img: np.ndarray, std: float) -> np.ndarray:
    """``img`` (uint8) with Gaussian pixel noise of ``std`` added (unchanged for 0)."""
    if std <= 0:
        return img
    noisy = img.astype(np.float32) + rng.normal(0.0, std, size=img.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _polygon_area(pts: np.ndarray) -> float:
    x = pts[:, 0].astype(np.float64)
    y = pts[:, 1].astype(np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _render_image(rng: np.random.Generator, spec: DemoSpec) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image (uint8 BGR) and its objects: [{category_id, polygon (k x 2 int32)}]."""
    n = spec.image_size
    img = _background(rng, spec)
    placed: list[tuple[float, float, float]] = []
    objects: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        cls_index = int(rng.integers(0, len(DEMO_CLASSES)))
        r = float(rng.uniform(spec.min_side, spec.max_side)) / 2.0
        spot = _place(rng, r, n, placed, spec.placement_tries, gap=3.0, min_r=spec.min_side / 2.0)
        if spot is None:
            continue
        placed.append(spot)
        cx, cy, r = spot
        cls = DEMO_CLASSES[cls_index]
        theta0 = float(rng.uniform(0.0, 2.0 * math.pi)) if cls != 'circle' else 0.0
        pts = _polygon(cls, cx, cy, r, theta0, spec)
        colour = _fill_colour(rng, _local_mean(img, pts), _CLASS_HUES[cls_index] if spec.class_hues else None)
        cv2.fillPoly(img, [pts.reshape(-1, 1, 2)], colour, lineType=cv2.LINE_AA)
        objects.append({'category_id': cls_index + 1, 'polygon': pts})
    return _add_noise(rng, img, spec.noise_std), objects


# --------------------------------------------------------------------------------------------------
# writing


def _write_split(out: Path, split_index: int, split: str, count: int, seed: int, spec: DemoSpec) -> dict[str, Any]:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    (out / split).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image_id = i + 1
        rng = np.random.default_rng(np.random.SeedSequence([seed, split_index, i]))
        img, objects = _render_image(rng, spec)
        file_name = f'{image_id:012d}.png'
        if not cv2.imwrite(str(out / split / file_name), img, _PNG_PARAMS):
            raise OSError(f'cv2.imwrite failed for {out / split / file_name}')
        images.append({'id': image_id, 'file_name': file_name, 'width': spec.image_size, 'height': spec.image_size})
        for obj in objects:
            pts = obj['polygon']
            x0, y0 = (int(v) for v in pts.min(axis=0))
            x1, y1 = (int(v) for v in pts.max(axis=0))
            annotations.append(
                {
                    'id': len(annotations) + 1,
                    'image_id': image_id,
                    'category_id': obj['category_id'],
                    'segmentation': [[float(v) for v in pts.reshape(-1)]],
                    'area': round(_polygon_area(pts), 2),
                    'bbox': [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    'iscrowd': 0,
                }
            )
    coco = {
        'info': {
            'description': f'mkey-det demo shapes ({split}), generator v{GENERATOR_VERSION}, seed {seed}',
            'version': str(GENERATOR_VERSION),
        },
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': name, 'supercategory': 'shape'} for i, name in enumerate(DEMO_CLASSES)],
    }
    ann_dir = out / 'annotations'
    ann_dir.mkdir(parents=True, exist_ok=True)
    with open(ann_dir / f'instances_{split}.json', 'w', encoding='utf-8') as f:
        json.dump(coco, f, separators=(',', ':'))
    per_class = {name: 0 for name in DEMO_CLASSES}
    for ann in annotations:
        per_class[DEMO_CLASSES[ann['category_id'] - 1]] += 1
    return {'images': len(images), 'annotations': len(annotations), 'annotations_per_class': per_class}


def _write_dataset(out: Path, seed: int, spec: DemoSpec) -> dict[str, Any]:
    """Writes both splits into ``out``; returns this generator's manifest field (``stats``)."""
    splits = zip(SPLITS, (spec.num_train, spec.num_val))
    return {'stats': {split: _write_split(out, k, split, n, seed, spec) for k, (split, n) in enumerate(splits)}}


def _identity(seed: int, spec: DemoSpec) -> dict[str, Any]:
    """What the manifest of this generator's dataset for ``seed`` and ``spec`` records."""
    return {'generator': GENERATOR_NAME, 'version': GENERATOR_VERSION, 'seed': seed, 'spec': dataclasses.asdict(spec),
            'classes': list(DEMO_CLASSES)}


def _summary(root: Path, manifest: dict[str, Any], why: str | None) -> dict[str, Any]:
    return {
        'root': str(root),
        'classes': list(manifest['classes']),
        'num_train': manifest['stats']['train2017']['images'],
        'num_val': manifest['stats']['val2017']['images'],
        'generated': why is not None,
    }


GENERATOR = DemoGenerator(_identity, DEFAULT_SPEC, ('stats',), _write_dataset)
#: ``ensure_demo_dataset(root, seed=0, spec=None, force=False)``,
#: ``generate_demo_dataset(root, seed=0, spec=None)``: :meth:`.DemoGenerator.entry_points`
ensure_demo_dataset, generate_demo_dataset = GENERATOR.entry_points(
    __name__, 'demo_dataset', _summary, '{root, classes, num_train, num_val, generated}')


def main(argv: list[str] | None = None) -> int:
    def sides(given: dict[str, int]) -> dict[str, int]:  # shapes must fit a smaller image
        return {'max_side': min(DEFAULT_SPEC.max_side, given['image_size'] - 4),
                'min_side': min(DEFAULT_SPEC.min_side, given['image_size'] - 4)}

    return script_main(argv, 'mkey_det.data.demo', __doc__.split('\n')[0], ensure_demo_dataset, DEFAULT_SPEC,
                       ('num_train', 'num_val', 'image_size'), derived=sides,
                       extra=lambda summary: {'stats': read_manifest(summary['root'])['stats']})


if __name__ == '__main__':
    sys.exit(main())
