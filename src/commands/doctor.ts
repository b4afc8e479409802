import { Command } from 'commander';
import { z } from 'zod';
import { outColors as pc } from '../utils/colors.js';
import { runDoctor, type CudaReport } from '../core/doctor.js';
import { guardedAction } from '../utils/command.js';
import { ExitCode } from '../utils/errors.js';
import { emit } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';

const doctorOptionsSchema = z.object({ json: z.boolean().default(false) });

const row = (label: string, text: string): string => `    ${label.padEnd(18)} ${text}`;

/** The GPU section of the text report: one line per GPU, then versions, AMP dtypes, mmcv archs. */
function gpuLines(cuda: CudaReport): string[] {
  const torch = `torch ${cuda.torch.version ?? '?'}${cuda.torch.source ? ` (${cuda.torch.source}${cuda.torch.source === 'system' && cuda.torch.file ? `: ${cuda.torch.file}` : ''})` : ''}`;
  if (!cuda.available) {
    const smi = cuda.nvidiaSmi;
    const seen = smi ? (smi.gpus.length ? `; nvidia-smi sees ${smi.gpus.join(', ')}` : `; nvidia-smi lists no GPU${smi.error ? ` (${smi.error})` : ''}`) : '';
    const build = cuda.torch.version ? `; ${torch}, ${cuda.torch.cudaBuild ? `CUDA ${cuda.cudaVersion} build` : 'CPU build'}` : '';
    return [row('cuda', `no CUDA device (CPU only)${build}${seen}`)];
  }
  const lines = [pc.bold('gpu')];
  for (const d of cuda.devices) lines.push(row(`GPU ${d.index}`, `${d.name}, capability ${d.capability}, ${d.memoryGiB} GiB`));
  lines.push(row('cuda', `CUDA ${cuda.cudaVersion ?? '?'}, cuDNN ${cuda.cudnn ?? '?'}, NCCL ${cuda.nccl ?? '?'}; ${torch}`));
  if (cuda.torchArchs.length) lines.push(row('torch archs', cuda.torchArchs.join(' ')));
  lines.push(row('AMP dtypes', cuda.ampDtypes.length ? cuda.ampDtypes.join(', ') : 'none'));
  const m = cuda.mmcv;
  if (m) {
    const archs = m.archs === null ? 'unknown' : `${m.archs.join(', ') || 'none'}${m.ptx ? ' +PTX' : ''}`;
    lines.push(row('mmcv archs', `${archs} (CUDA ${m.compiledCuda ?? m.buildInfo?.cuda ?? '?'}; ${m.archs === null ? (m.archNote ?? m.archSource) : m.archSource})`));
  }
  for (const note of cuda.notes) lines.push(row('note', pc.dim(note)));
  return lines;
}

export const doctor = new Command('doctor')
  .description('check the Node and Python toolchain: versions, mmcv compiled ops, CUDA devices, the mkey_det plugin')
  .option('--json', 'print the report as JSON')
  .addHelpText(
    'after',
    `
On a GPU machine the report also shows each GPU (name, compute capability, memory), the CUDA,
cuDNN and NCCL versions of torch, the AMP dtypes that run, the architectures mmcv was built for
against the GPUs present, and runs nms + roi_align forward and backward on the GPU. Every failed
check comes with a one-line fix. A torch from the system (outside .venv) of another version than
the pin is reported, not failed.
Exit codes: 0 every check passed, 3 some check failed (the environment needs fixing).

Examples:
  mkey-det doctor
  mkey-det doctor --json
  mkey-det doctor --json | jq '.cuda | {devices, cudaVersion, cudnn, nccl, ampDtypes, mmcv}'`,
  )
  .action(
    guardedAction(async (raw: unknown) => {
      const opts = parseOptions(doctorOptionsSchema, raw);
      const report = await runDoctor();
      emit(report, opts, () => {
        const lines = report.checks.map(
          (c) => `${c.ok ? pc.green('ok ') : pc.red('bad')} ${c.name.padEnd(18)} ${c.detail}${c.fix ? pc.dim(`  -> ${c.fix}`) : ''}`,
        );
        lines.push(...gpuLines(report.cuda));
        lines.push(report.ok ? pc.green('all checks passed') : pc.red('some checks failed'));
        return lines.join('\n');
      });
      if (!report.ok) process.exitCode = ExitCode.environment;
    }),
  );
