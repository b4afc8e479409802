/**
 * The report's "Attention analysis" section (`mkey-det report --analysis <dir...>`): the output
 * folders of `mkey-det analyze attention` (attention.json + one PNG grid per image) and
 * `mkey-det analyze qk` (qk.json + qk.png), read here into small per-model / per-layer summaries
 * (data, in the report's JSON), then rendered as Markdown (tables + relative links to the PNGs)
 * or HTML (tables + the PNGs inlined as data URIs, so the page stays self-contained).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isRegularFile, readRegularFile } from '../../utils/regular-file.js';
import { basename, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { BadInputError } from '../../utils/errors.js';
import { markdownTable } from '../../utils/format.js';
import { attentionPngName } from '../analyze/attention.js';
import { escapeHtml as esc } from './escape.js';

export const ATTENTION_JSON = 'attention.json';
export const QK_JSON = 'qk.json';

/** One model of an `analyze attention` folder: its head numbers averaged over heads and images. */
export interface AttentionModelSummary {
  label: string;
  keyType: string;
  charts: number | null;
  cbMode: string | null;
  checkpoint: string;
  /** The analysed layer (Swin: depth order over all stages; ViT: its block, with rollout the last one rolled out). */
  layer: number;
  /** `stage 3 block 1` (Swin), `rollout of blocks 0..11, block 11 per head` or `block 11 of 0..11` (ViT). */
  where: string;
  heads: number;
  /** Images the means run over. */
  images: number;
  /** Mean over heads and images of the attention row's entropy (nats). */
  entropyMean: number;
  /** Mean over heads and images of the attention to itself (Swin: the query; ViT: the class token). */
  selfMean: number;
  /** Swin: mean over heads and images of the attention-weighted distance from the query, in cells. */
  meanDistanceMean?: number;
}

export interface AttentionGrid {
  /** The image the grid was drawn over, as attention.json names it. */
  image: string;
  /** The grid PNG in the folder (absolute), null when it is missing. */
  png: string | null;
}

export interface AttentionAnalysis {
  kind: 'attention';
  /** The folder as given to --analysis. */
  path: string;
  dir: string;
  json: string;
  backbone: 'swin' | 'vit';
  /** ViT: `rollout` (the class token's joint attention through blocks 0..layer) or `block` (one block's own); Swin: `block`. */
  method: 'rollout' | 'block';
  models: AttentionModelSummary[];
  grids: AttentionGrid[];
}

export interface QkModelSummary {
  label: string;
  keyType: string;
  charts: number | null;
  checkpoint: string;
  /** Mean over layers of the per-layer mean similarity. */
  similarityMean: number | null;
}

export interface QkLayerSummary {
  layer: number;
  /** Swin: its stage; ViT: 0 (its blocks are its layers). */
  stage: number;
  block: number;
  width: number;
  /** N: the tokens one attention sees (Swin: a window's; ViT: all, the class token included), where qk.json says. */
  tokens?: number;
  /** Per model (in `models` order), the layer's mean similarity over heads; null when the model lacks the layer. */
  similarityMean: (number | null)[];
}

export interface QkAnalysis {
  kind: 'qk';
  path: string;
  dir: string;
  json: string;
  /** Swin (layers in depth order over the stages, `stage.block`) or ViT (its blocks, each over all N tokens). */
  backbone: 'swin' | 'vit';
  models: QkModelSummary[];
  layers: QkLayerSummary[];
  /** qk.png in the folder (absolute), null when it is missing. */
  png: string | null;
}

export type ReportAnalysis = AttentionAnalysis | QkAnalysis;

/** Per PNG (absolute path), what the rendered report points at: a relative link (md) or a data URI (html). */
export type AnalysisImages = Record<string, string>;

// ---------- reading ----------

const headStatSchema = z.object({ entropy: z.number(), self: z.number(), mean_distance: z.number().optional() });
const vitMethodSchema = z.enum(['rollout', 'block']);
const mapsSchema = z.object({
  label: z.string(),
  method: vitMethodSchema.optional(),
  layer: z.number(),
  heads: z.number(),
  stage: z.number().optional(),
  block: z.number().optional(),
  layers: z.number().optional(),
  head_stats: z.array(headStatSchema),
});
const attentionSchema = z.object({
  backbone: z.enum(['swin', 'vit']).default('swin'),
  /** Written since `--method` exists: a ViT's attention.json from before drew one block's own. */
  method: vitMethodSchema.default('block'),
  models: z
    .array(z.object({ label: z.string(), checkpoint: z.string(), key_type: z.string(), charts: z.number().nullable(), cb_mode: z.string().nullable().optional() }))
    .min(1),
  images: z.array(z.object({ path: z.string(), models: z.array(mapsSchema), png: z.string().optional() })),
});
const qkSchema = z.object({
  /** Absent in a qk.json from before ViTs were analysed: Swin. */
  backbone: z.enum(['swin', 'vit']).optional(),
  models: z
    .array(
      z.object({
        label: z.string(),
        checkpoint: z.string(),
        backbone: z.enum(['swin', 'vit']).optional(),
        key_type: z.string(),
        charts: z.number().nullable(),
        layers: z.array(z.object({ layer: z.number(), stage: z.number(), block: z.number(), width: z.number(), tokens: z.number().optional(), similarity_mean: z.number() })),
      }),
    )
    .min(1),
  plot: z.string().optional(),
});

