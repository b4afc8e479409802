import { Command } from 'commander';
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { pretrainEpochs } from '../core/config/render-classification.js';
import { experimentEpochs } from '../core/config/render.js';
import { BACKBONE_NAMES, CB_KEY_TYPES, MAX_CHARTS, backboneVariant, type RunSettings, type VisBackend } from '../core/experiment.js';
import { PRETRAIN_FAMILIES, PRETRAIN_NAMES, pretrainVariant } from '../core/pretrain/experiment.js';
import { checkInterpreter } from '../python/interpreter.js';
import { acquireFolderLock } from '../utils/folder-lock.js';
import {
  AXIS_OPTIONS,
  OPTIONS_SET_BY_SWEEP,
  SWEEP_TASKS,
  defaultSweepDir,
  expandMatrix,
  intItem,
  parseList,
  parseVary,
  splitOptionAxes,
  type CellExperiment,
  type CellLaunch,
  type ExpandedCell,
  type SweepSpec,
  type SweepTask,
} from '../core/sweep/matrix.js';
import { buildPlan, planText, statusText, sweepStatus, alignedTable } from '../core/sweep/plan.js';
import { runQueue, type CellOutcome } from '../core/sweep/queue.js';
import { writeSweepReport, type SweepReport } from '../core/sweep/report.js';
import { cellScript, requireSbatch, splitSlurmArgs, squeueStates, submitScript, writeCellScript } from '../core/sweep/slurm.js';
import { SWEEP_LOCK, nextAction, readSweepRecord, writeSweepRecord, type CellRecord, type SweepRecord } from '../core/sweep/state.js';
import { guardedAction } from '../utils/command.js';
import { BadInputError, ExitCode, MkeyError, quoteValue } from '../utils/errors.js';
import { emit, logger } from '../utils/logger.js';
import { parseOptions } from '../utils/options.js';
import { displayPath } from '../utils/paths.js';
import { cfgOptionPairs, experimentFromOptions, prepareTrackers, refuseUnregisteredTypes, visBackendsFrom } from './experiment-options.js';
import { pretrainCommand, pretrainExperimentFrom, pretrainOptionsSchema, pretrainWorkDir } from './pretrain.js';
import { checkProcessKind } from './run-options.js';
import { trainCommand, trainOptionsSchema, trainWorkDir } from './train.js';

/**
 * The options a cell's command gets from the sweep's shared ones, read by that command's own
 * parser (so every `train` / `pretrain` option is accepted exactly as there): unknown options and
 * stray words are refused with one line; commander's own usage errors (a missing value) are the
 * command's.
 */
function parseShared(cmd: Command, options: string[]): Record<string, unknown> {
  for (const word of options) {
    const flag = word.split('=')[0]!;
    const why = OPTIONS_SET_BY_SWEEP[flag];
    if (why) throw new BadInputError(`${flag} cannot be given to a sweep: ${why}`);
  }
  // the command is the CLI's own object: its values start from the defaults at every parse (a
  // repeatable option would otherwise add to the values of the parse before)
  for (const opt of cmd.options) cmd.setOptionValueWithSource(opt.attributeName(), opt.defaultValue, 'default');
  const { operands, unknown } = cmd.parseOptions(options);
  if (unknown.length > 0) {
    throw new BadInputError(
      `unknown option ${quoteValue(unknown[0])}: neither sweep nor mkey-det ${cmd.name()} takes it`,
      `every option of mkey-det ${cmd.name()} goes to each cell (mkey-det ${cmd.name()} --help); the matrix is --backbone, --charts, --seeds, --vary, and a comma list of ${axisFlagsOf(cmd).join(', ')}`,
    );
  }
  if (operands.length > 0) throw new BadInputError(`unexpected argument ${quoteValue(operands[0])}: sweep takes options only (e.g. --backbone a,b --seeds 0,1)`);
  return { ...cmd.opts() };
}

