"""``mkey-det analyze``: load the backbone of a run or a checkpoint and analyse its attention
(:mod:`mkey_det.analysis.qk`). Called through the bridge (``analyze.qk``)."""
from __future__ import annotations

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
