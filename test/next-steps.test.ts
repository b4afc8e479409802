/** The commands `train` prints when it ends: each must run as printed. */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { nextSteps, recordedExperiment } from '../src/commands/train.js';
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

  it('quotes paths for the shell: a path holding $(...), spaces and quotes stays one literal argument', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkey-next-'));
    const wd = join(dir, "run $(touch PWNED) it's");
    const lines = nextSteps(wd, join(wd, 'epoch_6.pth'), demoRun('swin-t-spatialk'));
    const report = lines[1]!.replace(/^ {2}mkey-det report /, '').replace(/ {3}#.*$/, '');
    // the shell gives back the path itself, and runs nothing
    const echoed = execFileSync('sh', ['-c', `printf '%s' ${report}`], { cwd: dir, encoding: 'utf8' });
    expect(echoed).toBe(wd);
    const exportLine = lines.find((l) => l.includes('mkey-det export'))!;
    expect(exportLine).toContain(`--checkpoint '${dir}/run $(touch PWNED) it'\\''s/epoch_6.pth'`);
    execFileSync('sh', ['-c', `printf '%s' ${lines.slice(2).map((l) => l.replace(/ {3}#.*$/, '').trim()).join(' ')} >/dev/null`], { cwd: dir });
    expect(() => execFileSync('ls', [join(dir, 'PWNED')], { stdio: 'ignore' })).toThrow();
    rmSync(dir, { recursive: true, force: true });
  });

  it('after --resume: the backbone, charts and data the run recorded, not the flags of this command', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkey-next-rec-'));
    mkdirSync(join(dir, 'run'));
    writeFileSync(join(dir, 'run', 'mkey-run.json'), JSON.stringify({ status: 'completed', experiment: { backbone: 'swin-t', keyType: 'linear', charts: null, data: { kind: 'demo' } } }));
    const rec = recordedExperiment(join(dir, 'run'))!;
    expect(rec.backbone.name).toBe('swin-t');
    const exportLine = nextSteps(join(dir, 'run'), join(dir, 'run', 'epoch_6.pth'), rec).find((l) => l.includes('mkey-det export'))!;
    expect(exportLine).toContain('--backbone swin-t --checkpoint');
    expect(exportLine).not.toMatch(/spatialk|--charts|--fold/);
    writeFileSync(join(dir, 'run', 'mkey-run.json'), JSON.stringify({ status: 'completed', experiment: { source: 'config' } }));
    expect(recordedExperiment(join(dir, 'run'))).toBeUndefined();
    rmSync(dir, { recursive: true, force: true });
  });
});
