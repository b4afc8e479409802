"""mkey_det.bench: the literal transcription of Algorithm 1 equals our key modules (outputs and
gradients), the stage geometry matches the real backbone, the protocol is well-formed JSON."""
import inspect
import io
import json

import pytest
import torch

from mkey_det.bench import common, literal, module, shapes
from mkey_det.bench.literal import PARAM_NAMES, build_literal, copy_weights
from mkey_det.models.keys import build_key

VARIANTS = ('spatialk', 'kua', 'simplek', 'vanillak')


def test_literal_is_independent_of_our_keys():
    src = inspect.getsource(literal)
    assert 'mkey_det' not in src.replace('``mkey_det.models.keys``', '')
    assert 'from ..' not in src and 'import mkey_det' not in src


@pytest.mark.parametrize('key_type', VARIANTS)
def test_literal_parameter_counts(key_type):
    h, c, n = 3, 12, 9
    m = build_literal(key_type, c, n, h)
    expected = {
        'spatialk': 2 * h * c * c + h * c + h * n * n,
        'kua': 2 * h * c * c + h * c + h * n * n + c,
        'simplek': h * c * c + h * c + h * n * n,
        'vanillak': h * c * c + h * c + h * n * n + c,
    }[key_type]
    assert sum(p.numel() for p in m.parameters()) == expected
    assert {n for n, _ in m.named_parameters()} == set(PARAM_NAMES[key_type])


@pytest.mark.parametrize('key_type', VARIANTS)
@pytest.mark.parametrize('shape', [(3, 12, 9, 5), (3, 12, 9, 1), (8, 16, 49, 2)])
def test_literal_equals_ours(key_type, shape):
    """(charts, C, N, B'): both the folded and the paper path of 'fast' (T vs FOLD_RATIO*C)."""
    h, c, n, b = shape
    ours, lit = module.build_pair(key_type, c, n, num_charts=h, seed=1)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, n, c, generator=g, dtype=torch.float32).requires_grad_(True)
    grad = torch.randn(b, n, c, generator=g)
    check = module.check_equal(ours, lit, x, grad)
    assert check['passed'], check
    assert check['output'] < 1e-5 and check['max_grad'] < 1e-5
    assert set(check['param_grads']) == set(PARAM_NAMES[key_type])
    # the forced fold (what a smaller FOLD_RATIO would run) is the same function too
    with module.fold_ratio_override(0):
        assert module.check_equal(ours, lit, x, grad)['passed']
    # the comparison is not vacuous: another seed gives another function
    other, _ = module.build_pair(key_type, c, n, num_charts=h, seed=2)
    with torch.no_grad():
        assert common.rel_diff(other(x), lit(x)) > 1e-3


def test_literal_matches_in_float64_tightly():
    ours, lit = module.build_pair('kua', 16, 49, num_charts=4, seed=0)
    ours, lit = ours.double(), lit.double()
    x = torch.randn(3, 49, 16, dtype=torch.float64, requires_grad=True)
    check = module.check_equal(ours, lit, x, torch.randn(3, 49, 16, dtype=torch.float64))
    assert check['max'] < 1e-12


def test_copy_weights_refuses_a_mismatch():
    ours = build_key('spatialk', 12, 9, 3)
    with pytest.raises(ValueError, match='parameters'):
        copy_weights(ours, build_literal('simplek', 12, 9, 3), 'spatialk')
    with pytest.raises(ValueError, match='shape'):
        copy_weights(ours, build_literal('spatialk', 12, 9, 4), 'spatialk')
    with pytest.raises(ValueError, match='no literal'):
        build_literal('linear', 12, 9, 3)


def test_ours_path_and_cost_model():
    from mkey_det.models.keys import spatialk
    ratio = spatialk.FOLD_RATIO
    assert module.ours_path('spatialk', int(ratio * 96) + 1, 96) == 'folded'
    assert module.ours_path('kua', int(ratio * 96), 96) == 'paper'
    assert module.ours_path('simplek', 10, 96) == 'folded'
    # folding breaks even at T = C, the bound tends to (2C + N) / (C + N) for T >> C
    assert module.cost_model('spatialk', 768, 768)['predicted_fold_speedup'] == pytest.approx(1.0)
    big = module.cost_model('spatialk', 10**9, 96)['predicted_fold_speedup']
    assert big == pytest.approx((2 * 96 + 49) / (96 + 49), rel=1e-6)
    assert module.cost_model('vanillak', 1000, 96)['predicted_fold_speedup'] == 1.0
    # stage 4 at 800x1216, batch 1 and 2: below the 1.5x target whatever the implementation
    assert module.cost_model('spatialk', 1176, 768)['predicted_fold_speedup'] < 1.25
    assert module.cost_model('spatialk', 2352, 768)['predicted_fold_speedup'] < 1.5


