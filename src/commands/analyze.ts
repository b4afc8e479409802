import { Command } from 'commander';
import { z } from 'zod';
import { analyzeAttention, type AttentionResult } from '../core/analyze/attention.js';
import { analyzeQk, type QkResult } from '../core/analyze/qk.js';
import { guardedAction, withUsageErrors } from '../utils/command.js';
import { emit, logger } from '../utils/logger.js';
import { markdownTable } from '../utils/format.js';
import { intOption, parseOptions, parsedOption } from '../utils/options.js';

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

const attentionOptionsSchema = z.object({
  paths: z.array(z.string().min(1)).min(1, 'give a run directory or checkpoint'),
  image: z.array(z.string().min(1)).min(1, 'give at least one image file or folder'),
  labels: qkOptionsSchema.shape.labels,
  layer: intOption('--layer', 0, 10_000).optional(),
  query: parsedOption((s): [number, number] => {
    const parts = s.split(',').map((p) => p.trim());
    const nums = parts.map(Number);
    if (parts.length !== 2 || parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n) || n < 0)) {
      throw new Error('give X,Y: two numbers >= 0, pixels of the image files (x from the left, y from the top)');
    }
    return [nums[0]!, nums[1]!];
  }).optional(),
  size: intOption('--size', 32, 4096).default(224),
  out: z.string().min(1).optional(),
  force: z.boolean().default(false),
  json: z.boolean().default(false),
});

/** Per image: the models' blocks, then per head each model's numbers side by side. */
function attentionText(res: AttentionResult): string {
  const lines: string[] = [];
  for (const m of res.models) lines.push(`${m.label}: ${m.key_type}${m.charts ? `, ${m.charts} charts` : ''}${m.cb_mode ? `, cb_mode ${m.cb_mode}` : ''} (${m.checkpoint})`);
  for (const img of res.images) {
    lines.push('', `${img.path} (${img.size.join('x')} px, fed as ${img.input_size.join('x')}), query at x=${img.query[0]}, y=${img.query[1]}${img.png ? ` -> ${img.png}` : ''}`);
    for (const r of img.models) {
      lines.push(`  ${r.label}: layer ${r.layer} (stage ${r.stage} block ${r.block}, ${r.shift ? `shifted (by ${r.shift})` : 'regular'} ${r.window}x${r.window} windows), grid ${r.grid.join('x')} cells of ${r.stride} px, query cell [${r.query_cell.join(', ')}] in window ${r.query_window} of ${r.windows}`);
    }
    const head = ['head'];
    for (const r of img.models) head.push(`${r.label}: entropy`, `${r.label}: self`, `${r.label}: mean dist`, `${r.label}: received max`);
    const heads = Math.max(...img.models.map((r) => r.heads));
    const rows: string[][] = [];
    for (let h = 0; h < heads; h++) {
      const row = [String(h)];
      for (const r of img.models) {
        const st = r.head_stats[h];
        if (!st) row.push('-', '-', '-', '-');
        else row.push(st.entropy.toFixed(2), st.self.toFixed(3), st.mean_distance.toFixed(2), st.received_max.toFixed(2));
      }
      rows.push(row);
    }
    lines.push('', markdownTable(head, rows, (t) => t !== 'head'));
  }
  if (!res.images.some((i) => i.png)) lines.push('', 'add --out DIR for the maps: one PNG grid per image and attention.json');
  return lines.join('\n');
}

const attentionCommand = new Command('attention')
  .description("per-head attention maps of one Swin block drawn over images (the paper's Fig. 2): for a query location, what it attends to in its window, and what every location receives summed over queries; taken from the block's own softmax (shifted windows, padding and any key order or folding included); two models side by side")
  .argument('<paths...>', 'one or two run directories (a --work-dir of mkey-det train) or checkpoints (.pth; a Swin checkpoint without config.py is read as Swin-T with the linear key): baseline first')
  .requiredOption('--image <files...>', 'image files or folders (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff)')
  .option('--layer <n>', 'attention layer in depth order over all stages, 0-based as in analyze qk (default: the last)')
  .option('--query <x,y>', 'the location whose attention is drawn, in pixels of the image files (default: the centre)')
  .option('--labels <list>', 'comma list of names for the models, one per path (default: the folder or file names)')
  .option('--size <px>', 'longer side of the image as fed to the models (224: at the last stage one 7x7 window covers the image, as in Fig. 2; 800 is the detection scale)', '224')
  .option('--out <dir>', 'write attention.json (every map) and one PNG grid per image (attention-<n>-<name>.png) here')
  .option('--force', 'overwrite attention.json / the PNGs in --out', false)
  .option('--json', 'print the result as JSON (the maps included)', false)
  .addHelpText(
    'after',
    `
Definitions (docs/ANALYZE.md): query map = per head, the attention probabilities of the query
location over the keys of its (possibly shifted) window, as the block's softmax gives them;
received map = per head, for every location, the attention it receives summed over the real
queries of its window. Grid rows: query maps then received maps, one row block per model;
every head is coloured to its own maximum.
Exit codes: 0 ok, 1 the analysis failed, 2 bad input (a path that is missing or no run, a
checkpoint that does not fit its config, an unreadable image, a layer out of range), 3 Python
not set up.

Examples:
  mkey-det analyze attention work_dirs/swin-t-short-demo-s0 work_dirs/swin-t-spatialk-c8-short-demo-s0 --image demo.jpg --labels swin-t,spatialk --out attn/
  mkey-det analyze attention swin_tiny_patch4_window7_224.pth --image cat.jpg --layer 5 --query 120,80 --out attn/
  mkey-det analyze attention work_dirs/kua-run --image photos/ --size 800 --json | jq '.images[].models[0].head_stats[].entropy'`,
  )
  .action(
    guardedAction(async (paths: string[], raw: Record<string, unknown>) => {
      const opts = parseOptions(attentionOptionsSchema, { ...raw, paths });
      const res = await analyzeAttention({ paths: opts.paths, images: opts.image, labels: opts.labels, layer: opts.layer, query: opts.query, size: opts.size, out: opts.out, force: opts.force });
      emit({ ok: true, ...res }, opts, () => attentionText(res));
      if (!opts.json && res.json) logger.success(`wrote ${res.json} and ${res.images.length} PNG grid(s)`);
    }),
  );

export const analyzeCommand = new Command('analyze')
  .description("look inside a trained backbone's attention: the query-key interaction per head (qk), per-head attention maps over images (attention)")
  .addHelpText(
    'after',
    `
Examples:
  mkey-det analyze qk work_dirs/demo-swin-t work_dirs/demo-swin-t-spatialk --out qk/
  mkey-det analyze attention work_dirs/demo-swin-t work_dirs/demo-swin-t-spatialk --image demo.jpg --out attn/`,
  )
  .addCommand(withUsageErrors(qkCommand))
  .addCommand(withUsageErrors(attentionCommand));
