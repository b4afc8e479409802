/**
 * What a sweep costs before it runs: each cell's iterations (images per epoch x epochs / the total
 * batch), and GPU-hours from measured throughput. Detection uses the images/s per GPU measured on
 * one H100 (docs/RESULTS.md); a cell that measurement does not cover (another key, another chart
 * count, batch or precision) gets an estimate derived from it, and says so. Classification has no
 * GPU measurement yet: its cells say "no measurement" instead of a number.
 */
import { join } from 'node:path';
import { validateClassificationDir } from '../classification-dataset.js';
import { TRAIN_ANN, describePath, readAnnotationSummary } from '../dataset.js';
import type { CellCostInput, CellLaunch } from './matrix.js';

/** Where the images/s below were measured. */
export const THROUGHPUT_SOURCE = 'docs/RESULTS.md, "On one H100" (benchmarks/results/h100-2026-11-26/bench-train-cuda.jsonl)';
/** What was measured: the conditions a reader needs to judge the figures. */
export const THROUGHPUT_CONDITIONS =
  'one H100 80GB, Mask R-CNN + FPN with the demo\'s heads on 1024x1024 synthetic images, training steps only (no data loading, evaluation or communication), GPUs assumed to scale linearly';

/**
 * Images/s per GPU of one training step on one H100 (`mkey-det bench --suite train --device cuda`,
 * 2026-11-26): Swin-T (`linear`) and Swin-T + SpatialK at 8 charts, batch 2 and 8 per GPU, fp32
 * and fp16 (bf16 failed there on mmcv's RoIAlign, fixed since, not rerun). Checked against the raw
 * file by test/sweep.test.ts.
 */
export const H100_DETECTION_IMAGES_PER_S: Record<'linear' | 'spatialk', Record<2 | 8, Record<'fp32' | 'fp16', number>>> = {
  linear: { 2: { fp32: 15.9, fp16: 18.4 }, 8: { fp32: 20.8, fp16: 28.5 } },
  spatialk: { 2: { fp32: 12.1, fp16: 15.2 }, 8: { fp32: 15.3, fp16: 26.4 } },
};
/** The chart count of the measured SpatialK rows. */
const MEASURED_CHARTS = 8;

/**
 * Swin-T backbone GFLOPs at 224x224 with 8 charts (docs/RESULTS.md, "Parameters and FLOPs", Table 1
 * rows). An unmeasured key's step is estimated between Swin-T's and SpatialK's by its extra FLOPs.
 */
const SWIN_T_GFLOPS_8_CHARTS: Record<string, number> = { linear: 4.51, spatialk: 10.27, kua: 10.27, simplek: 7.5, vanillak: 7.5 };

/** COCO train2017 images with at least one annotation: what MMDetection trains on (`filter_empty_gt`). */
export const COCO_TRAIN_IMAGES = 117_266;
/** ImageNet-1K's train split: the paper's and the stock recipes' dataset, used when the folder is not here to count. */
export const IMAGENET_TRAIN_IMAGES = 1_281_167;
/** The demo sets' train splits (python_shim/mkey_det/data/demo.py, demo_cls.py defaults). */
export const DEMO_TRAIN_IMAGES = { detection: 128, classification: 400 } as const;

export interface Throughput {
  imagesPerSecondPerGpu: number;
  /** false: derived from the measurement (see `basis`). */
  measured: boolean;
  /** Where the figure comes from, in words. */
  basis: string;
}

/**
 * The images/s per GPU of a detection cell: measured, or an estimate derived from the measurement,
 * or undefined when nothing supports one (a key with no FLOPs figure).
 */
export function detectionThroughput(keyType: string, charts: number | null, batch: number, amp: CellCostInput['amp']): Throughput | undefined {
  const notes: string[] = [];
  const measuredBatch: 2 | 8 = batch === 2 || batch === 8 ? batch : batch < 4 ? 2 : 8;
  if (measuredBatch !== batch) notes.push(`batch ${batch} not measured, batch ${measuredBatch}'s figure`);
  const precision = amp === 'fp16' ? 'fp16' : amp === 'bf16' ? 'fp16' : 'fp32';
  if (amp === 'bf16') notes.push("bf16 not measured, fp16's figure");
  const lin = H100_DETECTION_IMAGES_PER_S.linear[measuredBatch][precision];
  const sk = H100_DETECTION_IMAGES_PER_S.spatialk[measuredBatch][precision];
  let ips: number;
  if (keyType === 'linear') ips = lin;
  else if (keyType === 'spatialk' && charts === MEASURED_CHARTS) ips = sk;
  else {
    const flops = SWIN_T_GFLOPS_8_CHARTS[keyType];
    if (flops === undefined) return undefined;
    // time per image between Swin-T's and SpatialK's, by the key's extra FLOPs (linear in the charts)
    const share = ((flops - SWIN_T_GFLOPS_8_CHARTS.linear!) / (SWIN_T_GFLOPS_8_CHARTS.spatialk! - SWIN_T_GFLOPS_8_CHARTS.linear!)) * ((charts ?? MEASURED_CHARTS) / MEASURED_CHARTS);
    ips = 1 / (1 / lin + (1 / sk - 1 / lin) * share);
    notes.push(`${keyType} at ${charts} charts not measured: between Swin-T's and SpatialK-8's step by its backbone FLOPs`);
  }
  const where = `H100, batch ${measuredBatch}, ${precision}`;
  return notes.length === 0
    ? { imagesPerSecondPerGpu: ips, measured: true, basis: `measured (${where})` }
    : { imagesPerSecondPerGpu: Math.round(ips * 10) / 10, measured: false, basis: `estimate (${where}; ${notes.join('; ')})` };
}

