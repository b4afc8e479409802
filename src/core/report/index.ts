/**
 * `mkey-det report`: finds runs, reads their configs (Python) and logs, builds the comparison
 * table and renders it as Markdown, CSV, JSON or a self-contained HTML page (plus PNG plots next
 * to `--out`); matplotlib draws every plot, the PNG files and the HTML's inline SVG, in one Python
 * process (plots.ts).
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { analysisDataUris, analysisLinks, loadAnalyses, type AnalysisImages } from './analysis.js';
import { discoverRuns } from './discover.js';
import { renderCsv, renderJson, renderMarkdown, type PlotFiles, type ReportFormat } from './format.js';
import { renderHtml } from './html.js';
import { describeConfigs } from './identity.js';
import { loadRun, pickConfigFile } from './load.js';
import { drawPlots, figuresOf, plotPrefix, plotsTag, pngPlotTag, type InlineCharts } from './plots.js';
import { buildReport } from './table.js';
import { lockOutFolder } from '../../utils/folder-lock.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import { displayPath } from '../../utils/paths.js';
import { TASKS } from '../tasks.js';
import { taskOfReport, type AnyReport, type RunData, type RunTask, type Selection } from './types.js';

export { FORMATS, type ReportFormat } from './format.js';
export type { AnyReport, ClassificationReport, Report, RunTask } from './types.js';
export type { ReportAnalysis } from './analysis.js';

export interface ReportOptions {
  paths: string[];
  format: ReportFormat;
  out?: string;
  baseline?: string;
  /** Default: `last` for detection, `best` (by top-1, the paper's rule) for classification. */
  selection?: Selection;
  /** Report only the runs of this kind (`--task`); without it, runs of both kinds are refused. */
  task?: RunTask;
  /** Write PNG plots next to `out` (default true when `out` is given). */
  pngPlots?: boolean;
  /** `--analysis`: output folders of `analyze attention` / `analyze qk` (the "Attention analysis" section). */
  analysis?: string[];
  /** Replace an existing `out` file and its plots (`--force`); without it they are refused. */
  force?: boolean;
  now?: Date;
}

