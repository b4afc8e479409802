/** Reads one run directory into a `RunData`: merged training/validation entries, status, timing, problems. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { isRegularFile } from '../../utils/regular-file.js';
import { join } from 'node:path';
import { effectiveStatus } from '../run/run-dir.js';
import { sessionDirs } from './discover.js';
import { parseEvents, parseRunFile, parseScalars, parseTextLog, type BadLine, type ParsedEvents } from './parse.js';
import { TOP1 } from '../metrics.js';
import { TASK_NAMES } from '../tasks.js';
import type { EvalPoint, RunData, RunIdentity, RunStatusFile, RunTask, TrainPoint } from './types.js';

/** Reads a text file; undefined when it is missing, an error when it cannot be read or is no regular file. */
function readText(path: string): { text?: string; error?: string } {
  if (!existsSync(path)) return {};
  if (!isRegularFile(path)) return { error: 'not a regular file' }; // a FIFO would block the read for ever
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (err) {
    return { error: err instanceof Error ? (err as NodeJS.ErrnoException).code ?? err.message : String(err) };
  }
}

/** `log unreadable: a:3, b:7` (at most 3 places named, then a count). */
export function describeBadLines(bad: BadLine[]): string | undefined {
  if (bad.length === 0) return undefined;
  const named = bad.slice(0, 3).map((b) => `${b.file}:${b.line}`);
  const more = bad.length > 3 ? ` and ${bad.length - 3} more` : '';
  return `log unreadable: ${named.join(', ')}${more} (line skipped)`;
}

/** The config file that describes the run: `config.py`, else the newest other top-level `*.py`. */
export function pickConfigFile(dir: string): string | undefined {
  if (existsSync(join(dir, 'config.py'))) return join(dir, 'config.py'); // a FIFO there: report_tools.py refuses it
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.py'));
  } catch {
    return undefined;
  }
  return names.sort().map((n) => join(dir, n))[names.length - 1];
}

const asTask = (v: unknown): RunTask | undefined => TASK_NAMES.find((t) => t === v);

/**
 * What the run trained: the config's `mkey_experiment.task`, else the run record's
 * `experiment.task` (`mkey-det pretrain` writes `classification`), else the metric names of its
 * evaluations (`accuracy/top1`: mmpretrain's Accuracy; `coco/...`: CocoMetric), else detection when
 * the run has an experiment record without `task` (`mkey-det train` writes none). Undefined when
 * nothing says (no config, no run record, no evaluation yet).
 */
export function runTask(identity: RunIdentity, runFile: RunStatusFile | undefined, evals: EvalPoint[]): RunTask | undefined {
  const fromConfig = asTask(identity.experiment?.task);
  if (fromConfig) return fromConfig;
  const exp = runFile?.experiment;
  const fromRecord = exp && typeof exp === 'object' ? asTask((exp as Record<string, unknown>).task) : undefined;
  if (fromRecord) return fromRecord;
  if (evals.some((e) => TOP1 in e.metrics)) return 'classification';
  if (evals.some((e) => Object.keys(e.metrics).some((k) => k.startsWith('coco/')))) return 'detection';
  // mkey-det writes `task` for classification runs only: an experiment without it is `mkey-det train`'s.
  if (identity.experiment || (exp && typeof exp === 'object')) return 'detection';
  return undefined;
}

/**
 * Reads the run in `dir`. Sessions (timestamp folders) are merged in time order; for the same
 * step a later session wins. In each session scalars.json is read first, then the text log fills
 * steps that scalars.json lacks (missing file, or a bad line). mkey-events.jsonl fills whatever is
 * still missing and gives start/end times.
 */
