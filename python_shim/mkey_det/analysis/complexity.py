"""Parameter and FLOP counts with each key (mmengine's fvcore-derived counter): Swin-T, and the
paper's Table 1 / Table 2 (Swin-T, ViT-S/16, ViT-B/16).

FLOPs follow fvcore's convention (the paper's counter): one multiply-add is one FLOP, and only
matrix products and convolutions are counted (``linear``, ``matmul``, ``bmm``, ``einsum``,
``_convolution``...); elementwise ops (``gamma`` scaling, CB's mean, softmax) are not (fvcore's
norm handles count norms, a few per element). mmpretrain's ViT attention calls
``F.scaled_dot_product_attention``, which the counter does not know: :func:`count_complexity`
adds a handle for it (:func:`sdpa_flop_jit`: ``q k^T`` and ``attn v``, ``2 N^2 C`` multiply-adds
per block), so the ViT attention products are counted as fvcore counts vit-pytorch's explicit
``matmul`` calls (the paper's ViTs).

    python -m mkey_det.analysis [--charts 8] [--size 224 224]

prints the Swin-T table for every registered key type (:mod:`mkey_det.models.keys.registry`)
and both computation orders;

    python -m mkey_det.analysis table1 [--json] [--families ...] [--key-types ...] [--no-table2]

the paper's Table 1 (15 rows: 3 models x linear + 4 keys, 8 charts, 224 x 224, 1000 classes)
and Table 2 (ViT-B/16 VanillaK without CB, 4 and 8 charts), each row next to the paper's
numbers and the relative difference (:func:`paper_table_rows`); then SwinV2-T (section 5: 256 x
256, window 8) with every key, for which the paper prints no figures (``-`` in its columns).
"""
from __future__ import annotations

import argparse
import json
import sys
from math import prod
from typing import Any, Dict, List, Optional, Sequence

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


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOP handle of ``aten::scaled_dot_product_attention`` (fvcore convention, multiply-adds):
    ``q: (..., L, E)``, ``k: (..., S, E)``, ``v: (..., S, Ev)`` -> ``q k^T`` (``L S E``) plus
    ``attn v`` (``L S Ev``) per leading index; as ``matmul_flop_jit`` counts the explicit path.
    Softmax, scale and mask are elementwise (not counted)."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = prod(q[:-2])
    return int(batch * q[-2] * k[-2] * (q[-1] + v[-1]))


