"""The manifold key's start in every host, built as the CLI's configs build it (real models).

Hosts: Swin-T's detection backbone (mmdet's Mask R-CNN Swin-T 3x config, ``SwinTransformerMKey``,
no checkpoint), and the classifiers of ``mkey-det pretrain``: mmpretrain's Swin-T
(``swin-tiny_16xb64_in1k``) and DeiT-S (``deit-small_4xb256_in1k``) configs with the backbone
replaced as ``src/core/config/render-classification.ts`` replaces it. Each is built with
``MODELS.build`` and initialised with ``init_weights()``, full size, 8 charts.

The rule (:mod:`mkey_det.models.keys.start`): after the host's own initialisation of a fresh
model, every key restarts function-preservingly from the linear key the host initialised (the
first chart of its expansion ``k``); never after weights were loaded.

The chart spread of a key (:func:`~mkey_det.models.keys.start.chart_spread`): the std across its
H charts (population std per entry of ``k``'s ``C x C`` chart blocks, pooled as a root mean
square) divided by the std of the charts' mean; averaged over the model's keys. A
function-preserving start with ``chart_noise`` 0.1 gives about 0.094; H = 8 independently drawn
charts give about ``sqrt(H - 1)`` = 2.65. Two states are measured: "host init", what the host's
initialisation alone leaves (the classifier's ``init_cfg``, then the stock backbone's
``init_weights``): in every host the charts redrawn independently (about 2.65) and ``to_out``
redrawn; and the model after ``init_weights`` (about 0.094, ``to_out = I/H``). The figures are
printed as one table per host (``test_start_figures_table``).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import mkey_det  # noqa: F401  (first: registers the backbones, makes torchvision importable)
from mkey_det.models.keys.base import ManifoldKey
from mkey_det.models.keys.start import chart_spread, host_linear_key

from conftest import MANIFOLD, mkey_swin, randomize_, rel_err, small_cfg

mmpretrain = pytest.importorskip('mmpretrain')

from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.model import initialize  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

_MMPRETRAIN_CONFIGS = Path(mmpretrain.__file__).parent / '.mim' / 'configs'
_MMDET_CONFIGS = Path(__import__('mmdet').__file__).parent / '.mim' / 'configs'
HOSTS = ('swin-t detection', 'swin-t classifier', 'vit-s classifier')
CHARTS = 8
NUM_CLASSES = 10

#: host -> variant -> figures; printed by test_start_figures_table
FIGURES: dict = {}


def _swin_classifier_backbone(key_type: str) -> dict:
    """``swinBackbone`` of render-classification.ts (paper recipe, 8 charts)."""
    return dict(type='mmdet.SwinTransformerMKey', embed_dims=96, depths=(2, 2, 6, 2),
                num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4, qkv_bias=True,
                patch_norm=True, drop_path_rate=0.2, out_indices=(3, ), key_type=key_type,
                num_charts=CHARTS, init_cfg=None)


def host_cfg(host: str, key_type: str) -> ConfigDict:
    """The model part of the CLI's config for ``host`` with ``key_type``."""
    if host == 'swin-t detection':
        cfg = Config.fromfile(str(_MMDET_CONFIGS / 'swin' /
                                  'mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py')).model.backbone
        cfg.update(type='SwinTransformerMKey', key_type=key_type, num_charts=CHARTS, init_cfg=None)
        return cfg
    if host == 'swin-t classifier':
        cfg = Config.fromfile(str(_MMPRETRAIN_CONFIGS / 'swin_transformer' /
                                  'swin-tiny_16xb64_in1k.py')).model
        cfg.backbone = ConfigDict(_swin_classifier_backbone(key_type))
    else:
        cfg = Config.fromfile(str(_MMPRETRAIN_CONFIGS / 'deit' / 'deit-small_4xb256_in1k.py')).model
        cfg.backbone.update(type='VisionTransformerMKey', img_size=224, key_type=key_type,
                            num_charts=CHARTS)
    cfg.head.num_classes = NUM_CLASSES
    return cfg


