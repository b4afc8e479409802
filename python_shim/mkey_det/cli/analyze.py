"""``mkey-det analyze``: load the backbone of a run or a checkpoint and analyse its attention
(:mod:`mkey_det.analysis.qk`). Called through the bridge (``analyze.qk``)."""
from __future__ import annotations

import glob
import os
import re
from typing import Any, Dict, List, Optional


def _latest_checkpoint(run_dir: str) -> str:
    last = os.path.join(run_dir, 'last_checkpoint')
    if os.path.isfile(last):
        with open(last, encoding='utf-8') as f:
            path = f.read().strip()
        if path and os.path.isfile(path):
            return path
    found = sorted(glob.glob(os.path.join(run_dir, '*.pth')),
                   key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', p)])
    if not found:
        raise ValueError(f'{run_dir} holds no checkpoint (no last_checkpoint, no *.pth): '
                         'give a run directory after its first epoch, or a .pth file')
    return found[-1]


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
    run_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    checkpoint = _latest_checkpoint(path) if os.path.isdir(path) else path
    config = os.path.join(run_dir, 'config.py')
    with quiet_mmengine():
        if os.path.isfile(config):
            cfg = Config.fromfile(config).model.backbone.copy()
            cfg['init_cfg'] = None
            backbone = MODELS.build(cfg)
        elif os.path.isdir(path):
            raise ValueError(f'{path} has no config.py: not a run directory of mkey-det train')
        else:
            backbone = SwinTransformerMKey(key_type='linear', **SWIN_T)
        load_pretrained(backbone, checkpoint)
    backbone.eval()
    return dict(backbone=backbone, checkpoint=os.path.abspath(checkpoint),
                config=config if os.path.isfile(config) else None,
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
