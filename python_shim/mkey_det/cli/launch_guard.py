"""Runs a command so that it ends when the mkey-det CLI that supervises it dies.

    python .../mkey_det/cli/launch_guard.py --supervisor PID -- COMMAND [ARGS...]

Run by file path (src/python/launch-guard.ts): ``-m`` would import the ``mkey_det`` package, and
so torch and MMDetection, before the ``exec``. Standard library only.

The CLI starts training (MMDetection's tools/train.py, torchrun or srun) in its own process group,
so that a terminal's Ctrl-C reaches only the CLI, which stops the run cleanly. Without a guard, a
CLI killed hard (``kill -9``, a closed terminal, the OOM killer) leaves that process running,
re-parented, with nobody to record how it ended. This sets Linux's parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGTERM)``), which survives ``exec``, then replaces itself with the
command: when the CLI dies, the command gets SIGTERM (tools/train.py stops at the next iteration
through ``MkeyProgressHook``; torchrun and srun forward it to their workers). If the CLI is already
gone when this starts, it exits with 143 instead of starting the command. On systems without
``prctl`` (macOS) the command runs unguarded.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Asks the kernel to send ``sig`` to this process when its parent dies; False if unsupported."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except OSError:
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--supervisor', type=int, required=True, help='pid of the supervising CLI')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='-- COMMAND [ARGS...]')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command given after --')
    set_parent_death_signal()
    if os.getppid() != args.supervisor:  # the supervisor died before the signal was armed
        return 128 + signal.SIGTERM
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == '__main__':
    sys.exit(main())
