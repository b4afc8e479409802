"""The paper's Table 1 / Table 2 counts (mkey_det.analysis.complexity), on real models."""
from __future__ import annotations

import functools
import json

import pytest
import torch

import mkey_det  # noqa: F401  (first: makes mmpretrain importable)
from mkey_det.analysis import complexity as cx
from mkey_det.models.keys import build_key
from mmpretrain.models.utils.attention import scaled_dot_product_attention_pyimpl

N = 197  # 196 patches + class token


@functools.lru_cache(maxsize=None)
def stock_counts(family: str) -> dict:
    out = cx.count_complexity(cx.build_vit(family, 'linear'))
    return dict(params=out['params'], flops=out['flops'])


def composed_counts(family: str, key_type: str, charts: int, key_kwargs=None) -> dict:
    """Stock ViT counts with each block's linear key (C^2 weights + C bias, C^2 N FLOPs)
    replaced by one key module counted on its own ``(1, N, C)`` input."""
    from mmengine.analysis import FlopAnalyzer
    arch = cx.FAMILIES[family][1]
    c, layers = arch['embed_dims'], arch['num_layers']
    key = build_key(key_type, c, N, charts, order='paper', key_kwargs=key_kwargs).eval()
    key_params = sum(p.numel() for p in key.parameters())
    with torch.no_grad():
        analyzer = FlopAnalyzer(key, (torch.zeros(1, N, c), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        key_flops = int(analyzer.total())
    base = stock_counts(family)
    return dict(params=base['params'] + layers * (key_params - c * c - c),
                flops=base['flops'] + layers * (key_flops - c * c * N))


def test_sdpa_counted_as_the_explicit_attention():
    model = cx.build_vit('vit-s', 'linear')
    with_handle = cx.count_complexity(model)
    assert 'aten::scaled_dot_product_attention' not in with_handle['skipped']
    # the same model through mmpretrain's explicit path (matmuls the counter knows)
    for layer in model.backbone.layers:
        layer.attn.scaled_dot_product_attention = scaled_dot_product_attention_pyimpl
    explicit = cx.count_complexity(model)
    assert explicit['flops'] == with_handle['flops']
    assert explicit['params'] == with_handle['params'] == 22_050_664  # timm ViT-S/16: 22.05M
    # q k^T and attn v: 2 N^2 C per block
    from mmengine.analysis import FlopAnalyzer
    for layer in model.backbone.layers:
        layer.attn.scaled_dot_product_attention = torch.nn.functional.scaled_dot_product_attention
    with torch.no_grad():
        plain = FlopAnalyzer(model, (torch.zeros(1, 3, 224, 224), ))
        plain.unsupported_ops_warnings(False)
        plain.uncalled_modules_warnings(False)
        assert with_handle['flops'] - int(plain.total()) == 12 * 2 * N * N * 384


def test_vit_s_rows_real_counter_within_3pct_of_the_paper():
    rows = cx.paper_table_rows(['vit-s'], key_types=['linear', 'spatialk'], table2=False)
    assert [(r['model'], r['key_type'], r['charts']) for r in rows] == [
        ('ViT-S/16', 'linear', None), ('ViT-S/16', 'spatialk', 8)]
    for r in rows:
        assert r['within_tolerance'], r
        assert abs(r['params_rel_diff']) <= 0.03 and abs(r['flops_rel_diff']) <= 0.03, r
        assert 'aten::scaled_dot_product_attention' not in r['skipped_ops']
        assert (r['paper_params_m'], r['paper_flops_g']) == cx.PAPER_TABLE1_ALL['vit-s',
                                                                                r['key_type']]
    # the composition below reproduces the real model's counts exactly
    spatialk = rows[1]
    assert composed_counts('vit-s', 'spatialk', 8) == dict(params=spatialk['params'],
                                                           flops=spatialk['flops'])


@pytest.mark.parametrize('family', ['vit-s', 'vit-b'])
def test_all_vit_rows_within_3pct_by_composition(family):
    for key_type in cx.TABLE1_KEY_TYPES[1:]:
        got = composed_counts(family, key_type, 8)
        paper_p, paper_f = cx.PAPER_TABLE1_ALL[family, key_type]
        assert abs(got['params'] / 1e6 / paper_p - 1) <= 0.03, (key_type, got)
        assert abs(got['flops'] / 1e9 / paper_f - 1) <= 0.03, (key_type, got)
    base = stock_counts(family)
    paper_p, paper_f = cx.PAPER_TABLE1_ALL[family, 'linear']
    assert abs(base['params'] / 1e6 / paper_p - 1) <= 0.03
    assert abs(base['flops'] / 1e9 / paper_f - 1) <= 0.03


def test_table2_rows_within_3pct_by_composition():
    kwargs = dict(cx.NO_CB_KEY_KWARGS)
    for charts, (paper_p, _) in cx.PAPER_TABLE2.items():
        got = composed_counts('vit-b', 'vanillak', charts, kwargs)
        assert abs(got['params'] / 1e6 / paper_p - 1) <= 0.03, (charts, got)


def test_table1_command_json_and_markdown(capsys):
    argv = ['--families', 'vit-s', '--key-types', 'linear', '--no-table2']
    assert cx.table1_main(argv + ['--json']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['all_within_tolerance'] is True and out['tolerance'] == 0.03
    (row, ) = out['rows']
    for field in ('family', 'key_type', 'charts', 'params_m', 'flops_g', 'paper_params_m',
                  'paper_flops_g', 'params_rel_diff', 'flops_rel_diff'):
        assert field in row
    assert (row['family'], row['key_type'], row['paper_params_m']) == ('vit-s', 'linear', 22)
    assert abs(row['params_m'] - 22.05) < 0.01
    cx.main(['table1'] + argv)  # the dispatch of ``python -m mkey_det.analysis table1``
    text = capsys.readouterr().out
    assert '| 1 | ViT-S/16 | linear | - | 22.05 | 22 | +0.2% |' in text
    assert 'All rows within 3% of the paper: yes' in text


def test_existing_invocation_and_api_kept(capsys):
    with pytest.raises(SystemExit) as e:
        cx.main(['--help'])
    assert e.value.code == 0
    assert '--charts' in capsys.readouterr().out
    swin = cx.paper_table_rows(['swin-t'], key_types=['linear'], table2=False)[0]
    assert swin['model'] == 'Swin-T' and swin['within_tolerance']
    assert swin['params'] == 28_288_354  # Swin-T with its 1000-class head
    assert callable(cx.backbone_complexity) and callable(cx.complexity_table)


def test_bad_table_arguments():
    with pytest.raises(ValueError, match='vit-x'):
        cx.paper_table_rows(['vit-x'])
    with pytest.raises(ValueError, match='nope'):
        cx.paper_table_rows(['vit-s'], key_types=['nope'])
    with pytest.raises(ValueError, match='vit-s'):
        cx.build_vit('swin-t')
