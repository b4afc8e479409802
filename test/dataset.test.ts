import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describeJsonError, resolveDataset } from '../src/core/dataset.js';
import { badInputMessage, expectCacheFolderRefusals } from './helpers/bad-input.js';

// a real 1x1 PNG
const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-dataset-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const savedEnv = { MKEY_COCO_ROOT: process.env.MKEY_COCO_ROOT, MKEY_CACHE_DIR: process.env.MKEY_CACHE_DIR };
afterEach(() => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

let counter = 0;
/** A tiny COCO-layout dataset; categories deliberately listed out of id order. */
function makeCoco(opts: { train?: number; val?: number } = {}): string {
  const root = join(tmp, `coco-${++counter}`);
  const categories = [
    { id: 2, name: 'dog', supercategory: 'animal' },
    { id: 1, name: 'cat', supercategory: 'animal' },
  ];
  for (const [split, n] of [
    ['train2017', opts.train ?? 3],
    ['val2017', opts.val ?? 2],
  ] as const) {
    mkdirSync(join(root, split), { recursive: true });
    const images = [];
    const annotations = [];
    for (let i = 1; i <= n; i++) {
      const file_name = `${String(i).padStart(12, '0')}.png`;
      writeFileSync(join(root, split, file_name), PNG_1X1);
      images.push({ id: i, file_name, width: 1, height: 1 });
      // both categories used: a train category without annotations is refused
      annotations.push({ id: i, image_id: i, category_id: 2 - (i % 2), bbox: [0, 0, 1, 1], area: 1, iscrowd: 0, segmentation: [[0, 0, 1, 0, 1, 1]] });
    }
    writeAnn(root, split, { images, annotations, categories });
  }
  return root;
}

function writeAnn(root: string, split: string, content: unknown): void {
  mkdirSync(join(root, 'annotations'), { recursive: true });
  writeFileSync(join(root, 'annotations', `instances_${split}.json`), typeof content === 'string' ? content : JSON.stringify(content));
}

/** Resolves `spec` expecting a BadInputError; returns its one-line message. */
function badInput(spec: string, opts: { cacheDir?: string } = {}): Promise<string> {
  return badInputMessage(resolveDataset(spec, opts));
}

describe('resolveDataset: directories', () => {
  it('resolves a valid COCO-layout directory to absolute paths, classes by id and counts', async () => {
    const root = makeCoco({ train: 3, val: 2 });
    const ds = await resolveDataset(relative(process.cwd(), root));
    expect(ds).toEqual({
      kind: 'dir',
      root,
      trainAnn: join(root, 'annotations/instances_train2017.json'),
      valAnn: join(root, 'annotations/instances_val2017.json'),
      trainImages: join(root, 'train2017'),
      valImages: join(root, 'val2017'),
      classes: ['cat', 'dog'],
      numTrain: 3,
      numVal: 2,
    });
  });

  it('rejects a missing directory, naming it', async () => {
    const missing = join(tmp, 'nope');
    expect(await badInput(missing)).toBe(
      `dataset directory not found: ${missing} (expected coco, demo or a COCO-layout directory)`,
    );
  });

  it('rejects a file given as the dataset', async () => {
    const file = join(tmp, 'file.txt');
    writeFileSync(file, 'x');
    expect(await badInput(file)).toMatch(/^dataset path is not a directory: .*file\.txt/);
  });

  it('says which annotation file is missing', async () => {
    const root = makeCoco();
    unlinkSync(join(root, 'annotations/instances_val2017.json'));
    const msg = await badInput(root);
    expect(msg).toContain(`missing annotation file ${join(root, 'annotations/instances_val2017.json')}`);
    expect(msg).toContain('annotations/instances_val2017.json');
    const root2 = makeCoco();
    unlinkSync(join(root2, 'annotations/instances_train2017.json'));
    expect(await badInput(root2)).toContain('instances_train2017.json');
  });

  it('reports invalid JSON with the parse error position', async () => {
    const root = makeCoco();
    writeAnn(root, 'train2017', '{"images": [],\n "annotations": [}');
    const msg = await badInput(root);
    expect(msg).toBe(
      `invalid JSON in ${join(root, 'annotations/instances_train2017.json')}: Unexpected token '}' at line 2, column 18 (position 32)`,
    );
    writeAnn(root, 'train2017', '{"images": [');
    expect(await badInput(root)).toMatch(/invalid JSON in .*instances_train2017\.json: Unexpected end of JSON input at line 1, column 13 \(position 12\)$/);
  });

  it('rejects JSON that is not a COCO instances file, naming the missing arrays', async () => {
    const root = makeCoco();
    writeAnn(root, 'val2017', { images: [], categories: [{ id: 1, name: 'cat' }] });
    expect(await badInput(root)).toBe(
      `${join(root, 'annotations/instances_val2017.json')} is not a COCO instances file: expected arrays "images", "annotations" and "categories" (missing or not an array: annotations)`,
    );
    writeAnn(root, 'val2017', [1, 2]);
    expect(await badInput(root)).toContain('missing or not an array: images, annotations, categories');
  });

  it('names the first missing image and how many are missing', async () => {
    const root = makeCoco({ train: 4 });
    unlinkSync(join(root, 'train2017/000000000002.png'));
    unlinkSync(join(root, 'train2017/000000000004.png'));
    expect(await badInput(root)).toBe(
      `2 of 4 images listed in ${join(root, 'annotations/instances_train2017.json')} are missing under ${join(root, 'train2017')} (first: 000000000002.png)`,
    );
  });

  it('rejects a missing image folder', async () => {
    const root = makeCoco();
    rmSync(join(root, 'val2017'), { recursive: true });
    expect(await badInput(root)).toBe(
      `image folder missing: ${join(root, 'val2017')} (expected the 2 images listed in ${join(root, 'annotations/instances_val2017.json')})`,
    );
  });

  it('rejects empty categories', async () => {
    const root = makeCoco();
    writeAnn(root, 'train2017', { images: [], annotations: [], categories: [] });
    expect(await badInput(root)).toBe(
      `${join(root, 'annotations/instances_train2017.json')} has no categories (expected at least one entry in "categories")`,
    );
  });

  it('rejects train and val with different categories', async () => {
    const root = makeCoco();
    writeAnn(root, 'val2017', {
      images: [{ id: 1, file_name: '000000000001.png', width: 1, height: 1 }],
      annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0, segmentation: [[0, 0, 1, 0, 1, 1]] }],
      categories: [{ id: 1, name: 'cat' }],
    });
    expect(await badInput(root)).toMatch(/^categories differ between .*instances_train2017\.json \(2: cat, dog\) and .*instances_val2017\.json \(1: cat\)/);
  });
});

