"""One variant of the ``train`` suite, in its own process (so ``ru_maxrss`` is this variant's).

    python -m mkey_det.bench.train_worker --config F [--batch 2] [--size 512] [--warmup 1]
        [--steps 3] [--device cpu] [--seed 0] [--flops none|backbone|detector]

Builds Mask R-CNN + FPN from the (mkey-det generated) MMDetection config ``F`` (its ``model`` and
``optim_wrapper``; the dataset part is not read), makes a synthetic batch of ``batch`` images of
``size x size`` with three painted objects each (boxes, labels, bitmap masks), and runs
``warmup + steps`` full training steps through mmengine's ``model.train_step`` (data
preprocessor, forward with losses, backward, gradient clipping if configured, optimizer step).

Prints one JSON line: step times, peak RSS (``ru_maxrss``: the whole process's high-water mark,
imports and model included) and the RSS before the first step, then (after the peak was read)
FLOPs: the backbone alone at ``size x size`` (order as built, and the paper order) and the whole
detector's forward in inference mode (``_forward``: backbone, neck, RPN, RoI heads on the RPN's
proposals), each for one image.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from typing import Any, Dict, List

import numpy as np
import torch


def make_batch(n: int, size: int, num_classes: int, seed: int = 0) -> Dict[str, Any]:
    """``n`` synthetic ``size x size`` images, three painted rectangles each, with boxes, labels
    and bitmap masks (as ``PackDetInputs`` would give them)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(n):
        img = torch.randint(0, 80, (3, size, size), dtype=torch.uint8, generator=g)
        s = size / 512
        boxes = torch.tensor([[40, 60, 260, 300], [280 + 10 * i, 80, 480, 420],
                              [100, 340, 240, 500]], dtype=torch.float32) * s
        masks = np.zeros((3, size, size), dtype=np.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[j, y1:y2, x1:x2] = 1
            img[j % 3, y1:y2, x1:x2] = 200 + 20 * j
        sample = DetDataSample(metainfo=dict(img_id=i, img_shape=(size, size),
                                             ori_shape=(size, size), scale_factor=(1.0, 1.0)))
        labels = torch.tensor([1, 7, 15]) % max(num_classes, 1)
        sample.gt_instances = InstanceData(bboxes=boxes, labels=labels,
                                           masks=BitmapMasks(masks, size, size))
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _num_classes(cfg) -> int:
    try:
        return int(cfg.model.roi_head.bbox_head.num_classes)
    except AttributeError:
        return 80


def _detector_flops(model, size: int, num_classes: int, device) -> Dict[str, Any]:
    """fvcore FLOPs of the detector's inference forward on one image (``_forward``)."""
    try:
        from mmengine.analysis import FlopAnalyzer
        model.eval()
        data = model.data_preprocessor(make_batch(1, size, num_classes, seed=99), False)

        class _Wrap(torch.nn.Module):
            def __init__(self, m, samples):
                super().__init__()
                self.m, self.samples = m, samples

            def forward(self, x):
                return self.m._forward(x, self.samples)

        with torch.no_grad():
            an = FlopAnalyzer(_Wrap(model, data['data_samples']), (data['inputs'], ))
            an.unsupported_ops_warnings(False)
            an.uncalled_modules_warnings(False)
            total = int(an.total())
            by_module = an.by_module()
            backbone = int(by_module.get('m.backbone', 0))
        return dict(total=total, backbone=backbone, rest=total - backbone)
    except Exception as exc:  # noqa: BLE001 - informative only
        first = str(exc).splitlines()[0] if str(exc) else ''
        return dict(unavailable=f'{type(exc).__name__}: {first}')


def _quiet_mmengine() -> None:
    """mmengine logs every parameter's init and paramwise option at INFO: keep errors only."""
    import logging
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine', log_level='ERROR').setLevel(logging.ERROR)
    logging.getLogger('mmengine').setLevel(logging.ERROR)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', required=True)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--flops', choices=('none', 'backbone', 'detector'), default='backbone',
                   help='count FLOPs after timing: none, the backbone, or backbone + detector')
    args = p.parse_args(argv)
    out = sys.stdout
    sys.stdout = sys.stderr  # library prints must not reach the protocol line
    warnings.filterwarnings('ignore')

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import mkey_det  # noqa: F401  (registers SwinTransformerMKey)
    from mkey_det.analysis import count_complexity
    from mkey_det.bench.common import (current_rss_mib, json_safe, max_rss_mib, stats,
                                       synchronize)
    from mkey_det.models.keys import set_key_order

    register_all_modules()
    _quiet_mmengine()
    device = torch.device(args.device)
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.init_cfg = None  # nothing is downloaded; random weights time the same
    num_classes = _num_classes(cfg)
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    params = int(sum(p.numel() for p in model.parameters()))
    backbone_params = int(sum(p.numel() for p in model.backbone.parameters()))
    rss_before = current_rss_mib()
    times: List[float] = []
    warm: List[float] = []
    losses: List[float] = []
    for i in range(args.warmup + args.steps):
        batch = make_batch(args.batch, args.size, num_classes, seed=args.seed + i)
        synchronize(device)
        t0 = time.perf_counter()
        log_vars = model.train_step(batch, optim_wrapper)
        synchronize(device)
        dt = time.perf_counter() - t0
        loss = float(log_vars['loss'])
        losses.append(loss)
        (times if i >= args.warmup else warm).append(dt)
        print(f'step {i + 1}/{args.warmup + args.steps}: {dt:.2f} s, loss {loss:.4f}',
              file=sys.stderr)
    peak = max_rss_mib()
    result: Dict[str, Any] = dict(
        config=args.config, key_type=cfg.model.backbone.get('key_type', 'linear'),
        charts=cfg.model.backbone.get('num_charts'), batch=args.batch, size=args.size,
        warmup=args.warmup, steps=args.steps, step_s=stats(times), warmup_s=warm,
        losses=losses, losses_finite=all(math.isfinite(v) for v in losses), params=params,
        backbone_params=backbone_params, rss_before_steps_mib=rss_before, peak_rss_mib=peak,
        train_rss_increase_mib=(peak - rss_before) if rss_before is not None else None,
        threads=torch.get_num_threads(), device=str(device),
        optimizer=type(optim_wrapper.optimizer).__name__)
    if device.type == 'cuda':
        result['cuda_peak_allocated_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    if args.flops != 'none':
        bb = model.backbone.eval()
        with torch.no_grad():
            fast = count_complexity(bb, args.size, args.size)['flops']
            set_key_order(bb, 'paper')
            paper = count_complexity(bb, args.size, args.size)['flops']
            set_key_order(bb, 'fast')
        result['flops'] = dict(backbone_train_order=int(fast), backbone_paper=int(paper))
        if args.flops == 'detector':
            result['flops']['detector'] = _detector_flops(model, args.size, num_classes, device)
    out.write(json.dumps(json_safe(result), allow_nan=False) + '\n')
    out.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
