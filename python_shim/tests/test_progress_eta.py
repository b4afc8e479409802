"""The ETA of ``MkeyProgressHook`` counts the evaluations still to come (issue 16)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mkey_det.engine.progress_hook import FORWARD_SHARE_OF_STEP, MkeyProgressHook, remaining_evaluations


def epoch_loop(max_epochs: int, val_interval: int = 1, val_begin: int = 1) -> EpochBasedTrainLoop:
    """mmengine's own loop class with only the fields the rule reads (no runner, no data)."""
    loop = object.__new__(EpochBasedTrainLoop)
    loop._max_epochs, loop._max_iters = max_epochs, max_epochs * 16
    loop.val_interval, loop.val_begin = val_interval, val_begin
    return loop


def iter_loop(max_iters: int, val_interval: int, val_begin: int = 1) -> IterBasedTrainLoop:
    loop = object.__new__(IterBasedTrainLoop)
    loop._max_iters, loop.val_interval, loop.val_begin = max_iters, val_interval, val_begin
    return loop


@pytest.mark.parametrize('epoch, expected', [(0, 6), (3, 3), (5, 1)])
def test_every_epoch_evaluated(epoch, expected):
    # the demo: 6 epochs, evaluation after each; during epoch `epoch` (0-based) its own is pending
    assert remaining_evaluations(epoch_loop(6), epoch, it=epoch * 16 + 1) == expected


def test_interval_begin_and_last_epoch():
    # interval 4 over 10 epochs: after epochs 4, 8 and the last (10)
    assert remaining_evaluations(epoch_loop(10, val_interval=4), 0, 1) == 3
    assert remaining_evaluations(epoch_loop(10, val_interval=4), 8, 130) == 1
    # val_begin 5, interval 1: epochs 5..10
    assert remaining_evaluations(epoch_loop(10, val_begin=5), 0, 1) == 6


def test_iteration_based_loop():
    # every 100 of 250 iterations, plus the last: after 100, 200, 250
    assert remaining_evaluations(iter_loop(250, 100), 0, it=1) == 3
    assert remaining_evaluations(iter_loop(250, 100), 0, it=100) == 3  # the pending one counts
    assert remaining_evaluations(iter_loop(250, 100), 0, it=101) == 2


def test_no_validation_loop():
    assert remaining_evaluations(epoch_loop(6), 0, 1, has_val=False) == 0


def fake_runner(loop, epoch, val_images=16, train_batch=8, max_iters=96, has_val=True):
    """What the ETA reads of a Runner."""
    val_loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=[None] * val_images))
    return SimpleNamespace(train_loop=loop, epoch=epoch, max_iters=max_iters, world_size=1,
                           # as mmdet's loaders: batched by a batch sampler, batch_size None
                           train_dataloader=SimpleNamespace(batch_size=None, batch_sampler=SimpleNamespace(batch_size=train_batch)),
                           _val_loop=val_loop if has_val else None, val_loop=val_loop)


def test_eta_adds_estimated_then_measured_evaluations():
    hook = MkeyProgressHook()
    runner = fake_runner(epoch_loop(6), epoch=0)
    # before any evaluation ran: 6 of them, each 16 images at a third of a step's time per image
    per_eval = 16 * 4.0 / 8 * FORWARD_SHARE_OF_STEP
    assert hook._eta(runner, it=1, iter_time=4.0) == pytest.approx(95 * 4.0 + 6 * per_eval)
    # after two measured evaluations (10 s and 14 s): their mean, for the 4 left from epoch 2 on
    hook._val_times = [10.0, 14.0]
    runner.epoch = 2
    assert hook._eta(runner, it=33, iter_time=4.0) == pytest.approx(63 * 4.0 + 4 * 12.0)
    # no validation: iterations only
    assert hook._eta(fake_runner(epoch_loop(6), 0, has_val=False), it=1, iter_time=4.0) == pytest.approx(95 * 4.0)
