"""Pretrained Swin weights: official and mmdet formats, function-preserving keys, refusals."""
from collections import OrderedDict

import pytest
import torch
from mmdet.models.backbones.swin import SwinTransformer, swin_converter
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

from mkey_det import SwinTransformerMKey, load_pretrained, official_from_mmdet
from mkey_det.models.backbones import read_checkpoint

from conftest import MANIFOLD, mkey_swin, randomize_, rel_err, small_cfg, stock_swin


@pytest.fixture(scope='module')
def stock():
    return stock_swin(seed=11)


@pytest.fixture(scope='module')
def official_ckpt(stock, tmp_path_factory):
    """The stock model's weights written as the official swin_*.pth (under 'model', with the
    classification head and the shifted blocks' attn_mask buffers the official files carry)."""
    sd = official_from_mmdet(stock.state_dict())
    sd['head.weight'] = torch.randn(10, 128)
    sd['head.bias'] = torch.randn(10)
    sd['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
    path = tmp_path_factory.mktemp('ckpt') / 'swin_official.pth'
    torch.save({'model': sd}, path)
    return str(path)


def pretrained_cfg(path, **kw):
    # ConfigDict: mmdet's SwinTransformer reads init_cfg.checkpoint as an attribute
    return small_cfg(init_cfg=ConfigDict(type='Pretrained', checkpoint=path), **kw)


def test_official_naming_round_trip(stock):
    back = swin_converter(official_from_mmdet(stock.state_dict()))
    for k, v in stock.state_dict().items():
        if k.startswith('norm'):
            continue  # official Swin has one final 'norm', mmdet one per output
        assert torch.equal(back['backbone.' + k], v), k
    assert torch.equal(back['backbone.norm.weight'], stock.state_dict()['norm3.weight'])


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_official_checkpoint_is_function_preserving(key_type, stock, official_ckpt, image):
    ref = SwinTransformer(convert_weights=True, **pretrained_cfg(official_ckpt))
    ref.init_weights()
    ref.eval()
    model = SwinTransformerMKey(key_type=key_type, num_charts=8, convert_weights=True,
                                **pretrained_cfg(official_ckpt))
    model.init_weights()
    model.eval()
    # each key equals the checkpoint's linear key W_k x
    sd = torch.load(official_ckpt, weights_only=True)['model']
    x = torch.randn(3, 49, 32)
    w = sd['layers.1.blocks.1.attn.qkv.weight'][32:64]
    key = model.stages[1].blocks[1].attn.w_msa.key
    assert rel_err(key(x), x @ w.t()) < 1e-5
    charts = key.k.weight.view(8, 32, 32)
    assert not torch.equal(charts[0], charts[1])  # charts differ, mean is W_k
    with torch.no_grad():
        for a, b in zip(model(image), ref(image)):
            assert rel_err(a, b) < 1e-5


def test_official_checkpoint_report_and_autodetect(official_ckpt):
    model = mkey_swin('kua', 4)
    report = load_pretrained(model, official_ckpt)  # convert=None: detected
    blocks = sum(small_cfg()['depths'])
    per_block = 4 + len(list(model.stages[0].blocks[0].attn.w_msa.key.parameters()))
    assert len(report['created']) == blocks * per_block
    assert {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'} <= set(report['ignored'])
    assert any(k.endswith('attn_mask') for k in report['ignored'])
    # as in mmdet: the official final 'norm' is not mapped onto the per-output norms
    assert set(report['missing']) == {f'norm{i}.{p}' for i in range(4) for p in ('weight',
                                                                                'bias')}
    assert 'stages.2.blocks.0.attn.w_msa.relative_position_bias_table' in report['loaded']


@pytest.mark.parametrize('layout', ['detector', 'plain', 'model'])
def test_mmdet_format(layout, stock, tmp_path, small_image):
    sd = stock.state_dict()
    if layout == 'detector':  # a whole detector checkpoint: neck/heads ignored
        ckpt = {'state_dict': OrderedDict([('backbone.' + k, v) for k, v in sd.items()] +
                                          [('neck.lateral.weight', torch.ones(3))]),
                'meta': {'epoch': 3}}
    elif layout == 'plain':
        ckpt = OrderedDict(sd)
    else:
        ckpt = {'model': OrderedDict(sd)}
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    model = MODELS.build(dict(type='SwinTransformerMKey', key_type='simplek', num_charts=4,
                              **pretrained_cfg(str(path))))
    model.init_weights()
    model.eval()
    linear = mkey_swin('linear')
    report = load_pretrained(linear, str(path))
    assert report['created'] == [] and report['missing'] == [] and report['layout'] == 'mmdet'
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(linear(small_image), stock(small_image)))
        for a, b in zip(model(small_image), stock(small_image)):
            assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize('key_type', ['spatialk', 'vanillak'])
def test_own_checkpoint_loads_back_exactly(key_type, tmp_path, small_image):
    model = randomize_(mkey_swin(key_type, 4, seed=1), seed=9)
    # as mmengine's Runner writes it: detector prefix, meta and message hub
    ckpt = {'meta': {'epoch': 1, 'seed': 0},
            'state_dict': OrderedDict(('backbone.' + k, v)
                                      for k, v in model.state_dict().items()),
            'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}}}
    path = tmp_path / 'epoch_1.pth'
    torch.save(ckpt, path)
    again = mkey_swin(key_type, 4, seed=2)
    report = load_pretrained(again, str(path))
    assert report['created'] == [] and report['missing'] == []
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(again(small_image), model(small_image)))


def test_mismatched_charts_refused(tmp_path):
    path = tmp_path / 'c4.pth'
    torch.save({'state_dict': mkey_swin('spatialk', 4).state_dict()}, path)
    with pytest.raises(ValueError, match=r'stages\.0\.blocks\.0\.attn\.w_msa\.qkv\.key\.'
                       r'(gamma|k\.weight|spatial\.weight|to_out\.weight) has shape .*'):
        load_pretrained(mkey_swin('spatialk', 8), str(path))


def test_mismatched_width_refused(official_ckpt):
    model = mkey_swin('spatialk', 2, embed_dims=24, num_heads=(1, 2, 4, 8))
    with pytest.raises(ValueError, match=r'stages\.0\.blocks\.0\.attn\.w_msa\.qkv\.weight has '
                       r'shape \(48, 16\).*\(72, 24\)'):
        load_pretrained(model, official_ckpt)
    model = mkey_swin('linear', embed_dims=24, num_heads=(1, 2, 4, 8))
    with pytest.raises(ValueError, match=r'patch_embed\.projection\.weight has shape '
                       r'\(16, 3, 4, 4\).*\(24, 3, 4, 4\)'):
        load_pretrained(model, official_ckpt)


def test_other_key_type_refused(tmp_path):
    path = tmp_path / 'kua.pth'
    torch.save(mkey_swin('kua', 2).state_dict(), path)
    with pytest.raises(ValueError, match='do not match the model'):
        load_pretrained(mkey_swin('spatialk', 2), str(path))
    with pytest.raises(ValueError, match="key_type='linear'"):
        load_pretrained(mkey_swin('linear'), str(path))


def test_unreadable_checkpoint_refused(tmp_path):
    with pytest.raises(ValueError, match='not found'):
        read_checkpoint(str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='no state dict'):
        load_pretrained(mkey_swin('simplek', 2), {'state_dict': {}})


def test_refusal_leaves_the_model_untouched(official_ckpt):
    model = mkey_swin('spatialk', 2, embed_dims=16, num_heads=(1, 2, 2, 2))  # last stage differs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match='has shape'):
        load_pretrained(model, official_ckpt)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_partial_checkpoint_refused_unless_non_strict(tmp_path, small_image):
    """Strict by default: tensors the checkpoint lacks (here the last stage) are named, the model
    untouched; strict=False (init_cfg too) loads what fits and reports the rest."""
    full = mkey_swin('spatialk', 4, seed=1).state_dict()
    partial = OrderedDict((k, v) for k, v in full.items() if not k.startswith('stages.3.'))
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': partial}, path)
    model = mkey_swin('spatialk', 4, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"does not fit the backbone \(key_type='spatialk', 4 charts\): "
                       r"\d+ of its tensors are missing from the checkpoint, first stages\.3\."):
        load_pretrained(model, str(path))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    report = load_pretrained(model, str(path), strict=False)
    assert report['missing'] and all(k.startswith('stages.3.') or k.startswith('norm') for k in report['missing'])
    built = MODELS.build(dict(type='SwinTransformerMKey', key_type='spatialk', num_charts=4,
                              **pretrained_cfg(str(path))))
    with pytest.raises(ValueError, match='missing from the checkpoint'):
        built.init_weights()
    cfg = pretrained_cfg(str(path))
    cfg['init_cfg'] = ConfigDict(type='Pretrained', checkpoint=str(path), strict=False)
    lenient = MODELS.build(dict(type='SwinTransformerMKey', key_type='spatialk', num_charts=4, **cfg))
    lenient.init_weights()


@pytest.mark.parametrize('key_type', ['linear', 'spatialk'])
def test_timm_layout_loads_like_the_official_one(key_type, stock, small_image):
    """timm >= 0.9 names: patch merging at the start of the next stage, head.fc, no index buffers."""
    import re

    official = official_from_mmdet(stock.state_dict())
    timm = OrderedDict()
    for k, v in official.items():
        if k.endswith('relative_position_index') or k.endswith('attn_mask'):
            continue
        k = re.sub(r'layers\.(\d+)\.downsample\.', lambda m: f'layers.{int(m.group(1)) + 1}.downsample.', k)
        timm[k] = v
    timm['head.fc.weight'] = torch.randn(10, 128)
    timm['head.fc.bias'] = torch.randn(10)
    assert any(k.startswith('layers.3.downsample.') for k in timm)
    model = mkey_swin(key_type, 4, seed=3)
    report = load_pretrained(model, {'model': timm})
    assert {'head.weight', 'head.bias'} <= set(report['ignored'])
    assert report['layout'] == 'timm'  # named in the log line too
    assert load_pretrained(mkey_swin(key_type, 4, seed=3), {'model': official})['layout'] == 'official'
    ref = mkey_swin(key_type, 4, seed=3)  # same init: the per-output norms (in neither file) agree
    load_pretrained(ref, {'model': official}, generator=torch.Generator().manual_seed(0))
    model = mkey_swin(key_type, 4, seed=3)
    load_pretrained(model, {'model': timm}, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(model(small_image), ref(small_image)):
            assert torch.equal(a, b)
