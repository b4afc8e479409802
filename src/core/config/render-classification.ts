/**
 * Renders a `PretrainExperiment` into an mmpretrain config (Python source) that inherits
 * mmpretrain's stock ImageNet-1K config of the family (Swin-T, DeiT-S, DeiT-B) and overrides only
 * what the experiment changes: the backbone (the key), the data, the recipe. It runs with
 * mmpretrain's own `tools/train.py` (the config's `default_scope` is `mmpretrain`).
 */
import { PyCode, PyTuple, type PyValue, toPythonLiteral } from './python-literal.js';
import { ampOptimWrapper, customImports, experimentRecord, fastPathFields, keyKwargsFields, mergeAssignments, withTf32Hook, type InheritedValues } from './render.js';
import { experimentCharts, visualizerConfig } from '../experiment.js';
import { DEMO_PRETRAIN, PAPER_PRETRAIN, SWINV2_WINDOW, pretrainFamily, type PretrainExperiment } from '../pretrain/experiment.js';

/** Epochs of mmpretrain's stock ImageNet recipes (Swin-T 16xb64, DeiT-S/B). */
const STOCK_PRETRAIN_EPOCHS = 300;

/** Epochs a pretrain experiment trains: `--max-epochs`, else its recipe's (ignored under `--max-iters`). */
export function pretrainEpochs(exp: Pick<PretrainExperiment, 'maxEpochs' | 'recipe'>): number {
  return exp.maxEpochs ?? (exp.recipe === 'demo' ? DEMO_PRETRAIN.epochs : exp.recipe === 'paper' ? PAPER_PRETRAIN.epochs : STOCK_PRETRAIN_EPOCHS);
}

/** The classification data a config reads: an ImageNet-style folder (`train/<class>/`, `val/<class>/`). */
export interface ClassificationLayout {
  /** Absolute root holding `train/` and `val/`. */
  root: string;
  trainPrefix: string;
  valPrefix: string;
  /** Class names: the sub-folder names, sorted (what mmpretrain's CustomDataset reads). */
  classes: string[];
}

export interface ClassificationRenderOptions {
  data: ClassificationLayout;
  generatedBy?: string;
  toolVersion: string;
  /** Lists of the base config that `--cfg-options` keys index into (`withInheritedLists`). */
  inherited?: InheritedValues;
}

type Dict = { [key: string]: PyValue | undefined };

/** Swin-T as in the paper and detection (window 7); only the last stage feeds the classifier. */
function swinBackbone(exp: PretrainExperiment): Dict {
  return {
    _delete_: true,
    type: 'mmdet.SwinTransformerMKey',
    embed_dims: 96,
    depths: new PyTuple([2, 2, 6, 2]),
    num_heads: new PyTuple([3, 6, 12, 24]),
    window_size: 7,
    mlp_ratio: 4,
    qkv_bias: true,
    patch_norm: true,
    drop_path_rate: exp.recipe === 'demo' ? 0.0 : 0.2,
    out_indices: new PyTuple([3]),
    key_type: exp.backbone.keyType,
    num_charts: experimentCharts(exp) ?? undefined,
    ...fastPathFields({ attnImpl: exp.attnImpl, keyOrder: exp.keyOrder, manifold: exp.backbone.usesCharts }),
    ...keyKwargsFields(exp.cbMode),
    init_cfg: null,
  };
}

/** mmpretrain's DeiT-S / DeiT-B backbone with the key replaced (the stock arguments kept). */
function vitBackbone(exp: PretrainExperiment): Dict {
  return {
    type: 'VisionTransformerMKey',
    img_size: exp.imgSize,
    key_type: exp.backbone.keyType,
    num_charts: experimentCharts(exp) ?? undefined,
    // no attn_impl: mmpretrain's ViT attention already runs torch's scaled_dot_product_attention
    ...fastPathFields({ keyOrder: exp.keyOrder, manifold: exp.backbone.usesCharts }),
    ...keyKwargsFields(exp.cbMode),
    // stock: DeiT's own drop path (DeiT-S none, DeiT-B 0.1); paper and demo: none for both ViTs
    // (vit-pytorch, the paper's ViTs, has no stochastic depth; docs/PRETRAIN.md)
    ...(exp.recipe === 'stock' ? {} : { drop_path_rate: 0.0 }),
  };
}

