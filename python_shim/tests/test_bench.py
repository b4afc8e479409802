"""mkey_det.bench: the literal transcription of Algorithm 1 equals our key modules (outputs and
gradients), the stage geometry matches the real backbone, the protocol is well-formed JSON."""
import inspect
import math
import io
import json

import pytest
import torch

from mkey_det.bench import common, literal, module, shapes
from mkey_det.bench.literal import PARAM_NAMES, build_literal, copy_weights
from mkey_det.models.keys import build_key

VARIANTS = ('spatialk', 'kua', 'simplek', 'vanillak')


def test_suite_variants_come_from_the_key_registry():
    from mkey_det.bench import params, train
    assert module.VARIANTS == VARIANTS
    assert params.VARIANTS == ('linear', ) + VARIANTS
    assert params.LABELS == {'linear': 'Swin-T', 'spatialk': '+ SpatialK', 'kua': '+ KUA',
                             'simplek': '+ SimpleK', 'vanillak': '+ VanillaK'}
    assert params.TABLE1 == {'linear': (28, 4.6), 'spatialk': (61, 10.4), 'kua': (61, 10.4),
                             'simplek': (44, 7.6), 'vanillak': (44, 7.6)}
    assert train.VARIANTS == (('swin-t', 'linear'), ('swin-t-spatialk', 'spatialk'),
                              ('swin-t-kua', 'kua'), ('swin-t-simplek', 'simplek'),
                              ('swin-t-vanillak', 'vanillak'))
    assert train.BASELINE == 'swin-t'
    assert PARAM_NAMES == {k: literal.LITERAL_KEYS[k].param_names for k in VARIANTS}
    assert all(module.literal_class(k) is literal.LITERAL_KEYS[k] for k in VARIANTS)


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
    assert cfg.model.train_cfg.rcnn.sampler.num == 32
    assert train.ratios(dict(step_s=dict(median=2.0, min=2.0), peak_rss_mib=3.0),
                        dict(step_s=dict(median=1.0, min=1.0), peak_rss_mib=2.0))['time'] == 2.0


# ---------------------------------------------------------------------------------------------
# train suite: settings, AMP optimizer wrapper, OOM handling, a real (tiny) run


def test_train_settings_defaults_and_validation():
    from mkey_det.bench import train
    from mkey_det.bench.common import BenchInputError
    cpu = train.resolve_settings('cpu')
    assert cpu['variants'] == list(train.VARIANT_NAMES)
    assert (cpu['batch_sizes'], cpu['precisions'], cpu['size']) == ([2], ['fp32'], 384)
    gpu = train.resolve_settings('cuda')
    assert (gpu['batch_sizes'], gpu['precisions'], gpu['size']) == ([2, 8], ['fp32', 'fp16'], 1024)
    assert (gpu['warmup'], gpu['steps']) == (5, 20)
    assert (cpu['warmup'], cpu['steps']) == (3, 40)
    # swin-t is always run, first (the baseline of the ratios); duplicates dropped
    s = train.resolve_settings('cpu', variants='swin-t-kua,swin-t-spatialk,swin-t-kua',
                               batch_sizes='1,4,1', size=128, steps=2)
    assert s['variants'] == ['swin-t', 'swin-t-kua', 'swin-t-spatialk']
    assert (s['batch_sizes'], s['size'], s['steps']) == ([1, 4], 128, 2)
    bad = [dict(variants='swin-x'), dict(batch_sizes='2,x'), dict(batch_sizes='0'),
           dict(precisions='fp8'), dict(precisions='fp32,bf16'), dict(size=10), dict(steps=0)]
    for kwargs in bad:
        with pytest.raises(BenchInputError, match='accepted'):
            train.resolve_settings('cpu', **kwargs)
    assert train.resolve_settings('cuda', precisions='fp16,bf16')['precisions'] == ['fp16', 'bf16']


