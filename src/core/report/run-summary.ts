/**
 * A run in words, for the rows of the report: its state and headline (`completed`, `running, epoch
 * 3/6`, `failed at ...`), its configuration's label, schedule and backbone family, read from its
 * config and, where its task says (tasks.ts `runRecord`), its run record.
 */
import { PRETRAIN_FAMILIES } from '../pretrain/experiment.js';
import type { RunData, RunRow, Shape, TaskOf } from './types.js';

/** `epoch 12/36`, `iter 500/2000`; undefined when nothing was logged yet. */
function progress(run: RunData): string | undefined {
  if (run.maxIters !== undefined && run.maxEpochs === undefined) {
    return run.lastIter === undefined ? undefined : `iter ${run.lastIter}/${run.maxIters}`;
  }
  if (run.lastEpoch === undefined) return undefined;
  return `epoch ${run.lastEpoch}${run.maxEpochs !== undefined ? `/${run.maxEpochs}` : ''}`;
}

export function runState(run: RunData): { state: RunRow['state']; base: string } {
  const s = run.runFile?.status;
  const p = progress(run) ?? 'no logs yet';
  const at = progress(run) ? `at ${p}` : 'before training logged anything';
  const msg = run.runFile?.message ? `: ${run.runFile.message.split('\n')[0]}` : '';
  switch (s) {
    case 'running':
      return { state: 'running', base: `running, ${p}` };
    case 'completed':
      return { state: 'completed', base: 'completed' };
    case 'failed':
      return { state: 'failed', base: `failed ${at}${msg}` };
    case 'interrupted':
      return { state: 'interrupted', base: `interrupted ${at}` };
    case 'lost':
      return { state: 'interrupted', base: `lost ${at}: its status says running but no process of it is alive (resume with --resume)` };
    case undefined:
      break;
    default:
      return { state: 'unknown', base: `${s}, ${p}` };
  }
  if (run.train.length === 0 && run.evals.length === 0) return { state: 'unknown', base: run.sessions.length ? 'no training logged' : 'no logs yet' };
  const iterLoop = run.maxIters !== undefined && run.maxEpochs === undefined;
  const lastEval = run.evals[run.evals.length - 1]?.step;
  let done: boolean;
  if (run.endStatus !== undefined) done = run.endStatus === 'completed';
  else if (iterLoop) done = (run.lastIter ?? 0) >= run.maxIters! || (lastEval ?? 0) >= run.maxIters!;
  else if (run.maxEpochs === undefined) done = false;
  else
    done =
      (lastEval ?? 0) >= run.maxEpochs ||
      (run.itersPerEpoch !== undefined && (run.lastIter ?? 0) >= run.maxEpochs * run.itersPerEpoch);
  return done ? { state: 'completed', base: 'completed' } : { state: 'stopped', base: `incomplete, ${p}` };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);

/** The run record's `experiment` (what the CLI launched), where the task reads it (tasks.ts `runRecord`). */
function recordExperiment(task: TaskOf<Shape>, run: RunData): Record<string, unknown> {
  const e = task.report.runRecord ? run.runFile?.experiment : undefined;
  return e && typeof e === 'object' && !Array.isArray(e) ? (e as Record<string, unknown>) : {};
}

/** An `mkey_experiment` field: the config's, else the run record's. */
const experimentField = (task: TaskOf<Shape>, run: RunData, key: string): string | undefined =>
  str(run.identity.experiment?.[key]) ?? str(recordExperiment(task, run)[key]);

/** Backbone families in the paper's order (Table 1). */
export const FAMILY_IDS: readonly string[] = PRETRAIN_FAMILIES.map((f) => f.id);

/**
 * `swin-t`, `vit-s`, `vit-b` for a task compared by family: the config's `mkey_experiment.family`,
 * the run record's, else the backbone name's prefix.
 */
export function familyOf(task: TaskOf<Shape>, run: RunData): string | undefined {
  if (!task.report.byFamily) return undefined;
  const given = experimentField(task, run, 'family');
  if (given) return given;
  const name = run.identity.backboneName ?? experimentField(task, run, 'backbone');
  return name ? FAMILY_IDS.find((f) => name === f || name.startsWith(`${f}-`)) : undefined;
}

/** The training recipe and the loop length, e.g. `short 12e`, `demo 2it`, `paper 300e`. */
export function scheduleLabel(task: TaskOf<Shape>, run: RunData): string | undefined {
  const id = run.identity;
  const recipe = experimentField(task, run, task.report.scheduleField);
  const len = id.maxIters !== undefined ? `${id.maxIters}it` : id.maxEpochs !== undefined ? `${id.maxEpochs}e` : undefined;
  return [recipe === len ? undefined : recipe, len].filter(Boolean).join(' ') || undefined;
}

/**
 * e.g. `swin-t-spatialk, 8 charts, short 12e`, `swin-t-spatialk, 2 charts, demo 2it, 64px` or
 * `vit-b-vanillak, 4 charts, no CB, paper 300e`: backbone, charts, CB mode (`--cb-mode`), recipe and loop length, the input size when not 224; falls back to the
 * backbone type, then the run label.
 */
export function configLabel(task: TaskOf<Shape>, run: RunData): string {
  const id = run.identity;
  const name = id.backboneName ?? experimentField(task, run, 'backbone') ?? (id.backboneType ? `${id.backboneType}${id.keyType ? ` (${id.keyType} key)` : ''}` : undefined);
  if (!name) return run.label;
  const parts = [name];
  if (id.numCharts && id.keyType !== 'linear') parts.push(`${id.numCharts} charts`);
  // `--cb-mode` (Table 2's `none`); `eq4` is the keys' default, not named
  const cb = experimentField(task, run, 'cb_mode') ?? experimentField(task, run, 'cbMode');
  if (cb === 'none') parts.push('no CB');
  else if (cb === 'per_location') parts.push('per-location CB');
  const sched = scheduleLabel(task, run);
  if (sched) parts.push(sched);
  const size = int(id.experiment?.img_size) ?? int(recordExperiment(task, run).imgSize);
  if (size !== undefined && size !== 224) parts.push(`${size}px`);
  return parts.join(', ');
}

export function relName(run: RunData, file: string): string {
  return file.startsWith(run.dir + '/') ? file.slice(run.dir.length + 1) : file;
}
