"""``mkey-det infer``: a trained detector on images, with MMDetection's own ``DetInferencer``
(the pipeline of the run's config, the classes saved in the checkpoint): pictures with boxes,
masks and class names drawn, and the detections as JSON. Run as a worker
(``python -m mkey_det.cli.infer``, :func:`main`): one JSON line per image as it is done, so the
CLI shows progress and nothing of the results is held in memory."""
from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable, Dict, List, Optional

from .runs import check_checkpoint, resolve_run


def _device(device: Optional[str]) -> str:
    import torch

    if device in (None, 'auto'):
        return 'cuda:0' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: no CUDA device is visible here; use --device cpu')
    return device


def _draw(visualizer, path: str, sample, out_file: str, score_thr: float, min_side: int) -> None:
    """Boxes, masks and class names drawn on the image, scaled up (nearest) so that its shorter
    side is at least ``min_side`` pixels: on a small image the labels would hide the objects."""
    import math

    import cv2
    import numpy as np

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path}: not an image OpenCV can read')
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    k = max(1, math.ceil(min_side / min(img.shape[:2])))
    sample = sample.clone()
    if k > 1:
        img = cv2.resize(img, (img.shape[1] * k, img.shape[0] * k), interpolation=cv2.INTER_NEAREST)
        inst = sample.pred_instances
        inst.bboxes = inst.bboxes * k
        if 'masks' in inst:
            masks = inst.masks.cpu().numpy().astype(np.uint8)
            inst.masks = np.stack([cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
                                   for m in masks]).astype(bool) if len(masks) else inst.masks
    visualizer.add_datasample(os.path.basename(path), img, sample, draw_gt=False,
                              pred_score_thr=score_thr, out_file=out_file)


#: Largest image infer decodes, in pixels: Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``,
#: about 89.5 megapixels). A 2.6 MB PNG of 30000 x 30000 pixels grew Python to 24 GB when decoded.
MAX_IMAGE_PIXELS = 89_478_485


def image_problem(path: str) -> Optional[str]:
    """Why ``path`` is not an image to decode (read from its header only), or None."""
    import warnings as _warnings

    from PIL import Image

    if not os.path.isfile(path):
        return 'not a regular file'
    # Pillow's own check would refuse the largest without naming their size: read the header
    # with it off (nothing is decoded here), then apply the limit below
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as im:  # lazy: the header, not the pixels
                w, h = im.size
    except Exception as exc:  # noqa: BLE001
        return f'not an image Pillow can read ({type(exc).__name__})'
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if w * h > MAX_IMAGE_PIXELS:
        return f'{w} x {h} pixels, above the limit of {MAX_IMAGE_PIXELS} (about 89.5 megapixels)'
    return None


