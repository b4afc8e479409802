/** `mkey-det pretrain`: a classification run of a `PretrainExperiment`, through the same launcher as `train`. */
import { relative } from 'node:path';
import { TOOL_VERSION } from '../../version.js';
import { resolveClassificationData } from '../classification-dataset.js';
import { renderMmpretrainConfig, type ClassificationLayout } from '../config/render-classification.js';
import { withInheritedLists } from '../config/inherited-lists.js';
import { launchExperiment, type LaunchOptions, type RunResult } from './run.js';
import type { PretrainExperiment } from '../pretrain/experiment.js';

export interface PretrainRequest extends LaunchOptions {
  experiment: PretrainExperiment;
}

/** The data part of a classification config (the demo set generated on first use), checked. */
export async function classificationLayout(exp: PretrainExperiment): Promise<ClassificationLayout> {
  const ds = await resolveClassificationData(exp.data.kind === 'dir' ? exp.data.path : 'demo');
  return {
    root: ds.root,
    trainPrefix: relative(ds.root, ds.trainDir) || '.',
    valPrefix: relative(ds.root, ds.valDir) || '.',
    classes: ds.classes,
  };
}

export async function pretrain(req: PretrainRequest): Promise<RunResult> {
  const exp = req.experiment;
  return launchExperiment(req, 'pretrain', exp, {
    renderConfig: async () => {
      const data = await classificationLayout(exp);
      return withInheritedLists((inherited) => renderMmpretrainConfig(exp, { data, toolVersion: TOOL_VERSION, inherited }));
    },
    identity: {
      task: 'classification',
      backbone: exp.backbone.name,
      family: exp.backbone.family,
      keyType: exp.backbone.keyType,
      charts: exp.charts,
      recipe: exp.recipe,
      data: exp.data,
      imgSize: exp.imgSize,
      batchSize: exp.batchSize,
      seed: exp.seed,
    },
  });
}
