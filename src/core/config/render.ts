/**
 * Renders an `Experiment` into an MMDetection config (Python source) that inherits MMDetection's
 * stock Swin-T Mask R-CNN + FPN 3x config and only overrides what the experiment changes, the way
 * MMDetection's own `projects/` configs do. The result loads with mmengine's `Config.fromfile` and
 * runs with MMDetection's `tools/train.py`.
 */
import { PyCode, PyTuple, type PyValue, fromPythonJson, parseCfgValue, toPythonLiteral } from './python-literal.js';
import { AMP_TORCH_DTYPE, TF32_HOOK, visualizerConfig, experimentCharts, type AmpDtype, type AttnImpl, type CbMode, type DatasetLayout, type Experiment, type KeyOrder } from '../experiment.js';
import { BadInputError } from '../../utils/errors.js';

export const STOCK_BASE_CONFIG = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py';
/** Stock schedule length of the 3x recipes. */
const STOCK_EPOCHS = 36;
/** Image side of the demo dataset (python_shim/mkey_det/data/demo.py). */
export const DEMO_IMAGE_SIZE = 64;
/** Epochs of the `short` schedule. */
export const SHORT_EPOCHS = 12;
/** Epochs of the `short` schedule on the demo dataset (16 steps of 8 images each; about ten minutes on 2 CPU cores). */
export const DEMO_EPOCHS = 6;

/** Epochs a detection experiment trains: `--max-epochs`, else its schedule's (ignored under `--max-iters`). */
export function experimentEpochs(exp: Pick<Experiment, 'maxEpochs' | 'schedule' | 'data'>): number {
  return exp.maxEpochs ?? (exp.schedule === 'short' ? (exp.data.kind === 'demo' ? DEMO_EPOCHS : SHORT_EPOCHS) : STOCK_EPOCHS);
}

/** The stock COCO layout (relative to the working directory, as in MMDetection's configs). */
export const COCO_LAYOUT: DatasetLayout = {
  root: 'data/coco/',
  trainAnn: 'annotations/instances_train2017.json',
  valAnn: 'annotations/instances_val2017.json',
  trainImg: 'train2017/',
  valImg: 'val2017/',
};

export interface RenderOptions {
  /** Dataset layout to write; stock COCO when omitted. */
  dataset?: DatasetLayout;
  /** Extra lines in the header comment, e.g. the command that regenerates the file. */
  generatedBy?: string;
  /** Version stamp written into `mkey_experiment`. */
  toolVersion: string;
  /** Lists of the base config that `--cfg-options` keys index into (`withInheritedLists`). */
  inherited?: InheritedValues;
}

type Dict = { [key: string]: PyValue | undefined };

function isDict(v: PyValue | undefined): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof PyCode) && !(v instanceof PyTuple);
}

/**
 * Values of the base config at dotted paths (`train_dataloader.dataset.pipeline`) as Python sent
 * them (JSON, tuples as `{"__tuple__": [...]}`), fetched by `withInheritedLists`.
 */
export type InheritedValues = Readonly<Record<string, unknown>>;

/**
 * A `--cfg-options` key indexes into a list this config does not write but inherits from its base
 * (`train_dataloader.dataset.pipeline.2.scale=...`): the renderer needs that list's value, which
 * only mmengine can load (`withInheritedLists` fetches it and renders again). Without it, the
 * message is the user's answer.
 */
export class InheritedListNeeded extends BadInputError {
  constructor(
    readonly key: string,
    readonly path: string,
    /** The config the list comes from (the body's `_base_`). */
    readonly base: string,
  ) {
    super(`--cfg-options ${key}: "${path}" is a list this config inherits from its base; its items can be set where the base config is loaded (mkey-det config, train, pretrain do it)`);
    this.name = 'InheritedListNeeded';
  }
}

/**
 * Sets `a.b.c = value` inside nested dicts (creating them), as mmengine's merge would see it.
 * A numeric part indexes a list: one this config writes (`param_scheduler.0.end=30`), or one it
 * inherits, given in `inherited` by its dotted path (written whole with the item changed, the
 * result of tools/train.py's `--cfg-options` on the merged config); an inherited list not given
 * there throws InheritedListNeeded naming `base`, the config it comes from (none: nothing is
 * inherited, the key is refused).
 */
