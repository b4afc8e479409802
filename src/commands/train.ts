import { Command } from 'commander';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import type { RunResult } from '../core/run/run.js';
import { train, trainConfig } from '../core/run/train.js';
import { BACKBONE_NAMES, DEFAULT_CHARTS, backboneVariant, experimentCharts, type Experiment } from '../core/experiment.js';
import { readRunRecord } from '../core/run/run-dir.js';
import { VAL_IMAGES, datasetRoot, describePath } from '../core/dataset.js';
import { guardedAction } from '../utils/command.js';
import { shellPath } from '../utils/paths.js';
import { BadInputError, quoteValue } from '../utils/errors.js';
import { parseOptions } from '../utils/options.js';
import { addExperimentOptions, cfgOptionPairs, experimentFromOptions, prepareTrackers, refuseUnregisteredTypes, experimentOptionsSchema, visBackendsFrom } from './experiment-options.js';
import { addLaunchOptions, finishRun, launchOptionsFrom, launchOptionsSchema } from './run-options.js';

export const trainOptionsSchema = experimentOptionsSchema.merge(launchOptionsSchema).extend({ config: z.string().optional() });

/** Experiment options that describe what `--config FILE` already says (refused together with it). */
const SET_BY_CONFIG = ['schedule', 'data', 'batchSize', 'seed', 'pretrained', 'maxEpochs', 'maxIters', 'imgScale', 'cbMode'] as const;
const flagOf = (name: string): string => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `train --config FILE`: checks the file and what may be given with it, then trains it. */
async function trainUserConfig(opts: z.infer<typeof trainOptionsSchema>, cmd: Command): Promise<RunResult> {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  const clash = SET_BY_CONFIG.filter(given);
  if (clash.length > 0) {
    throw new BadInputError(
      `${clash.map(flagOf).join(', ')} cannot be combined with --config: the config sets ${clash.length > 1 ? 'them' : 'it'}`,
      'edit the config, or override values with --cfg-options key=value',
    );
  }
  const configFile = resolve(opts.config!);
  const info = describePath(configFile, `--config ${quoteValue(opts.config!)}`);
  if (!info) throw new BadInputError(`--config ${quoteValue(opts.config!)} does not exist`);
  if (info.kind !== 'file') throw new BadInputError(`--config ${quoteValue(opts.config!)} is ${info.what}, not a config file`);
  const workDir = opts.workDir ?? `work_dirs/${basename(configFile).replace(/\.py$/, '')}`;
  const cfgOptions = cfgOptionPairs(opts.cfgOptions);
  await refuseUnregisteredTypes(cfgOptions);
  // a user's config gets TensorBoard put on top (python_shim's user_config); other trackers go into the config itself
  const other = visBackendsFrom(opts).find((b) => b !== 'tensorboard');
  if (other) throw new BadInputError(`--vis-backend ${other} cannot be put on --config yet (only tensorboard)`, `add it to the config's visualizer.vis_backends, e.g. dict(type='${other === 'wandb' ? 'WandbVisBackend' : 'MLflowVisBackend'}')`);
  await prepareTrackers(visBackendsFrom(opts));
  return trainConfig({
    configFile,
    keyType: given('backbone') ? backboneVariant(opts.backbone).keyType : undefined,
    charts: given('charts') ? opts.charts : undefined,
    amp: opts.amp,
    tensorboard: visBackendsFrom(opts).includes('tensorboard'),
    attnImpl: opts.attnImpl,
    keyOrder: opts.keyOrder,
    tf32: opts.tf32,
    cfgOptions,
    ...launchOptionsFrom(opts, workDir),
  });
}

/** The run directory `train` gives an experiment when no `--work-dir` is given (`sweep` names its cells with it). */
export function trainWorkDir(exp: Pick<Experiment, 'backbone' | 'charts' | 'schedule' | 'data' | 'seed'>): string {
  const dataName = exp.data.kind === 'dir' ? 'custom' : exp.data.kind;
  return `work_dirs/${exp.backbone.name}${exp.backbone.usesCharts ? `-c${exp.charts}` : ''}-${exp.schedule}-${dataName}-s${exp.seed}`;
}

