/**
 * Readers for what a run directory holds: mmengine's `vis_data/scalars.json` (JSON lines) and text
 * log, mkey-det's `mkey-events.jsonl` and `mkey-run.json`. None of them throws on bad content: a bad
 * line is skipped and reported by file and line number.
 */
import type { RunStatusFile } from './types.js';

/** A line that could not be parsed: file (as given) and 1-based line number. */
export interface BadLine {
  file: string;
  line: number;
}

export interface ScalarTrain {
  step: number;
  epoch?: number;
  loss?: number;
  lr?: number;
}

export interface ScalarVal {
  step: number;
  metrics: Record<string, number>;
}

export interface ParsedScalars {
  train: ScalarTrain[];
  val: ScalarVal[];
  bad: BadLine[];
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * True for a validation line. Training lines carry `lr`, `loss`, `iter` or `epoch`; validation lines
 * carry only the metrics (`coco/bbox_mAP`, ...), `data_time`, `time` and `step`, and no metrics at
 * all when the evaluator returned none (CocoMetric does that when a model detects nothing).
 */
function isValLine(obj: Record<string, unknown>): boolean {
  if (Object.keys(obj).some((k) => k.includes('/'))) return !('loss' in obj);
  return !('lr' in obj || 'loss' in obj || 'iter' in obj || 'epoch' in obj);
}

/** Splits a JSON-lines text; returns the objects with their 1-based line numbers and the bad lines. */
export function parseJsonLines(text: string, file: string): { items: { line: number; obj: Record<string, unknown> }[]; bad: BadLine[] } {
  const items: { line: number; obj: Record<string, unknown> }[] = [];
  const bad: BadLine[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    try {
      const obj: unknown = JSON.parse(line);
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('not an object');
      items.push({ line: i + 1, obj: obj as Record<string, unknown> });
    } catch {
      bad.push({ file, line: i + 1 });
    }
  });
  return { items, bad };
}

/** mmengine's `vis_data/scalars.json`: training lines (`loss`, `lr`, `epoch`, `iter`, `step`) and validation lines (`coco/...`, `step`). */
export function parseScalars(text: string, file: string): ParsedScalars {
  const { items, bad } = parseJsonLines(text, file);
  const train: ScalarTrain[] = [];
  const val: ScalarVal[] = [];
  for (const { line, obj } of items) {
    const step = obj.step;
    if (!isNum(step)) {
      bad.push({ file, line });
      continue;
    }
    if (isValLine(obj)) {
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(obj)) if (k.includes('/') && isNum(v)) metrics[k] = v;
      val.push({ step, metrics });
    } else {
      train.push({
        step,
        ...(isNum(obj.epoch) ? { epoch: obj.epoch } : {}),
        ...(isNum(obj.loss) ? { loss: obj.loss } : {}),
        ...(isNum(obj.lr) ? { lr: obj.lr } : {}),
      });
    }
  }
  return { train, val, bad };
}

export interface ParsedTextLog {
  train: ScalarTrain[];
  val: (ScalarVal & { by: 'epoch' | 'iter' })[];
  /** Seconds between the first and the last timestamped line. */
  firstTime?: number;
  lastTime?: number;
  /** Iterations per epoch: the K of `Epoch(train) [1][ 50/K]`. */
  itersPerEpoch?: number;
}

const TIME_RE = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})\s+-\s+mmengine\s+-/;
const LOOP_RE = /(Epoch|Iter)\((train|val)\)\s*\[\s*(\d+)(?:\/(\d+))?\s*\](?:\s*\[\s*(\d+)\/(\d+)\s*\])?(.*)$/;
const KV_RE = /([A-Za-z_][\w/.\-]*):\s+(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)(?=\s|$)/g;

/** Milliseconds since the epoch for the log's local timestamp, read as UTC (only differences matter). */
function logTime(line: string): number | undefined {
  const m = TIME_RE.exec(line);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
}

function keyValues(rest: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of rest.matchAll(KV_RE)) {
    const v = Number(m[2]);
    if (Number.isFinite(v)) out[m[1]!] = v;
  }
  return out;
}

/**
 * mmengine's text log `<timestamp>/<timestamp>.log`, the fallback when scalars.json is missing or
 * has bad lines. Reads `Epoch(train) [e][i/K] lr: .. loss: ..`, `Epoch(val) [e][n/n] coco/bbox_mAP: ..`
 * and the iteration-based `Iter(train) [i/N]`, `Iter(val) [n/n]`.
 */
export function parseTextLog(text: string): ParsedTextLog {
  const out: ParsedTextLog = { train: [], val: [] };
  let lastTrainIter = 0;
  for (const line of text.split('\n')) {
    const t = logTime(line);
    if (t !== undefined) {
      out.firstTime ??= t;
      out.lastTime = t;
    }
    const m = LOOP_RE.exec(line);
    if (!m) continue;
    const [, loop, mode, a, b, c, d, rest] = m;
    const kv = keyValues(rest ?? '');
    if (mode === 'train') {
      let iter: number;
      let epoch: number | undefined;
      if (loop === 'Epoch' && c !== undefined && d !== undefined) {
        epoch = Number(a);
        const k = Number(d);
        out.itersPerEpoch = k;
        iter = (epoch - 1) * k + Number(c);
      } else if (loop === 'Iter') {
        iter = Number(a);
      } else continue;
      lastTrainIter = iter;
      out.train.push({ step: iter, ...(epoch !== undefined ? { epoch } : {}), ...(kv.loss !== undefined ? { loss: kv.loss } : {}), ...(kv.lr !== undefined ? { lr: kv.lr } : {}) });
    } else {
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(kv)) if (k.includes('/')) metrics[k] = v;
      if (Object.keys(metrics).length === 0) continue; // a progress line of the validation loop
      if (loop === 'Epoch') out.val.push({ step: Number(a), by: 'epoch', metrics });
      else out.val.push({ step: lastTrainIter, by: 'iter', metrics });
    }
  }
  return out;
}

