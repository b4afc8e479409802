/** Options shared by `config` and `train`: how an experiment is described on the command line. */
import { Command, Option } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import {
  ATTN_IMPLS,
  BACKBONE_NAMES,
  BACKBONE_VARIANTS,
  CB_KEY_TYPES,
  CB_MODES,
  KEY_ORDERS,
  DEFAULT_CHARTS,
  MAX_CHARTS,
  SCHEDULES,
  backboneVariant,
  defaultBatchSize,
  defaultSchedule,
  DEFAULT_BATCH_SIZE,
  DEMO_BATCH_SIZE,
  experimentFields,
  parseCfgOptionPairs,
  parseDataSpec,
  type CbMode,
  VIS_BACKENDS,
  type Experiment,
  type VisBackend,
} from '../core/experiment.js';
import { describePath } from '../core/dataset.js';
import { handoffCheckpoint } from '../core/run/run-dir.js';
import { BadInputError, ExitCode, MkeyError, quoteValue } from '../utils/errors.js';
import { intOption } from '../utils/options.js';
import { withBridge } from '../python/bridge.js';
import { checkInterpreter } from '../python/interpreter.js';
import { pythonInterpreter } from '../utils/paths.js';
import { execa } from 'execa';
import { call } from '../python/entries.js';

/**
 * Accepted sides of `--img-scale`, in pixels. Below 32 an image is smaller than one cell of the
 * backbone's last stage (stride 32), so there is nothing left to detect on (and `0x0` reached
 * MMDetection's resize as is); above 8192 one image alone needs far more memory than a GPU has
 * for Swin-T + Mask R-CNN, so such a value is a typo (an extra digit) rather than a plan.
 */
export const IMG_SCALE_MIN = 32;
export const IMG_SCALE_MAX = 8192;

/** `--cfg-options` values as checked key/value pairs (keys that load code refused: exit 2). */
export function cfgOptionPairs(values: string[]): [string, string][] {
  try {
    return parseCfgOptionPairs(values);
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
}

/**
 * The `--cfg-options` option itself: several `key=value` after one flag, as mmengine's DictAction
 * (and so every MMDetection tool) takes them; a repeated flag adds to the list.
 */
export const CFG_OPTIONS_FLAG = '--cfg-options <key=value...>';

/**
 * Refuses `--cfg-options` whose type or scope value is not a registered name (exit 2, one line
 * naming the key): mmengine imports and calls any dotted `type` it does not find in a registry.
 * Starts Python only when such a key is given.
 */
export async function refuseUnregisteredTypes(pairs: [string, string][]): Promise<void> {
  const named = pairs.filter(([key]) => TYPE_OR_SCOPE_KEY.test(key));
  if (named.length === 0) return;
  const problems = await withBridge((b) => call(b, 'config.check_type_names', { pairs: named }));
  const p = problems[0];
  if (!p) return;
  const what =
    p.reason === 'scope'
      ? `not a registry scope (accepted: ${p.accepted})`
      : `not a type name registered in ${p.accepted} (e.g. FocalLoss or mmdet.FocalLoss)`;
  throw new BadInputError(
    `--cfg-options ${p.key}=${quoteValue(p.value)} is refused: ${what}; mmengine would import it as code`,
    'name a class registered with MMDetection, mmpretrain, mmengine or mkey_det (values are data, never code)',
  );
}

/** Keys whose value mmengine looks up as a type (`…type`, `runner_type`) or imports as a scope. */
const TYPE_OR_SCOPE_KEY = /(^|\.)(type|runner_type|default_scope|_scope_)$/;

export function addExperimentOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backbone <variant>', `backbone variant: ${BACKBONE_NAMES.join(', ')}`).default('swin-t-spatialk'))
    .option('--charts <n>', `number of charts H of the manifold key (1-${MAX_CHARTS})`, String(DEFAULT_CHARTS))
    .option('--schedule <name>', `${SCHEDULES.join(' | ')} (default: short for --data demo, else 3x)`)
    .option('--data <coco|demo|dir>', 'dataset: coco (data/coco or $MKEY_COCO_ROOT), demo (embedded, generated on first use), or a folder in COCO layout', 'demo')
    .option('--batch-size <n>', `images per GPU (per process) (default: ${DEMO_BATCH_SIZE} for --data demo, else ${DEFAULT_BATCH_SIZE})`)
    .option('--seed <n>', 'random seed', '0')
    .option('--pretrained <path>', 'local ImageNet Swin checkpoint for the backbone (official, timm or mmdet layout, or a `mkey-det pretrain` run or checkpoint: every manifold-key weight; loaded strictly)')
    .option('--max-epochs <n>', 'override the schedule length in epochs')
    .option('--max-iters <n>', 'train for this many iterations instead of epochs (smoke runs)')
    .option('--img-scale <WxH>', "train and test at one fixed scale instead of the recipe's multi-scale pipeline (e.g. 512x512)")
    .option('--amp [dtype]', 'automatic mixed precision on CUDA: fp16 (default when given alone, dynamic loss scaling) or bf16')
    .option(ATTN_IMPL_FLAG[0], ATTN_IMPL_FLAG[1])
    .option(KEY_ORDER_FLAG[0], KEY_ORDER_FLAG[1])
    .option(CB_MODE_FLAG[0], CB_MODE_FLAG[1])
    .option(TF32_FLAG[0], TF32_FLAG[1], false)
    .option(CFG_OPTIONS_FLAG, 'override any config value, e.g. model.backbone.drop_path_rate=0.1; several pairs after one flag, as MMDetection\'s tools take them', [])
    .option(TENSORBOARD_FLAG[0], TENSORBOARD_FLAG[1], false)
    .option(VIS_BACKEND_FLAG[0], VIS_BACKEND_FLAG[1], addValue, [] as string[]);
}

