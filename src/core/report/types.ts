/** The data model of `mkey-det report`: what is read from a run directory and what the report shows. */

import type { ACCURACY_COLUMNS, ApId } from '../metrics.js';
import type { ReportAnalysis } from './analysis.js';
export { AP_COLUMNS, AP_IDS, type ApId } from '../metrics.js';
/** AP values in percent (one row); a missing metric is absent. */
export type ApValues = Partial<Record<ApId, number>>;

/** One logged training step (one line of scalars.json or one `Epoch(train)` log line). */
export interface TrainPoint {
  /** Global iteration (1-based), mmengine's `step` for training lines. */
  iter: number;
  epoch?: number;
  loss?: number;
  lr?: number;
}

/** One validation result. */
export interface EvalPoint {
  /** mmengine's `step`: the epoch (epoch-based loops) or the iteration (iteration-based loops). */
  step: number;
  by: 'epoch' | 'iter';
  /** mmengine's metric names, 0-1 scale as logged. */
  metrics: Record<string, number>;
  /** Where the numbers were read. */
  source: 'scalars.json' | 'log' | 'mkey-events.jsonl';
}

/** Run identity read from the run's MMDetection config (through Python: mmengine Config.fromfile). */
export interface RunIdentity {
  /** The config file that was read (absolute path), if any. */
  configFile?: string;
  backboneType?: string;
  /** Manifold-key variant (model.backbone.key_type, or mkey_experiment.key_type); 'linear' is plain Swin. */
  keyType?: string;
  numCharts?: number | null;
  seed?: number | null;
  maxEpochs?: number;
  maxIters?: number;
  /** `mkey_experiment.schedule`, else derived from the loop length (e.g. `12e`). */
  schedule?: string;
  /** `mkey_experiment.backbone`, e.g. `swin-t-spatialk`. */
  backboneName?: string;
  /** The config's `mkey_experiment` dict, if it has one. */
  experiment?: Record<string, unknown>;
  /** Hash of the config with seed, work_dir and launch-only settings removed: same hash = same configuration. */
  fingerprint?: string;
  /** Why the identity could not be read. */
  error?: string;
}

/** `mkey-run.json`. */
export interface RunStatusFile {
  status?: string;
  message?: string;
  started?: string;
  finished?: string;
  experiment?: unknown;
}

/** Everything read from one run directory. */
export interface RunData {
  dir: string;
  /** Short unique name (folder name, or a longer relative path when folder names repeat). */
  label: string;
  identity: RunIdentity;
  runFile?: RunStatusFile;
  /** Timestamp folders, in time order. */
  sessions: string[];
  train: TrainPoint[];
  evals: EvalPoint[];
  /** Seconds of training, summed over sessions (events, else text-log timestamps). */
  trainingSeconds?: number;
  backboneParams?: number;
  backboneFlops?: number;
  /** Why the start event has no FLOPs (`backbone_flops_error`). */
  backboneFlopsError?: string;
  /** Detection or classification (config, run record, then metric names); undefined when nothing says. */
  task?: RunTask;
  /** Largest epoch seen in training logs or events. */
  lastEpoch?: number;
  lastIter?: number;
  maxEpochs?: number;
  maxIters?: number;
  itersPerEpoch?: number;
  /** Status of mkey-events.jsonl's `end` event, when the run wrote one. */
  endStatus?: string;
  /** Problems found while reading (bad lines, missing files); shown in the status column. */
  issues: string[];
}

export type Selection = 'last' | 'best';

/** The evaluation picked for a run (`--last` or `--best` by box AP). */
export interface PickedEval {
  step: number;
  by: 'epoch' | 'iter';
  ap: ApValues;
  source: EvalPoint['source'];
}

export interface RunRow {
  label: string;
  dir: string;
  config: string;
  keyType?: string;
  charts?: number | null;
  schedule?: string;
  seed?: number | null;
  /** The group (configuration) this run belongs to. */
  group: string;
  state: 'completed' | 'running' | 'failed' | 'interrupted' | 'stopped' | 'unknown';
  /** `completed`, `running, epoch 12/36`, `incomplete, epoch 1/2`, `failed at ...`. */
  headline: string;
  /** Headline and notes in one line. */
  status: string;
  notes: string[];
  eval?: PickedEval;
  delta?: ApValues;
  isBaseline: boolean;
  backboneParams?: number;
  backboneFlops?: number;
  trainingSeconds?: number;
  lastEpoch?: number;
  maxEpochs?: number;
}

