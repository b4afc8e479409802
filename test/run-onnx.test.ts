/**
 * `mkey-det run-onnx`: refused shapes, corrupt or missing files, options, and the JSON result,
 * on small Swin models exported with the Python API (mkey_det.export) to stay fast.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readNpy } from '../src/core/export/npy.js';
import { repoRoot, runCli } from './helpers/cli.js';

const python = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error:'));

let tmp: string;
let fixed: string;
let batch2: string;
let dynamic: string;
let small: string; // 48x80 image
let large: string; // 300x200 image

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-run-onnx-'));
  [fixed, batch2, dynamic] = ['fixed.onnx', 'batch2.onnx', 'dynamic.onnx'].map((f) => join(tmp, f)) as [string, string, string];
  const script = `
import sys
from mkey_det.export import build_backbone, export_onnx
m = build_backbone('linear', embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), mlp_ratio=2)
export_onnx(m, sys.argv[1], (1, 3, 64, 96))
export_onnx(m, sys.argv[2], (2, 3, 64, 96))
export_onnx(m, sys.argv[3], (1, 3, 64, 96), dynamic=True)
`;
  const py = await execa(python, ['-c', script, fixed, batch2, dynamic], { reject: false });
  if (py.exitCode !== 0) throw new Error(String(py.stderr));
  small = join(tmp, 'small.png');
  large = join(tmp, 'large.jpg');
  const noise = (w: number, h: number) => Buffer.from(Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256));
  await sharp(noise(80, 48), { raw: { width: 80, height: 48, channels: 3 } }).png().toFile(small);
  await sharp(noise(200, 300), { raw: { width: 200, height: 300, channels: 3 } }).jpeg().toFile(large);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('run-onnx on a fixed-shape model (1x3x64x96)', () => {
  it('zero-pads a smaller image up to the model size (--fit pad, the default)', async () => {
    const res = await runCli(['run-onnx', fixed, small, '--runs', '3', '--warmup', '1', '--threads', '1', '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as {
      ok: boolean;
      input: { name: string; shape: (number | string)[] };
      threads: number;
      images: { imageSize: number[]; inputShape: number[]; outputs: { name: string; shape: number[] }[]; latencyMs: { median: number; min: number; max: number; runs: number[] } }[];
    };
    expect(out).toMatchObject({ ok: true, threads: 1, input: { name: 'input', shape: [1, 3, 64, 96] } });
    const img = out.images[0]!;
    expect(img.imageSize).toEqual([48, 80]);
    expect(img.inputShape).toEqual([1, 3, 64, 96]);
    expect(img.outputs.map((o) => o.name)).toEqual(['out0', 'out1', 'out2', 'out3']);
    expect(img.outputs[0]!.shape).toEqual([1, 16, 16, 24]);
    expect(img.latencyMs.runs).toHaveLength(3);
    expect(img.latencyMs.median).toBeGreaterThanOrEqual(img.latencyMs.min);
    expect(img.latencyMs.median).toBeLessThanOrEqual(img.latencyMs.max);
  });

  it('refuses a larger image clearly (exit 2), and --fit resize fits it', async () => {
    const res = await runCli(['run-onnx', fixed, large]);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([expect.stringMatching(/is 300x200, larger than the model's fixed input 64x96 \(exported without --dynamic\)/)]);
    expect(res.stderr).toMatch(/hint: add --fit resize/);
    const ok = await runCli(['run-onnx', fixed, large, '--fit', 'resize', '--runs', '1', '--json']);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const img = (JSON.parse(ok.stdout) as { images: { resizedTo: number[]; inputShape: number[] }[] }).images[0]!;
    expect(img.resizedTo).toEqual([64, 43]);
    expect(img.inputShape).toEqual([1, 3, 64, 96]);
  });

  it("turns onnxruntime's shape error into one line (--fit none)", async () => {
    const res = await runCli(['run-onnx', fixed, large, '--fit', 'none']);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([
      expect.stringMatching(
        /^error: model fixed.onnx has a fixed input 1x3x64x96 \(exported without --dynamic\); .*large.jpg gives 1x3x320x224 \(onnxruntime: dim 2 is 320, expected 64; dim 3 is 224, expected 96\)$/,
      ),
    ]);
  });

  it('refuses a model with a fixed batch other than 1', async () => {
    const res = await runCli(['run-onnx', batch2, small]);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([expect.stringMatching(/has a fixed batch of 2; run-onnx feeds one image at a time/)]);
  });
});

describe('run-onnx on a dynamic model', () => {
  it('pads each image to a multiple of 32 and saves the outputs as .npy', async () => {
    const outDir = join(tmp, 'npy');
    const res = await runCli(['run-onnx', dynamic, small, large, '--runs', '1', '--warmup', '0', '--save-outputs', outDir, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as { input: { shape: (number | string)[] }; images: { inputShape: number[]; outputs: { shape: number[]; file: string }[] }[] };
    expect(out.input.shape).toEqual(['batch', 3, 'height', 'width']);
    expect(out.images.map((i) => i.inputShape)).toEqual([
      [1, 3, 64, 96],
      [1, 3, 320, 224],
    ]);
    const saved = readNpy(out.images[1]!.outputs[3]!.file);
    expect(saved.shape).toEqual([1, 128, 10, 7]);
    expect(saved.data.every((v) => Number.isFinite(v))).toBe(true);
  });

  it('prints a table for people', async () => {
    const res = await runCli(['run-onnx', dynamic, small, '--runs', '1', '--warmup', '0']);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/input input batchx3xheightxwidth/);
    expect(res.stdout).toMatch(/48x80 -> input 1x3x64x96 +[\d.]+ ms/);
    expect(res.stdout).toMatch(/out3 +1x128x2x3/);
  });
});

describe('run-onnx: missing or corrupt files (exit 2, one line)', () => {
  it('a missing model', async () => {
    const res = await runCli(['run-onnx', join(tmp, 'nope.onnx'), small]);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([expect.stringMatching(/^error: ONNX model not found: .*nope.onnx$/)]);
  });

  it('a corrupt model (random bytes, and a truncated real model)', async () => {
    const garbage = join(tmp, 'garbage.onnx');
    writeFileSync(garbage, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)));
    const truncated = join(tmp, 'truncated.onnx');
    writeFileSync(truncated, readFileSync(fixed).subarray(0, 20000));
    for (const bad of [garbage, truncated]) {
      const res = await runCli(['run-onnx', bad, small]);
      expect(res.exitCode).toBe(2);
      expect(errorLines(res.stderr)).toEqual([expect.stringMatching(/^error: cannot load ONNX model .*: /)]);
      expect(res.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    }
    const json = await runCli(['run-onnx', garbage, small, '--json']);
    expect(json.exitCode).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, error: { exitCode: 2, message: expect.stringMatching(/cannot load ONNX model/) } });
  });

  it('a missing or undecodable image', async () => {
    let res = await runCli(['run-onnx', fixed, join(tmp, 'none.png')]);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([expect.stringMatching(/image not found: .*none.png/)]);
    const notImage = join(tmp, 'not-an-image.png');
    copyFileSync(fixed + '', notImage);
    res = await runCli(['run-onnx', fixed, notImage]);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([expect.stringMatching(/cannot decode image .*not-an-image.png/)]);
  });

  it('bad options', async () => {
    for (const [args, pattern] of [
      [['--runs', '0'], /--runs must be an integer between 1/],
      [['--threads', 'x'], /--threads must be an integer/],
      [['--fit', 'stretch'], /stretch/],
    ] as [string[], RegExp][]) {
      const res = await runCli(['run-onnx', fixed, small, ...args]);
      expect(res.exitCode, args.join(' ')).toBe(2);
      expect(res.stderr).toMatch(pattern);
    }
    const none = await runCli(['run-onnx', fixed]);
    expect(none.exitCode).toBe(2);
  });
});
