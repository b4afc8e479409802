"""Short checks the Node CLI runs through the bridge before it launches a training or test process."""
from __future__ import annotations

import glob
import os
import re
from typing import Any, Optional


#: The OpenMMLab toolboxes a config can be run with: its ``default_scope`` names one.
TOOLBOXES = ('mmdet', 'mmpretrain')


def tools_dir(toolbox: str = 'mmdet') -> str:
    """A toolbox's own ``tools/`` folder as shipped inside its package (``<pkg>/.mim/tools``)."""
    import importlib.util

    if toolbox not in TOOLBOXES:
        raise ValueError(f'toolbox {toolbox!r} (accepted: {", ".join(TOOLBOXES)})')
    spec = importlib.util.find_spec(toolbox)
    if spec is None or spec.origin is None:
        raise ImportError(f'{toolbox} is not installed')
    path = os.path.join(os.path.dirname(spec.origin), '.mim', 'tools')
    if not os.path.isfile(os.path.join(path, 'train.py')):
        raise FileNotFoundError(f'{toolbox} tools not found at {path}')
    return path


def config_toolbox(cfg) -> str:
    """The toolbox that runs ``cfg``: its ``default_scope`` (MMDetection's configs set ``mmdet``,
    mmpretrain's ``mmpretrain``); a config without one is read as MMDetection's."""
    scope = cfg.get('default_scope') or 'mmdet'
    if scope not in TOOLBOXES:
        raise ValueError(f'config default_scope {scope!r} is not one mkey-det runs (accepted: {", ".join(TOOLBOXES)})')
    return scope


def build_config_backbone(cfg):
    """Builds ``cfg.model.backbone`` with the registry of the config's toolbox (a type may name
    another scope, e.g. ``mmdet.SwinTransformerMKey`` inside an mmpretrain config)."""
    import importlib

    toolbox = config_toolbox(cfg)
    importlib.import_module(f'{toolbox}.utils').register_all_modules()
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    return registry.build(cfg.model.backbone.copy())


def preflight(config_path: str, gpus: int = 0) -> dict[str, Any]:
    """Loads the config with mmengine, builds its backbone and reports what the launch needs.

    Raises ValueError (from the backbone) for invalid backbone arguments and RuntimeError when
    ``gpus`` asks for more CUDA devices than are visible.
    """
    import torch
    from mmengine.config import Config

    cuda = cuda_device_count()
    amp_dtypes = (['fp16', 'bf16'] if torch.cuda.is_bf16_supported() else ['fp16']) if cuda else []
    if gpus > cuda:
        raise RuntimeError(f'--gpus {gpus} needs {gpus} CUDA device(s); this machine has {cuda}')
    cfg = Config.fromfile(config_path)
    backbone = build_config_backbone(cfg)
    if cfg.model.backbone.get('init_cfg'):
        # --pretrained: load it now (strictly, see load_pretrained), so that a checkpoint that does
        # not fit is refused before the run writes anything, not minutes later inside training.
        backbone.init_weights()
    return {
        'backbone_type': cfg.model.backbone.type,
        'key_type': cfg.model.backbone.get('key_type', 'linear'),
        'num_charts': cfg.model.backbone.get('num_charts'),
        'backbone_params': int(sum(p.numel() for p in backbone.parameters())),
        'cuda_devices': cuda,
        'amp_dtypes': amp_dtypes,
        'toolbox': config_toolbox(cfg),
        'tools_dir': tools_dir(config_toolbox(cfg)),
        'max_epochs': cfg.train_cfg.get('max_epochs'),
        'max_iters': cfg.train_cfg.get('max_iters'),
    }


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def load_config_summary(config_path: str) -> dict[str, Any]:
    """Loads a config with mmengine's ``Config.fromfile`` and returns the fields tests and reports read."""
    from mmengine.config import Config

    cfg = Config.fromfile(config_path)
    train_ds = cfg.train_dataloader.dataset
    return {
        'data_root': cfg.get('data_root'),
        'train_data_root': train_ds.get('data_root'),
        'train_ann_file': train_ds.get('ann_file'),
        'train_img': train_ds.get('data_prefix', {}).get('img'),
        'val_ann_file': cfg.val_evaluator.get('ann_file'),
        'classes': list(train_ds.get('metainfo', {}).get('classes', []) or []),
        'backbone': dict(cfg.model.backbone),
        'num_classes': cfg.model.roi_head.bbox_head.num_classes,
        'mkey_experiment': dict(cfg.get('mkey_experiment') or {}),
        'train_cfg': dict(cfg.train_cfg),
        'param_scheduler': [dict(s) for s in cfg.param_scheduler],
        'optimizer': dict(cfg.optim_wrapper.optimizer),
        'optim_wrapper': {k: v for k, v in cfg.optim_wrapper.items()
                          if isinstance(v, (str, int, float, bool)) or v is None},
        'custom_imports': dict(cfg.get('custom_imports') or {}),
    }


