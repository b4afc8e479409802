/**
 * `--data coco|demo|<dir>`: turns the user's dataset choice into absolute paths of a COCO-layout
 * dataset and checks it before any training starts, so a wrong path or bad data fails in one line
 * instead of deep inside MMDetection (or, for a FIFO, by waiting forever).
 *
 * Layout expected under the root (the COCO 2017 one):
 *   annotations/instances_train2017.json, annotations/instances_val2017.json, train2017/, val2017/
 *
 * What is checked, in order, each problem one error naming the file and its first offending entry:
 *   - every path is stat-ed before it is opened: the root and image folders must be directories,
 *     the annotation files regular files (a FIFO would block the read, a directory fail it);
 *   - each annotation file: JSON, the three COCO arrays, categories, images (file_name, id,
 *     width/height), annotations (known image and category, a sane bbox, area and segmentation),
 *     categories no annotation uses (an error for train, a warning for val), file names that
 *     leave the image folder;
 *   - the images on disk: present, regular, not empty, and a JPEG/PNG/... header (on a sample for
 *     big sets, see HEADER_SAMPLE).
 *
 * The demo dataset is generated (once, then cached) by the Python side (`data.ensure_demo`); the
 * annotation files are always read here with node:fs.
 */
import { constants, statSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { BadInputError, abbreviate, quoteValue } from '../utils/errors.js';
import { logger } from '../utils/logger.js';
import {
  FIRST_SHOWN,
  checkDatasetRoot,
  demoRoot,
  describePath,
  describeStats,
  errnoText,
  firstBytesText,
  headerSample,
  imageHeaderFormat,
  readImageHead,
  resolveDataDir,
  resolveDemoOrDir,
  shownPath,
  type DemoCacheOptions,
  type MissingRoot,
} from './dataset-paths.js';

// shared with the classification check (dataset-paths.ts); still importable from here
export { HEADER_SAMPLE, defaultCacheDir, describePath, type PathInfo } from './dataset-paths.js';

export type DatasetKind = 'coco' | 'demo' | 'dir';

export interface ResolvedDataset {
  kind: DatasetKind;
  /** Absolute dataset root. */
  root: string;
  trainAnn: string;
  valAnn: string;
  /** Image folders (`train2017/`, `val2017/`). */
  trainImages: string;
  valImages: string;
  /** Category names ordered by category id. */
  classes: string[];
  /** Number of images listed in each annotation file. */
  numTrain: number;
  numVal: number;
  /** Only for `demo`: whether this call generated the dataset (false: reused from the cache). */
  generated?: boolean;
}


/** Folder name of the demo dataset under the cache dir (bump with the Python GENERATOR_VERSION). */
export const DEMO_DATASET_DIRNAME = 'demo-v2';

export const TRAIN_ANN = 'annotations/instances_train2017.json';
export const VAL_ANN = 'annotations/instances_val2017.json';
export const VAL_IMAGES = 'val2017';
const SPLITS = [
  { name: 'train', ann: TRAIN_ANN, images: 'train2017' },
  { name: 'val', ann: VAL_ANN, images: VAL_IMAGES },
] as const;
type Split = (typeof SPLITS)[number];

const LAYOUT_HINT = `a COCO-layout dataset needs ${TRAIN_ANN}, ${VAL_ANN}, train2017/ and val2017/ under its root`;

/**
 * Largest image side or box side taken as real, in pixels. COCO's images are at most 640 px; the
 * biggest aerial mosaics are tens of thousands. Beyond this a value is a unit mix-up or garbage.
 */
export const MAX_SIDE_PX = 100_000;
/**
 * How far a box may stick out of its image: 2 px plus 5% of the side. COCO's own boxes overshoot
 * by rounding (fractions of a pixel) and exporters often clip late; boxes further out were drawn
 * for another image size or in other units, and MMDetection drops them silently.
 */
const BOX_MARGIN_PX = 2;
const BOX_MARGIN_FRAC = 0.05;

/** Where `--data coco` looks: $MKEY_COCO_ROOT, else ./data/coco. */
export function defaultCocoRoot(): string {
  const env = process.env.MKEY_COCO_ROOT;
  return env && env.trim() !== '' ? resolve(env) : resolve(process.cwd(), 'data', 'coco');
}

/** `--data demo` (a DemoSet: dataset-paths.ts). */
const DEMO = { entry: 'data.ensure_demo', dirname: DEMO_DATASET_DIRNAME, what: 'demo dataset' } as const;

/** The folder a `--data` value names (`coco`, `demo` or a directory), not checked and not generated. */
export function datasetRoot(spec: string, opts: DemoCacheOptions = {}): string {
  const value = spec.trim();
  if (value === 'coco') return defaultCocoRoot();
  if (value === 'demo') return demoRoot(DEMO, opts);
  return resolveDataDir(value);
}

/** Resolves `coco`, `demo` or a directory path to a checked COCO-layout dataset. */
export async function resolveDataset(spec: string, opts: DemoCacheOptions = {}): Promise<ResolvedDataset> {
  const value = spec.trim();
  if (value === '') throw new BadInputError(`invalid --data "": expected coco, demo or a dataset directory`);
  if (value === 'coco') {
    const root = defaultCocoRoot();
    const from = process.env.MKEY_COCO_ROOT?.trim() ? 'MKEY_COCO_ROOT' : './data/coco';
    return {
      kind: 'coco',
      ...(await validateCocoDir(root, {
        message: `COCO dataset directory not found: ${shownPath(root)} (from ${from})`,
        hint: 'download COCO 2017 there or set MKEY_COCO_ROOT to its folder; `--data demo` trains on a small generated dataset',
      })),
    };
  }
  return resolveDemoOrDir(value, opts, DEMO, validateCocoDir, (root) => ({
    message: `dataset directory not found: ${shownPath(root)} (expected coco, demo or a COCO-layout directory)`,
  }));
}

/** Checks a COCO-layout dataset at `root` (absolute) and summarises it. */
export async function validateCocoDir(
  root: string,
  missingRoot: MissingRoot = { message: `dataset directory not found: ${shownPath(root)}` },
): Promise<Omit<ResolvedDataset, 'kind'>> {
  checkDatasetRoot(root, missingRoot, LAYOUT_HINT, 'a COCO-layout directory');
  // check both annotation files before reading either (reading COCO train takes a while); stat,
  // not open: opening a FIFO blocks until something writes to it
  for (const split of SPLITS) {
    const ann = join(root, split.ann);
    const info = describePath(ann);
    if (info === undefined) throw new BadInputError(`missing annotation file ${ann} (expected ${split.ann} under ${root})`, LAYOUT_HINT);
    if (info.kind !== 'file') {
      throw new BadInputError(`annotation file ${ann} is ${info.what}, not a regular file (expected the COCO instances JSON ${split.ann})`);
    }
  }
  const summaries: SplitSummary[] = [];
  for (const split of SPLITS) summaries.push(await checkSplit(root, split));
  const [train, val] = summaries as [SplitSummary, SplitSummary];
  if (train.classes.join('\u0000') !== val.classes.join('\u0000')) {
    throw new BadInputError(
      `categories differ between ${join(root, TRAIN_ANN)} (${train.classes.length}: ${preview(train.classes)}) and ${join(root, VAL_ANN)} (${val.classes.length}: ${preview(val.classes)}); expected the same list`,
    );
  }
  for (const w of [...train.warnings, ...val.warnings]) logger.warn(w);
  return {
    root,
    trainAnn: train.ann,
    valAnn: val.ann,
    trainImages: train.images,
    valImages: val.images,
    classes: train.classes,
    numTrain: train.numImages,
    numVal: val.numImages,
  };
}

interface SplitSummary {
  ann: string;
  images: string;
  classes: string[];
  numImages: number;
  /** Printed once the whole dataset passed: a refused one prints its error line alone. */
  warnings: string[];
}

function preview(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => abbreviate(n, 40));
  return names.length <= 5 ? shown.join(', ') : `${shown.join(', ')}, ...`;
}

