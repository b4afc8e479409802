/**
 * Bad data and bad paths are refused before anything is written or launched: the real CLI
 * (`config --out` and `train --work-dir`) on small COCO-layout folders, each broken one way.
 * Every refusal is exit code 2 and exactly one `error: ...` line on stderr, no traceback. Commands
 * run with a timeout so a regression that blocks (a FIFO opened for reading) fails instead of
 * hanging the suite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';

// a real 1x1 PNG (the checks read headers and sizes, never pixels)
const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const JPEG_HEAD = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01]);
/** Ample for one CLI call on a busy 2-core machine; a blocked read never finishes. */
const CLI_TIMEOUT_MS = 60_000;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-dsval-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Coco = {
  images: Record<string, unknown>[];
  annotations: Record<string, unknown>[];
  categories: Record<string, unknown>[];
};
type Split = 'train2017' | 'val2017';

let counter = 0;
const name = (i: number) => `${String(i).padStart(12, '0')}.png`;

/**
 * A valid COCO-layout dataset: `n` 64x48 images per split (1x1 PNGs on disk), one annotation per
 * image alternating the two categories. `edit` changes a split's JSON before it is written.
 */
function makeCoco(opts: { train?: number; val?: number; edit?: (split: Split, c: Coco) => void } = {}): string {
  const root = join(tmp, `ds-${++counter}`);
  mkdirSync(join(root, 'annotations'), { recursive: true });
  for (const [split, n] of [
    ['train2017', opts.train ?? 3],
    ['val2017', opts.val ?? 2],
  ] as const) {
    mkdirSync(join(root, split), { recursive: true });
    const c: Coco = {
      images: [],
      annotations: [],
      categories: [
        { id: 1, name: 'cat' },
        { id: 2, name: 'dog' },
      ],
    };
    for (let i = 1; i <= n; i++) {
      writeFileSync(join(root, split, name(i)), PNG_1X1);
      c.images.push({ id: i, file_name: name(i), width: 64, height: 48 });
      c.annotations.push({
        id: 100 + i,
        image_id: i,
        category_id: 2 - (i % 2),
        bbox: [4, 4, 20, 10],
        area: 200,
        iscrowd: 0,
        segmentation: [[4, 4, 24, 4, 24, 14, 4, 14]],
      });
    }
    opts.edit?.(split, c);
    writeFileSync(annPath(root, split), JSON.stringify(c));
  }
  return root;
}
const annPath = (root: string, split: Split) => join(root, 'annotations', `instances_${split}.json`);

/** Runs the CLI expecting a refusal: exit 2, one `error:` line, no traceback. Returns the message. */
async function refused(args: string[], env: Record<string, string> = {}): Promise<string> {
  const res = await runCli(args, { timeout: CLI_TIMEOUT_MS, env });
  expect(res.exitCode, `stderr: ${res.stderr.slice(0, 2000)}`).toBe(2);
  const lines = res.stderr.trim().split('\n');
  expect(lines, res.stderr.slice(0, 2000)).toHaveLength(1);
  expect(lines[0]!.startsWith('error: ')).toBe(true);
  expect(res.stderr).not.toContain('Traceback');
  return lines[0]!.slice('error: '.length);
}

/** `config --data <root> --out <file>`: refused, and the config file is not written. */
async function configRefused(root: string, extra: string[] = [], env: Record<string, string> = {}): Promise<string> {
  const out = join(tmp, `out-${++counter}`, 'config.py');
  const msg = await refused(['config', '--data', root, '--out', out, ...extra], env);
  expect(existsSync(out)).toBe(false);
  return msg;
}

/** `train --data <root> --work-dir <dir>`: refused, and nothing is written into the work dir. */
async function trainRefused(root: string, extra: string[] = []): Promise<string> {
  const wd = join(tmp, `wd-${++counter}`);
  const msg = await refused(['train', '--data', root, '--work-dir', wd, '--charts', '2', '--img-scale', '64x64', ...extra]);
  expect(existsSync(wd) ? readdirSync(wd) : []).toEqual([]);
  return msg;
}