const ACCEPTED = `accepted: an output folder of mkey-det analyze attention --out (holding ${ATTENTION_JSON}) or analyze qk --out (holding ${QK_JSON})`;

function readJson<T>(file: string, schema: z.ZodType<T>, given: string, command: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readRegularFile(file).toString('utf8'));
  } catch (err) {
    throw new BadInputError(`--analysis ${JSON.stringify(given)}: ${basename(file)} is not readable JSON (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ${ACCEPTED}`);
  }
  const res = schema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const where = issue && issue.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new BadInputError(`--analysis ${JSON.stringify(given)}: ${basename(file)} is not ${command}'s output (${issue?.message ?? 'unexpected content'}${where}); ${ACCEPTED}`);
  }
  return res.data;
}

const mean = (xs: number[]): number | undefined => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);

function readAttention(given: string, dir: string, warnings: string[]): AttentionAnalysis {
  const json = join(dir, ATTENTION_JSON);
  const data = readJson(json, attentionSchema, given, 'mkey-det analyze attention');
  const models: AttentionModelSummary[] = data.models.map((m, mi) => {
    // the model's maps per image: by label, else by position
    const maps = data.images.map((img) => img.models.find((x) => x.label === m.label) ?? img.models[mi]).filter((x): x is z.infer<typeof mapsSchema> => x !== undefined);
    const stats = maps.flatMap((x) => x.head_stats);
    const first = maps[0];
    const method = first?.method ?? data.method;
    const where = !first
      ? ''
      : data.backbone === 'vit'
        ? method === 'rollout'
          ? `rollout of blocks 0..${first.layer}, block ${first.layer} per head`
          : `block ${first.layer}${first.layers !== undefined ? ` of 0..${first.layers - 1}` : ''}`
        : first.stage !== undefined && first.block !== undefined
          ? `stage ${first.stage} block ${first.block}`
          : '';
    const dist = mean(stats.map((s) => s.mean_distance).filter((v): v is number => v !== undefined));
    return {
      label: m.label,
      keyType: m.key_type,
      charts: m.charts,
      cbMode: m.cb_mode ?? null,
      checkpoint: m.checkpoint,
      layer: first?.layer ?? -1,
      where,
      heads: first?.heads ?? 0,
      images: maps.length,
      entropyMean: mean(stats.map((s) => s.entropy)) ?? NaN,
      selfMean: mean(stats.map((s) => s.self)) ?? NaN,
      ...(data.backbone === 'swin' && dist !== undefined ? { meanDistanceMean: dist } : {}),
    };
  });
  const grids: AttentionGrid[] = data.images.map((img, i) => {
    // the grid where the folder lies now (attention.json keeps the path it was written at)
    const candidates = [...(img.png ? [join(dir, basename(img.png))] : []), join(dir, attentionPngName(i, img.path))];
    const png = candidates.find(isRegularFile) ?? null;
    if (!png) warnings.push(`--analysis ${given}: the attention grid of ${img.path} (${basename(candidates[0]!)}) is missing; its numbers are still in the table`);
    return { image: img.path, png };
  });
  return { kind: 'attention', path: given, dir, json, backbone: data.backbone, method: data.backbone === 'vit' ? data.method : 'block', models, grids };
}

function readQk(given: string, dir: string, warnings: string[]): QkAnalysis {
  const json = join(dir, QK_JSON);
  const data = readJson(json, qkSchema, given, 'mkey-det analyze qk');
  const byLayer = new Map<number, { stage: number; block: number; width: number; tokens?: number }>();
  for (const m of data.models) {
    for (const l of m.layers) if (!byLayer.has(l.layer)) byLayer.set(l.layer, { stage: l.stage, block: l.block, width: l.width, ...(l.tokens !== undefined ? { tokens: l.tokens } : {}) });
  }
  const backbone = data.backbone ?? data.models.find((m) => m.backbone)?.backbone ?? 'swin';
  const layers: QkLayerSummary[] = [...byLayer.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([layer, l]) => ({ layer, ...l, similarityMean: data.models.map((m) => m.layers.find((x) => x.layer === layer)?.similarity_mean ?? null) }));
  const models: QkModelSummary[] = data.models.map((m) => ({
    label: m.label,
    keyType: m.key_type,
    charts: m.charts,
    checkpoint: m.checkpoint,
    similarityMean: mean(m.layers.map((l) => l.similarity_mean)) ?? null,
  }));
  const candidates = [...(data.plot ? [join(dir, basename(data.plot))] : []), join(dir, 'qk.png')];
  const png = candidates.find(isRegularFile) ?? null;
  if (!png) warnings.push(`--analysis ${given}: qk.png is missing; the numbers are still in the table`);
  return { kind: 'qk', path: given, dir, json, backbone, models, layers, png };
}

