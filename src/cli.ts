/** The `mkey-det` command line: one commander Command per file under src/commands/. */
import { Command } from 'commander';
import { analyzeCommand } from './commands/analyze.js';
import { benchCommand } from './commands/bench.js';
import { config } from './commands/config.js';
import { doctor } from './commands/doctor.js';
import { exportCommand } from './commands/export.js';
import { inferCommand } from './commands/infer.js';
import { pretrainCommand } from './commands/pretrain.js';
import { runOnnxCommand } from './commands/run-onnx.js';
import { sweepCommand } from './commands/sweep.js';
import { report } from './commands/report.js';
import { testCommand } from './commands/test.js';
import { trainCommand } from './commands/train.js';
import { handleError } from './utils/errors.js';
import { withUsageErrors } from './utils/command.js';
import { TOOL_VERSION } from './version.js';

export function buildProgram(): Command {
  const program = withUsageErrors(
    new Command('mkey-det')
      .description('Train, compare, export, analyse and report vision-transformer backbones with a manifold key (MMDetection, mmpretrain)')
      .version(TOOL_VERSION),
  );
  for (const cmd of [doctor, config, trainCommand, pretrainCommand, sweepCommand, testCommand, inferCommand, report, exportCommand, runOnnxCommand, benchCommand, analyzeCommand]) {
    // addCommand does not pass these settings down, so each command gets them here.
    program.addCommand(withUsageErrors(cmd));
  }
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => handleError(err));