/**
 * mmpretrain's SwinV2-T (`swinv2-tiny-w8`: 256 px, window 8, the paper's section 5) with the key
 * replaced; merged into the inherited backbone (`arch='tiny'`, drop path 0.2 kept outside the demo).
 * Below 256 px a stage is smaller than the window: `pad_small_map` pads it (the stock model would
 * shrink the window, which a manifold key built for 8 x 8 tokens cannot follow).
 */
function swinv2Backbone(exp: PretrainExperiment): Dict {
  return {
    type: 'SwinTransformerV2MKey',
    img_size: exp.imgSize,
    window_size: SWINV2_WINDOW,
    key_type: exp.backbone.keyType,
    num_charts: experimentCharts(exp) ?? undefined,
    ...fastPathFields({ keyOrder: exp.keyOrder, manifold: exp.backbone.usesCharts }),
    ...keyKwargsFields(exp.cbMode),
    ...(exp.imgSize < 32 * SWINV2_WINDOW ? { pad_small_map: true } : {}),
    ...(exp.recipe === 'demo' ? { drop_path_rate: 0.0 } : {}),
  };
}

function demoPipelines(size: number): { train: PyValue; test: PyValue } {
  return {
    train: [
      { type: 'LoadImageFromFile' },
      { type: 'RandomResizedCrop', scale: size, crop_ratio_range: new PyTuple([0.6, 1.0]), backend: 'cv2' },
      { type: 'RandomFlip', prob: 0.5, direction: 'horizontal' },
      { type: 'PackInputs' },
    ],
    test: [
      { type: 'LoadImageFromFile' },
      { type: 'ResizeEdge', scale: size, edge: 'short', backend: 'cv2' },
      { type: 'CenterCrop', crop_size: size },
      { type: 'PackInputs' },
    ],
  };
}

