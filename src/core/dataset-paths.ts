/**
 * Path and file helpers both dataset checks share: the detection one (`dataset.ts`, COCO layout)
 * and the classification one (`classification-dataset.ts`, ImageNet-style folders).
 *
 * - what a path is, from stat only (never opened: a FIFO must not block), for one-line errors,
 *   and the check that a dataset root is a directory;
 * - `--data demo|<dir>` (resolveDemoOrDir): `demo` is the task's generated set, made (or found
 *   intact) through the bridge under the demo datasets' cache folder ($MKEY_CACHE_DIR, else
 *   <package>/.cache, checked first), then checked like any folder; anything else is a directory,
 *   resolved from the working directory and checked;
 * - the first bytes of an image file and the container they name (JPEG, PNG, ...).
 *
 * Each check keeps its own messages; what differs between them is passed in.
 */
import { closeSync, constants, lstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { callWithoutModels } from '../python/entries.js';
import { BadInputError, abbreviate } from '../utils/errors.js';
import { logger } from '../utils/logger.js';
import { packageRoot } from '../utils/paths.js';

/**
 * Image headers read per split. Sizes come from stat (metadata only) and are checked for every
 * image; reading a header means opening each file and pulling a block from disk, which for COCO
 * train's 118k images (often on a network file system) can take minutes. An even sample of 2000
 * (0.4 s from a cold local disk) still finds a systematically broken set: Git LFS pointers, HTML
 * error pages saved by a failed download. COCO val's 5000 are sampled too.
 */
export const HEADER_SAMPLE = 2000;
/**
 * The images whose headers are read, of `images`: all of them up to HEADER_SAMPLE, else an even
 * sample of HEADER_SAMPLE; `checked` says which in a message (`6 images`, `2000 images checked
 * (an even sample of 118287)`).
 */
export function headerSample<T>(images: readonly T[]): { sample: T[]; checked: string } {
  const n = images.length;
  if (n <= HEADER_SAMPLE) return { sample: [...images], checked: `${n} images` };
  return {
    sample: Array.from({ length: HEADER_SAMPLE }, (_, k) => images[Math.floor((k * n) / HEADER_SAMPLE)]!),
    checked: `${HEADER_SAMPLE} images checked (an even sample of ${n})`,
  };
}
/** How many offending entries a message names. */
export const FIRST_SHOWN = 3;
/**
 * Paths in messages are shortened only past this: real paths stay whole (they cannot exceed
 * PATH_MAX, 4096, but rarely pass 300), a 100 KB `--data` value typed by mistake does not.
 */
const PATH_SHOWN = 300;
export const shownPath = (p: string): string => abbreviate(p, PATH_SHOWN);

/** `EACCES: permission denied` without the path Node appends (the message names it already). */
export function errnoText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/, \w+ '.*'$/s, '');
}

/** A `--data` directory as typed: absolute as given, else from the working directory. */
export function resolveDataDir(value: string): string {
  return isAbsolute(value) ? resolve(value) : resolve(process.cwd(), value);
}

/** What a path is, for messages and checks; `size` in bytes. */
export interface PathInfo {
  kind: 'file' | 'dir' | 'other';
  /** "a regular file", "a directory", "a FIFO", "a socket", "a broken symbolic link", ... */
  what: string;
  size: number;
}

export function describeStats(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file or directory';
}

/** errno codes that mean "nothing usable at this path" (a file on the way gives ENOTDIR). */
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG']);

/**
 * What is at `path`, following symbolic links (a linked dataset is fine), without opening it:
 * undefined when nothing is there. Opening is what hangs on a FIFO, so every path the tool reads
 * goes through this first. Other errors (EACCES, EIO) end in one line naming `label`.
 */
export function describePath(path: string, label: string = shownPath(path)): PathInfo | undefined {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { kind: 'other', what: 'a symbolic link loop', size: 0 };
    if (code === 'ENOENT') {
      // stat follows links; lstat tells a dangling link from nothing at all
      try {
        if (lstatSync(path).isSymbolicLink()) return { kind: 'other', what: 'a broken symbolic link', size: 0 };
      } catch {
        // nothing there
      }
      return undefined;
    }
    if (code !== undefined && MISSING_CODES.has(code)) return undefined;
    throw new BadInputError(`cannot access ${label}: ${errnoText(err)}`);
  }
  return { kind: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other', what: describeStats(st), size: st.size };
}

/** The message (and hint) when nothing is at a dataset root. */
export interface MissingRoot {
  message: string;
  hint?: string;
}

/**
 * A dataset root must be a directory: `missing` when nothing is there (its hint, else
 * `layoutHint`), else one line naming what is there instead of the `expected` layout.
 */
export function checkDatasetRoot(root: string, missing: MissingRoot, layoutHint: string, expected: string): void {
  const info = describePath(root);
  if (info === undefined) throw new BadInputError(missing.message, missing.hint ?? layoutHint);
  if (info.kind !== 'dir') {
    throw new BadInputError(`dataset path is not a directory: ${shownPath(root)} (it is ${info.what}; expected ${expected})`);
  }
}

/** Where a demo dataset is cached (default: $MKEY_CACHE_DIR, else <package>/.cache). */
export interface DemoCacheOptions {
  cacheDir?: string;
}

/** The cache folder for generated data. */
export function defaultCacheDir(): string {
  const env = process.env.MKEY_CACHE_DIR;
  return env && env.trim() !== '' ? resolve(env) : join(packageRoot, '.cache');
}

/** A task's demo set: the bridge entry that generates it, its folder under the cache, its name in messages. */
export interface DemoSet {
  readonly entry: 'data.ensure_demo' | 'data.ensure_demo_cls';
  readonly dirname: string;
  readonly what: string;
}

