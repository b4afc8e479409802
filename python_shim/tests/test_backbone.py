"""SwinTransformerMKey: registration, shapes, stock equivalence, orders, folding, counts."""
import io

import pytest
import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmdet.registry import MODELS

from mkey_det import (FoldedKey, ManifoldKeyWindowMSA, SwinTransformerMKey, fold_backbone,
                      set_key_order)
from mkey_det.analysis import PAPER_TABLE1, backbone_complexity, build_swin_t

from conftest import (MANIFOLD, manifold_keys, mkey_swin, randomize_, rel_err, small_cfg,
                      stock_swin)

STAGE_SHAPES_333x517 = [(16, 84, 130), (32, 42, 65), (64, 21, 33), (128, 11, 17)]


def test_registered_and_built_from_config():
    model = MODELS.build(dict(type='SwinTransformerMKey', key_type='kua', num_charts=4,
                              **small_cfg()))
    assert isinstance(model, SwinTransformerMKey)
    attns = list(model.manifold_attentions())
    assert len(attns) == sum(small_cfg()['depths'])
    assert all(msa.key.key_type == 'kua' and msa.key.num_charts == 4 for _, msa in attns)


@pytest.mark.parametrize('key_type', MANIFOLD)
@pytest.mark.parametrize('charts', [1, 4, 8])
def test_stage_shapes_with_padding(key_type, charts, image):
    model = mkey_swin(key_type, charts)
    with torch.no_grad():
        outs = model(image)
    assert [tuple(o.shape[1:]) for o in outs] == STAGE_SHAPES_333x517
    assert all(o.shape[0] == 1 and torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_gradient_reaches_every_parameter(key_type, small_image):
    model = randomize_(mkey_swin(key_type, 4, drop_path_rate=0.1), scale=0.02)
    model.train()
    outs = model(small_image)
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    scale = max(float(g.abs().max()) for g in grads.values())
    # CB (KUA, VanillaK) adds one vector per window to every token's key: softmax ignores it,
    # so gamma2 gets rounding noise only (see the keys' docs)
    zero = [n for n, g in grads.items() if float(g.abs().max()) < 1e-6 * scale]
    assert zero == [n for n in grads if n.endswith('.gamma2')]
    new = [n for n, _ in model.named_parameters() if '.qkv.key.' in n]
    assert len(new) == sum(small_cfg()['depths']) * len(list(manifold_keys(model)[0]
                                                             .parameters()))


def test_linear_is_stock_bit_for_bit(image):
    stock = stock_swin(seed=3)
    model = mkey_swin('linear')
    assert not any(isinstance(m, ManifoldKeyWindowMSA) for m in model.modules())
    model.load_state_dict(stock.state_dict(), strict=True)
    assert list(model.state_dict()) == list(stock.state_dict())
    with torch.no_grad():
        for a, b in zip(model(image), stock(image)):
            assert torch.equal(a, b)
    # and training mode with gradients
    stock.train(), model.train()
    x = image[..., :160, :224]
    ga = torch.autograd.grad(sum(o.sum() for o in model(x)), list(model.parameters()))
    gb = torch.autograd.grad(sum(o.sum() for o in stock(x)), list(stock.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ga, gb))


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_paper_and_fast_orders_agree(key_type, small_image):
    model = randomize_(mkey_swin(key_type, 8), seed=5, scale=0.03)
    res = {}
    for order in ('paper', 'fast'):
        assert model.set_key_order(order) == sum(small_cfg()['depths'])
        model.zero_grad()
        outs = model(small_image)
        sum((o * o).sum() for o in outs).backward()
        res[order] = ([o.detach() for o in outs],
                      {n: p.grad.clone() for n, p in model.named_parameters()})
    for a, b in zip(res['fast'][0], res['paper'][0]):
        assert rel_err(a, b) < 1e-5
    scale = max(float(g.abs().max()) for g in res['paper'][1].values())
    for name, g in res['paper'][1].items():
        if name.endswith('.gamma2'):  # zero up to rounding in both orders (CB is a no-op)
            assert float(g.abs().max()) < 1e-6 * scale
            assert float(res['fast'][1][name].abs().max()) < 1e-6 * scale
        else:
            assert rel_err(res['fast'][1][name], g) < 1e-4, name


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_fold_backbone(key_type, image):
    model = randomize_(mkey_swin(key_type, 4), seed=6, scale=0.03)
    with torch.no_grad():
        ref = model(image)
        n_params = sum(p.numel() for p in model.parameters())
        fold_backbone(model)
        assert not manifold_keys(model)
        assert sum(isinstance(m, FoldedKey) for m in model.modules()) == 8
        assert sum(p.numel() for p in model.parameters()) < n_params
        for a, b in zip(model(image), ref):
            assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize('key_type', ['kua', 'vanillak'])
def test_fold_backbone_without_cb_keeps_attention(key_type, small_image):
    """CB adds one vector per window to every key: softmax ignores it."""
    model = randomize_(mkey_swin(key_type, 4), seed=8, scale=0.05)
    for key in manifold_keys(model):
        assert key.gamma2.abs().min() > 0
    with torch.no_grad():
        ref = model(small_image)
        fold_backbone(model, drop_cb=True)
        assert all(m.cb_pool is None for m in model.modules() if isinstance(m, FoldedKey))
        for a, b in zip(model(small_image), ref):
            assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize('key_type', ['linear', 'spatialk', 'vanillak'])
def test_state_dict_save_and_reload(key_type, small_image):
    model = randomize_(mkey_swin(key_type, 4, seed=1), seed=7)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    again = mkey_swin(key_type, 4, seed=2)
    again.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(again(small_image), model(small_image)))


