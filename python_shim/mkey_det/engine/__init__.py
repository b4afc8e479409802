"""Training-time pieces for MMDetection: the progress hook, and bf16 AMP support for mmcv ops."""
from .bf16_mmcv_ops import allow_bf16_mmcv_ops
from .progress_hook import MkeyProgressHook

__all__ = ['MkeyProgressHook', 'allow_bf16_mmcv_ops']
