"""mkey_det.cli.report_tools: run identity from configs (mmengine Config.fromfile) and the PNG plots."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mkey_det.cli import bridge, report_tools

RUNS = Path(__file__).resolve().parents[2] / 'test' / 'fixtures' / 'report' / 'runs'


def _cfg(name: str) -> str:
    found = sorted((RUNS / name).glob('*.py'))
    assert found, f'fixture {name} has no config'
    return str(found[0])


def test_describe_reads_identity_from_the_dumped_config():
    (d,) = report_tools.describe_configs([_cfg('spatialk-s1')])
    assert d['ok'] is True
    assert d['backbone_type'] == 'SwinTransformerMKey'
    assert d['key_type'] == 'spatialk'
    assert d['num_charts'] == 2
    assert d['seed'] == 1
    assert d['max_epochs'] == 4 and d['max_iters'] is None
    assert d['schedule'] == 'fixture'
    assert d['backbone_name'] == 'swin-micro-spatialk'
    assert d['experiment']['batch_size'] == 2


def test_linear_key_has_no_charts_and_config_named_like_mmdet():
    (d,) = report_tools.describe_configs([_cfg('swin-s1')])  # dumped by tools/train.py under its own name
    assert d['ok'] and d['key_type'] == 'linear' and d['num_charts'] is None and d['seed'] == 1


def test_fingerprint_ignores_seed_and_work_dir_only():
    a, b, c, k = report_tools.describe_configs([_cfg('swin-s0'), _cfg('swin-s1'), _cfg('spatialk-s1'), _cfg('kua-running')])
    assert a['fingerprint'] == b['fingerprint']  # seed 0 vs 1, Runner vs tools/train.py
    assert a['fingerprint'] != c['fingerprint']
    assert c['fingerprint'] != k['fingerprint']


def test_iteration_loop_and_plain_swin(tmp_path):
    cfg = tmp_path / 'iter.py'
    cfg.write_text("model = dict(backbone=dict(type='SwinTransformer'))\n"
                   "train_cfg = dict(type='IterBasedTrainLoop', max_iters=500, val_interval=100)\n")
    (d,) = report_tools.describe_configs([str(cfg)])
    assert d['ok'] and d['key_type'] == 'linear' and d['max_iters'] == 500 and d['max_epochs'] is None
    assert d['seed'] is None and d['experiment'] is None


def test_bad_config_is_reported_not_raised(tmp_path):
    bad = tmp_path / 'broken.py'
    bad.write_text('model = dict(\n')
    good = _cfg('swin-s0')
    out = report_tools.describe_configs([str(bad), good, str(tmp_path / 'missing.py')])
    assert [o['ok'] for o in out] == [False, True, False]
    assert out[0]['error'].startswith('SyntaxError') or 'Error' in out[0]['error']
    assert '\n' not in out[0]['error']


def test_bridge_entry_is_registered():
    value = json.loads(bridge.call('report.describe_config', json.dumps({'paths': [_cfg('swin-s0')]})))
    assert value['ok'] is True
    assert value['value'][0]['key_type'] == 'linear'


def test_plot_cli_writes_three_pngs(tmp_path):
    series = [
        {'label': 'a', 'loss': [[1, 3.0], [2, 2.5]], 'lr': [[1, 0.002], [2, 0.02]], 'apBox': [[1, 10.0], [2, 12.5]],
         'apMask': [[1, 9.0]], 'evalBy': 'epoch'},
        {'label': 'no data', 'loss': [], 'lr': [], 'apBox': [], 'apMask': [], 'evalBy': 'epoch'},
    ]
    data = tmp_path / 's.json'
    data.write_text(json.dumps({'series': series}))
    script = Path(report_tools.__file__)
    res = subprocess.run([sys.executable, str(script), 'plot', '--data', str(data), '--prefix', str(tmp_path / 'out' / 'r')],
                         capture_output=True, text=True, check=True)
    files = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(files) == ['ap', 'loss', 'lr']
    for path in files.values():
        assert Path(path).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert Path(path).stat().st_size > 5000


@pytest.mark.parametrize('series', [[]])
def test_plots_with_no_runs(tmp_path, series):
    files = report_tools.write_plots(series, str(tmp_path / 'x'))
    assert all(Path(p).exists() for p in files.values())
