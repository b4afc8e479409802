/**
 * `mkey-det pretrain` end to end on the embedded demo classification set (mmpretrain's real
 * tools/train.py, the real plugin), then the handoff: `train --pretrained <pretrain run>` loads
 * every manifold-key weight into detection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEventSchema } from '../src/core/run/events.js';
import { renderMmpretrainConfig } from '../src/core/config/render-classification.js';
import { PRETRAIN_VARIANTS, pretrainVariant, type PretrainExperiment } from '../src/core/pretrain/experiment.js';
import { runCli } from './helpers/cli.js';
import { pretrainCommand, pretrainExperimentFrom, pretrainOptionsSchema } from '../src/commands/pretrain.js';
import { parseOptions } from '../src/utils/options.js';
import { configLabel } from '../src/core/report/run-summary.js';
import { TASKS } from '../src/core/tasks.js';
import type { RunData } from '../src/core/report/types.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-pretrain-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const experiment = (name: string, over: Partial<PretrainExperiment> = {}): PretrainExperiment => ({
  backbone: pretrainVariant(name),
  charts: 8,
  recipe: 'paper',
  data: { kind: 'dir', path: '/data/imagenet' },
  batchSize: 32,
  seed: 0,
  imgSize: 224,
  amp: false,
  cfgOptions: [],
  ...over,
});
const layout = { root: '/data/imagenet', trainPrefix: 'train', valPrefix: 'val', classes: ['a', 'b', 'c'] };
/** The experiment `pretrain` makes of these flags (commander's strings, the other options at the command's defaults). */
const fromFlags = (flags: Record<string, string>): PretrainExperiment => {
  const defaults = Object.fromEntries(pretrainCommand.options.filter((o) => o.defaultValue !== undefined).map((o) => [o.attributeName(), o.defaultValue]));
  return pretrainExperimentFrom(parseOptions(pretrainOptionsSchema, { ...defaults, ...flags }));
};

