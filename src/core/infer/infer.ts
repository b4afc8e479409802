/**
 * `mkey-det infer`: a trained run's detector on images through MMDetection's DetInferencer
 * (python_shim/mkey_det/cli/infer.py): drawn pictures and the detections as JSON.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { acquireFolderLock } from '../../utils/folder-lock.js';
import { basename, extname, join, relative, resolve } from 'node:path';
import type { z } from 'zod';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { call } from '../../python/entries.js';
import type { detection, inferReply } from '../../python/schemas/infer.js';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError } from '../../utils/errors.js';
import { describePath } from '../dataset.js';
import { checkRunOrCheckpoint } from '../run/run-dir.js';

/** Image files a folder argument contributes (what OpenCV reads). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff'];

export type Detection = z.infer<typeof detection>;

/** What infer returns: the Python reply (also `<out>/detections.json`) and the folder written. */
export type InferResult = z.infer<typeof inferReply> & { out: string };

export interface InferRequest {
  source: string;
  inputs: string[];
  out?: string;
  scoreThr: number;
  device?: string;
  force: boolean;
}

/** The image files of the arguments: files as given, folders by extension (sorted), each checked. */
export function collectImages(inputs: string[]): string[] {
  const images: string[] = [];
  for (const input of inputs) {
    const info = describePath(input, JSON.stringify(input));
    if (!info) throw new BadInputError(`image ${JSON.stringify(input)} does not exist`);
    if (info.kind === 'dir') {
      const found = readdirSync(input)
        .filter((f) => IMAGE_EXTENSIONS.includes(extname(f).toLowerCase()))
        .sort()
        .map((f) => resolve(input, f))
        .filter((f) => describePath(f)?.kind === 'file');
      if (!found.length) throw new BadInputError(`${JSON.stringify(input)} holds no image (${IMAGE_EXTENSIONS.join(', ')})`);
      images.push(...found);
    } else if (info.kind === 'file') {
      if (info.size === 0) throw new BadInputError(`image ${JSON.stringify(input)} is empty (0 bytes)`);
      images.push(resolve(input));
    } else {
      throw new BadInputError(`image ${JSON.stringify(input)} is ${info.what}, not an image file or a folder`);
    }
  }
  const names = images.map((p) => basename(p));
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new BadInputError(`two images are named ${JSON.stringify(twice)}: their pictures would overwrite each other in --out; infer them in two runs`);
  return images;
}

export async function inferImages(req: InferRequest): Promise<InferResult> {
  const isDir = checkRunOrCheckpoint(req.source, 'give a run directory of mkey-det train or a checkpoint next to its config.py') === 'dir';
  const images = collectImages(req.inputs);
  const runDir = isDir ? resolve(req.source) : resolve(req.source, '..');
  const out = resolve(req.out ?? join(runDir, `infer-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const outInfo = describePath(out);
  if (outInfo && outInfo.kind !== 'dir') throw new BadInputError(`--out ${JSON.stringify(relative(process.cwd(), out) || out)} is ${outInfo.what}, not a folder`);
  if (outInfo && readdirSync(out).length && !req.force) {
    throw new BadInputError(`--out ${JSON.stringify(relative(process.cwd(), out) || out)} is not empty; refusing to write into it`, 'add --force or choose another --out');
  }
  await checkInterpreter();
  const created = existsSync(out) ? undefined : mkdirSync(out, { recursive: true });
  const shownOut = `--out ${JSON.stringify(relative(process.cwd(), out) || out)}`;
  let release: () => void;
  try {
    release = acquireFolderLock(out, INFER_LOCK, 'mkey-det infer', shownOut);
  } catch (err) {
    if (created) rmSync(created, { recursive: true, force: true });
    throw err;
  }
  // the emptiness checked above, once more under the lock: a second command started at the same
  // moment saw the folder empty too, and the first may have written into it since
  if (!req.force && readdirSync(out).some((f) => f !== INFER_LOCK)) {
    release();
    throw new BadInputError(`${shownOut} is not empty; refusing to write into it`, 'add --force or choose another --out');
  }
  try {
    const res = await withBridge((b) =>
      call(b, 'infer.images', { source: resolve(req.source), images, out_dir: out, score_thr: req.scoreThr, device: req.device ?? null }),
    );
    return { ...res, out };
  } catch (err) {
    if (created) rmSync(created, { recursive: true, force: true });
    throw asBadInput(err);
  } finally {
    release();
  }
}

/** The writer lock of an infer --out folder (src/utils/folder-lock.ts). */
const INFER_LOCK = '.mkey-infer.lock';
