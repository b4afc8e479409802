/**
 * The Python entry points Node calls through the bridge, each with the schema of its arguments
 * and of its reply: the one typed interface to `ENTRIES` in python_shim/mkey_det/cli/bridge.py,
 * which names the same entries (test/bridge.test.ts holds the two lists equal). Call them with
 * `call(bridge, 'entry.name', args)`: the arguments are checked before they leave, the reply when
 * it arrives (a mismatch is one error naming the entry and the field), and the reply's type comes
 * from its schema.
 *
 * Arguments are strict objects (a misspelt key is an error here, not a TypeError in Python);
 * replies let unknown fields through, so that what Python adds reaches `--json` unchanged.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { MkeyError } from '../utils/errors.js';
import { pythonShimDir } from '../utils/paths.js';
import type { BridgeCallOptions, PythonBridge } from './bridge.js';
import { checkInterpreter } from './interpreter.js';
import { checkReply, fieldPath } from './reply.js';
import { attentionReply, qkReply } from './schemas/analyze.js';
import { EXPORT_FORMATS, exportReply } from './schemas/export.js';
import { runWorker } from './worker.js';

interface Entry<A extends z.ZodType, R extends z.ZodType> {
  args: A;
  reply: R;
  /** How long the call may take unless the caller says otherwise (the bridge's default: 10 min). */
  timeoutMs?: number;
}
const entry = <A extends z.ZodType, R extends z.ZodType>(e: Entry<A, R>): Entry<A, R> => e;

const int = z.number().int();
const str = z.string();
const record = z.record(z.string(), z.unknown());
const MINUTE = 60_000;

/** Where a demo dataset is cached; `force` generates it again. */
const demoArgs = z.strictObject({ root: str, seed: int.optional(), spec: record.optional(), force: z.boolean().optional() });

/** A run (a --work-dir) or a checkpoint to analyse, and its name in the output. */
const analysisSource = z.strictObject({ path: str, label: str });

export const ENTRIES = {
  // -- the bridge's own tests (test/bridge.test.ts)
  'selftest.echo': entry({ args: record, reply: record }),
  'selftest.raise': entry({ args: z.strictObject({ message: str.optional() }), reply: z.null() }),
  /** NaN and infinities come back as null. */
  'selftest.nan': entry({ args: z.strictObject({}), reply: z.strictObject({ nan: z.null(), inf: z.null(), ok: z.number() }) }),
  'selftest.pid': entry({ args: z.strictObject({}), reply: int }),
  'selftest.sleep': entry({ args: z.strictObject({ seconds: z.number().optional() }), reply: z.number() }),
  /** The names of bridge.py's ENTRIES, sorted (this list and that one are held equal). */
  'selftest.entries': entry({ args: z.strictObject({}), reply: z.array(str) }),

  // -- runs (python_shim/mkey_det/cli/runs.py): the checks before a launch
  /** Builds the config's backbone, counts the GPUs; RuntimeError when `gpus` exceeds them. */
  'runs.preflight': entry({
    args: z.strictObject({ config_path: str, gpus: int.optional() }),
    reply: z.looseObject({
      backbone_type: str,
      key_type: str,
      num_charts: int.nullable(),
      backbone_params: int,
      cuda_devices: int,
      /** Mixed-precision dtypes the visible GPUs support (empty without CUDA). */
      amp_dtypes: z.array(z.enum(['fp16', 'bf16'])),
      toolbox: z.enum(['mmdet', 'mmpretrain']),
      /** The toolbox's own tools/ (train.py, test.py). */
      tools_dir: str,
      max_epochs: z.number().nullable(),
      max_iters: z.number().nullable(),
    }),
    timeoutMs: 5 * MINUTE,
  }),
  /** ValueError naming the first keys that do not fit. */
  'runs.check_checkpoint': entry({
    args: z.strictObject({ config_path: str, checkpoint_path: str }),
    reply: z.strictObject({ tensors: int }),
    timeoutMs: 10 * MINUTE,
  }),

  // -- configs (runs.py, cfg_types.py)
  /** A config loaded by mmengine: the fields tests and reports read. */
  'config.summary': entry({
    args: z.strictObject({ config_path: str }),
    reply: z.looseObject({
      data_root: str.nullable(),
      train_data_root: str.nullable(),
      train_ann_file: str.nullable(),
      train_img: str.nullable(),
      val_ann_file: str.nullable(),
      classes: z.array(str),
      backbone: record,
      num_classes: int,
      mkey_experiment: record,
      train_cfg: record,
      param_scheduler: z.array(record),
      optimizer: record,
      optim_wrapper: record,
      custom_imports: record,
    }),
  }),
  /** `train --config FILE`: the user's config made into a self-contained run config. */
  'config.user_config': entry({
    args: z.strictObject({
      config_path: str,
      cfg_options: z.array(str),
      key_type: str.nullable(),
      num_charts: int.nullable(),
      amp: z.enum(['fp16', 'bf16']).nullable(),
      tensorboard: z.boolean(),
      attn_impl: str.nullable(),
      key_order: str.nullable(),
      tf32: z.boolean(),
      generator: str,
    }),
    reply: z.looseObject({ text: str, toolbox: z.enum(['mmdet', 'mmpretrain']), backbone_type: str.nullable(), key_type: str, num_charts: int.nullable() }),
    timeoutMs: 5 * MINUTE,
  }),
  /** Path -> value in the base config as mmengine loads it (tuples as `{__tuple__: [...]}`). */
  'config.base_values': entry({
    args: z.strictObject({ base: str, paths: z.array(str) }),
    reply: record,
    timeoutMs: 5 * MINUTE,
  }),
  /** The `[key, value]` pairs whose type or scope value is not registered. */
  'config.check_type_names': entry({
    args: z.strictObject({ pairs: z.array(z.tuple([str, str])) }),
    reply: z.array(z.strictObject({ key: str, value: str, reason: z.enum(['type', 'scope']), accepted: str })),
    timeoutMs: 5 * MINUTE,
  }),

  // -- demo datasets (python_shim/mkey_det/data/): generated once, then reused while intact
  'data.ensure_demo': entry({
    args: demoArgs,
    reply: z.looseObject({ root: str, classes: z.array(str), num_train: int, num_val: int, generated: z.boolean(), reason: str.nullable().optional() }),
  }),
  'data.ensure_demo_cls': entry({
    args: demoArgs,
    reply: z.looseObject({
      root: str,
      train_dir: str,
      val_dir: str,
      classes: z.array(str),
      num_train: int,
      num_val: int,
      generated: z.boolean(),
      /** Why it was generated; null when an intact cache was reused. */
      reason: str.nullable(),
    }),
  }),

  // -- export (python_shim/mkey_det/export/)
  'export.backbone': entry({
    args: z.strictObject({
      key_type: str,
      variant: str,
      charts: int,
      checkpoint: str.nullable(),
      format: z.enum(EXPORT_FORMATS),
      input_shape: z.tuple([int, int, int, int]),
      dynamic: z.boolean(),
      fold_keys: z.boolean(),
      out: str,
      force: z.boolean(),
      check_sizes: z.array(z.tuple([int, int])).nullable(),
      threshold: z.number(),
      fold_threshold: z.number(),
      opset: int,
      seed: int,
      flops: z.boolean(),
      tool_version: str,
    }),
    reply: exportReply,
    /** Large sizes with 8-chart keys take minutes on a CPU. */
    timeoutMs: 180 * MINUTE,
  }),
  /** The PyTorch outputs of the backbone export.backbone builds, as .npy files (tests compare onnxruntime-node with them). */
  'export.reference_outputs': entry({
    args: z.strictObject({
      key_type: str,
      out_dir: str,
      image: str,
      charts: int.optional(),
      checkpoint: str.nullable().optional(),
      seed: int.optional(),
      fold_keys: z.boolean().optional(),
      size: z.tuple([int, int]).nullable().optional(),
      pad_divisor: int.nullable().optional(),
    }),
    reply: z.looseObject({ input_shape: z.array(int), outputs: z.array(str), shapes: z.array(z.array(int)) }),
  }),
  /** The photographs parity is checked on. */
  'export.sample_images': entry({ args: z.strictObject({}), reply: z.array(str) }),

  // -- analyze (python_shim/mkey_det/cli/analyze.py)
  'analyze.qk': entry({
    args: z.strictObject({ sources: z.array(analysisSource), plot: str.nullable() }),
    reply: qkReply,
    timeoutMs: 10 * MINUTE,
  }),
  'analyze.attention': entry({
    args: z.strictObject({
      sources: z.array(analysisSource),
      images: z.array(str),
      layer: int.nullable(),
      query: z.tuple([z.number(), z.number()]).nullable(),
      size: int.nullable(),
      pngs: z.array(str).nullable(),
      /** ViT: rollout (null: the default) or block; a Swin takes block or null. */
      method: z.enum(['rollout', 'block']).nullable(),
    }),
    reply: attentionReply,
    timeoutMs: 10 * MINUTE,
  }),
} as const;

