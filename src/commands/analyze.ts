import { Command } from 'commander';
import { z } from 'zod';
import { analyzeAttention, type AttentionMaps, type AttentionResult, type VitAttentionMaps } from '../core/analyze/attention.js';
import { analyzeQk, type QkResult } from '../core/analyze/qk.js';
import { guardedAction, withUsageErrors } from '../utils/command.js';
import { emit, logger } from '../utils/logger.js';
import { markdownTable } from '../utils/format.js';
import { intOption, parseOptions, parsedOption } from '../utils/options.js';
import { RUN_CONFIG_TRUST } from './help-notes.js';

/** What both analyses take: the models (paths, their --labels) and where the result goes (--out, --force, --json). */
const analysisOptionsSchema = z.object({
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

/** The `<paths...>` of both analyses: `runs` of mkey-det or checkpoints, then what else holds for them. */
const pathsHelp = (runs: string, rest: string): string =>
  `${runs} (a --work-dir of mkey-det train or pretrain) or checkpoints (.pth; a Swin checkpoint without config.py is read as Swin-T with the linear key): ${rest}`;
const LABELS_HELP = 'comma list of names for the models, one per path (default: the folder or file names)';

/** The options both analyses end with: `--out` (what it writes there), `--force` (over what), `--json`. */
function addOutputOptions(cmd: Command, writes: string, overwrites: string, json = 'print the result as JSON'): Command {
  return cmd
    .option('-o, --out <dir>', `write ${writes} here`)
    .option('--force', `overwrite ${overwrites} in --out`, false)
    .option('--json', json, false);
}

const f2 = (v: number): string => (v >= 0 ? ' ' : '') + v.toFixed(2);

/** Per layer: each model's mean similarity (min..max over heads) and its key's off-offset share. */
function qkTable(res: QkResult): string {
  const vit = res.backbone === 'vit';
  const head = ['layer', vit ? 'tokens' : 'stage.block', 'width'];
  for (const m of res.models) head.push(`${m.label}: similarity mean (min..max)`, `${m.label}: off-offset`);
  const rows = res.models[0]!.layers.map((l, i) => {
    const row = [String(l.layer), vit ? String(l.tokens ?? '-') : `${l.stage}.${l.block}`, String(l.width)];
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

const qkCommand = addOutputOptions(
  new Command('qk')
    .description("per layer and head, the singular values of the query-key interaction scale * W_q^T W_k and its similarity (seed 001: sum s_r cos(u_r, v_r) / sum s_r; > 0 attends to similar tokens, < 0 to dissimilar ones); for a manifold key, its folded key at zero token offset. Swin (window attention, N = 49) or ViT (every block over all N tokens, the class token included: 197 at 224 px)")
    .argument('<paths...>', pathsHelp('run directories', 'all Swin or all ViT'))
    .option('--labels <list>', LABELS_HELP),
  'qk.json (every singular value) and qk.png (similarity per layer, all models)',
  'qk.json / qk.png',
)
  .addHelpText(
    'after',
    `
Definitions (docs/ANALYZE.md): the interaction of head h is A = scale * W_q,h^T W_k,h; its SVD
pairs query directions u_r with key directions v_r. A manifold key mixes the window's tokens; its
part from the key token itself, averaged over positions, is W_k,0 = sum_c mean diag(Lambda_c) M_c,
which equals W_k for the linear key and for a manifold key started from one.
${RUN_CONFIG_TRUST}

Exit codes: 0 ok, 1 the analysis failed, 2 bad input (a path that is missing or no run, a
checkpoint that does not fit its config, a Swin and a ViT in one call), 3 Python not set up.

Examples:
  mkey-det analyze qk work_dirs/pretrain-vit-s-demo-demo-s0 work_dirs/pretrain-vit-s-vanillak-c8-demo-demo-s0 --labels vit-s,vanillak
  mkey-det analyze qk work_dirs/swin-t-short-demo-s0 work_dirs/swin-t-spatialk-c8-short-demo-s0 --out qk/
  mkey-det analyze qk swin_tiny_patch4_window7_224.pth --json | jq '.models[0].layers[].similarity_mean'`,
  )
  .action(
    guardedAction(async (paths: string[], raw: Record<string, unknown>) => {
      const opts = parseOptions(analysisOptionsSchema, { ...raw, paths });
      const res = await analyzeQk({ paths: opts.paths, labels: opts.labels, out: opts.out, force: opts.force });
      emit({ ok: true, ...res }, opts, () => qkTable(res));
      if (!opts.json && res.plot) logger.success(`wrote ${res.json} and ${res.plot}`);
    }),
  );

const ATTENTION_METHODS = ['rollout', 'block'] as const;

const attentionOptionsSchema = analysisOptionsSchema.extend({
  paths: z.array(z.string().min(1)).min(1, 'give a run directory or checkpoint'),
  image: z.array(z.string().min(1)).min(1, 'give at least one image file or folder'),
  layer: intOption('--layer', 0, 10_000).optional(),
  query: parsedOption((s): [number, number] => {
    const parts = s.split(',').map((p) => p.trim());
    const nums = parts.map(Number);
    if (parts.length !== 2 || parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n) || n < 0)) {
      throw new Error('give X,Y: two numbers >= 0, pixels of the image files (x from the left, y from the top)');
    }
    return [nums[0]!, nums[1]!];
  }).optional(),
  size: intOption('--size', 32, 4096).optional(),
  method: z.enum(ATTENTION_METHODS, { message: `accepted: ${ATTENTION_METHODS.join(', ')}` }).optional(),
});

/** Swin, per image: the models' blocks, then per head each model's numbers side by side. */
function swinImageText(models: AttentionMaps[]): string[] {
  const lines = models.map(
    (r) => `  ${r.label}: layer ${r.layer} (stage ${r.stage} block ${r.block}, ${r.shift ? `shifted (by ${r.shift})` : 'regular'} ${r.window}x${r.window} windows), grid ${r.grid.join('x')} cells of ${r.stride} px, query cell [${r.query_cell.join(', ')}] in window ${r.query_window} of ${r.windows}`,
  );
  const head = ['head'];
  for (const r of models) head.push(`${r.label}: entropy`, `${r.label}: self`, `${r.label}: mean dist`, `${r.label}: received max`);
  const rows = headRows(models, (r, h) => {
    const st = r.head_stats[h];
    return st ? [st.entropy.toFixed(2), st.self.toFixed(3), st.mean_distance.toFixed(2), st.received_max.toFixed(2)] : ['-', '-', '-', '-'];
  });
  return [...lines, '', markdownTable(head, rows, (t) => t !== 'head')];
}

/** ViT, per image: the models' blocks (or the rollout up to one), then per head each model's class-token numbers. */
function vitImageText(models: VitAttentionMaps[]): string[] {
  const lines = models.map(
    (r) =>
      `  ${r.label}: layer ${r.layer} of 0..${r.layers - 1}, ${r.heads} heads, the class token over ${r.grid.join('x')} patches of ${r.stride} px (${r.tokens} tokens)` +
      (r.method === 'rollout' ? `: joint attention, rolled out through layers 0..${r.layer} (heads averaged below layer ${r.layer}, kept per head at it)` : ": the layer's own attention"),
  );
  const head = ['head'];
  for (const r of models) head.push(`${r.label}: entropy`, `${r.label}: self`, `${r.label}: max`, `${r.label}: max at`);
  const rows = headRows(models, (r, h) => {
    const st = r.head_stats[h];
    return st ? [st.entropy.toFixed(2), st.self.toFixed(3), st.max.toFixed(3), `[${st.max_cell.join(', ')}]`] : ['-', '-', '-', '-'];
  });
  return [...lines, '', markdownTable(head, rows, (t) => t !== 'head' && !t.endsWith('max at'))];
}

/** One row per head (up to the model with the most), each model's cells side by side. */
function headRows<M extends { heads: number }>(models: M[], cells: (m: M, head: number) => string[]): string[][] {
  const heads = Math.max(...models.map((m) => m.heads));
  return Array.from({ length: heads }, (_, h) => [String(h), ...models.flatMap((m) => cells(m, h))]);
}

/** A size given as (width, height), written H x W. */
const hxw = (width: number, height: number): string => `${height}x${width}`;

/** Per image: where it was fed, then the Swin or ViT table. */
function attentionText(res: AttentionResult): string {
  const lines: string[] = [];
  for (const m of res.models) lines.push(`${m.label}: ${m.key_type}${m.charts ? `, ${m.charts} charts` : ''}${m.cb_mode ? `, cb_mode ${m.cb_mode}` : ''} (${m.checkpoint})`);
  for (const img of res.images) {
    // sizes as H x W, as everywhere in mkey-det (the grids above too); the JSON keeps [width, height]
    const where = img.query ? `query at x=${img.query[0]}, y=${img.query[1]}` : `centre crop x=${img.crop![0]}, y=${img.crop![1]}, ${hxw(img.crop![2], img.crop![3])} px`;
    lines.push('', `${img.path} (${hxw(...img.size)} px, fed as ${hxw(...img.input_size)}; H x W), ${where}${img.png ? ` -> ${img.png}` : ''}`);
    lines.push(...(res.backbone === 'vit' ? vitImageText(img.models as VitAttentionMaps[]) : swinImageText(img.models as AttentionMaps[])));
  }
  if (!res.images.some((i) => i.png)) lines.push('', 'add --out DIR for the maps: one PNG grid per image and attention.json');
  return lines.join('\n');
}

const attentionCommand = addOutputOptions(
  new Command('attention')
    .description("per-head attention maps drawn over images (the paper's Fig. 2), as the blocks compute them; two models side by side. Swin: one block, for a query location, what it attends to in its window, and what every location receives summed over queries (the block's own softmax: shifted windows, padding and any key order or folding included). ViT: the class token's joint attention per head over the patch grid (attention rollout through the layers; --method block: one layer's own)")
    .argument('<paths...>', pathsHelp('one or two run directories', 'baseline first; all Swin or all ViT'))
    .requiredOption('--image <files...>', 'image files or folders (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff)')
    .option('--layer <n>', 'attention layer, 0-based (default: the last): Swin, in depth order over all stages as in analyze qk; ViT, its block')
    .option('--query <x,y>', 'Swin: the location whose attention is drawn, in pixels of the image files (default: the centre); refused for a ViT (the class token has no location)')
    .option('--labels <list>', LABELS_HELP)
    .option('--method <method>', "ViT: rollout (the default: per head, the joint attention of the class token, attention rollout through layers 0..--layer with the residual identity, earlier layers' heads averaged, as the paper's Fig. 2 draws it) or block (the attention of layer --layer alone); a Swin takes block only (its window attention: no global token to roll out)")
    .option('--size <px>', "Swin: longer side of the image as fed (default 224: at the last stage one 7x7 window covers the image, as in Fig. 2; 800 is the detection scale). ViT: side of the square centre crop fed (default: the model's img_size; a manifold key takes only that)"),
  'attention.json (every map) and one PNG grid per image (attention-<n>-<name>.png)',
  'attention.json / the PNGs',
  'print the result as JSON (the maps included)',
)
  .addHelpText(
    'after',
    `
Definitions (docs/ANALYZE.md). Swin: query map = per head, the attention probabilities of the
query location over the keys of its (possibly shifted) window, as the block's softmax gives
them; received map = per head, for every location, the attention it receives summed over the
real queries of its window. Grid rows: query maps then received maps, one row block per model.
ViT: class map = per head, the class token's row without its own column, over the patch grid
(14x14 at 224 px); its share to itself is reported as "self". --method rollout (default): the
row of the joint attention J_h = (0.5 P_L,h + 0.5 I) R, R = product over l < L of
(0.5 mean_h P_l,h + 0.5 I) (Abnar & Zuidema 2020; rows renormalised; L = --layer), the mean
column the classic rollout; --method block: the row of P_L,h alone.
Grid rows: one per model. Every head is coloured to its own maximum.
${RUN_CONFIG_TRUST}

Exit codes: 0 ok, 1 the analysis failed, 2 bad input (a path that is missing or no run, a
checkpoint that does not fit its config, an unreadable image, a layer out of range, --query
for a ViT, --method rollout for a Swin, a Swin and a ViT in one call), 3 Python not set up.

Examples:
  mkey-det analyze attention work_dirs/swin-t-short-demo-s0 work_dirs/swin-t-spatialk-c8-short-demo-s0 --image demo.jpg --labels swin-t,spatialk --out attn/
  mkey-det analyze attention swin_tiny_patch4_window7_224.pth --image cat.jpg --layer 5 --query 120,80 -o attn/
  mkey-det analyze attention work_dirs/kua-run --image photos/ --size 800 --json | jq '.images[].models[0].head_stats[].entropy'
  mkey-det analyze attention work_dirs/pretrain-vit-s-paper-custom-s0 work_dirs/pretrain-vit-s-vanillak-c8-paper-custom-s0 --image cat.jpg --labels vit-s,vanillak --out attn-vit/
  mkey-det analyze attention work_dirs/pretrain-vit-s-demo-demo-s0 --image photos/ --method block --layer 5 --json | jq '.images[].models[0].head_stats[].self'`,
  )
  .action(
    guardedAction(async (paths: string[], raw: Record<string, unknown>) => {
      const opts = parseOptions(attentionOptionsSchema, { ...raw, paths });
      const res = await analyzeAttention({ paths: opts.paths, images: opts.image, labels: opts.labels, layer: opts.layer, query: opts.query, size: opts.size, method: opts.method, out: opts.out, force: opts.force });
      emit({ ok: true, ...res }, opts, () => attentionText(res));
      if (!opts.json && res.json) logger.success(`wrote ${res.json} and ${res.images.length} PNG grid(s)`);
    }),
  );

export const analyzeCommand = new Command('analyze')
  .description("look inside a trained backbone's attention: the query-key interaction per head (qk: Swin, ViT), per-head attention maps over images (attention: Swin windows, a ViT's class token rolled out through the layers)")
  .addHelpText(
    'after',
    `
Examples:
  mkey-det analyze qk work_dirs/demo-swin-t work_dirs/demo-swin-t-spatialk --out qk/
  mkey-det analyze attention work_dirs/demo-swin-t work_dirs/demo-swin-t-spatialk --image demo.jpg --out attn/`,
  )
  .addCommand(withUsageErrors(qkCommand))
  .addCommand(withUsageErrors(attentionCommand));
