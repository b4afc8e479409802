"""``mkey-det analyze``: load the backbone of a run or a checkpoint and analyse its attention
(:mod:`mkey_det.analysis.qk`, :mod:`mkey_det.analysis.attention`,
:mod:`mkey_det.analysis.attention_vit`). Called through the bridge
(``analyze.qk``, ``analyze.attention``)."""
from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Optional, Tuple

from .runs import resolve_run


def load_backbone(path: str) -> Dict[str, Any]:
    """The backbone of ``path``, weights loaded strictly (see ``load_pretrained``).

    ``path``: a run directory (its ``config.py`` and last checkpoint: of ``mkey-det train``, or
    of ``mkey-det pretrain``, whose config is mmpretrain's), a checkpoint with the run's
    ``config.py`` next to it, or a Swin checkpoint without one (official, timm or mmdet layout:
    read as Swin-T with the linear key).
    """
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from ..analysis import SWIN_T
    from ..analysis.attention_vit import is_vit
    from ..models.backbones import SwinTransformerMKey, load_pretrained
    from ..utils import quiet_mmengine
    from .runs import build_config_backbone

    run = resolve_run(path)
    with quiet_mmengine(), warnings.catch_warnings():
        # each config is built in its own toolbox's default scope: the switch is intended
        warnings.filterwarnings('ignore', message='The current default scope')
        register_all_modules()
        if run['config']:
            cfg = Config.fromfile(run['config'])
            cfg.model.backbone['init_cfg'] = None
            backbone = build_config_backbone(cfg)  # the config's own registry (mmdet, mmpretrain)
        else:
            backbone = SwinTransformerMKey(key_type='linear', **SWIN_T)
        # a ViT's keys are no Swin's: never run them through the official-Swin renaming
        load_pretrained(backbone, run['checkpoint'], convert=False if is_vit(backbone) else None)
    backbone.eval()
    if hasattr(backbone, 'set_attn_impl'):
        # the maps are read from the eager softmax; 'sdpa' (a training speed option) is the same
        # function with the same weights, so a run trained with it is analysed in 'eager'
        backbone.set_attn_impl('eager')
    key_type = getattr(backbone, 'key_type', 'linear')
    return dict(backbone=backbone, checkpoint=run['checkpoint'], config=run['config'],
                key_type=key_type,
                charts=getattr(backbone, 'num_charts', None) if key_type != 'linear' else None)


def qk(sources: List[Dict[str, str]], plot: Optional[str] = None) -> Dict[str, Any]:
    """The query-key interaction of every head of every model in ``sources``
    (``[{path, label}]``, all Swin or all ViT); with ``plot``, a PNG of the per-layer similarity
    of all of them."""
    from ..analysis.qk import backbone_interactions, plot_similarity

    models, kinds = [], []
    for src in sources:
        loaded = load_backbone(src['path'])
        kinds.append(_attention_kind(loaded['backbone']))
        _refuse_mixed_kinds('qk', sources, kinds, "layers (window attention over 4 stages) and a "
                            "ViT's blocks do not line up")
        models.append(dict(label=src['label'], path=src['path'], checkpoint=loaded['checkpoint'],
                           config=loaded['config'], backbone=kinds[-1],
                           key_type=loaded['key_type'], charts=loaded['charts'],
                           layers=backbone_interactions(loaded['backbone'])))
    out: Dict[str, Any] = dict(backbone=kinds[0] if kinds else 'swin', models=models)
    if plot:
        out['plot'] = plot_similarity({m['label']: m['layers'] for m in models}, plot,
                                      vit=out['backbone'] == 'vit')
    return out


def _normalisation(config: Optional[str]) -> Dict[str, Any]:
    """Mean, std and channel order of the run's ``data_preprocessor`` (ImageNet's, RGB, when
    there is no config or it names none)."""
    from ..analysis.attention import IMAGENET_MEAN, IMAGENET_STD

    out: Dict[str, Any] = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, rgb=True)
    if not config:
        return out
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    # mmpretrain's configs set it at the top level (the runner hands it to the model)
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
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


