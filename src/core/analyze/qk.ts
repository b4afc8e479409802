/**
 * `mkey-det analyze qk`: the query-key interaction of every attention head (SVD of
 * scale * W_q^T W_k; for a manifold key, its folded key at zero token offset), computed in Python
 * (python_shim/mkey_det/analysis/qk.py, definitions in its docstring and docs/ANALYZE.md).
 */
import { writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { z } from 'zod';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { call } from '../../python/entries.js';
import type { qkHead, qkLayer, qkModel, qkReply } from '../../python/schemas/analyze.js';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError } from '../../utils/errors.js';
import { refuseOverwrite } from '../../utils/overwrite.js';
import { describePath } from '../dataset.js';
import { checkRunOrCheckpoint } from '../run/run-dir.js';
import { lockOutFolder } from '../../utils/folder-lock.js';

export type QkHead = z.infer<typeof qkHead>;
export type QkLayer = z.infer<typeof qkLayer>;
export type QkModel = z.infer<typeof qkModel>;

export type QkResult = z.infer<typeof qkReply> & {
  /** Written files (with --out). */
  json?: string;
  plot?: string;
};

export interface QkRequest {
  paths: string[];
  labels?: string[];
  /** Folder for qk.json and qk.png. */
  out?: string;
  force: boolean;
}

/** The writer lock of an analyze --out folder, both analyses (one folder, one writer; src/utils/folder-lock.ts). */
export const ANALYZE_LOCK = '.mkey-analyze.lock';

export async function analyzeQk(req: QkRequest): Promise<QkResult> {
  if (req.labels && req.labels.length !== req.paths.length) {
    throw new BadInputError(`--labels gives ${req.labels.length} label(s) for ${req.paths.length} path(s): give one per path, in order`);
  }
  for (const p of req.paths) checkRunOrCheckpoint(p, 'give a run directory (a --work-dir of mkey-det train) or a .pth checkpoint');
  const sources = req.paths.map((p, i) => ({ path: resolve(p), label: req.labels?.[i] ?? basename(resolve(p)) }));
  let jsonPath: string | undefined;
  let plotPath: string | undefined;
  if (req.out !== undefined) {
    const dir = resolve(req.out);
    const info = describePath(dir);
    if (info && info.kind !== 'dir') throw new BadInputError(`--out ${JSON.stringify(req.out)} is ${info.what}, not a directory`);
    jsonPath = join(dir, 'qk.json');
    plotPath = join(dir, 'qk.png');
    refuseOverwrite([jsonPath, plotPath], { force: req.force });
  }
  await checkInterpreter();
  // the folder is made for the plot only now (one writer at a time), and removed again if the analysis fails
  const folder = req.out !== undefined ? lockOutFolder(resolve(req.out), ANALYZE_LOCK, 'mkey-det analyze qk', `--out ${JSON.stringify(req.out)}`, () => refuseOverwrite([jsonPath!, plotPath!], { force: req.force })) : undefined;
  try {
    let result: QkResult;
    try {
      result = await withBridge((b) => call(b, 'analyze.qk', { sources, plot: plotPath ?? null }));
    } catch (err) {
      folder?.removeIfMade();
      throw asBadInput(err); // a checkpoint that does not fit, a folder without config or checkpoint
    }
    if (jsonPath) {
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
      return { ...result, json: jsonPath, plot: plotPath };
    }
    return result;
  } finally {
    folder?.release();
  }
}
