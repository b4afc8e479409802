"""What every suite shares: the JSON-lines protocol, timing and statistics, the machine.

Protocol (stdout, one JSON object per line, ``allow_nan=False``; NaN/inf become ``null``):

* ``{"event": "start", "suite", "device", "quick", "total", "plan"}``: ``total`` measurements follow
* ``{"event": "measure", "suite", "index", "total", "label", "line", "data"}``: one per measurement
  (``line``: one human-readable line; ``data``: the numbers)
* ``{"event": "progress", "suite", "line"}``: work in progress that is no measurement (e.g. a
  timing round of the train suite), for people watching
* ``{"event": "result", "suite", "result"}``: the suite's full result (the last line)
* ``{"event": "error", "message", "exit_code"}``: the suite could not run (exit code 2: bad input,
  e.g. ``--device cuda`` without CUDA; 1: it failed)

Timing: ``warmup`` untimed rounds (none where a correctness check already ran every implementation
once), then rounds in which every compared implementation is timed once
(interleaved, so that a slow phase of a shared machine hits all of them alike); medians, quartiles
and min/max per implementation, and the ratio of medians plus the spread of the per-round ratios.
Quantiles are ``torch.quantile`` (linear interpolation), what torch.utils.benchmark's
``Measurement`` takes its median and IQR with; its ``Timer`` is not used, since it times one
statement at a time (no interleaving) and on one thread unless told otherwise.
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from typing import Any, Callable, Dict, IO, List, Optional, Sequence

import torch

from ..utils import json_safe, rel_diff  # noqa: F401  (the suites import them from here)

DEVICES = ('cpu', 'cuda')


class BenchInputError(ValueError):
    """A request the suite cannot serve (exit code 2), e.g. ``--device cuda`` without CUDA."""


class Emitter:
    """Writes protocol lines to ``stream`` (the real stdout) and counts measurements."""

    def __init__(self, suite: str, stream: Optional[IO[str]] = None):
        self.suite = suite
        self.stream = stream if stream is not None else sys.stdout
        self.index = 0
        self.total = 0
        self.records: List[Dict[str, Any]] = []

    def _write(self, obj: Dict[str, Any]) -> None:
        self.stream.write(json.dumps(json_safe(obj), allow_nan=False) + '\n')
        self.stream.flush()

    def start(self, device: str, quick: bool, total: int, plan: Dict[str, Any]) -> None:
        self.total = total
        self._write(dict(event='start', suite=self.suite, device=device, quick=quick,
                         total=total, plan=plan))

    def measure(self, label: str, line: str, data: Dict[str, Any]) -> Dict[str, Any]:
        """Report one measurement; ``data`` gets the load average at this moment added."""
        self.index += 1
        data = dict(data, loadavg=loadavg())
        self.records.append(data)
        self._write(dict(event='measure', suite=self.suite, index=self.index, total=self.total,
                         label=label, line=line, data=data))
        return data

    def progress(self, line: str) -> None:
        """Tell the watcher what is running (no measurement, not counted)."""
        self._write(dict(event='progress', suite=self.suite, line=line))

    def result(self, result: Dict[str, Any]) -> None:
        self._write(dict(event='result', suite=self.suite, result=result))

    def error(self, message: str, exit_code: int = 1) -> None:
        self._write(dict(event='error', suite=self.suite, message=message, exit_code=exit_code))


# ---------------------------------------------------------------------------------------------
# device, synchronisation, timing


def resolve_device(device: str) -> torch.device:
    """``torch.device`` for ``'cpu'`` / ``'cuda'``; :class:`BenchInputError` if unavailable."""
    if device not in DEVICES:
        raise BenchInputError(f'device must be one of {DEVICES}, got {device!r}')
    if device == 'cuda' and not torch.cuda.is_available():
        build = torch.version.cuda or 'no'
        raise BenchInputError('--device cuda: no CUDA device is available to PyTorch '
                              f'(torch {torch.__version__}, CUDA build: {build})')
    return torch.device(device)


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one ``fn()`` takes (device work finished)."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def _quantiles(xs: torch.Tensor, *qs: float) -> List[float]:
    """Linear-interpolation quantiles of a float64 tensor."""
    return torch.quantile(xs, torch.tensor(qs, dtype=torch.float64)).tolist()


def stats(xs: Sequence[float]) -> Dict[str, Any]:
    """``median, q1, q3, iqr, min, max, mean, n`` and the raw ``runs`` (seconds)."""
    if not xs:
        nan = float('nan')
        return dict(median=nan, q1=nan, q3=nan, iqr=nan, min=None, max=None, mean=None, n=0,
                    runs=[])
    t = torch.tensor(list(xs), dtype=torch.float64)
    q1, median, q3 = _quantiles(t, 0.25, 0.5, 0.75)
    return dict(median=median, q1=q1, q3=q3, iqr=q3 - q1, min=float(t.min()), max=float(t.max()),
                mean=float(t.mean()), n=len(xs), runs=list(xs))


#: Share of the per-round ratios dropped at each end before averaging (:func:`ratio_spread`).
TRIM = 0.1


def trimmed_log_mean(ratios: torch.Tensor, trim: float = TRIM) -> torch.Tensor:
    """Geometric mean of ``ratios`` along the last dimension after dropping the ``trim`` share of
    the smallest and of the largest (``floor(trim * n)`` each; none below 10 values)."""
    n = ratios.shape[-1]
    k = int(math.floor(trim * n))
    logs = ratios.log().sort(dim=-1).values[..., k:n - k]
    return logs.mean(dim=-1).exp()


def ratio_spread(base: Sequence[float], other: Sequence[float], resamples: int = 2000,
                 level: float = 0.95, seed: int = 0) -> Dict[str, Any]:
    """How ``other`` compares to ``base`` when both were timed once per round (paired by index).

    ``ratio``: the geometric mean of the per-round ratios ``other[i] / base[i]`` with the
    highest and lowest :data:`TRIM` share dropped; ``ci``: its percentile bootstrap interval at
    ``level`` (rounds resampled with replacement, pairs kept together, fixed ``seed`` so the same
    timings give the same interval); ``ratio_of_medians``: median(other) / median(base);
    ``round_median``/``round_min``/``round_max``: of the per-round ratios; ``n`` rounds.

    Why this estimator: a step's time varies with the same work, fast and not shared by the two
    steps of a round; the mean of the logs uses every round (the median's variance is about
    1.57x the mean's for such noise) and the trim keeps one stalled step from moving it. A slow
    phase that hits both timings of a round leaves that round's ratio alone (the noise measured:
    docs/BENCH.md, "train")."""
    n = min(len(base), len(other))
    if n == 0:
        return dict(ratio=None, ci=None, ratio_of_medians=None, round_median=None,
                    round_min=None, round_max=None, n=0)
    b, o = torch.tensor(base[:n], dtype=torch.float64), torch.tensor(other[:n], dtype=torch.float64)
    per_round = o / b
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (resamples, n), generator=g)
    boot = trimmed_log_mean(per_round[idx])
    tail = (1 - level) / 2
    return dict(ratio=float(trimmed_log_mean(per_round)),
                ci=_quantiles(boot, tail, 1 - tail), level=level, trim=TRIM,
                # medians as :func:`stats` takes them (linear interpolation between the middle two)
                ratio_of_medians=float(torch.quantile(o, 0.5) / torch.quantile(b, 0.5)),
                round_median=_quantiles(per_round, 0.5)[0], round_min=float(per_round.min()),
                round_max=float(per_round.max()), n=n)


class Plan:
    """Repeats of one comparison: at least ``min_repeats`` rounds, more (up to
    ``max_repeats``) while the rounds stay inside ``budget_s`` seconds (estimated from the
    warm-up)."""

    def __init__(self, warmup: int = 1, min_repeats: int = 3, max_repeats: int = 10,
                 budget_s: float = 6.0):
        self.warmup, self.min_repeats, self.max_repeats, self.budget_s = (
            warmup, min_repeats, max_repeats, budget_s)

    def repeats(self, round_s: float) -> int:
        if round_s <= 0:
            return self.max_repeats
        return int(max(self.min_repeats, min(self.max_repeats, self.budget_s // round_s)))

    def describe(self) -> Dict[str, Any]:
        return dict(warmup=self.warmup, min_repeats=self.min_repeats,
                    max_repeats=self.max_repeats, budget_s=self.budget_s)


def compare(impls: Dict[str, Callable[[], Any]], device: torch.device, plan: Plan,
            baseline: Optional[str] = None) -> Dict[str, Any]:
    """Time every implementation, interleaved round by round.

    ``plan.warmup`` untimed rounds first (0 when the caller already ran every implementation,
    e.g. for a correctness check); the first timed round sets the number of rounds
    (:meth:`Plan.repeats`). Returns ``dict(times={name: stats}, repeats, warmup,
    ratios={name: dict(median_ratio, round_median, round_min, round_max)})`` where a ratio is
    ``baseline time / name time`` (> 1: ``name`` is faster than ``baseline``); per-round ratios
    pair the two timings of the same round.
    """
    names = list(impls)
    for _ in range(plan.warmup):
        for n in names:
            time_call(impls[n], device)
    runs: Dict[str, List[float]] = {n: [] for n in names}
    repeats = plan.max_repeats
    r = 0
    while r < repeats:
        order = names if r % 2 == 0 else names[::-1]  # alternate who goes first
        for n in order:
            runs[n].append(time_call(impls[n], device))
        if r == 0:
            repeats = plan.repeats(sum(runs[n][0] for n in names))
        r += 1
    out: Dict[str, Any] = dict(times={n: stats(runs[n]) for n in names}, repeats=repeats,
                               warmup=plan.warmup)
    if baseline is not None:
        ratios = {}
        base = torch.tensor(runs[baseline], dtype=torch.float64)
        for n in names:
            if n == baseline:
                continue
            per_round = base / torch.tensor(runs[n], dtype=torch.float64)
            ratios[n] = dict(
                median_ratio=out['times'][baseline]['median'] / out['times'][n]['median'],
                round_median=_quantiles(per_round, 0.5)[0], round_min=float(per_round.min()),
                round_max=float(per_round.max()))
        out['ratios'] = ratios
    return out


# ---------------------------------------------------------------------------------------------
# the machine


def loadavg() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> Optional[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _proc_kib(path: str, field: str) -> Optional[int]:
    """The kB value of ``field`` (``'MemTotal:'``, ``'VmRSS:'``) in a /proc file; None without one."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _mem_total_gib() -> Optional[float]:
    kib = _proc_kib('/proc/meminfo', 'MemTotal:')
    return None if kib is None else round(kib / 2**20, 2)


