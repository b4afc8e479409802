"""mkey_det.cli.cfg_types: --cfg-options values that mmengine would resolve as a type or a scope
must be registered names; anything else (it would be imported, and called) is a problem."""
from __future__ import annotations

import pytest

from mkey_det.cli.cfg_types import check_type_names


@pytest.mark.parametrize('key, value, reason', [
    ('default_hooks.timer.type', 'os.system', 'type'),  # imports os, calls os.system(**cfg)
    ('model.type', 'antigravity', 'type'),  # an undotted module name: imported, its code runs
    ('model.type', 'mmdet.init_detector', 'type'),  # a function of the scope, not registered
    ('model.type', '"os.system"', 'type'),  # quoted, as DictAction strips the quotes
    ('model.type', 'mmdet.MaskRCNN,os.system', 'type'),  # a list: every item checked
    ('runner_type', 'subprocess.Popen', 'type'),
    ('default_scope', 'os', 'scope'),  # imported as os.registry
    ('model._scope_', 'evil', 'scope'),
])
def test_refused(key, value, reason):
    (problem,) = check_type_names([[key, value]])
    assert problem['key'] == key and problem['reason'] == reason
    assert 'mmdet' in problem['accepted'] and 'mmpretrain' in problem['accepted']


@pytest.mark.parametrize('key, value', [
    ('model.type', 'MaskRCNN'),
    ('model.type', 'mmdet.MaskRCNN'),
    ('model.backbone.type', 'SwinTransformerMKey'),  # mkey_det's own, registered into mmdet
    ('model.backbone.type', 'mmpretrain.VisionTransformerMKey'),
    ('default_hooks.timer.type', 'IterTimerHook'),  # mmengine's
    ('default_scope', 'mmpretrain'),
    ('model.backbone.drop_path_rate', 'os.system'),  # not a type key: plain data
])
def test_accepted(key, value):
    assert check_type_names([[key, value]]) == []
