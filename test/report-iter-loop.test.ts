/**
 * `mkey-det report` on a detection run in an iteration loop (`train --max-iters 3`, as a sweep's
 * cells and smoke runs train): its one evaluation is one point at the iteration it ran, not three.
 * The fixture is a cell of the demo sweep of docs/SWEEP.md (real mmengine output, checkpoint left
 * out): mmengine logged that evaluation at step 0 in scalars.json (the epoch of an
 * IterBasedTrainLoop) and after iteration 2 (its last logged one) in the text log; the events say 3.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, runCli } from './helpers/cli.js';

const RUN = join(repoRoot, 'test', 'fixtures', 'report', 'iter-loop', 'swin-t-spatialk-c2-3x-custom-s0');

describe('report: a detection run in an iteration loop', () => {
  it('has its evaluation once, at the iteration the events name (the AP curve was 0, 2, 3 with one value)', async () => {
    // what mmengine's own files say: step 0 and after iteration 2
    const scalars = readFileSync(join(RUN, '20261206_162135', 'vis_data', 'scalars.json'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(scalars.filter((s) => 'coco/bbox_mAP' in s).map((s) => s.step)).toEqual([0]);
    const val = readFileSync(join(RUN, 'mkey-events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; iter?: number }).filter((e) => e.event === 'val');
    expect(val.map((e) => e.iter)).toEqual([3]);

    const res = await runCli(['report', RUN, '--format', 'json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout) as { plots: { apBox: [number, number][]; apMask: [number, number][]; evalBy: string }[]; runs: { eval: { step: number; by: string; ap: { APb: number } } }[] };
    expect(report.plots[0]!.evalBy).toBe('iter');
    expect(report.plots[0]!.apBox).toEqual([[3, 0.8]]);
    expect(report.plots[0]!.apMask).toEqual([[3, 0]]);
    expect(report.runs[0]!.eval).toMatchObject({ step: 3, by: 'iter', ap: { APb: 0.8 } });
  });
});
