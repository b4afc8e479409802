/**
 * From parsed runs to the report's rows, for the task a description names (tasks.ts): the
 * evaluation each run reports (`--last` / `--best` by the task's primary metric), its status, seed
 * groups (mean ± standard deviation), deltas against the baseline (one, or one per backbone family),
 * the plot series, and the published reference rows.
 */
import { resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { KEY_TYPES } from '../experiment.js';
import { CLASSIFICATION, DETECTION, FLOPS_INPUT } from '../tasks.js';
import { REFERENCE_ROWS } from './references.js';
import { configLabel, FAMILY_IDS, familyOf, relName, runState, scheduleLabel } from './run-summary.js';
import type {
  AnyReport,
  Baseline,
  ClassificationReport,
  EvalPoint,
  GroupRow,
  Holding,
  MetricValues,
  PickedEval,
  PlotSeries,
  Report,
  RunData,
  RunRow,
  Selection,
  Shape,
  TaskOf,
} from './types.js';

/** 0-1 metric as percent with one decimal, as the paper prints it (exact in binary as far as toFixed goes). */
export const toPercent = (v: number): number => Math.round(v * 1000) / 10;

/** A logged metric as the report holds it: percent (CocoMetric logs fractions with 3 decimals). */
const asPercent = (task: TaskOf<Shape>, v: number): number => (task.logged === 'fraction' ? toPercent(v) : v);

const hasMetrics = (task: TaskOf<Shape>, e: EvalPoint) => task.metrics.some((c) => e.metrics[c.metric] !== undefined);

/** The numbers of a picked evaluation or a reference row (its `ap` or `acc`). */
export function valuesOf<S extends Shape>(task: TaskOf<S>, holder: Holding<S>): MetricValues<S['key']> {
  return (holder as Record<string, MetricValues<S['key']>>)[task.report.values]!;
}

/** The evaluation a run reports: the last one, or the best by the task's primary metric (earliest of ties); detection's unless `task` says. */
export function pickEval(evals: EvalPoint[], selection: Selection): PickedEval | undefined;
export function pickEval<S extends Shape>(evals: EvalPoint[], selection: Selection, task: TaskOf<S>): PickedEval<S> | undefined;
export function pickEval(evals: EvalPoint[], selection: Selection, task: TaskOf<Shape> = DETECTION): object | undefined {
  const withMetrics = evals.filter((e) => hasMetrics(task, e));
  if (withMetrics.length === 0) return undefined;
  const primary = task.metrics.find((c) => c.key === task.primary)!.metric;
  const score = (e: EvalPoint) => e.metrics[primary] ?? -Infinity;
  const chosen =
    selection === 'best' ? withMetrics.reduce((best, e) => (score(e) > score(best) ? e : best), withMetrics[0]!) : withMetrics[withMetrics.length - 1]!;
  const values: MetricValues = {};
  for (const c of task.metrics) {
    const v = chosen.metrics[c.metric];
    if (v !== undefined) values[c.key] = asPercent(task, v);
  }
  return { step: chosen.step, by: chosen.by, [task.report.values]: values, source: chosen.source } as PickedEval<Shape>;
}

function buildRunRow<S extends Shape>(task: TaskOf<S>, run: RunData, selection: Selection, group: string): RunRow<S> {
  const { state, base } = runState(run);
  const notes = [...run.issues];
  if (run.identity.error) {
    notes.unshift(run.identity.configFile ? `config unreadable: ${relName(run, run.identity.configFile)}: ${run.identity.error}` : run.identity.error);
  }
  const picked = pickEval(run.evals, selection, task);
  const lastEval = run.evals[run.evals.length - 1];
  if (!picked) notes.unshift(run.evals.length ? task.report.words.noEval : 'no evaluation yet');
  if (lastEval && !hasMetrics(task, lastEval)) {
    notes.push(`the last evaluation (${lastEval.by === 'iter' ? 'iter' : 'epoch'} ${lastEval.step}) ${task.report.words.emptyEval}`);
  }
  const id = run.identity;
  const family = familyOf(task, run);
  const schedule = scheduleLabel(task, run);
  return {
    label: run.label,
    dir: run.dir,
    config: configLabel(task, run),
    ...(family !== undefined ? { family } : {}),
    ...(id.keyType !== undefined ? { keyType: id.keyType } : {}),
    ...(id.numCharts !== undefined ? { charts: id.keyType === 'linear' ? null : id.numCharts } : {}),
    ...(schedule !== undefined ? { schedule } : {}),
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

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n - 1). */
const sampleStd = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};

function evalAtLabel(evals: Pick<PickedEval<Shape>, 'step' | 'by'>[]): string | undefined {
  if (evals.length === 0) return undefined;
  const steps = evals.map((e) => e.step);
  const lo = Math.min(...steps);
  const hi = Math.max(...steps);
  const prefix = evals[0]!.by === 'iter' ? 'it ' : '';
  return lo === hi ? `${prefix}${lo}` : `${prefix}${lo}-${hi}`;
}

function groupStatus(members: Pick<RunRow, 'status' | 'state' | 'notes'>[]): string {
  if (members.length === 1) return members[0]!.status;
  const counts = new Map<string, number>();
  for (const m of members) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
  const parts = [...counts.entries()].map(([s, n]) => `${n} ${s === 'stopped' ? 'incomplete' : s}`);
  const withNotes = members.filter((m) => m.notes.length > 0).length;
  if (withNotes) parts.push(`notes on ${withNotes} run(s), see Runs`);
  return parts.join(', ');
}

function buildGroup<S extends Shape>(task: TaskOf<S>, label: string, members: RunRow<S>[]): GroupRow<S> {
  const evaluated = members.filter((m) => m.eval);
  const means: MetricValues<S['key']> = {};
  const stds: MetricValues<S['key']> = {};
  for (const { key } of task.metrics) {
    const xs = evaluated.map((m) => valuesOf(task, m.eval!)[key]).filter((v): v is number => v !== undefined);
    if (xs.length === 0) continue;
    means[key] = mean(xs);
    if (xs.length >= 2) stds[key] = sampleStd(xs);
  }
  const first = members[0]!;
  const times = members.map((m) => m.trainingSeconds).filter((t): t is number => t !== undefined);
  const params = members.find((m) => m.backboneParams !== undefined)?.backboneParams;
  const flops = members.find((m) => m.backboneFlops !== undefined)?.backboneFlops;
  const evalAt = evalAtLabel(evaluated.map((m) => m.eval!));
  return {
    label,
    ...(first.family !== undefined ? { family: first.family } : {}),
    ...(first.keyType !== undefined ? { keyType: first.keyType } : {}),
    ...(first.charts !== undefined ? { charts: first.charts } : {}),
    ...(first.schedule !== undefined ? { schedule: first.schedule } : {}),
    runs: members.map((m) => m.label),
    n: evaluated.length,
    seeds: members.map((m) => m.seed),
    mean: means,
    std: stds,
    ...(evalAt !== undefined ? { evalAt } : {}),
    isBaseline: false,
    ...(params !== undefined ? { backboneParams: params } : {}),
    ...(flops !== undefined ? { backboneFlops: flops } : {}),
    ...(times.length ? { trainingSeconds: mean(times) } : {}),
    status: groupStatus(members),
  };
}

function subtract<S extends Shape>(task: TaskOf<S>, a: MetricValues<S['key']>, b: MetricValues<S['key']>): MetricValues<S['key']> {
  const out: MetricValues<S['key']> = {};
  for (const { key } of task.metrics) {
    const x = a[key];
    const y = b[key];
    if (x !== undefined && y !== undefined) out[key] = x - y;
  }
  return out;
}

export interface BuildOptions {
  /** Default: the task's (`last` for detection, `best` by top-1 for classification). */
  selection?: Selection;
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
function configGroups(runs: RunData[], labelOf: (r: RunData) => string): { keyOf: (r: RunData) => string; groupKeys: string[]; labelOfKey: Map<string, string> } {
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
function findBaselineGroup<G extends { label: string }>(want: string, rows: { dir: string; label: string; group: string }[], groups: G[]): G {
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

const rank = (list: readonly string[], v: string | undefined) => {
  const i = list.indexOf(v ?? '');
  return i < 0 ? list.length : i;
};

/**
 * The baselines the deltas compare against: `--baseline` for every group; else, in each family (a
 * task compared by family) or in the whole table, its only configuration with key 'linear'.
 * Marks them and sets the deltas; what stands in the way of deltas goes to `warnings`.
 */
function applyBaselines<S extends Shape>(task: TaskOf<S>, runs: RunData[], rows: RunRow<S>[], groups: GroupRow<S>[], want: string | undefined, warnings: string[]): Baseline[] {
  const baselines: Baseline[] = [];
  const apply = (base: GroupRow<S>, targets: GroupRow<S>[]) => {
    base.isBaseline = true;
    for (const r of rows) if (r.group === base.label) r.isBaseline = true;
    if (base.n === 0) {
      warnings.push(`no deltas${base.family ? ` in ${base.family}` : ''}: the baseline ${base.label} has no evaluation yet`);
      return;
    }
    for (const g of targets) {
      // with one baseline per family, each group names its own
      if (task.report.byFamily) g.baseline = base.label;
      if (g.n > 0) g.delta = subtract(task, g.mean, base.mean);
      for (const r of rows) if (r.group === g.label && r.eval) r.delta = subtract(task, valuesOf(task, r.eval), base.mean);
    }
  };
  if (want !== undefined) {
    const base = findBaselineGroup(want, rows, groups);
    baselines.push({ label: base.label, kind: base.runs.length > 1 ? 'group' : 'run', reason: `--baseline ${want}` });
    apply(base, groups);
    return baselines;
  }
  for (const family of [...new Set(groups.map((g) => g.family))]) {
    const members = groups.filter((g) => g.family === family);
    const linear = members.filter((g) => g.keyType === 'linear');
    const where = task.report.byFamily ? ` in ${family ?? 'runs of unknown family'}` : '';
    if (linear.length === 1) {
      const base = linear[0]!;
      baselines.push({
        ...(family !== undefined ? { family } : {}),
        label: base.label,
        kind: base.runs.length > 1 ? 'group' : 'run',
        reason: `the only ${family ? `${family} ` : ''}configuration with key 'linear'`,
      });
      apply(base, members);
    } else if (linear.length > 1) {
      warnings.push(`no deltas${where}: ${linear.length} configurations have key 'linear' (${linear.map((g) => g.label).join('; ')}); pick one with --baseline`);
    } else if (groups.length > 1 && runs.some((r) => !r.identity.error)) {
      warnings.push(
        task.report.byFamily
          ? `no deltas${where}: no run of it has key 'linear'; train one (mkey-det ${task.command} --backbone ${family ?? '<family>'}) or name a baseline with --baseline`
          : "no deltas: no run has backbone key 'linear'; name one with --baseline",
      );
    }
  }
  return baselines;
}

function plotSeries<S extends Shape>(task: TaskOf<S>, r: RunData): PlotSeries<S> {
  const curves = Object.fromEntries(
    task.report.curves.map((c) => [c.key, r.evals.filter((e) => e.metrics[c.metric] !== undefined).map((e) => [e.step, asPercent(task, e.metrics[c.metric]!)] as [number, number])]),
  );
  return {
    label: r.label,
    loss: r.train.filter((p) => p.loss !== undefined).map((p) => [p.iter, p.loss!] as [number, number]),
    lr: r.train.filter((p) => p.lr !== undefined).map((p) => [p.iter, p.lr!] as [number, number]),
    ...curves,
    evalBy: r.evals[0]?.by ?? (r.maxIters !== undefined && r.maxEpochs === undefined ? 'iter' : 'epoch'),
  } as PlotSeries<S>;
}

function build<S extends Shape>(task: TaskOf<S>, runs: RunData[], opts: BuildOptions): AnyReport {
  const selection = opts.selection ?? task.report.selection;
  const warnings = [...(opts.warnings ?? [])];
  const { keyOf, groupKeys, labelOfKey } = configGroups(runs, (r) => configLabel(task, r));
  const rows = runs.map((r) => buildRunRow(task, r, selection, labelOfKey.get(keyOf(r))!));
  const groups = groupKeys.map((k) => {
    const label = labelOfKey.get(k)!;
    return buildGroup(task, label, rows.filter((r) => r.group === label));
  });
  const baselines = applyBaselines(task, runs, rows, groups, opts.baseline, warnings);

  if (task.report.sizes.paper) {
    for (const r of runs) {
      const at = r.backboneFlopsInput ? `${r.backboneFlopsInput[1]}x${r.backboneFlopsInput[0]}` : FLOPS_INPUT;
      if (r.backboneFlopsError !== undefined) warnings.push(`${r.label}: backbone FLOPs not counted at ${at} (${r.backboneFlopsError.split('\n')[0]})`);
      // a backbone built for one input size (SwinV2-T 256, a ViT at its img_size) is counted at it
      else if (r.backboneFlops !== undefined && at !== FLOPS_INPUT) warnings.push(`${r.label}: backbone FLOPs counted at ${at}, the input size its backbone is built for, not ${FLOPS_INPUT}`);
    }
  }

  // Families in the paper's order; in each the baseline first, then the paper's key order
  // (linear, spatialk, kua, simplek, vanillak), charts, label.
  groups.sort(
    (a, b) =>
      rank(FAMILY_IDS, a.family) - rank(FAMILY_IDS, b.family) ||
      (a.family ?? '').localeCompare(b.family ?? '') ||
      Number(b.isBaseline) - Number(a.isBaseline) ||
      rank(KEY_TYPES, a.keyType) - rank(KEY_TYPES, b.keyType) ||
      (a.charts ?? 0) - (b.charts ?? 0) ||
      a.label.localeCompare(b.label),
  );
  const groupIndex = new Map(groups.map((g, i) => [g.label, i]));
  rows.sort((a, b) => groupIndex.get(a.group)! - groupIndex.get(b.group)! || a.label.localeCompare(b.label));
  const rowIndex = new Map(rows.map((r, i) => [r.dir, i]));
  const plots = [...runs].sort((a, b) => rowIndex.get(a.dir)! - rowIndex.get(b.dir)!).map((r) => plotSeries(task, r));

  const generated = (opts.now ?? new Date()).toISOString();
  // Detection's JSON names no task and holds at most one baseline; classification's names its
  // task, one baseline per family and the input size of the FLOPs.
  const head = task.report.byFamily
    ? { task: task.name, generated, selection, baselines, flopsInput: FLOPS_INPUT }
    : { generated, selection, ...(baselines[0] ? { baseline: baselines[0] } : {}) };
  return { ...head, groups, runs: rows, references: [...REFERENCE_ROWS[task.name]], plots, warnings } as unknown as AnyReport;
}

/** Builds the whole report of one task from its loaded runs (detection unless `task` says). Throws BadInputError when `--baseline` matches nothing. */
export function buildReport(runs: RunData[], opts: BuildOptions & { task?: typeof DETECTION }): Report;
export function buildReport(runs: RunData[], opts: BuildOptions & { task: typeof CLASSIFICATION }): ClassificationReport;
export function buildReport(runs: RunData[], opts: BuildOptions & { task?: TaskOf<Shape> }): AnyReport;
export function buildReport(runs: RunData[], opts: BuildOptions & { task?: TaskOf<Shape> }): AnyReport {
  return build(opts.task ?? DETECTION, runs, opts);
}
