/**
 * Shapes of the benchmark results. The Python suites (python_shim/mkey_det/bench/) produce them;
 * only the fields the CLI reads (tables, ratios, ONNX jobs) are typed, the rest passes through to
 * the JSON file untouched.
 */
import type { AttnImpl, KeyOrder } from '../experiment.js';

export const BENCH_SUITES = ['params', 'module', 'backbone', 'train'] as const;
export type BenchSuite = (typeof BENCH_SUITES)[number];
export const SUITE_CHOICES = [...BENCH_SUITES, 'all'] as const;
export type SuiteChoice = (typeof SUITE_CHOICES)[number];
export const BENCH_DEVICES = ['cpu', 'cuda'] as const;
export type BenchDevice = (typeof BENCH_DEVICES)[number];
/** Training precisions of the train suite: fp32, or mmengine's AmpOptimWrapper with float16/bfloat16 (CUDA only). */
export const BENCH_PRECISIONS = ['fp32', 'fp16', 'bf16'] as const;
export type BenchPrecision = (typeof BENCH_PRECISIONS)[number];

/** What the train suite runs (given values; the rest are the device's defaults, see TRAIN_DEFAULTS). */
export interface TrainOptions {
  /** Backbone names (BACKBONE_NAMES); swin-t is always added first (the baseline of the ratios). */
  variants?: string[];
  batchSizes?: number[];
  precisions?: BenchPrecision[];
  /** Side of the square synthetic images. */
  size?: number;
  /** Timed rounds (every variant takes one step per round). */
  steps?: number;
  /** Untimed warm-up rounds. */
  warmup?: number;
  /** Window attention of the manifold-key variants (`--attn-impl`); the swin-t baseline stays stock. */
  attnImpl?: AttnImpl;
  /** Key computation order of the manifold-key variants (`--key-order`). */
  keyOrder?: KeyOrder;
}

/** The train suite's defaults per device (mirrors mkey_det.bench.train.DEFAULTS; --quick has its own). */
export const TRAIN_DEFAULTS: Record<BenchDevice, { batchSizes: number[]; precisions: BenchPrecision[]; size: number; warmup: number; steps: number }> = {
  cpu: { batchSizes: [2], precisions: ['fp32'], size: 384, warmup: 3, steps: 40 },
  // fp16, not bf16: mmcv 2.1.0's RoIAlign CUDA kernel has no bfloat16 (Mask R-CNN under bf16 autocast fails there)
  cuda: { batchSizes: [2, 8], precisions: ['fp32', 'fp16'], size: 1024, warmup: 5, steps: 20 },
};

/** Distribution of repeated timings (seconds), as `mkey_det.bench.common.stats` gives it. */
export interface TimeStats {
  median: number;
  q1: number;
  q3: number;
  iqr: number;
  min: number;
  max: number;
  mean: number;
  n: number;
  runs: number[];
}

export interface Ratio {
  median_ratio: number;
  round_median: number;
  round_min: number;
  round_max: number;
}

export interface MatmulPeak {
  n: number;
  gflops_median: number;
  gflops_best: number;
}

export interface PythonMachine {
  cpu_model: string | null;
  logical_cores: number | null;
  affinity_cores: number | null;
  ram_gib: number | null;
  python: string;
  torch_threads: number;
  torch_interop_threads: number;
  mkl: boolean;
  mkldnn: boolean;
  device: string;
  loadavg: number[] | null;
  loadavg_after?: number[] | null;
  versions: Record<string, string | null>;
  matmul_peak?: MatmulPeak;
  /** --device cuda: the GPU (mkey_det.bench.common.machine_info). */
  cuda?: { name: string; total_memory_gib: number; capability: string; cuda: string | null };
  [key: string]: unknown;
}

export interface FlopCount {
  params: number;
  flops: number;
}

export interface ParamsRow {
  size: string;
  variant: string;
  label: string;
  charts: number | null;
  imagenet_head: boolean;
  paper: FlopCount;
  fast: FlopCount | null;
  folded: FlopCount | null;
  table1: { params_m: number; flops_g: number } | null;
  ratio_to_swin_t?: { params: number; flops_paper: number; flops_fast: number | null; flops_folded: number };
  loadavg: number[] | null;
}

export interface ModuleCheck {
  output: number;
  input_grad: number;
  max_grad: number;
  max: number;
  passed: boolean;
  tolerance: number;
  param_grads: Record<string, number>;
}

export interface ModuleRow {
  setting: string;
  height: number;
  width: number;
  batch: number;
  stage: number;
  dim: number;
  batch_windows: number;
  tokens: number;
  variant: string;
  ours_path: string;
  check: ModuleCheck;
  timing: { times: Record<string, TimeStats>; ratios: Record<string, Ratio>; repeats: number };
  cost_model: { paper_macs: number; folded_macs: number; predicted_fold_speedup: number };
  gflops: Record<string, number>;
  loadavg: number[] | null;
}

