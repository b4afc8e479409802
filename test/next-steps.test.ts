/** The commands `train` prints when it ends: each must run as printed. */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nextSteps } from '../src/commands/train.js';
import { backboneVariant } from '../src/core/experiment.js';
import { experiment } from './helpers/experiment.js';

const demoRun = (backbone: string) => experiment({ backbone: backboneVariant(backbone), schedule: 'short', data: { kind: 'demo' }, batchSize: 8 });

describe('train: next steps', () => {
  it('exports a manifold key folded with its charts, the linear key without --charts or --fold (export refuses --fold there)', () => {
    const wd = join('work_dirs', 'run');
    const manifold = nextSteps(wd, join(wd, 'epoch_6.pth'), demoRun('swin-t-spatialk'));
    expect(manifold.find((l) => l.includes('mkey-det export'))).toContain('--backbone swin-t-spatialk --charts 8 --checkpoint work_dirs/run/epoch_6.pth --fold');
    const linear = nextSteps(wd, join(wd, 'epoch_6.pth'), demoRun('swin-t'));
    const exportLine = linear.find((l) => l.includes('mkey-det export'))!;
    expect(exportLine).toContain('--backbone swin-t --checkpoint work_dirs/run/epoch_6.pth');
    expect(exportLine).not.toMatch(/--charts|--fold/);
  });

  it('names paths below the working directory relatively and others absolutely (no ../../tmp)', () => {
    const outside = resolve('/tmp/some-run');
    const lines = nextSteps(outside, join(outside, 'iter_4.pth'), demoRun('swin-t-spatialk'));
    expect(lines[1]).toBe(`  mkey-det report ${outside}   # AP table and plots`);
    expect(lines.join('\n')).not.toContain('../');
    expect(lines.find((l) => l.includes('mkey-det test'))).toContain(`--checkpoint ${join(outside, 'iter_4.pth')}`);
  });
});
