"""mkey_det.export: size-generic rewrite, ONNX/TorchScript export, folding, parity, preprocessing.

Most tests use a narrow Swin (every structural feature of Swin-T: 4 stages, shifted windows,
patch merging, window 7, padding) so that exports take a second or two; the CLI tests
(test/export*.test.ts) export the full Swin-T.
"""
from __future__ import annotations

import os
import warnings

import pytest
import torch

from mkey_det.export import (build_backbone, count_params, export_onnx, export_torchscript,
                             fold, image_batch, parity_check, prepare_for_export, preprocess,
                             randomize_weights, read_image, rel_diff, sample_image_paths)
from mkey_det.export.backbone import export_backbone, reference_outputs
from mkey_det.export.swin_export import rewritten_modules
from mkey_det.models.keys import FoldedKey
from mkey_det.models.keys.base import ManifoldKey

SMALL = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), mlp_ratio=2)
MANIFOLD = ('spatialk', 'kua', 'simplek', 'vanillak')
#: stage output (C, H, W) of the narrow Swin at 333 x 517 (padding needed at every stage)
SHAPES_333x517 = [[16, 84, 130], [32, 42, 65], [64, 21, 33], [128, 11, 17]]


def small(key_type: str, charts: int = 2, seed: int = 0):
    return build_backbone(key_type, charts, seed=seed, **SMALL)


def test_rewrite_equals_stock_forward_exactly():
    model = small('spatialk')
    prepared = prepare_for_export(model)
    assert rewritten_modules(prepared) == dict(patch_embed=1, patch_merging=3,
                                               shift_window_msa=8)
    assert rewritten_modules(model) == dict(patch_embed=0, patch_merging=0, shift_window_msa=0)
    for b, h, w in [(1, 333, 517), (2, 64, 96), (1, 224, 224)]:
        x, _ = image_batch((h, w), b)
        with torch.no_grad():
            ref, got = model(x), prepared(x)
        assert [list(o.shape) for o in got] == [list(o.shape) for o in ref]
        for a, r in zip(got, ref):
            assert torch.equal(a, r)


def test_rewrite_refuses_absolute_position_embedding():
    from mkey_det import SwinTransformerMKey
    model = SwinTransformerMKey(key_type='linear', use_abs_pos_embed=True, pretrain_img_size=64,
                                init_cfg=None, **SMALL)
    with pytest.raises(NotImplementedError, match='use_abs_pos_embed'):
        prepare_for_export(model)


@pytest.mark.parametrize('key_type', ['linear', 'spatialk'])
def test_onnx_dynamic_parity_at_every_size(tmp_path, key_type):
    model = small(key_type)
    path = str(tmp_path / 'm.onnx')
    info = export_onnx(model, path, (1, 3, 224, 224), dynamic=True)
    assert info['opset'] == 17 and info['output_names'] == ['out0', 'out1', 'out2', 'out3']
    report = parity_check(model, path, checks=[(1, 224, 224), (1, 333, 517), (2, 64, 96)])
    assert report['passed'], report
    assert report['max_rel_diff'] < 1e-4
    shapes = report['checks'][1]['shapes']
    assert [shapes[f'out{i}'][1:] for i in range(4)] == SHAPES_333x517
    assert report['checks'][2]['shapes']['out0'][0] == 2  # dynamic batch, and correct

    import onnx
    graph = onnx.load(path).graph
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in graph.output]
    assert dims[0] == ['batch', 16, 'out0_height', 'out0_width']
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == \
        ['batch', '', 'height', 'width']


def test_onnx_fixed_shape_refuses_other_sizes(tmp_path):
    model = small('linear')
    path = str(tmp_path / 'fixed.onnx')
    export_onnx(model, path, (1, 3, 64, 96), dynamic=False)
    ok = parity_check(model, path, sizes=[(64, 96)])
    assert ok['passed']
    refused = parity_check(model, path, checks=[(1, 96, 128), (2, 64, 96)])
    assert not refused['passed']
    assert all('dimensions' in c['error'] for c in refused['checks'])


