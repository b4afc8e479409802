/**
 * `--data coco|demo|<dir>`: turns the user's dataset choice into absolute paths of a COCO-layout
 * dataset and checks it before any training starts, so a wrong path fails in one line instead of
 * deep inside MMDetection.
 *
 * Layout expected under the root (the COCO 2017 one):
 *   annotations/instances_train2017.json, annotations/instances_val2017.json, train2017/, val2017/
 *
 * The demo dataset is generated (once, then cached) by the Python side (`data.ensure_demo`); the
 * annotation files are always read here with node:fs.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { withBridge } from '../python/bridge.js';
import { BadInputError } from '../utils/errors.js';
import { packageRoot } from '../utils/paths.js';

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

export interface ResolveDatasetOptions {
  /** Where the demo dataset is cached (default: $MKEY_CACHE_DIR, else <package>/.cache). */
  cacheDir?: string;
}

/** Folder name of the demo dataset under the cache dir (bump with the Python GENERATOR_VERSION). */
export const DEMO_DATASET_DIRNAME = 'demo-v1';

export const TRAIN_ANN = 'annotations/instances_train2017.json';
export const VAL_ANN = 'annotations/instances_val2017.json';
const SPLITS = [
  { name: 'train', ann: TRAIN_ANN, images: 'train2017' },
  { name: 'val', ann: VAL_ANN, images: 'val2017' },
] as const;

const LAYOUT_HINT = `a COCO-layout dataset needs ${TRAIN_ANN}, ${VAL_ANN}, train2017/ and val2017/ under its root`;

/** The cache folder for generated data. */
export function defaultCacheDir(): string {
  const env = process.env.MKEY_CACHE_DIR;
  return env && env.trim() !== '' ? resolve(env) : join(packageRoot, '.cache');
}

/** Where `--data coco` looks: $MKEY_COCO_ROOT, else ./data/coco. */
export function defaultCocoRoot(): string {
  const env = process.env.MKEY_COCO_ROOT;
  return env && env.trim() !== '' ? resolve(env) : resolve(process.cwd(), 'data', 'coco');
}

/** Resolves `coco`, `demo` or a directory path to a checked COCO-layout dataset. */
export async function resolveDataset(spec: string, opts: ResolveDatasetOptions = {}): Promise<ResolvedDataset> {
  const value = spec.trim();
  if (value === '') throw new BadInputError(`invalid --data "": expected coco, demo or a dataset directory`);
  if (value === 'coco') {
    const root = defaultCocoRoot();
    const from = process.env.MKEY_COCO_ROOT?.trim() ? 'MKEY_COCO_ROOT' : './data/coco';
    return {
      kind: 'coco',
      ...(await validateCocoDir(root, {
        message: `COCO dataset directory not found: ${root} (from ${from})`,
        hint: 'download COCO 2017 there or set MKEY_COCO_ROOT to its folder; `--data demo` trains on a small generated dataset',
      })),
    };
  }
  if (value === 'demo') {
    const cacheDir = opts.cacheDir ? resolve(opts.cacheDir) : defaultCacheDir();
    const root = join(cacheDir, DEMO_DATASET_DIRNAME);
    const made = await withBridge((b) =>
      b.call<{ root: string; classes: string[]; num_train: number; num_val: number; generated: boolean }>('data.ensure_demo', {
        root,
      }),
    );
    const checked = await validateCocoDir(made.root, { message: `demo dataset was not generated at ${made.root}` });
    return { kind: 'demo', ...checked, generated: made.generated };
  }
  const root = isAbsolute(value) ? resolve(value) : resolve(process.cwd(), value);
  return {
    kind: 'dir',
    ...(await validateCocoDir(root, {
      message: `dataset directory not found: ${root} (expected coco, demo or a COCO-layout directory)`,
    })),
  };
}

