"""mkey_det.cli.primed: the preflight and the tool in one process (src/core/run/primed.ts drives it).
It answers the preflight on one stdout line, then runs the tool it is handed as ``python SCRIPT``
would, or nothing when the CLI refuses the launch; a refused config runs nothing."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mkey_det.cli.primed
from mkey_det.cli.primed import MARKER

SCRIPT = Path(mkey_det.cli.primed.__file__)

CONFIG = textwrap.dedent("""\
    default_scope = 'mmdet'
    custom_imports = dict(imports=['mkey_det'], allow_failed_imports=False)
    model = dict(backbone=dict(type='SwinTransformerMKey', key_type='spatialk', num_charts={charts}))
    train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3)
""")

TOOL = textwrap.dedent("""\
    import json, os, sys
    with open(sys.argv[1], 'w') as f:
        json.dump(dict(argv=sys.argv, path0=sys.path[0], name=__name__, stdin=sys.stdin.read()), f)
""")


def start(tmp_path, charts=2):
    config = tmp_path / 'config.py'
    config.write_text(CONFIG.format(charts=charts))
    return subprocess.Popen([sys.executable, '-u', str(SCRIPT), '--config', str(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def reply_of(proc) -> dict:
    for line in proc.stdout:
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise AssertionError('no preflight line: ' + proc.stderr.read()[-2000:])


def test_answers_the_preflight_then_runs_the_tool_as_its_main_script(tmp_path):
    tool = tmp_path / 'tools' / 'train.py'
    tool.parent.mkdir()
    tool.write_text(TOOL)
    out = tmp_path / 'ran.json'
    proc = start(tmp_path)
    reply = reply_of(proc)
    assert reply['ok'], reply
    value = reply['value']
    assert (value['backbone_type'], value['key_type'], value['num_charts'], value['max_epochs']) == ('SwinTransformerMKey', 'spatialk', 2, 3)
    assert value['backbone_params'] > 28_000_000
    proc.stdin.write(json.dumps([str(tool), str(out), '--launcher', 'none']) + '\n')
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
    ran = json.loads(out.read_text())
    assert ran == dict(argv=[str(tool), str(out), '--launcher', 'none'], path0=str(tool.parent), name='__main__', stdin='')


def test_end_of_input_runs_nothing(tmp_path):
    proc = start(tmp_path)
    assert reply_of(proc)['ok']
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stdout.read() == ''


def test_a_refused_config_is_the_reply_and_nothing_runs(tmp_path):
    tool = tmp_path / 'tool.py'
    tool.write_text(TOOL)
    proc = start(tmp_path, charts=0)
    reply = reply_of(proc)
    assert not reply['ok'] and reply['error']['type'] == 'ValueError', reply
    assert 'num_charts' in reply['error']['message']
    proc.stdin.write(json.dumps([str(tool), str(tmp_path / 'ran.json')]) + '\n')
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert not (tmp_path / 'ran.json').exists()
