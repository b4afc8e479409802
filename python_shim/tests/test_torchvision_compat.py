"""torchvision (needed by mmpretrain) imports next to this torch, whatever imports it first."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest
import torch

import mkey_det  # noqa: F401  (applies the fix)
from mkey_det import torchvision_compat

torchvision = pytest.importorskip('torchvision')


def test_torchvision_imports_and_its_python_parts_work():
    from torchvision.transforms import functional as F
    assert tuple(F.resize(torch.rand(3, 10, 10), [5, 5]).shape) == (3, 5, 5)
    assert torchvision_compat.state in ('ops', 'schemas-defined', 'already-imported')


def test_without_its_compiled_ops_torchvision_nms_still_fails():
    """Only schemas were defined (no kernels): nothing pretends to be torchvision's nms."""
    if torchvision.extension._has_ops():
        pytest.skip("torchvision's own ops load here: the fix did nothing")
    assert torchvision_compat.state == 'schemas-defined'
    with pytest.raises(Exception):
        torchvision.ops.nms(torch.rand(2, 4), torch.rand(2), 0.5)


@pytest.mark.skipif(not os.path.isfile(os.path.join(sysconfig.get_paths()['purelib'],
                                                    '_mkey_torchvision_compat.pth')),
                    reason='not the venv of scripts/setup-python.sh (no start-up hook)')
def test_mmdet_models_before_mkey_det():
    """A script that imports mmdet's models first (they import mmpretrain, which imports
    torchvision) works in the project's venv: the .pth start-up hook applies the fix."""
    code = 'import mmdet.models, torchvision, mmpretrain; print("ok")'
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith('ok')
