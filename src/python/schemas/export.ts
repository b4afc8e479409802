/**
 * The reply of `export.backbone` (python_shim/mkey_det/export/backbone.py) and the JSON sidecar
 * `<out>.json` it writes next to the model (docs/EXPORT.md). Unknown sidecar fields pass through.
 */
import { z } from 'zod';

export const EXPORT_FORMATS = ['onnx', 'torchscript'] as const;

/** A relative difference, null where Python had NaN/inf. */
const diff = z.number().nullable();

export const parityCheck = z.looseObject({
  batch: z.number().int(),
  size: z.tuple([z.number().int(), z.number().int()]),
  images: z.array(z.string()),
  /** Why the run failed (onnxruntime refused the shape, ...); null when it ran. */
  error: z.string().nullable(),
  max_rel_diff: diff,
  per_output: z.record(z.string(), diff),
  shapes: z.record(z.string(), z.array(z.number().int())),
  run_s: z.number().optional(),
});

export const parityReport = z.looseObject({
  passed: z.boolean(),
  max_rel_diff: diff,
  threshold: z.number(),
  metric: z.string(),
  reference: z.string().optional(),
  checks: z.array(parityCheck),
});

export const exportSidecar = z.looseObject({
  tool: z.string(),
  tool_version: z.string().nullable(),
  created: z.string(),
  format: z.enum(EXPORT_FORMATS),
  file: z.string(),
  file_bytes: z.number().int(),
  variant: z.string().nullable(),
  key_type: z.string(),
  charts: z.number().int().nullable(),
  key_order: z.enum(['paper', 'folded']),
  fold: z.boolean(),
  weights: z.record(z.string(), z.unknown()),
  input: z.looseObject({
    name: z.string(),
    shape: z.array(z.number().int()),
    layout: z.string(),
    dtype: z.string(),
    dynamic: z.union([z.literal(false), z.record(z.string(), z.boolean())]),
    preprocess: z.record(z.string(), z.unknown()),
  }),
  outputs: z.array(z.looseObject({ name: z.string(), channels: z.number().int(), stride: z.number().int(), shape: z.array(z.number().int()) })),
  dynamic: z.boolean(),
  opset: z.number().int().nullable(),
  versions: z.record(z.string(), z.string().nullable()),
  parity: parityReport,
  fold_parity: parityReport.nullable(),
  params: z.looseObject({ exported: z.number().int(), unfolded: z.number().int().optional(), folded: z.number().int().optional() }),
  flops: z
    .looseObject({
      size: z.tuple([z.number().int(), z.number().int()]),
      exported: z.number(),
      unfolded: z.number().optional(),
      folded: z.number().optional(),
      convention: z.string(),
    })
    .nullable(),
  parity_images: z.array(z.string()),
  timings_s: z.record(z.string(), z.number()),
});

/** What export.backbone returns: the files written, or why nothing was. */
export const exportReply = z.discriminatedUnion('status', [
  z.strictObject({ status: z.literal('ok'), message: z.string(), path: z.string(), sidecar_path: z.string(), sidecar: exportSidecar }),
  /** Refused before any work (a file in the way, a checkpoint that does not fit). */
  z.strictObject({ status: z.literal('bad_input'), message: z.string() }),
  /** The exported model does not match PyTorch; nothing was written. */
  z.looseObject({ status: z.literal('parity_failed'), message: z.string(), parity: parityReport, fold_parity: parityReport.nullable() }),
]);
