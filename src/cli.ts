/** The `mkey-det` command line: one commander Command per file under src/commands/. */
import { Command, type CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchCommand } from './commands/bench.js';
import { config } from './commands/config.js';
import { doctor } from './commands/doctor.js';
import { exportCommand } from './commands/export.js';
import { runOnnxCommand } from './commands/run-onnx.js';
import { report } from './commands/report.js';
import { testCommand } from './commands/test.js';
import { trainCommand } from './commands/train.js';
import { ExitCode, handleError } from './utils/errors.js';
import { packageRoot } from './utils/paths.js';

const { version } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };

/** commander's own usage errors (unknown option, missing argument) exit with the bad-input code. */
function exitOnUsageError(err: CommanderError): never {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
    process.exit(ExitCode.ok);
  }
  process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.badInput);
}

export function buildProgram(): Command {
  const program = new Command('mkey-det')
    .description('Train, compare, export and report Swin detection backbones with a manifold key (MMDetection)')
    .version(version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride(exitOnUsageError);
  for (const cmd of [doctor, config, trainCommand, testCommand, report, exportCommand, runOnnxCommand, benchCommand]) {
    // addCommand does not pass these settings down, so each command gets them here.
    program.addCommand(cmd.showHelpAfterError('(run with --help for usage)').exitOverride(exitOnUsageError));
  }
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => handleError(err));
