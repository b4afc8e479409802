"""mmengine's config text is formatted once per distinct config (mkey_det/config_text.py): the
same text as yapf gives, yapf called once for repeated asks, a changed config formatted anew."""
from __future__ import annotations

from pathlib import Path

import mmdet
import pytest
from mmengine.config import Config
from mmengine.config import config as mm_config

import mkey_det  # noqa: F401  (applies memoize_config_formatting)
from mkey_det.config_text import memoizing

#: yapf's own FormatCode, behind the cache that importing mkey_det put there.
YAPF_FORMAT = mm_config.FormatCode.__wrapped__
MASK_RCNN = Path(mmdet.__file__).parent / '.mim' / 'configs' / '_base_' / 'models' / 'mask-rcnn_r50_fpn.py'


@pytest.fixture
def counted(monkeypatch):
    """yapf's FormatCode behind a fresh cache, counting the calls that reach yapf."""
    calls: list[str] = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return YAPF_FORMAT(*args, **kwargs)

    monkeypatch.setattr(mm_config, 'FormatCode', memoizing(counting))
    return calls


def test_importing_mkey_det_puts_the_cache_in_front_of_yapf():
    assert hasattr(mm_config.FormatCode, '__wrapped__')


def test_the_text_is_yapfs_and_yapf_runs_once(counted, monkeypatch):
    cfg = Config.fromfile(str(MASK_RCNN))
    first = cfg.pretty_text
    again = [cfg.pretty_text for _ in range(3)]
    assert len(counted) == 1
    assert again == [first] * 3
    # what mmengine gives without the cache
    monkeypatch.setattr(mm_config, 'FormatCode', YAPF_FORMAT)
    assert cfg.pretty_text == first


def test_a_changed_config_is_formatted_anew(counted):
    cfg = Config.fromfile(str(MASK_RCNN))
    before = cfg.pretty_text
    cfg.merge_from_dict({'model.rpn_head.feat_channels': 128})
    after = cfg.pretty_text
    assert len(counted) == 2
    assert before != after and 'feat_channels=128' in after


def test_the_cache_keeps_its_last_results_only():
    seen: list[str] = []
    cached = memoizing(lambda text: (seen.append(text), text.upper())[1], size=2)
    assert [cached('a'), cached('b'), cached('a'), cached('c'), cached('b')] == ['A', 'B', 'A', 'C', 'B']
    assert seen == ['a', 'b', 'c', 'b']  # 'b' was the oldest when 'c' came
