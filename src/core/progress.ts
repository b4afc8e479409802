/**
 * Shows a run's events to a person: a live bar (epoch, iterations, loss, ETA) on a terminal, plain
 * lines otherwise, the raw events with --json.
 */
import cliProgress from 'cli-progress';
import type { RunEvent } from './run-dir.js';

export type ProgressMode = 'bar' | 'lines' | 'json' | 'silent';

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** Peak memory of an `iter` event: the GPU's allocated peak on CUDA, the process RSS on CPU. */
export function formatMemory(e: RunEvent): string {
  if (typeof e.memory_mb !== 'number') return 'mem ?';
  const gib = (e.memory_mb / 1024).toFixed(1);
  return e.memory_kind === 'cuda' ? `GPU ${gib} GiB` : `RSS ${gib} GiB`;
}

const pct = (v: unknown): string => (typeof v === 'number' ? (100 * v).toFixed(1) : '-');

export function describeEvent(e: RunEvent): string | undefined {
  switch (e.event) {
    case 'start':
      return `started: ${e.max_iters} iterations${e.max_epochs ? ` (${e.max_epochs} epochs of ${e.iters_per_epoch})` : ''} on ${e.world_size} ${e.device} process(es)${e.amp ? ` (AMP ${e.amp})` : ''}${e.backbone_params ? `, backbone ${(Number(e.backbone_params) / 1e6).toFixed(1)}M params` : ''}`;
    case 'iter': {
      const loss = (e.losses as Record<string, number | null> | undefined)?.loss;
      return `epoch ${e.epoch} iter ${e.iter}/${e.max_iters}  loss ${loss == null ? 'n/a' : loss.toFixed(4)}  lr ${typeof e.lr === 'number' ? e.lr.toExponential(2) : '?'}  ${e.iter_time_s ?? '?'}s/it  ETA ${formatDuration(e.eta_s as number)}  ${formatMemory(e)}`;
    }
    case 'val':
    case 'test': {
      const m = e.metrics as Record<string, number | null>;
      const when = e.event !== 'val' ? '' : Number(e.epoch) > 0 ? `epoch ${e.epoch} ` : `iteration ${e.iter} `; // iteration-based runs have no epochs
      return `${when}evaluation: box AP ${pct(m['coco/bbox_mAP'])} (AP50 ${pct(m['coco/bbox_mAP_50'])}, AP75 ${pct(m['coco/bbox_mAP_75'])})  mask AP ${pct(m['coco/segm_mAP'])} (AP50 ${pct(m['coco/segm_mAP_50'])}, AP75 ${pct(m['coco/segm_mAP_75'])})`;
    }
    case 'error':
      return undefined; // the command ends with this message as its one error line
    case 'end':
      return `training finished (${e.iter} iterations)`;
    default:
      return undefined;
  }
}

export class ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  /** The bar's last values: a restarted bar (after an evaluation) must not show its template. */
  private payload: Record<string, unknown> = { epoch: '-', loss: '-', speed: '-', etaText: '?', mem: '-' };

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
      this.bar.start(Number(e.max_iters), Number(e.start_iter ?? 0), this.payload);
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
      this.bar.update(Number(e.iter), this.payload);
      return;
    }
    const line = describeEvent(e);
    if (line) {
      this.bar?.stop();
      this.out(line);
      if (this.bar && e.event === 'val') {
        this.bar.start(this.bar.getTotal(), Number(e.iter ?? 0), this.payload);
      }
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
