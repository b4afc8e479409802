/**
 * `mkey-det train` / `mkey-det test` end to end on a tiny dataset: the real MMDetection tools,
 * the real plugin, a real Swin-T + SpatialK backbone (2 charts to stay quick on CPU).
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_EVENT_NAMES, runEventSchema } from '../src/core/run/events.js';
import { configChangedWarning, fileSha256 } from '../src/core/run/run-dir.js';
import { defaultCacheDir } from '../src/core/dataset-paths.js';
import { cliPath, makeTinyDataset, pidAlive as alive, repoRoot, runCli, testPython } from './helpers/cli.js';
import { SHARED_RUN_EPOCHS, SMALL_RUN, sharedRun } from './helpers/shared-run.js';

let tmp: string;
let data: string;
/** Events of the interrupted-and-resumed run (first test of 'a real run'), for the schema coverage check. */
let interruptedRunEvents: string[] = [];

const readJsonLines = (p: string) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
/** Every line of an events file validates against the one schema (src/core/run/events.ts); returns the event names seen. */
function expectEventsMatchSchema(path: string): string[] {
  const seen: string[] = [];
  for (const [i, e] of readJsonLines(path).entries()) {
    const res = runEventSchema.safeParse(e);
    expect(res.success ? '' : `${path}:${i + 1} ${String(e.event)}: ${JSON.stringify(res.error.issues)}`).toBe('');
    seen.push(String(e.event));
  }
  return seen;
}
const readRun = (wd: string) => JSON.parse(readFileSync(join(wd, 'mkey-run.json'), 'utf8')) as Record<string, unknown>;
const small = SMALL_RUN;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-train-'));
  data = await makeTinyDataset(join(tmp, 'tiny'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('mkey-det train: bad input ends with one line and a non-zero exit', () => {
  it.each([
    [['--backbone', 'swin-x'], 2, 'invalid --backbone "swin-x": accepted: swin-t, swin-t-spatialk'],
    [['--charts', '100'], 2, 'invalid --charts "100": --charts must be an integer between 1 and 64'],
    [['--data', '/nonexistent/dataset'], 2, '/nonexistent/dataset'],
    [['--gpus', '2'], 2, '--gpus 2 needs 2 CUDA device(s); this machine has 0'],
    [['--pretrained', '/nonexistent/swin.pth'], 2, '--pretrained "/nonexistent/swin.pth" does not exist'],
    [['--max-epochs', '2', '--max-iters', '3'], 2, '--max-epochs and --max-iters exclude each other'],
    [['--amp'], 2, '--amp fp16 needs a CUDA device; this machine has none'],
    [['--amp', 'bf16'], 2, '--amp bf16 needs a CUDA device; this machine has none'],
    [['--amp', 'fp8'], 2, 'invalid --amp "fp8": accepted: fp16, bf16'],
    [['--launcher', 'slurm'], 3, '--launcher slurm: srun is not on PATH'],
    [['--nnodes', '2', '--node-rank', '2'], 2, '--node-rank 2 is not a node of --nnodes 2: accepted 0..1'],
    [['--node-rank', '1'], 2, '--node-rank 1 is not a node of --nnodes 1: accepted 0..0'],
    [['--gpus', '2', '--nproc-per-node', '2'], 2, '--gpus 2 and --nproc-per-node 2 cannot be combined'],
    [['--nproc-per-node', '-1'], 2, 'invalid --nproc-per-node "-1": --nproc-per-node must be an integer between 0 and 1024'],
  ])('%j', async (args, code, message) => {
    const wd = join(tmp, `bad-${Math.random().toString(36).slice(2)}`);
    const res = await runCli(['train', ...small, '--data', data, '--work-dir', wd, ...args]);
    expect(res.exitCode).toBe(code);
    const first = res.stderr.trim().split('\n')[0]!;
    expect(first.startsWith('error: ')).toBe(true);
    expect(first).toContain(message);
    expect(res.stderr).not.toContain('Traceback');
    expect(existsSync(join(wd, 'mkey-run.json'))).toBe(false);
  });

  it('a --pretrained checkpoint that does not fit is refused in the preflight, before anything is written', async () => {
    // A stock Swin-T (linear key) checkpoint missing its last stage: strict loading names the gap.
    const ckpt = join(tmp, 'partial-swin.pth');
    const script = [
      'import sys, torch',
      'from mmdet.models.backbones import SwinTransformer',
      'sd = {k: v for k, v in SwinTransformer().state_dict().items() if not k.startswith("stages.3.")}',
      'torch.save({"state_dict": sd}, sys.argv[1])',
    ].join('\n');
    await execa(testPython, ['-c', script, ckpt]);
    const wd = join(tmp, 'bad-pretrained');
    const res = await runCli(['train', ...small, '--data', data, '--work-dir', wd, '--pretrained', ckpt]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n').find((l) => l.startsWith('error: '))).toMatch(/^error: checkpoint .*partial-swin\.pth does not fit the backbone \(key_type='spatialk', 2 charts\): \d+ of its tensors are missing from the checkpoint, first stages\.3\./);
    expect(existsSync(wd)).toBe(false);
  });

  it('a malformed annotation file is named', async () => {
    const broken = join(tmp, 'broken');
    mkdirSync(join(broken, 'annotations'), { recursive: true });
    writeFileSync(join(broken, 'annotations', 'instances_train2017.json'), '{"images": [');
    writeFileSync(join(broken, 'annotations', 'instances_val2017.json'), '{}');
    const res = await runCli(['train', ...small, '--data', broken, '--work-dir', join(tmp, 'wd-broken')]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toMatch(/instances_train2017\.json.*(JSON|json)/);
  });

  it('test --gpus asks for GPUs this machine does not have', async () => {
    const ckpt = join(tmp, 'fake.pth');
    writeFileSync(ckpt, '');
    const cfgDir = join(tmp, 'cfg-gpus');
    const made = await runCli(['config', ...small, '--data', data, '--out', join(cfgDir, 'config.py')]);
    expect(made.exitCode).toBe(0);
    const res = await runCli(['test', '--checkpoint', ckpt, '--config', join(cfgDir, 'config.py'), '--gpus', '2']);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toContain('--gpus 2 needs 2 CUDA device(s); this machine has 0');
  });

  it('test refuses --cfg-options keys that load code, before anything runs', async () => {
    const marker = join(tmp, 'marker.py');
    writeFileSync(marker, `open(${JSON.stringify(join(tmp, 'pwned'))}, 'w').write('x')\n`);
    const res = await runCli(['test', '--checkpoint', join(tmp, 'any.pth'), '--cfg-options', `_base_=${marker}`]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toContain('--cfg-options key "_base_" is refused: it makes mmengine load code');
    expect(existsSync(join(tmp, 'pwned'))).toBe(false);
  });

  it('a missing checkpoint for test is named', async () => {
    const res = await runCli(['test', '--checkpoint', join(tmp, 'nope.pth')]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toContain('nope.pth" does not exist');
  });
});

describe('mkey-det train: a real run', () => {
  it('trains, is interrupted by SIGINT without orphans, and resumes', async () => {
    const wd = join(tmp, 'run');
    const child = execa('node', [cliPath, 'train', ...small, '--data', data, '--work-dir', wd, '--max-epochs', '2', '--json'], {
      reject: false,
      cwd: repoRoot,
    });
    // Stop it once the first epoch's checkpoint is recorded.
    const deadline = Date.now() + 240_000;
    while (!existsSync(join(wd, 'last_checkpoint')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(join(wd, 'last_checkpoint'))).toBe(true);
    child.kill('SIGINT');
    const stopped = await child;
    expect(stopped.exitCode).toBe(130);
    const interrupted = readRun(wd);
    expect(interrupted.status).toBe('interrupted');
    expect(String(interrupted.message)).toContain(`mkey-det train --work-dir ${wd} --resume`);
    expect(alive(Number(interrupted.pid))).toBe(false);
    const stoppedEvents = readJsonLines(join(wd, 'mkey-events.jsonl')).filter((e) => e.event === 'stopped');
    expect(stoppedEvents).toHaveLength(1);

    // A work dir holding a run is not overwritten by accident.
    const again = await runCli(['train', ...small, '--data', data, '--work-dir', wd, '--max-epochs', '2']);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain('already holds a run; refusing to overwrite it');

    const resumed = await runCli(['train', '--work-dir', wd, '--resume', '--json']);
    expect(resumed.exitCode).toBe(0);
    const lines = resumed.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = lines.find((e) => e.event === 'start')!;
    expect(Number(start.start_epoch)).toBeGreaterThanOrEqual(1);
    // Where the weights are, the precision, and FLOPs counted on a CPU copy (no error field).
    expect(start).toMatchObject({ device: 'cpu', amp: null });
    expect(typeof start.backbone_flops).toBe('number');
    expect(start.backbone_flops_error).toBeUndefined();
    const result = lines.at(-1)!;
    expect(result).toMatchObject({ ok: true, status: 'completed' });
    expect(readRun(wd)).toMatchObject({ status: 'completed', experiment: { keyType: 'spatialk', charts: 2 } });
    const events = readJsonLines(join(wd, 'mkey-events.jsonl'));
    const vals = events.filter((e) => e.event === 'val');
    expect(vals.map((v) => v.epoch)).toContain(2);
    for (const v of vals) expect(typeof (v.metrics as Record<string, unknown>)['coco/bbox_mAP']).toBe('number');
    const iters = events.filter((e) => e.event === 'iter');
    for (const it of iters) expect(Number.isFinite((it.losses as Record<string, number>).loss)).toBe(true);
    for (const it of iters) expect(it.memory_kind).toBe('rss');
    // the resume's FLOPs are the first start's, kept in the cache folder under the backbone's digest
    // (python_shim/mkey_det/analysis/flops_memo.py; python_shim/tests/test_flops_memo.py: recalled, not recounted)
    const startFlops = events.filter((e) => e.event === 'start').map((e) => e.backbone_flops);
    expect(startFlops).toEqual([start.backbone_flops, start.backbone_flops]);
    const memo = join(defaultCacheDir(), 'backbone-flops');
    const kept = readdirSync(memo).filter((f) => f.endsWith('.json')).map((f) => (JSON.parse(readFileSync(join(memo, f), 'utf8')) as { flops: number }).flops);
    expect(kept).toContain(start.backbone_flops);
    interruptedRunEvents = expectEventsMatchSchema(join(wd, 'mkey-events.jsonl'));
  });

  it("a finished run's record holds the digest of the config.py it left, so no reader warns about it", async () => {
    const { workDir } = await sharedRun();
    expect(readRun(workDir).configSha256).toBe(fileSha256(join(workDir, 'config.py')));
    expect(configChangedWarning(workDir)).toBeUndefined();
  });

  it('evaluates a finished run with test (as its last validation) and draws its detections with infer', async () => {
    const shared = await sharedRun();
    const wd = shared.workDir;
    const vals = readJsonLines(join(wd, 'mkey-events.jsonl')).filter((e) => e.event === 'val');
    expect(vals.map((v) => v.epoch)).toContain(SHARED_RUN_EPOCHS);
    const ckpt = join(wd, `epoch_${SHARED_RUN_EPOCHS}.pth`);
    // --cfg-options reach tools/test.py (mmengine's own parser): a harmless one, results unchanged
    const testDir = join(tmp, 'test-shared');
    const evaluated = await runCli(['test', '--checkpoint', ckpt, '--work-dir', testDir, '--cfg-options', 'default_hooks.logger.interval=1', '--json']);
    expect(evaluated.exitCode, evaluated.stderr).toBe(0);
    const ev = JSON.parse(evaluated.stdout) as { status: string; metrics: Record<string, number> };
    expect(ev.status).toBe('completed');
    for (const k of ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75']) {
      expect(typeof ev.metrics[k]).toBe('number');
    }
    // The same checkpoint evaluated by training's last validation and by `test` agree.
    expect(ev.metrics['coco/bbox_mAP']).toBeCloseTo(Number((vals.at(-1)!.metrics as Record<string, number>)['coco/bbox_mAP']), 3);

    // --work-dir at a run directory (its own, or another): refused, its config.py untouched
    const other = join(tmp, 'other-run');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'mkey-run.json'), JSON.stringify({ status: 'completed' }));
    writeFileSync(join(other, 'config.py'), '# another run\n');
    const ownConfig = readFileSync(join(wd, 'config.py'), 'utf8');
    for (const dir of [wd, other]) {
      const res = await runCli(['test', '--checkpoint', ckpt, '--work-dir', dir]);
      expect(res.exitCode, dir).toBe(2);
      expect(res.stderr.split('\n')[0]).toBe(`error: --work-dir ${JSON.stringify(dir)} is a run directory: the evaluation would replace its config.py`);
    }
    expect(readFileSync(join(wd, 'config.py'), 'utf8')).toBe(ownConfig);
    expect(readFileSync(join(other, 'config.py'), 'utf8')).toBe('# another run\n');

    // infer: the run's detector on the val images, pictures (PNG) and detections written once
    // two commands into one --out at the same moment: one writes, the other is refused (a lock)
    const inferOut = join(tmp, 'infer');
    const [a, b] = await Promise.all([0, 1].map(() => runCli(['infer', wd, join(shared.data, 'val2017'), '--out', inferOut, '--score-thr', '0', '--json'])));
    expect([a!.exitCode, b!.exitCode].sort(), `${a!.stderr}\n${b!.stderr}`).toEqual([0, 2]);
    const [inferred, loser] = a!.exitCode === 0 ? [a!, b!] : [b!, a!];
    expect(JSON.parse(loser.stdout).error.message).toMatch(/is being written by mkey-det infer \(pid \d+\); refusing a second writer|is not empty; refusing to write into it/);
    expect(existsSync(join(inferOut, '.mkey-infer.lock'))).toBe(false);
    const inf = JSON.parse(inferred.stdout) as { classes: string[]; images: { vis: string; preds: string; detections: { score: number; bbox: number[] }[] }[]; json: string };
    expect(inf.classes).toEqual(['circle', 'triangle', 'square']);
    const valImages = readdirSync(join(shared.data, 'val2017')).length; // one picture per val image
    expect(valImages).toBe(3);
    expect(inf.images).toHaveLength(valImages);
    for (const img of inf.images) {
      expect(readFileSync(img.vis).subarray(0, 4).toString('hex')).toBe('89504e47');
      expect(existsSync(img.preds)).toBe(true);
      for (const d of img.detections) expect(d.bbox).toHaveLength(4);
    }
    expect(JSON.parse(readFileSync(inf.json, 'utf8')).images).toHaveLength(valImages);
    const inferAgain = await runCli(['infer', wd, join(shared.data, 'val2017'), '--out', inferOut]);
    expect(inferAgain.exitCode).toBe(2);
    expect(inferAgain.stderr.split('\n')[0]).toContain('is not empty; refusing to write into it');

    // a batch with an image bomb (a PNG whose header says 30000 x 30000) and a 3 x 1000 strip: the
    // bomb is skipped from its header (decoding it took 24 GB), the others are done, exit 1
    const odd = join(tmp, 'odd-images');
    mkdirSync(odd, { recursive: true });
    await execa(testPython, ['-c', [
      'import struct, sys, zlib',
      'from PIL import Image',
      'def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))',
      'open(sys.argv[1], "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))',
      'Image.new("RGB", (3, 1000), (200, 30, 30)).save(sys.argv[2])',
    ].join('\n'), join(odd, 'bomb.png'), join(odd, 'strip.png')]);
    const good = join(shared.data, 'val2017', readdirSync(join(shared.data, 'val2017')).sort()[0]!);
    const mixed = await runCli(['infer', wd, join(odd, 'bomb.png'), good, join(odd, 'strip.png'), '--out', join(tmp, 'infer-mixed'), '--json']);
    expect(mixed.exitCode, mixed.stderr).toBe(1);
    const mix = JSON.parse(mixed.stdout) as { ok: boolean; images: { image: string; vis: string | null }[]; failed: { image: string; error: string }[] };
    expect(mix.ok).toBe(false);
    expect(mix.failed.find((f) => f.image.endsWith('bomb.png'))?.error).toMatch(/30000 x 30000 pixels, above the limit/);
    expect(mix.images.find((i) => i.image === good)?.vis).toBeTruthy();
    expect([...mix.images.map((i) => i.image), ...mix.failed.map((f) => f.image)].sort()).toEqual([join(odd, 'bomb.png'), good, join(odd, 'strip.png')].sort());

    // The events format is defined once: every event of a run (train, interrupted, resumed: the
    // test above) and of an evaluation validates against the schema, and together they cover all
    // but 'error' (next test).
    const seen = new Set([...interruptedRunEvents, ...expectEventsMatchSchema(join(wd, 'mkey-events.jsonl')), ...expectEventsMatchSchema(join(testDir, 'mkey-events.jsonl'))]);
    expect([...seen].sort()).toEqual(RUN_EVENT_NAMES.filter((n) => n !== 'error').sort());
  });

  it('a NaN loss stops the run with one line, exit 1, and a failed status', async () => {
    const wd = join(tmp, 'nan');
    const res = await runCli([
      'train', ...small, '--data', data, '--work-dir', wd, '--max-iters', '3',
      '--cfg-options', 'model.data_preprocessor.std=[0,0,0]',
    ]);
    expect(res.exitCode).toBe(1);
    const errLine = res.stderr.split('\n').find((l) => l.startsWith('error: '))!;
    expect(errLine).toMatch(/^error: training failed: non-finite loss at iteration 1/);
    expect(readRun(wd).status).toBe('failed');
    expect(existsSync(join(wd, 'iter_3.pth'))).toBe(false);
    expect(expectEventsMatchSchema(join(wd, 'mkey-events.jsonl'))).toContain('error');
  });
});
