/**
 * `mkey-det analyze qk` end to end: a Swin-T checkpoint without a config (read as the linear key)
 * and a run-like folder (config.py written by `mkey-det config`, a detector-layout checkpoint of
 * its SpatialK backbone), analysed side by side through the bridge, files written once.
 * `analyze attention`: the same Swin models, and two tiny ViT pretrain-like runs (an mmpretrain
 * config.py and a classifier checkpoint) for the class token's maps.
 */
import { execa } from 'execa';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, testPython } from './helpers/cli.js';

let tmp: string;
let stockCkpt: string;
let runDir: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-analyze-'));
  stockCkpt = join(tmp, 'swin-t.pth');
  runDir = join(tmp, 'spatialk-run');
  mkdirSync(runDir);
  const made = await runCli(['config', '--backbone', 'swin-t-spatialk', '--charts', '2', '--data', 'demo', '--out', join(runDir, 'config.py')]);
  expect(made.exitCode, made.stderr).toBe(0);
  const script = [
    'import sys, torch',
    'import mkey_det  # first: makes torchvision (imported by mmdet through mmpretrain) importable',
    'from mmengine.config import Config',
    'from mmdet.registry import MODELS',
    'from mmdet.utils import register_all_modules',
    'from mmdet.models.backbones import SwinTransformer',
    'import mkey_det',
    'register_all_modules()',
    'torch.manual_seed(0)',
    'torch.save({"state_dict": SwinTransformer().state_dict()}, sys.argv[1])',
    'cfg = Config.fromfile(sys.argv[2]).model.backbone',
    'cfg["init_cfg"] = None',
    'b = MODELS.build(cfg); b.init_weights()',
    '# as after training: the keys moved away from their function-preserving start',
    'with torch.no_grad():',
    '    [p.add_(0.05 * torch.randn_like(p)) for n, p in b.named_parameters() if ".key." in n]',
    'torch.save({"meta": {"epoch": 1}, "state_dict": {"backbone." + k: v for k, v in b.state_dict().items()}}, sys.argv[3])',
  ].join('\n');
  const res = await execa(testPython, ['-c', script, stockCkpt, join(runDir, 'config.py'), join(runDir, 'epoch_1.pth')], { reject: false });
  expect(res.exitCode, String(res.stderr)).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Layer {
  stage: number;
  block: number;
  charts: number;
  off_zero_offset_share: number;
  similarity_mean: number;
  heads: { similarity: number; singular_values: number[] }[];
}

