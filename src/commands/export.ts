import { Command, Option } from 'commander';
import { z } from 'zod';
import { outColors as pc } from '../utils/colors.js';
import { BACKBONE_NAMES, DEFAULT_CHARTS, MAX_CHARTS, backboneVariant, experimentFields } from '../core/experiment.js';
import {
  DEFAULT_TOLERANCE,
  EXPORT_FORMATS,
  FOLD_TOLERANCE,
  ONNX_OPSET,
  ParityError,
  defaultOutPath,
  exportBackbone,
  type ExportResult,
  type ParityReport,
} from '../core/export/export.js';
import { parseInputShape, parseSizes } from '../core/export/shapes.js';
import { TOOL_VERSION } from '../version.js';
import { guardedAction } from '../utils/command.js';
import { emit, logger } from '../utils/logger.js';
import { intOption, parseOptions, parsedOption } from '../utils/options.js';

const shapeOption = parsedOption(parseInputShape);
const sizesOption = parsedOption(parseSizes);

const toleranceOption = z.coerce.string().transform((s, ctx) => {
  const v = Number(s.trim());
  if (s.trim() === '' || !Number.isFinite(v) || v <= 0 || v >= 1) {
    ctx.addIssue({ code: 'custom', message: 'the tolerance must be a number between 0 and 1, e.g. 1e-4' });
    return z.NEVER;
  }
  return v;
});

const exportOptionsSchema = z.object({
  backbone: experimentFields.backbone,
  charts: intOption('--charts', 1, MAX_CHARTS).optional(),
  checkpoint: z.string().min(1).optional(),
  format: z.enum(EXPORT_FORMATS, { message: `accepted: ${EXPORT_FORMATS.join(', ')}` }),
  input: shapeOption,
  dynamic: z.boolean().default(false),
  fold: z.boolean().default(false),
  out: z.string().min(1).optional(),
  force: z.boolean().default(false),
  checkSizes: sizesOption.optional(),
  tolerance: toleranceOption,
  seed: intOption('--seed', 0, 2 ** 31 - 1),
  flops: z.boolean().default(true),
  json: z.boolean().default(false),
});

const fmtRel = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : v.toExponential(2));
const millions = (n: number): string => `${(n / 1e6).toFixed(2)}M`;
const giga = (n: number): string => `${(n / 1e9).toFixed(2)}G`;

function parityLines(title: string, report: ParityReport): string[] {
  const lines = [`${title} (max|exported - pytorch| / max|pytorch| per output, tolerance ${report.threshold.toExponential(0)}):`];
  for (const c of report.checks) {
    const where = `batch ${c.batch} ${c.size[0]}x${c.size[1]}`.padEnd(22);
    const ok = c.error === null && c.max_rel_diff !== null && c.max_rel_diff <= report.threshold;
    lines.push(`  ${where} ${c.error ? pc.red(c.error) : fmtRel(c.max_rel_diff)} ${ok ? pc.green('ok') : pc.red('FAILED')}`);
  }
  return lines;
}

function summary(res: ExportResult): string {
  const s = res.sidecar;
  const what = [
    s.format === 'onnx' ? `ONNX opset ${s.opset}` : 'TorchScript (traced)',
    s.dynamic ? 'dynamic batch/height/width' : `fixed ${s.input.shape.join('x')}`,
    s.fold ? 'folded keys' : undefined,
    s.weights.source === 'random' ? `random weights (seed ${String(s.weights.seed)})` : 'checkpoint weights',
  ].filter(Boolean);
  const lines = [`${res.path}`, `  ${s.variant}${s.charts ? ` (${s.charts} charts)` : ''}: ${what.join(', ')}`, `  sidecar ${res.sidecarPath}`];
  lines.push(...parityLines('parity vs PyTorch', s.parity));
  if (s.fold_parity) lines.push(...parityLines('fold parity (folded vs unfolded PyTorch)', s.fold_parity));
  const p = s.params;
  lines.push(p.unfolded !== undefined ? `params: ${millions(p.unfolded)} unfolded -> ${millions(p.exported)} folded` : `params: ${millions(p.exported)}`);
  if (s.flops) {
    const f = s.flops;
    const at = `at ${f.size[0]}x${f.size[1]}`;
    lines.push(f.unfolded !== undefined ? `FLOPs ${at}: ${giga(f.unfolded)} unfolded -> ${giga(f.exported)} folded` : `FLOPs ${at}: ${giga(f.exported)}`);
  }
  return lines.join('\n');
}

