/**
 * The events file `<work-dir>/mkey-events.jsonl`, defined once: one JSON object per line,
 * appended by rank 0's `MkeyProgressHook` (python_shim/mkey_det/engine/progress_hook.py) and
 * read by `train`/`test` (progress, result) and `report`. Each event is a strict object: a field
 * the hook adds without adding it here fails test/events-schema.test.ts, which validates every
 * event of a real run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';

export const EVENTS_FILE = 'mkey-events.jsonl';

/** A finite number, or null where Python had NaN/inf (the hook writes no NaN). */
const num = z.number().nullable();
const time = z.string().describe('ISO 8601 time the event was written');
/** mmengine's metric names (`coco/bbox_mAP`, ...; 0-1 scale) -> value. */
const metrics = z.record(z.string(), num);

export const startEvent = z.strictObject({
  event: z.literal('start'),
  time,
  max_iters: z.number().int(),
  /** null for iteration-based loops. */
  max_epochs: z.number().int().nullable(),
  iters_per_epoch: z.number().int().nullable(),
  /** > 0 when resumed. */
  start_iter: z.number().int(),
  start_epoch: z.number().int(),
  world_size: z.number().int(),
  /** Where the model's weights are: `cpu`, `cuda:0`. */
  device: z.string(),
  /** `float16`/`bfloat16` under AmpOptimWrapper, null in fp32. */
  amp: z.string().nullable(),
  backbone_params: z.number().int().optional(),
  backbone_type: z.string().optional(),
  key_type: z.string().optional(),
  num_charts: z.number().int().nullable().optional(),
  /** [height, width] the FLOPs were counted at: 224x224, or the size the backbone was built for (SwinV2-T 256, a ViT its img_size). */
  backbone_flops_input: z.tuple([z.number().int(), z.number().int()]).optional(),
  /** Backbone FLOPs at backbone_flops_input in the paper's order (counted on a CPU copy)... */
  backbone_flops: z.number().optional(),
  /** ...or why counting them failed. */
  backbone_flops_error: z.string().optional(),
});

export const iterEvent = z.strictObject({
  event: z.literal('iter'),
  time,
  /** 1-based. */
  iter: z.number().int(),
  epoch: z.number().int(),
  max_iters: z.number().int(),
  losses: z.record(z.string(), num),
  lr: num,
  iter_time_s: num,
  /** Training images per second over all processes (batch per process x world size / iter_time_s). */
  images_per_s: num.optional(),
  eta_s: num,
  /** Peak GPU memory allocated by torch on CUDA, the process's peak RSS on CPU. */
  memory_mb: z.number(),
  memory_kind: z.enum(['cuda', 'rss']),
});

export const valEvent = z.strictObject({ event: z.literal('val'), time, epoch: z.number().int(), iter: z.number().int(), metrics });
/** Written by `mkey-det test` (tools/test.py): the evaluation of one checkpoint. */
export const testEvent = z.strictObject({ event: z.literal('test'), time, metrics });
/** mmengine saved a checkpoint (`path`: what `<work-dir>/last_checkpoint` names); written at the next hook point. */
export const checkpointEvent = z.strictObject({ event: z.literal('checkpoint'), time, path: z.string(), epoch: z.number().int(), iter: z.number().int() });
/** The first SIGINT/SIGTERM stopped training at an iteration boundary. */
export const stoppedEvent = z.strictObject({
  event: z.literal('stopped'),
  time,
  signal: z.string(),
  iter: z.number().int(),
  epoch: z.number().int(),
});
export const endEvent = z.strictObject({
  event: z.literal('end'),
  time,
  status: z.literal('completed'),
  iter: z.number().int(),
  epoch: z.number().int(),
});
/** A non-finite loss; training stops with this message. */
export const errorEvent = z.strictObject({ event: z.literal('error'), time, iter: z.number().int(), message: z.string() });

export const runEventSchema = z.discriminatedUnion('event', [
  startEvent,
  iterEvent,
  valEvent,
  testEvent,
  checkpointEvent,
  stoppedEvent,
  endEvent,
  errorEvent,
]);
export type RunEvent = z.infer<typeof runEventSchema>;
export type RunEventName = RunEvent['event'];
export const RUN_EVENT_NAMES = runEventSchema.options.map((o) => o.shape.event.value) as RunEventName[];

/** Who is told a supervised run's events as they come (the commands' progress view); `stop` when it ends or is interrupted. */
export interface RunObserver {
  onEvent(e: RunEvent): void;
  stop(): void;
}

/**
 * Incremental reader of the events file: `poll()` returns the events of the complete lines appended
 * since the last call (a half-written last line waits for the next poll). A line that is not JSON
 * or names no known event is skipped (the report command flags such lines). A known event that
 * does not match its schema is still passed on, after one warning per event name: a hook newer
 * than this file must not make a run look silent.
 */
export class EventTail {
  private offset = 0;
  private rest = '';
  private readonly warned = new Set<string>();
  constructor(
    private readonly path: string,
    private readonly warn: (message: string) => void = () => {},
  ) {}

  poll(): RunEvent[] {
    if (!existsSync(this.path)) return [];
    const buf = readFileSync(this.path);
    if (buf.length <= this.offset) return [];
    const chunk = this.rest + buf.subarray(this.offset).toString('utf8');
    this.offset = buf.length;
    const lines = chunk.split('\n');
    this.rest = lines.pop() ?? '';
    const events: RunEvent[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      const name = (value as { event?: unknown } | null)?.event;
      if (typeof name !== 'string' || !(RUN_EVENT_NAMES as string[]).includes(name)) continue;
      const res = runEventSchema.safeParse(value);
      if (!res.success && !this.warned.has(name)) {
        this.warned.add(name);
        const issue = res.error.issues[0];
        this.warn(`${this.path}: a '${name}' event does not match src/core/run/events.ts (${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'})`);
      }
      events.push(res.success ? res.data : (value as RunEvent));
    }
    return events;
  }
}
