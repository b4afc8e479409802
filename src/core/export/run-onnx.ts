/**
 * Runs an exported backbone in Node with onnxruntime-node (in a worker thread, see
 * onnx-worker.ts): images decoded and preprocessed as MMDetection does (preprocess.ts), output
 * shapes and latency (median of `runs` after `warmup` runs) per image.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { packageRoot } from '../../utils/paths.js';
import type { ValueInfo, WorkerReply, WorkerRequest } from './onnx-worker.js';
import { writeNpy } from './npy.js';
import { ceilTo, decodeImage, PAD_DIVISOR, toNetworkInput, type RgbImage } from './preprocess.js';
import { formatShape } from './shapes.js';
import { median } from '../../utils/stats.js';

/** How an image meets a model whose height/width are fixed. */
export const FIT_MODES = ['pad', 'resize', 'none'] as const;
export type FitMode = (typeof FIT_MODES)[number];

export interface RunOnnxOptions {
  model: string;
  images: string[];
  /** onnxruntime intra-op threads; undefined = onnxruntime's default (all cores). */
  threads?: number;
  runs: number;
  warmup: number;
  fit: FitMode;
  /** Folder for `<image>.<output>.npy` files (`<image>-<index>` when two images share a name). */
  saveOutputs?: string;
}

export interface ImageRun {
  path: string;
  /** Decoded image [height, width]. */
  imageSize: [number, number];
  /** Size the image was resized to (fit=resize), else undefined. */
  resizedTo?: [number, number];
  inputShape: number[];
  outputs: { name: string; shape: number[]; file?: string }[];
  latencyMs: { median: number; mean: number; min: number; max: number; runs: number[] };
}

