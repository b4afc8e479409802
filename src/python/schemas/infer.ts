/**
 * What the infer worker (`python -m mkey_det.cli.infer`, python_shim/mkey_det/cli/infer.py) says:
 * one `image` event per image as it is done, then its `result`; the command's result (and
 * `<out>/detections.json`, which the worker writes) is `inferReply`.
 */
import { z } from 'zod';

export const detection = z.looseObject({
  label: z.number().int(),
  /** The class name, when the checkpoint names its classes. */
  class: z.string().optional(),
  score: z.number(),
  /** x1, y1, x2, y2 in pixels of the input image. */
  bbox: z.tuple([z.number(), z.number(), z.number(), z.number()]),
});

export const inferredImage = z.looseObject({
  image: z.string(),
  /** The picture drawn, null when it could not be written. */
  vis: z.string().nullable(),
  /** MMDetection's prediction file. */
  preds: z.string().nullable(),
  detections: z.array(detection),
});

/** An image that could not be read or decoded (too many pixels, not an image, ...): skipped, the others done. */
export const failedImage = z.looseObject({ image: z.string(), error: z.string() });

/** `{"event": "start"}`: the model is built, `total` images follow. */
export const inferStartEvent = z.looseObject({ event: z.literal('start'), total: z.number().int(), device: z.string() });

/** `{"event": "image"}`: the `index`-th of `total` images, done (an inferredImage) or skipped (`error`). */
export const inferImageEvent = z.union([
  inferredImage.extend({ event: z.literal('image'), index: z.number().int(), total: z.number().int() }),
  failedImage.extend({ event: z.literal('image'), index: z.number().int(), total: z.number().int() }),
]);

/** What both the worker's result and the command's reply say of the model and the settings. */
const inferSettings = {
  config: z.string(),
  checkpoint: z.string(),
  device: z.string(),
  score_thr: z.number(),
  classes: z.array(z.string()),
};
/** `<out>/detections.json`. */
const detectionsJson = z.string();

/** The worker's result: the summary, the per-image entries counted (they came as events). */
export const inferWorkerResult = z.looseObject({ ...inferSettings, done: z.number().int(), failed: z.number().int(), json: detectionsJson });

/** What `mkey-det infer` returns (and prints with --json); `<out>/detections.json` holds the same but `json`. */
export const inferReply = z.looseObject({ ...inferSettings, images: z.array(inferredImage), failed: z.array(failedImage), json: detectionsJson });