def build(host: str, cfg: ConfigDict, seed: int = 0) -> torch.nn.Module:
    """``MODELS.build`` in the registry (and default scope) the CLI's config runs in."""
    torch.manual_seed(seed)
    if host == 'swin-t detection':
        from mmdet.registry import MODELS
        with DefaultScope.overwrite_default_scope('mmdet'):
            return MODELS.build(cfg)
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def backbone_of(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, 'backbone', model)


def host_init_only(host: str, model: torch.nn.Module) -> None:
    """The host's own initialisation without the keys' restart: the classifier's ``init_cfg``
    (what mmengine's ``BaseModule.init_weights`` applies first), then the stock backbone's
    ``init_weights`` (mmpretrain's ``VisionTransformer``, mmdet's ``SwinTransformer``)."""
    from mmdet.models.backbones.swin import SwinTransformer
    from mmpretrain.models.backbones import VisionTransformer
    if host != 'swin-t detection':
        initialize(model, [c for c in model.init_cfg if c['type'] != 'Pretrained'])
    stock = VisionTransformer if host == 'vit-s classifier' else SwinTransformer
    stock.init_weights(backbone_of(model))


def manifold_keys(model: torch.nn.Module):
    return [m for m in model.modules() if isinstance(m, ManifoldKey)]


def mean_spread(model: torch.nn.Module) -> float:
    keys = manifold_keys(model)
    return sum(chart_spread(k) for k in keys) / len(keys)


def to_out_at_start(key: ManifoldKey):
    """Whether ``to_out`` is the start's ``[I/H ... I/H] / s`` (None: the variant has none)."""
    if not hasattr(key, 'to_out'):
        return None
    h, c = key.num_charts, key.dim
    want = torch.eye(c).repeat(1, h) / (h * key._main_scale)
    return torch.equal(key.to_out.weight, want)


def linear_twin_state(model: torch.nn.Module) -> 'OrderedDict[str, torch.Tensor]':
    """``model``'s state dict for the same model with linear keys: every shared tensor as it is,
    each fused ``qkv`` = ``[q; W_k; v]`` (bias ``[b_q; 0; b_v]``) with ``W_k`` the mean of the
    key's charts (the linear key a function-preserving start equals)."""
    sd = model.state_dict()
    out = OrderedDict()
    for k, v in sd.items():
        if '.qkv.' not in k:
            out[k] = v
            continue
        p = k.split('.qkv.', 1)[0] + '.qkv.'
        if p + 'weight' in out:
            continue
        c = sd[p + 'q.weight'].shape[0]
        w_k = sd[p + 'key.k.weight'].view(-1, c, c).mean(dim=0)
        out[p + 'weight'] = torch.cat([sd[p + 'q.weight'], w_k, sd[p + 'v.weight']])
        if p + 'q.bias' in sd:
            out[p + 'bias'] = torch.cat([sd[p + 'q.bias'], torch.zeros(c), sd[p + 'v.bias']])
    return out


def features(host: str, model: torch.nn.Module, x: torch.Tensor):
    with torch.no_grad():
        if host == 'swin-t detection':
            return tuple(model(x))
        return tuple(model.extract_feat(x))


#: Each host with a variant that has ``to_out`` (SpatialK) and one that has not (VanillaK): the
#: rule is one helper for all variants, and a full-size case costs 15-70 s on 2 cores. The figures
#: of every variant are in docs/PRETRAIN.md.
CASES = [(host, k) for host in HOSTS for k in ('spatialk', 'vanillak')]


