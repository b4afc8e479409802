"""The synthetic demo dataset: deterministic, valid COCO, cached, atomic."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mkey_det.data import demo
from mkey_det.data.demo import DEFAULT_SPEC, DEMO_CLASSES, MANIFEST_NAME, DemoSpec, ensure_demo_dataset, generate_demo_dataset

SMALL = DemoSpec(num_train=5, num_val=3)

# pycocotools' decode on numpy 2 warns about __array__(copy=...) once per call
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*'))
        if p.is_file()
    }


def _polygon_area(flat: list[float]) -> float:
    x = np.asarray(flat[0::2], dtype=np.float64)
    y = np.asarray(flat[1::2], dtype=np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


@pytest.fixture(scope='module')
def default_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp('demo') / 'demo-v2'
    return root, ensure_demo_dataset(root)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate_demo_dataset(tmp_path / 'a', seed=3, spec=SMALL)
    b = generate_demo_dataset(tmp_path / 'b', seed=3, spec=SMALL)
    assert a['generated'] and b['generated']
    da, db = _digests(tmp_path / 'a'), _digests(tmp_path / 'b')
    assert len(da) == SMALL.num_train + SMALL.num_val + 3  # images + 2 annotation files + manifest
    assert da == db
    generate_demo_dataset(tmp_path / 'c', seed=4, spec=SMALL)
    dc = _digests(tmp_path / 'c')
    assert dc['train2017/000000000001.png'] != da['train2017/000000000001.png']


def test_default_dataset_is_valid_coco(default_dataset: tuple[Path, dict]) -> None:
    root, summary = default_dataset
    assert summary == {
        'root': str(root),
        'classes': list(DEMO_CLASSES),
        'num_train': DEFAULT_SPEC.num_train,
        'num_val': DEFAULT_SPEC.num_val,
        'generated': True,
    }
    per_class_total = dict.fromkeys(DEMO_CLASSES, 0)
    for split, count in (('train2017', DEFAULT_SPEC.num_train), ('val2017', DEFAULT_SPEC.num_val)):
        coco = COCO(str(root / 'annotations' / f'instances_{split}.json'))
        cats = coco.loadCats(coco.getCatIds())
        assert [(c['id'], c['name']) for c in cats] == [(i + 1, n) for i, n in enumerate(DEMO_CLASSES)]
        assert len(coco.getImgIds()) == count
        for img in coco.loadImgs(coco.getImgIds()):
            assert (root / split / img['file_name']).is_file()
            w, h = img['width'], img['height']
            assert (w, h) == (DEFAULT_SPEC.image_size, DEFAULT_SPEC.image_size)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))
            assert DEFAULT_SPEC.min_objects <= len(anns) <= DEFAULT_SPEC.max_objects
            for ann in anns:
                assert ann['iscrowd'] == 0
                x, y, bw, bh = ann['bbox']
                assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
                assert bw >= DEFAULT_SPEC.min_side * 0.5 and bh >= DEFAULT_SPEC.min_side * 0.5
                (poly,) = ann['segmentation']
                assert len(poly) % 2 == 0 and len(poly) >= 6
                xs, ys = poly[0::2], poly[1::2]
                assert [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)] == pytest.approx(ann['bbox'])
                assert ann['area'] == pytest.approx(_polygon_area(poly), abs=0.01)
                m = coco.annToMask(ann)
                assert m.shape == (h, w) and m.sum() > 0
                rle = mask_utils.frPyObjects(ann['segmentation'], h, w)
                decoded = mask_utils.decode(mask_utils.merge(rle))
                assert decoded.sum() > 0
                assert abs(float(decoded.sum()) - ann['area']) / ann['area'] < 0.15
                per_class_total[cats[ann['category_id'] - 1]['name']] += 1
    assert all(n > 0 for n in per_class_total.values())
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    from_manifest = {
        name: manifest['stats']['train2017']['annotations_per_class'][name]
        + manifest['stats']['val2017']['annotations_per_class'][name]
        for name in DEMO_CLASSES
    }
    assert from_manifest == per_class_total


def test_second_call_reuses_without_regenerating(tmp_path: Path) -> None:
    root = tmp_path / 'demo'
    first = ensure_demo_dataset(root, spec=SMALL)
    assert first['generated'] is True
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()}
    second = ensure_demo_dataset(root, spec=SMALL)
    assert second == {**first, 'generated': False}
    assert {p: p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()} == mtimes
    # no temporary folders left next to it
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ['demo']


def test_regenerates_after_a_file_is_deleted(tmp_path: Path) -> None:
    root = tmp_path / 'demo'
    ensure_demo_dataset(root, spec=SMALL)
    before = _digests(root)
    (root / 'val2017' / '000000000002.png').unlink()
    again = ensure_demo_dataset(root, spec=SMALL)
    assert again['generated'] is True
    assert _digests(root) == before


def test_regenerates_when_a_file_is_truncated_or_the_spec_changes(tmp_path: Path) -> None:
    root = tmp_path / 'demo'
    ensure_demo_dataset(root, spec=SMALL)
    (root / 'annotations' / 'instances_train2017.json').write_text('{')
    assert ensure_demo_dataset(root, spec=SMALL)['generated'] is True
    bigger = DemoSpec(num_train=6, num_val=3)
    result = ensure_demo_dataset(root, spec=bigger)
    assert result['generated'] is True and result['num_train'] == 6
    assert ensure_demo_dataset(root, spec={'num_train': 6, 'num_val': 3})['generated'] is False
    assert ensure_demo_dataset(root, seed=1, spec=bigger)['generated'] is True


def test_interrupted_generation_does_not_count_as_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / 'demo'
    # 1) a killed run left its temporary folder behind (complete-looking content, manifest included)
    ok = tmp_path / 'ok'
    ensure_demo_dataset(ok, spec=SMALL)
    leftover = tmp_path / '.demo.tmp-99999-deadbeef'
    os.rename(ok, leftover)
    result = ensure_demo_dataset(root, spec=SMALL)
    assert result['generated'] is True
    assert not leftover.exists()  # cleaned up by the next generation
    # 2) files in place but no manifest (e.g. copied by hand or written by an older, non-atomic run)
    (root / MANIFEST_NAME).unlink()
    assert ensure_demo_dataset(root, spec=SMALL)['generated'] is True
    # 3) a generation that fails half-way leaves neither a dataset nor a temporary folder
    other = tmp_path / 'other'
    real_write_split = demo._write_split

    def failing_write_split(out, split_index, *args, **kwargs):
        if split_index == 1:
            raise KeyboardInterrupt
        return real_write_split(out, split_index, *args, **kwargs)

    monkeypatch.setattr(demo, '_write_split', failing_write_split)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_dataset(other, spec=SMALL)
    assert not other.exists()
    assert not list(tmp_path.glob('.other.tmp-*'))
    monkeypatch.undo()
    assert ensure_demo_dataset(other, spec=SMALL)['generated'] is True


def test_invalid_spec_is_rejected() -> None:
    with pytest.raises(ValueError, match='max_side'):
        DemoSpec(image_size=64, max_side=100)
    with pytest.raises(ValueError, match='min_objects'):
        DemoSpec(min_objects=3, max_objects=2)


def test_bridge_entry_is_registered(tmp_path: Path) -> None:
    from mkey_det.cli import bridge

    out = json.loads(bridge.call('data.ensure_demo', json.dumps({'root': str(tmp_path / 'd'), 'spec': {'num_train': 2, 'num_val': 1}})))
    assert out['ok'] is True, out
    assert out['value'] == {
        'root': str(tmp_path / 'd'),
        'classes': list(DEMO_CLASSES),
        'num_train': 2,
        'num_val': 1,
        'generated': True,
    }


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, '-m', 'mkey_det.data.demo', '--out', str(tmp_path / 'cli'), '--seed', '2', '--num-train', '3', '--num-val', '2'],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(res.stdout)
    assert summary['generated'] is True
    assert (summary['num_train'], summary['num_val']) == (3, 2)
    assert set(summary['stats']['train2017']['annotations_per_class']) == set(DEMO_CLASSES)
