/**
 * The report's plots (training loss, learning rate, box/mask AP or top-1/top-5), all drawn by
 * matplotlib in one Python child process per report
 * (`python_shim/mkey_det/cli/report_tools.py plot --format png,svg`): each figure is drawn once
 * and saved as the PNG file next to `--out` and/or as the SVG the HTML report inlines.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { execa } from 'execa';
import { checkInterpreter } from '../../python/interpreter.js';
import { pythonShimDir } from '../../utils/paths.js';
import type { PlotFiles } from './format.js';
import type { AnyReport, Shape, TaskOf } from './types.js';

export const reportToolsScript = join(pythonShimDir, 'mkey_det', 'cli', 'report_tools.py');

/** The JSON report_tools.py draws from: its bytes' digest is the plots' tag (`plotsTag`). */
const seriesJson = (series: AnyReport['plots']): string => JSON.stringify({ series });

/** What a report's PNG plots were drawn from: report_tools.py writes it into each PNG (the text `mkey-det report plots`). */
export const plotsTag = (series: AnyReport['plots']): string => createHash('sha256').update(seriesJson(series)).digest('hex');

/**
 * The tag in a PNG plot written by a report (undefined for anything else: another PNG, a link, a
 * folder): a plot of the same runs' report carries the same tag, and is no file of the user's.
 */
export function pngPlotTag(path: string): string | undefined {
  try {
    if (!lstatSync(path).isFile()) return undefined;
    const png = readFileSync(path);
    if (png.subarray(0, 8).toString('hex') !== '89504e470d0a1a0a') return undefined;
    // chunks: length (4), type (4), data, crc (4); matplotlib writes its tEXt chunks before the image data
    for (let at = 8; at + 8 <= png.length; ) {
      const length = png.readUInt32BE(at);
      const type = png.subarray(at + 4, at + 8).toString('latin1');
      if (type === 'IDAT' || type === 'IEND') return undefined;
      if (type === 'tEXt') {
        const text = png.subarray(at + 8, at + 8 + length).toString('latin1');
        const [key, value] = [text.slice(0, text.indexOf('\0')), text.slice(text.indexOf('\0') + 1)];
        if (key === PLOTS_TAG_KEY) return value;
      }
      at += 12 + length;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
const PLOTS_TAG_KEY = 'mkey-det report plots'; // report_tools.py's PLOTS_TAG_KEY

/** The figures, in order: `ap` (box and mask AP) for detection, `top1` (top-1 and top-5) for classification. */
export type PlotName = keyof PlotFiles;

/** The figures report_tools.py draws for a task, in page order: loss, lr, then the evaluation figure (its metrics' pair). */
export const figuresOf = (task: TaskOf<Shape>): readonly PlotName[] => ['loss', 'lr', task.report.figure];

/** The SVG of each figure, ready to inline (report_tools.py's `embeddable_svg`), or why there is none. */
export interface InlineCharts {
  svg: Partial<Record<PlotName, string>>;
  /** Why the charts are missing (one line), when they are. */
  missing?: string;
}

export interface DrawnPlots {
  /** The PNG files written next to the report. */
  files: PlotFiles;
  charts: InlineCharts;
  /** One line for stderr and the report's warnings when something asked for was not drawn. */
  warning?: string;
}

/** No charts, and the one line the page shows instead. */
const missingCharts = (reason: string): InlineCharts => ({ svg: {}, missing: `Charts not drawn (matplotlib draws them): ${reason}` });

/** `reports/summary.html` -> `reports/summary` (the plots become `summary-loss.png`, ...). */
export function plotPrefix(outFile: string): string {
  return join(dirname(outFile), basename(outFile, extname(outFile)));
}

/** What an SVG must look like to go into the page: one `<svg>` element, nothing that runs or loads. */
function inlineable(svg: string): boolean {
  const t = svg.trim();
  return t.startsWith('<svg ') && t.endsWith('</svg>') && !/<script|<foreignObject|href=|<!DOCTYPE|<\?xml/i.test(t);
}

/**
 * Draws the plots in one Python process: the PNG files at `<pngPrefix>-<name>.png` when
 * `pngPrefix` is given, the SVG of each figure (kept in memory) when `svg` is set. Without Python
 * or matplotlib nothing is drawn and `warning` says why (the report itself is still written).
 */
export async function drawPlots(series: AnyReport['plots'], want: { pngPrefix?: string; svg?: boolean }): Promise<DrawnPlots> {
  const formats = [...(want.pngPrefix !== undefined ? ['png'] : []), ...(want.svg ? ['svg'] : [])];
  if (formats.length === 0) return { files: {}, charts: { svg: {} } };
  const what = want.pngPrefix !== undefined && want.svg ? 'PNG plots and HTML charts' : want.svg ? 'HTML charts' : 'PNG plots';
  const fail = (verb: string, reason: string): DrawnPlots => ({
    files: {},
    charts: missingCharts(reason),
    warning: `${what} ${verb}: ${reason}`,
  });
  let py: string;
  try {
    py = await checkInterpreter();
  } catch (err) {
    return fail('skipped', err instanceof Error ? err.message : String(err));
  }
  const tmp = mkdtempSync(join(tmpdir(), 'mkey-report-'));
  try {
    const data = join(tmp, 'series.json');
    writeFileSync(data, seriesJson(series));
    const res = await execa(py, [reportToolsScript, 'plot', '--data', data, '--prefix', join(tmp, 'plot'), '--format', formats.join(',')], {
      reject: false,
      timeout: 300_000,
      env: { MPLBACKEND: 'Agg', MPLCONFIGDIR: join(tmp, 'mpl'), PYTHONDONTWRITEBYTECODE: '1' },
    });
    if (res.exitCode !== 0) {
      const last = String(res.stderr ?? '').trim().split('\n').pop() ?? '';
      return fail('failed', last || `exit ${res.exitCode}`);
    }
    const written = JSON.parse(String(res.stdout).trim().split('\n').pop() ?? '{}') as Partial<Record<'png' | 'svg', Partial<Record<PlotName, string>>>>;
    const files: PlotFiles = {};
    for (const [name, path] of Object.entries(written.png ?? {}) as [PlotName, string][]) {
      const dest = `${want.pngPrefix!}-${name}.png`;
      copyFileSync(path, dest);
      files[name] = dest;
    }
    const charts: InlineCharts = { svg: {} };
    for (const [name, path] of Object.entries(written.svg ?? {}) as [PlotName, string][]) {
      const svg = readFileSync(path, 'utf8').trim();
      if (inlineable(svg)) charts.svg[name] = svg;
    }
    if (want.svg && Object.keys(charts.svg).length === 0) {
      const reason = 'report_tools.py wrote no SVG that can go into the page';
      return { files, charts: missingCharts(reason), warning: `HTML charts failed: ${reason}` };
    }
    return { files, charts };
  } catch (err) {
    return fail('failed', err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
