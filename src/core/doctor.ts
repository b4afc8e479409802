/** The checks behind `mkey-det doctor`: what is installed, and whether it really works. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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

export interface DoctorReport {
  ok: boolean;
  node: string;
  python: { executable: string; source: string; version?: string };
  versions: Record<string, string | null>;
  cuda: { available: boolean; devices: string[] };
  checks: DoctorCheck[];
}

type PyPackage = { ok: boolean; version?: string; error?: string };
interface PyReport {
  python: { version: string; executable: string };
  packages: Record<string, PyPackage>;
  mmcv_ops: { ok: boolean; error?: string };
  cuda: { available: boolean; devices: string[] };
  mkey_det: { ok: boolean; error?: string };
}

const SETUP_FIX = 'run `npm run setup`';

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
    cuda: { available: false, devices: [] },
    checks,
  };

  const nodeMajor = Number(process.versions.node.split('.')[0]);
  checks.push({ name: 'node', ok: nodeMajor >= 20, detail: process.versions.node, ...(nodeMajor >= 20 ? {} : { fix: 'install Node 20 or newer' }) });

  const ort = await onnxruntimeNodeVersion();
  versions['onnxruntime-node'] = ort.version;
  const { version: _v, ...ortCheck } = ort;
  checks.push(ortCheck);

  const run = await execa(interp.path, [join(pythonShimDir, 'mkey_det', 'doctor.py')], {
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
  for (const [name, pkg] of Object.entries(py.packages)) {
    versions[name] = pkg.ok ? (pkg.version ?? null) : null;
    const expected = EXPECTED_VERSIONS[name];
    const version = (pkg.version ?? '').split('+')[0];
    const ok = pkg.ok && (!expected || version === expected);
    checks.push({
      name,
      ok,
      detail: pkg.ok ? `${pkg.version}${expected && !ok ? ` (expected ${expected})` : ''}` : (pkg.error ?? 'not importable'),
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
  report.cuda = { available: py.cuda.available, devices: py.cuda.devices };
  report.ok = checks.every((c) => c.ok);
  return report;
}
