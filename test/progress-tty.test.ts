/**
 * The live progress bar, rendered on a real pseudo-terminal (util-linux `script`), as a person sees
 * it: every render shows values, never the bar's template (`{epoch}`, `{loss}`, ...), also after an
 * evaluation restarts the bar and at the very end. Runs the built ProgressView (dist/) on a
 * sequence of real-shaped events; no Python needed.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'mkey-tty-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const time = '2026-11-26T00:00:00Z';
const iter = (i: number, epoch: number) => ({
  event: 'iter', time, iter: i, epoch, max_iters: 8, losses: { loss: 2 - i / 10 }, lr: 0.02,
  iter_time_s: 0.5, eta_s: (8 - i) * 0.5, memory_mb: 2048, memory_kind: 'rss',
});
const EVENTS = [
  { event: 'start', time, max_iters: 8, max_epochs: 2, iters_per_epoch: 4, start_iter: 0, start_epoch: 0, world_size: 1, device: 'cpu', amp: null },
  iter(1, 1), iter(2, 1), iter(3, 1), iter(4, 1),
  { event: 'checkpoint', time, path: '/tmp/run/epoch_1.pth', epoch: 1, iter: 4 },
  { event: 'val', time, epoch: 1, iter: 4, metrics: { 'coco/bbox_mAP': 0.123, 'coco/segm_mAP': 0.101 } },
  iter(5, 2), iter(6, 2), iter(7, 2), iter(8, 2),
  { event: 'val', time, epoch: 2, iter: 8, metrics: { 'coco/bbox_mAP': 0.25, 'coco/segm_mAP': 0.2 } },
  { event: 'end', time, status: 'completed', iter: 8, epoch: 2 },
];

describe('progress bar on a pseudo-terminal', () => {
  it('renders values, never its template, through evaluations and at the end', async () => {
    const driver = join(tmp, 'driver.mjs');
    const progress = pathToFileURL(join(repoRoot, 'dist', 'commands', 'progress.js')).href;
    writeFileSync(
      driver,
      `import { ProgressView } from ${JSON.stringify(progress)};
if (!process.stderr.isTTY) { console.log('NOT A TTY'); process.exit(3); }
const view = new ProgressView('bar', (line) => process.stderr.write(line + '\\n'));
const events = ${JSON.stringify(EVENTS)};
for (const e of events) { view.onEvent(e); await new Promise((r) => setTimeout(r, 120)); }
view.stop();
`,
    );
    // `script` gives the child a pty for stdin/stdout/stderr and copies what it shows to our stdout.
    const res = await execa('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(driver)}`, '/dev/null'], {
      reject: false,
      env: { TERM: 'xterm-256color', COLUMNS: '160' },
    });
    const screen = String(res.stdout);
    expect(screen).not.toContain('NOT A TTY');
    expect(res.exitCode).toBe(0);
    expect(screen).not.toMatch(/\{(epoch|loss|speed|etaText|mem|bar|value|total|eta|percentage)\}/);
    expect(screen).toMatch(/epoch 2 \|.*\| 8\/8 it \| loss 1\.2000 \| 0\.5 s\/it \| ETA 0s \| RSS 2\.0 GiB/);
    expect(screen).toContain('checkpoint saved: /tmp/run/epoch_1.pth');
    expect(screen).toContain('epoch 1 evaluation: box AP 12.3');
    expect(screen).toContain('epoch 2 evaluation: box AP 25.0');
  });
});