/** `--attn-impl`, `--key-order`, `--tf32` (config, train, pretrain): the GPU fast paths, written into the config. */
export const ATTN_IMPL_FLAG = [
  '--attn-impl <impl>',
  `window attention of every Swin block: ${ATTN_IMPLS.join(' | ')} (eager: mmdet's own, the default; sdpa: the same attention through torch's fused scaled_dot_product_attention)`,
] as const;
export const KEY_ORDER_FLAG = [
  '--key-order <order>',
  `how the manifold key computes (same function): ${KEY_ORDERS.join(' | ')} (fast: folded where it saves FLOPs, the default; auto: the faster order per shape, measured once on the device)`,
] as const;
/** `--cb-mode` (config, train, pretrain): the key's context broadcasting, as `key_kwargs.cb_mode` of the backbone. */
export const CB_MODE_FLAG = [
  '--cb-mode <mode>',
  `context broadcasting of the KUA / VanillaK key: ${CB_MODES.join(' | ')} (eq4: the paper's Eq. 4, the default; none: Table 2's VanillaK without CB)`,
] as const;

/**
 * `--cb-mode` checked against the backbone (exit 2, one line): only the keys with CB take it;
 * `accepted` names the backbones that do (of the same command and family).
 */
export function checkCbMode(cbMode: CbMode | undefined, backbone: { name: string; keyType: string }, accepted: readonly string[]): CbMode | undefined {
  if (cbMode === undefined || CB_KEY_TYPES.includes(backbone.keyType)) return cbMode;
  throw new BadInputError(
    `--cb-mode ${cbMode} with --backbone ${backbone.name}: only the keys with context broadcasting take it (accepted: ${accepted.join(', ')})`,
  );
}

export const TF32_FLAG = ['--tf32', 'allow TF32 tensor cores in float32 matmuls and convolutions on CUDA (no effect on CPU)'] as const;

/** `--tensorboard` (config, train, pretrain): `--vis-backend tensorboard`, kept as its short name. */
export const TENSORBOARD_FLAG = ['--tensorboard', 'also write TensorBoard event files (<work-dir>/<time>/vis_data/; view with .venv/bin/tensorboard --logdir <work-dir>); the same as --vis-backend tensorboard'] as const;

/** `--vis-backend` (config, train, pretrain, sweep): mmengine's visualisation backends, repeatable. */
export const VIS_BACKEND_FLAG = [
  '--vis-backend <name>',
  `also log to a tracker through mmengine's backend of it: ${VIS_BACKENDS.join(' | ')} (repeatable; wandb offline, into a run folder for wandb sync; mlflow into a local file store; both under <work-dir>/<time>/vis_data/; optional extras: bash scripts/setup-python.sh --extras trackers)`,
] as const;