def _variant_of(cfg_text: str) -> str:
    """'spatialk, 8 charts' from a config's text (a checkpoint's ``meta.cfg``); '?' when unknown."""
    import re

    key = re.search(r"key_type\s*=\s*'(\w+)'", cfg_text or '')
    charts = re.search(r'num_charts\s*=\s*(\d+)', cfg_text or '')
    if not key:
        return 'linear (stock Swin-T)' if 'SwinTransformer' in (cfg_text or '') else '?'
    return key.group(1) + (f', {charts.group(1)} charts' if charts and key.group(1) != 'linear' else '')


def _load_error(path: str, exc: BaseException) -> str:
    """What a checkpoint file is, in one line, from torch's load error (never torch's advice to
    turn the safe loader off: a checkpoint that needs it could run code)."""
    import re

    text = str(exc)
    name = os.path.basename(path)
    glob = re.search(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)', text)
    if glob:
        return (f'checkpoint {name} holds a pickled object the safe loader refuses ({glob.group(1)}): '
                'not loaded, since loading it could run code')
    if 'central directory' in text or 'zip archive' in text or isinstance(exc, EOFError) or 'Ran out of input' in text:
        return f'checkpoint {name} is not a complete PyTorch checkpoint (truncated, or not a checkpoint file)'
    if 'invalid load key' in text or 'UnpicklingError' in type(exc).__name__ or isinstance(exc, KeyError):
        return f'checkpoint {name} is not a PyTorch checkpoint'
    return f'checkpoint {name} cannot be read: {type(exc).__name__}: {text.splitlines()[0] if text else ""}'


def check_checkpoint(config_path: str, checkpoint_path: str) -> dict[str, Any]:
    """Checks that a checkpoint's weights fit the model a config builds, key for key and shape for
    shape, before an evaluation loads it (MMDetection's tools/test.py loads non-strictly and would
    report AP of randomly initialised layers). Raises ValueError with one line naming the first
    missing, unexpected or mis-shaped keys and both variants.

    Returns ``dict(tensors=N)`` when everything fits.
    """
    import torch
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mkey_det  # noqa: F401  (registers the backbones; allow-lists mmengine's checkpoint classes)

    if not os.path.isfile(checkpoint_path):
        raise ValueError(f'checkpoint {checkpoint_path} is not a regular file')
    register_all_modules()
    cfg = Config.fromfile(config_path)
    model_cfg = cfg.model.copy()
    model_cfg.backbone['init_cfg'] = None
    expected = MODELS.build(model_cfg).state_dict()
    try:
        ckpt = torch.load(checkpoint_path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - turned into one line
        raise ValueError(_load_error(checkpoint_path, exc)) from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'checkpoint {os.path.basename(checkpoint_path)} holds no state dict of tensors')
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        meta_cfg = (ckpt.get('meta') or {}).get('cfg', '') if isinstance(ckpt, dict) else ''
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing (first: {", ".join(missing[:3])})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected (first: {", ".join(unexpected[:3])})')
        if shapes:
            k = shapes[0]
            parts.append(f'{len(shapes)} of another shape (first: {k} {list(state[k].shape)} '
                         f'vs {list(expected[k].shape)})')
        raise ValueError(
            f'checkpoint {os.path.basename(checkpoint_path)} does not fit the config\'s model '
            f'(config: {_variant_of(cfg.pretty_text)}; checkpoint: {_variant_of(meta_cfg)}): '
            + '; '.join(parts))
    return {'tensors': len(expected)}


