"""Shared fixtures: small Swin configurations, seeded models, checkpoint writers."""
from __future__ import annotations

import copy

import pytest
import torch

import mkey_det  # noqa: F401  (registers SwinTransformerMKey)
from mkey_det.models.keys.base import ManifoldKey

torch.set_num_threads(2)

MANIFOLD = ('spatialk', 'kua', 'simplek', 'vanillak')


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Every test starts in mmdet's default scope, and a scope a test sets (mmpretrain's
    ``register_all_modules``, a Runner) is undone after it: mmengine's current ``DefaultScope``
    is process-wide and decides which registry ``MODELS.build`` searches, so without this a test
    passed or failed by the order the files ran in (a fresh clone's run: an mmpretrain test
    before test_backbone sent ``SwinTransformerMKey`` to the mmpretrain registry)."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield

#: A narrow Swin with every structural feature of Swin-T (4 stages, shifted blocks, merging,
#: padding, window 7): fast enough to run many variants.
SMALL_SWIN = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7,
                  mlp_ratio=2, drop_path_rate=0.0, out_indices=(0, 1, 2, 3), init_cfg=None)


def small_cfg(**overrides) -> dict:
    cfg = copy.deepcopy(SMALL_SWIN)
    cfg.update(overrides)
    return cfg


def stock_swin(seed: int = 0, **overrides):
    """mmdet's SwinTransformer with random (non-trivial) weights, in eval mode."""
    from mmdet.models.backbones.swin import SwinTransformer
    torch.manual_seed(seed)
    model = SwinTransformer(**small_cfg(**overrides))
    randomize_(model, seed)
    model.eval()  # mmdet's SwinTransformer.train() returns None
    return model


def mkey_swin(key_type: str, num_charts: int = 8, seed: int = 0, **overrides):
    from mkey_det import SwinTransformerMKey
    torch.manual_seed(seed)
    return SwinTransformerMKey(key_type=key_type, num_charts=num_charts,
                               **small_cfg(**overrides)).eval()


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int = 0, scale: float = 0.05):
    """Perturb every parameter (biases, norms, rel-pos tables, keys) so that nothing sits at a
    symmetric initial value."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


def manifold_keys(model):
    return [m for m in model.modules() if isinstance(m, ManifoldKey)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.fixture
def image():
    """An input whose size needs padding at every stage."""
    return torch.randn(1, 3, 333, 517, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def small_image():
    return torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))


def pytest_configure(config):
    # third-party deprecations (torch.jit in mmcv/mmengine) are not ours
    config.addinivalue_line('filterwarnings', 'ignore::DeprecationWarning')


def outputs_and_grads_by_order(key: torch.nn.Module, x: torch.Tensor) -> dict:
    """One weighted backward per computation order of a key: ``{order: (output, {param: grad},
    x.grad)}`` for ``'paper'`` and ``'fast'`` (``x`` must require grad)."""
    res = {}
    for order in ('paper', 'fast'):
        key.order = order
        key.zero_grad()
        x.grad = None
        out = key(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        res[order] = (out.detach(), {n: p.grad.clone() for n, p in key.named_parameters()},
                      x.grad.clone())
    return res


#: The files that take longest, longest first (the sum of their tests' seconds in one 2-core run,
#: 2026-12-06: 72, 47, 32, 31, 28, 23, 22, 19, 18, 13, 11, 10, 10, 10 s), started first: two
#: pytest-xdist processes take whole files (``--dist loadfile``) in this order (scripts/test.sh
#: gives ``--no-loadscope-reorder``: xdist's default order, most tests first, started the 72 s file
#: last and left one process running it alone). Longest first over two processes: 198 + 198 s of
#: that run's 395 s, where xdist's order gave 164 + 231. The rest keep their collection order.
SLOWEST_FIRST = ('test_ddp_gradients.py', 'test_bench.py', 'test_export.py', 'test_key_start.py', 'test_primed.py',
                 'test_bf16_mmcv_ops.py', 'test_demo_cls.py', 'test_backbone.py', 'test_train_step.py',
                 'test_progress_flops.py', 'test_complexity.py', 'test_report_tools.py', 'test_doctor.py',
                 'test_demo_data.py')


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))  # stable: the rest as collected