def test_init_without_checkpoint_is_function_preserving():
    model = mkey_swin('spatialk', 4, init_cfg=None)
    model.init_weights()
    for _, msa in model.manifold_attentions():
        key = msa.key
        h, c, n = key.num_charts, key.dim, key.num_tokens
        assert torch.equal(key.spatial.weight.view(h, n, n), torch.eye(n).expand(h, n, n))
        assert torch.equal(key.gamma, torch.ones(h * c))
        charts = key.k.weight.view(h, c, c)
        assert not torch.equal(charts[0], charts[1])
        w = charts.mean(0)  # the fresh linear key
        assert 0.01 < float(w.detach().std()) < 0.03
        x = torch.randn(2, n, c)
        assert rel_err(key(x), x @ w.t()) < 1e-5
        assert torch.equal(msa.qkv.q.bias, torch.zeros(c))


def test_frozen_stages_cover_the_new_keys():
    model = mkey_swin('simplek', 2, frozen_stages=1)
    model.train()
    key = model.stages[0].blocks[0].attn.w_msa.key
    assert not key.k.weight.requires_grad and not key.training
    assert model.stages[1].blocks[0].attn.w_msa.key.k.weight.requires_grad


@pytest.mark.parametrize('kwargs,match', [
    (dict(window_size=0), 'window_size'),
    (dict(window_size=7.0), 'window_size'),
    (dict(window_size=True), 'window_size'),
    (dict(key_type='spatial'), 'key_type'),
    (dict(num_charts=0), 'num_charts'),
    (dict(num_charts=8.0), 'num_charts'),
    (dict(num_charts=False), 'num_charts'),
    (dict(key_order='quick'), 'order'),
    (dict(num_heads=(3, 2, 2, 4)), 'num_heads'),
    (dict(num_heads=(1, 2)), 'num_heads'),
    (dict(init_cfg=dict(type='Kaiming')), 'init_cfg'),
])
def test_bad_arguments(kwargs, match):
    args = dict(key_type='spatialk', num_charts=2, **small_cfg())
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        model = SwinTransformerMKey(**args)
        model.init_weights()


def test_unknown_swin_argument():
    with pytest.raises(TypeError):
        SwinTransformerMKey(key_type='kua', window=7)


@pytest.mark.parametrize('key_type', ['linear', 'spatialk', 'simplek'])
def test_swin_t_counts_match_table1(key_type):
    """Swin-T, 8 charts, 224 x 224: exact parameter count (Swin-T + per block the key's
    parameters - C^2 - C, the removed linear key) and fvcore-convention FLOPs within 3% of
    Table 1 (params with the ImageNet head, as the paper counts). KUA / VanillaK differ from
    SpatialK / SimpleK by C parameters per block (test_keys) and no counted FLOPs."""
    from mkey_det.analysis import count_complexity
    widths = [96] * 2 + [192] * 2 + [384] * 6 + [768] * 2
    per_block = {
        'linear': lambda c: c * c + c,
        'spatialk': lambda c: 2 * 8 * c * c + 8 * c + 8 * 49 * 49,
        'simplek': lambda c: 8 * c * c + 8 * c + 8 * 49 * 49,
    }[key_type]
    base = sum(p.numel() for p in SwinTransformer(init_cfg=None).parameters())
    model = build_swin_t(key_type, 8, 'paper')
    res = count_complexity(model)
    assert res['params'] == base + sum(per_block(c) - c * c - c for c in widths)
    classifier = res['params'] - 2 * (96 + 192 + 384) + 768 * 1000 + 1000  # one norm + head
    ref_params, ref_flops = PAPER_TABLE1[key_type]
    assert abs(classifier / 1e6 - ref_params) / ref_params < 0.03
    assert abs(res['flops'] / 1e9 - ref_flops) / ref_flops < 0.03, res['flops']
    # only elementwise ops / rearranges go uncounted
    assert set(res['skipped']) <= {'aten::rsub', 'aten::pad', 'aten::mul', 'aten::add',
                                   'aten::softmax', 'aten::gelu', 'aten::fill_', 'aten::sub',
                                   'aten::ne', 'aten::im2col', 'aten::div', 'aten::sum',
                                   'aten::mean'}, res['skipped']
    if key_type == 'spatialk':  # the folded order is cheaper
        set_key_order(model, 'fast')
        assert count_complexity(model)['flops'] < 0.97 * res['flops']
    if key_type == 'linear':  # the public helper counts the same
        assert backbone_complexity('linear', 8, 224, 224) == dict(params=res['params'],
                                                                 flops=res['flops'])


def test_set_key_order_rejects_bad_value():
    model = mkey_swin('kua', 2)
    with pytest.raises(ValueError, match='order'):
        set_key_order(model, 'folded')
