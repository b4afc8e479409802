"""order='auto': the order measured fastest per call shape, cached process-wide; same function."""
import copy

import pytest
import torch

from mkey_det import build_key, set_key_order
from mkey_det.models.keys import KEY_ORDERS, auto_order_table, clear_auto_order_table
from mkey_det.models.keys import order_autotune

from conftest import MANIFOLD, mkey_swin, randomize_, rel_err

C, N = 32, 49


@pytest.fixture(autouse=True)
def fresh_table():
    clear_auto_order_table()
    yield
    clear_auto_order_table()


@pytest.fixture
def timings(monkeypatch):
    """Counts the calls of the timing function (the real one still runs)."""
    calls = []
    real = order_autotune.time_key_path

    def counted(fn, x, params, backward, *args, **kwargs):
        calls.append((fn.__name__, tuple(x.shape), backward))
        return real(fn, x, params, backward, *args, **kwargs)

    monkeypatch.setattr(order_autotune, 'time_key_path', counted)
    return calls


def _forced(monkeypatch, winner):
    """Make the timing say that ``winner`` ('paper' | 'folded') is faster."""
    def fake(fn, x, params, backward, *args, **kwargs):
        return 1.0 if (fn.__name__ == 'forward_paper') == (winner == 'paper') else 2.0
    monkeypatch.setattr(order_autotune, 'time_key_path', fake)


def _run(key, x, order):
    key.order = order
    key.zero_grad()
    x.grad = None
    out = key(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in key.named_parameters()}, x.grad.clone()


def test_auto_is_an_order():
    assert KEY_ORDERS == ('paper', 'fast', 'auto')
    key = build_key('spatialk', C, N, 2, order='auto')
    assert key.order == 'auto'
    with pytest.raises(ValueError, match="order must be one of \\('paper', 'fast', 'auto'\\)"):
        key.order = 'fastest'


@pytest.mark.parametrize('key_type', MANIFOLD)
@pytest.mark.parametrize('winner', ['paper', 'folded'])
@pytest.mark.parametrize('batch', [1, 6])  # 49 tokens (the 'fast' rule keeps the paper order), 294
def test_auto_equals_paper_in_outputs_and_grads(key_type, winner, batch, monkeypatch):
    _forced(monkeypatch, winner)
    torch.manual_seed(0)
    key = randomize_(build_key(key_type, C, N, 4), seed=4, scale=0.1)
    x = torch.randn(batch, N, C, requires_grad=True)
    out_p, grads_p, xg_p = _run(key, x, 'paper')
    out_a, grads_a, xg_a = _run(key, x, 'auto')
    [entry] = auto_order_table().values()
    assert entry.choice == winner
    assert rel_err(out_a, out_p) < 1e-5
    assert rel_err(xg_a, xg_p) < 1e-4
    for name, g in grads_p.items():
        if name.endswith('gamma2'):  # eq4 CB: zero gradient up to rounding, in either order
            continue
        assert rel_err(grads_a[name], g) < 1e-4, name


def test_measured_once_per_shape_then_reused(timings):
    torch.manual_seed(0)
    a = build_key('kua', C, N, 4, order='auto')
    b = copy.deepcopy(a)  # another block of the same stage: same shape, same entry
    x = torch.randn(6, N, C)
    with torch.no_grad():
        ref = a.forward_paper(x)
        for key in (a, b, a):
            assert rel_err(key(x), ref) < 1e-5
    assert timings == [('forward_paper', (6, N, C), False), ('forward_folded', (6, N, C), False)]
    table = auto_order_table()
    [(k, entry)] = table.items()
    assert (k.key_type, k.cb_mode, k.num_charts, k.num_tokens, k.dim, k.tokens) == \
        ('kua', 'eq4', 4, N, C, 6 * N)
    assert (k.dtype, k.device, k.grad) == ('float32', 'cpu', False)
    assert entry.choice in ('paper', 'folded') and set(entry.seconds) == {'paper', 'folded'}

    # another shape, and the same shape recording gradients: one new entry each
    with torch.no_grad():
        a(torch.randn(2, N, C))
    a(torch.randn(6, N, C))
    a(torch.randn(6, N, C))
    assert len(timings) == 6 and len(auto_order_table()) == 3
    assert timings[-1] == ('forward_folded', (6, N, C), True)


def test_measuring_leaves_grads_alone():
    key = build_key('spatialk', C, N, 2, order='auto')
    key(torch.randn(6, N, C))  # measured with backward; nothing accumulated
    assert all(p.grad is None for p in key.parameters())


def test_clear_measures_again(timings):
    key = build_key('simplek', C, N, 2, order='auto')
    x = torch.randn(3, N, C)
    with torch.no_grad():
        key(x)
        key(x)
    assert len(timings) == 2
    assert clear_auto_order_table() == 1
    assert auto_order_table() == {}
    with torch.no_grad():
        key(x)
    assert len(timings) == 4 and len(auto_order_table()) == 1


def test_not_measured_while_tracing_or_compiling(timings, monkeypatch):
    monkeypatch.setattr(order_autotune, '_not_measurable', lambda: True)
    key = randomize_(build_key('spatialk', C, N, 2, order='auto'), scale=0.1)
    x = torch.randn(6, N, C)
    with torch.no_grad():
        assert rel_err(key(x), key.forward_paper(x)) < 1e-5  # the 'fast' rule
    assert timings == [] and auto_order_table() == {}


def test_backbone_auto_equals_paper(timings):
    paper = randomize_(mkey_swin('spatialk', 2), seed=1, scale=0.05)
    auto = copy.deepcopy(paper)
    paper.set_key_order('paper')
    assert auto.set_key_order('auto') == len(list(auto.manifold_attentions()))
    x = torch.randn(1, 3, 60, 76)
    with torch.no_grad():
        outs_p, outs_a = paper(x), auto(x)
    assert all(rel_err(a, p) < 1e-5 for a, p in zip(outs_a, outs_p))
    # one entry per stage (its blocks share it), two timings each
    assert len(auto_order_table()) == 4 and len(timings) == 8
    with torch.no_grad():
        auto(x)
    assert len(timings) == 8
    assert set_key_order(auto, 'fast') > 0
