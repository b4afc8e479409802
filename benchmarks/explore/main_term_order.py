"""The folded key's main term, sum_h Lambda_h @ x @ M_h^T, in two orders (forward + backward).

    .venv/bin/python benchmarks/explore/main_term_order.py [spatialk|kua|simplek|vanillak] [rounds]

`before`: the order used until 2026-11-27: token mixing by einsum into (B', N, H, C), reshaped to
(T, H*C), then one GEMM with the charts' maps stacked (both re-layouts copy the T x H x C tensor,
forward and backward). `after`: `mkey_det.models.keys.folded_ops.main_term`: the channel GEMM
first, in x's own layout, then the token mixing as one batched GEMM over (token, chart).
Only the main term changed (the CB term of KUA / VanillaK is applied as before).
Shapes: Swin-T's stages 1-3 at the train suite's 2 x 384^2 (B' windows of N = 49 tokens; stage 4
runs the paper order there). Checks outputs and every gradient against each other, then times
both interleaved (median of `rounds` after one warm-up).
"""
import sys
import time

import torch

from mkey_det.models.keys.builder import build_key
from mkey_det.models.keys.folded_ops import main_term


def before(x, t):
    b, n, c = x.shape
    h = t.token_mix.shape[0]
    mixed = torch.einsum('hmn,bnc->bmhc', t.token_mix, x).reshape(b, n, h * c)
    return mixed @ t.weight.transpose(1, 2).reshape(h * c, c)


def main():
    key_type = sys.argv[1] if len(sys.argv) > 1 else 'spatialk'
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    torch.manual_seed(0)
    print(f'{key_type}, 8 charts, forward + backward, {torch.get_num_threads()} threads')
    print('stage | C | windows | before [ms] | after [ms] | after / before | max rel diff')
    for stage, (c, windows) in enumerate(((96, 392), (192, 98), (384, 32)), start=1):
        key = build_key(key_type, c, 49, 8)
        with torch.no_grad():
            for p in key.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        x = torch.randn(windows, 49, c, requires_grad=True)
        fns = {'before': lambda: before(x, key.fold()),
               'after': lambda: (lambda t: main_term(t.token_mix, t.weight, x))(key.fold())}
        got = {}
        for name, fn in fns.items():
            key.zero_grad()
            x.grad = None
            y = fn()
            y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))
            got[name] = [y.detach(), x.grad.clone()] + [p.grad.clone() for p in key.parameters()
                                                         if p.grad is not None]
        diff = max(((a - b).abs().max() / b.abs().max()).item()
                   for a, b in zip(got['after'], got['before']))
        times = {n: [] for n in fns}
        for r in range(rounds + 1):
            for name in (fns if r % 2 == 0 else list(fns)[::-1]):
                t0 = time.perf_counter()
                y = fns[name]()
                y.backward(torch.ones_like(y))
                if r:
                    times[name].append(time.perf_counter() - t0)
        med = {n: sorted(v)[len(v) // 2] * 1000 for n, v in times.items()}
        print(f'{stage} | {c} | {windows} | {med["before"]:.1f} | {med["after"]:.1f} | '
              f'{med["after"] / med["before"]:.2f} | {diff:.1e}')


if __name__ == '__main__':
    main()
