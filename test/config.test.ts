import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InheritedListNeeded, renderMmdetConfig } from '../src/core/config/render.js';
import { TABLE3_CONFIGS, renderTable3Config } from '../src/core/config/table3.js';
import { parseCfgValue, PyTuple, toPythonLiteral } from '../src/core/config/python-literal.js';
import { CB_KEY_TYPES, backboneVariant } from '../src/core/experiment.js';
import { experiment } from './helpers/experiment.js';
import { renderMmpretrainConfig } from '../src/core/config/render-classification.js';
import { pretrainVariant, type PretrainExperiment } from '../src/core/pretrain/experiment.js';
import { TOOL_VERSION } from '../src/version.js';
import { openBridge, type PythonBridge } from '../src/python/bridge.js';
import { execa } from 'execa';
import { configCommandLine, shellQuote } from '../src/core/config/command-line.js';
import { cliPath, repoRoot, runCli, testPython } from './helpers/cli.js';

type Summary = {
  data_root: string;
  train_data_root: string;
  train_ann_file: string;
  train_img: string;
  val_ann_file: string;
  classes: string[];
  backbone: Record<string, unknown>;
  num_classes: number;
  mkey_experiment: Record<string, unknown>;
  train_cfg: Record<string, unknown>;
  param_scheduler: Record<string, unknown>[];
  optimizer: Record<string, unknown>;
  optim_wrapper: Record<string, unknown>;
  custom_imports: { imports: string[] };
};