def _refuse_mixed_kinds(command: str, sources, kinds, why: str) -> None:
    """ValueError when Swin and ViT models are mixed in one analysis, naming which is which."""
    if len(set(kinds)) <= 1:
        return
    what = ', '.join(f'{s["label"]} is a {"ViT" if k == "vit" else "Swin"}' for s, k in zip(sources, kinds))
    raise ValueError(f"analyze {command} compares models of one kind ({what}): a Swin's {why}; "
                     'run it once per kind')


def _attention_kind(backbone) -> str:
    """``'swin'`` (window attention) or ``'vit'`` (class-token attention); ValueError otherwise."""
    from ..analysis.attention_vit import is_vit

    if is_vit(backbone):
        return 'vit'
    if hasattr(backbone, 'stages'):
        return 'swin'
    raise ValueError(f'{type(backbone).__name__}: neither a Swin (window attention) nor a ViT '
                     '(class-token attention) backbone')


#: the longer side a Swin is fed at without ``--size`` (the last stage: one 7x7 window)
_SIZE_SWIN = 224


def _through_models(sources, loaded, one) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """One image through every model: ``one(m)`` gives the image as model ``m`` is fed it and its
    result; returns the last model's image and the results, labelled."""
    results, image = [], None
    for src, m in zip(sources, loaded):
        image, result = one(m)
        results.append(dict(label=src['label'], **result))
    return image, results


def _image_entry(path: str, image: Dict[str, Any], results: List[Dict[str, Any]],
                 **fields: Any) -> Dict[str, Any]:
    """The JSON entry of one image: the file, its size as read and as fed, what the attention kind
    adds (``fields``), and every model's result."""
    return dict(path=path, size=image['size'], input_size=image['input_size'], **fields,
                models=results)


def _swin_image(path: str, sources, loaded, layer, query, size) -> Tuple[Dict[str, Any], Any, str]:
    """One image through Swin models: its entry (query and window maps per model), pixels, title."""
    from ..analysis.attention import analyse, load_image, query_to_cell, window_attention

    def one(m):
        image = load_image(path, size or _SIZE_SWIN, **m['norm'])
        wa = window_attention(m['backbone'], image['tensor'], layer)
        return image, analyse(wa, query_to_cell(query, image, wa.stride, wa.grid))

    image, results = _through_models(sources, loaded, one)
    w0, h0 = image['size']
    r0 = results[0]
    title = (f'{os.path.basename(path)}: layer {r0["layer"]} (stage {r0["stage"]} block '
             f'{r0["block"]}, {"shifted" if r0["shift"] else "regular"} windows of '
             f'{r0["window"]}x{r0["window"]}); query = attention of the + location per '
             f'head, received = summed over the queries of each window')
    query_xy = list(query) if query is not None else [w0 / 2, h0 / 2]
    return _image_entry(path, image, results, query=query_xy), image['pixels'], title


def _vit_image(path: str, sources, loaded, layer, _query, size, method: str = 'rollout'
               ) -> Tuple[Dict[str, Any], Any, str]:
    """One image through ViT models: its entry (class-token maps per model), pixels, title. The
    image is a centre crop at the first model's ``img_size`` (``size``: a ``size`` square): a
    manifold key is built for that token count, and both models see the same pixels. ``method``:
    ``'rollout'`` (the joint attention up to block ``layer``) or ``'block'`` (its own)."""
    from ..analysis.attention import load_image
    from ..analysis.attention_vit import analyse_tokens, joint_attention, token_attention

    crop = (size, size) if size else tuple(int(v) for v in loaded[0]['backbone'].img_size)
    maps = joint_attention if method == 'rollout' else token_attention
    def one(m):
        image = load_image(path, max(crop), crop=crop, **m['norm'])
        return image, analyse_tokens(maps(m['backbone'], image['tensor'], layer))

    image, results = _through_models(sources, loaded, one)
    r0 = results[0]
    what = (f'joint attention (rollout through layers 0..{r0["layer"]}, layer {r0["layer"]} '
            'per head)' if method == 'rollout' else f'layer {r0["layer"]} of 0..{r0["layers"] - 1}')
    title = (f'{os.path.basename(path)} (centre crop): {what}; per head, the class token\'s '
             f'attention over the {r0["grid"][0]}x{r0["grid"][1]} patches of {r0["stride"]} px '
             f'(its attention to itself left out)')
    entry = _image_entry(path, image, results, crop=image['crop'], query=None)
    return entry, image['pixels'], title


