/**
 * The replies of `analyze.qk` and `analyze.attention` (python_shim/mkey_det/cli/analyze.py; the
 * numbers are defined in python_shim/mkey_det/analysis/ and docs/ANALYZE.md). Unknown fields pass
 * through: they reach `--json` and the written qk.json / attention.json as Python made them.
 */
import { z } from 'zod';

const pair = z.tuple([z.number(), z.number()]);
const grid = z.array(z.array(z.number()));

export const qkHead = z.looseObject({
  similarity: z.number(),
  singular_values: z.array(z.number()),
  /** Per chart, its top 3 singular values (manifold keys only). */
  chart_top_singular_values: z.array(z.array(z.number())).optional(),
});

export const qkLayer = z.looseObject({
  stage: z.number().int(),
  block: z.number().int(),
  /** Depth order over all stages. */
  layer: z.number().int(),
  width: z.number().int(),
  /** N: the tokens one attention sees (Swin: a window's, 49; ViT: all, the class token included, 197 at 224 px). */
  tokens: z.number().int().optional(),
  charts: z.number().int(),
  /** How much of the key comes from other tokens than its own (0 for the linear key). */
  off_zero_offset_share: z.number(),
  similarity_mean: z.number(),
  heads: z.array(qkHead),
});

/** A model both analyses name: what was given (label, path) and what was loaded (python_shim/mkey_det/cli/analyze.py load_backbone). */
const analyzedModel = z.looseObject({
  label: z.string(),
  path: z.string(),
  checkpoint: z.string(),
  config: z.string().nullable(),
  /** Swin (qk: layers in depth order over the stages, stage.block; attention: its windows) or ViT (qk: its blocks, stage 0; attention: its class token); one kind per call. */
  backbone: z.enum(['swin', 'vit']),
  key_type: z.string(),
  charts: z.number().int().nullable(),
});

export const qkModel = analyzedModel.extend({
  backbone: analyzedModel.shape.backbone.optional(),
  layers: z.array(qkLayer),
});

export const qkReply = z.looseObject({
  /** One kind per call. */
  backbone: z.enum(['swin', 'vit']).optional(),
  models: z.array(qkModel),
  /** The PNG written (with a plot path). */
  plot: z.string().optional(),
});

/** One head's numbers in both attention analyses: of the query's row (Swin: a window location; ViT: the class token). */
const headStats = z.looseObject({
  head: z.number().int(),
  /** Of the query's attention row, in nats (log N is uniform: Swin, over the window; ViT, over all N tokens). */
  entropy: z.number(),
  /** The largest value of the query's map (ViT: a patch, its own column left out). */
  max: z.number(),
  /** [row, column] of that cell or patch. */
  max_cell: pair,
  /** The query's attention to itself (ViT: not drawn). */
  self: z.number(),
});

export const attentionHeadStats = headStats.extend({
  /** Attention-weighted distance from the query, in cells. */
  mean_distance: z.number(),
  /** Attention of the query that goes to window padding (no image location). */
  padding_share: z.number(),
  received_max: z.number(),
  received_min: z.number(),
});

export const attentionMaps = z.looseObject({
  backbone: z.literal('swin'),
  label: z.string(),
  /** Depth order over all stages (as `analyze qk`'s layer). */
  layer: z.number().int(),
  stage: z.number().int(),
  block: z.number().int(),
  heads: z.number().int(),
  window: z.number().int(),
  /** 0: regular windows, > 0: shifted windows. */
  shift: z.number().int(),
  /** Input pixels per feature cell. */
  stride: z.number(),
  /** Feature grid [rows, columns]. */
  grid: pair,
  windows: z.number().int(),
  query_cell: pair,
  query_window: z.number().int(),
  head_stats: z.array(attentionHeadStats),
  /** 1 where a cell is in the query's window, else 0. */
  in_window: grid,
  /** Per head, the query's attention over the grid (0 outside its window). */
  query_maps: z.array(grid),
  /** Per head, the attention each cell receives, summed over the queries of its window. */
  received_maps: z.array(grid),
});

export const vitHeadStats = headStats.extend({
  /** The class map's sum: its attention to the patches. */
  patch_share: z.number(),
});

/** ViT: the joint attention of blocks 0..layer (the last per head), or block layer's own. */
export const vitMethod = z.enum(['rollout', 'block']);

export const vitAttentionMaps = z.looseObject({
  backbone: z.literal('vit'),
  label: z.string(),
  /** rollout: the maps are the joint attention of blocks 0..layer; block: block layer's own. */
  method: vitMethod,
  /** 0-based block of the ViT (rollout: the last block rolled out, kept per head). */
  layer: z.number().int(),
  /** Blocks in the ViT. */
  layers: z.number().int(),
  heads: z.number().int(),
  /** Patch grid [rows, columns]. */
  grid: pair,
  /** Input pixels per patch. */
  stride: z.number(),
  /** Tokens the block sees: extra tokens (the class token first), then the patches. */
  tokens: z.number().int(),
  extra_tokens: z.number().int(),
  head_stats: z.array(vitHeadStats),
  /** Per head, the class token's attention over the patch grid (its own column left out). */
  class_maps: z.array(grid),
});

export const attentionImage = z.looseObject({
  path: z.string(),
  /** The file's [width, height]. */
  size: pair,
  /** [width, height] as fed to the models. */
  input_size: pair,
  /** Swin: [x, y] in the file's pixels; ViT: null (the class token has no location). */
  query: pair.nullable(),
  /** ViT: the centre crop fed, [x, y, width, height] in the file's pixels. */
  crop: z.tuple([z.number(), z.number(), z.number(), z.number()]).optional(),
  models: z.array(z.discriminatedUnion('backbone', [attentionMaps, vitAttentionMaps])),
  /** The grid PNG (with --out). */
  png: z.string().optional(),
});

export const attentionModel = analyzedModel.extend({
  /** KUA / VanillaK: their CB form (eq4, per_location, none). */
  cb_mode: z.string().nullable(),
});

export const attentionReply = z.looseObject({
  backbone: z.enum(['swin', 'vit']),
  /** ViT: rollout or block; Swin: block (its window attention). */
  method: vitMethod,
  models: z.array(attentionModel),
  images: z.array(attentionImage),
});
