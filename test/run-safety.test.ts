/**
 * Runs that survive their supervisor: a CLI killed with SIGKILL leaves no training process behind
 * and its run reads `lost` (then resumes); two `train` commands into one work dir never both run; a
 * user's config.py is never lost; a checkpoint that does not fit the config is refused, as are
 * unreadable ones, without advice to turn the safe loader off. Real processes, real MMDetection.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, makeTinyDataset, pidAlive as alive, repoRoot, runCli, testPython } from './helpers/cli.js';
import { SHARED_RUN_EPOCHS, SMALL_FINISHED_RUN, SMALL_RUN, sharedRun } from './helpers/shared-run.js';

const python = testPython;
const small = SMALL_RUN;
let tmp: string;
let data: string;

const waitFor = async (cond: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  return cond();
};
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-safety-'));
  data = await makeTinyDataset(join(tmp, 'tiny'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a CLI killed with SIGKILL', () => {
  it('takes its training process with it; the run reads lost, then resumes from its checkpoint', async () => {
    const wd = join(tmp, 'killed');
    const cli = execa('node', [cliPath, 'train', ...small, '--data', data, '--work-dir', wd, '--max-epochs', '2', '--json'], {
      reject: false,
      cwd: repoRoot,
    });
    expect(await waitFor(() => existsSync(join(wd, 'last_checkpoint')), 240_000)).toBe(true);
    const lock = readJson(join(wd, 'mkey-run.lock'));
    const trainer = Number(lock.trainer);
    expect(alive(trainer)).toBe(true);
    cli.kill('SIGKILL');
    await cli;
    // The parent-death signal stops the trainer at its next iteration boundary.
    expect(await waitFor(() => !alive(trainer), 90_000)).toBe(true);
    expect(readJson(join(wd, 'mkey-run.json')).status).toBe('running'); // nobody was left to write it...
    const report = await runCli(['report', wd, '--format', 'json']);
    expect(report.exitCode).toBe(0);
    expect(report.stdout).toContain('lost'); // ...and every reader sees through it

    const resumed = await runCli(['train', '--work-dir', wd, '--resume', '--json']);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(readJson(join(wd, 'mkey-run.json')).status).toBe('completed');
    expect(existsSync(join(wd, 'epoch_2.pth'))).toBe(true);
    expect(existsSync(join(wd, 'mkey-run.lock'))).toBe(false);
  }, 600_000);
});

describe('one work dir, one run', () => {
  it('of two train commands started together, one runs and one is refused; a user config.py is kept', async () => {
    const wd = join(tmp, 'contended');
    mkdirSync(wd);
    writeFileSync(join(wd, 'config.py'), '# my own config\n');
    const args = ['train', ...SMALL_FINISHED_RUN, '--data', data, '--work-dir', wd, '--max-iters', '2'];
    // A refused command (bad option, found after the dataset and model checks) writes nothing.
    const refused = await runCli([...args, '--amp']);
    expect(refused.exitCode).toBe(2);
    expect(readdirSync(wd)).toEqual(['config.py']);

    const [a, b] = await Promise.all([runCli(args), runCli(args)]);
    const codes = [a.exitCode, b.exitCode].sort();
    expect(codes).toEqual([0, 2]);
    const loser = a.exitCode === 2 ? a : b;
    expect(loser.stderr.split('\n')[0]).toMatch(/holds a live run \(pid \d+|already holds a run/);
    const backups = readdirSync(wd).filter((f) => f.startsWith('config.py.user-'));
    expect(backups).toHaveLength(1);
    expect(readFileSync(join(wd, backups[0]!), 'utf8')).toBe('# my own config\n');
    expect(readFileSync(join(wd, 'config.py'), 'utf8')).toContain('mkey_experiment');
  }, 600_000);
});

describe('checkpoints that do not fit or are not checkpoints', () => {
  it('are refused with one line naming what they are, never with the unsafe loader', async () => {
    const { workDir: wd } = await sharedRun(); // a finished real run (spatialk, 2 charts)
    const ckpt = join(wd, `epoch_${SHARED_RUN_EPOCHS}.pth`);
    expect(existsSync(ckpt)).toBe(true);
    // That run's checkpoint against a config of another variant: refused, naming both.
    const other = join(tmp, 'other-c4.py');
    expect((await runCli(['config', '--backbone', 'swin-t-spatialk', '--charts', '4', '--data', data, '--out', other])).exitCode).toBe(0);
    const mismatch = await runCli(['test', '--checkpoint', ckpt, '--config', other]);
    expect(mismatch.exitCode).toBe(2);
    expect(mismatch.stderr.split('\n')[0]).toContain("does not fit the config's model (config: spatialk, 4 charts; checkpoint: spatialk, 2 charts)");
    expect(existsSync(join(wd, `test-epoch_${SHARED_RUN_EPOCHS}`))).toBe(false);

    // Files that are not checkpoints, or that hold code: one line each, never the unsafe loader.
    const notCkpt = join(tmp, 'notes.pth');
    writeFileSync(notCkpt, 'hello\n');
    const evil = join(tmp, 'evil.pth');
    const marker = join(tmp, 'evil-ran');
    await execa(python, ['-c', `import os, torch
class E:
    def __reduce__(self): return (os.system, ('touch ${marker}',))
torch.save({'state_dict': {}, 'x': E()}, '${evil}')`]);
    const truncated = join(tmp, 'truncated.pth');
    writeFileSync(truncated, readFileSync(ckpt).subarray(0, 100_000));
    const fifo = join(tmp, 'fifo.pth');
    await execa('mkfifo', [fifo]);
    for (const [file, message] of [
      [notCkpt, 'is not a PyTorch checkpoint'],
      [evil, 'holds a pickled object the safe loader refuses (posix.system)'],
      [truncated, 'is not a complete PyTorch checkpoint'],
      [fifo, 'is not a regular file'],
    ] as const) {
      const res = await execa('node', [cliPath, 'test', '--checkpoint', file, '--config', join(wd, 'config.py')], { reject: false, timeout: 120_000 });
      expect(res.exitCode, file).toBe(2);
      expect(res.stderr.split('\n')[0]).toContain(message);
      expect(res.stderr).not.toMatch(/weights_only|Traceback/);
    }
    expect(existsSync(marker)).toBe(false);
  }, 600_000);
});