export interface ReportResult {
  report: AnyReport;
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

/**
 * Each run's kind: what it says (config, run record, metric names), else the kind of the runs that
 * say (a run with no config and no evaluation yet among classification runs is one of them), else
 * detection, the report's original kind.
 */
export function runTasks(runs: RunData[]): RunTask[] {
  const known = runs.map((r) => r.task).filter((t): t is RunTask => t !== undefined);
  const fallback: RunTask = known.length > 0 && known.every((t) => t === 'classification') ? 'classification' : 'detection';
  return runs.map((r) => r.task ?? fallback);
}

function someLabels(runs: RunData[]): string {
  const names = runs.slice(0, 3).map((r) => r.label);
  return `${runs.length} run${runs.length === 1 ? '' : 's'}: ${names.join(', ')}${runs.length > 3 ? ', ...' : ''}`;
}

/** Reads and tabulates the runs without writing anything. */
export async function collectReport(opts: Pick<ReportOptions, 'paths' | 'baseline' | 'selection' | 'task' | 'now'>): Promise<AnyReport> {
  const dirs = discoverRuns(opts.paths);
  const labels = runLabels(dirs);
  const configs = dirs.map(pickConfigFile);
  const { identities, warning } = await describeConfigs(configs);
  const all: RunData[] = dirs.map((d, i) => loadRun(d, labels[i]!, identities[i]!));
  const tasks = runTasks(all);
  const detection = all.filter((_, i) => tasks[i] === 'detection');
  const classification = all.filter((_, i) => tasks[i] === 'classification');
  let task: RunTask;
  let skipped: string | undefined;
  if (opts.task !== undefined) {
    task = opts.task;
    const other = task === 'detection' ? classification : detection;
    const otherTask = task === 'detection' ? 'classification' : 'detection';
    if ((task === 'detection' ? detection : classification).length === 0) {
      throw new BadInputError(`no ${task} runs in ${opts.paths.map((p) => JSON.stringify(p)).join(', ')}, only ${otherTask} runs (${someLabels(other)})`);
    }
    if (other.length) skipped = `${otherTask} runs left out (--task ${task}): ${someLabels(other)}`;
  } else if (detection.length > 0 && classification.length > 0) {
    throw new BadInputError(
      `the runs mix detection (${someLabels(detection)}) and classification (${someLabels(classification)}); one report is one table: pass --task detection or --task classification`,
    );
  } else {
    task = classification.length > 0 ? 'classification' : 'detection';
  }
  return buildReport(task === 'detection' ? detection : classification, {
    task: TASKS[task],
    ...(opts.selection ? { selection: opts.selection } : {}),
    ...(opts.baseline !== undefined ? { baseline: opts.baseline } : {}),
    warnings: [...(warning ? [warning] : []), ...(skipped ? [skipped] : [])],
    ...(opts.now ? { now: opts.now } : {}),
  });
}

function render(report: AnyReport, format: ReportFormat, plots: PlotFiles, images: AnalysisImages, charts: InlineCharts): string {
  switch (format) {
    case 'md':
      return renderMarkdown(report, plots, images) + '\n';
    case 'csv':
      return renderCsv(report);
    case 'json':
      return renderJson(report, plots);
    case 'html':
      return renderHtml(report, images, charts);
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
  // the analysis folders first: a bad one is refused before the runs are read
  const analysis = opts.analysis?.length ? loadAnalyses(opts.analysis) : undefined;
  const report = await collectReport(opts);
  if (!outFile) return writeReport(opts, report, analysis);
  // one writer per folder: a second report into it at the same moment is refused (its plots would
  // replace this one's); the folder is made for the lock and removed again if the report fails.
  // Checked under the lock, once the task is known (it names the plots), before anything is written.
  // a plot that a report of the same runs drew (its tag says so) is this report's own file, not the user's
  const tag = plotsTag(report.plots);
  const plots = (opts.pngPlots ?? true) ? figuresOf(taskOfReport(report)).map((k) => `${plotPrefix(outFile!)}-${k}.png`).filter((p) => pngPlotTag(p) !== tag) : [];
  const folder = lockOutFolder(dirname(outFile), REPORT_LOCK, 'mkey-det report', `the --out folder ${JSON.stringify(displayPath(dirname(outFile)))}`, () =>
    refuseOverwrite([outFile!, ...plots], { force: opts.force ?? false }),
  );
  try {
    return await writeReport(opts, report, analysis, outFile);
  } catch (err) {
    folder.removeIfMade();
    throw err;
  } finally {
    folder.release();
  }
}

/** The writer lock of a report's --out folder (src/utils/folder-lock.ts, as infer's). */
const REPORT_LOCK = '.mkey-report.lock';

async function writeReport(opts: ReportOptions, report: AnyReport, analysis: ReturnType<typeof loadAnalyses> | undefined, outFile?: string): Promise<ReportResult> {
  if (analysis) {
    report.analysis = analysis.analyses;
    report.warnings.push(...analysis.warnings);
    if (opts.format === 'csv') report.warnings.push('--analysis: the CSV report is the runs\' table only; the attention analysis is in the md, html and json reports');
  }
  let plotFiles: PlotFiles = {};
  let charts: InlineCharts = { svg: {} };
  const png = outFile !== undefined && (opts.pngPlots ?? true);
  if (png || opts.format === 'html') {
    // one Python process draws each figure once: the PNG files next to --out, the SVG the html inlines
    if (png) mkdirSync(dirname(outFile!), { recursive: true });
    const res = await drawPlots(report.plots, { ...(png ? { pngPrefix: plotPrefix(outFile!) } : {}), svg: opts.format === 'html' });
    if (res.warning) report.warnings.push(res.warning);
    charts = res.charts;
    // Paths relative to the report file, so the Markdown links work where the file lies.
    plotFiles = Object.fromEntries(Object.entries(res.files).map(([k, v]) => [k, relative(dirname(outFile!), v)])) as PlotFiles;
  }
  const sections = report.analysis ?? [];
  const images: AnalysisImages =
    opts.format === 'html' ? analysisDataUris(sections) : opts.format === 'md' ? analysisLinks(sections, outFile ? dirname(outFile) : process.cwd()) : {};
  const text = render(report, opts.format, plotFiles, images, charts);
  if (outFile) {
    mkdirSync(dirname(outFile), { recursive: true });
    writeFileSync(outFile, text);
  }
  return { report, text, ...(outFile ? { outFile } : {}), plotFiles };
}