def latest_checkpoint(run_dir: str) -> str:
    """The checkpoint ``last_checkpoint`` names in a run directory, else its highest ``*.pth``."""
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


def resolve_run(path: str) -> dict[str, Optional[str]]:
    """``{config, checkpoint}`` of a run directory (its ``config.py`` and last checkpoint) or of
    a checkpoint file (the ``config.py`` next to it, None when there is none)."""
    if os.path.isdir(path):
        config = os.path.join(path, 'config.py')
        if not os.path.isfile(config):
            raise ValueError(f'{path} has no config.py: not a run directory of mkey-det train')
        return dict(config=config, checkpoint=os.path.abspath(latest_checkpoint(path)))
    config = os.path.join(os.path.dirname(os.path.abspath(path)), 'config.py')
    return dict(config=config if os.path.isfile(config) else None, checkpoint=os.path.abspath(path))


def amp_optim_wrapper(amp: str) -> dict[str, Any]:
    """``--amp fp16|bf16``: the ``optim_wrapper`` fields of mixed precision, what MMDetection's
    ``tools/train.py --amp`` sets, with the dtype chosen (bf16 needs no loss scaling; KeyError for
    another value). The one place of this choice on the Python side, for a user's config
    (:func:`user_config_text`); a config mkey-det generates gets the same fields from the TS renderer,
    ``ampOptimWrapper`` in src/core/config/render.ts: change both together."""
    fields: dict[str, Any] = {'type': 'AmpOptimWrapper', 'dtype': {'fp16': 'float16', 'bf16': 'bfloat16'}[amp]}
    if amp == 'fp16':
        fields['loss_scale'] = 'dynamic'
    return fields


def base_config_values(base: str, paths: list[str]) -> dict[str, Any]:
    """The values at the dotted ``paths`` of the config ``_base_ = base`` as mmengine loads it
    (every ``_base_`` merged, variables resolved): what a generated config writes whole when a
    ``--cfg-options`` key indexes into a list it inherits (``train_dataloader.dataset.pipeline.2.scale``),
    so the item changes as ``tools/train.py`` would change it. Tuples come back as
    ``{'__tuple__': [...]}`` (written back as tuples), dicts as plain dicts.

    ``base`` is a config reference such as ``'mmdet::swin/...py'``; ValueError names a path the
    base config does not have.
    """
    import tempfile

    from mmengine.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        holder = os.path.join(tmp, 'inherit.py')
        with open(holder, 'w', encoding='utf-8') as f:
            f.write(f'_base_ = {base!r}\n')
        cfg = Config.fromfile(holder)

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return {'__tuple__': [plain(x) for x in v]}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    tree = cfg.to_dict()  # plain dicts all the way down; tuples stay tuples
    out: dict[str, Any] = {}
    for path in paths:
        cur: Any = tree
        parts = path.split('.')
        for i, part in enumerate(parts):
            where = '.'.join(parts[:i]) or 'the top level'
            if isinstance(cur, (list, tuple)):
                if not part.isdigit() or int(part) >= len(cur):
                    raise ValueError(f'--cfg-options {path}: "{part}" is not an index of {where} in the base config '
                                     f'(a list of {len(cur)} items)')
                cur = cur[int(part)]
            elif isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                raise ValueError(f'--cfg-options {path}: the base config has no "{part}" under {where}')
        out[path] = plain(cur)
    return out


