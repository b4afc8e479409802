import { Command } from 'commander';
import { extname } from 'node:path';
import { z } from 'zod';
import { FORMATS, generateReport, type ReportFormat } from '../core/report/index.js';
import { TASK_NAMES } from '../core/tasks.js';
import { guardedAction } from '../utils/command.js';
import { BadInputError } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';

const reportOptionsSchema = z
  .object({
    format: z.enum(FORMATS, { message: `accepted: ${FORMATS.join(', ')}` }).optional(),
    out: z.string().min(1, { message: 'give a file name' }).optional(),
    baseline: z.string().min(1, { message: 'give a run directory or label' }).optional(),
    best: z.boolean().default(false),
    last: z.boolean().default(false),
    task: z.enum(TASK_NAMES, { message: `accepted: ${TASK_NAMES.join(', ')}` }).optional(),
    plots: z.boolean().default(true),
    analysis: z.array(z.string().min(1, { message: 'give an output folder of analyze attention or analyze qk' })).optional(),
    force: z.boolean().default(false),
    json: z.boolean().default(false),
  })
  .refine((o) => !(o.best && o.last), { message: '--best and --last exclude each other: pass one', path: ['best'] });

/** `--format` if given, else `--json`, else the extension of `--out`, else Markdown. */
function resolveFormat(o: z.infer<typeof reportOptionsSchema>): ReportFormat {
  if (o.format) return o.format;
  if (o.json) return 'json';
  const ext = o.out ? extname(o.out).slice(1).toLowerCase() : '';
  if (ext === 'markdown') return 'md';
  if (ext === 'htm') return 'html';
  return (FORMATS as readonly string[]).includes(ext) ? (ext as ReportFormat) : 'md';
}

export const report = new Command('report')
  .description('compare runs: box/mask AP table of detection runs (Table 3) or top-1/top-5 table of classification runs (Table 1); seed groups as mean ± std, deltas vs the linear-key baseline, the paper\'s rows as reference; md, csv, json or a self-contained html with plots')
  .argument('<paths...>', 'run directories (a --work-dir) or folders holding runs')
  .option('--format <format>', `output format: ${FORMATS.join(', ')} (default: from --out's extension, else md)`)
  .option('-o, --out <file>', 'write the report to this file (PNG plots go next to it) instead of stdout')
  .option('--baseline <run>', "run directory or label the deltas compare against (default: the only configuration with key 'linear'; for classification runs, one per family)")
  .option('--best', "report each run's best evaluation: by box AP (detection), by top-1 (classification; the default there, the paper's rule)")
  .option('--last', "report each run's last evaluation (the default for detection)")
  .option('--task <kind>', `report only the runs of one kind: ${TASK_NAMES.join(', ')} (runs of both kinds are refused without it)`)
  .option('--no-plots', 'do not write PNG plots next to --out')
  .option('--analysis <dirs...>', "add an \"Attention analysis\" section from output folders of 'analyze attention --out' (attention.json + PNG grids) or 'analyze qk --out' (qk.json + qk.png): per-model / per-layer numbers, the PNGs inlined in html, linked in md, the numbers in json; put it after the run paths")
  .option('--force', 'replace an existing --out file and its PNG plots (without it they are refused before anything is written)')
  .option('--json', 'same as --format json (errors as JSON too)')
  .addHelpText(
    'after',
    `
Exit codes: 0 written, 2 bad input (no run found, a conflicting option, an unknown --baseline,
detection and classification runs mixed without --task, an --analysis folder without
attention.json or qk.json, an --out file or its plots already there without --force).

Examples:
  mkey-det report work_dirs/                                   # every run below, Markdown on stdout
  mkey-det report work_dirs/swin-t-* work_dirs/swin-t-spatialk-* --out report.html
  mkey-det report work_dirs/ --best --format csv -o table3.csv
  mkey-det report work_dirs/ --out table3.html --force             # replace table3.html and table3-*.png
  mkey-det report work_dirs/pretrain-*                          # classification runs: Table 1 (top-1 / top-5)
  mkey-det report work_dirs/ --task classification --out table1.html
  mkey-det report work_dirs/swin-t-* work_dirs/swin-t-spatialk-* --analysis attn/ qk/ --out report.html   # + attention grids, qk table
  mkey-det report work_dirs/pretrain-* --analysis attn-vit/ --format json | jq '.analysis[0].models'`,
  )
  .action(
    guardedAction(async (paths: string[], raw: unknown) => {
      const opts = parseOptions(reportOptionsSchema, raw);
      const format = resolveFormat(opts);
      if (opts.json && format !== 'json') throw new BadInputError(`--json conflicts with --format ${opts.format}: pass one`);
      const res = await generateReport({
        paths,
        format,
        ...(opts.best || opts.last ? { selection: opts.best ? ('best' as const) : ('last' as const) } : {}),
        ...(opts.task !== undefined ? { task: opts.task } : {}),
        pngPlots: opts.plots,
        force: opts.force,
        ...(opts.analysis !== undefined ? { analysis: opts.analysis } : {}),
        ...(opts.out !== undefined ? { out: opts.out } : {}),
        ...(opts.baseline !== undefined ? { baseline: opts.baseline } : {}),
      });
      for (const w of res.report.warnings) logger.warn(w);
      if (res.outFile) {
        logger.success(`report written: ${res.outFile}`);
        for (const f of Object.values(res.plotFiles)) logger.info(`plot: ${f}`);
        emit({ ok: true, out: res.outFile, plots: res.plotFiles }, { json: format === 'json' }, () => res.outFile!);
      } else {
        process.stdout.write(res.text);
      }
    }),
  );
