/** Options shared by `config` and `train`: how an experiment is described on the command line. */
import { Command, Option } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import {
  BACKBONE_NAMES,
  DEFAULT_CHARTS,
  MAX_CHARTS,
  SCHEDULES,
  backboneVariant,
  defaultSchedule,
  experimentFields,
  parseCfgOptionPairs,
  parseDataSpec,
  type Experiment,
} from '../core/experiment.js';
import { BadInputError } from '../utils/errors.js';
import { intOption } from '../utils/options.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addExperimentOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backbone <variant>', `backbone variant: ${BACKBONE_NAMES.join(', ')}`).default('swin-t-spatialk'))
    .option('--charts <n>', `number of charts H of the manifold key (1-${MAX_CHARTS})`, String(DEFAULT_CHARTS))
    .option('--schedule <name>', `${SCHEDULES.join(' | ')} (default: short for --data demo, else 3x)`)
    .option('--data <coco|demo|dir>', 'dataset: coco (data/coco or $MKEY_COCO_ROOT), demo (embedded, generated on first use), or a folder in COCO layout', 'demo')
    .option('--batch-size <n>', 'images per GPU (per process)', '2')
    .option('--seed <n>', 'random seed', '0')
    .option('--pretrained <path>', 'local ImageNet Swin checkpoint for the backbone (official or mmdet-converted)')
    .option('--max-epochs <n>', 'override the schedule length in epochs')
    .option('--max-iters <n>', 'train for this many iterations instead of epochs (smoke runs)')
    .option('--img-scale <WxH>', "train and test at one fixed scale instead of the recipe's multi-scale pipeline (e.g. 512x512)")
    .option('--amp [dtype]', 'automatic mixed precision on CUDA: fp16 (default when given alone, dynamic loss scaling) or bf16')
    .option('--cfg-options <key=value>', 'override any config value, e.g. model.backbone.drop_path_rate=0.1 (repeatable)', collect, []);
}

export const experimentOptionsSchema = z.object({
  backbone: experimentFields.backbone,
  charts: intOption('--charts', 1, MAX_CHARTS),
  schedule: experimentFields.schedule.optional(),
  data: z.string().min(1, 'a dataset is required: coco, demo or a folder'),
  batchSize: intOption('--batch-size', 1, 1024),
  seed: intOption('--seed', 0, 2 ** 31 - 1),
  pretrained: z.string().optional(),
  maxEpochs: intOption('--max-epochs', 1, 10_000).optional(),
  maxIters: intOption('--max-iters', 1, 10_000_000).optional(),
  amp: experimentFields.amp,
  imgScale: z
    .string()
    .regex(/^\d{2,5}x\d{2,5}$/, 'expected WIDTHxHEIGHT in pixels, e.g. 512x512')
    .transform((s) => s.split('x').map(Number) as [number, number])
    .optional(),
  cfgOptions: z.array(z.string()).default([]),
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
    if (opts.checkPaths && !existsSync(pretrained)) {
      throw new BadInputError(`--pretrained ${JSON.stringify(o.pretrained)} does not exist`, 'give a local .pth file; nothing is downloaded');
    }
  }
  let cfgOptions: [string, string][];
  try {
    cfgOptions = parseCfgOptionPairs(o.cfgOptions);
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  return {
    backbone: backboneVariant(o.backbone),
    charts: o.charts,
    schedule: o.schedule ?? defaultSchedule(data),
    data,
    batchSize: o.batchSize,
    seed: o.seed,
    pretrained,
    maxEpochs: o.maxEpochs,
    maxIters: o.maxIters,
    amp: o.amp,
    imageScale: o.imgScale,
    cfgOptions,
  };
}