describe('pretrain variants and configs', () => {
  it('has the three families of Tables 1-2 and SwinV2-T (section 5), each with every key of the registry', () => {
    const families = [...new Set(PRETRAIN_VARIANTS.map((v) => v.family))];
    expect(families).toEqual(['swin-t', 'vit-s', 'vit-b', 'swinv2-t']);
    expect(PRETRAIN_VARIANTS.map((v) => v.name)).toContain('vit-b-vanillak');
    expect(PRETRAIN_VARIANTS.filter((v) => v.family === 'swinv2-t').map((v) => v.name)).toEqual([
      'swinv2-t', 'swinv2-t-spatialk', 'swinv2-t-kua', 'swinv2-t-simplek', 'swinv2-t-vanillak',
    ]);
    expect(PRETRAIN_VARIANTS.length).toBe(20);
  });

  it('SwinV2-T: mmpretrain\'s swinv2-tiny-w8 at 256 px, window 8, the key in its window attention', () => {
    const fold = (t: string) => t.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/,? \)/g, ')');
    const paper = fold(renderMmpretrainConfig(experiment('swinv2-t-spatialk', { imgSize: 256 }), { data: layout, toolVersion: 't' }));
    expect(paper).toContain("_base_ = 'mmpretrain::swin_transformer_v2/swinv2-tiny-w8_16xb64_in1k-256px.py'");
    expect(paper).toContain("type='SwinTransformerV2MKey', img_size=256, window_size=8, key_type='spatialk', num_charts=8)");
    expect(paper).toContain("type='OneCycleLR'");
    expect(paper).not.toContain('pad_small_map'); // 256 px: the last stage is one 8 x 8 window
    const demo = fold(renderMmpretrainConfig(experiment('swinv2-t-vanillak', { recipe: 'demo', imgSize: 64, cbMode: 'none' }), { data: layout, toolVersion: 't' }));
    expect(demo).toContain("key_type='vanillak', num_charts=8, key_kwargs=dict(cb_mode='none'), pad_small_map=True, drop_path_rate=0");
    expect(fromFlags({ backbone: 'swinv2-t', data: '/data/imagenet' }).imgSize).toBe(256);
  });

  it('the paper recipe: one-cycle cosine 5e-4 -> 5e-6, AdamW (0.9, 0.999) wd 0.05, 300 epochs', () => {
    // whitespace folded: the literal writer wraps long dicts over lines
    const text = renderMmpretrainConfig(experiment('swin-t-spatialk'), { data: layout, toolVersion: 't' }).replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/,? \)/g, ')');
    expect(text).toContain("_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'");
    expect(text).toContain("type='OneCycleLR', eta_max=0.0005");
    expect(text).toContain('final_div_factor=4'); // 5e-4 / 25 / 4 = 5e-6
    expect(text).toContain("type='AdamW', lr=0.0005, betas=(0.9, 0.999), weight_decay=0.05");
    expect(text).toContain('max_epochs=300');
    expect(text).toContain("type='mmdet.SwinTransformerMKey'");
    expect(text).toContain("key_type='spatialk', num_charts=8");
    expect(text).toContain('pipeline={{_base_.train_pipeline}}');
    expect(text).toContain('topk=(1,)'); // three classes: no top-5
  });

  it('ViT-B keeps DeiT-B stock EMA hook and takes the key; the linear variant has no charts', () => {
    const text = renderMmpretrainConfig(experiment('vit-b', { recipe: 'stock' }), { data: { ...layout, classes: 'abcdefg'.split('') }, toolVersion: 't' })
      .replace(/\s+/g, ' ')
      .replace(/\( /g, '(')
      .replace(/,? \)/g, ')');
    expect(text).toContain("_base_ = 'mmpretrain::deit/deit-base_16xb64_in1k.py'");
    expect(text).toContain("type='EMAHook'");
    expect(text).toContain("type='VisionTransformerMKey', img_size=224, key_type='linear')");
    expect(text).toContain('topk=(1, 5)');
    expect(text).not.toContain('OneCycleLR');
  });

  it('the paper recipe gives both ViTs the same regularisation: no EMA, no drop path (docs/PRETRAIN.md)', () => {
    const render = (name: string, recipe: PretrainExperiment['recipe']) =>
      renderMmpretrainConfig(experiment(name, { recipe }), { data: layout, toolVersion: 't' }).replace(/\s+/g, ' ');
    for (const name of ['vit-s', 'vit-s-spatialk', 'vit-b', 'vit-b-vanillak']) {
      const paper = render(name, 'paper');
      expect(paper, name).not.toContain('EMAHook');
      expect(paper, name).toMatch(/drop_path_rate=0(\.0)?[,) ]/); // 0.0 (the literal writer prints 0)
    }
    // stock keeps mmpretrain's: DeiT-B's EMA and its inherited drop path (not written)
    expect(render('vit-b', 'stock')).toContain("type='EMAHook'");
    expect(render('vit-b', 'stock')).not.toContain('drop_path_rate');
  });

  it('Table 2: pretrain --backbone vit-b-vanillak --charts 4|8 --cb-mode none', async () => {
    for (const charts of [4, 8]) {
      const exp = fromFlags({ backbone: 'vit-b-vanillak', charts: String(charts), data: '/data/imagenet', cbMode: 'none' });
      expect(exp.cbMode).toBe('none');
      const text = renderMmpretrainConfig(exp, { data: layout, toolVersion: 't' }).replace(/\s+/g, ' ');
      expect(text).toContain(`num_charts=${charts}, key_kwargs=dict(cb_mode='none')`);
    }
  });

  it("report labels a run without CB ('no CB'), and one with per-location CB", () => {
    const run = (experiment: Record<string, unknown>): RunData => ({
      dir: '/r',
      label: 'r',
      identity: { backboneName: 'vit-b-vanillak', keyType: 'vanillak', numCharts: 4, maxEpochs: 300, experiment },
      issues: [],
      sessions: [],
      train: [],
      evals: [],
    });
    const task = TASKS.classification as unknown as Parameters<typeof configLabel>[0];
    expect(configLabel(task, run({ recipe: 'paper', cb_mode: 'none' }))).toBe('vit-b-vanillak, 4 charts, no CB, paper 300e');
    expect(configLabel(task, run({ recipe: 'paper', cb_mode: 'per_location' }))).toBe('vit-b-vanillak, 4 charts, per-location CB, paper 300e');
    expect(configLabel(task, run({ recipe: 'paper' }))).toBe('vit-b-vanillak, 4 charts, paper 300e');
  });
});

