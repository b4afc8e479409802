/** Markdown tables of a benchmark report (printed on stdout and written next to the JSON file). */
import { markdownTable as table } from '../../utils/format.js';
import type { BackboneRow, BenchReport, ModuleRow, ParamsRow, SuiteResult, TimeStats, TrainRow } from './types.js';

const num = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
const ms = (s: number | null | undefined, digits = 1): string => (s === null || s === undefined ? 'n/a' : (s * 1e3).toFixed(digits));
const giga = (v: number | null | undefined): string => num(v === null || v === undefined ? v : v / 1e9, 2);
const mega = (v: number | null | undefined): string => num(v === null || v === undefined ? v : v / 1e6, 1);
const x = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(2)}x`);
const sci = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : v === 0 ? '0' : v.toExponential(1));
const load = (l: number[] | null | undefined): string => (l && l.length ? l.map((v) => v.toFixed(2)).join(' ') : 'n/a');
const spreadMs = (t: TimeStats): string => `${ms(t.q1)}-${ms(t.q3)} (${ms(t.min)}-${ms(t.max)})`;

function machineSection(report: BenchReport): string {
  const py = report.machine.python;
  const n = report.machine.node;
  const lines = ['## Machine', ''];
  lines.push(`- CPU: ${py?.cpu_model ?? n.cpu_model ?? 'unknown'}, ${py?.logical_cores ?? n.cpus} logical cores (${py?.affinity_cores ?? '?'} usable), RAM ${num(py?.ram_gib ?? n.total_mem_gib, 1)} GiB`);
  if (py) {
    lines.push(`- torch ${py.versions.torch} (threads ${py.torch_threads}, inter-op ${py.torch_interop_threads}, MKL ${py.mkl ? 'yes' : 'no'}, oneDNN ${py.mkldnn ? 'yes' : 'no'}), mmcv ${py.versions.mmcv}, mmengine ${py.versions.mmengine}, mmdet ${py.versions.mmdet}, onnxruntime ${py.versions.onnxruntime}, Python ${py.python}`);
    const peaks = Object.entries(report.suites)
      .filter(([, r]) => r?.machine.matmul_peak)
      .map(([name, r]) => `${name} ${num(r!.machine.matmul_peak!.gflops_median, 1)} (best ${num(r!.machine.matmul_peak!.gflops_best, 1)})`);
    if (peaks.length) lines.push(`- float32 torch.mm GFLOP/s at the start of each suite (median of ${py.matmul_peak?.n ?? 2048}^2 products): ${peaks.join(', ')}`);
  }
  const gpu = py?.cuda;
  if (gpu) lines.push(`- GPU: ${gpu.name} (${num(gpu.total_memory_gib, 1)} GiB, compute capability ${gpu.capability}), CUDA ${gpu.cuda ?? '?'}`);
  lines.push(`- Node ${n.version}, onnxruntime-node ${n.onnxruntime_node ?? 'n/a'} (CPU); device ${report.device}${report.quick ? '; --quick' : ''}`);
  lines.push(`- load average (1/5/15 min): before ${load(report.machine.loadavg_before)}, after ${load(report.machine.loadavg_after)}`);
  return lines.join('\n');
}

export function paramsMarkdown(res: SuiteResult): string {
  const rows = res.rows as ParamsRow[];
  const body = rows.map((r) => [
    r.size + (r.imagenet_head ? ' (+head)' : ''),
    r.label,
    r.charts === null ? '-' : String(r.charts),
    mega(r.paper.params),
    giga(r.paper.flops),
    r.fast ? giga(r.fast.flops) : '-',
    r.folded ? `${giga(r.folded.flops)} / ${mega(r.folded.params)}M` : '-',
    r.table1 ? `${r.table1.params_m}M / ${r.table1.flops_g}G` : '',
    r.ratio_to_swin_t ? `${x(r.ratio_to_swin_t.params)} / ${x(r.ratio_to_swin_t.flops_paper)} / ${x(r.ratio_to_swin_t.flops_fast)} / ${x(r.ratio_to_swin_t.flops_folded)}` : '',
  ]);
  return [
    '## params: parameters and FLOPs (fvcore: multiply-adds of matmul/conv)',
    '',
    table(['size', 'model', 'charts', 'params [M]', 'GFLOPs paper', 'GFLOPs fast', 'folded GFLOPs / params', 'Table 1', 'x Swin-T: params / paper / fast / folded'], body),
    '',
    '224x224 counts include the ImageNet head (as Table 1); 800x1216 is the detection backbone (4 outputs, no head). "fast" is the training path (`order=\'fast\'`), "folded" the inference form (`fold_backbone`).',
  ].join('\n');
}

