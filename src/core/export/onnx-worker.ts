/**
 * Worker thread that owns the onnxruntime-node session: `session.run` blocks the thread it runs
 * on, so the CLI's main thread stays free (signals, progress) while the model runs here.
 *
 * Protocol (structured-clone messages, one reply per request, matched by `id`):
 * - `{kind:'load', path, threads}` -> `{inputs: ValueInfo[], outputs: ValueInfo[]}`
 * - `{kind:'run', data, dims, runs, warmup, keepOutputs}` -> `{outputs:[{name, dims, data?}], timesMs}`
 * Errors come back as `{ok:false, error:{message, kind}}`, kind `load` | `shape` | `run`.
 */
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import type { InferenceSession as OrtSession } from 'onnxruntime-node';

export interface ValueInfo {
  name: string;
  type: string;
  shape: (number | string)[];
}

export type WorkerRequest =
  | { id: number; kind: 'load'; path: string; threads?: number }
  | { id: number; kind: 'run'; data: Float32Array; dims: number[]; runs: number; warmup: number; keepOutputs: boolean };

export type WorkerReply =
  | { id: number; ok: true; inputs: ValueInfo[]; outputs: ValueInfo[] }
  | { id: number; ok: true; outputs: { name: string; dims: number[]; data?: Float32Array }[]; timesMs: number[] }
  | { id: number; ok: false; error: { message: string; kind: 'load' | 'shape' | 'run' } };

type Ort = typeof import('onnxruntime-node');
let ort: Ort | undefined;
let session: OrtSession | undefined;

function describe(meta: readonly OrtSession.ValueMetadata[]): ValueInfo[] {
  return meta.map((m) =>
    m.isTensor ? { name: m.name, type: String(m.type), shape: [...m.shape].map((d) => (typeof d === 'number' ? d : String(d))) } : { name: m.name, type: 'non-tensor', shape: [] },
  );
}

async function handle(msg: WorkerRequest): Promise<WorkerReply> {
  if (msg.kind === 'load') {
    ort ??= await import('onnxruntime-node');
    const opts: OrtSession.SessionOptions = { executionMode: 'sequential', graphOptimizationLevel: 'all' };
    if (msg.threads) {
      opts.intraOpNumThreads = msg.threads;
      opts.interOpNumThreads = 1;
    }
    try {
      session = await ort.InferenceSession.create(msg.path, opts);
    } catch (err) {
      return { id: msg.id, ok: false, error: { message: errorText(err), kind: 'load' } };
    }
    return { id: msg.id, ok: true, inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) };
  }
  if (!session || !ort) return { id: msg.id, ok: false, error: { message: 'no model loaded', kind: 'run' } };
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', msg.data, msg.dims) };
  const timesMs: number[] = [];
  let result: OrtSession.ReturnType | undefined;
  try {
    for (let i = 0; i < msg.warmup + msg.runs; i++) {
      const t0 = performance.now();
      result = await session.run(feeds);
      const dt = performance.now() - t0;
      if (i >= msg.warmup) timesMs.push(dt);
    }
  } catch (err) {
    const text = errorText(err);
    return { id: msg.id, ok: false, error: { message: text, kind: /invalid dimensions|invalid rank|shape/i.test(text) ? 'shape' : 'run' } };
  }
  const outputs = session.outputNames.map((name) => {
    const t = result![name]!;
    const entry: { name: string; dims: number[]; data?: Float32Array } = { name, dims: [...t.dims] };
    if (msg.keepOutputs) entry.data = Float32Array.from(t.data as Float32Array);
    return entry;
  });
  return { id: msg.id, ok: true, outputs, timesMs };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

parentPort!.on('message', (msg: WorkerRequest) => {
  void handle(msg).then((reply) => {
    const transfer = 'outputs' in reply && reply.ok && 'timesMs' in reply ? reply.outputs.flatMap((o) => (o.data ? [o.data.buffer as ArrayBuffer] : [])) : [];
    parentPort!.postMessage(reply, transfer);
  });
});
