/**
 * Text formats of the classification report (Table 1): Markdown and CSV (JSON is format.ts's
 * `renderJson`). Accuracy in percent with two decimals, as the paper prints Table 1.
 */
import { markdownTable } from '../../utils/format.js';
import { ACC_IDS } from './table-classification.js';
import { renderAnalysisMarkdown, type AnalysisImages } from './analysis.js';
import { csvCell, fmtCharts, fmtDuration, fmtEvalAt, fmtSeed, type PlotFiles } from './format.js';
import type { AccId, ClassificationReport, ClsReferenceRow } from './types.js';

export const ACC_TITLES: Record<AccId, string> = { top1: 'Top-1', top5: 'Top-5' };

/** `80.99` (two decimals). */
export const fmt2 = (v: number | undefined): string => (v === undefined ? '' : (Math.round(v * 100) / 100 + 0).toFixed(2));

/** `+0.52`, `-0.30`, `+0.00`. */
export function fmtDelta2(v: number | undefined): string {
  if (v === undefined) return '';
  const r = Math.round(v * 100) / 100 + 0;
  return `${r >= 0 ? '+' : ''}${r.toFixed(2)}`;
}

/** `81.51` or `81.51 ± 0.20`. */
export function fmtMeanStd2(m: number | undefined, s: number | undefined): string {
  if (m === undefined) return '';
  return s === undefined ? fmt2(m) : `${fmt2(m)} ± ${fmt2(s)}`;
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

/** Reference numbers as the paper prints them (`28`, `4.6`). */
const asPrinted = (v: number | undefined): string => (v === undefined ? '' : String(v));

export function referenceStatus(r: ClsReferenceRow): string {
  return r.note ? `reference; ${r.note}` : 'reference';
}

/** The line under the title: what was selected, what the deltas compare to, what the numbers are. */
export function describeClsSelection(report: ClassificationReport): string {
  const sel = report.selection === 'best' ? "best evaluation by top-1 (--best, the paper's rule)" : 'last evaluation (--last)';
  const perFamily = report.baselines.filter((b) => b.family !== undefined);
  const base =
    report.baselines.length === 0
      ? 'no baseline, no deltas'
      : perFamily.length === report.baselines.length
        ? `deltas vs the family's linear-key configuration (${perFamily.map((b) => `${b.family}: ${b.label}`).join('; ')})`
        : `deltas vs ${report.baselines.map((b) => `${b.label} (${b.reason})`).join('; ')}`;
  return (
    `Per run: ${sel}; ${base}. Top-1 / top-5 accuracy in percent (mmpretrain Accuracy), seed groups as mean ± sample std. ` +
    `Params and FLOPs: the run's backbone (its start event; FLOPs on one ${report.flopsInput} image); the paper's rows count the whole classifier.`
  );
}

function mdTable(head: string[], rows: string[][]): string {
  return markdownTable(head, rows, (h) => /^(Top|Δ|n$|Epoch|Seed|Charts|Params|FLOPs|Train time)/.test(h));
}

export function renderClsMarkdown(report: ClassificationReport, plots: PlotFiles = {}, images: AnalysisImages = {}): string {
  const out: string[] = ['# mkey-det report', '', describeClsSelection(report), ''];
  out.push('## Results (image classification, top-1 / top-5 accuracy %)', '');
  const head = [
    'Configuration', 'Family', 'Key', 'Charts', 'n', 'Epoch', ...ACC_IDS.map((id) => ACC_TITLES[id]), 'ΔTop-1', 'ΔTop-5',
    'Params [M]', `FLOPs [G]`, 'Train time', 'Status',
  ];
  const rows: string[][] = report.groups.map((g) => [
    g.isBaseline ? `${g.label} (baseline)` : g.label,
    g.family ?? '',
    g.keyType ?? '',
    fmtCharts(g.charts),
    String(g.n),
    g.evalAt ?? '',
    ...ACC_IDS.map((id) => fmtMeanStd2(g.mean[id], g.std[id])),
    g.isBaseline ? 'base' : fmtDelta2(g.delta?.top1),
    g.isBaseline ? 'base' : fmtDelta2(g.delta?.top5),
    fmtMillions(g.backboneParams),
    fmtGiga(g.backboneFlops),
    fmtDuration(g.trainingSeconds),
    g.status,
  ]);
  for (const r of report.references) {
    rows.push([
      `${r.label} [${r.source}]`,
      r.family,
      r.keyType,
      fmtCharts(r.charts),
      '',
      String(r.epochs),
      ...ACC_IDS.map((id) => fmt2(r.acc[id])),
      '',
      '',
      asPrinted(r.paramsM),
      asPrinted(r.flopsG),
      '',
      referenceStatus(r),
    ]);
  }
  out.push(mdTable(head, rows), '');

  out.push('## Runs', '');
  const runHead = ['Run', 'Configuration', 'Seed', 'Epoch', ...ACC_IDS.map((id) => ACC_TITLES[id]), 'ΔTop-1', 'ΔTop-5', 'Train time', 'Status'];
  const runRows = report.runs.map((r) => [
    r.label,
    r.group,
    fmtSeed(r.seed),
    fmtEvalAt(r),
    ...ACC_IDS.map((id) => fmt2(r.eval?.acc[id])),
    r.isBaseline ? 'base' : fmtDelta2(r.delta?.top1),
    r.isBaseline ? 'base' : fmtDelta2(r.delta?.top5),
    fmtDuration(r.trainingSeconds),
    r.status,
  ]);
  out.push(mdTable(runHead, runRows), '');

  const titles = { loss: 'training loss', lr: 'learning rate', top1: 'top-1 accuracy per evaluation' } as const;
  const plotLines = (['loss', 'lr', 'top1'] as const).filter((k) => plots[k]).map((k) => `![${titles[k]}](${plots[k]})`);
  if (plotLines.length) {
    out.push('## Plots', '', ...plotLines, '');
    if (!plots.top1) out.push('Top-1 / top-5 per evaluation: in the HTML report (`--format html`) and in the JSON report\'s `plots`.', '');
  }
  out.push(...renderAnalysisMarkdown(report.analysis ?? [], images));

  if (report.warnings.length) out.push('## Warnings', '', ...report.warnings.map((w) => `- ${w}`), '');
  out.push(`Generated ${report.generated} by mkey-det report.`);
  return out.join('\n');
}

const num2 = (v: number | undefined) => (v === undefined ? '' : fmt2(v));
const perM = (v: number | undefined) => (v === undefined ? '' : v / 1e6);
const perG = (v: number | undefined) => (v === undefined ? '' : v / 1e9);

/** One flat table: a `kind` column tells groups (configurations), runs and reference rows apart. */
export function renderClsCsv(report: ClassificationReport): string {
  const head = [
    'kind', 'label', 'configuration', 'family', 'key_type', 'charts', 'schedule', 'seed', 'n', 'eval_at',
    ...ACC_IDS, ...ACC_IDS.map((id) => `${id}_std`), ...ACC_IDS.map((id) => `d${id}`),
    'baseline', 'params_m', 'flops_g', 'train_seconds', 'status', 'path',
  ];
  const lines = [head.join(',')];
  const push = (cells: (string | number | undefined | null)[]) => lines.push(cells.map(csvCell).join(','));
  for (const g of report.groups) {
    push([
      'group', g.label, g.label, g.family, g.keyType, g.charts ?? '', g.schedule, g.seeds.map(fmtSeed).join(' '), g.n, g.evalAt,
      ...ACC_IDS.map((id) => num2(g.mean[id])), ...ACC_IDS.map((id) => num2(g.std[id])), ...ACC_IDS.map((id) => num2(g.delta?.[id])),
      g.isBaseline ? 'yes' : '', perM(g.backboneParams), perG(g.backboneFlops), g.trainingSeconds !== undefined ? Math.round(g.trainingSeconds) : '', g.status, '',
    ]);
  }
  for (const r of report.runs) {
    push([
      'run', r.label, r.group, r.family, r.keyType, r.charts ?? '', r.schedule, fmtSeed(r.seed), r.eval ? 1 : 0, fmtEvalAt(r),
      ...ACC_IDS.map((id) => num2(r.eval?.acc[id])), ...ACC_IDS.map(() => ''), ...ACC_IDS.map((id) => num2(r.delta?.[id])),
      r.isBaseline ? 'yes' : '', perM(r.backboneParams), perG(r.backboneFlops), r.trainingSeconds !== undefined ? Math.round(r.trainingSeconds) : '', r.status, r.dir,
    ]);
  }
  for (const r of report.references) {
    push([
      'reference', `${r.label} [${r.source}]`, r.label, r.family, r.keyType, r.charts ?? '', '', '', '', r.epochs,
      ...ACC_IDS.map((id) => num2(r.acc[id])), ...ACC_IDS.map(() => ''), ...ACC_IDS.map(() => ''),
      '', r.paramsM, r.flopsG, '', referenceStatus(r), '',
    ]);
  }
  return lines.join('\n') + '\n';
}