def user_config_text(config_path: str, cfg_options: list[str] | None = None,
                     key_type: str | None = None, num_charts: int | None = None,
                     amp: str | None = None, tensorboard: bool = False,
                     attn_impl: str | None = None, key_order: str | None = None,
                     tf32: bool = False, generator: str = 'mkey-det') -> dict[str, Any]:
    """``mkey-det train --config FILE``: the user's config (MMDetection's or mmpretrain's, edited
    or generated) made into a self-contained run config, returned as text.

    The file is read with ``Config.fromfile`` (its ``_base_`` files merged, so the run does not
    depend on them later), then: ``--cfg-options`` merged exactly as ``tools/train.py`` does
    (mmengine's ``DictAction``), ``mkey_det`` added to ``custom_imports``, the progress hook added
    to ``custom_hooks`` (the events the CLI watches), and the options the CLI applies on top: a
    manifold key (``key_type``/``num_charts``, Swin backbones only), the window attention
    (``attn_impl``, Swin backbones only), the key order (``key_order``, a manifold-key backbone),
    AMP as ``tools/train.py --amp`` sets it, TF32 (``MkeyTF32Hook``), TensorBoard.
    ``mkey_experiment`` records where it came from.
    """
    import argparse

    from mmengine.config import Config, DictAction

    if not os.path.isfile(config_path):
        raise ValueError(f'--config {config_path}: not a file')
    try:
        cfg = Config.fromfile(config_path)
    except Exception as exc:  # noqa: BLE001 - one line for the CLI
        raise ValueError(f'--config {config_path} does not load with mmengine: '
                         f'{type(exc).__name__}: {exc}'.splitlines()[0]) from None
    if 'model' not in cfg or 'train_dataloader' not in cfg:
        raise ValueError(f'--config {config_path} is not a training config (no model or '
                         'train_dataloader)')
    toolbox = config_toolbox(cfg)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--cfg-options', *cfg_options]).cfg_options)

    imports = cfg.get('custom_imports') or {}
    names = list(imports.get('imports', []) if isinstance(imports, dict) else [])
    if isinstance(names, str):
        names = [names]
    cfg.custom_imports = dict(imports=['mkey_det'] + [n for n in names if n != 'mkey_det'],
                              allow_failed_imports=False)
    scope = '' if toolbox == 'mmdet' else 'mmdet.'
    ours = ('MkeyProgressHook', 'MkeyTF32Hook')
    hooks = [h for h in (cfg.get('custom_hooks') or [])
             if str(h.get('type', '')).split('.')[-1] not in ours]
    cfg.custom_hooks = (([dict(type=f'{scope}MkeyTF32Hook')] if tf32 else []) + hooks
                        + [dict(type=f'{scope}MkeyProgressHook', interval=20)])

    backbone = cfg.model.get('backbone') or {}
    kind = str(backbone.get('type', '')).split('.')[-1]
    if key_type is not None or num_charts is not None or attn_impl is not None:
        if kind not in ('SwinTransformer', 'SwinTransformerMKey'):
            raise ValueError(f'--backbone/--charts/--attn-impl apply to a Swin backbone; the '
                             f'backbone of {os.path.basename(config_path)} is '
                             f'{backbone.get("type")!r}')
        backbone.type = f'{scope}SwinTransformerMKey'
        kind = 'SwinTransformerMKey'
        if key_type is not None:
            backbone.key_type = key_type
        if num_charts is not None:
            backbone.num_charts = num_charts
        if attn_impl is not None:
            backbone.attn_impl = attn_impl
    if key_order is not None:
        if kind not in ('SwinTransformerMKey', 'VisionTransformerMKey'):
            raise ValueError(f'--key-order applies to a manifold-key backbone (SwinTransformerMKey, '
                             f'VisionTransformerMKey); the backbone of '
                             f'{os.path.basename(config_path)} is {backbone.get("type")!r}')
        backbone.key_order = key_order
    if amp:
        # set on the config's own optim_wrapper (its optimizer and other fields stay)
        wrapper = cfg.optim_wrapper
        for key, value in amp_optim_wrapper(amp).items():
            wrapper[key] = value
    if tensorboard:
        cfg.visualizer = dict(cfg.get('visualizer') or {}, vis_backends=[
            dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
    cfg.mkey_experiment = dict(
        cfg.get('mkey_experiment') or {}, source='config', config=os.path.abspath(config_path),
        key_type=backbone.get('key_type', 'linear'), charts=backbone.get('num_charts'),
        generator=generator)
    header = (f'# Run config written by mkey-det from {os.path.abspath(config_path)} '
              '(its _base_ files merged in).\n')
    return {'text': header + cfg.pretty_text, 'toolbox': toolbox,
            'backbone_type': backbone.get('type'), 'key_type': backbone.get('key_type', 'linear'),
            'num_charts': backbone.get('num_charts')}
