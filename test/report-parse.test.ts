/** Unit tests of the report's readers and table logic on lines copied from the real fixture logs. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEvents, parseScalars, parseTextLog } from '../src/core/report/parse.js';
import { buildReport, pickEval, toPercent } from '../src/core/report/table.js';
import { fmtDelta, fmtDuration, fmtFlops, fmtParams, renderCsv } from '../src/core/report/format.js';
import type { EvalPoint, RunData } from '../src/core/report/types.js';
import { repoRoot } from './helpers/cli.js';

const RUNS = join(repoRoot, 'test', 'fixtures', 'report', 'runs');
const firstSession = (run: string) => readdirSync(join(RUNS, run)).filter((n) => /^\d{8}_\d{6}$/.test(n)).sort()[0]!;

describe('parseScalars (mmengine vis_data/scalars.json)', () => {
  it('splits training and validation lines; an evaluation without metrics does not clobber a training step', () => {
    // swin-s1 evaluated nothing at epoch 1 (no detections): mmengine logged {"data_time", "time", "step": 1}
    const ts = firstSession('swin-s1');
    const text = readFileSync(join(RUNS, 'swin-s1', ts, 'vis_data', 'scalars.json'), 'utf8');
    const p = parseScalars(text, 'scalars.json');
    expect(p.bad).toEqual([]);
    expect(p.train.map((t) => t.step)).toEqual([...Array(16).keys()].map((i) => i + 1));
    expect(p.train[0]).toMatchObject({ step: 1, epoch: 1, lr: 0.002 });
    expect(p.train[0]!.loss).toBeGreaterThan(0);
    expect(p.val.map((v) => v.step)).toEqual([1, 2, 3, 4]);
    expect(p.val[0]!.metrics).toEqual({});
    expect(Object.keys(p.val[3]!.metrics)).toContain('coco/segm_mAP_75');
  });

  it('reports bad lines by file and line number and keeps the rest', () => {
    const text = '{"lr": 0.1, "loss": 2.0, "epoch": 1, "iter": 1, "step": 1}\n{"lr": 0.1, "lo\n\n[1,2]\n{"coco/bbox_mAP": 0.5, "step": 1}\n{"loss": 1.0}\n';
    const p = parseScalars(text, 'a/vis_data/scalars.json');
    expect(p.bad).toEqual([
      { file: 'a/vis_data/scalars.json', line: 2 },
      { file: 'a/vis_data/scalars.json', line: 4 },
      { file: 'a/vis_data/scalars.json', line: 6 }, // no step
    ]);
    expect(p.train).toEqual([{ step: 1, epoch: 1, loss: 2.0, lr: 0.1 }]);
    expect(p.val).toEqual([{ step: 1, metrics: { 'coco/bbox_mAP': 0.5 } }]);
  });
});

describe('parseTextLog (mmengine <timestamp>.log)', () => {
  it('reads training and validation lines of a real log with the values scalars.json holds', () => {
    const ts = firstSession('swin-s0');
    const log = parseTextLog(readFileSync(join(RUNS, 'swin-s0', ts, `${ts}.log`), 'utf8'));
    const scal = parseScalars(readFileSync(join(RUNS, 'swin-s0', ts, 'vis_data', 'scalars.json'), 'utf8'), 's');
    expect(log.itersPerEpoch).toBe(4);
    expect(log.train.map((t) => t.step)).toEqual(scal.train.map((t) => t.step));
    for (const [i, t] of log.train.entries()) {
      expect(t.epoch).toBe(scal.train[i]!.epoch);
      expect(t.loss).toBeCloseTo(scal.train[i]!.loss!, 4); // the log prints 4 decimals
    }
    expect(log.val.map((v) => v.step)).toEqual([1, 2, 3, 4]);
    for (const [i, v] of log.val.entries()) {
      for (const [k, x] of Object.entries(scal.val[i]!.metrics)) expect(v.metrics[k]).toBeCloseTo(x, 6);
    }
    expect(log.lastTime! - log.firstTime!).toBeGreaterThan(0);
  });

  it('reads iteration-based loops', () => {
    const text = [
      '2026/01/02 10:00:00 - mmengine - INFO - Iter(train) [  10/100]  lr: 1.0000e-04  eta: 0:01:00  time: 0.5  data_time: 0.01  memory: 100  loss: 2.5000  loss_cls: 1.0',
      '2026/01/02 10:00:05 - mmengine - INFO - Iter(train) [  20/100]  lr: 1.0000e-04  eta: 0:01:00  time: 0.5  data_time: 0.01  memory: 100  loss: 2.0000',
      '2026/01/02 10:00:06 - mmengine - INFO - Iter(val) [5/5]    eta: 0:00:00  time: 0.1',
      '2026/01/02 10:00:07 - mmengine - INFO - Iter(val) [5/5]    coco/bbox_mAP: 0.1230  coco/segm_mAP: 0.0990  data_time: 0.0010  time: 0.1000',
    ].join('\n');
    const log = parseTextLog(text);
    expect(log.train).toEqual([
      { step: 10, loss: 2.5, lr: 1e-4 },
      { step: 20, loss: 2.0, lr: 1e-4 },
    ]);
    expect(log.val).toEqual([{ step: 20, by: 'iter', metrics: { 'coco/bbox_mAP': 0.123, 'coco/segm_mAP': 0.099 } }]);
    expect((log.lastTime! - log.firstTime!) / 1000).toBe(7);
  });
});

describe('parseEvents (mkey-events.jsonl)', () => {
  it('sums training segments over launches and reads backbone size', () => {
    const text = readFileSync(join(RUNS, 'spatialk-s0-resumed', 'mkey-events.jsonl'), 'utf8');
    const e = parseEvents(text, 'mkey-events.jsonl');
    expect(e.bad).toEqual([]);
    expect(e.segments).toHaveLength(2); // crashed launch + resumed launch
    expect(e.maxEpochs).toBe(4);
    expect(e.itersPerEpoch).toBe(4);
    expect(e.backboneParams).toBeGreaterThan(100_000);
    expect(e.end?.status).toBe('completed');
    expect(e.val.map((v) => v.epoch)).toEqual([1, 2, 3, 4]);
  });
});

describe('table logic', () => {
  const ev = (step: number, box: number): EvalPoint => ({ step, by: 'epoch', metrics: { 'coco/bbox_mAP': box, 'coco/segm_mAP': box / 2 }, source: 'scalars.json' });

  it('--best takes the earliest of equal best box APs, --last the last evaluation', () => {
    const evals = [ev(1, 0.1), ev(2, 0.3), ev(3, 0.3), ev(4, 0.2)];
    expect(pickEval(evals, 'best')?.step).toBe(2);
    expect(pickEval(evals, 'last')?.step).toBe(4);
    expect(pickEval([], 'last')).toBeUndefined();
  });

  it('converts 0-1 metrics with 3 decimals to percent with one decimal exactly', () => {
    for (let i = 0; i <= 1000; i++) expect(toPercent(i / 1000).toFixed(1)).toBe((i / 10).toFixed(1));
  });

  it('formats numbers for people', () => {
    expect(fmtDelta(0.5)).toBe('+0.5');
    expect(fmtDelta(-0.04)).toBe('+0.0');
    expect(fmtDelta(-0.26)).toBe('-0.3');
    expect(fmtParams(28_288_354)).toBe('28.3M');
    expect(fmtParams(222_214)).toBe('0.22M');
    expect(fmtFlops(4.49e9)).toBe('4.49G');
    expect(fmtFlops(10.4e9)).toBe('10.4G');
    expect(fmtDuration(45)).toBe('45s');
    expect(fmtDuration(192)).toBe('3m 12s');
    expect(fmtDuration(7500)).toBe('2h 05m');
  });

  it('a lone run and a configuration without a linear key: no deltas, a warning, CSV still complete', () => {
    const run: RunData = {
      dir: '/x/a',
      label: 'a',
      identity: { keyType: 'spatialk', numCharts: 8, seed: 0, maxEpochs: 1, fingerprint: 'f1' },
      sessions: ['20260101_000000'],
      train: [{ iter: 1, epoch: 1, loss: 1, lr: 0.1 }],
      evals: [ev(1, 0.4567)],
      lastEpoch: 1,
      maxEpochs: 1,
      issues: [],
    };
    const other: RunData = { ...run, dir: '/x/b', label: 'b', identity: { ...run.identity, keyType: 'kua', fingerprint: 'f2' } };
    const r = buildReport([run, other], { selection: 'last' });
    expect(r.baseline).toBeUndefined();
    expect(r.warnings).toEqual(["no deltas: no run has backbone key 'linear'; name one with --baseline"]);
    expect(r.runs[0]!.eval?.ap.APb).toBe(45.7);
    expect(r.runs[0]!.status).toBe('completed');
    const csv = renderCsv(r).trim().split('\n');
    expect(csv).toHaveLength(1 + 2 + 2 + 3);
  });
});
