"""The cache both demo generators share (:mod:`mkey_det.data.demo_cache`): one check of a cached
dataset, the same reasons for the detection demo as for the classification one."""
from __future__ import annotations

from pathlib import Path

from mkey_det.data import demo
from mkey_det.data.demo import DemoSpec, ensure_demo_dataset
from mkey_det.data.demo_cache import cache_problem

SMALL = DemoSpec(num_train=2, num_val=1)


def test_detection_cache_is_checked_like_the_classification_one(tmp_path: Path) -> None:
    root = tmp_path / 'demo'
    assert cache_problem(root, demo._identity(0, SMALL), ('stats',)) == (None, 'no dataset at root yet')
    ensure_demo_dataset(root, spec=SMALL)
    manifest, why = cache_problem(root, demo._identity(0, SMALL), ('stats',))
    assert why is None and manifest['generator'] == 'mkey_det.data.demo'
    assert cache_problem(root, demo._identity(1, SMALL), ('stats',))[1] == 'cached dataset has seed 0, asked for seed 1'
    bigger = DemoSpec(num_train=3, num_val=1)
    assert cache_problem(root, demo._identity(0, bigger), ('stats',))[1] == 'cached dataset has another spec (num_train 2 -> 3)'


def test_a_stray_file_in_the_detection_demo_is_not_kept(tmp_path: Path) -> None:
    # MMDetection reads only the listed images, but a cache must be what the generator wrote
    root = tmp_path / 'demo'
    ensure_demo_dataset(root, spec=SMALL)
    (root / 'train2017' / 'stray.png').write_bytes(b'x')
    assert cache_problem(root, demo._identity(0, SMALL), ('stats',))[1] == 'cached dataset has an unexpected file train2017/stray.png'
    assert ensure_demo_dataset(root, spec=SMALL)['generated'] is True
    assert not (root / 'train2017' / 'stray.png').exists()
    assert ensure_demo_dataset(root, spec=SMALL)['generated'] is False