/** Checks a COCO-layout dataset at `root` (absolute) and summarises it. */
export async function validateCocoDir(
  root: string,
  missingRoot: { message: string; hint?: string } = { message: `dataset directory not found: ${root}` },
): Promise<Omit<ResolvedDataset, 'kind'>> {
  if (!existsSync(root)) throw new BadInputError(missingRoot.message, missingRoot.hint ?? LAYOUT_HINT);
  if (!statSync(root).isDirectory()) throw new BadInputError(`dataset path is not a directory: ${root} (expected a COCO-layout directory)`, LAYOUT_HINT);
  // check both annotation files exist before reading either (reading COCO train takes a while)
  for (const split of SPLITS) {
    const ann = join(root, split.ann);
    if (!existsSync(ann)) throw new BadInputError(`missing annotation file ${ann} (expected ${split.ann} under ${root})`, LAYOUT_HINT);
  }
  const summaries: SplitSummary[] = [];
  for (const split of SPLITS) summaries.push(await checkSplit(root, split.ann, split.images));
  const [train, val] = summaries as [SplitSummary, SplitSummary];
  if (train.classes.join('\u0000') !== val.classes.join('\u0000')) {
    throw new BadInputError(
      `categories differ between ${join(root, TRAIN_ANN)} (${train.classes.length}: ${preview(train.classes)}) and ${join(root, VAL_ANN)} (${val.classes.length}: ${preview(val.classes)}); expected the same list`,
    );
  }
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
}

function preview(names: string[]): string {
  return names.length <= 5 ? names.join(', ') : `${names.slice(0, 5).join(', ')}, ...`;
}

/** Reads one annotation file, keeps only what the summary needs, and checks its images exist. */
async function checkSplit(root: string, annRel: string, imagesRel: string): Promise<SplitSummary> {
  const ann = join(root, annRel);
  const imagesDir = join(root, imagesRel);
  const { fileNames, classes } = await readAnnotationSummary(ann);
  if (classes.length === 0) throw new BadInputError(`${ann} has no categories (expected at least one entry in "categories")`);
  if (fileNames.length > 0) {
    if (!existsSync(imagesDir) || !statSync(imagesDir).isDirectory()) {
      throw new BadInputError(
        `image folder missing: ${imagesDir} (expected the ${fileNames.length} images listed in ${ann})`,
        LAYOUT_HINT,
      );
    }
    const missing = findMissingImages(imagesDir, fileNames);
    if (missing.count > 0) {
      throw new BadInputError(
        `${missing.count} of ${fileNames.length} images listed in ${ann} are missing under ${imagesDir} (first: ${missing.first})`,
      );
    }
  }
  return { ann, images: imagesDir, classes, numImages: fileNames.length };
}

/** Counts listed images not on disk: one directory listing instead of a stat per image. */
function findMissingImages(imagesDir: string, fileNames: string[]): { count: number; first: string | undefined } {
  const present = new Set(readdirSync(imagesDir));
  let count = 0;
  let first: string | undefined;
  for (const name of fileNames) {
    const ok = name.includes('/') || name.includes('\\') ? existsSync(join(imagesDir, name)) : present.has(name);
    if (!ok) {
      count += 1;
      first ??= name;
    }
  }
  return { count, first };
}

/**
 * Parses a COCO instances file and returns only image file names, category names (by id) and the
 * annotation count; the parsed object is dropped when this returns (COCO train is ~450 MB of JSON).
 */
