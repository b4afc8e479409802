"""Environment report for ``mkey-det doctor``; prints one JSON object on stdout.

Run as a plain script (``python .../doctor.py``) so that it works even when the ``mkey_det``
package or MMDetection cannot be imported: every probe is isolated and reports its own error.

On a CUDA machine the report also holds, per GPU, its name, compute capability and memory; the
CUDA / cuDNN / NCCL versions of torch; the AMP dtypes; the architectures mmcv's compiled
extension holds against the GPUs present; and nms + roi_align forward and backward on the GPU.
"""
from __future__ import annotations

import glob
import importlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import traceback
import warnings

#: Written next to the environment by scripts/setup-python.sh when it builds (or installs) mmcv:
#: {"torch": ..., "cuda": ..., "arch_list": "9.0;8.0", "source": "built"|"wheel", "seconds": ...}.
MMCV_BUILD_INFO = '.mkey-mmcv-build.json'

#: What CUDA says when a kernel has no code for the device's architecture (the first since CUDA
#: 9, the second older and from some libraries).
MISSING_ARCH_ERRORS = ('no kernel image is available for execution on the device', 'invalid device function')


def _error(exc: BaseException) -> str:
    return (f'{type(exc).__name__}: {exc}'.splitlines() or [type(exc).__name__])[0]


def _version(module: str) -> dict:
    try:
        mod = importlib.import_module(module)
        version = getattr(mod, '__version__', None)
        if version is None:
            from importlib.metadata import version as dist_version

            version = dist_version(module)
        return {'ok': True, 'version': version}
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}


# ---------------------------------------------------------------------------------------------
# Pure helpers (no torch needed; tested in python_shim/tests/test_doctor.py)
# ---------------------------------------------------------------------------------------------

def sm_to_arch(sm: str) -> str:
    """'sm_90' -> '9.0', 'sm_86' -> '8.6', 'sm_100' -> '10.0', 'sm_90a' -> '9.0a', '8.6' -> '8.6'."""
    m = re.fullmatch(r'(?:sm_|compute_)?(\d+)([a-z]?)', sm.strip())
    if not m:
        if re.fullmatch(r'\d+\.\d+[a-z]?', sm.strip()):
            return sm.strip()
        raise ValueError(f'not an architecture: {sm!r}')
    digits, suffix = m.groups()
    return f'{int(digits[:-1])}.{digits[-1]}{suffix}'


def _arch_key(arch: str) -> tuple:
    m = re.match(r'(\d+)\.(\d+)', arch)
    return (int(m.group(1)), int(m.group(2)), arch) if m else (999, 999, arch)


def parse_cuobjdump_elf(text: str) -> list[str]:
    """The SASS architectures in ``cuobjdump --list-elf`` output ('ELF file 1: x.1.sm_90.cubin')."""
    found = {sm_to_arch(m.group(0)) for m in re.finditer(r'sm_\d{2,3}[af]?(?![0-9A-Za-z])', text)}
    return sorted(found, key=_arch_key)


def parse_arch_list(value: str) -> tuple[list[str], bool]:
    """A TORCH_CUDA_ARCH_LIST-style string ('9.0;8.0', '8.6 9.0+PTX') -> (archs, has_ptx)."""
    archs: set[str] = set()
    ptx = False
    for item in re.split(r'[;,\s]+', value or ''):
        if not item:
            continue
        if item.upper().endswith('+PTX'):
            ptx = True
            item = item[:-4]
        archs.add(sm_to_arch(item))
    return sorted(archs, key=_arch_key), ptx


def arch_covers(capability: str, archs: list[str] | None, ptx: bool = False) -> bool | None:
    """Whether a GPU of ``capability`` ('9.0') can run code built for ``archs`` (['9.0', '8.0']).

    True when the list holds its own architecture, or an earlier minor of the same major without
    an arch-specific suffix (CUDA's binary compatibility: sm_80 code runs on 8.6). False when it
    does not. None (unknown) when the list is unknown, or when the build also holds PTX, which the
    driver may compile for the GPU just in time: that is not checked here.
    """
    if archs is None:
        return None
    major, minor = (int(x) for x in capability.split('.')[:2])
    for arch in archs:
        m = re.fullmatch(r'(\d+)\.(\d+)([a-z]?)', arch)
        if not m:
            continue
        a_major, a_minor, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
        if a_major == major and (a_minor == minor or (not suffix and a_minor < minor)):
            return True
    return None if ptx else False


