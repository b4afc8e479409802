/**
 * Text formats of the report, either task's: Markdown (default), CSV and JSON; number formatting.
 * The task's description (tasks.ts) gives the columns, their decimals and the words.
 */
import { formatDuration, markdownTable } from '../../utils/format.js';
import { renderAnalysisMarkdown, type AnalysisImages } from './analysis.js';
import { valuesOf } from './table.js';
import { baselinesOf, taskOfReport, type AnyReport, type GroupRow, type ReferenceRow, type RunRow, type Shape, type TaskOf } from './types.js';

export const FORMATS = ['md', 'csv', 'json', 'html'] as const;
export type ReportFormat = (typeof FORMATS)[number];

/** `45.5` (one decimal), `80.99` (two). */
export const fmtFixed = (v: number | undefined, decimals: number): string =>
  v === undefined ? '' : (Math.round(v * 10 ** decimals) / 10 ** decimals + 0).toFixed(decimals); // + 0 turns -0 into 0

/** `+0.5`, `-0.3`, `+0.0` (one decimal, AP's); `+0.52` with two. */
export function fmtDelta(v: number | undefined, decimals = 1): string {
  if (v === undefined) return '';
  const r = Math.round(v * 10 ** decimals) / 10 ** decimals + 0;
  return `${r >= 0 ? '+' : ''}${r.toFixed(decimals)}`;
}

/** `45.5` or `45.5 ± 0.2`. */
export function fmtMeanStd(m: number | undefined, s: number | undefined, decimals: number): string {
  if (m === undefined) return '';
  return s === undefined ? fmtFixed(m, decimals) : `${fmtFixed(m, decimals)} ± ${fmtFixed(s, decimals)}`;
}

/** Parameters in millions: `28.3M`, `0.45M`. */
export function fmtParams(n: number | undefined): string {
  if (n === undefined) return '';
  const m = n / 1e6;
  return `${m >= 10 ? m.toFixed(1) : m.toFixed(2)}M`;
}

/** FLOPs: `4.6G` (or `12.3M` below a GFLOP). */
export function fmtFlops(n: number | undefined): string {
  if (n === undefined) return '';
  if (n >= 1e9) return `${(n / 1e9).toFixed(n >= 1e10 ? 1 : 2)}G`;
  return `${(n / 1e6).toFixed(1)}M`;
}

/** A parameter count in millions, no unit: `34.1`, `5.25`. */
export function fmtMillions(n: number | undefined): string {
  if (n === undefined) return '';
  const m = n / 1e6;
  return m >= 10 ? m.toFixed(1) : m.toFixed(2);
}

/** A FLOP count in GFLOPs, no unit: `10.4`, `5.69`, `0.123`. */
export function fmtGiga(n: number | undefined): string {
  if (n === undefined) return '';
  const g = n / 1e9;
  return g >= 10 ? g.toFixed(1) : g >= 1 ? g.toFixed(2) : g.toFixed(3);
}

/** A run's or group's backbone params and FLOPs: with their unit, or in the paper's units (tasks.ts `sizes.paper`). */
export function fmtSizes(task: TaskOf<Shape>, r: { backboneParams?: number; backboneFlops?: number }): [string, string] {
  return task.report.sizes.paper ? [fmtMillions(r.backboneParams), fmtGiga(r.backboneFlops)] : [fmtParams(r.backboneParams), fmtFlops(r.backboneFlops)];
}

/** Reference numbers as the paper prints them (`28`, `4.6`). */
export const asPrinted = (v: number | undefined): string => (v === undefined ? '' : String(v));

/** `45s`, `3m 12s`, `2h 05m`; empty when unknown. */
export const fmtDuration = (s: number | undefined): string => formatDuration(s, '');

export function fmtCharts(c: number | null | undefined): string {
  return c === undefined || c === null ? '' : String(c);
}

export function fmtSeed(s: number | null | undefined): string {
  return s === undefined ? '' : s === null ? 'none' : String(s);
}

export function fmtSeeds(g: Pick<GroupRow, 'seeds'>): string {
  return g.seeds.map(fmtSeed).join(', ');
}

export function fmtEvalAt(r: { eval?: { step: number; by: 'epoch' | 'iter' } }): string {
  if (!r.eval) return '';
  return r.eval.by === 'iter' ? `it ${r.eval.step}` : String(r.eval.step);
}

export function referenceStatus(r: Pick<ReferenceRow, 'note'>): string {
  return r.note ? `reference; ${r.note}` : 'reference';
}

