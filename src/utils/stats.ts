/**
 * Quantiles of repeated timings, defined as numpy's default (linear interpolation between the
 * closest ranks) so that the Node-side figures (onnxruntime-node) and the Python-side ones
 * (`mkey_det.bench.common.stats`) of one benchmark report mean the same thing.
 */

/** The `q` quantile (0-1) of an ascending list; NaN for an empty one. */
export function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** The median of any list. */
export const median = (xs: readonly number[]): number => quantile([...xs].sort((a, b) => a - b), 0.5);
