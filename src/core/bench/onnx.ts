/**
 * The `onnx` runtime of the backbone suite: the Python side exports the models (through
 * mkey_det.export.core.export_onnx) and writes an input image of the exact size; here each model
 * runs in onnxruntime-node through the export module's runner (`runOnnx`, worker thread), and its
 * latency joins the suite's rows. Anything missing is reported as `unavailable: <reason>`.
 */
import { loadavg } from 'node:os';
import { quantile } from '../../utils/stats.js';
import type { BackboneRow, OnnxJob, SuiteResult, TimeStats } from './types.js';


/** Seconds, from runOnnx's per-run milliseconds. */
export function statsFromMs(runsMs: number[]): TimeStats {
  const runs = runsMs.map((v) => v / 1000);
  const s = [...runs].sort((a, b) => a - b);
  const q1 = quantile(s, 0.25);
  const q3 = quantile(s, 0.75);
  return {
    median: quantile(s, 0.5),
    q1,
    q3,
    iqr: q3 - q1,
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    mean: runs.reduce((a, b) => a + b, 0) / Math.max(runs.length, 1),
    n: runs.length,
    runs,
  };
}

type RunOnnx = (opts: { model: string; images: string[]; threads?: number; runs: number; warmup: number; fit: 'pad' | 'resize' | 'none' }) => Promise<{
  images: { latencyMs: { runs: number[] } }[];
}>;

/** The export module's runner, or the reason it cannot be used. */
async function loadRunner(): Promise<RunOnnx | string> {
  try {
    const mod = (await import('../export/run-onnx.js')) as { runOnnx?: RunOnnx };
    return typeof mod.runOnnx === 'function' ? mod.runOnnx : 'src/core/export/run-onnx.ts has no runOnnx';
  } catch (err) {
    return `the export module's runner cannot be loaded: ${(err as Error).message.split('\n')[0]}`;
  }
}

export interface OnnxRunOptions {
  threads: number;
  runs: number;
  warmup: number;
  onProgress?: (row: BackboneRow, line: string) => void;
}

/** Runs every ONNX job of a backbone result and appends one row per job to `result.rows`. */
export async function runOnnxJobs(result: SuiteResult, opts: OnnxRunOptions): Promise<BackboneRow[]> {
  const jobs: OnnxJob[] = result.onnx_jobs ?? [];
  const rows = result.rows as BackboneRow[];
  const peak = result.machine.matmul_peak?.gflops_median ?? null;
  const runner = jobs.some((j) => !j.unavailable) ? await loadRunner() : 'no model was exported';
  const added: BackboneRow[] = [];
  for (const job of jobs) {
    const row: BackboneRow = {
      size: job.size,
      height: job.height,
      width: job.width,
      model: job.model,
      runtime: 'onnx',
      name: job.name,
      flops: job.flops,
      parity: job.parity ?? null,
      measured_by: 'onnxruntime-node (src/core/export/run-onnx.ts runOnnx), after the PyTorch runtimes',
      loadavg: null,
    };
    const eager = rows.find((r) => r.size === job.size && r.name === 'swin-t/eager');
    if (job.unavailable || typeof runner === 'string' || !job.model_path || !job.image) {
      row.unavailable = job.unavailable ?? (typeof runner === 'string' ? runner : 'no model file');
    } else {
      try {
        const res = await runner({ model: job.model_path, images: [job.image], threads: opts.threads, runs: opts.runs, warmup: opts.warmup, fit: 'none' });
        const lat = statsFromMs(res.images[0]?.latencyMs.runs ?? []);
        row.latency = lat;
        row.repeats = lat.n;
        row.gflops = job.flops ? (2 * job.flops) / lat.median / 1e9 : null;
        row.fraction_of_matmul_peak = row.gflops && peak ? row.gflops / peak : null;
        row.ratio_to_swin_t_eager = eager?.latency ? lat.median / eager.latency.median : undefined;
        row.ratio_spread = null;
      } catch (err) {
        row.unavailable = `onnxruntime-node failed: ${(err as Error).message.split('\n')[0]}`;
      }
    }
    row.loadavg = loadavg().map((v) => Math.round(v * 100) / 100);
    const line = row.latency
      ? `${row.size} ${row.name}: ${(row.latency.median * 1e3).toFixed(1)} ms (IQR ${(row.latency.iqr * 1e3).toFixed(1)}, n=${row.latency.n}), ${row.ratio_to_swin_t_eager?.toFixed(2) ?? '?'}x Swin-T eager, ${row.gflops?.toFixed(1) ?? '?'} GFLOP/s${row.fraction_of_matmul_peak ? ` = ${(100 * row.fraction_of_matmul_peak).toFixed(0)}% of mm peak` : ''}`
      : `${row.size} ${row.name}: unavailable: ${row.unavailable}`;
    rows.push(row);
    added.push(row);
    opts.onProgress?.(row, line);
  }
  return added;
}
