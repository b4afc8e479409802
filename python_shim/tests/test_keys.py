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
    from mkey_det.models.keys import base, folded, folded_ops, order_autotune, registry

    def relative_imports(mod):
        # siblings only (level 1): the package's own helpers (``...utils``) import no key module
        tree = ast.parse(inspect.getsource(mod))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}

    assert relative_imports(folded_ops) == set()
    assert relative_imports(order_autotune) == set()
    assert relative_imports(base) == {'folded_ops', 'order_autotune'}
    assert relative_imports(registry) == {'base'}
    assert relative_imports(folded) == {'base', 'folded_ops'}


# ---- cb_mode (KUA, VanillaK): 'eq4' (default), 'per_location', 'none' ---------------------------

CB_KEYS = ('kua', 'vanillak')


def make_cb(key_type, charts, cb_mode, order='paper', seed=0, dim=C, tokens=N):
    from mkey_det.models.keys import key_spec
    torch.manual_seed(seed)
    return key_spec(key_type).cls(dim, tokens, charts, order=order, cb_mode=cb_mode)


@pytest.mark.parametrize('key_type', CB_KEYS)
def test_cb_mode_eq4_is_the_default_bit_for_bit(key_type):
    ref = make(key_type, 4, seed=3)
    key = make_cb(key_type, 4, 'eq4', seed=3)
    assert ref.cb_mode == 'eq4'
    assert list(key.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(key.state_dict().values(),
                                                 ref.state_dict().values()))
    randomize_(ref, seed=4, scale=0.1), randomize_(key, seed=4, scale=0.1)
    for order in ('paper', 'fast'):
        ref.order = key.order = order
        for batch in (1, 6):
            x = torch.randn(batch, N, C)
            assert torch.equal(key(x), ref(x))


@pytest.mark.parametrize('key_type', CB_KEYS)
@pytest.mark.parametrize('cb_mode', ['per_location', 'none'])
@pytest.mark.parametrize('charts', [1, 4])
def test_cb_mode_function_preserving_start(key_type, cb_mode, charts):
    key = make_cb(key_type, charts, cb_mode)
    w = torch.randn(C, C) * 0.05
    key.init_from_linear(w, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, N, C)
    for order in ('paper', 'fast'):
        key.order = order
        assert rel_err(key(x), x @ w.t()) < 1e-5


@pytest.mark.parametrize('key_type', CB_KEYS)
@pytest.mark.parametrize('cb_mode', ['per_location', 'none'])
@pytest.mark.parametrize('charts', [1, 4])
@pytest.mark.parametrize('batch', [1, 6])  # 49, 294 tokens: paper, folded (C=32) for KUA
def test_cb_mode_fast_paper_and_folded_agree(key_type, cb_mode, charts, batch):
    key = randomize_(make_cb(key_type, charts, cb_mode), seed=charts, scale=0.1)
    x = torch.randn(batch, N, C, requires_grad=True)
    res = outputs_and_grads_by_order(key, x)
    assert rel_err(res['fast'][0], res['paper'][0]) < 1e-5
    for name, g in res['paper'][1].items():
        assert g.abs().sum() > 0, f'no gradient reaches {name}'
        assert rel_err(res['fast'][1][name], g) < 1e-4, name
    assert rel_err(res['fast'][2], res['paper'][2]) < 1e-4
    t = fold_key(key)  # exact, and without a window-constant CB term
    assert t.cb_pool is None and t.cb_weight is None and t.cb_scale is None
    with torch.no_grad():
        ref = key.forward_paper(x)
        assert rel_err(FoldedKey.from_key(key)(x), ref) < 1e-5
        assert rel_err(FoldedKey.from_key(key, drop_cb=True)(x), ref) < 1e-5