/**
 * Where `demo` is cached (not generated, not checked): `<cache folder>/<dirname>` (the cache
 * folder: `opts.cacheDir` when given, else defaultCacheDir()), checked with checkCacheDir before
 * the Python side generates it.
 */
export function demoRoot(demo: DemoSet, opts: DemoCacheOptions): string {
  const dir = opts.cacheDir ? resolve(opts.cacheDir) : defaultCacheDir();
  const root = join(dir, demo.dirname);
  checkCacheDir(dir, root, !opts.cacheDir && !!process.env.MKEY_CACHE_DIR?.trim() ? 'MKEY_CACHE_DIR' : 'cache folder', demo.what);
  return root;
}

/** A task's dataset check: the summary of the dataset at `root` (absolute), or one error (`missing` when nothing is there). */
export type DatasetCheck<T> = (root: string, missing: MissingRoot) => T | Promise<T>;

/**
 * `value` (trimmed, not empty) as the task's checked dataset: `demo` (with whether this call
 * generated it) or a directory (`missingDir(root)`: the message when nothing is there). Each
 * check keeps its own words: the task passes them in.
 */
export async function resolveDemoOrDir<T extends object>(
  value: string,
  opts: DemoCacheOptions,
  demo: DemoSet,
  check: DatasetCheck<T>,
  missingDir: (root: string) => MissingRoot,
): Promise<(T & { kind: 'demo'; generated: boolean }) | (T & { kind: 'dir' })> {
  if (value === 'demo') {
    const made = await ensureDemoDataset(demo, demoRoot(demo, opts));
    return { kind: 'demo', ...(await check(made.root, { message: `${demo.what} was not generated at ${made.root}` })), generated: made.generated };
  }
  const root = resolveDataDir(value);
  return { kind: 'dir', ...(await check(root, missingDir(root))) };
}

/**
 * Generates `demo` at `root` through its entry (in a Python process without the models), or finds
 * it there intact: where it is and whether this call made it. A cache regenerated for a reason the
 * Python side names (another version, seed or spec, a changed file) is said once on stderr; a first
 * generation is not.
 */
async function ensureDemoDataset(demo: DemoSet, root: string): Promise<{ root: string; generated: boolean }> {
  const made = await callWithoutModels(demo.entry, { root });
  if (made.generated && made.reason && !made.reason.startsWith('no dataset at root')) {
    logger.info(`regenerated the ${demo.what} at ${made.root}: ${made.reason}`);
  }
  return { root: made.root, generated: made.generated };
}

/**
 * The demo is generated under the cache folder on first use. A file there, or on the way there,
 * would only fail inside Python with a traceback; it is named here before the bridge starts.
 */
function checkCacheDir(cacheDir: string, root: string, source: 'MKEY_CACHE_DIR' | 'cache folder', what: string): void {
  // the nearest existing path on the way to the demo folder must be a directory (the rest is created)
  for (let p = root; ; p = dirname(p)) {
    const info = describePath(p);
    if (info !== undefined) {
      if (info.kind === 'dir') return;
      if (p === cacheDir) {
        throw new BadInputError(`${source} ${shownPath(cacheDir)} is ${info.what}, not a directory (the ${what} is cached there)`);
      }
      if (p === root) {
        throw new BadInputError(
          `${shownPath(root)} is ${info.what}, not a directory (the ${what} is cached there, under ${source} ${shownPath(cacheDir)})`,
        );
      }
      throw new BadInputError(`${source} ${shownPath(cacheDir)}: ${shownPath(p)} is ${info.what}, not a directory`);
    }
    if (dirname(p) === p) return;
  }
}

/**
 * The first 32 bytes of the file at `path` (fewer for a shorter file), or why it cannot be read
 * (`cannot be read: ...`). Opened non-blocking, so that a FIFO swapped in after the stat cannot block.
 */
export function readImageHead(path: string): Buffer | string {
  const buf = Buffer.alloc(32);
  let got: number;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      got = readSync(fd, buf, 0, buf.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    return `cannot be read: ${errnoText(err)}`;
  }
  return buf.subarray(0, got);
}

/**
 * The image container the first bytes of a file name (what OpenCV, the decoder of MMDetection and
 * mmpretrain, reads: `pnm` is PBM/PGM/PPM P1..P6), `git-lfs` for a Git LFS pointer, undefined for
 * anything else (an empty file included).
 */
export function imageHeaderFormat(head: Buffer): 'jpeg' | 'png' | 'bmp' | 'tiff' | 'webp' | 'pnm' | 'git-lfs' | undefined {
  const starts = (...bytes: number[]) => bytes.every((b, k) => head[k] === b);
  const ascii = (from: number, text: string) => head.subarray(from, from + text.length).toString('latin1') === text;
  if (starts(0xff, 0xd8, 0xff)) return 'jpeg';
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (ascii(0, 'BM')) return 'bmp';
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return 'tiff';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (head[0] === 0x50 && head[1] !== undefined && head[1] >= 0x31 && head[1] <= 0x36 && /\s/.test(String.fromCharCode(head[2] ?? 0))) {
    return 'pnm';
  }
  if (ascii(0, 'version https://git-lfs')) return 'git-lfs';
  return undefined;
}

/** The first 8 bytes for a message: `89 50 4e 47 0d 0a 1a 0a ".PNG...."`. */
export function firstBytesText(head: Buffer): string {
  const first = head.subarray(0, 8);
  const hex = [...first].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = [...first].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  return `${hex} ${JSON.stringify(text)}`;
}
