/**
 * `--data demo|<dir>` for classification (`mkey-det pretrain`): turns the user's choice into the
 * absolute paths of an ImageNet-style folder and checks it before any training starts, so a wrong
 * path or a bad layout fails in one line instead of deep inside mmpretrain.
 *
 * Layout expected under the root, what mmpretrain's `CustomDataset` reads with `data_prefix` and
 * `with_label=True` (no annotation file):
 *   train/<class>/<image>   (.jpg .jpeg .png .ppm .bmp .pgm .tif, also in nested folders)
 *   val/<class>/<image>
 * mmpretrain takes every sub-folder of `train/` (hidden ones too) as a class, numbers them in sorted
 * order, reads the image files of each recursively (hidden files skipped, other extensions
 * ignored) and checks only the *number* of classes against the config's; so train and val must
 * have the same class folders, or val's labels silently mean other classes.
 *
 * What is checked, each problem one error naming the path:
 *   - the root, `train/` and `val/` are directories (stat-ed, never opened: a FIFO must not block);
 *   - each split has at least 2 class folders, none hidden, the same names in both splits;
 *   - every train class has at least one image (a val class without any is a warning), and val
 *     has some;
 *   - the image files: a JPEG/PNG/BMP/TIFF/PPM/WebP header on an even sample (HEADER_SAMPLE per split).
 *
 * The demo set is generated (once, then cached) by the Python side (`data.ensure_demo_cls`,
 * python_shim/mkey_det/data/demo_cls.py) and then checked here like any folder.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { BadInputError, quoteValue } from '../utils/errors.js';
import { logger } from '../utils/logger.js';
import {
  FIRST_SHOWN,
  checkDatasetRoot,
  describePath,
  errnoText,
  firstBytesText,
  headerSample,
  imageHeaderFormat,
  readImageHead,
  resolveDemoOrDir,
  shownPath,
  type DemoCacheOptions,
  type MissingRoot,
} from './dataset-paths.js';

export type ClassificationDataKind = 'demo' | 'dir';

export interface ClassificationCounts {
  /** Images mmpretrain will read in each split. */
  train: number;
  val: number;
  /** Per class, in the order of `classes`. */
  trainPerClass: number[];
  valPerClass: number[];
}

export interface ResolvedClassificationData {
  kind: ClassificationDataKind;
  /** Absolute dataset root (holds `train/` and `val/`). */
  root: string;
  trainDir: string;
  valDir: string;
  /** Class folder names in mmpretrain's order (sorted by code point, as Python sorts): index = label. */
  classes: string[];
  counts: ClassificationCounts;
  /** Only for `demo`: whether this call generated the dataset (false: reused from the cache). */
  generated?: boolean;
}


/** Folder name of the classification demo under the cache dir (bump with demo_cls.GENERATOR_VERSION). */
export const DEMO_CLS_DATASET_DIRNAME = 'demo-cls-v1';

/** The bridge entry that generates the demo set (python_shim/mkey_det/cli/bridge.py ENTRIES). */
export const DEMO_CLS_BRIDGE_ENTRY = 'data.ensure_demo_cls';

/** File extensions mmpretrain's CustomDataset reads (compared lower-cased); other files are ignored. */
export const CLASSIFICATION_IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif'] as const;

/** `--data demo` (a DemoSet: dataset-paths.ts). */
const DEMO_CLS = { entry: DEMO_CLS_BRIDGE_ENTRY, dirname: DEMO_CLS_DATASET_DIRNAME, what: 'demo classification dataset' } as const;

const SPLITS = ['train', 'val'] as const;
type SplitName = (typeof SPLITS)[number];

const ACCEPTED = 'demo or an ImageNet-style directory with train/<class>/ and val/<class>/ image folders';
const LAYOUT_HINT =
  'a classification dataset needs train/ and val/ under its root, each with one sub-folder per class (the same names in both) holding .jpg/.png/... images';
const EXT_TEXT = CLASSIFICATION_IMAGE_EXTENSIONS.join(', ');
/** Folders nested deeper than this inside a class folder are refused (a sign of a link cycle). */
const MAX_DEPTH = 32;
const shownName = (name: string): string => quoteValue(name, 40);

/** Resolves `demo` or a directory path to a checked ImageNet-style classification dataset. */
export async function resolveClassificationData(
  spec: string,
  opts: DemoCacheOptions = {},
): Promise<ResolvedClassificationData> {
  const value = spec.trim();
  if (value === '') throw new BadInputError(`invalid --data "": expected ${ACCEPTED}`);
  return resolveDemoOrDir(value, opts, DEMO_CLS, validateClassificationDir, (root) => ({
    message: `classification dataset directory not found: ${shownPath(root)} (expected ${ACCEPTED})`,
  }));
}

