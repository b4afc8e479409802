/**
 * `mkey-det analyze attention`: per-head attention maps of one attention block over images (the
 * paper's Fig. 2), as the block computes them, in Python: a Swin block's window attention
 * (python_shim/mkey_det/analysis/attention.py) or a ViT block's class-token attention
 * (python_shim/mkey_det/analysis/attention_vit.py); definitions in their docstrings and
 * docs/ANALYZE.md.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError } from '../../utils/errors.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import { describePath } from '../dataset.js';
import { collectImages } from '../infer/infer.js';
import { checkRunOrCheckpoint } from '../run/run-dir.js';

/** At most two models: one grid compares a baseline and a manifold key. */
export const MAX_ATTENTION_MODELS = 2;

export interface AttentionHeadStats {
  head: number;
  /** Of the query's attention row, in nats (log N is uniform over the window). */
  entropy: number;
  max: number;
  /** [row, column] of the cell the query attends to most. */
  max_cell: [number, number];
  /** The query's attention to itself. */
  self: number;
  /** Attention-weighted distance from the query, in cells. */
  mean_distance: number;
  /** Attention of the query that goes to window padding (no image location). */
  padding_share: number;
  received_max: number;
  received_min: number;
}

export interface AttentionMaps {
  backbone: 'swin';
  label: string;
  /** Depth order over all stages (as `analyze qk`'s layer). */
  layer: number;
  stage: number;
  block: number;
  heads: number;
  window: number;
  /** 0: regular windows, > 0: shifted windows. */
  shift: number;
  /** Input pixels per feature cell. */
  stride: number;
  /** Feature grid [rows, columns]. */
  grid: [number, number];
  windows: number;
  query_cell: [number, number];
  query_window: number;
  head_stats: AttentionHeadStats[];
  /** 1 where a cell is in the query's window, else 0. */
  in_window: number[][];
  /** Per head, the query's attention over the grid (0 outside its window). */
  query_maps: number[][][];
  /** Per head, the attention each cell receives, summed over the queries of its window. */
  received_maps: number[][][];
}

export interface VitHeadStats {
  head: number;
  /** Of the class token's whole attention row, in nats (log N is uniform over the N tokens). */
  entropy: number;
  /** The class map's largest value (a patch). */
  max: number;
  /** [row, column] of that patch. */
  max_cell: [number, number];
  /** The class token's attention to itself (not drawn). */
  self: number;
  /** The class map's sum: its attention to the patches. */
  patch_share: number;
}

export interface VitAttentionMaps {
  backbone: 'vit';
  label: string;
  /** 0-based block of the ViT. */
  layer: number;
  /** Blocks in the ViT. */
  layers: number;
  heads: number;
  /** Patch grid [rows, columns]. */
  grid: [number, number];
  /** Input pixels per patch. */
  stride: number;
  /** Tokens the block sees: extra tokens (the class token first), then the patches. */
  tokens: number;
  extra_tokens: number;
  head_stats: VitHeadStats[];
  /** Per head, the class token's attention over the patch grid (its own column left out). */
  class_maps: number[][][];
}

export interface AttentionImage {
  path: string;
  /** The file's [width, height]. */
  size: [number, number];
  /** [width, height] as fed to the models. */
  input_size: [number, number];
  /** Swin: [x, y] in the file's pixels; ViT: null (the class token has no location). */
  query: [number, number] | null;
  /** ViT: the centre crop fed, [x, y, width, height] in the file's pixels. */
  crop?: [number, number, number, number];
  models: (AttentionMaps | VitAttentionMaps)[];
  /** The grid PNG (with --out). */
  png?: string;
}

export interface AttentionModel {
  label: string;
  path: string;
  checkpoint: string;
  config: string | null;
  /** Which attention is drawn: Swin's windows or a ViT's class token (one kind per call). */
  backbone: 'swin' | 'vit';
  key_type: string;
  charts: number | null;
  /** KUA / VanillaK: their CB form (eq4, per_location, none). */
  cb_mode: string | null;
}

export interface AttentionResult {
  backbone: 'swin' | 'vit';
  models: AttentionModel[];
  images: AttentionImage[];
  /** Written with --out. */
  json?: string;
}

export interface AttentionRequest {
  paths: string[];
  images: string[];
  labels?: string[];
  layer?: number;
  /** Swin: [x, y] in the image files' pixels (default: the centre); refused for a ViT. */
  query?: [number, number];
  /** Swin: longer side of the image fed, in pixels (default 224); ViT: side of the square
   * centre crop fed (default: the model's img_size). */
  size?: number;
  /** Folder for attention.json and one attention-<n>-<name>.png per image. */
  out?: string;
  force: boolean;
}

/** `attention-<n>-<file stem>.png`, the stem reduced to safe characters. */
export function attentionPngName(index: number, image: string): string {
  const stem = basename(image, extname(image)).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60) || 'image';
  return `attention-${index + 1}-${stem}.png`;
}

export async function analyzeAttention(req: AttentionRequest): Promise<AttentionResult> {
  if (req.paths.length > MAX_ATTENTION_MODELS) {
    throw new BadInputError(`${req.paths.length} models given: analyze attention compares at most ${MAX_ATTENTION_MODELS} (a baseline and a manifold key)`, 'run it again for the others');
  }
  if (req.labels && req.labels.length !== req.paths.length) {
    throw new BadInputError(`--labels gives ${req.labels.length} label(s) for ${req.paths.length} path(s): give one per path, in order`);
  }
  for (const p of req.paths) checkRunOrCheckpoint(p, 'give a run directory (a --work-dir of mkey-det train or pretrain) or a .pth checkpoint');
  if (!req.images.length) throw new BadInputError('no --image given', 'add --image <file...> (image files or folders)');
  const images = collectImages(req.images);
  const sources = req.paths.map((p, i) => ({ path: resolve(p), label: req.labels?.[i] ?? basename(resolve(p)) }));
  let jsonPath: string | undefined;
  let pngs: string[] | undefined;
  if (req.out !== undefined) {
    const dir = resolve(req.out);
    const info = describePath(dir);
    if (info && info.kind !== 'dir') throw new BadInputError(`--out ${JSON.stringify(req.out)} is ${info.what}, not a directory`);
    jsonPath = join(dir, 'attention.json');
    pngs = images.map((img, i) => join(dir, attentionPngName(i, img)));
    refuseOverwrite([jsonPath, ...pngs], { force: req.force });
  }
  await checkInterpreter();
  // the folder is made only now, and removed again if the analysis fails
  const madeDir = req.out !== undefined && !existsSync(resolve(req.out)) ? mkdirSync(resolve(req.out), { recursive: true }) : undefined;
  let result: AttentionResult;
  try {
    result = await withBridge((b) =>
      b.call<AttentionResult>(
        'analyze.attention',
        { sources, images, layer: req.layer ?? null, query: req.query ?? null, size: req.size ?? null, pngs: pngs ?? null },
        { timeoutMs: 600_000 },
      ),
    );
  } catch (err) {
    if (madeDir) rmSync(madeDir, { recursive: true, force: true });
    throw asBadInput(err); // a checkpoint that does not fit, an unreadable image, a layer out of range, a Swin with a ViT
  }
  if (jsonPath) {
    const withPath = { ...result, json: jsonPath };
    writeFileSync(jsonPath, JSON.stringify(withPath, null, 2) + '\n');
    return withPath;
  }
  return result;
}