export async function readAnnotationSummary(
  ann: string,
): Promise<{ fileNames: string[]; classes: string[]; numAnnotations: number }> {
  let text: string;
  try {
    text = await readFile(ann, 'utf8');
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new BadInputError(`cannot read annotation file ${ann}: ${msg}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
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
  const images = obj.images as unknown[];
  const fileNames: string[] = new Array<string>(images.length);
  for (let i = 0; i < images.length; i++) {
    const img = images[i] as { file_name?: unknown } | null;
    const name = img && typeof img === 'object' ? img.file_name : undefined;
    if (typeof name !== 'string' || name === '') {
      throw new BadInputError(`${ann}: images[${i}] has no "file_name" string (expected COCO image entries)`);
    }
    fileNames[i] = name;
  }
  const cats = obj.categories as unknown[];
  const parsed: { id: number; name: string }[] = [];
  for (let i = 0; i < cats.length; i++) {
    const c = cats[i] as { id?: unknown; name?: unknown } | null;
    if (!c || typeof c !== 'object' || typeof c.id !== 'number' || typeof c.name !== 'string') {
      throw new BadInputError(`${ann}: categories[${i}] needs a numeric "id" and a string "name"`);
    }
    parsed.push({ id: c.id, name: c.name });
  }
  parsed.sort((a, b) => a.id - b.id);
  for (let i = 1; i < parsed.length; i++) {
    if (parsed[i]!.id === parsed[i - 1]!.id) throw new BadInputError(`${ann}: category id ${parsed[i]!.id} appears twice`);
  }
  return { fileNames, classes: parsed.map((c) => c.name), numAnnotations: (obj.annotations as unknown[]).length };
}

/**
 * V8's JSON.parse messages give a position only for some errors (`Unexpected token '}', "..." is
 * not valid JSON` has none), so the position is found here when missing and shown as
 * `line L, column C (position P)`.
 */
export function describeJsonError(text: string, err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  const fromV8 = /at position (\d+)/.exec(raw);
  let pos = fromV8 ? Number(fromV8[1]) : findJsonErrorPosition(text);
  if (/Unexpected end of JSON input/.test(raw)) pos = text.length;
  const reason = raw
    .replace(/,\s*(\.\.\.)?".*" is not valid JSON$/s, '')
    .replace(/\s*(in JSON )?at position \d+.*$/s, '')
    .replace(/\s*\(line \d+ column \d+\)$/, '')
    .trim()
    // keep the message on one line: an unexpected newline token is shown as \n
    .replace(/[\u0000-\u001f]/g, (c) => JSON.stringify(c).slice(1, -1));
  if (pos === undefined) return reason;
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line += 1;
      lineStart = i + 1;
    }
  }
  return `${reason} at line ${line}, column ${pos - lineStart + 1} (position ${pos})`;
}

/** Offset of the first JSON syntax error in `text` (undefined when none is found). */
export function findJsonErrorPosition(text: string): number | undefined {
  let i = 0;
  const n = text.length;
  class Fail {
    constructor(readonly at: number) {}
  }
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const literal = (word: string): void => {
    for (let k = 0; k < word.length; k++, i++) if (text[i] !== word[k]) throw new Fail(i);
  };
  const string = (): void => {
    i++; // opening quote
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c < 32) throw new Fail(i);
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          for (let k = i + 2; k < i + 6; k++) if (!/[0-9a-fA-F]/.test(text[k] ?? '')) throw new Fail(k);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else throw new Fail(i + 1);
      } else i++;
    }
    throw new Fail(n);
  };
  const isDigit = (k: number): boolean => {
    const c = text.charCodeAt(k);
    return c >= 48 && c <= 57;
  };
  const number = (): void => {
    if (text[i] === '-') i++;
    if (!isDigit(i)) throw new Fail(i);
    if (text[i] === '0') i++;
    else while (isDigit(i)) i++;
    if (text[i] === '.') {
      i++;
      if (!isDigit(i)) throw new Fail(i);
      while (isDigit(i)) i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!isDigit(i)) throw new Fail(i);
      while (isDigit(i)) i++;
    }
  };
  // iterative over containers so deep nesting cannot overflow the stack
  const stack: ('{' | '[')[] = [];
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      stack.push(c);
      i++;
      return;
    }
    if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) number();
    else throw new Fail(i);
  };
  try {
    // state machine: after opening a container we expect a first member or its close
    let expectFirst = false;
    value();
    if (stack.length > 0) expectFirst = true;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      ws();
      if (expectFirst) {
        expectFirst = false;
        if (text[i] === (top === '{' ? '}' : ']')) {
          i++;
          stack.pop();
          continue;
        }
      } else if (text[i] === ',') {
        i++;
        ws();
      } else if (text[i] === (top === '{' ? '}' : ']')) {
        i++;
        stack.pop();
        continue;
      } else throw new Fail(i);
      if (top === '{') {
        if (text[i] !== '"') throw new Fail(i);
        string();
        ws();
        if (text[i] !== ':') throw new Fail(i);
        i++;
      }
      const depth = stack.length;
      value();
      if (stack.length > depth) expectFirst = true;
    }
    ws();
    return i < n ? i : undefined;
  } catch (e) {
    if (e instanceof Fail) return Math.min(e.at, n);
    throw e;
  }
}
