"""Mask R-CNN + FPN (mmdet's Swin-T config) trains with the manifold-key backbone."""
import math

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.hub import get_config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

import mkey_det  # noqa: F401

H, W = 128, 160  # multiples of 32 (no padding), small for 2 CPU cores


@pytest.fixture(scope='module')
def cfg():
    register_all_modules()
    cfg = get_config('mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None  # nothing can be downloaded
    cfg.model.backbone.drop_path_rate = 0.0  # a fixed function for the loss comparison
    # fewer sampled anchors / RoIs / proposals: the heads dominate a CPU step otherwise
    train = cfg.model.train_cfg
    train.rpn.sampler.num = 64
    train.rpn_proposal.update(nms_pre=300, max_per_img=100)
    train.rcnn.sampler.num = 32
    return cfg


def make_batch(n: int = 2, seed: int = 0) -> dict:
    """n synthetic images with two boxes each, the objects painted in, bitmap masks."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(n):
        img = torch.randint(0, 60, (3, H, W), dtype=torch.uint8, generator=g)
        boxes = torch.tensor([[0.05 * W, 0.1 * H, 0.45 * W, 0.9 * H],
                              [(0.5 + 0.05 * i) * W, 0.2 * H, 0.95 * W, 0.95 * H]]).round()
        masks = np.zeros((2, H, W), dtype=np.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[j, y1:y2, x1:x2] = 1
            img[j, y1:y2, x1:x2] = 220
        sample = DetDataSample(metainfo=dict(img_id=i, img_shape=(H, W), ori_shape=(H, W),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([1, 7]),
                                           masks=BitmapMasks(masks, H, W))
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_detector(cfg, **backbone):
    model_cfg = cfg.model.copy()
    model_cfg.backbone.update(type='SwinTransformerMKey', **backbone)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def total_loss(model, data):
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    loss, _ = model.parse_losses(losses)
    return loss


def test_one_step_stock_swin_t(cfg):
    model = build_detector(cfg, key_type='linear')
    assert type(model.backbone).__name__ == 'SwinTransformerMKey'
    assert not any('qkv.key' in n for n, _ in model.named_parameters())
    model.train()
    loss = total_loss(model, make_batch())
    assert math.isfinite(loss.item())
    loss.backward()
    grads = [p.grad for n, p in model.backbone.named_parameters() if n.endswith('qkv.weight')]
    assert len(grads) == 12 and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_spatialk_loss_decreases(cfg):
    """A few AdamW steps (the config's optimizer, lr 1e-4) on one fixed image."""
    model = build_detector(cfg, key_type='spatialk', num_charts=8, key_order='fast')
    keys = [n for n, _ in model.backbone.named_parameters() if '.qkv.key.' in n]
    assert len(keys) == 12 * 4  # k, gamma, spatial, to_out per block
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    key = model.backbone.stages[0].blocks[0].attn.w_msa.key
    start = {n: p.detach().clone() for n, p in key.named_parameters()}
    data = make_batch(1)
    model.train()
    torch.manual_seed(1)
    history = []
    for _ in range(4):
        log = model.train_step(data, optim)
        history.append(float(log['loss'].detach()))
    assert all(math.isfinite(v) for v in history), history
    assert history[-1] < history[0] and sum(history[2:]) < sum(history[:2]), history
    for name, p in key.named_parameters():  # every key parameter was trained
        assert not torch.equal(p, start[name]), name
