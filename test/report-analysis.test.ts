/**
 * `mkey-det report --analysis <dir...>`: the "Attention analysis" section from output folders of
 * `analyze attention` / `analyze qk`, built here by hand in the layout those commands write
 * (attention.json + attention-<n>-<name>.png, qk.json + qk.png), no Python analysis run.
 */
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { repoRoot, runCli, testPython } from './helpers/cli.js';
import type { ReportAnalysis } from '../src/core/report/index.js';

const RUNS = join(repoRoot, 'test', 'fixtures', 'report', 'runs');
const CLS_RUNS = join(repoRoot, 'test', 'fixtures', 'pretrain-runs');
const PNG = join(repoRoot, 'docs', 'images', 'attention-official-random.png');

/** A Swin model's maps for one image, as analyze attention writes them (2 heads, a 2x2 grid). */
function swinMaps(label: string, stats: { entropy: number; self: number; mean_distance: number }[]) {
  return {
    backbone: 'swin',
    label,
    layer: 11,
    stage: 3,
    block: 1,
    heads: stats.length,
    window: 7,
    shift: 0,
    stride: 32,
    grid: [2, 2],
    windows: 1,
    query_cell: [1, 1],
    query_window: 0,
    head_stats: stats.map((s, head) => ({ head, ...s, max: 0.5, max_cell: [0, 0], padding_share: 0, received_max: 1.2, received_min: 0.1 })),
    in_window: [[1, 1], [1, 1]],
    query_maps: stats.map(() => [[0.25, 0.25], [0.25, 0.25]]),
    received_maps: stats.map(() => [[1, 1], [1, 1]]),
  };
}

function writeAttentionDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const json = {
    backbone: 'swin',
    models: [
      { label: 'swin-t', path: '/runs/swin-t', checkpoint: '/runs/swin-t/epoch_2.pth', config: '/runs/swin-t/config.py', backbone: 'swin', key_type: 'linear', charts: null, cb_mode: null },
      { label: 'spatialk', path: '/runs/spk', checkpoint: '/runs/spk/epoch_2.pth', config: '/runs/spk/config.py', backbone: 'swin', key_type: 'spatialk', charts: 8, cb_mode: null },
    ],
    images: [
      {
        path: '/data/demo.jpg',
        size: [64, 64],
        input_size: [224, 224],
        query: [32, 32],
        models: [
          swinMaps('swin-t', [{ entropy: 2.0, self: 0.1, mean_distance: 1.0 }, { entropy: 3.0, self: 0.3, mean_distance: 2.0 }]),
          swinMaps('spatialk', [{ entropy: 1.0, self: 0.5, mean_distance: 0.5 }, { entropy: 1.5, self: 0.6, mean_distance: 1.5 }]),
        ],
        // written elsewhere, then the folder was moved: the report finds the grid by its name
        png: '/old/place/attn/attention-1-demo.png',
      },
    ],
    json: '/old/place/attn/attention.json',
  };
  writeFileSync(join(dir, 'attention.json'), JSON.stringify(json, null, 2) + '\n');
  copyFileSync(PNG, join(dir, 'attention-1-demo.png'));
}

function qkLayer(layer: number, stage: number, block: number, similarity: number) {
  return { stage, block, layer, width: 96, charts: 1, off_zero_offset_share: 0, similarity_mean: similarity, heads: [{ similarity, singular_values: [1, 0.5] }] };
}

function writeQkDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const json = {
    models: [
      { label: 'swin-t', path: '/runs/swin-t', checkpoint: '/runs/swin-t/epoch_2.pth', config: null, key_type: 'linear', charts: null, layers: [qkLayer(0, 0, 0, 0.5), qkLayer(1, 0, 1, -0.25)] },
      { label: 'spatialk', path: '/runs/spk', checkpoint: '/runs/spk/epoch_2.pth', config: null, key_type: 'spatialk', charts: 8, layers: [qkLayer(0, 0, 0, 0.8), qkLayer(1, 0, 1, 0.1)] },
    ],
    plot: '/old/place/qk/qk.png',
  };
  writeFileSync(join(dir, 'qk.json'), JSON.stringify(json, null, 2) + '\n');
  copyFileSync(PNG, join(dir, 'qk.png'));
}

