/**
 * scripts/gpu-check.sh, the GPU acceptance run. On a machine with a CUDA GPU it runs whole (about
 * 6 minutes on one H100); elsewhere (CI) that part is skipped, with the reason in its name, and only
 * the script's option handling is checked.
 */
import { describe, expect, it } from 'vitest';
import { execa, execaSync } from 'execa';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/cli.js';

const script = join(repoRoot, 'scripts', 'gpu-check.sh');
const python = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
const hasCuda = (() => {
  try {
    return execaSync(python, ['-c', 'import torch; print(torch.cuda.is_available())']).stdout.trim() === 'True';
  } catch {
    return false;
  }
})();

describe('gpu-check.sh options', () => {
  it('--help describes the run; a bad option ends with one line and exit 2', async () => {
    const help = await execa('bash', [script, '--help']);
    expect(help.stdout).toContain('GPU acceptance run');
    const bad = await execa('bash', [script, '--gpus', '8'], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim()).toBe("[gpu-check] error: unknown option '--gpus' (accepted: --bundle DIR, --out DIR, --work DIR, --cpu-smoke)");
  });

  it('refuses a --work folder it did not make (never deletes a user folder)', async () => {
    const mine = mkdtempSync(join(tmpdir(), 'mkey-user-'));
    const res = await execa('bash', [script, '--work', mine, '--out', join(mine, 'out')], { reject: false });
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('exists and is not a gpu-check scratch folder');
    expect(existsSync(mine)).toBe(true);
  });
});

describe.skipIf(!hasCuda)('gpu-check.sh on a CUDA GPU (skipped where torch sees none, e.g. CI)', () => {
  it('setup, doctor, CLI training, test == last validation, report and bench all pass', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mkey-gpu-out-'));
    const res = await execa('bash', [script, '--out', out], { reject: false, timeout: 1_500_000 });
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(res.exitCode, summary).toBe(0);
    expect(summary).not.toContain('FAILED');
  });
});
