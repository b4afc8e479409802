"""``mkey-det analyze``: load the backbone of a run or a checkpoint and analyse its attention
(:mod:`mkey_det.analysis.qk`, :mod:`mkey_det.analysis.attention`). Called through the bridge
(``analyze.qk``, ``analyze.attention``)."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from .runs import resolve_run


def load_backbone(path: str) -> Dict[str, Any]:
    """The backbone of ``path``, weights loaded strictly (see ``load_pretrained``).

    ``path``: a run directory (its ``config.py`` and last checkpoint), a checkpoint with the run's
    ``config.py`` next to it, or a Swin checkpoint without one (official, timm or mmdet layout:
    read as Swin-T with the linear key).
    """
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from ..analysis import SWIN_T
    from ..models.backbones import SwinTransformerMKey, load_pretrained
    from ..utils import quiet_mmengine

    register_all_modules()
    run = resolve_run(path)
    with quiet_mmengine():
        if run['config']:
            cfg = Config.fromfile(run['config']).model.backbone.copy()
            cfg['init_cfg'] = None
            backbone = MODELS.build(cfg)
        else:
            backbone = SwinTransformerMKey(key_type='linear', **SWIN_T)
        load_pretrained(backbone, run['checkpoint'])
    backbone.eval()
    return dict(backbone=backbone, checkpoint=run['checkpoint'], config=run['config'],
                key_type=getattr(backbone, 'key_type', 'linear'),
                charts=getattr(backbone, 'num_charts', None) if getattr(backbone, 'key_type', 'linear') != 'linear' else None)


def qk(sources: List[Dict[str, str]], plot: Optional[str] = None) -> Dict[str, Any]:
    """The query-key interaction of every head of every model in ``sources``
    (``[{path, label}]``); with ``plot``, a PNG of the per-layer similarity of all of them."""
    from ..analysis.qk import backbone_interactions, plot_similarity

    models = []
    for src in sources:
        loaded = load_backbone(src['path'])
        models.append(dict(label=src['label'], path=src['path'], checkpoint=loaded['checkpoint'],
                           config=loaded['config'], key_type=loaded['key_type'],
                           charts=loaded['charts'], layers=backbone_interactions(loaded['backbone'])))
    out: Dict[str, Any] = dict(models=models)
    if plot:
        out['plot'] = plot_similarity({m['label']: m['layers'] for m in models}, plot)
    return out


def _normalisation(config: Optional[str]) -> Dict[str, Any]:
    """Mean, std and channel order of the run's ``data_preprocessor`` (ImageNet's, RGB, when
    there is no config or it names none)."""
    from ..analysis.attention import IMAGENET_MEAN, IMAGENET_STD

    out: Dict[str, Any] = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, rgb=True)
    if not config:
        return out
    from mmengine.config import Config

    pre = Config.fromfile(config).model.get('data_preprocessor') or {}
    if pre.get('mean') is not None and pre.get('std') is not None:
        out.update(mean=tuple(float(v) for v in pre['mean']),
                   std=tuple(float(v) for v in pre['std']),
                   rgb=bool(pre.get('bgr_to_rgb', pre.get('to_rgb', False))))
    return out


def _cb_mode(backbone) -> Optional[str]:
    """The ``cb_mode`` of the backbone's keys (KUA, VanillaK), None for keys without CB."""
    from ..models.keys.base import CBModeMixin

    modes = sorted({m.cb_mode for m in backbone.modules() if isinstance(m, CBModeMixin)})
    return ','.join(modes) if modes else None


def attention(sources: List[Dict[str, str]], images: List[str], layer: Optional[int] = None,
              query: Optional[List[float]] = None, size: int = 224,
              pngs: Optional[List[str]] = None) -> Dict[str, Any]:
    """Per-head attention maps of block ``layer`` (None: the last) of every model in ``sources``
    (``[{path, label}]``) on every image (:mod:`mkey_det.analysis.attention`); ``query``: the
    ``[x, y]`` pixel of the image files whose attention is drawn (None: the centre); ``size``:
    the longer side of the image as fed to the models; ``pngs``: one grid per image."""
    from ..analysis.attention import analyse, load_image, plot_grid, query_to_cell, window_attention

    if pngs is not None and len(pngs) != len(images):
        raise ValueError(f'{len(pngs)} PNG path(s) for {len(images)} image(s)')
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f'--size must be an int >= 32 (pixels), got {size!r}')
    models, loaded = [], []
    for src in sources:
        m = load_backbone(src['path'])
        m['norm'] = _normalisation(m['config'])
        loaded.append(m)
        models.append(dict(label=src['label'], path=src['path'], checkpoint=m['checkpoint'],
                           config=m['config'], key_type=m['key_type'], charts=m['charts'],
                           cb_mode=_cb_mode(m['backbone'])))
    out_images = []
    for i, path in enumerate(images):
        results, image = [], None
        for src, m in zip(sources, loaded):
            image = load_image(path, size, **m['norm'])
            wa = window_attention(m['backbone'], image['tensor'], layer)
            cell = query_to_cell(query, image, wa.stride, wa.grid)
            results.append(dict(label=src['label'], **analyse(wa, cell)))
        w0, h0 = image['size']
        entry: Dict[str, Any] = dict(path=path, size=image['size'], input_size=image['input_size'],
                                     query=list(query) if query is not None else [w0 / 2, h0 / 2],
                                     models=results)
        if pngs is not None:
            r0 = results[0]
            title = (f'{os.path.basename(path)}: layer {r0["layer"]} (stage {r0["stage"]} block '
                     f'{r0["block"]}, {"shifted" if r0["shift"] else "regular"} windows of '
                     f'{r0["window"]}x{r0["window"]}); query = attention of the + location per '
                     f'head, received = summed over the queries of each window')
            entry['png'] = plot_grid(image['pixels'], [(r['label'], r) for r in results], pngs[i],
                                     title=title)
        out_images.append(entry)
    return dict(models=models, images=out_images)