const mkfifo = (p: string) => execFileSync('mkfifo', [p]);

describe('paths are stat-ed before they are opened', () => {
  it('a FIFO as the train annotation file is refused at once (train)', async () => {
    const root = makeCoco();
    unlinkSync(annPath(root, 'train2017'));
    mkfifo(annPath(root, 'train2017'));
    expect(await trainRefused(root)).toBe(
      `annotation file ${annPath(root, 'train2017')} is a FIFO, not a regular file (expected the COCO instances JSON annotations/instances_train2017.json)`,
    );
  });

  it('a FIFO as the val annotation file is refused at once (config)', async () => {
    const root = makeCoco();
    unlinkSync(annPath(root, 'val2017'));
    mkfifo(annPath(root, 'val2017'));
    expect(await configRefused(root)).toBe(
      `annotation file ${annPath(root, 'val2017')} is a FIFO, not a regular file (expected the COCO instances JSON annotations/instances_val2017.json)`,
    );
  });

  it('a directory as an annotation file', async () => {
    const root = makeCoco();
    unlinkSync(annPath(root, 'val2017'));
    mkdirSync(annPath(root, 'val2017'));
    expect(await configRefused(root)).toBe(
      `annotation file ${annPath(root, 'val2017')} is a directory, not a regular file (expected the COCO instances JSON annotations/instances_val2017.json)`,
    );
  });

  it('a FIFO as the dataset root', async () => {
    const fifo = join(tmp, 'root-fifo');
    mkfifo(fifo);
    expect(await configRefused(fifo)).toBe(`dataset path is not a directory: ${fifo} (it is a FIFO; expected a COCO-layout directory)`);
  });

  it('a file as an image folder', async () => {
    const root = makeCoco();
    rmSync(join(root, 'val2017'), { recursive: true });
    writeFileSync(join(root, 'val2017'), 'x');
    expect(await configRefused(root)).toBe(
      `image folder ${join(root, 'val2017')} is a regular file, not a directory (expected the 2 images listed in ${annPath(root, 'val2017')})`,
    );
  });

  it('a FIFO and a directory among the listed images (train)', async () => {
    const root = makeCoco({ train: 4 });
    unlinkSync(join(root, 'train2017', name(2)));
    mkfifo(join(root, 'train2017', name(2)));
    unlinkSync(join(root, 'train2017', name(4)));
    mkdirSync(join(root, 'train2017', name(4)));
    expect(await trainRefused(root)).toBe(
      `2 of 4 images listed in ${annPath(root, 'train2017')} are not regular files under ${join(root, 'train2017')} (first: ${name(2)} is a FIFO)`,
    );
  });

  it('--pretrained naming a directory without a checkpoint or a FIFO (train and config), or an empty file', async () => {
    const root = makeCoco();
    // a directory is read as a run (of `mkey-det pretrain`): without a checkpoint in it, refused
    const dir = join(tmp, 'ckpt-dir');
    mkdirSync(dir);
    expect(await trainRefused(root, ['--pretrained', dir])).toBe(
      `--pretrained ${JSON.stringify(dir)} is a folder without a checkpoint (no best_*.pth, no last_checkpoint; expected a .pth file or a finished pretrain run)`,
    );
    const fifo = join(tmp, 'ckpt.pth');
    mkfifo(fifo);
    expect(await trainRefused(root, ['--pretrained', fifo])).toBe(
      `--pretrained ${JSON.stringify(fifo)} is a FIFO, not a checkpoint file or run directory (expected a local .pth file)`,
    );
    // config does not require the file to exist (it may be written for another machine), but a
    // directory or FIFO here is a mistake here
    expect(await configRefused(root, ['--pretrained', fifo])).toContain('is a FIFO, not a checkpoint file');
    const empty = join(tmp, 'empty.pth');
    writeFileSync(empty, '');
    expect(await trainRefused(root, ['--pretrained', empty])).toBe(
      `--pretrained ${JSON.stringify(empty)} is empty (0 bytes; expected a local .pth checkpoint)`,
    );
  });

  it('MKEY_CACHE_DIR naming a file (or a path through one), for --data demo', async () => {
    const file = join(tmp, 'cache-file');
    writeFileSync(file, 'x');
    expect(await configRefused('demo', [], { MKEY_CACHE_DIR: file })).toBe(
      `MKEY_CACHE_DIR ${file} is a regular file, not a directory (the demo dataset is cached there)`,
    );
    expect(await configRefused('demo', [], { MKEY_CACHE_DIR: join(file, 'sub') })).toBe(
      `MKEY_CACHE_DIR ${join(file, 'sub')}: ${file} is a regular file, not a directory`,
    );
    const cache = join(tmp, 'cache-dir');
    mkdirSync(cache);
    mkfifo(join(cache, 'demo-v2'));
    expect(await configRefused('demo', [], { MKEY_CACHE_DIR: cache })).toBe(
      `${join(cache, 'demo-v2')} is a FIFO, not a directory (the demo dataset is cached there, under MKEY_CACHE_DIR ${cache})`,
    );
  });
});

