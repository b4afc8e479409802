/**
 * `mkey-det export` end to end (full Swin-T, real Python stack), and onnxruntime-node against
 * PyTorch on a photograph. Dynamic shapes and folding: export-dynamic.test.ts; run-onnx's
 * refusals: run-onnx.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openBridge, type PythonBridge } from '../src/python/bridge.js';
import { readNpy } from '../src/core/export/npy.js';
import type { ExportSidecar } from '../src/core/export/export.js';
import { repoRoot, runCli } from './helpers/cli.js';

const python = process.env.MKEY_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');

/** max|a - b| / max|b| */
function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error:'));

let tmp: string;
/** One Python process for the file's reference computations (the CLI runs its own). */
let bridge: PythonBridge;
let png224: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-export-'));
  bridge = await openBridge();
  const [grace] = await bridge.call<string[]>('export.sample_images');
  png224 = join(tmp, 'grace224.png');
  await sharp(grace!).resize(224, 224, { fit: 'fill' }).png().toFile(png224);
});
afterAll(async () => {
  await bridge?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('mkey-det export (swin-t, fixed shape)', () => {
  let model: string;

  it('writes the ONNX file and its sidecar after a passing parity check', async () => {
    model = join(tmp, 'swin-t.onnx');
    const res = await runCli(['export', '--backbone', 'swin-t', '--out', model, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as ExportSidecar & { ok: boolean; path: string; sidecarPath: string };
    expect(out.ok).toBe(true);
    expect(out.path).toBe(model);
    expect(statSync(model).size).toBeGreaterThan(50e6);
    const side = JSON.parse(readFileSync(model + '.json', 'utf8')) as ExportSidecar;
    expect(side).toMatchObject({ format: 'onnx', variant: 'swin-t', key_type: 'linear', charts: null, opset: 17, dynamic: false, fold: false });
    expect(side.input).toMatchObject({ name: 'input', shape: [1, 3, 224, 224], dynamic: false });
    expect(side.outputs.map((o) => [o.name, o.channels, o.stride])).toEqual([
      ['out0', 96, 4],
      ['out1', 192, 8],
      ['out2', 384, 16],
      ['out3', 768, 32],
    ]);
    expect(side.parity.passed).toBe(true);
    expect(side.parity.checks).toHaveLength(1);
    expect(side.parity.max_rel_diff!).toBeLessThan(1e-4);
    expect(side.versions.torch).toMatch(/^2\./);
    expect(side.weights).toMatchObject({ source: 'random', seed: 0 });
    expect(side.params.exported / 1e6).toBeCloseTo(27.5, 0);
    expect(side.flops!.exported / 1e9).toBeGreaterThan(4.3);
    expect(side.flops!.exported / 1e9).toBeLessThan(4.7);
    expect(readdirSync(tmp).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('runs in onnxruntime-node with the same outputs as PyTorch (photograph, MMDetection preprocessing)', async () => {
    const outDir = join(tmp, 'ort-out');
    const res = await runCli(['run-onnx', model, png224, '--save-outputs', outDir, '--runs', '2', '--warmup', '1', '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const run = JSON.parse(res.stdout) as { images: { inputShape: number[]; outputs: { name: string; shape: number[]; file: string }[]; latencyMs: { median: number; runs: number[] } }[] };
    const img = run.images[0]!;
    expect(img.inputShape).toEqual([1, 3, 224, 224]);
    expect(img.latencyMs.runs).toHaveLength(2);
    const refDir = join(tmp, 'ref');
    await bridge.call('export.reference_outputs', { key_type: 'linear', out_dir: refDir, image: png224 });
    // the input tensors agree exactly (same decoding, float32 normalisation)
    for (const o of img.outputs) {
      const got = readNpy(o.file);
      const ref = readNpy(join(refDir, `${o.name}.npy`));
      expect(got.shape).toEqual(ref.shape);
      expect(relDiff(got.data, ref.data), o.name).toBeLessThan(1e-4);
    }
  });

  it('refuses to overwrite an existing --out without --force', async () => {
    const before = statSync(model).mtimeMs;
    const res = await runCli(['export', '--backbone', 'swin-t', '--out', model]);
    expect(res.exitCode).toBe(2);
    expect(errorLines(res.stderr)).toEqual([`error: ${JSON.stringify(model)} and ${JSON.stringify(model + '.json')} already exist; refusing to overwrite them`]);
    expect(statSync(model).mtimeMs).toBe(before);
    // --force replaces files, never a directory; refused before the export's work.
    const dir = join(tmp, 'out-dir');
    mkdirSync(dir);
    const onDir = await runCli(['export', '--backbone', 'swin-t', '--out', dir, '--force']);
    expect(onDir.exitCode).toBe(2);
    expect(errorLines(onDir.stderr)).toEqual([expect.stringMatching(/is not a regular file \(a directory\?\)/)]);
  });

  it('fails (exit 1) and leaves no file when parity exceeds the tolerance', async () => {
    const out = join(tmp, 'strict.onnx');
    const res = await runCli(['export', '--backbone', 'swin-t', '--input', '1x3x64x64', '--tolerance', '1e-12', '--no-flops', '--out', out, '--json']);
    expect(res.exitCode).toBe(1);
    const body = JSON.parse(res.stdout) as { ok: boolean; error: { code: string; message: string; data: { parity: { passed: boolean; max_rel_diff: number } } } };
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe('failure');
    expect(body.error.message).toMatch(/export parity failed at batch 1 64x64: max relative difference .* > 1e-12/);
    expect(body.error.data.parity.passed).toBe(false);
    expect(body.error.data.parity.max_rel_diff).toBeGreaterThan(0);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(out + '.json')).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.includes('partial'))).toEqual([]);
  });
});

describe('mkey-det export: TorchScript and checkpoints', () => {
  it('traces TorchScript with the same parity check, at several sizes with --dynamic', async () => {
    const out = join(tmp, 'swin-t.pt');
    const res = await runCli(['export', '--backbone', 'swin-t', '--format', 'torchscript', '--input', '1x3x64x96', '--dynamic', '--check-sizes', '333x517', '--no-flops', '--out', out, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const side = JSON.parse(readFileSync(out + '.json', 'utf8')) as ExportSidecar;
    expect(side).toMatchObject({ format: 'torchscript', opset: null, dynamic: true });
    expect(side.parity.checks.map((c) => [c.batch, ...c.size])).toEqual([
      [1, 64, 96],
      [1, 333, 517],
      [2, 64, 96],
    ]);
    expect(side.parity.passed).toBe(true);
    expect(side.parity.max_rel_diff!).toBeLessThan(1e-4);
  });

  it('loads a full-detector checkpoint (keys with the backbone. prefix, neck and heads ignored)', async () => {
    const det = join(tmp, 'detector.pth');
    const script = `
import sys, torch
from mkey_det.export import build_backbone
m = build_backbone('linear', seed=7)
sd = {'backbone.' + k: v for k, v in m.state_dict().items()}
sd['neck.fpn_convs.0.conv.weight'] = torch.zeros(2, 2)
torch.save({'state_dict': sd, 'meta': {}}, sys.argv[1])
`;
    const py = await execa(python, ['-c', script, det], { reject: false });
    expect(py.exitCode, String(py.stderr)).toBe(0);

    const out = join(tmp, 'ckpt.onnx');
    const res = await runCli(['export', '--backbone', 'swin-t', '--checkpoint', det, '--input', '1x3x64x64', '--no-flops', '--out', out, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const side = JSON.parse(readFileSync(out + '.json', 'utf8')) as ExportSidecar;
    expect(side.weights).toMatchObject({ source: 'checkpoint', checkpoint: det, missing: 0, ignored: 1 });
    expect(side.weights.loaded as number).toBeGreaterThan(100);
    expect(side.parity.passed).toBe(true);
  });
});

describe('mkey-det export: bad input (exit 2, one line, before any work)', () => {
  const cases: [string, string[], RegExp][] = [
    ['bad --input', ['--input', '1x3x224'], /invalid --input "1x3x224": expected BxCxHxW/],
    ['4 channels', ['--input', '1x4x224x224'], /takes 3 channels/],
    ['tiny input', ['--input', '1x3x16x224'], /height must be between 32/],
    ['unknown backbone', ['--backbone', 'swin-b'], /invalid --backbone "swin-b": accepted: swin-t, swin-t-spatialk/],
    ['unknown format', ['--format', 'tflite'], /invalid --format "tflite": accepted: onnx, torchscript/],
    ['charts out of range', ['--charts', '0'], /--charts must be an integer between 1 and 64/],
    ['fold a linear key', ['--backbone', 'swin-t', '--fold'], /--fold needs a manifold-key variant; swin-t/],
    ['check sizes without dynamic', ['--check-sizes', '333x517'], /--check-sizes needs --dynamic/],
    ['bad check sizes', ['--dynamic', '--check-sizes', '333by517'], /expected HxW sizes/],
    ['bad tolerance', ['--tolerance', '2'], /between 0 and 1/],
    ['missing checkpoint', ['--checkpoint', '/nonexistent/x.pth'], /--checkpoint "\/nonexistent\/x.pth" does not exist/],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const res = await runCli(['export', '--out', join(tmp, 'never.onnx'), ...args]);
      expect(res.exitCode).toBe(2);
      expect(errorLines(res.stderr)).toEqual([expect.stringMatching(pattern)]);
      expect(existsSync(join(tmp, 'never.onnx'))).toBe(false);
    });
  }

  it('--json errors are JSON', async () => {
    writeFileSync(join(tmp, 'exists.onnx'), 'x');
    const res = await runCli(['export', '--out', join(tmp, 'exists.onnx'), '--json']);
    expect(res.exitCode).toBe(2);
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, error: { exitCode: 2 } });
  });
});
