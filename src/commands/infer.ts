import { Command } from 'commander';
import { z } from 'zod';
import { IMAGE_EXTENSIONS, inferImages, type InferProgress, type InferResult } from '../core/infer/infer.js';
import { ExitCode } from '../utils/errors.js';
import { formatDuration } from '../utils/format.js';
import { guardedAction } from '../utils/command.js';
import { emit, logger } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';

const inferOptionsSchema = z.object({
  source: z.string().min(1),
  inputs: z.array(z.string().min(1)).min(1, 'give at least one image or folder'),
  out: z.string().min(1).optional(),
  // not z.coerce.number(): Number('') is 0, so an empty value passed as a threshold of 0
  scoreThr: z
    .string()
    .refine((s) => /^\s*(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/.test(s) && Number(s) >= 0 && Number(s) <= 1, { message: 'a number between 0 and 1, e.g. 0.3' })
    .transform(Number),
  device: z.string().regex(/^(auto|cpu|cuda(:\d+)?)$/, 'auto, cpu, cuda or cuda:N').default('auto'),
  force: z.boolean().default(false),
  json: z.boolean().default(false),
});

/** Seconds between two progress lines. */
const PROGRESS_EVERY_S = 10;

/**
 * `infer: 120/500 images (3.1 img/s, ETA 2m 10s)` on stderr: once a second has passed (a rate
 * from less would mean nothing: a skipped image takes milliseconds), then every 10 s, and at the end.
 */
function progressLines(): (p: InferProgress) => void {
  let last: number | undefined;
  return (p) => {
    const end = p.done === p.total;
    const due = last === undefined ? p.elapsedS >= 1 : p.elapsedS - last >= PROGRESS_EVERY_S;
    if (!end && !due) return;
    last = p.elapsedS;
    const rate = p.rate.toFixed(p.rate >= 10 ? 0 : p.rate >= 1 ? 1 : 2); // 0.04 img/s on a busy CPU, not 0.0
    logger.info(`infer: ${p.done}/${p.total} images (${rate} img/s, ${end ? `${formatDuration(p.elapsedS)} in all` : `ETA ${formatDuration(p.etaS)}`})`);
  };
}

function summary(res: InferResult): string {
  const lines = [`${res.checkpoint} on ${res.device}, score >= ${res.score_thr}`];
  for (const img of res.images) {
    const dets = img.detections
      .slice(0, 6)
      .map((d) => `${d.class ?? d.label} ${d.score.toFixed(2)}`)
      .join(', ');
    lines.push(`${img.image}: ${img.detections.length} detection(s)${dets ? ` (${dets}${img.detections.length > 6 ? ', ...' : ''})` : ''}${img.vis ? ` -> ${img.vis}` : ''}`);
  }
  for (const f of res.failed) lines.push(`${f.image}: skipped: ${f.error}`);
  lines.push(`detections: ${res.json}`);
  return lines.join('\n');
}

export const inferCommand = new Command('infer')
  .description("detect with a trained run on images (MMDetection's DetInferencer): pictures with boxes, masks and class names drawn, and the detections as JSON")
  .argument('<run>', 'a run directory of mkey-det train (its config.py and last checkpoint) or a checkpoint next to its config.py')
  .argument('<images...>', `image files or folders (${IMAGE_EXTENSIONS.join(', ')})`)
  .option('-o, --out <dir>', 'where vis/, preds/ and detections.json go (default: <run>/infer-<time>); must be empty unless --force')
  .option('--score-thr <x>', 'draw and list detections at or above this score', '0.3')
  .option('--device <device>', 'auto (a GPU when there is one), cpu, cuda or cuda:N', 'auto')
  .option('--force', 'write into a non-empty --out', false)
  .option('--json', 'print the result as JSON', false)
  .addHelpText(
    'after',
    `
The checkpoint is checked key for key against the run's config first (a mismatch: exit 2).
A run folder's config.py is Python that MMDetection executes to build the model, like any
MMDetection config: use runs you trust. (mkey-det report reads configs as data and runs none.)

Images are checked by their header first: more than 89.5 megapixels (Pillow's limit), or not an
image, and the image is skipped with one line; the others are done.

Progress goes to stderr after the first second, then every 10 s and at the end, e.g.
"infer: 120/500 images (3.1 img/s, ETA 2m 10s)". Each image's detections are written to
--out as it is done (detections.json is complete at the end), so memory does not grow with
the number of images. Ctrl-C stops it; the images done keep their pictures and predictions.
One writer per --out: a second infer into it at the same moment is refused (exit 2).

Exit codes: 0 ok, 1 inference failed or some images skipped, 2 bad input (or --out being
written by another infer), 3 Python not set up, 130 interrupted.

Examples:
  mkey-det infer work_dirs/demo-swin-t-spatialk data/demo/val2017 -o demo-infer
  mkey-det infer work_dirs/run/epoch_36.pth street.jpg --score-thr 0.5 --device cuda --json`,
  )
  .action(
    guardedAction(async (source: string, inputs: string[], raw: Record<string, unknown>) => {
      const opts = parseOptions(inferOptionsSchema, { ...raw, source, inputs });
      const res = await inferImages({ source: opts.source, inputs: opts.inputs, out: opts.out, scoreThr: opts.scoreThr, device: opts.device, force: opts.force, onProgress: progressLines() });
      emit({ ok: res.failed.length === 0, ...res }, opts, () => summary(res));
      if (res.failed.length) {
        // the others are done and written; the exit code says that not all were
        if (!opts.json) logger.error(`${res.failed.length} of ${res.failed.length + res.images.length} images skipped (first: ${res.failed[0]!.image}: ${res.failed[0]!.error})`);
        process.exitCode = ExitCode.failure;
      } else if (!opts.json) logger.success(`pictures in ${res.out}/vis`);
    }),
  );