/** The line under the title: what was selected, what the deltas compare to, what the numbers are. */
export function describeSelection(report: AnyReport, task: TaskOf<Shape> = taskOfReport(report)): string {
  const sel = report.selection === 'best' ? task.report.words.best : 'last evaluation (--last)';
  const baselines = baselinesOf(report);
  const perFamily = baselines.filter((b) => b.family !== undefined);
  const base =
    baselines.length === 0
      ? 'no baseline, no deltas'
      : perFamily.length === baselines.length
        ? `deltas vs the family's linear-key configuration (${perFamily.map((b) => `${b.family}: ${b.label}`).join('; ')})`
        : `deltas vs ${baselines.map((b) => `${b.label} (${b.reason})`).join('; ')}`;
  return `Per run: ${sel}; ${base}. ${task.report.words.numbers}`;
}

/** A run's number of one metric (undefined without an evaluation). */
export const runValue = (task: TaskOf<Shape>, r: RunRow<Shape>, key: string): number | undefined => (r.eval ? valuesOf(task, r.eval)[key] : undefined);

// ---------- Markdown ----------

export interface PlotFiles {
  loss?: string;
  lr?: string;
  /** Box and mask AP per evaluation (detection). */
  ap?: string;
  /** Top-1 and top-5 per evaluation (classification). */
  top1?: string;
}

export function renderMarkdown(report: AnyReport, plots: PlotFiles = {}, images: AnalysisImages = {}, task: TaskOf<Shape> = taskOfReport(report)): string {
  const { metrics } = task;
  const { sizes } = task.report;
  const deltas = metrics.filter((c) => c.delta);
  const family = (v: string | undefined) => (task.report.byFamily ? [v ?? ''] : []);
  const metricHeads = metrics.map((c) => c.label);
  const deltaHeads = deltas.map((c) => `Δ${c.label}`);
  // number columns right-aligned
  const numeric = new Set(['Charts', 'n', 'Epoch', 'Seed', 'Train time', ...metricHeads, ...deltaHeads, ...sizes.md]);
  const mdTable = (head: string[], rows: string[][]) => markdownTable(head, rows, (h) => numeric.has(h));

  const out: string[] = ['# mkey-det report', '', describeSelection(report, task), ''];
  out.push(`## Results (${task.report.words.results} %)`, '');
  const head = ['Configuration', ...(task.report.byFamily ? ['Family'] : []), 'Key', 'Charts', 'n', 'Epoch', ...metricHeads, ...deltaHeads, ...sizes.md, 'Train time', 'Status'];
  const rows: string[][] = (report.groups as GroupRow<Shape>[]).map((g) => [
    g.isBaseline ? `${g.label} (baseline)` : g.label,
    ...family(g.family),
    g.keyType ?? '',
    fmtCharts(g.charts),
    String(g.n),
    g.evalAt ?? '',
    ...metrics.map((c) => fmtMeanStd(g.mean[c.key], g.std[c.key], c.decimals)),
    ...deltas.map((c) => (g.isBaseline ? 'base' : fmtDelta(g.delta?.[c.key], c.decimals))),
    ...fmtSizes(task, g),
    fmtDuration(g.trainingSeconds),
    g.status,
  ]);
  for (const r of report.references as ReferenceRow<Shape>[]) {
    rows.push([
      `${r.label} [${r.source}]`,
      ...family(r.family),
      r.keyType ?? '',
      fmtCharts(r.charts),
      '',
      String(r.epochs),
      ...metrics.map((c) => fmtFixed(valuesOf(task, r)[c.key], c.decimals)),
      ...deltas.map(() => ''),
      asPrinted(r.paramsM),
      asPrinted(r.flopsG),
      '',
      referenceStatus(r),
    ]);
  }
  out.push(mdTable(head, rows), '');

  out.push('## Runs', '');
  const runHead = ['Run', 'Configuration', 'Seed', 'Epoch', ...metricHeads, ...deltaHeads, 'Train time', 'Status'];
  const runRows = (report.runs as RunRow<Shape>[]).map((r) => [
    r.label,
    r.group,
    fmtSeed(r.seed),
    fmtEvalAt(r),
    ...metrics.map((c) => fmtFixed(runValue(task, r, c.key), c.decimals)),
    ...deltas.map((c) => (r.isBaseline ? 'base' : fmtDelta(r.delta?.[c.key], c.decimals))),
    fmtDuration(r.trainingSeconds),
    r.status,
  ]);
  out.push(mdTable(runHead, runRows), '');

  const alt: Record<keyof PlotFiles, string> = { loss: 'training loss', lr: 'learning rate', ap: task.report.words.figureAlt, top1: task.report.words.figureAlt };
  const plotLines = (['loss', 'lr', task.report.figure] as const).filter((k) => plots[k]).map((k) => `![${alt[k]}](${plots[k]})`);
  if (plotLines.length) out.push('## Plots', '', ...plotLines, '');
  out.push(...renderAnalysisMarkdown(report.analysis ?? [], images));

  if (report.warnings.length) out.push('## Warnings', '', ...report.warnings.map((w) => `- ${w}`), '');
  out.push(`Generated ${report.generated} by mkey-det report.`);
  return out.join('\n');
}