/** Python's `sorted()` order for str (by code point); UTF-8 byte order is the same order. */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Checks an ImageNet-style dataset at `root` (absolute) and summarises it. */
export function validateClassificationDir(
  root: string,
  missingRoot: MissingRoot = { message: `classification dataset directory not found: ${shownPath(root)}` },
): Omit<ResolvedClassificationData, 'kind'> {
  checkDatasetRoot(root, missingRoot, LAYOUT_HINT, ACCEPTED);
  // both split folders before listing either (listing ImageNet train takes a moment)
  for (const split of SPLITS) {
    const dir = join(root, split);
    const info = describePath(dir);
    if (info === undefined) {
      throw new BadInputError(
        `missing ${split}/ folder under ${shownPath(root)} (expected ${split}/<class>/ image folders; accepted: ${ACCEPTED})`,
        LAYOUT_HINT,
      );
    }
    if (info.kind !== 'dir') {
      throw new BadInputError(`${shownPath(dir)} is ${info.what}, not a directory (expected ${split}/<class>/ image folders under ${shownPath(root)})`);
    }
  }
  const train = scanSplit(join(root, 'train'), 'train');
  const val = scanSplit(join(root, 'val'), 'val');
  const onlyTrain = train.classes.filter((c) => !val.byName.has(c));
  const onlyVal = val.classes.filter((c) => !train.byName.has(c));
  if (onlyTrain.length > 0 || onlyVal.length > 0) {
    const parts = [
      ...(onlyTrain.length ? [`only in train: ${preview(onlyTrain)}`] : []),
      ...(onlyVal.length ? [`only in val: ${preview(onlyVal)}`] : []),
    ];
    throw new BadInputError(
      `class folders differ between ${shownPath(train.dir)} (${train.classes.length}) and ${shownPath(val.dir)} (${val.classes.length}): ${parts.join('; ')} (expected the same class sub-folders in both: mmpretrain numbers each split's folders on its own)`,
    );
  }
  checkCounts(train, true);
  checkCounts(val, false);
  checkHeaders(train);
  checkHeaders(val);
  const trainPerClass = train.classes.map((c) => train.byName.get(c)!.images.length);
  const valPerClass = train.classes.map((c) => val.byName.get(c)!.images.length);
  return {
    root,
    trainDir: train.dir,
    valDir: val.dir,
    classes: train.classes,
    counts: { train: sum(trainPerClass), val: sum(valPerClass), trainPerClass, valPerClass },
  };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

function preview(names: string[]): string {
  const shown = names.slice(0, 5).map(shownName);
  return names.length <= 5 ? shown.join(', ') : `${shown.join(', ')}, ... (${names.length} in all)`;
}

interface ClassScan {
  name: string;
  /** Image files mmpretrain reads, relative to the class folder. */
  images: string[];
  /** First file with another extension (ignored by mmpretrain), for messages. */
  firstIgnored?: string;
  ignored: number;
}

interface SplitScan {
  split: SplitName;
  dir: string;
  classes: string[];
  byName: Map<string, ClassScan>;
}

function listDir(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw new BadInputError(`cannot list ${shownPath(dir)}: ${errnoText(err)}`);
  }
}

