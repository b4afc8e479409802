import { Command } from 'commander';
import { z } from 'zod';
import { analyzeQk, type QkResult } from '../core/analyze/qk.js';
import { guardedAction, withUsageErrors } from '../utils/command.js';
import { emit, logger } from '../utils/logger.js';
import { markdownTable } from '../utils/format.js';
import { parseOptions } from '../utils/options.js';

const qkOptionsSchema = z.object({
  paths: z.array(z.string().min(1)).min(1, 'give at least one run directory or checkpoint'),
  labels: z
    .string()
    .transform((s) => s.split(',').map((l) => l.trim()))
    .refine((ls) => ls.every(Boolean), { message: 'a comma list of non-empty labels, one per path' })
    .optional(),
  out: z.string().min(1).optional(),
  force: z.boolean().default(false),
  json: z.boolean().default(false),
});

const f2 = (v: number): string => (v >= 0 ? ' ' : '') + v.toFixed(2);

/** Per layer: each model's mean similarity (min..max over heads) and its key's off-offset share. */
function qkTable(res: QkResult): string {
  const head = ['layer', 'stage.block', 'width'];
  for (const m of res.models) head.push(`${m.label}: similarity mean (min..max)`, `${m.label}: off-offset`);
  const rows = res.models[0]!.layers.map((l, i) => {
    const row = [String(l.layer), `${l.stage}.${l.block}`, String(l.width)];
    for (const m of res.models) {
      const x = m.layers[i];
      if (!x) {
        row.push('-', '-');
        continue;
      }
      const sims = x.heads.map((h) => h.similarity);
      row.push(`${f2(x.similarity_mean)} (${Math.min(...sims).toFixed(2)} .. ${Math.max(...sims).toFixed(2)})`, x.off_zero_offset_share.toFixed(2));
    }
    return row;
  });
  const models = res.models.map((m) => `${m.label}: ${m.key_type}${m.charts ? `, ${m.charts} charts` : ''} (${m.checkpoint})`);
  return [...models, '', markdownTable(head, rows, (h) => h !== 'stage.block')].join('\n');
}

const qkCommand = new Command('qk')
  .description("per layer and head, the singular values of the query-key interaction scale * W_q^T W_k and its similarity (seed 001: sum s_r cos(u_r, v_r) / sum s_r; > 0 attends to similar tokens, < 0 to dissimilar ones); for a manifold key, its folded key at zero token offset")
  .argument('<paths...>', 'run directories (a --work-dir of mkey-det train) or checkpoints (.pth; a Swin checkpoint without config.py is read as Swin-T with the linear key)')
  .option('--labels <list>', 'comma list of names for the models, one per path (default: the folder or file names)')
  .option('--out <dir>', 'write qk.json (every singular value) and qk.png (similarity per layer, all models) here')
  .option('--force', 'overwrite qk.json / qk.png in --out', false)
  .option('--json', 'print the result as JSON', false)
  .addHelpText(
    'after',
    `
Definitions (docs/ANALYZE.md): the interaction of head h is A = scale * W_q,h^T W_k,h; its SVD
pairs query directions u_r with key directions v_r. A manifold key mixes the window's tokens; its
part from the key token itself, averaged over positions, is W_k,0 = sum_c mean diag(Lambda_c) M_c,
which equals W_k for the linear key and for a manifold key started from one.
Exit codes: 0 ok, 1 the analysis failed, 2 bad input (a path that is missing or no run, a
checkpoint that does not fit its config), 3 Python not set up.

Examples:
  mkey-det analyze qk work_dirs/swin-t-short-demo-s0 work_dirs/swin-t-spatialk-c8-short-demo-s0 --out qk/
  mkey-det analyze qk swin_tiny_patch4_window7_224.pth --json | jq '.models[0].layers[].similarity_mean'`,
  )
  .action(
    guardedAction(async (paths: string[], raw: Record<string, unknown>) => {
      const opts = parseOptions(qkOptionsSchema, { ...raw, paths });
      const res = await analyzeQk({ paths: opts.paths, labels: opts.labels, out: opts.out, force: opts.force });
      emit({ ok: true, ...res }, opts, () => qkTable(res));
      if (!opts.json && res.plot) logger.success(`wrote ${res.json} and ${res.plot}`);
    }),
  );

export const analyzeCommand = new Command('analyze')
  .description("look inside a trained backbone's attention: the query-key interaction per head (qk)")
  .addHelpText(
    'after',
    `
Examples:
  mkey-det analyze qk work_dirs/demo-swin-t work_dirs/demo-swin-t-spatialk --out qk/`,
  )
  .addCommand(withUsageErrors(qkCommand));
