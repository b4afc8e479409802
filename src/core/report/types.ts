/** The data model of `mkey-det report`: what is read from a run directory and what the report shows. */

import { CLASSIFICATION, DETECTION, type AnyTask, type Task, type TaskName } from '../tasks.js';
import type { ReportAnalysis } from './analysis.js';

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
  /** The CLI process that ran it: tells a `running` record whose final status write failed (a full disk) from a live run. */
  supervisor?: { pid: number; start: string | null; host: string };
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
  /** [height, width] the backbone's FLOPs were counted at (`backbone_flops_input`; absent: 224x224). */
  backboneFlopsInput?: [number, number];
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

/** What a run trained: a detector (`mkey-det train`, Table 3) or a classifier (`mkey-det pretrain`, Tables 1-2). */
export type RunTask = TaskName;

export type Selection = Task['report']['selection'];

/**
 * What tells the two reports' JSON apart (tasks.ts): the metric keys, the field holding an
 * evaluation's numbers (`ap`, `acc`) and the plot series' curve keys.
 */
export interface Shape {
  key: string;
  values: string;
  curve: string;
}
export type ShapeOf<T> = T extends Task<infer K, infer V, infer C> ? { key: K; values: V; curve: C } : never;
export type DetectionShape = ShapeOf<typeof DETECTION>;
export type ClassificationShape = ShapeOf<typeof CLASSIFICATION>;
/** The description of the task whose report has this shape. */
export type TaskOf<S extends Shape> = Task<S['key'], S['values'], S['curve']>;

/** Metric values in percent by column key; a missing metric is absent. */
export type MetricValues<K extends string = string> = Partial<Record<K, number>>;
/** An evaluation's numbers under the task's field: `{ ap: {...} }`, `{ acc: {...} }`. */
export type Holding<S extends Shape> = { [F in S['values']]: MetricValues<S['key']> };

/** The evaluation picked for a run (`--last`, or `--best` by the task's primary metric). */
export type PickedEval<S extends Shape = DetectionShape> = {
  step: number;
  by: 'epoch' | 'iter';
  source: EvalPoint['source'];
} & Holding<S>;

export interface RunRow<S extends Shape = DetectionShape> {
  label: string;
  dir: string;
  config: string;
  /** `swin-t`, `vit-s`, `vit-b` (the config's `mkey_experiment.family`), for a task compared by family. */
  family?: string;
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
  eval?: PickedEval<S>;
  delta?: MetricValues<S['key']>;
  isBaseline: boolean;
  backboneParams?: number;
  backboneFlops?: number;
  trainingSeconds?: number;
  lastEpoch?: number;
  maxEpochs?: number;
}

export interface GroupRow<S extends Shape = DetectionShape> {
  label: string;
  family?: string;
  keyType?: string;
  charts?: number | null;
  schedule?: string;
  /** Labels of all member runs. */
  runs: string[];
  /** Number of runs with an evaluation (the ones averaged). */
  n: number;
  seeds: (number | null | undefined)[];
  mean: MetricValues<S['key']>;
  /** Sample standard deviation (n - 1); only when n >= 2. */
  std: MetricValues<S['key']>;
  /** Evaluation steps of the averaged runs, e.g. `12` or `11-12`; `it 500` for iteration loops. */
  evalAt?: string;
  delta?: MetricValues<S['key']>;
  /** Label of the group the deltas compare against, for a task compared by family. */
  baseline?: string;
  isBaseline: boolean;
  backboneParams?: number;
  backboneFlops?: number;
  /** Mean training time of the member runs. */
  trainingSeconds?: number;
  status: string;
}

/** A row of a published table: the paper's (Tables 1-3) or a model zoo's. */
export type ReferenceRow<S extends Shape = DetectionShape> = {
  label: string;
  source: string;
  family?: string;
  keyType?: string;
  charts?: number | null;
  schedule?: string;
  epochs: number;
  /** Whole model, as the table prints it (millions). */
  paramsM?: number;
  /** As the table prints it (GFLOPs). */
  flopsG?: number;
  note?: string;
} & Holding<S>;

/** Curves of a run: loss and lr per logged iteration, each of the task's curves ([step, percent]) per evaluation. */
export type PlotSeries<S extends Shape = DetectionShape> = {
  label: string;
  loss: [number, number][];
  lr: [number, number][];
  evalBy: 'epoch' | 'iter';
} & { [C in S['curve']]: [number, number][] };

export interface Baseline {
  /** The family the baseline serves (a task compared by family); undefined for `--baseline` (all groups). */
  family?: string;
  label: string;
  kind: 'group' | 'run';
  reason: string;
}

interface ReportBody<S extends Shape> {
  generated: string;
  selection: Selection;
  groups: GroupRow<S>[];
  runs: RunRow<S>[];
  references: ReferenceRow<S>[];
  plots: PlotSeries<S>[];
  warnings: string[];
  /** `--analysis`: the attention-analysis folders' summaries (independent of the runs). */
  analysis?: ReportAnalysis[];
}

/** `mkey-det report` on detection runs: the paper's Table 3 (one baseline). */
export interface Report extends ReportBody<DetectionShape> {
  baseline?: Baseline;
}

/** `mkey-det report` on classification runs: the paper's Table 1. */
export interface ClassificationReport extends ReportBody<ClassificationShape> {
  task: 'classification';
  /** One per family that has a linear-key configuration (or one for `--baseline`). */
  baselines: Baseline[];
  /** Input size the backbone FLOPs were counted at. */
  flopsInput: string;
}

export type ClsRunRow = RunRow<ClassificationShape>;
export type ClsGroupRow = GroupRow<ClassificationShape>;
export type ClsReferenceRow = ReferenceRow<ClassificationShape>;

/** What `mkey-det report` produces: Table 3 (detection) or Table 1 (classification). */
export type AnyReport = Report | ClassificationReport;

function isClassificationReport(r: AnyReport): r is ClassificationReport {
  return (r as ClassificationReport).task === 'classification';
}

/** The description of the task a report is of. */
export function taskOfReport(r: AnyReport): AnyTask {
  return isClassificationReport(r) ? CLASSIFICATION : DETECTION;
}

/** The report's baselines, one or one per family. */
export function baselinesOf(r: AnyReport): Baseline[] {
  if (isClassificationReport(r)) return r.baselines;
  return r.baseline ? [r.baseline] : [];
}
