/**
 * Classification runs (`mkey-det pretrain`) to the rows of the paper's Table 1: top-1 / top-5 of
 * the picked evaluation (`--best` by top-1, the paper's rule and the default, or `--last`), seed
 * groups as mean ± std, deltas against each family's linear-key configuration, backbone params and
 * FLOPs, and Tables 1-2 as reference rows. Run state, grouping and `--baseline` are detection's
 * (table.ts).
 */
import { KEY_TYPES } from '../experiment.js';
import { ACCURACY_COLUMNS, TOP1, TOP5 } from '../metrics.js';
import { PRETRAIN_FAMILIES } from '../pretrain/experiment.js';
import { CLASSIFICATION_REFERENCE_ROWS } from './references.js';
import { configGroups, evalAtLabel, findBaselineGroup, groupStatus, mean, relName, runState, sampleStd, type BuildOptions } from './table.js';
import type {
  AccId,
  AccValues,
  AccuracyPlotSeries,
  ClassificationReport,
  ClsBaseline,
  ClsGroupRow,
  ClsPickedEval,
  ClsRunRow,
  EvalPoint,
  RunData,
  Selection,
} from './types.js';

/** The two columns of Table 1, with mmpretrain's metric names (metrics.ts). */
const ACC_COLUMNS = ACCURACY_COLUMNS;
export const ACC_IDS: readonly AccId[] = ACC_COLUMNS.map((c) => c.id);

/** mkey-det's progress hook counts the backbone's FLOPs on one 224x224 image, whatever the run's input size (Table 1's size). */
export const FLOPS_INPUT = '224x224';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);

function recordExperiment(run: RunData): Record<string, unknown> {
  const e = run.runFile?.experiment;
  return e && typeof e === 'object' && !Array.isArray(e) ? (e as Record<string, unknown>) : {};
}

const FAMILY_IDS: readonly string[] = PRETRAIN_FAMILIES.map((f) => f.id);

/** `swin-t`, `vit-s`, `vit-b`: the config's `mkey_experiment.family`, the run record's, else the backbone name's prefix. */
export function familyOf(run: RunData): string | undefined {
  const fromConfig = str(run.identity.experiment?.family) ?? str(recordExperiment(run).family);
  if (fromConfig) return fromConfig;
  const name = run.identity.backboneName ?? str(recordExperiment(run).backbone);
  return name ? FAMILY_IDS.find((f) => name === f || name.startsWith(`${f}-`)) : undefined;
}

/** The recipe and the loop length, e.g. `demo 2it`, `paper 300e`. */
export function clsSchedule(run: RunData): string | undefined {
  const id = run.identity;
  const recipe = str(id.experiment?.recipe) ?? str(recordExperiment(run).recipe);
  const len = id.maxIters !== undefined ? `${id.maxIters}it` : id.maxEpochs !== undefined ? `${id.maxEpochs}e` : undefined;
  return [recipe, len].filter(Boolean).join(' ') || undefined;
}

/** e.g. `swin-t-spatialk, 2 charts, demo 2it, 64px`: backbone, charts, recipe and length, input size when not 224. */
export function clsConfigLabel(run: RunData): string {
  const id = run.identity;
  const exp = id.experiment ?? {};
  const rec = recordExperiment(run);
  const name = id.backboneName ?? str(rec.backbone) ?? (id.backboneType ? `${id.backboneType}${id.keyType ? ` (${id.keyType} key)` : ''}` : undefined);
  if (!name) return run.label;
  const parts = [name];
  if (id.numCharts && id.keyType !== 'linear') parts.push(`${id.numCharts} charts`);
  const sched = clsSchedule(run);
  if (sched) parts.push(sched);
  const size = int(exp.img_size) ?? int(rec.imgSize);
  if (size !== undefined && size !== 224) parts.push(`${size}px`);
  return parts.join(', ');
}

function accOf(e: EvalPoint): AccValues {
  const acc: AccValues = {};
  for (const c of ACC_COLUMNS) {
    const v = e.metrics[c.metric];
    if (v !== undefined) acc[c.id] = v;
  }
  return acc;
}

const hasAcc = (e: EvalPoint) => ACC_COLUMNS.some((c) => e.metrics[c.metric] !== undefined);