def format_cudnn(version: int | None) -> str | None:
    """torch.backends.cudnn.version(): 91002 -> '9.10.2' (cuDNN 9+), 8902 -> '8.9.2' (cuDNN 8)."""
    if version is None:
        return None
    v = int(version)
    if v >= 10000:
        return f'{v // 10000}.{v % 10000 // 100}.{v % 100}'
    return f'{v // 1000}.{v % 1000 // 100}.{v % 100}'


def format_nccl(version) -> str | None:
    """torch.cuda.nccl.version(): (2, 27, 3) -> '2.27.3'; the older int form 21803 -> '2.18.3'."""
    if version is None:
        return None
    if isinstance(version, (tuple, list)):
        return '.'.join(str(int(x)) for x in version[:3])
    v = int(version)
    if v >= 10000:  # NCCL >= 2.9: major * 10000 + minor * 100 + patch
        return f'{v // 10000}.{v % 10000 // 100}.{v % 100}'
    return f'{v // 1000}.{v % 1000 // 100}.{v % 100}'


def is_missing_arch_error(message: str) -> bool:
    return any(s in message for s in MISSING_ARCH_ERRORS)


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------

def _run_ops(device: str) -> dict:
    """nms and roi_align (forward and backward) on tiny tensors on ``device``."""
    import torch
    from mmcv.ops import nms, roi_align

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]], device=device)
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    feats = torch.arange(2 * 16 * 16, dtype=torch.float32, device=device).reshape(1, 2, 16, 16).requires_grad_()
    rois = torch.tensor([[0.0, 2.0, 2.0, 10.0, 10.0]], device=device)
    out = roi_align(feats, rois, (4, 4), 1.0, 2, 'avg', True)
    out.sum().backward()
    if device != 'cpu':
        torch.cuda.synchronize()
    ok = keep.tolist() == [0, 2] and tuple(out.shape) == (1, 2, 4, 4) and float(feats.grad.abs().sum()) > 0
    return {'ok': ok, 'nms_keep': keep.tolist(), 'roi_align_shape': list(out.shape)}


def _mmcv_ops() -> dict:
    """Runs the compiled ops Mask R-CNN needs (nms, roi_align forward and backward) on tiny tensors."""
    try:
        return _run_ops('cpu')
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'.splitlines()[0]}


def _nvidia_smi() -> dict | None:
    """``nvidia-smi -L`` when the tool is on PATH (None when it is not): the GPUs the driver sees."""
    path = shutil.which('nvidia-smi')
    if path is None:
        return None
    try:
        res = subprocess.run([path, '-L'], capture_output=True, text=True, timeout=20, check=False)
        gpus = [m.group(1).strip() for m in re.finditer(r'^GPU \d+: (.*?)(?: \(UUID:.*\))?$', res.stdout, re.M)]
        out: dict = {'path': path, 'gpus': gpus}
        if res.returncode != 0:
            out['error'] = ((res.stdout + res.stderr).strip().splitlines() or [f'exit {res.returncode}'])[0]
        return out
    except Exception as exc:  # noqa: BLE001
        return {'path': path, 'gpus': [], 'error': _error(exc)}


def _cuda() -> dict:
    report: dict = {'available': False, 'devices': [], 'torch_cuda': None, 'cuda_build': False,
                    'torch_version': None, 'torch_file': None, 'cudnn': None, 'nccl': None,
                    'torch_arch_list': [], 'amp_dtypes': [], 'nvidia_smi': None}
    errors: dict = {}
    report['nvidia_smi'] = _nvidia_smi()  # reports its own errors
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        report['error'] = _error(exc)
        return report
    report['torch_version'] = str(torch.__version__)
    report['torch_file'] = os.path.realpath(torch.__file__)
    report['torch_cuda'] = torch.version.cuda
    report['cuda_build'] = torch.version.cuda is not None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            available = torch.cuda.is_available()
            n = torch.cuda.device_count() if available else 0
        notes = [str(w.message).splitlines()[0] for w in caught if 'cuda' in str(w.message).lower()]
        if notes:
            report['init_warning'] = notes[0]
    except Exception as exc:  # noqa: BLE001
        report['error'] = _error(exc)
        return report
    report['available'] = n > 0
    if n == 0:
        return report

    for i in range(n):
        device: dict = {'index': i}
        try:
            props = torch.cuda.get_device_properties(i)
            device.update(name=props.name, capability=f'{props.major}.{props.minor}',
                          memory_gib=round(props.total_memory / 2**30, 1))
        except Exception as exc:  # noqa: BLE001
            device['error'] = _error(exc)
        report['devices'].append(device)

    def probe(key: str, fn) -> None:
        try:
            report[key] = fn()
        except Exception as exc:  # noqa: BLE001
            errors[key] = _error(exc)

    probe('cudnn', lambda: format_cudnn(torch.backends.cudnn.version()))
    probe('nccl', lambda: format_nccl(torch.cuda.nccl.version()))
    probe('torch_arch_list', lambda: list(torch.cuda.get_arch_list()))

    def amp() -> list[str]:
        wanted = [torch.float16] + ([torch.bfloat16] if torch.cuda.is_bf16_supported() else [])
        ok = []
        a = torch.randn(16, 16, device='cuda')
        for dtype in wanted:
            name = str(dtype).replace('torch.', '')
            try:
                with torch.autocast('cuda', dtype=dtype):
                    y = a @ a
                torch.cuda.synchronize()
                if y.dtype == dtype:
                    ok.append(name)
                else:
                    errors[f'amp_{name}'] = f'autocast gave {y.dtype}'
            except Exception as exc:  # noqa: BLE001
                errors[f'amp_{name}'] = _error(exc)
        return ok

    probe('amp_dtypes', amp)
    if errors:
        report['errors'] = errors
    return report