export interface GroupRow {
  label: string;
  keyType?: string;
  charts?: number | null;
  schedule?: string;
  /** Labels of all member runs. */
  runs: string[];
  /** Number of runs with an evaluation (the ones averaged). */
  n: number;
  seeds: (number | null | undefined)[];
  mean: ApValues;
  /** Sample standard deviation (n - 1); only when n >= 2. */
  std: ApValues;
  /** Evaluation steps of the averaged runs, e.g. `12` or `11-12`; `it 500` for iteration loops. */
  evalAt?: string;
  delta?: ApValues;
  isBaseline: boolean;
  backboneParams?: number;
  backboneFlops?: number;
  /** Mean training time of the member runs. */
  trainingSeconds?: number;
  status: string;
}

export interface ReferenceRow {
  label: string;
  source: string;
  keyType?: string;
  charts?: number | null;
  schedule: string;
  epochs: number;
  ap: ApValues;
  note?: string;
}

export interface PlotSeries {
  label: string;
  loss: [number, number][];
  lr: [number, number][];
  /** [step, percent] per evaluation. */
  apBox: [number, number][];
  apMask: [number, number][];
  evalBy: 'epoch' | 'iter';
}

export interface Report {
  generated: string;
  selection: Selection;
  baseline?: { label: string; kind: 'group' | 'run'; reason: string };
  groups: GroupRow[];
  runs: RunRow[];
  references: ReferenceRow[];
  plots: PlotSeries[];
  warnings: string[];
  /** `--analysis`: the attention-analysis folders' summaries (independent of the runs). */
  analysis?: ReportAnalysis[];
}

// ---------- classification (Table 1) ----------

/** What a run trained: a detector (`mkey-det train`, Table 3) or a classifier (`mkey-det pretrain`, Tables 1-2). */
export type RunTask = 'detection' | 'classification';

/** `top1`, `top5`: metrics.ts's ACCURACY_COLUMNS ids. */
export type AccId = (typeof ACCURACY_COLUMNS)[number]['id'];
/** Top-1 / top-5 accuracy in percent (mmpretrain's `Accuracy` logs percent already); a missing metric is absent. */
export type AccValues = Partial<Record<AccId, number>>;

/** The evaluation picked for a classification run (`--best` by top-1, the default, or `--last`). */
export interface ClsPickedEval {
  step: number;
  by: 'epoch' | 'iter';
  acc: AccValues;
  source: EvalPoint['source'];
}

export interface ClsRunRow extends Omit<RunRow, 'eval' | 'delta'> {
  /** `swin-t`, `vit-s`, `vit-b` (the config's `mkey_experiment.family`). */
  family?: string;
  eval?: ClsPickedEval;
  delta?: AccValues;
}

export interface ClsGroupRow extends Omit<GroupRow, 'mean' | 'std' | 'delta'> {
  family?: string;
  mean: AccValues;
  /** Sample standard deviation (n - 1); only when n >= 2. */
  std: AccValues;
  delta?: AccValues;
  /** Label of the group the deltas compare against. */
  baseline?: string;
}

/** A row of the paper's Table 1 or Table 2 (ImageNet-1K, 224x224, 300 epochs). */
export interface ClsReferenceRow {
  label: string;
  source: string;
  family: string;
  keyType: string;
  charts: number | null;
  epochs: number;
  /** Whole classifier, as the paper prints it (millions). */
  paramsM?: number;
  /** As the paper prints it (GFLOPs, fvcore, 224x224). */
  flopsG?: number;
  acc: AccValues;
  note?: string;
}

/** Curves of a classification run: loss and lr per logged iteration, accuracy per evaluation. */
export interface AccuracyPlotSeries {
  label: string;
  loss: [number, number][];
  lr: [number, number][];
  /** [step, percent] per evaluation. */
  top1: [number, number][];
  top5: [number, number][];
  evalBy: 'epoch' | 'iter';
}

export interface ClsBaseline {
  /** The family the baseline serves; undefined for `--baseline` (all groups). */
  family?: string;
  label: string;
  kind: 'group' | 'run';
  reason: string;
}

/** `mkey-det report` on classification runs: the paper's Table 1. */
export interface ClassificationReport {
  task: 'classification';
  generated: string;
  selection: Selection;
  /** One per family that has a linear-key configuration (or one for `--baseline`). */
  baselines: ClsBaseline[];
  /** Input size the backbone FLOPs were counted at (mkey-det's progress hook counts at 224x224). */
  flopsInput: string;
  groups: ClsGroupRow[];
  runs: ClsRunRow[];
  references: ClsReferenceRow[];
  plots: AccuracyPlotSeries[];
  warnings: string[];
  /** `--analysis`: the attention-analysis folders' summaries (independent of the runs). */
  analysis?: ReportAnalysis[];
}

/** What `mkey-det report` produces: Table 3 (detection) or Table 1 (classification). */
export type AnyReport = Report | ClassificationReport;

export function isClassificationReport(r: AnyReport): r is ClassificationReport {
  return (r as ClassificationReport).task === 'classification';
}
