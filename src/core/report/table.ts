/**
 * From parsed runs to the report's rows: the evaluation each run reports (`--last` / `--best`),
 * its status, seed groups (mean ± standard deviation), deltas against the baseline, and the
 * published reference rows.
 */
import { resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { KEY_TYPES } from '../experiment.js';
import { BOX_AP, MASK_AP } from '../metrics.js';
import { REFERENCE_ROWS } from './references.js';
import {
  AP_COLUMNS,
  AP_IDS,
  type ApValues,
  type EvalPoint,
  type GroupRow,
  type PickedEval,
  type PlotSeries,
  type Report,
  type RunData,
  type RunRow,
  type Selection,
} from './types.js';

/** Table 3's reference rows live with the other published numbers (references.ts). */
export { REFERENCE_ROWS } from './references.js';

/** 0-1 metric as percent with one decimal, as the paper prints it (exact in binary as far as toFixed goes). */
export const toPercent = (v: number): number => Math.round(v * 1000) / 10;

function apOf(e: EvalPoint): ApValues {
  const ap: ApValues = {};
  for (const c of AP_COLUMNS) {
    const v = e.metrics[c.metric];
    if (v !== undefined) ap[c.id] = toPercent(v);
  }
  return ap;
}

/** The evaluation a run reports: the last one, or the best by box AP (earliest of ties). */
export function pickEval(evals: EvalPoint[], selection: Selection): PickedEval | undefined {
  const withAp = evals.filter((e) => AP_COLUMNS.some((c) => e.metrics[c.metric] !== undefined));
  if (withAp.length === 0) return undefined;
  const bbox = (e: EvalPoint) => e.metrics[BOX_AP] ?? -Infinity;
  const chosen =
    selection === 'best' ? withAp.reduce((best, e) => (bbox(e) > bbox(best) ? e : best), withAp[0]!) : withAp[withAp.length - 1]!;
  return { step: chosen.step, by: chosen.by, ap: apOf(chosen), source: chosen.source };
}

/** `epoch 12/36`, `iter 500/2000`; undefined when nothing was logged yet. */
export function progress(run: RunData): string | undefined {
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

/** e.g. `swin-t-spatialk, 8 charts, short 12e`; falls back to the backbone type, then the run label. */
export function configLabel(run: RunData): string {
  const id = run.identity;
  const name = id.backboneName ?? (id.backboneType ? `${id.backboneType}${id.keyType ? ` (${id.keyType} key)` : ''}` : undefined);
  if (!name) return run.label;
  const parts = [name];
  if (id.numCharts && id.keyType !== 'linear') parts.push(`${id.numCharts} charts`);
  const sched = scheduleLabel(run);
  if (sched) parts.push(sched);
  return parts.join(', ');
}

export function scheduleLabel(run: RunData): string | undefined {
  const id = run.identity;
  const len = id.maxIters !== undefined ? `${id.maxIters}it` : id.maxEpochs !== undefined ? `${id.maxEpochs}e` : undefined;
  if (id.schedule && len && id.schedule !== len) return `${id.schedule} ${len}`;
  return id.schedule ?? len;
}

function buildRunRow(run: RunData, selection: Selection, group: string): RunRow {
  const { state, base } = runState(run);
  const notes = [...run.issues];
  if (run.identity.error) {
    notes.unshift(run.identity.configFile ? `config unreadable: ${relName(run, run.identity.configFile)}: ${run.identity.error}` : run.identity.error);
  }
  const picked = pickEval(run.evals, selection);
  const lastEval = run.evals[run.evals.length - 1];
  const hasAp = (e: EvalPoint) => AP_COLUMNS.some((c) => e.metrics[c.metric] !== undefined);
  if (!picked) notes.unshift(run.evals.length ? 'no evaluation with AP yet' : 'no evaluation yet');
  if (lastEval && !hasAp(lastEval)) {
    notes.push(`the last evaluation (${lastEval.by === 'iter' ? 'iter' : 'epoch'} ${lastEval.step}) logged no AP (the evaluator returned no metrics)`);
  }
  const id = run.identity;
  return {
    label: run.label,
    dir: run.dir,
    config: configLabel(run),
    ...(id.keyType !== undefined ? { keyType: id.keyType } : {}),
    ...(id.numCharts !== undefined ? { charts: id.keyType === 'linear' ? null : id.numCharts } : {}),
    ...(scheduleLabel(run) !== undefined ? { schedule: scheduleLabel(run) } : {}),
    ...(id.seed !== undefined ? { seed: id.seed } : {}),
    group,
    state,
    headline: base,
    status: [base, ...notes].join('; '),
    notes,
    ...(picked ? { eval: picked } : {}),
    isBaseline: false,
    ...(run.backboneParams !== undefined ? { backboneParams: run.backboneParams } : {}),
    ...(run.backboneFlops !== undefined ? { backboneFlops: run.backboneFlops } : {}),
    ...(run.trainingSeconds !== undefined ? { trainingSeconds: run.trainingSeconds } : {}),
    ...(run.lastEpoch !== undefined ? { lastEpoch: run.lastEpoch } : {}),
    ...(run.maxEpochs !== undefined ? { maxEpochs: run.maxEpochs } : {}),
  };
}

export function relName(run: RunData, file: string): string {
  return file.startsWith(run.dir + '/') ? file.slice(run.dir.length + 1) : file;
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n - 1). */
export const sampleStd = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};

export function evalAtLabel(evals: Pick<PickedEval, 'step' | 'by'>[]): string | undefined {
  if (evals.length === 0) return undefined;
  const steps = evals.map((e) => e.step);
  const lo = Math.min(...steps);
  const hi = Math.max(...steps);
  const prefix = evals[0]!.by === 'iter' ? 'it ' : '';
  return lo === hi ? `${prefix}${lo}` : `${prefix}${lo}-${hi}`;
}

export function groupStatus(members: Pick<RunRow, 'status' | 'state' | 'notes'>[]): string {
  if (members.length === 1) return members[0]!.status;
  const counts = new Map<string, number>();
  for (const m of members) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
  const parts = [...counts.entries()].map(([s, n]) => `${n} ${s === 'stopped' ? 'incomplete' : s}`);
  const withNotes = members.filter((m) => m.notes.length > 0).length;
  if (withNotes) parts.push(`notes on ${withNotes} run(s), see Runs`);
  return parts.join(', ');
}

function buildGroup(label: string, members: RunRow[]): GroupRow {
  const evaluated = members.filter((m) => m.eval);
  const meanAp: ApValues = {};
  const stdAp: ApValues = {};
  for (const id of AP_IDS) {
    const xs = evaluated.map((m) => m.eval!.ap[id]).filter((v): v is number => v !== undefined);
    if (xs.length === 0) continue;
    meanAp[id] = mean(xs);
    if (xs.length >= 2) stdAp[id] = sampleStd(xs);
  }
  const first = members[0]!;
  const times = members.map((m) => m.trainingSeconds).filter((t): t is number => t !== undefined);
  const params = members.find((m) => m.backboneParams !== undefined)?.backboneParams;
  const flops = members.find((m) => m.backboneFlops !== undefined)?.backboneFlops;
  const evalAt = evalAtLabel(evaluated.map((m) => m.eval!));
  return {
    label,
    ...(first.keyType !== undefined ? { keyType: first.keyType } : {}),
    ...(first.charts !== undefined ? { charts: first.charts } : {}),
    ...(first.schedule !== undefined ? { schedule: first.schedule } : {}),
    runs: members.map((m) => m.label),
    n: evaluated.length,
    seeds: members.map((m) => m.seed),
    mean: meanAp,
    std: stdAp,
    ...(evalAt !== undefined ? { evalAt } : {}),
    isBaseline: false,
    ...(params !== undefined ? { backboneParams: params } : {}),
    ...(flops !== undefined ? { backboneFlops: flops } : {}),
    ...(times.length ? { trainingSeconds: mean(times) } : {}),
    status: groupStatus(members),
  };
}

function subtract(a: ApValues, b: ApValues): ApValues {
  const out: ApValues = {};
  for (const id of AP_IDS) {
    const x = a[id];
    const y = b[id];
    if (x !== undefined && y !== undefined) out[id] = x - y;
  }
  return out;
}

export interface BuildOptions {
  selection: Selection;
  /** `--baseline`: a run directory, run label or configuration label. */
  baseline?: string;
  /** Extra warnings collected while reading (e.g. Python unavailable). */
  warnings?: string[];
  now?: Date;
}

/**
 * Runs grouped by configuration: the same config fingerprint (the config minus seed and
 * launch-only settings), else one group per run. Group labels from `labelOf`, made unique.
 */
export function configGroups(runs: RunData[], labelOf: (r: RunData) => string): { keyOf: (r: RunData) => string; groupKeys: string[]; labelOfKey: Map<string, string> } {
  const keyOf = (r: RunData) => (r.identity.fingerprint ? `cfg:${r.identity.fingerprint}` : `run:${r.dir}`);
  const groupKeys: string[] = [];
  const labelOfKey = new Map<string, string>();
  const usedLabels = new Map<string, number>();
  for (const r of runs) {
    const k = keyOf(r);
    if (labelOfKey.has(k)) continue;
    groupKeys.push(k);
    let label = labelOf(r);
    const seen = usedLabels.get(label) ?? 0;
    usedLabels.set(label, seen + 1);
    if (seen > 0) label = `${label} (${k.startsWith('run:') ? r.label : `variant ${seen + 1}`})`;
    labelOfKey.set(k, label);
  }
  return { keyOf, groupKeys, labelOfKey };
}

/** `--baseline`: the group of the run (directory or label) or the group (label) it names; BadInputError when none. */
export function findBaselineGroup<G extends { label: string }>(want: string, rows: { dir: string; label: string; group: string }[], groups: G[]): G {
  const abs = resolve(want);
  const run = rows.find((r) => r.dir === abs || r.label === want);
  const found = run ? groups.find((g) => g.label === run.group) : groups.find((g) => g.label === want);
  if (!found) {
    const accepted = [...rows.map((r) => r.label), ...groups.map((g) => g.label)];
    throw new BadInputError(
      `--baseline ${JSON.stringify(want)} matches no run: accepted: a run directory or one of ${[...new Set(accepted)].map((a) => JSON.stringify(a)).join(', ')}`,
    );
  }
  return found;
}

/** Builds the whole report from loaded runs. Throws BadInputError when `--baseline` matches nothing. */
export function buildReport(runs: RunData[], opts: BuildOptions): Report {
  const warnings = [...(opts.warnings ?? [])];
  const { keyOf, groupKeys, labelOfKey } = configGroups(runs, configLabel);
  const rows = runs.map((r) => buildRunRow(r, opts.selection, labelOfKey.get(keyOf(r))!));
  const groups = groupKeys.map((k) => {
    const label = labelOfKey.get(k)!;
    return buildGroup(label, rows.filter((r) => r.group === label));
  });

  // Baseline.
  let baseline: Report['baseline'];
  let baseGroup: GroupRow | undefined;
  if (opts.baseline !== undefined) {
    const want = opts.baseline;
    baseGroup = findBaselineGroup(want, rows, groups);
    baseline = { label: baseGroup.label, kind: baseGroup.runs.length > 1 ? 'group' : 'run', reason: `--baseline ${want}` };
  } else {
    const linear = groups.filter((g) => g.keyType === 'linear');
    if (linear.length === 1) {
      baseGroup = linear[0]!;
      baseline = { label: baseGroup.label, kind: baseGroup.runs.length > 1 ? 'group' : 'run', reason: "the only configuration with key 'linear'" };
    } else if (linear.length > 1) {
      warnings.push(`no deltas: ${linear.length} configurations have key 'linear' (${linear.map((g) => g.label).join('; ')}); pick one with --baseline`);
    } else if (groups.length > 1 && runs.some((r) => !r.identity.error)) {
      warnings.push("no deltas: no run has backbone key 'linear'; name one with --baseline");
    }
  }
  if (baseGroup) {
    baseGroup.isBaseline = true;
    for (const r of rows) if (r.group === baseGroup.label) r.isBaseline = true;
    if (baseGroup.n === 0) warnings.push(`no deltas: the baseline ${baseGroup.label} has no evaluation yet`);
    else {
      for (const g of groups) if (g.n > 0) g.delta = subtract(g.mean, baseGroup.mean);
      for (const r of rows) if (r.eval) r.delta = subtract(r.eval.ap, baseGroup.mean);
    }
  }

  // Baseline first, then the paper's key order (linear, spatialk, kua, simplek, vanillak), charts, label.
  const keyRank = (k: string | undefined) => {
    const i = (KEY_TYPES as readonly string[]).indexOf(k ?? '');
    return i < 0 ? KEY_TYPES.length : i;
  };
  const cmpGroup = (a: GroupRow, b: GroupRow) =>
    Number(b.isBaseline) - Number(a.isBaseline) ||
    keyRank(a.keyType) - keyRank(b.keyType) ||
    (a.charts ?? 0) - (b.charts ?? 0) ||
    a.label.localeCompare(b.label);
  groups.sort(cmpGroup);
  const groupIndex = new Map(groups.map((g, i) => [g.label, i]));
  rows.sort((a, b) => groupIndex.get(a.group)! - groupIndex.get(b.group)! || a.label.localeCompare(b.label));

  const rowIndex = new Map(rows.map((r, i) => [r.dir, i]));
  const plots: PlotSeries[] = [...runs].sort((a, b) => rowIndex.get(a.dir)! - rowIndex.get(b.dir)!).map((r) => ({
    label: r.label,
    loss: r.train.filter((p) => p.loss !== undefined).map((p) => [p.iter, p.loss!] as [number, number]),
    lr: r.train.filter((p) => p.lr !== undefined).map((p) => [p.iter, p.lr!] as [number, number]),
    apBox: r.evals.filter((e) => e.metrics[BOX_AP] !== undefined).map((e) => [e.step, toPercent(e.metrics[BOX_AP]!)] as [number, number]),
    apMask: r.evals.filter((e) => e.metrics[MASK_AP] !== undefined).map((e) => [e.step, toPercent(e.metrics[MASK_AP]!)] as [number, number]),
    evalBy: r.evals[0]?.by ?? (r.maxIters !== undefined && r.maxEpochs === undefined ? 'iter' : 'epoch'),
  }));

  return {
    generated: (opts.now ?? new Date()).toISOString(),
    selection: opts.selection,
    ...(baseline ? { baseline } : {}),
    groups,
    runs: rows,
    references: [...REFERENCE_ROWS],
    plots,
    warnings,
  };
}
