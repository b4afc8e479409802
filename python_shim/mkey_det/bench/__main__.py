"""``python -m mkey_det.bench --suite S [--device cpu|cuda] [--quick] [--work-dir D]``.

Train suite only: ``[--variants a,b] [--batch-sizes 2,8] [--precisions fp32,fp16] [--size PX]
[--steps N] [--warmup N]`` (defaults per device: :data:`mkey_det.bench.train.DEFAULTS`).

Prints the JSON-lines protocol of :mod:`.common` on stdout (everything else, e.g. library
warnings and prints, goes to stderr). Exit codes: 0 ok, 1 the suite failed, 2 bad request (e.g.
``--device cuda`` without CUDA).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import traceback
import warnings

import torch

from . import SUITES


def _train_default(field: str) -> str:
    """``default: cpu X, cuda Y``: a train-suite option's defaults (:data:`.train.DEFAULTS`)."""
    from .train import DEFAULTS

    def show(v) -> str:
        return ','.join(str(x) for x in v) if isinstance(v, list) else str(v)
    return (f'default: cpu {show(DEFAULTS[("cpu", False)][field])}, '
            f'cuda {show(DEFAULTS[("cuda", False)][field])}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m mkey_det.bench',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--suite', required=True, choices=SUITES)
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--work-dir', default=None,
                        help='scratch folder (exported models, configs); default: a temp dir')
    parser.add_argument('--configs', default=None,
                        help='train suite: JSON file {variant: config path} written by the CLI')
    train = parser.add_argument_group('train suite')
    train.add_argument('--variants', default=None,
                       help='comma list of variants (default: all registered backbone '
                            'variants; swin-t is always run)')
    train.add_argument('--batch-sizes', default=None,
                       help=f'comma list of batch sizes ({_train_default("batch_sizes")})')
    train.add_argument('--precisions', default=None,
                       help=f'comma list of fp32, fp16, bf16 ({_train_default("precisions")})')
    train.add_argument('--size', default=None, type=int,
                       help=f'side of the square synthetic images ({_train_default("size")})')
    train.add_argument('--steps', default=None, type=int,
                       help=f'timed rounds, one step of every variant each ({_train_default("steps")})')
    train.add_argument('--warmup', default=None, type=int,
                       help=f'untimed warm-up rounds ({_train_default("warmup")})')
    args = parser.parse_args(argv)
    train_opts = dict(variants=args.variants, batch_sizes=args.batch_sizes,
                      precisions=args.precisions, size=args.size, steps=args.steps,
                      warmup=args.warmup)
    given_train_opts = [k for k, v in train_opts.items() if v is not None]

    protocol = sys.stdout
    from .common import BenchInputError, Emitter, machine_info, matmul_peak, loadavg, resolve_device
    emitter = Emitter(args.suite, protocol)
    warnings.filterwarnings('ignore')
    with contextlib.redirect_stdout(sys.stderr):
        try:
            if given_train_opts and args.suite != 'train':
                flag = '--' + given_train_opts[0].replace('_', '-')
                raise BenchInputError(f'{flag} applies to the train suite only (--suite train)')
            device = resolve_device(args.device)
            if args.suite == 'train':
                # bad values fail here, before any measurement (exit code 2)
                from .train import resolve_settings
                resolve_settings(device.type, args.quick, **train_opts)
            if args.work_dir is None:  # standalone run: scratch files go away at exit
                scratch = tempfile.TemporaryDirectory(prefix='mkey-bench-')
                work_dir = scratch.name
            else:
                work_dir = args.work_dir
                os.makedirs(work_dir, exist_ok=True)
            if device.type == 'cuda' and args.suite == 'module':
                # a float32 comparison: cuDNN's default TF32 convolutions (the literal's grouped
                # Conv1d) differ from our float32 matmuls by ~3e-4, above the 1e-4 tolerance
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
            machine = machine_info(device)
            machine['matmul_peak'] = matmul_peak(device, n=1024 if args.quick else 2048,
                                                 repeats=3 if args.quick else 10)
            suite = importlib.import_module(f'mkey_det.bench.{args.suite}')
            kwargs = dict(quick=args.quick)
            if args.suite in ('backbone', 'train'):
                kwargs['work_dir'] = work_dir
                kwargs['machine'] = machine
            if args.suite == 'train':
                kwargs['configs'] = args.configs
                kwargs.update(train_opts)
            result = suite.run(emitter, device, **kwargs)
            machine['loadavg_after'] = loadavg()
            result = dict(result, suite=args.suite, device=str(device), quick=args.quick,
                          machine=machine)
            emitter.result(result)
            return 0
        except BenchInputError as exc:
            emitter.error(str(exc), exit_code=2)
            return 2
        except Exception as exc:  # noqa: BLE001 - reported as data, the CLI prints one line
            traceback.print_exc(file=sys.stderr)
            emitter.error(f'{type(exc).__name__}: {exc}', exit_code=1)
            return 1


if __name__ == '__main__':
    sys.exit(main())
