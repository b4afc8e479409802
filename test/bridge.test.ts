import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBridge, PythonError, withBridge } from '../src/python/bridge.js';
import { repoRoot, runCli } from './helpers/cli.js';

describe('python bridge (real pythonia + venv)', () => {
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