def _mmcv_ext_files() -> list[str]:
    spec = importlib.util.find_spec('mmcv')  # does not import mmcv (its import needs opencv, torch)
    if spec is None or not spec.submodule_search_locations:
        return []
    files: list[str] = []
    for folder in spec.submodule_search_locations:
        files += sorted(glob.glob(os.path.join(folder, '_ext*.so')))
    return files


def mmcv_built_archs(prefix: str | None = None) -> dict:
    """The architectures mmcv's compiled extension holds: from the setup's build record when there
    is one, else from ``cuobjdump --list-elf`` on the extension, else unknown."""
    info_path = os.path.join(prefix or sys.prefix, MMCV_BUILD_INFO)
    out: dict = {'archs': None, 'ptx': False, 'source': 'unknown'}
    notes: list[str] = []
    if os.path.isfile(info_path):
        try:
            with open(info_path, encoding='utf-8') as fh:
                info = json.load(fh)
            out['build_info'] = {k: info.get(k) for k in ('torch', 'cuda', 'arch_list', 'source', 'seconds')}
            if info.get('arch_list'):
                out['archs'], out['ptx'] = parse_arch_list(str(info['arch_list']))
                out['source'] = f'{info_path} ({info.get("source") or "?"})'
                return out
            notes.append(f'{info_path} names no arch_list')
        except Exception as exc:  # noqa: BLE001
            notes.append(f'{info_path}: {_error(exc)}')
    tool = shutil.which('cuobjdump')
    files = _mmcv_ext_files()
    if tool and files:
        try:
            res = subprocess.run([tool, '--list-elf', files[0]], capture_output=True, text=True, timeout=120, check=False)
            archs = parse_cuobjdump_elf(res.stdout)
            if archs:
                out['archs'] = archs
                out['source'] = f'cuobjdump --list-elf {files[0]}'
                return out
            notes.append(f'cuobjdump found no SASS in {files[0]}'
                         + (f': {(res.stderr.strip().splitlines() or [""])[0]}' if res.stderr.strip() else ''))
        except Exception as exc:  # noqa: BLE001
            notes.append(f'cuobjdump: {_error(exc)}')
    elif not tool:
        notes.append(f'no {MMCV_BUILD_INFO} and no cuobjdump on PATH')
    else:
        notes.append('mmcv/_ext*.so not found')
    if notes:
        out['note'] = '; '.join(notes)
    return out


#: The steps of the mmcv CUDA child, in order: the ops first (what training needs), then
#: get_compiling_cuda_version(), which was seen to segfault in a fresh process (mmcv 2.1.0 built by
#: GCC 13 against torch 2.11.0+cu130) although nothing on the training path calls it.
CHILD_STEPS = ('ops', 'compiling_cuda')
CHILD_FLAG = '--mmcv-cuda-child'


