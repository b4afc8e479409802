"""``mkey-det doctor``: what is installed, whether it really works, and one line to fix each problem.

Two steps, both here: the **probes** (versions, mmcv's compiled ops, CUDA devices, the plugin; each
isolated, reporting its own error) and the **report** made from them: the checks
``{name, ok, detail, fix}`` the CLI prints as they are, the package versions, and the GPU section.
The CLI runs this file as a worker (src/python/worker.ts): ``python doctor.py --report`` prints
one JSON line ``{"event": "result", "result": <report>}``. It runs by file path, never as
``python -m``, so that it works even when the ``mkey_det`` package or MMDetection cannot be imported
(the bridge imports both).

* ``python doctor.py``: this machine's probes, one JSON line (what a recorded report holds).
* ``python doctor.py --report [--probes FILE]``: the report, from this machine's probes or from
  probes recorded elsewhere (test/doctor.test.ts replays probes recorded on an H100 on any machine).

On a CUDA machine the probes also hold, per GPU, its name, compute capability and memory; the
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


def _distributed() -> dict:
    """Which collective backends this torch has: gloo (CPU processes) and NCCL (GPU processes)."""
    try:
        import torch.distributed as dist

        if not dist.is_available():
            return {'ok': False, 'error': 'torch.distributed is not built into this torch'}
        return {'ok': True, 'gloo': bool(dist.is_gloo_available()), 'nccl': bool(dist.is_nccl_available())}
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not stop the doctor
        return {'ok': False, 'error': _error(exc)}


def _isolated(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': _error(exc)}


def probe() -> dict:
    """This machine's probes, each isolated (its own ``ok``/``error``)."""
    probes = {
        'python': {'ok': True, 'version': platform.python_version(), 'executable': sys.executable,
                   'prefix': sys.prefix},
        'packages': {name: _version(name) for name in PACKAGES},
        'mmcv_ops': _mmcv_ops(),
        'cuda': _cuda(),
        'mkey_det': _plugin(),
        'distributed': _distributed(),
    }
    # Last: a failing CUDA kernel can leave the CUDA context unusable for later probes.
    probes['mmcv_cuda'] = _isolated(_mmcv_cuda, probes['cuda'])
    return probes


# ---------------------------------------------------------------------------------------------
# The report: the checks and the GPU section, made from the probes (no torch needed)
# ---------------------------------------------------------------------------------------------

#: The packages whose version is reported, in this order.
PACKAGES = ('torch', 'numpy', 'mmcv', 'mmengine', 'mmdet', 'pycocotools', 'onnx', 'onnxruntime')

#: Versions the project is pinned to (python_shim/requirements.lock).
PINS = {'torch': '2.13.0', 'mmcv': '2.1.0', 'mmengine': '0.10.7', 'mmdet': '3.3.0'}

#: The project's virtual environment: a torch from anywhere else is the system's (``--torch
#: system``, ``MKEY_PYTHON``), reported against the pin rather than held to it.
PROJECT_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '.venv')

SETUP_FIX = 'run `npm run setup`'
CUDA_FIX = "install a CUDA torch: `bash scripts/setup-python.sh --cuda` (or --torch system to reuse the machine's)"


def mmcv_rebuild_fix(capabilities: list) -> str:
    """The one-line fix for mmcv ops that do not run on (or were not built for) the GPUs present."""
    archs = ';'.join(dict.fromkeys(c for c in capabilities if c is not None)) or '9.0'
    return f'rebuild mmcv for this GPU: `bash scripts/setup-python.sh --cuda --force` (or MKEY_CUDA_ARCH={archs})'


def check(name: str, ok: bool, detail: str, fix: str | None = None) -> dict:
    """One line of the report: ``fix`` only where the check failed."""
    out = {'name': name, 'ok': bool(ok), 'detail': detail}
    if not ok and fix:
        out['fix'] = fix
    return out


def _or(value, default):
    return default if value is None else value