/**
 * Reads the `--analysis` folders (in the order given; a folder holding both JSON files gives both
 * sections). Anything else is refused with one line (BadInputError, exit 2).
 */
export function loadAnalyses(paths: string[]): { analyses: ReportAnalysis[]; warnings: string[] } {
  const analyses: ReportAnalysis[] = [];
  const warnings: string[] = [];
  for (const given of paths) {
    const dir = resolve(given);
    if (!existsSync(dir)) throw new BadInputError(`--analysis ${JSON.stringify(given)}: no such folder; ${ACCEPTED}`);
    if (!statSync(dir).isDirectory()) throw new BadInputError(`--analysis ${JSON.stringify(given)} is a file, not a folder; ${ACCEPTED}`);
    const hasAttention = existsSync(join(dir, ATTENTION_JSON));
    const hasQk = existsSync(join(dir, QK_JSON));
    if (!hasAttention && !hasQk) throw new BadInputError(`--analysis ${JSON.stringify(given)} holds neither ${ATTENTION_JSON} nor ${QK_JSON}; ${ACCEPTED}`);
    if (hasAttention) analyses.push(readAttention(given, dir, warnings));
    if (hasQk) analyses.push(readQk(given, dir, warnings));
  }
  return { analyses, warnings };
}

/** Every PNG the sections show (absolute paths). */
export function analysisPngs(analyses: ReportAnalysis[]): string[] {
  return analyses.flatMap((a) => (a.kind === 'attention' ? a.grids.map((g) => g.png) : [a.png])).filter((p): p is string => p !== null);
}

/** Markdown: each PNG as a path relative to `baseDir` (the report file's folder, or the working directory for stdout). */
export function analysisLinks(analyses: ReportAnalysis[], baseDir: string): AnalysisImages {
  return Object.fromEntries(analysisPngs(analyses).map((p) => [p, relative(baseDir, p).split('\\').join('/') || basename(p)]));
}

/** HTML: each PNG as a base64 data URI. */
export function analysisDataUris(analyses: ReportAnalysis[]): AnalysisImages {
  return Object.fromEntries(analysisPngs(analyses).map((p) => [p, `data:image/png;base64,${readFileSync(p).toString('base64')}`]));
}

// ---------- rendering ----------

const f2 = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '' : (Math.round(v * 100) / 100 + 0).toFixed(2));
const f3 = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '' : (Math.round(v * 1000) / 1000 + 0).toFixed(3));

function describeKey(m: { keyType: string; charts: number | null; cbMode?: string | null }): string {
  return `${m.keyType}${m.charts ? `, ${m.charts} charts` : ''}${m.cbMode ? `, cb_mode ${m.cbMode}` : ''}`;
}

function attentionTable(a: AttentionAnalysis): { head: string[]; rows: string[][] } {
  const swin = a.backbone === 'swin';
  const head = ['Model', 'Key', 'Layer', 'Heads', 'Images', 'Entropy (mean)', swin ? 'Self (mean)' : 'Class self (mean)', ...(swin ? ['Mean distance'] : [])];
  const rows = a.models.map((m) => [
    m.label,
    describeKey(m),
    `${m.layer}${m.where ? ` (${m.where})` : ''}`,
    String(m.heads),
    String(m.images),
    f2(m.entropyMean),
    f3(m.selfMean),
    ...(swin ? [f2(m.meanDistanceMean)] : []),
  ]);
  return { head, rows };
}

function qkTable(a: QkAnalysis): { head: string[]; rows: string[][] } {
  const sims = a.models.map((m) => `${m.label}: similarity`);
  const means = a.models.map((m) => f2(m.similarityMean));
  if (a.backbone === 'vit') {
    // a ViT's layers are its blocks, each attending over all N tokens (no stages, no windows)
    const head = ['Block', 'Tokens', 'Width', ...sims];
    const rows = a.layers.map((l) => [String(l.block), l.tokens !== undefined ? String(l.tokens) : '', String(l.width), ...l.similarityMean.map(f2)]);
    rows.push(['mean', '', '', ...means]);
    return { head, rows };
  }
  const head = ['Layer', 'Stage.block', 'Width', ...sims];
  const rows = a.layers.map((l) => [String(l.layer), `${l.stage}.${l.block}`, String(l.width), ...l.similarityMean.map(f2)]);
  rows.push(['mean', '', '', ...means]);
  return { head, rows };
}

