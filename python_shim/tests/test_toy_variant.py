"""A sixth key variant added without editing mkey_det: ``tests/toy_key.py`` registers ``'toyk'``
and everything derived from the key registry picks it up (factory, folding, the bench's literal
comparison, the backbone, MMDetection's config build, the manifest)."""
import importlib
import io
import sys

import pytest
import torch
from mmdet.registry import MODELS

from mkey_det import FoldedKey, SwinTransformerMKey, build_key, fold_backbone, fold_key
from mkey_det.bench import literal, module
from mkey_det.models.keys import KEY_TYPES, KEYS, ManifoldKey, key_types, register_key
from mkey_det.models.keys.manifest import manifest, render_ts

from conftest import outputs_and_grads_by_order, randomize_, rel_err, small_cfg

C, N, H = 24, 49, 4


@pytest.fixture(scope='module')
def toy():
    """Import (register) the toy variant for this module only; unregister it afterwards, so that
    the other test modules see the five built-in variants."""
    assert 'toyk' not in KEYS
    mod = importlib.import_module('toy_key')
    yield mod
    KEYS.unregister('toyk')
    literal.LITERAL_KEYS.pop('toyk', None)
    literal.PARAM_NAMES.pop('toyk', None)
    sys.modules.pop('toy_key', None)


def test_registered_with_its_metadata(toy):
    spec = KEYS.get('toyk')
    assert spec.cls is toy.ToyKey and toy.ToyKey.key_type == 'toyk'
    assert spec.manifold and spec.uses_charts and spec.label == 'ToyK'
    assert (spec.backbone_name, spec.backbone_label) == ('swin-t-toyk', '+ ToyK')
    assert key_types()[-1] == 'toyk'           # display order 100: after the paper's five
    assert 'toyk' not in KEY_TYPES             # the import-time snapshot keeps the built-ins


def test_manifest_lists_it(toy):
    entries = manifest()
    assert [e['keyType'] for e in entries] == list(key_types())
    assert entries[-1] == dict(keyType='toyk', label='ToyK', usesCharts=True, manifold=True,
                               backbone='swin-t-toyk', backboneLabel='+ ToyK',
                               pythonModule='toy_key')
    assert "{ keyType: 'toyk', label: 'ToyK'" in render_ts(entries)


def test_build_key_and_function_preserving_start(toy):
    torch.manual_seed(0)
    key = build_key('toyk', C, N, H, order='paper')
    assert type(key) is toy.ToyKey
    assert [n for n, _ in key.named_parameters()] == ['gamma', 'scale', 'k.weight']
    assert sum(p.numel() for p in key.parameters()) == H * C * C + 2 * H * C
    w = torch.randn(C, C) * 0.05
    key.init_from_linear(w, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, N, C)
    for order in ('paper', 'fast'):
        key.order = order
        assert rel_err(key(x), x @ w.t()) < 1e-5


def test_paper_and_fast_give_same_outputs_and_grads(toy):
    torch.manual_seed(1)
    key = randomize_(build_key('toyk', C, N, H), seed=1, scale=0.1)
    x = torch.randn(5, N, C, requires_grad=True)
    res = outputs_and_grads_by_order(key, x)
    assert rel_err(res['fast'][0], res['paper'][0]) < 1e-5
    assert rel_err(res['fast'][2], res['paper'][2]) < 1e-5
    for name, g in res['paper'][1].items():
        assert g.abs().sum() > 0 and rel_err(res['fast'][1][name], g) < 1e-4, name


def test_folds(toy):
    torch.manual_seed(2)
    key = randomize_(build_key('toyk', C, N, H, order='paper'), seed=2, scale=0.1)
    x = torch.randn(3, N, C)
    folded = FoldedKey.from_key(key)
    assert rel_err(folded(x), key(x)) < 1e-5
    t = fold_key(key)
    assert t.token_mix.shape == (H, N, N) and t.weight.shape == (H, C, C) and t.cb_pool is None
    model = torch.nn.Sequential(key)
    ref = model(x)
    fold_backbone(model)
    assert isinstance(model[0], FoldedKey) and rel_err(model(x), ref) < 1e-5


@pytest.mark.parametrize('shape', [(3, 12, 9, 5), (8, 16, 49, 2)])
def test_literal_comparison_of_the_bench(toy, shape):
    h, c, n, b = shape
    assert 'toyk' not in module.VARIANTS       # snapshot; the lookup below is live
    assert module.literal_class('toyk') is toy.LiteralToyK
    ours, lit = module.build_pair('toyk', c, n, num_charts=h, seed=1)
    assert isinstance(lit, toy.LiteralToyK)
    assert literal.PARAM_NAMES['toyk'] == toy.LiteralToyK.param_names
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, n, c, generator=g).requires_grad_(True)
    grad = torch.randn(b, n, c, generator=g)
    check = module.check_equal(ours, lit, x, grad)
    assert check['passed'] and check['output'] < 1e-5 and check['max_grad'] < 1e-5, check
    assert set(check['param_grads']) == {'k.weight', 'gamma', 'scale'}
    other, _ = module.build_pair('toyk', c, n, num_charts=h, seed=2)
    with torch.no_grad():
        assert rel_err(other(x), lit(x)) > 1e-3  # not vacuous
    # not a fold_when_cheaper variant: 'fast' always folds, same cost as the paper order
    assert module.ours_path('toyk', b * n, c) == 'folded'
    cost = module.cost_model('toyk', b * n, c, n, h)
    assert cost['paper_macs'] == cost['folded_macs'] and cost['fold_breakeven_tokens'] is None


def test_backbone_forward_fold_and_reload(toy, small_image):
    torch.manual_seed(0)
    model = SwinTransformerMKey(key_type='toyk', num_charts=2, **small_cfg()).eval()
    attns = list(model.manifold_attentions())
    assert len(attns) == sum(small_cfg()['depths'])
    assert all(type(msa.key) is toy.ToyKey and msa.key.num_charts == 2 for _, msa in attns)
    randomize_(model, seed=4, scale=0.03)
    with torch.no_grad():
        ref = model(small_image)
        assert [o.shape[1] for o in ref] == [16, 32, 64, 128]
        assert model.set_key_order('paper') == len(attns)
        assert all(rel_err(a, b) < 1e-4 for a, b in zip(model(small_image), ref))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    again = SwinTransformerMKey(key_type='toyk', num_charts=2, **small_cfg()).eval()
    again.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    fold_backbone(again)
    assert not any(isinstance(m, ManifoldKey) for m in again.modules())
    with torch.no_grad():
        assert all(rel_err(a, b) < 1e-4 for a, b in zip(again(small_image), ref))


def test_built_from_an_mmdet_config(toy):
    model = MODELS.build(dict(type='SwinTransformerMKey', key_type='toyk', num_charts=2,
                              **small_cfg()))
    assert {type(msa.key) for _, msa in model.manifold_attentions()} == {toy.ToyKey}


def test_the_registry_refuses_a_clash_and_bad_names(toy):
    with pytest.raises(KeyError, match='already registered'):
        register_key('toyk', label='Other')(type('Other', (toy.ToyKey, ), {}))
    with pytest.raises(ValueError, match='key_type must match'):
        register_key('Toy-K', label='x')
    with pytest.raises(ValueError, match="literal must be 'module:Class'"):
        register_key('toyk2', label='x', literal='nocolon')
    with pytest.raises(ValueError, match='key_type must be one of'):
        build_key('toyk2', C, N, H)
