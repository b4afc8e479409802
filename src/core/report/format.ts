/** Text formats of the report: Markdown (default), CSV and JSON; shared number formatting. */
import { formatDuration, markdownCell, markdownTable } from '../../utils/format.js';
import { renderAnalysisMarkdown, type AnalysisImages } from './analysis.js';
import { AP_IDS, type AnyReport, type ApId, type GroupRow, type Report } from './types.js';

export const FORMATS = ['md', 'csv', 'json', 'html'] as const;
export type ReportFormat = (typeof FORMATS)[number];

/** Column titles of the six AP numbers (b = box, m = mask). */
export const AP_TITLES: Record<ApId, string> = {
  APb: 'APb',
  APb50: 'APb50',
  APb75: 'APb75',
  APm: 'APm',
  APm50: 'APm50',
  APm75: 'APm75',
};

export const fmt1 = (v: number | undefined): string => (v === undefined ? '' : (Math.round(v * 10) / 10 + 0).toFixed(1));

/** `+0.5`, `-0.3`, `+0.0`. */
export function fmtDelta(v: number | undefined): string {
  if (v === undefined) return '';
  const r = Math.round(v * 10) / 10 + 0; // + 0 turns -0 into 0
  return `${r >= 0 ? '+' : ''}${r.toFixed(1)}`;
}

