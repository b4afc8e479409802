/**
 * A training run whose disk fills up, end to end on a real small file system: a tmpfs of a few
 * hundred MiB mounted for the test (root only), the work dir on it. The first checkpoint fits, the
 * second does not (torch's write fails with ENOSPC): the run must end with one line and exit 1,
 * never stay `running`; once space is freed (the tmpfs grown), `--resume` continues from the last
 * good checkpoint and completes.
 *
 * Where a file system cannot be mounted (not root, a container without CAP_SYS_ADMIN, no
 * `mount`), the test is skipped with one line saying what refused; it never passes without the
 * disk having filled.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyDataset, runCli } from './helpers/cli.js';
import { SMALL_RUN } from './helpers/shared-run.js';

let tmp: string;
let mnt: string;
/** Why no file system could be mounted here (the skip reason), or undefined when one is. */
let cannotMount: string | undefined;

/** `mount -t tmpfs -o size=<mib>m`, or a one-line reason it could not be mounted. */
function mountTmpfs(dir: string, mib: number, remount = false): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return `not root (uid ${process.getuid()}): mounting a size-limited tmpfs needs root`;
  const opts = `${remount ? 'remount,' : ''}size=${mib}m`;
  const res = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  if (res.error) return `mount could not run: ${res.error.message}`;
  if (res.status !== 0) return `mount -t tmpfs -o ${opts} refused: ${(res.stderr || res.stdout).trim().split('\n')[0]}`;
  return undefined;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-full-disk-'));
  mnt = join(tmp, 'disk');
  mkdirSync(mnt);
  // 320 MiB: the weights-only checkpoint of the small run (about 215 MB) fits once, not twice
  cannotMount = mountTmpfs(mnt, 320);
  if (!cannotMount) await makeTinyDataset(join(tmp, 'tiny'));
});

afterAll(() => {
  if (!cannotMount) spawnSync('umount', ['-l', mnt]);
  rmSync(tmp, { recursive: true, force: true });
});

describe('a full disk during training (a real tmpfs)', () => {
  it('the checkpoint write fails with ENOSPC: one line, exit 1, the run not left running; --resume completes once space is freed', async (ctx) => {
    if (cannotMount) {
      console.warn(`full-disk test skipped: ${cannotMount}`); // shown by the default reporter too
      ctx.skip(`no size-limited file system here: ${cannotMount}`);
    }
    const wd = join(mnt, 'run');
    const args = [
      'train', ...SMALL_RUN, '--data', join(tmp, 'tiny'), '--work-dir', wd, '--max-iters', '2',
      // a checkpoint after every iteration, weights only (mmengine resumes without the optimizer)
      '--cfg-options', 'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.save_optimizer=False',
    ];
    const full = await runCli(args);
    expect(full.exitCode, full.stderr).toBe(1);
    const errors = full.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors, full.stderr).toHaveLength(1);
    // the failed write named, whichever write met the full disk first
    expect(errors[0]).toMatch(/No space left on device|ENOSPC|file write failed/);
    expect(errors[0]).not.toMatch(/ENOSPC ENOSPC/); // the code once, not twice
    // the disk did fill: the first checkpoint complete, the second cut short
    expect(existsSync(join(wd, 'iter_1.pth'))).toBe(true);
    expect(spawnSync('df', ['--output=avail', '-B1', mnt], { encoding: 'utf8' }).stdout.trim().split('\n')[1]!.trim()).toMatch(/^\d{1,7}$/); // < 10 MB left
    expect(existsSync(join(wd, 'mkey-run.lock'))).toBe(false);
    // not `running` for ever: the report reads the run as failed (its status written) or lost (it could not be)
    const report = await runCli(['report', wd, '--json']);
    expect(report.exitCode, report.stderr).toBe(0);
    const status = (JSON.parse(report.stdout) as { runs: { status: string }[] }).runs[0]!.status;
    expect(status).toMatch(/^(failed|lost)/); // read `running, epoch 1/1` before: report dropped the record's supervisor

    // space freed: the same file system grown; --resume continues from iter_1.pth and completes
    expect(mountTmpfs(mnt, 1024, true)).toBeUndefined();
    const resumed = await runCli(['train', '--work-dir', wd, '--resume']);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const record = JSON.parse(readFileSync(join(wd, 'mkey-run.json'), 'utf8')) as { status: string };
    expect(record.status).toBe('completed');
    expect(statSync(join(wd, 'iter_2.pth')).size).toBeGreaterThan(0.99 * statSync(join(wd, 'iter_1.pth')).size); // written whole this time
  }, 600_000);
});