/** Reads and checks one annotation file, then the images it lists. */
async function checkSplit(root: string, split: Split): Promise<SplitSummary> {
  const ann = join(root, split.ann);
  const imagesDir = join(root, split.images);
  const summary = await readAnnotationSummary(ann);
  const { fileNames, classes } = summary;
  const warnings: string[] = [];
  checkFileNames(ann, imagesDir, fileNames);
  if (summary.unusedCategories.length > 0) {
    const unused = summary.unusedCategories;
    const what = `${unused.length} of ${classes.length} categories have no annotation (first: ${unused
      .slice(0, FIRST_SHOWN)
      .map((c) => `${c.id} ${quoteValue(c.name, 40)}`)
      .join(', ')})`;
    // A warning, not an error: a subset of COCO keeps all 80 categories on purpose (class indices
    // stay those of the full set), while a mapping mistake shows here before any training.
    warnings.push(
      split.name === 'train'
        ? `${ann}: ${what}; the model gets classes it never sees (drop them from "categories" in both files if that is a mistake)`
        : `${ann}: ${what}; not an error for the val set, but COCO evaluation skips them, so their AP is not measured`,
    );
  }
  const dirInfo = describePath(imagesDir);
  if (dirInfo === undefined) {
    throw new BadInputError(`image folder missing: ${imagesDir} (expected the ${fileNames.length} images listed in ${ann})`, LAYOUT_HINT);
  }
  if (dirInfo.kind !== 'dir') {
    throw new BadInputError(`image folder ${imagesDir} is ${dirInfo.what}, not a directory (expected the ${fileNames.length} images listed in ${ann})`);
  }
  checkImageFiles(ann, imagesDir, fileNames);
  return { ann, images: imagesDir, classes, numImages: fileNames.length, warnings };
}

