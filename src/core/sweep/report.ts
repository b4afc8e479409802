/**
 * The end of a sweep: the report of the whole matrix, written by the CLI's own `report` command
 * (seeds grouped as mean ± std, deltas, the paper's rows, curves) into the sweep folder as
 * `report.md` and `report.html`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RUN_FILE } from '../run/run-dir.js';
import { CLI_ENTRY } from './queue.js';
import type { SweepRecord } from './state.js';

export interface SweepReport {
  md: string;
  html: string;
  /** The run directories reported (cells without a run are left out). */
  runs: string[];
}

/** Runs `mkey-det <args>` with its output on stderr; resolves its exit code and the last error line. */
function runCli(args: string[], cwd: string): Promise<{ exitCode: number; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_ENTRY, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const take = (d: Buffer) => {
      process.stderr.write(d);
      text = (text + d.toString()).slice(-20_000);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      const error = text.split('\n').filter((l) => l.startsWith('error: ')).at(-1)?.slice('error: '.length);
      resolve({ exitCode: code ?? 1, ...(error ? { error } : {}) });
    });
  });
}

/**
 * Writes `<sweep-dir>/report.md` and `report.html` of every cell that has a run (partial and
 * failed runs get their status in the table). Undefined when no cell has a run yet.
 */
export async function writeSweepReport(rec: SweepRecord, sweepDir: string): Promise<SweepReport | undefined> {
  const runs = rec.cells.map((c) => c.workDir).filter((d) => existsSync(join(d, RUN_FILE)));
  if (runs.length === 0) return undefined;
  const out = { md: join(sweepDir, 'report.md'), html: join(sweepDir, 'report.html') };
  for (const file of [out.md, out.html]) {
    const res = await runCli(['report', ...runs, '--task', rec.spec.task, '--out', file, '--force'], rec.cwd);
    if (res.exitCode !== 0) throw new Error(`mkey-det report --out ${file} failed (exit ${res.exitCode})${res.error ? `: ${res.error}` : ''}`);
  }
  rec.report = out;
  return { ...out, runs };
}
