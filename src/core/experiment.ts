/**
 * The typed description of one experiment, and the backbone variants. Everything else (config
 * rendering, training, reports, export) reads these. The variants themselves come from the Python
 * key registry (the single source), through the generated manifest `key-variants.generated.ts`.
 */
import { z } from 'zod';
import { KEY_VARIANT_MANIFEST } from './key-variants.generated.js';

/**
 * One entry of the key-variant manifest: what the Python key registry
 * (python_shim/mkey_det/models/keys/registry.py) says about a key variant. The checked-in manifest
 * is `key-variants.generated.ts` (regenerate with `bash scripts/gen-key-variants.sh`).
 */
export interface KeyVariantManifestEntry<K extends string = string> {
  /** `key_type` of `SwinTransformerMKey`, e.g. `spatialk`. */
  readonly keyType: K;
  /** The name the paper prints, e.g. `SpatialK`. */
  readonly label: string;
  /** Whether `num_charts` / `--charts` applies. */
  readonly usesCharts: boolean;
  /** Whether it is a manifold key (false: Swin's linear key). */
  readonly manifold: boolean;
  /** CLI backbone name: `swin-t` for the linear key, `swin-t-<keyType>` otherwise. */
  readonly backbone: string;
  /** Row label: `Swin-T` for the linear key, `+ <label>` otherwise. */
  readonly backboneLabel: string;
  /** Python module that registers the key class. */
  readonly pythonModule: string;
}

/** Key types understood by the Python backbone `SwinTransformerMKey` (python_shim/mkey_det/models), in display order. */
export type KeyType = (typeof KEY_VARIANT_MANIFEST)[number]['keyType'];
export const KEY_TYPES: readonly KeyType[] = KEY_VARIANT_MANIFEST.map((v) => v.keyType);

export interface BackboneVariant<K extends string = KeyType> {
  /** CLI name, e.g. `swin-t-spatialk`. */
  name: string;
  keyType: K;
  /** Row label as the paper prints it. */
  label: string;
  /** Whether `--charts` applies. */
  usesCharts: boolean;
  /** The Python module that registers the key (a variant outside `mkey_det` is imported by the config). */
  pythonModule?: string;
}

/**
 * The backbone variants of a manifest, in its order: `swin-t` (label `Swin-T`) for the linear key,
 * `swin-t-<keyType>` (label `+ <Label>`) for every manifold key. Pure, so tests can pass another
 * manifest (e.g. one with a toy variant).
 */
export function backboneVariantsFrom<K extends string>(manifest: readonly KeyVariantManifestEntry<K>[]): BackboneVariant<K>[] {
  const seen = new Set<string>();
  return manifest.map((e) => {
    if (seen.has(e.backbone)) throw new Error(`key-variant manifest: backbone ${JSON.stringify(e.backbone)} appears twice`);
    seen.add(e.backbone);
    return { name: e.backbone, keyType: e.keyType, label: e.backboneLabel, usesCharts: e.usesCharts, pythonModule: e.pythonModule };
  });
}

export const BACKBONE_VARIANTS: readonly BackboneVariant[] = backboneVariantsFrom(KEY_VARIANT_MANIFEST);
export const BACKBONE_NAMES = BACKBONE_VARIANTS.map((v) => v.name) as [string, ...string[]];

export function backboneVariant(name: string): BackboneVariant {
  const v = BACKBONE_VARIANTS.find((b) => b.name === name);
  if (!v) throw new Error(`unknown backbone ${JSON.stringify(name)} (accepted: ${BACKBONE_NAMES.join(', ')})`);
  return v;
}

export const DEFAULT_CHARTS = 8;
/** Upper bound for `--charts`: the key grows as 2*H*C^2 per block, so 64 charts is already ~1B params. */
export const MAX_CHARTS = 64;