/** commander's collector of a repeatable option. */
export const addValue = (value: string, previous: string[]): string[] => [...previous, value];

/** `--vis-backend` values, each checked (one line naming the value and what is accepted). */
export const visBackendField = z
  .array(z.string())
  .default([])
  .transform((values, ctx): VisBackend[] => {
    const bad = values.find((v) => !(VIS_BACKENDS as readonly string[]).includes(v));
    if (bad === undefined) return values as VisBackend[];
    ctx.addIssue({ code: 'custom', message: `${quoteValue(bad)} is not a tracker mkey-det knows (accepted: ${VIS_BACKENDS.join(', ')})` });
    return z.NEVER;
  });

/** The trackers of `--tensorboard` and `--vis-backend`, each once, in their order (`--tensorboard` first). */
export function visBackendsFrom(o: { tensorboard: boolean; visBackend: readonly VisBackend[] }): VisBackend[] {
  return [...new Set<VisBackend>([...(o.tensorboard ? (['tensorboard'] as const) : []), ...o.visBackend])];
}

/** The Python module each tracker's mmengine backend imports, and the package that installs it. */
const TRACKER_PACKAGES: Record<VisBackend, { module: string; pip: string }> = {
  tensorboard: { module: 'tensorboard', pip: 'tensorboard' },
  wandb: { module: 'wandb', pip: 'wandb' },
  mlflow: { module: 'mlflow', pip: 'mlflow' },
};

/**
 * Readies a run's trackers: refuses one that is not installed in the Python that trains (exit 3,
 * one line naming the install command: the default setup leaves wandb and mlflow out, and mmengine
 * would fail only at the first logged value, after the model was built; one short Python start,
 * only with trackers), and lets MLflow write its local file store, which MLflow 3 refuses unless
 * MLFLOW_ALLOW_FILE_STORE is set (the training process inherits it from this CLI).
 */
export async function prepareTrackers(backends: readonly VisBackend[] | undefined): Promise<void> {
  if (!backends || backends.length === 0) return;
  if (backends.includes('mlflow')) process.env.MLFLOW_ALLOW_FILE_STORE ??= 'true';
  const python = await checkInterpreter();
  const modules = backends.map((b) => TRACKER_PACKAGES[b].module);
  const probe = await execa(python, ['-c', 'import importlib.util, sys; print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))', ...modules], {
    reject: false,
  });
  const missing = String(probe.stdout ?? '').trim().split(/\s+/).filter(Boolean);
  const first = backends.find((b) => missing.includes(TRACKER_PACKAGES[b].module));
  if (first === undefined) return;
  const pip = pythonInterpreter().source === '.venv' ? '.venv/bin/pip' : `${python} -m pip`;
  throw new MkeyError(`--vis-backend ${first}: ${TRACKER_PACKAGES[first].module} is not installed for ${python}; install it with: ${pip} install ${TRACKER_PACKAGES[first].pip}`, {
    exitCode: ExitCode.environment,
    hint: 'or all trackers at once: bash scripts/setup-python.sh --extras trackers',
  });
}

/** The options `train` and `pretrain` share (core's `RunSettings`): precision, fast paths, CB, overrides, trackers. */
export const runSettingsFields = {
  amp: experimentFields.amp,
  attnImpl: experimentFields.attnImpl,
  keyOrder: experimentFields.keyOrder,
  cbMode: experimentFields.cbMode,
  tf32: experimentFields.tf32,
  cfgOptions: z.array(z.string()).default([]),
  tensorboard: z.boolean().default(false),
  visBackend: visBackendField,
};