/** The options of `cmd` a sweep takes as an axis (`--cb-mode eq4,none`): those of AXIS_OPTIONS the command has. */
function axisFlagsOf(cmd: Command): string[] {
  return Object.keys(AXIS_OPTIONS).filter((flag) => cmd.options.some((o) => o.long === flag));
}

/** One value of an axis option, read by the command's parser and checked by its own schema (its one-line error). */
function checkAxisValue(cmd: Command, schema: z.ZodType, options: string[], flag: string, value: string): void {
  parseOptions(schema, parseShared(cmd, [...options, flag, value]));
}

const NO_CB = 'its key has no context broadcasting';

/** The launch options both commands take (their schemas share them: run-options.ts). */
type LaunchOptions = { gpus: number; nprocPerNode: number; nnodes: number; launcher: string };
const launchOf = (o: LaunchOptions): CellLaunch => ({
  gpus: o.gpus,
  nprocPerNode: o.nprocPerNode,
  nnodes: o.nnodes,
  launcher: o.launcher,
});

/** What a cell's cost reads of its experiment the same way for both tasks: the key, the charts, the batch, precision, length and data. */
function runCost<D>(exp: RunSettings & { backbone: { keyType: string; usesCharts: boolean }; charts: number; data: D }, epochs: number) {
  return {
    keyType: exp.backbone.keyType,
    charts: exp.backbone.usesCharts ? exp.charts : null,
    batchSize: exp.batchSize,
    amp: exp.amp,
    epochs,
    ...(exp.maxIters !== undefined ? { maxIters: exp.maxIters } : {}),
    data: exp.data,
  };
}

/**
 * What differs between the two tasks' cells: the command with its option schema, the backbone
 * list and variant lookup, how its options become an experiment, its work-dir naming and its cost.
 * Everything else a sweep asks of a task is the command's own parser and schema.
 */
interface TaskCommand<S extends z.ZodType<LaunchOptions>, E> {
  name: SweepTask['name'];
  command: Command;
  schema: S;
  backbones: readonly string[];
  variant(backbone: string): { usesCharts: boolean; keyType: string; family?: string };
  experiment(options: z.infer<S>): E;
  workDir(exp: NoInfer<E>): string;
  cost(exp: NoInfer<E>): CellExperiment['cost'];
}

function sweepTask<S extends z.ZodType<LaunchOptions>, E>(t: TaskCommand<S, E>): SweepTask {
  return {
    name: t.name,
    command: t.command.name() as SweepTask['command'],
    backbones: t.backbones,
    defaultBackbone: 'swin-t-spatialk',
    usesCharts: (b) => t.variant(b).usesCharts,
    parseShared: (options) => parseShared(t.command, options),
    describe: (raw) => {
      const o = parseOptions(t.schema, raw);
      checkProcessKind(o);
      const exp = t.experiment(o);
      return { workDir: t.workDir(exp), launch: launchOf(o), cost: t.cost(exp) };
    },
    axisFlags: axisFlagsOf(t.command),
    checkAxisValue: (options, flag, value) => checkAxisValue(t.command, t.schema, options, flag, value),
    axisSkip: (flag, b) => {
      const v = t.variant(b);
      if (flag === '--cb-mode' && !CB_KEY_TYPES.includes(v.keyType as (typeof CB_KEY_TYPES)[number])) return NO_CB;
      if (flag === '--attn-impl' && v.family !== undefined && v.family !== 'swin-t') return "its attention is not Swin-T's window attention";
      return undefined;
    },
  };
}

/** Detection cells: `mkey-det train`, read by its own schema and named by its own naming function. */
const DETECTION = sweepTask({
  name: 'detection',
  command: trainCommand,
  schema: trainOptionsSchema,
  backbones: BACKBONE_NAMES,
  variant: backboneVariant,
  experiment: (o) => experimentFromOptions(o, { checkPaths: false }),
  workDir: trainWorkDir,
  cost: (exp) => ({ task: 'detection', family: 'swin-t', ...runCost(exp, experimentEpochs(exp)) }),
});

