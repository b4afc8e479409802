/** An experiment for tests: SpatialK, 8 charts, the 3x schedule on COCO, unless overridden. */
import { backboneVariant, type Experiment } from '../../src/core/experiment.js';

export const experiment = (over: Partial<Experiment> = {}): Experiment => ({
  backbone: backboneVariant('swin-t-spatialk'),
  charts: 8,
  schedule: '3x',
  data: { kind: 'coco' },
  batchSize: 2,
  seed: 0,
  amp: false,
  cfgOptions: [],
  ...over,
});