export const exportCommand = new Command('export')
  .description(
    'export a backbone variant to ONNX (opset 17, for onnxruntime) or TorchScript, checked against PyTorch on real photographs; writes the file and a JSON sidecar <out>.json',
  )
  .addOption(new Option('--backbone <variant>', `backbone variant: ${BACKBONE_NAMES.join(', ')}`).default('swin-t-spatialk'))
  .option('--charts <n>', `number of charts H of the manifold key (1-${MAX_CHARTS}; ignored for swin-t)`)
  .option('--checkpoint <file>', 'backbone or full-detector checkpoint (.pth; keys with or without "backbone."); default: seeded random weights')
  .addOption(new Option('--format <format>', 'onnx, or torchscript (torch.jit.trace; TorchScript is deprecated in recent PyTorch)').default('onnx'))
  .option('--input <BxCxHxW>', 'input shape traced at export', '1x3x224x224')
  .option('--dynamic', 'dynamic batch, height and width (checked at several sizes); default: every dimension fixed', false)
  .option('--fold', 'fold every manifold key into per-chart CxC and token-mixing matrices (same outputs, fewer params/FLOPs)', false)
  .option('-o, --out <file>', 'output file (default: <variant>[-<H>c][-folded][-dynamic].onnx|.pt in the current folder)')
  .option('--force', 'overwrite an existing --out file', false)
  .option('--check-sizes <HxW,...>', 'with --dynamic: sizes checked besides the export size (default 333x517,480x640; a batch of B+1 is always checked)')
  .option('--tolerance <x>', `largest accepted relative difference to PyTorch (folding is held to ${FOLD_TOLERANCE.toExponential(0)})`, DEFAULT_TOLERANCE.toExponential(0))
  .option('--seed <n>', 'seed of the random weights when no --checkpoint is given', '0')
  .option('--no-flops', 'skip counting FLOPs (saves time at large sizes)')
  .option('--json', 'print the result (the sidecar) as JSON', false)
  .addHelpText(
    'after',
    `
The export file is written only after its outputs match the PyTorch model within --tolerance
(metric: max|exported - pytorch| / max|pytorch| per output) at every checked size; with --fold,
the folded model must also match the unfolded one within ${FOLD_TOLERANCE}. ONNX: opset ${ONNX_OPSET}, input
"input" (Bx3xHxW, RGB normalised as MMDetection does), outputs out0..out3 (strides 4-32).
Exit codes: 0 ok, 1 parity failed or the export failed, 2 bad input, 3 Python not set up.

Examples:
  mkey-det export --backbone swin-t-spatialk --charts 8 --dynamic --fold --out spatialk.onnx
  mkey-det export --backbone swin-t --format torchscript --input 1x3x800x1216 --checkpoint epoch_36.pth`,
  )
  .action(
    guardedAction(async (raw: unknown) => {
      const opts = parseOptions(exportOptionsSchema, raw);
      try {
      const variant = backboneVariant(opts.backbone);
      if (opts.charts !== undefined && !variant.usesCharts) logger.warn(`--charts has no effect on ${variant.name} (linear key)`);
      const charts = opts.charts ?? DEFAULT_CHARTS;
      const out = opts.out ?? defaultOutPath({ variant, charts, fold: opts.fold, dynamic: opts.dynamic, format: opts.format });
      if (!opts.json) logger.step(`exporting ${variant.name} to ${opts.format} (${out}); parity is checked before the file is written`);
      const res = await exportBackbone({
        variant,
        charts,
        checkpoint: opts.checkpoint,
        format: opts.format,
        input: opts.input,
        dynamic: opts.dynamic,
        fold: opts.fold,
        out,
        force: opts.force,
        checkSizes: opts.checkSizes,
        tolerance: opts.tolerance,
        seed: opts.seed,
        flops: opts.flops,
        toolVersion: TOOL_VERSION,
      });
      emit({ ok: true, path: res.path, sidecarPath: res.sidecarPath, ...res.sidecar }, opts, () => summary(res));
      if (!opts.json) logger.success(`exported ${variant.name}: parity ${fmtRel(res.sidecar.parity.max_rel_diff)} <= ${opts.tolerance}`);
      } catch (err) {
        // the checks that failed, before the one error line (under --json they are the error's `data`)
        if (err instanceof ParityError && !opts.json) {
          logger.plain([...parityLines('parity vs PyTorch', err.parity), ...(err.foldParity ? parityLines('fold parity', err.foldParity) : [])].join('\n'));
        }
        throw err;
      }
    }),
  );