export interface RunOnnxResult {
  model: string;
  input: ValueInfo;
  outputs: ValueInfo[];
  /** The model's sidecar (`<model>.json`, written by `mkey-det export`), if present. */
  sidecar?: { variant?: string; charts?: number | null; fold?: boolean; dynamic?: boolean };
  threads: number | 'default';
  runs: number;
  warmup: number;
  fit: FitMode;
  images: ImageRun[];
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** A thin promise wrapper over the worker. */
class OnnxWorker {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: unknown) => void }>();

  constructor() {
    this.worker = new Worker(workerPath());
    const failAll = (err: unknown) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      p.resolve(reply);
    });
    this.worker.on('error', (err) => failAll(new MkeyError(`onnxruntime worker failed: ${err.message}`, { detail: err.stack })));
    this.worker.on('exit', (code) => {
      if (this.pending.size) failAll(new MkeyError(`onnxruntime worker exited (code ${code})`));
    });
  }

  request(msg: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    const id = this.nextId++;
    return new Promise((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** dist/core/export/onnx-worker.js, also when this module runs from src/ under vitest. */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(here, '..', 'onnx-worker.js');
  return join(packageRoot, 'dist', 'core', 'export', 'onnx-worker.js');
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

function readSidecar(model: string): RunOnnxResult['sidecar'] {
  const path = model + '.json';
  if (!existsSync(path)) return undefined;
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    return { variant: s.variant as string, charts: s.charts as number | null, fold: s.fold as boolean, dynamic: s.dynamic as boolean };
  } catch {
    return undefined;
  }
}

/** onnxruntime's "index: 2 Got: 128 Expected: 224" lines as one short clause. */
function describeShapeError(text: string): string {
  const found = [...text.matchAll(/index:\s*(\d+)\s+Got:\s*(\d+)\s+Expected:\s*(\d+)/g)].map((m) => `dim ${m[1]} is ${m[2]}, expected ${m[3]}`);
  return found.length ? ` (onnxruntime: ${found.join('; ')})` : ` (onnxruntime: ${text.split('\n')[0]?.trim()})`;
}

/** The fixed size of a dimension, or undefined when it is symbolic (dynamic). */
const fixed = (d: number | string | undefined): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);

export async function runOnnx(opts: RunOnnxOptions, keepOutputs = false): Promise<RunOnnxResult & { data?: Float32Array[][] }> {
  const model = resolve(opts.model);
  if (!existsSync(model) || !statSync(model).isFile()) {
    throw new BadInputError(`ONNX model not found: ${opts.model}`, 'export one with `mkey-det export --format onnx`');
  }
  for (const img of opts.images) {
    if (!existsSync(img) || !statSync(img).isFile()) throw new BadInputError(`image not found: ${img}`);
  }
  const worker = new OnnxWorker();
  try {
    const loaded = await worker.request({ kind: 'load', path: model, threads: opts.threads });
    if (!loaded.ok) {
      const reason = loaded.error.message.replace(/^Load model from \S+ failed:\s*/, '').split('\n')[0];
      throw new BadInputError(`cannot load ONNX model ${opts.model}: ${reason}`, 'the file is not a valid ONNX model (re-export it)');
    }
    if (!('inputs' in loaded)) throw new MkeyError('unexpected worker reply');
    const input = loaded.inputs[0];
    if (loaded.inputs.length !== 1 || !input || input.type !== 'float32' || input.shape.length !== 4 || (fixed(input.shape[1]) ?? 3) !== 3) {
      throw new BadInputError(
        `${opts.model} is not an image backbone: expected one float32 input of shape Bx3xHxW, got ${loaded.inputs.map((i) => `${i.name} ${i.type} ${formatShape(i.shape)}`).join(', ')}`,
      );
    }
    const batch = fixed(input.shape[0]);
    if (batch !== undefined && batch !== 1) {
      throw new BadInputError(
        `${opts.model} has a fixed batch of ${batch}; run-onnx feeds one image at a time`,
        'export with --input 1x3xHxW, or with --dynamic',
      );
    }
    const fixedH = fixed(input.shape[2]);
    const fixedW = fixed(input.shape[3]);
    if (opts.saveOutputs) mkdirSync(opts.saveOutputs, { recursive: true });

    const images: ImageRun[] = [];
    const data: Float32Array[][] = [];
    for (const path of opts.images) {
      let img: RgbImage = await decodeImage(path);
      const imageSize: [number, number] = [img.height, img.width];
      let resizedTo: [number, number] | undefined;
      let padH = ceilTo(img.height, PAD_DIVISOR);
      let padW = ceilTo(img.width, PAD_DIVISOR);
      if (fixedH !== undefined && fixedW !== undefined && opts.fit !== 'none') {
        if (opts.fit === 'resize' && (img.height !== fixedH || img.width !== fixedW)) {
          const scale = Math.min(fixedH / img.height, fixedW / img.width);
          const h = Math.max(1, Math.min(fixedH, Math.round(img.height * scale)));
          const w = Math.max(1, Math.min(fixedW, Math.round(img.width * scale)));
          img = await decodeImage(path, { width: w, height: h });
          resizedTo = [h, w];
        }
        if (img.height > fixedH || img.width > fixedW) {
          throw new BadInputError(
            `image ${path} is ${img.height}x${img.width}, larger than the model's fixed input ${fixedH}x${fixedW} (exported without --dynamic)`,
            'add --fit resize (keep aspect ratio, then pad), or export with --dynamic',
          );
        }
        padH = fixedH;
        padW = fixedW;
      }
      const net = toNetworkInput(img, padH, padW);
      const reply = await worker.request(
        { kind: 'run', data: net.data, dims: net.dims, runs: opts.runs, warmup: opts.warmup, keepOutputs: keepOutputs || !!opts.saveOutputs },
        [net.data.buffer as ArrayBuffer],
      );
      if (!reply.ok) {
        if (reply.error.kind === 'shape') {
          throw new BadInputError(
            `model ${basename(opts.model)} has a fixed input ${formatShape(input.shape)} (exported without --dynamic); ${path} gives ${formatShape(net.dims)}${describeShapeError(reply.error.message)}`,
            fixedH !== undefined ? 'use --fit pad or --fit resize, or export with --dynamic' : undefined,
          );
        }
        throw new MkeyError(`onnxruntime failed on ${path}: ${reply.error.message.split('\n')[0]}`, { exitCode: ExitCode.failure, detail: reply.error.message });
      }
      if (!('timesMs' in reply)) throw new MkeyError('unexpected worker reply');
      const outputs: ImageRun['outputs'] = [];
      const kept: Float32Array[] = [];
      for (const o of reply.outputs) {
        const entry: ImageRun['outputs'][number] = { name: o.name, shape: o.dims };
        if (opts.saveOutputs && o.data) {
          const base = basename(path, extname(path));
          const stem = opts.images.filter((p) => basename(p, extname(p)) === base).length > 1 ? `${base}-${images.length}` : base;
          entry.file = resolve(join(opts.saveOutputs, `${stem}.${o.name}.npy`));
          writeNpy(entry.file, o.data, o.dims);
        }
        if (keepOutputs && o.data) kept.push(o.data);
        outputs.push(entry);
      }
      data.push(kept);
      const t = reply.timesMs;
      images.push({
        path: resolve(path),
        imageSize,
        resizedTo,
        inputShape: net.dims,
        outputs,
        latencyMs: {
          median: round3(median(t)),
          mean: round3(t.reduce((a, b) => a + b, 0) / t.length),
          min: round3(Math.min(...t)),
          max: round3(Math.max(...t)),
          runs: t.map(round3),
        },
      });
    }
    const result: RunOnnxResult & { data?: Float32Array[][] } = {
      model,
      input,
      outputs: loaded.outputs,
      sidecar: readSidecar(model),
      threads: opts.threads ?? 'default',
      runs: opts.runs,
      warmup: opts.warmup,
      fit: opts.fit,
      images,
    };
    if (keepOutputs) result.data = data;
    return result;
  } finally {
    await worker.close();
  }
}
