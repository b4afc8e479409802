/**
 * `--data demo|<dir>` for classification: ImageNet-style folders (train/<class>/, val/<class>/)
 * checked with node:fs before mmpretrain sees them, each bad layout one BadInputError line naming
 * the path. The demo set is generated through the bridge when its entry is registered.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEMO_CLS_BRIDGE_ENTRY,
  DEMO_CLS_DATASET_DIRNAME,
  compareCodePoints,
  resolveClassificationData,
} from '../src/core/classification-dataset.js';
import { execa } from 'execa';
import { badInputMessage, expectCacheFolderRefusals } from './helpers/bad-input.js';
import { testPython } from './helpers/cli.js';

// a real 1x1 PNG (the checks read headers, never pixels)
const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const JPEG_HEAD = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01]);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-clsdata-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const savedCache = process.env.MKEY_CACHE_DIR;
afterEach(() => {
  if (savedCache === undefined) delete process.env.MKEY_CACHE_DIR;
  else process.env.MKEY_CACHE_DIR = savedCache;
  vi.restoreAllMocks();
});

let counter = 0;
/** An ImageNet-style folder: `classes` in both splits, `train`/`val` PNGs per class. */
function makeDataset(opts: { classes?: string[]; train?: number; val?: number } = {}): string {
  const root = join(tmp, `ds-${++counter}`);
  for (const [split, n] of [
    ['train', opts.train ?? 3],
    ['val', opts.val ?? 1],
  ] as const) {
    for (const c of opts.classes ?? ['cat', 'dog']) {
      mkdirSync(join(root, split, c), { recursive: true });
      for (let i = 0; i < n; i++) writeFileSync(join(root, split, c, `${i}.png`), PNG_1X1);
    }
  }
  return root;
}

/** Resolves `spec` expecting a BadInputError; returns its one-line message. */
function badInput(spec: string, opts = {}): Promise<string> {
  return badInputMessage(resolveClassificationData(spec, opts));
}

/** Captures what the logger writes to stderr while `fn` runs. */
async function stderrOf<T>(fn: () => Promise<T>): Promise<[T, string]> {
  const chunks: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  const value = await fn();
  vi.restoreAllMocks();
  return [value, chunks.join('')];
}

