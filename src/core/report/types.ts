/** The data model of `mkey-det report`: what is read from a run directory and what the report shows. */

import type { ApId } from '../metrics.js';
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
}
