"""mkey_det/cli/doctor.py: the pure helpers behind the GPU report, the CPU report, and (on a CUDA
machine only) the CUDA probes themselves."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mkey_det.cli import doctor

DOCTOR = Path(doctor.__file__)

CUOBJDUMP_ELF = """\
ELF file    1: _ext.cpython-311-x86_64-linux-gnu.1.sm_80.cubin
ELF file    2: _ext.cpython-311-x86_64-linux-gnu.2.sm_90.cubin
ELF file    3: _ext.cpython-311-x86_64-linux-gnu.3.sm_90.cubin
ELF file    4: _ext.cpython-311-x86_64-linux-gnu.4.sm_90a.cubin
ELF file    5: _ext.cpython-311-x86_64-linux-gnu.5.sm_100.cubin
"""


def test_sm_to_arch():
    assert doctor.sm_to_arch('sm_90') == '9.0'
    assert doctor.sm_to_arch('sm_86') == '8.6'
    assert doctor.sm_to_arch('sm_100') == '10.0'
    assert doctor.sm_to_arch('sm_90a') == '9.0a'
    assert doctor.sm_to_arch('compute_90') == '9.0'
    assert doctor.sm_to_arch('8.6') == '8.6'
    with pytest.raises(ValueError):
        doctor.sm_to_arch('gfx90a')


def test_parse_cuobjdump_elf():
    assert doctor.parse_cuobjdump_elf(CUOBJDUMP_ELF) == ['8.0', '9.0', '9.0a', '10.0']
    assert doctor.parse_cuobjdump_elf('ELF file    1: _ext.1.sm_90.cubin\n') == ['9.0']
    # a CPU-only build: cuobjdump finds no device code
    assert doctor.parse_cuobjdump_elf('cuobjdump info    : File \'_ext.so\' does not contain device code\n') == []


def test_parse_arch_list():
    assert doctor.parse_arch_list('9.0;8.0') == (['8.0', '9.0'], False)
    assert doctor.parse_arch_list('8.6 9.0+PTX') == (['8.6', '9.0'], True)
    assert doctor.parse_arch_list('9.0') == (['9.0'], False)
    assert doctor.parse_arch_list('') == ([], False)


def test_arch_coverage():
    assert doctor.arch_covers('9.0', ['9.0']) is True
    assert doctor.arch_covers('8.6', ['9.0']) is False
    assert doctor.arch_covers('9.0', ['8.0', '8.6']) is False
    # CUDA binary compatibility: sm_80 code runs on 8.6 and 8.9 (same major, later minor) ...
    assert doctor.arch_covers('8.6', ['8.0']) is True
    # ... but not the other way round, and never across majors or from arch-specific code
    assert doctor.arch_covers('8.0', ['8.6']) is False
    assert doctor.arch_covers('10.0', ['9.0']) is False
    assert doctor.arch_covers('9.1', ['9.0a']) is False
    assert doctor.arch_covers('9.0', ['9.0a']) is True
    # unknown: no list at all, or PTX that the driver may compile just in time (not checked)
    assert doctor.arch_covers('9.0', None) is None
    assert doctor.arch_covers('10.0', ['9.0'], ptx=True) is None


def test_version_formats():
    assert doctor.format_cudnn(91002) == '9.10.2'
    assert doctor.format_cudnn(8902) == '8.9.2'
    assert doctor.format_cudnn(None) is None
    assert doctor.format_nccl((2, 27, 3)) == '2.27.3'
    assert doctor.format_nccl(21803) == '2.18.3'
    assert doctor.format_nccl(2708) == '2.7.8'


def test_missing_arch_error():
    assert doctor.is_missing_arch_error('CUDA error: no kernel image is available for execution on the device')
    assert not doctor.is_missing_arch_error('CUDA error: out of memory')


def test_child_steps():
    line = json.dumps({'step': 'ops', 'value': {'ok': True}})
    assert doctor.parse_child_steps(line + '\n' + json.dumps({'step': 'compiling_cuda', 'value': '13.0'}), 0) == {
        'ops': {'ok': True}, 'compiling_cuda': '13.0'}
    # a segfault after the ops: their result is kept, the crashing step is named
    steps = doctor.parse_child_steps(line + '\n', -11)
    assert steps['ops'] == {'ok': True}
    assert steps['compiling_cuda'] == {'error': 'crashed (SIGSEGV)', 'crashed': True}
    # a crash in the first step: the later ones say they did not run
    steps = doctor.parse_child_steps('', -11)
    assert steps['ops']['crashed'] and steps['compiling_cuda']['error'].startswith('not run')


def test_built_archs_from_build_record(tmp_path):
    (tmp_path / doctor.MMCV_BUILD_INFO).write_text(json.dumps(
        {'torch': '2.11.0+cu130', 'cuda': '13.0', 'arch_list': '9.0;8.0', 'source': 'built', 'seconds': 228}))
    built = doctor.mmcv_built_archs(str(tmp_path))
    assert built['archs'] == ['8.0', '9.0']
    assert built['ptx'] is False
    assert doctor.MMCV_BUILD_INFO in built['source'] and '(built)' in built['source']
    assert built['build_info']['torch'] == '2.11.0+cu130'


def test_built_archs_without_record(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor.shutil, 'which', lambda name: None)
    built = doctor.mmcv_built_archs(str(tmp_path))
    assert built['archs'] is None and built['source'] == 'unknown'
    assert 'no cuobjdump' in built['note']


def test_mmcv_cuda_is_none_without_cuda():
    assert doctor._mmcv_cuda({'available': False, 'devices': []}) is None


def test_script_report():
    """The script as the CLI runs it: one JSON line; on a CPU machine no GPU section."""
    out = subprocess.run([sys.executable, str(DOCTOR)], capture_output=True, text=True, check=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report['mmcv_ops']['ok'], report['mmcv_ops']
    if torch.cuda.is_available():
        assert report['cuda']['available'] is True
        assert report['mmcv_cuda']['ok'], report['mmcv_cuda']
    else:
        assert report['cuda']['available'] is False
        assert report['cuda']['devices'] == []
        assert report['mmcv_cuda'] is None


#: The CUDA probes as the CLI runs them: doctor.py imported as a plain module in a fresh interpreter.
#: In-process after this suite's imports, mmcv's get_compiling_cuda_version() was seen to segfault
#: on the GPU test machine (torch 2.11.0+cu130); a child keeps such a crash a test failure.
CUDA_PROBES = """
import json, sys
sys.path.insert(0, sys.argv[1])
import doctor
cuda = doctor._cuda()
print(json.dumps({'cuda': cuda, 'mmcv_cuda': doctor._mmcv_cuda(cuda)}, allow_nan=False))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_probes():
    out = subprocess.run([sys.executable, '-c', CUDA_PROBES, str(DOCTOR.parent)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    probes = json.loads(out.stdout.strip().splitlines()[-1])
    cuda, mmcv_cuda = probes['cuda'], probes['mmcv_cuda']
    assert cuda['available'] and cuda['cuda_build'], cuda
    assert 'errors' not in cuda, cuda['errors']
    assert cuda['devices'], cuda
    for dev in cuda['devices']:
        assert dev['name'] and dev['memory_gib'] > 0
        assert doctor.re.fullmatch(r'\d+\.\d+', dev['capability'])
    assert cuda['cudnn'] and cuda['nccl'], cuda
    assert 'float16' in cuda['amp_dtypes']
    assert ('bfloat16' in cuda['amp_dtypes']) == torch.cuda.is_bf16_supported()
    # None when get_compiling_cuda_version() crashed (seen in a fresh process; reported, not fatal)
    assert mmcv_cuda['compiling_cuda'] != 'not available', mmcv_cuda
    assert mmcv_cuda['ops']['ok'], mmcv_cuda['ops']
    assert all(c['covered'] is not False for c in mmcv_cuda['coverage']), mmcv_cuda
    assert mmcv_cuda['ok'], mmcv_cuda
