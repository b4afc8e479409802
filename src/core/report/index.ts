/**
 * `mkey-det report`: finds runs, reads their configs (Python) and logs, builds the comparison
 * table and renders it as Markdown, CSV, JSON or a self-contained HTML page (plus PNG plots next
 * to `--out`).
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { discoverRuns } from './discover.js';
import { renderCsv, renderJson, renderMarkdown, type PlotFiles, type ReportFormat } from './format.js';
import { renderHtml } from './html.js';
import { describeConfigs } from './identity.js';
import { loadRun, pickConfigFile } from './load.js';
import { plotPrefix, writePngPlots } from './plots.js';
import { buildReport } from './table.js';
import type { Report, RunData, Selection } from './types.js';

export { FORMATS, type ReportFormat } from './format.js';
export type { Report } from './types.js';

export interface ReportOptions {
  paths: string[];
  format: ReportFormat;
  out?: string;
  baseline?: string;
  selection: Selection;
  /** Write PNG plots next to `out` (default true when `out` is given). */
  pngPlots?: boolean;
  now?: Date;
}

export interface ReportResult {
  report: Report;
  /** The rendered report (what goes to stdout or `out`). */
  text: string;
  outFile?: string;
  plotFiles: PlotFiles;
}

/** Short unique labels: the folder name, or the path relative to the working directory when names repeat. */
export function runLabels(dirs: string[]): string[] {
  const names = dirs.map((d) => basename(d));
  return dirs.map((d, i) => {
    const n = names[i]!;
    if (names.filter((x) => x === n).length === 1) return n;
    const rel = relative(process.cwd(), d);
    return rel && !rel.startsWith('..') ? rel : d;
  });
}

/** Reads and tabulates the runs without writing anything. */
export async function collectReport(opts: Pick<ReportOptions, 'paths' | 'baseline' | 'selection' | 'now'>): Promise<Report> {
  const dirs = discoverRuns(opts.paths);
  const labels = runLabels(dirs);
  const configs = dirs.map(pickConfigFile);
  const { identities, warning } = await describeConfigs(configs);
  const runs: RunData[] = dirs.map((d, i) => loadRun(d, labels[i]!, identities[i]!));
  return buildReport(runs, {
    selection: opts.selection,
    ...(opts.baseline !== undefined ? { baseline: opts.baseline } : {}),
    warnings: warning ? [warning] : [],
    ...(opts.now ? { now: opts.now } : {}),
  });
}

function render(report: Report, format: ReportFormat, plots: PlotFiles): string {
  switch (format) {
    case 'md':
      return renderMarkdown(report, plots) + '\n';
    case 'csv':
      return renderCsv(report);
    case 'json':
      return renderJson(report, plots);
    case 'html':
      return renderHtml(report);
  }
}

export async function generateReport(opts: ReportOptions): Promise<ReportResult> {
  let outFile: string | undefined;
  if (opts.out !== undefined) {
    outFile = resolve(opts.out);
    if (existsSync(outFile) && statSync(outFile).isDirectory()) {
      throw new BadInputError(`--out ${JSON.stringify(opts.out)} is a directory: give a file name such as ${JSON.stringify(`${opts.out.replace(/\/$/, '')}/report.${opts.format}`)}`);
    }
  }
  const report = await collectReport(opts);
  let plotFiles: PlotFiles = {};
  if (outFile && (opts.pngPlots ?? true)) {
    mkdirSync(dirname(outFile), { recursive: true });
    const res = await writePngPlots(report.plots, plotPrefix(outFile));
    if (res.warning) report.warnings.push(res.warning);
    // Paths relative to the report file, so the Markdown links work where the file lies.
    plotFiles = Object.fromEntries(Object.entries(res.files).map(([k, v]) => [k, relative(dirname(outFile!), v)])) as PlotFiles;
  }
  const text = render(report, opts.format, plotFiles);
  if (outFile) {
    mkdirSync(dirname(outFile), { recursive: true });
    writeFileSync(outFile, text);
  }
  return { report, text, ...(outFile ? { outFile } : {}), plotFiles };
}
