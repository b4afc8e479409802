import { Command, Option } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { CB_KEY_TYPES, DEFAULT_CHARTS, MAX_CHARTS } from '../core/experiment.js';
import {
  DEMO_PRETRAIN,
  PAPER_IMG_SIZE,
  PAPER_PRETRAIN,
  PRETRAIN_NAMES,
  PRETRAIN_RECIPES,
  PRETRAIN_VARIANTS,
  pretrainFamily,
  pretrainVariant,
  type ClassificationDataSpec,
  type PretrainExperiment,
} from '../core/pretrain/experiment.js';
import { pretrain } from '../core/run/pretrain.js';
import { readRunRecord } from '../core/run/run-dir.js';
import { shellPath } from '../utils/paths.js';
import { guardedAction } from '../utils/command.js';
import { BadInputError } from '../utils/errors.js';
import { intOption, parseOptions } from '../utils/options.js';
import { ATTN_IMPL_FLAG, CB_MODE_FLAG, CFG_OPTIONS_FLAG, KEY_ORDER_FLAG, TENSORBOARD_FLAG, TF32_FLAG, VIS_BACKEND_FLAG, addValue, cfgOptionPairs, checkCbMode, prepareTrackers, refuseUnregisteredTypes, runSettingsFields, visBackendsFrom } from './experiment-options.js';
import { addLaunchOptions, finishRun, launchOptionsFrom, launchOptionsSchema } from './run-options.js';

export const pretrainOptionsSchema = launchOptionsSchema.extend({
  backbone: z.enum(PRETRAIN_NAMES, { message: `accepted: ${PRETRAIN_NAMES.join(', ')}` }),
  charts: intOption('--charts', 1, MAX_CHARTS),
  recipe: z.enum(PRETRAIN_RECIPES, { message: `accepted: ${PRETRAIN_RECIPES.join(', ')}` }).optional(),
  data: z.string().min(1, 'a dataset is required: demo or a folder'),
  batchSize: intOption('--batch-size', 1, 4096).optional(),
  seed: intOption('--seed', 0, 2 ** 31 - 1),
  imgSize: intOption('--img-size', 32, 1024).optional(),
  maxEpochs: intOption('--max-epochs', 1, 10_000).optional(),
  maxIters: intOption('--max-iters', 1, 10_000_000).optional(),
  ...runSettingsFields,
});
type PretrainOptions = z.infer<typeof pretrainOptionsSchema>;

/** Parsed options -> the experiment; checks what only makes sense together (exit 2). */
export function pretrainExperimentFrom(o: PretrainOptions): PretrainExperiment {
  if (o.maxEpochs !== undefined && o.maxIters !== undefined) throw new BadInputError('--max-epochs and --max-iters exclude each other: give one');
  const data: ClassificationDataSpec = o.data === 'demo' ? { kind: 'demo' } : { kind: 'dir', path: isAbsolute(o.data) ? o.data : resolve(o.data) };
  const recipe = o.recipe ?? (data.kind === 'demo' ? 'demo' : 'paper');
  const backbone = pretrainVariant(o.backbone);
  const recipeSize = pretrainFamily(backbone.family).imgSize;
  if (o.imgSize !== undefined && recipe !== 'demo' && o.imgSize !== recipeSize) {
    throw new BadInputError(
      `--img-size ${o.imgSize} with --recipe ${recipe}: the ${recipe} recipe trains ${backbone.name} at ${recipeSize} px (its pipeline is mmpretrain's)`,
      `use --recipe demo for another size, or --cfg-options to edit the pipeline`,
    );
  }
  if (o.attnImpl !== undefined && backbone.family !== 'swin-t') {
    throw new BadInputError(
      `--attn-impl ${o.attnImpl} with --backbone ${backbone.name}: it chooses Swin-T's window attention; ` +
        (backbone.family === 'swinv2-t'
          ? "SwinV2's cosine attention runs as mmpretrain writes it"
          : "mmpretrain's ViT attention already runs torch's fused scaled_dot_product_attention"),
    );
  }
  const cbMode = checkCbMode(
    o.cbMode,
    backbone,
    PRETRAIN_VARIANTS.filter((v) => v.family === backbone.family && CB_KEY_TYPES.includes(v.keyType)).map((v) => v.name),
  );
  const imgSize = o.imgSize ?? (recipe === 'demo' ? DEMO_PRETRAIN.imgSize : recipeSize);
  if (backbone.family === 'swinv2-t' && imgSize % 32 !== 0) {
    throw new BadInputError(`--img-size ${imgSize}: ${backbone.name} halves its 4 x 4 patch grid three times (accepted: a multiple of 32, e.g. 64 or 256)`);
  }
  if (backbone.family.startsWith('vit-') && imgSize % 16 !== 0) {
    throw new BadInputError(`--img-size ${imgSize}: ${backbone.name} cuts the image into 16 x 16 patches (accepted: a multiple of 16, e.g. 64 or 224)`);
  }
  return {
    backbone,
    charts: o.charts,
    recipe,
    data,
    batchSize: o.batchSize ?? (recipe === 'demo' ? DEMO_PRETRAIN.batchSize : PAPER_PRETRAIN.batchSize),
    seed: o.seed,
    imgSize,
    maxEpochs: o.maxEpochs,
    maxIters: o.maxIters,
    amp: o.amp,
    cfgOptions: cfgOptionPairs(o.cfgOptions),
    visBackends: visBackendsFrom(o),
    attnImpl: o.attnImpl,
    keyOrder: o.keyOrder,
    tf32: o.tf32,
    ...(cbMode !== undefined ? { cbMode } : {}),
  };
}