def test_stock_trace_is_caught_by_the_parity_check(tmp_path):
    """Why the rewrite exists: mmdet's own forward, traced at 224 x 224, is wrong (or fails) at
    a size needing padding and at another batch; the parity check reports it."""
    model = small('linear')
    path = str(tmp_path / 'stock.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224), ), path, dynamo=False,
                          opset_version=17, input_names=['input'],
                          dynamic_axes={'input': {0: 'b', 2: 'h', 3: 'w'}})
    report = parity_check(model, path, checks=[(1, 333, 517), (2, 224, 224)])
    assert not report['passed']
    for c in report['checks']:
        assert c['error'] is not None or c['max_rel_diff'] > 1e-2


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_fold_parity_and_smaller(key_type):
    model = small(key_type, charts=4)
    folded = fold(model)
    assert not any(isinstance(m, FoldedKey) for m in model.modules())  # original untouched
    assert any(isinstance(m, FoldedKey) for m in folded.modules())
    assert not any(isinstance(m, ManifoldKey) for m in folded.modules())
    report = parity_check(model, folded, checks=[(1, 333, 517), (2, 64, 96)], threshold=1e-5)
    assert report['passed'], report['max_rel_diff']
    if key_type in ('spatialk', 'kua'):  # the expansion and to_out products collapse
        assert count_params(folded) < count_params(model)


def test_fold_refuses_linear_key():
    with pytest.raises(ValueError, match='nothing to fold'):
        fold(small('linear'))


@pytest.mark.parametrize('key_type', ['spatialk', 'kua'])
def test_folded_onnx_matches_unfolded_pytorch(tmp_path, key_type):
    model = small(key_type, charts=2)
    path = str(tmp_path / 'folded.onnx')
    export_onnx(fold(model), path, (1, 3, 64, 96), dynamic=True)
    report = parity_check(model, path, checks=[(1, 64, 96), (1, 333, 517)])
    assert report['passed'], report['max_rel_diff']


def test_torchscript_parity_at_other_sizes(tmp_path):
    model = small('spatialk', charts=2)
    path = str(tmp_path / 'm.pt')
    info = export_torchscript(model, path, (1, 3, 64, 96))
    assert info['format'] == 'torchscript'
    report = parity_check(model, path, checks=[(1, 64, 96), (1, 333, 517), (2, 64, 96)])
    assert report['passed'], report
    folded_path = str(tmp_path / 'f.pt')
    export_torchscript(fold(model), folded_path, (1, 3, 64, 96))
    assert parity_check(model, folded_path, sizes=[(333, 517)])['passed']


def test_parity_metric():
    ref = torch.tensor([[1.0, -4.0], [2.0, 0.0]])
    assert rel_diff(ref + torch.tensor([[0.0, 0.0], [0.0, 0.02]]), ref) == pytest.approx(0.005)
    assert rel_diff(ref[:1], ref) == float('inf')
    assert rel_diff(ref * float('nan'), ref) == float('inf')


def test_checkpoint_with_backbone_prefix(tmp_path):
    src = small('spatialk', charts=2, seed=3)
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 4)
    path = str(tmp_path / 'detector.pth')
    torch.save({'state_dict': sd, 'meta': {'epoch': 1}}, path)
    loaded = build_backbone('spatialk', 2, checkpoint=path, **SMALL)
    assert loaded.export_weights_info['source'] == 'checkpoint'
    assert loaded.export_weights_info['loaded'] > 0
    x, _ = image_batch((64, 96))
    with torch.no_grad():
        for a, b in zip(loaded(x), src(x)):
            assert torch.equal(a, b)


def test_random_weights_are_seeded_and_not_identity():
    a, b, c = small('spatialk', seed=1), small('spatialk', seed=1), small('spatialk', seed=2)
    x, _ = image_batch((64, 96))
    with torch.no_grad():
        assert torch.equal(a(x)[3], b(x)[3]) and not torch.equal(a(x)[3], c(x)[3])
    key = next(m for m in a.modules() if isinstance(m, ManifoldKey))
    n = key.num_tokens
    eye = torch.eye(n).repeat(key.num_charts, 1).unsqueeze(-1)
    assert not torch.allclose(key.spatial.weight, eye)  # token mixing is not the identity
    randomize_weights(a, seed=5)
    with torch.no_grad():
        assert not torch.equal(a(x)[3], b(x)[3])