describe('mkey-det analyze qk', () => {
  it('analyses a bare Swin checkpoint and a run side by side, writing qk.json and qk.png once', async () => {
    const out = join(tmp, 'qk');
    const res = await runCli(['analyze', 'qk', stockCkpt, runDir, '--labels', 'swin-t,spatialk', '--out', out, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const body = JSON.parse(res.stdout) as { ok: boolean; json: string; plot: string; models: { label: string; key_type: string; charts: number | null; layers: Layer[] }[] };
    expect(body.ok).toBe(true);
    expect(body.models.map((m) => [m.label, m.key_type, m.charts])).toEqual([
      ['swin-t', 'linear', null],
      ['spatialk', 'spatialk', 2],
    ]);
    for (const m of body.models) {
      expect(m.layers.map((l) => `${l.stage}.${l.block}`)).toEqual(['0.0', '0.1', '1.0', '1.1', '2.0', '2.1', '2.2', '2.3', '2.4', '2.5', '3.0', '3.1']);
      expect(m.layers.map((l) => l.heads.length)).toEqual([3, 3, 6, 6, 12, 12, 12, 12, 12, 12, 24, 24]);
      for (const l of m.layers) {
        for (const h of l.heads) {
          expect(h.similarity).toBeGreaterThanOrEqual(-1);
          expect(h.similarity).toBeLessThanOrEqual(1);
          expect(h.singular_values).toHaveLength(32); // the head dimension
        }
      }
    }
    expect(body.models[0]!.layers.every((l) => l.off_zero_offset_share === 0 && l.charts === 1)).toBe(true);
    expect(body.models[1]!.layers.every((l) => l.off_zero_offset_share > 0 && l.charts === 2)).toBe(true);
    expect(JSON.parse(readFileSync(body.json, 'utf8')).models).toHaveLength(2);
    expect(readFileSync(body.plot).subarray(0, 4).toString('hex')).toBe('89504e47');

    const again = await runCli(['analyze', 'qk', stockCkpt, '--out', out]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr.split('\n')[0]).toMatch(/qk\.json" and ".*qk\.png" already exist; refusing to overwrite them/);
  });

  it('one writer per --out: of two started together one writes, the other is refused (exit 2); --force replaces a linked qk.png, not its target', async () => {
    const out = join(tmp, 'qk-together');
    const [a, b] = await Promise.all([0, 1].map(() => runCli(['analyze', 'qk', stockCkpt, '--out', out, '--json'])));
    expect([a!.exitCode, b!.exitCode].sort(), `${a!.stderr}\n${b!.stderr}`).toEqual([0, 2]);
    const loser = a!.exitCode === 2 ? a! : b!;
    // refused by the lock while the other writes, or by its files once written
    expect(JSON.parse(loser.stdout).error.message).toMatch(/^--out ".*qk-together" is being written by mkey-det analyze qk \(pid \d+\); refusing a second writer$|qk\.json" and ".*qk\.png" already exist; refusing to overwrite them$/);
    expect(readdirSync(out).sort()).toEqual(['qk.json', 'qk.png']); // the lock gone
    // qk.png a link to the user's own picture elsewhere: --force writes a new qk.png, the picture stays
    const mine = join(tmp, 'my-picture.png');
    writeFileSync(mine, 'my own picture\n');
    rmSync(join(out, 'qk.png'));
    symlinkSync(mine, join(out, 'qk.png'));
    const forced = await runCli(['analyze', 'qk', stockCkpt, '--out', out, '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(forced.stderr).toContain(`qk.png" was a symbolic link to ${JSON.stringify(mine)}; replaced the link with a file of its own`);
    expect(readFileSync(mine, 'utf8')).toBe('my own picture\n');
    expect(lstatSync(join(out, 'qk.png')).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(out, 'qk.png')).subarray(0, 4).toString('hex')).toBe('89504e47');
  });

  it('a checkpoint that does not fit its run config is refused with one line, exit 2, and no --out folder', async () => {
    const wrong = join(tmp, 'wrong-run');
    mkdirSync(wrong);
    const made = await runCli(['config', '--backbone', 'swin-t-kua', '--charts', '2', '--data', 'demo', '--out', join(wrong, 'config.py')]);
    expect(made.exitCode).toBe(0);
    await execa('cp', [join(runDir, 'epoch_1.pth'), join(wrong, 'epoch_1.pth')]);
    const out = join(tmp, 'qk-wrong');
    const res = await runCli(['analyze', 'qk', wrong, '--out', out]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toMatch(/^error: .*(do not match the model|does not fit)/);
    expect(existsSync(out)).toBe(false);
  });
});

interface AttentionBody {
  ok: boolean;
  json: string;
  models: { label: string; key_type: string; charts: number | null; cb_mode: string | null }[];
  images: {
    path: string;
    size: [number, number];
    input_size: [number, number];
    query: [number, number];
    png: string;
    models: {
      label: string;
      layer: number;
      stage: number;
      block: number;
      heads: number;
      shift: number;
      stride: number;
      grid: [number, number];
      query_cell: [number, number];
      head_stats: { entropy: number; self: number; padding_share: number }[];
      query_maps: number[][][];
      received_maps: number[][][];
    }[];
  }[];
}

interface VitBody {
  backbone: string;
  models: { label: string; backbone: string; key_type: string; charts: number | null }[];
  images: {
    query: null;
    input_size: [number, number];
    crop: [number, number, number, number];
    png: string;
    models: {
      backbone: string;
      layer: number;
      layers: number;
      heads: number;
      stride: number;
      tokens: number;
      grid: [number, number];
      head_stats: { self: number; patch_share: number }[];
      class_maps: number[][][];
    }[];
  }[];
}

describe('mkey-det analyze attention', () => {
  let image: string;
  beforeAll(async () => {
    image = join(tmp, 'scene.png');
    const script = [
      'import sys, numpy as np',
      'from PIL import Image',
      'rng = np.random.default_rng(0)',
      'Image.fromarray((rng.random((150, 200, 3)) * 255).astype(np.uint8)).save(sys.argv[1])',
    ].join('\n');
    const res = await execa(testPython, ['-c', script, image], { reject: false });
    expect(res.exitCode, String(res.stderr)).toBe(0);
  });

  it('draws a bare Swin checkpoint and a run side by side: one PNG grid per image and attention.json, written once', async () => {
    const out = join(tmp, 'attn');
    const res = await runCli(['analyze', 'attention', stockCkpt, runDir, '--image', image, '--labels', 'swin-t,spatialk', '--query', '150,30', '--out', out, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const body = JSON.parse(res.stdout) as AttentionBody;
    expect(body.ok).toBe(true);
    expect(body.models.map((m) => [m.label, m.key_type, m.charts, m.cb_mode])).toEqual([
      ['swin-t', 'linear', null, null],
      ['spatialk', 'spatialk', 2, null],
    ]);
    expect(body.images).toHaveLength(1);
    const img = body.images[0]!;
    expect(img.size).toEqual([200, 150]);
    expect(img.input_size).toEqual([224, 168]);
    expect(img.query).toEqual([150, 30]);
    for (const r of img.models) {
      // the last block of Swin-T: stage 3, block 1 (shifted), 24 heads, 7 x 6 cells of 32 px
      expect([r.layer, r.stage, r.block, r.heads, r.shift, r.stride]).toEqual([11, 3, 1, 24, 3, 32]);
      expect(r.grid).toEqual([6, 7]);
      expect(r.query_cell).toEqual([1, 5]); // 150 * 1.12 / 32, 30 * 1.12 / 32
      expect(r.query_maps).toHaveLength(24);
      expect(r.received_maps[0]).toHaveLength(6);
      for (const [h, m] of r.query_maps.entries()) {
        const total = m.flat().reduce((a, b) => a + b, 0) + r.head_stats[h]!.padding_share;
        expect(total).toBeCloseTo(1, 4);
      }
    }
    expect(readFileSync(img.png).subarray(0, 4).toString('hex')).toBe('89504e47');
    expect(img.png).toBe(join(out, 'attention-1-scene.png'));
    expect(JSON.parse(readFileSync(body.json, 'utf8')).images[0].models).toHaveLength(2);

    const again = await runCli(['analyze', 'attention', stockCkpt, '--image', image, '--out', out]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr.split('\n')[0]).toMatch(/attention\.json" and ".*attention-1-scene\.png" already exist; refusing to overwrite them/);
  });

  it('prints a per-head table without --out, at a chosen layer', async () => {
    const res = await runCli(['analyze', 'attention', stockCkpt, '--image', image, '--layer', '4']);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/layer 4 \(stage 2 block 0, regular 7x7 windows\), grid 11x14 cells of 16 px/);
    expect(res.stdout).toMatch(/\| head \| swin-t\.pth: entropy \|/);
    expect(res.stdout).toContain('add --out DIR for the maps');
  });

  it('refuses bad input with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['analyze', 'attention', stockCkpt, '--image', image, '--layer', '12'], /^error: --layer must be an attention layer 0\.\.11/],
      [['analyze', 'attention', stockCkpt, '--image', image, '--query', '10'], /^error: invalid --query "10": give X,Y/],
      [['analyze', 'attention', stockCkpt, '--image', image, '--query', '500,10'], /^error: --query 500,10 is outside the image \(200 x 150 pixels\)/],
      [['analyze', 'attention', stockCkpt, runDir, stockCkpt, '--image', image], /^error: 3 models given: analyze attention compares at most 2/],
      [['analyze', 'attention', stockCkpt, '--image', join(tmp, 'nothing.png')], /^error: image ".*nothing\.png" does not exist/],
      [['analyze', 'attention', stockCkpt, '--image', join(runDir, 'config.py')], /^error: .*config\.py: not an image that can be read/],
    ];
    for (const [args, msg] of cases) {
      const res = await runCli(args);
      expect(res.exitCode, `${args.join(' ')}\n${res.stderr}`).toBe(2);
      expect(res.stderr.split('\n')[0]).toMatch(msg);
    }
  });
  describe('ViT: the class token', () => {
    let vitRun: string;
    let mkeyRun: string;
    beforeAll(async () => {
      vitRun = join(tmp, 'vit-run');
      mkeyRun = join(tmp, 'vit-spatialk-run');
      // as `mkey-det pretrain` leaves a run: an mmpretrain config.py and a classifier checkpoint
      const script = [
        'import sys, os, torch',
        'import mkey_det  # registers VisionTransformerMKey in mmpretrain',
        'from mmengine.config import Config',
        'from mkey_det.models.backbones.vit_mkey import VisionTransformerMKey',
        'arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)',
        'for seed, (run, key) in enumerate(zip(sys.argv[1:], ["linear", "spatialk"])):',
        '    os.makedirs(run)',
        '    bb = dict(type="VisionTransformerMKey", arch=arch, img_size=32, patch_size=8, key_type=key, num_charts=2, init_cfg=None)',
        '    Config(dict(default_scope="mmpretrain", model=dict(type="ImageClassifier", backbone=bb), data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True))).dump(os.path.join(run, "config.py"))',
        '    torch.manual_seed(seed)',
        '    m = VisionTransformerMKey(**{k: v for k, v in bb.items() if k != "type"})',
        '    with torch.no_grad():',
        '        [p.add_(0.1 * torch.randn_like(p)) for p in m.parameters()]',
        '    sd = {"backbone." + k: v for k, v in m.state_dict().items()}',
        '    sd.update({"head.fc.weight": torch.zeros(3, 32), "head.fc.bias": torch.zeros(3)})',
        '    torch.save({"meta": {"epoch": 1}, "state_dict": sd}, os.path.join(run, "epoch_1.pth"))',
      ].join('\n');
      const res = await execa(testPython, ['-c', script, vitRun, mkeyRun], { reject: false });
      expect(res.exitCode, String(res.stderr)).toBe(0);
    });

    it('draws two ViT runs side by side: the class token per head over the patch grid of a centre crop', async () => {
      const out = join(tmp, 'attn-vit');
      const res = await runCli(['analyze', 'attention', vitRun, mkeyRun, '--image', image, '--labels', 'vit,spatialk', '--out', out]);
      expect(res.exitCode, res.stderr).toBe(0);
      // the table (stdout), then everything in attention.json
      expect(res.stdout).toMatch(/centre crop x=25, y=0, 150x150 px -> .*attention-1-scene\.png/);
      expect(res.stdout).toMatch(/spatialk: layer 1 of 0\.\.1, 2 heads, the class token over 4x4 patches of 8 px \(17 tokens\)/);
      expect(res.stdout).toMatch(/\| head \| vit: entropy \| vit: self \| vit: max \| vit: max at \| spatialk: entropy \|/);
      const body = JSON.parse(readFileSync(join(out, 'attention.json'), 'utf8')) as VitBody;
      expect(body.backbone).toBe('vit');
      expect(body.models.map((m) => [m.label, m.backbone, m.key_type, m.charts])).toEqual([
        ['vit', 'vit', 'linear', null],
        ['spatialk', 'vit', 'spatialk', 2],
      ]);
      const img = body.images[0]!;
      expect(img.query).toBeNull();
      expect(img.input_size).toEqual([32, 32]); // the models' img_size
      expect(img.crop).toEqual([25, 0, 150, 150]); // the centre square of the 200 x 150 file
      for (const r of img.models) {
        expect([r.backbone, r.layer, r.layers, r.heads, r.stride, r.tokens]).toEqual(['vit', 1, 2, 2, 8, 17]);
        expect(r.grid).toEqual([4, 4]);
        expect(r.class_maps).toHaveLength(2);
        for (const [h, m] of r.class_maps.entries()) {
          expect(m).toHaveLength(4);
          const total = m.flat().reduce((a, b) => a + b, 0);
          expect(total).toBeCloseTo(r.head_stats[h]!.patch_share, 5);
          expect(total + r.head_stats[h]!.self).toBeCloseTo(1, 4); // the class token's whole row
        }
      }
      expect(img.png).toBe(join(out, 'attention-1-scene.png'));
      expect(readFileSync(img.png).subarray(0, 4).toString('hex')).toBe('89504e47');
    });

    // a --layer out of range takes the same way out (test_analysis_attention_vit.py checks its line)
    it('refuses what has no meaning for a ViT with one line and exit 2', async () => {
      const cases: [string[], RegExp][] = [
        [['analyze', 'attention', vitRun, '--image', image, '--query', '10,10'], /^error: --query has no meaning for a ViT/],
        [['analyze', 'attention', runDir, vitRun, '--image', image], /^error: analyze attention compares models of one kind \(spatialk-run is a Swin, vit-run is a ViT\)/],
      ];
      for (const [args, msg] of cases) {
        const res = await runCli(args);
        expect(res.exitCode, `${args.join(' ')}\n${res.stderr}`).toBe(2);
        expect(res.stderr.split('\n')[0]).toMatch(msg);
      }
    });

    it('rolls the attention out through the layers by default (Fig. 2), --method block draws one layer', async () => {
      const rolled = await runCli(['analyze', 'attention', vitRun, mkeyRun, '--image', image, '--labels', 'vit,spatialk']);
      expect(rolled.exitCode, rolled.stderr).toBe(0);
      expect(rolled.stdout).toMatch(/vit: layer 1 of 0\.\.1, 2 heads, the class token over 4x4 patches of 8 px \(17 tokens\): joint attention, rolled out through layers 0\.\.1/);
      const [roll, block] = await Promise.all(
        [[], ['--method', 'block']].map(async (extra) => {
          const res = await runCli(['analyze', 'attention', vitRun, '--image', image, '--json', ...extra]);
          expect(res.exitCode, res.stderr).toBe(0);
          return JSON.parse(res.stdout) as VitBody & { method: string; images: { models: { method: string }[] }[] };
        }),
      );
      expect([roll!.method, roll!.images[0]!.models[0]!.method]).toEqual(['rollout', 'rollout']);
      expect([block!.method, block!.images[0]!.models[0]!.method]).toEqual(['block', 'block']);
      const r = roll!.images[0]!.models[0]!;
      const b = block!.images[0]!.models[0]!;
      for (const m of [r, b]) {
        for (const [h, map] of m.class_maps.entries()) expect(map.flat().reduce((x, y) => x + y, 0) + m.head_stats[h]!.self).toBeCloseTo(1, 4);
      }
      // the identity term of every layer: the joint attention keeps more on the class token itself
      expect(r.head_stats.every((st, h) => st.self > b.head_stats[h]!.self)).toBe(true);
      expect(r.class_maps).not.toEqual(b.class_maps);

      const cases: [string[], RegExp][] = [
        [['analyze', 'attention', stockCkpt, '--image', image, '--method', 'rollout'], /^error: --method rollout is for ViTs: a Swin's shifted windows have no global token/],
        [['analyze', 'attention', vitRun, '--image', image, '--method', 'mean'], /^error: invalid --method "mean": accepted: rollout, block/],
      ];
      for (const [args, msg] of cases) {
        const res = await runCli(args);
        expect(res.exitCode, `${args.join(' ')}\n${res.stderr}`).toBe(2);
        expect(res.stderr.split('\n')[0]).toMatch(msg);
      }
    });

    it('analyze qk takes ViT runs: every block over all 17 tokens, the class token included', async () => {
      const res = await runCli(['analyze', 'qk', vitRun, mkeyRun, '--labels', 'vit,spatialk', '--json']);
      expect(res.exitCode, res.stderr).toBe(0);
      const body = JSON.parse(res.stdout) as { backbone: string; models: { backbone: string; key_type: string; layers: (Layer & { tokens: number; width: number })[] }[] };
      expect(body.backbone).toBe('vit');
      expect(body.models.map((m) => [m.backbone, m.key_type])).toEqual([['vit', 'linear'], ['vit', 'spatialk']]);
      for (const m of body.models) {
        expect(m.layers.map((l) => [l.stage, l.block, l.tokens, l.width, l.heads.length])).toEqual([[0, 0, 17, 32, 2], [0, 1, 17, 32, 2]]);
        for (const l of m.layers) for (const h of l.heads) expect(h.singular_values).toHaveLength(16); // the head dimension
      }
      expect(body.models[0]!.layers.every((l) => l.off_zero_offset_share === 0)).toBe(true);
      expect(body.models[1]!.layers.every((l) => l.off_zero_offset_share > 0)).toBe(true);
      const table = await runCli(['analyze', 'qk', vitRun, mkeyRun, '--labels', 'vit,spatialk']);
      expect(table.exitCode, table.stderr).toBe(0);
      expect(table.stdout).toMatch(/\| layer \| tokens \| width \| vit: similarity mean \(min\.\.max\) \|/);
      const mixed = await runCli(['analyze', 'qk', vitRun, runDir]);
      expect(mixed.exitCode).toBe(2);
      expect(mixed.stderr.split('\n')[0]).toMatch(/^error: analyze qk compares models of one kind \(vit-run is a ViT, spatialk-run is a Swin\)/);
    });
  });
});
