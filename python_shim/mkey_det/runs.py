"""Short checks the Node CLI runs through the bridge before it launches a training or test process."""
from __future__ import annotations

import os
from typing import Any


def mmdet_tools_dir() -> str:
    """MMDetection's own ``tools/`` folder as shipped inside the mmdet package (``mmdet/.mim/tools``)."""
    import importlib.util

    spec = importlib.util.find_spec('mmdet')
    if spec is None or spec.origin is None:
        raise ImportError('mmdet is not installed')
    path = os.path.join(os.path.dirname(spec.origin), '.mim', 'tools')
    if not os.path.isfile(os.path.join(path, 'train.py')):
        raise FileNotFoundError(f'MMDetection tools not found at {path}')
    return path


def preflight(config_path: str, gpus: int = 0) -> dict[str, Any]:
    """Loads the config with mmengine, builds its backbone and reports what the launch needs.

    Raises ValueError (from the backbone) for invalid backbone arguments and RuntimeError when
    ``gpus`` asks for more CUDA devices than are visible.
    """
    import torch
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    amp_dtypes = (['fp16', 'bf16'] if torch.cuda.is_bf16_supported() else ['fp16']) if cuda else []
    if gpus > cuda:
        raise RuntimeError(f'--gpus {gpus} needs {gpus} CUDA device(s); this machine has {cuda}')
    cfg = Config.fromfile(config_path)
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg['init_cfg'] = None  # building only: do not read the checkpoint here
    backbone = MODELS.build(backbone_cfg)
    return {
        'backbone_type': cfg.model.backbone.type,
        'key_type': cfg.model.backbone.get('key_type', 'linear'),
        'num_charts': cfg.model.backbone.get('num_charts'),
        'backbone_params': int(sum(p.numel() for p in backbone.parameters())),
        'cuda_devices': cuda,
        'amp_dtypes': amp_dtypes,
        'tools_dir': mmdet_tools_dir(),
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