export function moduleMarkdown(res: SuiteResult): string {
  const rows = res.rows as ModuleRow[];
  const body = rows.map((r) => {
    const t = r.timing.times;
    const ours = r.timing.ratios.ours;
    const forced = r.timing.ratios.ours_fold_always;
    return [
      r.setting,
      String(r.stage),
      String(r.dim),
      String(r.batch_windows),
      String(r.tokens),
      r.variant,
      `${ms(t.literal?.median)} (${ms(t.literal?.min)}-${ms(t.literal?.max)})`,
      `${ms(t.ours?.median)} (${ms(t.ours?.min)}-${ms(t.ours?.max)}) ${r.ours_path}`,
      ours ? `**${x(ours.median_ratio)}** (${num(ours.round_min)}-${num(ours.round_max)})` : 'n/a',
      forced ? x(forced.median_ratio) : '',
      x(r.cost_model.predicted_fold_speedup),
      `${sci(r.check.output)} / ${sci(r.check.max_grad)}${r.check.passed ? '' : ' FAILED'}`,
    ];
  });
  const lines = [
    '## module: forward+backward of one key call, ours (order \'fast\') vs the literal Algorithm 1',
    '',
    table(['setting', 'stage', 'C', "B'", 'T', 'variant', 'literal [ms] (min-max)', 'ours [ms] (min-max), path', 'speedup (per-round min-max)', 'fold always', 'FLOP-model bound', 'max rel diff out / grads'], body),
    '',
    `Speedup = literal / ours (median of interleaved rounds). "FLOP-model bound" = multiply-adds of the paper order / of the folded order (SpatialK/KUA: (2C+N)T / ((C+N)T + C^2); SimpleK/VanillaK: 1). Relative differences: max|ours - literal| / max|literal| (tolerance ${sci(rows[0]?.check.tolerance)}).`,
  ];
  if (res.target && res.target.cells.length) {
    const missed = res.target.cells.filter((c) => !c.met);
    lines.push('', `Target (ours >= ${res.target.target}x the literal transcription at 800x1216, every stage): ${res.target.met_everywhere ? 'met everywhere' : `missed in ${missed.length} of ${res.target.cells.length} cells: ${missed.map((c) => `${c.setting} stage ${c.stage} ${c.variant} ${x(c.measured)}${c.fold_always ? ` (fold always ${x(c.fold_always)})` : ''}, FLOP bound ${x(c.flop_bound)}`).join('; ')}`}. See docs/BENCH.md for the bound.`);
  }
  return lines.join('\n');
}

