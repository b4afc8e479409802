"""``MkeyTF32Hook`` (``--tf32``): float32 matmuls and convolutions on TF32 tensor cores.

Ampere and newer GPUs can run float32 matrix products on tensor cores in TF32 (10-bit mantissa
inputs, float32 accumulation). torch's defaults: convolutions may (``cudnn.allow_tf32 = True``),
matmuls may not (``cuda.matmul.allow_tf32 = False``). The hook sets both to True before the run
(every rank; training, validation and testing of that process), the documented trade of a few
bits of input precision for matmul throughput, on a float32 run (it changes nothing inside AMP's
fp16 / bf16 regions). Without a CUDA device it changes nothing and says so in the log.
"""
from __future__ import annotations

from typing import Dict

import torch
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


def enable_tf32() -> Dict[str, bool]:
    """Allow TF32 in CUDA matmuls and cuDNN convolutions; returns the flags as now set (empty
    without a CUDA device: nothing is changed there)."""
    if not torch.cuda.is_available():
        return {}
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return {'cuda.matmul.allow_tf32': torch.backends.cuda.matmul.allow_tf32,
            'cudnn.allow_tf32': torch.backends.cudnn.allow_tf32}


@HOOKS.register_module()
class MkeyTF32Hook(Hook):
    """Calls :func:`enable_tf32` in ``before_run`` and logs what it did."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        flags = enable_tf32()
        if flags:
            runner.logger.info('TF32 enabled: ' + ', '.join(
                f'torch.backends.{k} = {v}' for k, v in flags.items()))
        else:
            runner.logger.info('TF32 requested, but this process has no CUDA device: nothing '
                               'changed (TF32 is a GPU tensor-core mode)')
