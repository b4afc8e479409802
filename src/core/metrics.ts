/**
 * The six COCO numbers of the paper's Table 3 under mmengine's metric names (CocoMetric, 0-1
 * scale), with the column ids the report uses (b = box, m = mask). Every list of them derives
 * from this one.
 */
export const AP_COLUMNS = [
  { id: 'APb', metric: 'coco/bbox_mAP' },
  { id: 'APb50', metric: 'coco/bbox_mAP_50' },
  { id: 'APb75', metric: 'coco/bbox_mAP_75' },
  { id: 'APm', metric: 'coco/segm_mAP' },
  { id: 'APm50', metric: 'coco/segm_mAP_50' },
  { id: 'APm75', metric: 'coco/segm_mAP_75' },
] as const;
export type ApId = (typeof AP_COLUMNS)[number]['id'];
export const AP_IDS: readonly ApId[] = AP_COLUMNS.map((c) => c.id);
/** Box AP and mask AP (the report's main columns). */
export const BOX_AP = AP_COLUMNS[0].metric;
export const MASK_AP = AP_COLUMNS[3].metric;
/** mmengine's metric names, in Table 3's order. */
export const AP_KEYS = AP_COLUMNS.map((c) => c.metric);
/** Metrics as the events and run records carry them: the evaluator's metric name -> value (null: not computed). */
export type EvalMetrics = Record<string, number | null>;
/** A detection evaluation's metrics (CocoMetric, 0-1 scale). */
export type CocoMetrics = EvalMetrics;

const percent = (v: number | null | undefined): string => (typeof v === 'number' ? (100 * v).toFixed(1) : '-');

/** Box and mask AP as the paper prints them (percent, one decimal), one line each. */
export function formatApLines(metrics: CocoMetrics | undefined): string[] {
  if (!metrics) return ['no evaluation'];
  const v = AP_KEYS.map((k) => percent(metrics[k]));
  return [`box  AP ${v[0]}  AP50 ${v[1]}  AP75 ${v[2]}`, `mask AP ${v[3]}  AP50 ${v[4]}  AP75 ${v[5]}`];
}

/** The same six numbers on one line (progress output). */
export function formatApInline(metrics: CocoMetrics | undefined): string {
  const v = AP_KEYS.map((k) => percent(metrics?.[k]));
  return `box AP ${v[0]} (AP50 ${v[1]}, AP75 ${v[2]})  mask AP ${v[3]} (AP50 ${v[4]}, AP75 ${v[5]})`;
}

/**
 * Classification accuracy under mmpretrain's metric names (`Accuracy`, percent, 0-100 scale),
 * with the column ids the report uses: the paper's Table 1 columns.
 */
export const ACCURACY_COLUMNS = [
  { id: 'top1', metric: 'accuracy/top1' },
  { id: 'top5', metric: 'accuracy/top5' },
] as const;
export const TOP1 = ACCURACY_COLUMNS[0].metric;
export const TOP5 = ACCURACY_COLUMNS[1].metric;

/** Whether metrics come from a classification evaluation (mmpretrain's `Accuracy`). */
export function isAccuracy(metrics: CocoMetrics | undefined): boolean {
  return metrics !== undefined && TOP1 in metrics;
}

const accuracy = (v: number | null | undefined): string => (typeof v === 'number' ? v.toFixed(2) : '-');

/** One line for any evaluation: AP for detection, top-1/top-5 for classification. */
export function formatMetricsInline(metrics: CocoMetrics | undefined): string {
  if (isAccuracy(metrics)) return `top-1 ${accuracy(metrics![TOP1])}  top-5 ${accuracy(metrics![TOP5])}`;
  return formatApInline(metrics);
}

/** The result lines for any evaluation (see `formatApLines`). */
export function formatMetricsLines(metrics: CocoMetrics | undefined): string[] {
  if (isAccuracy(metrics)) return [`top-1 ${accuracy(metrics![TOP1])} %  top-5 ${accuracy(metrics![TOP5])} %`];
  return formatApLines(metrics);
}