def test_preprocess_matches_mmengine_data_preprocessor():
    from mmengine.model import ImgDataPreprocessor
    dp = ImgDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                             bgr_to_rgb=True, pad_size_divisor=32, pad_value=0)
    for path in sample_image_paths():
        img = read_image(path)
        ref = dp({'inputs': [torch.from_numpy(img).permute(2, 0, 1).contiguous()]})['inputs']
        assert torch.equal(preprocess(img), ref)
    assert preprocess(img, size=(333, 517), pad_divisor=None).shape == (1, 3, 333, 517)


def test_export_backbone_bad_input_returns_before_building(tmp_path):
    out = tmp_path / 'x.onnx'
    out.write_bytes(b'old')
    r = export_backbone('spatialk', str(out))
    assert r['status'] == 'bad_input' and 'already exists' in r['message']
    assert out.read_bytes() == b'old'
    r = export_backbone('linear', str(tmp_path / 'y.onnx'), fold_keys=True)
    assert r['status'] == 'bad_input' and 'nothing to fold' in r['message']
    r = export_backbone('linear', str(tmp_path / 'y.onnx'), check_sizes=[[333, 517]])
    assert r['status'] == 'bad_input' and 'needs --dynamic' in r['message']
    r = export_backbone('linear', str(tmp_path / 'y.onnx'), checkpoint=str(tmp_path / 'no.pth'))
    assert r['status'] == 'bad_input' and 'not found' in r['message']
    r = export_backbone('linear', str(tmp_path / 'y.onnx'), input_shape=[1, 3, 16, 16])
    assert r['status'] == 'bad_input' and 'at least 32' in r['message']
    assert sorted(os.listdir(tmp_path)) == ['x.onnx']


def test_export_backbone_refuses_a_checkpoint_of_another_key_type(tmp_path):
    path = str(tmp_path / 'spatialk.pth')
    torch.save(build_backbone('spatialk', 1).state_dict(), path)
    r = export_backbone('linear', str(tmp_path / 'y.onnx'), checkpoint=path)
    assert r['status'] == 'bad_input'
    assert r['message'].startswith(f'cannot load checkpoint {path}: ')
    assert 'manifold key' in r['message']
    assert not os.path.exists(tmp_path / 'y.onnx')


def test_export_backbone_refuses_a_corrupt_checkpoint(tmp_path):
    path = tmp_path / 'broken.pth'
    path.write_bytes(b'PK\x03\x04 not really a zip' * 10)
    r = export_backbone('linear', str(tmp_path / 'y.onnx'), checkpoint=str(path))
    assert r['status'] == 'bad_input'
    assert r['message'].startswith(f'cannot load checkpoint {path}: ')
    assert '\n' not in r['message']


def test_reference_outputs_writes_npy(tmp_path):
    import numpy as np
    img = sample_image_paths()[1]  # 128 x 128
    info = reference_outputs('linear', str(tmp_path), img, size=[100, 90])
    assert info['input_shape'] == [1, 3, 128, 96]  # resized, then padded to multiples of 32
    assert np.load(tmp_path / 'out3.npy').shape == (1, 768, 4, 3)


def test_a_linear_checkpoint_is_refused_for_a_manifold_key_export(tmp_path):
    """As `test` refuses another variant's checkpoint: keys started afresh from a linear
    checkpoint would be exported under a trained variant's name."""
    path = str(tmp_path / 'swin-t.pth')
    torch.save({'state_dict': small('linear', charts=1, seed=2).state_dict()}, path)
    with pytest.raises(ValueError, match='holds linear keys .* not spatialk keys'):
        build_backbone('spatialk', 2, checkpoint=path, **SMALL)
    assert build_backbone('linear', 1, checkpoint=path, **SMALL).export_weights_info['loaded'] > 0
