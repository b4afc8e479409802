/**
 * The checks behind `mkey-det doctor`: what is installed, and whether it really works. The Python
 * side (python_shim/mkey_det/cli/doctor.py, run as a worker by file path so that it reports even
 * a package that does not import) probes and makes the checks; this adds the two only Node can
 * make (Node itself, onnxruntime-node) and, when Python cannot run at all, the one saying why.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonInterpreter, pythonShimDir, packageRoot } from '../utils/paths.js';
import { pythonDoctorReport, type CudaReport, type DoctorCheck } from '../python/schemas/doctor.js';
import { runWorker, WorkerError } from '../python/worker.js';

export type { CudaReport, DoctorCheck, GpuDevice, MmcvCudaReport } from '../python/schemas/doctor.js';

export interface DoctorReport {
  ok: boolean;
  node: string;
  python: { executable: string; source: string; version?: string };
  versions: Record<string, string | null>;
  cuda: CudaReport;
  checks: DoctorCheck[];
}

/** How long the probes may take (mmcv's ops on CPU and GPU, cuobjdump, nvidia-smi). */
const DOCTOR_TIMEOUT_MS = 180_000;
const SETUP_FIX = 'run `npm run setup`';

/** The GPU section when Python could not report one. */
const NO_CUDA_REPORT: CudaReport = {
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

function nodeCheck(): DoctorCheck {
  const version = process.versions.node;
  const ok = Number(version.split('.')[0]) >= 20;
  return { name: 'node', ok, detail: version, ...(ok ? {} : { fix: 'install Node 20 or newer' }) };
}

async function onnxruntimeNodeCheck(): Promise<{ check: DoctorCheck; version: string | null }> {
  try {
    const ort = await import('onnxruntime-node');
    const pkg = JSON.parse(readFileSync(join(packageRoot, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string };
    const backendOk = typeof ort.InferenceSession?.create === 'function';
    return { check: { name: 'onnxruntime-node', ok: backendOk, detail: pkg.version }, version: pkg.version };
  } catch (err) {
    const detail = String(err instanceof Error ? err.message : err).split('\n')[0] ?? '';
    return { check: { name: 'onnxruntime-node', ok: false, detail, fix: 'run `ONNXRUNTIME_NODE_INSTALL=skip npm install`' }, version: null };
  }
}

export async function runDoctor(): Promise<DoctorReport> {
  const interp = pythonInterpreter();
  const ort = await onnxruntimeNodeCheck();
  const checks: DoctorCheck[] = [nodeCheck(), ort.check];
  const report: DoctorReport = {
    ok: false,
    node: process.versions.node,
    python: { executable: interp.path, source: interp.source },
    versions: { 'onnxruntime-node': ort.version },
    cuda: NO_CUDA_REPORT,
    checks,
  };
  try {
    const py = await runWorker({
      python: interp.path,
      run: { script: join(pythonShimDir, 'mkey_det', 'cli', 'doctor.py') },
      args: ['--report'],
      label: 'doctor.py',
      result: pythonDoctorReport,
      timeoutMs: DOCTOR_TIMEOUT_MS,
    });
    report.python.version = py.python.version;
    Object.assign(report.versions, py.versions);
    report.cuda = py.cuda;
    checks.push(...py.checks);
  } catch (err) {
    const why =
      err instanceof WorkerError && err.notFound
        ? `interpreter not found: ${interp.path}`
        : `interpreter ${interp.path} failed: ${err instanceof WorkerError && err.stderrTail ? err.stderrTail.split('\n').slice(-2).join(' ') : (err as Error).message}`;
    checks.push({
      name: 'python',
      ok: false,
      detail: why,
      fix: interp.source === 'MKEY_PYTHON' ? 'point MKEY_PYTHON at a Python 3.11 with the stack, or unset it' : SETUP_FIX,
    });
  }
  report.ok = checks.every((c) => c.ok);
  return report;
}
