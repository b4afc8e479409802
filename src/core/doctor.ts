/** The checks behind `mkey-det doctor`: what is installed, and whether it really works. */
import { readFileSync, realpathSync } from 'node:fs';
import { join, relative, isAbsolute } from 'node:path';
import { execa } from 'execa';
import { pythonInterpreter, pythonShimDir, packageRoot } from '../utils/paths.js';

/** Versions the project is pinned to (python_shim/requirements.lock). */
export const EXPECTED_VERSIONS: Record<string, string> = {
  torch: '2.13.0',
  mmcv: '2.1.0',
  mmengine: '0.10.7',
  mmdet: '3.3.0',
};

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** One-line fix, present when `ok` is false. */
  fix?: string;
}

/** One CUDA device as torch sees it. */
export interface GpuDevice {
  index: number;
  name: string;
  /** Compute capability, e.g. "9.0". */
  capability: string;
  memoryGiB: number;
}

/** mmcv's compiled CUDA ops against the GPUs present (null in `cuda.mmcv` when there is no CUDA device). */
export interface MmcvCudaReport {
  ok: boolean;
  /** mmcv.ops.get_compiling_cuda_version(): the CUDA it was built with, or 'not available' (CPU build). */
  compiledCuda: string | null;
  /** Architectures ("9.0", "8.0") the compiled extension holds; null when unknown. */
  archs: string[] | null;
  /** The build also holds PTX (compiled just in time for newer GPUs): coverage is then not decided. */
  ptx: boolean;
  /** Where `archs` came from: the setup's build record, cuobjdump, or 'unknown'. */
  archSource: string;
  archNote?: string;
  /** Per GPU: true covered, false not covered, null unknown. */
  coverage: { index: number; capability: string | null; covered: boolean | null }[];
  /** nms + roi_align forward and backward on cuda:0 (in a child process: a crash is reported, not fatal). */
  ops: { ok: boolean; error?: string; missingArch?: boolean; crashed?: boolean };
  /** `<venv>/.mkey-mmcv-build.json`, written by scripts/setup-python.sh, when present. */
  buildInfo?: { torch: string | null; cuda: string | null; archList: string | null; source: string | null; seconds: number | null };
}

export interface CudaReport {
  available: boolean;
  devices: GpuDevice[];
  /** Where torch comes from: the project's .venv, or the system (anything outside .venv). */
  torch: { version: string | null; file: string | null; source: '.venv' | 'system' | null; cudaBuild: boolean };
  /** torch.version.cuda (null for a CPU build). */
  cudaVersion: string | null;
  cudnn: string | null;
  nccl: string | null;
  /** torch.cuda.get_arch_list(): the architectures torch itself was built for. */
  torchArchs: string[];
  /** Autocast dtypes that ran on the GPU: float16, and bfloat16 where supported. */
  ampDtypes: string[];
  /** `nvidia-smi -L` when the tool is on PATH, else null. */
  nvidiaSmi: { path: string; gpus: string[]; error?: string } | null;
  mmcv: MmcvCudaReport | null;
  /** Probe errors and CUDA initialisation warnings, one line each. */
  notes: string[];
}

export interface DoctorReport {
  ok: boolean;
  node: string;
  python: { executable: string; source: string; version?: string };
  versions: Record<string, string | null>;
  cuda: CudaReport;
  checks: DoctorCheck[];
}

type PyPackage = { ok: boolean; version?: string; error?: string };
interface PyDevice {
  index: number;
  name?: string;
  capability?: string;
  memory_gib?: number;
  error?: string;
}
interface PyCuda {
  available: boolean;
  devices: PyDevice[];
  torch_cuda?: string | null;
  cuda_build?: boolean;
  torch_version?: string | null;
  torch_file?: string | null;
  cudnn?: string | null;
  nccl?: string | null;
  torch_arch_list?: string[];
  amp_dtypes?: string[];
  nvidia_smi?: { path: string; gpus: string[]; error?: string } | null;
  init_warning?: string;
  errors?: Record<string, string>;
  error?: string;
}
interface PyMmcvCuda {
  ok: boolean;
  error?: string;
  compiling_cuda?: string | null;
  compiling_cuda_error?: string;
  archs?: string[] | null;
  ptx?: boolean;
  arch_source?: string;
  arch_note?: string;
  coverage?: { index: number; capability: string | null; covered: boolean | null }[];
  ops?: { ok: boolean; error?: string; missing_arch?: boolean; crashed?: boolean } | null;
  build_info?: { torch?: string | null; cuda?: string | null; arch_list?: string | null; source?: string | null; seconds?: number | null };
  child_stderr?: string;
}
interface PyReport {
  python: { version: string; executable: string };
  packages: Record<string, PyPackage>;
  mmcv_ops: { ok: boolean; error?: string };
  cuda: PyCuda;
  mkey_det: { ok: boolean; error?: string };
  /** Absent from reports of an older doctor.py; null when there is no CUDA device. */
  mmcv_cuda?: PyMmcvCuda | null;
}

