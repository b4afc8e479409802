"""One version for the tool: package.json (Node) and mkey_det.__version__ (Python; setuptools
reads it for the wheel's metadata) agree."""
from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path

import mkey_det

SHIM = Path(__file__).resolve().parents[1]


def test_python_and_node_versions_agree():
    node = json.loads((SHIM.parent / 'package.json').read_text())['version']
    assert mkey_det.__version__ == node
    # the installed (editable) package's metadata says the same
    assert metadata.version('mkey_det') == node


def test_pyproject_takes_the_version_from_the_package():
    project = tomllib.loads((SHIM / 'pyproject.toml').read_text())
    assert 'version' not in project['project'] and 'version' in project['project']['dynamic']
    assert project['tool']['setuptools']['dynamic']['version'] == {'attr': 'mkey_det.__version__'}
    assert (SHIM / project['project']['readme']).is_file()