export function setDotted(target: Dict, key: string, value: PyValue, inherited: InheritedValues = {}, base?: string): void {
  const parts = key.split('.');
  let cur: Dict | PyValue[] = target;
  for (const [i, p] of parts.entries()) {
    const last = i === parts.length - 1;
    if (Array.isArray(cur)) {
      const idx = Number(p);
      if (!/^\d+$/.test(p) || idx >= cur.length) {
        throw new BadInputError(`--cfg-options ${key}: "${p}" is not an index of that list (it has ${cur.length} items)`);
      }
      if (last) cur[idx] = value;
      else cur = cur[idx] as Dict | PyValue[];
      continue;
    }
    if (/^\d+$/.test(p)) {
      throw new BadInputError(`--cfg-options ${key}: "${parts.slice(0, i).join('.')}" is not a list`);
    }
    if (last) {
      cur[p] = value;
      continue;
    }
    const next: PyValue | undefined = cur[p];
    if (/^\d+$/.test(parts[i + 1]!) && !Array.isArray(next)) {
      const path = parts.slice(0, i + 1).join('.');
      if (base === undefined) throw new BadInputError(`--cfg-options ${key}: "${path}" is not a list`);
      if (!(path in inherited)) throw new InheritedListNeeded(key, path, base);
      const list = fromPythonJson(inherited[path]);
      if (!Array.isArray(list)) throw new BadInputError(`--cfg-options ${key}: "${path}" is not a list in the base config either`);
      cur[p] = list;
    } else if (!isDict(next) && !Array.isArray(next)) {
      cur[p] = {};
    }
    cur = cur[p] as Dict | PyValue[];
  }
}

/**
 * `--amp`: the `optim_wrapper` fields of mixed precision, what MMDetection's tools/train.py --amp
 * sets, with the dtype chosen (bf16 needs no loss scaling). The one place of this choice on the
 * TS side; a generated config merges it into its base's optim_wrapper. A user's config
 * (`train --config`) is loaded and changed by mmengine in Python, where the same rule is
 * `amp_optim_wrapper` in python_shim/mkey_det/cli/runs.py: change both together.
 */
export function ampOptimWrapper(amp: AmpDtype): { [k: string]: PyValue } {
  const fields: { [k: string]: PyValue } = { type: 'AmpOptimWrapper', dtype: AMP_TORCH_DTYPE[amp] };
  if (amp === 'fp16') fields.loss_scale = 'dynamic';
  return fields;
}

/**
 * `custom_imports` of a generated config: the plugin, and the module of a key variant registered
 * outside it (`keyModule`, from the key manifest), which the config must import for the key to be
 * registered. Outside means neither `mkey_det` nor a submodule of it (`mkey_det_x` is outside).
 */
export function customImports(keyModule: string | undefined): { [k: string]: PyValue } {
  const outside = keyModule !== undefined && keyModule !== '' && keyModule !== 'mkey_det' && !keyModule.startsWith('mkey_det.');
  return { imports: outside ? ['mkey_det', keyModule] : ['mkey_det'], allow_failed_imports: false };
}

/**
 * `--attn-impl` / `--key-order` as backbone fields (`SwinTransformerMKey`, `VisionTransformerMKey`):
 * written only when given, so a config without them keeps the backbone's defaults (`eager`, `fast`)
 * and reads as before. The key order only where there is a manifold key (as `--charts`).
 */
export function fastPathFields(o: { attnImpl?: AttnImpl; keyOrder?: KeyOrder; manifold: boolean }): { [k: string]: PyValue } {
  return {
    ...(o.attnImpl !== undefined ? { attn_impl: o.attnImpl } : {}),
    ...(o.keyOrder !== undefined && o.manifold ? { key_order: o.keyOrder } : {}),
  };
}

/**
 * `--cb-mode` as the backbone's `key_kwargs` (`SwinTransformerMKey`, `VisionTransformerMKey`):
 * written only when given, so a config without it keeps the key's default (`eq4`) and reads as before.
 */
export function keyKwargsFields(cbMode: CbMode | undefined): { [k: string]: PyValue } {
  return cbMode !== undefined ? { key_kwargs: { cb_mode: cbMode } } : {};
}

