import { Command, Option } from 'commander';
import { z } from 'zod';
import { FIT_MODES, runOnnx, type RunOnnxResult } from '../core/export/run-onnx.js';
import { formatShape } from '../core/export/shapes.js';
import { guardedAction } from '../utils/command.js';
import { emit } from '../utils/logger.js';
import { intOption, parseOptions } from '../utils/options.js';

const runOnnxOptionsSchema = z.object({
  model: z.string().min(1, 'a model file is required'),
  images: z.array(z.string().min(1)).min(1, 'give at least one image'),
  threads: intOption('--threads', 1, 256).optional(),
  runs: intOption('--runs', 1, 10_000),
  warmup: intOption('--warmup', 0, 1000),
  fit: z.enum(FIT_MODES, { message: `accepted: ${FIT_MODES.join(', ')}` }),
  saveOutputs: z.string().min(1).optional(),
  json: z.boolean().default(false),
});

function table(res: RunOnnxResult): string {
  const lines = [
    `${res.model}`,
    `  input ${res.input.name} ${formatShape(res.input.shape)}${res.sidecar?.variant ? `, ${res.sidecar.variant}${res.sidecar.charts ? ` ${res.sidecar.charts} charts` : ''}${res.sidecar.fold ? ' folded' : ''}` : ''}; threads ${res.threads}, median of ${res.runs} runs after ${res.warmup} warm-up`,
  ];
  for (const img of res.images) {
    lines.push(
      `${img.path}  ${img.imageSize[0]}x${img.imageSize[1]}${img.resizedTo ? ` -> ${img.resizedTo[0]}x${img.resizedTo[1]}` : ''} -> input ${formatShape(img.inputShape)}  ${img.latencyMs.median.toFixed(1)} ms (min ${img.latencyMs.min.toFixed(1)}, max ${img.latencyMs.max.toFixed(1)})`,
    );
    for (const o of img.outputs) lines.push(`  ${o.name.padEnd(6)} ${formatShape(o.shape)}${o.file ? `  -> ${o.file}` : ''}`);
  }
  return lines.join('\n');
}

export const runOnnxCommand = new Command('run-onnx')
  .description('run an exported ONNX backbone in Node (onnxruntime-node, CPU) on images: output shapes and latency')
  .argument('<model>', 'ONNX file written by `mkey-det export --format onnx`')
  .argument('<images...>', 'image files (JPEG, PNG, WebP, TIFF)')
  .option('--threads <n>', "onnxruntime intra-op threads (default: onnxruntime's choice, all cores)")
  .option('--runs <n>', 'timed runs per image (latency is their median)', '5')
  .option('--warmup <n>', 'untimed warm-up runs per image', '1')
  .addOption(
    new Option('--fit <mode>', 'for a fixed-shape model: pad (zero-pad up to its size; refuse larger images), resize (keep aspect ratio, then pad), none (feed as is; other sizes are refused)')
      .choices([...FIT_MODES])
      .default('pad'),
  )
  .option('--save-outputs <dir>', 'write every output as <image>.<output>.npy (float32) into this folder')
  .option('--json', 'print the result as JSON', false)
  .addHelpText(
    'after',
    `
Images are preprocessed as MMDetection's DetDataPreprocessor does for Swin: RGB, (x - mean) / std
with mean [123.675, 116.28, 103.53] and std [58.395, 57.12, 57.375], zero-padded bottom/right
to a multiple of 32 (a fixed-shape model: to its size). The model runs in a worker thread.
Exit codes: 0 ok, 1 onnxruntime failed, 2 bad input (missing or corrupt model, unreadable image,
a size the model refuses).

Examples:
  mkey-det run-onnx swin-t-spatialk-8c-folded-dynamic.onnx photo.jpg --runs 20
  mkey-det run-onnx spatialk.onnx images/*.jpg --fit resize --save-outputs features/ --json`,
  )
  .action(
    guardedAction(async (model: string, images: string[], raw: Record<string, unknown>) => {
      const { json, ...request } = parseOptions(runOnnxOptionsSchema, { ...raw, model, images });
      const res = await runOnnx(request);
      emit({ ok: true, ...res }, { json }, () => table(res));
    }),
  );
