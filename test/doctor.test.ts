import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli, testPython } from './helpers/cli.js';
import type { DoctorReport } from '../src/core/doctor.js';

/** The report's type is the CLI's own: a field renamed there must fail here. */
type Report = DoctorReport;

const GPU_CHECKS = ['cuda', 'mmcv CUDA ops', 'mmcv archs', 'torch CUDA build'];

describe('mkey-det doctor', () => {
  it('reports a working stack as JSON', async () => {
    const res = await runCli(['doctor', '--json']);
    const report = JSON.parse(res.stdout) as Report;
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed).toEqual([]);
    expect(res.exitCode).toBe(0);
    expect(report.versions.mmdet).toBe('3.3.0');
    expect(report.versions.mmcv).toBe('2.1.0');
    expect(report.versions['onnxruntime-node']).toBe('1.30.0');
    expect(report.checks.find((c) => c.name === 'mmcv ops')?.detail).toMatch(/nms and roi_align/);
    // this machine has no GPU: the CUDA section says so, and no GPU check fails
    expect(report.ok).toBe(true);
    expect(report.cuda.available).toBe(false);
    expect(report.cuda.devices).toEqual([]);
    expect(report.cuda.mmcv).toBeNull();
    expect(report.checks.filter((c) => GPU_CHECKS.includes(c.name) && !c.ok)).toEqual([]);
    expect(report.cuda.torch.source).toBe('.venv');
    expect(report.cuda.torch.cudaBuild).toBe(false);
  });

  it('exits 3 with a fix hint when the interpreter is missing', async () => {
    const res = await runCli(['doctor'], { env: { MKEY_PYTHON: '/nonexistent/python3' } });
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toMatch(/bad python\s+interpreter not found: \/nonexistent\/python3/);
    expect(res.stdout).toMatch(/point MKEY_PYTHON/);
  });

  it('rejects an unknown option with exit code 2', async () => {
    const res = await runCli(['doctor', '--bogus']);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toMatch(/unknown option '--bogus'/);
  });

  it('shows a GPU example in --help', async () => {
    const res = await runCli(['doctor', '--help']);
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toMatch(/Examples:[\s\S]*mkey-det doctor --json/);
    expect(res.stdout).toMatch(/compute capability/);
  });
});

/**
 * The GPU side of the report, judged from python_shim/mkey_det/cli/doctor.py's probes as recorded on
 * an H100 (torch 2.11.0+cu130 from the machine's own environment, mmcv 2.1.0 built for sm_90):
 * a stand-in interpreter (MKEY_PYTHON) runs the real doctor.py on them (`--probes`), and the real
 * CLI does the rest.
 */
const H100_REPORT = {
  python: { ok: true, version: '3.12.3', executable: '/opt/torch/.venv/bin/python3', prefix: '/opt/torch/.venv' },
  packages: {
    torch: { ok: true, version: '2.11.0+cu130' },
    numpy: { ok: true, version: '2.5.2' },
    mmcv: { ok: true, version: '2.1.0' },
    mmengine: { ok: true, version: '0.10.7' },
    mmdet: { ok: true, version: '3.3.0' },
    pycocotools: { ok: true, version: '2.0.11' },
    onnx: { ok: true, version: '1.23.1' },
    onnxruntime: { ok: true, version: '1.30.0' },
  },
  mmcv_ops: { ok: true, nms_keep: [0, 2], roi_align_shape: [1, 2, 4, 4] },
  cuda: {
    available: true,
    devices: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', capability: '9.0', memory_gib: 79.2 }],
    torch_cuda: '13.0',
    cuda_build: true,
    torch_version: '2.11.0+cu130',
    torch_file: '/opt/torch/.venv/lib/python3.12/site-packages/torch/__init__.py',
    cudnn: '9.19.0',
    nccl: '2.28.9',
    torch_arch_list: ['sm_75', 'sm_80', 'sm_86', 'sm_90', 'sm_100', 'sm_120'],
    amp_dtypes: ['float16', 'bfloat16'],
    nvidia_smi: { path: '/usr/local/nvidia/bin/nvidia-smi', gpus: ['NVIDIA H100 80GB HBM3'] },
  },
  mkey_det: { ok: true },
  mmcv_cuda: {
    ok: true,
    compiling_cuda: null,
    archs: ['9.0'],
    ptx: false,
    arch_source: 'cuobjdump --list-elf /tmp/site/mmcv/_ext.cpython-312-x86_64-linux-gnu.so',
    coverage: [{ index: 0, capability: '9.0', covered: true }],
    ops: { ok: true, nms_keep: [0, 2], roi_align_shape: [1, 2, 4, 4] },
    compiling_cuda_error: 'mmcv.ops.get_compiling_cuda_version(): crashed (SIGSEGV)',
  },
};