/** `custom_hooks` of a generated config: `--tf32`'s hook first, then the given ones. */
export function withTf32Hook(tf32: boolean | undefined, hooks: PyValue[], scope = ''): PyValue[] {
  return tf32 ? [{ type: `${scope}${TF32_HOOK}` }, ...hooks] : hooks;
}

function scaledMilestones(epochs: number): number[] {
  // 27 and 33 of 36 epochs, scaled to the requested length (at least epoch 1, strictly increasing).
  const a = Math.max(1, Math.round((27 / STOCK_EPOCHS) * epochs));
  const b = Math.max(a + 1, Math.round((33 / STOCK_EPOCHS) * epochs));
  return b < epochs ? [a, b] : [a];
}

function warmup(iters: number): Dict {
  return { type: 'LinearLR', start_factor: 0.001, by_epoch: false, begin: 0, end: iters };
}

/**
 * FPN width of the demo's detector. The stock 256 channels are sized for COCO's 80 classes at
 * 800+ pixels; on 64-pixel images of 3 classes the heads cost CPU time the Swin-T backbone (the
 * subject of the demo) does not: mmcv's single-threaded CPU RoIAlign backward alone took 27% of a
 * step, and its cost follows the channel count. At 128 a step takes 22% less and the demo still
 * learns (docs/DEMO.md: the profiles and the runs). The demo only: `coco` and custom data keep
 * the stock heads.
 */
export const DEMO_FPN_CHANNELS = 128;

/** The demo's neck and heads (every channel count that follows the FPN width), on top of `roiHead`. */
function demoHeads(roiHead: Dict = {}): Dict {
  const c = DEMO_FPN_CHANNELS;
  const part = (name: string, fields: Dict): Dict => ({ ...((roiHead[name] as Dict | undefined) ?? {}), ...fields });
  return {
    neck: { out_channels: c },
    rpn_head: { in_channels: c, feat_channels: c },
    roi_head: {
      ...roiHead,
      bbox_roi_extractor: part('bbox_roi_extractor', { out_channels: c }),
      bbox_head: part('bbox_head', { in_channels: c }),
      mask_roi_extractor: part('mask_roi_extractor', { out_channels: c }),
      mask_head: part('mask_head', { in_channels: c, conv_out_channels: c }),
    },
  };
}

/** A run's settings that `mkey_experiment` records in both tasks' configs. */
type RecordedRun = Pick<Experiment, 'charts' | 'cbMode' | 'batchSize' | 'seed'> & {
  backbone: { keyType: string; usesCharts: boolean };
  data: { kind: string; path?: string };
};

/**
 * The config's `mkey_experiment` record (read back as data by `report` and `--resume`), both
 * tasks: `head` (the task's fields before the key: detection the backbone, classification also
 * the task and the family), the key (its type, charts, the CB form of KUA / VanillaK), the recipe
 * field (`schedule` or `recipe`), the data, `sized` (classification: the image side), then batch,
 * seed and the tool that wrote it.
 */
export function experimentRecord(exp: RecordedRun, toolVersion: string, head: Dict, recipe: Dict, sized: Dict = {}): Dict {
  return {
    ...head,
    key_type: exp.backbone.keyType,
    charts: experimentCharts(exp),
    ...(exp.cbMode !== undefined ? { cb_mode: exp.cbMode } : {}),
    ...recipe,
    data: exp.data.kind === 'dir' ? exp.data.path! : exp.data.kind,
    ...sized,
    batch_size: exp.batchSize,
    seed: exp.seed,
    generator: `mkey-det ${toolVersion}`,
  };
}

