"""A one-process training or test launch that checks its run first: the preflight and the toolbox's
tool (tools/train.py, tools/test.py) in one Python process.

    python -u .../mkey_det/cli/primed.py --config CONFIG [--gpus N] [--checkpoint CKPT]

1. Runs the bridge's ``runs.preflight`` on CONFIG (and ``runs.check_checkpoint`` with CKPT).
2. Prints one line ``MKEY-PREFLIGHT <reply>``: the bridge's reply envelope, ``{"ok": true, "value":
   ...}`` or ``{"ok": false, "error": {"type", "message", "traceback"}}``.
3. Reads one line on stdin: the tool's argv as a JSON list (script path first), which it runs as
   ``python -u SCRIPT ARGS...`` would; an empty line or the end of stdin ends it with exit 0 and
   nothing run (the CLI refused the launch).

Why one process: a preflight in a bridge session and the tool in a second Python each import
torch, MMDetection and mmpretrain (about 4.5 s of CPU); a single-process launch pays that once. The
CLI (src/core/run/primed.ts) writes the run directory between steps 2 and 3, so a refused run still
leaves nothing written. Multi-process launches (torchrun, srun) check in the bridge as before.
Run by file path, as the tool is: ``-m`` would put the current folder first on ``sys.path``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import runpy
import sys

from mkey_det.cli.bridge import call

#: Starts the line that carries the preflight's reply on stdout (the rest of stdout is the log).
MARKER = 'MKEY-PREFLIGHT '


def preflight_reply(config: str, gpus: int, checkpoint: str | None) -> str:
    """The reply envelope of the preflight, and of the checkpoint check when one is given."""
    reply = call('runs.preflight', json.dumps({'config_path': config, 'gpus': gpus}))
    if checkpoint is not None and json.loads(reply)['ok']:
        checked = call('runs.check_checkpoint', json.dumps({'config_path': config, 'checkpoint_path': checkpoint}))
        if not json.loads(checked)['ok']:
            return checked
    return reply


def run_tool(argv: list[str]) -> None:
    """Runs ``argv[0]`` as the main script with ``argv`` as its ``sys.argv``, as ``python SCRIPT`` does."""
    script = os.path.abspath(argv[0])
    sys.argv = [script, *argv[1:]]
    sys.path[0] = os.path.dirname(script)  # python SCRIPT puts the script's folder first, not the cwd
    # The tool reads nothing from stdin; it gets what a plain launch gets (nothing, at its end).
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    runpy.run_path(script, run_name='__main__')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', required=True, help='the config to check')
    parser.add_argument('--gpus', type=int, default=0, help='CUDA devices the launch asks for')
    parser.add_argument('--checkpoint', help='weights the tool will load (checked key for key)')
    args = parser.parse_args(argv)
    reply = preflight_reply(args.config, args.gpus, args.checkpoint)
    gc.collect()  # the preflight's backbone, before the tool builds its model
    sys.stderr.flush()
    sys.stdout.write('\n' + MARKER + reply + '\n')  # on a line of its own, whatever stderr left open
    sys.stdout.flush()
    line = sys.stdin.readline().strip()
    if not line or not json.loads(reply)['ok']:
        return 0
    tool_argv = json.loads(line)
    if not (isinstance(tool_argv, list) and tool_argv and all(isinstance(a, str) for a in tool_argv)):
        raise SystemExit(f'primed: expected a JSON list of strings on stdin, got {line[:200]!r}')
    run_tool(tool_argv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