def count_complexity(model: nn.Module, height: int = 224, width: int = 224) -> Dict:
    """``dict(params, flops, skipped)`` of ``model`` on one ``(1, 3, height, width)`` image;
    ``skipped``: op name -> occurrences the counter did not count. Counts
    ``F.scaled_dot_product_attention`` too (:func:`sdpa_flop_jit`)."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    # The image goes where the weights are (a model on CUDA counts too).
    device = next((p.device for p in model.parameters()), torch.device('cpu'))
    x = torch.zeros(1, 3, height, width, device=device)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (x, ))
        analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
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


# --- the paper's Table 1 and Table 2 ------------------------------------------------------------

#: ViT-S/16 as timm's ``vit_small_patch16_224`` / DeiT-S (384 wide, 12 blocks, 6 heads, MLP 1536,
#: 22.05M params with the 1000-class head) = mmpretrain's ``arch='deit-small'``; NOT mmpretrain's
#: ``'small'`` (768 wide, 8 blocks, 8 heads, MLP 2304).
VIT_S = dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536)
#: ViT-B/16 (= mmpretrain's ``'base'`` / ``'deit-base'``).
VIT_B = dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)
#: the rest of the ViT construction (mmpretrain's ``VisionTransformer`` defaults: qkv bias, a
#: class token, LayerNorm eps 1e-6, final norm; no drop path: counting).
VIT_COMMON = dict(img_size=224, patch_size=16, qkv_bias=True, drop_rate=0.0, drop_path_rate=0.0,
                  out_type='cls_token', with_cls_token=True, final_norm=True, init_cfg=None)
#: family -> (row label, ViT arch or None for Swin-T)
FAMILIES = {'swin-t': ('Swin-T', None), 'vit-s': ('ViT-S/16', VIT_S), 'vit-b': ('ViT-B/16', VIT_B)}
#: the key types of the paper's tables, in its order
TABLE1_KEY_TYPES = ('linear', 'spatialk', 'kua', 'simplek', 'vanillak')
#: the paper's Table 1: (family, key type) -> (params [M], FLOPs [G]); 8 charts, 224 x 224
PAPER_TABLE1_ALL = {
    **{('swin-t', k): tuple(KEYS.get(k).table1) for k in TABLE1_KEY_TYPES},
    ('vit-s', 'linear'): (22, 4.7), ('vit-s', 'spatialk'): (52, 11.3), ('vit-s', 'kua'): (52, 11.3),
    ('vit-s', 'simplek'): (38, 8.6), ('vit-s', 'vanillak'): (38, 8.6),
    ('vit-b', 'linear'): (87, 17.7), ('vit-b', 'spatialk'): (197, 41.5),
    ('vit-b', 'kua'): (197, 41.5), ('vit-b', 'simplek'): (140, 30.4),
    ('vit-b', 'vanillak'): (140, 30.4),
}
#: the paper's Table 2 (ViT-B/16, VanillaK without CB): charts -> (params [M], FLOPs [G] or None:
#: the paper gives none)
PAPER_TABLE2 = {4: (110, None), 8: (140, None)}
#: the acceptance tolerance of the reproduced counts (relative)
TABLE_TOLERANCE = 0.03
#: families counted next to the paper's without figures of the paper: family -> (row label,
#: image side). SwinV2-T: mmpretrain's ``swinv2-tiny-w8`` (section 5: 256 px, window 8).
EXTRA_FAMILIES = {'swinv2-t': ('SwinV2-T', 256)}
#: every family :func:`paper_table_rows` counts, in its order
ALL_FAMILIES = (*FAMILIES, *EXTRA_FAMILIES)
#: the note of the rows without the paper's figures
NO_PAPER_NOTE = 'SwinV2-T (256 x 256, window 8): the paper prints no params or FLOPs for it'


def build_swinv2_t(key_type: str = 'linear', num_charts: int = 8, order: str = 'paper',
                   num_classes: int = 1000, key_kwargs: Optional[dict] = None) -> nn.Module:
    """SwinV2-T (mmpretrain's ``arch='tiny'``, 256 px, window 8, no drop path: counting) with
    the given key, as :class:`~mkey_det.models.backbones.swinv2_mkey.SwinTransformerV2MKey`;
    ``num_classes > 0``: global average pool and ``Linear(768, num_classes)``. In eval mode."""
    from ..models.backbones.swinv2_mkey import SwinTransformerV2MKey
    check_int('num_classes', num_classes, minimum=0)
    backbone = SwinTransformerV2MKey(arch='tiny', img_size=256, window_size=8,
                                     drop_path_rate=0.0, out_indices=(3, ), key_type=key_type,
                                     num_charts=num_charts, key_order=order,
                                     key_kwargs=key_kwargs)
    backbone.num_features = [backbone.stages[-1].out_channels]
    model = _Classifier(backbone, num_classes) if num_classes else backbone
    model.eval()
    return model


class _ViTClassifier(nn.Module):
    """A ViT backbone (class-token output) with ``Linear(C, num_classes)``: ``(B, 3, H, W)`` ->
    ``(B, num_classes)``, as vit-pytorch's / timm's classifier."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.embed_dims, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])  # (B, C) -> (B, num_classes)


def build_vit(arch: str = 'vit-s', key_type: str = 'linear', num_charts: int = 8,
              order: str = 'paper', num_classes: int = 1000,
              key_kwargs: Optional[dict] = None, **overrides) -> nn.Module:
    """ViT-S/16 (``arch='vit-s'``) or ViT-B/16 (``'vit-b'``) with the given key, as
    :class:`~mkey_det.models.backbones.VisionTransformerMKey` (:data:`VIT_COMMON` plus
    ``overrides``); ``num_classes > 0``: with a ``Linear(C, num_classes)`` head on the class
    token. In eval mode."""
    from ..models.backbones.vit_mkey import VisionTransformerMKey
    if arch not in FAMILIES or FAMILIES[arch][1] is None:
        raise ValueError(f"arch must be 'vit-s' or 'vit-b', got {arch!r}")
    check_int('num_classes', num_classes, minimum=0)
    cfg = dict(VIT_COMMON, arch=dict(FAMILIES[arch][1]))
    cfg.update(overrides)
    backbone = VisionTransformerMKey(key_type=key_type, num_charts=num_charts, key_order=order,
                                     key_kwargs=key_kwargs, **cfg)
    model = _ViTClassifier(backbone, num_classes) if num_classes else backbone
    return model.eval()


def build_classifier(family: str, key_type: str = 'linear', num_charts: int = 8,
                     order: str = 'paper', num_classes: int = 1000,
                     key_kwargs: Optional[dict] = None) -> nn.Module:
    """The Table 1 model of ``family`` (``'swin-t'``, ``'vit-s'``, ``'vit-b'``) with a key."""
    if family not in ALL_FAMILIES:
        raise ValueError(f'family must be one of {ALL_FAMILIES}, got {family!r}')
    if family == 'swinv2-t':
        return build_swinv2_t(key_type, num_charts, order, num_classes, key_kwargs)
    if family == 'swin-t':
        if key_kwargs:
            raise ValueError(f'key_kwargs {key_kwargs!r}: only the ViT families take them here')
        return build_swin_t(key_type, num_charts, order, num_classes)
    return build_vit(family, key_type, num_charts, order, num_classes, key_kwargs)


#: The key arguments of Table 2's "VanillaK without CB".
NO_CB_KEY_KWARGS = dict(cb_mode='none')


def _rel(ours: float, paper: Optional[float]) -> Optional[float]:
    return None if paper is None else (ours - paper) / paper


def _row(table: str, family: str, key_type: str, charts: Optional[int], cx: Dict,
         paper: tuple, note: str = '', cb_removed: Optional[bool] = None) -> Dict:
    params_m, flops_g = cx['params'] / 1e6, cx['flops'] / 1e9
    rp, rf = _rel(params_m, paper[0]), _rel(flops_g, paper[1])
    spec = KEYS.get(key_type)
    label = FAMILIES[family][0] if family in FAMILIES else EXTRA_FAMILIES[family][0]
    has_paper = paper[0] is not None or paper[1] is not None
    return dict(table=table, family=family, model=label, key_type=key_type,
                key_label=spec.label if spec.manifold else 'linear', charts=charts,
                params=cx['params'], flops=cx['flops'], params_m=params_m, flops_g=flops_g,
                paper_params_m=paper[0], paper_flops_g=paper[1], params_rel_diff=rp,
                flops_rel_diff=rf,
                within_tolerance=all(abs(r) <= TABLE_TOLERANCE for r in (rp, rf) if r is not None)
                if has_paper else None,
                skipped_ops=cx.get('skipped', {}), cb_removed=cb_removed, note=note)


def paper_table_rows(families: Sequence[str] = ALL_FAMILIES, num_charts: int = 8,
                     table2: bool = True, order: str = 'paper', num_classes: int = 1000,
                     height: int = 224, width: int = 224,
                     key_types: Sequence[str] = TABLE1_KEY_TYPES, progress=None) -> List[Dict]:
    """Rows of the paper's Table 1 (every family x ``key_types``, by default all of
    :data:`TABLE1_KEY_TYPES`) and, with
    ``table2`` and ``'vit-b'`` in ``families``, Table 2 (ViT-B VanillaK without CB, 4 and 8
    charts; see :data:`NO_CB_KEY_KWARGS`), each counted on a real model (one at a time).

    Each row: ``table`` ('1'|'2'), ``family``, ``model``, ``key_type``, ``key_label``,
    ``charts`` (None for linear), ``params``, ``flops``, ``params_m``, ``flops_g``,
    ``paper_params_m``, ``paper_flops_g`` (None where the paper gives none), ``params_rel_diff``,
    ``flops_rel_diff`` (``(ours - paper) / paper``), ``within_tolerance`` (both within
    :data:`TABLE_TOLERANCE`; None without the paper's figures: SwinV2-T, table ``'-'``, counted at
    256 x 256, :data:`EXTRA_FAMILIES`), ``skipped_ops``, ``cb_removed`` (Table 2: whether the key ran
    without CB; None in Table 1), ``note``. ``progress``: called with each row.
    """
    check_order(order)
    for f in families:
        if f not in ALL_FAMILIES:
            raise ValueError(f'family must be one of {ALL_FAMILIES}, got {f!r}')
    for k in key_types:
        if k not in TABLE1_KEY_TYPES:
            raise ValueError(f'key type must be one of {TABLE1_KEY_TYPES}, got {k!r}')
    families = [f for f in ALL_FAMILIES if f in families]  # the paper's order, then the extras
    key_types = [k for k in TABLE1_KEY_TYPES if k in key_types]
    jobs = []
    for family in (f for f in families if f in FAMILIES):
        for key_type in key_types:
            charts = num_charts if KEYS.get(key_type).manifold else None
            jobs.append(('1', family, key_type, charts, None, PAPER_TABLE1_ALL[family, key_type],
                         ''))
    if table2 and 'vit-b' in families:
        kwargs = dict(NO_CB_KEY_KWARGS)
        note = ('CB removed: key_kwargs=' + repr(kwargs) if kwargs else
                'VanillaK as is (no cb_mode in this tree): CB counted, +C params/block, 0 FLOPs')
        for charts, paper in sorted(PAPER_TABLE2.items()):
            jobs.append(('2', 'vit-b', 'vanillak', charts, kwargs, paper, note))
    for family in (f for f in families if f in EXTRA_FAMILIES):
        for key_type in key_types:
            charts = num_charts if KEYS.get(key_type).manifold else None
            jobs.append(('-', family, key_type, charts, None, (None, None), NO_PAPER_NOTE))
    rows = []
    for table, family, key_type, charts, kwargs, paper, note in jobs:
        model = build_classifier(family, key_type, charts or num_charts, order, num_classes,
                                 kwargs)
        side = EXTRA_FAMILIES[family][1] if family in EXTRA_FAMILIES else None
        cx = count_complexity(model, side or height, side or width)
        row = _row(table, family, key_type, charts, cx, paper, note,
                   None if table != '2' else bool(kwargs))
        del model
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _pct(r: Optional[float]) -> str:
    return '-' if r is None else f'{100 * r:+.1f}%'


def format_paper_table(rows: Sequence[Dict]) -> str:
    """The rows of :func:`paper_table_rows` as a markdown table."""
    lines = ['| table | model | key | charts | params [M] | paper [M] | diff | FLOPs [G] | '
             'paper [G] | diff |',
             '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for r in rows:
        key = r['key_label']
        if r.get('cb_removed') is not None:
            key += ' w/o CB' if r['cb_removed'] else ' (CB kept: see note)'
        pf = '-' if r['paper_flops_g'] is None else f"{r['paper_flops_g']:g}"
        pp = '-' if r['paper_params_m'] is None else f"{r['paper_params_m']:g}"
        lines.append(f"| {r['table']} | {r['model']} | {key} | {r['charts'] or '-'} | "
                     f"{r['params_m']:.2f} | {pp} | "
                     f"{_pct(r['params_rel_diff'])} | {r['flops_g']:.2f} | {pf} | "
                     f"{_pct(r['flops_rel_diff'])} |")
    return '\n'.join(lines)


def table1_main(argv: Optional[list] = None) -> int:
    """``python -m mkey_det.analysis table1``: the paper's Table 1/2 (markdown, or ``--json``:
    one object with ``rows``, ``tolerance``, ``all_within_tolerance``, ``flop_convention``).
    Returns 0 (the rows say whether they are within the tolerance)."""
    parser = argparse.ArgumentParser(
        prog='python -m mkey_det.analysis table1',
        description="The paper's Table 1 and Table 2 params/FLOPs, counted, next to the paper's")
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--families', nargs='+', choices=ALL_FAMILIES, default=list(ALL_FAMILIES),
                        help='swinv2-t: counted at 256 x 256, no figures of the paper')
    parser.add_argument('--key-types', nargs='+', choices=TABLE1_KEY_TYPES,
                        default=list(TABLE1_KEY_TYPES), help='Table 1 rows of these keys only')
    parser.add_argument('--charts', type=int, default=8, help='charts of the Table 1 rows')
    parser.add_argument('--order', choices=('paper', 'fast'), default='paper',
                        help='key computation order counted (the paper: Algorithm 1 order)')
    parser.add_argument('--no-table2', action='store_true', help='Table 1 rows only')
    args = parser.parse_args(argv)
    from ..utils import json_safe, quiet_mmengine
    with quiet_mmengine():
        rows = paper_table_rows(args.families, args.charts, not args.no_table2, args.order,
                                key_types=args.key_types)
    ok = all(r['within_tolerance'] is not False for r in rows)  # None: no paper figures
    notes = sorted({r['note'] for r in rows if r['note']})
    if args.json:
        out = dict(rows=rows, tolerance=TABLE_TOLERANCE, all_within_tolerance=ok,
                   order=args.order, image=[224, 224], num_classes=1000,
                   flop_convention='fvcore (mmengine FlopAnalyzer): multiply-adds of matmuls, '
                                   'linears, convolutions and norms; '
                                   'F.scaled_dot_product_attention counted by sdpa_flop_jit',
                   vit_construction='mmpretrain VisionTransformer; ViT-S = deit-small arch '
                                    '(384, 12 blocks, 6 heads, MLP 1536), ViT-B = base arch; '
                                    'qkv bias, class token, Linear(C, 1000) head',
                   notes=notes)
        print(json.dumps(json_safe(out), allow_nan=False))
    else:
        print(format_paper_table(rows))
        print()
        for n in notes:
            print(f'Note: {n}')
        # rows without the paper's figures (SwinV2-T) are not compared: see their note
        print(f'All rows within {100 * TABLE_TOLERANCE:g}% of the paper: {"yes" if ok else "no"}')
    return 0


def main(argv: Optional[list] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == 'table1':
        table1_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog='python -m mkey_det.analysis table1 [--json]: the '
                                            "paper's Table 1 / 2 (see table1 --help)")
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