/** What the section's heading says an analysis is. */
function attentionKind(a: AttentionAnalysis): string {
  if (a.backbone === 'swin') return 'Swin, window attention';
  return a.method === 'rollout' ? 'ViT, class token, joint attention by rollout' : "ViT, class token, one block's own attention";
}
const qkKind = (a: QkAnalysis): string => (a.backbone === 'vit' ? 'ViT, blocks over all tokens' : 'Swin, blocks over windows');

const ATTENTION_NOTE = (a: AttentionAnalysis) =>
  a.backbone === 'swin'
    ? 'Per model, means over heads and images: entropy of the query\'s attention row (nats), its attention to itself, its attention-weighted distance from the query (cells). Grid rows: query maps, then received maps, per model.'
    : a.method === 'rollout'
      ? "Per model, means over heads and images: entropy of the class token's joint-attention row (nats; the attention of every block below rolled out with the residual path, the last block kept per head: docs/ANALYZE.md), its share to itself. Grid rows: one per model."
      : "Per model, means over heads and images: entropy of the class token's attention row in that block alone (nats), its attention to itself. Grid rows: one per model.";
const QK_NOTE = "Per layer, each model's similarity of scale * W_q^T W_k averaged over heads (> 0: heads attend to similar tokens, < 0: dissimilar ones); definitions in docs/ANALYZE.md.";

function rightAligned(h: string): boolean {
  return /^(Heads|Images|Entropy|Self|Class self|Mean distance|Layer|Block|Tokens|Width)/.test(h) || h.endsWith(': similarity');
}

export function renderAnalysisMarkdown(analyses: ReportAnalysis[], images: AnalysisImages): string[] {
  if (!analyses.length) return [];
  const out: string[] = ['## Attention analysis', ''];
  for (const a of analyses) {
    if (a.kind === 'attention') {
      out.push(`### analyze attention: ${a.path} (${attentionKind(a)})`, '');
      out.push(ATTENTION_NOTE(a), '');
      const t = attentionTable(a);
      out.push(markdownTable(t.head, t.rows, rightAligned), '');
      for (const g of a.grids) if (g.png && images[g.png]) out.push(`![attention grid: ${basename(g.image)}](${images[g.png]})`, '');
    } else {
      out.push(`### analyze qk: ${a.path} (${qkKind(a)})`, '');
      out.push(QK_NOTE, '');
      out.push(a.models.map((m) => `- ${m.label}: ${describeKey(m)} (${m.checkpoint})`).join('\n'), '');
      const t = qkTable(a);
      out.push(markdownTable(t.head, t.rows, rightAligned), '');
      if (a.png && images[a.png]) out.push(`![qk similarity per layer](${images[a.png]})`, '');
    }
  }
  return out;
}

function htmlTable(t: { head: string[]; rows: string[][] }): string {
  const th = t.head.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = t.rows.map((r) => `<tr>${r.map((c, i) => `<td${rightAligned(t.head[i]!) ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('');
  return `<div class="scroll"><table><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table></div>`;
}

export function renderAnalysisHtml(analyses: ReportAnalysis[], images: AnalysisImages): string[] {
  if (!analyses.length) return [];
  const h: string[] = ['<h2>Attention analysis</h2>', '<div class="analysis">'];
  for (const a of analyses) {
    if (a.kind === 'attention') {
      h.push(`<h3>analyze attention: ${esc(a.path)} <span class="sub">(${esc(attentionKind(a))})</span></h3>`);
      h.push(`<p class="sub">${esc(ATTENTION_NOTE(a))}</p>`);
      h.push(htmlTable(attentionTable(a)));
      for (const g of a.grids) {
        if (!g.png || !images[g.png]) continue;
        h.push(`<figure><img src="${esc(images[g.png]!)}" alt="${esc(`attention grid: ${basename(g.image)}`)}"><figcaption>${esc(g.image)}</figcaption></figure>`);
      }
    } else {
      h.push(`<h3>analyze qk: ${esc(a.path)} <span class="sub">(${esc(qkKind(a))})</span></h3>`);
      h.push(`<p class="sub">${esc(QK_NOTE)}<br>${a.models.map((m) => esc(`${m.label}: ${describeKey(m)} (${m.checkpoint})`)).join('<br>')}</p>`);
      h.push(htmlTable(qkTable(a)));
      if (a.png && images[a.png]) h.push(`<figure><img src="${esc(images[a.png]!)}" alt="qk similarity per layer"><figcaption>similarity per layer (qk.png)</figcaption></figure>`);
    }
  }
  h.push('</div>');
  return h;
}