export type EntryName = keyof typeof ENTRIES;
export type EntryArgs<N extends EntryName> = z.input<(typeof ENTRIES)[N]['args']>;
export type EntryReply<N extends EntryName> = z.output<(typeof ENTRIES)[N]['reply']>;

/**
 * Calls entry `name` with `args` and returns its reply, both checked against the entry's schemas.
 * Python's exceptions come back as PythonError (see `asBadInput` for the user's mistakes).
 */
export async function call<N extends EntryName>(bridge: PythonBridge, name: N, args: EntryArgs<N>, opts: BridgeCallOptions = {}): Promise<EntryReply<N>> {
  const def: Entry<z.ZodType, z.ZodType> = ENTRIES[name];
  const raw = await bridge.call(name, checkedArgs(name, args), { timeoutMs: opts.timeoutMs ?? def.timeoutMs });
  return checkReply(def.reply, raw, `Python entry ${name}`) as EntryReply<N>;
}

/** The entries that need no model (python_shim/mkey_det/cli/light_entry.py's LIGHT_MODULES). */
export type LightEntryName = Extract<EntryName, `data.${string}`>;

/**
 * Calls entry `name` as `call` does, in a Python process of its own that does not import the
 * models (light_entry.py, by file path): under a second where a bridge first spends about 9 s of
 * CPU importing torch, MMDetection and mmpretrain. For the demo datasets, checked before every
 * `--data demo` command.
 */
export async function callWithoutModels<N extends LightEntryName>(name: N, args: EntryArgs<N>): Promise<EntryReply<N>> {
  const def: Entry<z.ZodType, z.ZodType> = ENTRIES[name];
  return (await runWorker({
    python: await checkInterpreter(),
    run: { script: join(pythonShimDir, 'mkey_det', 'cli', 'light_entry.py') },
    args: [name, JSON.stringify(checkedArgs(name, args))],
    label: `Python entry ${name}`,
    result: def.reply,
    timeoutMs: def.timeoutMs,
  })) as EntryReply<N>;
}

function checkedArgs(name: EntryName, args: unknown): Record<string, unknown> {
  const checked = ENTRIES[name].args.safeParse(args);
  if (!checked.success) {
    const first = checked.error.issues[0];
    throw new MkeyError(`bridge entry ${name}: argument ${fieldPath(first?.path ?? [])}: ${first?.message ?? 'invalid'}`);
  }
  return checked.data as Record<string, unknown>;
}