export function loadRun(dir: string, label: string, identity: RunIdentity): RunData {
  const issues: string[] = [];
  const bad: BadLine[] = [];
  const train = new Map<number, TrainPoint>();
  const evals = new Map<number, EvalPoint>();
  let logSeconds = 0;
  let anyLogTime = false;
  let trainHasEpoch = false;
  let itersPerEpoch: number | undefined;

  // mkey-det's own files.
  let runFile: RunData['runFile'];
  const runJson = readText(join(dir, 'mkey-run.json'));
  if (runJson.error) issues.push(`mkey-run.json unreadable (${runJson.error})`);
  else if (runJson.text !== undefined) {
    try {
      runFile = parseRunFile(runJson.text);
      // `running` with no live process: the supervisor was killed hard; the run is lost, not running.
      if (runFile.status === 'running' && effectiveStatus(dir, runFile) === 'lost') runFile = { ...runFile, status: 'lost' };
    } catch (err) {
      issues.push(`mkey-run.json unreadable (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
    }
  }
  let events: ParsedEvents | undefined;
  const eventsText = readText(join(dir, 'mkey-events.jsonl'));
  if (eventsText.error) issues.push(`mkey-events.jsonl unreadable (${eventsText.error})`);
  else if (eventsText.text !== undefined) {
    events = parseEvents(eventsText.text, 'mkey-events.jsonl');
    bad.push(...events.bad);
  }

  // mmengine's output, one launch (timestamp folder) after another.
  const sessions = sessionDirs(dir);
  for (const ts of sessions) {
    const sdir = join(dir, ts);
    const candidates = [`vis_data/scalars.json`, `vis_data/${ts}.json`];
    const found = candidates.map((rel) => ({ rel, ...readText(join(sdir, rel)) })).find((c) => c.text !== undefined || c.error);
    const log = readText(join(sdir, `${ts}.log`));
    const sessionTrain = new Map<number, TrainPoint>();
    const sessionVal = new Map<number, EvalPoint>();
    let scalarsBad = false;

    if (found?.error) issues.push(`${ts}/${found.rel} unreadable (${found.error})`);
    if (found?.text !== undefined) {
      const parsed = parseScalars(found.text, `${ts}/${found.rel}`);
      bad.push(...parsed.bad);
      scalarsBad = parsed.bad.length > 0;
      for (const p of parsed.train) {
        if (p.epoch !== undefined) trainHasEpoch = true;
        sessionTrain.set(p.step, { iter: p.step, ...omitStep(p) });
      }
      for (const v of parsed.val) sessionVal.set(v.step, { step: v.step, by: 'epoch', metrics: v.metrics, source: 'scalars.json' });
    }

    if (log.error) issues.push(`${ts}/${ts}.log unreadable (${log.error})`);
    if (log.text !== undefined) {
      const parsed = parseTextLog(log.text);
      if (parsed.firstTime !== undefined && parsed.lastTime !== undefined) {
        logSeconds += (parsed.lastTime - parsed.firstTime) / 1000;
        anyLogTime = true;
      }
      itersPerEpoch ??= parsed.itersPerEpoch;
      for (const p of parsed.train) {
        if (p.epoch !== undefined) trainHasEpoch = true;
        if (!sessionTrain.has(p.step)) sessionTrain.set(p.step, { iter: p.step, ...omitStep(p) });
      }
      let filled = 0;
      for (const v of parsed.val) {
        if (sessionVal.has(v.step)) continue;
        sessionVal.set(v.step, { step: v.step, by: v.by, metrics: v.metrics, source: 'log' });
        filled += 1;
      }
      if (found?.text === undefined && !found?.error) {
        if (parsed.train.length + parsed.val.length > 0) issues.push(`${ts}/vis_data/scalars.json missing, read ${ts}/${ts}.log`);
      } else if (scalarsBad && filled > 0) {
        issues.push(`${filled} evaluation(s) recovered from ${ts}/${ts}.log`);
      }
    } else if (found?.text === undefined && !found?.error) {
      issues.push(`${ts}: no scalars.json and no ${ts}.log`);
    }

    for (const [k, v] of sessionTrain) train.set(k, v);
    for (const [k, v] of sessionVal) evals.set(k, v);
  }

  // Events fill what mmengine's files lack (and give timing and backbone size).
  if (events) {
    for (const p of events.train) if (!train.has(p.step)) train.set(p.step, { iter: p.step, ...omitStep(p) });
    if (events.train.some((p) => p.epoch !== undefined)) trainHasEpoch = true;
    for (const v of events.val) {
      const byEpoch = v.epoch !== undefined && identity.maxIters === undefined;
      const step = byEpoch ? v.epoch : v.iter;
      if (step === undefined || evals.has(step) || Object.keys(v.metrics).length === 0) continue;
      evals.set(step, { step, by: byEpoch ? 'epoch' : 'iter', metrics: v.metrics, source: 'mkey-events.jsonl' });
    }
  }

  const badNote = describeBadLines(bad);
  if (badNote) issues.unshift(badNote);

  // Epoch-based loops log validation at step = epoch; iteration-based ones at step = iteration.
  const iterLoop = identity.maxIters !== undefined || (identity.maxEpochs === undefined && !trainHasEpoch && events?.maxIters !== undefined);
  const trainPoints = [...train.values()].sort((a, b) => a.iter - b.iter);
  let evalPoints = [...evals.values()]
    .map((e) => ({ ...e, by: iterLoop ? ('iter' as const) : ('epoch' as const) }))
    .sort((a, b) => a.step - b.step);
  const task = runTask(identity, runFile, evalPoints);
  // A run in an iteration loop: mmengine's LoggerHook logs validation at step = the epoch (0 in an
  // IterBasedTrainLoop) in scalars.json, and the text log after its last logged training
  // iteration, so neither says at which iteration it evaluated (one evaluation showed up as up to
  // three points: 0, the last logged iteration, the events' one); the events do (their `val`
  // events carry `iter`): where they have any, they are the run's evaluations.
  // A classification run's events' `max_epochs` (1) and `epoch` mean nothing in an iteration loop either.
  const clsIterLoop = task === 'classification' && iterLoop;
  const eventVals = events?.val.filter((v) => v.iter !== undefined && Object.keys(v.metrics).length > 0) ?? [];
  if (iterLoop && eventVals.length) {
    const byIter = new Map<number, EvalPoint>();
    for (const v of eventVals) byIter.set(v.iter!, { step: v.iter!, by: 'iter', metrics: v.metrics, source: 'mkey-events.jsonl' });
    evalPoints = [...byIter.values()].sort((a, b) => a.step - b.step);
  }

  const epochs = trainPoints.map((p) => p.epoch).filter((e): e is number => e !== undefined);
  let lastEpoch = epochs.length ? Math.max(...epochs) : undefined;
  if (events?.lastEpoch !== undefined) lastEpoch = Math.max(lastEpoch ?? 0, events.lastEpoch);
  if (!iterLoop && evalPoints.length) lastEpoch = Math.max(lastEpoch ?? 0, evalPoints[evalPoints.length - 1]!.step);
  if (lastEpoch === undefined && itersPerEpoch && trainPoints.length) lastEpoch = Math.ceil(trainPoints[trainPoints.length - 1]!.iter / itersPerEpoch);
  if (clsIterLoop) lastEpoch = undefined;
  const maxEpochs = clsIterLoop ? identity.maxEpochs : identity.maxEpochs ?? events?.maxEpochs;
  const lastIter = trainPoints.length ? trainPoints[trainPoints.length - 1]!.iter : events?.lastIter;

  let trainingSeconds: number | undefined;
  if (events && events.segments.length) trainingSeconds = events.segments.reduce((s, g) => s + (g.end - g.start) / 1000, 0);
  else if (anyLogTime) trainingSeconds = logSeconds;

  itersPerEpoch = events?.itersPerEpoch ?? itersPerEpoch;
  if (events?.error && runFile?.status !== 'failed') issues.push(`error event: ${events.error.split('\n')[0]}`);

  return {
    dir,
    label,
    identity,
    ...(runFile ? { runFile } : {}),
    sessions,
    train: trainPoints,
    evals: evalPoints,
    ...(trainingSeconds !== undefined ? { trainingSeconds } : {}),
    ...(events?.backboneParams !== undefined ? { backboneParams: events.backboneParams } : {}),
    ...(events?.backboneFlops !== undefined ? { backboneFlops: events.backboneFlops } : {}),
    ...(events?.backboneFlopsError !== undefined && events.backboneFlops === undefined ? { backboneFlopsError: events.backboneFlopsError } : {}),
    ...(events?.backboneFlopsInput !== undefined ? { backboneFlopsInput: events.backboneFlopsInput } : {}),
    ...(task !== undefined ? { task } : {}),
    ...(lastEpoch !== undefined ? { lastEpoch } : {}),
    ...(lastIter !== undefined ? { lastIter } : {}),
    ...(maxEpochs !== undefined ? { maxEpochs } : {}),
    ...((identity.maxIters ?? events?.maxIters) !== undefined ? { maxIters: identity.maxIters ?? events?.maxIters } : {}),
    ...(itersPerEpoch !== undefined ? { itersPerEpoch } : {}),
    ...(events?.end ? { endStatus: events.end.status ?? 'completed' } : {}),
    issues,
  };
}

function omitStep<T extends { step: number }>(p: T): Omit<T, 'step'> {
  const { step: _step, ...rest } = p;
  return rest;
}