def _mmcv_cuda_child() -> None:
    """Runs in a child process; prints one JSON line per step as soon as it is done."""
    def emit(step: str, value) -> None:
        sys.stdout.write(json.dumps({'step': step, 'value': value}, allow_nan=False) + '\n')
        sys.stdout.flush()

    try:
        emit('ops', _run_ops('cuda'))
    except Exception as exc:  # noqa: BLE001
        emit('ops', {'ok': False, 'error': _error(exc), 'missing_arch': is_missing_arch_error(str(exc))})
    try:
        from mmcv.ops import get_compiling_cuda_version

        emit('compiling_cuda', str(get_compiling_cuda_version()))
    except Exception as exc:  # noqa: BLE001
        emit('compiling_cuda', {'error': _error(exc)})


def parse_child_steps(stdout: str, returncode: int) -> dict:
    """The child's JSON lines -> {step: value}; a step it never reported gets an error saying why
    (a crash such as SIGSEGV, or another exit)."""
    import signal

    done: dict = {}
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get('step') in CHILD_STEPS:
            done[item['step']] = item.get('value')
    if returncode < 0:
        try:
            why = f'crashed ({signal.Signals(-returncode).name})'
        except ValueError:
            why = f'crashed (signal {-returncode})'
    else:
        why = f'did not report (exit {returncode})'
    missing = [step for step in CHILD_STEPS if step not in done]
    for step in missing:
        first = step == missing[0]
        done[step] = {'error': why if first else f'not run: the {missing[0]} step {why}', 'crashed': first and returncode < 0}
    return done


def _mmcv_cuda(cuda: dict) -> dict | None:
    """mmcv against the GPUs present (None when there is no CUDA device). The compiled ops run in
    a child process, so that a crash in them is reported instead of ending this report."""
    if not cuda.get('available'):
        return None
    report: dict = {'ok': False, 'compiling_cuda': None, 'archs': None, 'ptx': False, 'arch_source': 'unknown',
                    'coverage': [], 'ops': None}
    try:
        built = mmcv_built_archs()
        report['archs'], report['ptx'], report['arch_source'] = built['archs'], built['ptx'], built['source']
        for key in ('build_info', 'note'):
            if key in built:
                report[key if key != 'note' else 'arch_note'] = built[key]
    except Exception as exc:  # noqa: BLE001
        report['arch_note'] = _error(exc)
    for dev in cuda.get('devices', []):
        cap = dev.get('capability')
        covered = arch_covers(cap, report['archs'], report['ptx']) if cap else None
        report['coverage'].append({'index': dev.get('index'), 'capability': cap, 'covered': covered})

    try:
        res = subprocess.run([sys.executable, os.path.abspath(__file__), CHILD_FLAG], capture_output=True,
                             text=True, timeout=300, check=False)
        steps = parse_child_steps(res.stdout, res.returncode)
        if res.returncode != 0:
            tail = [l for l in res.stderr.strip().splitlines() if l.strip()][-3:]
            if tail:
                report['child_stderr'] = ' | '.join(tail)
    except Exception as exc:  # noqa: BLE001
        steps = {step: {'error': _error(exc)} for step in CHILD_STEPS}
    ops = steps['ops']
    if isinstance(ops, dict) and 'ok' not in ops:
        ops = {'ok': False, **ops}
    report['ops'] = ops
    compiling = steps['compiling_cuda']
    if isinstance(compiling, str):
        report['compiling_cuda'] = compiling
    else:
        report['compiling_cuda_error'] = f"mmcv.ops.get_compiling_cuda_version(): {compiling.get('error')}"
    report['ok'] = bool(ops.get('ok')) and all(c['covered'] is not False for c in report['coverage'])
    return report


def _plugin() -> dict:
    try:
        import mkey_det  # noqa: F401  (registers the backbones)
        from mmdet.registry import MODELS

        return {'ok': MODELS.get('SwinTransformerMKey') is not None}
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'.splitlines()[0],
                'traceback': traceback.format_exc()}


def _isolated(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': _error(exc)}


def main() -> None:
    if sys.argv[1:2] == [CHILD_FLAG]:
        _mmcv_cuda_child()
        return
    report = {
        'python': {'ok': True, 'version': platform.python_version(), 'executable': sys.executable,
                   'prefix': sys.prefix},
        'packages': {name: _version(name) for name in
                     ('torch', 'numpy', 'mmcv', 'mmengine', 'mmdet', 'pycocotools', 'onnx', 'onnxruntime')},
        'mmcv_ops': _mmcv_ops(),
        'cuda': _cuda(),
        'mkey_det': _plugin(),
    }
    # Last: a failing CUDA kernel can leave the CUDA context unusable for later probes.
    report['mmcv_cuda'] = _isolated(_mmcv_cuda, report['cuda'])
    json.dump(report, sys.stdout, allow_nan=False)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
