/**
 * The configs of the paper's Table 3 kept in `configs/`: Swin-T and Swin-T + SpatialK (8 charts),
 * Mask R-CNN + FPN, MMDetection's 3x multi-scale-crop recipe on COCO. `npm run configs` rewrites
 * them; a test proves the files equal what the generator produces.
 */
import { backboneVariant, type Experiment } from '../experiment.js';
import { configCommandLine } from './command-line.js';
import { renderMmdetConfig } from './render.js';

const base = (backbone: string): Experiment => ({
  backbone: backboneVariant(backbone),
  charts: 8,
  schedule: '3x',
  data: { kind: 'coco' },
  batchSize: 2,
  seed: 0,
  // The paper and MMDetection start from the ImageNet Swin-T weights; put the official file here
  // (nothing is downloaded): https://github.com/SwinTransformer/storage/releases (swin_tiny_patch4_window7_224.pth)
  pretrained: 'checkpoints/swin_tiny_patch4_window7_224.pth',
  amp: false,
  cfgOptions: [],
});

export const TABLE3_CONFIGS: { file: string; experiment: Experiment }[] = [
  { file: 'mask-rcnn_swin-t_fpn_3x_coco.py', experiment: base('swin-t') },
  { file: 'mask-rcnn_swin-t-spatialk-c8_fpn_3x_coco.py', experiment: base('swin-t-spatialk') },
];

/**
 * The file, its "Regenerate with" line the `mkey-det config` command of its experiment. That
 * command, run in the repository root, writes the same file but for the checkpoint path: the
 * CLI writes `--pretrained` as an absolute path, these files keep it relative to where
 * MMDetection's tools/train.py runs, as MMDetection's own configs do.
 */
export function renderTable3Config(entry: (typeof TABLE3_CONFIGS)[number], toolVersion: string): string {
  return renderMmdetConfig(entry.experiment, { toolVersion, generatedBy: configCommandLine(entry.experiment) });
}
