/**
 * `mkey-det bench` through the real CLI: option errors, and well-formed JSON + markdown for the
 * quick params, module and train suites (train on CUDA only where a GPU is visible). Correctness
 * only: no assertion on timings.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { outputPaths, timestamp } from '../src/core/bench/bench.js';
import { repoRoot, runCli } from './helpers/cli.js';

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

  it('an --out that already holds results is refused before any timing, the file kept', async () => {
    const out = join(dir, 'kept.json');
    writeFileSync(out, '{"mine": true}\n');
    const res = await runCli(['bench', '--suite', 'params', '--quick', '--out', out]);
    expect(res.exitCode).toBe(2);
    expect(oneErrorLine(res.stderr)[0]).toBe(`error: ${JSON.stringify(out)} already exists; refusing to overwrite it`);
    expect(res.stderr).not.toContain('[params');
    expect(readFileSync(out, 'utf8')).toBe('{"mine": true}\n');
    expect(existsSync(join(dir, 'kept.md'))).toBe(false);
  });
});

describe('bench: train suite options', () => {
  const badInput = async (args: string[], pattern: RegExp) => {
    const res = await runCli(['bench', ...args]);
    expect(res.exitCode, res.stderr).toBe(2);
    const lines = oneErrorLine(res.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(res.stdout).toBe('');
  };

  it('--precisions fp16/bf16 on cpu: exit 2, one line naming the value', async () => {
    await badInput(['--suite', 'train', '--precisions', 'fp32,bf16'], /error: invalid --precisions "fp32,bf16": bf16: mixed precision \(AmpOptimWrapper\) needs --device cuda; accepted on cpu: fp32/);
    await badInput(['--suite', 'train', '--precisions', 'fp8'], /error: invalid --precisions "fp8": "fp8" is not accepted; accepted: a comma list of fp32, fp16, bf16/);
  });

  it('bad --batch-sizes, --variants, --size: exit 2, one line', async () => {
    await badInput(['--suite', 'train', '--batch-sizes', '2,x'], /error: invalid --batch-sizes "2,x": "x" is not accepted; accepted: a comma list of integers from 1 to 128/);
    await badInput(['--suite', 'train', '--batch-sizes', '0'], /invalid --batch-sizes "0"/);
    await badInput(['--suite', 'train', '--variants', 'swin-t,swin-b'], /error: invalid --variants "swin-t,swin-b": "swin-b" is not accepted; accepted: a comma list of swin-t, swin-t-spatialk, swin-t-kua, swin-t-simplek, swin-t-vanillak/);
    await badInput(['--suite', 'train', '--size', '12'], /error: invalid --size "12": --size must be an integer between 64 and 4096/);
  });

  it('train options with another suite: exit 2', async () => {
    await badInput(['--suite', 'params', '--batch-sizes', '2'], /error: invalid --batch-sizes "2": applies to the train suite only/);
    await badInput(['--suite', 'params', '--attn-impl', 'sdpa'], /error: invalid --attn-impl "sdpa": applies to the train suite only/);
    await badInput(['--suite', 'train', '--key-order', 'fastest'], /error: invalid --key-order "fastest": accepted: paper, fast, auto/);
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

describe('bench: train suite on the CPU (quick, tiny)', () => {
  it('--variants swin-t-spatialk --batch-sizes 1 --size 128: one row per (variant, batch, precision) with images/s and ratios', async () => {
    const out = join(dir, 'train.json');
    const res = await runCli(['bench', '--suite', 'train', '--quick', '--variants', 'swin-t-spatialk', '--batch-sizes', '1', '--size', '128', '--steps', '3', '--warmup', '1', '--attn-impl', 'sdpa', '--key-order', 'auto', '--json', '--out', out]);
    expect(res.exitCode, res.stderr).toBe(0);
    const md0 = () => readFileSync(join(dir, 'train.md'), 'utf8');
    const report = JSON.parse(res.stdout);
    const suite = report.suites.train;
    expect(suite.settings).toMatchObject({ variants: ['swin-t', 'swin-t-spatialk'], batch_sizes: [1], precisions: ['fp32'], size: 128, steps: 3, warmup: 1 });
    expect(suite.rows).toHaveLength(2);
    const [base, sk] = suite.rows;
    expect([base.variant, sk.variant]).toEqual(['swin-t', 'swin-t-spatialk']);
    for (const r of suite.rows) {
      expect(r).toMatchObject({ batch: 1, precision: 'fp32', size: 128, losses_finite: true, peak_mem_kind: 'rss' });
      expect(r.error).toBeUndefined();
      expect(r.images_per_s).toBeCloseTo(1 / r.step_s.median, 6);
      expect(r.peak_mem_gib).toBeGreaterThan(0.1);
      expect(r.ratios.time).toBeGreaterThan(0);
      expect(r.ratios.memory).toBeGreaterThan(0);
    }
    expect(base.ratios.time).toBe(1);
    // the fast paths go to the variant only: the baseline is the stock recipe
    expect([base.attn_impl, base.key_order]).toEqual(['eager', null]);
    expect([sk.attn_impl, sk.key_order]).toEqual(['sdpa', 'auto']);
    // both timed in the same rounds: the ratio is the geometric mean of the per-round ratios
    // (none trimmed below 10 rounds), inside its interval; the ratio of medians beside it
    expect(sk.timing).toBe('interleaved');
    const perRound = sk.step_s.runs.map((t: number, i: number) => Math.log(t / base.step_s.runs[i]));
    expect(sk.ratios.time).toBeCloseTo(Math.exp(perRound.reduce((a: number, b: number) => a + b, 0) / perRound.length), 6);
    expect(sk.ratios.time_of_medians).toBeCloseTo(sk.step_s.median / base.step_s.median, 6);
    expect(sk.ratios.time_ci[0]).toBeLessThanOrEqual(sk.ratios.time);
    expect(sk.ratios.time_ci[1]).toBeGreaterThanOrEqual(sk.ratios.time);
    expect(sk.step_s.n).toBe(suite.settings.steps);
    expect(sk.ratios.flops_backbone).toBeGreaterThan(1.2);
    // the whole training step counted (forward + backward), the same workload as the timed steps
    expect(base.flops.step).toMatchObject({ batch: 1, flops: expect.any(Number) });
    expect(sk.ratios.flops_step).toBeCloseTo(sk.flops.step.flops / base.flops.step.flops, 9);
    expect(sk.ratios.flops_step).toBeGreaterThan(1.1);
    expect(md0()).toMatch(/\| FLOPs x step \| finite loss \|/);
    expect(sk.params).toBeGreaterThan(base.params);
    const md = md0();
    expect(md).toContain('## train');
    expect(md).toMatch(/Device: CPU .*torch /);
    expect(md).toMatch(/\| swin-t-spatialk \(sdpa, key auto\) \| 1 \| fp32 \| [\d.]+ \([\d.]+-[\d.]+\) \| [\d.]+ \| [\d.]+ \| [\d.]+x \([\d.]+-[\d.]+\) \| [\d.]+x \|/);
    // progress: a timing line per row (the interleaved pass), then a memory line per row
    const progress = res.stderr.split('\n').filter((l) => /^\[train \d\/4\]/.test(l));
    expect(progress).toHaveLength(4);
    expect(progress[1]).toMatch(/swin-t-spatialk b1 fp32 128px: step [\d.]+ s .* vs Swin-T [\d.]+x \(95% [\d.]+-[\d.]+\)/);
    // and a line per timing round while they run (1 warm-up + 3 timed)
    const rounds = res.stderr.split('\n').filter((l) => l.startsWith('[train] timing b1 fp32 round '));
    expect(rounds.map((l) => l.match(/round (\d\/\d) \((warm-up|timed)\)/)?.slice(1).join(' '))).toEqual(['1/4 warm-up', '2/4 timed', '3/4 timed', '4/4 timed']);
    expect(rounds[3]).toMatch(/swin-t [\d.]+ s, swin-t-spatialk [\d.]+ s$/);
  });
});

// CUDA: only where PyTorch sees a GPU (the acceptance machine); skipped with the reason otherwise.
const hasCuda = (() => {
  try {
    const py = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
    return execFileSync(py, ['-c', 'import torch; print(torch.cuda.is_available())'], { encoding: 'utf8', timeout: 60_000 }).trim() === 'True';
  } catch {
    return false;
  }
})();

describe.skipIf(!hasCuda)('bench: train suite on CUDA (skipped: no CUDA device visible to PyTorch)', () => {
  it('--device cuda --quick: GPU peak memory, fp32 and fp16 (AMP) rows with ratios', async () => {
    const out = join(dir, 'train-cuda.json');
    const res = await runCli(['bench', '--suite', 'train', '--device', 'cuda', '--quick', '--variants', 'swin-t-spatialk', '--batch-sizes', '1,2', '--precisions', 'fp32,fp16', '--size', '256', '--steps', '2', '--json', '--out', out]);
    expect(res.exitCode, res.stderr).toBe(0);
    const suite = JSON.parse(res.stdout).suites.train;
    expect(suite.rows).toHaveLength(8);
    for (const r of suite.rows) {
      expect(r.error).toBeUndefined();
      expect(r.peak_mem_kind).toBe('cuda_max_allocated');
      expect(r.images_per_s).toBeGreaterThan(0);
      expect(r.ratios.memory).toBeGreaterThan(0);
    }
    expect(readFileSync(join(dir, 'train-cuda.md'), 'utf8')).toMatch(/Device: .*CUDA /);
  });
});