describe('resolveClassificationData: directories', () => {
  it('resolves a valid folder (relative path) to absolute paths, classes in mmpretrain order and counts', async () => {
    // Python sorts by code point: upper case before lower case
    const root = makeDataset({ classes: ['dog', 'Zebra', 'cat'], train: 3, val: 2 });
    // nested folders are read (recursively), hidden files and other extensions are not, a JPEG is fine
    mkdirSync(join(root, 'train', 'cat', 'more'));
    writeFileSync(join(root, 'train', 'cat', 'more', 'x.JPG'), JPEG_HEAD);
    writeFileSync(join(root, 'train', 'cat', 'notes.txt'), 'not an image');
    writeFileSync(join(root, 'train', 'cat', '.hidden.png'), 'not an image either');
    writeFileSync(join(root, 'train', 'README.md'), 'files next to the class folders are ignored');
    const ds = await resolveClassificationData(relative(process.cwd(), root));
    expect(ds).toEqual({
      kind: 'dir',
      root,
      trainDir: join(root, 'train'),
      valDir: join(root, 'val'),
      classes: ['Zebra', 'cat', 'dog'],
      counts: { train: 10, val: 6, trainPerClass: [3, 4, 3], valPerClass: [2, 2, 2] },
    });
  });

  it('follows symbolic links to class folders and images', async () => {
    const root = makeDataset();
    const elsewhere = join(tmp, `linked-${counter}`);
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'a.png'), PNG_1X1);
    symlinkSync(elsewhere, join(root, 'train', 'bird'));
    mkdirSync(join(root, 'val', 'bird'));
    symlinkSync(join(elsewhere, 'a.png'), join(root, 'val', 'bird', 'a.png'));
    const ds = await resolveClassificationData(root);
    expect(ds.classes).toEqual(['bird', 'cat', 'dog']);
    expect(ds.counts.trainPerClass).toEqual([1, 3, 3]);
    expect(ds.counts.valPerClass).toEqual([1, 1, 1]);
  });

  it('orders names as Python sorts them (code points, not UTF-16 units)', () => {
    const names = ['\u{1F600}', '\uFF21', 'b', 'B'];
    expect([...names].sort(compareCodePoints)).toEqual(['B', 'b', '\uFF21', '\u{1F600}']);
  });

  it('rejects an empty value, a missing directory and a file', async () => {
    expect(await badInput('  ')).toBe(
      'invalid --data "": expected demo or an ImageNet-style directory with train/<class>/ and val/<class>/ image folders',
    );
    const missing = join(tmp, 'nope');
    expect(await badInput(missing)).toBe(
      `classification dataset directory not found: ${missing} (expected demo or an ImageNet-style directory with train/<class>/ and val/<class>/ image folders)`,
    );
    const file = join(tmp, 'file.txt');
    writeFileSync(file, 'x');
    expect(await badInput(file)).toBe(
      `dataset path is not a directory: ${file} (it is a regular file; expected demo or an ImageNet-style directory with train/<class>/ and val/<class>/ image folders)`,
    );
  });

  it('names a missing split folder, or one that is a file', async () => {
    const root = makeDataset();
    rmSync(join(root, 'val'), { recursive: true });
    expect(await badInput(root)).toBe(
      `missing val/ folder under ${root} (expected val/<class>/ image folders; accepted: demo or an ImageNet-style directory with train/<class>/ and val/<class>/ image folders)`,
    );
    writeFileSync(join(root, 'val'), 'x');
    expect(await badInput(root)).toBe(`${join(root, 'val')} is a regular file, not a directory (expected val/<class>/ image folders under ${root})`);
    const root2 = makeDataset();
    rmSync(join(root2, 'train'), { recursive: true });
    expect(await badInput(root2)).toContain(`missing train/ folder under ${root2}`);
  });

  it('needs at least two class folders, and says when images lie directly in the split folder', async () => {
    const root = makeDataset({ classes: ['only'] });
    expect(await badInput(root)).toBe(
      `${join(root, 'train')} has only 1 class folder ("only"); expected at least 2 sub-folders, one per class, holding its images (train/<class>/*.jpg)`,
    );
    const flat = join(tmp, 'flat');
    for (const split of ['train', 'val']) {
      mkdirSync(join(flat, split), { recursive: true });
      writeFileSync(join(flat, split, 'a.png'), PNG_1X1);
      writeFileSync(join(flat, split, 'b.jpg'), JPEG_HEAD);
    }
    expect(await badInput(flat)).toBe(
      `${join(flat, 'train')} has no class folder and 2 image files directly inside; expected at least 2 sub-folders, one per class, holding its images (train/<class>/*.jpg)`,
    );
  });

  it('refuses hidden sub-folders, which mmpretrain would take for classes', async () => {
    const root = makeDataset();
    mkdirSync(join(root, 'val', '.ipynb_checkpoints'));
    expect(await badInput(root)).toBe(
      `${join(root, 'val')} has hidden sub-folders (".ipynb_checkpoints"), which mmpretrain would take for classes; remove them (every sub-folder of val/ is a class)`,
    );
  });

  it('needs the same class folders in train and val', async () => {
    const root = makeDataset({ classes: ['cat', 'dog', 'emu'] });
    rmSync(join(root, 'val', 'emu'), { recursive: true });
    mkdirSync(join(root, 'val', 'eel'));
    writeFileSync(join(root, 'val', 'eel', 'a.png'), PNG_1X1);
    expect(await badInput(root)).toBe(
      `class folders differ between ${join(root, 'train')} (3) and ${join(root, 'val')} (3): only in train: "emu"; only in val: "eel" (expected the same class sub-folders in both: mmpretrain numbers each split's folders on its own)`,
    );
  });

  it('needs an image in every train class, and names ignored extensions', async () => {
    const root = makeDataset({ classes: ['cat', 'dog', 'emu'] });
    rmSync(join(root, 'train', 'emu'), { recursive: true });
    mkdirSync(join(root, 'train', 'emu'));
    writeFileSync(join(root, 'train', 'emu', 'a.webp'), 'RIFF....WEBP');
    expect(await badInput(root)).toBe(
      `1 of 3 class folders under ${join(root, 'train')} hold no image (first: "emu"; mmpretrain reads .jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif files; "emu/a.webp" and other files with other extensions are ignored); every class needs training images`,
    );
  });

  it('warns about a val class without images, but refuses a val split without any', async () => {
    const root = makeDataset({ classes: ['cat', 'dog'] });
    rmSync(join(root, 'val', 'dog', '0.png'));
    const [ds, err] = await stderrOf(() => resolveClassificationData(root));
    expect(ds.counts).toEqual({ train: 6, val: 1, trainPerClass: [3, 3], valPerClass: [1, 0] });
    expect(err).toContain(`1 of 2 class folders under ${join(root, 'val')} hold no image (first: "dog"`);
    expect(err).toContain('those classes are not measured in validation');
    rmSync(join(root, 'val', 'cat', '0.png'));
    expect(await badInput(root)).toBe(
      `2 of 2 class folders under ${join(root, 'val')} hold no image (first: "cat", "dog"; mmpretrain reads .jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif files)`,
    );
  });

  it('checks image headers: text, Git LFS pointers and empty files are refused', async () => {
    const root = makeDataset();
    writeFileSync(join(root, 'train', 'dog', '1.png'), '<html>404</html>');
    writeFileSync(join(root, 'train', 'dog', '2.png'), 'version https://git-lfs.github.com/spec/v1\n');
    expect(await badInput(root)).toBe(
      `2 of the 6 images under ${join(root, 'train')} are not JPEG, PNG, BMP, TIFF, PPM/PGM or WebP files (first: "dog/1.png" starts with 3c 68 74 6d 6c 3e 34 30 "<html>40")`,
    );
    const root2 = makeDataset();
    writeFileSync(join(root2, 'val', 'cat', '0.png'), '');
    expect(await badInput(root2)).toBe(
      `1 of the 2 images under ${join(root2, 'val')} are not JPEG, PNG, BMP, TIFF, PPM/PGM or WebP files (first: "cat/0.png" is empty (0 bytes))`,
    );
    const root3 = makeDataset();
    writeFileSync(join(root3, 'val', 'cat', '0.png'), 'version https://git-lfs.github.com/spec/v1\n');
    expect(await badInput(root3)).toContain('"cat/0.png" is a Git LFS pointer, not the image (run git lfs pull)');
    // PPM and BMP headers are images
    const root4 = makeDataset();
    writeFileSync(join(root4, 'val', 'cat', 'x.ppm'), 'P6\n1 1\n255\n\0\0\0');
    writeFileSync(join(root4, 'val', 'dog', 'x.bmp'), Buffer.concat([Buffer.from('BM'), Buffer.alloc(30)]));
    expect((await resolveClassificationData(root4)).counts.val).toBe(4);
  });

  it('skips a FIFO among the images without blocking, and refuses a link cycle', { timeout: 90_000 }, async () => {
    const root = makeDataset();
    try {
      execFileSync('mkfifo', [join(root, 'train', 'cat', 'pipe.png')]);
    } catch {
      return; // no mkfifo here
    }
    expect((await resolveClassificationData(root)).counts.trainPerClass).toEqual([3, 3]);
    symlinkSync('.', join(root, 'train', 'cat', 'loop'));
    expect(await badInput(root)).toBe(
      `${join(root, 'train', 'cat', 'loop')} is a symbolic link to a folder above it, which mmpretrain would follow forever; remove the link (class folder "cat")`,
    );
  });
});

