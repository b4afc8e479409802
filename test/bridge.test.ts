import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { openBridge, PythonError, withBridge, type PythonBridge } from '../src/python/bridge.js';
import { call, ENTRIES } from '../src/python/entries.js';
import { runWorker, WorkerError } from '../src/python/worker.js';
import { BadInputError, MkeyError } from '../src/utils/errors.js';
import { repoRoot, runCli, testPython } from './helpers/cli.js';

/**
 * One Python process serves this file's in-process calls, as it serves one command's calls: while
 * a bridge is open, openBridge() hands out the same session (each Python start imports torch and
 * MMDetection, seconds of CPU). The tests that kill or replace the interpreter run in child Nodes.
 */
let held: PythonBridge;
let heldPid: number;
beforeAll(async () => {
  held = await openBridge();
  heldPid = await call(held, 'selftest.pid', {});
});
afterAll(async () => held.close());

describe('python bridge (real pythonia + venv)', () => {
  it('a second open while one is open reuses its Python process; closing it leaves the first usable', async () => {
    const second = await openBridge();
    expect(await call(second, 'selftest.pid', {})).toBe(heldPid);
    await second.close();
    await expect(second.call('selftest.echo', {})).rejects.toThrow('Python bridge already closed');
    expect(await call(held, 'selftest.pid', {})).toBe(heldPid);
  });

  it('round-trips JSON arguments', async () => {
    const value = await withBridge((b) => b.call<Record<string, unknown>>('selftest.echo', { a: 1, s: 'q"\\\n' }));
    expect(value).toEqual({ a: 1, s: 'q"\\\n' });
  });

  it('turns a Python exception into a clean error carrying the Python message', async () => {
    const bridge = await openBridge();
    try {
      const err = await bridge.call('selftest.raise', { message: 'kaboom 42' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PythonError);
      const pe = err as PythonError;
      expect(pe.message).toBe('ValueError: kaboom 42');
      expect(pe.pythonType).toBe('ValueError');
      expect(pe.traceback).toContain('Traceback');
      // the bridge survives the exception and serves the next call
      await expect(bridge.call('selftest.echo', { ok: true })).resolves.toEqual({ ok: true });
    } finally {
      await bridge.close();
    }
  });

  it('returns NaN and infinity as null instead of crashing Node', async () => {
    const value = await withBridge((b) => b.call('selftest.nan'));
    expect(value).toEqual({ nan: null, inf: null, ok: 1.5 });
  });

  it('rejects an unknown entry by name', async () => {
    const err = await withBridge((b) => b.call('os.system', { cmd: 'true' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PythonError);
    expect((err as Error).message).toMatch(/unknown bridge entry 'os.system'/);
  });

  it('an interpreter wrapper that hangs without exec is stopped with its children: one line, exit 3', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkey-hang-'));
    const wrapper = join(dir, 'python');
    writeFileSync(wrapper, '#!/bin/sh\nsleep 1000\n', { mode: 0o755 });
    const started = Date.now();
    const res = await runCli(['config', '--data', 'coco', '--cfg-options', 'model.type=MaskRCNN'], {
      env: { MKEY_PYTHON: wrapper, MKEY_PYTHON_PROBE_TIMEOUT_MS: '3000' },
      timeout: 60_000,
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(res.exitCode).toBe(3);
    expect(res.stderr.split('\n')[0]).toBe(`error: Python interpreter ${wrapper} (from MKEY_PYTHON) did not answer within 3 s (it and its children were stopped)`);
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.trim() === 'sleep 1000');
    expect(left).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('notices at once when its Python process is killed (SIGKILL, an OOM kill) in the middle of a call', async () => {
    const script = `
      import('${join(repoRoot, 'dist/python/bridge.js')}').then(async (m) => {
        const b = await m.openBridge();
        const pid = await b.call('selftest.pid');
        setTimeout(() => process.kill(pid, 'SIGKILL'), 500);
        const t0 = Date.now();
        try { await b.call('selftest.sleep', { seconds: 60 }); console.log('UNEXPECTED'); }
        catch (e) { console.log(JSON.stringify({ pid, message: e.message, exitCode: e.exitCode, ms: Date.now() - t0 })); }
        process.exit(0);
      });`;
    const res = await execa('node', ['--input-type=module', '-e', script], { reject: false, timeout: 120_000 });
    expect(res.exitCode, String(res.stderr)).toBe(0);
    const out = JSON.parse(String(res.stdout).trim().split('\n').pop()!) as { pid: number; message: string; exitCode: number; ms: number };
    expect(out.message).toBe(`the Python process (pid ${out.pid}) was killed by SIGKILL (out of memory, or by hand) during selftest.sleep`);
    expect(out.exitCode).toBe(1);
    expect(out.ms).toBeLessThan(10_000);
  });

  it('gives a clear message for a missing interpreter (no crash)', async () => {
    // In a child Node so MKEY_PYTHON does not leak into this process's bridge.
    const script = `
      import('${join(repoRoot, 'dist/python/bridge.js')}').then(async (m) => {
        try { await m.openBridge(); console.log('UNEXPECTED'); }
        catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message, exitCode: e.exitCode })); }
      });`;
    const res = await execa('node', ['--input-type=module', '-e', script], {
      env: { MKEY_PYTHON: '/nonexistent/python3' },
      reject: false,
    });
    expect(res.exitCode).toBe(0);
    const out = JSON.parse(String(res.stdout).trim()) as { message: string; exitCode: number };
    expect(out.message).toBe('Python interpreter not found: /nonexistent/python3 (from MKEY_PYTHON)');
    expect(out.exitCode).toBe(3);
  });
});

describe('the typed Python interface (src/python/entries.ts)', () => {
  it('names exactly the entries of bridge.py ENTRIES', async () => {
    expect(Object.keys(ENTRIES).sort()).toEqual(await call(held, 'selftest.entries', {}));
  });

  it('calls an entry and hands back its reply as the schema types it', async () => {
    const value = await withBridge((b) => call(b, 'selftest.nan', {}));
    expect(value).toEqual({ nan: null, inf: null, ok: 1.5 });
    await expect(withBridge((b) => call(b, 'selftest.sleep', { seconds: 0.01 }))).resolves.toBe(0.01);
  });

  it('a reply that does not fit its schema is one error naming the entry and the field', async () => {
    // the real bridge and Python, the reply of echo read as if selftest.nan had sent it
    const err = await withBridge((b) => {
      const echoing: PythonBridge = {
        call: (_name, _args, opts) => b.call('selftest.echo', { nan: null, inf: null, ok: 'not a number' }, opts),
        close: () => b.close(),
      };
      return call(echoing, 'selftest.nan', {});
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MkeyError);
    expect((err as MkeyError).message).toBe('Python entry selftest.nan replied with unexpected data at ok: Invalid input: expected number, received string');
    expect((err as MkeyError).exitCode).toBe(1);
  });

  it('refuses arguments that do not fit before Python sees them', async () => {
    const sent: string[] = [];
    const recording: PythonBridge = {
      call: async <T,>(name: string): Promise<T> => {
        sent.push(name);
        return undefined as T;
      },
      close: async () => undefined,
    };
    const err = await call(recording, 'selftest.sleep', { seconds: '60' } as never).catch((e: unknown) => e);
    expect((err as Error).message).toBe('bridge entry selftest.sleep: argument seconds: Invalid input: expected number, received string');
    const typo = await call(recording, 'runs.check_checkpoint', { config_path: 'a', checkpoint: 'b' } as never).catch((e: unknown) => e);
    expect((typo as Error).message).toMatch(/^bridge entry runs\.check_checkpoint: argument (checkpoint_path: Invalid input|\(top level\): Unrecognized key)/);
    expect(sent).toEqual([]);
  });
});

describe('python workers (src/python/worker.ts: JSON lines on stdout)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mkey-worker-'));
  const script = (name: string, body: string): string => {
    const path = join(dir, `${name}.py`);
    writeFileSync(path, `import json, os, signal, sys\ndef line(o): print(json.dumps(o), flush=True)\n${body}\n`);
    return path;
  };
  const result = z.strictObject({ answer: z.number() });

  it('hands progress lines to onEvent and returns the checked result', async () => {
    const events: unknown[] = [];
    const value = await runWorker({
      python: testPython,
      run: { script: script('ok', "print('a library talking')\nline({'event': 'progress', 'line': 'half'})\nline({'event': 'result', 'result': {'answer': 42}})") },
      label: 'ok worker',
      result,
      onEvent: (e) => events.push(e),
    });
    expect(value).toEqual({ answer: 42 });
    expect(events).toEqual([{ event: 'progress', line: 'half' }]);
  });

  it('an error line with exit_code 2 is the user\'s mistake (exit 2); another is a failure', async () => {
    const refused = await runWorker({
      python: testPython,
      run: { script: script('refuses', "line({'event': 'error', 'message': '--size must be >= 32', 'exit_code': 2})\nsys.exit(2)") },
      label: 'refusing worker',
      result,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BadInputError);
    expect((refused as Error).message).toBe('--size must be >= 32');
    const failed = await runWorker({
      python: testPython,
      run: { script: script('fails', "line({'event': 'error', 'message': 'out of disk', 'exit_code': 1})\nsys.exit(1)") },
      label: 'failing worker',
      result,
    }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(WorkerError);
    expect((failed as Error).message).toBe('failing worker failed: out of disk');
  });

  it('a crash, a result that does not fit, a missing interpreter: one line each', async () => {
    const crash = await runWorker({
      python: testPython,
      run: { script: script('crash', "print('about to crash', file=sys.stderr, flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)") },
      label: 'crashing worker',
      result,
    }).catch((e: unknown) => e);
    expect((crash as Error).message).toBe('crashing worker was killed (SIGSEGV)');
    expect((crash as WorkerError).stderrTail).toContain('about to crash');
    expect((crash as WorkerError).exitCode).toBe(1);

    const misfit = await runWorker({
      python: testPython,
      run: { script: script('misfit', "line({'event': 'result', 'result': {'answer': 'many'}})") },
      label: 'misfit worker',
      result,
    }).catch((e: unknown) => e);
    expect((misfit as Error).message).toBe('misfit worker replied with unexpected data at answer: Invalid input: expected number, received string');

    const silent = await runWorker({ python: testPython, run: { script: script('silent', "print('no protocol here')") }, label: 'silent worker', result }).catch(
      (e: unknown) => e,
    );
    expect((silent as Error).message).toBe('silent worker failed (exit 0): no protocol here');

    const missing = await runWorker({ python: '/nonexistent/python3', run: { module: 'mkey_det.bench' }, label: 'bench', result }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(WorkerError);
    expect((missing as WorkerError).notFound).toBe(true);
    expect((missing as Error).message).toBe('Python interpreter not found: /nonexistent/python3');
    rmSync(dir, { recursive: true, force: true });
  });
});
