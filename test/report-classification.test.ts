/**
 * `mkey-det report` on classification run directories written by real `mkey-det pretrain` runs
 * (test/fixtures/pretrain-runs, see its README): the paper's Table 1 (top-1 / top-5, params,
 * FLOPs, seeds as mean ± std, Tables 1-2 as reference rows, curves). The detection report on
 * detection runs is covered, unchanged, by report.test.ts.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli } from './helpers/cli.js';
import type { ClassificationReport, ClsGroupRow, ClsRunRow } from '../src/core/report/types.js';

const RUNS = join(repoRoot, 'test', 'fixtures', 'pretrain-runs');
const DETECTION_RUNS = join(repoRoot, 'test', 'fixtures', 'report', 'runs');
const LABELS = ['swin-t-s0', 'swin-t-spatialk-c2-s0', 'swin-t-spatialk-c2-s1', 'vit-s-vanillak-c2-s0'];

type JsonReport = ClassificationReport & { ok: boolean; plotFiles: Record<string, string> };

const jsonLines = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The `val` events of a run's mkey-events.jsonl, read independently of the code under test. */
function valEvents(run: string): { epoch: number; iter: number; metrics: Record<string, number> }[] {
  return jsonLines(join(RUNS, run, 'mkey-events.jsonl')).filter((e) => e.event === 'val') as never;
}

/** Validation lines of the run's scalars.json (mmengine's `step` and the metrics). */
function scalarVals(run: string): Record<string, number>[] {
  const dir = join(RUNS, run);
  const ts = readdirSync(dir).find((n) => /^\d{8}_\d{6}$/.test(n))!;
  return jsonLines(join(dir, ts, 'vis_data', 'scalars.json')).filter((o) => 'accuracy/top1' in o) as Record<string, number>[];
}

function startEvent(run: string): Record<string, unknown> {
  return jsonLines(join(RUNS, run, 'mkey-events.jsonl')).find((e) => e.event === 'start')!;
}

const fmt2 = (v: number) => v.toFixed(2);
const sd = (a: number, b: number) => Math.abs(a - b) / Math.SQRT2;

const run = (r: JsonReport, label: string): ClsRunRow => {
  const found = r.runs.find((x) => x.label === label);
  if (!found) throw new Error(`no run ${label} in ${r.runs.map((x) => x.label).join(', ')}`);
  return found;
};
const group = (r: JsonReport, key: string): ClsGroupRow => {
  const found = r.groups.filter((g) => g.keyType === key);
  expect(found).toHaveLength(1);
  return found[0]!;
};

/** The cells of the Markdown row whose first cell is `first`. */
function mdRow(md: string, first: string): string[] {
  const line = md.split('\n').find((l) => l.startsWith(`| ${first} |`));
  if (!line) throw new Error(`no row ${first} in\n${md}`);
  return line.slice(2, -2).split(' | ').map((c) => c.trim());
}

