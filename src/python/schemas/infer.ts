/** The reply of `infer.images` (python_shim/mkey_det/cli/infer.py), also written as `<out>/detections.json`. */
import { z } from 'zod';

export const detection = z.looseObject({
  label: z.number().int(),
  /** The class name, when the checkpoint names its classes. */
  class: z.string().optional(),
  score: z.number(),
  /** x1, y1, x2, y2 in pixels of the input image. */
  bbox: z.tuple([z.number(), z.number(), z.number(), z.number()]),
});

export const inferReply = z.looseObject({
  config: z.string(),
  checkpoint: z.string(),
  device: z.string(),
  score_thr: z.number(),
  classes: z.array(z.string()),
  images: z.array(
    z.looseObject({
      image: z.string(),
      /** The picture drawn, null when it could not be written. */
      vis: z.string().nullable(),
      /** MMDetection's prediction file. */
      preds: z.string().nullable(),
      detections: z.array(detection),
    }),
  ),
  /** Images that could not be read or decoded (too many pixels, not an image, ...): skipped, the others done. */
  failed: z.array(z.looseObject({ image: z.string(), error: z.string() })),
  /** `<out>/detections.json`. */
  json: z.string(),
});
