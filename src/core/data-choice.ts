/**
 * `--data demo|<dir>`, the part both dataset checks share (detection: dataset.ts, which adds
 * `coco`; classification: classification-dataset.ts). `demo` is the task's generated set, made (or
 * found intact) under the cache folder through the bridge, then checked like any folder; anything
 * else is a directory, resolved from the working directory and checked. Each check keeps its own
 * words: the task passes them in.
 */
import { demoDatasetRoot, ensureDemoDataset, resolveDataDir, type DemoCacheOptions, type MissingRoot } from './dataset-paths.js';

/** A task's demo set: the bridge entry that generates it, its folder under the cache, its name in messages. */
export interface DemoSet {
  readonly entry: 'data.ensure_demo' | 'data.ensure_demo_cls';
  readonly dirname: string;
  readonly what: string;
}

/** A task's dataset check: the summary of the dataset at `root` (absolute), or one error (`missing` when nothing is there). */
export type DatasetCheck<T> = (root: string, missing: MissingRoot) => T | Promise<T>;

/** Where `demo` lives (not generated, not checked). */
export const demoRoot = (demo: DemoSet, opts: DemoCacheOptions): string => demoDatasetRoot(demo.dirname, opts.cacheDir, demo.what);

/**
 * `value` (trimmed, not empty) as the task's checked dataset: `demo` (with whether this call
 * generated it) or a directory (`missingDir(root)`: the message when nothing is there).
 */
export async function resolveDemoOrDir<T extends object>(
  value: string,
  opts: DemoCacheOptions,
  demo: DemoSet,
  check: DatasetCheck<T>,
  missingDir: (root: string) => MissingRoot,
): Promise<(T & { kind: 'demo'; generated: boolean }) | (T & { kind: 'dir' })> {
  if (value === 'demo') {
    const made = await ensureDemoDataset(demo.entry, demoRoot(demo, opts), demo.what);
    return { kind: 'demo', ...(await check(made.root, { message: `${demo.what} was not generated at ${made.root}` })), generated: made.generated };
  }
  const root = resolveDataDir(value);
  return { kind: 'dir', ...(await check(root, missingDir(root))) };
}