describe('resolveDataset: coco', () => {
  it('uses MKEY_COCO_ROOT', async () => {
    const root = makeCoco();
    process.env.MKEY_COCO_ROOT = root;
    const ds = await resolveDataset('coco');
    expect(ds.kind).toBe('coco');
    expect(ds.root).toBe(root);
    expect(ds.classes).toEqual(['cat', 'dog']);
  });

  it('says where it looked when the COCO folder is missing', async () => {
    process.env.MKEY_COCO_ROOT = join(tmp, 'no-coco');
    expect(await badInput('coco')).toBe(`COCO dataset directory not found: ${join(tmp, 'no-coco')} (from MKEY_COCO_ROOT)`);
    delete process.env.MKEY_COCO_ROOT;
    expect(await badInput('coco')).toMatch(/^COCO dataset directory not found: .*data\/coco \(from \.\/data\/coco\)$/);
  });
});

describe('resolveDataset: demo cache folder (checked before Python starts)', () => {
  it('refuses a cache folder that is a file, a file at demo-v2, and a file on the way', async () => {
    await expectCacheFolderRefusals((opts) => resolveDataset('demo', opts), tmp, 'demo-v2', 'demo dataset');
    const file = join(tmp, 'cache-file');
    process.env.MKEY_CACHE_DIR = join(file, 'sub');
    expect(await badInput('demo')).toBe(`MKEY_CACHE_DIR ${join(file, 'sub')}: ${file} is a regular file, not a directory`);
  });
});

describe('resolveDataset: demo (real generation by its entry, in a Python process without the models)', () => {
  it('generates the demo dataset once into MKEY_CACHE_DIR, then reuses it', async () => {
    const cache = join(tmp, 'cache');
    process.env.MKEY_CACHE_DIR = cache;
    const ds = await resolveDataset('demo');
    expect(ds).toEqual({
      kind: 'demo',
      root: join(cache, 'demo-v2'),
      trainAnn: join(cache, 'demo-v2/annotations/instances_train2017.json'),
      valAnn: join(cache, 'demo-v2/annotations/instances_val2017.json'),
      trainImages: join(cache, 'demo-v2/train2017'),
      valImages: join(cache, 'demo-v2/val2017'),
      classes: ['circle', 'triangle', 'square'],
      numTrain: 128,
      numVal: 16,
      generated: true,
    });
    // the cacheDir option wins over the environment; same folder, so it is reused
    process.env.MKEY_CACHE_DIR = join(tmp, 'elsewhere');
    const again = await resolveDataset('demo', { cacheDir: cache });
    expect(again).toEqual({ ...ds, generated: false });
  });
});

describe('describeJsonError', () => {
  it('adds line, column and position when V8 gives none', () => {
    const text = '{\n  "a": tru\n}';
    let err: unknown;
    try {
      JSON.parse(text);
    } catch (e) {
      err = e;
    }
    expect(describeJsonError(text, err)).toBe("Unexpected token '\\n' at line 2, column 11 (position 12)");
  });
});