/** The run directory `pretrain` gives an experiment when no `--work-dir` is given (`sweep` names its cells with it). */
export function pretrainWorkDir(exp: Pick<PretrainExperiment, 'backbone' | 'charts' | 'recipe' | 'data' | 'seed'>): string {
  const dataName = exp.data.kind === 'dir' ? 'custom' : exp.data.kind;
  return `work_dirs/pretrain-${exp.backbone.name}${exp.backbone.usesCharts ? `-c${exp.charts}` : ''}-${exp.recipe}-${dataName}-s${exp.seed}`;
}

/** What a person runs after a pretraining: the report, and the detection fine-tune from it (paths shell-quoted). */
function nextSteps(workDir: string, exp: Pick<PretrainExperiment, 'backbone' | 'charts'>): string[] {
  const rel = shellPath(workDir);
  const lines = ['next:', `  mkey-det report ${rel}   # top-1 / top-5 table and curves`];
  if (exp.backbone.family === 'swin-t') {
    const det = exp.backbone.keyType === 'linear' ? 'swin-t' : `swin-t-${exp.backbone.keyType}`;
    const charts = exp.backbone.usesCharts ? ` --charts ${exp.charts}` : '';
    lines.push(`  mkey-det train --backbone ${det}${charts} --pretrained ${rel}   # detection from these weights (Table 3)`);
  }
  return lines;
}