def _version(module: str) -> Optional[str]:
    try:
        mod = __import__(module)
        return str(getattr(mod, '__version__', None))
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def _parallel_env() -> Dict[str, Optional[str]]:
    keys = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'KMP_AFFINITY')
    return {k: os.environ.get(k) for k in keys}


@torch.no_grad()
def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10,
                warmup: int = 2) -> Dict[str, Any]:
    """GFLOP/s of a float32 ``n x n`` ``torch.mm`` (``2 n^3`` FLOPs per call): the machine's
    practical matrix-multiply peak, measured in the same run as the suite it serves."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(warmup):
        torch.mm(a, b)
    times = [time_call(lambda: torch.mm(a, b), device) for _ in range(repeats)]
    st = stats(times)
    flops = 2.0 * n**3
    return dict(n=n, dtype='float32', flops_per_call=flops, seconds=st,
                gflops_median=flops / st['median'] / 1e9, gflops_best=flops / st['min'] / 1e9)


def machine_info(device: torch.device) -> Dict[str, Any]:
    """CPU model, cores, RAM, threads, library versions, load average."""
    info: Dict[str, Any] = dict(
        hostname=platform.node(), platform=platform.platform(), cpu_model=_cpu_model(),
        logical_cores=os.cpu_count(),
        affinity_cores=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
        ram_gib=_mem_total_gib(), python=platform.python_version(),
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        mkl=bool(torch.backends.mkl.is_available()),
        mkldnn=bool(torch.backends.mkldnn.is_available()),
        env=_parallel_env(), device=str(device), loadavg=loadavg(),
        versions=dict(torch=torch.__version__, mmcv=_version('mmcv'),
                      mmengine=_version('mmengine'), mmdet=_version('mmdet'),
                      onnx=_version('onnx'), onnxruntime=_version('onnxruntime'),
                      numpy=_version('numpy'), mkey_det=_version('mkey_det')))
    try:
        info['torch_parallel_info'] = torch.__config__.parallel_info()
    except Exception:  # noqa: BLE001
        info['torch_parallel_info'] = None
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info['cuda'] = dict(name=props.name, total_memory_gib=round(props.total_memory / 2**30, 2),
                            capability=f'{props.major}.{props.minor}', cuda=torch.version.cuda)
    return info


def max_rss_mib() -> float:
    """High-water mark of this process's resident set (``ru_maxrss``, KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> Optional[float]:
    """This process's resident set now (``VmRSS``) in MiB; None without /proc."""
    kib = _proc_kib('/proc/self/status', 'VmRSS:')
    return None if kib is None else kib / 1024.0


def fmt_ms(seconds: Optional[float]) -> str:
    return 'n/a' if seconds is None else f'{seconds * 1e3:.1f} ms'
