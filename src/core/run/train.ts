/** `mkey-det train`: detection runs (Mask R-CNN + FPN, MMDetection) of an experiment or of a user's config. */
import { asBadInput, withBridge } from '../../python/bridge.js';
import { call } from '../../python/entries.js';
import { TOOL_VERSION } from '../../version.js';
import { renderMmdetConfig } from '../config/render.js';
import { withInheritedLists } from '../config/inherited-lists.js';
import { datasetLayout } from '../config/dataset-layout.js';
import { experimentCharts, type AmpDtype, type AttnImpl, type Experiment, type KeyOrder } from '../experiment.js';
import { launchExperiment, launchRun, optionsRecord, type LaunchOptions, type RunResult } from './run.js';

export interface TrainRequest extends LaunchOptions {
  experiment: Experiment;
}

/** `mkey-det train`: a detection run of an experiment (Mask R-CNN + FPN, MMDetection). */
export async function train(req: TrainRequest): Promise<RunResult> {
  const exp = req.experiment;
  return launchExperiment(req, 'train', exp, {
    inputs: exp.pretrained ? [exp.pretrained] : [],
    renderConfig: async () => {
      const dataset = await datasetLayout(exp, { check: true });
      return withInheritedLists((inherited) => renderMmdetConfig(exp, { dataset, toolVersion: TOOL_VERSION, inherited }));
    },
    identity: {
      backbone: exp.backbone.name,
      keyType: exp.backbone.keyType,
      charts: experimentCharts(exp), // as `config --json`
      schedule: exp.schedule,
      data: exp.data,
      batchSize: exp.batchSize,
      seed: exp.seed,
    },
  });
}

/** `mkey-det train --config FILE`: any MMDetection or mmpretrain config, supervised like an experiment. */
export interface ConfigTrainRequest extends LaunchOptions {
  /** The user's config file (absolute). */
  configFile: string;
  /** A manifold key put on top (a Swin backbone only); undefined keeps the config's. */
  keyType?: string;
  charts?: number;
  amp: AmpDtype | false;
  tensorboard: boolean;
  /** Put on top of the config's backbone (Swin only); undefined keeps the config's. */
  attnImpl?: AttnImpl;
  /** Put on top of the config's manifold-key backbone; undefined keeps the config's. */
  keyOrder?: KeyOrder;
  tf32?: boolean;
  /** `--cfg-options` pairs, merged as tools/train.py merges them (mmengine's DictAction). */
  cfgOptions: [string, string][];
}

export async function trainConfig(req: ConfigTrainRequest): Promise<RunResult> {
  const renderConfig = async (): Promise<string> => {
    try {
      return await withBridge(async (b) => {
        const r = await call(
          b,
          'config.user_config',
          {
            config_path: req.configFile,
            cfg_options: req.cfgOptions.map(([k, v]) => `${k}=${v}`),
            key_type: req.keyType ?? null,
            num_charts: req.charts ?? null,
            amp: req.amp || null,
            tensorboard: req.tensorboard,
            attn_impl: req.attnImpl ?? null,
            key_order: req.keyOrder ?? null,
            tf32: req.tf32 ?? false,
            generator: `mkey-det ${TOOL_VERSION}`,
          },
        );
        return r.text;
      });
    } catch (err) {
      throw asBadInput(err, ['ValueError', 'KeyError', 'TypeError']);
    }
  };
  return launchRun({
    ...req,
    command: 'train',
    renderConfig,
    inputs: [req.configFile],
    experiment: { source: 'config', config: req.configFile, keyType: req.keyType ?? null, charts: req.charts ?? null, ...optionsRecord(req) },
  });
}