def test_stage_shapes_match_the_backbone():
    """B' seen by every key equals the geometry (padding at every stage at 333x517)."""
    from mkey_det import SwinTransformerMKey
    from mkey_det.models.keys.base import ManifoldKey
    dims = (16, 32, 64, 128)
    model = SwinTransformerMKey(key_type='simplek', num_charts=2, embed_dims=16,
                                depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), window_size=7,
                                mlp_ratio=2, init_cfg=None).eval()
    seen = []
    for m in model.modules():
        if isinstance(m, ManifoldKey):
            m.register_forward_hook(
                lambda mod, inp, out: seen.append((inp[0].shape[0], inp[0].shape[2])))
    with torch.no_grad():
        model(torch.randn(2, 3, 333, 517))
    expected = [(s['batch_windows'], s['dim'])
                for s in shapes.stage_shapes(333, 517, batch=2, dims=dims, depths=(1, 1, 1, 1))]
    assert seen == expected
    det = shapes.stage_shapes(800, 1216)
    assert [s['batch_windows'] for s in det] == [1276, 330, 88, 24]
    assert [s['tokens'] for s in shapes.stage_shapes(224, 224)] == [3136, 784, 196, 49]


def test_stats_and_compare():
    st = common.stats([3.0, 1.0, 2.0, 4.0])
    assert st['median'] == 2.5 and st['min'] == 1.0 and st['max'] == 4.0 and st['n'] == 4
    assert st['iqr'] == pytest.approx(st['q3'] - st['q1'])
    plan = common.Plan(warmup=1, min_repeats=2, max_repeats=4, budget_s=1.0)
    assert plan.repeats(10.0) == 2 and plan.repeats(0.01) == 4
    calls = {'a': 0, 'b': 0}

    def bump(k):
        def f():
            calls[k] += 1
        return f
    out = common.compare({'a': bump('a'), 'b': bump('b')}, torch.device('cpu'), plan, baseline='a')
    assert set(out['times']) == {'a', 'b'} and set(out['ratios']) == {'b'}
    assert calls['a'] == calls['b'] == out['repeats'] + 1
    r = out['ratios']['b']
    assert r['round_min'] <= r['round_median'] <= r['round_max']


def test_json_safe_and_emitter():
    buf = io.StringIO()
    em = common.Emitter('module', buf)
    em.start('cpu', True, 1, dict(x=(1, 2)))
    em.measure('a', 'line', dict(v=float('nan'), t=torch.tensor(2.5)))
    em.result(dict(ok=float('inf')))
    lines = [json.loads(ln) for ln in buf.getvalue().splitlines()]
    assert [ln['event'] for ln in lines] == ['start', 'measure', 'result']
    assert lines[1]['data']['v'] is None and lines[1]['data']['t'] == 2.5
    assert 'loadavg' in lines[1]['data'] and lines[2]['result']['ok'] is None


def test_main_module_quick_protocol(monkeypatch, capsys):
    from mkey_det.bench.__main__ import main
    monkeypatch.setattr(module, 'QUICK_SETTINGS', (('tiny 56x56 b1', 56, 56, 1), ))
    monkeypatch.setattr(module, 'VARIANTS', ('spatialk', 'simplek'))
    assert main(['--suite', 'module', '--quick']) == 0
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert lines[0]['event'] == 'start' and lines[-1]['event'] == 'result'
    measures = [ln for ln in lines if ln['event'] == 'measure']
    assert len(measures) == lines[0]['total'] == 8
    res = lines[-1]['result']
    assert res['passed'] is True and res['machine']['torch_threads'] >= 1
    assert res['machine']['matmul_peak']['gflops_median'] > 0
    row = res['rows'][0]
    assert row['timing']['times']['literal']['n'] >= 2 and 'ours' in row['timing']['ratios']


def test_main_cuda_without_cuda_is_bad_input(capsys):
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is present')
    from mkey_det.bench.__main__ import main
    assert main(['--suite', 'params', '--device', 'cuda']) == 2
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last['event'] == 'error' and last['exit_code'] == 2 and 'CUDA' in last['message']


def test_train_worker_batch_and_fallback_config(tmp_path):
    from mmengine.config import Config
    from mkey_det.bench import train, train_worker
    batch = train_worker.make_batch(2, 128, num_classes=3)
    assert [tuple(t.shape) for t in batch['inputs']] == [(3, 128, 128)] * 2
    inst = batch['data_samples'][1].gt_instances
    assert inst.bboxes.shape == (3, 4) and inst.masks.masks.shape == (3, 128, 128)
    assert int(inst.labels.max()) < 3
    cfg = Config.fromfile(train.write_config(str(tmp_path / 'c.py'), 'kua'))
    assert cfg.model.backbone.type == 'SwinTransformerMKey' and cfg.model.backbone.num_charts == 8
    assert cfg.model.train_cfg.rcnn.sampler.num == 64
    assert train.ratios(dict(step_s=dict(median=2.0, min=2.0), peak_rss_mib=3.0),
                        dict(step_s=dict(median=1.0, min=1.0), peak_rss_mib=2.0))['time'] == 2.0