@pytest.mark.parametrize(('host', 'key_type'), CASES)
def test_fresh_model_starts_from_the_hosts_linear_key(host, key_type):
    cfg = host_cfg(host, key_type)
    model = build(host, cfg, seed=0)
    # the host's initialisation alone on a copy, with the same random draws: the linear keys
    # it drew
    before = copy.deepcopy(model)
    rng = torch.get_rng_state()
    host_init_only(host, before)
    torch.set_rng_state(rng)
    drawn = [host_linear_key(k) for k in manifold_keys(before)]
    spread_host = mean_spread(before)
    to_out_host = [to_out_at_start(k) for k in manifold_keys(before)]
    del before

    model.init_weights()
    model.eval()
    keys = manifold_keys(model)
    assert len(keys) == len(drawn) == 12
    spread = mean_spread(model)
    to_out = [to_out_at_start(k) for k in keys]
    # each key starts from the linear key the host drew: the charts' mean, and nothing else
    for key, w in zip(keys, drawn):
        charts = key.k.weight.view(CHARTS, key.dim, key.dim)
        torch.testing.assert_close(charts.mean(dim=0), w, rtol=0, atol=1e-7)
        assert not torch.equal(charts[0], charts[1])
    assert 0.07 < spread < 0.12, spread
    assert all(t in (None, True) for t in to_out)
    # the host's init had redrawn the charts independently (and to_out)
    assert 2.4 < spread_host < 2.9, spread_host
    assert all(t in (None, False) for t in to_out_host)

    # the fresh model computes what the same model with the host's linear keys computes
    twin = build(host, host_cfg(host, 'linear'), seed=1)
    twin.load_state_dict(linear_twin_state(model), strict=True)
    twin.eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    got, want = features(host, model, x), features(host, twin, x)
    assert len(got) == len(want) >= 1
    err = max(rel_err(a, b) for a, b in zip(got, want))
    assert err < 1e-4, err
    w_std = sum(float(w.std()) for w in drawn) / len(drawn)
    FIGURES.setdefault(host, {})[key_type] = dict(
        host_init=spread_host, after=spread, to_out=to_out[0], to_out_host=to_out_host[0],
        err=err, w_std=w_std)


def test_start_figures_table(capsys):
    """The figures of the test above, one table per host (visible with or without ``-s``)."""
    if not FIGURES:
        pytest.skip('run with test_fresh_model_starts_from_the_hosts_linear_key')

    def yes(v):
        return '-' if v is None else 'yes' if v else 'no'

    lines = []
    for host, rows in FIGURES.items():
        lines += ['', f'{host} (8 charts, chart_noise 0.1): chart spread, to_out == I/H, '
                  'max rel. error vs the same model with the host-drawn linear keys',
                  '| variant | spread after host init | spread after init_weights | '
                  'to_out at start (host init -> init_weights) | std(W_k) | rel. err. |',
                  '| --- | ---: | ---: | --- | ---: | ---: |']
        for variant in MANIFOLD:
            if variant in rows:
                r = rows[variant]
                lines.append(f"| {variant} | {r['host_init']:.3f} | {r['after']:.3f} | "
                             f"{yes(r['to_out_host'])} -> {yes(r['to_out'])} | "
                             f"{r['w_std']:.4f} | {r['err']:.1e} |")
    with capsys.disabled():
        print('\n'.join(lines))


# --- a checkpoint is never disturbed (small models) ---------------------------------------------

SMALL_VIT = dict(arch=dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128),
                 img_size=32, patch_size=8)


def small_vit_classifier(key_type: str, backbone_init_cfg=None, init_cfg=None):
    cfg = Config.fromfile(str(_MMPRETRAIN_CONFIGS / 'deit' / 'deit-small_4xb256_in1k.py')).model
    cfg.backbone = ConfigDict(type='VisionTransformerMKey', key_type=key_type, num_charts=2,
                              init_cfg=backbone_init_cfg, **SMALL_VIT)
    cfg.head.update(num_classes=NUM_CLASSES, in_channels=64)
    if init_cfg is not None:
        cfg.init_cfg = cfg.init_cfg + [init_cfg]
    return build('vit-s classifier', cfg, seed=3)


def test_vit_backbone_alone_restarts_from_its_built_first_chart():
    """Without a classifier, mmpretrain's ViT init leaves the attentions as built: the restart
    starts from the built first chart (same scale), and the model still equals the same model
    with that linear key."""
    from mkey_det.models.backbones import VisionTransformerMKey
    torch.manual_seed(0)
    vit = VisionTransformerMKey(key_type='spatialk', num_charts=2, **SMALL_VIT)
    first = [host_linear_key(k) for k in manifold_keys(vit)]
    vit.init_weights()
    vit.eval()
    for key, w in zip(manifold_keys(vit), first):
        charts = key.k.weight.view(2, 64, 64)
        torch.testing.assert_close(charts.mean(dim=0), w, rtol=0, atol=1e-7)
        assert not torch.equal(charts[0], w) and to_out_at_start(key)
    twin = VisionTransformerMKey(key_type='linear', **SMALL_VIT)
    twin.load_state_dict(linear_twin_state(vit), strict=True)
    twin.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(vit(x)[0], twin(x)[0]) < 1e-5


