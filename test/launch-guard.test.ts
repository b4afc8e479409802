/**
 * The launch guard every training, test and sweep cell starts under (src/python/launch-guard.ts,
 * python_shim/mkey_det/cli/launch_guard.py): it runs the command it is given, and it starts without
 * importing the stack the command will import itself (torch, MMDetection). That it ends the command
 * when the CLI dies is shown in test/distributed.test.ts (kill -9 of the CLI).
 */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { guardedArgs, launchGuardScript } from '../src/python/launch-guard.js';
import { testPython } from './helpers/cli.js';

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
});
