/**
 * `mkey-det infer` on a folder of many images, with the shared run's detector: progress while it
 * works (stderr lines "infer: k/n images (x img/s, ETA ...)"), each image's entry streamed to
 * `detections.json` as it is done (the worker keeps none), Ctrl-C ending the Python side at once,
 * and `--force` replacing a symbolic link at a picture's name instead of writing through it.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, pidAlive, repoRoot, runCli } from './helpers/cli.js';
import { sharedRun } from './helpers/shared-run.js';

let tmp: string;
let images: string;
const N = 6;
/** formatDuration's text: 45s, 3m 12s, 2h 05m. */
const DURATION = '(\\d+s|\\d+m \\d{2}s|\\d+h \\d{2}m)';

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-infer-scale-'));
  const { data } = await sharedRun();
  // N images: copies of the three val images under their own names
  images = join(tmp, 'images');
  mkdirSync(images);
  const val = readdirSync(join(data, 'val2017')).sort();
  for (let i = 0; i < N; i++) copyFileSync(join(data, 'val2017', val[i % val.length]!), join(images, `img-${String(i).padStart(3, '0')}.png`));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('mkey-det infer on a folder of images', () => {
  it('prints its progress to stderr and streams every image into detections.json; --force replaces a linked picture name, not its target', async () => {
    const { workDir } = await sharedRun();
    const out = join(tmp, 'out');
    const res = await runCli(['infer', workDir, images, '--out', out, '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    const progress = res.stderr.split('\n').filter((l) => l.startsWith('infer: '));
    // once a second has passed, then every 10 s, and at the end
    for (const line of progress.slice(0, -1)) expect(line).toMatch(new RegExp(`^infer: [1-${N - 1}]/${N} images \\(\\d+(\\.\\d{1,2})? img/s, ETA ${DURATION}\\)$`));
    expect(progress.at(-1)).toMatch(new RegExp(`^infer: ${N}/${N} images \\(\\d+(\\.\\d{1,2})? img/s, ${DURATION} in all\\)$`));
    const body = JSON.parse(res.stdout) as { images: { image: string; vis: string; preds: string }[]; failed: unknown[]; json: string };
    expect(body.images).toHaveLength(N);
    expect(body.failed).toEqual([]);
    const written = JSON.parse(readFileSync(join(out, 'detections.json'), 'utf8')) as { classes: string[]; images: { image: string }[]; failed: unknown[] };
    expect(written.classes).toEqual(['circle', 'triangle', 'square']);
    expect(written.images.map((i) => i.image)).toEqual(body.images.map((i) => i.image));
    expect(readdirSync(out).sort()).toEqual(['detections.json', 'preds', 'vis']); // no lock, no partial file

    // a picture's name linked to the user's own file elsewhere: --force writes a new picture there
    const mine = join(tmp, 'my-photo.png');
    writeFileSync(mine, 'my own photo\n');
    const first = join(out, 'vis', 'img-000.png');
    rmSync(first);
    symlinkSync(mine, first);
    const forced = await runCli(['infer', workDir, join(images, 'img-000.png'), '--out', out, '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(forced.stderr).toContain(`img-000.png" was a symbolic link to ${JSON.stringify(mine)}; replaced the link with a file of its own`);
    expect(readFileSync(mine, 'utf8')).toBe('my own photo\n');
    expect(lstatSync(first).isSymbolicLink()).toBe(false);
    expect(readFileSync(first).subarray(0, 4).toString('hex')).toBe('89504e47');
  });

  it('Ctrl-C: exit 130 within seconds with one line saying how far it got, the Python side gone, no half detections.json', async () => {
    const { workDir } = await sharedRun();
    const out = join(tmp, 'stopped');
    const child = spawn('node', [cliPath, 'infer', workDir, images, '--out', out], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // stopped once the first picture is written (the others take seconds more)
    const deadline = Date.now() + 300_000;
    while (!(existsSync(join(out, 'vis')) && readdirSync(join(out, 'vis')).length > 0)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no picture written:\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const worker = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    const t0 = Date.now();
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect((Date.now() - t0) / 1000).toBeLessThan(5);
    const line = err.split('\n').find((l) => l.startsWith('error: '));
    expect(line).toMatch(new RegExp(`^error: SIGINT: infer stopped after \\d+ of ${N} images \\(the Python side ended\\)(; their pictures and prediction files are in .*stopped, no detections\\.json)?$`));
    expect(pidAlive(worker)).toBe(false);
    expect(existsSync(join(out, 'detections.json'))).toBe(false);
    expect(existsSync(join(out, 'detections.json.part'))).toBe(false);
    expect(existsSync(join(out, '.mkey-infer.lock'))).toBe(false);
    expect(readdirSync(join(out, 'vis')).length).toBeGreaterThanOrEqual(1);
  });
});