export interface EpochImages {
  /** Train images per epoch; null when they cannot be counted here. */
  count: number | null;
  estimate: boolean;
  basis: string;
}

/** Train images of a cell's dataset: known sizes, or counted in the folder (once per folder). */
export async function trainImages(c: CellCostInput, cache: Map<string, EpochImages>): Promise<EpochImages> {
  const key = `${c.task}:${c.data.kind === 'dir' ? c.data.path : c.data.kind}:${c.recipe ?? ''}`;
  const known = cache.get(key);
  if (known) return known;
  const found = await countTrainImages(c);
  cache.set(key, found);
  return found;
}

async function countTrainImages(c: CellCostInput): Promise<EpochImages> {
  if (c.data.kind === 'demo') return { count: DEMO_TRAIN_IMAGES[c.task], estimate: false, basis: `the demo set's ${DEMO_TRAIN_IMAGES[c.task]} train images` };
  if (c.data.kind === 'coco') return { count: COCO_TRAIN_IMAGES, estimate: false, basis: `COCO train2017: ${COCO_TRAIN_IMAGES.toLocaleString('en-US')} images with annotations` };
  const root = c.data.path;
  if (c.task === 'detection') {
    const ann = join(root, TRAIN_ANN);
    if (describePath(ann)?.kind !== 'file') return { count: null, estimate: false, basis: `${ann} is not here to count` };
    try {
      const n = (await readAnnotationSummary(ann)).fileNames.length;
      return { count: n, estimate: false, basis: `${n} images in ${ann}` };
    } catch (err) {
      return { count: null, estimate: false, basis: `cannot count ${ann}: ${(err as Error).message}` };
    }
  }
  if (describePath(root)?.kind === 'dir') {
    try {
      const n = validateClassificationDir(root).counts.train;
      return { count: n, estimate: false, basis: `${n} images in ${join(root, 'train')}` };
    } catch (err) {
      return { count: null, estimate: false, basis: `cannot count ${root}: ${(err as Error).message}` };
    }
  }
  if (c.recipe === 'paper' || c.recipe === 'stock') {
    return { count: IMAGENET_TRAIN_IMAGES, estimate: true, basis: `${root} is not here to count: ImageNet-1K's ${IMAGENET_TRAIN_IMAGES.toLocaleString('en-US')} train images (the ${c.recipe} recipe's dataset)` };
  }
  return { count: null, estimate: false, basis: `${root} is not here to count` };
}

/** Processes of a cell's run in all (GPUs or CPU processes per node x nodes). */
export function worldSize(l: CellLaunch): number {
  return Math.max(1, l.gpus > 0 ? l.gpus : l.nprocPerNode) * l.nnodes;
}

export interface CellCost {
  images: EpochImages;
  /** Epochs trained; null with `--max-iters`. */
  epochs: number | null;
  batchSize: number;
  worldSize: number;
  /** Training iterations of the run (each: one batch on every process); null when the images are not known. */
  iterations: number | null;
  throughput: Throughput | null;
  /** Why there is no throughput figure (classification, an unknown key). */
  noThroughput?: string;
  /** GPU-hours of the run's training steps at that throughput; null without one. */
  gpuHours: number | null;
  /** Hours on the cell's own GPUs (`--gpus` x `--nnodes`); null on CPUs or without GPU-hours. */
  wallHours: number | null;
  /** Whether any figure of this cell is an estimate. */
  estimate: boolean;
}

/** Iterations and GPU-hours of one cell. */
export async function cellCost(c: CellCostInput, launch: CellLaunch, cache: Map<string, EpochImages>): Promise<CellCost> {
  const world = worldSize(launch);
  const images = c.maxIters !== undefined ? { count: null, estimate: false, basis: `--max-iters ${c.maxIters}` } : await trainImages(c, cache);
  const iterations = c.maxIters ?? (images.count === null ? null : c.epochs * Math.ceil(Math.ceil(images.count / world) / c.batchSize));
  const throughput = c.task === 'detection' ? detectionThroughput(c.keyType, c.charts, c.batchSize, c.amp) ?? null : null;
  const noThroughput =
    c.task === 'classification'
      ? 'no measurement (no classifier has been timed on a GPU yet)'
      : throughput === null
        ? `no measurement (no FLOPs figure for key ${c.keyType})`
        : undefined;
  const gpuHours = iterations !== null && throughput ? (iterations * c.batchSize * world) / throughput.imagesPerSecondPerGpu / 3600 : null;
  return {
    images,
    epochs: c.maxIters !== undefined ? null : c.epochs,
    batchSize: c.batchSize,
    worldSize: world,
    iterations,
    throughput,
    ...(noThroughput ? { noThroughput } : {}),
    gpuHours,
    wallHours: gpuHours !== null && launch.gpus > 0 ? gpuHours / world : null,
    estimate: images.estimate || (throughput !== null && !throughput.measured),
  };
}