describe('mkey-det pretrain: bad input ends with one line and exit 2', () => {
  it.each([
    [['--backbone', 'vit-x'], 'invalid --backbone "vit-x": accepted: swin-t, swin-t-spatialk'],
    [['--recipe', 'long'], 'invalid --recipe "long": accepted: paper, stock, demo'],
    [['--img-size', '100', '--backbone', 'vit-s'], '--img-size 100: vit-s cuts the image into 16 x 16 patches'],
    [['--img-size', '128', '--recipe', 'paper'], '--img-size 128 with --recipe paper'],
    [['--img-size', '224', '--backbone', 'swinv2-t', '--data', '/nonexistent'], '--img-size 224 with --recipe paper: the paper recipe trains swinv2-t at 256 px'],
    [['--img-size', '80', '--backbone', 'swinv2-t-kua'], '--img-size 80: swinv2-t-kua halves its 4 x 4 patch grid three times'],
    [['--data', '/nonexistent/imagenet'], '/nonexistent/imagenet'],
    [['--max-epochs', '2', '--max-iters', '3'], '--max-epochs and --max-iters exclude each other'],
  ])('%j', async (args, message) => {
    const wd = join(tmp, `bad-${Math.random().toString(36).slice(2)}`);
    const res = await runCli(['pretrain', '--work-dir', wd, ...args]);
    expect(res.exitCode).toBe(2);
    const first = res.stderr.trim().split('\n')[0]!;
    expect(first).toContain(message);
    expect(res.stderr).not.toContain('Traceback');
    expect(existsSync(join(wd, 'mkey-run.json'))).toBe(false);
  });
});

describe('mkey-det pretrain --data demo, then train --pretrained <that run>', () => {
  it('pretrains, evaluates top-1/top-5, and hands every manifold-key weight to detection', async () => {
    const wd = join(tmp, 'pre');
    const res = await runCli(['pretrain', '--data', 'demo', '--backbone', 'swin-t-spatialk', '--charts', '2', '--max-iters', '2', '--batch-size', '4', '--work-dir', wd, '--tensorboard', '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of lines.slice(0, -1)) expect(runEventSchema.safeParse(e).success).toBe(true);
    const result = lines.at(-1)!;
    expect(result.ok).toBe(true);
    const metrics = result.metrics as Record<string, number>;
    expect(metrics['accuracy/top1']).toBeGreaterThanOrEqual(0);
    expect(metrics['accuracy/top5']).toBeGreaterThanOrEqual(metrics['accuracy/top1']!);
    const run = JSON.parse(readFileSync(join(wd, 'mkey-run.json'), 'utf8')) as { status: string; experiment: Record<string, unknown> };
    expect(run.status).toBe('completed');
    expect(run.experiment).toMatchObject({ task: 'classification', family: 'swin-t', keyType: 'spatialk', charts: 2 });
    // --tensorboard: mmengine's TensorboardVisBackend wrote event files next to scalars.json
    const session = readdirSync(wd).find((f) => /^\d{8}_\d{6}$/.test(f))!;
    expect(readdirSync(join(wd, session, 'vis_data')).some((f) => f.startsWith('events.out.tfevents.'))).toBe(true);

    const det = join(tmp, 'det');
    const res2 = await runCli(['train', '--data', 'demo', '--backbone', 'swin-t-spatialk', '--charts', '2', '--max-iters', '1', '--pretrained', wd, '--work-dir', det]);
    expect(res2.exitCode, res2.stderr).toBe(0);
    const log = readFileSync(join(det, 'mkey-train.log'), 'utf8');
    expect(log).toMatch(/every manifold-key weight loaded from the checkpoint \(\d+ key tensors in 12 attentions; no function-preserving start\)/);
  }, 600_000);
});