/**
 * Counts entries that fail one check and keeps the first few, for `N of M ... (first: ...)`
 * messages: one error per problem, however many entries share it.
 */
class Offenders {
  count = 0;
  readonly first: string[] = [];
  detail = '';
  add(label: string, detail: () => string): void {
    if (this.count === 0) this.detail = detail();
    if (this.first.length < FIRST_SHOWN) this.first.push(label);
    this.count += 1;
  }
}

/**
 * File names are joined to the image folder by MMDetection; one that is absolute or climbs out
 * (`../x.jpg`) would read a file the dataset does not own, and a NUL byte fails every file call.
 */
function checkFileNames(ann: string, imagesDir: string, fileNames: string[]): void {
  const bad = new Offenders();
  for (let i = 0; i < fileNames.length; i++) {
    const name = fileNames[i]!;
    const norm = normalize(name);
    const problem = name.includes('\u0000')
      ? 'contains a NUL character'
      : isAbsolute(name)
        ? 'is an absolute path'
        : norm === '..' || norm.startsWith(`..${sep}`)
          ? 'leaves the image folder'
          : undefined;
    if (problem) bad.add(`images[${i}]`, () => `images[${i}] ${quoteValue(name)} ${problem}`);
  }
  if (bad.count > 0) {
    throw new BadInputError(
      `${ann}: ${bad.count} of ${fileNames.length} image file names point outside ${imagesDir} (first: ${bad.detail}); expected names relative to that folder`,
    );
  }
}

/** errno codes of a listed image that is simply not there. */
const IMAGE_MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP']);

/**
 * The images listed, on disk: all present, regular files and not empty (stat each, no open: a
 * FIFO among them must not block), then a header check on HEADER_SAMPLE of them.
 *
 * Synchronous on purpose: statSync takes ~0.7 s for COCO train's 118k images on a local disk,
 * where fs.promises.stat through libuv's thread pool took ~5 s (a promise and a thread hop each).
 */
function checkImageFiles(ann: string, imagesDir: string, fileNames: string[]): void {
  const n = fileNames.length;
  const missing = new Offenders();
  const notFile = new Offenders();
  const empty = new Offenders();
  const unreadable = new Offenders();
  for (let i = 0; i < n; i++) {
    const fileName = fileNames[i]!;
    const shown = abbreviate(fileName);
    let st: Stats;
    try {
      st = statSync(join(imagesDir, fileName));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && IMAGE_MISSING_CODES.has(code)) missing.add(shown, () => shown);
      else unreadable.add(shown, () => `${shown}: ${errnoText(err)}`);
      continue;
    }
    if (!st.isFile()) notFile.add(shown, () => `${shown} is ${describeStats(st)}`);
    else if (st.size === 0) empty.add(shown, () => shown);
  }
  const problems: [Offenders, string][] = [
    [missing, 'are missing'],
    [unreadable, 'cannot be read'],
    [notFile, 'are not regular files'],
    [empty, 'are empty (0 bytes)'],
  ];
  for (const [o, what] of problems) {
    if (o.count > 0) throw new BadInputError(`${o.count} of ${n} images listed in ${ann} ${what} under ${imagesDir} (first: ${o.detail})`);
  }

  const { sample, checked } = headerSample(fileNames);
  const badHeader = new Offenders();
  for (const fileName of sample) {
    const problem = imageHeaderProblem(join(imagesDir, fileName));
    if (problem) badHeader.add(fileName, () => `${abbreviate(fileName)} under ${imagesDir}, ${problem}`);
  }
  if (badHeader.count > 0) {
    throw new BadInputError(
      `${badHeader.count} of the ${checked} listed in ${ann} are not JPEG, PNG, BMP, TIFF or WebP files (first: ${badHeader.detail})`,
    );
  }
}