const pngUri = () => `data:image/png;base64,${readFileSync(PNG).toString('base64')}`;
const oneLine = (stderr: string) => stderr.trim().split('\n').filter((l) => !l.startsWith('hint:'));

describe('mkey-det report --analysis', () => {
  let tmp: string;
  let attn: string;
  let qk: string;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'mkey-report-analysis-'));
    attn = join(tmp, 'attn');
    qk = join(tmp, 'qk');
    writeAttentionDir(attn);
    writeQkDir(qk);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('html (detection runs): the section, both PNGs inlined as data URIs, the per-model and per-layer numbers', async () => {
    const out = join(tmp, 'html', 'report.html');
    const res = await runCli(['report', join(RUNS, 'swin-s0'), join(RUNS, 'spatialk-s1'), '--analysis', attn, qk, '--format', 'html', '--out', out, '--no-plots']);
    expect(res.stderr).not.toMatch(/at .*\.js:\d+/);
    expect(res.exitCode).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<h2>Results: Mask R-CNN');
    expect(html).toContain('<h2>Attention analysis</h2>');
    const section = html.slice(html.indexOf('<h2>Attention analysis</h2>'));
    expect(section.includes(`analyze attention: ${attn}`)).toBe(true);
    expect(section.includes(`analyze qk: ${qk}`)).toBe(true);
    // the grids inlined, byte for byte; no file reference left
    const uri = pngUri();
    expect(section.split(`<img src="${uri}"`).length - 1).toBe(2);
    expect(section).not.toMatch(/<img src="(?!data:image\/png;base64,)/);
    // attention: means over the heads (2.0, 3.0 -> 2.50; 0.1, 0.3 -> 0.200; 1.0, 2.0 -> 1.50)
    const row = (label: string) => section.match(new RegExp(`<tr><td>${label}</td>(.*?)</tr>`))?.[1] ?? '';
    expect(row('swin-t')).toContain('<td>linear</td><td class="num">11 (stage 3 block 1)</td><td class="num">2</td><td class="num">1</td><td class="num">2.50</td><td class="num">0.200</td><td class="num">1.50</td>');
    expect(row('spatialk')).toContain('<td>spatialk, 8 charts</td><td class="num">11 (stage 3 block 1)</td><td class="num">2</td><td class="num">1</td><td class="num">1.25</td><td class="num">0.550</td><td class="num">1.00</td>');
    // qk: per layer, then the mean over layers (its table alone, so a failure does not print the images)
    const qkTable = section.slice(section.indexOf('analyze qk:'), section.indexOf('</table>', section.indexOf('analyze qk:')));
    expect(qkTable).toContain('<th>swin-t: similarity</th><th>spatialk: similarity</th>');
    expect(qkTable).toContain('<tr><td class="num">0</td><td>0.0</td><td class="num">96</td><td class="num">0.50</td><td class="num">0.80</td></tr>');
    expect(qkTable).toContain('<tr><td class="num">1</td><td>0.1</td><td class="num">96</td><td class="num">-0.25</td><td class="num">0.10</td></tr>');
    expect(qkTable).toContain('<tr><td class="num">mean</td><td></td><td class="num"></td><td class="num">0.13</td><td class="num">0.45</td></tr>');
  });

  it('md: the same tables and relative links to the PNGs that resolve from the report folder', async () => {
    const out = join(tmp, 'md', 'sub', 'report.md');
    const res = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', attn, qk, '--out', out, '--no-plots']);
    expect(res.exitCode).toBe(0);
    const md = readFileSync(out, 'utf8');
    expect(md).toContain('## Attention analysis');
    expect(md).toMatch(/\| swin-t \| linear \| 11 \(stage 3 block 1\) \| 2 \| 1 \| 2\.50 \| 0\.200 \| 1\.50 \|/);
    expect(md).toMatch(/\| 1 \| 0\.1 \| 96 \| -0\.25 \| 0\.10 \|/);
    const links = [...md.matchAll(/!\[(attention grid: demo\.jpg|qk similarity per layer)\]\(([^)]+)\)/g)].map((m) => m[2]!);
    expect(links).toEqual(['../../attn/attention-1-demo.png', '../../qk/qk.png']);
    for (const l of links) expect(readFileSync(resolve(dirname(out), l)).equals(readFileSync(PNG))).toBe(true);
  });

  it('json: the section data under "analysis"', async () => {
    const res = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', attn, qk, '--format', 'json']);
    expect(res.exitCode).toBe(0);
    const out = JSON.parse(res.stdout) as { ok: boolean; analysis: ReportAnalysis[] };
    expect(out.ok).toBe(true);
    expect(out.analysis.map((a) => a.kind)).toEqual(['attention', 'qk']);
    const [a, q] = out.analysis;
    if (a?.kind !== 'attention' || q?.kind !== 'qk') throw new Error('kinds');
    expect(a.backbone).toBe('swin');
    expect(a.grids).toEqual([{ image: '/data/demo.jpg', png: join(attn, 'attention-1-demo.png') }]);
    expect(a.models.map((m) => [m.label, m.keyType, m.charts, m.layer, m.heads, m.images])).toEqual([
      ['swin-t', 'linear', null, 11, 2, 1],
      ['spatialk', 'spatialk', 8, 11, 2, 1],
    ]);
    expect(a.models[0]!.entropyMean).toBeCloseTo(2.5, 12);
    expect(a.models[1]!.selfMean).toBeCloseTo(0.55, 12);
    expect(a.models[1]!.meanDistanceMean).toBeCloseTo(1.0, 12);
    expect(q.png).toBe(join(qk, 'qk.png'));
    expect(q.layers.map((l) => l.similarityMean)).toEqual([[0.5, 0.8], [-0.25, 0.1]]);
    expect(q.models.map((m) => m.similarityMean)).toEqual([0.125, 0.45]);
  });

  it('classification runs get the same section', async () => {
    const out = join(tmp, 'cls', 'report.html');
    const res = await runCli(['report', CLS_RUNS, '--analysis', attn, '--out', out, '--no-plots']);
    expect(res.exitCode).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<h2>Results: image classification');
    expect(html).toContain('<h2>Attention analysis</h2>');
    expect(html.includes(`<img src="${pngUri()}"`)).toBe(true);
    expect(html).not.toContain('analyze qk:');
  });

  it('a missing grid: a warning, the numbers still shown', async () => {
    const moved = join(tmp, 'attn-no-png');
    writeAttentionDir(moved);
    rmSync(join(moved, 'attention-1-demo.png'));
    const res = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', moved, '--format', 'md']);
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toContain('| 2.50 | 0.200 |');
    expect(res.stdout).not.toContain('![attention grid');
    expect(res.stdout + res.stderr).toMatch(/the attention grid of \/data\/demo\.jpg \(attention-1-demo\.png\) is missing/);
  });

  describe('bad input exits 2 with one line naming the folder and what is accepted', () => {
    it('a folder without attention.json or qk.json (a run directory)', async () => {
      const dir = join(RUNS, 'swin-s0');
      const res = await runCli(['report', dir, '--analysis', dir]);
      expect(res.exitCode).toBe(2);
      expect(oneLine(res.stderr)).toEqual([
        `error: --analysis ${JSON.stringify(dir)} holds neither attention.json nor qk.json; accepted: an output folder of mkey-det analyze attention --out (holding attention.json) or analyze qk --out (holding qk.json)`,
      ]);
    });

    it('a missing folder, a file', async () => {
      const missing = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', join(tmp, 'nope')]);
      expect(missing.exitCode).toBe(2);
      expect(oneLine(missing.stderr)).toEqual([expect.stringMatching(/^error: --analysis ".*nope": no such folder; accepted: an output folder of mkey-det analyze attention/)]);
      const file = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', join(qk, 'qk.json')]);
      expect(file.exitCode).toBe(2);
      expect(oneLine(file.stderr)).toEqual([expect.stringMatching(/^error: --analysis ".*qk\.json" is a file, not a folder; accepted: /)]);
    });

    it('a FIFO as qk.json: refused at once (a read would block for ever); a FIFO as qk.png: the picture missing', async () => {
      const fifoDir = join(tmp, 'fifo-qk');
      mkdirSync(fifoDir, { recursive: true });
      execFileSync('mkfifo', [join(fifoDir, 'qk.json')]);
      const res = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', fifoDir], { timeout: 60_000 });
      expect(res.exitCode).toBe(2);
      expect(oneLine(res.stderr)).toEqual([expect.stringMatching(/^error: --analysis ".*fifo-qk": qk\.json is not readable JSON \(.*is not a regular file.*\); accepted: /)]);
      const pngFifo = join(tmp, 'fifo-png');
      cpSync(qk, pngFifo, { recursive: true });
      rmSync(join(pngFifo, 'qk.png'));
      execFileSync('mkfifo', [join(pngFifo, 'qk.png')]);
      const md = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', pngFifo, '--format', 'html', '--out', join(tmp, 'fifo.html')], { timeout: 60_000 });
      expect(md.exitCode, md.stderr).toBe(0);
      expect(md.stderr).toMatch(/qk\.png is missing; the numbers are still in the table/);
    });

    it('an attention.json that is not analyze attention\'s output, also with --json', async () => {
      const bad = join(tmp, 'bad');
      mkdirSync(bad, { recursive: true });
      writeFileSync(join(bad, 'attention.json'), JSON.stringify({ models: [] }));
      const res = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', bad]);
      expect(res.exitCode).toBe(2);
      expect(oneLine(res.stderr)).toEqual([expect.stringMatching(/^error: --analysis ".*bad": attention\.json is not mkey-det analyze attention's output \(.*\); accepted: /)]);
      const js = await runCli(['report', join(RUNS, 'swin-s0'), '--analysis', bad, '--json']);
      expect(js.exitCode).toBe(2);
      const out = JSON.parse(js.stdout) as { ok: boolean; error: { exitCode: number; message: string } };
      expect(out.ok).toBe(false);
      expect(out.error.exitCode).toBe(2);
      expect(out.error.message).toMatch(/attention\.json is not mkey-det analyze attention's output/);
    });
  });
});

describe('mkey-det report --analysis of ViT runs: the rollout, one block, and qk labelled as a ViT', () => {
  let tmp: string;
  const runs: string[] = [];
  const out = (name: string) => join(tmp, name);

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkey-report-analysis-vit-'));
    runs.push(join(tmp, 'vit'), join(tmp, 'vit-vanillak'));
    // two tiny ViTs (3 blocks, 2 heads, 32 px, 8 px patches: 17 tokens) as `mkey-det pretrain` leaves
    // a run: an mmpretrain config.py and a classifier checkpoint (as test/analyze.test.ts makes them)
    const script = [
      'import sys, os, torch',
      'import mkey_det',
      'from mmengine.config import Config',
      'from mkey_det.models.backbones.vit_mkey import VisionTransformerMKey',
      'arch = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)',
      'for seed, (run, key) in enumerate(zip(sys.argv[1:], ["linear", "vanillak"])):',
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
    execFileSync(testPython, ['-c', script, ...runs], { stdio: 'pipe' });
    // the real commands write the folders the report reads
    for (const args of [
      ['attention', ...runs, '--image', PNG, '--labels', 'vit,vanillak', '--out', out('rollout')],
      ['attention', ...runs, '--image', PNG, '--labels', 'vit,vanillak', '--method', 'block', '--layer', '1', '--out', out('block')],
      ['qk', ...runs, '--labels', 'vit,vanillak', '--out', out('qk')],
    ]) {
      const res = await runCli(['analyze', ...args]);
      expect(res.exitCode, `analyze ${args.join(' ')}\n${res.stderr}`).toBe(0);
    }
  }, 300_000);
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("says what analyze wrote: the rollout of blocks 0..2 (not 'block 2 of 0..2'), block 1 alone, qk per ViT block with its tokens (no stage.block)", async () => {
    // what the commands wrote, read back: the method, the layer, the qk layers (stage 0, 17 tokens)
    const rollout = JSON.parse(readFileSync(join(out('rollout'), 'attention.json'), 'utf8')) as { backbone: string; method: string; images: { models: { method: string; layer: number; layers: number }[] }[] };
    expect([rollout.backbone, rollout.method, rollout.images[0]!.models[0]!.layer, rollout.images[0]!.models[0]!.layers]).toEqual(['vit', 'rollout', 2, 3]);
    const qkJson = JSON.parse(readFileSync(join(out('qk'), 'qk.json'), 'utf8')) as { backbone: string; models: { layers: { stage: number; block: number; tokens: number }[] }[] };
    expect(qkJson.backbone).toBe('vit');
    expect(qkJson.models[0]!.layers.map((l) => [l.stage, l.block, l.tokens])).toEqual([[0, 0, 17], [0, 1, 17], [0, 2, 17]]);

    const res = await runCli(['report', join(CLS_RUNS, 'vit-s-vanillak-c2-s0'), '--analysis', out('rollout'), out('block'), out('qk'), '--format', 'md', '--no-plots']);
    expect(res.exitCode, res.stderr).toBe(0);
    const md = res.stdout;
    console.log(md.slice(md.indexOf('## Attention analysis')));
    expect(md).toContain(`### analyze attention: ${out('rollout')} (ViT, class token, joint attention by rollout)`);
    expect(md).toMatch(/\| vit \| linear \| 2 \(rollout of blocks 0\.\.2, block 2 per head\) \| 2 \| 1 \|/);
    expect(md).toMatch(/\| vanillak \| vanillak, 2 charts, cb_mode eq4 \| 2 \(rollout of blocks 0\.\.2, block 2 per head\) \| 2 \| 1 \|/);
    expect(md).toContain("joint-attention row");
    expect(md).toContain(`### analyze attention: ${out('block')} (ViT, class token, one block's own attention)`);
    expect(md).toMatch(/\| vit \| linear \| 1 \(block 1 of 0\.\.2\) \| 2 \| 1 \|/);
    // qk: a ViT's layers are its blocks over all 17 tokens, no Swin stage.block column
    const qkSection = md.slice(md.indexOf(`### analyze qk: ${out('qk')}`));
    expect(qkSection.startsWith(`### analyze qk: ${out('qk')} (ViT, blocks over all tokens)`)).toBe(true);
    expect(qkSection).toMatch(/\| Block \| Tokens \| Width \| vit: similarity \| vanillak: similarity \|/);
    expect(qkSection).toMatch(/\| 2 \| 17 \| 32 \| -?\d\.\d\d \| -?\d\.\d\d \|/);
    expect(qkSection).not.toContain('Stage.block');

    // the JSON report carries the same: backbone and method
    const js = JSON.parse((await runCli(['report', join(CLS_RUNS, 'vit-s-vanillak-c2-s0'), '--analysis', out('rollout'), out('qk'), '--format', 'json'])).stdout) as { analysis: ReportAnalysis[] };
    const [a, q] = js.analysis;
    if (a?.kind !== 'attention' || q?.kind !== 'qk') throw new Error('kinds');
    expect([a.backbone, a.method, a.models[0]!.where]).toEqual(['vit', 'rollout', 'rollout of blocks 0..2, block 2 per head']);
    expect([q.backbone, q.layers.map((l) => l.tokens)]).toEqual(['vit', [17, 17, 17]]);
  }, 120_000);
});
