"""The demo datasets' entries run by file path without the models (mkey_det/cli/light_entry.py):
the bridge's reply, in a process that never imports torch or a toolbox."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mkey_det.cli.light_entry as light_entry

SCRIPT = light_entry.__file__


def run(*args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    # -X importtime lists every module the process imported, on stderr
    done = subprocess.run([sys.executable, '-X', 'importtime', SCRIPT, *args], capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{')]
    return done, lines


def imported(stderr: str) -> set[str]:
    return {line.split('|')[-1].strip() for line in stderr.splitlines() if line.startswith('import time:')}


def test_the_demo_entry_answers_without_torch_or_a_toolbox(tmp_path: Path):
    root = tmp_path / 'demo'
    done, lines = run('data.ensure_demo', json.dumps({'root': str(root), 'spec': {'num_train': 4, 'num_val': 2}}))
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = lines
    assert line['event'] == 'result'
    assert line['result']['generated'] is True and line['result']['num_train'] == 4
    assert (root / 'annotations').is_dir()
    modules = imported(done.stderr)
    assert {'mkey_det.data.demo_cache', 'cv2'} <= modules  # the generator's own imports
    assert not modules & {'torch', 'mmdet', 'mmengine', 'mmpretrain', 'mkey_det.models'}
    # a second ask finds it intact
    again, [line] = run('data.ensure_demo', json.dumps({'root': str(root), 'spec': {'num_train': 4, 'num_val': 2}}))
    assert again.returncode == 0 and line['result']['generated'] is False


def test_an_entry_that_needs_the_models_is_refused_and_an_error_is_one_line(tmp_path: Path):
    done, [line] = run('runs.preflight', '{}')
    assert done.returncode == 1
    assert line == {'event': 'error', 'exit_code': 1,
                    'message': "'runs.preflight' is not an entry that runs without the models (those of mkey_det.data.)"}
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    done, [line] = run('data.ensure_demo', json.dumps({'root': str(blocker / 'demo')}))
    assert done.returncode == 1 and line['event'] == 'error'
    assert line['message'].startswith(('FileExistsError', 'NotADirectoryError', 'OSError')), line
    assert 'Traceback' in done.stderr