/**
 * Why the file at `path` is not an image OpenCV (MMDetection's decoder) reads, from its first
 * bytes; undefined when the header is one of JPEG, PNG, BMP, TIFF, WebP.
 */
function imageHeaderProblem(path: string): string | undefined {
  const head = readImageHead(path);
  if (typeof head === 'string') return head;
  const format = imageHeaderFormat(head);
  if (format === 'git-lfs') return 'a Git LFS pointer, not the image (run git lfs pull)';
  if (format !== undefined && format !== 'pnm') return undefined;
  return `which starts with ${firstBytesText(head)}`;
}

/** What the annotation checks keep of one file; the parsed JSON is dropped when this is returned. */
export interface AnnotationSummary {
  /** `file_name` of each image, in file order. */
  fileNames: string[];
  /** Category names ordered by category id. */
  classes: string[];
  numAnnotations: number;
  /** Categories (by id) that no usable annotation names. */
  unusedCategories: { id: number; name: string }[];
}

/**
 * Reads a file that must be a regular one: opened non-blocking and checked with fstat before the
 * read, so that even a FIFO put there after the stat in validateCocoDir cannot block the read.
 */
async function readRegularFile(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new BadInputError(`cannot read annotation file ${path}: ${errnoText(err)}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BadInputError(`annotation file ${path} is ${describeStats(st)}, not a regular file (expected a COCO instances JSON)`);
    return await fh.readFile('utf8');
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    throw new BadInputError(`cannot read annotation file ${path}: ${errnoText(err)}`);
  } finally {
    await fh.close();
  }
}

/**
 * Parses and checks a COCO instances file and returns only image file names, category names (by
 * id), the annotation count and unused categories; the parsed object is dropped when this returns
 * (COCO train is ~450 MB of JSON).
 */
export async function readAnnotationSummary(ann: string): Promise<AnnotationSummary> {
  let text = await readRegularFile(ann);
  let data: unknown;
  try {
    data = JSON.parse(exactIds(text));
  } catch (err) {
    throw new BadInputError(`invalid JSON in ${ann}: ${describeJsonError(text, err)}`);
  }
  text = '';
  const obj = (data !== null && typeof data === 'object' && !Array.isArray(data) ? data : {}) as Record<string, unknown>;
  const missingKeys = ['images', 'annotations', 'categories'].filter((k) => !Array.isArray(obj[k]));
  if (missingKeys.length > 0) {
    throw new BadInputError(
      `${ann} is not a COCO instances file: expected arrays "images", "annotations" and "categories" (missing or not an array: ${missingKeys.join(', ')})`,
    );
  }
  const categories = gatherCategories(ann, obj.categories as unknown[]);
  const images = gatherImages(ann, obj.images as unknown[]);
  const used = checkAnnotations(ann, obj.annotations as unknown[], images.sizeById, new Set(categories.map((c) => c.id)));
  return {
    fileNames: images.fileNames,
    classes: categories.map((c) => c.name),
    numAnnotations: (obj.annotations as unknown[]).length,
    unusedCategories: categories.filter((c) => !used.has(c.id)),
  };
}

/** Categories sorted by id: numeric ids, string names, no id twice, at least one. */
function gatherCategories(ann: string, cats: unknown[]): { id: number; name: string }[] {
  const parsed: { id: number; name: string }[] = [];
  for (let i = 0; i < cats.length; i++) {
    const c = cats[i] as { id?: unknown; name?: unknown } | null;
    if (!c || typeof c !== 'object' || typeof c.id !== 'number' || typeof c.name !== 'string') {
      throw new BadInputError(`${ann}: categories[${i}] needs a numeric "id" and a string "name"`);
    }
    parsed.push({ id: c.id, name: c.name });
  }
  if (parsed.length === 0) throw new BadInputError(`${ann} has no categories (expected at least one entry in "categories")`);
  parsed.sort((a, b) => a.id - b.id);
  for (let i = 1; i < parsed.length; i++) {
    if (parsed[i]!.id === parsed[i - 1]!.id) throw new BadInputError(`${ann}: category id ${parsed[i]!.id} appears twice`);
  }
  return parsed;
}

type ImageId = number | string;

/**
 * File names, and (width, height) by image id: MMDetection reads both sizes of every image
 * (a KeyError at the first batch without them) and the box checks need them.
 */
function gatherImages(ann: string, images: unknown[]): { fileNames: string[]; sizeById: Map<ImageId, [number, number]> } {
  if (images.length === 0) throw new BadInputError(`${ann} lists no images (expected at least one entry in "images")`);
  const fileNames: string[] = new Array<string>(images.length);
  const sizeById = new Map<ImageId, [number, number]>();
  const indexById = new Map<ImageId, number>();
  const badSize = new Offenders();
  const okSide = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= MAX_SIDE_PX;
  for (let i = 0; i < images.length; i++) {
    const img = images[i] as { file_name?: unknown; id?: unknown; width?: unknown; height?: unknown } | null;
    const name = img && typeof img === 'object' ? img.file_name : undefined;
    if (!img || typeof name !== 'string' || name === '') {
      throw new BadInputError(`${ann}: images[${i}] has no "file_name" string (expected COCO image entries)`);
    }
    fileNames[i] = name;
    const id = img.id;
    if (!(typeof id === 'number' && Number.isFinite(id)) && typeof id !== 'string') {
      throw new BadInputError(`${ann}: images[${i}] (${quoteValue(name)}) has no "id" (expected a number; annotations refer to images by it)`);
    }
    const seen = indexById.get(id);
    if (seen !== undefined) {
      throw new BadInputError(`${ann}: image id ${quoteValue(id)} appears twice (images[${seen}] and images[${i}]); expected unique ids`);
    }
    indexById.set(id, i);
    if (okSide(img.width) && okSide(img.height)) sizeById.set(id, [img.width, img.height]);
    else {
      badSize.add(`images[${i}]`, () => `images[${i}] ${quoteValue(name)} has ${fieldText('width', img.width)}, ${fieldText('height', img.height)}`);
    }
  }
  if (badSize.count > 0) {
    throw new BadInputError(
      `${ann}: ${badSize.count} of ${images.length} images lack a valid "width" and "height" (numbers from 1 to ${MAX_SIDE_PX}; MMDetection reads both) (first: ${badSize.detail})`,
    );
  }
  return { fileNames, sizeById };
}

/** Why a COCO `bbox` ([x, y, width, height] in pixels) is unusable in a `width` x `height` image. */
function bboxProblem(bbox: unknown, [width, height]: [number, number]): string | undefined {
  // the value is quoted only for a bad box: this runs for each of COCO train's 860k annotations
  const bad = (why: string) => `"bbox" ${quoteValue(bbox, 60)} ${why}`;
  if (!Array.isArray(bbox) || bbox.length !== 4) return bad('is not [x, y, width, height]');
  if (!bbox.every((v) => typeof v === 'number')) return bad('has a non-numeric value');
  if (!bbox.every((v: number) => Number.isFinite(v))) return bad('has a non-finite value');
  const [x, y, w, h] = bbox as [number, number, number, number];
  if (w <= 0 || h <= 0) return bad('has a width or height <= 0');
  if (w > MAX_SIDE_PX || h > MAX_SIDE_PX) return bad(`is larger than ${MAX_SIDE_PX} px`);
  const mx = BOX_MARGIN_PX + BOX_MARGIN_FRAC * width;
  const my = BOX_MARGIN_PX + BOX_MARGIN_FRAC * height;
  if (x < -mx || y < -my || x + w > width + mx || y + h > height + my) {
    return bad(`lies outside its ${width}x${height} image by more than the ${Math.round(mx)}x${Math.round(my)} px margin`);
  }
  return undefined;
}

/** `"name" value` for a message, or `no "name"` when the field is absent. */
function fieldText(name: string, value: unknown): string {
  return value === undefined ? `no "${name}"` : `"${name}" ${quoteValue(value, 40)}`;
}

/**
 * The text with every id that a JavaScript number cannot hold exactly (an integer of 16 or more
 * digits: beyond 2^53 two ids would read as one) written as a string, so ids compare exactly
 * whatever their size. Python, which trains on the file, reads them exactly; only the check here
 * needs this. Other numbers are left alone.
 */
export function exactIds(text: string): string {
  if (!/\d{16}/.test(text)) return text;
  return text.replace(/("(?:id|image_id|category_id)"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"$2"');
}

/** Mask R-CNN needs a mask for every object: MMDetection keeps one only when "segmentation" is truthy in Python. */
function hasSegmentation(seg: unknown): boolean {
  if (Array.isArray(seg)) return seg.length > 0;
  if (seg !== null && typeof seg === 'object') return Object.keys(seg).length > 0;
  return false;
}

/**
 * Records annotation `i` in `o`: named by its id (`annotations[i]` without one), built only for
 * offenders since COCO train has 860k annotations. `problem` starts with `has ...` or `: ...`.
 */
function flag(o: Offenders, a: Record<string, unknown>, i: number, problem: () => string): void {
  const id = typeof a.id === 'number' || typeof a.id === 'string' ? quoteValue(a.id, 40) : undefined;
  const label = id ?? `annotations[${i}]`;
  const who = id !== undefined ? `annotation ${id}` : label;
  o.add(label, () => {
    const p = problem();
    return p.startsWith(':') ? `${who}${p}` : `${who} ${p}`;
  });
}

/**
 * Checks every annotation against the listed images and categories and returns the ids of the
 * categories that usable annotations name. Usable: a listed image and a listed category (what
 * MMDetection keeps; the rest it drops silently, and with none left it fails on an empty dataset).
 */
function checkAnnotations(
  ann: string,
  list: unknown[],
  sizeById: Map<ImageId, [number, number]>,
  categoryIds: Set<number>,
): Set<number> {
  const n = list.length;
  if (n === 0) {
    throw new BadInputError(`${ann} has no annotations (expected objects in "annotations" naming a listed image_id and category_id)`);
  }
  const unknownImage = new Offenders();
  const unknownCategory = new Offenders();
  const badBox = new Offenders();
  const noMask = new Offenders();
  const used = new Set<number>();
  // pycocotools indexes annotations by id: a repeated one is dropped there, and fails later in training
  const seenIds = new Map<unknown, number>();
  let usable = 0;
  let ignored = 0;
  for (let i = 0; i < n; i++) {
    const a = list[i] as Record<string, unknown> | null;
    if (!a || typeof a !== 'object' || Array.isArray(a)) {
      throw new BadInputError(`${ann}: annotations[${i}] is not an object (expected COCO annotation entries)`);
    }
    if (a.id !== undefined) {
      const first = seenIds.get(a.id);
      if (first !== undefined) {
        throw new BadInputError(`${ann}: annotation id ${quoteValue(a.id, 40)} appears twice (annotations[${first}] and annotations[${i}]); expected unique ids`);
      }
      seenIds.set(a.id, i);
    }
    const size = sizeById.get(a.image_id as ImageId);
    const category = a.category_id as number;
    const knownCategory = categoryIds.has(category);
    if (size === undefined) flag(unknownImage, a, i, () => `has ${fieldText('image_id', a.image_id)}`);
    if (!knownCategory) flag(unknownCategory, a, i, () => `has ${fieldText('category_id', a.category_id)}`);
    if (size === undefined || !knownCategory) continue;
    // MMDetection skips `ignore` annotations before reading anything else of them
    if (a.ignore) {
      ignored += 1;
      continue;
    }
    usable += 1;
    used.add(category);
    const problem = bboxProblem(a.bbox, size);
    if (problem) flag(badBox, a, i, () => `: ${problem}`);
    else if (typeof a.area !== 'number' || !Number.isFinite(a.area)) flag(noMask, a, i, () => `has ${fieldText('area', a.area)}`);
    else if (!hasSegmentation(a.segmentation)) flag(noMask, a, i, () => `has ${fieldText('segmentation', a.segmentation)}`);
  }
  const firstIds = (o: Offenders) => `first annotation ids: ${o.first.join(', ')}; ${o.detail}`;
  if (usable === 0) {
    const counts = [
      `${unknownImage.count} name an unknown image_id`,
      `${unknownCategory.count} an unknown category_id`,
      ...(ignored ? [`${ignored} are marked ignore`] : []),
    ].join(', ');
    const first = unknownImage.count ? unknownImage.detail : unknownCategory.count ? unknownCategory.detail : 'all ignored';
    throw new BadInputError(
      `${ann} has no usable annotations: none of its ${n} names both a listed image and a listed category (${counts}; first: ${first})`,
    );
  }
  if (unknownImage.count > 0) {
    throw new BadInputError(`${ann}: ${unknownImage.count} of ${n} annotations name an image_id not listed in "images" (${firstIds(unknownImage)})`);
  }
  if (unknownCategory.count > 0) {
    throw new BadInputError(
      `${ann}: ${unknownCategory.count} of ${n} annotations name a category_id not listed in "categories" (${firstIds(unknownCategory)})`,
    );
  }
  if (badBox.count > 0) {
    throw new BadInputError(`${ann}: ${badBox.count} of ${n} annotations have an invalid "bbox" (${firstIds(badBox)})`);
  }
  if (noMask.count > 0) {
    throw new BadInputError(
      `${ann}: ${noMask.count} of ${n} annotations lack a numeric "area" or a non-empty "segmentation", which Mask R-CNN needs for every object (${firstIds(noMask)})`,
    );
  }
  return used;
}

/**
 * A JSON.parse error as `<reason> at line L, column C (position P)`, on one line. The position is
 * V8's own (jsonErrorPosition), so it names the character JSON.parse stopped at.
 */
export function describeJsonError(text: string, err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  const pos = jsonErrorPosition(text, raw);
  const reason = raw
    .replace(/,\s*(\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, '')
    .replace(/\s*(in JSON )?at position \d+.*$/s, '')
    .trim()
    // keep the message on one line: an unexpected newline token is shown as \n
    .replace(/[\u0000-\u001f]/g, (c) => JSON.stringify(c).slice(1, -1));
  if (pos === undefined) return reason;
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < pos; i = text.indexOf('\n', i + 1)) {
    line += 1;
    lineStart = i + 1;
  }
  return `${reason} at line ${line}, column ${pos - lineStart + 1} (position ${pos})`;
}

/** Characters V8 quotes on each side of an unexpected token (a text under 2 * 10 + 1 is quoted whole). */
const V8_JSON_CONTEXT = 10;

/**
 * Where JSON.parse stopped in `text`, read from its error `message` (V8 as in Node 20):
 * - `... at position N`: N;
 * - `Unexpected end of JSON input`: the end of the text;
 * - `Unexpected token 'x', "<text around it>" is not valid JSON` (and `"NaN" is not valid JSON`):
 *   no number, but the text around the token, `...` marking where V8 cut it: the 10 characters on
 *   each side, or the whole text when short. Cut on one side only, that fixes the position; else
 *   each place the quoted text stands is a candidate, and the first at which V8 fails on the text
 *   up to it is the one (V8 fails on a prefix only once the prefix holds the error).
 * Undefined for any other message.
 */
export function jsonErrorPosition(text: string, message: string): number | undefined {
  const at = /at position (\d+)/.exec(message);
  if (at) return Number(at[1]);
  if (message.startsWith('Unexpected end of JSON input')) return text.length;
  const shown = /(?:^|, )(\.\.\.)?"([\s\S]*)"(\.\.\.)? is not valid JSON$/.exec(message);
  if (!shown) return undefined;
  const [, cutBefore, context = '', cutAfter] = shown;
  if (!cutBefore && cutAfter) return context.length - V8_JSON_CONTEXT;
  if (cutBefore && !cutAfter) return text.length - context.length + V8_JSON_CONTEXT;
  const candidates: number[] = [];
  if (cutBefore) {
    for (let i = text.indexOf(context); i >= 0; i = text.indexOf(context, i + 1)) candidates.push(i + V8_JSON_CONTEXT);
  } else {
    for (let i = 0; i < text.length; i++) candidates.push(i);
  }
  let lo = 0;
  let hi = candidates.length - 1;
  if (hi < 0) return undefined;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsWithin(text.slice(0, candidates[mid]! + 1))) hi = mid;
    else lo = mid + 1;
  }
  return candidates[lo];
}

/** Whether JSON.parse fails on `prefix` before its end (not only for lack of the rest). */
function failsWithin(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return false;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (message.startsWith('Unexpected end of JSON input')) return false;
    const at = /at position (\d+)/.exec(message);
    return !at || Number(at[1]) < prefix.length;
  }
}
