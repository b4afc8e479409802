/**
 * The hostile run of docs/HOSTILE.md, the cases that failed or were weak before their fix: each
 * bad value is refused with one line naming it and what is accepted, exit 2, nothing written.
 * Launch-free: every case here ends before a Python process starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { makeTinyDataset, runCli } from './helpers/cli.js';

let tmp: string;
let data: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'hostile-surfaces-'));
  data = await makeTinyDataset(join(tmp, 'tiny'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { cwd: tmp, env: { ...process.env, ...env } });

describe('sweep', () => {
  it('plans a matrix of 256000 cells (4 backbones x 64 charts x 1000 seeds) instead of overflowing the call stack', async () => {
    const seeds = Array.from({ length: 1000 }, (_, i) => i).join(',');
    const charts = Array.from({ length: 64 }, (_, i) => i + 1).join(',');
    const res = await cli(['sweep', '--plan', '--data', data, '--max-iters', '1', '--seeds', seeds, '--charts', charts,
      '--backbone', 'swin-t-spatialk,swin-t-kua,swin-t-simplek,swin-t-vanillak', '--sweep-dir', join(tmp, 'huge')]);
    expect(res.stderr).not.toMatch(/Maximum call stack/);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/256000 cells/);
    expect(existsSync(join(tmp, 'huge'))).toBe(false); // a plan writes nothing
  });

  it('refuses a --sweep-dir that is a file or a FIFO before the plan, and leaves it as it was', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'precious\n');
    const fifo = join(tmp, 'a-fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [dir, kind] of [[file, 'a file'], [fifo, 'a FIFO']] as const) {
      for (const extra of [[], ['--plan']]) {
        const res = await cli(['sweep', ...extra, '--data', data, '--max-iters', '1', '--sweep-dir', dir]);
        expect(res.exitCode, res.stderr).toBe(2);
        // the path as the sweep shows its folders: relative to the working directory (tmp here)
        expect(res.stderr.split('\n')[0]).toBe(`error: invalid --sweep-dir "${basename(dir)}": ${kind} is there (accepted: a folder, or a path where one can be made)`);
        expect(res.stderr).not.toMatch(/EEXIST|sweep a-/); // no plan printed first
      }
    }
    expect(readFileSync(file, 'utf8')).toBe('precious\n');
  });
});

describe('distributed launches: timeouts from the environment', () => {
  const cases: [string, string, string[]][] = [
    // torchrun reads the rendezvous timeout with int(): 1e+99 failed after the launch (exit 1, a run dir written)
    ['MKEY_RENDEZVOUS_TIMEOUT_S', '1e99', ['train', '--nproc-per-node', '2', '--nnodes', '2']],
    ['MKEY_RENDEZVOUS_TIMEOUT_S', '1e9', ['pretrain', '--nproc-per-node', '2']],
    // the workers read MKEY_DIST_TIMEOUT_S: 'abc' was silently 120 s, 10**15 overflowed timedelta in each worker
    ['MKEY_DIST_TIMEOUT_S', 'abc', ['train', '--nproc-per-node', '2']],
    ['MKEY_DIST_TIMEOUT_S', '1000000000000000', ['pretrain', '--nproc-per-node', '2']],
    ['MKEY_DIST_TIMEOUT_S', '-1', ['train', '--nproc-per-node', '2']],
  ];
  for (const [name, value, args] of cases) {
    it(`${args[0]}: ${name}=${value} is refused before anything is written`, async () => {
      const workDir = join(tmp, `wd-${name}-${value}`);
      const dataArgs = args[0] === 'train' ? ['--data', data] : ['--data', 'demo'];
      const res = await cli([...args, ...dataArgs, '--max-iters', '1', '--work-dir', workDir], { [name]: value });
      expect(res.exitCode, res.stderr).toBe(2);
      expect(res.stderr.split('\n')[0]).toBe(`error: ${name}="${value}": expected a whole number of seconds 1..604800 (a week)`);
      expect(existsSync(workDir)).toBe(false);
    });
  }

  it('test: MKEY_DIST_TIMEOUT_S=0 is refused too', async () => {
    const res = await cli(['test', '--checkpoint', join(tmp, 'none.pth'), '--nproc-per-node', '2'], { MKEY_DIST_TIMEOUT_S: '0' });
    expect(res.exitCode, res.stderr).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe('error: MKEY_DIST_TIMEOUT_S="0": expected a whole number of seconds 1..604800 (a week)');
  });
});

describe('the master port of a multi-process launch (docs/HOSTILE.md p01)', () => {
  it('held by another program: one line naming it, exit 3, before anything is written (it failed in torchrun after the run dir was made)', async () => {
    const holder = createServer();
    const port = await new Promise<number>((resolve) => holder.listen(0, () => resolve((holder.address() as AddressInfo).port)));
    try {
      const workDir = join(tmp, 'port-held');
      const res = await cli(['train', '--data', data, '--max-iters', '1', '--nproc-per-node', '2', '--master-port', String(port), '--work-dir', workDir]);
      expect(res.exitCode, res.stderr).toBe(3);
      expect(res.stderr.split('\n')[0]).toBe(`error: --master-port ${port} is in use on this machine: torchrun's rendezvous needs it free`);
      expect(existsSync(workDir)).toBe(false);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});
