"""SpatialK/KUA forward + backward: the literal Algorithm 1, our paper order, our paper order with
the grouped Conv1d replaced by a matmul, and the folded path, at Swin-T's stage-4 shapes.

    .venv/bin/python benchmarks/explore/spatialk_paths.py [spatialk|kua] [C/T,...]

Default shapes: C=768 with T = 392 (224x224 batch 8), 882 (512x512 batch 2), 1176 (800x1216
batch 1), 2352 (800x1216 batch 2), and C=384 T=1225. ``paper_mm`` is what
``SpatialKey.forward_paper`` would compute with the change proposed in docs/BENCH.md (same
parameters, same function); ``fold`` is ``forward_fast`` with ``FOLD_RATIO = 0`` (always fold).
Interleaved rounds, median per path and speedup over the literal transcription.
"""
import sys

import torch

from mkey_det.bench.common import Plan, compare, loadavg, rel_diff
from mkey_det.bench.module import build_pair, fold_ratio_override

DEFAULT = '768/392,768/882,768/1176,768/2352,384/1225'


def paper_mm(key, x):
    """SpatialK/KUA paper order, the spatial mixing as a matmul on ``key.spatial.weight``."""
    b, n, c = x.shape
    h = key.num_charts
    e = key.k(x) * key.gamma                                     # (B', N, H*C)
    lam = key.spatial.weight.view(h, n, n)                       # Lambda_h (out x in)
    y = torch.matmul(lam, e.view(b, n, h, c).transpose(1, 2))    # (B', H, N, C), chart-major
    if hasattr(key, 'gamma2'):                                   # KUA: CB over all H*N rows
        y = 0.5 * (y + key.gamma2 * y.mean(dim=(1, 2), keepdim=True))
    return key.to_out(y.transpose(1, 2).reshape(b, n, h * c))


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else 'spatialk'
    spec = sys.argv[2] if len(sys.argv) > 2 else DEFAULT
    shapes = [tuple(int(v) for v in s.split('/')) for s in spec.split(',')]
    print('load average', loadavg(), flush=True)
    for dim, tokens in shapes:
        ours, lit = build_pair(kind, dim, 49, num_charts=8, seed=0)
        x = torch.randn(tokens // 49, 49, dim, requires_grad=True)
        g = torch.randn(tokens // 49, 49, dim)
        with torch.no_grad():
            diff = rel_diff(paper_mm(ours, x), lit(x))

        def step(fn):
            def run():
                ours.zero_grad(set_to_none=True)
                lit.zero_grad(set_to_none=True)
                x.grad = None
                fn().backward(g)
            return run

        def fold():
            with fold_ratio_override(0):
                return ours.forward_fast(x)

        impls = {'literal': step(lambda: lit(x)), 'ours_paper': step(lambda: ours.forward_paper(x)),
                 'paper_mm': step(lambda: paper_mm(ours, x)), 'fold': step(fold)}
        res = compare(impls, torch.device('cpu'), Plan(1, 3, 6, 6.0), baseline='literal')
        times = ' '.join(f'{k} {v["median"] * 1e3:.0f} ms' for k, v in res['times'].items())
        speed = ', '.join(f'{k} {v["median_ratio"]:.2f}x' for k, v in res['ratios'].items())
        print(f'{kind} C={dim} T={tokens}: {times} | vs literal: {speed} | '
              f'paper_mm rel diff {diff:.0e}', flush=True)
    print('load average', loadavg(), flush=True)


if __name__ == '__main__':
    main()
