/**
 * `mkey-det report` on a SwinV2 run: its backbone FLOPs are in the table, counted at the input size
 * the backbone is built for (the start event's `backbone_flops_input`), and the report says that
 * this is not 224x224. The fixture is a real `pretrain --backbone swinv2-t-spatialk --charts 2
 * --data demo --max-iters 2` (64 px; checkpoint left out). Before, the progress hook counted at
 * 224 x 224, where SwinV2's last stage is smaller than its window: no FLOPs, a warning.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, runCli } from './helpers/cli.js';

const RUN = join(repoRoot, 'test', 'fixtures', 'report', 'flops-input', 'swinv2-t-spatialk-c2-demo');

describe('report: a SwinV2 run has its backbone FLOPs, counted at its own input size', () => {
  it('shows them in the table and notes the size they were counted at', async () => {
    const start = readFileSync(join(RUN, 'mkey-events.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'start')!;
    expect(start.backbone_type).toBe('SwinTransformerV2MKey');
    expect(start.backbone_flops_input).toEqual([64, 64]);
    expect(start.backbone_flops_error).toBeUndefined();

    const res = await runCli(['report', RUN, '--format', 'json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout) as { runs: { label: string; backboneFlops?: number }[]; warnings: string[] };
    expect(report.runs[0]!.backboneFlops).toBe(start.backbone_flops);
    expect(report.warnings).toContain(`${report.runs[0]!.label}: backbone FLOPs counted at 64x64, the input size its backbone is built for, not 224x224`);
    const md = (await runCli(['report', RUN, '--format', 'md'])).stdout;
    expect(md).toMatch(/\| swinv2-t-spatialk, 2 charts, demo 2it, 64px \| swinv2-t \| spatialk \| 2 \| 1 \| it 2 \|.*\| 1\.33 \|/);
  });
});