/**
 * Schedules:
 * - `3x`: MMDetection's Swin-T multi-scale-crop 3x recipe as shipped (36 epochs, MultiStepLR 27/33).
 * - `paper-3x`: the paper's section 6.3 (36 epochs, AdamW, lr decayed linearly 1e-4 -> 1e-6).
 * - `short`: a few epochs for smoke runs and the demo dataset.
 */
export const SCHEDULES = ['3x', 'paper-3x', 'short'] as const;
export type Schedule = (typeof SCHEDULES)[number];

/** Mixed-precision dtypes of `--amp`: fp16 (with dynamic loss scaling, MMDetection's `--amp`) or bf16. */
export const AMP_DTYPES = ['fp16', 'bf16'] as const;
export type AmpDtype = (typeof AMP_DTYPES)[number];
/** torch dtype names mmengine's AmpOptimWrapper takes. */
export const AMP_TORCH_DTYPE: Record<AmpDtype, string> = { fp16: 'float16', bf16: 'bfloat16' };

/**
 * `--attn-impl`: the window attention of every Swin block (`attn_impl` of `SwinTransformerMKey`):
 * `eager` is mmdet's own forward (the stock model bit for bit), `sdpa` the same attention through
 * torch's fused `scaled_dot_product_attention` (python_shim/mkey_det/models/backbones/fused_window_attention.py).
 * Python's `ATTN_IMPLS` there is the same list and checks the built backbone again (the preflight).
 */
export const ATTN_IMPLS = ['eager', 'sdpa'] as const;
export type AttnImpl = (typeof ATTN_IMPLS)[number];

/**
 * `--key-order`: how a manifold key computes its (one) function (`key_order` of the backbones):
 * `paper` (Algorithm 1's order), `fast` (folded where it saves FLOPs, the backbones' default) or
 * `auto` (the faster of the two per call shape, measured once on the device in use). Python's
 * `KEY_ORDERS` (python_shim/mkey_det/models/keys/base.py) is the same list and checks it again.
 */
export const KEY_ORDERS = ['paper', 'fast', 'auto'] as const;
export type KeyOrder = (typeof KEY_ORDERS)[number];

/**
 * `--cb-mode`: the context broadcasting (CB) of the keys that have it (`key_kwargs.cb_mode` of
 * the backbones): `eq4` (the paper's Eq. 4, the keys' default), `per_location` (the prose's
 * reading) or `none` (Table 2's "VanillaK without CB": no CB, no `gamma2`). Python's `CB_MODES`
 * (python_shim/mkey_det/models/keys/base.py) is the same list and checks it again.
 */
export const CB_MODES = ['eq4', 'per_location', 'none'] as const;
export type CbMode = (typeof CB_MODES)[number];
/**
 * The key types that take `cb_mode`: the keys with CB (`CBModeMixin` in Python: KUA, VanillaK).
 * test/config.test.ts checks this list against the key modules.
 */
export const CB_KEY_TYPES: readonly string[] = ['kua', 'vanillak'];

export const LAUNCHERS = ['none', 'pytorch', 'slurm'] as const;
export type Launcher = (typeof LAUNCHERS)[number];

/** What `--data` names: the COCO dataset, the embedded demo, or a directory in COCO layout. */
export type DataSpec = { kind: 'coco' } | { kind: 'demo' } | { kind: 'dir'; path: string };

export interface DatasetLayout {
  /** Root folder written into the config (relative for stock COCO, absolute otherwise). */
  root: string;
  trainAnn: string;
  valAnn: string;
  trainImg: string;
  valImg: string;
  /** Class names; undefined keeps the dataset's own (COCO's 80). */
  classes?: string[];
}

/**
 * What a `train` experiment and a `pretrain` one share beyond what they train: its length,
 * precision, overrides, trackers, the GPU fast paths and the key's CB (the same flags on both).
 */