export function backboneMarkdown(res: SuiteResult): string {
  const rows = res.rows as BackboneRow[];
  const peak = res.machine.matmul_peak;
  // SpatialK against Swin-T in the same runtime (eager_paper/folded: against Swin-T eager)
  const sameRuntime = (r: BackboneRow): number | null => {
    if (r.model === 'swin-t' || !r.latency) return r.model === 'swin-t' && r.latency ? 1 : null;
    const rt = ['torchscript', 'onnx'].includes(r.runtime) ? r.runtime : 'eager';
    const base = rows.find((b) => b.size === r.size && b.model === 'swin-t' && b.runtime === rt && b.latency);
    return base?.latency ? r.latency.median / base.latency.median : null;
  };
  const body = rows.map((r) =>
    r.latency
      ? [r.size, r.model, r.runtime, ms(r.latency.median), spreadMs(r.latency), String(r.latency.n), x(r.ratio_to_swin_t_eager), x(sameRuntime(r)), giga(r.flops), num(r.gflops, 1), r.fraction_of_matmul_peak ? `${(100 * r.fraction_of_matmul_peak).toFixed(0)}%` : 'n/a', sci(r.parity)]
      : [r.size, r.model, r.runtime, `unavailable: ${r.unavailable ?? '?'}`, '', '', '', '', giga(r.flops), '', '', ''],
  );
  return [
    '## backbone: inference latency, batch 1 (Swin-T vs SpatialK 8 charts)',
    '',
    table(['size', 'model', 'runtime', 'median [ms]', 'IQR (min-max) [ms]', 'n', 'x Swin-T eager', 'x Swin-T same runtime', 'GFLOPs (fvcore)', 'GFLOP/s', '% of mm peak', 'rel diff'], body),
    '',
    `GFLOP/s = 2 x fvcore multiply-adds / median latency; peak = float32 torch.mm ${peak?.n ?? 2048}^2 in the same run: ${num(res.matmul_peak_before?.gflops_median ?? peak?.gflops_median, 1)} GFLOP/s before, ${num(res.matmul_peak_after?.gflops_median, 1)} after. SpatialK "eager" is order 'fast', "eager_paper" Algorithm 1's order; torchscript and onnx run the folded SpatialK. "rel diff": outputs vs the eager model (torchscript, folded: in PyTorch; onnx: onnxruntime in Python). The onnx rows run in onnxruntime-node after the PyTorch rounds (not interleaved with them).`,
  ].join('\n');
}

/** One line naming what the suite ran on: the GPU (name, memory, capability), torch and CUDA; or the CPU. */
export function deviceLine(res: SuiteResult): string {
  const m = res.machine;
  const torch = `torch ${m.versions?.torch ?? '?'}`;
  if (m.cuda) return `Device: ${m.cuda.name} (${num(m.cuda.total_memory_gib, 1)} GiB, compute capability ${m.cuda.capability}), ${torch}, CUDA ${m.cuda.cuda ?? '?'}`;
  return `Device: CPU ${m.cpu_model ?? 'unknown'} (${m.torch_threads} torch threads), ${torch}`;
}