/** The top-level assignments of the config, in order. */
export function buildClassificationBody(exp: PretrainExperiment, opts: ClassificationRenderOptions): [string, PyValue][] {
  const family = pretrainFamily(exp.backbone.family);
  const { data } = opts;
  const n = data.classes.length;
  const isDemo = exp.recipe === 'demo';
  const body: [string, PyValue][] = [];
  body.push(['_base_', family.base]);
  body.push(['custom_imports', customImports(exp.backbone.pythonModule)]);
  body.push([
    'mkey_experiment',
    experimentRecord(
      exp,
      opts.toolVersion,
      { task: 'classification', backbone: exp.backbone.name, family: exp.backbone.family },
      { recipe: exp.recipe },
      { img_size: exp.imgSize },
    ),
  ]);

  const model: Dict = {
    backbone: family.id === 'swin-t' ? swinBackbone(exp) : family.id === 'swinv2-t' ? swinv2Backbone(exp) : vitBackbone(exp),
    head: { num_classes: n },
  };
  if (isDemo) model.train_cfg = null; // no Mixup / CutMix on a few hundred images
  body.push(['model', model]);
  body.push(['data_preprocessor', { num_classes: n }]);

  // Data: an ImageNet-style folder read by CustomDataset (classes from the sub-folders).
  const pipelines = isDemo ? demoPipelines(exp.imgSize) : { train: new PyCode('{{_base_.train_pipeline}}'), test: new PyCode('{{_base_.test_pipeline}}') };
  const dataset = (prefix: string, pipeline: PyValue): Dict => ({
    _delete_: true,
    type: 'CustomDataset',
    data_root: data.root,
    data_prefix: prefix,
    metainfo: { classes: new PyTuple(data.classes) },
    pipeline,
  });
  const loader = (prefix: string, pipeline: PyValue, shuffle: boolean): Dict => ({
    batch_size: exp.batchSize,
    num_workers: isDemo ? 0 : 4,
    persistent_workers: !isDemo,
    sampler: { type: 'DefaultSampler', shuffle },
    dataset: dataset(prefix, pipeline),
  });
  body.push(['train_dataloader', loader(data.trainPrefix, pipelines.train, true)]);
  body.push(['val_dataloader', loader(data.valPrefix, pipelines.test, false)]);
  body.push(['test_dataloader', new PyCode('val_dataloader')]);
  // Top-5 needs at least five classes.
  body.push(['val_evaluator', { _delete_: true, type: 'Accuracy', topk: new PyTuple(n >= 5 ? [1, 5] : [1]) }]);
  body.push(['test_evaluator', new PyCode('val_evaluator')]);

  // Schedule.
  const epochs = pretrainEpochs(exp);
  if (exp.maxIters !== undefined) {
    body.push(['train_cfg', { _delete_: true, type: 'IterBasedTrainLoop', max_iters: exp.maxIters, val_interval: exp.maxIters }]);
    body.push(['param_scheduler', [{ type: 'LinearLR', start_factor: 0.01, by_epoch: false, begin: 0, end: Math.max(1, Math.floor(exp.maxIters / 4)) }]]);
    body.push(['default_hooks', { checkpoint: { by_epoch: false, interval: exp.maxIters, max_keep_ckpts: 2 }, logger: { interval: 10 } }]);
    body.push(['log_processor', { by_epoch: false }]);
  } else {
    body.push(['train_cfg', { by_epoch: true, max_epochs: epochs, val_interval: 1 }]);
    if (exp.recipe === 'paper') {
      // Section 5: "one-cycle cosine from 5e-4 to 5e-6": OneCycleLR with eta_max 5e-4 and the end
      // at eta_max / div_factor / final_div_factor = 5e-4 / 25 / 4 = 5e-6 (pct_start: torch's 0.3).
      body.push([
        'param_scheduler',
        [
          {
            type: 'OneCycleLR',
            eta_max: PAPER_PRETRAIN.lr,
            total_steps: epochs,
            pct_start: 0.3,
            anneal_strategy: 'cos',
            div_factor: 25,
            final_div_factor: PAPER_PRETRAIN.lr / 25 / PAPER_PRETRAIN.minLr,
            by_epoch: true,
            convert_to_iter_based: true,
          },
        ],
      ]);
    } else if (isDemo) {
      body.push([
        'param_scheduler',
        [
          { type: 'LinearLR', start_factor: 0.01, by_epoch: true, begin: 0, end: 1, convert_to_iter_based: true },
          { type: 'CosineAnnealingLR', eta_min: 1e-5, by_epoch: true, begin: 1, end: epochs, T_max: Math.max(1, epochs - 1), convert_to_iter_based: true },
        ],
      ]);
    }
    body.push([
      'default_hooks',
      { checkpoint: { interval: 1, max_keep_ckpts: 3, save_best: 'accuracy/top1', rule: 'greater' }, logger: { interval: isDemo ? 5 : 100 } },
    ]);
  }
  if (exp.recipe === 'paper') {
    body.push(['optim_wrapper', { optimizer: { type: 'AdamW', lr: PAPER_PRETRAIN.lr, betas: new PyTuple([0.9, 0.999]), weight_decay: PAPER_PRETRAIN.weightDecay } }]);
  } else if (isDemo) {
    // From scratch on 400 images: at 1e-3 the loss stayed at ln(10) for 3 epochs; 2e-4 learns (docs/PRETRAIN.md).
    body.push(['optim_wrapper', { optimizer: { type: 'AdamW', lr: DEMO_PRETRAIN.lr, weight_decay: 0.05 }, clip_grad: { max_norm: 5.0 } }]);
  }
  if (exp.amp) body.push(['optim_wrapper', ampOptimWrapper(exp.amp)]);
  if (exp.visBackends?.length) body.push(['visualizer', visualizerConfig(exp.visBackends) as unknown as PyValue]);
  body.push(['randomness', { seed: exp.seed, deterministic: false }]);
  // the stock recipe keeps mmpretrain's hooks (DeiT-B's EMA); section 5's protocol (Swin's) has no EMA
  const stockHooks = exp.recipe === 'stock' ? family.stockHooks.map((h) => ({ ...h })) : [];
  body.push(['custom_hooks', withTf32Hook(exp.tf32, [...stockHooks, { type: 'mmdet.MkeyProgressHook', interval: isDemo ? 2 : 20 }], 'mmdet.')]);
  body.push(['auto_scale_lr', { enable: false }]);
  return mergeAssignments(body, exp.cfgOptions, opts.inherited);
}

/** The whole config file. */
export function renderMmpretrainConfig(exp: PretrainExperiment, opts: ClassificationRenderOptions): string {
  const family = pretrainFamily(exp.backbone.family);
  const header = [
    `# mmpretrain config generated by mkey-det. Inherits mmpretrain's stock ${family.label} ImageNet-1K`,
    '# config and overrides only what this experiment changes.',
    ...(opts.generatedBy ? [`# Regenerate with: ${opts.generatedBy.replace(/[\r\n]+/g, ' ')}`] : []),
    '',
  ];
  const lines = buildClassificationBody(exp, opts).map(([k, v]) => `${k} = ${toPythonLiteral(v)}`);
  return header.join('\n') + lines.join('\n') + '\n';
}