describe('annotation content', () => {
  it('zero images', async () => {
    const root = makeCoco({ edit: (s, c) => s === 'val2017' && ((c.images = []), (c.annotations = [])) });
    expect(await configRefused(root)).toBe(`${annPath(root, 'val2017')} lists no images (expected at least one entry in "images")`);
  });

  it('no annotations at all', async () => {
    const root = makeCoco({ edit: (s, c) => s === 'train2017' && (c.annotations = []) });
    expect(await trainRefused(root)).toBe(
      `${annPath(root, 'train2017')} has no annotations (expected objects in "annotations" naming a listed image_id and category_id)`,
    );
  });

  it('no usable annotations: every one names an unknown image or category', async () => {
    const root = makeCoco({
      edit: (s, c) => {
        if (s !== 'train2017') return;
        c.annotations.forEach((a, k) => (k === 0 ? (a.category_id = 7) : (a.image_id = 900 + k)));
      },
    });
    expect(await configRefused(root)).toBe(
      `${annPath(root, 'train2017')} has no usable annotations: none of its 3 names both a listed image and a listed category (2 name an unknown image_id, 1 an unknown category_id; first: annotation 102 has "image_id" 901)`,
    );
  });

  it('annotations naming unknown images, then unknown categories', async () => {
    const root = makeCoco({
      train: 5,
      edit: (s, c) => {
        if (s !== 'train2017') return;
        c.annotations[1]!.image_id = 42;
        c.annotations[3]!.image_id = '4';
      },
    });
    expect(await configRefused(root)).toBe(
      `${annPath(root, 'train2017')}: 2 of 5 annotations name an image_id not listed in "images" (first annotation ids: 102, 104; annotation 102 has "image_id" 42)`,
    );
    const root2 = makeCoco({ edit: (s, c) => s === 'val2017' && (c.annotations[0]!.category_id = 91) });
    expect(await configRefused(root2)).toBe(
      `${annPath(root2, 'val2017')}: 1 of 2 annotations name a category_id not listed in "categories" (first annotation ids: 101; annotation 101 has "category_id" 91)`,
    );
  });

  it('a category no annotation uses is named in a warning, in train and in val', async () => {
    const root = makeCoco({
      edit: (s, c) => {
        c.categories.push({ id: 3, name: 'bird' });
        if (s === 'train2017') c.annotations.forEach((a) => (a.category_id = 1));
      },
    });
    const sub = await runCli(['config', '--data', root, '--out', join(tmp, `out-${++counter}.py`)], { timeout: CLI_TIMEOUT_MS });
    expect(sub.exitCode).toBe(0);
    expect(sub.stderr).toContain(
      `warning: ${annPath(root, 'train2017')}: 2 of 3 categories have no annotation (first: 2 "dog", 3 "bird"); the model gets classes it never sees (drop them from "categories" in both files if that is a mistake)`,
    );
    const ok = makeCoco({ edit: (s, c) => s === 'val2017' && c.annotations.forEach((a) => (a.category_id = 2)) });
    const out = join(tmp, `out-${++counter}.py`);
    const res = await runCli(['config', '--data', ok, '--out', out], { timeout: CLI_TIMEOUT_MS });
    expect(res.exitCode).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(res.stderr).toContain(
      `warning: ${annPath(ok, 'val2017')}: 1 of 2 categories have no annotation (first: 1 "cat"); not an error for the val set, but COCO evaluation skips them, so their AP is not measured`,
    );
  });

  it('boxes: count and first ids of non-numeric, negative, non-finite, absurd and outside ones', async () => {
    const root = makeCoco({
      train: 8,
      edit: (s, c) => {
        if (s !== 'train2017') return;
        const boxes: unknown[] = [
          [4, 4, -3, 10], // id 101: negative width
          [4, 4, 20, 10],
          ['4', 4, 20, 10], // id 103: a string
          [4, 4, 20, 10],
          [0, 0, 200_000, 10], // id 105: absurd
          [500, 4, 20, 10], // id 106: far right of a 64x48 image
          [4, 4, 20], // id 107: three values
          [4, 4, 20, 10],
        ];
        c.annotations.forEach((a, k) => (a.bbox = boxes[k]));
      },
    });
    // JSON cannot spell Infinity; a number too big for a double parses to it
    const text = readFileSync(annPath(root, 'train2017'), 'utf8').replace('"bbox":[4,4,20,10]', '"bbox":[4,4,1e999,10]');
    writeFileSync(annPath(root, 'train2017'), text);
    expect(await trainRefused(root)).toBe(
      `${annPath(root, 'train2017')}: 6 of 8 annotations have an invalid "bbox" (first annotation ids: 101, 102, 103; annotation 101: "bbox" [4,4,-3,10] has a width or height <= 0)`,
    );
    const why = async (bbox: unknown) => {
      const r = makeCoco({ edit: (s, c) => s === 'val2017' && (c.annotations[1]!.bbox = bbox) });
      return configRefused(r);
    };
    expect(await why([4, 4, 'x', 10])).toContain('annotation 102: "bbox" [4,4,"x",10] has a non-numeric value)');
    expect(await why([0, 0, 200_000, 10])).toContain('annotation 102: "bbox" [0,0,200000,10] is larger than 100000 px)');
    expect(await why([500, 4, 20, 10])).toContain('annotation 102: "bbox" [500,4,20,10] lies outside its 64x48 image by more than the 5x4 px margin)');
    expect(await why([-40, 4, 20, 10])).toContain('lies outside its 64x48 image');
    expect(await why(null)).toContain('annotation 102: "bbox" null is not [x, y, width, height])');
    // a box that overshoots by rounding is fine: [60, 40, 5, 9] ends at 65x49 in a 64x48 image
    const fine = makeCoco({ edit: (s, c) => s === 'val2017' && (c.annotations[1]!.bbox = [60, 40, 5, 9]) });
    const res = await runCli(['config', '--data', fine, '--out', join(tmp, `out-${++counter}.py`)], { timeout: CLI_TIMEOUT_MS });
    expect(res.exitCode, res.stderr).toBe(0);
  });

  it('annotations without area or segmentation (Mask R-CNN needs a mask)', async () => {
    const root = makeCoco({
      edit: (s, c) => {
        if (s !== 'val2017') return;
        delete c.annotations[0]!.segmentation;
        c.annotations[1]!.area = 'big';
      },
    });
    expect(await configRefused(root)).toBe(
      `${annPath(root, 'val2017')}: 2 of 2 annotations lack a numeric "area" or a non-empty "segmentation", which Mask R-CNN needs for every object (first annotation ids: 101, 102; annotation 101 has no "segmentation")`,
    );
  });

  it('images without width/height, and image ids listed twice', async () => {
    const root = makeCoco({ edit: (s, c) => s === 'train2017' && (delete c.images[1]!.width, (c.images[2]!.height = -48)) });
    expect(await configRefused(root)).toBe(
      `${annPath(root, 'train2017')}: 2 of 3 images lack a valid "width" and "height" (numbers from 1 to 100000; MMDetection reads both) (first: images[1] "${name(2)}" has no "width", "height" 48)`,
    );
    const dup = makeCoco({ edit: (s, c) => s === 'train2017' && (c.images[2]!.id = 1) });
    expect(await configRefused(dup)).toBe(
      `${annPath(dup, 'train2017')}: image id 1 appears twice (images[0] and images[2]); expected unique ids`,
    );
  });

  it('image ids near 2^62 are compared exactly (two of them differ in the last digit), repeated annotation ids are refused', async () => {
    const big = makeCoco({
      edit: (s, c) => {
        c.images.forEach((img, i) => (img.id = `BIG${i}`));
        c.annotations.forEach((a, i) => (a.image_id = `BIG${i}`));
      },
    });
    for (const split of ['train2017', 'val2017'] as const) {
      // 4611686018427387904 and ...905 are one JavaScript number
      const text = readFileSync(annPath(big, split), 'utf8').replace(/"BIG(\d)"/g, (_, d: string) => String(4611686018427387904n + BigInt(d)));
      writeFileSync(annPath(big, split), text);
    }
    const out = join(tmp, `out-${++counter}`, 'config.py');
    const ok = await runCli(['config', '--data', big, '--out', out], { timeout: CLI_TIMEOUT_MS });
    expect(ok.stderr).not.toContain('appears twice');
    expect(ok.exitCode).toBe(0);
    const dupAnn = makeCoco({ edit: (s, c) => s === 'train2017' && (c.annotations[2]!.id = 101) });
    expect(await configRefused(dupAnn)).toBe(
      `${annPath(dupAnn, 'train2017')}: annotation id 101 appears twice (annotations[0] and annotations[2]); expected unique ids`,
    );
  });

  it('file names that climb out of the image folder or are absolute', async () => {
    const root = makeCoco({
      edit: (s, c) => {
        if (s !== 'train2017') return;
        c.images[1]!.file_name = '../secret.png';
        c.images[2]!.file_name = '/etc/passwd';
      },
    });
    writeFileSync(join(root, 'secret.png'), PNG_1X1);
    expect(await trainRefused(root)).toBe(
      `${annPath(root, 'train2017')}: 2 of 3 image file names point outside ${join(root, 'train2017')} (first: images[1] "../secret.png" leaves the image folder); expected names relative to that folder`,
    );
    const sneaky = makeCoco({ edit: (s, c) => s === 'val2017' && (c.images[0]!.file_name = 'sub/../../x.png') });
    expect(await configRefused(sneaky)).toContain('(first: images[0] "sub/../../x.png" leaves the image folder)');
  });
});