def attention(sources: List[Dict[str, str]], images: List[str], layer: Optional[int] = None,
              query: Optional[List[float]] = None, size: Optional[int] = None,
              pngs: Optional[List[str]] = None, method: Optional[str] = None) -> Dict[str, Any]:
    """Per-head attention maps of block ``layer`` (None: the last) of every model in ``sources``
    (``[{path, label}]``, all Swin or all ViT) on every image. Swin
    (:mod:`mkey_det.analysis.attention`): ``query`` is the ``[x, y]`` pixel of the image files
    whose attention is drawn (None: the centre), ``size`` the longer side of the image as fed
    (None: 224). ViT (:mod:`mkey_det.analysis.attention_vit`): the class token's attention, no
    ``query``; ``size`` the side of the square centre crop fed (None: the model's ``img_size``).
    ``method`` (ViT): ``'rollout'`` (None: the default; the joint attention of blocks
    0..``layer``, the last per head) or ``'block'`` (block ``layer``'s own); a Swin takes
    ``'block'`` or None only (shifted windows have no global token to roll out).
    ``pngs``: one grid per image."""
    from ..analysis.attention import SWIN_ROWS, plot_grid
    from ..analysis.attention_vit import VIT_ROWS

    if pngs is not None and len(pngs) != len(images):
        raise ValueError(f'{len(pngs)} PNG path(s) for {len(images)} image(s)')
    if method not in (None, 'rollout', 'block'):
        raise ValueError(f"--method must be rollout or block, got {method!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 32):
        raise ValueError(f'--size must be an int >= 32 (pixels), got {size!r}')
    models, loaded = [], []
    for src in sources:
        m = load_backbone(src['path'])
        m['norm'] = _normalisation(m['config'])
        m['kind'] = _attention_kind(m['backbone'])
        loaded.append(m)
        models.append(dict(label=src['label'], path=src['path'], checkpoint=m['checkpoint'],
                           config=m['config'], backbone=m['kind'], key_type=m['key_type'],
                           charts=m['charts'], cb_mode=_cb_mode(m['backbone'])))
    kinds = [m['kind'] for m in loaded]
    _refuse_mixed_kinds('attention', sources, kinds, "window attention and a ViT's class-token "
                        'attention are different maps')
    if kinds[0] == 'vit' and query is not None:
        raise ValueError('--query has no meaning for a ViT: its maps are the class token\'s '
                         'attention, not a location\'s; leave --query out')
    if kinds[0] == 'swin' and method == 'rollout':
        raise ValueError('--method rollout is for ViTs: a Swin\'s shifted windows have no global '
                         'token whose attention could be rolled out; leave --method out (or '
                         'give --method block) for its window attention')
    vit_method = method or 'rollout'
    if kinds[0] == 'vit':
        draw, rows = (lambda *a: _vit_image(*a, method=vit_method)), VIT_ROWS
    else:
        draw, rows = _swin_image, SWIN_ROWS
    out_images = []
    for i, path in enumerate(images):
        entry, pixels, title = draw(path, sources, loaded, layer, query, size)
        if pngs is not None:
            entry['png'] = plot_grid(pixels, [(r['label'], r) for r in entry['models']], pngs[i],
                                     title=title, rows=rows)
        out_images.append(entry)
    return dict(backbone=kinds[0], method=vit_method if kinds[0] == 'vit' else 'block',
                models=models, images=out_images)