export const pretrainCommand = addLaunchOptions(
  new Command('pretrain')
    .description("train an image classifier (the paper's Tables 1-2) with a (manifold-key) Swin-T or ViT backbone through mmpretrain")
    .addOption(new Option('--backbone <variant>', `backbone: ${PRETRAIN_NAMES.join(', ')}`).default('swin-t-spatialk'))
    .option('--charts <n>', `number of charts H of the manifold key (1-${MAX_CHARTS})`, String(DEFAULT_CHARTS))
    .option('--recipe <name>', `${PRETRAIN_RECIPES.join(' | ')} (default: demo for --data demo, else paper)`)
    .option('--data <demo|dir>', 'dataset: demo (embedded, generated on first use) or an ImageNet-style folder (train/<class>/*, val/<class>/*)', 'demo')
    .option('--batch-size <n>', `images per GPU (per process; default ${PAPER_PRETRAIN.batchSize}, demo ${DEMO_PRETRAIN.batchSize})`)
    .option('--seed <n>', 'random seed', '0')
    .option('--img-size <px>', `square input side (demo recipe only; default ${DEMO_PRETRAIN.imgSize} there, ${PAPER_IMG_SIZE} otherwise, swinv2-t 256)`)
    .option('--max-epochs <n>', `override the recipe's length in epochs (paper ${PAPER_PRETRAIN.epochs}, demo ${DEMO_PRETRAIN.epochs})`)
    .option('--max-iters <n>', 'train for this many iterations instead of epochs (smoke runs)')
    .option('--amp [dtype]', 'automatic mixed precision on CUDA: fp16 (default when given alone) or bf16')
    .option(ATTN_IMPL_FLAG[0], `${ATTN_IMPL_FLAG[1]}; Swin-T only`)
    .option(KEY_ORDER_FLAG[0], KEY_ORDER_FLAG[1])
    .option(CB_MODE_FLAG[0], CB_MODE_FLAG[1])
    .option(TF32_FLAG[0], TF32_FLAG[1], false)
    .option(CFG_OPTIONS_FLAG, 'override any config value, e.g. model.backbone.drop_path_rate=0.1; several pairs after one flag, as MMDetection\'s tools take them', [])
    .option(TENSORBOARD_FLAG[0], TENSORBOARD_FLAG[1], false)
    .option(VIS_BACKEND_FLAG[0], VIS_BACKEND_FLAG[1], addValue, [] as string[])
    .option('--work-dir <dir>', 'run directory (default: work_dirs/pretrain-<backbone>[-c<charts>]-<recipe>-<data>-s<seed>)'),
  'mmpretrain',
)
  .addHelpText(
    'after',
    `
The Swin-T checkpoint loads into detection with every weight, the keys included:
  mkey-det train --backbone swin-t-spatialk --pretrained <pretrain run dir or .pth>

Exit codes: 0 completed, 1 training failed, 2 bad input, 3 Python not set up, 130 interrupted
(resume with --resume).

Examples:
  mkey-det pretrain --data demo                                  # Swin-T + SpatialK on the demo set (CPU minutes)
  mkey-det pretrain --backbone vit-s-vanillak --data demo --max-epochs 3
  mkey-det pretrain --backbone swin-t-spatialk --data /data/imagenet --gpus 4         # Table 1's row (paper recipe)
  mkey-det pretrain --backbone vit-b-vanillak --charts 4 --data /data/imagenet --gpus 4 --recipe stock
  mkey-det pretrain --backbone vit-b-vanillak --charts 4 --cb-mode none --data /data/imagenet --gpus 4   # Table 2's row
  mkey-det pretrain --data /data/imagenet --gpus 4 --attn-impl sdpa --key-order auto --tf32   # GPU fast paths
  mkey-det pretrain --data demo --nproc-per-node 2               # the multi-GPU path on 2 CPU processes (gloo)
  mkey-det pretrain --work-dir work_dirs/pretrain-swin-t-spatialk-c8-demo-demo-s0 --resume`,
  )
  .action(
    guardedAction(async (raw: unknown) => {
      const opts = parseOptions(pretrainOptionsSchema, raw);
      const exp = pretrainExperimentFrom(opts);
      await refuseUnregisteredTypes(exp.cfgOptions);
      await prepareTrackers(exp.visBackends);
      const workDir = opts.workDir ?? pretrainWorkDir(exp);
      const result = await pretrain({ experiment: exp, ...launchOptionsFrom(opts, workDir) });
      // after --resume the flags are the defaults: the run's own experiment is in its record
      const recorded = opts.resume ? (readRunRecord(result.workDir)?.experiment as { backbone?: unknown; charts?: unknown } | undefined) : undefined;
      const name = recorded?.backbone;
      const ran = !opts.resume ? exp : typeof name === 'string' && PRETRAIN_NAMES.includes(name as never) ? { backbone: pretrainVariant(name), charts: typeof recorded?.charts === 'number' ? recorded.charts : DEFAULT_CHARTS } : undefined;
      finishRun(result, opts, 'pretraining', ran ? nextSteps(result.workDir, ran) : ['next:', `  mkey-det report ${shellPath(result.workDir)}   # top-1 / top-5 table and curves`]);
    }),
  );
