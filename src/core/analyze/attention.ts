/**
 * `mkey-det analyze attention`: per-head attention maps of one attention block over images (the
 * paper's Fig. 2), as the block computes them, in Python: a Swin block's window attention
 * (python_shim/mkey_det/analysis/attention.py) or a ViT's class-token attention, rolled out
 * through the blocks (the default) or one block's own
 * (python_shim/mkey_det/analysis/attention_vit.py); definitions in their docstrings and
 * docs/ANALYZE.md.
 */
import { writeFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import type { z } from 'zod';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { call } from '../../python/entries.js';
import type {
  attentionHeadStats,
  attentionImage,
  attentionMaps,
  attentionModel,
  attentionReply,
  vitAttentionMaps,
  vitHeadStats,
  vitMethod,
} from '../../python/schemas/analyze.js';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError } from '../../utils/errors.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import { describePath } from '../dataset.js';
import { collectImages } from '../infer/infer.js';
import { checkRunOrCheckpoint } from '../run/run-dir.js';
import { lockOutFolder } from '../../utils/folder-lock.js';
import { ANALYZE_LOCK } from './qk.js';

/** At most two models: one grid compares a baseline and a manifold key. */
export const MAX_ATTENTION_MODELS = 2;

export type AttentionHeadStats = z.infer<typeof attentionHeadStats>;
export type AttentionMaps = z.infer<typeof attentionMaps>;
export type VitHeadStats = z.infer<typeof vitHeadStats>;
export type VitAttentionMaps = z.infer<typeof vitAttentionMaps>;
export type AttentionImage = z.infer<typeof attentionImage>;
export type AttentionModel = z.infer<typeof attentionModel>;

export type AttentionMethod = z.infer<typeof vitMethod>;

export type AttentionResult = z.infer<typeof attentionReply> & {
  /** Written with --out. */
  json?: string;
};

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
  /** ViT: 'rollout' (the default: the joint attention of blocks 0..layer, the last per head) or
   * 'block' (block layer's own); a Swin takes 'block' or nothing ('rollout' is refused). */
  method?: AttentionMethod;
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
  // the folder is made only now (one writer at a time), and removed again if the analysis fails
  const folder = req.out !== undefined ? lockOutFolder(resolve(req.out), ANALYZE_LOCK, 'mkey-det analyze attention', `--out ${JSON.stringify(req.out)}`, () => refuseOverwrite([jsonPath!, ...pngs!], { force: req.force })) : undefined;
  try {
    let result: AttentionResult;
    try {
      result = await withBridge((b) =>
        call(b, 'analyze.attention', { sources, images, layer: req.layer ?? null, query: req.query ?? null, size: req.size ?? null, pngs: pngs ?? null, method: req.method ?? null }),
      );
    } catch (err) {
      folder?.removeIfMade();
      throw asBadInput(err); // a checkpoint that does not fit, an unreadable image, a layer out of range, a Swin with a ViT
    }
    if (jsonPath) {
      const withPath = { ...result, json: jsonPath };
      writeFileSync(jsonPath, JSON.stringify(withPath, null, 2) + '\n');
      return withPath;
    }
    return result;
  } finally {
    folder?.release();
  }
}
