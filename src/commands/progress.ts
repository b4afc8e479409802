/**
 * Shows a run's events to a person: a live bar (epoch, iterations, loss, ETA) on a terminal, plain
 * lines otherwise, the raw events with --json. The commands own it; core hands it events
 * (`RunObserver`) and returns the result.
 */
import cliProgress from 'cli-progress';
import { formatMetricsInline, formatMetricsLines } from '../core/metrics.js';
import type { RunEvent, RunObserver } from '../core/run/events.js';
import type { RunResult } from '../core/run/run.js';
import { formatDuration } from '../utils/format.js';

export type ProgressMode = 'bar' | 'lines' | 'json' | 'silent';

/** Peak memory of an `iter` event: the GPU's allocated peak on CUDA, the process RSS on CPU. */
export function formatMemory(e: { memory_mb?: number; memory_kind?: string }): string {
  if (typeof e.memory_mb !== 'number') return 'mem ?';
  const gib = (e.memory_mb / 1024).toFixed(1);
  return e.memory_kind === 'cuda' ? `GPU ${gib} GiB` : `RSS ${gib} GiB`;
}

export function describeEvent(e: RunEvent): string | undefined {
  switch (e.event) {
    case 'start':
      return `started: ${e.max_iters} iterations${e.max_epochs ? ` (${e.max_epochs} epochs of ${e.iters_per_epoch})` : ''} on ${e.world_size} ${e.device} process(es)${e.amp ? ` (AMP ${e.amp})` : ''}${e.backbone_params ? `, backbone ${(Number(e.backbone_params) / 1e6).toFixed(1)}M params` : ''}`;
    case 'iter': {
      const loss = (e.losses as Record<string, number | null> | undefined)?.loss;
      return `epoch ${e.epoch} iter ${e.iter}/${e.max_iters}  loss ${loss == null ? 'n/a' : loss.toFixed(4)}  lr ${typeof e.lr === 'number' ? e.lr.toExponential(2) : '?'}  ${e.iter_time_s ?? '?'}s/it${typeof e.images_per_s === 'number' ? ` (${e.images_per_s.toFixed(1)} img/s)` : ''}  ETA ${formatDuration(e.eta_s as number)}  ${formatMemory(e)}`;
    }
    case 'val':
    case 'test': {
      const when = e.event !== 'val' ? '' : e.epoch > 0 ? `epoch ${e.epoch} ` : `iteration ${e.iter} `; // iteration-based runs have no epochs
      return `${when}evaluation: ${formatMetricsInline(e.metrics)}`;
    }
    case 'checkpoint':
      return `checkpoint saved: ${e.path}`;
    case 'error':
      return undefined; // the command ends with this message as its one error line
    case 'end':
      return `training finished (${e.iter} iterations)`;
    default:
      return undefined;
  }
}

export class ProgressView implements RunObserver {
  private bar: cliProgress.SingleBar | undefined;
  /** The bar's last values: a restarted bar (after an evaluation) must not show its template. */
  private payload: Record<string, unknown> = { epoch: '-', loss: '-', speed: '-', etaText: '?', mem: '-' };
  /** The last iteration shown: where a bar stopped for a printed line starts again. */
  private iter = 0;

  constructor(
    private readonly mode: ProgressMode,
    private readonly out: (line: string) => void,
  ) {}

  onEvent(e: RunEvent): void {
    if (this.mode === 'silent') return;
    if (this.mode === 'json') {
      process.stdout.write(JSON.stringify(e) + '\n');
      return;
    }
    if (this.mode === 'lines') {
      const line = describeEvent(e);
      if (line) this.out(line);
      return;
    }
    if (e.event === 'start') {
      this.out(describeEvent(e)!);
      this.bar = new cliProgress.SingleBar(
        {
          format: 'epoch {epoch} |{bar}| {value}/{total} it | loss {loss} | {speed} s/it | ETA {etaText} | {mem}',
          hideCursor: true,
          stream: process.stderr,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.iter = Number(e.start_iter) || 0;
      this.bar.start(e.max_iters, this.iter, this.payload);
      return;
    }
    if (e.event === 'iter' && this.bar) {
      const loss = (e.losses as Record<string, number | null>).loss;
      this.payload = {
        epoch: e.epoch,
        loss: loss == null ? 'n/a' : loss.toFixed(4),
        speed: e.iter_time_s ?? '-',
        etaText: formatDuration(e.eta_s as number),
        mem: formatMemory(e),
      };
      this.iter = e.iter;
      this.bar.update(e.iter, this.payload);
      return;
    }
    const line = describeEvent(e);
    if (line) {
      this.bar?.stop();
      this.out(line);
      if (this.bar && e.event !== 'end') {
        this.bar.start(this.bar.getTotal(), this.iter, this.payload);
      }
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** The end of a `train` or `test` in text: status, time, work dir, AP, checkpoint. */
export function resultText(r: RunResult, what: string): string {
  return [
    `${what} ${r.status} in ${formatDuration(r.seconds)}: ${r.workDir}`,
    ...formatMetricsLines(r.metrics),
    ...(r.checkpoint ? [`checkpoint: ${r.checkpoint}`] : []),
  ].join('\n');
}