// ---------- CSV ----------

/** A CSV cell; text that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a
 * leading apostrophe. Numbers, signed deltas such as -0.3 included, stay numbers. */
export function csvCell(v: string | number | undefined | null): string {
  if (v === undefined || v === null) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s) && !/^[+-]?\d+(\.\d+)?$/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Means, standard deviations and deltas: two decimals whatever the tables print (AP one), for the spreadsheet's own sums. */
const stat = (v: number | undefined) => fmtFixed(v, 2);

/** One flat table: a `kind` column tells groups (configurations), runs and reference rows apart. */
export function renderCsv(report: AnyReport, task: TaskOf<Shape> = taskOfReport(report)): string {
  const keys = task.metrics.map((c) => c.key);
  const family = (v: string | undefined) => (task.report.byFamily ? [v] : []);
  const sizes = (r: { backboneParams?: number; backboneFlops?: number }) =>
    task.report.sizes.paper
      ? [r.backboneParams === undefined ? '' : r.backboneParams / 1e6, r.backboneFlops === undefined ? '' : r.backboneFlops / 1e9]
      : [r.backboneParams, r.backboneFlops];
  const head = [
    'kind', 'label', 'configuration', ...(task.report.byFamily ? ['family'] : []), 'key_type', 'charts', 'schedule', 'seed', 'n', 'eval_at',
    ...keys, ...keys.map((k) => `${k}_std`), ...keys.map((k) => `d${k}`),
    'baseline', ...task.report.sizes.csv, 'train_seconds', 'status', 'path',
  ];
  const lines = [head.join(',')];
  const push = (cells: (string | number | undefined | null)[]) => lines.push(cells.map(csvCell).join(','));
  for (const g of report.groups as GroupRow<Shape>[]) {
    push([
      'group', g.label, g.label, ...family(g.family), g.keyType, g.charts ?? '', g.schedule, g.seeds.map(fmtSeed).join(' '), g.n, g.evalAt,
      ...keys.map((k) => stat(g.mean[k])), ...keys.map((k) => stat(g.std[k])), ...keys.map((k) => stat(g.delta?.[k])),
      g.isBaseline ? 'yes' : '', ...sizes(g), g.trainingSeconds !== undefined ? Math.round(g.trainingSeconds) : '', g.status, '',
    ]);
  }
  for (const r of report.runs as RunRow<Shape>[]) {
    push([
      'run', r.label, r.group, ...family(r.family), r.keyType, r.charts ?? '', r.schedule, fmtSeed(r.seed), r.eval ? 1 : 0, fmtEvalAt(r),
      ...task.metrics.map((c) => fmtFixed(runValue(task, r, c.key), c.decimals)), ...keys.map(() => ''), ...keys.map((k) => stat(r.delta?.[k])),
      r.isBaseline ? 'yes' : '', ...sizes(r), r.trainingSeconds !== undefined ? Math.round(r.trainingSeconds) : '', r.status, r.dir,
    ]);
  }
  for (const r of report.references as ReferenceRow<Shape>[]) {
    push([
      'reference', `${r.label} [${r.source}]`, r.label, ...family(r.family), r.keyType, r.charts ?? '', r.schedule, '', '', r.epochs,
      ...task.metrics.map((c) => fmtFixed(valuesOf(task, r)[c.key], c.decimals)), ...keys.map(() => ''), ...keys.map(() => ''),
      '', r.paramsM, r.flopsG, '', referenceStatus(r), '',
    ]);
  }
  return lines.join('\n') + '\n';
}

// ---------- JSON ----------

export function renderJson(report: AnyReport, plots: PlotFiles = {}): string {
  return JSON.stringify({ ok: true, ...report, plotFiles: plots }, null, 2) + '\n';
}
