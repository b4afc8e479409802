"""The synthetic classification demo: deterministic, balanced, readable by mmpretrain, cached, atomic."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from mkey_det.data import demo_cls
from mkey_det.data.demo_cls import (
    CLS_CLASSES,
    DEFAULT_CLS_SPEC,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    ClsDemoSpec,
    ensure_demo_cls_dataset,
    generate_demo_cls_dataset,
)

#: 2 train and 1 val image per class at 32 px: 30 small files, well under a second.
SMALL = ClsDemoSpec(image_size=32, num_train_per_class=2, num_val_per_class=1)


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*'))
        if p.is_file()
    }


def test_classes_are_shape_x_colour_family_in_folder_order() -> None:
    assert len(CLS_CLASSES) == 10
    assert list(CLS_CLASSES) == sorted(CLS_CLASSES)  # mmpretrain numbers the sorted folders
    assert {c.rsplit('_', 1)[1] for c in CLS_CLASSES} == {'warm', 'cool'}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate_demo_cls_dataset(tmp_path / 'a', seed=3, spec=SMALL)
    b = generate_demo_cls_dataset(tmp_path / 'b', seed=3, spec=SMALL)
    assert a['generated'] and b['generated']
    da, db = _digests(tmp_path / 'a'), _digests(tmp_path / 'b')
    assert len(da) == 10 * (2 + 1) + 1  # images + manifest
    assert da == db
    generate_demo_cls_dataset(tmp_path / 'c', seed=4, spec=SMALL)
    dc = _digests(tmp_path / 'c')
    assert dc.keys() == da.keys()
    assert dc['train/circle_warm/0000.png'] != da['train/circle_warm/0000.png']
    # every image of a dataset differs from every other one
    images = [v for k, v in da.items() if k.endswith('.png')]
    assert len(set(images)) == len(images)


def test_default_dataset_is_balanced_and_summarised(tmp_path: Path) -> None:
    root = tmp_path / 'demo-cls-v1'
    summary = ensure_demo_cls_dataset(root)
    spec = DEFAULT_CLS_SPEC
    assert summary == {
        'root': str(root),
        'train_dir': str(root / 'train'),
        'val_dir': str(root / 'val'),
        'classes': list(CLS_CLASSES),
        'num_train': 10 * spec.num_train_per_class,
        'num_val': 10 * spec.num_val_per_class,
        'counts': {
            'train': {c: spec.num_train_per_class for c in CLS_CLASSES},
            'val': {c: spec.num_val_per_class for c in CLS_CLASSES},
        },
        'image_size': spec.image_size,
        'seed': 0,
        'version': GENERATOR_VERSION,
        'generated': True,
        'reason': 'no dataset at root yet',
    }
    json.dumps(summary, allow_nan=False)  # JSON-safe, for the bridge
    for split, per_class in (('train', spec.num_train_per_class), ('val', spec.num_val_per_class)):
        assert sorted(p.name for p in (root / split).iterdir()) == list(CLS_CLASSES)
        for c in CLS_CLASSES:
            files = sorted((root / split / c).iterdir())
            assert [p.name for p in files] == [f'{i:04d}.png' for i in range(per_class)]
    img = cv2.imread(str(root / 'val' / 'star_cool' / '0000.png'), cv2.IMREAD_UNCHANGED)
    assert img.shape == (spec.image_size, spec.image_size, 3) and img.dtype.name == 'uint8'


def test_layout_is_read_by_mmpretrain_custom_dataset(tmp_path: Path) -> None:
    import mkey_det  # noqa: F401  (lets mmpretrain import next to a CPU torch)
    from mmpretrain.datasets import CustomDataset

    root = tmp_path / 'cls'
    ensure_demo_cls_dataset(root, spec=SMALL)
    for split, per_class in (('train', SMALL.num_train_per_class), ('val', SMALL.num_val_per_class)):
        ds = CustomDataset(data_root=str(root), data_prefix=split, with_label=True, metainfo={'classes': CLS_CLASSES})
        assert len(ds) == 10 * per_class
        assert ds.CLASSES == CLS_CLASSES
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            folder = Path(info['img_path']).parent.name
            assert info['gt_label'] == CLS_CLASSES.index(folder)
            assert Path(info['img_path']).is_file()
        # without metainfo the class names come from the folders, in the same order
        assert CustomDataset(data_root=str(root), data_prefix=split, with_label=True).CLASSES == CLS_CLASSES


def test_second_call_reuses_without_regenerating(tmp_path: Path) -> None:
    root = tmp_path / 'cls'
    first = ensure_demo_cls_dataset(root, seed=1, spec=SMALL)
    stamp = (root / MANIFEST_NAME).stat().st_mtime_ns
    again = ensure_demo_cls_dataset(root, seed=1, spec=dict(dataclasses.asdict(SMALL)))  # a mapping, as from the bridge
    assert first['generated'] and not again['generated']
    assert again['reason'] is None
    assert {k: v for k, v in again.items() if k not in ('generated', 'reason')} == {
        k: v for k, v in first.items() if k not in ('generated', 'reason')
    }
    assert (root / MANIFEST_NAME).stat().st_mtime_ns == stamp
    forced = ensure_demo_cls_dataset(root, seed=1, spec=SMALL, force=True)
    assert forced['generated'] and forced['reason'] == 'forced'


@pytest.mark.parametrize(
    'change, reason',
    [
        (dict(seed=2), 'cached dataset has seed 1, asked for seed 2'),
        (dict(spec=dataclasses.replace(SMALL, image_size=40)), 'cached dataset has another spec (image_size 32 -> 40)'),
        (dict(spec=dataclasses.replace(SMALL, num_val_per_class=2)), 'cached dataset has another spec (num_val_per_class 1 -> 2)'),
    ],
)
def test_seed_or_spec_change_regenerates_and_says_why(tmp_path: Path, change: dict, reason: str) -> None:
    root = tmp_path / 'cls'
    ensure_demo_cls_dataset(root, seed=1, spec=SMALL)
    kwargs = {'seed': 1, 'spec': SMALL, **change}
    out = ensure_demo_cls_dataset(root, **kwargs)
    assert out['generated'] and out['reason'] == reason
    assert json.loads((root / MANIFEST_NAME).read_text())['seed'] == kwargs['seed']
    assert _digests(root) == _digests(Path(generate_demo_cls_dataset(tmp_path / 'fresh', **kwargs)['root']))


def test_version_change_regenerates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / 'cls'
    ensure_demo_cls_dataset(root, spec=SMALL)
    monkeypatch.setattr(demo_cls, 'GENERATOR_VERSION', GENERATOR_VERSION + 1)
    out = ensure_demo_cls_dataset(root, spec=SMALL)
    assert out['generated'] and out['version'] == GENERATOR_VERSION + 1
    assert out['reason'] == f'cached dataset is generator version {GENERATOR_VERSION}, this is version {GENERATOR_VERSION + 1}'


def test_changed_missing_or_extra_files_regenerate(tmp_path: Path) -> None:
    root = tmp_path / 'cls'
    ensure_demo_cls_dataset(root, spec=SMALL)
    good = _digests(root)
    victim = root / 'train' / 'square_cool' / '0001.png'
    victim.write_bytes(victim.read_bytes()[:-10])
    out = ensure_demo_cls_dataset(root, spec=SMALL)
    assert out['generated'] and out['reason'] == 'cached file train/square_cool/0001.png is missing or changed'
    assert _digests(root) == good
    victim.unlink()
    assert ensure_demo_cls_dataset(root, spec=SMALL)['reason'] == 'cached file train/square_cool/0001.png is missing or changed'
    (root / 'val' / 'star_warm' / 'stray.png').write_bytes(b'x')  # mmpretrain would read it as a sample
    assert ensure_demo_cls_dataset(root, spec=SMALL)['reason'] == 'cached dataset has an unexpected file val/star_warm/stray.png'
    assert _digests(root) == good


def test_detection_demo_root_is_not_taken_for_a_classification_one(tmp_path: Path) -> None:
    from mkey_det.data.demo import DemoSpec, ensure_demo_dataset

    root = tmp_path / 'shared'
    ensure_demo_dataset(root, spec=DemoSpec(num_train=1, num_val=1))
    out = ensure_demo_cls_dataset(root, spec=SMALL)
    assert out['generated'] and out['reason'] == "root holds data of another generator ('mkey_det.data.demo')"
    assert not (root / 'train2017').exists()


def test_interrupted_generation_does_not_count_as_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / 'cls'
    real_imwrite = cv2.imwrite
    calls = {'n': 0}

    def failing_imwrite(path, img, params=None):  # dies part-way, like a killed process
        calls['n'] += 1
        if calls['n'] > 5:
            raise KeyboardInterrupt
        return real_imwrite(path, img, params)

    monkeypatch.setattr(demo_cls.cv2, 'imwrite', failing_imwrite)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_cls_dataset(root, spec=SMALL)
    monkeypatch.setattr(demo_cls.cv2, 'imwrite', real_imwrite)
    # nothing at root, and the temporary folder is gone
    assert not root.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / '.cls.lock']

    # a temporary folder left by a killed run (even a complete-looking one) is not taken as the
    # dataset, and is cleaned up by the next generation
    done = generate_demo_cls_dataset(tmp_path / 'other', spec=SMALL)
    stale = tmp_path / '.cls.tmp-12345-deadbeef'
    Path(done['root']).rename(stale)
    out = ensure_demo_cls_dataset(root, spec=SMALL)
    assert out['generated'] and out['reason'] == 'no dataset at root yet'
    assert not stale.exists()

    # a root whose manifest never got written (killed between the files and the manifest)
    (root / MANIFEST_NAME).unlink()
    out = ensure_demo_cls_dataset(root, spec=SMALL)
    assert out['generated'] and out['reason'].startswith('root holds no complete dataset (no readable manifest')
    assert not any(p.name.startswith('.cls.tmp-') or p.name.startswith('.cls.old-') for p in tmp_path.iterdir())


def test_invalid_spec_is_rejected() -> None:
    with pytest.raises(ValueError, match='image_size must be >= 24'):
        ClsDemoSpec(image_size=16)
    with pytest.raises(ValueError, match='num_train_per_class'):
        ClsDemoSpec(num_train_per_class=0)
    with pytest.raises(TypeError):
        ensure_demo_cls_dataset('/nonexistent-unused', spec={'no_such_field': 1})


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    cmd = [sys.executable, '-m', 'mkey_det.data.demo_cls', '--out', str(tmp_path / 'cli'), '--image-size', '32',
           '--num-train-per-class', '1', '--num-val-per-class', '1']
    first = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    result = json.loads(first.stdout)
    assert result['generated'] and result['num_train'] == 10 and result['num_val'] == 10
    assert result['image_size'] == 32 and result['root'] == str(tmp_path / 'cli')
    assert 'found in sys.modules' not in first.stderr
    second = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout)
    assert not second['generated'] and second['reason'] is None


def test_bridge_call_returns_a_json_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mkey_det.cli import bridge

    # registered as 'data.ensure_demo_cls' in ENTRIES; set here too so this runs before it is
    monkeypatch.setitem(bridge.ENTRIES, 'data.ensure_demo_cls', 'mkey_det.data.demo_cls:ensure_demo_cls_dataset')
    args = {'root': str(tmp_path / 'cls'), 'spec': dataclasses.asdict(SMALL)}
    out = json.loads(bridge.call('data.ensure_demo_cls', json.dumps(args)))
    assert out['ok'], out
    assert out['value']['generated'] and out['value']['classes'] == list(CLS_CLASSES)
    again = json.loads(bridge.call('data.ensure_demo_cls', json.dumps(args)))
    assert again['ok'] and not again['value']['generated'] and again['value']['reason'] is None
