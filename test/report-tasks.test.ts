/**
 * The report is one table, one formatter and one page for both tasks, shaped by the task's
 * description (src/core/tasks.ts), which each of them is given: a metric column added to a
 * description shows in every format, with its decimals and its delta, from nothing but the description. The runs are the real
 * detection fixtures (test/fixtures/report/runs), whose CocoMetric logs carry small-object AP too.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCsv, renderJson, renderMarkdown } from '../src/core/report/format.js';
import { renderHtml } from '../src/core/report/html.js';
import { loadRun } from '../src/core/report/load.js';
import { buildReport } from '../src/core/report/table.js';
import { CLASSIFICATION, DETECTION, TASKS, TASK_NAMES } from '../src/core/tasks.js';
import { repoRoot } from './helpers/cli.js';

const RUNS = join(repoRoot, 'test', 'fixtures', 'report', 'runs');

/** The last evaluation's value of `metric` in a run's scalars.json, read independently of the report's readers. */
function lastLogged(run: string, metric: string): number {
  const dir = join(RUNS, run);
  const ts = readdirSync(dir).find((n) => /^\d{8}_\d{6}$/.test(n))!;
  const lines = readFileSync(join(dir, ts, 'vis_data', 'scalars.json'), 'utf8').split('\n').filter((l) => l.trim());
  const vals = lines.map((l) => JSON.parse(l) as Record<string, number>).filter((o) => metric in o);
  return vals[vals.length - 1]![metric]!;
}

describe('the task descriptions', () => {
  it('name each task once, with its primary metric among its columns', () => {
    expect(TASK_NAMES.map((n) => TASKS[n].name)).toEqual([...TASK_NAMES]);
    for (const task of [DETECTION, CLASSIFICATION]) {
      expect(task.metrics.map((c) => c.key)).toContain(task.primary);
      expect(new Set(task.metrics.map((c) => c.key)).size).toBe(task.metrics.length);
    }
  });
});

describe('a metric column added to a task description', () => {
  const apS = { key: 'APs', metric: 'coco/bbox_mAP_s', label: 'APs', decimals: 2, delta: true };
  const task = { ...DETECTION, metrics: [...DETECTION.metrics, apS] };
  const runs = ['swin-s0', 'swin-s1'].map((r) => loadRun(join(RUNS, r), r, {}));
  const report = buildReport(runs, { task, baseline: 'swin-s0', now: new Date(0) });
  // CocoMetric logs 0-1 with 3 decimals: percent, one decimal, shown with the column's two
  const [s0, s1] = ['swin-s0', 'swin-s1'].map((r) => Math.round(lastLogged(r, 'coco/bbox_mAP_s') * 1000) / 10);

  it('is read from the logs into the report (json)', () => {
    const json = JSON.parse(renderJson(report)) as { runs: { label: string; eval: { ap: Record<string, number> }; delta?: Record<string, number> }[] };
    const byLabel = new Map(json.runs.map((r) => [r.label, r]));
    expect(byLabel.get('swin-s0')!.eval.ap.APs).toBe(s0);
    expect(byLabel.get('swin-s1')!.eval.ap.APs).toBe(s1);
    expect(byLabel.get('swin-s1')!.delta!.APs).toBeCloseTo(s1! - s0!, 9);
  });

  it('is a column, with its delta column, in Markdown', () => {
    const md = renderMarkdown(report, {}, {}, task);
    expect(md).toContain('| APb | APb50 | APb75 | APm | APm50 | APm75 | APs | ΔAPb | ΔAPm | ΔAPs |');
    const row = md.split('\n').find((l) => l.startsWith('| swin-s1 | swin-s1 |'))!;
    expect(row).toContain(` ${s1!.toFixed(2)} |`);
    // the reference rows have no such number: an empty cell, the table still rectangular
    const cells = (l: string) => l.split(' | ').length;
    const head = md.split('\n').find((l) => l.startsWith('| Configuration |'))!;
    expect(cells(md.split('\n').find((l) => l.startsWith('| Swin-T [paper, Table 3]'))!)).toBe(cells(head));
  });

  it('is a column in CSV (value, std, delta) and in the HTML tables', () => {
    const csv = renderCsv(report, task).split('\n');
    expect(csv[0]).toContain(',APm75,APs,APb_std,');
    expect(csv[0]).toContain(',dAPm75,dAPs,baseline,');
    expect(csv.find((l) => l.startsWith('run,swin-s1,'))).toContain(`,${s1!.toFixed(2)},`);
    const html = renderHtml(report, {}, { svg: {} }, task);
    expect(html.match(/<th>APs<\/th>/g)).toHaveLength(2); // results and runs tables
  });
});
