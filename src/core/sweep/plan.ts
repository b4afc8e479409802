/**
 * The data a sweep shows, gathered apart from its printing (so `--json` prints the same object):
 * the plan (cells, iterations, GPU-hours) and the status (each cell's run and Slurm job).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../../utils/folder-lock.js';
import { displayPath } from '../../utils/paths.js';
import { BOX_AP, MASK_AP, TOP1, isAccuracy } from '../metrics.js';
import { readRunRecord } from '../run/run-dir.js';
import { THROUGHPUT_CONDITIONS, THROUGHPUT_SOURCE, cellCost, type CellCost, type EpochImages } from './cost.js';
import { matrixLine, type ExpandedCell, type SweepCell, type SweepSpec, type SweepTask } from './matrix.js';
import { cellCommand } from './queue.js';
import { SWEEP_LOCK, cellRunStatus, type CellRecord, type SweepRecord } from './state.js';

/** A cell as the plan shows it: the matrix's cell with its whole command line instead of its arguments, and its cost. */
export interface PlannedCell extends Omit<SweepCell, 'args'> {
  /** The cell's command line (`node bin/mkey-det.js train ...`). */
  command: string[];
  cost: CellCost;
}

export interface SweepPlan {
  name: string;
  sweepDir: string;
  task: SweepSpec['task'];
  command: SweepTask['command'];
  matrix: string;
  spec: SweepSpec;
  cells: PlannedCell[];
  collapsed: string[];
  total: {
    cells: number;
    /** Null when some cell's iterations are unknown. */
    iterations: number | null;
    /** GPU-hours of the cells that have a throughput figure (null: none has). */
    gpuHours: number | null;
    /** How many cells that sum covers (the others: no measurement). */
    gpuHoursCells: number;
    /** Hours with every cell one after another on its own GPUs (null on CPUs). */
    sequentialHours: number | null;
    /** Whether any figure in the sum is an estimate. */
    estimate: boolean;
  };
  /** Where the figures come from, and what an estimate rests on. */
  notes: string[];
}

/** The plan of a sweep's cells: their iterations and cost. */
export async function buildPlan(name: string, sweepDir: string, spec: SweepSpec, task: SweepTask, cells: ExpandedCell[], collapsed: string[]): Promise<SweepPlan> {
  const cache = new Map<string, EpochImages>();
  const planned: PlannedCell[] = [];
  for (const c of cells) {
    planned.push({
      name: c.name,
      workDir: c.workDir,
      backbone: c.backbone,
      charts: c.charts,
      seed: c.seed,
      vary: c.vary,
      axes: c.axes ?? {},
      command: cellCommand({ ...c, attempts: [] }),
      cost: await cellCost(c.cost, c.launch, cache),
    });
  }
  const costs = planned.map((p) => p.cost);
  const withHours = costs.filter((c) => c.gpuHours !== null);
  const notes: string[] = [];
  const epochImages = costs.filter((c) => c.epochs !== null).map((c) => `${c.images.estimate ? '* ' : ''}images per epoch: ${c.images.basis}`);
  for (const line of new Set(epochImages)) notes.push(line);
  if (costs.some((c) => c.throughput)) notes.push(`images/s per GPU: ${THROUGHPUT_SOURCE}; ${THROUGHPUT_CONDITIONS}`);
  for (const basis of new Set(costs.filter((c) => c.throughput && !c.throughput.measured).map((c) => c.throughput!.basis))) notes.push(`* ${basis}`);
  for (const why of new Set(costs.map((c) => c.noThroughput).filter((w): w is string => w !== undefined))) notes.push(`GPU-hours: ${why}`);
  if (cells.some((c) => c.launch.gpus === 0) && withHours.length > 0) notes.push('the cells run without --gpus (here: on the CPU): their GPU-hours are what they would take on H100s');
  return {
    name,
    sweepDir,
    task: spec.task,
    command: task.command,
    matrix: matrixLine(spec),
    spec,
    cells: planned,
    collapsed,
    total: {
      cells: planned.length,
      iterations: costs.every((c) => c.iterations !== null) ? costs.reduce((s, c) => s + c.iterations!, 0) : null,
      gpuHours: withHours.length > 0 ? withHours.reduce((s, c) => s + c.gpuHours!, 0) : null,
      gpuHoursCells: withHours.length,
      sequentialHours: costs.every((c) => c.wallHours !== null) ? costs.reduce((s, c) => s + c.wallHours!, 0) : null,
      estimate: withHours.some((c) => c.estimate) || costs.some((c) => c.images.estimate),
    },
    notes,
  };
}

