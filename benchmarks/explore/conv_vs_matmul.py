"""The grouped Conv1d of the spatial mixing vs the same product as a matmul (forward + backward).

    .venv/bin/python benchmarks/explore/conv_vs_matmul.py

``nn.Conv1d(H*N, H*N, 1, groups=H)`` on ``(B', H*N, C)`` is ``Lambda_h @ E_h`` per chart and
window; ``torch.matmul(weight.view(H, N, N), E.view(B', H, N, C))`` computes the same numbers.
On the CPU build used here (torch 2.13 CPU, oneDNN) the convolution's backward
(``aten::convolution_backward``) is 10-20x slower than the matmul when the length C is 768
(Swin-T's stage 4) and about equal at C <= 384. Prints the median of 3 runs per shape and the
largest difference of the two outputs.
"""
import time

import torch

H, N = 8, 49
SHAPES = [(768, 8), (768, 24), (768, 48), (384, 88), (384, 176), (96, 1276)]  # (C, B')


def median_time(fn, repeats=3):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(H * N, H * N, 1, groups=H, bias=False)
    weight = conv.weight.view(H, N, N)
    for c, b in SHAPES:
        x = torch.randn(b, H * N, c, requires_grad=True)
        g = torch.randn(b, H * N, c)

        def with_conv():
            conv.zero_grad(set_to_none=True)
            x.grad = None
            conv(x).backward(g)

        def with_matmul():
            conv.zero_grad(set_to_none=True)
            x.grad = None
            torch.matmul(weight, x.view(b, H, N, c)).backward(g.view(b, H, N, c))

        t_conv, t_mm = median_time(with_conv), median_time(with_matmul)
        with torch.no_grad():
            mm = torch.matmul(weight, x.view(b, H, N, c)).view(b, H * N, c)
            diff = (conv(x) - mm).abs().max()
        print(f"C={c:4d} B'={b:5d}  conv {t_conv * 1e3:8.1f} ms  matmul {t_mm * 1e3:8.1f} ms  "
              f"({t_conv / t_mm:5.1f}x)  max|diff| {float(diff):.1e}", flush=True)


if __name__ == '__main__':
    main()
