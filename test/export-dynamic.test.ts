/**
 * `mkey-det export --dynamic --fold` (Swin-T with a 2-chart SpatialK key): the graph is correct at
 * every size and batch, onnxruntime-node agrees with PyTorch on photographs that need padding, and
 * the folded model matches the unfolded one with fewer parameters and FLOPs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openBridge, type PythonBridge } from '../src/python/bridge.js';
import { readNpy } from '../src/core/export/npy.js';
import type { ExportSidecar } from '../src/core/export/export.js';
import { runCli } from './helpers/cli.js';

function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

type RunJson = { images: { path: string; inputShape: number[]; outputs: { name: string; shape: number[]; file: string }[] }[] };

let tmp: string;
/** One Python process for the file's reference computations (the CLI runs its own). */
let bridge: PythonBridge;
let grace: string;
let png333: string;
const model = () => join(tmp, 'spatialk-2c-folded-dynamic.onnx');

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-export-dyn-'));
  bridge = await openBridge();
  grace = (await bridge.call<string[]>('export.sample_images'))[0]!;
  png333 = join(tmp, 'grace333x517.png');
  await sharp(grace).resize(517, 333, { fit: 'fill' }).png().toFile(png333);
});
afterAll(async () => {
  await bridge?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('mkey-det export --dynamic --fold (swin-t-spatialk, 2 charts)', () => {
  it('checks parity at the export size, at 333x517 and at batch 2, and folding against the unfolded model', async () => {
    const res = await runCli([
      'export', '--backbone', 'swin-t-spatialk', '--charts', '2', '--dynamic', '--fold',
      '--input', '1x3x96x128', '--check-sizes', '333x517', '--out', model(), '--json',
    ]);
    expect(res.exitCode, res.stderr).toBe(0);
    const side = JSON.parse(readFileSync(model() + '.json', 'utf8')) as ExportSidecar;
    expect(side).toMatchObject({ variant: 'swin-t-spatialk', key_type: 'spatialk', charts: 2, fold: true, key_order: 'folded', dynamic: true });
    expect(side.input.dynamic).toEqual({ batch: true, height: true, width: true });
    expect(side.parity.checks.map((c) => [c.batch, ...c.size])).toEqual([
      [1, 96, 128],
      [1, 333, 517],
      [2, 96, 128],
    ]);
    for (const c of side.parity.checks) expect(c.max_rel_diff!).toBeLessThan(1e-4);
    expect(side.parity.checks[1]!.shapes.out0).toEqual([1, 96, 84, 130]);
    expect(side.parity.checks[2]!.shapes.out3).toEqual([2, 768, 3, 4]);
    expect(side.fold_parity!.passed).toBe(true);
    expect(side.fold_parity!.max_rel_diff!).toBeLessThan(1e-5);
    expect(side.params.folded!).toBeLessThan(side.params.unfolded!);
    expect(side.flops!.folded!).toBeLessThan(side.flops!.unfolded!);
  });

  it('runs in onnxruntime-node at other sizes with the outputs of the unfolded PyTorch model', async () => {
    const outDir = join(tmp, 'ort');
    const res = await runCli(['run-onnx', model(), png333, grace, '--save-outputs', outDir, '--runs', '1', '--warmup', '0', '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const run = JSON.parse(res.stdout) as RunJson;
    // padded to multiples of 32 like DetDataPreprocessor; the backbone pads further to windows of 7
    expect(run.images.map((i) => i.inputShape)).toEqual([
      [1, 3, 352, 544],
      [1, 3, 608, 512],
    ]);
    expect(run.images[0]!.outputs.map((o) => o.shape)).toEqual([
      [1, 96, 88, 136],
      [1, 192, 44, 68],
      [1, 384, 22, 34],
      [1, 768, 11, 17],
    ]);
    for (const [i, image] of [png333, grace].entries()) {
      const refDir = join(tmp, `ref${i}`);
      // the reference is the *unfolded* model, with the same seed as the export
      await bridge.call('export.reference_outputs', { key_type: 'spatialk', charts: 2, out_dir: refDir, image });
      for (const o of run.images[i]!.outputs) {
        const got = readNpy(o.file);
        const ref = readNpy(join(refDir, `${o.name}.npy`));
        expect(got.shape).toEqual(ref.shape);
        expect(relDiff(got.data, ref.data), `${image} ${o.name}`).toBeLessThan(1e-4);
      }
    }
  });
});
