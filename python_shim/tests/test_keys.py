"""Key modules: contract, function-preserving start, paper vs fast order, folding."""
import pytest
import torch

from mkey_det import (KEY_TYPES, FoldedKey, KUAKey, LinearKey, SimpleKey, SpatialKey,
                      VanillaKey, build_key, fold_backbone, fold_key, set_key_order)

from conftest import MANIFOLD, outputs_and_grads_by_order, randomize_, rel_err

C, N = 32, 49


def make(key_type, charts, order='paper', seed=0):
    torch.manual_seed(seed)
    return build_key(key_type, C, N, charts, order=order)


@pytest.mark.parametrize('key_type', MANIFOLD)
@pytest.mark.parametrize('charts', [1, 4, 8])
def test_shape_and_function_preserving_start(key_type, charts):
    key = make(key_type, charts)
    w = torch.randn(C, C) * 0.05
    key.init_from_linear(w, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, N, C)
    for order in ('paper', 'fast'):
        key.order = order
        out = key(x)
        assert out.shape == (5, N, C)
        assert rel_err(out, x @ w.t()) < 1e-5
    if charts > 1:  # the charts differ (zero-sum perturbation), their mean is W_k
        kw = key.k.weight.view(charts, C, C)
        assert not torch.allclose(kw[0], kw[1])
        assert torch.allclose(kw.mean(0), w, atol=1e-6)


@pytest.mark.parametrize('key_type', MANIFOLD)
@pytest.mark.parametrize('charts', [1, 4, 8])
@pytest.mark.parametrize('batch', [1, 6])  # 49, 294 tokens: paper, folded (C=32)
def test_paper_and_fast_give_same_outputs_and_grads(key_type, charts, batch):
    key = randomize_(make(key_type, charts), seed=charts, scale=0.1)
    x = torch.randn(batch, N, C, requires_grad=True)
    res = outputs_and_grads_by_order(key, x)
    outs = {order: out for order, (out, _, _) in res.items()}
    grads = {order: {**params, 'x': x_grad} for order, (_, params, x_grad) in res.items()}
    assert rel_err(outs['fast'], outs['paper']) < 1e-5
    for name, g in grads['paper'].items():
        assert g.abs().sum() > 0, f'no gradient reaches {name}'
        assert rel_err(grads['fast'][name], g) < 1e-4, name


@pytest.mark.parametrize('key_type', ['spatialk', 'kua'])
def test_fast_falls_back_to_paper_when_folding_costs_more(key_type):
    key = randomize_(build_key(key_type, 64, 9, 4, order='fast'), scale=0.1)
    x = torch.randn(14, 9, 64)  # 126 tokens <= 2 * 64 channels: paper order
    assert torch.equal(key(x), key.forward_paper(x))
    x = torch.randn(16, 9, 64)  # 144 tokens: folded
    assert rel_err(key(x), key.forward_paper(x)) < 1e-5


@pytest.mark.parametrize('key_type', MANIFOLD + ('linear', ))
@pytest.mark.parametrize('charts', [1, 8])
def test_folded_key_equals_key(key_type, charts):
    key = make(key_type, charts)
    if key_type != 'linear':
        randomize_(key, seed=3, scale=0.1)
    x = torch.randn(3, N, C)
    folded = FoldedKey.from_key(key)
    assert rel_err(folded(x), key(x)) < 1e-5
    t = fold_key(key)
    h = 1 if key_type == 'linear' else charts
    assert t.token_mix.shape == (h, N, N) and t.weight.shape == (h, C, C)
    assert not t.weight.requires_grad
    if key_type in ('kua', 'vanillak'):
        assert t.cb_pool.shape == (h, N)
    # a folded key from a folded key
    assert rel_err(FoldedKey.from_key(folded)(x), key(x)) < 1e-5


def test_folded_key_has_fewer_parameters_in_swin_shapes():
    for key_type in MANIFOLD:
        key = build_key(key_type, 96, 49, 8)
        n_key = sum(p.numel() for p in key.parameters())
        n_fold = sum(p.numel() for p in FoldedKey.from_key(key).parameters())
        assert n_fold < n_key, key_type