export interface RunSettings {
  /** Images per GPU (per process). */
  batchSize: number;
  seed: number;
  maxEpochs?: number;
  maxIters?: number;
  /** Mixed precision on CUDA (mmengine's AmpOptimWrapper); false = fp32. */
  amp: AmpDtype | false;
  /** `key=value` overrides in mmengine's dotted-key syntax, already split. */
  cfgOptions: [string, string][];
  /** Trackers mmengine's visualizer also writes to (`--vis-backend`, `--tensorboard`), under `<work-dir>/<time>/vis_data/`. */
  visBackends?: readonly VisBackend[];
  /** Swin's window attention (`--attn-impl`; Swin only); undefined leaves the backbone's default (`eager`) unwritten. */
  attnImpl?: AttnImpl;
  /** The manifold key's computation order (`--key-order`); undefined leaves the backbone's default (`fast`) unwritten. */
  keyOrder?: KeyOrder;
  /** Allow TF32 for float32 matmuls and convolutions on CUDA (`MkeyTF32Hook`). */
  tf32?: boolean;
  /** The key's context broadcasting (`--cb-mode`, KUA / VanillaK only); undefined: the key's default (`eq4`), unwritten. */
  cbMode?: CbMode;
}

export interface Experiment extends RunSettings {
  backbone: BackboneVariant;
  charts: number;
  schedule: Schedule;
  data: DataSpec;
  /** Local ImageNet checkpoint for the backbone (official Swin or mmdet-converted); none = from scratch. */
  pretrained?: string;
  /**
   * Train and test at one fixed (width, height) instead of the recipe's multi-scale pipeline
   * (smoke runs, small datasets). The demo dataset always uses its own size.
   */
  imageScale?: [number, number];
}

/** The hook `--tf32` puts first in a config's `custom_hooks` (registered by mkey_det in mmdet's HOOKS). */
export const TF32_HOOK = 'MkeyTF32Hook';

/** Experiment trackers a run can also write to (`--vis-backend`): mmengine's own visualisation backends. */
export const VIS_BACKENDS = ['tensorboard', 'wandb', 'mlflow'] as const;
export type VisBackend = (typeof VIS_BACKENDS)[number];

/**
 * Each tracker as mmengine's backend of it, under `<work-dir>/<time>/vis_data/`: TensorBoard's event
 * files; W&B offline (a run folder, `wandb sync` uploads it later; nothing leaves the machine
 * during training); MLflow into a local file store there (its default tracking URI for a backend
 * without one: `file://<vis_data>`).
 */
const VIS_BACKEND_CONFIGS: Record<VisBackend, Record<string, unknown>> = {
  tensorboard: { type: 'TensorboardVisBackend' },
  wandb: { type: 'WandbVisBackend', init_kwargs: { mode: 'offline', project: 'mkey-det' } },
  mlflow: { type: 'MLflowVisBackend', exp_name: 'mkey-det' },
};

/** The visualizer of a run that also writes to `backends` (mmdet's and mmpretrain's configs merge it): the local backend first, as stock. */
export function visualizerConfig(backends: readonly VisBackend[]): { vis_backends: Record<string, unknown>[] } {
  return { vis_backends: [{ type: 'LocalVisBackend' }, ...backends.map((b) => structuredClone(VIS_BACKEND_CONFIGS[b]))] };
}

export const experimentFields = {
  backbone: z.enum(BACKBONE_NAMES, { message: `accepted: ${BACKBONE_NAMES.join(', ')}` }),
  schedule: z.enum(SCHEDULES, { message: `accepted: ${SCHEDULES.join(', ')}` }),
  launcher: z.enum(LAUNCHERS, { message: `accepted: ${LAUNCHERS.join(', ')}` }),
  attnImpl: z.enum(ATTN_IMPLS, { message: `accepted: ${ATTN_IMPLS.join(', ')}` }).optional(),
  keyOrder: z.enum(KEY_ORDERS, { message: `accepted: ${KEY_ORDERS.join(', ')}` }).optional(),
  cbMode: z.enum(CB_MODES, { message: `accepted: ${CB_MODES.join(', ')}` }).optional(),
  tf32: z.boolean().default(false),
  /** `--amp` alone means fp16 (commander gives `true`), as MMDetection's own `--amp`. */
  amp: z
    .union([z.boolean(), z.string()])
    .default(false)
    .transform((v, ctx): AmpDtype | false => {
      if (v === true) return 'fp16';
      if (v === false) return false;
      if ((AMP_DTYPES as readonly string[]).includes(v)) return v as AmpDtype;
      ctx.addIssue({ code: 'custom', message: `accepted: ${AMP_DTYPES.join(', ')} (or --amp alone for fp16)` });
      return z.NEVER;
    }),
};