def test_amp_optim_wrapper_like_tools_train_amp():
    from mkey_det.bench.train_worker import amp_optim_wrapper_cfg
    base = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4),
                clip_grad=dict(max_norm=10, norm_type=2))
    assert amp_optim_wrapper_cfg(base, 'fp32') == base
    fp16 = amp_optim_wrapper_cfg(base, 'fp16')
    assert fp16['type'] == 'AmpOptimWrapper' and fp16['dtype'] == 'float16'
    assert fp16['loss_scale'] == 'dynamic' and fp16['clip_grad'] == base['clip_grad']
    bf16 = amp_optim_wrapper_cfg(base, 'bf16')
    assert bf16['type'] == 'AmpOptimWrapper' and bf16['dtype'] == 'bfloat16'
    assert 'loss_scale' not in bf16 and base['type'] == 'OptimWrapper'  # input untouched
    with pytest.raises(ValueError):
        amp_optim_wrapper_cfg(base, 'fp8')


def test_is_oom():
    from mkey_det.bench.train_worker import is_oom
    assert is_oom(torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB'))
    assert is_oom(RuntimeError('cuDNN error: CUDNN_STATUS_ALLOC_FAILED'))
    assert is_oom(RuntimeError('CUDA error: out of memory'))
    assert not is_oom(RuntimeError('Input type (torch.FloatTensor) and weight type differ'))
    assert not is_oom(ValueError('out of memory'))


def test_main_train_bad_input(capsys):
    from mkey_det.bench.__main__ import main
    for argv, needle in ((['--suite', 'train', '--precisions', 'fp32,bf16'], 'need --device cuda'),
                         (['--suite', 'train', '--batch-sizes', '2,x'], 'integers from 1'),
                         (['--suite', 'params', '--batch-sizes', '2'], 'train suite only')):
        assert main(argv) == 2
        last = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert last['event'] == 'error' and last['exit_code'] == 2, last
        assert needle in last['message'], last['message']


def _worker_rows(out: str):
    msgs = [json.loads(ln) for ln in out.splitlines() if ln.startswith('{')]
    return [m for m in msgs if m['kind'] == 'row'], [m for m in msgs if m['kind'] == 'flops']


def test_train_worker_oom_fails_one_pair_only(tmp_path, monkeypatch, capsys):
    """A CUDA out-of-memory error at one batch size is that row's error; the next pair runs
    (the OOM is raised by a wrapper around the real train_step, the rest is real)."""
    from mmengine.model import BaseModel
    from mkey_det.bench import train, train_worker
    real = BaseModel.train_step

    def train_step(self, data, optim_wrapper):
        if len(data['inputs']) == 2:
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 1 GiB')
        return real(self, data, optim_wrapper)
    monkeypatch.setattr(BaseModel, 'train_step', train_step)
    cfg = train.write_config(str(tmp_path / 'swin.py'), 'linear')
    assert train_worker.main(['--config', cfg, '--batch-sizes', '2,1', '--size', '96',
                              '--warmup', '0', '--steps', '1', '--flops', 'backbone']) == 0
    rows, flops = _worker_rows(capsys.readouterr().out)
    assert [(r['batch'], r['precision']) for r in rows] == [(2, 'fp32'), (1, 'fp32')]
    assert rows[0]['error'] == 'CUDA out of memory' and 'step_s' not in rows[0]
    assert rows[1]['images_per_s'] > 0 and rows[1]['losses_finite'] is True
    assert rows[1]['step_s']['n'] == 1 and rows[1]['optim_wrapper'] == 'OptimWrapper'
    assert flops[0]['flops']['backbone_train_order'] > 0


def test_ratio_spread_pairs_the_rounds():
    """The ratio of medians, its bootstrap interval, and the per-round ratios."""
    from mkey_det.bench.common import ratio_spread
    same = ratio_spread([2.0] * 5, [3.0] * 5)
    assert same['ratio'] == 1.5 and same['ci'] == [1.5, 1.5] and same['n'] == 5
    # a slow phase that hits both timings of a round leaves the per-round ratio alone
    base, other = [1.0, 1.0, 3.0, 1.0, 1.0, 3.0], [1.2, 1.2, 3.6, 1.2, 1.2, 3.6]
    r = ratio_spread(base, other)
    assert r['round_min'] == pytest.approx(1.2) and r['round_max'] == pytest.approx(1.2)
    assert r['ratio'] == pytest.approx(1.2) and r['ci'] == pytest.approx([1.2, 1.2])
    # noise that is not shared widens the interval around the ratio of medians
    noisy = ratio_spread([1.0, 1.1, 0.9, 1.0, 1.05, 0.95], [1.2, 1.5, 1.1, 1.3, 1.25, 1.4])
    lo, hi = noisy['ci']
    assert lo < noisy['ratio'] < hi and hi - lo > 0.05
    assert ratio_spread(base, other) == r  # fixed seed: the same timings, the same interval
    assert ratio_spread([], [])['ratio'] is None


def test_interleaved_timing_one_variant_failing_leaves_the_others(tmp_path, monkeypatch, capsys):
    """The timing pass builds every variant in one process and times them round by round; a
    variant whose step fails (CUDA out of memory, raised by a wrapper around the real
    train_step of that model only) gets an error row, the others are timed."""
    from mmengine.model import BaseModel
    from mkey_det.bench import train, train_interleaved
    real = BaseModel.train_step

    def train_step(self, data, optim_wrapper):
        if getattr(self.backbone, 'key_type', 'linear') == 'kua':
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 1 GiB')
        return real(self, data, optim_wrapper)
    monkeypatch.setattr(BaseModel, 'train_step', train_step)
    configs = {n: train.write_config(str(tmp_path / f'{n}.py'), k, charts=2)
               for n, k in (('swin-t', 'linear'), ('swin-t-kua', 'kua'), ('swin-t-simplek', 'simplek'))}
    assert train_interleaved.main(['--configs', ','.join(f'{n}={c}' for n, c in configs.items()),
                                   '--batch-sizes', '1', '--size', '96', '--warmup', '1',
                                   '--steps', '3']) == 0
    rows, _ = _worker_rows(capsys.readouterr().out)
    by = {r['variant']: r for r in rows}
    assert list(by) == ['swin-t', 'swin-t-kua', 'swin-t-simplek']
    assert by['swin-t-kua']['error'] == 'CUDA out of memory' and 'step_s' not in by['swin-t-kua']
    for n in ('swin-t', 'swin-t-simplek'):
        r = by[n]
        assert r['timing'] == 'interleaved' and r['step_s']['n'] == 3 and len(r['warmup_s']) == 1
        assert r['losses_finite'] and len(r['losses']) == 4
    assert by['swin-t']['time_ratio']['ratio'] == 1.0
    tr = by['swin-t-simplek']['time_ratio']
    assert tr['ratio_of_medians'] == pytest.approx(by['swin-t-simplek']['step_s']['median']
                                                   / by['swin-t']['step_s']['median'])
    per_round = [o / b for o, b in zip(by['swin-t-simplek']['step_s']['runs'],
                                       by['swin-t']['step_s']['runs'])]
    assert tr['ratio'] == pytest.approx(math.prod(per_round) ** (1 / 3))  # 3 rounds: none dropped
    assert tr['ci'][0] <= tr['ratio'] <= tr['ci'][1] and tr['n'] == 3
    with pytest.raises(SystemExit):
        train_interleaved.main(['--configs', 'swin-t'])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device (torch.cuda.is_available() is False)')
def test_train_suite_cuda(tmp_path):
    """One process per variant on CUDA: every (batch, precision) pair, GPU peak memory, AMP
    (fp16: bf16 fails in mmcv 2.1.0's roi_align CUDA kernel, see train.BF16_NOTE)."""
    from mkey_det.bench import train
    buf = io.StringIO()
    res = train.run(common.Emitter('train', buf), torch.device('cuda'), quick=True,
                    work_dir=str(tmp_path), variants='swin-t-spatialk', batch_sizes='1,2',
                    precisions='fp32,fp16', size=256, steps=2, warmup=1)
    rows = res['rows']
    assert len(rows) == 8, [r.get('error') for r in rows]
    assert not res['errors'], res['errors']
    for r in rows:
        assert r['peak_mem_kind'] == 'cuda_max_allocated' and r['peak_mem_gib'] > 0
        assert r['images_per_s'] > 0 and r['losses_finite']
        assert r['ratios']['time'] > 0 and r['ratios']['memory'] > 0
        assert r['optim_wrapper'] == ('OptimWrapper' if r['precision'] == 'fp32'
                                      else 'AmpOptimWrapper')
        assert r['flops']['backbone_train_order'] > 0
    assert len({r['batch'] for r in rows}) == 2
    # one worker log per variant (one process each)
    assert sorted(p.name for p in tmp_path.glob('*.log')) == ['swin-t-spatialk.log', 'swin-t.log',
                                                            'timing.log']


def test_step_flops_counts_the_whole_training_step(tmp_path):
    """The train suite's "FLOPs x step": one real fp32 training step (forward with losses and
    backward) counted by torch's FlopCounterMode; the same workload counts the same, and the
    manifold key's extra products show up."""
    from mkey_det.bench import train, train_worker
    counts = {}
    for key in ('linear', 'spatialk'):
        cfg = train.write_config(str(tmp_path / f'{key}.py'), key, charts=2)
        built = train_worker.build_detector(cfg, torch.device('cpu'))
        args = (built['model'], built['optim_cfg'], built['init_state'], 1, 96, built['num_classes'],
                torch.device('cpu'))
        first, again = train_worker.step_flops(*args), train_worker.step_flops(*args)
        assert first['batch'] == 1 and first['flops'] > 0 and first == again
        counts[key] = first['flops']
        # a forward alone counts less than a third of the step (backward ~ twice the forward)
        from torch.utils.flop_counter import FlopCounterMode
        model = built['model']
        model.load_state_dict(built['init_state'])
        data = model.data_preprocessor(train_worker.make_batch(1, 96, built['num_classes']), True)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.backbone(data['inputs'])
        assert counter.get_total_flops() < first['flops'] / 3
    assert counts['spatialk'] > counts['linear']


def test_stats_quantiles_interpolate_linearly_and_empty_is_nan():
    st = common.stats([0.4, 0.1, 0.3, 0.2, 0.5])
    assert (st['q1'], st['median'], st['q3']) == pytest.approx((0.2, 0.3, 0.4))
    assert st['mean'] == pytest.approx(0.3) and st['runs'] == [0.4, 0.1, 0.3, 0.2, 0.5]
    assert common.stats([2.0, 1.0])['median'] == 1.5  # between the middle two
    empty = common.stats([])
    assert empty['n'] == 0 and empty['min'] is None and math.isnan(empty['median'])


def test_config_imports_add_a_plugin_module_only():
    from mkey_det.bench.train import config_imports

    assert config_imports('mkey_det.models.keys.spatialk') == ['mkey_det']
    assert config_imports('mkey_det') == ['mkey_det']
    # a package that only starts like the plugin is another one
    assert config_imports('mkey_det_x.keys') == ['mkey_det', 'mkey_det_x.keys']
    assert config_imports('my_keys') == ['mkey_det', 'my_keys']


def test_amp_dtype_is_the_amp_rule_s():
    from mkey_det.bench.train_worker import amp_dtype

    assert (amp_dtype('fp32'), amp_dtype('fp16'), amp_dtype('bf16')) == (None, 'float16', 'bfloat16')