/** The top-level assignments of the config, in order. */
export function buildConfigBody(exp: Experiment, opts: RenderOptions): [string, PyValue][] {
  const body: [string, PyValue][] = [];
  const ds = opts.dataset ?? COCO_LAYOUT;
  const isDemo = exp.data.kind === 'demo';

  body.push(['_base_', STOCK_BASE_CONFIG]);
  body.push(['custom_imports', customImports(exp.backbone.pythonModule)]);
  body.push(['mkey_experiment', experimentRecord(exp, opts.toolVersion, { backbone: exp.backbone.name }, { schedule: exp.schedule })]);

  const backbone: Dict = {
    type: 'SwinTransformerMKey',
    key_type: exp.backbone.keyType,
    num_charts: experimentCharts(exp) ?? undefined,
    ...fastPathFields({ attnImpl: exp.attnImpl, keyOrder: exp.keyOrder, manifold: exp.backbone.usesCharts }),
    ...keyKwargsFields(exp.cbMode),
    init_cfg: exp.pretrained ? { type: 'Pretrained', checkpoint: exp.pretrained } : null,
  };
  const model: Dict = { backbone };
  if (ds.classes) {
    const n = ds.classes.length;
    model.roi_head = { bbox_head: { num_classes: n }, mask_head: { num_classes: n } };
  }
  if (isDemo) {
    // A few large objects per small image: far fewer proposals and sampled RoIs than COCO needs
    // keep a CPU step short (the mask head's convolutions run once per positive RoI).
    model.train_cfg = { rpn_proposal: { nms_pre: 1000, max_per_img: 200 }, rcnn: { sampler: { num: 32 } } };
    model.test_cfg = { rpn: { nms_pre: 300, max_per_img: 100 }, rcnn: { max_per_img: 20 } };
    const heads = demoHeads(model.roi_head as Dict | undefined);
    Object.assign(model, heads);
  }
  body.push(['model', model]);

  // Data.
  const metainfo: Dict | undefined = ds.classes ? { classes: new PyTuple(ds.classes) } : undefined;
  body.push(['data_root', ds.root]);
  const dataset = (ann: string, img: string, pipeline?: PyValue): Dict => ({
    data_root: ds.root,
    ann_file: ann,
    data_prefix: { img },
    ...(metainfo ? { metainfo } : {}),
    ...(pipeline ? { pipeline } : {}),
  });
  let trainPipeline: PyValue | undefined;
  let testPipeline: PyValue | undefined;
  const fixedScale = isDemo ? ([DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE] as const) : exp.imageScale;
  if (fixedScale) {
    const scale = new PyTuple([...fixedScale]);
    trainPipeline = [
      { type: 'LoadImageFromFile', backend_args: null },
      { type: 'LoadAnnotations', with_bbox: true, with_mask: true },
      { type: 'Resize', scale, keep_ratio: true },
      { type: 'RandomFlip', prob: 0.5 },
      { type: 'PackDetInputs' },
    ];
    testPipeline = [
      { type: 'LoadImageFromFile', backend_args: null },
      { type: 'Resize', scale, keep_ratio: true },
      { type: 'LoadAnnotations', with_bbox: true, with_mask: true },
      { type: 'PackDetInputs', meta_keys: new PyTuple(['img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor']) },
    ];
    body.push(['train_pipeline', trainPipeline]);
    body.push(['test_pipeline', testPipeline]);
  }
  body.push(['train_dataloader', { batch_size: exp.batchSize, num_workers: isDemo ? 0 : 2, persistent_workers: !isDemo, dataset: dataset(ds.trainAnn, ds.trainImg, trainPipeline) }]);
  body.push(['val_dataloader', { batch_size: 1, num_workers: isDemo ? 0 : 2, persistent_workers: !isDemo, dataset: dataset(ds.valAnn, ds.valImg, testPipeline) }]);
  body.push(['test_dataloader', new PyCode('val_dataloader')]);
  const evaluator: Dict = { ann_file: joinRoot(ds.root, ds.valAnn) };
  body.push(['val_evaluator', evaluator]);
  body.push(['test_evaluator', new PyCode('val_evaluator')]);

  // Schedule.
  const epochs = experimentEpochs(exp);
  if (exp.maxIters !== undefined) {
    body.push(['train_cfg', { _delete_: true, type: 'IterBasedTrainLoop', max_iters: exp.maxIters, val_interval: exp.maxIters }]);
    body.push(['param_scheduler', [warmup(Math.min(1000, Math.max(1, Math.floor(exp.maxIters / 4))))]]);
    body.push(['default_hooks', { checkpoint: { by_epoch: false, interval: exp.maxIters, max_keep_ckpts: 2 }, logger: { interval: 10 } }]);
    body.push(['log_processor', { by_epoch: false }]);
  } else {
    body.push(['max_epochs', epochs]);
    body.push(['train_cfg', { max_epochs: epochs, val_interval: 1 }]);
    if (exp.schedule === 'paper-3x') {
      // Section 6.3: "decayed linearly from 1e-4 to 1e-6"; AdamW betas (0.9, 0.999), weight decay 0.05.
      body.push([
        'param_scheduler',
        [{ type: 'LinearLR', start_factor: 1.0, end_factor: 0.01, by_epoch: true, begin: 0, end: epochs, convert_to_iter_based: true }],
      ]);
    } else {
      const warm = exp.schedule === 'short' ? 30 : 1000;
      body.push([
        'param_scheduler',
        isDemo
          ? [warmup(warm), { type: 'CosineAnnealingLR', begin: 0, end: epochs, by_epoch: true, T_max: epochs, eta_min_ratio: 0.05, convert_to_iter_based: true }]
          : [warmup(warm), { type: 'MultiStepLR', begin: 0, end: epochs, by_epoch: true, milestones: scaledMilestones(epochs), gamma: 0.1 }],
      ]);
    }
    body.push(['default_hooks', { checkpoint: { interval: 1, max_keep_ckpts: 3 }, logger: { interval: isDemo ? 10 : 50 } }]);
  }
  if (exp.schedule === 'short') {
    // Training from scratch on the demo data needs a larger step than fine-tuning from ImageNet.
    body.push(['optim_wrapper', { optimizer: { lr: isDemo ? 0.001 : 0.0005 }, clip_grad: { max_norm: 10.0, norm_type: 2 } }]);
  }
  if (isDemo) {
    // A few hundred steps from scratch: stochastic depth only slows learning at this length.
    body.push(['model', { backbone: { drop_path_rate: 0.0 } }]);
  }
  if (exp.amp) body.push(['optim_wrapper', ampOptimWrapper(exp.amp)]);
  if (exp.visBackends?.length) body.push(['visualizer', visualizerConfig(exp.visBackends) as unknown as PyValue]);
  body.push(['randomness', { seed: exp.seed, deterministic: false }]);
  body.push(['custom_hooks', withTf32Hook(exp.tf32, [{ type: 'MkeyProgressHook', interval: isDemo ? 5 : 20 }])]);
  body.push(['auto_scale_lr', { enable: false, base_batch_size: 16 }]);

  return mergeAssignments(body, exp.cfgOptions, opts.inherited);
}