describe('mkey-det doctor on a GPU machine (recorded reports)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mkey-doctor-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  /** A stand-in interpreter: the project's, with doctor.py replaying the recorded `report` instead of probing. */
  const fakePython = (report: unknown): string => {
    const base = join(dir, `py${n++}`);
    writeFileSync(`${base}.json`, JSON.stringify(report));
    writeFileSync(base, `#!/bin/sh\nexec '${join(repoRoot, '.venv', 'bin', 'python')}' "$@" --probes '${base}.json'\n`);
    chmodSync(base, 0o755);
    return base;
  };
  const doctorWith = async (report: unknown, args: string[] = ['--json']) =>
    runCli(['doctor', ...args], { env: { MKEY_PYTHON: fakePython(report) } });
  const check = (r: Report, name: string) => r.checks.find((c) => c.name === name);

  it('H100 with a system torch and mmcv built for sm_90: every check passes', async () => {
    const res = await doctorWith(H100_REPORT);
    const report = JSON.parse(res.stdout) as Report;
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(res.exitCode).toBe(0);
    expect(report.cuda.available).toBe(true);
    expect(report.cuda.devices).toEqual([{ index: 0, name: 'NVIDIA H100 80GB HBM3', capability: '9.0', memoryGiB: 79.2 }]);
    expect(report.cuda).toMatchObject({ cudaVersion: '13.0', cudnn: '9.19.0', nccl: '2.28.9', ampDtypes: ['float16', 'bfloat16'] });
    expect(report.cuda.torch).toMatchObject({ version: '2.11.0+cu130', source: 'system', cudaBuild: true });
    expect(report.cuda.mmcv).toMatchObject({ archs: ['9.0'], coverage: [{ index: 0, capability: '9.0', covered: true }] });
    expect(check(report, 'torch')?.detail).toBe('system torch 2.11.0+cu130 (pins say 2.13.0; checked, not forced)');
    expect(check(report, 'cuda')?.detail).toMatch(/1 GPU: NVIDIA H100 80GB HBM3 \(9\.0, 79\.2 GiB\); CUDA 13\.0, cuDNN 9\.19\.0, NCCL 2\.28\.9/);
    expect(check(report, 'mmcv CUDA ops')?.detail).toMatch(/nms and roi_align \(forward\+backward\) run on cuda:0/);
    expect(check(report, 'mmcv archs')?.detail).toMatch(/built for 9\.0 .*GPU 0 \(9\.0\) covered/);
    expect(report.cuda.notes).toContain('mmcv.ops.get_compiling_cuda_version(): crashed (SIGSEGV)');

    const text = await doctorWith(H100_REPORT, []);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/GPU 0\s+NVIDIA H100 80GB HBM3, capability 9\.0, 79\.2 GiB/);
    expect(text.stdout).toMatch(/cuda\s+CUDA 13\.0, cuDNN 9\.19\.0, NCCL 2\.28\.9; torch 2\.11\.0\+cu130 \(system/);
    expect(text.stdout).toMatch(/AMP dtypes\s+float16, bfloat16/);
    expect(text.stdout).toMatch(/mmcv archs\s+9\.0 /);
    expect(text.stdout).toMatch(/all checks passed/);
  });

  it('mmcv built for another architecture: mmcv archs fails with a rebuild fix', async () => {
    const report80 = structuredClone(H100_REPORT);
    Object.assign(report80.mmcv_cuda, {
      ok: false,
      archs: ['8.0'],
      arch_source: '/opt/torch/.venv/.mkey-mmcv-build.json (wheel)',
      coverage: [{ index: 0, capability: '9.0', covered: false }],
      ops: { ok: false, error: 'RuntimeError: CUDA error: no kernel image is available for execution on the device', missing_arch: true },
    });
    const res = await doctorWith(report80);
    const report = JSON.parse(res.stdout) as Report;
    expect(res.exitCode).toBe(3);
    expect(report.ok).toBe(false);
    const archs = check(report, 'mmcv archs');
    expect(archs?.ok).toBe(false);
    expect(archs?.detail).toMatch(/GPU 0 \(9\.0\) NOT covered/);
    expect(archs?.fix).toBe('rebuild mmcv for this GPU: `bash scripts/setup-python.sh --cuda --force` (or MKEY_CUDA_ARCH=9.0)');
    const ops = check(report, 'mmcv CUDA ops');
    expect(ops?.ok).toBe(false);
    expect(ops?.detail).toMatch(/no kernel for this GPU \(9\.0\)/);
    expect(ops?.fix).toMatch(/setup-python\.sh --cuda --force/);
  });

  it('a CPU-only torch where nvidia-smi sees a GPU: torch CUDA build fails with the fix', async () => {
    const { mmcv_cuda: _gpuMmcv, ...rest } = structuredClone(H100_REPORT);
    const cpuTorch = { ...rest, mmcv_cuda: null };
    cpuTorch.packages.torch.version = '2.13.0+cpu';
    Object.assign(cpuTorch.cuda, {
      available: false,
      devices: [],
      torch_cuda: null,
      cuda_build: false,
      torch_version: '2.13.0+cpu',
      torch_file: join(repoRoot, '.venv', 'lib', 'python3.11', 'site-packages', 'torch', '__init__.py'),
      cudnn: null,
      nccl: null,
      torch_arch_list: [],
      amp_dtypes: [],
    });
    const res = await doctorWith(cpuTorch);
    const report = JSON.parse(res.stdout) as Report;
    expect(res.exitCode).toBe(3);
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['torch CUDA build']);
    const c = check(report, 'torch CUDA build');
    expect(c?.detail).toMatch(/CPU-only build; nvidia-smi sees NVIDIA H100 80GB HBM3/);
    expect(c?.fix).toBe("install a CUDA torch: `bash scripts/setup-python.sh --cuda` (or --torch system to reuse the machine's)");
    expect(check(report, 'torch')?.ok).toBe(true);
  });

  it('a torch of another version in .venv is still held to the pin', async () => {
    const venvTorch = structuredClone(H100_REPORT);
    venvTorch.cuda.torch_file = join(repoRoot, '.venv', 'lib', 'python3.11', 'site-packages', 'torch', '__init__.py');
    const res = await doctorWith(venvTorch);
    const report = JSON.parse(res.stdout) as Report;
    expect(res.exitCode).toBe(3);
    expect(report.cuda.torch.source).toBe('.venv');
    expect(check(report, 'torch')).toMatchObject({ ok: false, detail: '2.11.0+cu130 (expected 2.13.0)' });
  });
});