const SETUP_FIX = 'run `npm run setup`';

export const CUDA_FIX = 'install a CUDA torch: `bash scripts/setup-python.sh --cuda` (or --torch system to reuse the machine\'s)';

/** The one-line fix for mmcv ops that do not run on (or were not built for) the GPUs present. */
export function mmcvRebuildFix(capabilities: string[]): string {
  const archs = [...new Set(capabilities)].join(';') || '9.0';
  return `rebuild mmcv for this GPU: \`bash scripts/setup-python.sh --cuda --force\` (or MKEY_CUDA_ARCH=${archs})`;
}

function emptyCuda(): CudaReport {
  return {
    available: false,
    devices: [],
    torch: { version: null, file: null, source: null, cudaBuild: false },
    cudaVersion: null,
    cudnn: null,
    nccl: null,
    torchArchs: [],
    ampDtypes: [],
    nvidiaSmi: null,
    mmcv: null,
    notes: [],
  };
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** '.venv' when `file` lies in the project's .venv, else 'system' (MKEY_PYTHON, --system-site-packages). */
export function torchSource(file: string | null | undefined): '.venv' | 'system' | null {
  if (!file) return null;
  const venv = realpathOr(join(packageRoot, '.venv'));
  const rel = relative(venv, realpathOr(file));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? '.venv' : 'system';
}

function cudaFromPy(py: PyReport): CudaReport {
  const c = py.cuda;
  const notes: string[] = [];
  if (c.error) notes.push(`torch: ${c.error}`);
  if (c.init_warning) notes.push(c.init_warning);
  for (const [key, msg] of Object.entries(c.errors ?? {})) notes.push(`${key}: ${msg}`);
  const devices: GpuDevice[] = [];
  for (const d of c.devices ?? []) {
    if (d.error) notes.push(`GPU ${d.index}: ${d.error}`);
    devices.push({ index: d.index, name: d.name ?? '?', capability: d.capability ?? '?', memoryGiB: d.memory_gib ?? 0 });
  }
  const m = py.mmcv_cuda;
  let mmcv: MmcvCudaReport | null = null;
  if (m) {
    if (m.compiling_cuda_error) notes.push(m.compiling_cuda_error);
    if (m.child_stderr) notes.push(`mmcv CUDA probe stderr: ${m.child_stderr}`);
    const ops = m.ops ?? { ok: false, error: m.error ?? 'not run' };
    const b = m.build_info;
    mmcv = {
      ok: m.ok,
      compiledCuda: m.compiling_cuda ?? null,
      archs: m.archs ?? null,
      ptx: m.ptx ?? false,
      archSource: m.arch_source ?? 'unknown',
      ...(m.arch_note ? { archNote: m.arch_note } : {}),
      coverage: m.coverage ?? [],
      ops: {
        ok: ops.ok,
        ...(ops.error ? { error: ops.error } : {}),
        ...(ops.missing_arch ? { missingArch: true } : {}),
        ...(ops.crashed ? { crashed: true } : {}),
      },
      ...(b
        ? {
            buildInfo: {
              torch: b.torch ?? null,
              cuda: b.cuda ?? null,
              archList: b.arch_list ?? null,
              source: b.source ?? null,
              seconds: b.seconds ?? null,
            },
          }
        : {}),
    };
  }
  return {
    available: c.available,
    devices,
    torch: { version: c.torch_version ?? null, file: c.torch_file ?? null, source: torchSource(c.torch_file), cudaBuild: c.cuda_build ?? false },
    cudaVersion: c.torch_cuda ?? null,
    cudnn: c.cudnn ?? null,
    nccl: c.nccl ?? null,
    torchArchs: c.torch_arch_list ?? [],
    ampDtypes: c.amp_dtypes ?? [],
    nvidiaSmi: c.nvidia_smi ?? null,
    mmcv,
    notes,
  };
}

/** "NVIDIA H100 80GB HBM3 (9.0, 79.1 GiB)" */
export function describeGpu(d: GpuDevice): string {
  return `${d.name} (${d.capability}, ${d.memoryGiB} GiB)`;
}

/**
 * The GPU checks. With a CUDA device: 'cuda', 'mmcv CUDA ops', 'mmcv archs'. Without one, a check
 * fails only where nvidia-smi lists a GPU that torch cannot use (a CPU build: 'torch CUDA build';
 * a CUDA build that sees nothing: 'cuda'); on a CPU machine there is none.
 */
export function gpuChecks(cuda: CudaReport): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const smiGpus = cuda.nvidiaSmi?.gpus ?? [];
  const torchDesc = `torch ${cuda.torch.version ?? '?'}`;
  if (!cuda.available) {
    if (smiGpus.length === 0) return checks;
    const seen = `nvidia-smi sees ${smiGpus.length === 1 ? smiGpus[0] : `${smiGpus.length} GPUs`}`;
    if (!cuda.torch.cudaBuild) {
      checks.push({ name: 'torch CUDA build', ok: false, detail: `${torchDesc} is a CPU-only build; ${seen}`, fix: CUDA_FIX });
    } else {
      const hidden = process.env.CUDA_VISIBLE_DEVICES !== undefined && /^\s*(-1)?\s*$/.test(process.env.CUDA_VISIBLE_DEVICES);
      const why = cuda.notes.find((n) => /driver|cuda/i.test(n));
      checks.push({
        name: 'cuda',
        ok: false,
        detail: `${torchDesc} (CUDA ${cuda.cudaVersion ?? '?'}) sees no GPU; ${seen}${why ? `: ${why}` : ''}`,
        fix: hidden
          ? 'CUDA_VISIBLE_DEVICES hides every GPU: unset it'
          : `torch's CUDA ${cuda.cudaVersion ?? ''} may need a newer NVIDIA driver: update it, or reuse the machine's torch: \`bash scripts/setup-python.sh --cuda --torch system\``,
      });
    }
    return checks;
  }

  const caps = cuda.devices.map((d) => d.capability);
  const versions = `CUDA ${cuda.cudaVersion ?? '?'}, cuDNN ${cuda.cudnn ?? '?'}, NCCL ${cuda.nccl ?? '?'}`;
  checks.push({
    name: 'cuda',
    ok: cuda.devices.length > 0,
    detail: `${cuda.devices.length} GPU${cuda.devices.length === 1 ? '' : 's'}: ${cuda.devices.map(describeGpu).join(', ')}; ${versions}`,
    ...(cuda.devices.length > 0 ? {} : { fix: CUDA_FIX }),
  });

  const m = cuda.mmcv;
  if (!m) {
    checks.push({ name: 'mmcv CUDA ops', ok: false, detail: 'not checked (doctor.py gave no mmcv CUDA report)', fix: SETUP_FIX });
    return checks;
  }
  const cpuOnlyMmcv = m.compiledCuda === 'not available';
  const opsFix = cpuOnlyMmcv || m.ops.missingArch ? mmcvRebuildFix(caps) : `${mmcvRebuildFix(caps)}; if it persists: ${SETUP_FIX}`;
  checks.push({
    name: 'mmcv CUDA ops',
    ok: m.ops.ok,
    detail: m.ops.ok
      ? `nms and roi_align (forward+backward) run on cuda:0 (mmcv built with CUDA ${m.compiledCuda ?? m.buildInfo?.cuda ?? '?'})`
      : cpuOnlyMmcv
        ? `mmcv was built without CUDA (get_compiling_cuda_version: not available): ${m.ops.error ?? 'ops failed'}`
        : m.ops.missingArch
          ? `no kernel for this GPU (${caps.join(', ')}) in mmcv: ${m.ops.error ?? ''}`
          : `nms/roi_align on cuda:0: ${m.ops.error ?? 'wrong results'}`,
    ...(m.ops.ok ? {} : { fix: opsFix }),
  });

  const builtFor = m.archs === null ? 'unknown' : m.archs.length ? `${m.archs.join(', ')}${m.ptx ? ' +PTX' : ''}` : 'none';
  const uncovered = m.coverage.filter((c) => c.covered === false);
  const unknown = m.coverage.filter((c) => c.covered === null);
  const per = m.coverage
    .map((c) => `GPU ${c.index} (${c.capability ?? '?'}) ${c.covered === true ? 'covered' : c.covered === false ? 'NOT covered' : 'unknown'}`)
    .join(', ');
  let detail = `built for ${builtFor} (${m.archSource}); ${per}`;
  if (m.archs === null) detail = `built for: unknown (${m.archNote ?? m.archSource}); the CUDA ops check decides`;
  else if (unknown.length && m.ptx) detail += ' (PTX just-in-time compatibility is not checked)';
  checks.push({
    name: 'mmcv archs',
    ok: uncovered.length === 0,
    detail,
    ...(uncovered.length === 0 ? {} : { fix: mmcvRebuildFix(uncovered.map((c) => c.capability ?? '')) }),
  });
  return checks;
}

