/**
 * `mkey-det export`: a backbone variant to ONNX or TorchScript through the Python bridge
 * (`export.backbone` in python_shim/mkey_det/export/backbone.py), checked for parity against the
 * PyTorch model on real photographs before the file is put in place.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { z } from 'zod';
import { withBridge } from '../../python/bridge.js';
import { call } from '../../python/entries.js';
import { EXPORT_FORMATS, type exportSidecar, type parityCheck, type parityReport } from '../../python/schemas/export.js';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import type { BackboneVariant } from '../experiment.js';
import type { InputShape } from './shapes.js';

export { EXPORT_FORMATS };
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The opset written (onnxruntime-node 1.30 loads 17-26; the legacy exporter's LayerNormalization needs 17). */
export const ONNX_OPSET = 17;
export const DEFAULT_TOLERANCE = 1e-4;
export const FOLD_TOLERANCE = 1e-5;

export interface ExportRequest {
  variant: BackboneVariant;
  charts: number;
  checkpoint?: string;
  format: ExportFormat;
  input: InputShape;
  dynamic: boolean;
  fold: boolean;
  out: string;
  force: boolean;
  /** Extra sizes checked with --dynamic (the export size is always checked). */
  checkSizes?: [number, number][];
  tolerance: number;
  seed: number;
  flops: boolean;
  toolVersion: string;
}

export type ParityCheck = z.infer<typeof parityCheck>;
export type ParityReport = z.infer<typeof parityReport>;
/** The JSON sidecar `<out>.json` (see docs/EXPORT.md). */
export type ExportSidecar = z.infer<typeof exportSidecar>;

export interface ExportResult {
  path: string;
  sidecarPath: string;
  sidecar: ExportSidecar;
}

/** Raised when the exported model does not match PyTorch; carries the figures. */
export class ParityError extends MkeyError {
  readonly parity: ParityReport;
  readonly foldParity: ParityReport | null;
  constructor(message: string, parity: ParityReport, foldParity: ParityReport | null) {
    super(message, {
      exitCode: ExitCode.failure,
      hint: 'no file was written; run with --json for every figure',
      data: { parity, fold_parity: foldParity },
    });
    this.name = 'ParityError';
    this.parity = parity;
    this.foldParity = foldParity;
  }
}

/** Default output file: `<variant>[-<H>c][-folded][-dynamic].onnx|.pt` in the current folder. */
export function defaultOutPath(req: Pick<ExportRequest, 'variant' | 'charts' | 'fold' | 'dynamic' | 'format'>): string {
  const parts = [req.variant.name];
  if (req.variant.usesCharts) parts.push(`${req.charts}c`);
  if (req.fold) parts.push('folded');
  if (req.dynamic) parts.push('dynamic');
  return parts.join('-') + (req.format === 'onnx' ? '.onnx' : '.pt');
}

export async function exportBackbone(req: ExportRequest): Promise<ExportResult> {
  const out = resolve(req.out);
  // Refused before the export's work: --force replaces files, never a directory.
  refuseOverwrite([out, out + '.json'], { force: req.force });
  if (req.fold && !req.variant.usesCharts) {
    throw new BadInputError(`--fold needs a manifold-key variant; ${req.variant.name} has Swin's linear key, nothing to fold`);
  }
  if (req.checkSizes && !req.dynamic) {
    throw new BadInputError('--check-sizes needs --dynamic: a fixed-shape export runs only at its --input size');
  }
  let checkpoint: string | undefined;
  if (req.checkpoint !== undefined) {
    checkpoint = resolve(req.checkpoint);
    if (!existsSync(checkpoint)) throw new BadInputError(`--checkpoint ${JSON.stringify(req.checkpoint)} does not exist`, 'give a local .pth file; nothing is downloaded');
  }
  const reply = await withBridge((b) =>
    call(b, 'export.backbone', {
        key_type: req.variant.keyType,
        variant: req.variant.name,
        charts: req.charts,
        checkpoint: checkpoint ?? null,
        format: req.format,
        input_shape: [req.input.batch, req.input.channels, req.input.height, req.input.width],
        dynamic: req.dynamic,
        fold_keys: req.fold,
        out,
        force: req.force,
        check_sizes: req.checkSizes ?? null,
        threshold: req.tolerance,
        fold_threshold: FOLD_TOLERANCE,
        opset: ONNX_OPSET,
        seed: req.seed,
        flops: req.flops,
        tool_version: req.toolVersion,
      }),
  );
  if (reply.status === 'bad_input') throw new BadInputError(reply.message);
  if (reply.status === 'parity_failed') throw new ParityError(reply.message, reply.parity, reply.fold_parity);
  return { path: reply.path, sidecarPath: reply.sidecar_path, sidecar: reply.sidecar };
}
