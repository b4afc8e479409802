/**
 * One real tiny training run per `npm test`, shared by the tests that only read a run (`test`,
 * `infer`, `report`, checkpoint checks), instead of each file training its own.
 *
 * vitest's globalSetup (vitest.config.ts) starts it in the background and returns at once, so the
 * test files start beside it; `sharedRun()` (in a test) waits until it has ended. The run is the
 * CLI itself (`mkey-det train`), as a user would start it: a Swin-T + SpatialK (2 charts) Mask
 * R-CNN on 4 generated 128 x 128 images for 2 epochs, evaluated after each. A reader must not
 * write into it: give `test` a `--work-dir` and `infer` an `--out` of its own.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { TestProject } from 'vitest/node';
import { cliPath, makeTinyDataset, repoRoot } from './cli.js';

export interface SharedRun {
  /** The tiny COCO-layout dataset the run trained on (4 train, 3 val images). */
  data: string;
  /** The run directory (`mkey-det train --work-dir`). */
  workDir: string;
  /** Where the train command's stdout/stderr went. */
  log: string;
  /** Written with the command's exit code when it ends. */
  done: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    sharedRun: SharedRun;
  }
}

/**
 * Mask R-CNN sized for 4 images of 128 px with a few objects each, as the demo's config sizes it
 * (src/core/config/render.ts, docs/DEMO.md): fewer proposals and sampled RoIs than COCO's 1,000-2,000
 * and 512 per image, and FPN, RPN and RoI heads 128 channels wide instead of 256. mmcv's
 * single-threaded CPU RoIAlign over COCO's RoIs took most of a tiny run's step (Swin-T at 128 px, 2
 * images: 5.8 s -> 2.7 s per iteration with the sampling alone), and the narrower heads take a
 * fifth off every checkpoint the tests write and read (648 -> 518 MB with SpatialK, 2 charts).
 * Plain `--cfg-options`: the tiny runs still train and evaluate the real detector, the backbone
 * (the subject of every test) as `train` builds it.
 */
export const TINY_DETECTOR = [
  '--cfg-options',
  'model.train_cfg.rpn_proposal.max_per_img=200',
  'model.train_cfg.rcnn.sampler.num=32',
  'model.test_cfg.rpn.max_per_img=100',
  'model.test_cfg.rcnn.max_per_img=20',
  ...[
    'neck.out_channels',
    'rpn_head.in_channels',
    'rpn_head.feat_channels',
    'roi_head.bbox_roi_extractor.out_channels',
    'roi_head.bbox_head.in_channels',
    'roi_head.mask_roi_extractor.out_channels',
    'roi_head.mask_head.in_channels',
    'roi_head.mask_head.conv_out_channels',
  ].map((key) => `model.${key}=128`),
];

/**
 * The options of a tiny run that a test stops or kills (Ctrl-C, kill -9, a full disk, a NaN): the
 * stock recipe's data loading, two DataLoader worker processes per loader, so that what must end
 * with the run includes them. Ends in the `--cfg-options` list.
 */
export const SMALL_RUN = ['--backbone', 'swin-t-spatialk', '--charts', '2', '--img-scale', '128x128', ...TINY_DETECTOR];

/**
 * `--cfg-options` pairs: the images loaded in the training process itself, no DataLoader workers.
 * A worker is a fork of a process that trains on the CPU: every page of weights, gradients and
 * AdamW state the trainer then writes is copied once per live worker (copy-on-write). A tiny run
 * of 2 epochs on this 2-core machine: 360,000 more page faults and 5-9 s more CPU (37-44 s against
 * 32-35 s, user + sys) with the stock 2 + 2 workers than with none, for 4 images that load in
 * milliseconds. Only the loading moves; the pipeline, the detector and the run are the same.
 */
export const NO_LOADER_WORKERS = [
  'train_dataloader.num_workers=0',
  'train_dataloader.persistent_workers=False',
  'val_dataloader.num_workers=0', // test_dataloader is val_dataloader in the generated config
  'val_dataloader.persistent_workers=False',
];

/** A tiny run that ends by itself (the shared run among them): SMALL_RUN without DataLoader workers. */
export const SMALL_FINISHED_RUN = [...SMALL_RUN, ...NO_LOADER_WORKERS];
export const SHARED_RUN_EPOCHS = 2;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = mkdtempSync(join(tmpdir(), 'mkey-shared-run-'));
  const run: SharedRun = { data: join(root, 'tiny'), workDir: join(root, 'run'), log: join(root, 'train.log'), done: join(root, 'train.exit') };
  project.provide('sharedRun', run);
  if (process.env.MKEY_TEST_NO_SHARED_RUN) {
    // a quick run of files that do not need it (`MKEY_TEST_NO_SHARED_RUN=1 npx vitest run test/x.test.ts`)
    writeFileSync(run.done, 'not started (MKEY_TEST_NO_SHARED_RUN is set)');
    return async () => rmSync(root, { recursive: true, force: true });
  }
  await makeTinyDataset(run.data);
  const out = openSync(run.log, 'w');
  const child = spawn('node', [cliPath, 'train', ...SMALL_FINISHED_RUN, '--data', run.data, '--work-dir', run.workDir, '--max-epochs', String(SHARED_RUN_EPOCHS)], {
    cwd: repoRoot,
    stdio: ['ignore', out, out],
  });
  const ended = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      if (existsSync(root)) writeFileSync(run.done, String(code ?? signal));
      resolve();
    }),
  );
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // still training (a subset of files ran): stop it as a user would, then for sure
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await ended;
      clearTimeout(timer);
    }
    rmSync(root, { recursive: true, force: true });
  };
}

/** The shared run, once it has ended; fails with the end of its log if it did not complete. */
export async function sharedRun(timeoutMs = 480_000): Promise<SharedRun> {
  const run = inject('sharedRun');
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(run.done)) {
    if (Date.now() > deadline) throw new Error(`the shared run did not end within ${timeoutMs / 1000} s (log: ${run.log})`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const code = readFileSync(run.done, 'utf8').trim();
  if (code !== '0') throw new Error(`the shared run ended with ${code}:\n${readFileSync(run.log, 'utf8').slice(-2000)}`);
  return run;
}
