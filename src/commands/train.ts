import { Command } from 'commander';
import { z } from 'zod';
import { errColors as pc } from '../utils/colors.js';
import { experimentFields } from '../core/experiment.js';
import { formatDuration } from '../core/progress.js';
import { AP_KEYS, train, type RunResult } from '../core/train.js';
import { ExitCode, MkeyError, handleError } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { intOption, parseOptions } from '../utils/options.js';
import { addExperimentOptions, experimentFromOptions, experimentOptionsSchema } from './experiment-options.js';

const trainOptionsSchema = experimentOptionsSchema.extend({
  workDir: z.string().optional(),
  gpus: intOption('--gpus', 0, 1024),
  nnodes: intOption('--nnodes', 1, 100_000),
  nodeRank: intOption('--node-rank', 0, 100_000),
  masterAddr: z.string().regex(/^[A-Za-z0-9.\-:]+$/, 'a host name or IP address'),
  masterPort: intOption('--master-port', 1, 65_535),
  launcher: experimentFields.launcher,
  resume: z.boolean().default(false),
  force: z.boolean().default(false),
  json: z.boolean().default(false),
  verbose: z.boolean().default(false),
});

/** Box and mask AP as the paper prints them (percent, one decimal). */
export function formatMetrics(metrics: Record<string, number | null> | undefined): string {
  if (!metrics) return 'no evaluation';
  const v = (k: string) => (typeof metrics[k] === 'number' ? (100 * (metrics[k] as number)).toFixed(1) : '-');
  return [
    `box  AP ${v(AP_KEYS[0])}  AP50 ${v(AP_KEYS[1])}  AP75 ${v(AP_KEYS[2])}`,
    `mask AP ${v(AP_KEYS[3])}  AP50 ${v(AP_KEYS[4])}  AP75 ${v(AP_KEYS[5])}`,
  ].join('\n');
}

export function resultText(r: RunResult, what: string): string {
  return [
    `${what} ${r.status} in ${formatDuration(r.seconds)}: ${r.workDir}`,
    formatMetrics(r.metrics),
    ...(r.checkpoint ? [`checkpoint: ${r.checkpoint}`] : []),
  ].join('\n');
}

export const trainCommand = addExperimentOptions(
  new Command('train').description(
    'train Mask R-CNN + FPN with a (manifold-key) Swin-T backbone through MMDetection, watch it, and report box and mask AP',
  ),
)
  .option('--work-dir <dir>', 'run directory (default: work_dirs/<backbone>[-c<charts>]-<schedule>-<data>-s<seed>)')
  .option('--gpus <n>', 'processes (GPUs) per node; 0 = one process on whatever device torch sees', '0')
  .option('--nnodes <n>', 'nodes in a multi-node run', '1')
  .option('--node-rank <n>', 'rank of this node', '0')
  .option('--master-addr <host>', 'address of node 0', '127.0.0.1')
  .option('--master-port <port>', 'port on node 0', '29500')
  .option('--launcher <name>', 'none | pytorch (torchrun) | slurm (srun)', 'none')
  .option('--resume', 'continue the run in --work-dir from its last checkpoint', false)
  .option('--force', 'start over in a --work-dir that already holds a run (deletes its checkpoints and logs)', false)
  .option('--json', 'print events as JSON lines and the result as one JSON object', false)
  .option('--verbose', "also stream MMDetection's own log (always kept in <work-dir>/mkey-train.log)", false)
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
  .action(async (raw: unknown) => {
    const opts = parseOptions(trainOptionsSchema, raw);
    try {
      const exp = experimentFromOptions(opts, { checkPaths: true });
      const dataName = exp.data.kind === 'dir' ? 'custom' : exp.data.kind;
      const workDir =
        opts.workDir ??
        `work_dirs/${exp.backbone.name}${exp.backbone.usesCharts ? `-c${exp.charts}` : ''}-${exp.schedule}-${dataName}-s${exp.seed}`;
      const result = await train({
        experiment: exp,
        workDir,
        topology: {
          launcher: opts.launcher,
          gpus: opts.gpus,
          nnodes: opts.nnodes,
          nodeRank: opts.nodeRank,
          masterAddr: opts.masterAddr,
          masterPort: opts.masterPort,
        },
        resume: opts.resume,
        force: opts.force,
        progress: opts.json ? 'json' : process.stderr.isTTY ? 'bar' : 'lines',
        verbose: opts.verbose,
      });
      if (result.status === 'failed') throw new MkeyError(`training failed: ${result.message}`, { hint: `full log: ${result.workDir}/mkey-train.log` });
      emit({ ok: result.status === 'completed', ...result }, opts, () => resultText(result, 'training'));
      if (result.status === 'interrupted') {
        if (!opts.json) logger.warn(result.message ?? 'interrupted');
        process.exitCode = ExitCode.interrupted;
      } else if (!opts.json) logger.success(pc.bold('done'));
    } catch (err) {
      handleError(err, opts);
    }
  });
