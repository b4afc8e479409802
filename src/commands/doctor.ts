import { Command } from 'commander';
import { z } from 'zod';
import { outColors as pc } from '../utils/colors.js';
import { runDoctor } from '../core/doctor.js';
import { ExitCode, handleError } from '../utils/errors.js';
import { emit } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';

const doctorOptionsSchema = z.object({ json: z.boolean().default(false) });

export const doctor = new Command('doctor')
  .description('check the Node and Python toolchain: versions, mmcv compiled ops, CUDA devices, the mkey_det plugin')
  .option('--json', 'print the report as JSON')
  .action(async (raw: unknown) => {
    const opts = parseOptions(doctorOptionsSchema, raw);
    try {
      const report = await runDoctor();
      emit(report, opts, () => {
        const lines = report.checks.map(
          (c) => `${c.ok ? pc.green('ok ') : pc.red('bad')} ${c.name.padEnd(18)} ${c.detail}${c.fix ? pc.dim(`  -> ${c.fix}`) : ''}`,
        );
        lines.push(`    ${'cuda'.padEnd(18)} ${report.cuda.available ? report.cuda.devices.join(', ') : 'no CUDA device (CPU only)'}`);
        lines.push(report.ok ? pc.green('all checks passed') : pc.red('some checks failed'));
        return lines.join('\n');
      });
      if (!report.ok) process.exitCode = ExitCode.environment;
    } catch (err) {
      handleError(err, opts);
    }
  });
