"""``python -m mkey_det.bench --suite S [--device cpu|cuda] [--quick] [--work-dir D]``.

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

from . import SUITES


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
    args = parser.parse_args(argv)

    protocol = sys.stdout
    from .common import BenchInputError, Emitter, machine_info, matmul_peak, loadavg, resolve_device
    emitter = Emitter(args.suite, protocol)
    warnings.filterwarnings('ignore')
    with contextlib.redirect_stdout(sys.stderr):
        try:
            device = resolve_device(args.device)
            if args.work_dir is None:  # standalone run: scratch files go away at exit
                scratch = tempfile.TemporaryDirectory(prefix='mkey-bench-')
                work_dir = scratch.name
            else:
                work_dir = args.work_dir
                os.makedirs(work_dir, exist_ok=True)
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