export function trainMarkdown(res: SuiteResult): string {
  const rows = res.rows as TrainRow[];
  const s = res.settings;
  const gpu = res.device.startsWith('cuda') || rows.some((r) => r.peak_mem_kind === 'cuda_max_allocated');
  const memName = gpu ? 'peak GPU mem [GiB]' : 'peak RSS [GiB]';
  const header = ['variant', 'batch', 'precision', 'step [s] median (IQR)', 'images/s', memName, 'time x Swin-T (95% interval)', 'memory x Swin-T'];
  if (!gpu) header.push('RSS added by training [GiB]', 'added RSS x');
  header.push('FLOPs x backbone', ...(gpu ? [] : ['FLOPs x detector']), 'FLOPs x step', 'finite loss');
  const body = rows.map((r) => {
    // a variant on a fast path is named with it: `swin-t-spatialk (sdpa, key auto)`
    const paths = [r.attn_impl && r.attn_impl !== 'eager' ? r.attn_impl : '', r.key_order ? `key ${r.key_order}` : ''].filter(Boolean);
    const head = [paths.length ? `${r.variant} (${paths.join(', ')})` : r.variant, String(r.batch), r.precision];
    // a failed row: its error in the first value column, the rest empty (as many as the header has)
    if (r.error || !r.step_s) return [...head, `error: ${r.error ?? 'no timing'}`, ...Array<string>(header.length - head.length - 1).fill('')];
    const rt = r.ratios;
    const mem = r.peak_mem_gib ?? (r.peak_rss_mib === undefined ? null : r.peak_rss_mib / 1024);
    const added = r.train_rss_increase_mib === null || r.train_rss_increase_mib === undefined ? null : r.train_rss_increase_mib / 1024;
    return [
      ...head,
      `${num(r.step_s.median, 3)} (${num(r.step_s.q1, 3)}-${num(r.step_s.q3, 3)})`,
      num(r.images_per_s, 1),
      num(mem, 2),
      rt?.time_ci ? `${x(rt.time)} (${num(rt.time_ci[0], 3)}-${num(rt.time_ci[1], 3)})` : x(rt?.time),
      x(rt?.memory ?? (gpu ? null : rt?.peak_rss)),
      ...(gpu ? [] : [num(added, 2), x(rt?.train_rss_increase)]),
      x(rt?.flops_backbone),
      ...(gpu ? [] : [x(rt?.flops_detector)]),
      x(rt?.flops_step),
      r.losses_finite ? 'yes' : 'NO',
    ];
  });
  const setting = s ? `${s.size}x${s.size} synthetic images, ${s.steps} interleaved rounds after ${s.warmup} warm-up` : '';
  const notes = [
    `Timing: every variant built in one process; each round times one step of every variant (order alternating), so a slow phase of the machine hits all alike. time x Swin-T = geometric mean of the per-round ratios (the two steps of a round), the highest and lowest 10% dropped, with its 95% bootstrap interval over the rounds; step = median. Peak memory comes from a separate pass.`,
    `Ratios are variant / Swin-T at the same batch and precision. fp16/bf16: mmengine's AmpOptimWrapper (as \`tools/train.py --amp\` / \`mkey-det train --amp\`). images/s = batch / median step.`,
    "FLOPs x step: one whole fp32 training step of the timed kind (forward with losses and backward, same weights, batch and seed; at the first batch size), counted by torch's FlopCounterMode (matrix products, convolutions, attention): the time ratio the step would have if all its work ran at one rate; work it does not count (RoIAlign, NMS, elementwise ops, the optimizer) pulls the measured ratio below it. The backbone and detector columns count one image's inference forward.",
    gpu
      ? 'Peak GPU memory = torch.cuda.max_memory_allocated during the pair\'s steps in the memory pass (reset before each pair; one process per variant). FLOPs: the backbone in its training order (fast), counted on a CPU copy; the detector is not counted on CUDA.'
      : "Memory pass: each (variant, batch, precision) runs in a fresh process (peak RSS = ru_maxrss, imports and model included). FLOPs: the backbone in its training order (fast), and the detector's inference forward (Swin-T counted, other variants = its rest + their backbone).",
  ];
  if (res.oom?.length) notes.push(`Out of GPU memory: ${res.oom.join(', ')}.`);
  for (const note of new Set(rows.map((r) => r.note).filter((n): n is string => !!n))) notes.push(`Note: ${note}.`);
  return [
    `## train: one Mask R-CNN + FPN training step (${setting})`,
    '',
    deviceLine(res),
    '',
    table(header, body),
    '',
    ...notes,
  ].join('\n');
}

const RENDER: Record<string, (r: SuiteResult) => string> = {
  params: paramsMarkdown,
  module: moduleMarkdown,
  backbone: backboneMarkdown,
  train: trainMarkdown,
};

export function reportMarkdown(report: BenchReport): string {
  const parts = [`# mkey-det bench: ${report.suite}${report.quick ? ' (--quick)' : ''}, ${report.created}`, '', machineSection(report)];
  for (const [name, res] of Object.entries(report.suites)) {
    if (!res) continue;
    const dur = report.durations_s[name as keyof typeof report.durations_s];
    parts.push('', RENDER[name]!(res), '', `_${name}: ${dur === undefined ? '?' : Math.round(dur)} s, load average ${load(res.machine.loadavg)} -> ${load(res.machine.loadavg_after)}_`);
  }
  if (report.failures.length) parts.push('', '## Failures', '', ...report.failures.map((f) => `- ${f}`));
  return parts.join('\n') + '\n';
}