describe('images on disk', () => {
  it('zero-byte images', async () => {
    const root = makeCoco({ train: 4 });
    writeFileSync(join(root, 'train2017', name(3)), '');
    expect(await trainRefused(root)).toBe(
      `1 of 4 images listed in ${annPath(root, 'train2017')} are empty (0 bytes) under ${join(root, 'train2017')} (first: ${name(3)})`,
    );
  });

  it('files that are not images: an HTML page and a Git LFS pointer', async () => {
    const root = makeCoco();
    writeFileSync(join(root, 'val2017', name(2)), '<!DOCTYPE html><html>404</html>');
    expect(await configRefused(root)).toBe(
      `1 of the 2 images listed in ${annPath(root, 'val2017')} are not JPEG, PNG, BMP, TIFF or WebP files (first: ${name(2)} under ${join(root, 'val2017')}, which starts with 3c 21 44 4f 43 54 59 50 "<!DOCTYP")`,
    );
    const lfs = makeCoco();
    writeFileSync(join(lfs, 'train2017', name(1)), 'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 123\n');
    expect(await configRefused(lfs)).toContain(`(first: ${name(1)} under ${join(lfs, 'train2017')}, a Git LFS pointer, not the image (run git lfs pull))`);
    // JPEG headers pass
    const jpeg = makeCoco();
    writeFileSync(join(jpeg, 'val2017', name(1)), JPEG_HEAD);
    const res = await runCli(['config', '--data', jpeg, '--out', join(tmp, `out-${++counter}.py`)], { timeout: CLI_TIMEOUT_MS });
    expect(res.exitCode, res.stderr).toBe(0);
  });

  it('big sets: every size is checked, headers on an even sample', async () => {
    const n = 2100; // > HEADER_SAMPLE (2000): index k*2100/2000 is sampled, 2099 (the last) is not
    const root = makeCoco({ train: n });
    writeFileSync(join(root, 'train2017', name(n)), 'not an image');
    const out = join(tmp, `out-${++counter}.py`);
    const res = await runCli(['config', '--data', root, '--out', out], { timeout: CLI_TIMEOUT_MS });
    expect(res.exitCode, res.stderr).toBe(0);
    writeFileSync(join(root, 'train2017', name(1)), 'not an image either');
    expect(await configRefused(root)).toContain(`1 of the 2000 images checked (an even sample of ${n}) listed in ${annPath(root, 'train2017')}`);
    writeFileSync(join(root, 'train2017', name(n)), '');
    expect(await configRefused(root)).toContain(`1 of ${n} images listed in ${annPath(root, 'train2017')} are empty (0 bytes)`);
  });
});