function joinRoot(root: string, rel: string): string {
  return root.endsWith('/') ? root + rel : `${root}/${rel}`;
}

/** Folds repeated assignments and applies `--cfg-options` to the top-level dicts they name. */
export function mergeAssignments(body: [string, PyValue][], cfgOptions: [string, string][], inherited: InheritedValues = {}): [string, PyValue][] {
  const merged = new Map<string, PyValue>();
  for (const [k, v] of body) {
    const prev = merged.get(k);
    merged.set(k, isDict(prev) && isDict(v) ? deepMerge(prev, v) : v);
  }
  for (const [key, raw] of cfgOptions) {
    const [top, ...rest] = key.split('.');
    const value = parseCfgValue(raw);
    if (rest.length === 0) {
      merged.set(top!, value);
      continue;
    }
    const holder: Dict = { [top!]: merged.get(top!) ?? {} };
    const base = merged.get('_base_');
    setDotted(holder, key, value, inherited, typeof base === 'string' ? base : undefined);
    merged.set(top!, holder[top!]!);
  }
  return [...merged.entries()];
}

function deepMerge(a: Dict, b: Dict): Dict {
  const out: Dict = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isDict(prev) && isDict(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

/** The whole config file. */
export function renderMmdetConfig(exp: Experiment, opts: RenderOptions): string {
  const header = [
    '# MMDetection config generated by mkey-det. Inherits the stock Swin-T Mask R-CNN + FPN 3x',
    '# config and overrides only what this experiment changes.',
    ...(opts.generatedBy ? [`# Regenerate with: ${opts.generatedBy.replace(/[\r\n]+/g, ' ')}`] : []),
    '',
  ];
  const lines = buildConfigBody(exp, opts).map(([k, v]) => `${k} = ${toPythonLiteral(v)}`);
  return header.join('\n') + lines.join('\n') + '\n';
}