export interface ParsedEvents {
  /** Training segments (one per start event): start and last event time, ms. */
  segments: { start: number; end: number }[];
  maxEpochs?: number;
  maxIters?: number;
  itersPerEpoch?: number;
  backboneParams?: number;
  backboneFlops?: number;
  /** [height, width] the FLOPs were counted at (absent in events from before: 224x224). */
  backboneFlopsInput?: [number, number];
  backboneFlopsError?: string;
  train: ScalarTrain[];
  val: { epoch?: number; iter?: number; metrics: Record<string, number> }[];
  lastEpoch?: number;
  lastIter?: number;
  end?: { status?: string };
  error?: string;
  bad: BadLine[];
}

/** mkey-det's `mkey-events.jsonl` (see docs/ARCHITECTURE.md). */
export function parseEvents(text: string, file: string): ParsedEvents {
  const { items, bad } = parseJsonLines(text, file);
  const out: ParsedEvents = { segments: [], train: [], val: [], bad };
  for (const { line, obj } of items) {
    const time = typeof obj.time === 'string' ? Date.parse(obj.time) : NaN;
    if (typeof obj.event !== 'string') {
      bad.push({ file, line });
      continue;
    }
    if (Number.isFinite(time)) {
      if (obj.event === 'start' || out.segments.length === 0) out.segments.push({ start: time, end: time });
      else out.segments[out.segments.length - 1]!.end = time;
    }
    switch (obj.event) {
      case 'start':
        if (isNum(obj.max_epochs)) out.maxEpochs = obj.max_epochs;
        if (isNum(obj.max_iters)) out.maxIters = obj.max_iters;
        if (isNum(obj.iters_per_epoch)) out.itersPerEpoch = obj.iters_per_epoch;
        if (isNum(obj.backbone_params)) out.backboneParams = obj.backbone_params;
        if (isNum(obj.backbone_flops)) out.backboneFlops = obj.backbone_flops;
        if (Array.isArray(obj.backbone_flops_input) && obj.backbone_flops_input.length === 2 && obj.backbone_flops_input.every(isNum)) {
          out.backboneFlopsInput = obj.backbone_flops_input as [number, number];
        }
        if (typeof obj.backbone_flops_error === 'string') out.backboneFlopsError = obj.backbone_flops_error;
        break;
      case 'iter': {
        if (!isNum(obj.iter)) break;
        const losses = obj.losses && typeof obj.losses === 'object' ? (obj.losses as Record<string, unknown>) : {};
        out.train.push({
          step: obj.iter,
          ...(isNum(obj.epoch) ? { epoch: obj.epoch } : {}),
          ...(isNum(losses.loss) ? { loss: losses.loss } : {}),
          ...(isNum(obj.lr) ? { lr: obj.lr } : {}),
        });
        out.lastIter = Math.max(out.lastIter ?? 0, obj.iter);
        if (isNum(obj.epoch)) out.lastEpoch = Math.max(out.lastEpoch ?? 0, obj.epoch);
        break;
      }
      case 'val': {
        const metrics: Record<string, number> = {};
        if (obj.metrics && typeof obj.metrics === 'object') {
          for (const [k, v] of Object.entries(obj.metrics as Record<string, unknown>)) if (isNum(v)) metrics[k] = v;
        }
        out.val.push({ ...(isNum(obj.epoch) ? { epoch: obj.epoch } : {}), ...(isNum(obj.iter) ? { iter: obj.iter } : {}), metrics });
        break;
      }
      case 'end':
        out.end = { ...(typeof obj.status === 'string' ? { status: obj.status } : {}) };
        break;
      case 'error':
        out.error = typeof obj.message === 'string' ? obj.message : 'error';
        break;
      default:
        break;
    }
  }
  return out;
}

/** `mkey-run.json`; throws a one-line Error on invalid JSON (the caller turns it into a note). */
export function parseRunFile(text: string): RunStatusFile {
  const obj: unknown = JSON.parse(text);
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('not a JSON object');
  const o = obj as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const out: RunStatusFile = {};
  if (str(o.status)) out.status = str(o.status);
  if (str(o.message)) out.message = str(o.message);
  if (str(o.started)) out.started = str(o.started);
  if (str(o.finished)) out.finished = str(o.finished);
  if (o.experiment !== undefined) out.experiment = o.experiment;
  // kept for effectiveStatus: without it a run whose last status write failed (a full disk) read
  // `running` for ever once its lock was gone
  const sup = o.supervisor as Record<string, unknown> | undefined;
  if (sup && typeof sup === 'object' && Number.isInteger(sup.pid) && typeof sup.host === 'string' && (typeof sup.start === 'string' || sup.start === null)) {
    out.supervisor = { pid: sup.pid as number, start: sup.start as string | null, host: sup.host };
  }
  return out;
}