describe('options and long values', () => {
  it.each([
    ['0x0', 'each side must be 32 to 8192 pixels (accepted: 32x32 to 8192x8192), e.g. 512x512'],
    ['16x512', 'each side must be 32 to 8192 pixels (accepted: 32x32 to 8192x8192), e.g. 512x512'],
    ['512x9000', 'each side must be 32 to 8192 pixels (accepted: 32x32 to 8192x8192), e.g. 512x512'],
    ['512', 'expected WIDTHxHEIGHT in pixels, each side 32 to 8192 pixels, e.g. 512x512'],
  ])('--img-scale %s is refused with the accepted range', async (value, message) => {
    const root = makeCoco();
    expect(await configRefused(root, ['--img-scale', value])).toBe(`invalid --img-scale ${JSON.stringify(value)}: ${message}`);
  });

  it('a 100 KB option value is shortened in the message', async () => {
    const long = 'x'.repeat(100_000);
    const msg = await configRefused(makeCoco(), ['--backbone', long]);
    expect(msg).toBe(`invalid --backbone "${'x'.repeat(80)}…" (100000 characters): accepted: swin-t, swin-t-spatialk, swin-t-kua, swin-t-simplek, swin-t-vanillak`);
    // a path: kept whole up to 300 characters (real paths are long), shortened past that
    const res = await runCli(['config', '--data', join(tmp, long), '--out', join(tmp, 'never.py')], { timeout: CLI_TIMEOUT_MS });
    expect(res.exitCode).toBe(2);
    const first = res.stderr.split('\n')[0]!;
    expect(first.length).toBeLessThan(500);
    expect(first).toBe(
      `error: dataset directory not found: ${join(tmp, long).slice(0, 300)}… (${join(tmp, long).length} characters) (expected coco, demo or a COCO-layout directory)`,
    );
  });

  it('a 100 KB value inside an annotation file is shortened too', async () => {
    const root = makeCoco({ edit: (s, c) => s === 'val2017' && (c.images[0]!.file_name = `../${'y'.repeat(100_000)}`) });
    const msg = await configRefused(root);
    expect(msg.length).toBeLessThan(600);
    expect(msg).toContain(`(first: images[0] "../${'y'.repeat(77)}…" (100003 characters) leaves the image folder)`);
  });
});