/** `45.5` or `45.5 ± 0.2`. */
export function fmtMeanStd(m: number | undefined, s: number | undefined): string {
  if (m === undefined) return '';
  return s === undefined ? fmt1(m) : `${fmt1(m)} ± ${fmt1(s)}`;
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

/** The line under the title: what was selected and what the deltas compare to. */
export function describeSelection(report: Report): string {
  const sel = report.selection === 'best' ? 'best evaluation by box AP (--best)' : 'last evaluation (--last)';
  const base = report.baseline ? `deltas vs ${report.baseline.label} (${report.baseline.reason})` : 'no baseline, no deltas';
  return `Per run: ${sel}; ${base}. AP in percent (COCO, mmdet CocoMetric), seed groups as mean ± sample std.`;
}

// ---------- Markdown ----------

/** The report's tables: number columns right-aligned. */
function mdTable(head: string[], rows: string[][]): string {
  return markdownTable(head, rows, (h) => /^(AP|Δ|n$|Epoch|Seed|Charts|Backbone|Train time)/.test(h));
}

export interface PlotFiles {
  loss?: string;
  lr?: string;
  ap?: string;
  /** Top-1 per evaluation (classification), when the PNG plotter draws it. */
  top1?: string;
}

export function renderMarkdown(report: Report, plots: PlotFiles = {}, images: AnalysisImages = {}): string {
  const out: string[] = ['# mkey-det report', '', describeSelection(report), ''];
  out.push('## Results (Mask R-CNN + FPN, COCO box / mask AP %)', '');
  const head = ['Configuration', 'Key', 'Charts', 'n', 'Epoch', ...AP_IDS.map((id) => AP_TITLES[id]), 'ΔAPb', 'ΔAPm', 'Backbone params', 'Backbone FLOPs', 'Train time', 'Status'];
  const rows: string[][] = report.groups.map((g) => [
    g.isBaseline ? `${g.label} (baseline)` : g.label,
    g.keyType ?? '',
    fmtCharts(g.charts),
    String(g.n),
    g.evalAt ?? '',
    ...AP_IDS.map((id) => fmtMeanStd(g.mean[id], g.std[id])),
    g.isBaseline ? 'base' : fmtDelta(g.delta?.APb),
    g.isBaseline ? 'base' : fmtDelta(g.delta?.APm),
    fmtParams(g.backboneParams),
    fmtFlops(g.backboneFlops),
    fmtDuration(g.trainingSeconds),
    g.status,
  ]);
  for (const r of report.references) {
    rows.push([
      `${r.label} [${r.source}]`,
      r.keyType ?? '',
      fmtCharts(r.charts),
      '',
      String(r.epochs),
      ...AP_IDS.map((id) => fmt1(r.ap[id])),
      '',
      '',
      '',
      '',
      '',
      r.note ? `reference; ${r.note}` : 'reference',
    ]);
  }
  out.push(mdTable(head, rows), '');

  out.push('## Runs', '');
  const runHead = ['Run', 'Configuration', 'Seed', 'Epoch', ...AP_IDS.map((id) => AP_TITLES[id]), 'ΔAPb', 'ΔAPm', 'Train time', 'Status'];
  const runRows = report.runs.map((r) => [
    r.label,
    r.group,
    fmtSeed(r.seed),
    fmtEvalAt(r),
    ...AP_IDS.map((id) => fmt1(r.eval?.ap[id])),
    r.isBaseline ? 'base' : fmtDelta(r.delta?.APb),
    r.isBaseline ? 'base' : fmtDelta(r.delta?.APm),
    fmtDuration(r.trainingSeconds),
    r.status,
  ]);
  out.push(mdTable(runHead, runRows), '');

  const plotLines = (['loss', 'lr', 'ap'] as const)
    .filter((k) => plots[k])
    .map((k) => `![${k === 'ap' ? 'box and mask AP per evaluation' : k === 'lr' ? 'learning rate' : 'training loss'}](${plots[k]})`);
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

const num1 = (v: number | undefined) => (v === undefined ? '' : fmt1(v));
const num2 = (v: number | undefined) => (v === undefined ? '' : (Math.round(v * 100) / 100).toFixed(2));

/** One flat table: a `kind` column tells groups (configurations), runs and reference rows apart. */
export function renderCsv(report: Report): string {
  const head = [
    'kind', 'label', 'configuration', 'key_type', 'charts', 'schedule', 'seed', 'n', 'eval_at',
    ...AP_IDS, ...AP_IDS.map((id) => `${id}_std`), ...AP_IDS.map((id) => `d${id}`),
    'baseline', 'backbone_params', 'backbone_flops', 'train_seconds', 'status', 'path',
  ];
  const lines = [head.join(',')];
  const push = (cells: (string | number | undefined | null)[]) => lines.push(cells.map(csvCell).join(','));
  for (const g of report.groups) {
    push([
      'group', g.label, g.label, g.keyType, g.charts ?? '', g.schedule, g.seeds.map(fmtSeed).join(' '), g.n, g.evalAt,
      ...AP_IDS.map((id) => num2(g.mean[id])), ...AP_IDS.map((id) => num2(g.std[id])), ...AP_IDS.map((id) => num2(g.delta?.[id])),
      g.isBaseline ? 'yes' : '', g.backboneParams, g.backboneFlops, g.trainingSeconds !== undefined ? Math.round(g.trainingSeconds) : '', g.status, '',
    ]);
  }
  for (const r of report.runs) {
    push([
      'run', r.label, r.group, r.keyType, r.charts ?? '', r.schedule, fmtSeed(r.seed), r.eval ? 1 : 0, fmtEvalAt(r),
      ...AP_IDS.map((id) => num1(r.eval?.ap[id])), ...AP_IDS.map(() => ''), ...AP_IDS.map((id) => num2(r.delta?.[id])),
      r.isBaseline ? 'yes' : '', r.backboneParams, r.backboneFlops, r.trainingSeconds !== undefined ? Math.round(r.trainingSeconds) : '', r.status, r.dir,
    ]);
  }
  for (const r of report.references) {
    push([
      'reference', `${r.label} [${r.source}]`, r.label, r.keyType, r.charts ?? '', r.schedule, '', '', r.epochs,
      ...AP_IDS.map((id) => num1(r.ap[id])), ...AP_IDS.map(() => ''), ...AP_IDS.map(() => ''),
      '', '', '', '', r.note ? `reference; ${r.note}` : 'reference', '',
    ]);
  }
  return lines.join('\n') + '\n';
}

// ---------- JSON ----------

export function renderJson(report: AnyReport, plots: PlotFiles = {}): string {
  return JSON.stringify({ ok: true, ...report, plotFiles: plots }, null, 2) + '\n';
}
