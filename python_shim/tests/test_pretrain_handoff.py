"""The pretrain -> detection handoff: an mmpretrain classifier's Swin-T backbone (the registered
``SwinTransformerMKey``, as ``mkey-det pretrain`` builds it) loads into the detection backbone with
every manifold-key weight, and both give the same features."""
from __future__ import annotations

import pytest
import torch

import mkey_det  # noqa: F401  (first: registers the backbones, makes torchvision importable)
from mkey_det import SwinTransformerMKey, load_pretrained

mmpretrain = pytest.importorskip('mmpretrain')

SWIN_T = dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7,
              drop_path_rate=0.0)


def _classifier(key_type: str):
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    # another test may have left mmdet as the default scope, which would send the build there
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='mmdet.SwinTransformerMKey', out_indices=(3, ), key_type=key_type,
                          num_charts=2, init_cfg=None, **SWIN_T),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=7, in_channels=768)))


@pytest.mark.parametrize('key_type', ['spatialk', 'vanillak'])
def test_classifier_backbone_loads_into_detection_with_every_key_weight(tmp_path, key_type):
    torch.manual_seed(0)
    clf = _classifier(key_type)
    clf.init_weights()
    with torch.no_grad():  # move every key away from its function-preserving start
        for _, p in clf.backbone.named_parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': clf.state_dict(), 'meta': {}}, path)

    det = SwinTransformerMKey(out_indices=(0, 1, 2, 3), key_type=key_type, num_charts=2,
                              init_cfg=None, **SWIN_T)
    report = load_pretrained(det, str(path), convert=None, strict=True)
    assert report['created'] == []  # no key started from a linear one
    key_tensors = [k for k in det.state_dict() if '.qkv.key.' in k]
    assert key_tensors and all(k in report['loaded'] for k in key_tensors)
    assert sorted(report['ignored']) == ['head.fc.bias', 'head.fc.weight']
    # only the detection-only output norms of stages 0-2 are new
    assert sorted(report['missing']) == sorted(f'norm{i}.{w}' for i in range(3) for w in ('weight', 'bias'))

    clf.eval()
    det.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = clf.backbone(x)[0]
        got = det(x)[3]
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        # and the classifier's prediction from the detection backbone's last map
        pooled = clf.neck((got, ))[0]  # GlobalAveragePooling keeps the tuple
        torch.testing.assert_close(clf.head.fc(pooled), clf(x, mode='tensor'))


def test_backbone_output_is_a_tuple():
    """mmpretrain's GlobalAveragePooling takes a tuple, not mmdet's list."""
    m = SwinTransformerMKey(out_indices=(3, ), key_type='linear', init_cfg=None, **SWIN_T).eval()
    out = m(torch.randn(1, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == (1, 768, 2, 2)
