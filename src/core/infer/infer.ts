/**
 * `mkey-det infer`: a trained run's detector on images through MMDetection's DetInferencer
 * (python_shim/mkey_det/cli/infer.py, a worker: one event per image, so progress is shown and no
 * result is held in Python): drawn pictures and the detections as JSON.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join, relative, resolve } from 'node:path';
import type { z } from 'zod';
import { checkInterpreter } from '../../python/interpreter.js';
import { checkReply } from '../../python/reply.js';
import { inferImageEvent, inferredImage, inferWorkerResult, type detection, type failedImage, type inferReply } from '../../python/schemas/infer.js';
import { runWorker } from '../../python/worker.js';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { lockOutFolder } from '../../utils/folder-lock.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import { displayPath } from '../../utils/paths.js';
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
  /** Called after each image (done or skipped). */
  onProgress?: (p: InferProgress) => void;
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

/** Progress of an infer as it goes: `done` of `total` images, the rate and the time left. */
export interface InferProgress {
  done: number;
  total: number;
  /** Images per second since the model was built. */
  rate: number;
  /** Seconds left at that rate (0 at the end). */
  etaS: number;
  elapsedS: number;
}

export async function inferImages(req: InferRequest): Promise<InferResult> {
  const isDir = checkRunOrCheckpoint(req.source, 'give a run directory of mkey-det train or a checkpoint next to its config.py') === 'dir';
  const images = collectImages(req.inputs);
  const runDir = isDir ? resolve(req.source) : resolve(req.source, '..');
  const out = resolve(req.out ?? join(runDir, `infer-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const shownOut = `--out ${JSON.stringify(relative(process.cwd(), out) || out)}`;
  const notEmpty = () => new BadInputError(`${shownOut} is not empty; refusing to write into it`, 'add --force or choose another --out');
  const outInfo = describePath(out);
  if (outInfo && outInfo.kind !== 'dir') throw new BadInputError(`${shownOut} is ${outInfo.what}, not a folder`);
  if (outInfo && readdirSync(out).length && !req.force) throw notEmpty();
  const python = await checkInterpreter();
  // one writer per --out; the emptiness checked above, once more under the lock
  const folder = lockOutFolder(out, INFER_LOCK, 'mkey-det infer', shownOut, () => {
    if (!req.force && readdirSync(out).some((f) => f !== INFER_LOCK)) throw notEmpty();
    // --force: a symbolic link at a name infer writes is replaced itself, never written through
    if (req.force) refuseOverwrite(outputNames(out, images), { force: true });
  });
  // the request as a file (a folder of many images would not fit a command line)
  const scratch = mkdtempSync(join(tmpdir(), 'mkey-infer-'));
  const request = join(scratch, 'request.json');
  writeFileSync(request, JSON.stringify({ source: resolve(req.source), images, out_dir: out, score_thr: req.scoreThr, device: req.device ?? null }));
  // the per-image entries as they come (small: the detections above the threshold); the worker
  // keeps none and streams them into detections.json
  const done: z.infer<typeof inferredImage>[] = [];
  const failed: z.infer<typeof failedImage>[] = [];
  let started: number | undefined;
  let stop: (() => void) | undefined;
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    stoppedBy ??= signal;
    stop?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const res = await runWorker({
      python,
      run: { module: 'mkey_det.cli.infer' },
      args: ['--request', request],
      label: 'infer',
      result: inferWorkerResult,
      onChild: (s) => (stop = s),
      onEvent: (e) => {
        if (e.event === 'start') {
          started = Date.now();
          return;
        }
        if (e.event !== 'image') return;
        const img = checkReply(inferImageEvent, e, 'the infer worker');
        if ('error' in img && typeof img.error === 'string') failed.push({ image: img.image, error: img.error });
        else done.push(checkReply(inferredImage, img, 'the infer worker'));
        const elapsedS = (Date.now() - (started ?? Date.now())) / 1000;
        const n = done.length + failed.length;
        const rate = elapsedS > 0 ? n / elapsedS : 0;
        req.onProgress?.({ done: n, total: img.total, rate, etaS: rate > 0 ? (img.total - n) / rate : 0, elapsedS });
      },
    });
    const { done: _done, failed: _failed, ...summary } = res;
    return { ...summary, images: done, failed, out };
  } catch (err) {
    if (stoppedBy) {
      rmSync(join(out, 'detections.json.part'), { force: true });
      const n = done.length + failed.length;
      throw new MkeyError(
        `${stoppedBy}: infer stopped after ${n} of ${images.length} images (the Python side ended)${n ? `; their pictures and prediction files are in ${displayPath(out)}, no detections.json` : ''}`,
        { exitCode: ExitCode.interrupted },
      );
    }
    if (done.length + failed.length === 0) folder.removeIfMade();
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(scratch, { recursive: true, force: true });
    folder.release();
  }
}

/** The files infer writes into `out` for `images`. */
function outputNames(out: string, images: string[]): string[] {
  const names = [join(out, 'detections.json')];
  for (const img of images) names.push(join(out, 'vis', basename(img)), join(out, 'preds', `${basename(img, extname(img))}.json`));
  return names;
}

/** The writer lock of an infer --out folder (src/utils/folder-lock.ts). */
const INFER_LOCK = '.mkey-infer.lock';