/** Columns padded to their widest cell; `rightAligned(i)` says which hold numbers (default: all but the first). */
export function alignedTable(head: string[], rows: string[][], rightAligned: (column: number) => boolean = (i) => i > 0): string {
  // a fold, not Math.max(...rows): a spread of a large matrix's rows overflows the call stack
  const widths = head.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
  const line = (cells: string[]) => cells.map((c, i) => (rightAligned(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

const num = (n: number) => n.toLocaleString('en-US');
const hours = (h: number) => (h >= 100 ? h.toFixed(0) : h >= 1 ? h.toFixed(1) : h >= 0.01 ? h.toFixed(2) : '<0.01');

/** The plan as a person reads it. */
export function planText(plan: SweepPlan): string {
  const gpus = new Set(plan.cells.map((c) => c.cost.worldSize));
  const onGpus = plan.cells.every((c) => c.cost.wallHours !== null);
  const head = ['cell', 'iterations', 'images/s/GPU', 'GPU-hours', ...(onGpus ? [`hours on ${[...gpus].join('/')} GPUs`] : [])];
  const rows = plan.cells.map((c) => {
    const t = c.cost.throughput;
    const star = (s: string, est: boolean) => (est ? `${s}*` : s);
    return [
      c.name,
      c.cost.iterations === null ? 'unknown' : star(num(c.cost.iterations), c.cost.images.estimate),
      t ? star(t.imagesPerSecondPerGpu.toFixed(1), !t.measured) : 'no measurement',
      c.cost.gpuHours === null ? '-' : star(hours(c.cost.gpuHours), c.cost.estimate),
      ...(onGpus ? [star(hours(c.cost.wallHours!), c.cost.estimate)] : []),
    ];
  });
  const shared = plan.spec.options.length > 0 ? plan.spec.options.join(' ') : '(none)';
  const t = plan.total;
  const sum =
    t.gpuHours === null
      ? 'GPU-hours: no measurement'
      : `${hours(t.gpuHours)} GPU-hours${t.estimate ? ' (* an estimate, see below)' : ''}${t.gpuHoursCells < t.cells ? ` for the ${t.gpuHoursCells} cells with a measurement` : ''}${t.sequentialHours !== null ? `, ${hours(t.sequentialHours)} h with the cells one after another on their GPUs` : ''}`;
  const first = plan.cells[0];
  const lines = [
    `sweep ${plan.name}: ${plan.total.cells} cell${plan.total.cells === 1 ? '' : 's'} of mkey-det ${plan.command} (${plan.task})`,
    `  matrix   ${plan.matrix}`,
    `  options  ${shared}`,
    `  folder   ${displayPath(plan.sweepDir)}`,
    ...(first ? [`  each     ${first.cost.epochs === null ? '' : `${first.cost.epochs} epochs, `}batch ${first.cost.batchSize} x ${first.cost.worldSize} process${first.cost.worldSize === 1 ? '' : 'es'}`] : []),
    '',
    alignedTable(head, rows),
    '',
    `total: ${plan.total.cells} runs, ${t.iterations === null ? 'iterations unknown' : `${num(t.iterations)} iterations`}, ${sum}`,
    ...plan.collapsed.map((c) => `collapsed: ${c}`),
    ...plan.notes,
  ];
  return lines.join('\n');
}

export interface CellStatus {
  name: string;
  workDir: string;
  /** The run's status from its folder (`not started`, `running`, `completed`, `failed`, `interrupted`, `lost`). */
  run: string;
  jobId?: string;
  /** squeue's state of the job (`PENDING`, `RUNNING`, ...), `not queued` when squeue lists it no more; absent without squeue or a job. */
  queue?: string;
  /** The run's last evaluation, as the paper prints it (`box AP 41.2 / mask AP 37.4`, `top-1 81.30`). */
  result?: string;
  attempts: number;
}

export interface SweepStatus {
  name: string;
  sweepDir: string;
  /** sweep.json's state; `stopped` where it says `running` and no process holds the sweep's lock. */
  state: SweepRecord['state'] | 'stopped';
  cells: CellStatus[];
  /** Counts by run status. */
  counts: Record<string, number>;
  /** Whether squeue answered (false: not on PATH). */
  squeue: boolean;
}

/** A run record's final evaluation in one short phrase. */
function resultPhrase(metrics: Record<string, number | null> | undefined): string | undefined {
  if (!metrics) return undefined;
  const pct = (v: number | null | undefined) => (typeof v === 'number' ? (100 * v).toFixed(1) : '-');
  if (isAccuracy(metrics)) return `top-1 ${typeof metrics[TOP1] === 'number' ? metrics[TOP1]!.toFixed(2) : '-'}`;
  if (BOX_AP in metrics) return `box AP ${pct(metrics[BOX_AP])} / mask AP ${pct(metrics[MASK_AP])}`;
  return undefined;
}

/**
 * The sweep's own state: `running` in sweep.json while no process holds its lock any more (the sweep
 * was killed hard, the machine rebooted) reads `stopped`, as a run's `lost`.
 */
function sweepState(rec: SweepRecord, sweepDir: string): SweepStatus['state'] {
  if (rec.state !== 'running') return rec.state;
  try {
    const lock = JSON.parse(readFileSync(join(sweepDir, SWEEP_LOCK), 'utf8')) as { pid?: number; start?: string | null };
    if (processAlive(lock.pid, lock.start ?? null)) return 'running';
  } catch {
    // no lock: nobody runs it
  }
  return 'stopped';
}

/** Each cell's state from its run folder, and from squeue where the cell was submitted. */
export function sweepStatus(rec: SweepRecord, sweepDir: string, queue: Map<string, string> | undefined): SweepStatus {
  const cells = rec.cells.map((c: CellRecord): CellStatus => {
    const result = resultPhrase(readRunRecord(c.workDir)?.metrics);
    return {
      name: c.name,
      workDir: c.workDir,
      run: cellRunStatus(c.workDir),
      ...(c.jobId ? { jobId: c.jobId } : {}),
      ...(c.jobId && queue ? { queue: queue.get(c.jobId) ?? 'not queued' } : {}),
      ...(result ? { result } : {}),
      attempts: c.attempts.length,
    };
  });
  const counts: Record<string, number> = {};
  for (const c of cells) counts[c.run] = (counts[c.run] ?? 0) + 1;
  return { name: rec.name, sweepDir, state: sweepState(rec, sweepDir), cells, counts, squeue: queue !== undefined };
}

export function statusText(s: SweepStatus): string {
  const jobs = s.cells.some((c) => c.jobId);
  const head = ['cell', 'run', ...(jobs ? ['job', ...(s.squeue ? ['queue'] : [])] : []), 'result'];
  const rows = s.cells.map((c) => [c.name, c.run, ...(jobs ? [c.jobId ?? '-', ...(s.squeue ? [c.queue ?? '-'] : [])] : []), c.result ?? '']);
  const counts = Object.entries(s.counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  return [
    `sweep ${s.name} (${displayPath(s.sweepDir)}): ${s.state}; ${counts}`,
    '',
    alignedTable(head, rows, () => false),
    ...(jobs && !s.squeue ? ['', 'squeue is not on PATH here: the job column is what was submitted; the run column is each run folder\'s own record'] : []),
  ].join('\n');
}
