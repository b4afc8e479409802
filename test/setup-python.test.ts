/**
 * scripts/setup-python.sh beyond the default CPU path (which every test run goes through): its
 * option checks, and `--torch system` offline, i.e. a venv that reuses another interpreter's torch
 * and installs nothing from the network (the project's .venv plays the machine's interpreter here;
 * on a GPU machine it is the CUDA torch there, see scripts/gpu-check.sh).
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/cli.js';

const script = join(repoRoot, 'scripts', 'setup-python.sh');
const basePython = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-setup-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const setup = (args: string[], env: Record<string, string> = {}) =>
  execa('bash', [script, ...args], { reject: false, env: { MKEY_PYTHON: '', ...env }, cwd: repoRoot, timeout: 600_000 });

describe('setup-python.sh: bad options end with one line and exit 2', () => {
  it.each([
    [['--torch', 'sistem'], "--torch 'sistem' (accepted: pypi, system)"],
    [['--wheels', '/nonexistent/wheels'], "--wheels '/nonexistent/wheels' is not a folder"],
    [['--cuda-arch', 'sm90'], "--cuda-arch 'sm90' (accepted: compute capabilities such as 9.0"],
    [['--mmcv-wheel', '/nonexistent/mmcv.whl'], "mmcv wheel '/nonexistent/mmcv.whl' does not exist"],
    [['--torch'], '--torch needs a value'],
    [['--gpu'], "unknown option '--gpu'"],
  ])('%j', async (args, message) => {
    const res = await setup(args, { MKEY_VENV: join(tmp, 'never') });
    expect(res.exitCode).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain(message);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });

  it('--cuda refuses a torch that is not a CUDA build, naming it', async () => {
    const probe = await execa(basePython, ['-c', 'import torch; print(torch.version.cuda or "")']);
    if (probe.stdout.trim() !== '') return; // a CUDA torch: the refusal cannot be shown here
    const res = await setup(['--cuda', '--torch', 'system'], { MKEY_VENV: join(tmp, 'cpu-torch'), MKEY_BASE_PYTHON: basePython });
    expect(res.exitCode).toBe(2);
    expect(res.stderr.trim().split('\n').at(-1)).toMatch(/--cuda: torch \S+ .*is not a CUDA build/);
  });
});

describe('setup-python.sh --torch system, offline', () => {
  it("reuses the base interpreter's torch, installs nothing from the network, and a second run is a no-op", async () => {
    const venv = join(tmp, 'venv');
    const wheels = join(tmp, 'empty-wheels');
    mkdirSync(wheels);
    const env = { MKEY_VENV: venv, MKEY_BASE_PYTHON: basePython, PIP_NO_INDEX: '1' };
    const first = await setup(['--torch', 'system', '--wheels', wheels], env);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toContain('--torch system: using');
    expect(readFileSync(join(venv, '.mkey-setup-stamp'), 'utf8')).toContain('-system-');

    // The new venv's torch is the base's own file, and the plugin is importable.
    const where = await execa(join(venv, 'bin', 'python'), ['-c', 'import torch, mkey_det, mmcv._ext, sys; print(torch.__file__); print(sys.prefix)']);
    const [torchFile, prefix] = where.stdout.trim().split('\n');
    const base = await execa(basePython, ['-c', 'import torch; print(torch.__file__)']);
    expect(torchFile).toBe(base.stdout.trim());
    expect(prefix).toBe(venv);

    const second = await setup(['--torch', 'system', '--wheels', wheels], env);
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toContain('up to date');
  });
});