/** Classification cells: `mkey-det pretrain`, likewise. */
const CLASSIFICATION = sweepTask({
  name: 'classification',
  command: pretrainCommand,
  schema: pretrainOptionsSchema,
  backbones: PRETRAIN_NAMES,
  variant: pretrainVariant,
  experiment: pretrainExperimentFrom,
  workDir: pretrainWorkDir,
  cost: (exp) => ({ task: 'classification', family: exp.backbone.family, ...runCost(exp, pretrainEpochs(exp)), recipe: exp.recipe }),
});

const TASKS: Record<SweepSpec['task'], SweepTask> = { detection: DETECTION, classification: CLASSIFICATION };

const sweepOptionsSchema = z.object({
  task: z.enum(SWEEP_TASKS, { message: `accepted: ${SWEEP_TASKS.join(', ')}` }),
  backbone: z.string().optional(),
  charts: z.string(),
  seeds: z.string(),
  vary: z.array(z.string()).default([]),
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-" (it names the folder work_dirs/sweep-<name>)')
    .optional(),
  sweepDir: z.string().min(1).optional(),
  plan: z.boolean().default(false),
  status: z.boolean().default(false),
  report: z.boolean().default(false),
  submit: z.boolean().default(false),
  slurmArgs: z.string().default(''),
  failFast: z.boolean().default(false),
  json: z.boolean().default(false),
});
type SweepOptions = z.infer<typeof sweepOptionsSchema>;

/** The matrix the flags spell, each list checked (one line naming the value and what is accepted). */
function specFromOptions(o: SweepOptions, task: SweepTask, typed: string[]): SweepSpec {
  const backbones = parseList('--backbone', o.backbone ?? task.defaultBackbone, (b) => (task.backbones.includes(b) ? b : undefined), task.backbones.join(', '));
  const charts = parseList('--charts', o.charts, intItem(1, MAX_CHARTS), `whole numbers 1-${MAX_CHARTS}, e.g. 4,8`);
  const seeds = parseList('--seeds', o.seeds, intItem(0, 2 ** 31 - 1), 'whole numbers 0-2147483647, e.g. 0,1,2');
  const vary = o.vary.map(parseVary);
  const keys = vary.map((v) => v.key);
  const twice = keys.find((k, i) => keys.indexOf(k) !== i);
  if (twice) throw new BadInputError(`--vary ${twice} is given twice: give its values once, comma-separated`);
  // the cells' options, but an axis option given a list (--cb-mode eq4,none): an axis, each value checked once
  const { options, axes } = splitOptionAxes(typed, task);
  return { task: task.name, backbones, charts, seeds, vary, ...(axes.length > 0 ? { axes } : {}), options };
}

interface Resolved {
  rec: SweepRecord;
  /** Whether sweep.json exists already (false: this command creates it, or only plans). */
  existing: boolean;
  task: SweepTask;
  cells: ExpandedCell[];
  sweepDir: string;
}

/** `--sweep-dir` names a folder or nothing yet: a file, a FIFO, a device there is refused before the plan (not EEXIST from mkdir after it). */
function refuseNonFolder(dir: string | undefined): void {
  const st = dir === undefined ? undefined : statSync(dir, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) {
    const kind = st.isFIFO() ? 'a FIFO' : st.isFile() ? 'a file' : st.isSocket() ? 'a socket' : 'not a folder';
    throw new BadInputError(`invalid --sweep-dir ${quoteValue(displayPath(dir!))}: ${kind} is there (accepted: a folder, or a path where one can be made)`);
  }
}

/**
 * The sweep this command means: the matrix its flags spell (a new sweep, or the recorded one of
 * the same matrix: running the same command again continues it), or, with `--sweep-dir` and no
 * matrix flags, the sweep recorded there.
 */