/** The evaluation a classification run reports: the best by top-1 (earliest of ties; the paper's rule), or the last. */
export function pickAccEval(evals: EvalPoint[], selection: Selection): ClsPickedEval | undefined {
  const withAcc = evals.filter(hasAcc);
  if (withAcc.length === 0) return undefined;
  const top1 = (e: EvalPoint) => e.metrics[TOP1] ?? -Infinity;
  const chosen =
    selection === 'best' ? withAcc.reduce((best, e) => (top1(e) > top1(best) ? e : best), withAcc[0]!) : withAcc[withAcc.length - 1]!;
  return { step: chosen.step, by: chosen.by, acc: accOf(chosen), source: chosen.source };
}

function buildRunRow(run: RunData, selection: Selection, group: string): ClsRunRow {
  const { state, base } = runState(run);
  const notes = [...run.issues];
  if (run.identity.error) {
    notes.unshift(run.identity.configFile ? `config unreadable: ${relName(run, run.identity.configFile)}: ${run.identity.error}` : run.identity.error);
  }
  const picked = pickAccEval(run.evals, selection);
  const lastEval = run.evals[run.evals.length - 1];
  if (!picked) notes.unshift(run.evals.length ? 'no evaluation with top-1 yet' : 'no evaluation yet');
  if (lastEval && !hasAcc(lastEval)) {
    notes.push(`the last evaluation (${lastEval.by === 'iter' ? 'iter' : 'epoch'} ${lastEval.step}) logged no accuracy`);
  }
  const id = run.identity;
  const family = familyOf(run);
  const schedule = clsSchedule(run);
  return {
    label: run.label,
    dir: run.dir,
    config: clsConfigLabel(run),
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

function buildGroup(label: string, members: ClsRunRow[]): ClsGroupRow {
  const evaluated = members.filter((m) => m.eval);
  const meanAcc: AccValues = {};
  const stdAcc: AccValues = {};
  for (const id of ACC_IDS) {
    const xs = evaluated.map((m) => m.eval!.acc[id]).filter((v): v is number => v !== undefined);
    if (xs.length === 0) continue;
    meanAcc[id] = mean(xs);
    if (xs.length >= 2) stdAcc[id] = sampleStd(xs);
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
    mean: meanAcc,
    std: stdAcc,
    ...(evalAt !== undefined ? { evalAt } : {}),
    isBaseline: false,
    ...(params !== undefined ? { backboneParams: params } : {}),
    ...(flops !== undefined ? { backboneFlops: flops } : {}),
    ...(times.length ? { trainingSeconds: mean(times) } : {}),
    status: groupStatus(members),
  };
}

function subtract(a: AccValues, b: AccValues): AccValues {
  const out: AccValues = {};
  for (const id of ACC_IDS) {
    const x = a[id];
    const y = b[id];
    if (x !== undefined && y !== undefined) out[id] = x - y;
  }
  return out;
}

const familyRank = (f: string | undefined) => {
  const i = FAMILY_IDS.indexOf(f ?? '');
  return i < 0 ? FAMILY_IDS.length : i;
};
const keyRank = (k: string | undefined) => {
  const i = (KEY_TYPES as readonly string[]).indexOf(k ?? '');
  return i < 0 ? KEY_TYPES.length : i;
};

/**
 * The classification report (Table 1) from loaded classification runs. Default selection: `best`.
 * Baselines: `--baseline` for every group, else per family its only linear-key configuration.
 * Throws BadInputError when `--baseline` matches nothing.
 */
export function buildClassificationReport(runs: RunData[], opts: Omit<BuildOptions, 'selection'> & { selection?: Selection }): ClassificationReport {
  const selection = opts.selection ?? 'best';
  const warnings = [...(opts.warnings ?? [])];
  const { keyOf, groupKeys, labelOfKey } = configGroups(runs, clsConfigLabel);
  const rows = runs.map((r) => buildRunRow(r, selection, labelOfKey.get(keyOf(r))!));
  const groups = groupKeys.map((k) => {
    const label = labelOfKey.get(k)!;
    return buildGroup(label, rows.filter((r) => r.group === label));
  });

  // Baselines: one for all (--baseline), else one per family.
  const baselines: ClsBaseline[] = [];
  const applyBaseline = (base: ClsGroupRow, targets: ClsGroupRow[]) => {
    base.isBaseline = true;
    for (const r of rows) if (r.group === base.label) r.isBaseline = true;
    if (base.n === 0) {
      warnings.push(`no deltas${base.family ? ` in ${base.family}` : ''}: the baseline ${base.label} has no evaluation yet`);
      return;
    }
    for (const g of targets) {
      g.baseline = base.label;
      if (g.n > 0) g.delta = subtract(g.mean, base.mean);
      for (const r of rows) if (r.group === g.label && r.eval) r.delta = subtract(r.eval.acc, base.mean);
    }
  };
  if (opts.baseline !== undefined) {
    const base = findBaselineGroup(opts.baseline, rows, groups);
    baselines.push({ label: base.label, kind: base.runs.length > 1 ? 'group' : 'run', reason: `--baseline ${opts.baseline}` });
    applyBaseline(base, groups);
  } else {
    const families = [...new Set(groups.map((g) => g.family))];
    for (const family of families) {
      const members = groups.filter((g) => g.family === family);
      const linear = members.filter((g) => g.keyType === 'linear');
      const name = family ?? 'runs of unknown family';
      if (linear.length === 1) {
        const base = linear[0]!;
        baselines.push({
          ...(family !== undefined ? { family } : {}),
          label: base.label,
          kind: base.runs.length > 1 ? 'group' : 'run',
          reason: `the only ${family ?? ''}${family ? ' ' : ''}configuration with key 'linear'`,
        });
        applyBaseline(base, members);
      } else if (linear.length > 1) {
        warnings.push(`no deltas in ${name}: ${linear.length} configurations have key 'linear' (${linear.map((g) => g.label).join('; ')}); pick one with --baseline`);
      } else if (groups.length > 1 && runs.some((r) => !r.identity.error)) {
        warnings.push(`no deltas in ${name}: no run of it has key 'linear'; train one (mkey-det pretrain --backbone ${family ?? '<family>'}) or name a baseline with --baseline`);
      }
    }
  }

  for (const r of runs) {
    if (r.backboneFlopsError !== undefined) warnings.push(`${r.label}: backbone FLOPs not counted at ${FLOPS_INPUT} (${r.backboneFlopsError.split('\n')[0]})`);
  }

  // Families in the paper's order; in each the baseline first, then the paper's key order, charts, label.
  groups.sort(
    (a, b) =>
      familyRank(a.family) - familyRank(b.family) ||
      (a.family ?? '').localeCompare(b.family ?? '') ||
      Number(b.isBaseline) - Number(a.isBaseline) ||
      keyRank(a.keyType) - keyRank(b.keyType) ||
      (a.charts ?? 0) - (b.charts ?? 0) ||
      a.label.localeCompare(b.label),
  );
  const groupIndex = new Map(groups.map((g, i) => [g.label, i]));
  rows.sort((a, b) => groupIndex.get(a.group)! - groupIndex.get(b.group)! || a.label.localeCompare(b.label));

  const rowIndex = new Map(rows.map((r, i) => [r.dir, i]));
  const curve = (r: RunData, metric: string) =>
    r.evals.filter((e) => e.metrics[metric] !== undefined).map((e) => [e.step, e.metrics[metric]!] as [number, number]);
  const plots: AccuracyPlotSeries[] = [...runs].sort((a, b) => rowIndex.get(a.dir)! - rowIndex.get(b.dir)!).map((r) => ({
    label: r.label,
    loss: r.train.filter((p) => p.loss !== undefined).map((p) => [p.iter, p.loss!] as [number, number]),
    lr: r.train.filter((p) => p.lr !== undefined).map((p) => [p.iter, p.lr!] as [number, number]),
    top1: curve(r, TOP1),
    top5: curve(r, TOP5),
    evalBy: r.evals[0]?.by ?? (r.maxIters !== undefined && r.maxEpochs === undefined ? 'iter' : 'epoch'),
  }));

  return {
    task: 'classification',
    generated: (opts.now ?? new Date()).toISOString(),
    selection,
    baselines,
    flopsInput: FLOPS_INPUT,
    groups,
    runs: rows,
    references: [...CLASSIFICATION_REFERENCE_ROWS],
    plots,
    warnings,
  };
}
