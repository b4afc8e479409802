import { Command } from 'commander';
import { z } from 'zod';
import { ProgressView, resultText } from './progress.js';
import { testCheckpoint } from '../core/run/test.js';
import { guardedAction } from '../utils/command.js';
import { ExitCode } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';
import { CFG_OPTIONS_FLAG, cfgOptionPairs, refuseUnregisteredTypes } from './experiment-options.js';
import { checkDistTimeoutEnv, checkProcessKind, launchOptionsSchema } from './run-options.js';
import { RUN_CONFIG_TRUST } from './help-notes.js';

const testOptionsSchema = launchOptionsSchema.pick({ workDir: true, gpus: true, nprocPerNode: true, json: true, verbose: true }).extend({
  checkpoint: z.string({ message: 'required: the .pth file to evaluate' }).min(1),
  config: z.string().optional(),
  nonStrict: z.boolean().default(false),
  cfgOptions: z.array(z.string()).default([]),
});

export const testCommand = new Command('test')
  .description("COCO evaluation (box and mask AP) of a trained checkpoint with MMDetection's tools/test.py")
  .requiredOption('--checkpoint <file>', 'checkpoint written by mkey-det train (e.g. <work-dir>/epoch_12.pth)')
  .option('--config <file>', "the run's config (default: config.py next to the checkpoint)")
  .option('--work-dir <dir>', 'where the evaluation logs go (default: <checkpoint dir>/test-<name>)')
  .option('--gpus <n>', 'evaluate with n processes (GPUs) through torchrun; 0 = one process on whatever device torch sees', '0')
  .option('--nproc-per-node <n>', 'evaluate with n CPU processes through torchrun and gloo (no GPU needed; the images are split over them)', '0')
  .option('--non-strict', "load the checkpoint even when its weights do not fit the config's model (MMDetection's default; the mismatch is only in the log)", false)
  .option(CFG_OPTIONS_FLAG, "override a value of the run's config for this evaluation, parsed by MMDetection's tools/test.py (mmengine's DictAction); keys that load code and unregistered type names are refused; several pairs after one flag", [])
  .option('--json', 'print the result as JSON', false)
  .option('--verbose', "also stream MMDetection's own log", false)
  .addHelpText(
    'after',
    `
${RUN_CONFIG_TRUST}

Exit codes: 0 evaluated, 1 evaluation failed, 2 bad input, 3 Python not set up, 130 interrupted.

Examples:
  mkey-det test --checkpoint work_dirs/demo-swin-t-spatialk/epoch_8.pth
  mkey-det test --checkpoint work_dirs/run/epoch_36.pth --gpus 8 --json
  mkey-det test --checkpoint work_dirs/run/epoch_36.pth --nproc-per-node 2   # two CPU processes
  mkey-det test --checkpoint work_dirs/run/epoch_36.pth --cfg-options test_evaluator.metric=bbox`,
  )
  .action(
    guardedAction(async (raw: unknown) => {
      const opts = parseOptions(testOptionsSchema, raw);
      const cfgOptions = cfgOptionPairs(opts.cfgOptions);
      await refuseUnregisteredTypes(cfgOptions);
      checkProcessKind(opts);
      checkDistTimeoutEnv();
      const result = await testCheckpoint({ ...opts, cpuProcs: opts.nprocPerNode, cfgOptions, observer: new ProgressView(opts.json ? 'silent' : 'lines', logger.info) });
      emit({ ok: result.status === 'completed', ...result }, opts, () => resultText(result, 'evaluation'));
      if (result.status === 'interrupted') process.exitCode = ExitCode.interrupted;
    }),
  );