describe('mkey-det report on real pretrain (classification) run directories', () => {
  let report: JsonReport;
  let md: string;
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkey-report-cls-'));
    const res = await runCli(['report', RUNS, '--format', 'json']);
    expect(res.stderr).not.toMatch(/at .*\.js:\d+/);
    expect(res.exitCode).toBe(0);
    report = JSON.parse(res.stdout) as JsonReport;
    const mdRes = await runCli(['report', RUNS]);
    expect(mdRes.exitCode).toBe(0);
    md = mdRes.stdout;
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('recognises the runs as classification runs and reads their identity from the config', () => {
    expect(report.ok).toBe(true);
    expect(report.task).toBe('classification');
    expect(report.runs.map((r) => r.label).sort()).toEqual(LABELS);
    const base = run(report, 'swin-t-s0');
    expect(base).toMatchObject({ family: 'swin-t', keyType: 'linear', charts: null, seed: 0, config: 'swin-t, demo 2it, 64px', state: 'completed' });
    expect(run(report, 'swin-t-spatialk-c2-s1')).toMatchObject({ family: 'swin-t', keyType: 'spatialk', charts: 2, seed: 1 });
    expect(run(report, 'vit-s-vanillak-c2-s0')).toMatchObject({ family: 'vit-s', keyType: 'vanillak', charts: 2, config: 'vit-s-vanillak, 2 charts, demo 2e, 64px' });
    // the default selection is the paper's: best top-1
    expect(report.selection).toBe('best');
    expect(md).toMatch(/^Per run: best evaluation by top-1 \(--best, the paper's rule\)/m);
  });

  it('reports top-1 / top-5 in percent as logged, at the iteration the events name (iteration loops)', () => {
    for (const label of ['swin-t-s0', 'swin-t-spatialk-c2-s0', 'swin-t-spatialk-c2-s1']) {
      const [val] = valEvents(label);
      const r = run(report, label);
      expect(r.eval).toEqual({ step: val!.iter, by: 'iter', acc: { top1: val!.metrics['accuracy/top1'], top5: val!.metrics['accuracy/top5'] }, source: 'mkey-events.jsonl' });
      // the same numbers as scalars.json, which logged them at step 0 (mmengine's epoch in an iteration loop)
      const [line] = scalarVals(label);
      expect(line!.step).toBe(0);
      expect(r.eval!.acc.top1).toBe(line!['accuracy/top1']);
      expect(r.eval!.acc.top5).toBe(line!['accuracy/top5']);
      expect(r.status).toBe('completed');
    }
    // an epoch loop: the evaluations are scalars.json's, one per epoch, the best top-1 picked
    const vit = run(report, 'vit-s-vanillak-c2-s0');
    const vals = scalarVals('vit-s-vanillak-c2-s0');
    expect(vals.map((v) => v.step)).toEqual([1, 2]);
    const best = vals.reduce((b, v) => (v['accuracy/top1']! > b['accuracy/top1']! ? v : b), vals[0]!);
    expect(vit.eval).toEqual({ step: best.step, by: 'epoch', acc: { top1: best['accuracy/top1'], top5: best['accuracy/top5'] }, source: 'scalars.json' });
  });

  it('groups the two seeds of one configuration as mean ± sample std with n', () => {
    const g = group(report, 'spatialk');
    expect(g.n).toBe(2);
    expect(g.runs.sort()).toEqual(['swin-t-spatialk-c2-s0', 'swin-t-spatialk-c2-s1']);
    expect(g.seeds.sort()).toEqual([0, 1]);
    const a = valEvents('swin-t-spatialk-c2-s0')[0]!.metrics;
    const b = valEvents('swin-t-spatialk-c2-s1')[0]!.metrics;
    for (const k of ['top1', 'top5'] as const) {
      const x = a[`accuracy/${k}`]!;
      const y = b[`accuracy/${k}`]!;
      expect(g.mean[k]).toBeCloseTo((x + y) / 2, 9);
      expect(g.std[k]).toBeCloseTo(sd(x, y), 9);
    }
    expect(g.evalAt).toBe('it 2');
    expect(g.status).toBe('2 completed');
    expect(group(report, 'linear').n).toBe(1);
    expect(group(report, 'linear').std).toEqual({});
  });

  it("compares each family with its linear-key configuration; a family without one gets no deltas and a warning", () => {
    expect(report.baselines).toEqual([
      { family: 'swin-t', label: 'swin-t, demo 2it, 64px', kind: 'run', reason: "the only swin-t configuration with key 'linear'" },
    ]);
    const base = group(report, 'linear');
    const s = group(report, 'spatialk');
    expect(base.isBaseline).toBe(true);
    expect(s.baseline).toBe(base.label);
    expect(s.delta!.top1).toBeCloseTo(s.mean.top1! - base.mean.top1!, 9);
    expect(s.delta!.top5).toBeCloseTo(s.mean.top5! - base.mean.top5!, 9);
    const r1 = run(report, 'swin-t-spatialk-c2-s1');
    expect(r1.delta!.top5).toBeCloseTo(r1.eval!.acc.top5! - base.mean.top5!, 9);
    const vit = group(report, 'vanillak');
    expect(vit.delta).toBeUndefined();
    expect(report.warnings).toContain("no deltas in vit-s: no run of it has key 'linear'; train one (mkey-det pretrain --backbone vit-s) or name a baseline with --baseline");
    // baseline first in its family, families in the paper's order
    expect(report.groups.map((g) => g.keyType)).toEqual(['linear', 'spatialk', 'vanillak']);
  });

  it('shows the backbone params and FLOPs of the start event, and why a FLOP count is missing', () => {
    for (const label of ['swin-t-s0', 'swin-t-spatialk-c2-s0']) {
      const ev = startEvent(label);
      expect(run(report, label).backboneParams).toBe(ev.backbone_params);
      expect(run(report, label).backboneFlops).toBe(ev.backbone_flops);
    }
    expect(report.flopsInput).toBe('224x224');
    const vit = run(report, 'vit-s-vanillak-c2-s0');
    expect(vit.backboneParams).toBe(startEvent('vit-s-vanillak-c2-s0').backbone_params);
    expect(vit.backboneFlops).toBeUndefined();
    expect(report.warnings.some((w) => w.startsWith('vit-s-vanillak-c2-s0: backbone FLOPs not counted at 224x224 (ValueError: VisionTransformerMKey'))).toBe(true);
  });

  it('renders the Markdown table: configurations, values with two decimals, mean ± std, deltas, params, FLOPs, epoch', () => {
    const head = mdRow(md, 'Configuration');
    expect(head).toEqual(['Configuration', 'Family', 'Key', 'Charts', 'n', 'Epoch', 'Top-1', 'Top-5', 'ΔTop-1', 'ΔTop-5', 'Params [M]', 'FLOPs [G]', 'Train time', 'Status']);
    const col = (row: string[], name: string) => row[head.indexOf(name)];
    const base = valEvents('swin-t-s0')[0]!.metrics;
    const a = valEvents('swin-t-spatialk-c2-s0')[0]!.metrics;
    const b = valEvents('swin-t-spatialk-c2-s1')[0]!.metrics;

    const baseRow = mdRow(md, 'swin-t, demo 2it, 64px (baseline)');
    expect(col(baseRow, 'Top-1')).toBe(fmt2(base['accuracy/top1']!));
    expect(col(baseRow, 'Top-5')).toBe(fmt2(base['accuracy/top5']!));
    expect(col(baseRow, 'ΔTop-1')).toBe('base');
    expect(col(baseRow, 'Params [M]')).toBe(((startEvent('swin-t-s0').backbone_params as number) / 1e6).toFixed(1));
    expect(col(baseRow, 'FLOPs [G]')).toBe(((startEvent('swin-t-s0').backbone_flops as number) / 1e9).toFixed(2));
    expect(col(baseRow, 'Epoch')).toBe('it 2');
    expect(col(baseRow, 'Status')).toBe('completed');

    const row = mdRow(md, 'swin-t-spatialk, 2 charts, demo 2it, 64px');
    const m1 = (a['accuracy/top1']! + b['accuracy/top1']!) / 2;
    const m5 = (a['accuracy/top5']! + b['accuracy/top5']!) / 2;
    expect(col(row, 'Top-1')).toBe(`${fmt2(m1)} ± ${fmt2(sd(a['accuracy/top1']!, b['accuracy/top1']!))}`);
    expect(col(row, 'Top-5')).toBe(`${fmt2(m5)} ± ${fmt2(sd(a['accuracy/top5']!, b['accuracy/top5']!))}`);
    expect(col(row, 'Top-5')).toBe('52.50 ± 2.12'); // 54 and 51, as the fixture's events say
    const d1 = m1 - base['accuracy/top1']!;
    expect(col(row, 'ΔTop-1')).toBe(`${d1 >= 0 ? '+' : ''}${fmt2(d1)}`);
    expect(col(row, 'ΔTop-5')).toBe('+3.50');
    expect(col(row, 'n')).toBe('2');
    expect(col(row, 'Charts')).toBe('2');
    expect(col(row, 'Params [M]')).toBe('34.1');
    expect(col(row, 'FLOPs [G]')).toBe('5.69');

    const vitRow = mdRow(md, 'vit-s-vanillak, 2 charts, demo 2e, 64px');
    expect(col(vitRow, 'Epoch')).toBe('2');
    expect(col(vitRow, 'ΔTop-1')).toBe('');
    expect(col(vitRow, 'FLOPs [G]')).toBe('');

    // the Runs table: one row per run
    const runRow = mdRow(md, 'swin-t-spatialk-c2-s1');
    expect(runRow).toEqual(['swin-t-spatialk-c2-s1', 'swin-t-spatialk, 2 charts, demo 2it, 64px', '1', 'it 2', fmt2(b['accuracy/top1']!), fmt2(b['accuracy/top5']!), '-1.00', '+2.00', runRow[8]!, 'completed']);
    expect(md).toMatch(/^## Warnings$/m);
  });

  it("shows the paper's Table 1 and Table 2 as reference rows", () => {
    const head = mdRow(md, 'Configuration');
    const col = (row: string[], name: string) => row[head.indexOf(name)];
    const expected: [string, string, string, string, string, string][] = [
      // label, charts, top-1, top-5, params, FLOPs
      ['Swin-T [paper, Table 1]', '', '80.99', '95.50', '28', '4.6'],
      ['Swin-T + SpatialK [paper, Table 1]', '8', '81.51', '95.69', '61', '10.4'],
      ['Swin-T + KUA [paper, Table 1]', '8', '81.26', '95.58', '61', '10.4'],
      ['Swin-T + SimpleK [paper, Table 1]', '8', '81.31', '95.55', '44', '7.6'],
      ['Swin-T + VanillaK [paper, Table 1]', '8', '81.29', '95.53', '44', '7.6'],
      ['ViT-S/16 [paper, Table 1]', '', '78.23', '93.92', '22', '4.7'],
      ['ViT-S/16 + SpatialK [paper, Table 1]', '8', '78.65', '94.18', '52', '11.3'],
      ['ViT-S/16 + KUA [paper, Table 1]', '8', '78.74', '94.23', '52', '11.3'],
      ['ViT-S/16 + SimpleK [paper, Table 1]', '8', '78.34', '93.98', '38', '8.6'],
      ['ViT-S/16 + VanillaK [paper, Table 1]', '8', '78.80', '94.10', '38', '8.6'],
      ['ViT-B/16 [paper, Table 1]', '', '79.44', '93.91', '87', '17.7'],
      ['ViT-B/16 + SpatialK [paper, Table 1]', '8', '78.69', '93.93', '197', '41.5'],
      ['ViT-B/16 + KUA [paper, Table 1]', '8', '78.41', '93.60', '197', '41.5'],
      ['ViT-B/16 + SimpleK [paper, Table 1]', '8', '78.68', '93.87', '140', '30.4'],
      ['ViT-B/16 + VanillaK [paper, Table 1]', '8', '80.31', '94.54', '140', '30.4'],
      ['ViT-B/16 + VanillaK without CB (4 charts) [paper, Table 2]', '4', '80.24', '', '110', ''],
      ['ViT-B/16 + VanillaK without CB (8 charts) [paper, Table 2]', '8', '78.69', '', '140', ''],
    ];
    for (const [label, charts, top1, top5, params, flops] of expected) {
      const row = mdRow(md, label);
      expect([col(row, 'Charts'), col(row, 'Top-1'), col(row, 'Top-5'), col(row, 'Params [M]'), col(row, 'FLOPs [G]'), col(row, 'Epoch')]).toEqual([charts, top1, top5, params, flops, '300']);
      expect(col(row, 'Status')).toMatch(/^reference/);
    }
    expect(report.references).toHaveLength(expected.length);
    expect(report.references.find((r) => r.label === 'ViT-B/16 + VanillaK without CB (4 charts)')).toEqual({
      label: 'ViT-B/16 + VanillaK without CB (4 charts)', source: 'paper, Table 2', family: 'vit-b', keyType: 'vanillak', charts: 4, epochs: 300, paramsM: 110, acc: { top1: 80.24 }, note: 'VanillaK without CB',
    });
  });

  it('has the JSON shape: task, baselines, groups, runs, references, accuracy curves', () => {
    expect(Object.keys(report)).toEqual(['ok', 'task', 'generated', 'selection', 'baselines', 'flopsInput', 'groups', 'runs', 'references', 'plots', 'warnings', 'plotFiles']);
    for (const g of report.groups) {
      expect(Object.keys(g.mean).sort()).toEqual(['top1', 'top5']);
      expect(g).not.toHaveProperty('ap');
    }
    const s = group(report, 'spatialk');
    expect(Object.keys(s.std).sort()).toEqual(['top1', 'top5']);
    expect(Object.keys(s.delta!).sort()).toEqual(['top1', 'top5']);
    expect(report.plots.map((p) => p.label)).toEqual(report.runs.map((r) => r.label));
    const vit = report.plots.find((p) => p.label === 'vit-s-vanillak-c2-s0')!;
    expect(Object.keys(vit).sort()).toEqual(['evalBy', 'label', 'loss', 'lr', 'top1', 'top5']);
    expect(vit.evalBy).toBe('epoch');
    expect(vit.top1).toEqual(scalarVals('vit-s-vanillak-c2-s0').map((v) => [v.step, v['accuracy/top1']]));
    expect(vit.loss.length).toBeGreaterThan(10);
    expect(vit.lr.every(([, lr]) => lr > 0)).toBe(true);
    const sp = report.plots.find((p) => p.label === 'swin-t-spatialk-c2-s0')!;
    expect(sp.evalBy).toBe('iter');
    expect(sp.top1).toEqual([[2, valEvents('swin-t-spatialk-c2-s0')[0]!.metrics['accuracy/top1']]]);
    expect(sp.loss.map((p) => p[0])).toEqual([1, 2]);
  });

  it('renders a self-contained HTML page with the table, the references and the curves (matplotlib\'s SVG inlined)', async () => {
    const res = await runCli(['report', RUNS, '--format', 'html']);
    expect(res.exitCode).toBe(0);
    const html = res.stdout;
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link |src="http/);
    expect(html).toContain('<h2>Results: image classification, top-1 / top-5 accuracy (%)</h2>');
    expect(html).toContain('<span class="tag base">baseline</span>');
    expect(html).toContain('ViT-B/16 + VanillaK without CB (4 charts)<span class="tag ref">reference: paper, Table 2, 4 charts</span>');
    expect(html).toContain('<td class="num">52.50<span class="sd">± 2.12</span><span class="d up">+3.50</span></td>');
    // matplotlib's figures, as the PNG files: loss, lr, then top-1 and top-5 side by side
    expect((html.match(/<svg /g) ?? []).length).toBe(3);
    for (const title of ['Training loss', 'Learning rate', 'Top-1 accuracy and Top-5 accuracy']) expect(html).toContain(`aria-label="${title}"`);
    for (const title of ['Top-1 accuracy', 'Top-5 accuracy']) expect(html).toContain(`>${title}</text>`);
    const accSvg = html.slice(html.indexOf('aria-label="Top-1 accuracy and Top-5 accuracy"'));
    // the runs' top-1 lines (mkey-top1-<run>), up to the legend
    const top1Lines = accSvg.slice(accSvg.indexOf('id="mkey-top1-0"'), accSvg.indexOf('id="mkey-top1-legend"'));
    expect(top1Lines).toContain('id="mkey-top1-3"');
    // one marker per evaluation: 3 runs with one, the ViT run with two
    expect(top1Lines.match(/<circle /g)).toHaveLength(5);
    expect(accSvg).not.toContain('no evaluation yet');
  });

  it('writes CSV with group, run and reference rows', async () => {
    const res = await runCli(['report', RUNS, '--format', 'csv']);
    expect(res.exitCode).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      'kind,label,configuration,family,key_type,charts,schedule,seed,n,eval_at,top1,top5,top1_std,top5_std,dtop1,dtop5,baseline,params_m,flops_g,train_seconds,status,path',
    );
    expect(lines.filter((l) => l.startsWith('group,'))).toHaveLength(3);
    expect(lines.filter((l) => l.startsWith('run,'))).toHaveLength(4);
    expect(lines.filter((l) => l.startsWith('reference,'))).toHaveLength(17);
    expect(lines).toContain('reference,"Swin-T + SpatialK [paper, Table 1]",Swin-T + SpatialK,swin-t,spatialk,8,,,,300,81.51,95.69,,,,,,61,10.4,,reference,');
    expect(lines.find((l) => l.startsWith('group,"swin-t-spatialk'))).toContain(',0 1,2,it 2,12.00,52.50,0.00,2.12,-1.00,3.50,,34.051026,5.6890176,');
  });

  it('--last reports the last evaluation, --best (the default) the best top-1', async () => {
    // A copy of the ViT run with a third, worse evaluation appended (as a longer run would log it).
    const dir = join(tmp, 'vit-extra');
    cpSync(join(RUNS, 'vit-s-vanillak-c2-s0'), dir, { recursive: true });
    const ts = readdirSync(dir).find((n) => /^\d{8}_\d{6}$/.test(n))!;
    const scalars = join(dir, ts, 'vis_data', 'scalars.json');
    writeFileSync(scalars, readFileSync(scalars, 'utf8') + JSON.stringify({ 'accuracy/top1': 14.0, 'accuracy/top5': 70.0, data_time: 0.02, time: 0.6, step: 3 }) + '\n');
    const best = JSON.parse((await runCli(['report', dir, '--json'])).stdout) as JsonReport;
    const last = JSON.parse((await runCli(['report', dir, '--json', '--last'])).stdout) as JsonReport;
    expect(best.selection).toBe('best');
    expect(best.runs[0]!.eval).toMatchObject({ step: 2, acc: { top1: 16, top5: 71 } });
    expect(last.selection).toBe('last');
    expect(last.runs[0]!.eval).toMatchObject({ step: 3, acc: { top1: 14, top5: 70 } });
    expect(best.plots[0]!.top1.map((p) => p[0])).toEqual([1, 2, 3]);
  });

  it('gives a run stopped before its evaluation a status, not a crash', async () => {
    // A copy of a run cut after its first iteration: running, one iteration logged, no evaluation.
    const dir = join(tmp, 'cut');
    cpSync(join(RUNS, 'swin-t-spatialk-c2-s0'), dir, { recursive: true });
    const events = jsonLines(join(dir, 'mkey-events.jsonl')).filter((e) => e.event === 'start' || (e.event === 'iter' && e.iter === 1));
    writeFileSync(join(dir, 'mkey-events.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const rec = JSON.parse(readFileSync(join(dir, 'mkey-run.json'), 'utf8')) as Record<string, unknown>;
    delete rec.finished;
    delete rec.metrics;
    writeFileSync(join(dir, 'mkey-run.json'), JSON.stringify({ ...rec, status: 'running' }));
    const ts = readdirSync(dir).find((n) => /^\d{8}_\d{6}$/.test(n))!;
    rmSync(join(dir, ts, 'vis_data'), { recursive: true });
    const log = join(dir, ts, `${ts}.log`);
    writeFileSync(log, readFileSync(log, 'utf8').split('\n').filter((l) => !l.includes('(val)')).join('\n'));
    const res = await runCli(['report', dir, join(RUNS, 'swin-t-s0'), '--json']);
    expect(res.exitCode).toBe(0);
    const r = JSON.parse(res.stdout) as JsonReport;
    const cut = run(r, 'cut');
    expect(cut.state).toBe('running');
    expect(cut.eval).toBeUndefined();
    expect(cut.status).toMatch(/^running, iter 1\/2; no evaluation yet/);
    expect(group(r, 'spatialk').n).toBe(0);
    expect(group(r, 'spatialk').delta).toBeUndefined();
  });

  it('refuses detection and classification runs together in one line (exit 2) naming both kinds; --task picks one', async () => {
    const mixed = await runCli(['report', RUNS, DETECTION_RUNS]);
    expect(mixed.exitCode).toBe(2);
    expect(mixed.stdout).toBe('');
    const errLines = mixed.stderr.trim().split('\n');
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toMatch(/the runs mix detection \(7 runs: .*\) and classification \(4 runs: .*\); one report is one table: pass --task detection or --task classification/);

    // a detection run without any evaluation yet is still a detection run (its config has no `task`)
    const early = await runCli(['report', RUNS, join(DETECTION_RUNS, 'vanillak-no-eval')]);
    expect(early.exitCode).toBe(2);
    expect(early.stderr).toMatch(/the runs mix detection \(1 run: vanillak-no-eval\) and classification \(4 runs: /);

    const cls = await runCli(['report', RUNS, DETECTION_RUNS, '--task', 'classification', '--json']);
    expect(cls.exitCode).toBe(0);
    const c = JSON.parse(cls.stdout) as JsonReport;
    expect(c.task).toBe('classification');
    expect(c.runs.map((r) => r.label).sort()).toEqual(LABELS);
    expect(c.warnings[0]).toMatch(/^detection runs left out \(--task classification\): 7 runs: /);

    const none = await runCli(['report', RUNS, '--task', 'detection']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no detection runs in .*, only classification runs \(4 runs: /);
  });

  it('writes the loss and lr PNGs next to --out (no empty box/mask AP figure) and links them', async () => {
    const out = join(tmp, 'png', 'table1.md');
    const res = await runCli(['report', RUNS, '--out', out]);
    expect(res.exitCode).toBe(0);
    const written = readFileSync(out, 'utf8');
    if (existsSync(join(tmp, 'png', 'table1-loss.png'))) {
      expect(existsSync(join(tmp, 'png', 'table1-lr.png'))).toBe(true);
      expect(existsSync(join(tmp, 'png', 'table1-ap.png'))).toBe(false);
      expect(written).toContain('![training loss](table1-loss.png)');
      expect(written).not.toContain('-ap.png');
    } else {
      expect(written).toMatch(/PNG plots (skipped|failed)/); // no matplotlib here: said, not hidden
    }
  });
});