function resolveSweep(o: SweepOptions, options: string[], cmd: Command): Resolved {
  const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
  const matrixGiven = ['task', 'backbone', 'charts', 'seeds', 'vary', 'name'].some(given) || options.length > 0;
  const explicitDir = o.sweepDir !== undefined ? resolve(o.sweepDir) : undefined;
  refuseNonFolder(explicitDir);
  const recorded = explicitDir ? readSweepRecord(explicitDir) : undefined;
  if (recorded && !matrixGiven) {
    const task = TASKS[recorded.spec.task];
    const { cells } = expandMatrix(recorded.spec, task, recorded.cwd);
    return { rec: mergeCells(recorded, cells), existing: true, task, cells, sweepDir: explicitDir! };
  }
  const task = TASKS[o.task];
  const spec = specFromOptions(o, task, options);
  const { cells, collapsed } = expandMatrix(spec, task, process.cwd());
  const sweepDir = explicitDir ?? defaultSweepDir(spec, task, cells, o.name, process.cwd());
  const previous = recorded ?? readSweepRecord(sweepDir);
  if (previous) {
    if (JSON.stringify(previous.spec) !== JSON.stringify(spec)) {
      throw new BadInputError(
        `${displayPath(sweepDir)} holds another sweep (${previous.spec.task}: ${previous.spec.backbones.join(',')}; options ${previous.spec.options.join(' ') || '(none)'}), not this matrix`,
        `continue that one with: mkey-det sweep --sweep-dir ${displayPath(sweepDir)}; or give this one another --sweep-dir or --name`,
      );
    }
    const again = previous.cwd === process.cwd() ? cells : expandMatrix(spec, task, previous.cwd).cells;
    return { rec: mergeCells(previous, again), existing: true, task, cells: again, sweepDir };
  }
  const now = new Date().toISOString();
  const name = sweepDir.split('/').at(-1)!;
  const rec: SweepRecord = {
    version: 1,
    name,
    cwd: process.cwd(),
    spec,
    collapsed,
    state: 'planned',
    created: now,
    updated: now,
    cells: cells.map(({ cost: _cost, launch: _launch, ...c }) => ({ ...c, attempts: [] })),
  };
  return { rec, existing: false, task, cells, sweepDir };
}

/** The recorded cells with this version's command lines (their attempts and job ids kept). */
function mergeCells(rec: SweepRecord, cells: ExpandedCell[]): SweepRecord {
  const byDir = new Map(rec.cells.map((c) => [c.workDir, c]));
  rec.cells = cells.map(({ cost: _cost, launch: _launch, ...c }): CellRecord => {
    const old = byDir.get(c.workDir);
    return { ...c, attempts: old?.attempts ?? [], ...(old?.jobId ? { jobId: old.jobId } : {}), ...(old?.script ? { script: old.script } : {}) };
  });
  return rec;
}

/** `--submit`: one sbatch script per cell still to run, submitted; the job ids recorded. */
async function submitCells(r: Resolved, slurmArgs: string[]): Promise<{ cells: { name: string; submitted: boolean; jobId?: string; script?: string; why?: string }[] }> {
  requireSbatch();
  const queued = await squeueStates(r.rec.cells.flatMap((c) => (c.jobId ? [c.jobId] : [])));
  const out: { name: string; submitted: boolean; jobId?: string; script?: string; why?: string }[] = [];
  for (const [i, cell] of r.rec.cells.entries()) {
    const launch = r.cells[i]!.launch;
    const state = cell.jobId ? queued?.get(cell.jobId) : undefined;
    if (cell.jobId && state && !['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY'].includes(state)) {
      out.push({ name: cell.name, submitted: false, jobId: cell.jobId, why: `job ${cell.jobId} is ${state.toLowerCase()}` });
      continue;
    }
    const next = nextAction(cell);
    if (next.do !== 'run') {
      out.push({ name: cell.name, submitted: false, why: next.why });
      continue;
    }
    const script = writeCellScript(r.sweepDir, cell, cellScript(r.rec, cell, launch, slurmArgs, next.flags, r.sweepDir));
    const jobId = await submitScript(script, r.rec.cwd);
    Object.assign(cell, { jobId, script });
    cell.attempts.push({ action: 'submitted', started: new Date().toISOString(), jobId });
    writeSweepRecord(r.sweepDir, r.rec);
    logger.info(`${cell.name}: submitted as job ${jobId} (${displayPath(script)})`);
    out.push({ name: cell.name, submitted: true, jobId, script });
  }
  return { cells: out };
}

