"""The progress hook remembers a backbone's FLOP count under a digest of its structure and code
(``mkey_det.analysis.flops_memo``): the same backbone is counted once per cache folder, any
structural difference counts again, and without ``MKEY_CACHE_DIR`` nothing is kept. The real hook
and the real counter on small real Swin backbones."""
from types import SimpleNamespace

import pytest
import torch

import mkey_det  # noqa: F401  registers the backbones
import mkey_det.analysis as analysis
from mkey_det.analysis import flops_memo
from mkey_det.engine.progress_hook import MkeyProgressHook
from mkey_det.models.backbones.swin_mkey import SwinTransformerMKey

SMALL = dict(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=7, init_cfg=None)


def small_swin(**over) -> SwinTransformerMKey:
    torch.manual_seed(0)
    return SwinTransformerMKey(**{**SMALL, 'key_type': 'spatialk', 'num_charts': 2, **over})


def start_stats(backbone) -> dict:
    model = torch.nn.Module()
    model.backbone = backbone
    return MkeyProgressHook()._backbone_stats(SimpleNamespace(model=model))


@pytest.fixture
def memo(tmp_path, monkeypatch):
    monkeypatch.setenv('MKEY_CACHE_DIR', str(tmp_path))
    return tmp_path / 'backbone-flops'


def refuse_counting(monkeypatch):
    def counted(*args, **kwargs):
        raise AssertionError('counted again')
    monkeypatch.setattr(analysis, 'count_complexity', counted)


def test_the_same_backbone_is_counted_once(memo, monkeypatch):
    first = start_stats(small_swin())
    assert 'backbone_flops_error' not in first, first.get('backbone_flops_error')
    files = list(memo.glob('*.json'))
    assert len(files) == 1
    # what was kept is what the counter gives
    assert first['backbone_flops'] > 0
    # another process's build of the same backbone (other weights: not part of the key) is recalled
    refuse_counting(monkeypatch)
    torch.manual_seed(1)
    again = start_stats(SwinTransformerMKey(**{**SMALL, 'key_type': 'spatialk', 'num_charts': 2}))
    assert 'backbone_flops_error' not in again, again.get('backbone_flops_error')
    assert again['backbone_flops'] == first['backbone_flops']
    assert list(memo.glob('*.json')) == files


@pytest.mark.parametrize('change', [dict(num_charts=4), dict(key_type='kua'), dict(window_size=4)])
def test_any_structural_difference_counts_again(memo, change):
    base = small_swin()
    other = small_swin(**change)
    assert flops_memo.memo_key(base, (224, 224)) != flops_memo.memo_key(other, (224, 224))
    start_stats(base)
    start_stats(other)
    assert len(list(memo.glob('*.json'))) == 2


def test_an_attribute_without_parameters_is_part_of_the_key():
    """VanillaK's CB forms eq4 and per_location have the same parameters and modules."""
    eq4, per_location = (small_swin(key_type='vanillak', key_kwargs=dict(cb_mode=m)) for m in ('eq4', 'per_location'))
    assert [n for n, _ in eq4.named_parameters()] == [n for n, _ in per_location.named_parameters()]
    assert flops_memo.memo_key(eq4, (224, 224)) != flops_memo.memo_key(per_location, (224, 224))


def test_the_input_size_is_part_of_the_key():
    bb = small_swin()
    assert flops_memo.memo_key(bb, (224, 224)) != flops_memo.memo_key(bb, (256, 256))
    assert flops_memo.memo_key(bb, (224, 224)) == flops_memo.memo_key(small_swin(), (224, 224))


def test_a_damaged_file_is_counted_again_and_replaced(memo, monkeypatch):
    bb = small_swin()
    key = flops_memo.memo_key(bb, (224, 224))
    memo.mkdir(parents=True)
    for text in ('{"flops": ', '{"flops": -3}', '[1]', '{"flops": true}'):
        (memo / f'{key}.json').write_text(text)
        assert flops_memo.recall(key) is None, text
    stats = start_stats(bb)
    assert stats['backbone_flops'] > 0
    assert flops_memo.recall(key) == stats['backbone_flops']
    assert [p.name for p in memo.iterdir()] == [f'{key}.json']  # no temporary file left


def test_without_a_cache_folder_nothing_is_kept(tmp_path, monkeypatch):
    monkeypatch.delenv('MKEY_CACHE_DIR', raising=False)
    monkeypatch.chdir(tmp_path)
    assert flops_memo.memo_dir() is None
    def no_digest(*args):
        raise AssertionError('a digest taken with nowhere to keep it')
    monkeypatch.setattr(flops_memo, 'memo_key', no_digest)
    calls = []
    real = analysis.count_complexity
    monkeypatch.setattr(analysis, 'count_complexity', lambda *a, **k: calls.append(1) or real(*a, **k))
    first = start_stats(small_swin())
    second = start_stats(small_swin())
    assert first['backbone_flops'] == second['backbone_flops'] > 0
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    monkeypatch.setenv('MKEY_CACHE_DIR', str(blocker))
    stats = start_stats(small_swin())
    assert 'backbone_flops_error' not in stats, stats.get('backbone_flops_error')
    assert stats['backbone_flops'] > 0


def test_a_write_that_fails_leaves_the_old_file_and_no_partial(tmp_path):
    """``write_json_replacing`` (the memo's, the export sidecar's and the demo manifests' writer)."""
    from mkey_det.utils import write_json_replacing

    path = tmp_path / 'x.json'
    write_json_replacing(path, dict(flops=1))
    with pytest.raises(TypeError):
        write_json_replacing(path, dict(flops=object()))
    assert path.read_text() == '{"flops": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ['x.json']
