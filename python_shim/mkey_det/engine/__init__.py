"""Training-time pieces for MMDetection: the progress hook, the TF32 hook (``--tf32``), and bf16
AMP support for mmcv ops."""
from .bf16_mmcv_ops import allow_bf16_mmcv_ops
from .progress_hook import MkeyProgressHook
from .tf32_hook import MkeyTF32Hook, enable_tf32

__all__ = ['MkeyProgressHook', 'MkeyTF32Hook', 'allow_bf16_mmcv_ops', 'enable_tf32']