/** What a person runs after a finished training: the commands, ready to paste (paths shell-quoted). */
export function nextSteps(workDir: string, checkpoint: string | undefined, exp: Pick<Experiment, 'backbone' | 'charts' | 'data'>): string[] {
  const { name: backbone } = exp.backbone;
  const rel = shellPath(workDir);
  const lines = ['next:', `  mkey-det report ${rel}   # AP table and plots`];
  if (checkpoint) {
    const ckpt = shellPath(checkpoint);
    const valImages = shellPath(join(datasetRoot(exp.data.kind === 'dir' ? exp.data.path : exp.data.kind), VAL_IMAGES));
    lines.push(`  mkey-det infer ${rel} ${valImages} --out ${shellPath(join(workDir, 'infer'))}   # detections drawn on the val images`);
    lines.push(`  mkey-det test --checkpoint ${ckpt}   # evaluate it again`);
    // --charts and --fold only for a manifold key: export refuses --fold for the linear key
    const charts = experimentCharts(exp);
    const keyArgs = charts !== null ? ` --charts ${charts} --checkpoint ${ckpt} --fold` : ` --checkpoint ${ckpt}`;
    lines.push(`  mkey-det export --backbone ${backbone}${keyArgs}   # ONNX backbone`);
  }
  return lines;
}

/**
 * The experiment a run recorded at its first launch (`mkey-run.json`): after `--resume` the
 * command line names none (its flags are the defaults), so the next steps come from here.
 */
export function recordedExperiment(workDir: string): Pick<Experiment, 'backbone' | 'charts' | 'data'> | undefined {
  const exp = readRunRecord(workDir)?.experiment as { backbone?: unknown; charts?: unknown; data?: Experiment['data'] } | undefined;
  const name = exp?.backbone;
  if (typeof name !== 'string' || !BACKBONE_NAMES.includes(name as never) || typeof exp?.data?.kind !== 'string') return undefined;
  return { backbone: backboneVariant(name), charts: typeof exp.charts === 'number' ? exp.charts : DEFAULT_CHARTS, data: exp.data };
}

export const trainCommand = addLaunchOptions(
  addExperimentOptions(
    new Command('train').description(
      'train Mask R-CNN + FPN with a (manifold-key) Swin-T backbone through MMDetection, watch it, and report box and mask AP',
    ),
  )
    .option('--work-dir <dir>', 'run directory (default: work_dirs/<backbone>[-c<charts>]-<schedule>-<data>-s<seed>, or work_dirs/<config name> with --config)')
    .option('--config <file>', 'train this MMDetection (or mmpretrain) config instead of a generated one, edited or not; --backbone/--charts, --attn-impl, --key-order, --amp, --tf32, --tensorboard and --cfg-options apply on top'),
  'MMDetection',
)
  .addHelpText(
    'after',
    `
Exit codes: 0 completed, 1 training failed, 2 bad input, 3 Python not set up, 130 interrupted
(resume with --resume).

Examples:
  mkey-det train --data demo                                   # the demo, SpatialK, on CPU or 1 GPU
  mkey-det train --backbone swin-t --data demo --max-epochs 2 --gpus 1 --amp bf16
  mkey-det train --data coco --gpus 8 --attn-impl sdpa --key-order auto --tf32   # GPU fast paths (same function)
  mkey-det train --backbone swin-t-spatialk --data coco --gpus 8              # Table 3's row, 1 node
  mkey-det train --backbone swin-t-spatialk --data coco --gpus 8 --launcher slurm --nnodes 1
  mkey-det train --data demo --nproc-per-node 2                # the 8-GPU path (torchrun, DDP) on 2 CPU processes
  mkey-det train --data demo --nproc-per-node 1 --nnodes 2 --node-rank 0 --master-addr 127.0.0.1   # node 0 of 2
  mkey-det train --config my-mask-rcnn.py --cfg-options train_cfg.max_epochs=24   # an edited config
  mkey-det train --config configs/table3/swin-t.py --backbone swin-t-spatialk --charts 4
  mkey-det train --work-dir work_dirs/my-run --resume`,
  )
  .action(
    guardedAction(async (raw: unknown, cmd: Command) => {
      const opts = parseOptions(trainOptionsSchema, raw);
      if (opts.config !== undefined) {
        const result = await trainUserConfig(opts, cmd);
        finishRun(result, opts, 'training', ['next:', `  mkey-det report ${shellPath(result.workDir)}   # table and plots`]);
        return;
      }
      const exp = experimentFromOptions(opts, { checkPaths: true });
      await refuseUnregisteredTypes(exp.cfgOptions);
      await prepareTrackers(exp.visBackends);
      const workDir = opts.workDir ?? trainWorkDir(exp);
      const result = await train({ experiment: exp, ...launchOptionsFrom(opts, workDir) });
      const ran = opts.resume ? recordedExperiment(result.workDir) : exp;
      finishRun(result, opts, 'training', ran ? nextSteps(result.workDir, result.checkpoint, ran) : ['next:', `  mkey-det report ${shellPath(result.workDir)}   # AP table and plots`]);
    }),
  );
