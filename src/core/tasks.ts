/**
 * The two tasks mkey-det trains, described once each: detection (`mkey-det train`: Mask R-CNN +
 * FPN on COCO, the paper's Table 3) and classification (`mkey-det pretrain`: ImageNet-style
 * folders, Tables 1-2). A description is data: what the task evaluates (its metric columns and the
 * one `--best` ranks by), how the runs of it are compared, and the words and titles of its report.
 * Code that serves both tasks reads the description it is given instead of asking which task it is.
 */
import { ACCURACY_COLUMNS, AP_COLUMNS, BOX_AP, MASK_AP, TOP1, TOP5, type ApId } from './metrics.js';

export const TASK_NAMES = ['detection', 'classification'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

/** `top1`, `top5`: metrics.ts's ACCURACY_COLUMNS ids. */
export type AccId = (typeof ACCURACY_COLUMNS)[number]['id'];

/** mkey-det's progress hook counts the backbone's FLOPs on one image of this size, whatever the run's input size (Table 1's size). */
export const FLOPS_INPUT = '224x224';

/** One number a task's evaluation gives: a column of its report. */
export interface MetricColumn<K extends string = string> {
  /** Its id in the report (JSON keys, CSV column names): `APb`, `top1`. */
  readonly key: K;
  /** The evaluator's name for it in mmengine's logs: `coco/bbox_mAP`, `accuracy/top1`. */
  readonly metric: string;
  /** Column title. */
  readonly label: string;
  /** Decimals of the percent value, as the paper prints it. */
  readonly decimals: number;
  /** Whether the Markdown tables give its difference to the baseline a column of its own. */
  readonly delta: boolean;
}

/** One panel of the evaluation figure: a metric's value at each evaluation, under `key` in the report's plot series. */
export interface Curve<C extends string = string> {
  readonly key: C;
  readonly metric: string;
}

/** What the HTML and Markdown show of the backbone's size. */
export interface SizeColumns {
  /**
   * Whether the paper's table prints params and FLOPs (Table 1 does, Table 3 does not): then its
   * reference rows carry them, the columns are numbers in its units (millions, GFLOPs) named in the
   * header, the report says at which input size the runs' FLOPs were counted, and a run whose
   * FLOPs could not be counted is a warning. Otherwise each cell carries its unit (`28.3M`, `4.6G`).
   */
  readonly paper: boolean;
  /** Markdown titles of the params and FLOPs columns. */
  readonly md: readonly [string, string];
  /** HTML titles of the params and FLOPs columns, each with its tooltip. */
  readonly html: readonly [readonly [string, string], readonly [string, string]];
  /** CSV column names. */
  readonly csv: readonly [string, string];
}

/** The words of a task's report. */
export interface ReportWords {
  /** The HTML page's title. */
  readonly page: string;
  /** What the results table holds (its heading). */
  readonly results: string;
  /** The `--best` rule, as the line under the title names it. */
  readonly best: string;
  /** What the numbers are: the end of the line under the title. */
  readonly numbers: string;
  /** Said on the HTML page only, after that line. */
  readonly htmlNote?: string;
  /** A run's note when none of its evaluations has the task's metrics. */
  readonly noEval: string;
  /** What the last evaluation of a run logged when it logged none of the metrics. */
  readonly emptyEval: string;
  /** The HTML page's footer: where the reference rows come from. */
  readonly references: string;
  /** Whether a reference row's tag names its charts (Table 1's labels do not, Table 3's do). */
  readonly referenceCharts: boolean;
  /** Alt text of the evaluation figure in the Markdown report. */
  readonly figureAlt: string;
}

/** How a task's runs are compared and its report reads. */
export interface ReportPlan<V extends string = string, C extends string = string> {
  /** The report JSON's field holding an evaluation's numbers (a run's `eval.ap`, a reference row's `acc`). */
  readonly values: V;
  /** The evaluation a run reports without `--best` / `--last`. */
  readonly selection: 'last' | 'best';
  /** The `mkey_experiment` field naming the training recipe, in a configuration's label. */
  readonly scheduleField: 'schedule' | 'recipe';
  /**
   * Whether what a run's config does not say (backbone, recipe, input size, family; all of it when
   * the config cannot be read) is taken from the `experiment` of its run record; without it such
   * a run is labelled by its folder.
   */
  readonly runRecord: boolean;
  /**
   * Whether runs fall into backbone families (Swin-T, ViT-S, ViT-B), each compared with its own
   * linear-key configuration (Table 1), or form one table with one baseline (Table 3).
   */
  readonly byFamily: boolean;
  readonly sizes: SizeColumns;
  readonly words: ReportWords;
  /** The evaluation figure report_tools.py draws after loss and learning rate, and its panels. */
  readonly figure: 'ap' | 'top1';
  readonly curves: readonly Curve<C>[];
}

export interface Task<K extends string = string, V extends string = string, C extends string = string> {
  readonly name: TaskName;
  /** The mkey-det command that trains it. */
  readonly command: 'train' | 'pretrain';
  /** The evaluation's numbers, in the paper's column order. */
  readonly metrics: readonly MetricColumn<K>[];
  /** The metric `--best` ranks evaluations by (the earliest of ties wins). */
  readonly primary: K;
  /** How the evaluator logs: CocoMetric a 0-1 fraction with 3 decimals, mmpretrain's Accuracy percent. */
  readonly logged: 'fraction' | 'percent';
  readonly report: ReportPlan<V, C>;
}

/** Table 3's box and mask AP: the columns with a delta of their own. */
const TABLE3_HEADLINE: readonly string[] = [BOX_AP, MASK_AP];

export const DETECTION: Task<ApId, 'ap', 'apBox' | 'apMask'> = {
  name: 'detection',
  command: 'train',
  metrics: AP_COLUMNS.map((c) => ({ key: c.id, metric: c.metric, label: c.id, decimals: 1, delta: TABLE3_HEADLINE.includes(c.metric) })),
  primary: 'APb',
  logged: 'fraction',
  report: {
    values: 'ap',
    selection: 'last',
    scheduleField: 'schedule',
    runRecord: false,
    byFamily: false,
    sizes: {
      paper: false,
      md: ['Backbone params', 'Backbone FLOPs'],
      html: [
        ['Params', 'backbone parameters'],
        ['FLOPs', `backbone FLOPs at ${FLOPS_INPUT}`],
      ],
      csv: ['backbone_params', 'backbone_flops'],
    },
    words: {
      page: 'mkey-det report',
      results: 'Mask R-CNN + FPN, COCO box / mask AP',
      best: 'best evaluation by box AP (--best)',
      numbers: 'AP in percent (COCO, mmdet CocoMetric), seed groups as mean ± sample std.',
      htmlNote: "Params and FLOPs are the backbone's (from the run's start event).",
      noEval: 'no evaluation with AP yet',
      emptyEval: 'logged no AP (the evaluator returned no metrics)',
      references: "Reference rows: the paper (Table 3, Mask R-CNN + FPN, 3x) and MMDetection 3.3.0's published Swin-T 3x model; they are not runs of this checkout.",
      referenceCharts: false,
      figureAlt: 'box and mask AP per evaluation',
    },
    figure: 'ap',
    curves: [
      { key: 'apBox', metric: BOX_AP },
      { key: 'apMask', metric: MASK_AP },
    ],
  },
};

/** Column titles of Table 1. */
const ACCURACY_LABELS: Record<AccId, string> = { top1: 'Top-1', top5: 'Top-5' };

export const CLASSIFICATION: Task<AccId, 'acc', 'top1' | 'top5'> = {
  name: 'classification',
  command: 'pretrain',
  metrics: ACCURACY_COLUMNS.map((c) => ({ key: c.id, metric: c.metric, label: ACCURACY_LABELS[c.id], decimals: 2, delta: true })),
  primary: 'top1',
  logged: 'percent',
  report: {
    values: 'acc',
    // the paper's rule: the best epoch by top-1
    selection: 'best',
    scheduleField: 'recipe',
    runRecord: true,
    byFamily: true,
    sizes: {
      paper: true,
      md: ['Params [M]', 'FLOPs [G]'],
      html: [
        ['Params [M]', 'backbone parameters (runs); whole classifier (paper)'],
        ['FLOPs [G]', `backbone FLOPs at ${FLOPS_INPUT}, or at the one size a backbone is built for, noted under the table (runs); paper: fvcore, 224x224`],
      ],
      csv: ['params_m', 'flops_g'],
    },
    words: {
      page: 'mkey-det report: classification',
      results: 'image classification, top-1 / top-5 accuracy',
      best: "best evaluation by top-1 (--best, the paper's rule)",
      numbers:
        'Top-1 / top-5 accuracy in percent (mmpretrain Accuracy), seed groups as mean ± sample std. ' +
        `Params and FLOPs: the run's backbone (its start event; FLOPs on one ${FLOPS_INPUT} image, or one of the size a backbone is built for: SwinV2-T 256, a ViT its img_size, noted); the paper's rows count the whole classifier.`,
      noEval: 'no evaluation with top-1 yet',
      emptyEval: 'logged no accuracy',
      references: "Reference rows: the paper's Table 1 (ImageNet-1K, 224x224, 300 epochs, 8 charts) and Table 2 (ViT-B/16, VanillaK without CB); they are not runs of this checkout.",
      referenceCharts: true,
      figureAlt: 'top-1 accuracy per evaluation',
    },
    figure: 'top1',
    curves: [
      { key: 'top1', metric: TOP1 },
      { key: 'top5', metric: TOP5 },
    ],
  },
};

export type AnyTask = typeof DETECTION | typeof CLASSIFICATION;

export const TASKS: { readonly detection: typeof DETECTION; readonly classification: typeof CLASSIFICATION } = {
  detection: DETECTION,
  classification: CLASSIFICATION,
};
