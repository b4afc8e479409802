import { Command } from 'commander';
import { relative } from 'node:path';
import { errColors as pc } from '../utils/colors.js';
import { resultText } from '../core/run/progress.js';
import { train } from '../core/run/train.js';
import { guardedAction } from '../utils/command.js';
import { ExitCode, MkeyError } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';
import { addExperimentOptions, experimentFromOptions, experimentOptionsSchema } from './experiment-options.js';
import { addLaunchOptions, launchOptionsFrom, launchOptionsSchema } from './run-options.js';

const trainOptionsSchema = experimentOptionsSchema.merge(launchOptionsSchema);

/** What a person runs after a finished training: the commands, ready to paste. */
function nextSteps(workDir: string, checkpoint: string | undefined, backbone: string, charts: number): string[] {
  const rel = relative(process.cwd(), workDir) || '.';
  const lines = ['next:', `  mkey-det report ${rel}   # AP table and plots`];
  if (checkpoint) {
    const ckpt = relative(process.cwd(), checkpoint);
    lines.push(`  mkey-det test --checkpoint ${ckpt}   # evaluate it again`);
    lines.push(`  mkey-det export --backbone ${backbone} --charts ${charts} --checkpoint ${ckpt} --fold   # ONNX backbone`);
  }
  return lines;
}

export const trainCommand = addLaunchOptions(
  addExperimentOptions(
    new Command('train').description(
      'train Mask R-CNN + FPN with a (manifold-key) Swin-T backbone through MMDetection, watch it, and report box and mask AP',
    ),
  ).option('--work-dir <dir>', 'run directory (default: work_dirs/<backbone>[-c<charts>]-<schedule>-<data>-s<seed>)'),
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
  mkey-det train --backbone swin-t-spatialk --data coco --gpus 8              # Table 3's row, 1 node
  mkey-det train --backbone swin-t-spatialk --data coco --gpus 8 --launcher slurm --nnodes 1
  mkey-det train --work-dir work_dirs/my-run --resume`,
  )
  .action(
    guardedAction(async (raw: unknown) => {
      const opts = parseOptions(trainOptionsSchema, raw);
      const exp = experimentFromOptions(opts, { checkPaths: true });
      const dataName = exp.data.kind === 'dir' ? 'custom' : exp.data.kind;
      const workDir =
        opts.workDir ??
        `work_dirs/${exp.backbone.name}${exp.backbone.usesCharts ? `-c${exp.charts}` : ''}-${exp.schedule}-${dataName}-s${exp.seed}`;
      const result = await train({ experiment: exp, ...launchOptionsFrom(opts, workDir) });
      if (result.status === 'failed') throw new MkeyError(`training failed: ${result.message}`, { hint: `full log: ${result.workDir}/mkey-train.log` });
      emit({ ok: result.status === 'completed', ...result }, opts, () => resultText(result, 'training'));
      if (result.status === 'interrupted') {
        if (!opts.json) logger.warn(result.message ?? 'interrupted');
        process.exitCode = ExitCode.interrupted;
      } else if (!opts.json) {
        logger.success(pc.bold('done'));
        for (const line of nextSteps(result.workDir, result.checkpoint, exp.backbone.name, exp.charts)) logger.info(line);
      }
    }),
  );
