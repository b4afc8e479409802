/**
 * `train --force` starts a run over an old one: it removes that run's outputs and nothing a person
 * put in the folder (src/core/run/run-dir.ts, prepareWorkDir). Files as a hostile run left them on
 * 2026-12-06: a --pretrained checkpoint inside the work dir and a user folder named like a
 * timestamp were deleted by the previous rule (every *.pth, every timestamp-named folder).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointFileProblem, configChangedWarning, effectiveStatus, fileSha256, liveRunProcess, prepareWorkDir, unwritableProblem } from '../src/core/run/run-dir.js';
import { cliPath, makeTinyDataset, repoRoot, runCli, testPython } from './helpers/cli.js';
import { cmdlineOf, descendants, waitAllGone, waitFor } from './helpers/processes.js';
import { hostname } from 'node:os';
import { acquireFolderLock, lockOutFolder, processStart } from '../src/utils/folder-lock.js';
import { primeTool } from '../src/core/run/primed.js';
import { BadInputError } from '../src/utils/errors.js';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const tmp = mkdtempSync(join(tmpdir(), 'mkey-run-dir-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function oldRun(dir: string): void {
  mkdirSync(join(dir, '20261206_101010', 'vis_data'), { recursive: true });
  writeFileSync(join(dir, '20261206_101010', '20261206_101010.log'), 'log\n');
  writeFileSync(join(dir, '20261206_101010', 'vis_data', 'scalars.json'), '{}\n');
  for (const f of ['mkey-run.json', 'mkey-events.jsonl', 'last_checkpoint', 'epoch_1.pth', 'epoch_2.pth', 'iter_40.pth', 'best_coco_bbox_mAP_epoch_2.pth', 'config.py', 'mkey-train.log']) {
    writeFileSync(join(dir, f), 'x');
  }
}

describe('prepareWorkDir with --force', () => {
  it('removes the old run (mkey-det files, mmengine checkpoints and sessions), keeps the inputs and what a person put there', () => {
    const dir = join(tmp, 'wd');
    oldRun(dir);
    writeFileSync(join(dir, 'my_pretrained.pth'), 'weights'); // given as --pretrained
    writeFileSync(join(dir, 'epoch_9.pth'), 'weights'); // an mmengine name, but handed in as --pretrained too
    mkdirSync(join(dir, '20240101_120000'));
    writeFileSync(join(dir, '20240101_120000', 'photo.jpg'), 'jpeg'); // named like a session, not one
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    prepareWorkDir(dir, { resume: false, force: true, keep: [join(dir, 'my_pretrained.pth'), join(dir, 'epoch_9.pth')] });
    expect(readdirSync(dir).sort()).toEqual(['20240101_120000', 'config.py', 'epoch_9.pth', 'mkey-train.log', 'my_pretrained.pth', 'notes.txt']);
    expect(existsSync(join(dir, '20240101_120000', 'photo.jpg'))).toBe(true);
  });

  it('changes nothing without --force or with --resume', () => {
    for (const opts of [{ resume: false, force: false }, { resume: true, force: true }]) {
      const dir = join(tmp, `keep-${opts.resume}-${opts.force}`);
      oldRun(dir);
      const before = readdirSync(dir).sort();
      prepareWorkDir(dir, opts);
      expect(readdirSync(dir).sort()).toEqual(before);
    }
  });
});

describe('one writer per output folder (src/utils/folder-lock.ts)', () => {
  it('refuses a second writer while the first lives, naming it; takes over a lock whose process is gone or whose pid was reused', () => {
    const dir = join(tmp, 'out');
    mkdirSync(dir, { recursive: true });
    const release = acquireFolderLock(dir, '.lock', 'mkey-det infer');
    expect(() => acquireFolderLock(dir, '.lock', 'mkey-det infer')).toThrow(`${dir} is being written by mkey-det infer (pid ${process.pid}); refusing a second writer`);
    release();
    expect(existsSync(join(dir, '.lock'))).toBe(false);

    // a process that has ended
    const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
    writeFileSync(join(dir, '.lock'), JSON.stringify({ pid: Number(dead), start: '1', command: 'mkey-det infer' }));
    acquireFolderLock(dir, '.lock', 'mkey-det infer')();
    // a live pid that another process had when it wrote the lock (its start time differs)
    expect(processStart(process.pid)).toMatch(/^\d+$/);
    writeFileSync(join(dir, '.lock'), JSON.stringify({ pid: process.pid, start: 'an-earlier-process', command: 'mkey-det infer' }));
    const again = acquireFolderLock(dir, '.lock', 'mkey-det infer');
    expect(JSON.parse(readFileSync(join(dir, '.lock'), 'utf8'))).toMatchObject({ pid: process.pid, start: processStart(process.pid) });
    again();
  });

  // Six processes, 40 rounds, a new folder each round. Each process runs the built lock code
  // (dist/, as the CLI does), tries once at the round's start time, and keeps what it took until
  // every process is done (a holder gone would make its lock stale, on purpose). Two faults these
  // caught: a lock created empty and written after was read empty by another process, taken for
  // stale and removed (two holders in 4-6 of 40 rounds); and two processes that found the same
  // stale lock both removed "it", the second removing the first's new lock (5-13 of 40 rounds).
  const deadPid = Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
  it.each([
    ['an output folder (acquireFolderLock)', 'utils/folder-lock.js', 'acquireFolderLock', "acquireFolderLock(dir, '.lock', 'race')", '.lock', undefined],
    ['an output folder (acquireFolderLock), over a stale lock', 'utils/folder-lock.js', 'acquireFolderLock', "acquireFolderLock(dir, '.lock', 'race')", '.lock', { pid: deadPid, start: '1', command: 'mkey-det infer' }],
    ['a work dir (acquireRunLock)', 'core/run/run-dir.js', 'acquireRunLock', 'acquireRunLock(dir)', 'mkey-run.lock', undefined],
    ['a work dir (acquireRunLock), over a stale lock', 'core/run/run-dir.js', 'acquireRunLock', 'acquireRunLock(dir)', 'mkey-run.lock', { supervisor: deadPid, supervisorStart: '1', host: hostname(), started: '2026-12-07T00:00:00Z' }],
  ])('six processes racing for the lock of %s, 40 times: exactly one holds it each time', async (_what, module, name, take, lockFile, stale) => {
    const base = mkdtempSync(join(tmp, 'race-'));
    const rounds = 40;
    const slotMs = 60;
    for (let r = 0; r < rounds; r++) {
      mkdirSync(join(base, `r${r}`));
      if (stale) writeFileSync(join(base, `r${r}`, lockFile), JSON.stringify(stale) + '\n');
    }
    const child = `
      import { ${name} } from ${JSON.stringify(join(repoRoot, 'dist', module))};
      const [base, t0, rounds, slot] = process.argv.slice(1).map((a, i) => (i === 0 ? a : Number(a)));
      const sleep = (ms) => ms > 0 && Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      let held = '';
      for (let r = 0; r < rounds; r++) {
        const dir = base + '/r' + r;
        sleep(t0 + r * slot - Date.now() - 3);
        while (Date.now() < t0 + r * slot) {}
        try { ${take}; held += '1'; } catch { held += '0'; }
      }
      process.stdout.write(held);
      sleep(t0 + rounds * slot + 1500 - Date.now());`;
    const t0 = Date.now() + 2000;
    const held = await Promise.all(
      Array.from({ length: 6 }, () =>
        execa('node', ['--input-type=module', '-e', child, base, String(t0), String(rounds), String(slotMs)]).then((r) => r.stdout),
      ),
    );
    for (const h of held) expect(h).toMatch(new RegExp(`^[01]{${rounds}}$`));
    const holders = Array.from({ length: rounds }, (_, r) => held.filter((h) => h[r] === '1').length);
    expect(holders).toEqual(Array<number>(rounds).fill(1));
    // no file of the lock's making left but the lock
    expect(readdirSync(base).every((r) => readdirSync(join(base, r)).join() === lockFile)).toBe(true);
  });

  it("a refused writer that made the folder leaves another writer's files in it (it removes the folder only when empty)", () => {
    // two commands into a new folder: this one made it, the other took the lock first, wrote and
    // finished; this one's recheck under the lock then finds the other's file and refuses
    const dir = join(tmp, 'made-here', 'out');
    const refused = () =>
      lockOutFolder(dir, '.lock', 'mkey-det report', 'the --out folder', () => {
        writeFileSync(join(dir, 'report.md'), 'the other writer\'s report');
        throw new BadInputError(`${join(dir, 'report.md')} already exists; refusing to overwrite it`);
      });
    expect(refused).toThrow('already exists');
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toBe("the other writer's report");
    expect(existsSync(join(dir, '.lock'))).toBe(false);
    // refused with nothing written into it: the folder it made goes again
    const empty = join(tmp, 'made-here-empty', 'out');
    expect(() =>
      lockOutFolder(empty, '.lock', 'mkey-det report', 'the --out folder', () => {
        throw new BadInputError('refused');
      }),
    ).toThrow('refused');
    expect(existsSync(join(tmp, 'made-here-empty'))).toBe(false);
  });

  it('a writer that fails under the lock removes what it wrote, not what another writer had put there', () => {
    // another command wrote into the new folder, under another name, before this one took it
    const dir = join(tmp, 'failed-here', 'out');
    const folder = lockOutFolder(dir, '.lock', 'mkey-det analyze attention', 'the --out folder', () => {
      writeFileSync(join(dir, 'report.md'), 'the other writer\'s report');
    });
    mkdirSync(join(dir, 'maps'));
    writeFileSync(join(dir, 'maps', 'attention-1.png'), 'this command: half a picture');
    writeFileSync(join(dir, 'attention.json.part'), 'this command: cut short');
    folder.removeIfMade();
    folder.release(); // as the commands' finally does: no second removal
    expect(readdirSync(dir)).toEqual(['report.md']);
    // a sibling folder under the folder made here (mkdir -p): another command's --out
    const nested = join(tmp, 'made-parent', 'a');
    const mine = lockOutFolder(nested, '.lock', 'mkey-det report', 'the --out folder');
    mkdirSync(join(tmp, 'made-parent', 'b'));
    writeFileSync(join(tmp, 'made-parent', 'b', 'report.md'), 'the other --out folder');
    writeFileSync(join(nested, 'report.md.part'), 'this command');
    mine.removeIfMade();
    expect(existsSync(nested)).toBe(false);
    expect(readFileSync(join(tmp, 'made-parent', 'b', 'report.md'), 'utf8')).toBe('the other --out folder');
    // alone in a folder it made, a failed writer leaves nothing, the folder included
    const alone = join(tmp, 'made-alone', 'out');
    const only = lockOutFolder(alone, '.lock', 'mkey-det infer', 'the --out folder');
    writeFileSync(join(alone, 'detections.json.part'), 'this command');
    only.removeIfMade();
    expect(existsSync(join(tmp, 'made-alone'))).toBe(false);
  });
});

describe('a run lock naming a pid that another process has now', () => {
  it('is no live run (the run reads lost, --resume is not blocked); with the right start time it is', () => {
    const dir = join(tmp, 'reused-pid');
    mkdirSync(dir, { recursive: true });
    const lock = (start: string | null) =>
      writeFileSync(join(dir, 'mkey-run.lock'), JSON.stringify({ supervisor: process.pid, supervisorStart: start, host: hostname(), started: '2026-12-06T00:00:00Z' }));
    lock('an-earlier-process'); // e.g. pid 1 after a reboot: alive, but not the run's CLI
    expect(liveRunProcess(dir)).toBeUndefined();
    expect(effectiveStatus(dir, { status: 'running' })).toBe('lost');
    lock(processStart(process.pid));
    expect(liveRunProcess(dir)?.pid).toBe(process.pid);
    expect(effectiveStatus(dir, { status: 'running' })).toBe('running');
  });
});

describe('a run whose last status could not be written (a full disk: the lock released, the record still says running)', () => {
  it('reads lost once its recorded supervisor is gone, running while it lives', () => {
    const dir = join(tmp, 'status-unwritten');
    mkdirSync(dir, { recursive: true });
    const dead = spawnSync('true').pid!; // a pid that has ended
    const record = (pid: number, start: string | null) => ({ status: 'running' as const, supervisor: { pid, start, host: hostname() } });
    expect(effectiveStatus(dir, record(dead, processStart(process.pid)))).toBe('lost');
    expect(effectiveStatus(dir, record(process.pid, processStart(process.pid)))).toBe('running');
    expect(effectiveStatus(dir, record(process.pid, 'an-earlier-process'))).toBe('lost');
    expect(effectiveStatus(dir, { status: 'running' })).toBe('running'); // nothing to tell by: the file's word stands
  });
});

describe('SIGTERM or Ctrl-C while the Python side checks the run (before training starts)', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s: exit 130 within seconds, one line, the Python side gone', async (signal) => {
    const child = spawn('node', [cliPath, 'train', '--data', 'demo', '--work-dir', join(tmp, `preflight-${signal}`)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // the bridge's Python: a child of the CLI that runs the interpreter
    const python = await waitFor(() => descendants(child.pid!).find((p) => /python/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'))), 60_000, 'the bridge to start');
    await new Promise((r) => setTimeout(r, 1500)); // inside a call
    const t0 = Date.now();
    child.kill(signal);
    const code = await exited;
    const seconds = (Date.now() - t0) / 1000;
    expect(code).toBe(130);
    expect(err).toContain(`${signal}: stopped (the Python side, pid`);
    await waitAllGone([python], 5_000);
    expect(seconds).toBeLessThan(5);
  });
});

describe('the process that checks a one-process run, then runs it (src/core/run/primed.ts)', () => {
  /** `train` on a tiny dataset with `args`, once its checking process has started: that pid, the CLI's exit, its stderr. */
  async function trainUntilChecking(name: string, args: string[]) {
    const data = await makeTinyDataset(join(tmp, `${name}-tiny`));
    const wd = join(tmp, name);
    const child = spawn('node', [cliPath, 'train', '--data', data, '--img-scale', '128x128', ...args, '--work-dir', wd], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const primed = await waitFor(
      () => descendants(child.pid!).find((p) => cmdlineOf(p).includes('mkey_det/cli/primed.py')),
      60_000,
      'the checking process to start',
    );
    return { wd, primed, exited, err: () => err };
  }

  it('killed while it checks (kill -9, the OOM killer): one line naming it and the signal, exit 1, nothing written', async () => {
    const { wd, primed, exited, err } = await trainUntilChecking('primed-killed', []);
    process.kill(primed, 'SIGKILL');
    expect(await exited).toBe(1);
    expect(err().split('\n').find((l) => l.startsWith('error: '))).toBe(`error: the Python process checking the run (pid ${primed}) was killed by SIGKILL (out of memory, or by hand)`);
    expect(existsSync(wd)).toBe(false);
  });

  it('finds its reply line after a stderr line left open (no newline)', async () => {
    // an interpreter that prints half a line on stderr before Python starts, as a wrapper or a warning could
    const wrapper = join(tmp, 'half-line-python');
    writeFileSync(wrapper, `#!/bin/sh\nprintf 'a line left open' >&2\nexec ${JSON.stringify(testPython)} "$@"\n`, { mode: 0o755 });
    const config = join(tmp, 'primed-config.py');
    writeFileSync(config, "default_scope = 'mmdet'\ncustom_imports = dict(imports=['mkey_det'], allow_failed_imports=False)\nmodel = dict(backbone=dict(type='SwinTransformerMKey', key_type='spatialk', num_charts=2))\ntrain_cfg = dict(max_epochs=1)\n");
    const primed = primeTool(wrapper, config, 0);
    try {
      const pre = await primed.preflight;
      expect([pre.key_type, pre.num_charts, pre.max_epochs]).toEqual(['spatialk', 2, 1]);
    } finally {
      primed.cancel();
    }
  });

  it('a launch refused after the check (--amp without a GPU) ends it without running anything; nothing written', async () => {
    const { wd, primed, exited, err } = await trainUntilChecking('primed-refused', ['--amp', 'fp16']);
    expect(await exited).toBe(2);
    expect(err().split('\n')[0]).toBe('error: --amp fp16 needs a CUDA device; this machine has none');
    await waitAllGone([primed], 5_000);
    expect(existsSync(wd)).toBe(false);
  });
});

