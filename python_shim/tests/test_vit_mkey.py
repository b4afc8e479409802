"""VisionTransformerMKey: mmpretrain's ViT with manifold keys (real models, no mocks)."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

import mkey_det  # noqa: F401  (first: makes mmpretrain importable, registers the backbones)
from mkey_det.models.backbones import ManifoldQKV
from mkey_det.models.backbones.vit_mkey import (ManifoldKeyMultiheadAttention,
                                                VisionTransformerMKey)
from mkey_det.models.keys import manifold_key_types
from mkey_det.models.keys.base import ManifoldKey
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from conftest import MANIFOLD, randomize_, rel_err

#: a small ViT: 32 px images, 8 px patches -> 4 x 4 patches + class token = 17 tokens
SMALL_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
SMALL = dict(arch=SMALL_ARCH, img_size=32, patch_size=8, out_type='raw')
#: ViT-S/16 (timm vit_small_patch16_224 / DeiT-S)
VIT_S = dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536)


def stock(seed=0, **cfg):
    torch.manual_seed(seed)
    model = VisionTransformer(**cfg)
    model.eval()  # mmpretrain's train() returns None
    return model


def mkey(key_type, seed=0, num_charts=8, **cfg):
    torch.manual_seed(seed)
    return VisionTransformerMKey(key_type=key_type, num_charts=num_charts, **cfg).eval()


def images(batch=2, size=32, seed=3):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_linear_is_stock_vit_s_bit_for_bit():
    cfg = dict(arch=VIT_S, img_size=224, patch_size=16)
    ref = stock(**cfg)
    ref.init_weights()
    model = mkey('linear', **cfg)
    model.init_weights()
    assert type(model).__mro__[1] is VisionTransformer
    sd_ref, sd = ref.state_dict(), model.state_dict()
    assert list(sd) == list(sd_ref)
    assert all(torch.equal(sd[k], sd_ref[k]) for k in sd)
    x = images(1, 224)
    with torch.no_grad():
        out, out_ref = model(x), ref(x)
    assert len(out) == len(out_ref) == 1 and out[0].shape == (1, 384)
    assert torch.equal(out[0], out_ref[0])
    assert list(model.manifold_attentions()) == [] and model.num_tokens == 197


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_function_preserving_at_construction(key_type):
    ref, model = stock(**SMALL), mkey(key_type, **SMALL)
    x = images()
    with torch.no_grad():
        out, out_ref = model(x)[0], ref(x)[0]
    assert out.shape == (2, 17, 64)
    assert torch.allclose(out, out_ref, atol=1e-5), (out - out_ref).abs().max()
    # the stock parts are the stock model's (same seed: keys are built after them)
    sd_ref = ref.state_dict()
    for k, v in model.state_dict().items():
        if '.attn.qkv.' not in k:
            assert torch.equal(v, sd_ref[k]), k
    assert len(list(model.manifold_attentions())) == 2
    assert all(isinstance(a, ManifoldKeyMultiheadAttention) and isinstance(a.qkv, ManifoldQKV)
               and isinstance(a.key, ManifoldKey) and a.key.num_tokens == 17
               for _, a in model.manifold_attentions())


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_stock_state_dict_loads_function_preservingly(key_type):
    """Random non-trivial stock weights (biases, norms, class token): loading the stock state dict
    converts each fused qkv (q, v copied, key started from W_k), strict; then the key is used."""
    ref = randomize_(stock(seed=1, **SMALL), seed=1, scale=0.3)
    model = mkey(key_type, seed=2, **SMALL)
    model.load_state_dict(ref.state_dict(), strict=True)
    x = images(4)
    with torch.no_grad():
        out, out_ref = model(x)[0], ref(x)[0]
        assert rel_err(out, out_ref) < 1e-5
        # [q | k | v] layout as MultiheadAttention splits it: q and v blocks are the stock ones
        h = torch.randn(4, 17, 64)
        a, a_ref = model.layers[0].attn.qkv(h), ref.layers[0].attn.qkv(h)
        assert torch.allclose(a[..., :64], a_ref[..., :64], atol=1e-6)
        assert torch.allclose(a[..., 128:], a_ref[..., 128:], atol=1e-6)
        # the key drops the key bias (softmax ignores it): k = x W_k^T
        w_k = ref.layers[0].attn.qkv.weight[64:128]
        assert torch.allclose(a[..., 64:128], h @ w_k.t(), atol=1e-5)
        # the key is in the path: perturbing it changes the output
        randomize_(model.layers[1].attn.key, seed=5, scale=0.3)
        assert rel_err(model(x)[0], out_ref) > 1e-3


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_paper_and_fast_orders_agree_with_backward(key_type):
    # batch 8: 8 * 17 = 136 tokens > 2 C = 128, so SpatialK / KUA fold in 'fast'
    model = randomize_(mkey(key_type, key_order='paper', **SMALL), seed=4, scale=0.1)
    model.train()
    x = images(8)
    results = {}
    for order in ('paper', 'fast'):
        assert model.set_key_order(order) == 2
        model.zero_grad()
        out = model(x)[0]
        out.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[order] = out.detach(), grads
    (o_p, g_p), (o_f, g_f) = results['paper'], results['fast']
    assert rel_err(o_f, o_p) < 1e-5
    assert set(g_p) == set(g_f)
    for n in g_p:
        assert torch.isfinite(g_p[n]).all(), n
        # absolute floor: CB's gamma2 (Eq. 4) gets a zero gradient up to rounding (softmax
        # ignores a per-row shift), so its two gradients are both ~1e-11 noise
        diff = float((g_f[n] - g_p[n]).abs().max())
        assert diff <= 1e-4 * float(g_p[n].abs().max()) + 1e-8, (n, diff)
    key_grads = [g_p[n] for n in g_p if '.attn.qkv.key.' in n]
    assert key_grads and any(g.abs().sum() > 0 for g in key_grads)


def test_bad_arguments_name_the_values():
    with pytest.raises(ValueError, match="'spatialk'") as e:
        VisionTransformerMKey(key_type='nope', **SMALL)
    assert 'nope' in str(e.value) and "'linear'" in str(e.value)
    with pytest.raises(ValueError, match='num_charts'):
        VisionTransformerMKey(key_type='spatialk', num_charts=0, **SMALL)
    with pytest.raises(ValueError, match='order'):
        VisionTransformerMKey(key_type='spatialk', key_order='slow', **SMALL)
    with pytest.raises(ValueError, match='chart_noise'):
        VisionTransformerMKey(key_type='spatialk', chart_noise=-1, **SMALL)
    with pytest.raises(ValueError, match='with_cls_token=False'):
        VisionTransformerMKey(key_type='spatialk', arch=SMALL_ARCH, img_size=32, patch_size=8,
                              with_cls_token=False)
    with pytest.raises(ValueError, match="'bogus'"):
        VisionTransformerMKey(key_type='spatialk', arch=SMALL_ARCH, out_type='bogus')
    with pytest.raises(ValueError, match='img_size'):
        VisionTransformerMKey(key_type='spatialk', arch=SMALL_ARCH, img_size=0)
    with pytest.raises(ValueError, match='divisible'):
        VisionTransformerMKey(key_type='spatialk', img_size=32, patch_size=8,
                              arch=dict(SMALL_ARCH, num_heads=3))
    with pytest.raises(ValueError, match='manifold key_type'):
        VisionTransformerMKey(key_type='linear', key_kwargs=dict(cb_mode='none'), **SMALL)
    with pytest.raises(ValueError, match='not_an_option'):
        VisionTransformerMKey(key_type='vanillak', key_kwargs=dict(not_an_option=1), **SMALL)
    with pytest.raises(TypeError):
        VisionTransformerMKey(key_type='spatialk', not_a_vit_arg=1, **SMALL)


def test_token_count_and_image_size():
    # no class token: N = 16 patches; featmap output
    cfg = dict(SMALL, out_type='featmap', with_cls_token=False)
    ref, model = stock(**cfg), mkey('kua', **cfg)
    assert model.num_tokens == 16 and model.layers[0].attn.key.num_tokens == 16
    x = images()
    with torch.no_grad():
        out = model(x)[0]
        assert out.shape == (2, 64, 4, 4)
        assert torch.allclose(out, ref(x)[0], atol=1e-5)
    # the manifold key is fixed to its token count: another patch grid is refused, naming it
    with pytest.raises(ValueError, match=r'16 tokens.*\(48, 48\).*\(6, 6\)'):
        model(images(1, 48))
    # an image that pads to the same grid is fine (mmcv's corner padding): 31 px -> 4 x 4
    assert model(images(1, 31))[0].shape == (1, 64, 4, 4)
    # the stock-layout model accepts any size
    assert mkey('linear', **cfg)(images(1, 48))[0].shape == (1, 64, 6, 6)
    # ViT-S/16 at 224: 196 patches + class token
    torch.manual_seed(0)
    big = VisionTransformerMKey(key_type='simplek', arch=dict(VIT_S, num_layers=1),
                                img_size=224, patch_size=16)
    assert big.num_tokens == 197 and big.layers[0].attn.key.num_tokens == 197


def test_registry_frozen_stages_and_pretrained_init(tmp_path):
    from mmengine.registry import DefaultScope
    # another test may have left mmdet as the default scope, which would send the build there
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        built = MODELS.build(dict(type='VisionTransformerMKey', key_type='spatialk', num_charts=2,
                                  **SMALL))
    assert isinstance(built, VisionTransformerMKey) and built.num_charts == 2
    assert built.layers[0].attn.key.num_charts == 2
    frozen = mkey('vanillak', frozen_stages=1, **SMALL)
    frozen.train()
    assert not any(p.requires_grad for p in frozen.layers[0].parameters())
    assert all(p.requires_grad for p in frozen.layers[1].parameters())
    # init_cfg Pretrained with a stock checkpoint: converted on load (mmengine's loader)
    ref = randomize_(stock(seed=7, **SMALL), seed=7, scale=0.3)
    path = tmp_path / 'vit_stock.pth'
    torch.save(dict(state_dict=ref.state_dict()), path)
    model = mkey('simplek', init_cfg=dict(type='Pretrained', checkpoint=str(path)), **SMALL)
    model.init_weights()
    x = images()
    with torch.no_grad():
        assert rel_err(model(x)[0], ref(x)[0]) < 1e-5
    # other init_cfg: keys restart from a fresh linear key (function-preserving structure)
    other = mkey('spatialk', init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02), **SMALL)
    other.init_weights()
    key = other.layers[0].attn.key
    assert torch.equal(key.spatial.weight.view(8, 17, 17)[0], torch.eye(17))
    # a deep copy keeps working (the load hook is bound to the copy)
    twin = copy.deepcopy(model)
    twin.load_state_dict(ref.state_dict())
    with torch.no_grad():
        assert rel_err(twin(x)[0], ref(x)[0]) < 1e-5


def test_key_kwargs_reach_the_key():
    """Table 2's "VanillaK without CB": ``key_kwargs=dict(cb_mode='none')`` reaches the key."""
    ref = stock(**SMALL)
    model = mkey('vanillak', key_kwargs=dict(cb_mode='none'), **SMALL)
    with_cb = mkey('vanillak', **SMALL)
    assert model.key_kwargs == dict(cb_mode='none')
    assert all(a.key.cb_mode == 'none' and a.key.gamma2 is None
               for _, a in model.manifold_attentions())
    n_params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in with_cb.parameters()) - n_params == 2 * 64
    x = images()
    with torch.no_grad():
        assert torch.allclose(model(x)[0], ref(x)[0], atol=1e-5)
    with pytest.raises(ValueError, match='cb_mode'):
        mkey('vanillak', key_kwargs=dict(cb_mode='bogus'), **SMALL)
    with pytest.raises(ValueError, match=r"key_kwargs \['colour'\] are not options of VanillaKey"):
        mkey('vanillak', key_kwargs=dict(colour='red'), **SMALL)


def test_manifold_key_types_are_all_accepted():
    assert set(MANIFOLD) <= set(manifold_key_types())


def test_mkey_det_imports_without_mmpretrain():
    code = ("import sys; sys.modules['mmpretrain'] = None\n"
            "import mkey_det.models.backbones as b\n"
            "assert not hasattr(b, 'VisionTransformerMKey'), b\n"
            "assert 'VisionTransformerMKey' not in b.__all__\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith('ok')
