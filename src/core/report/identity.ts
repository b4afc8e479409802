/**
 * Run identity (backbone key, charts, schedule, seed) from each run's config, never from folder
 * names. The config is read as data (`report_tools.py describe`: Python's own parser, nothing
 * executed, no torch imported): reporting over runs someone sent must not run their code.
 */
import { execa } from 'execa';
import { checkInterpreter } from '../../python/interpreter.js';
import { reportToolsScript } from './plots.js';
import type { RunIdentity } from './types.js';

/** What `mkey_det.cli.report_tools.describe_configs` returns per file. */
interface Described {
  path: string;
  ok: boolean;
  error?: string;
  backbone_type?: string | null;
  key_type?: string | null;
  num_charts?: number | null;
  seed?: number | null;
  max_epochs?: number | null;
  max_iters?: number | null;
  schedule?: string | null;
  backbone_name?: string | null;
  experiment?: Record<string, unknown> | null;
  fingerprint?: string | null;
}

function toIdentity(d: Described): RunIdentity {
  if (!d.ok) return { configFile: d.path, error: d.error ?? 'unreadable' };
  const id: RunIdentity = { configFile: d.path };
  if (d.backbone_type) id.backboneType = d.backbone_type;
  if (d.key_type) id.keyType = d.key_type;
  if (d.num_charts !== undefined) id.numCharts = d.num_charts;
  if (d.seed !== undefined) id.seed = d.seed;
  if (typeof d.max_epochs === 'number') id.maxEpochs = d.max_epochs;
  if (typeof d.max_iters === 'number') id.maxIters = d.max_iters;
  if (d.schedule) id.schedule = d.schedule;
  if (d.backbone_name) id.backboneName = d.backbone_name;
  if (d.experiment) id.experiment = d.experiment;
  if (d.fingerprint) id.fingerprint = d.fingerprint;
  return id;
}

/**
 * Describes each config file (undefined entries: the run has no config). One Python process for
 * all files. When Python cannot start, every identity carries the reason and `warning` says so;
 * the report still lists the runs.
 */
export async function describeConfigs(files: (string | undefined)[]): Promise<{ identities: RunIdentity[]; warning?: string }> {
  const paths = files.filter((f): f is string => f !== undefined);
  let described: Described[] = [];
  let warning: string | undefined;
  if (paths.length) {
    try {
      const py = await checkInterpreter();
      const res = await execa(py, [reportToolsScript, 'describe', ...paths], { timeout: 120_000, env: { PYTHONDONTWRITEBYTECODE: '1' } });
      described = JSON.parse(String(res.stdout)) as Described[];
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      warning = `run configs not read (${msg}); runs are not grouped by configuration`;
      described = paths.map((p) => ({ path: p, ok: false, error: 'Python unavailable' }));
    }
  }
  const byPath = new Map(described.map((d) => [d.path, d]));
  const identities = files.map((f) => {
    if (f === undefined) return { error: 'no config .py in the run directory' } satisfies RunIdentity;
    const d = byPath.get(f);
    return d ? toIdentity(d) : { configFile: f, error: 'not described' };
  });
  return { identities, ...(warning ? { warning } : {}) };
}