async function onnxruntimeNodeVersion(): Promise<DoctorCheck & { version: string | null }> {
  try {
    const ort = await import('onnxruntime-node');
    const pkg = JSON.parse(readFileSync(join(packageRoot, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as {
      version: string;
    };
    const backendOk = typeof ort.InferenceSession?.create === 'function';
    return { name: 'onnxruntime-node', ok: backendOk, detail: pkg.version, version: pkg.version };
  } catch (err) {
    return {
      name: 'onnxruntime-node',
      ok: false,
      detail: String(err instanceof Error ? err.message : err).split('\n')[0] ?? '',
      fix: 'run `ONNXRUNTIME_NODE_INSTALL=skip npm install`',
      version: null,
    };
  }
}

export async function runDoctor(): Promise<DoctorReport> {
  const interp = pythonInterpreter();
  const checks: DoctorCheck[] = [];
  const versions: Record<string, string | null> = {};
  const report: DoctorReport = {
    ok: false,
    node: process.versions.node,
    python: { executable: interp.path, source: interp.source },
    versions,
    cuda: emptyCuda(),
    checks,
  };

  const nodeMajor = Number(process.versions.node.split('.')[0]);
  checks.push({ name: 'node', ok: nodeMajor >= 20, detail: process.versions.node, ...(nodeMajor >= 20 ? {} : { fix: 'install Node 20 or newer' }) });

  const ort = await onnxruntimeNodeVersion();
  versions['onnxruntime-node'] = ort.version;
  const { version: _v, ...ortCheck } = ort;
  checks.push(ortCheck);

  const run = await execa(interp.path, [join(pythonShimDir, 'mkey_det', 'cli', 'doctor.py')], {
    reject: false,
    timeout: 180_000,
  }).catch((err: unknown) => ({ exitCode: -1, stdout: '', stderr: String(err), failed: true }));
  let py: PyReport | undefined;
  if (run.exitCode === 0) {
    try {
      py = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as PyReport;
    } catch {
      py = undefined;
    }
  }
  if (!py) {
    const missing = /ENOENT/.test(String(run.stderr)) || (run as { code?: string }).code === 'ENOENT';
    checks.push({
      name: 'python',
      ok: false,
      detail: missing ? `interpreter not found: ${interp.path}` : `interpreter ${interp.path} failed: ${String(run.stderr).split('\n').slice(-2).join(' ')}`,
      fix: interp.source === 'MKEY_PYTHON' ? 'point MKEY_PYTHON at a Python 3.11 with the stack, or unset it' : SETUP_FIX,
    });
    return report;
  }
  report.python.version = py.python.version;
  checks.push({ name: 'python', ok: true, detail: `${py.python.version} (${py.python.executable})` });
  const cuda = cudaFromPy(py);
  for (const [name, pkg] of Object.entries(py.packages)) {
    versions[name] = pkg.ok ? (pkg.version ?? null) : null;
    const expected = EXPECTED_VERSIONS[name];
    const version = (pkg.version ?? '').split('+')[0];
    const matches = pkg.ok && (!expected || version === expected);
    // A torch from the system (outside .venv: --torch system, MKEY_PYTHON) is not forced to the
    // pin: the ops checks below run against it instead.
    const systemTorch = name === 'torch' && pkg.ok && !matches && cuda.torch.source === 'system';
    const ok = matches || systemTorch;
    checks.push({
      name,
      ok,
      detail: !pkg.ok
        ? (pkg.error ?? 'not importable')
        : systemTorch
          ? `system torch ${pkg.version} (pins say ${expected}; checked, not forced)`
          : `${pkg.version}${expected && !ok ? ` (expected ${expected})` : ''}`,
      ...(ok ? {} : { fix: `${SETUP_FIX} (pins in python_shim/requirements.lock)` }),
    });
  }
  checks.push({
    name: 'mmcv ops',
    ok: py.mmcv_ops.ok,
    detail: py.mmcv_ops.ok ? 'nms and roi_align (forward+backward) run' : (py.mmcv_ops.error ?? 'wrong results'),
    ...(py.mmcv_ops.ok ? {} : { fix: 'rebuild mmcv with its ops: `bash scripts/setup-python.sh --force`' }),
  });
  checks.push({
    name: 'mkey_det plugin',
    ok: py.mkey_det.ok,
    detail: py.mkey_det.ok ? 'SwinTransformerMKey registered in mmdet MODELS' : (py.mkey_det.error ?? 'not registered'),
    ...(py.mkey_det.ok ? {} : { fix: SETUP_FIX }),
  });
  checks.push(...gpuChecks(cuda));
  report.cuda = cuda;
  report.ok = checks.every((c) => c.ok);
  return report;
}