describe("a run's config.py changed after the launch recorded it", () => {
  it('is named by the commands that build a model from it (infer, analyze, test) before they run it', async () => {
    const dir = join(tmp, 'edited-config');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.py'), 'x = 1\n');
    writeFileSync(join(dir, 'mkey-run.json'), JSON.stringify({ status: 'completed', experiment: {}, command: [], started: '2026-12-06T00:00:00Z', configSha256: fileSha256(join(dir, 'config.py')) }));
    expect(configChangedWarning(dir)).toBeUndefined();
    writeFileSync(join(dir, 'config.py'), 'x = 1\nimport os  # appended\n');
    expect(configChangedWarning(dir)).toContain('is not the config this run recorded at launch');
    const res = await runCli(['infer', dir, join(tmp, 'no-such-image.jpg')]);
    expect(res.stderr.split('\n')[0]).toBe(`warning: ${join(dir, 'config.py')} is not the config this run recorded at launch (its sha256 differs): it is Python that runs now; check what changed before trusting the result`);
  });
});

describe('places that cannot be written are refused before anything starts (exit 2, one line)', () => {
  it('a TMPDIR that does not exist', async () => {
    const res = await runCli(['train', '--data', 'demo', '--work-dir', join(tmp, 'tmpdir-missing')], { env: { ...process.env, TMPDIR: join(tmp, 'no-such-tmp') } });
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe(`error: the temporary folder (TMPDIR): ${join(tmp, 'no-such-tmp')} does not exist`);
    expect(existsSync(join(tmp, 'tmpdir-missing'))).toBe(false);
  });

  it('a --work-dir under a file', async () => {
    writeFileSync(join(tmp, 'a-file'), 'x');
    const res = await runCli(['train', '--data', 'demo', '--work-dir', join(tmp, 'a-file', 'run')]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe(`error: --work-dir "${join(tmp, 'a-file', 'run')}": ${join(tmp, 'a-file')} is not a directory`);
  });

  it('unwritableProblem answers for the nearest folder that exists', () => {
    expect(unwritableProblem(join(tmp, 'not', 'yet', 'made'))).toBeUndefined();
    expect(existsSync(join(tmp, 'not'))).toBe(false);
  });
});

describe('--resume checks the checkpoint last_checkpoint names before anything starts', () => {
  it('a missing or cut-short checkpoint: one line naming it, exit 2, in seconds (it failed 20 s into the resume)', async () => {
    const good = join(tmp, 'good.pth');
    spawnSync(testPython, ['-c', 'import sys, torch; torch.save({"state_dict": {"w": torch.zeros(1000)}}, sys.argv[1])', good]);
    expect(checkpointFileProblem(good)).toBeUndefined();
    const cut = join(tmp, 'cut.pth');
    writeFileSync(cut, readFileSync(good).subarray(0, 1500));
    expect(checkpointFileProblem(cut)).toMatch(/^is not a complete checkpoint \(1500 bytes, cut short\?\)$/);
    expect(checkpointFileProblem(join(tmp, 'gone.pth'))).toBe('does not exist');
    expect(checkpointFileProblem(tmp)).toBe('is not a regular file');

    const wd = join(tmp, 'resumable');
    mkdirSync(wd, { recursive: true });
    writeFileSync(join(wd, 'mkey-run.json'), JSON.stringify({ status: 'interrupted' }));
    for (const [ckpt, problem] of [[join(tmp, 'gone.pth'), 'does not exist'], [cut, 'is not a complete checkpoint (1500 bytes, cut short?)']] as const) {
      writeFileSync(join(wd, 'last_checkpoint'), ckpt);
      const res = await runCli(['train', '--work-dir', wd, '--resume']);
      expect(res.exitCode).toBe(2);
      expect(res.stderr.split('\n')[0]).toBe(`error: --resume: the checkpoint ${join(wd, 'last_checkpoint')} names, ${JSON.stringify(ckpt)}, ${problem}`);
    }
  });
});