export const experimentOptionsSchema = z.object({
  backbone: experimentFields.backbone,
  charts: intOption('--charts', 1, MAX_CHARTS),
  schedule: experimentFields.schedule.optional(),
  data: z.string().min(1, 'a dataset is required: coco, demo or a folder'),
  batchSize: intOption('--batch-size', 1, 1024).optional(),
  seed: intOption('--seed', 0, 2 ** 31 - 1),
  pretrained: z.string().optional(),
  maxEpochs: intOption('--max-epochs', 1, 10_000).optional(),
  maxIters: intOption('--max-iters', 1, 10_000_000).optional(),
  imgScale: z
    .string()
    .transform((s, ctx): [number, number] => {
      const range = `${IMG_SCALE_MIN} to ${IMG_SCALE_MAX} pixels`;
      const m = /^(\d+)x(\d+)$/.exec(s.trim());
      if (!m) {
        ctx.addIssue({ code: 'custom', message: `expected WIDTHxHEIGHT in pixels, each side ${range}, e.g. 512x512` });
        return z.NEVER;
      }
      const [w, h] = [Number(m[1]), Number(m[2])];
      if (![w, h].every((v) => v >= IMG_SCALE_MIN && v <= IMG_SCALE_MAX)) {
        const accepted = `${IMG_SCALE_MIN}x${IMG_SCALE_MIN} to ${IMG_SCALE_MAX}x${IMG_SCALE_MAX}`;
        ctx.addIssue({ code: 'custom', message: `each side must be ${range} (accepted: ${accepted}), e.g. 512x512` });
        return z.NEVER;
      }
      return [w, h];
    })
    .optional(),
  ...runSettingsFields,
});
export type ExperimentOptions = z.infer<typeof experimentOptionsSchema>;

/** Turns parsed options into an Experiment; checks what only makes sense together. */
export function experimentFromOptions(o: ExperimentOptions, opts: { checkPaths: boolean }): Experiment {
  if (o.maxEpochs !== undefined && o.maxIters !== undefined) {
    throw new BadInputError('--max-epochs and --max-iters exclude each other: give one');
  }
  const data = parseDataSpec(o.data);
  if (data.kind === 'dir') data.path = isAbsolute(data.path) ? data.path : resolve(data.path);
  let pretrained = o.pretrained;
  if (pretrained !== undefined) {
    pretrained = resolve(pretrained);
    const shown = quoteValue(o.pretrained);
    // stat (following links), never open: torch.load on a FIFO waits forever for a writer, and on
    // a directory fails deep inside the backbone's init_weights after the run has started.
    const kind = describePath(pretrained, `--pretrained ${shown}`);
    if (kind === undefined) {
      if (opts.checkPaths) throw new BadInputError(`--pretrained ${shown} does not exist`, 'give a local .pth file; nothing is downloaded');
    } else if (kind.kind === 'dir') {
      // a run directory (of `mkey-det pretrain`): its best (else last) checkpoint
      const ckpt = handoffCheckpoint(pretrained);
      if (!ckpt) {
        throw new BadInputError(`--pretrained ${shown} is a folder without a checkpoint (no best_*.pth, no last_checkpoint; expected a .pth file or a finished pretrain run)`);
      }
      pretrained = ckpt;
    } else if (kind.kind !== 'file') {
      // refused by `config` too: a path that exists here and is not a file is a mistake here
      throw new BadInputError(`--pretrained ${shown} is ${kind.what}, not a checkpoint file or run directory (expected a local .pth file)`);
    } else if (kind.size === 0) {
      throw new BadInputError(`--pretrained ${shown} is empty (0 bytes; expected a local .pth checkpoint)`);
    }
  }
  const cfgOptions = cfgOptionPairs(o.cfgOptions);
  const backbone = backboneVariant(o.backbone);
  const cbMode = checkCbMode(o.cbMode, backbone, BACKBONE_VARIANTS.filter((v) => CB_KEY_TYPES.includes(v.keyType)).map((v) => v.name));
  return {
    backbone,
    charts: o.charts,
    schedule: o.schedule ?? defaultSchedule(data),
    data,
    batchSize: o.batchSize ?? defaultBatchSize(data),
    seed: o.seed,
    pretrained,
    maxEpochs: o.maxEpochs,
    maxIters: o.maxIters,
    amp: o.amp,
    imageScale: o.imgScale,
    cfgOptions,
    visBackends: visBackendsFrom(o),
    attnImpl: o.attnImpl,
    keyOrder: o.keyOrder,
    tf32: o.tf32,
    ...(cbMode !== undefined ? { cbMode } : {}),
  };
}