export interface BackboneRow {
  size: string;
  height: number;
  width: number;
  model: string;
  runtime: string;
  name: string;
  flops: number | null;
  parity: number | null;
  latency?: TimeStats;
  repeats?: number;
  gflops?: number | null;
  fraction_of_matmul_peak?: number | null;
  ratio_to_swin_t_eager?: number;
  ratio_spread?: { min: number; max: number } | null;
  unavailable?: string;
  note?: string | null;
  measured_by?: string;
  loadavg: number[] | null;
}

export interface OnnxJob {
  size: string;
  height: number;
  width: number;
  model: string;
  runtime: 'onnx';
  name: string;
  flops: number | null;
  model_path?: string;
  image?: string;
  parity?: number | null;
  unavailable?: string;
}

export interface TrainRatios {
  /**
   * Geometric mean of the per-round ratios (step times taken in the same interleaved round),
   * the highest and lowest 10% dropped (mkey_det.bench.common.ratio_spread).
   */
  time: number | null;
  /** 95% bootstrap interval of `time` over the rounds. */
  time_ci?: [number, number] | null;
  /** Ratio of the median step times. */
  time_of_medians?: number | null;
  /** Median of the per-round ratios. */
  time_round_median?: number | null;
  time_min: number | null;
  images_per_s?: number | null;
  /** Peak memory ratio: CUDA max_memory_allocated on cuda, peak RSS on cpu. */
  memory?: number | null;
  peak_rss: number | null;
  train_rss_increase: number | null;
  params: number | null;
  flops_backbone: number | null;
  flops_backbone_paper: number | null;
  flops_detector: number | null;
  /** FLOPs of one whole fp32 training step (forward + backward, torch's FlopCounterMode), variant / Swin-T; absent in results of older versions. */
  flops_step?: number | null;
}

/** One (variant, batch, precision) of the train suite; `error` set (and no timings) when it failed, e.g. "CUDA out of memory". */
export interface TrainRow {
  variant: string;
  key_type: string;
  charts: number | null;
  batch: number;
  precision: BenchPrecision;
  size: number;
  error?: string;
  /** An explanation of a known error (e.g. bf16 in mmcv's roi_align). */
  note?: string;
  step_s?: TimeStats;
  images_per_s?: number | null;
  /** GiB: CUDA max_memory_allocated (peak_mem_kind 'cuda_max_allocated') or the process's peak RSS ('rss'). */
  peak_mem_gib?: number;
  peak_mem_kind?: 'cuda_max_allocated' | 'rss';
  cuda_peak_allocated_mib?: number;
  cuda_peak_reserved_mib?: number;
  peak_rss_mib?: number;
  rss_before_steps_mib?: number | null;
  train_rss_increase_mib?: number | null;
  params?: number;
  losses_finite?: boolean;
  optim_wrapper?: string | null;
  /** The window attention and key order the variant's config asked for (absent/eager/null: the defaults). */
  attn_impl?: string;
  key_order?: string | null;
  /** The memory pass failed for this row (its timing is kept). */
  memory_error?: string;
  ratios: TrainRatios | null;
  loadavg: number[] | null;
}

export interface TrainSettings {
  variants: string[];
  batch_sizes: number[];
  precisions: BenchPrecision[];
  size: number;
  warmup: number;
  steps: number;
}

export interface SuiteResult {
  suite: BenchSuite;
  device: string;
  quick: boolean;
  machine: PythonMachine;
  rows: unknown[];
  /** module suite */
  passed?: boolean;
  target?: { target: number; met_everywhere: boolean; cells: { setting: string; stage: number; variant: string; measured: number; fold_always: number | null; flop_bound: number; met: boolean }[] };
  /** backbone suite */
  onnx_jobs?: OnnxJob[];
  matmul_peak_before?: MatmulPeak;
  matmul_peak_after?: MatmulPeak;
  /** train suite */
  settings?: TrainSettings;
  /** train suite: failures other than CUDA out of memory (the suite then fails) */
  errors?: string[];
  /** train suite: the (variant, batch, precision) rows that ran out of GPU memory */
  oom?: string[];
  [key: string]: unknown;
}

/** One line of progress: one measurement. */
/** One progress line: a measurement (`index` of `total`), or work in progress (no index). */
export interface BenchProgress {
  suite: BenchSuite;
  index?: number;
  total?: number;
  label: string;
  line: string;
}

export interface BenchReport {
  tool: 'mkey-det bench';
  tool_version: string;
  created: string;
  suite: SuiteChoice;
  device: BenchDevice;
  quick: boolean;
  threads: number | null;
  ok: boolean;
  failures: string[];
  machine: {
    python: PythonMachine | null;
    node: { version: string; onnxruntime_node: string | null; platform: string; cpus: number; cpu_model: string | null; total_mem_gib: number };
    loadavg_before: number[];
    loadavg_after: number[];
  };
  suites: Partial<Record<BenchSuite, SuiteResult>>;
  /** Seconds each suite took. */
  durations_s: Partial<Record<BenchSuite, number>>;
}
