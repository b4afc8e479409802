"""One variant of the ``train`` suite, in its own process.

    python -m mkey_det.bench.train_worker --config F [--batch-sizes 2[,8]] [--size 512]
        [--precisions fp32[,fp16,bf16]] [--warmup 1] [--steps 3] [--device cpu|cuda] [--seed 0]
        [--flops none|backbone|detector]

Builds Mask R-CNN + FPN from the (mkey-det generated) MMDetection config ``F`` (its ``model`` and
``optim_wrapper``; the dataset part is not read), makes synthetic batches of ``batch`` images of
``size x size`` with three painted objects each (boxes, labels, bitmap masks), and runs
``warmup + steps`` full training steps through mmengine's ``model.train_step`` (data
preprocessor, forward with losses, backward, gradient clipping if configured, optimizer step)
for every (batch size, precision) pair, in that order.

Precision ``fp16``/``bf16`` builds the optimizer wrapper as MMDetection's ``tools/train.py --amp``
(and ``mkey-det train --amp``) does: ``optim_wrapper.type='AmpOptimWrapper'`` with ``dtype``
``float16`` (``loss_scale='dynamic'``) or ``bfloat16``, i.e. autocast around the forward and a
loss scaler around backward and step. It needs CUDA (mmengine refuses it on the CPU).

Every pair starts from the same weights (the model's state after ``init_weights``, restored) with
a fresh optimizer wrapper. On CUDA, the peak memory of a pair is ``torch.cuda.max_memory_allocated``
(reset before the pair; the caching allocator's reserved peak is reported too). On the CPU the only
peak is the process's ``ru_maxrss`` (imports and model included), so the suite runs one pair per
process there. A CUDA out-of-memory error fails that pair only: its line has
``error: "CUDA out of memory"`` and the next pair runs.

Prints one JSON line per pair (``{"kind": "row", ...}``: step times, peak memory, losses), then
``{"kind": "flops", ...}`` (after the peaks were read): FLOPs of the backbone alone at
``size x size`` (order as built, and the paper order), counted on a CPU copy of the backbone, and,
with ``--flops detector`` on the CPU, the whole detector's forward in inference mode
(``_forward``: backbone, neck, RPN, RoI heads on the RPN's proposals), each for one image; and
(``step``) one whole fp32 training step at the first batch size, forward and backward
(:func:`step_flops`).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import sys
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from mkey_det.utils import silence_mmengine


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
        boxes = torch.tensor([[40, 60, 260, 300], [280 + 10 * (i % 16), 80, 480, 420],
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


PRECISIONS = ('fp32', 'fp16', 'bf16')
OOM_MESSAGE = 'CUDA out of memory'


def amp_optim_wrapper_cfg(optim_cfg, precision: str):
    """``optim_wrapper`` config for ``precision``: unchanged for fp32; for fp16/bf16 what
    MMDetection's ``tools/train.py --amp`` and ``mkey-det config --amp`` set (``AmpOptimWrapper``,
    ``dtype``; fp16 with ``loss_scale='dynamic'``, bf16 with mmengine's default scaler)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    cfg = copy.deepcopy(optim_cfg)
    if precision == 'fp32':
        return cfg
    from mkey_det.cli.runs import amp_optim_wrapper  # the one Python home of the --amp rule
    cfg.update(amp_optim_wrapper(precision))
    return cfg


def amp_dtype(precision: str) -> Optional[str]:
    """The ``AmpOptimWrapper`` dtype of ``precision`` (``'float16'``, ``'bfloat16'``), None for fp32."""
    return amp_optim_wrapper_cfg({}, precision).get('dtype')


def is_oom(exc: BaseException) -> bool:
    """A CUDA allocation failure (torch's OutOfMemoryError, or cuDNN/cuBLAS failing to allocate
    their workspace)."""
    oom_types = tuple(t for t in (getattr(torch, 'OutOfMemoryError', None),
                                  getattr(torch.cuda, 'OutOfMemoryError', None)) if t)
    if oom_types and isinstance(exc, oom_types):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ('out of memory' in text.lower()
                                              or 'ALLOC_FAILED' in text)


def step_error(exc: BaseException) -> str:
    """The row's ``error`` for a failed step (:data:`OOM_MESSAGE` for CUDA out of memory, else
    the exception's first line); the traceback goes to the worker's log (stderr)."""
    import traceback
    traceback.print_exc(file=sys.stderr)
    if is_oom(exc):
        return OOM_MESSAGE
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
    return f'{type(exc).__name__}: {first}'[:500]


def line_writer(out):
    """``emit(obj)``: one protocol line (JSON, NaN/inf as null) on ``out``, flushed."""
    def emit(obj: Dict[str, Any]) -> None:
        from mkey_det.bench.common import json_safe
        out.write(json.dumps(json_safe(obj), allow_nan=False) + '\n')
        out.flush()
    return emit