export function parseDataSpec(raw: string): DataSpec {
  if (raw === 'coco') return { kind: 'coco' };
  if (raw === 'demo') return { kind: 'demo' };
  return { kind: 'dir', path: raw };
}

/** The schedule used when none is given: the short one for the demo dataset, MMDetection's 3x otherwise. */
export function defaultSchedule(data: DataSpec): Schedule {
  return data.kind === 'demo' ? 'short' : '3x';
}

/** Images per GPU of the stock recipe (MMDetection's Swin-T Mask R-CNN 3x: 2 per GPU, 8 GPUs). */
export const DEFAULT_BATCH_SIZE = 2;
/**
 * Images per step on the demo: its 64x64 images are cheap, a step's fixed cost (the optimizer, the
 * manifold key's folded weights) is not, so 8 images per step learn most per CPU minute (docs/DEMO.md).
 */
export const DEMO_BATCH_SIZE = 8;

/** `--batch-size` when not given: the demo's own, else the recipe's. */
export function defaultBatchSize(data: DataSpec): number {
  return data.kind === 'demo' ? DEMO_BATCH_SIZE : DEFAULT_BATCH_SIZE;
}

/** The charts of an experiment's key, null for the linear key (which has none; `--charts` does nothing there). */
export function experimentCharts(exp: { backbone: { usesCharts: boolean }; charts: number }): number | null {
  return exp.backbone.usesCharts ? exp.charts : null;
}

/**
 * Top-level config keys that make mmengine load or run code from a file or module the value names
 * (`_base_` reads and executes another config file; `custom_imports` imports modules). A value is
 * always written as data, but these keys would turn data into code, so `--cfg-options` refuses them.
 */
export const CODE_LOADING_CFG_KEYS = ['_base_', 'custom_imports'] as const;

/** Python's keywords: not valid as a name in a `dict(key=...)` call, the form a config is written in. */
const PYTHON_KEYWORDS = new Set(
  ('False None True and as assert async await break class continue def del elif else except finally for from ' +
    'global if import in is lambda nonlocal not or pass raise return try while with yield').split(' '),
);

/** A user value in a message: long ones shortened, so a 100 KB option does not flood the terminal. */
const shown = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}… (${s.length} characters)` : s);

/** Splits `a.b=c` pairs; the key must be a dotted identifier path (list indices allowed). */
export function parseCfgOptionPairs(pairs: string[]): [string, string][] {
  return pairs.map((p) => {
    const eq = p.indexOf('=');
    const key = eq > 0 ? p.slice(0, eq) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\d+))*$/.test(key)) {
      throw new Error(`invalid --cfg-options ${shown(p)}: expected key=value with a dotted key such as model.backbone.drop_path_rate=0.1`);
    }
    const parts = key.split('.');
    const top = parts[0]!;
    if ((CODE_LOADING_CFG_KEYS as readonly string[]).includes(top) || parts.some((s) => /^__.*__$/.test(s))) {
      throw new Error(
        `--cfg-options key ${JSON.stringify(key)} is refused: it makes mmengine load code (${CODE_LOADING_CFG_KEYS.join(', ')} and dunder names are not accepted); values are data only`,
      );
    }
    const keyword = parts.find((s) => PYTHON_KEYWORDS.has(s));
    if (keyword) {
      throw new Error(`--cfg-options key ${JSON.stringify(key)}: ${JSON.stringify(keyword)} is a Python keyword and cannot name a config field`);
    }
    return [key, p.slice(eq + 1)];
  });
}
