/**
 * `mkey-det bench`: runs the chosen suites (each a Python child process, see run-suite.ts), adds
 * the onnxruntime-node measurements of the backbone suite, and writes the report as JSON and
 * markdown. See docs/BENCH.md.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem, platform, release } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import { packageRoot } from '../../utils/paths.js';
import { TRAIN_BASELINE, TRAIN_VARIANTS, writeTrainConfigs } from './configs.js';
import { reportMarkdown } from './markdown.js';
import { runOnnxJobs } from './onnx.js';
import { runSuite } from './run-suite.js';
import {
  BENCH_SUITES,
  type BackboneRow,
  type BenchDevice,
  type BenchProgress,
  type BenchReport,
  type BenchSuite,
  type ModuleRow,
  type SuiteChoice,
  type SuiteResult,
  type TrainOptions,
  type TrainRow,
} from './types.js';

export interface BenchRequest {
  suite: SuiteChoice;
  device: BenchDevice;
  quick: boolean;
  threads?: number;
  /** Train suite settings the user gave (the rest: the device's defaults, resolved by the Python side). */
  train?: TrainOptions;
  /** JSON (or .md) output path; default benchmarks/results/<suite>-<timestamp>.json under the cwd. */
  out?: string;
  toolVersion: string;
  onProgress?: (p: BenchProgress) => void;
  /** Keep the scratch folder (exported models, configs, logs). */
  keepWorkDir?: boolean;
  /** Replace existing result files at `out` (`--force`); without it they are refused before any timing. */
  force?: boolean;
}

export interface BenchOutcome {
  report: BenchReport;
  markdown: string;
  jsonPath: string;
  markdownPath: string;
  workDir: string;
}

const round2 = (v: number): number => Math.round(v * 100) / 100;
const nodeLoad = (): number[] => loadavg().map(round2);

/** `2026-11-21T10-58-12` (local time, file-name safe). */
export function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
}

/** Where the JSON and the markdown go: `--out x.json` -> x.json + x.md; `--out x.md` -> x.json + x.md. */
export function outputPaths(suite: SuiteChoice, out: string | undefined, now = new Date()): { json: string; md: string } {
  const base = out ? resolve(out) : resolve('benchmarks', 'results', `${suite}-${timestamp(now)}.json`);
  const ext = extname(base).toLowerCase();
  const stem = ext === '.json' || ext === '.md' ? base.slice(0, -ext.length) : base;
  return { json: `${stem}.json`, md: `${stem}.md` };
}

function onnxruntimeNodeVersion(): string | null {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? null;
  } catch {
    return null;
  }
}

function checkModule(res: SuiteResult): string | undefined {
  if (res.passed !== false) return undefined;
  const bad = (res.rows as ModuleRow[]).filter((r) => !r.check.passed);
  return `module: ${bad.length} comparison(s) of ours against the literal transcription exceed the tolerance (${bad
    .slice(0, 3)
    .map((r) => `${r.setting} stage ${r.stage} ${r.variant}: ${r.check.max.toExponential(1)}`)
    .join('; ')})`;
}

/** The train suite's variants: the given ones (default all), Swin-T first (the baseline of every ratio). */
export function trainVariants(given: string[] | undefined, all: readonly string[]): string[] {
  const names = given && given.length ? given : [...all];
  return [TRAIN_BASELINE, ...names.filter((v, i) => v !== TRAIN_BASELINE && names.indexOf(v) === i)];
}

function checkTrain(res: SuiteResult): string | undefined {
  const errors = res.errors ?? [];
  if (!errors.length) return undefined;
  const rows = (res.rows as TrainRow[]).filter((r) => r.error && r.error !== 'CUDA out of memory');
  return `train: ${rows.length || errors.length} run(s) failed (${errors.slice(0, 2).join('; ')})`;
}

