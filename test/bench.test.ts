/**
 * `mkey-det bench` through the real CLI: option errors, and well-formed JSON + markdown for the
 * quick params and module suites. Correctness only: no assertion on timings.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { outputPaths, timestamp } from '../src/core/bench/bench.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'mkey-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const oneErrorLine = (stderr: string) => stderr.trim().split('\n').filter((l) => l.trim() !== '');

describe('bench: bad input', () => {
  it('rejects an unknown suite with exit 2 and one line', async () => {
    const res = await runCli(['bench', '--suite', 'speed']);
    expect(res.exitCode).toBe(2);
    const lines = oneErrorLine(res.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/error: invalid --suite "speed": accepted: params, module, backbone, train, all/);
  });

  it('rejects an unknown device with exit 2 and one line', async () => {
    const res = await runCli(['bench', '--suite', 'params', '--device', 'tpu']);
    expect(res.exitCode).toBe(2);
    expect(oneErrorLine(res.stderr)).toEqual([expect.stringMatching(/error: invalid --device "tpu": accepted: cpu, cuda/)]);
  });

  it('--device cuda without CUDA: exit 2, one line, no files', async () => {
    const out = join(dir, 'cuda.json');
    const res = await runCli(['bench', '--suite', 'params', '--quick', '--device', 'cuda', '--out', out]);
    expect(res.exitCode).toBe(2);
    const lines = oneErrorLine(res.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^.*error: --device cuda: no CUDA device/);
    expect(res.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });
});

describe('bench: output paths', () => {
  it('writes FILE.json and FILE.md whichever extension --out has', () => {
    expect(outputPaths('module', '/x/r.json')).toEqual({ json: '/x/r.json', md: '/x/r.md' });
    expect(outputPaths('module', '/x/r.md')).toEqual({ json: '/x/r.json', md: '/x/r.md' });
    const d = new Date(2026, 10, 21, 9, 5, 7);
    expect(timestamp(d)).toBe('2026-11-21T09-05-07');
    expect(outputPaths('params', undefined, d).json).toMatch(/benchmarks\/results\/params-2026-11-21T09-05-07\.json$/);
  });
});

describe('bench: quick suites through the CLI', () => {
  it('params --quick --json: counts next to Table 1, JSON and markdown files', async () => {
    const out = join(dir, 'params.json');
    const res = await runCli(['bench', '--suite', 'params', '--quick', '--json', '--out', out]);
    expect(res.exitCode, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report).toMatchObject({ tool: 'mkey-det bench', suite: 'params', quick: true, ok: true, json_path: out });
    expect(JSON.parse(readFileSync(out, 'utf8')).suites.params.rows).toHaveLength(5);
    const rows = report.suites.params.rows as { variant: string; paper: { params: number; flops: number }; fast: unknown; folded: { params: number } | null; table1: { params_m: number; flops_g: number } }[];
    expect(rows.map((r) => r.variant)).toEqual(['linear', 'spatialk', 'kua', 'simplek', 'vanillak']);
    for (const r of rows) {
      // within 5% of Table 1 (params [M], FLOPs [G]) at 224x224, 8 charts
      expect(Math.abs(r.paper.params / 1e6 - r.table1.params_m) / r.table1.params_m).toBeLessThan(0.05);
      expect(Math.abs(r.paper.flops / 1e9 - r.table1.flops_g) / r.table1.flops_g).toBeLessThan(0.05);
      if (r.variant !== 'linear') expect(r.folded!.params).toBeLessThanOrEqual(r.paper.params);
    }
    expect(report.machine.python.torch_threads).toBeGreaterThan(0);
    expect(report.machine.loadavg_before).toHaveLength(3);
    expect(report.machine.node.version).toBe(process.versions.node);
    const md = readFileSync(join(dir, 'params.md'), 'utf8');
    expect(md).toContain('## params');
    expect(md).toMatch(/\| 224x224 \(\+head\) \| \+ SpatialK \| 8 \|/);
    expect(md).toContain('## Machine');
    // one progress line per measurement
    expect(res.stderr.split('\n').filter((l) => /^\[params \d+\/5\]/.test(l))).toHaveLength(5);
  });

  it('module --quick (markdown on stdout): ours equals the literal transcription', async () => {
    const out = join(dir, 'module.md');
    const res = await runCli(['bench', '--suite', 'module', '--quick', '--out', out]);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stdout).toContain('## module');
    expect(readFileSync(out, 'utf8')).toBe(res.stdout.trimEnd() + '\n');
    const report = JSON.parse(readFileSync(join(dir, 'module.json'), 'utf8'));
    const suite = report.suites.module;
    expect(suite.passed).toBe(true);
    expect(suite.rows).toHaveLength(16); // 4 stages x 4 variants
    for (const row of suite.rows) {
      expect(row.check.passed).toBe(true);
      expect(row.check.max).toBeLessThan(1e-4);
      expect(row.timing.times.literal.n).toBeGreaterThanOrEqual(2);
      expect(row.timing.ratios.ours.median_ratio).toBeGreaterThan(0);
      expect(Array.isArray(row.loadavg)).toBe(true);
    }
    const tableRows = res.stdout.split('\n').filter((l) => /^\| 224x224 b1 \| [1-4] \|/.test(l));
    expect(tableRows).toHaveLength(16);
    expect(res.stderr.split('\n').filter((l) => /^\[module \d+\/16\]/.test(l))).toHaveLength(16);
  });
});
