import { Command, Option } from 'commander';
import { z } from 'zod';
import { runBench } from '../core/bench/bench.js';
import { BENCH_DEVICES, SUITE_CHOICES } from '../core/bench/types.js';
import { TOOL_VERSION } from '../core/train.js';
import { ExitCode, handleError } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { intOption, parseOptions } from '../utils/options.js';

const benchOptionsSchema = z.object({
  suite: z.enum(SUITE_CHOICES, { message: `accepted: ${SUITE_CHOICES.join(', ')}` }),
  device: z.enum(BENCH_DEVICES, { message: `accepted: ${BENCH_DEVICES.join(', ')}` }),
  threads: intOption('--threads', 1, 256).optional(),
  out: z.string().min(1).optional(),
  quick: z.boolean().default(false),
  keepWorkDir: z.boolean().default(false),
  json: z.boolean().default(false),
});

export const benchCommand = new Command('bench')
  .description('measure what a manifold key costs: params/FLOPs, key modules vs the literal Algorithm 1, backbone latency per runtime, one training step')
  .addOption(new Option('--suite <name>', `params, module, backbone, train, or all`).default('all'))
  .addOption(new Option('--device <device>', 'cpu or cuda (cuda needs a CUDA build of PyTorch and a GPU)').default('cpu'))
  .option('--threads <n>', "PyTorch and onnxruntime threads (default: PyTorch's own choice)")
  .option('-o, --out <file>', 'results file: FILE.json and FILE.md are written (default: benchmarks/results/<suite>-<timestamp>.json)')
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
  train     one Mask R-CNN + FPN training step per variant (fresh process each): time, peak RSS,
            ratios to Swin-T next to the FLOPs ratio

Progress: one line per measurement on stderr. Results: JSON + markdown files, the markdown (or
with --json the report) on stdout. Timings on a shared machine are noisy: every measurement
records the load average.
Exit codes: 0 ok, 1 a suite failed or ours differs from the literal transcription, 2 bad input
(e.g. --device cuda without CUDA), 3 Python not set up, 130 interrupted.

Examples:
  mkey-det bench --suite params --quick
  mkey-det bench --suite all --json --out benchmarks/results/all.json`,
  )
  .action(async (raw: unknown) => {
    const opts = parseOptions(benchOptionsSchema, raw);
    try {
      const outcome = await runBench({
        suite: opts.suite,
        device: opts.device,
        quick: opts.quick,
        threads: opts.threads,
        out: opts.out,
        toolVersion: TOOL_VERSION,
        keepWorkDir: opts.keepWorkDir,
        onProgress: (p) => logger.info(`[${p.suite} ${p.index}/${p.total}] ${p.line}`),
      });
      emit({ ...outcome.report, json_path: outcome.jsonPath, markdown_path: outcome.markdownPath }, opts, () => outcome.markdown.trimEnd());
      logger.info(`wrote ${outcome.jsonPath} and ${outcome.markdownPath}`);
      if (!outcome.report.ok) {
        for (const f of outcome.report.failures) logger.error(f);
        if (opts.keepWorkDir || outcome.report.failures.some((f) => !f.startsWith('module:'))) logger.hint(`scratch folder with the suites' logs: ${outcome.workDir}`);
        process.exitCode = ExitCode.failure;
      }
    } catch (err) {
      handleError(err, opts);
    }
  });