@pytest.mark.parametrize('key_type', CB_KEYS)
def test_cb_mode_per_location_is_the_mean_over_charts_at_each_token(key_type):
    """Literal: K[h, n] = 0.5 (K[h, n] + gamma2 * mean_h' K[h', n]), against a hand loop."""
    from mkey_det.models.keys.base import to_charts
    h = 3
    key = randomize_(make_cb(key_type, h, 'per_location'), seed=5, scale=0.2)
    x = torch.randn(2, N, C)
    with torch.no_grad():
        k = key.spatial(to_charts(key.k(x) * key.gamma, h)).view(2, h, N, C)
        cb = torch.empty_like(k)
        for n in range(N):
            m = sum(k[:, j, n] for j in range(h)) / h
            for j in range(h):
                cb[:, j, n] = 0.5 * (k[:, j, n] + key.gamma2 * m)
        if key_type == 'kua':
            ref = key.to_out(cb.transpose(1, 2).reshape(2, N, h * C))
        else:
            ref = cb.mean(dim=1)
        assert rel_err(key(x), ref) < 1e-5


@pytest.mark.parametrize('key_type,extra', [('kua', lambda h, c, n: 2 * h * c * c),
                                            ('vanillak', lambda h, c, n: h * c * c)])
def test_cb_mode_none_has_no_gamma2(key_type, extra):
    key = make_cb(key_type, 8, 'none')
    assert key.gamma2 is None and 'gamma2' not in key.state_dict()
    assert sum(p.numel() for p in key.parameters()) == extra(8, C, N) + 8 * C + 8 * N * N
    with_cb = make_cb(key_type, 8, 'per_location')
    assert sum(p.numel() for p in with_cb.parameters()) == extra(8, C, N) + 8 * C + 8 * N * N + C
    assert "cb_mode='none'" in repr(key)


def test_cb_mode_switching_and_bad_values():
    from mkey_det.models.keys.base import CB_MODES, set_cb_mode
    assert CB_MODES == ('eq4', 'per_location', 'none')
    with pytest.raises(ValueError, match='cb_mode must be one of'):
        make_cb('kua', 2, 'per_token')
    key = make_cb('vanillak', 2, 'eq4')
    key.cb_mode = 'per_location'
    assert key.cb_mode == 'per_location'
    with pytest.raises(ValueError, match="'none' has no gamma2"):
        key.cb_mode = 'none'
    with pytest.raises(ValueError, match="'none' has no gamma2"):
        make_cb('kua', 2, 'none').cb_mode = 'eq4'
    model = torch.nn.Sequential(make_cb('kua', 2, 'eq4'), build_key('spatialk', C, N, 2),
                                make_cb('vanillak', 2, 'eq4'))
    assert set_cb_mode(model, 'per_location') == 2
    assert [getattr(m, 'cb_mode', None) for m in model] == ['per_location', None, 'per_location']
    # the classes that take cb_mode say so in their signature (what key_kwargs hosts check)
    import inspect
    assert 'cb_mode' in inspect.signature(KUAKey.__init__).parameters
    assert 'cb_mode' not in inspect.signature(SpatialKey.__init__).parameters


@pytest.mark.parametrize('key_type', CB_KEYS)
def test_cb_mode_in_swin_window_attention(key_type):
    """In a Swin window attention with gamma2 != 0: Eq. 4's CB leaves the attention
    probabilities as with gamma2 = 0; per-location CB changes them."""
    from mmdet.models.backbones.swin import WindowMSA
    from mkey_det import ManifoldKeyWindowMSA
    from mkey_det.models.keys.base import set_cb_mode
    torch.manual_seed(0)
    stock = randomize_(WindowMSA(C, 4, (7, 7)), seed=1, scale=0.05).eval()
    msa = ManifoldKeyWindowMSA.from_window_msa(stock, key_type, 4).eval()
    randomize_(msa.key, seed=2, scale=0.05)
    probs = []
    msa.softmax.register_forward_hook(lambda m, i, o: probs.append(o.detach().clone()))
    x = torch.randn(3, N, C)
    g2 = torch.randn(C, generator=torch.Generator().manual_seed(3))

    def attention(gamma2, cb_mode):
        set_cb_mode(msa, cb_mode)
        with torch.no_grad():
            msa.key.gamma2.copy_(gamma2)
            msa(x)
        return probs[-1]

    base = attention(torch.zeros(C), 'eq4')
    assert rel_err(attention(g2, 'eq4'), base) < 1e-5
    assert rel_err(attention(torch.zeros(C), 'per_location'), base) < 1e-5  # gamma2 = 0: same
    changed = attention(g2, 'per_location')
    assert float((changed - base).abs().max()) > 1e-3
