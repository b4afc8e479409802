/**
 * The train suite's models come from mkey-det's own generated configs: for every variant, the CLI
 * is run as a user would (`mkey-det config --backbone X --charts 8 --data demo --out F`; the demo
 * data set is generated on first use), and the Python suite builds Mask R-CNN + FPN from the
 * file's `model` and `optim_wrapper` (the demo's CPU-sized RoI heads, see
 * python_shim/mkey_det/bench/train.py).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { BACKBONE_NAMES, BACKBONE_VARIANTS, type AttnImpl, type KeyOrder } from '../experiment.js';
import { MkeyError } from '../../utils/errors.js';
import { packageRoot } from '../../utils/paths.js';

/** Variant names of the train suite (CLI backbone names, experiment.ts, from the key registry), in order; Swin-T first (the baseline). */
export const TRAIN_VARIANTS: readonly string[] = BACKBONE_NAMES;
/** The baseline of the ratios: the variant with Swin's own linear key (`swin-t`). */
export const TRAIN_BASELINE: string = BACKBONE_VARIANTS.find((v) => v.keyType === 'linear')?.name ?? 'swin-t';
export const TRAIN_CHARTS = 8;

/** Training fast paths given to the manifold-key variants (`mkey-det config --attn-impl/--key-order`). */
export interface VariantPaths {
  attnImpl?: AttnImpl;
  keyOrder?: KeyOrder;
}

/**
 * Writes `<dir>/<variant>.py` for every variant (default: all) and `<dir>/configs.json`; returns the
 * latter's path. `paths` go to every variant but the baseline, which stays MMDetection's stock Swin-T
 * recipe: what a user would run instead (issue 17 compares a variant's best path against it).
 */
export async function writeTrainConfigs(dir: string, variants: readonly string[] = TRAIN_VARIANTS, paths: VariantPaths = {}): Promise<string> {
  const cli = join(packageRoot, 'bin', 'mkey-det.js');
  const map: Record<string, string> = {};
  for (const variant of variants) {
    const out = join(dir, `${variant}.py`);
    const args = [cli, 'config', '--backbone', variant, '--data', 'demo', '--out', out, '--force', '--json'];
    // an unknown name still reaches the CLI (with --charts), which names what is accepted
    const usesCharts = BACKBONE_VARIANTS.find((v) => v.name === variant)?.usesCharts ?? variant !== TRAIN_BASELINE;
    if (usesCharts) args.push('--charts', String(TRAIN_CHARTS));
    if (variant !== TRAIN_BASELINE) {
      if (paths.attnImpl) args.push('--attn-impl', paths.attnImpl);
      if (paths.keyOrder) args.push('--key-order', paths.keyOrder);
    }
    const res = await execa(process.execPath, args, { reject: false, cwd: dir, timeout: 600_000 });
    if (res.exitCode !== 0) {
      throw new MkeyError(`mkey-det config --backbone ${variant} failed (exit ${String(res.exitCode)}): ${String(res.stderr).split('\n')[0] ?? ''}`);
    }
    map[variant] = out;
  }
  const path = join(dir, 'configs.json');
  writeFileSync(path, JSON.stringify(map, null, 2) + '\n');
  return path;
}
