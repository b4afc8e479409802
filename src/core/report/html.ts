/**
 * The HTML report, either task's: one self-contained file (inline CSS, the plots as matplotlib's
 * SVG inlined, no scripts, no external links); the task's description (tasks.ts) gives the columns,
 * their decimals and the words.
 */
import { renderAnalysisHtml, type AnalysisImages } from './analysis.js';
import { escapeHtml as esc } from './escape.js';
import {
  asPrinted,
  describeSelection,
  fmtCharts,
  fmtDelta,
  fmtDuration,
  fmtEvalAt,
  fmtFixed,
  fmtSeed,
  fmtSeeds,
  fmtSizes,
  referenceStatus,
  runValue,
} from './format.js';
import { figuresOf, type InlineCharts, type PlotName } from './plots.js';
import { valuesOf } from './table.js';
import { taskOfReport, type AnyReport, type GroupRow, type MetricValues, type ReferenceRow, type RunRow, type Shape, type TaskOf } from './types.js';

export const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1b1b1b;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#555;font-size:13px;margin:0 0 12px}
table{border-collapse:collapse;background:#fff;font-size:12.5px;box-shadow:0 0 0 1px #ddd}
th,td{padding:4px 7px;border-bottom:1px solid #e6e6e6;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.baseline td{background:#eef5ff}
tr.reference td{background:#f7f7f2;color:#555;font-style:italic}
.tag{display:inline-block;font-size:10.5px;font-style:normal;padding:0 5px;border-radius:3px;margin-left:4px;background:#ddd;color:#333;vertical-align:1px}
.tag.base{background:#cfe2ff;color:#084298}.tag.ref{background:#e9e4c9;color:#5c4d00}
.d{display:block;font-size:10.5px}.sd{display:block;font-size:10.5px;color:#666}.d.up{color:#137333}.d.down{color:#b3261e}.d.zero{color:#777}
.st{display:inline-block;padding:1px 6px;border-radius:3px;font-size:11.5px;white-space:nowrap}
.st.completed{background:#e6f4ea;color:#137333}.st.running{background:#e8f0fe;color:#1a4fb5}
.st.failed{background:#fce8e6;color:#b3261e}.st.interrupted,.st.stopped{background:#fef7e0;color:#8a5a00}.st.unknown{background:#eee;color:#444}
.notes{color:#8a5a00;font-size:11.5px;margin-top:2px}
.warn{background:#fef7e0;border:1px solid #f3d27a;padding:8px 12px;font-size:13px;max-width:1100px}
.plots{display:flex;flex-wrap:wrap;gap:12px;max-width:1160px}
.plots figure{flex:1 1 560px;min-width:0;margin:0;background:#fff;box-shadow:0 0 0 1px #ddd;padding:4px}.plots figure.wide{flex-basis:100%}
.plots svg{display:block;max-width:100%;height:auto}
h3{font-size:15px;margin:20px 0 6px}h3 .sub{font-weight:400}
.analysis figure{margin:10px 0;background:#fff;box-shadow:0 0 0 1px #ddd;padding:4px;max-width:1160px;width:fit-content}
.analysis img{display:block;max-width:100%;height:auto}.analysis figcaption{color:#555;font-size:12px;padding:4px 2px 0}
footer{margin-top:28px;color:#777;font-size:12px}
.scroll{overflow-x:auto;max-width:100%}
td.cfg{min-width:190px}.seeds{color:#777;font-size:11px}td.status{min-width:150px;max-width:330px;overflow-wrap:anywhere}
`;

function deltaSpan(d: number | undefined, decimals: number): string {
  if (d === undefined) return '';
  const s = fmtDelta(d, decimals);
  const cls = s === fmtDelta(0, decimals) ? 'zero' : s.startsWith('-') ? 'down' : 'up';
  return `<span class="d ${cls}">${esc(s)}</span>`;
}

/** One cell per metric: the value, then `± std` and the delta on small lines below it. */
function metricCells(task: TaskOf<Shape>, values: MetricValues, std: MetricValues = {}, delta?: MetricValues): string {
  return task.metrics
    .map(({ key, decimals }) => {
      const sd = std[key] !== undefined ? `<span class="sd">± ${esc(fmtFixed(std[key], decimals))}</span>` : '';
      return `<td class="num">${esc(fmtFixed(values[key], decimals))}${sd}${deltaSpan(delta?.[key], decimals)}</td>`;
    })
    .join('');
}

export function statusCell(r: Pick<RunRow, 'state' | 'headline' | 'notes'>): string {
  const { state, headline, notes } = r;
  return `<span class="st ${state}">${esc(headline)}</span>${notes.length ? `<div class="notes">${notes.map(esc).join('<br>')}</div>` : ''}`;
}

/** Figures as wide as the page: two panels side by side. */
const WIDE: readonly PlotName[] = ['ap', 'top1'];

/**
 * The "Training curves" section: matplotlib's SVG of each figure inlined (plots.ts), or one line
 * saying why there are none.
 */
export function chartsHtml(charts: InlineCharts, names: readonly PlotName[]): string {
  const figures = names.filter((n) => charts.svg[n]).map((n) => `<figure${WIDE.includes(n) ? ' class="wide"' : ''}>${charts.svg[n]!}</figure>`);
  if (figures.length === 0) return `<h2>Training curves</h2><p class="sub">${esc(charts.missing ?? 'Charts not drawn.')}</p>`;
  return `<h2>Training curves</h2><div class="plots">\n${figures.join('\n')}\n</div>`;
}

export function renderHtml(report: AnyReport, images: AnalysisImages = {}, charts: InlineCharts = { svg: {} }, task: TaskOf<Shape> = taskOfReport(report)): string {
  const { words } = task.report;
  const familyCell = (f: string | undefined) => (task.report.byFamily ? `<td>${esc(f ?? '')}</td>` : '');
  const h: string[] = [];
  h.push('<!doctype html><html lang="en"><head><meta charset="utf-8">');
  h.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  h.push(`<title>${words.page}</title><style>${CSS}</style></head><body>`);
  h.push('<h1>mkey-det report</h1>');
  h.push(`<p class="sub">${esc(describeSelection(report, task))}<br>${words.htmlNote ? `${words.htmlNote} ` : ''}Generated ${esc(report.generated)}.</p>`);
  if (report.warnings.length) h.push(`<div class="warn">${report.warnings.map((w) => esc(w)).join('<br>')}</div>`);

  // Results: one row per configuration (seed groups), then the reference rows.
  h.push(`<h2>Results: ${words.results} (%)</h2>`);
  h.push(`<div class="scroll"><table><thead><tr><th>Configuration</th>${task.report.byFamily ? '<th>Family</th>' : ''}<th title="runs averaged (their seeds)">n (seeds)</th><th>Epoch</th>`);
  h.push(task.metrics.map((c) => `<th>${esc(c.label)}</th>`).join(''));
  const sizeHeads = task.report.sizes.html.map(([title, tip]) => `<th title="${esc(tip)}">${esc(title)}</th>`).join('');
  h.push(`${sizeHeads}<th title="training time (mean per run)">Time</th><th>Status</th></tr></thead><tbody>`);
  for (const g of report.groups as GroupRow<Shape>[]) {
    h.push(`<tr class="${g.isBaseline ? 'baseline' : ''}"><td class="cfg">${esc(g.label)}${g.isBaseline ? '<span class="tag base">baseline</span>' : ''}</td>${familyCell(g.family)}`);
    const seeds = fmtSeeds(g);
    const seedText = seeds ? ` <span class="seeds">(seed${g.seeds.length > 1 ? 's' : ''} ${esc(seeds)})</span>` : '';
    h.push(`<td class="num">${g.n}${seedText}</td><td class="num">${esc(g.evalAt ?? '')}</td>`);
    h.push(metricCells(task, g.mean, g.std, g.isBaseline ? undefined : g.delta));
    const [params, flops] = fmtSizes(task, g);
    h.push(`<td class="num">${esc(params)}</td><td class="num">${esc(flops)}</td><td class="num">${esc(fmtDuration(g.trainingSeconds))}</td>`);
    const only = g.runs.length === 1 ? report.runs.find((r) => r.label === g.runs[0]) : undefined;
    h.push(`<td class="status">${only ? statusCell(only) : esc(g.status)}</td></tr>`);
  }
  for (const r of report.references as ReferenceRow<Shape>[]) {
    const chartsTag = words.referenceCharts && r.charts ? `, ${fmtCharts(r.charts)} charts` : '';
    h.push(`<tr class="reference"><td class="cfg">${esc(r.label)}<span class="tag ref">reference: ${esc(r.source)}${esc(chartsTag)}</span></td>${familyCell(r.family)}`);
    h.push(`<td></td><td class="num">${r.epochs}</td>`);
    h.push(metricCells(task, valuesOf(task, r)));
    // the paper's own params and FLOPs where its table prints them
    const sizes = task.report.sizes.paper ? `<td class="num">${esc(asPrinted(r.paramsM))}</td><td class="num">${esc(asPrinted(r.flopsG))}</td>` : '<td></td><td></td>';
    h.push(`${sizes}<td></td><td class="status">${esc(referenceStatus(r))}</td></tr>`);
  }
  h.push('</tbody></table></div>');

  // Runs.
  h.push('<h2>Runs</h2>');
  h.push('<div class="scroll"><table><thead><tr><th>Run</th><th>Configuration</th><th>Seed</th><th>Epoch</th>');
  h.push(task.metrics.map((c) => `<th>${esc(c.label)}</th>`).join(''));
  h.push('<th>Time</th><th>Status</th></tr></thead><tbody>');
  for (const r of report.runs as RunRow<Shape>[]) {
    h.push(`<tr class="${r.isBaseline ? 'baseline' : ''}"><td title="${esc(r.dir)}">${esc(r.label)}</td><td class="cfg">${esc(r.group)}</td><td class="num">${esc(fmtSeed(r.seed))}</td><td class="num">${esc(fmtEvalAt(r))}</td>`);
    h.push(
      task.metrics
        .map(({ key, decimals }) => `<td class="num">${esc(fmtFixed(runValue(task, r, key), decimals))}${r.isBaseline ? '' : deltaSpan(r.delta?.[key], decimals)}</td>`)
        .join(''),
    );
    h.push(`<td class="num">${esc(fmtDuration(r.trainingSeconds))}</td><td class="status">${statusCell(r)}</td></tr>`);
  }
  h.push('</tbody></table></div>');

  // Plots (matplotlib's, plots.ts).
  h.push(chartsHtml(charts, figuresOf(task)));
  h.push(...renderAnalysisHtml(report.analysis ?? [], images));
  h.push(`<footer>${words.references}</footer>`);
  h.push('</body></html>');
  return h.join('\n') + '\n';
}