@pytest.mark.parametrize('key_type,cls,count', [
    ('spatialk', SpatialKey, lambda h, c, n: 2 * h * c * c + h * c + h * n * n),
    ('kua', KUAKey, lambda h, c, n: 2 * h * c * c + h * c + h * n * n + c),
    ('simplek', SimpleKey, lambda h, c, n: h * c * c + h * c + h * n * n),
    ('vanillak', VanillaKey, lambda h, c, n: h * c * c + h * c + h * n * n + c),
])
def test_parameter_structure(key_type, cls, count):
    key = build_key(key_type, C, N, 8)
    assert type(key) is cls and key.key_type == key_type
    assert sum(p.numel() for p in key.parameters()) == count(8, C, N)
    assert key.k.weight.shape == (8 * C, C) and key.k.bias is None
    assert key.gamma.shape == (8 * C, )
    if key_type in ('spatialk', 'kua', 'vanillak'):
        assert key.spatial.groups == 8 and key.spatial.weight.shape == (8 * N, N, 1)
    if key_type in ('spatialk', 'kua'):
        assert key.to_out.weight.shape == (C, 8 * C)
    if key_type == 'simplek':
        assert key.condense.groups == 1 and key.condense.weight.shape == (N, 8 * N, 1)


def test_linear_key():
    key = build_key('linear', C, N, 8)
    assert isinstance(key, LinearKey)
    x = torch.randn(2, N, C)
    assert torch.equal(key(x), x @ key.k.weight.t())


@pytest.mark.parametrize('kwargs,match', [
    (dict(key_type='spatial'), 'key_type'),
    (dict(key_type=None), 'key_type'),
    (dict(num_charts=0), 'num_charts'),
    (dict(num_charts=-2), 'num_charts'),
    (dict(num_charts=2.0), 'num_charts'),
    (dict(num_charts=True), 'num_charts'),
    (dict(dim=0), 'dim'),
    (dict(num_tokens=1.5), 'num_tokens'),
    (dict(order='slow'), 'order'),
    (dict(chart_noise=-1.0), 'chart_noise'),
])
def test_bad_arguments(kwargs, match):
    args = dict(key_type='spatialk', dim=C, num_tokens=N, num_charts=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_key(**args)


def test_bad_input_and_order():
    key = build_key('kua', C, N, 4)
    with pytest.raises(ValueError, match='N=49'):
        key(torch.randn(2, 16, C))
    with pytest.raises(ValueError, match='order'):
        key.order = 'folded'
    with pytest.raises(ValueError, match=r'\(32, 32\)'):
        key.init_from_linear(torch.randn(C, C + 1))


def test_set_key_order_and_fold_backbone():
    model = torch.nn.Sequential(build_key('spatialk', C, N, 2), build_key('vanillak', C, N, 2))
    randomize_(model, scale=0.1)
    assert set_key_order(model, 'paper') == 2
    assert all(m.order == 'paper' for m in model)
    x = torch.randn(3, N, C)
    ref = model(x)
    fold_backbone(model)
    assert all(isinstance(m, FoldedKey) for m in model)
    assert rel_err(model(x), ref) < 1e-5
    assert set(KEY_TYPES) == {'linear', 'spatialk', 'kua', 'simplek', 'vanillak'}


def test_lists_derive_from_the_registry():
    from mkey_det.models.keys import KEYS, MANIFOLD_KEYS, check_key_type
    assert KEY_TYPES == KEYS.key_types() == ('linear', 'spatialk', 'kua', 'simplek', 'vanillak')
    assert MANIFOLD_KEYS == {s.key_type: s.cls for s in KEYS.manifold_specs()}
    assert [KEYS.get(t).label for t in KEY_TYPES] == ['Linear', 'SpatialK', 'KUA', 'SimpleK',
                                                      'VanillaK']
    assert [KEYS.get(t).backbone_name for t in KEY_TYPES] == [
        'swin-t', 'swin-t-spatialk', 'swin-t-kua', 'swin-t-simplek', 'swin-t-vanillak']
    assert all(KEYS.get(t).cls.key_type == t for t in KEY_TYPES)
    with pytest.raises(ValueError, match="must be one of .*'vanillak'"):
        check_key_type('spatial')


def test_expansion_belongs_to_the_base_class():
    """``k`` and ``gamma`` are created by ManifoldKey.__init__; the variants only add theirs."""
    from mkey_det.models.keys import MANIFOLD_KEYS
    for key_type, cls in MANIFOLD_KEYS.items():
        assert '__init__' not in vars(cls), key_type
        key = build_key(key_type, C, N, 3)
        assert key.k.weight.shape == (3 * C, C) and key.k.bias is None
        assert key.gamma.shape == (3 * C, )


def test_no_import_cycle_between_key_modules():
    import ast
    import inspect
    from mkey_det.models.keys import base, folded, folded_ops, registry

    def relative_imports(mod):
        tree = ast.parse(inspect.getsource(mod))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}

    assert relative_imports(folded_ops) == set()
    assert relative_imports(base) == {'folded_ops'}
    assert relative_imports(registry) == {'base'}
    assert relative_imports(folded) == {'base', 'folded_ops'}
