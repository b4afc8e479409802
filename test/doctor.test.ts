import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('mkey-det doctor', () => {
  it('reports a working stack as JSON', async () => {
    const res = await runCli(['doctor', '--json']);
    const report = JSON.parse(res.stdout) as {
      ok: boolean;
      versions: Record<string, string | null>;
      checks: { name: string; ok: boolean; detail: string }[];
    };
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed).toEqual([]);
    expect(res.exitCode).toBe(0);
    expect(report.versions.mmdet).toBe('3.3.0');
    expect(report.versions.mmcv).toBe('2.1.0');
    expect(report.versions['onnxruntime-node']).toBe('1.30.0');
    expect(report.checks.find((c) => c.name === 'mmcv ops')?.detail).toMatch(/nms and roi_align/);
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
});