describe('resolveClassificationData: demo', () => {
  it('refuses a cache folder that is a file before starting Python', async () => {
    await expectCacheFolderRefusals((opts) => resolveClassificationData('demo', opts), tmp, DEMO_CLS_DATASET_DIRNAME, 'demo classification dataset');
  });

  it('accepts what the Python generator writes, as a plain directory too', async () => {
    const out = join(tmp, 'generated');
    const args = ['-m', 'mkey_det.data.demo_cls', '--out', out, '--image-size', '32', '--num-train-per-class', '2', '--num-val-per-class', '1'];
    const summary = JSON.parse((await execa(testPython, args)).stdout) as { classes: string[]; num_train: number; num_val: number };
    const ds = await resolveClassificationData(out);
    expect(ds.classes).toEqual(summary.classes);
    expect(ds.classes).toHaveLength(10);
    expect(ds.counts).toEqual({ train: 20, val: 10, trainPerClass: ds.classes.map(() => 2), valPerClass: ds.classes.map(() => 1) });
    expect([ds.counts.train, ds.counts.val]).toEqual([summary.num_train, summary.num_val]);
  });

  // The bridge entry is registered in python_shim/mkey_det/cli/bridge.py (ENTRIES).
  const bridgePy = join(dirname(fileURLToPath(import.meta.url)), '..', 'python_shim', 'mkey_det', 'cli', 'bridge.py');
  const registered = readFileSync(bridgePy, 'utf8').includes(`'${DEMO_CLS_BRIDGE_ENTRY}'`);

  it.skipIf(!registered)('generates the demo set once through the bridge, then reuses it (real Python)', async () => {
    const cache = join(tmp, 'cache');
    process.env.MKEY_CACHE_DIR = cache;
    const root = join(cache, DEMO_CLS_DATASET_DIRNAME);
    const classes = ['circle', 'cross', 'square', 'star', 'triangle'].flatMap((s) => [`${s}_cool`, `${s}_warm`]);
    const ds = await resolveClassificationData('demo');
    expect(ds).toEqual({
      kind: 'demo',
      root,
      trainDir: join(root, 'train'),
      valDir: join(root, 'val'),
      classes,
      counts: { train: 400, val: 100, trainPerClass: classes.map(() => 40), valPerClass: classes.map(() => 10) },
      generated: true,
    });
    // the cacheDir option wins over the environment; same folder, so it is reused
    process.env.MKEY_CACHE_DIR = join(tmp, 'elsewhere');
    expect(await resolveClassificationData('demo', { cacheDir: cache })).toEqual({ ...ds, generated: false });
  });
});
