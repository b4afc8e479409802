"""``MkeyProgressHook``: rank 0 appends JSON-lines events to ``<work_dir>/mkey-events.jsonl``.

The Node CLI tails that file to draw progress and to report results; a file (not a pipe) is used
because it reaches torchrun's workers and survives the CLI. The format is documented in
docs/ARCHITECTURE.md. Non-finite losses stop training with ``FloatingPointError`` after an
``error`` event, so a diverged run never looks complete.
"""
from __future__ import annotations

import json
import math
import os
import resource
import signal
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from mmdet.registry import HOOKS

EVENTS_FILE = 'mkey-events.jsonl'


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


def _finite_or_none(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def remaining_evaluations(loop, epoch: int, it: int, has_val: bool = True) -> int:
    """Evaluations a train ``loop`` still runs during epoch ``epoch`` (0-based, in progress) after
    iteration ``it`` (1-based, done), the pending ones included. The loops' own rule: after
    ``k`` epochs (``EpochBasedTrainLoop``) or iterations (``IterBasedTrainLoop``), evaluate when
    ``k >= val_begin and (k % val_interval == 0 or k == max)``. 0 without a validation loop;
    mmengine's ``dynamic_intervals`` are not followed."""
    if not has_val:
        return 0
    begin, interval = int(getattr(loop, 'val_begin', 1)), int(getattr(loop, 'val_interval', 1))
    if isinstance(loop, IterBasedTrainLoop):
        first, last = it, int(loop.max_iters)
    else:
        first, last = epoch + 1, int(loop.max_epochs)
    return sum(1 for k in range(max(first, 1), last + 1) if k >= begin and (k % interval == 0 or k == last))


#: Where a backbone takes any input size (Swin-T: MMDetection's and the classifier's), its FLOPs
#: are counted on one image of Table 1's 224 x 224, so runs of every input size compare.
FLOPS_INPUT = (224, 224)


def flops_input_size(backbone) -> Tuple[int, int]:
    """``(height, width)`` the progress hook counts ``backbone``'s FLOPs at: the input size it was
    built for where it has one (mmpretrain's ``img_size``, kept by its patch embedding as
    ``init_input_size``: SwinV2-T 256, a ViT its ``img_size``, 224 or the demo's 64), else
    :data:`FLOPS_INPUT`. Such a backbone takes no other size: SwinV2's last stage at 224 px (7 x 7)
    is smaller than its window of 8, and a ViT's manifold key is built for its token count; Swin-T's
    patch embedding keeps no size (``None``) and takes any."""
    size = getattr(getattr(backbone, 'patch_embed', None), 'init_input_size', None)
    if size is None:
        return FLOPS_INPUT
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return int(h), int(w)


#: Before the first evaluation is timed, one is estimated as the val images times a third of a
#: training step's time per image (a forward without backward); replaced by the measured mean
#: as soon as one has run.
FORWARD_SHARE_OF_STEP = 1 / 3


@HOOKS.register_module()
class MkeyProgressHook(Hook):
    """Writes start / iter / val / checkpoint / end / error events (rank 0 only).

    Args:
        interval: write an ``iter`` event every ``interval`` iterations (and always the first).
        events_file: file name inside ``runner.work_dir``.
        count_flops: add the backbone's FLOPs to the ``start`` event (a few seconds on CPU), with
            the input size they were counted at (:func:`flops_input_size`: 224 x 224, or the size
            the backbone was built for: SwinV2-T 256, a ViT its ``img_size``).
    """

    priority = 'VERY_LOW'  # after the logger hook, so the message hub is updated

    def __init__(self, interval: int = 10, events_file: str = EVENTS_FILE, count_flops: bool = True) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'interval must be an integer >= 1, got {interval!r}')
        self.interval = interval
        self.events_file = events_file
        self.count_flops = count_flops
        self._times: deque[float] = deque(maxlen=50)
        self._last: Optional[float] = None
        self._path: Optional[str] = None
        self._stop_signal: Optional[int] = None
        self._checkpoint: Optional[str] = None  # what last_checkpoint named when last looked at
        self._val_times: list[float] = []  # seconds of each evaluation so far (for the ETA)
        self._val_start: Optional[float] = None

    # -- graceful stop -------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        if self._stop_signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _install_signal_handlers(self) -> None:
        # The first SIGINT/SIGTERM only sets a flag; training stops at the next iteration boundary,
        # so a checkpoint being written is never cut in half.
        try:
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
        except ValueError:  # not the main thread (e.g. inside a bridge call): keep the defaults
            pass

    def _agree_on_stop(self, runner) -> None:
        """All ranks take the stop together: the signal reaches each worker at its own moment, and
        a rank that stopped one iteration before the others would leave them waiting in a collective.
        One small all-reduce (max) at each training-iteration boundary, only in a multi-process run."""
        if int(runner.world_size) <= 1:
            return
        from mmengine.dist import all_reduce

        flag = torch.tensor([self._stop_signal or 0], dtype=torch.int64)
        all_reduce(flag, op='max')
        if flag.item() and self._stop_signal is None:
            self._stop_signal = int(flag.item())

    def _stop_if_asked(self, runner, agree: bool = False) -> None:
        if agree:
            self._agree_on_stop(runner)
        if self._stop_signal is None:
            return
        name = signal.Signals(self._stop_signal).name
        self._emit(runner, 'stopped', signal=name, iter=int(runner.iter), epoch=int(runner.epoch))
        raise KeyboardInterrupt(f'{name} received: stopped at iteration {int(runner.iter)}')

    # -- helpers -------------------------------------------------------------------------------
    def _emit(self, runner, event: str, **fields: Any) -> None:
        if runner.rank != 0:
            return
        if self._path is None:
            self._path = os.path.join(runner.work_dir, self.events_file)
        record = {'event': event, 'time': _now(), **fields}
        line = json.dumps(record, allow_nan=False, default=str)
        with open(self._path, 'a', encoding='utf-8') as f:
            f.write(line + '\n')
            f.flush()

    @staticmethod
    def _memory() -> dict:
        """Peak memory so far: the GPU's allocated peak on CUDA (what bounds the batch), else RSS."""
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return dict(memory_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1), memory_kind='cuda')
        return dict(memory_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    memory_kind='rss')

    @staticmethod
    def _device(runner) -> str:
        """Where the model's weights are (``cuda:0``, ``cpu``), not merely what torch could use."""
        try:
            return str(next(runner.model.parameters()).device)
        except (StopIteration, AttributeError):
            return 'cpu'

    @staticmethod
    def _amp_dtype(runner) -> Optional[str]:
        """``'float16'``/``'bfloat16'`` under mmengine's AmpOptimWrapper, else None (fp32)."""
        wrapper = getattr(runner, 'optim_wrapper', None)
        dtype = getattr(wrapper, 'cast_dtype', None)
        if type(wrapper).__name__ != 'AmpOptimWrapper':
            return None
        return str(dtype).replace('torch.', '') if dtype is not None else 'float16'

    def _backbone_stats(self, runner) -> dict:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        backbone = getattr(model, 'backbone', None)
        stats: dict = {}
        if backbone is None:
            return stats
        stats['backbone_params'] = int(sum(p.numel() for p in backbone.parameters()))
        cfg = getattr(backbone, 'mkey_cfg', None) or {}
        stats['backbone_type'] = type(backbone).__name__
        stats['key_type'] = getattr(backbone, 'key_type', cfg.get('key_type', 'linear'))
        stats['num_charts'] = getattr(backbone, 'num_charts', cfg.get('num_charts'))
        if self.count_flops:
            height, width = flops_input_size(backbone)
            stats['backbone_flops_input'] = [height, width]
            try:
                import copy

                from mkey_det.analysis import count_complexity, flops_memo
                from mkey_det.models.keys import set_key_order

                def count() -> int:
                    # A CPU copy in eval mode: counting must not touch the training model's state
                    # nor its GPU memory, and count_complexity feeds a CPU image (on CUDA the
                    # model's own weights would not match it). FLOPs are counted in the paper's
                    # computation order, as Table 1 counts them, and with the eager attention (the
                    # counter sees its matmuls; a fused kernel is one op it may not count).
                    counted = copy.deepcopy(backbone).cpu().float().eval()
                    set_key_order(counted, flops_memo.COUNTING['key_order'])
                    if hasattr(counted, 'set_attn_impl'):
                        counted.set_attn_impl(flops_memo.COUNTING['attn_impl'])
                    return count_complexity(counted, height, width)['flops']

                # the same backbone counted before (a resume, a sweep's next cell): recalled
                stats['backbone_flops'] = flops_memo.counted_once(backbone, (height, width), count)
            except Exception as exc:  # noqa: BLE001 - an optional figure must not stop training
                stats['backbone_flops_error'] = f'{type(exc).__name__}: {exc}'
        return stats

    def _last_checkpoint(self, runner) -> Optional[str]:
        path = os.path.join(runner.work_dir, 'last_checkpoint')
        try:
            with open(path, encoding='utf-8') as f:
                return f.read().strip() or None
        except OSError:
            return None

    def _emit_new_checkpoint(self, runner) -> None:
        """A ``checkpoint`` event once mmengine's CheckpointHook has saved one. mmengine has no
        after-save hook point, and the CheckpointHook runs after this hook (lower priority), so a
        new ``last_checkpoint`` is noticed at the next hook point: before validation or the next
        epoch, or at the end."""
        current = self._last_checkpoint(runner)
        if current and current != self._checkpoint:
            self._checkpoint = current
            self._emit(runner, 'checkpoint', path=current, epoch=int(runner.epoch), iter=int(runner.iter))

    # -- hook points ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._install_signal_handlers()
        self._checkpoint = self._last_checkpoint(runner)  # a resumed run's: not new
        loop = runner.train_loop
        max_epochs = getattr(loop, 'max_epochs', None)
        iters_per_epoch = None
        try:
            iters_per_epoch = len(loop.dataloader)
        except TypeError:
            pass
        # Only rank 0 writes events: the other ranks skip the backbone's figures (a copy of it and
        # a FLOP count at 224 x 224, seconds of CPU each on every rank of a job otherwise).
        stats = self._backbone_stats(runner) if runner.rank == 0 else {}
        self._emit(
            runner,
            'start',
            max_iters=int(runner.max_iters),
            max_epochs=max_epochs,
            iters_per_epoch=iters_per_epoch,
            start_iter=int(runner.iter),
            start_epoch=int(runner.epoch),
            world_size=int(runner.world_size),
            device=self._device(runner),
            amp=self._amp_dtype(runner),
            **stats,
        )
        self._last = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._stop_if_asked(runner, agree=True)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._stop_if_asked(runner)

    def before_val_epoch(self, runner) -> None:
        self._emit_new_checkpoint(runner)
        self._stop_if_asked(runner, agree=True)
        self._val_start = time.perf_counter()

    def _eval_seconds(self, runner, iter_time: float) -> Optional[float]:
        """Seconds one evaluation takes: the measured mean, else the estimate above (None when
        the sizes are unknown)."""
        if self._val_times:
            return sum(self._val_times) / len(self._val_times)
        train_batch = self._world_batch(runner)
        try:
            val_images = len(runner.val_loop.dataloader.dataset)
        except (AttributeError, TypeError, RuntimeError):
            return None
        if train_batch is None:
            return None
        return val_images * iter_time / max(train_batch, 1) * FORWARD_SHARE_OF_STEP

    @staticmethod
    def _world_batch(runner) -> Optional[int]:
        """Images one training iteration takes over all processes (batch per process x world size)."""
        try:
            loader = runner.train_dataloader
            # mmdet's loaders batch through a batch sampler (AspectRatioBatchSampler): the
            # DataLoader's own batch_size is None then
            batch = loader.batch_size or loader.batch_sampler.batch_size
            return int(batch) * int(runner.world_size)
        except (AttributeError, TypeError, RuntimeError):
            return None

    def _eta(self, runner, it: int, iter_time: float) -> float:
        """Remaining iterations at ``iter_time``, plus the evaluations still to run."""
        has_val = getattr(runner, '_val_loop', None) is not None
        evals = remaining_evaluations(runner.train_loop, int(runner.epoch), it, has_val)
        per_eval = self._eval_seconds(runner, iter_time) if evals else None
        return iter_time * (int(runner.max_iters) - it) + (evals * per_eval if per_eval else 0.0)

    def before_train_epoch(self, runner) -> None:
        self._emit_new_checkpoint(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self._times.append(now - self._last)
        self._last = now
        losses = {k: float(v) for k, v in (outputs or {}).items() if 'loss' in k}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        it = int(runner.iter) + 1
        if bad:
            message = f'non-finite loss at iteration {it}: ' + ', '.join(f'{k}={losses[k]}' for k in bad)
            self._emit(runner, 'error', iter=it, message=message)
            raise FloatingPointError(message)
        if it % self.interval and it != int(runner.max_iters) and batch_idx != 0:
            return
        mean = sum(self._times) / len(self._times) if self._times else None
        lrs = runner.optim_wrapper.get_lr()
        lr = next(iter(lrs.values()))[0] if lrs else None
        batch = self._world_batch(runner)  # the whole world's: images/s of the job, not of rank 0
        self._emit(
            runner,
            'iter',
            iter=it,
            epoch=int(runner.epoch) + 1,
            max_iters=int(runner.max_iters),
            losses={k: _finite_or_none(v) for k, v in losses.items()},
            lr=lr,
            iter_time_s=round(mean, 4) if mean else None,
            images_per_s=round(batch / mean, 2) if mean and batch else None,
            eta_s=round(self._eta(runner, it, mean), 1) if mean else None,
            **self._memory(),
        )

    def after_val_epoch(self, runner, metrics=None) -> None:
        clean = {k: _finite_or_none(float(v)) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        self._emit(runner, 'val', epoch=int(runner.epoch), iter=int(runner.iter), metrics=clean)
        self._last = time.perf_counter()  # validation time is not iteration time
        if self._val_start is not None:
            self._val_times.append(self._last - self._val_start)
            self._val_start = None

    def after_test_epoch(self, runner, metrics=None) -> None:
        clean = {k: _finite_or_none(float(v)) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        self._emit(runner, 'test', metrics=clean)

    def after_train(self, runner) -> None:
        self._emit_new_checkpoint(runner)
        self._emit(runner, 'end', status='completed', iter=int(runner.iter), epoch=int(runner.epoch))
