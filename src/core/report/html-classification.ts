/**
 * The HTML report of classification runs (Table 1): one self-contained file with the styles, the
 * status cells and the inlined matplotlib charts of the detection report (html.ts, plots.ts).
 */
import { ACC_IDS } from './table-classification.js';
import { ACC_TITLES, describeClsSelection, fmt2, fmtDelta2, fmtGiga, fmtMillions, referenceStatus } from './format-classification.js';
import { fmtCharts, fmtDuration, fmtEvalAt, fmtSeed, fmtSeeds } from './format.js';
import { renderAnalysisHtml, type AnalysisImages } from './analysis.js';
import { CSS, chartsHtml, statusCell } from './html.js';
import { escapeHtml as esc } from './escape.js';
import { CLASSIFICATION_PLOTS, type InlineCharts } from './plots.js';
import type { AccValues, ClassificationReport } from './types.js';

function deltaSpan(d: number | undefined): string {
  if (d === undefined) return '';
  const s = fmtDelta2(d);
  const cls = s === '+0.00' ? 'zero' : s.startsWith('-') ? 'down' : 'up';
  return `<span class="d ${cls}">${esc(s)}</span>`;
}

/** Mean, then `± std` and the delta on small lines below it. */
function accCells(values: AccValues, std: AccValues = {}, delta?: AccValues): string {
  return ACC_IDS.map((id) => {
    const sd = std[id] !== undefined ? `<span class="sd">± ${esc(fmt2(std[id]))}</span>` : '';
    return `<td class="num">${esc(fmt2(values[id]))}${sd}${deltaSpan(delta?.[id])}</td>`;
  }).join('');
}

export function renderClsHtml(report: ClassificationReport, images: AnalysisImages = {}, charts: InlineCharts = { svg: {} }): string {
  const h: string[] = [];
  h.push('<!doctype html><html lang="en"><head><meta charset="utf-8">');
  h.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  h.push(`<title>mkey-det report: classification</title><style>${CSS}</style></head><body>`);
  h.push('<h1>mkey-det report</h1>');
  h.push(`<p class="sub">${esc(describeClsSelection(report))}<br>Generated ${esc(report.generated)}.</p>`);
  if (report.warnings.length) h.push(`<div class="warn">${report.warnings.map((w) => esc(w)).join('<br>')}</div>`);

  // Results: one row per configuration (seed groups), then the paper's rows.
  h.push('<h2>Results: image classification, top-1 / top-5 accuracy (%)</h2>');
  h.push('<div class="scroll"><table><thead><tr><th>Configuration</th><th>Family</th><th title="runs averaged (their seeds)">n (seeds)</th><th>Epoch</th>');
  h.push(ACC_IDS.map((id) => `<th>${ACC_TITLES[id]}</th>`).join(''));
  h.push(
    `<th title="backbone parameters (runs); whole classifier (paper)">Params [M]</th><th title="backbone FLOPs at ${esc(report.flopsInput)} (runs); paper: fvcore, 224x224">FLOPs [G]</th><th title="training time (mean per run)">Time</th><th>Status</th></tr></thead><tbody>`,
  );
  for (const g of report.groups) {
    h.push(`<tr class="${g.isBaseline ? 'baseline' : ''}"><td class="cfg">${esc(g.label)}${g.isBaseline ? '<span class="tag base">baseline</span>' : ''}</td><td>${esc(g.family ?? '')}</td>`);
    const seeds = fmtSeeds(g);
    const seedText = seeds ? ` <span class="seeds">(seed${g.seeds.length > 1 ? 's' : ''} ${esc(seeds)})</span>` : '';
    h.push(`<td class="num">${g.n}${seedText}</td><td class="num">${esc(g.evalAt ?? '')}</td>`);
    h.push(accCells(g.mean, g.std, g.isBaseline ? undefined : g.delta));
    h.push(`<td class="num">${esc(fmtMillions(g.backboneParams))}</td><td class="num">${esc(fmtGiga(g.backboneFlops))}</td><td class="num">${esc(fmtDuration(g.trainingSeconds))}</td>`);
    const only = g.runs.length === 1 ? report.runs.find((r) => r.label === g.runs[0]) : undefined;
    h.push(`<td class="status">${only ? statusCell(only) : esc(g.status)}</td></tr>`);
  }
  for (const r of report.references) {
    const charts = r.charts ? `, ${fmtCharts(r.charts)} charts` : '';
    h.push(`<tr class="reference"><td class="cfg">${esc(r.label)}<span class="tag ref">reference: ${esc(r.source)}${esc(charts)}</span></td><td>${esc(r.family)}</td>`);
    h.push(`<td></td><td class="num">${r.epochs}</td>`);
    h.push(accCells(r.acc));
    h.push(`<td class="num">${esc(r.paramsM === undefined ? '' : String(r.paramsM))}</td><td class="num">${esc(r.flopsG === undefined ? '' : String(r.flopsG))}</td><td></td><td class="status">${esc(referenceStatus(r))}</td></tr>`);
  }
  h.push('</tbody></table></div>');

  // Runs.
  h.push('<h2>Runs</h2>');
  h.push('<div class="scroll"><table><thead><tr><th>Run</th><th>Configuration</th><th>Seed</th><th>Epoch</th>');
  h.push(ACC_IDS.map((id) => `<th>${ACC_TITLES[id]}</th>`).join(''));
  h.push('<th>Time</th><th>Status</th></tr></thead><tbody>');
  for (const r of report.runs) {
    h.push(`<tr class="${r.isBaseline ? 'baseline' : ''}"><td title="${esc(r.dir)}">${esc(r.label)}</td><td class="cfg">${esc(r.group)}</td><td class="num">${esc(fmtSeed(r.seed))}</td><td class="num">${esc(fmtEvalAt(r))}</td>`);
    h.push(ACC_IDS.map((id) => `<td class="num">${esc(fmt2(r.eval?.acc[id]))}${r.isBaseline ? '' : deltaSpan(r.delta?.[id])}</td>`).join(''));
    h.push(`<td class="num">${esc(fmtDuration(r.trainingSeconds))}</td><td class="status">${statusCell(r)}</td></tr>`);
  }
  h.push('</tbody></table></div>');

  // Curves: loss, lr, then top-1 and top-5 side by side (matplotlib's, plots.ts).
  h.push(chartsHtml(charts, CLASSIFICATION_PLOTS));
  h.push(...renderAnalysisHtml(report.analysis ?? [], images));
  h.push("<footer>Reference rows: the paper's Table 1 (ImageNet-1K, 224x224, 300 epochs, 8 charts) and Table 2 (ViT-B/16, VanillaK without CB); they are not runs of this checkout.</footer>");
  h.push('</body></html>');
  return h.join('\n') + '\n';
}