def _record(path: str, pred: Dict[str, Any], classes: List[str], out_dir: str,
            score_thr: float) -> Dict[str, Any]:
    """One image's entry of ``detections.json``: its files and the detections at or above
    ``score_thr`` (class, score, box x1, y1, x2, y2 in pixels of the input image)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    dets = [dict(label=int(label), **({'class': classes[int(label)]} if int(label) < len(classes) else {}),
                 score=float(score), bbox=[float(v) for v in box])
            for label, score, box in zip(pred['labels'], pred['scores'], pred['bboxes'])
            if float(score) >= score_thr]
    vis = os.path.join(out_dir, 'vis', os.path.basename(path))
    preds = os.path.join(out_dir, 'preds', stem + '.json')
    return dict(image=path, vis=vis if os.path.isfile(vis) else None,
                preds=preds if os.path.isfile(preds) else None, detections=dets)


#: ``detections.json`` while it is written (renamed to it at the end: a stopped infer leaves no
#: half file under the final name).
PARTIAL_JSON = 'detections.json.part'


def infer_images(source: str, images: List[str], out_dir: str, score_thr: float = 0.3,
                 device: Optional[str] = None, min_side: int = 512,
                 emit: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Runs the detector of ``source`` (a run directory or a checkpoint next to its config.py)
    on ``images``; writes ``out_dir/vis/<image>`` (drawn) and ``out_dir/preds/<image>.json``
    (MMDetection's prediction files), and ``out_dir/detections.json``: per image, the detections
    at or above ``score_thr``: class, score, box (x1, y1, x2, y2, pixels of the input image).

    Streams: each image's entry is written to ``detections.json`` (through ``PARTIAL_JSON``) as
    soon as it is done and handed to ``emit`` (``{"event": "image", ...}``, after one
    ``{"event": "start", ...}`` once the model is built), and kept nowhere, so memory does not
    grow with the number of images. Returns the summary without the per-image entries (counts)."""
    from mmdet.apis import DetInferencer
    from mmdet.utils import register_all_modules

    from ..utils import quiet_mmengine

    emit = emit or (lambda event: None)
    register_all_modules()
    run = resolve_run(source)
    if not run['config']:
        raise ValueError(f'{source}: no config.py next to the checkpoint; infer needs the run it '
                         'came from (give the run directory)')
    check_checkpoint(run['config'], run['checkpoint'])  # strict: refuse weights that do not fit
    dev = _device(device)
    final = os.path.join(out_dir, 'detections.json')
    partial = os.path.join(out_dir, PARTIAL_JSON)
    with quiet_mmengine(), warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # e.g. mmengine's "polygon is out of bounds"
        inferencer = DetInferencer(model=run['config'], weights=run['checkpoint'], device=dev,
                                   palette='random', show_progress=False)
        classes = list((inferencer.model.dataset_meta or {}).get('classes') or [])
        summary = dict(config=run['config'], checkpoint=run['checkpoint'], device=dev,
                       score_thr=score_thr, classes=classes)
        os.makedirs(os.path.join(out_dir, 'vis'), exist_ok=True)
        os.makedirs(os.path.join(out_dir, 'preds'), exist_ok=True)
        emit(dict(event='start', total=len(images), device=dev, checkpoint=run['checkpoint']))
        # one image at a time: one that cannot be read or decoded is reported and skipped, the
        # others are done (a 3 x 1000 picture aborted a whole batch with OpenCV's assertion)
        failed: List[Dict[str, str]] = []
        done = 0
        with open(partial, 'w', encoding='utf-8') as out:
            head = json.dumps(summary, indent=2)
            out.write(head[:-2] + ',\n  "images": [')
            for index, path in enumerate(images):
                problem = image_problem(path)
                if problem is None:
                    try:
                        sample = inferencer([path], pred_score_thr=score_thr, no_save_vis=True,
                                            return_datasamples=True, print_result=False)['predictions'][0]
                        # the picture drawn at a readable size; then MMDetection's prediction file
                        _draw(inferencer.visualizer, path, sample,
                              os.path.join(out_dir, 'vis', os.path.basename(path)), score_thr, min_side)
                        record = _record(path, inferencer.pred2dict(sample, out_dir), classes,
                                         out_dir, score_thr)
                        del sample
                        out.write((',' if done else '') + '\n    ' + json.dumps(record))
                        out.flush()
                        done += 1
                        emit(dict(event='image', index=index + 1, total=len(images), **record))
                        continue
                    except Exception as exc:  # noqa: BLE001 - one bad image must not end the batch
                        problem = f'{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ""}'[:200]
                failed.append(dict(image=path, error=problem))
                emit(dict(event='image', index=index + 1, total=len(images), image=path, error=problem))
            out.write(('\n  ' if done else '') + '],\n  "failed": ' + json.dumps(failed) + '\n}\n')
    os.replace(partial, final)  # replaces a link at the name itself, never writes through it
    return dict(summary, done=done, failed=len(failed), json=final)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m mkey_det.cli.infer --request FILE``: the worker of ``mkey-det infer``
    (src/core/infer/infer.ts). FILE holds ``{"source", "images", "out_dir", "score_thr",
    "device"}``. Speaks the JSON lines of src/python/worker.ts on stdout: ``start``, one ``image``
    per image, then ``result`` (the summary) or ``error`` (exit code 2: input refused, e.g. a
    checkpoint that does not fit its config; 1: it failed). Everything else printed goes to stderr."""
    import argparse
    import sys
    import traceback

    from ..utils import json_safe

    parser = argparse.ArgumentParser(prog='python -m mkey_det.cli.infer')
    parser.add_argument('--request', required=True)
    args = parser.parse_args(argv)
    # the protocol keeps the real stdout; whatever a library prints goes to stderr
    protocol = os.fdopen(os.dup(1), 'w', encoding='utf-8')
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(obj: Dict[str, Any]) -> None:
        protocol.write(json.dumps(json_safe(obj), allow_nan=False) + '\n')
        protocol.flush()

    try:
        with open(args.request, encoding='utf-8') as f:
            req = json.load(f)
        result = infer_images(req['source'], req['images'], req['out_dir'], float(req['score_thr']),
                              req.get('device'), emit=emit)
        emit(dict(event='result', result=result))
        return 0
    except ValueError as exc:  # the input refused (a checkpoint that does not fit, no config.py)
        emit(dict(event='error', message=str(exc), exit_code=2))
        return 2
    except Exception as exc:  # noqa: BLE001 - reported as data, the CLI prints one line
        traceback.print_exc(file=sys.stderr)
        emit(dict(event='error', message=f'{type(exc).__name__}: {exc}', exit_code=1))
        return 1


if __name__ == '__main__':
    raise SystemExit(main())
