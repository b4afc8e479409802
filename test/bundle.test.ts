/**
 * `bin/mkey-det.js` starts the one-module CLI (`dist/mkey-det.mjs`, scripts/bundle.mjs) while it is
 * current, and tsc's `dist/cli.js` where that is newer (a `tsc` run alone since the last build);
 * the two are the same program.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/cli.js';

const bundle = join(repoRoot, 'dist', 'mkey-det.mjs');
const modules = join(repoRoot, 'dist', 'cli.js');

describe('the one-module CLI and the tsc output', () => {
  it.each([[['--help']], [['config', '--help']], [['config', '--backbone', 'nope', '--out', join(tmpdir(), 'never.py')]], [['report', '--json', join(tmpdir(), 'no-such-run-dir')]]])(
    'print the same and exit the same: %j',
    async (args) => {
      const [a, b] = await Promise.all([bundle, modules].map((entry) => execa('node', [entry, ...args], { reject: false, cwd: repoRoot })));
      expect(a!.exitCode).toBe(b!.exitCode);
      expect(a!.stdout).toBe(b!.stdout);
      expect(a!.stderr).toBe(b!.stderr);
      expect(a!.stdout + a!.stderr).not.toBe('');
    },
  );
});

describe('bin/mkey-det.js picks the current build', () => {
  let tmp: string;
  const start = (env: NodeJS.ProcessEnv = {}) => execa('node', [join(tmp, 'bin', 'mkey-det.js')], { reject: false, env });
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'mkey-bin-'));
    mkdirSync(join(tmp, 'bin'));
    mkdirSync(join(tmp, 'dist'));
    copyFileSync(join(repoRoot, 'bin', 'mkey-det.js'), join(tmp, 'bin', 'mkey-det.js'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const write = (name: string, text: string, secondsAgo: number) => {
    const path = join(tmp, 'dist', name);
    writeFileSync(path, text);
    const t = Date.now() / 1000 - secondsAgo;
    utimesSync(path, t, t);
  };

  it('nothing built: one line saying what to run, exit 1', async () => {
    const res = await start();
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toBe('mkey-det: dist/cli.js is missing; run `npm run build` (or `npm run setup`) in the checkout first');
  });

  it('tsc output only: runs it', async () => {
    write('cli.js', "console.log('modules')", 60);
    expect((await start()).stdout).toBe('modules');
  });

  it('a bundle built after tsc: runs the bundle', async () => {
    write('mkey-det.mjs', "console.log('bundle')", 10);
    expect((await start()).stdout).toBe('bundle');
  });

  it('tsc run again after the bundle: runs the newer tsc output', async () => {
    write('cli.js', "console.log('modules')", 0);
    expect((await start()).stdout).toBe('modules');
  });
});