def _num(value) -> str:
    """A number as the report writes it: 80 rather than 80.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def torch_source(file: str | None, venv: str = PROJECT_VENV) -> str | None:
    """'.venv' when torch's ``file`` lies in the project's .venv, else 'system'; None without torch."""
    if not file:
        return None
    rel = os.path.relpath(os.path.realpath(file), os.path.realpath(venv))
    return '.venv' if rel != '.' and not rel.startswith('..') and not os.path.isabs(rel) else 'system'


def cuda_section(probes: dict) -> dict:
    """The GPU section of the report: devices, torch's CUDA build and versions, AMP dtypes, mmcv's
    CUDA ops against the GPUs present (None without a CUDA device), and every probe error as a note."""
    c = probes.get('cuda') or {}
    notes: list[str] = []
    if c.get('error'):
        notes.append(f"torch: {c['error']}")
    if c.get('init_warning'):
        notes.append(c['init_warning'])
    notes += [f'{key}: {msg}' for key, msg in (c.get('errors') or {}).items()]
    devices = []
    for d in c.get('devices') or []:
        if d.get('error'):
            notes.append(f"GPU {d['index']}: {d['error']}")
        devices.append({'index': d['index'], 'name': _or(d.get('name'), '?'),
                        'capability': _or(d.get('capability'), '?'), 'memoryGiB': _or(d.get('memory_gib'), 0)})
    mmcv = None
    m = probes.get('mmcv_cuda')
    if m:
        if m.get('compiling_cuda_error'):
            notes.append(m['compiling_cuda_error'])
        if m.get('child_stderr'):
            notes.append(f"mmcv CUDA probe stderr: {m['child_stderr']}")
        ops = m.get('ops') or {'ok': False, 'error': _or(m.get('error'), 'not run')}
        mmcv = {
            'ok': bool(m.get('ok')),
            'compiledCuda': m.get('compiling_cuda'),
            'archs': m.get('archs'),
            'ptx': bool(m.get('ptx')),
            'archSource': _or(m.get('arch_source'), 'unknown'),
            **({'archNote': m['arch_note']} if m.get('arch_note') else {}),
            'coverage': m.get('coverage') or [],
            'ops': {'ok': bool(ops.get('ok')),
                    **({'error': ops['error']} if ops.get('error') else {}),
                    **({'missingArch': True} if ops.get('missing_arch') else {}),
                    **({'crashed': True} if ops.get('crashed') else {})},
        }
        b = m.get('build_info')
        if b:
            mmcv['buildInfo'] = {'torch': b.get('torch'), 'cuda': b.get('cuda'), 'archList': b.get('arch_list'),
                                 'source': b.get('source'), 'seconds': b.get('seconds')}
    return {
        'available': bool(c.get('available')),
        'devices': devices,
        'torch': {'version': c.get('torch_version'), 'file': c.get('torch_file'),
                  'source': torch_source(c.get('torch_file')), 'cudaBuild': bool(c.get('cuda_build'))},
        'cudaVersion': c.get('torch_cuda'),
        'cudnn': c.get('cudnn'),
        'nccl': c.get('nccl'),
        'torchArchs': c.get('torch_arch_list') or [],
        'ampDtypes': c.get('amp_dtypes') or [],
        'nvidiaSmi': c.get('nvidia_smi'),
        'mmcv': mmcv,
        'notes': notes,
    }


def describe_gpu(d: dict) -> str:
    """'NVIDIA H100 80GB HBM3 (9.0, 79.1 GiB)'"""
    return f"{d['name']} ({d['capability']}, {_num(d['memoryGiB'])} GiB)"


def gpu_checks(cuda: dict) -> list[dict]:
    """The GPU checks. With a CUDA device: 'cuda', 'mmcv CUDA ops', 'mmcv archs'. Without one, a
    check fails only where nvidia-smi lists a GPU that torch cannot use (a CPU build: 'torch CUDA
    build'; a CUDA build that sees nothing: 'cuda'); on a CPU machine there is none."""
    smi_gpus = (cuda['nvidiaSmi'] or {}).get('gpus') or []
    torch_desc = f"torch {_or(cuda['torch']['version'], '?')}"
    if not cuda['available']:
        if not smi_gpus:
            return []
        seen = f"nvidia-smi sees {smi_gpus[0] if len(smi_gpus) == 1 else f'{len(smi_gpus)} GPUs'}"
        if not cuda['torch']['cudaBuild']:
            return [check('torch CUDA build', False, f'{torch_desc} is a CPU-only build; {seen}', CUDA_FIX)]
        visible = os.environ.get('CUDA_VISIBLE_DEVICES')
        hidden = visible is not None and re.fullmatch(r'\s*(-1)?\s*', visible) is not None
        why = next((n for n in cuda['notes'] if re.search(r'driver|cuda', n, re.I)), None)
        return [check(
            'cuda', False,
            f"{torch_desc} (CUDA {_or(cuda['cudaVersion'], '?')}) sees no GPU; {seen}{f': {why}' if why else ''}",
            'CUDA_VISIBLE_DEVICES hides every GPU: unset it' if hidden else
            f"torch's CUDA {_or(cuda['cudaVersion'], '')} may need a newer NVIDIA driver: update it, or reuse the "
            "machine's torch: `bash scripts/setup-python.sh --cuda --torch system`")]

    devices = cuda['devices']
    caps = [d['capability'] for d in devices]
    versions = f"CUDA {_or(cuda['cudaVersion'], '?')}, cuDNN {_or(cuda['cudnn'], '?')}, NCCL {_or(cuda['nccl'], '?')}"
    checks = [check('cuda', len(devices) > 0,
                    f"{len(devices)} GPU{'' if len(devices) == 1 else 's'}: {', '.join(map(describe_gpu, devices))}; {versions}",
                    CUDA_FIX)]
    m = cuda['mmcv']
    if m is None:
        checks.append(check('mmcv CUDA ops', False, 'not checked (doctor.py gave no mmcv CUDA report)', SETUP_FIX))
        return checks
    ops = m['ops']
    cpu_only_mmcv = m['compiledCuda'] == 'not available'
    built_with = _or(m['compiledCuda'], _or((m.get('buildInfo') or {}).get('cuda'), '?'))
    if ops['ok']:
        detail = f'nms and roi_align (forward+backward) run on cuda:0 (mmcv built with CUDA {built_with})'
    elif cpu_only_mmcv:
        detail = ('mmcv was built without CUDA (get_compiling_cuda_version: not available): '
                  f"{_or(ops.get('error'), 'ops failed')}")
    elif ops.get('missingArch'):
        detail = f"no kernel for this GPU ({', '.join(caps)}) in mmcv: {_or(ops.get('error'), '')}"
    else:
        detail = f"nms/roi_align on cuda:0: {_or(ops.get('error'), 'wrong results')}"
    rebuild = mmcv_rebuild_fix(caps)
    checks.append(check('mmcv CUDA ops', ops['ok'], detail,
                        rebuild if cpu_only_mmcv or ops.get('missingArch') else f'{rebuild}; if it persists: {SETUP_FIX}'))

    archs, coverage = m['archs'], m['coverage']
    if archs is None:
        built_for = 'unknown'
    elif archs:
        built_for = ', '.join(archs) + (' +PTX' if m['ptx'] else '')
    else:
        built_for = 'none'
    uncovered = [c for c in coverage if c['covered'] is False]
    per = ', '.join(
        f"GPU {c['index']} ({_or(c['capability'], '?')}) "
        + ('covered' if c['covered'] is True else 'NOT covered' if c['covered'] is False else 'unknown')
        for c in coverage)
    detail = f"built for {built_for} ({m['archSource']}); {per}"
    if archs is None:
        detail = f"built for: unknown ({_or(m.get('archNote'), m['archSource'])}); the CUDA ops check decides"
    elif m['ptx'] and any(c['covered'] is None for c in coverage):
        detail += ' (PTX just-in-time compatibility is not checked)'
    checks.append(check('mmcv archs', not uncovered, detail,
                        mmcv_rebuild_fix([_or(c['capability'], '') for c in uncovered])))
    return checks


def report(probes: dict) -> dict:
    """The doctor's report made from ``probes``: ``{python, versions, cuda, checks}``."""
    py = probes['python']
    cuda = cuda_section(probes)
    checks = [check('python', True, f"{py['version']} ({py['executable']})")]
    versions: dict = {}
    for name, pkg in probes['packages'].items():
        versions[name] = pkg.get('version') if pkg.get('ok') else None
        expected = PINS.get(name)
        matches = bool(pkg.get('ok')) and (not expected or (pkg.get('version') or '').split('+')[0] == expected)
        # A torch from the system (outside .venv) is not forced to the pin: the ops checks run
        # against it instead.
        system_torch = name == 'torch' and pkg.get('ok') and not matches and cuda['torch']['source'] == 'system'
        if not pkg.get('ok'):
            detail = _or(pkg.get('error'), 'not importable')
        elif system_torch:
            detail = f"system torch {pkg['version']} (pins say {expected}; checked, not forced)"
        else:
            detail = f"{pkg['version']}{f' (expected {expected})' if expected and not matches else ''}"
        checks.append(check(name, matches or system_torch, detail, f'{SETUP_FIX} (pins in python_shim/requirements.lock)'))
    ops = probes['mmcv_ops']
    checks.append(check('mmcv ops', ops['ok'],
                        'nms and roi_align (forward+backward) run' if ops['ok'] else _or(ops.get('error'), 'wrong results'),
                        'rebuild mmcv with its ops: `bash scripts/setup-python.sh --force`'))
    plugin = probes['mkey_det']
    checks.append(check('mkey_det plugin', plugin['ok'],
                        'SwinTransformerMKey registered in mmdet MODELS' if plugin['ok'] else _or(plugin.get('error'), 'not registered'),
                        SETUP_FIX))
    dist = probes.get('distributed')  # absent from probes recorded before it existed
    if dist is not None:
        gloo = bool(dist.get('ok') and dist.get('gloo'))
        checks.append(check(
            'gloo', gloo,
            ('--nproc-per-node N runs N CPU processes through torchrun and gloo: a multi-GPU recipe '
             'tried without GPUs, or a CPU cluster' + ('; NCCL for --gpus N is there too' if dist.get('nccl') else ''))
            if gloo else _or(dist.get('error'), 'this torch has no gloo backend'),
            SETUP_FIX))
    checks += gpu_checks(cuda)
    return {'python': {'version': py['version'], 'executable': py['executable']}, 'versions': versions,
            'cuda': cuda, 'checks': checks}


def _print_line(value) -> None:
    json.dump(value, sys.stdout, allow_nan=False)
    sys.stdout.write('\n')
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    import argparse

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [CHILD_FLAG]:
        _mmcv_cuda_child()
        return 0
    parser = argparse.ArgumentParser(prog='doctor.py', description='the environment report of mkey-det doctor')
    parser.add_argument('--report', action='store_true',
                        help='print the report as the worker result line (default: the probes)')
    parser.add_argument('--probes', metavar='FILE', help='probes recorded elsewhere (JSON), instead of probing here')
    opts = parser.parse_args(args)
    if not opts.report:
        _print_line(probe())
        return 0
    try:
        if opts.probes:
            with open(opts.probes, encoding='utf-8') as fh:
                probes = json.load(fh)
        else:
            probes = probe()
        _print_line({'event': 'result', 'result': report(probes)})
        return 0
    except Exception as exc:  # noqa: BLE001 - the CLI shows it as the failed python check
        traceback.print_exc()
        _print_line({'event': 'error', 'message': _error(exc), 'exit_code': 1})
        return 1


if __name__ == '__main__':
    sys.exit(main())