def test_vit_pretrained_backbone_starts_from_the_checkpoint_not_the_host(tmp_path):
    """Backbone ``init_cfg=Pretrained`` with a stock ViT: the keys come from the checkpoint's
    linear keys (converted on load), whatever the classifier's TruncNormal drew first."""
    from mmpretrain.models.backbones import VisionTransformer
    torch.manual_seed(7)
    stock = randomize_(VisionTransformer(**SMALL_VIT), seed=7, scale=0.3)
    stock.eval()  # mmpretrain's train() returns None
    path = tmp_path / 'vit.pth'
    torch.save(dict(state_dict=stock.state_dict()), path)
    clf = small_vit_classifier('kua', ConfigDict(type='Pretrained', checkpoint=str(path)))
    clf.init_weights()
    clf.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(clf.backbone(x)[0], stock(x)[0]) < 1e-5
    w_k = stock.layers[1].attn.qkv.weight[64:128]
    key = clf.backbone.layers[1].attn.key
    torch.testing.assert_close(key.k.weight.view(2, 64, 64).mean(0), w_k, rtol=0, atol=1e-6)


@pytest.mark.parametrize('key_type', ['spatialk', 'vanillak'])
def test_classifier_checkpoint_loads_after_the_start(tmp_path, key_type):
    """A trained manifold classifier loaded by the classifier's own ``init_cfg`` (mmengine loads
    ``Pretrained`` after the children's ``init_weights``), or by ``load_state_dict`` after
    ``init_weights`` (the Runner's ``load_from`` / ``resume``): every tensor is the checkpoint's."""
    trained = small_vit_classifier(key_type)
    trained.init_weights()
    randomize_(trained, seed=11, scale=0.05)
    path = tmp_path / 'clf.pth'
    torch.save(dict(state_dict=trained.state_dict()), path)
    want = trained.state_dict()

    by_cfg = small_vit_classifier(key_type, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    by_cfg.init_weights()
    by_load = small_vit_classifier(key_type)
    by_load.init_weights()
    by_load.load_state_dict(want)
    for model in (by_cfg, by_load):
        got = model.state_dict()
        assert list(got) == list(want)
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_vit_second_init_weights_does_not_restart():
    """mmengine initialises a module once: a second ``init_weights`` (e.g. after a load) leaves
    the keys as they are (mmpretrain's own ``VisionTransformer.init_weights`` still redraws
    ``pos_embed`` on every call: the stock host's behaviour, not the keys')."""
    clf = small_vit_classifier('simplek')
    clf.init_weights()
    randomize_(clf.backbone, seed=2, scale=0.05)
    state = copy.deepcopy(clf.backbone.state_dict())
    clf.backbone.init_weights()
    keys = [k for k in state if '.qkv.key.' in k]
    assert keys and all(torch.equal(clf.backbone.state_dict()[k], state[k]) for k in keys)


def test_swin_pretrained_backbone_is_loaded_not_restarted(tmp_path):
    """Swin-T classifier whose backbone loads a manifold-key checkpoint (``--pretrained`` of a
    pretrain run): every key tensor is the checkpoint's, not restarted."""
    src = randomize_(mkey_swin('spatialk', 2, seed=4), seed=4, scale=0.05)
    path = tmp_path / 'swin.pth'
    torch.save(dict(state_dict=src.state_dict()), path)
    cfg = Config.fromfile(str(_MMPRETRAIN_CONFIGS / 'swin_transformer' /
                              'swin-tiny_16xb64_in1k.py')).model
    cfg.backbone = ConfigDict(type='mmdet.SwinTransformerMKey', key_type='spatialk', num_charts=2,
                              **dict(small_cfg(), init_cfg=ConfigDict(type='Pretrained',
                                                                       checkpoint=str(path))))
    cfg.head.update(num_classes=NUM_CLASSES, in_channels=16 * 8)
    clf = build('swin-t classifier', cfg, seed=5)
    clf.init_weights()
    got, want = clf.backbone.state_dict(), src.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
