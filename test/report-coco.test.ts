/**
 * The AP numbers of `mkey-det report` are COCO's: MMDetection's CocoMetric evaluates a fixed set
 * of detections, mmengine's LocalVisBackend writes the result into scalars.json as the runner does,
 * the report reads it; pycocotools' COCOeval, run directly on the same detections and annotations,
 * must give the same six numbers (rounded to one decimal in percent).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli } from './helpers/cli.js';
import type { Report } from '../src/core/report/types.js';

const python = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
const script = join(repoRoot, 'test', 'fixtures', 'report', 'coco_parity.py');

/** round(100 * x, 1) in JavaScript (the same as Python's for these values: none sits on a .x5 boundary). */
const round1 = (x: number) => Math.round(x * 1000) / 10;

describe('report AP equals pycocotools COCOeval', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'mkey-report-coco-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('APb/APm and their 50/75 variants match COCOeval stats[0..2] for bbox and segm', async () => {
    const py = await execa(python, [script, tmp], { reject: false });
    expect(py.exitCode, String(py.stderr).slice(-2000)).toBe(0);
    const out = JSON.parse(String(py.stdout).trim().split('\n').pop()!) as {
      run_dir: string;
      metrics: Record<string, number>;
      direct: { bbox: number[]; segm: number[] };
      direct_percent: Record<string, number>;
    };
    // a real, non-trivial evaluation
    expect(out.direct.bbox[0]).toBeGreaterThan(0.1);
    expect(out.direct.bbox[0]).toBeLessThan(0.9);
    expect(out.direct.segm[0]).not.toBeCloseTo(out.direct.bbox[0]!, 2);

    const res = await runCli(['report', out.run_dir, '--format', 'json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout) as Report;
    expect(report.runs).toHaveLength(1);
    const ap = report.runs[0]!.eval!.ap;
    const [b, s] = [out.direct.bbox, out.direct.segm];
    // Python's round(100 * stats[i], 1), computed on the Python side
    expect(ap).toEqual(out.direct_percent);
    expect(ap).toEqual({
      APb: round1(b[0]!),
      APb50: round1(b[1]!),
      APb75: round1(b[2]!),
      APm: round1(s[0]!),
      APm50: round1(s[1]!),
      APm75: round1(s[2]!),
    });
    // and the single-run group shows the same numbers
    expect(report.groups[0]!.mean.APb).toBe(round1(b[0]!));
    expect(report.runs[0]!.status).toBe('completed');
  });
});
