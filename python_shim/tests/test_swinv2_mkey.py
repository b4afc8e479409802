"""SwinV2 with manifold keys (``SwinTransformerV2MKey``, the third host): the linear key is the
stock model bit for bit; each manifold key starts function-preserving (at construction from its
block's linear key, after ``init_weights`` from the linear key the host's init drew); gradients
reach every parameter; Eq. 4's CB changes cosine attention (not dot-product attention); the
params/FLOPs rows of ``python -m mkey_det.analysis table1``.

Small models (narrow widths, 128 px, window 4: every stage a whole number of windows, shifted
windows with their masks in stages 0-2) keep it to seconds.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mkey_det  # noqa: F401  (first: registers the backbones, makes torchvision importable)

pytest.importorskip('mmpretrain')

from mmpretrain.models.backbones import SwinTransformerV2  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

from mkey_det.models.backbones.swinv2_mkey import (  # noqa: E402
    ManifoldKeyWindowMSAV2, SwinTransformerV2MKey, cb_attention_effect)
from mkey_det.models.keys.base import ManifoldKey  # noqa: E402
from mkey_det.models.keys.start import chart_spread, host_linear_key  # noqa: E402

MANIFOLD = ('spatialk', 'kua', 'simplek', 'vanillak')
ARCH = dict(embed_dims=8, depths=[2, 2, 2, 1], num_heads=[1, 2, 2, 4],
            extra_norm_every_n_blocks=0)
SMALL = dict(arch=ARCH, img_size=128, window_size=4, drop_path_rate=0.0, out_indices=(1, 3))


def stock(seed: int = 0) -> SwinTransformerV2:
    torch.manual_seed(seed)
    m = SwinTransformerV2(**SMALL)
    m.eval()
    return m


def mkey(key_type: str, seed: int = 0, **kw) -> SwinTransformerV2MKey:
    torch.manual_seed(seed)
    return SwinTransformerV2MKey(key_type=key_type, num_charts=3, **SMALL, **kw).eval()


@pytest.fixture(scope='module')
def image() -> torch.Tensor:
    return torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))


def test_linear_is_the_stock_model_bit_for_bit(image):
    ref, ours = stock(), mkey('linear')
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (k, a), b in zip(ref.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(ref(image), ours(image)):
        assert torch.equal(a, b)
    # registered in mmpretrain's MODELS, with the same arguments
    built = MODELS.build(dict(type='mmpretrain.SwinTransformerV2MKey', key_type='linear', **SMALL))
    assert isinstance(built, SwinTransformerV2MKey)


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_fresh_manifold_key_computes_the_linear_model(key_type, image):
    ref, ours = stock(), mkey(key_type)
    attns = list(ours.manifold_attentions())
    assert len(attns) == sum(ARCH['depths'])
    assert all(isinstance(m, ManifoldKeyWindowMSAV2) for _, m in attns)
    # the host's parameters are the stock model's (same seed), the key its function
    for a, b in zip(ref(image), ours(image)):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()
    # the stock tensors keep their names; qkv is q, key, v (no bias: q_bias / v_bias are SwinV2's)
    names = set(ours.state_dict())
    stock_names = set(ref.state_dict())
    fused = {k for k in stock_names if k.endswith('.qkv.weight')}
    assert stock_names - fused <= names
    assert all(f'{n}.qkv.q.weight' in names and f'{n}.qkv.v.weight' in names
               and f'{n}.q_bias' in names for n, _ in attns)


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_init_weights_restarts_every_key_from_the_host_linear_key(key_type):
    # a classifier's init_cfg redraws every Linear, the keys' charts included; then the restart
    m = mkey(key_type, init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02)])
    keys = [mod for mod in m.modules() if isinstance(mod, ManifoldKey)]
    assert len(keys) == sum(ARCH['depths'])
    before = [host_linear_key(key) for key in keys]  # what the start is taken from
    m.init_weights()
    for key, drawn in zip(keys, before):
        c, h = key.dim, key.num_charts
        x = torch.randn(3, 16, c, generator=torch.Generator().manual_seed(c))
        # the charts are W_k + eps_h with sum_h eps_h = 0: the key computes x W_k^T
        w_k = key.k.weight.detach().view(h, c, c).mean(0)
        assert not torch.equal(w_k, drawn)  # the host's init redrew it (TruncNormal)
        assert torch.allclose(key(x), F.linear(x, w_k), atol=1e-6, rtol=1e-4)
        assert chart_spread(key) < 0.2  # perturbations of one chart, not independent draws


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_gradient_reaches_every_parameter(key_type, image):
    m = mkey(key_type)
    m.train()
    with torch.no_grad():  # off the function-preserving start: every path of the key in use
        for key in (mod for mod in m.modules() if isinstance(mod, ManifoldKey)):
            for p in key.parameters():
                p.add_(0.05 * torch.randn_like(p))
    loss = sum(o.square().mean() for o in m(image))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_cb_mode_none_and_cb_under_cosine_attention():
    m = mkey('vanillak', key_kwargs=dict(cb_mode='none'))
    assert not any(n.endswith('gamma2') for n, _ in m.named_parameters())
    effect = cb_attention_effect(dim=16, num_heads=2, window=4, num_charts=2, windows=8)
    assert effect['dot'] < 1e-5  # Eq. 4 under dot-product attention: a softmax no-op
    assert effect['cosine'] > 1e-2  # under cosine attention: not


def test_table1_rows_for_swinv2_t_without_paper_figures():
    from mkey_det.analysis import complexity as cx
    (row, ) = cx.paper_table_rows(['swinv2-t'], key_types=['linear'], table2=False)
    assert (row['model'], row['table'], row['paper_params_m'], row['within_tolerance']) == (
        'SwinV2-T', '-', None, None)
    # mmpretrain's swinv2-tiny-w8 at 256 px (its metafile: 28.35M; SwinV2's paper: 5.9G)
    assert abs(row['params_m'] - 28.35) < 0.01
    assert abs(row['flops_g'] - 5.9) < 0.1
    assert '| - | SwinV2-T | linear | - | 28.35 | - | - |' in cx.format_paper_table([row])
