/**
 * The report of python_shim/mkey_det/cli/doctor.py (`--report`): the checks, the package versions
 * and the GPU section, made in Python from its probes and printed by `mkey-det doctor` as they
 * are (the CLI adds its own checks of Node and onnxruntime-node in front).
 */
import { z } from 'zod';

/** One line of the report. */
export const doctorCheck = z.strictObject({
  name: z.string(),
  ok: z.boolean(),
  detail: z.string(),
  /** One-line fix, present when `ok` is false. */
  fix: z.string().optional(),
});

/** One CUDA device as torch sees it. */
export const gpuDevice = z.strictObject({
  index: z.number().int(),
  name: z.string(),
  /** Compute capability, e.g. "9.0". */
  capability: z.string(),
  memoryGiB: z.number(),
});

/** mmcv's compiled CUDA ops against the GPUs present (null in `cuda.mmcv` when there is no CUDA device). */
export const mmcvCudaReport = z.strictObject({
  ok: z.boolean(),
  /** mmcv.ops.get_compiling_cuda_version(): the CUDA it was built with, or 'not available' (CPU build). */
  compiledCuda: z.string().nullable(),
  /** Architectures ("9.0", "8.0") the compiled extension holds; null when unknown. */
  archs: z.array(z.string()).nullable(),
  /** The build also holds PTX (compiled just in time for newer GPUs): coverage is then not decided. */
  ptx: z.boolean(),
  /** Where `archs` came from: the setup's build record, cuobjdump, or 'unknown'. */
  archSource: z.string(),
  archNote: z.string().optional(),
  /** Per GPU: true covered, false not covered, null unknown. */
  coverage: z.array(z.strictObject({ index: z.number().int(), capability: z.string().nullable(), covered: z.boolean().nullable() })),
  /** nms + roi_align forward and backward on cuda:0 (in a child process: a crash is reported, not fatal). */
  ops: z.strictObject({ ok: z.boolean(), error: z.string().optional(), missingArch: z.literal(true).optional(), crashed: z.literal(true).optional() }),
  /** `<venv>/.mkey-mmcv-build.json`, written by scripts/setup-python.sh, when present. */
  buildInfo: z
    .strictObject({
      torch: z.string().nullable(),
      cuda: z.string().nullable(),
      archList: z.string().nullable(),
      source: z.string().nullable(),
      seconds: z.number().nullable(),
    })
    .optional(),
});

export const cudaReport = z.strictObject({
  available: z.boolean(),
  devices: z.array(gpuDevice),
  /** Where torch comes from: the project's .venv, or the system (anything outside .venv). */
  torch: z.strictObject({
    version: z.string().nullable(),
    file: z.string().nullable(),
    source: z.enum(['.venv', 'system']).nullable(),
    cudaBuild: z.boolean(),
  }),
  /** torch.version.cuda (null for a CPU build). */
  cudaVersion: z.string().nullable(),
  cudnn: z.string().nullable(),
  nccl: z.string().nullable(),
  /** torch.cuda.get_arch_list(): the architectures torch itself was built for. */
  torchArchs: z.array(z.string()),
  /** Autocast dtypes that ran on the GPU: float16, and bfloat16 where supported. */
  ampDtypes: z.array(z.string()),
  /** `nvidia-smi -L` when the tool is on PATH, else null. */
  nvidiaSmi: z.strictObject({ path: z.string(), gpus: z.array(z.string()), error: z.string().optional() }).nullable(),
  mmcv: mmcvCudaReport.nullable(),
  /** Probe errors and CUDA initialisation warnings, one line each. */
  notes: z.array(z.string()),
});

/** What doctor.py --report returns. */
export const pythonDoctorReport = z.strictObject({
  python: z.strictObject({ version: z.string(), executable: z.string() }),
  /** Package -> version, null where it does not import. */
  versions: z.record(z.string(), z.string().nullable()),
  cuda: cudaReport,
  checks: z.array(doctorCheck),
});

export type DoctorCheck = z.infer<typeof doctorCheck>;
export type GpuDevice = z.infer<typeof gpuDevice>;
export type MmcvCudaReport = z.infer<typeof mmcvCudaReport>;
export type CudaReport = z.infer<typeof cudaReport>;