describe('mkey-det doctor: the checks are made once, in Python', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mkey-doctor-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const interpreter = (name: string, script: string): string => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  it('--json prints the list doctor.py made, after the two checks only Node can make', async () => {
    const probes = join(dir, 'h100.json');
    writeFileSync(probes, JSON.stringify(H100_REPORT));
    const py = await execa(testPython, [join(repoRoot, 'python_shim', 'mkey_det', 'cli', 'doctor.py'), '--report', '--probes', probes]);
    const line = JSON.parse(String(py.stdout).trim()) as { event: string; result: { checks: unknown[]; cuda: unknown; versions: Record<string, string | null> } };
    expect(line.event).toBe('result');
    const python = interpreter('replay', `exec '${testPython}' "$@" --probes '${probes}'`);
    const res = await runCli(['doctor', '--json'], { env: { MKEY_PYTHON: python } });
    const report = JSON.parse(res.stdout) as Report;
    expect(report.checks.slice(0, 2).map((c) => c.name)).toEqual(['node', 'onnxruntime-node']);
    expect(report.checks.slice(2)).toEqual(line.result.checks);
    expect(report.cuda).toEqual(line.result.cuda);
    expect(report.versions).toEqual({ 'onnxruntime-node': '1.30.0', ...line.result.versions });
  });

  it('a Python that fails before it reports: the python check shows its last words', async () => {
    const python = interpreter('broken', "echo 'Traceback (most recent call last):' >&2\necho 'ImportError: libcudart.so.13: cannot open shared object file' >&2\nexit 1");
    const res = await runCli(['doctor'], { env: { MKEY_PYTHON: python } });
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toMatch(/bad python\s+interpreter .*broken failed: Traceback \(most recent call last\): ImportError: libcudart\.so\.13/);
    expect(res.stdout).toMatch(/point MKEY_PYTHON/);
  });

  it('a report that does not fit the schema names the field', async () => {
    const python = interpreter('drifted', `echo '{"event": "result", "result": {"python": {"version": "3.11.9", "executable": "/x"}, "versions": {}, "checks": []}}'`);
    const res = await runCli(['doctor', '--json'], { env: { MKEY_PYTHON: python } });
    expect(res.exitCode).toBe(3);
    const report = JSON.parse(res.stdout) as Report;
    expect(report.checks.find((c) => c.name === 'python')?.detail).toMatch(/doctor\.py replied with unexpected data at cuda: /);
  });
});
