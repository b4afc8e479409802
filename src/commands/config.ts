import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { configCommandLine } from '../core/config/command-line.js';
import { renderMmdetConfig } from '../core/config/render.js';
import { withInheritedLists } from '../core/config/inherited-lists.js';
import { TOOL_VERSION } from '../version.js';
import { guardedAction } from '../utils/command.js';
import { refuseOverwrite } from '../utils/overwrite.js';
import { emit, logger } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';
import { experimentCharts } from '../core/experiment.js';
import { addExperimentOptions, experimentFromOptions, experimentOptionsSchema, refuseUnregisteredTypes } from './experiment-options.js';
import { datasetLayout } from '../core/config/dataset-layout.js';

const configOptionsSchema = experimentOptionsSchema.extend({
  out: z.string().optional(),
  force: z.boolean().default(false),
  json: z.boolean().default(false),
});

export const config = addExperimentOptions(
  new Command('config').description(
    'write the MMDetection config (Python source) of an experiment: Mask R-CNN + FPN with a Swin-T backbone, inheriting the stock 3x config',
  ),
)
  .option('-o, --out <file>', 'write the config here (default: print it to stdout)')
  .option('--force', 'overwrite an existing --out file', false)
  .option('--json', 'print {path, backbone, ...} as JSON instead of the source', false)
  .addHelpText(
    'after',
    `
The config's header names the command that writes it again, byte for byte ("# Regenerate with:
mkey-det config ...": every option it depends on, paths absolute). --charts has no effect on
swin-t (the linear key): no charts are reported for it (null in --json).
Exit codes: 0 written, 2 bad input (an option, an existing --out without --force).

Examples:
  mkey-det config --backbone swin-t-spatialk --charts 8 --data coco --out configs/spatialk.py
  mkey-det config --backbone swin-t --data coco --pretrained swin_tiny_patch4_window7_224.pth -o swin-t.py
  mkey-det config --backbone swin-t --data demo --max-epochs 2 | less
  mkey-det config --data coco --attn-impl sdpa --key-order auto --tf32 --out configs/spatialk-gpu.py
  mkey-det config --data /data/my_coco --cfg-options model.backbone.drop_path_rate=0.1 --out my.py`,
  )
  .action(
    guardedAction(async (raw: unknown, cmd: Command) => {
      const opts = parseOptions(configOptionsSchema, raw);
      const exp = experimentFromOptions(opts, { checkPaths: false });
      await refuseUnregisteredTypes(exp.cfgOptions);
      // the linear key has no charts: none reported (null in JSON, as the config's mkey_experiment)
      const charts = experimentCharts(exp);
      if (charts === null && cmd.getOptionValueSource('charts') === 'cli') logger.warn(`--charts has no effect on ${exp.backbone.name} (linear key)`);
      const dataset = await datasetLayout(exp, { check: false });
      // --cb-mode, which configCommandLine does not spell out yet, appended (the config depends on it)
      const generatedBy = configCommandLine(exp) + (exp.cbMode !== undefined ? ` --cb-mode ${exp.cbMode}` : '');
      const source = await withInheritedLists((inherited) => renderMmdetConfig(exp, { dataset, toolVersion: TOOL_VERSION, inherited, generatedBy }));
      const summary = { backbone: exp.backbone.name, charts, schedule: exp.schedule };
      if (!opts.out) {
        if (opts.json) emit({ ok: true, source, ...summary }, opts, () => '');
        else process.stdout.write(source);
        return;
      }
      const out = resolve(opts.out);
      refuseOverwrite([out], { force: opts.force });
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, source);
      emit({ ok: true, path: out, ...summary }, opts, () => out);
      if (!opts.json) logger.success(`wrote ${exp.backbone.name} (${charts === null ? '' : `${charts} charts, `}${exp.schedule}) config`);
    }),
  );
