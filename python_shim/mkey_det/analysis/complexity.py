"""Parameter and FLOP counts of Swin-T with each key (mmengine's fvcore-derived counter).

FLOPs follow fvcore's convention (the paper's counter): one multiply-add is one FLOP, and only
matrix products and convolutions are counted (``linear``, ``matmul``, ``bmm``, ``einsum``,
``_convolution``...); elementwise ops (``gamma`` scaling, CB's mean, softmax, norms) are not.

    python -m mkey_det.analysis [--charts 8] [--size 224 224]

prints the table for every registered key type (:mod:`mkey_det.models.keys.registry`) and both
computation orders.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch
import torch.nn as nn

from ..models.backbones import SwinTransformerMKey
from ..models.keys import KEYS, check_key_type, key_types, set_key_order
from ..models.keys.base import check_int, check_order

#: Swin-T as in the paper / mmdet's ``mask-rcnn_swin-t-p4-w7`` config (no drop path: counting).
SWIN_T = dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7,
              mlp_ratio=4, qkv_bias=True, patch_norm=True, drop_path_rate=0.0,
              out_indices=(0, 1, 2, 3), init_cfg=None)

#: Table 1 of the paper (Swin-T, 8 charts, 224 x 224): (params [M], FLOPs [G]), per key type
#: (the registry's ``table1``; variants the paper does not list have none).
PAPER_TABLE1 = {s.key_type: s.table1 for s in KEYS.specs() if s.table1 is not None}


class _Classifier(nn.Module):
    """Swin-T as an ImageNet classifier (as in Table 1): backbone (last stage, its norm),
    global average pool and ``Linear(768, num_classes)``."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.backbone(x)[-1]                  # (B, 768, H/32, W/32)
        return self.head(feat.flatten(2).mean(-1))   # (B, num_classes)


def build_swin_t(key_type: str = 'linear', num_charts: int = 8, order: str = 'paper',
                 num_classes: int = 0) -> nn.Module:
    """Swin-T backbone with the given key (``num_classes > 0``: with a classification head
    and only the last stage's norm, like the ImageNet model of Table 1)."""
    check_key_type(key_type)
    check_int('num_classes', num_classes, minimum=0)
    cfg = dict(SWIN_T)
    if num_classes:
        cfg['out_indices'] = (3, )
    backbone = SwinTransformerMKey(key_type=key_type, num_charts=num_charts,
                                   key_order=order, **cfg)
    model = _Classifier(backbone, num_classes) if num_classes else backbone
    return model.eval()


def count_complexity(model: nn.Module, height: int = 224, width: int = 224) -> Dict:
    """``dict(params, flops, skipped)`` of ``model`` on one ``(1, 3, height, width)`` image;
    ``skipped``: op name -> occurrences the counter did not count."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    # The image goes where the weights are (a model on CUDA counts too).
    device = next((p.device for p in model.parameters()), torch.device('cpu'))
    x = torch.zeros(1, 3, height, width, device=device)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = int(analyzer.total())
        skipped = dict(analyzer.unsupported_ops())
    return dict(params=int(parameter_count(model)['']), flops=flops, skipped=skipped)


def backbone_complexity(key_type: str, num_charts: int = 8, height: int = 224,
                        width: int = 224, order: str = 'paper',
                        num_classes: int = 0) -> Dict[str, int]:
    """Params and FLOPs (fvcore convention) of Swin-T with ``key_type`` at ``height x width``.

    ``order``: ``'paper'`` counts Algorithm 1's ops; ``'fast'`` the folded computation (which
    includes folding the weights, ``H C^3`` per SpatialK/KUA block, where it pays off).
    ``num_classes=1000`` adds the ImageNet head, as the paper's Table 1 counts.
    Returns ``dict(params=int, flops=int)``.
    """
    check_int('height', height)
    check_int('width', width)
    check_order(order)
    model = build_swin_t(key_type, num_charts, order, num_classes)
    out = count_complexity(model, height, width)
    return dict(params=out['params'], flops=out['flops'])


def complexity_table(num_charts: int = 8, height: int = 224, width: int = 224,
                     num_classes: int = 1000) -> list:
    """Rows ``(key_type, params, flops_paper, flops_fast)`` for every registered key type."""
    rows = []
    for key_type in key_types():
        model = build_swin_t(key_type, num_charts, 'paper', num_classes)
        paper = count_complexity(model, height, width)
        set_key_order(model, 'fast')
        fast = count_complexity(model, height, width)
        rows.append((key_type, paper['params'], paper['flops'], fast['flops']))
    return rows


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--charts', type=int, default=8)
    parser.add_argument('--size', type=int, nargs=2, default=(224, 224))
    parser.add_argument('--classes', type=int, default=1000,
                        help='ImageNet head classes (0: backbone only)')
    args = parser.parse_args(argv)
    print(f'{"key":10s} {"params[M]":>10s} {"GFLOPs paper":>13s} {"GFLOPs fast":>12s} '
          f'{"Table 1":>12s}')
    for key_type, params, fp, ff in complexity_table(args.charts, *args.size, args.classes):
        ref = KEYS.get(key_type).table1
        paper = f'{ref[0]:>6g}M/{ref[1]:g}G' if ref else f'{"-":>12s}'
        print(f'{key_type:10s} {params / 1e6:10.2f} {fp / 1e9:13.2f} {ff / 1e9:12.2f} {paper}')


if __name__ == '__main__':
    main()
