"""mkey_det.cli.report_tools: run identity from configs (read as data, never executed) and the plots (PNG and inline SVG)."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mkey_det.cli import report_tools

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


def test_describe_cli_prints_identities():
    script = Path(report_tools.__file__)
    res = subprocess.run([sys.executable, str(script), 'describe', _cfg('swin-s0')], capture_output=True, text=True, check=True)
    (d,) = json.loads(res.stdout)
    assert d['ok'] is True and d['key_type'] == 'linear'


def test_describe_runs_nothing_in_the_config(tmp_path):
    """A line appended to a run's config.py is skipped, not run (report over runs someone sent)."""
    marker = tmp_path / 'MARKER'
    cfg = tmp_path / 'config.py'
    cfg.write_text(Path(_cfg('spatialk-s1')).read_text()
                   + f"import os\nos.system('touch {marker}')\nx = open('{marker}', 'w')\n"
                   + f"model = dict(backbone=dict(type=__import__('os').system('touch {marker}')))\n")
    (d,) = report_tools.describe_configs([str(cfg)])
    assert not marker.exists()
    assert d['ok'] and d['key_type'] == 'spatialk' and d['num_charts'] == 2  # the data assignments still read


def test_describe_values_as_data(tmp_path):
    cfg = tmp_path / 'c.py'
    cfg.write_text("from mmdet.models import SwinTransformer\n"
                   "base_seed = 3\nrandomness = dict(seed=base_seed)\n"
                   "model = {'backbone': dict(type=SwinTransformer, drop=-0.5, inf=float('inf'))}\n"
                   "train_cfg = dict(max_epochs=2 * 6)\n")
    data = report_tools.read_config_data(str(cfg))
    assert data['randomness'] == {'seed': 3}
    assert data['model']['backbone']['type'] == 'SwinTransformer'  # a name, never looked up
    assert data['model']['backbone']['drop'] == -0.5 and data['model']['backbone']['inf'] == float('inf')
    assert 'train_cfg' not in data  # an expression, not data: skipped


def test_describe_refuses_a_fifo(tmp_path):
    import os
    fifo = tmp_path / 'config.py'
    os.mkfifo(fifo)
    (d,) = report_tools.describe_configs([str(fifo)])  # returns at once: the FIFO is never opened
    assert d['ok'] is False and 'not a regular file' in d['error']


def _series(eval_by='epoch'):
    return [
        {'label': 'a', 'loss': [[1, 3.0], [2, 2.5]], 'lr': [[1, 0.002], [2, 0.02]], 'apBox': [[1, 10.0], [2, 12.5]],
         'apMask': [[1, 9.0]], 'evalBy': eval_by},
        {'label': 'no data', 'loss': [], 'lr': [], 'apBox': [], 'apMask': [], 'evalBy': eval_by},
    ]


def _plot_cli(tmp_path, series, *extra):
    data = tmp_path / 's.json'
    data.write_text(json.dumps({'series': series}))
    script = Path(report_tools.__file__)
    return subprocess.run([sys.executable, str(script), 'plot', '--data', str(data), '--prefix', str(tmp_path / 'out' / 'r'), *extra],
                          capture_output=True, text=True)


def test_plot_cli_writes_three_pngs(tmp_path):
    res = _plot_cli(tmp_path, _series())
    assert res.returncode == 0, res.stderr
    files = json.loads(res.stdout.strip().splitlines()[-1])
    assert list(files) == ['png']  # PNG only unless --format asks for more
    assert sorted(files['png']) == ['ap', 'loss', 'lr']
    for path in files['png'].values():
        assert Path(path).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert Path(path).stat().st_size > 5000
    assert not list((tmp_path / 'out').glob('*.svg'))
    # each PNG names what it was drawn from: the digest of the data file's bytes (plots.ts's plotsTag)
    from PIL import Image
    want = hashlib.sha256((tmp_path / 's.json').read_bytes()).hexdigest()
    for path in files['png'].values():
        with Image.open(path) as im:
            assert im.text[report_tools.PLOTS_TAG_KEY] == want


