/**
 * The classification half of the paper (Tables 1-2): which backbones `mkey-det pretrain` trains,
 * with which recipe, and the typed description of one pretraining run. The key variants come from
 * the same manifest as detection (the Python key registry); the families are the paper's hosts.
 */
import { KEY_VARIANT_MANIFEST } from '../key-variants.generated.js';
import type { KeyType, RunSettings } from '../experiment.js';

/**
 * The paper's classification backbones. `swin-t` is the same registered class detection uses
 * (`SwinTransformerMKey`), so its checkpoint feeds `mkey-det train --pretrained` with every weight;
 * the ViTs are mmpretrain's `VisionTransformer` with the key replaced (`VisionTransformerMKey`);
 * `swinv2-t` is mmpretrain's `SwinTransformerV2` (section 5: 256 px, window 8) with the key
 * replaced (`SwinTransformerV2MKey`). `imgSize`: the side of the paper and stock recipes.
 */
export const PRETRAIN_FAMILIES = [
  { id: 'swin-t', label: 'Swin-T', base: 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py', stockHooks: [], imgSize: 224 },
  { id: 'vit-s', label: 'ViT-S/16', base: 'mmpretrain::deit/deit-small_4xb256_in1k.py', stockHooks: [], imgSize: 224 },
  // DeiT-B's recipe keeps an EMA of the weights (its custom_hooks, which a config's own list replaces).
  { id: 'vit-b', label: 'ViT-B/16', base: 'mmpretrain::deit/deit-base_16xb64_in1k.py', stockHooks: [{ type: 'EMAHook', momentum: 4e-5, priority: 'ABOVE_NORMAL' }], imgSize: 224 },
  { id: 'swinv2-t', label: 'SwinV2-T', base: 'mmpretrain::swin_transformer_v2/swinv2-tiny-w8_16xb64_in1k-256px.py', stockHooks: [], imgSize: 256 },
] as const;
export type PretrainFamily = (typeof PRETRAIN_FAMILIES)[number]['id'];

export interface PretrainVariant {
  /** CLI name: `<family>` for the linear key, `<family>-<keyType>` otherwise (`vit-s-vanillak`). */
  name: string;
  family: PretrainFamily;
  keyType: KeyType;
  /** Row label as the paper prints it (`ViT-S/16` or `+ VanillaK`). */
  label: string;
  usesCharts: boolean;
  pythonModule: string;
}

/** Every family with every key variant of the manifest, in the manifest's order. */
export const PRETRAIN_VARIANTS: readonly PretrainVariant[] = PRETRAIN_FAMILIES.flatMap((f) =>
  KEY_VARIANT_MANIFEST.map((k) => ({
    name: k.manifold ? `${f.id}-${k.keyType}` : f.id,
    family: f.id,
    keyType: k.keyType,
    label: k.manifold ? k.backboneLabel : f.label,
    usesCharts: k.usesCharts,
    pythonModule: k.pythonModule,
  })),
);
export const PRETRAIN_NAMES = PRETRAIN_VARIANTS.map((v) => v.name) as [string, ...string[]];

export function pretrainVariant(name: string): PretrainVariant {
  const v = PRETRAIN_VARIANTS.find((b) => b.name === name);
  if (!v) throw new Error(`unknown backbone ${JSON.stringify(name)} (accepted: ${PRETRAIN_NAMES.join(', ')})`);
  return v;
}

export function pretrainFamily(id: PretrainFamily): (typeof PRETRAIN_FAMILIES)[number] {
  return PRETRAIN_FAMILIES.find((f) => f.id === id)!;
}

/**
 * Recipes:
 * - `paper`: section 5 (AdamW betas (0.9, 0.999), weight decay 0.05, one-cycle cosine 5e-4 -> 5e-6,
 *   300 epochs, 224 px) on mmpretrain's stock data pipeline and augmentations for the family;
 * - `stock`: mmpretrain's own ImageNet-1K recipe for the family as shipped (Swin-T: swin-tiny
 *   16xb64; ViT-S/B: DeiT-S/B);
 * - `demo`: a few epochs at a small size on the embedded demo set (CPU minutes).
 */
export const PRETRAIN_RECIPES = ['paper', 'stock', 'demo'] as const;
export type PretrainRecipe = (typeof PRETRAIN_RECIPES)[number];

/** What `--data` names for classification: the embedded demo, or an ImageNet-style folder. */
export type ClassificationDataSpec = { kind: 'demo' } | { kind: 'dir'; path: string };

export interface PretrainExperiment extends RunSettings {
  backbone: PretrainVariant;
  charts: number;
  recipe: PretrainRecipe;
  data: ClassificationDataSpec;
  /** Square input side in pixels (the family's `imgSize` for the paper and stock recipes: 224, SwinV2-T 256). */
  imgSize: number;
}

/** The paper's input side (Tables 1-2 are at 224 x 224; SwinV2-T at 256: `pretrainFamily(id).imgSize`). */
export const PAPER_IMG_SIZE = 224;
/** SwinV2-T's window (section 5: window 8 at 256 px, mmpretrain's `swinv2-tiny-w8`). */
export const SWINV2_WINDOW = 8;
/** Defaults of the demo recipe: image side, epochs and batch (2 CPU cores, minutes). */
export const DEMO_PRETRAIN = { imgSize: 64, epochs: 6, batchSize: 16, lr: 2e-4 } as const;
/** Section 5: 300 epochs, batch 128 in all (here per process: 4 GPUs x 32 as the paper's Swin runs). */
export const PAPER_PRETRAIN = { epochs: 300, batchSize: 32, lr: 5e-4, minLr: 5e-6, weightDecay: 0.05 } as const;
