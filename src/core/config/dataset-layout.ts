/** The dataset part of a config: where the annotation files and image folders are, and the classes. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { BadInputError } from '../../utils/errors.js';
import { resolveDataset } from '../dataset.js';
import type { DatasetLayout, Experiment } from '../experiment.js';
import { COCO_LAYOUT } from './render.js';

/**
 * For `coco` without `check`, the stock relative layout (data/coco/) as MMDetection writes it.
 * Otherwise the dataset is resolved (the demo generated on first use) and validated.
 */
export async function datasetLayout(exp: Experiment, opts: { check: boolean }): Promise<DatasetLayout> {
  if (exp.data.kind === 'coco' && !process.env.MKEY_COCO_ROOT) {
    if (!opts.check) return COCO_LAYOUT;
    if (!existsSync(COCO_LAYOUT.root)) {
      throw new BadInputError(
        `--data coco: no COCO dataset at ${resolve(COCO_LAYOUT.root)}`,
        'put COCO 2017 there (annotations/, train2017/, val2017/), set MKEY_COCO_ROOT, or use --data demo',
      );
    }
  }
  const ds = await resolveDataset(exp.data.kind === 'dir' ? exp.data.path : exp.data.kind, {});
  const root = ds.root.endsWith('/') ? ds.root : ds.root + '/';
  const rel = (p: string) => (p.startsWith(root) ? p.slice(root.length) : p);
  return {
    root,
    trainAnn: rel(ds.trainAnn),
    valAnn: rel(ds.valAnn),
    trainImg: rel(ds.trainImages).replace(/\/?$/, '/'),
    valImg: rel(ds.valImages).replace(/\/?$/, '/'),
    classes: ds.kind === 'coco' ? undefined : ds.classes,
  };
}
