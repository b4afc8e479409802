"""Run under torchrun (2 processes, gloo): one DDP step of every key variant, checked against one
process on the whole batch. test_ddp_gradients.py starts it and reads the JSON it writes.

    python -m torch.distributed.run --nproc_per_node 2 ddp_gradients_worker.py OUT.json

Each rank trains on its half of the same 8 images (4 each); DDP averages the gradients of the
ranks' mean losses, which is the gradient of the mean loss over all 8, what rank 0 computes with
an unwrapped copy. A second DDP step checks that no parameter went unused (DDP without
``find_unused_parameters`` raises then).
"""
from __future__ import annotations

import copy
import datetime
import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import mkey_det  # noqa: F401  (registers the backbones)

KEYS = ('linear', 'spatialk', 'kua', 'simplek', 'vanillak')
IMAGES = 8


def swin_t_backbone(key_type):
    """Swin-T as Table 3's detector has it (drop path off: a random mask would differ per rank)."""
    from mmdet.registry import MODELS

    return MODELS.build(dict(type='SwinTransformerMKey', key_type=key_type, num_charts=8, embed_dims=96,
                             depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7,
                             drop_path_rate=0.0, out_indices=(0, 1, 2, 3)))


def classifier(backbone):
    """An mmpretrain ImageClassifier (cross-entropy over 10 classes) on ``backbone``."""
    from mmpretrain.registry import MODELS

    vit = backbone['type'] == 'VisionTransformerMKey'
    head = (dict(type='VisionTransformerClsHead', num_classes=10, in_channels=backbone['arch']['embed_dims'])
            if vit else dict(type='LinearClsHead', num_classes=10, in_channels=768))
    return MODELS.build(dict(type='ImageClassifier', backbone=backbone,
                             neck=None if vit else dict(type='GlobalAveragePooling'),
                             head=dict(head, loss=dict(type='CrossEntropyLoss'))))


def vit_s(key_type):
    return classifier(dict(type='VisionTransformerMKey', key_type=key_type, num_charts=8,
                           arch=dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
                           img_size=64, patch_size=16, drop_path_rate=0.0))


def swin_t_classifier(key_type):
    return classifier(dict(type='mmdet.SwinTransformerMKey', key_type=key_type, num_charts=8,
                           drop_path_rate=0.0, out_indices=(3,)))


def backbone_loss(model, images, labels):
    """Mean over the images of each output map's mean square: a per-image loss, averaged."""
    outs = model(images)
    per_image = sum(o.pow(2).flatten(1).mean(1) for o in outs)
    return per_image.mean()


def classifier_loss(model, images, labels):
    from mmpretrain.structures import DataSample

    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    return sum(model(images, samples, mode='loss').values())


CASES = [(f'detection swin-t {k}', swin_t_backbone, k, backbone_loss, 64) for k in KEYS] + [
    (f'pretrain vit-s {k}', vit_s, k, classifier_loss, 64) for k in ('linear', 'spatialk', 'vanillak')
] + [(f'pretrain swin-t {k}', swin_t_classifier, k, classifier_loss, 64) for k in ('linear', 'spatialk')]


def relative_error(got: dict, want: dict) -> float:
    """Largest ||got - want|| / ||want|| over the parameters (norms of the whole tensor)."""
    worst = 0.0
    for name, ref in want.items():
        denom = ref.norm().item()
        if denom == 0.0:
            continue
        worst = max(worst, (got[name] - ref).norm().item() / denom)
    return worst


def grads(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    assert IMAGES % world == 0
    share = IMAGES // world
    results = {}
    for name, build, key_type, loss_fn, size in CASES:
        torch.manual_seed(0)
        model = build(key_type)
        model.train()
        reference = copy.deepcopy(model)  # same weights on every rank (seeded), unwrapped
        images = torch.randn(IMAGES, 3, size, size, generator=torch.Generator().manual_seed(1))
        labels = torch.arange(IMAGES) % 10
        ddp = DistributedDataParallel(model)  # CPU modules: no device_ids; find_unused_parameters off
        mine = slice(rank * share, (rank + 1) * share)
        loss_fn(ddp, images[mine], labels[mine]).backward()
        got = grads(model)
        unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        ddp.zero_grad()
        loss_fn(ddp, images[mine], labels[mine]).backward()  # raises if a parameter went unused
        if rank == 0:
            loss_fn(reference, images, labels).backward()
            want = grads(reference)
            results[name] = dict(relative_error=relative_error(got, want), parameters=len(want),
                                 unused=unused, same_names=sorted(got) == sorted(want))
        dist.barrier()
    if rank == 0:
        with open(out_path, 'w', encoding='utf-8') as f:
            json.dump(dict(world_size=world, images=IMAGES, cases=results), f, indent=1)
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
