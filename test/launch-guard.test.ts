/**
 * The launch guard every training, test and sweep cell starts under (src/python/launch-guard.ts,
 * python_shim/mkey_det/cli/launch_guard.py): it runs the command it is given, and it starts without
 * importing the stack the command will import itself (torch, MMDetection). That it ends the command
 * when the CLI dies is shown in test/distributed.test.ts (kill -9 of the CLI); here, that what the
 * command forked ends with it.
 */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { guardedArgs, launchGuardScript } from '../src/python/launch-guard.js';
import { spawnGuarded } from '../src/core/run/supervise.js';
import { testPython } from './helpers/cli.js';
import { waitGroupGone } from './helpers/processes.js';

describe('the launch guard', () => {
  it('execs the command it guards, passing its arguments as given', async () => {
    const res = await execa(testPython, guardedArgs([testPython, '-c', 'import sys; print(sys.argv[1:])', 'a b', '$(x)']), { reject: false });
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toBe("['a b', '$(x)']");
  });

  it('is started by file path and imports neither mkey_det nor torch before the exec', async () => {
    expect(guardedArgs(['true'])[0]).toBe(launchGuardScript);
    // -X importtime lists every module the guard's interpreter imports (the exec'd command has no -X)
    const res = await execa(testPython, ['-X', 'importtime', ...guardedArgs(['true'])], { reject: false });
    expect(res.exitCode).toBe(0);
    const modules = res.stderr
      .split('\n')
      .filter((l) => l.startsWith('import time:'))
      .map((l) => l.split('|').at(-1)!.trim());
    expect(modules).toContain('argparse');
    expect(modules.filter((m) => /^(torch|mmdet|mmengine|mkey_det)(\.|$)/.test(m))).toEqual([]);
  });

  it('ends with what the tool forked: a child left behind holding the output does not keep the run open', async () => {
    // as a DataLoader worker of a trainer killed by SIGKILL: a fork that outlives its parent, stuck, holding stdout
    const script = 'import os, sys, time\nif os.fork() == 0:\n    time.sleep(600)\nprint(os.getpid(), flush=True)\nos._exit(9)';
    const t0 = Date.now();
    const child = spawnGuarded(testPython, [testPython, '-c', script], 'ignore');
    let out = '';
    child.all!.on('data', (d: Buffer) => (out += d.toString()));
    const res = await child;
    expect(res.exitCode).toBe(9);
    expect(Date.now() - t0).toBeLessThan(30_000);
    const leader = Number(out.trim());
    expect(leader).toBe(child.pid);
    // the fork was in the tool's process group: gone with it (once reaped)
    await waitGroupGone(leader, 10_000);
  });
});