def parse_list(text: str, kind=str) -> List[Any]:
    return [kind(v.strip()) for v in str(text).split(',') if v.strip()]


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def run_pair(model, optim_cfg, init_state, batch: int, precision: str, args, num_classes: int,
             device: torch.device) -> Dict[str, Any]:
    """Warm-up and timed steps of one (batch, precision) pair; the row's numbers."""
    from mmengine.optim import build_optim_wrapper
    from mkey_det.bench.common import current_rss_mib, max_rss_mib, stats, synchronize
    model.load_state_dict(init_state)
    model.zero_grad(set_to_none=True)
    model.train()
    _free(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        mem_before = torch.cuda.memory_allocated(device)
    row: Dict[str, Any] = dict(batch=batch, precision=precision, size=args.size,
                               warmup=args.warmup, steps=args.steps)
    times: List[float] = []
    warm: List[float] = []
    losses: List[float] = []
    error: Optional[str] = None
    optim_wrapper = None
    batches: List[Dict[str, Any]] = []
    rss_before = current_rss_mib()
    try:
        optim_wrapper = build_optim_wrapper(model, amp_optim_wrapper_cfg(optim_cfg, precision))
        # synthetic batches made before the clock runs (CPU tensors, as a data loader gives them;
        # the data preprocessor moves them to the device inside the step, as in training)
        batches = [make_batch(batch, args.size, num_classes, seed=args.seed + i)
                   for i in range(min(args.warmup + args.steps, 4))]
        rss_before = current_rss_mib()
        for i in range(args.warmup + args.steps):
            data = batches[i % len(batches)]
            synchronize(device)
            t0 = time.perf_counter()
            log_vars = model.train_step(data, optim_wrapper)
            synchronize(device)
            dt = time.perf_counter() - t0
            loss = float(log_vars['loss'])  # a CUDA scalar: .item() after the clock stopped
            del log_vars
            losses.append(loss)
            (times if i >= args.warmup else warm).append(dt)
            print(f'b{batch} {precision} step {i + 1}/{args.warmup + args.steps}: {dt:.3f} s, '
                  f'loss {loss:.4f}', file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - one failed pair must not end the others
        error = step_error(exc)
    row.update(optim_wrapper=type(optim_wrapper).__name__ if optim_wrapper is not None else None,
               amp_dtype=amp_dtype(precision),
               optimizer=(type(optim_wrapper.optimizer).__name__
                          if optim_wrapper is not None else None))
    if device.type == 'cuda':
        synchronize(device)
        row.update(cuda_peak_allocated_mib=torch.cuda.max_memory_allocated(device) / 2**20,
                   cuda_peak_reserved_mib=torch.cuda.max_memory_reserved(device) / 2**20,
                   cuda_allocated_before_mib=mem_before / 2**20)
    peak = max_rss_mib()
    row.update(rss_before_steps_mib=rss_before, peak_rss_mib=peak,
               train_rss_increase_mib=(peak - rss_before) if rss_before is not None else None)
    if error is not None:
        row.update(error=error, steps_done=len(warm) + len(times), losses=losses)
    else:
        st = stats(times)
        row.update(step_s=st, warmup_s=warm, losses=losses,
                   losses_finite=all(math.isfinite(v) for v in losses),
                   images_per_s=batch / st['median'] if st['median'] else None)
    del optim_wrapper, batches
    model.zero_grad(set_to_none=True)
    _free(device)
    return row


def seed_everything(seed: int) -> None:
    """The random generators a training step draws from (torch, numpy, random): seeded before
    every timed step (train_interleaved) and before the counted one (:func:`step_flops`)."""
    import random
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_flops(model, optim_cfg, init_state, batch: int, size: int, num_classes: int,
               device: torch.device, seed: int = 0) -> Dict[str, Any]:
    """FLOPs of one whole training step, fp32, at ``batch`` (``{batch, flops}``): forward with
    losses and backward, as the suite times it (same initial weights, batch and seed), counted
    by torch's ``FlopCounterMode`` (matrix products, convolutions, attention: 2 per
    multiply-add; elementwise ops, RoIAlign and NMS count 0). Unlike the FLOPs above (one image,
    inference forward) this is the work of the step that is timed, so the step-time ratio can
    be held against it."""
    from mmengine.optim import build_optim_wrapper
    from torch.utils.flop_counter import FlopCounterMode
    try:
        model.load_state_dict(init_state)
        model.train()
        wrapper = build_optim_wrapper(model, optim_cfg)
        data = make_batch(batch, size, num_classes, seed=seed)
        seed_everything(seed)  # the RoI sampler's draws, as in the timed steps
        counter = FlopCounterMode(display=False)
        with counter:
            model.train_step(data, wrapper)
        return dict(batch=batch, flops=int(counter.get_total_flops()))
    except Exception as exc:  # noqa: BLE001 - informative only
        first = str(exc).splitlines()[0] if str(exc) else ''
        return dict(unavailable=f'{type(exc).__name__}: {first}')
    finally:
        model.zero_grad(set_to_none=True)
        _free(device)


def backbone_flops(model, size: int) -> Dict[str, Any]:
    """fvcore FLOPs of the backbone at ``size x size`` (order as built, and the paper order),
    counted on a CPU copy: ``count_complexity`` feeds a CPU tensor, and the copy leaves the
    model (and the GPU's memory) alone."""
    from mkey_det.analysis import count_complexity
    from mkey_det.models.keys import set_key_order
    try:
        bb = copy.deepcopy(model.backbone).float().cpu().eval()
        with torch.no_grad():
            fast = count_complexity(bb, size, size)['flops']
            set_key_order(bb, 'paper')
            paper = count_complexity(bb, size, size)['flops']
        del bb
        return dict(backbone_train_order=int(fast), backbone_paper=int(paper))
    except Exception as exc:  # noqa: BLE001 - informative only
        first = str(exc).splitlines()[0] if str(exc) else ''
        return dict(unavailable=f'{type(exc).__name__}: {first}')


def build_detector(config: str, device: torch.device, seed: int = 0) -> Dict[str, Any]:
    """Mask R-CNN + FPN from the (mkey-det generated) config ``config`` on ``device``, with random
    weights (nothing is downloaded; random weights time the same). Returns ``model``,
    ``init_state`` (a CPU copy of the weights after ``init_weights``: every timed pair starts
    from it), ``optim_cfg`` (the config's ``optim_wrapper``), ``num_classes`` and ``common`` (the
    row fields that describe the model: key type, charts, parameters, threads, device)."""
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import mkey_det  # noqa: F401  (registers SwinTransformerMKey)

    warnings.filterwarnings('ignore')
    register_all_modules()
    silence_mmengine()  # mmengine logs every parameter's init at INFO; the workers keep errors only
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    # what mmengine's Runner applies from the config (mmdet's default: cudnn_benchmark=False)
    torch.backends.cudnn.benchmark = bool((cfg.get('env_cfg') or {}).get('cudnn_benchmark', False))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()  # mmengine's BaseModel.to also moves its data preprocessor
    # a CPU copy: it must not count as GPU memory
    init_state = {k: v.detach().to('cpu', copy=True) for k, v in model.state_dict().items()}
    optim_cfg = cfg.optim_wrapper.to_dict() if hasattr(cfg.optim_wrapper, 'to_dict') \
        else dict(cfg.optim_wrapper)
    common = dict(config=config, key_type=cfg.model.backbone.get('key_type', 'linear'),
                  charts=cfg.model.backbone.get('num_charts'),
                  attn_impl=cfg.model.backbone.get('attn_impl', 'eager'),
                  key_order=cfg.model.backbone.get('key_order'),
                  params=int(sum(p.numel() for p in model.parameters())),
                  backbone_params=int(sum(p.numel() for p in model.backbone.parameters())),
                  threads=torch.get_num_threads(), device=str(device),
                  cudnn_benchmark=torch.backends.cudnn.benchmark)
    return dict(model=model, init_state=init_state, optim_cfg=optim_cfg,
                num_classes=_num_classes(cfg), common=common)


def cuda_device(device: torch.device) -> torch.device:
    """``device`` with an explicit index on CUDA (the memory statistics and synchronisation
    name this device)."""
    if device.type == 'cuda' and device.index is None:
        return torch.device('cuda', torch.cuda.current_device())
    return device


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', required=True)
    p.add_argument('--batch-sizes', '--batch', dest='batch_sizes', default='2',
                   help='comma list of batch sizes (run in this order)')
    p.add_argument('--precisions', default='fp32', help='comma list of fp32, fp16, bf16')
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--flops', choices=('none', 'backbone', 'detector'), default='backbone',
                   help='count FLOPs after timing: none, the backbone, or backbone + detector '
                        '(the detector only on the CPU)')
    args = p.parse_args(argv)
    batch_sizes = parse_list(args.batch_sizes, int)
    precisions = parse_list(args.precisions)
    bad = [v for v in precisions if v not in PRECISIONS]
    if bad or not precisions or not batch_sizes or min(batch_sizes) < 1:
        p.error(f'bad --batch-sizes {args.batch_sizes!r} or --precisions {args.precisions!r}')
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # library prints must not reach the protocol lines
        return _run(args, batch_sizes, precisions, out)


def _run(args, batch_sizes: List[int], precisions: List[str], out) -> int:
    emit = line_writer(out)
    device = cuda_device(torch.device(args.device))
    built = build_detector(args.config, device, args.seed)
    model, init_state, optim_cfg, num_classes = (built['model'], built['init_state'],
                                                 built['optim_cfg'], built['num_classes'])
    common = built['common']
    for batch in batch_sizes:
        for precision in precisions:
            row = run_pair(model, optim_cfg, init_state, batch, precision, args, num_classes,
                           device)
            emit(dict(common, kind='row', **row))
    if args.flops != 'none':
        flops = backbone_flops(model, args.size)
        flops['step'] = step_flops(model, optim_cfg, init_state, batch_sizes[0], args.size,
                                   num_classes, device, args.seed)
        if args.flops == 'detector':
            if device.type == 'cpu':
                flops['detector'] = _detector_flops(model, args.size, num_classes, device)
            else:
                flops['detector'] = dict(unavailable='not counted on CUDA (the CPU suite counts it)')
        emit(dict(kind='flops', flops=flops))
    return 0


if __name__ == '__main__':
    sys.exit(main())
