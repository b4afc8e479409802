import { Command, Option } from 'commander';
import { z } from 'zod';
import { runBench } from '../core/bench/bench.js';
import { BENCH_DEVICES, BENCH_PRECISIONS, SUITE_CHOICES, TRAIN_DEFAULTS, type BenchPrecision } from '../core/bench/types.js';
import { ATTN_IMPLS, BACKBONE_NAMES, KEY_ORDERS } from '../core/experiment.js';
import { TOOL_VERSION } from '../version.js';
import { guardedAction } from '../utils/command.js';
import { ExitCode } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { intOption, parseOptions } from '../utils/options.js';

const MAX_BATCH = 128;

/** A comma list option (commander hands us one string): trimmed, non-empty, duplicates dropped, each item checked. */
function listOption<T>(accepted: string, item: (s: string) => T | undefined) {
  return z.coerce.string().transform((raw, ctx) => {
    const parts = raw.split(',').map((p) => p.trim());
    const out: T[] = [];
    for (const p of parts) {
      const v = p === '' ? undefined : item(p);
      if (v === undefined) {
        ctx.addIssue({ code: 'custom', message: `${p === '' ? 'empty item' : `"${p}" is not accepted`}; accepted: a comma list of ${accepted}` });
        return z.NEVER;
      }
      if (!out.includes(v)) out.push(v);
    }
    return out;
  });
}

const benchOptionsSchema = z
  .object({
    suite: z.enum(SUITE_CHOICES, { message: `accepted: ${SUITE_CHOICES.join(', ')}` }),
    device: z.enum(BENCH_DEVICES, { message: `accepted: ${BENCH_DEVICES.join(', ')}` }),
    threads: intOption('--threads', 1, 256).optional(),
    variants: listOption(BACKBONE_NAMES.join(', '), (s) => (BACKBONE_NAMES.includes(s) ? s : undefined)).optional(),
    batchSizes: listOption(`integers from 1 to ${MAX_BATCH}`, (s) => {
      if (!/^\d+$/.test(s)) return undefined;
      const n = Number(s);
      return n >= 1 && n <= MAX_BATCH ? n : undefined;
    }).optional(),
    precisions: listOption(BENCH_PRECISIONS.join(', '), (s) => ((BENCH_PRECISIONS as readonly string[]).includes(s) ? (s as BenchPrecision) : undefined)).optional(),
    size: intOption('--size', 64, 4096).optional(),
    steps: intOption('--steps', 1, 1000).optional(),
    warmup: intOption('--warmup', 0, 1000).optional(),
    attnImpl: z.enum(ATTN_IMPLS, { message: `accepted: ${ATTN_IMPLS.join(', ')}` }).optional(),
    keyOrder: z.enum(KEY_ORDERS, { message: `accepted: ${KEY_ORDERS.join(', ')}` }).optional(),
    out: z.string().min(1).optional(),
    quick: z.boolean().default(false),
    keepWorkDir: z.boolean().default(false),
    force: z.boolean().default(false),
    json: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    const trainOpts = (['variants', 'batchSizes', 'precisions', 'size', 'steps', 'warmup', 'attnImpl', 'keyOrder'] as const).filter((k) => o[k] !== undefined);
    if (trainOpts.length && o.suite !== 'train' && o.suite !== 'all') {
      ctx.addIssue({ code: 'custom', path: [trainOpts[0]!], message: `applies to the train suite only (--suite train or all; got --suite ${o.suite})` });
    }
    const amp = (o.precisions ?? []).filter((p) => p !== 'fp32');
    if (o.device === 'cpu' && amp.length) {
      ctx.addIssue({ code: 'custom', path: ['precisions'], message: `${amp.join(', ')}: mixed precision (AmpOptimWrapper) needs --device cuda; accepted on cpu: fp32` });
    }
  });