let bridge: PythonBridge;
let tmp: string;
beforeAll(async () => {
  bridge = await openBridge();
  tmp = mkdtempSync(join(tmpdir(), 'mkey-config-'));
});
afterAll(async () => {
  await bridge.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function loadWithMmengine(source: string, name = 'cfg.py'): Promise<Summary> {
  const path = join(tmp, name);
  writeFileSync(path, source);
  return bridge.call<Summary>('config.summary', { config_path: path });
}

describe('python literals', () => {
  it('writes nested data as Python source', () => {
    expect(toPythonLiteral({ a: 1, b: [true, null], c: new PyTuple([0.9, 0.999]), 'not-ident': 'x' })).toBe(
      "{'a': 1, 'b': [True, None], 'c': (0.9, 0.999), 'not-ident': 'x'}",
    );
    expect(toPythonLiteral(new PyTuple(['one']))).toBe("('one',)");
    expect(() => toPythonLiteral(Number.NaN)).toThrow(/finite/);
  });

  it('parses --cfg-options values like mmengine DictAction', () => {
    expect(parseCfgValue('3')).toBe(3);
    expect(parseCfgValue('1e-4')).toBe(0.0001);
    expect(parseCfgValue('True')).toBe(true);
    expect(parseCfgValue('None')).toBe(null);
    expect(parseCfgValue('[1,2,[3,4]]')).toEqual([1, 2, [3, 4]]);
    expect(parseCfgValue('(1,2)')).toBeInstanceOf(PyTuple);
    expect(parseCfgValue("__import__('os').system('x')")).toBe("__import__('os').system('x')");
  });

  it('gives what mmengine\'s own DictAction gives, value for value (the written config loaded by mmengine)', async () => {
    const values = ['3', '-2', '+3', '1_000', '1e-4', '0.5', '.5', '-inf', 'nan', 'True', 'true', 'TRUE', 'False', 'false',
      'None', 'none', 'null', '[1,2,[3,4]]', '(1,2)', "'quoted'", 'a,b', 'abc', '[a,b]', "__import__('os').system('x')"];
    const dir = mkdtempSync(join(tmpdir(), 'mkey-dictaction-'));
    try {
      const cfg = join(dir, 'values.py');
      writeFileSync(cfg, values.map((v, i) => `k${i} = ${toPythonLiteral(parseCfgValue(v))}`).join('\n') + '\n');
      const script = [
        'import argparse, json, math, sys',
        'from mmengine.config import Config, DictAction',
        'values = json.loads(sys.argv[2])',
        'action = DictAction(option_strings=["--cfg-options"], dest="x"); ns = argparse.Namespace()',
        'action(None, ns, [f"k{i}={v}" for i, v in enumerate(values)])',
        'ours = Config.fromfile(sys.argv[1])',
        'same = lambda a, b: (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or (type(a) is type(b) or {type(a), type(b)} <= {int, float}) and a == b',
        'print(json.dumps([v for i, v in enumerate(values) if not same(ours[f"k{i}"], ns.x[f"k{i}"])]))',
      ].join('\n');
      const res = await execa(testPython, ['-c', script, cfg, JSON.stringify(values)], { reject: false });
      expect(res.exitCode, String(res.stderr)).toBe(0);
      expect(JSON.parse(String(res.stdout).trim().split('\n').pop()!)).toEqual([]); // values read differently
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('generated configs load with mmengine', () => {
  it('keeps hostile strings as exactly those strings (data, never code)', async () => {
    const marker = join(tmp, 'PWNED');
    const evil = [
      `/data/it's "quoted"\\back\\slash\nnew line\ttab/`,
      `'); import os; os.system('touch ${marker}'); ('`,
      `__import__('os').system('touch ${marker}')`,
      `{{ fileDirname }}/{{$HOME}}/{{_base_.data_root}}/ü€😀/`,
    ];
    for (const [i, root] of evil.entries()) {
      const src = renderMmdetConfig(
        experiment({
          data: { kind: 'dir', path: root },
          cfgOptions: [['model.backbone.drop_path_rate', '0.1'], ['work_dir', `x'); os.system('touch ${marker}`]],
        }),
        {
          toolVersion: TOOL_VERSION,
          dataset: { root, trainAnn: 'a.json', valAnn: 'b.json', trainImg: "img's/", valImg: 'v/', classes: ["c'1", 'c\\2', '{{x}}'] },
        },
      );
      const s = await loadWithMmengine(src, `evil${i}.py`);
      expect(s.data_root).toBe(root);
      expect(s.train_data_root).toBe(root);
      expect(s.train_img).toBe("img's/");
      expect(s.classes).toEqual(["c'1", 'c\\2', '{{x}}']);
      expect(s.num_classes).toBe(3);
      expect(s.mkey_experiment.data).toBe(root);
      expect(s.backbone.drop_path_rate).toBe(0.1);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('writes the backbone, schedule and data of each schedule', async () => {
    const s3x = await loadWithMmengine(renderMmdetConfig(experiment(), { toolVersion: TOOL_VERSION }), '3x.py');
    expect(s3x.backbone).toMatchObject({ type: 'SwinTransformerMKey', key_type: 'spatialk', num_charts: 8, embed_dims: 96, depths: [2, 2, 6, 2], window_size: 7 });
    expect(s3x.custom_imports.imports).toEqual(['mkey_det']);
    expect(s3x.train_cfg.max_epochs).toBe(36);
    expect(s3x.param_scheduler[1]).toMatchObject({ type: 'MultiStepLR', milestones: [27, 33] });
    expect(s3x.optimizer).toMatchObject({ type: 'AdamW', lr: 0.0001, weight_decay: 0.05 });
    expect(s3x.data_root).toBe('data/coco/');

    const paper = await loadWithMmengine(renderMmdetConfig(experiment({ schedule: 'paper-3x' }), { toolVersion: TOOL_VERSION }), 'paper.py');
    expect(paper.param_scheduler).toEqual([
      expect.objectContaining({ type: 'LinearLR', start_factor: 1.0, end_factor: 0.01, begin: 0, end: 36, by_epoch: true }),
    ]);

    const iters = await loadWithMmengine(renderMmdetConfig(experiment({ schedule: 'short', maxIters: 5 }), { toolVersion: TOOL_VERSION }), 'iters.py');
    expect(iters.train_cfg).toEqual({ type: 'IterBasedTrainLoop', max_iters: 5, val_interval: 5 });

    const base = await loadWithMmengine(renderMmdetConfig(experiment({ backbone: backboneVariant('swin-t') }), { toolVersion: TOOL_VERSION }), 'base.py');
    expect(base.backbone.key_type).toBe('linear');

    // --amp: what MMDetection's tools/train.py --amp sets, with the dtype chosen.
    expect(s3x.optim_wrapper.type).toBe('OptimWrapper');
    const fp16 = await loadWithMmengine(renderMmdetConfig(experiment({ amp: 'fp16' }), { toolVersion: TOOL_VERSION }), 'fp16.py');
    expect(fp16.optim_wrapper).toMatchObject({ type: 'AmpOptimWrapper', dtype: 'float16', loss_scale: 'dynamic' });
    const bf16 = await loadWithMmengine(renderMmdetConfig(experiment({ amp: 'bf16' }), { toolVersion: TOOL_VERSION }), 'bf16.py');
    expect(bf16.optim_wrapper).toMatchObject({ type: 'AmpOptimWrapper', dtype: 'bfloat16' });
    expect(bf16.optimizer).toMatchObject({ type: 'AdamW', lr: 0.0001 });
  });
});

describe('GPU fast paths: --attn-impl, --key-order, --tf32', () => {
  it('writes them as backbone fields and a hook, only when given', async () => {
    const plain = renderMmdetConfig(experiment(), { toolVersion: TOOL_VERSION });
    expect(plain).not.toMatch(/attn_impl|key_order|MkeyTF32Hook/);

    const source = renderMmdetConfig(experiment({ attnImpl: 'sdpa', keyOrder: 'auto', tf32: true }), { toolVersion: TOOL_VERSION });
    const s = await loadWithMmengine(source, 'fast.py');
    expect(s.backbone).toMatchObject({ type: 'SwinTransformerMKey', key_type: 'spatialk', attn_impl: 'sdpa', key_order: 'auto' });
    expect(source).toMatch(/custom_hooks = \[\s*dict\(type='MkeyTF32Hook'\),\s*dict\(type='MkeyProgressHook'/);

    // the linear key has no order to choose (as --charts): only attn_impl is written
    const base = await loadWithMmengine(renderMmdetConfig(experiment({ backbone: backboneVariant('swin-t'), attnImpl: 'sdpa', keyOrder: 'paper' }), { toolVersion: TOOL_VERSION }), 'fast-base.py');
    expect(base.backbone).toMatchObject({ key_type: 'linear', attn_impl: 'sdpa' });
    expect(base.backbone).not.toHaveProperty('key_order');
  });

  it('pretrain configs: Swin-T takes all three, ViT the key order and TF32', () => {
    const layout = { root: '/data/x', trainPrefix: 'train', valPrefix: 'val', classes: ['a', 'b'] };
    const exp = (name: string): PretrainExperiment => ({
      backbone: pretrainVariant(name), charts: 4, recipe: 'demo', data: { kind: 'demo' }, batchSize: 2, seed: 0, imgSize: 64,
      amp: false, cfgOptions: [], attnImpl: name.startsWith('swin') ? 'sdpa' : undefined, keyOrder: 'auto', tf32: true,
    });
    const swin = renderMmpretrainConfig(exp('swin-t-spatialk'), { data: layout, toolVersion: TOOL_VERSION });
    expect(swin).toMatch(/attn_impl='sdpa'/);
    expect(swin).toMatch(/key_order='auto'/);
    expect(swin).toMatch(/custom_hooks = \[\s*dict\(type='mmdet.MkeyTF32Hook'\),\s*dict\(type='mmdet.MkeyProgressHook'/);
    const vit = renderMmpretrainConfig(exp('vit-s-vanillak'), { data: layout, toolVersion: TOOL_VERSION });
    expect(vit).not.toMatch(/attn_impl/);
    expect(vit).toMatch(/key_order='auto'/);
  });

  it('refuses bad values with one line and exit 2', async () => {
    const impl = await runCli(['config', '--data', 'coco', '--attn-impl', 'flash']);
    expect(impl.exitCode).toBe(2);
    expect(impl.stderr.trim().split('\n')[0]).toBe('error: invalid --attn-impl "flash": accepted: eager, sdpa');
    const order = await runCli(['config', '--data', 'coco', '--key-order', 'folded']);
    expect(order.exitCode).toBe(2);
    expect(order.stderr.trim().split('\n')[0]).toBe('error: invalid --key-order "folded": accepted: paper, fast, auto');
    const vit = await runCli(['pretrain', '--backbone', 'vit-s-spatialk', '--attn-impl', 'sdpa', '--json']);
    expect(vit.exitCode).toBe(2);
    expect(JSON.parse(vit.stdout).error.message).toContain("--attn-impl sdpa with --backbone vit-s-spatialk: it chooses Swin-T's window attention");
    const ok = await runCli(['config', '--data', 'coco', '--attn-impl', 'sdpa', '--key-order', 'auto', '--tf32']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/attn_impl='sdpa',\s+key_order='auto'/);
  });
});

describe('configs/ (Table 3 rows)', () => {
  it('regenerating them gives the same files', () => {
    expect(TABLE3_CONFIGS.map((c) => c.file).sort()).toEqual(['mask-rcnn_swin-t-spatialk-c8_fpn_3x_coco.py', 'mask-rcnn_swin-t_fpn_3x_coco.py']);
    for (const entry of TABLE3_CONFIGS) {
      const onDisk = readFileSync(join(repoRoot, 'configs', entry.file), 'utf8');
      expect(renderTable3Config(entry, TOOL_VERSION)).toBe(onDisk);
    }
  });

  it('the committed files load with mmengine and name the Table 3 backbones', async () => {
    const spatial = await bridge.call<Summary>('config.summary', { config_path: join(repoRoot, 'configs', TABLE3_CONFIGS[1]!.file) });
    expect(spatial.backbone).toMatchObject({ type: 'SwinTransformerMKey', key_type: 'spatialk', num_charts: 8 });
    const baseline = await bridge.call<Summary>('config.summary', { config_path: join(repoRoot, 'configs', TABLE3_CONFIGS[0]!.file) });
    expect(baseline.backbone).toMatchObject({ type: 'SwinTransformerMKey', key_type: 'linear' });
    expect(baseline.num_classes).toBe(80);
  });
});

describe('mkey-det config (CLI)', () => {
  it('prints a config and refuses bad values with one line and exit 2', async () => {
    const ok = await runCli(['config', '--backbone', 'swin-t-simplek', '--charts', '4', '--data', 'coco']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/key_type='simplek',\s+num_charts=4/);

    const bad = await runCli(['config', '--backbone', 'swin-b', '--data', 'coco']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split('\n')[0]).toBe(
      'error: invalid --backbone "swin-b": accepted: swin-t, swin-t-spatialk, swin-t-kua, swin-t-simplek, swin-t-vanillak',
    );
    const charts = await runCli(['config', '--charts', '0', '--data', 'coco']);
    expect(charts.exitCode).toBe(2);
    expect(charts.stderr).toContain('error: invalid --charts "0": --charts must be an integer between 1 and 64');
    const frac = await runCli(['config', '--charts', '2.5', '--data', 'coco']);
    expect(frac.exitCode).toBe(2);
    const sched = await runCli(['config', '--schedule', '9x', '--data', 'coco']);
    expect(sched.stderr).toContain('invalid --schedule "9x": accepted: 3x, paper-3x, short');
    const cfg = await runCli(['config', '--data', 'coco', '--cfg-options', 'not a key=1']);
    expect(cfg.exitCode).toBe(2);
    expect(cfg.stderr).toContain('invalid --cfg-options "not a key=1"');
  });

  it('refuses --cfg-options keys that would load code, and keywords as keys, naming the key', async () => {
    // A _base_ or custom_imports pointing at this file would execute it and create the marker.
    const marker = join(tmp, 'base-marker');
    const evil = join(tmp, 'evil_base.py');
    writeFileSync(evil, `open(${JSON.stringify(marker)}, 'w').write('ran')\n`);
    const out = join(tmp, 'refused.py');
    for (const [option, message] of [
      [`_base_=${evil}`, '--cfg-options key "_base_" is refused: it makes mmengine load code'],
      [`custom_imports.imports=[${JSON.stringify(evil)}]`, '--cfg-options key "custom_imports.imports" is refused'],
      ['model.__class__=1', '--cfg-options key "model.__class__" is refused'],
      ['class=1', '--cfg-options key "class": "class" is a Python keyword'],
      ['model.backbone.lambda=1', '"lambda" is a Python keyword'],
    ] as const) {
      const res = await runCli(['config', '--data', 'coco', '--cfg-options', option, '--out', out]);
      expect(res.exitCode, option).toBe(2);
      expect(res.stderr.trim().split('\n')[0]).toContain(message);
    }
    expect(existsSync(out)).toBe(false);
    expect(existsSync(marker)).toBe(false);
  });

  it('refuses --cfg-options type names that are not registered (mmengine would import and call them), in every command', async () => {
    // mmengine's Registry.get falls back to importing a dotted name: this pair ran `touch MARKER`.
    const marker = join(tmp, 'TYPE_MARKER');
    const attack = ['--cfg-options', 'default_hooks.timer.type=os.system', `default_hooks.timer.command=touch ${marker}`];
    const out = join(tmp, 'typed.py');
    const cases: [string[], string][] = [
      [['config', '--data', 'coco', ...attack, '--out', out], 'default_hooks.timer.type="os.system"'],
      [['train', '--data', 'demo', '--max-iters', '1', '--work-dir', join(tmp, 'typed-run'), ...attack], 'default_hooks.timer.type="os.system"'],
      [['test', '--checkpoint', join(tmp, 'any.pth'), ...attack], 'default_hooks.timer.type="os.system"'],
      [['pretrain', '--data', 'demo', '--max-iters', '1', '--work-dir', join(tmp, 'typed-pre'), ...attack], 'default_hooks.timer.type="os.system"'],
      // (undotted module names, scoped names not registered there, scopes: python_shim/tests/test_cfg_types.py)
      [['config', '--data', 'coco', '--cfg-options', 'default_scope=os', '--out', out], 'default_scope="os" is refused: not a registry scope'],
    ];
    for (const [args, named] of cases) {
      const res = await runCli(args);
      expect(res.exitCode, args.join(' ')).toBe(2);
      const first = res.stderr.trim().split('\n')[0]!;
      expect(first).toContain(`--cfg-options ${named}`);
      expect(first).toContain('is refused');
    }
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(tmp, 'typed-run'))).toBe(false);
  });

  it('takes several key=value after one --cfg-options (as DictAction) and registered type names, plain or scoped', async () => {
    const out = join(tmp, 'several.py');
    const res = await runCli([
      'config', '--data', 'coco', '--out', out,
      '--cfg-options', 'model.roi_head.bbox_head.loss_cls.type=mmdet.FocalLoss', 'model.test_cfg.rcnn.max_per_img=50',
      '--cfg-options', 'default_hooks.timer.type=IterTimerHook',
    ]);
    expect(res.exitCode, res.stderr).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toContain("type='mmdet.FocalLoss'");
    expect(text).toMatch(/max_per_img=50/);
    expect(text).toContain("type='IterTimerHook'");
  });

  it('does not overwrite an existing --out without --force', async () => {
    const out = join(tmp, 'exists.py');
    writeFileSync(out, '# mine\n');
    const res = await runCli(['config', '--data', 'coco', '--out', out]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('already exists; refusing to overwrite it');
    expect(readFileSync(out, 'utf8')).toBe('# mine\n');
    const forced = await runCli(['config', '--data', 'coco', '--out', out, '--force', '--json']);
    expect(forced.exitCode).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ ok: true, path: out, backbone: 'swin-t-spatialk', charts: 8 });
    // --force replaces a file, never a directory: refused before any work.
    const dir = join(tmp, 'a-dir');
    mkdirSync(dir);
    const onDir = await runCli(['config', '--data', 'coco', '--out', dir, '--force']);
    expect(onDir.exitCode).toBe(2);
    expect(onDir.stderr.split('\n')[0]).toBe(`error: ${JSON.stringify(dir)} exists and is not a regular file (a directory?); give a file name`);
  });
});

describe('--cfg-options into a list the generated config inherits', () => {
  it('needs the list from the base config, then writes it whole with the item changed (tuples kept)', () => {
    const exp = experiment({ data: { kind: 'coco' }, cfgOptions: [['train_dataloader.dataset.pipeline.1.scale', '(512,512)']] });
    expect(() => renderMmdetConfig(exp, { toolVersion: TOOL_VERSION })).toThrow(InheritedListNeeded);
    const base = [{ type: 'LoadImageFromFile', crop: { __tuple__: [1, 2] } }, { type: 'Resize', scale: { __tuple__: [1333, 800] }, keep_ratio: true }];
    const src = renderMmdetConfig(exp, { toolVersion: TOOL_VERSION, inherited: { 'train_dataloader.dataset.pipeline': base } });
    const flat = src.replace(/\s+/g, '').replace(/,([)\]])/g, '$1');
    expect(flat).toContain("pipeline=[dict(type='LoadImageFromFile',crop=(1,2)),dict(type='Resize',scale=(512,512),keep_ratio=True)]");
    const notList = experiment({ data: { kind: 'coco' }, cfgOptions: [['model.0', '1']] });
    expect(() => renderMmdetConfig(notList, { toolVersion: TOOL_VERSION, inherited: { model: { type: 'MaskRCNN' } } })).toThrow(
      '--cfg-options model.0: "model" is not a list in the base config either',
    );
  });

  it('gives what tools/train.py --cfg-options gives on the merged config (mmengine loads both)', async () => {
    const out = join(tmp, 'inherited-list.py');
    const res = await runCli(['config', '--data', 'coco', '--cfg-options', 'train_dataloader.dataset.pipeline.2.prob=0.25', '--out', out]);
    expect(res.exitCode, res.stderr).toBe(0);
    const plain = join(tmp, 'inherited-plain.py');
    expect((await runCli(['config', '--data', 'coco', '--out', plain])).exitCode).toBe(0);
    const script = [
      'import argparse, json, sys',
      'from mmengine.config import Config, DictAction',
      'ours = Config.fromfile(sys.argv[1])',
      'ref = Config.fromfile(sys.argv[2])',
      'p = argparse.ArgumentParser(); p.add_argument("--cfg-options", nargs="+", action=DictAction)',
      'ref.merge_from_dict(p.parse_args(["--cfg-options", "train_dataloader.dataset.pipeline.2.prob=0.25"]).cfg_options)',
      'print(json.dumps([ours.train_dataloader.dataset.pipeline == ref.train_dataloader.dataset.pipeline, ours.train_dataloader.dataset.pipeline[2]]))',
    ].join('\n');
    const py = await execa(testPython, ['-c', script, out, plain], { cwd: repoRoot });
    const [same, item] = JSON.parse(py.stdout.trim().split('\n').pop()!) as [boolean, { type: string; prob: number }];
    expect(item).toEqual({ type: 'RandomFlip', prob: 0.25 });
    expect(same).toBe(true);
    // an index past the base list's end, named with the list's length
    const bad = await runCli(['config', '--data', 'coco', '--cfg-options', 'train_dataloader.dataset.pipeline.9.prob=0.5']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split('\n')[0]).toMatch(/--cfg-options train_dataloader\.dataset\.pipeline\.9\.prob: "9" is not an index of that list \(it has \d+ items\)/);
  });
});

/** The "# Regenerate with: ..." command in the header of a generated config. */
function regenerateLine(source: string): string {
  const line = source.split('\n').find((l) => l.startsWith('# Regenerate with: '));
  expect(line, 'no "Regenerate with" line in the header').toBeDefined();
  return line!.slice('# Regenerate with: '.length);
}

/** Runs that line in bash as a user would paste it (the built CLI for `mkey-det`), adding `-o out`. */
async function runRegenerateLine(line: string, out: string, cwd: string) {
  expect(line.startsWith('mkey-det config ')).toBe(true);
  const command = `node ${shellQuote(cliPath)} ${line.slice('mkey-det '.length)} -o ${shellQuote(out)}`;
  return execa('bash', ['-c', command], { cwd, reject: false });
}

describe('the "Regenerate with" line of a generated config', () => {
  it('shell-quotes values so that bash gives them back unchanged', async () => {
    const values = ['plain/path-1.pth', 'with space', "it's", 'a"b$HOME`x`\\', 'tab\there\nnewline', '{{ fileDirname }}/{{$HOME}}', 'ü€😀', '~/x', '*.pth'];
    for (const v of values) {
      const res = await execa('bash', ['-c', `printf '%s' ${shellQuote(v)}`]);
      expect(res.stdout, v).toBe(v);
      expect(shellQuote(v), v).not.toMatch(/[\r\n]|\{\{|\}\}/);
    }
  });

  it('is the command that writes the same config, byte for byte (every option that changes it)', async () => {
    const first = join(tmp, 'regen-1.py');
    const second = join(tmp, 'regen-2.py');
    const elsewhere = mkdtempSync(join(tmp, 'cwd-'));
    const args = [
      'config', '--backbone', 'swin-t-kua', '--charts', '4', '--data', 'coco', '--schedule', 'paper-3x', '--batch-size', '4', '--seed', '7',
      // relative, and not there: config does not need the file; the line names it absolute
      '--pretrained', 'ckpts/swin tiny.pth',
      '--max-epochs', '3', '--img-scale', '640x480', '--amp', 'bf16', '--attn-impl', 'sdpa', '--key-order', 'paper', '--tf32', '--tensorboard',
      '--cfg-options', 'model.backbone.drop_path_rate=0.3',
      '--cfg-options', "work_dir=runs/it's {{$MKEY_SURELY_UNSET:}}",
      '-o', first,
    ];
    const made = await runCli(args, { cwd: elsewhere });
    expect(made.exitCode, made.stderr).toBe(0);
    const source = readFileSync(first, 'utf8');
    const line = regenerateLine(source);
    expect(source.split('\n')[2]).toBe(`# Regenerate with: ${line}`);
    for (const part of ['--backbone swin-t-kua', '--charts 4', '--data coco', '--schedule paper-3x', '--batch-size 4', '--seed 7', '--max-epochs 3',
      '--img-scale 640x480', '--amp bf16', '--attn-impl sdpa', '--key-order paper', '--tf32', '--tensorboard', '--cfg-options model.backbone.drop_path_rate=0.3']) {
      expect(line).toContain(part);
    }
    expect(line).toContain(`--pretrained ${shellQuote(join(elsewhere, 'ckpts/swin tiny.pth'))}`);

    // pasted in another folder: the same bytes
    const again = await runRegenerateLine(line, second, repoRoot);
    expect(again.exitCode, String(again.stderr)).toBe(0);
    expect(readFileSync(second, 'utf8')).toBe(source);

    // the comment is safe from mmengine's {{ }} substitution: the file loads, values intact
    const s = await bridge.call<Summary>('config.summary', { config_path: first });
    expect(s.backbone).toMatchObject({ key_type: 'kua', num_charts: 4, attn_impl: 'sdpa', key_order: 'paper', drop_path_rate: 0.3 });
  });

  it('leaves out what the config does not depend on, and reproduces the defaults', async () => {
    const first = join(tmp, 'regen-linear-1.py');
    const second = join(tmp, 'regen-linear-2.py');
    const made = await runCli(['config', '--backbone', 'swin-t', '--charts', '4', '--key-order', 'auto', '--data', 'coco', '-o', first]);
    expect(made.exitCode, made.stderr).toBe(0);
    const line = regenerateLine(readFileSync(first, 'utf8'));
    expect(line).toBe('mkey-det config --backbone swin-t --data coco --schedule 3x');
    const again = await runRegenerateLine(line, second, repoRoot);
    expect(again.exitCode, String(again.stderr)).toBe(0);
    expect(readFileSync(second, 'utf8')).toBe(readFileSync(first, 'utf8'));
  });

  it("configs/ name their command: run in the repository root, it writes the file (the checkpoint path made absolute)", async () => {
    for (const entry of TABLE3_CONFIGS) {
      const onDisk = readFileSync(join(repoRoot, 'configs', entry.file), 'utf8');
      const line = regenerateLine(onDisk);
      expect(line).toBe(configCommandLine(entry.experiment));
      expect(line).toContain('--pretrained checkpoints/swin_tiny_patch4_window7_224.pth');
      const out = join(tmp, `table3-${entry.file}`);
      const res = await runRegenerateLine(line, out, repoRoot);
      expect(res.exitCode, String(res.stderr)).toBe(0);
      expect(readFileSync(out, 'utf8').replaceAll(join(repoRoot, 'checkpoints') + '/', 'checkpoints/')).toBe(onDisk);
    }
  });
});

describe('config --backbone swin-t (the linear key has no charts)', () => {
  it('reports no charts: none in the message, null in JSON, a warning for an explicit --charts', async () => {
    const out = join(tmp, 'linear.py');
    const text = await runCli(['config', '--backbone', 'swin-t', '--data', 'coco', '-o', out]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stderr).toContain('wrote swin-t (3x) config');
    expect(text.stderr).not.toMatch(/charts/);
    const json = await runCli(['config', '--backbone', 'swin-t', '--data', 'coco', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, backbone: 'swin-t', charts: null, schedule: '3x' });
    const given = await runCli(['config', '--backbone', 'swin-t', '--charts', '4', '--data', 'coco', '-o', out, '--force', '--json']);
    expect(given.exitCode).toBe(0);
    expect(JSON.parse(given.stdout)).toMatchObject({ charts: null });
    expect(given.stderr.trim().split('\n')).toEqual(['warning: --charts has no effect on swin-t (linear key)']);
    // a manifold key keeps its count
    const manifold = await runCli(['config', '--backbone', 'swin-t-spatialk', '--charts', '4', '--data', 'coco', '--json']);
    expect(JSON.parse(manifold.stdout)).toMatchObject({ backbone: 'swin-t-spatialk', charts: 4 });
  });
});

describe('custom_imports: a key variant outside mkey_det is imported by the config, in both renderers', () => {
  const layout = { root: '/data/x', trainPrefix: 'train', valPrefix: 'val', classes: ['a', 'b'] };
  const imports = (text: string): string => /custom_imports = (.*)/.exec(text)![1]!;
  const detection = (pythonModule: string): string =>
    imports(renderMmdetConfig(experiment({ backbone: { ...backboneVariant('swin-t-spatialk'), pythonModule } }), { toolVersion: TOOL_VERSION }));
  const classification = (pythonModule: string): string =>
    imports(
      renderMmpretrainConfig(
        {
          backbone: { ...pretrainVariant('swin-t-spatialk'), pythonModule },
          charts: 4, recipe: 'demo', data: { kind: 'demo' }, batchSize: 2, seed: 0, imgSize: 64, amp: false, cfgOptions: [],
        },
        { data: layout, toolVersion: TOOL_VERSION },
      ),
    );

  it.each([
    ['mkey_det.models.keys.spatialk', "dict(imports=['mkey_det'], allow_failed_imports=False)"],
    ['mkey_det', "dict(imports=['mkey_det'], allow_failed_imports=False)"],
    // a name that only starts like the plugin is another package (once taken for the plugin by the pretrain renderer)
    ['mkey_det_x.keys', "dict(imports=['mkey_det', 'mkey_det_x.keys'], allow_failed_imports=False)"],
    ['my_keys', "dict(imports=['mkey_det', 'my_keys'], allow_failed_imports=False)"],
  ])('%s', (pythonModule, expected) => {
    expect(detection(pythonModule)).toBe(expected);
    expect(classification(pythonModule)).toBe(expected);
  });
});

describe('--cb-mode (Table 2: VanillaK without CB)', () => {
  it("writes the backbone's key_kwargs.cb_mode and mkey_experiment.cb_mode, only when given", async () => {
    expect(renderMmdetConfig(experiment({ backbone: backboneVariant('swin-t-vanillak') }), { toolVersion: TOOL_VERSION })).not.toMatch(/cb_mode/);
    const source = renderMmdetConfig(experiment({ backbone: backboneVariant('swin-t-vanillak'), cbMode: 'none' }), { toolVersion: TOOL_VERSION });
    const s = await loadWithMmengine(source, 'cb-none.py');
    expect(s.backbone).toMatchObject({ type: 'SwinTransformerMKey', key_type: 'vanillak', key_kwargs: { cb_mode: 'none' } });
    expect(s.mkey_experiment).toMatchObject({ cb_mode: 'none' });

    const layout = { root: '/data/x', trainPrefix: 'train', valPrefix: 'val', classes: ['a', 'b'] };
    const exp = (name: string, charts: number): PretrainExperiment => ({
      backbone: pretrainVariant(name), charts, recipe: 'paper', data: { kind: 'dir', path: '/data/x' }, batchSize: 32, seed: 0, imgSize: 224,
      amp: false, cfgOptions: [], cbMode: 'none',
    });
    for (const charts of [4, 8]) {
      const text = renderMmpretrainConfig(exp('vit-b-vanillak', charts), { data: layout, toolVersion: TOOL_VERSION }).replace(/\s+/g, ' ');
      expect(text).toContain(`key_type='vanillak', num_charts=${charts}, key_kwargs=dict(cb_mode='none')`);
      expect(text).toContain("cb_mode='none', recipe='paper'");
    }
  });

  it('the CLI: config, train and pretrain take it; a key without CB is refused in one line, exit 2, naming the keys that take it', async () => {
    const ok = await runCli(['config', '--backbone', 'swin-t-kua', '--data', 'coco', '--cb-mode', 'per_location']);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("key_kwargs=dict(cb_mode='per_location')");
    expect(regenerateLine(ok.stdout)).toContain('--cb-mode per_location');
    const cases: [string[], string][] = [
      [['config', '--backbone', 'swin-t-spatialk', '--data', 'coco', '--cb-mode', 'none'], 'error: --cb-mode none with --backbone swin-t-spatialk: only the keys with context broadcasting take it (accepted: swin-t-kua, swin-t-vanillak)'],
      [['train', '--backbone', 'swin-t', '--cb-mode', 'eq4'], 'error: --cb-mode eq4 with --backbone swin-t: only the keys with context broadcasting take it (accepted: swin-t-kua, swin-t-vanillak)'],
      [['pretrain', '--backbone', 'vit-b-simplek', '--cb-mode', 'none'], 'error: --cb-mode none with --backbone vit-b-simplek: only the keys with context broadcasting take it (accepted: vit-b-kua, vit-b-vanillak)'],
      [['config', '--data', 'coco', '--cb-mode', 'half'], 'error: invalid --cb-mode "half": accepted: eq4, per_location, none'],
    ];
    for (const [args, message] of cases) {
      const res = await runCli(args);
      expect(res.exitCode, args.join(' ')).toBe(2);
      expect(res.stderr.trim().split('\n')[0]).toBe(message);
    }
  });

  it('CB_KEY_TYPES are the key variants whose class has CBModeMixin (python_shim/mkey_det/models/keys)', () => {
    const dir = join(repoRoot, 'python_shim/mkey_det/models/keys');
    const withCb: string[] = [];
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.py'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      for (const m of text.matchAll(/@register_key\(\s*'(\w+)'[\s\S]*?\nclass \w+\(([^)]*)\)/g)) if (m[2]!.includes('CBModeMixin')) withCb.push(m[1]!);
    }
    expect(withCb.sort()).toEqual([...CB_KEY_TYPES].sort());
  });
});
