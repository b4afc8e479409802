/**
 * PNG plots (training loss, learning rate, box/mask AP) drawn by matplotlib in a Python child
 * process (`python_shim/mkey_det/cli/report_tools.py plot`), written next to the `--out` file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { execa } from 'execa';
import { checkInterpreter } from '../../python/interpreter.js';
import { pythonShimDir } from '../../utils/paths.js';
import type { PlotFiles } from './format.js';
import type { AccuracyPlotSeries, PlotSeries } from './types.js';

export const reportToolsScript = join(pythonShimDir, 'mkey_det', 'cli', 'report_tools.py');

/** `reports/summary.html` -> `reports/summary` (the plots become `summary-loss.png`, ...). */
export function plotPrefix(outFile: string): string {
  return join(dirname(outFile), basename(outFile, extname(outFile)));
}

/**
 * Draws the three PNG files (loss, lr, box/mask AP; classification series carry `top1`/`top5`
 * instead of `apBox`/`apMask`, and a plotter that draws them returns a `top1` file); returns their paths, or a one-line reason they could not be drawn
 * (the report itself is still written).
 */
export async function writePngPlots(series: (PlotSeries | AccuracyPlotSeries)[], prefix: string): Promise<{ files: PlotFiles; warning?: string }> {
  let py: string;
  try {
    py = await checkInterpreter();
  } catch (err) {
    return { files: {}, warning: `PNG plots skipped: ${err instanceof Error ? err.message : String(err)}` };
  }
  const tmp = mkdtempSync(join(tmpdir(), 'mkey-report-'));
  try {
    const data = join(tmp, 'series.json');
    writeFileSync(data, JSON.stringify({ series }));
    const res = await execa(py, [reportToolsScript, 'plot', '--data', data, '--prefix', prefix], {
      reject: false,
      timeout: 300_000,
      env: { MPLBACKEND: 'Agg', MPLCONFIGDIR: join(tmp, 'mpl'), PYTHONDONTWRITEBYTECODE: '1' },
    });
    if (res.exitCode !== 0) {
      const last = String(res.stderr ?? '').trim().split('\n').pop() ?? '';
      return { files: {}, warning: `PNG plots failed (${last || `exit ${res.exitCode}`})` };
    }
    const written = JSON.parse(String(res.stdout).trim().split('\n').pop() ?? '{}') as PlotFiles;
    return { files: written };
  } catch (err) {
    return { files: {}, warning: `PNG plots failed (${err instanceof Error ? err.message.split('\n')[0] : String(err)})` };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