/** Follows a symbolic link (mmpretrain follows them): 'dir', 'file' or undefined (broken, other). */
function entryKind(dir: string, e: Dirent): 'dir' | 'file' | undefined {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (!e.isSymbolicLink()) return undefined;
  try {
    const st = statSync(join(dir, e.name));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
}

const isImageName = (name: string): boolean => {
  const lower = name.toLowerCase();
  return CLASSIFICATION_IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
};

/** Class folders of one split and the image files mmpretrain finds in each. */
function scanSplit(dir: string, split: SplitName): SplitScan {
  const entries = listDir(dir);
  const classDirs: string[] = [];
  const hidden: string[] = [];
  let looseImages = 0;
  for (const e of entries) {
    const kind = entryKind(dir, e);
    if (kind === 'dir') {
      if (e.name.startsWith('.')) hidden.push(e.name);
      else classDirs.push(e.name);
    } else if (kind === 'file' && !e.name.startsWith('.') && isImageName(e.name)) looseImages += 1;
  }
  if (hidden.length > 0) {
    hidden.sort(compareCodePoints);
    throw new BadInputError(
      `${shownPath(dir)} has hidden sub-folders (${preview(hidden)}), which mmpretrain would take for classes; remove them (every sub-folder of ${split}/ is a class)`,
    );
  }
  if (classDirs.length < 2) {
    const found = classDirs.length === 0 ? 'no class folder' : `only 1 class folder (${shownName(classDirs[0]!)})`;
    const loose = looseImages > 0 ? ` and ${looseImages} image file${looseImages === 1 ? '' : 's'} directly inside` : '';
    throw new BadInputError(
      `${shownPath(dir)} has ${found}${loose}; expected at least 2 sub-folders, one per class, holding its images (${split}/<class>/*.jpg)`,
      LAYOUT_HINT,
    );
  }
  classDirs.sort(compareCodePoints);
  const byName = new Map<string, ClassScan>();
  for (const name of classDirs) byName.set(name, scanClass(join(dir, name), name));
  return { split, dir, classes: classDirs, byName };
}

/**
 * The image files under one class folder, recursively, as mmpretrain lists them (it follows
 * symbolic links; one that loops back to a folder above would make it recurse until it crashes,
 * so that is refused here).
 */
function scanClass(classDir: string, name: string): ClassScan {
  const scan: ClassScan = { name, images: [], ignored: 0 };
  const ancestors = new Set<string>(); // dev:ino of the folders on the current path
  const walk = (dir: string, rel: string, depth: number): void => {
    let id: string;
    try {
      const st = statSync(dir);
      id = `${st.dev}:${st.ino}`;
    } catch {
      return; // gone since it was listed
    }
    if (ancestors.has(id)) {
      throw new BadInputError(
        `${shownPath(dir)} is a symbolic link to a folder above it, which mmpretrain would follow forever; remove the link (class folder ${shownName(name)})`,
      );
    }
    if (depth > MAX_DEPTH) {
      throw new BadInputError(`${shownPath(dir)} is nested more than ${MAX_DEPTH} folders deep inside class folder ${shownName(name)}; expected images within a few levels`);
    }
    ancestors.add(id);
    const entries = listDir(dir);
    entries.sort((a, b) => compareCodePoints(a.name, b.name));
    for (const e of entries) {
      const kind = entryKind(dir, e);
      const relName = rel === '' ? e.name : `${rel}/${e.name}`;
      if (kind === 'file') {
        if (e.name.startsWith('.')) continue; // mmengine's listing skips hidden files
        if (isImageName(e.name)) scan.images.push(relName);
        else {
          scan.ignored += 1;
          scan.firstIgnored ??= relName;
        }
      } else if (kind === 'dir') walk(join(dir, e.name), relName, depth + 1);
    }
    ancestors.delete(id);
  };
  walk(classDir, '', 0);
  return scan;
}

/** Train: every class needs an image. Val: some images; a class without any is only a warning. */
function checkCounts(s: SplitScan, everyClass: boolean): void {
  const empty = s.classes.map((c) => s.byName.get(c)!).filter((c) => c.images.length === 0);
  if (empty.length === 0) return;
  const other = empty.find((c) => c.firstIgnored !== undefined);
  const otherText = other ? `; ${shownName(`${other.name}/${other.firstIgnored}`)} and other files with other extensions are ignored` : '';
  const what = `${empty.length} of ${s.classes.length} class folders under ${shownPath(s.dir)} hold no image (first: ${empty
    .slice(0, FIRST_SHOWN)
    .map((c) => shownName(c.name))
    .join(', ')}; mmpretrain reads ${EXT_TEXT} files${otherText})`;
  if (everyClass || empty.length === s.classes.length) {
    throw new BadInputError(everyClass ? `${what}; every class needs training images` : what);
  }
  logger.warn(`${what}; those classes are not measured in validation`);
}

/** JPEG/PNG/... headers on an even sample of a split's images (all of them when few enough). */
function checkHeaders(s: SplitScan): void {
  const all: string[] = [];
  for (const c of s.classes) for (const img of s.byName.get(c)!.images) all.push(`${c}/${img}`);
  const { sample, checked } = headerSample(all);
  let bad = 0;
  let first = '';
  for (const rel of sample) {
    const problem = imageHeaderProblem(join(s.dir, rel));
    if (problem === undefined) continue;
    if (bad === 0) first = `${shownName(rel)} ${problem}`;
    bad += 1;
  }
  if (bad > 0) {
    throw new BadInputError(
      `${bad} of the ${checked} under ${shownPath(s.dir)} are not JPEG, PNG, BMP, TIFF, PPM/PGM or WebP files (first: ${first})`,
    );
  }
}

/**
 * Why the file at `path` is not an image OpenCV (mmpretrain's decoder) reads, from its first
 * bytes; undefined when it is one. Opened non-blocking so a FIFO swapped in cannot block.
 */
export function imageHeaderProblem(path: string): string | undefined {
  const head = readImageHead(path);
  if (typeof head === 'string') return head;
  if (head.length === 0) return 'is empty (0 bytes)';
  const format = imageHeaderFormat(head);
  if (format === 'git-lfs') return 'is a Git LFS pointer, not the image (run git lfs pull)';
  if (format !== undefined) return undefined;
  return `starts with ${firstBytesText(head)}`;
}
