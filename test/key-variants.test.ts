/**
 * The backbone variants come from the Python key registry: the checked-in manifest
 * (src/core/key-variants.generated.ts) must be what the generator writes now, and a variant
 * registered only on the Python side (python_shim/tests/toy_key.py) flows through the manifest,
 * the variants, the rendered MMDetection config and back into Python's MODELS.build.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { renderMmdetConfig } from '../src/core/config/render.js';
import {
  BACKBONE_NAMES,
  BACKBONE_VARIANTS,
  KEY_TYPES,
  backboneVariantsFrom,
  type BackboneVariant,
  type Experiment,
  type KeyVariantManifestEntry,
} from '../src/core/experiment.js';
import { TRAIN_BASELINE, TRAIN_VARIANTS } from '../src/core/bench/configs.js';
import { KEY_VARIANT_MANIFEST } from '../src/core/key-variants.generated.js';
import { repoRoot, testPython } from './helpers/cli.js';

const GENERATED = join(repoRoot, 'src', 'core', 'key-variants.generated.ts');
const TOY_MODULE = join(repoRoot, 'python_shim', 'tests', 'toy_key.py');

async function generate(args: string[]): Promise<string> {
  const res = await execa(testPython, ['-m', 'mkey_det.models.keys.manifest', ...args], { cwd: repoRoot, reject: false });
  if (res.exitCode !== 0) throw new Error(`manifest generator failed (exit ${String(res.exitCode)}): ${String(res.stderr)}`);
  return String(res.stdout);
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-variants-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('key-variant manifest', () => {
  it('the checked-in file is what the Python registry generates (run `bash scripts/gen-key-variants.sh` when this fails)', async () => {
    const fresh = await generate(['--format', 'ts']);
    expect(readFileSync(GENERATED, 'utf8'), 'src/core/key-variants.generated.ts is stale: run `bash scripts/gen-key-variants.sh`').toBe(
      // execa strips the final newline of stdout
      fresh.endsWith('\n') ? fresh : fresh + '\n',
    );
  });

  it('gives exactly the paper variants, in order', () => {
    expect(KEY_TYPES).toEqual(['linear', 'spatialk', 'kua', 'simplek', 'vanillak']);
    expect(BACKBONE_VARIANTS).toEqual([
      { name: 'swin-t', keyType: 'linear', label: 'Swin-T', usesCharts: false, pythonModule: 'mkey_det.models.keys.linear' },
      { name: 'swin-t-spatialk', keyType: 'spatialk', label: '+ SpatialK', usesCharts: true, pythonModule: 'mkey_det.models.keys.spatialk' },
      { name: 'swin-t-kua', keyType: 'kua', label: '+ KUA', usesCharts: true, pythonModule: 'mkey_det.models.keys.kua' },
      { name: 'swin-t-simplek', keyType: 'simplek', label: '+ SimpleK', usesCharts: true, pythonModule: 'mkey_det.models.keys.simplek' },
      { name: 'swin-t-vanillak', keyType: 'vanillak', label: '+ VanillaK', usesCharts: true, pythonModule: 'mkey_det.models.keys.vanillak' },
    ]);
    expect(TRAIN_VARIANTS).toEqual(BACKBONE_NAMES);
    expect(TRAIN_BASELINE).toBe('swin-t');
  });

  it('names follow the rule on both sides: swin-t for the linear key, swin-t-<type> / "+ <Label>" otherwise', () => {
    for (const e of KEY_VARIANT_MANIFEST) {
      expect(e.backbone).toBe(e.manifold ? `swin-t-${e.keyType}` : 'swin-t');
      expect(e.backboneLabel).toBe(e.manifold ? `+ ${e.label}` : 'Swin-T');
    }
    const dup = [...KEY_VARIANT_MANIFEST, KEY_VARIANT_MANIFEST[1]!];
    expect(() => backboneVariantsFrom(dup)).toThrow(/appears twice/);
  });
});

describe('a toy sixth variant registered on the Python side only', () => {
  it('reaches the variants, the rendered config and MODELS.build', async () => {
    const manifest = JSON.parse(await generate(['--import', TOY_MODULE, '--format', 'json'])) as KeyVariantManifestEntry[];
    expect(manifest.map((e) => e.keyType)).toEqual([...KEY_TYPES, 'toyk']);

    const variants = backboneVariantsFrom(manifest);
    expect(variants.slice(0, BACKBONE_VARIANTS.length)).toEqual(BACKBONE_VARIANTS);
    const toy = variants.find((v) => v.name === 'swin-t-toyk');
    expect(toy).toEqual({ name: 'swin-t-toyk', keyType: 'toyk', label: '+ ToyK', usesCharts: true, pythonModule: 'toy_key' });

    const exp: Experiment = {
      backbone: toy as BackboneVariant,
      charts: 4,
      schedule: 'short',
      data: { kind: 'demo' },
      batchSize: 2,
      seed: 0,
      amp: false,
      cfgOptions: [],
    };
    const source = renderMmdetConfig(exp, {
      toolVersion: 'test',
      // the demo layout (the data part is not read: only the backbone is built)
      dataset: {
        root: join(tmp, 'demo') + '/',
        trainAnn: 'annotations/instances_train2017.json',
        valAnn: 'annotations/instances_val2017.json',
        trainImg: 'train2017/',
        valImg: 'val2017/',
        classes: ['circle', 'square', 'triangle'],
      },
    });
    expect(source).toMatch(/key_type('?: ?|=)'toyk'/);
    // the config imports the module that registers the key (mmengine's custom_imports), like the plugin
    expect(source).toContain("custom_imports = dict(imports=['mkey_det', 'toy_key'], allow_failed_imports=False)");
    const cfgPath = join(tmp, 'toy.py');
    writeFileSync(cfgPath, source);

    const script = [
      'import json, sys, torch',
      'sys.path.insert(0, sys.argv[2])',
      'from mmengine.config import Config',
      'from mmdet.registry import MODELS',
      'cfg = Config.fromfile(sys.argv[1])',
      'torch.manual_seed(0)',
      'model = MODELS.build(cfg.model.backbone)',
      'model.init_weights()',
      'model.eval()',
      'with torch.no_grad():',
      '    outs = model(torch.randn(1, 3, 64, 64))',
      'keys = {type(m.key).__name__ for _, m in model.manifold_attentions()}',
      'print(json.dumps(dict(type=type(model).__name__, key_type=model.key_type, charts=model.num_charts,',
      '    keys=sorted(keys), experiment=cfg.mkey_experiment.to_dict(), shapes=[list(o.shape) for o in outs],',
      '    finite=all(bool(torch.isfinite(o).all()) for o in outs))))',
    ].join('\n');
    const res = await execa(testPython, ['-c', script, cfgPath, join(repoRoot, 'python_shim', 'tests')], { cwd: tmp, reject: false });
    expect(res.exitCode, String(res.stderr)).toBe(0);
    const lastLine = String(res.stdout).trim().split('\n').pop() ?? '';
    const out = JSON.parse(lastLine) as {
      type: string;
      key_type: string;
      charts: number;
      keys: string[];
      experiment: Record<string, unknown>;
      shapes: number[][];
      finite: boolean;
    };
    expect(out).toMatchObject({ type: 'SwinTransformerMKey', key_type: 'toyk', charts: 4, keys: ['ToyKey'], finite: true });
    expect(out.experiment).toMatchObject({ backbone: 'swin-t-toyk', key_type: 'toyk', charts: 4 });
    expect(out.shapes).toEqual([
      [1, 96, 16, 16],
      [1, 192, 8, 8],
      [1, 384, 4, 4],
      [1, 768, 2, 2],
    ]);
  });
});