def test_plot_cli_draws_each_figure_once_as_png_and_embeddable_svg(tmp_path):
    res = _plot_cli(tmp_path, _series(), '--format', 'png,svg')
    assert res.returncode == 0, res.stderr
    files = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(files) == ['png', 'svg'] and sorted(files['svg']) == ['ap', 'loss', 'lr']
    ids: list[str] = []
    for name, path in files['svg'].items():
        svg = Path(path).read_text(encoding='utf8')
        assert Path(files['png'][name]).exists()
        # inline-ready: no prolog, no references outside the figure, nothing that runs
        assert svg.startswith('<svg ') and svg.endswith('</svg>')
        for bad in ('<?xml', '<!DOCTYPE', 'xlink', '<use', 'href=', '<script', '<metadata', '<style'):
            assert bad not in svg, (name, bad)
        assert re.findall(r'https?://[^"]*', svg) == ['http://www.w3.org/2000/svg']
        assert f'id="mkey-plot-{name}" role="img" aria-label="' in svg
        assert '<text ' in svg and 'font-family' in svg  # svg.fonttype none: text, not glyph paths
        for ref in re.findall(r'url\(#([^)]+)\)', svg):
            assert f'id="{ref}"' in svg
        ids += re.findall(r' id="([^"]+)"', svg)
    assert all(i.startswith('mkey-') for i in ids)
    assert len(ids) == len(set(ids))  # the figures can share one page
    ap = Path(files['svg']['ap']).read_text(encoding='utf8')
    assert 'aria-label="Box AP and Mask AP"' in ap and '>Box AP</text>' in ap and '>Mask AP</text>' in ap
    assert ap.count('<circle ') == 3 + 2  # a's three evaluations, one legend marker per panel
    # the same figure, the same SVG: ids and numbers do not change from run to run
    again = _plot_cli(tmp_path, _series(), '--format', 'svg')
    assert json.loads(again.stdout.strip().splitlines()[-1])['svg']['ap'] == files['svg']['ap']
    assert Path(files['svg']['ap']).read_text(encoding='utf8') == ap


def test_plot_cli_refuses_an_unknown_format(tmp_path):
    res = _plot_cli(tmp_path, _series(), '--format', 'png,pdf')
    assert res.returncode == 2 and 'pdf' in res.stderr


def _x_ticks(ax):
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo - 1e-9 <= t <= hi + 1e-9]


@pytest.mark.parametrize('eval_by', ['epoch', 'iter'])
def test_step_axes_have_whole_numbers_only(eval_by):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    series = [{'label': 'a', 'loss': [[1, 3.0], [2, 2.5]], 'lr': [[1, 0.1], [2, 0.1]],
               'apBox': [[1, 10.0], [2, 12.5]], 'apMask': [[1, 9.0], [2, 9.5]], 'evalBy': eval_by}]
    figs = list(report_tools._figures(series))
    try:
        name, _, fig = figs[-1]
        assert name == 'ap'
        for ax in [*figs[0][2].axes, *fig.axes]:
            ax.figure.canvas.draw()
            ticks = _x_ticks(ax)
            assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
        assert fig.axes[0].get_xlabel() == ('epoch' if eval_by == 'epoch' else 'iteration')
    finally:
        for _, _, f in figs:
            plt.close(f)


def test_one_evaluation_per_run_at_the_same_step_has_whole_number_ticks():
    """A sweep's short cells (``--max-iters 3``) evaluate once each, all at iteration 3: the AP axes
    showed 2.84 .. 3.16 (matplotlib's +-5% around one value) instead of whole iterations."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    series = [{'label': f'cell-{i}', 'loss': [[1, 6.5], [2, 6.0], [3, 6.2]], 'lr': [[1, 1e-7], [2, 1e-7], [3, 1e-7]],
               'apBox': [[3, ap]], 'apMask': [[3, 0.0]], 'evalBy': 'iter'} for i, ap in enumerate((0.0, 0.8))]
    figs = list(report_tools._figures(series))
    try:
        _, _, fig = figs[-1]
        for ax in fig.axes:
            fig.canvas.draw()
            ticks = _x_ticks(ax)
            assert 3 in ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
            assert ax.get_xlim() == (2, 4)
    finally:
        for _, _, f in figs:
            plt.close(f)


def test_labels_are_plain_text(tmp_path):
    series = [{'label': 'run $x$ <b> & "q"', 'loss': [[1, 2.0]], 'lr': [], 'top1': [[1, 50.0]], 'top5': [[1, 80.0]],
               'evalBy': 'iter'}]
    files = report_tools.write_plots(series, str(tmp_path / 'c'), ['svg'])
    assert sorted(files['svg']) == ['loss', 'lr', 'top1']  # classification: top-1 and top-5, no AP figure
    loss = Path(files['svg']['loss']).read_text(encoding='utf8')
    assert '>run $x$ &lt;b&gt; &amp; "q"</text>' in loss  # no mathtext, escaped once
    assert loss.count('<circle ') == 2  # a lone point is drawn as a dot (and in the legend)


@pytest.mark.parametrize('series', [[]])
def test_plots_with_no_runs(tmp_path, series):
    files = report_tools.write_plots(series, str(tmp_path / 'x'), ['png', 'svg'])
    assert sorted(files['png']) == sorted(files['svg']) == ['ap', 'loss', 'lr']
    assert all(Path(p).exists() for fmt in files.values() for p in fmt.values())
    assert 'no data yet' in Path(files['svg']['loss']).read_text(encoding='utf8')
