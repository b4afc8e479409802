"""--tf32 (MkeyTF32Hook) and the GPU options put on top of a user's config (train --config)."""
import os

import pytest
import torch
from mmdet.registry import HOOKS

from mkey_det.cli.runs import user_config_text
from mkey_det.engine import MkeyTF32Hook, enable_tf32

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE3_BASELINE = os.path.join(REPO, 'configs', 'mask-rcnn_swin-t_fpn_3x_coco.py')


class _Logger:
    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


class _Runner:
    def __init__(self):
        self.logger = _Logger()


def test_tf32_hook_is_registered_and_a_logged_no_op_without_cuda():
    assert HOOKS.get('MkeyTF32Hook') is MkeyTF32Hook
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    runner = _Runner()
    MkeyTF32Hook().before_run(runner)
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        assert enable_tf32() == {'cuda.matmul.allow_tf32': True, 'cudnn.allow_tf32': True}
        assert 'TF32 enabled' in runner.logger.lines[0]
    else:
        assert enable_tf32() == {}
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
        assert 'no CUDA device' in runner.logger.lines[0]


def test_user_config_gets_attn_impl_key_order_and_tf32(tmp_path):
    res = user_config_text(TABLE3_BASELINE, key_type='spatialk', num_charts=4, attn_impl='sdpa',
                           key_order='auto', tf32=True)
    text = res['text']
    assert "attn_impl='sdpa'" in text and "key_order='auto'" in text
    assert text.index("type='MkeyTF32Hook'") < text.index("type='MkeyProgressHook'")
    # a run config fed back: still one hook of each
    run_cfg = tmp_path / 'run.py'
    run_cfg.write_text(text)
    again = user_config_text(str(run_cfg), tf32=True)['text']
    assert again.count('MkeyTF32Hook') == 1 and again.count('MkeyProgressHook') == 1
    plain = user_config_text(TABLE3_BASELINE)['text']
    assert 'MkeyTF32Hook' not in plain and 'attn_impl' not in plain and 'key_order' not in plain


def test_user_config_refuses_them_on_other_backbones(tmp_path):
    cfg = tmp_path / 'resnet.py'
    cfg.write_text("model = dict(backbone=dict(type='ResNet', depth=50))\n"
                   'train_dataloader = dict(batch_size=2)\n')
    with pytest.raises(ValueError, match='--attn-impl apply to a Swin backbone; .*ResNet'):
        user_config_text(str(cfg), attn_impl='sdpa')
    with pytest.raises(ValueError, match='--key-order applies to a manifold-key backbone.*ResNet'):
        user_config_text(str(cfg), key_order='auto')
    assert "type='MkeyTF32Hook'" in user_config_text(str(cfg), tf32=True)['text']