export async function runBench(req: BenchRequest): Promise<BenchOutcome> {
  const suites: BenchSuite[] = req.suite === 'all' ? [...BENCH_SUITES] : [req.suite];
  const paths = outputPaths(req.suite, req.out);
  refuseOverwrite([paths.json, paths.md], { force: req.force ?? false });
  const python = await checkInterpreter();
  const workDir = mkdtempSync(join(tmpdir(), 'mkey-bench-'));
  const report: BenchReport = {
    tool: 'mkey-det bench',
    tool_version: req.toolVersion,
    created: new Date().toISOString(),
    suite: req.suite,
    device: req.device,
    quick: req.quick,
    threads: req.threads ?? null,
    ok: true,
    failures: [],
    machine: {
      python: null,
      node: {
        version: process.versions.node,
        onnxruntime_node: onnxruntimeNodeVersion(),
        platform: `${platform()} ${release()}`,
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model ?? null,
        total_mem_gib: round2(totalmem() / 2 ** 30),
      },
      loadavg_before: nodeLoad(),
      loadavg_after: [],
    },
    suites: {},
    durations_s: {},
  };
  let stopChild: (() => void) | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    stopChild?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let failed = false;
  let thrown = true;
  try {
    for (const suite of suites) {
      const t0 = Date.now();
      const suiteDir = join(workDir, suite);
      mkdirSync(suiteDir, { recursive: true });
      try {
        const train = suite === 'train' ? { ...req.train, variants: trainVariants(req.train?.variants, TRAIN_VARIANTS) } : undefined;
        const configs = train ? await writeTrainConfigs(suiteDir, train.variants, train) : undefined;
        const res = await runSuite({
          python,
          suite,
          device: req.device,
          quick: req.quick,
          threads: req.threads,
          train,
          workDir: suiteDir,
          configs,
          onProgress: req.onProgress,
          onChild: (stop) => (stopChild = stop),
        });
        stopChild = undefined;
        report.machine.python ??= res.machine;
        if (suite === 'backbone') {
          const repeats = Math.max(...(res.rows as BackboneRow[]).map((r) => r.repeats ?? 0), req.quick ? 2 : 3);
          const total = (res.rows as BackboneRow[]).length + (res.onnx_jobs?.length ?? 0);
          let index = (res.rows as BackboneRow[]).length; // the Python side counted these
          await runOnnxJobs(res, {
            threads: req.threads ?? res.machine.torch_threads,
            runs: repeats,
            warmup: 1,
            onProgress: (row, line) => req.onProgress?.({ suite, index: ++index, total, label: `${row.size}/${row.name}`, line }),
          });
        }
        report.suites[suite] = res;
        const bad = suite === 'module' ? checkModule(res) : suite === 'train' ? checkTrain(res) : undefined;
        if (bad) {
          report.failures.push(bad);
          report.ok = false;
        }
      } catch (err) {
        if (interrupted) throw new MkeyError('bench interrupted', { exitCode: ExitCode.interrupted });
        // Bad input (e.g. --device cuda without CUDA) and a missing environment stop everything.
        if (err instanceof BadInputError || (err instanceof MkeyError && err.exitCode === ExitCode.environment)) throw err;
        failed = true;
        report.ok = false;
        report.failures.push(`${suite}: ${(err as Error).message}`);
      } finally {
        report.durations_s[suite] = Math.round((Date.now() - t0) / 100) / 10;
      }
    }
    thrown = false;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // A suite that failed keeps its logs (the error names them); bad input leaves nothing behind.
    if (!req.keepWorkDir && (thrown || !failed)) rmSync(workDir, { recursive: true, force: true });
  }
  report.machine.loadavg_after = nodeLoad();
  const markdown = reportMarkdown(report);
  for (const p of [paths.json, paths.md]) mkdirSync(dirname(p), { recursive: true });
  writeFileSync(paths.json, JSON.stringify(report, null, 1) + '\n');
  writeFileSync(paths.md, markdown);
  return { report, markdown, jsonPath: paths.json, markdownPath: paths.md, workDir };
}