/** The end-of-sweep lines: what happened to each cell this time. */
function outcomesText(cells: CellOutcome[], report: SweepReport | undefined, state: string): string {
  const rows = cells.map((c) => [c.name, c.outcome, c.status, c.message ?? '']);
  return [
    `sweep ${state}:`,
    alignedTable(['cell', 'this time', 'run', ''], rows, () => false),
    ...(report ? [`report: ${displayPath(report.md)} and ${displayPath(report.html)} (${report.runs.length} runs)`] : []),
  ].join('\n');
}

export const sweepCommand = new Command('sweep')
  .description("run a matrix of train or pretrain runs (backbones x charts x seeds x options such as --cb-mode eq4,none x config values) as a queue here or as Slurm jobs, resumable, with its plan, GPU-hours and the report of the whole matrix")
  .option('--task <kind>', `${SWEEP_TASKS.join(' | ')}: cells of mkey-det train (detection) or mkey-det pretrain (classification)`, 'detection')
  .option('--backbone <list>', `backbones, comma-separated (train: ${BACKBONE_NAMES.join(', ')}; pretrain: ${PRETRAIN_FAMILIES.map((f) => `${f.id}[-<key>]`).join(', ')}) (default: swin-t-spatialk)`)
  .option('--charts <list>', `charts H of the manifold keys, comma-separated, 1-${MAX_CHARTS} (the linear key has none: one cell)`, '8')
  .option('--seeds <list>', 'seeds, comma-separated (report groups them as mean ± std)', '0')
  .option('--vary <key=v1,v2>', 'a config value as one more axis, e.g. model.backbone.drop_path_rate=0.1,0.2 (each cell gets --cfg-options key=v; repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--name <name>', 'sweep name: its folder is work_dirs/sweep-<name> (default: <command>-<data>-<id of the matrix>)')
  .option('--sweep-dir <dir>', "the sweep's folder (sweep.json, logs, Slurm scripts, the report); alone, it names a recorded sweep to continue, plan, or show")
  .option('--plan', 'print the cells, their iterations and GPU-hours, and exit', false)
  .option('--status', "print each cell's state (its run folder; Slurm's queue where squeue is here) and exit", false)
  .option('--report', "write the matrix's report (<sweep-dir>/report.md and .html) from the cells' runs now, and exit", false)
  .option('--submit', 'with --launcher slurm: write one sbatch script per cell and submit them (sbatch --parsable) instead of running the queue here', false)
  .option('--slurm-args <args>', "sbatch options for every cell's job, e.g. \"--partition=gpu --time=48:00:00\" (resources come from --gpus and --nnodes)")
  .option('--fail-fast', 'stop the queue at the first failed cell (default: record it and go on)', false)
  .option('--json', 'print the plan, status or result as one JSON object', false)
  .allowUnknownOption()
  .allowExcessArguments()
  .addHelpText(
    'after',
    `
Every other option is the cells' own: each cell runs mkey-det train (or pretrain) with those
options and the flags of its row (--data, --schedule, --gpus, --nnodes, --launcher, --max-iters,
--cfg-options, --amp, --cb-mode, --vis-backend, ...; see mkey-det train --help). Each cell is a normal run in
the folder train / pretrain names it (work_dirs/<backbone>[-c<charts>]-<schedule>-<data>-s<seed>),
started as node bin/mkey-det.js train ... one after another. Ctrl-C stops the running cell at its
next iteration and the sweep (exit 130); the same command again skips completed cells, resumes the
interrupted one (--resume) and goes on. A failed cell is recorded and the others run. The end is
the report of the whole matrix, seeds grouped: <sweep-dir>/report.md and report.html.

One of these options of the cells given a comma list is one more axis of the matrix, each value
checked by the command's own rules (e.g. --cb-mode eq4,none): --schedule (train), --recipe
(pretrain), --cb-mode, --img-scale (train), --img-size (pretrain), --batch-size, --max-epochs,
--max-iters, --attn-impl, --key-order. Each cell gets one value; its folder names it after train's /
pretrain's own name (-cb-none, -img512x512; the schedule and recipe are in that name already).
An axis that does not apply to a backbone (--cb-mode to a key without CB) gives it one cell.

Cost: detection cells from the images/s per GPU measured on one H100 (docs/RESULTS.md), marked *
where estimated (another key, chart count, batch or precision); classification: no measurement.

Exit codes: 0 every cell completed (or plan/status/report/submit done), 1 a cell failed, 2 bad
input, 3 Python or sbatch not here, 130 interrupted (run the same command again to continue).

Examples:
  mkey-det sweep --backbone swin-t,swin-t-spatialk --seeds 0,1,2 --data coco --gpus 8 --plan     # Table 3, 3 seeds
  mkey-det sweep --task classification --backbone swin-t,swin-t-spatialk,swin-t-kua,swin-t-simplek,swin-t-vanillak --data /data/imagenet --gpus 4 --plan   # Table 1's Swin-T row
  mkey-det sweep --task classification --backbone vit-b-vanillak --charts 4,8 --cb-mode eq4,none --data /data/imagenet --gpus 8 --plan   # Table 2: with and without CB
  mkey-det sweep --backbone swin-t,swin-t-spatialk --schedule 3x,paper-3x --img-scale 512x512,800x800 --data coco --gpus 8 --plan
  mkey-det sweep --backbone swin-t-spatialk --vary model.backbone.drop_path_rate=0.1,0.2 --seeds 0,1 --data coco --gpus 8
  mkey-det sweep --backbone swin-t,swin-t-spatialk --data demo --vis-backend tensorboard --vis-backend mlflow
  mkey-det sweep --backbone swin-t,swin-t-spatialk --seeds 0,1 --data demo                          # a queue on this machine
  mkey-det sweep --backbone swin-t,swin-t-spatialk --seeds 0,1,2 --data coco --gpus 8 --launcher slurm --submit --slurm-args "--partition=gpu --time=72:00:00"
  mkey-det sweep --sweep-dir work_dirs/sweep-train-coco-1a2b3c4d --status
  mkey-det sweep --sweep-dir work_dirs/sweep-train-coco-1a2b3c4d        # continue it`,
  )
  .action(
    guardedAction(async (raw: unknown, cmd: Command) => {
      const o = parseOptions(sweepOptionsSchema, raw);
      const modes = (['plan', 'status', 'report', 'submit'] as const).filter((m) => o[m]);
      if (modes.length > 1) throw new BadInputError(`${modes.map((m) => `--${m}`).join(' and ')} exclude each other: give one`);
      const slurmArgs = splitSlurmArgs(o.slurmArgs);
      const r = resolveSweep(o, cmd.args, cmd);
      const launcher = r.cells[0]?.launch.launcher;
      if (o.submit && launcher !== 'slurm') throw new BadInputError('--submit needs --launcher slurm (each cell becomes a Slurm job)', 'add --launcher slurm, or leave --submit out to run the queue here');
      if (slurmArgs.length > 0 && !o.submit) throw new BadInputError('--slurm-args applies to --submit only (the sbatch options of each cell\'s job)');
      if (r.cells.length === 0) throw new BadInputError('the matrix has no cell');
      if (o.submit) requireSbatch(); // before the plan is printed or sweep.json written
      if (!o.status && !o.report) {
        // --vary values and the cells' --cfg-options are data, as in train: a type name must be registered
        const shared = r.task.parseShared(r.rec.spec.options) as { cfgOptions?: string[] };
        const varied = r.rec.spec.vary.flatMap((axis) => axis.values.map((v) => `${axis.key}=${v}`));
        await refuseUnregisteredTypes(cfgOptionPairs([...(shared.cfgOptions ?? []), ...varied]));
      }

      if (o.status || o.report) {
        if (!r.existing) {
          throw new BadInputError(`no sweep in ${displayPath(r.sweepDir)} (no sweep.json)`, 'start it with the same options without --status / --report, or name its --sweep-dir');
        }
        if (o.status) {
          const status = sweepStatus(r.rec, r.sweepDir, await squeueStates(r.rec.cells.flatMap((c) => (c.jobId ? [c.jobId] : []))));
          emit({ ok: true, ...status }, o, () => statusText(status));
          return;
        }
        const release = acquireFolderLock(r.sweepDir, SWEEP_LOCK, 'mkey-det sweep', displayPath(r.sweepDir));
        try {
          const report = await writeSweepReport(r.rec, r.sweepDir);
          if (!report) throw new BadInputError(`no cell of ${displayPath(r.sweepDir)} has a run yet: nothing to report`);
          writeSweepRecord(r.sweepDir, r.rec);
          emit({ ok: true, sweepDir: r.sweepDir, report }, o, () => `${report.md}\n${report.html}`);
        } finally {
          release();
        }
        return;
      }

      const plan = await buildPlan(r.rec.name, r.sweepDir, r.rec.spec, r.task, r.cells, r.rec.collapsed);
      if (o.plan) {
        emit({ ok: true, ...plan }, o, () => planText(plan));
        return;
      }
      logger.info(planText(plan) + '\n');

      // one sweep at a time takes this queue (a second one is refused, naming the first)
      mkdirSync(r.sweepDir, { recursive: true });
      const release = acquireFolderLock(r.sweepDir, SWEEP_LOCK, 'mkey-det sweep', displayPath(r.sweepDir));
      try {
        if (o.submit) {
          writeSweepRecord(r.sweepDir, r.rec);
          const submitted = await submitCells(r, slurmArgs);
          if (submitted.cells.some((c) => c.submitted)) r.rec.state = 'submitted';
          writeSweepRecord(r.sweepDir, r.rec);
          emit({ ok: true, sweepDir: r.sweepDir, ...submitted }, o, () =>
            [
              alignedTable(['cell', 'job', 'script / why not'], submitted.cells.map((c) => [c.name, c.submitted ? c.jobId! : '-', c.submitted ? displayPath(c.script!) : c.why ?? '']), () => false),
              '',
              `follow it with: mkey-det sweep --sweep-dir ${displayPath(r.sweepDir)} --status`,
            ].join('\n'),
          );
          return;
        }
        const python = await checkInterpreter();
        // a tracker the cells log to must be here before the first cell starts (each cell checks again)
        const shared = r.task.parseShared(r.rec.spec.options);
        await prepareTrackers(visBackendsFrom({ tensorboard: shared.tensorboard === true, visBackend: (shared.visBackend as VisBackend[] | undefined) ?? [] }));
        writeSweepRecord(r.sweepDir, r.rec);
        const queue = await runQueue(r.rec, { sweepDir: r.sweepDir, python, failFast: o.failFast });
        let report: SweepReport | undefined;
        let reportError: string | undefined;
        if (!queue.interrupted) {
          try {
            report = await writeSweepReport(r.rec, r.sweepDir);
          } catch (err) {
            reportError = (err as Error).message;
          }
          writeSweepRecord(r.sweepDir, r.rec);
        }
        const result = { ok: r.rec.state === 'completed' && !reportError, sweepDir: r.sweepDir, state: r.rec.state, cells: queue.cells, report: report ?? null };
        emit(result, o, () => outcomesText(queue.cells, report, r.rec.state));
        if (queue.interrupted) {
          if (!o.json) logger.warn(`interrupted; continue with the same command, or: mkey-det sweep --sweep-dir ${displayPath(r.sweepDir)}`);
          process.exitCode = ExitCode.interrupted;
        } else if (reportError) {
          throw new MkeyError(`the cells ended but the report failed: ${reportError}`);
        } else if (r.rec.state !== 'completed') {
          process.exitCode = ExitCode.failure;
        }
      } finally {
        release();
      }
    }),
  );