export const benchCommand = new Command('bench')
  .description('measure what a manifold key costs: params/FLOPs, key modules vs the literal Algorithm 1, backbone latency per runtime, one training step')
  .addOption(new Option('--suite <name>', `params, module, backbone, train, or all`).default('all'))
  .addOption(new Option('--device <device>', 'cpu or cuda (cuda needs a CUDA build of PyTorch and a GPU)').default('cpu'))
  .option('--threads <n>', "PyTorch and onnxruntime threads (default: PyTorch's own choice)")
  .option('--variants <list>', `train suite: comma list of ${BACKBONE_NAMES.join(', ')} (default: all; swin-t is always run, the baseline of the ratios)`)
  .option('--batch-sizes <list>', `train suite: comma list of batch sizes (default: cpu ${TRAIN_DEFAULTS.cpu.batchSizes.join(',')}, cuda ${TRAIN_DEFAULTS.cuda.batchSizes.join(',')})`)
  .option('--precisions <list>', `train suite: comma list of ${BENCH_PRECISIONS.join(', ')}; fp16/bf16 = AmpOptimWrapper, cuda only (default: cpu ${TRAIN_DEFAULTS.cpu.precisions.join(',')}, cuda ${TRAIN_DEFAULTS.cuda.precisions.join(',')})`)
  .option('--size <px>', `train suite: side of the square synthetic images (default: cpu ${TRAIN_DEFAULTS.cpu.size}, cuda ${TRAIN_DEFAULTS.cuda.size})`)
  .option('--steps <n>', `train suite: timed rounds, one step of every variant per round (default: cpu ${TRAIN_DEFAULTS.cpu.steps}, cuda ${TRAIN_DEFAULTS.cuda.steps})`)
  .option('--warmup <n>', `train suite: untimed warm-up rounds before them (default: cpu ${TRAIN_DEFAULTS.cpu.warmup}, cuda ${TRAIN_DEFAULTS.cuda.warmup})`)
  .option('--attn-impl <impl>', `train suite: window attention of the manifold-key variants, ${ATTN_IMPLS.join(' or ')} (the swin-t baseline stays the stock recipe; default: as mkey-det config)`)
  .option('--key-order <order>', `train suite: key order of the manifold-key variants, ${KEY_ORDERS.join(', ')} (default: as mkey-det config)`)
  .option('-o, --out <file>', 'results file: FILE.json and FILE.md are written (default: benchmarks/results/<suite>-<timestamp>.json)')
  .option('--force', 'replace existing FILE.json / FILE.md (without it they are refused before any timing)', false)
  .option('--quick', 'fewer repeats and smaller sizes (smoke runs, tests)', false)
  .option('--keep-work-dir', 'keep the scratch folder (exported models, generated configs, child logs)', false)
  .option('--json', 'print the report as JSON instead of the markdown tables', false)
  .addHelpText(
    'after',
    `
Suites (docs/BENCH.md):
  params    parameters and FLOPs (fvcore) of Swin-T and the four variants at 4 and 8 charts,
            224x224 and 800x1216, paper/fast/folded order, next to the paper's Table 1
  module    forward+backward of our key modules (order 'fast') vs a literal transcription of
            Algorithm 1 at every Swin-T stage's shapes; outputs and gradients checked equal
  backbone  inference latency of Swin-T and SpatialK (8 charts): eager, folded, TorchScript,
            onnxruntime-node; GFLOP/s against torch.mm's in the same run
  train     one Mask R-CNN + FPN training step per variant, batch size and precision: step time
            (all variants in one process, timed in interleaved rounds; the ratio to Swin-T with a
            95% bootstrap interval), images/s, peak memory (its own pass: GPU on cuda, RSS on
            cpu), next to the FLOPs ratio

Progress: one line per measurement on stderr. Results: JSON + markdown files, the markdown (or
with --json the report) on stdout. Timings on a shared machine are noisy: every measurement
records the load average.
Exit codes: 0 ok, 1 a suite failed or ours differs from the literal transcription, 2 bad input
(e.g. --device cuda without CUDA, --precisions bf16 on cpu, --out files already there without --force), 3 Python not set up, 130 interrupted.

Examples:
  mkey-det bench --suite params --quick
  mkey-det bench --suite all --json --out benchmarks/results/all.json
  mkey-det bench --suite train --steps 20 --warmup 3 --out benchmarks/results/train-cpu.json
  mkey-det bench --suite params --out benchmarks/results/params.json --force   # replace an earlier result
  mkey-det bench --suite train --device cuda --variants swin-t,swin-t-spatialk \\
      --batch-sizes 2,8 --precisions fp32,bf16 --out benchmarks/results/train-gpu.json
  # SpatialK on its fast paths against the stock Swin-T recipe (issue 17's GPU comparison)
  mkey-det bench --suite train --device cuda --variants swin-t-spatialk --batch-sizes 8 \
      --precisions fp32,fp16 --attn-impl sdpa --key-order auto`,
  )
  .action(
    guardedAction(async (raw: unknown) => {
      const opts = parseOptions(benchOptionsSchema, raw);
      const outcome = await runBench({
        suite: opts.suite,
        device: opts.device,
        quick: opts.quick,
        threads: opts.threads,
        train: { variants: opts.variants, batchSizes: opts.batchSizes, precisions: opts.precisions, size: opts.size, steps: opts.steps, warmup: opts.warmup, attnImpl: opts.attnImpl, keyOrder: opts.keyOrder },
        out: opts.out,
        toolVersion: TOOL_VERSION,
        keepWorkDir: opts.keepWorkDir,
        force: opts.force,
        onProgress: (p) => logger.info(p.index === undefined ? `[${p.suite}] ${p.line}` : `[${p.suite} ${p.index}/${p.total}] ${p.line}`),
      });
      emit({ ...outcome.report, json_path: outcome.jsonPath, markdown_path: outcome.markdownPath }, opts, () => outcome.markdown.trimEnd());
      logger.info(`wrote ${outcome.jsonPath} and ${outcome.markdownPath}`);
      if (!outcome.report.ok) {
        for (const f of outcome.report.failures) logger.error(f);
        if (opts.keepWorkDir || outcome.report.failures.some((f) => !f.startsWith('module:'))) logger.hint(`scratch folder with the suites' logs: ${outcome.workDir}`);
        process.exitCode = ExitCode.failure;
      }
    }),
  );
